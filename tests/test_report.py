"""The HTML run report: self-contained, escaped, worst images first, and curves checked by hand and
against pycocotools' own per-detection matches."""

from __future__ import annotations

import base64
import io
import json
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from coordbench.metrics.calibration import matched_detections, reliability_bins
from coordbench.metrics.scoring import evaluate_records, write_eval_dir
from coordbench.report.curves import pr_curve
from coordbench.report.gallery import outcome
from coordbench.report.html import write_compare_report, write_run_report

XSS = "<script>alert(1)</script>"
ODD_NAME = "images/img<b>0.png"


def _box(points, desc, score=None):
    d = {"type": "bbox_2d", "points": points, "desc": desc}
    return d if score is None else {**d, "score": score}


def _records():
    """Three images: s0 has a TP, an FP (XSS desc) and an FN; s1 is perfect; s2's image is
    missing."""
    return [
        {
            "image": ODD_NAME,
            "width": 64,
            "height": 48,
            "sample_id": "s0",
            "index": 0,
            "gt": [_box([4, 4, 30, 30], "cat"), _box([34, 10, 60, 40], "dog")],
            "pred": [_box([4, 4, 30, 30], "cat", 0.9), _box([40, 2, 60, 20], XSS, 0.6)],
            "raw_text": f'{{"objects": [{{"desc": "{XSS}"}}]}}',
            "parse_status": "ok",
            "finish_reason": "stop",
        },
        {
            "image": "images/ok1.jpg",
            "width": 64,
            "height": 64,
            "sample_id": "s1",
            "index": 1,
            "gt": [_box([10, 10, 40, 40], "cat")],
            "pred": [_box([10, 10, 40, 40], "cat", 0.8)],
            "raw_text": "fine",
            "parse_status": "ok",
            "finish_reason": "stop",
        },
        {
            "image": "images/missing.png",
            "width": 32,
            "height": 32,
            "sample_id": "s2",
            "index": 2,
            "gt": [_box([0, 0, 20, 20], "dog")],
            "pred": [],
            "raw_text": "x" * 2500,
            "parse_status": "truncated",
            "finish_reason": "length",
        },
    ]


METRICS = {
    "bbox_AP": 0.4321,
    "bbox_AP50": 0.6543,
    "bbox_AP75": 0.3,
    "bbox_APs": -1.0,
    "bbox_APm": 0.2,
    "bbox_APl": 0.1,
    "bbox_AR1": 0.25,
    "bbox_AR10": 0.5,
    "bbox_AR100": 0.5,
    "f1ish@0.50_f1_full_micro": 0.5714,
    "f1ish@0.30_f1_full_micro": 0.5714,
    "f1ish@0.50_f1_loc_micro": 0.5714,
    "f1ish@0.30_f1_loc_micro": 0.5714,
    "f1ish@0.50_pred_total": 3,
}


def _match_row(i, rec, matches, unmatched_pred, unmatched_gt):
    return {
        "image_id": i,
        "file_name": rec["image"],
        "iou_thr": 0.5,
        "gt_count": len(rec["gt"]),
        "pred_count": len(rec["pred"]),
        "matches": matches,
        "unmatched_pred_indices": unmatched_pred,
        "ignored_pred_indices": [],
        "unmatched_gt_indices": unmatched_gt,
    }


def _no_model(texts):
    """Encoder stub: different descs have cosine 0 (the XSS desc maps to no class)."""
    return np.zeros((len(texts), 1), np.float32)


def _scored(recs):
    return [{**r, "pred_score_source": "test", "pred_score_version": 1} for r in recs]


def _write_lines(path: Path, rows) -> None:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))


def make_run(tmp_path: Path, *, images: bool = True, finished: bool = True) -> Path:
    data = tmp_path / "data"
    (data / "images").mkdir(parents=True)
    recs = _records()
    if images:
        Image.new("RGB", (64, 48), (200, 200, 200)).save(data / ODD_NAME)
        Image.new("RGB", (64, 64), (90, 120, 200)).save(data / "images/ok1.jpg")
    _write_lines(
        data / "val.jsonl",
        [{"images": [r["image"]], "width": r["width"], "height": r["height"]} for r in recs],
    )
    rd = tmp_path / "runs" / "r1"
    (rd / "eval").mkdir(parents=True)
    prov = {
        "wall_seconds": 12.5,
        "samples_per_s": 0.24,
        "batch_size": 4,
        "sessions": [{"generation": {"generate_seconds": 9.0}}],
    }
    if finished:
        prov["finished_at"] = "2025-01-01T00:00:00+0000"
    head = {
        "schema_version": 1,
        "identity_hash": "f" * 64,
        "identity": {
            "checkpoint": {"path_name": "ck", "sha256": "c" * 64},
            "dataset": {"num_samples": 3, "limit": None},
            "preset": "64",
            "prompt": {
                "name": "default_desc_first",
                "layout": "text_first",
                "surface": "coord_tokens",
                "template_hash": "abc",
            },
            "decode": {"temperature": 0.0, "top_p": 1.0, "max_new_tokens": 77},
            "seed": 7,
            "backend": "hf",
        },
        "config": {"ckpt": "/ckpts/my-model", "data": str(data / "val.jsonl"), "name": "r1"},
        "provenance": prov,
    }
    (rd / "run.json").write_text(json.dumps(head))
    scored = _scored(
        [{k: v for k, v in r.items() if k != "raw_text"} for r in recs]
    )  # raw text joined from gt_vs_pred
    _write_lines(rd / "gt_vs_pred_scored.jsonl", scored)
    _write_lines(rd / "gt_vs_pred.jsonl", recs)
    if not finished:
        return rd
    summary = {
        "schema_version": 1,
        "identity_hash": "f" * 64,
        "metrics": METRICS,
        "parse": {"counts": {"ok": 2, "salvaged": 0, "empty": 0, "truncated": 1, "malformed": 0}},
        "diagnostics": {"warnings": [f"class collapse: {XSS}"]},
    }
    (rd / "summary.json").write_text(json.dumps(summary))
    # the real eval dir of these records (COCO files, calibration), then hand-made CSV and matches
    write_eval_dir(evaluate_records(scored, encoder=_no_model), rd / "eval")
    (rd / "eval/per_class.csv").write_text("category,AP\ncat,0.8765\ndog,0.0\n")
    m0 = [{"pred_idx": 0, "gt_idx": 0, "iou": 1.0, "sem_ok": True}]
    m1 = [{"pred_idx": 0, "gt_idx": 0, "iou": 1.0, "sem_ok": True}]
    _write_lines(
        rd / "eval/matches.jsonl",
        [_match_row(0, recs[0], m0, [1], [1]), _match_row(1, recs[1], m1, [], [])],
    )
    return rd  # s2 has no matches row: its colours come from the fallback matching


def _data_uris(text: str, mime: str) -> list[bytes]:
    return [
        base64.b64decode(b)
        for b in re.findall(rf'src="data:{mime};base64,([A-Za-z0-9+/=]+)"', text)
    ]


def test_report_is_self_contained_escaped_and_complete(tmp_path):
    rd = make_run(tmp_path)
    out = write_run_report(rd)
    assert out == rd / "report.html" and out.exists()
    text = out.read_text(encoding="utf-8")
    assert "<script" not in text and "&lt;script&gt;alert(1)&lt;/script&gt;" in text
    assert "<b>" not in text and "img&lt;b&gt;0.png" in text
    assert "http://" not in text and "https://" not in text
    assert not re.search(r'(src|href)="(?!data:)', text)
    for value in (
        "0.4321",
        "0.6543",
        "0.5714",
        "0.8765",
        "f" * 64,
        "/ckpts/my-model",
        "12.5",
        "0.240",
        "max_new_tokens=77",
    ):
        assert value in text, value
    gallery = _data_uris(text, "image/jpeg")
    plots = _data_uris(text, "image/png")
    assert len(gallery) == 3 and len(plots) == 2
    for data in gallery + plots:
        Image.open(io.BytesIO(data)).verify()
    assert all(max(Image.open(io.BytesIO(d)).size) <= 384 for d in gallery)
    # worst first: s0 (FP+FN = 2), then s2 (FN 1), then s1 (perfect)
    assert text.index("</strong> s0 ") < text.index("</strong> s2 ") < text.index("</strong> s1 ")
    assert "image not found:" in text and "images/missing.png" in text
    assert "n/a (-1: no GT in range)" in text  # bbox_APs = -1
    assert "x" * 2000 + "\n… (500 more characters)" in text and "x" * 2001 not in text


def test_gallery_colours_tp_fp_fn(tmp_path):
    text = write_run_report(make_run(tmp_path)).read_text(encoding="utf-8")
    img = np.asarray(
        Image.open(io.BytesIO(_data_uris(text, "image/jpeg")[0])).convert("RGB"), dtype=float
    )
    # s0 is 64x48 shown at 4x (256 px long side): TP cat box left edge x=4 -> 16,
    # FP box x=40 -> 160, FN dog GT box right edge x=60 -> 240 (dashed); strips straddle
    # the 2-px lines, below the labels.
    tp = img[60:110, 15:19].mean(axis=(0, 1))
    fp = img[40:76, 159:163].mean(axis=(0, 1))
    fn = img[100:160, 238:243].mean(axis=(0, 1))
    assert tp[1] > tp[0] + 30 and tp[1] > tp[2] + 30, tp
    assert fp[0] > fp[1] + 30 and fp[0] > fp[2] + 30, fp
    assert fn[0] > fn[2] + 30 and fn[0] > fn[1], fn


def test_missing_or_corrupt_images_and_partial_run_render_placeholders(tmp_path):
    rd = make_run(tmp_path, images=False, finished=False)
    (tmp_path / "data/images/ok1.jpg").write_bytes(b"not a jpeg")
    text = write_run_report(rd, max_gallery=2).read_text(encoding="utf-8")
    assert text.count("image not found:") == 2 and len(_data_uris(text, "image/jpeg")) == 2
    assert "partial / in progress" in text and "&lt;script&gt;" in text


def test_outcome_counts_equal_upstream_per_image(oracle_dir):
    """Colours from matches.jsonl reproduce upstream's per-image tp/fp/fn_full at IoU 0.5."""
    out = oracle_dir / "eval_oracle_expected_outputs"
    recs = [
        json.loads(x)
        for x in (oracle_dir / "eval_oracle_gt_vs_pred_scored.jsonl").read_text().splitlines()
    ]
    rows = {
        r["image_id"]: r for r in map(json.loads, (out / "matches.jsonl").read_text().splitlines())
    }
    for img in json.loads((out / "per_image.json").read_text()):
        c = outcome(recs[img["image_id"]], rows[img["image_id"]]).counts()
        f = img["f1ish"]["0.50"]
        assert (c["tp"], c["fp"], c["fn"]) == (f["tp_full"], f["fp_full"], f["fn_full"])


def test_score_matching_equals_pycocotools_dt_matches(oracle_dir):
    """Per-detection TP flags at IoU 0.5 (the PR curves' and calibration's) equal
    COCOeval.evaluateImg's dtMatches (area all)."""
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    recs = [
        json.loads(x)
        for x in (oracle_dir / "eval_oracle_gt_vs_pred_scored.jsonl").read_text().splitlines()
    ]
    cats = sorted({g["desc"] for r in recs for g in r["gt"]})
    cid = {c: i + 1 for i, c in enumerate(cats)}
    gts, dts = [], []

    def xywh(p):
        return [p[0], p[1], p[2] - p[0], p[3] - p[1]]

    for i, r in enumerate(recs):
        for g in r["gt"]:
            gts.append(
                {
                    "id": len(gts) + 1,
                    "image_id": i,
                    "category_id": cid[g["desc"]],
                    "bbox": xywh(g["points"]),
                    "area": xywh(g["points"])[2] * xywh(g["points"])[3],
                    "iscrowd": 0,
                }
            )
        for p in r["pred"]:
            dts.append(
                {
                    "id": len(dts) + 1,
                    "image_id": i,
                    "category_id": cid[p["desc"]],
                    "bbox": xywh(p["points"]),
                    "score": p["score"],
                }
            )
    dataset = {
        "images": [{"id": i} for i in range(len(recs))],
        "annotations": gts,
        "categories": [{"id": v, "name": k} for k, v in cid.items()],
    }
    coco = COCO()
    coco.dataset = json.loads(json.dumps(dataset))
    coco.createIndex()
    ev = COCOeval(coco, coco.loadRes(json.loads(json.dumps(dts))), "bbox")
    ev.params.iouThrs = np.array([0.5])
    ev.evaluate()
    name = {v: k for k, v in cid.items()}
    expected = []
    for e in ev.evalImgs:
        if e is not None and e["aRng"] == ev.params.areaRng[0]:
            for dt_id, m in zip(e["dtIds"], e["dtMatches"][0], strict=True):
                d = dts[dt_id - 1]
                expected.append((name[d["category_id"]], d["image_id"], d["score"], bool(m > 0)))
    det = matched_detections(dataset, dts)
    img = {(name[d["category_id"]], d["score"]): d["image_id"] for d in dts}
    got = [
        (c, img[c, s], s, t)
        for c, s, t in zip(det.category, det.scores.tolist(), det.tp.tolist(), strict=True)
    ]
    assert sorted(got) == sorted(expected) and len(got) == 11
    assert 0 < sum(det.tp) < 11
    assert det.n_gt == {k: sum(g["category_id"] == v for g in gts) for k, v in cid.items()}


def test_pr_curve_and_reliability_by_hand():
    recall, precision, ap = pr_curve(np.array([0.6, 0.8, 0.9]), np.array([False, True, True]), 4)
    assert recall.tolist() == [0.25, 0.5, 0.5] and precision.tolist() == pytest.approx(
        [1, 1, 2 / 3]
    )
    assert ap == pytest.approx(0.5)  # 0.25 * 1 + 0.25 * 1
    assert [
        b["count"] for b in reliability_bins(np.array([1.0, 0.0]), np.array([True, False]), 4)
    ] == [
        1,
        0,
        0,
        1,
    ]
    # The report's curves are the evaluation's: the XSS-desc box of s0 maps to no class, so COCO
    # (and the calibration) never sees it; cat and dog have two GT boxes each.
    result = evaluate_records(_scored(_records()), encoder=_no_model)
    det = matched_detections(result.coco_gt, result.coco_preds)
    assert sorted(zip(det.scores.tolist(), det.tp.tolist(), strict=True)) == [
        (0.8, True),
        (0.9, True),
    ]
    assert det.n_gt == {"cat": 2, "dog": 2}
    assert pr_curve(det.scores, det.tp, 4)[2] == pytest.approx(0.5)
    cal = result.calibration
    assert (cal["n_preds"], cal["n_tp"]) == (2, 2) and cal["ece"] == pytest.approx((0.1 + 0.2) / 2)
    assert [b["count"] for b in cal["bins"]] == [0, 0, 0, 0, 0, 0, 0, 0, 1, 1]


def test_compare_report_escapes_and_renders_tables(tmp_path):
    data = {
        "title": "A vs <i>B</i>",
        "caveats": ["decode differs: http://x.y"],
        "tables": [
            {
                "title": "summary",
                "columns": ["run", "mAP"],
                "rows": [["<b>a</b>", 0.51234], ["b", 0.4]],
            },
            {"title": "per class", "rows": [{"class": "cat", "delta": -0.1}]},
        ],
        "gates": [["gate", "status"], ["mAP >= 0.5", "met"]],
    }
    text = write_compare_report(data, tmp_path / "c.html").read_text(encoding="utf-8")
    assert "<i>" not in text and "&lt;b&gt;a&lt;/b&gt;" in text and "http://" not in text
    assert (
        "0.5123" in text
        and "-0.1000" in text
        and "<th>delta</th>" in text
        and "mAP &gt;= 0.5" in text
    )


def test_report_modules_import_no_matplotlib_or_pil():
    code = (
        "import sys, coordbench.report.html, coordbench.report.gallery, coordbench.report.plots; "
        "assert not any(m.split('.')[0] in ('matplotlib', 'PIL', 'torch') for m in sys.modules), "
        "'heavy import'"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_damaged_run_dir_still_renders(tmp_path):
    """Torn lines, wrong types, absurd boxes and a mismatched matches row never stop the report."""
    rd = make_run(tmp_path)
    recs = _records()
    recs[1]["pred"] = [
        _box([1e300, -1e300, 5, 5], "huge", "NaN"),
        {"type": "poly", "points": [1, 2]},
        "junk",
        _box([1, 2, 3], "short"),
    ]
    recs[2]["gt"] = [_box(["a", 0, 1, 1], "bad")]
    recs[2]["width"] = "wide"
    lines = "".join(json.dumps(r) + "\n" for r in recs) + '[1, 2]\n{"torn": '
    (rd / "gt_vs_pred_scored.jsonl").write_text(lines)
    (rd / "eval/matches.jsonl").write_text(
        json.dumps(_match_row(0, recs[0], [{"pred_idx": 9, "gt_idx": 0}], [], [])) + "\n"
    )
    (rd / "summary.json").write_text(
        '{"metrics": [1], "parse": {"counts": {"ok": "x"}}, "diagnostics": {"warnings": "w"}}'
    )
    (rd / "run.json").write_text(
        '{"identity": 3, "config": {"data": 5}, '
        '"provenance": {"sessions": [1, {"generation": {"generate_seconds": "x"}}]}}'
    )
    text = write_run_report(rd).read_text(encoding="utf-8")
    assert "2 unreadable JSONL lines skipped" in text
    assert len(_data_uris(text, "image/jpeg")) == 3 and text.count("image not found:") == 3
