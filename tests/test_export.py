"""Original-scale projection, COCO results export and official-style scoring (export.py).

Oracles: pycocotools' own `loadRes` + `COCOeval` on the fixture's untouched instances json,
hand-computed projections, and the fixture's tagged annotations (crowd / thin / outside / zero).
"""

from __future__ import annotations

import json
import random
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from fixtures_coco import make_coco

from coordbench.data.coco import convert_coco
from coordbench.errors import DataError
from coordbench.export.coco_results import (
    build_export,
    coco_results,
    project_box,
    project_record_to_original,
    write_results,
)
from coordbench.pipeline.original_scale import eval_original_scale

STATS = ("AP", "AP50", "AP75", "APs", "APm", "APl", "AR1", "AR10", "AR100", "ARs", "ARm", "ARl")


def _convert(root: Path, out: Path) -> Path:
    convert_coco(root, out_dir=out, workers=1, progress=False)
    return out


@pytest.fixture(scope="module")
def pristine(tmp_path_factory):
    """(fixture, preset dir) of the seeded COCO, converted at the 768 budget."""
    base = tmp_path_factory.mktemp("export")
    fx = make_coco(base / "coco")
    return fx, _convert(fx.root, base / "768")


@pytest.fixture(scope="module")
def clean(tmp_path_factory):
    """The fixture without the boxes a preset cannot carry (thin, outside, zero); crowds kept."""
    base = tmp_path_factory.mktemp("export_clean")
    fx = make_coco(base / "coco")
    coco = json.loads(fx.annotation_path.read_text())
    sizes = {i["id"]: (i["width"], i["height"]) for i in coco["images"]}

    def representable(a):
        x, y, w, h = a["bbox"]
        W, H = sizes[a["image_id"]]
        return a["iscrowd"] == 1 or (w >= 1 and h >= 1 and x + w <= W and y + h <= H)

    coco["annotations"] = [a for a in coco["annotations"] if representable(a)]
    assert len(coco["annotations"]) == fx.counts["total"] - 4  # 2 outside, 1 zero, 1 thin
    fx.annotation_path.write_text(json.dumps(coco))
    return fx, _convert(fx.root, base / "768")


def _rows(preset: Path, name: str = "val.jsonl") -> list[dict]:
    return [json.loads(line) for line in (preset / name).read_text().splitlines()]


def _record(row: dict, i: int, preds: list[dict]) -> dict:
    gt = [{"type": "bbox_2d", "points": o["bbox_2d"], "desc": o["desc"]} for o in row["objects"]]
    return {
        "image": row["images"][0],
        "width": row["width"],
        "height": row["height"],
        "mode": "text",
        "coord_mode": "pixel",
        "gt": gt,
        "pred": preds,
        "image_id": row["image_id"],
        "sample_id": str(row["image_id"]),
        "index": i,
        "pred_score_source": "test",
        "pred_score_version": 1,
    }


def _pred(box, desc: str, score: float) -> dict:
    return {"type": "bbox_2d", "points": [int(v) for v in box], "desc": desc, "score": score}


def make_run(run_dir: Path, data: Path, records: list[dict], **config) -> Path:
    """The two run-dir files export reads (rundir.md): run.json config.data + scored records."""
    run_dir.mkdir(parents=True, exist_ok=True)
    head = {"schema_version": 1, "config": {"data": str(data), "semantic_threshold": 0.5, **config}}
    (run_dir / "run.json").write_text(json.dumps(head))
    (run_dir / "gt_vs_pred_scored.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    return run_dir


def _to_preset(xywh: list[float], orig: tuple[int, int], preset: tuple[int, int]) -> list[int]:
    x, y, w, h = xywh
    sx, sy = preset[0] / orig[0], preset[1] / orig[1]
    return [round(x * sx), round(y * sy), round((x + w) * sx), round((y + h) * sy)]


def _pycocotools_stats(annotations: Path, results: Path, img_ids: list[int]) -> list[float]:
    import contextlib
    import io

    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    with contextlib.redirect_stdout(io.StringIO()):
        gt = COCO(str(annotations))
        ev = COCOeval(gt, gt.loadRes(str(results)), "bbox")
        ev.params.imgIds = sorted(img_ids)
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
    return [float(s) for s in ev.stats]


# --------------------------------------------------------------------------- projection


def test_projection_scales_by_original_over_preset_and_clamps():
    rec = {
        "image": "a.jpg",
        "width": 1024,
        "height": 768,
        "coord_mode": "pixel",
        "gt": [{"type": "bbox_2d", "points": [512, 384, 1023, 767], "desc": "cat"}],
        "pred": [_pred([0, 0, 1023, 767], "cat", 0.5), _pred([10, 10, 5, 20], "dog", 0.4)],
        "pred_score_source": "test",
        "pred_score_version": 1,
    }
    out = project_record_to_original(rec, 640, 480)
    assert (out["width"], out["height"], out["preset_width"], out["preset_height"]) == (
        640,
        480,
        1024,
        768,
    )
    # sx = 640/1024 = 0.625 (no -1 correction, [UP-TESTDEV-EXPORT]): the preset's last pixel 1023
    # lands one preset pixel (0.625 original px) inside the original far corner, never past it
    assert out["pred"] == [
        {"type": "bbox_2d", "points": [0.0, 0.0, 639.375, 479.375], "desc": "cat", "score": 0.5}
    ]
    assert out["gt"][0]["points"] == [320.0, 240.0, 639.375, 479.375]
    assert rec["width"] == 1024 and len(rec["pred"]) == 2  # input untouched; reversed box dropped
    # the preset's far corner (W', H') is the original far corner; beyond it is clamped
    assert project_box([0, 0, 1024, 768], (1024, 768), (640, 480)) == [0.0, 0.0, 640.0, 480.0]
    assert project_box([-8, -1, 1100, 900], (1024, 768), (640, 480)) == [0.0, 0.0, 640.0, 480.0]
    assert project_box([17, 33, 18, 82], (1056, 704), (640, 427)) == pytest.approx(
        [17 * 640 / 1056, 33 * 427 / 704, 18 * 640 / 1056, 82 * 427 / 704], rel=0, abs=1e-12
    )


# --------------------------------------------------------------------------- results + scoring


def _jittered_records(rows: list[dict], seed: int = 1) -> list[dict]:
    rng = random.Random(seed)
    recs = []
    for i, row in enumerate(rows):
        preds = []
        for o in row["objects"]:
            if rng.random() < 0.2:  # a miss
                continue
            x1, y1, x2, y2 = (v + rng.randint(-6, 6) for v in o["bbox_2d"])
            if x2 > x1 and y2 > y1:
                preds.append(_pred([x1, y1, x2, y2], o["desc"], round(rng.random(), 3)))
        if rng.random() < 0.5:  # a false positive
            preds.append(_pred([5, 5, 60, 90], "person", round(rng.random(), 3)))
        recs.append(_record(row, i, preds))
    return recs


def test_results_file_loads_in_pycocotools_with_the_same_ap(pristine, tmp_path):
    from coordbench.cli.main import main

    fx, preset = pristine
    rows = _rows(preset)
    run = make_run(tmp_path / "run", preset / "val.jsonl", _jittered_records(rows))
    out = tmp_path / "results.json"
    res = CliRunner().invoke(
        main,
        [
            "export",
            "coco-results",
            str(run),
            "--out",
            str(out),
            "--annotations",
            str(fx.annotation_path),
        ],
    )
    assert res.exit_code == 0, res.output
    assert f"for {len(rows)} images" in res.output
    results = json.loads(out.read_text())
    assert isinstance(results, list) and results == coco_results(run)
    ids = [r["image_id"] for r in rows]
    ref = _pycocotools_stats(fx.annotation_path, out, ids)
    assert 0.1 < ref[0] < 0.95  # a non-trivial score, not a degenerate 0 or 1
    for scorer in ("pycocotools", "faster"):
        got = eval_original_scale(run, fx.annotation_path, scorer=scorer, out_dir=tmp_path / scorer)
        assert list(got) == [f"bbox_{n}" for n in STATS]
        assert list(got.values()) == pytest.approx(ref, rel=0, abs=1e-12)
        written = json.loads((tmp_path / scorer / "metrics.json").read_text())
        assert written["metrics"] == got and written["images"] == len(rows)
        assert json.loads((tmp_path / scorer / "coco_results.json").read_text()) == results


def test_results_use_official_ids_and_original_boxes(pristine, tmp_path):
    fx, preset = pristine
    rows = _rows(preset)
    by_id = {r["image_id"]: (i, r) for i, r in enumerate(rows)}
    i, row = by_id[285]  # 640x480 -> 1024x768
    box = row["objects"][0]["bbox_2d"]
    assert (row["objects"][0]["desc"], row["objects"][0]["category_id"]) == ("toaster", 80)
    run = make_run(
        tmp_path / "run", preset / "val.norm.jsonl", [_record(row, i, [_pred(box, "toaster", 0.7)])]
    )
    (res,) = coco_results(run)
    assert res["image_id"] == 285 and res["category_id"] == 80 and res["score"] == 0.7
    x1, y1, x2, y2 = box
    assert res["bbox"] == [x1 * 0.625, y1 * 0.625, (x2 - x1) * 0.625, (y2 - y1) * 0.625]
    coco = json.loads(fx.annotation_path.read_text())
    ann = next(a for a in coco["annotations"] if a["id"] == row["objects"][0]["coco_ann_id"])
    assert res["bbox"] == pytest.approx(ann["bbox"], abs=0.5 * 0.625 * 2)  # preset rounding only


def test_perfect_predictor_scores_one_and_crowds_are_ignored(clean, tmp_path):
    fx, preset = clean
    rows = _rows(preset)
    coco = json.loads(fx.annotation_path.read_text())
    crowd = next(a for a in coco["annotations"] if a["iscrowd"] and a["image_id"] == 139)
    names = {c["id"]: c["name"] for c in coco["categories"]}

    def records(crowd_desc: str) -> list[dict]:
        recs = []
        for i, row in enumerate(rows):
            preds = [_pred(o["bbox_2d"], o["desc"], 0.5) for o in row["objects"]]
            if row["image_id"] == 139:  # the best-scored pred of the run sits on the crowd region
                box = _to_preset(crowd["bbox"], (640, 427), (row["width"], row["height"]))
                preds.append(_pred(box, crowd_desc, 0.99))
            recs.append(_record(row, i, preds))
        return recs

    run = make_run(
        tmp_path / "run", preset / "val.coord.jsonl", records(names[crowd["category_id"]])
    )
    for scorer in ("faster", "pycocotools"):
        m = eval_original_scale(run, fx.annotation_path, scorer=scorer, out_dir=tmp_path / scorer)
        for k in ("bbox_AP", "bbox_AP50", "bbox_AP75", "bbox_AR1", "bbox_AR10", "bbox_AR100"):
            assert m[k] == pytest.approx(1.0, abs=1e-12), (scorer, k)
    # the same box in a class with GT elsewhere is not a crowd match: a false positive
    other = next(
        o["desc"]
        for r in rows
        if r["image_id"] != 139
        for o in r["objects"]
        if o["desc"] != names[crowd["category_id"]]
    )
    run2 = make_run(tmp_path / "run2", preset / "val.coord.jsonl", records(other))
    assert eval_original_scale(run2, fx.annotation_path)["bbox_AP"] < 0.999


def _stub_encoder(alias: dict[str, tuple[str, float]]):
    """One-hot vectors per text; `alias[t] = (u, cos)` puts t at cosine `cos` from u."""
    vocab: dict[str, int] = {}

    def vec(t: str) -> np.ndarray:
        base, cos = alias.get(t, (t, 1.0))
        v = np.zeros(256, np.float32)
        v[vocab.setdefault(base, len(vocab))] = cos
        v[255] = np.sqrt(1 - cos * cos)  # a direction no text uses
        return v

    return lambda texts: np.stack([vec(t) for t in texts])


@pytest.mark.parametrize("threshold,mapped", [(0.5, True), (0.95, False)])
def test_descs_map_exactly_then_semantically_at_the_run_threshold(
    pristine, tmp_path, threshold, mapped
):
    fx, preset = pristine
    row = _rows(preset)[0]
    preds = [_pred([1, 1, 50, 50], d, 0.5) for d in ("dog", "puppy", "Dining_Table", "zzz")]
    run = make_run(
        tmp_path / "run",
        preset / "val.jsonl",
        [_record(row, 0, preds)],
        semantic_threshold=threshold,
    )
    exp = build_export(run, encoder=_stub_encoder({"puppy": ("dog", 0.9)}))
    # dog -> 18 exactly; "Dining_Table" normalises to a category (67); puppy at cosine 0.9
    assert [r["category_id"] for r in exp.results] == ([18, 18, 67] if mapped else [18, 67])
    assert exp.counters["semantic_mapped"] == 1 + mapped
    assert exp.counters["unknown_dropped"] == 2 - mapped
    assert exp.semantic_report["semantic_threshold"] == threshold


# --------------------------------------------------------------------------- refusals


def test_non_coco_data_is_refused_with_a_clear_message(tmp_path):
    from coordbench.cli.main import main

    data = tmp_path / "shapes" / "val.jsonl"
    data.parent.mkdir()
    row = {
        "images": ["images/0.png"],
        "width": 64,
        "height": 64,
        "image_id": 0,
        "objects": [{"bbox_2d": [4, 4, 20, 20], "desc": "circle"}],
    }
    data.write_text(json.dumps(row) + "\n")
    run = make_run(
        tmp_path / "run", data, [_record(row, 0, [_pred([4, 4, 20, 20], "circle", 0.9)])]
    )
    with pytest.raises(DataError, match=r"no `orig_width`/`orig_height`.*coordbench data coco"):
        coco_results(run)
    res = CliRunner().invoke(main, ["export", "coco-results", str(run)])
    assert res.exit_code == 2 and "coordbench data coco" in res.output
    assert "Traceback" not in res.output and not (run / "coco_results.json").exists()


def test_wrong_dataset_or_annotations_are_refused(pristine, tmp_path):
    fx, preset = pristine
    rows = _rows(preset)
    rec = _record(rows[0], 0, [])
    run = make_run(tmp_path / "run", preset / "val.jsonl", [{**rec, "width": rec["width"] + 32}])
    with pytest.raises(DataError, match="not the run's dataset"):
        coco_results(run)
    run = make_run(tmp_path / "run2", preset / "val.jsonl", [rec])
    coco = json.loads(fx.annotation_path.read_text())
    coco["images"] = [i for i in coco["images"] if i["id"] != rows[0]["image_id"]]
    other = tmp_path / "other.json"
    other.write_text(json.dumps(coco))
    with pytest.raises(DataError, match=f"image_id {rows[0]['image_id']} .*wrong annotations file"):
        eval_original_scale(run, other)
    write_results(tmp_path / "empty.json", coco_results(run))
    assert json.loads((tmp_path / "empty.json").read_text()) == []
