"""ODinW-13 as a benchmark group: `coordbench data odinw` on a GLIP-layout root built from the
shapes generator, `coordbench run --task odinw13` end to end (3 members) with replayed answers
whose mAP is computed by hand, resume and sharding member by member, each member's mAP equal to
pycocotools at the same maxDets, the per_class protocol, and compare of two group dirs."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from coordbench.config.presets import configs_dir
from coordbench.data.odinw import BY_NAME, convert_odinw
from coordbench.data.shapes import make_image
from coordbench.errors import ConfigError, DataError
from coordbench.metrics.odinw import Protocol, coco_at_max_dets, merge_per_class, stats_at_keys
from tests.test_reliability_support import run_cli

# three members, each with its own vocabulary (a subset of the shapes' classes)
VOCAB = {
    "Aquarium": ["circle", "square"],
    "pistols": ["triangle"],
    "PascalVOC": ["circle", "triangle", "square"],
}
N_IMAGES = 6


def _write_member(root: Path, member: str, seed0: int) -> list[dict]:
    m = BY_NAME[member]
    img_dir = root / m.folder / m.images
    img_dir.mkdir(parents=True, exist_ok=True)
    cats = [{"id": k + 1, "name": n} for k, n in enumerate(VOCAB[member])]
    images, anns = [], []
    for i in range(N_IMAGES):
        img, objects = make_image(seed0 + i)
        name = f"img_{i:03d}.jpg"
        img.save(img_dir / name, quality=90)
        images.append({"id": i + 1, "file_name": name, "width": 256, "height": 256})
        for o in objects:
            if o.desc not in VOCAB[member]:
                continue
            x0, y0, x1, y1 = o.bbox_px
            anns.append(
                {
                    "id": len(anns) + 1,
                    "image_id": i + 1,
                    "category_id": VOCAB[member].index(o.desc) + 1,
                    "bbox": [x0, y0, x1 - x0, y1 - y0],
                    "area": (x1 - x0) * (y1 - y0),
                    "iscrowd": 0,
                }
            )
    doc = {"images": images, "annotations": anns, "categories": cats}
    (img_dir / m.annotations).write_text(json.dumps(doc))
    return anns


@pytest.fixture(scope="module")
def odinw(tmp_path_factory):
    base = tmp_path_factory.mktemp("odinw")
    raw = base / "odinw"
    anns = {m: _write_member(raw, m, 100 * k) for k, m in enumerate(VOCAB)}
    built = base / "built"
    convert_odinw(raw, out_root=built, members=list(VOCAB), budget=64, progress=False)
    configs = base / "configs"  # the shipped presets with odinw13 cut to the three members
    shutil.copytree(configs_dir(), configs)
    toml = (configs / "task" / "odinw13.toml").read_text()
    head, _, rest = toml.partition("members = [")
    _, _, tail = rest.partition("]")
    members = "members = [" + ", ".join(f'"{m}"' for m in VOCAB) + "]"
    (configs / "task" / "odinw13.toml").write_text(head + members + tail)
    return raw, built, configs, anns


def test_data_odinw_keeps_each_members_vocabulary_and_images(odinw):
    raw, built, _, anns = odinw
    for member, vocab in VOCAB.items():
        cats = json.loads((built / member / "categories.json").read_text())
        assert [c["name"] for c in cats] == vocab
        rows = [json.loads(x) for x in (built / member / "test.jsonl").read_text().splitlines()]
        assert len(rows) == N_IMAGES  # images without boxes are kept
        assert sum(len(r["objects"]) for r in rows) == len(anns[member])
        assert all(r["metadata"]["dataset"] == member for r in rows)


def test_data_odinw_names_missing_members(tmp_path):
    with pytest.raises(DataError, match="Aquarium"):
        convert_odinw(tmp_path, out_root=tmp_path / "out", members=["Aquarium"], progress=False)
    with pytest.raises(DataError, match="unknown ODinW member"):
        convert_odinw(tmp_path, out_root=tmp_path / "out", members=["Nope"], progress=False)


def _trace(sid: str, boxes: list[tuple[list[int], str]]) -> dict:
    text = "```json\n" + json.dumps([{"bbox_2d": b, "label": lab} for b, lab in boxes]) + "\n```"
    return {
        "sample_id": sid,
        "generated_token_text": [text],
        "token_logprobs": [-0.1],
        "token_logprobs_raw": [-0.1],
        "token_ids": [1],
        "finish_reason": "stop",
        "text": text,
        "n_prompt_tokens": 5,
    }


def _gt(member: str, built: Path) -> dict[int, list[tuple[list[int], str]]]:
    rows = [json.loads(x) for x in (built / member / "test.jsonl").read_text().splitlines()]
    return {
        r["image_id"]: [([int(v) for v in o["bbox_2d"]], o["desc"]) for o in r["objects"]]
        for r in rows
    }


def _replay(tmp: Path, built: Path, keep) -> tuple[Path, dict[str, float]]:
    """Answers that give each GT box exactly on the images `keep(member, image_id)` picks and
    nothing elsewhere; with exact boxes AP_c = (floor(100 r_c) + 1) / 101 (the 101-point
    interpolated precision is 1 up to the recall r_c and 0 after), averaged over classes."""
    expected = {}
    for member in VOCAB:
        gt = _gt(member, built)
        (tmp / member).mkdir(parents=True)
        lines = [
            _trace(str(i), boxes if keep(member, i) else []) for i, boxes in sorted(gt.items())
        ]
        (tmp / member / "pred_token_trace.jsonl").write_text(
            "".join(json.dumps(t) + "\n" for t in lines)
        )
        aps = []
        for name in VOCAB[member]:
            total = sum(1 for bs in gt.values() for _, d in bs if d == name)
            found = sum(1 for i, bs in gt.items() for _, d in bs if d == name and keep(member, i))
            if total:
                aps.append((np.floor(100 * found / total + 1e-9) + 1) / 101 if found else 0.0)
        expected[member] = float(np.mean(aps))
    return tmp, expected


def _args(built: Path, replay: Path, out: Path, name: str, *extra: str) -> list[str]:
    return [
        "run",
        "--task",
        "odinw13",
        "--odinw-root",
        str(built),
        "--preset",
        "64",
        "--prompt",
        "qwen25_pixel",
        "--backend",
        f"replay:{replay}",
        "--out",
        str(out),
        "--name",
        name,
        "--no-progress",
        *extra,
    ]


def test_run_odinw13_group_end_to_end_resume_shard_and_compare(odinw, tmp_path):
    _, built, configs, _ = odinw
    env = {"COORDBENCH_CONFIGS": str(configs)}
    replay, expected = _replay(tmp_path / "half", built, lambda m, i: i % 3 != 0)
    out = tmp_path / "runs"
    args = _args(built, replay, out, "g")
    # shard 0/2 of the group: members 0 and 2 only; no mean yet
    p = run_cli([*args, "--shard", "0/2"], **env)
    assert p.returncode == 0, p.stderr
    gdir = out / "g"
    summary = json.loads((gdir / "group_summary.json").read_text())
    assert [r["member"] for r in summary["members"]] == ["Aquarium", "PascalVOC"]
    assert summary["missing"] == ["pistols"] and summary["mean"] is None
    done = (gdir / "Aquarium" / "gt_vs_pred.jsonl").stat().st_mtime_ns
    # the whole group: the finished members are left as they are, pistols runs
    p = run_cli(args, **env)
    assert p.returncode == 0, p.stderr
    assert (gdir / "Aquarium" / "gt_vs_pred.jsonl").stat().st_mtime_ns == done
    summary = json.loads((gdir / "group_summary.json").read_text())
    got = {r["member"]: r["mAP"] for r in summary["members"]}
    assert got == pytest.approx(expected)
    assert summary["mean"]["mAP"] == pytest.approx(np.mean(list(expected.values())))
    assert "mean (unweighted)" in p.stdout
    group = json.loads((gdir / "group.json").read_text())
    assert group["protocol"] == {
        "prompt_mode": "all_classes",
        "score": "constant",
        "max_dets": [100, 300, 1000],
    }
    for member in VOCAB:
        head = json.loads((gdir / member / "run.json").read_text())
        assert head["identity"]["task"] == "odinw13"
        assert head["identity"]["protocol"] == group["protocol"]
        # exactness: the member's mAP equals pycocotools on its eval files at the same maxDets
        assert _pycocotools_ap(gdir / member / "eval") == pytest.approx(got[member], abs=1e-12)
    # a protocol change is another identity: refused for this group dir, naming the protocol
    p = run_cli([*args, "--max-dets", "1,10,100"], **env)
    assert p.returncode == 2 and "protocol" in p.stderr
    # a second group with every box found; compare gives per-member and mean deltas with CIs
    replay2, expected2 = _replay(tmp_path / "all", built, lambda m, i: True)
    p = run_cli(_args(built, replay2, out, "g2"), **env)
    assert p.returncode == 0, p.stderr
    assert all(v == pytest.approx(1.0) for v in expected2.values())
    cmp = run_cli(["compare", str(gdir), str(out / "g2"), "--format", "json", "--n-boot", "200"])
    assert cmp.returncode == 0, cmp.stderr
    doc = json.loads(cmp.stdout)
    deltas = {r["member"]: r["mAP"]["delta"] for r in doc["members"]}
    assert deltas == pytest.approx({m: 1.0 - v for m, v in expected.items()})
    mean = doc["mean"]["mAP"]
    assert mean["delta"] == pytest.approx(1.0 - np.mean(list(expected.values())))
    assert mean["ci_low"] is not None and mean["ci_low"] <= mean["delta"] <= mean["ci_high"]


def _pycocotools_ap(eval_dir: Path, max_dets=(100, 300, 1000)) -> float:
    if not json.loads((eval_dir / "coco_preds.json").read_text()):
        return 0.0  # upstream's rule: no detection scores 0 (pycocotools cannot load none)
    return _pycocotools_stats(eval_dir, max_dets)[0]


def _pycocotools_stats(eval_dir: Path, max_dets) -> list[float]:
    import contextlib
    import io

    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    with contextlib.redirect_stdout(io.StringIO()):
        gt = COCO()
        gt.dataset = json.loads((eval_dir / "coco_gt.json").read_text())
        gt.createIndex()
        preds = json.loads((eval_dir / "coco_preds.json").read_text())
        ev = COCOeval(gt, gt.loadRes(preds), "bbox")
        ev.params.maxDets = list(max_dets)
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
    return [float(v) for v in ev.stats]


def test_per_class_protocol_asks_one_class_per_prompt_and_merges(odinw, tmp_path):
    """per_class: one sample per (image, category) naming that category alone; the answers'
    labels are replaced by the asked category, merged per image: exact boxes give AP 1."""
    _, built, configs, _ = odinw
    env = {"COORDBENCH_CONFIGS": str(configs)}
    replay = tmp_path / "pc"
    for member in VOCAB:
        gt = _gt(member, built)
        (replay / member).mkdir(parents=True)
        lines = [
            _trace(f"{i}#c{k}", [(b, "whatever") for b, d in boxes if d == name])
            for i, boxes in sorted(gt.items())
            for k, name in enumerate(VOCAB[member])
        ]
        (replay / member / "pred_token_trace.jsonl").write_text(
            "".join(json.dumps(t) + "\n" for t in lines)
        )
    out = tmp_path / "runs"
    p = run_cli(_args(built, replay, out, "pc", "--prompt-mode", "per_class"), **env)
    assert p.returncode == 0, p.stderr
    summary = json.loads((out / "pc" / "group_summary.json").read_text())
    assert all(r["mAP"] == pytest.approx(1.0) for r in summary["members"])
    recs = [
        json.loads(x)
        for x in (out / "pc" / "PascalVOC" / "gt_vs_pred.jsonl").read_text().splitlines()
    ]
    assert len(recs) == N_IMAGES * 3
    assert [r["query_category"] for r in recs[:3]] == VOCAB["PascalVOC"]
    head = json.loads((out / "pc" / "PascalVOC" / "run.json").read_text())
    assert head["identity"]["protocol"]["prompt_mode"] == "per_class"


def _random_set(rng: np.random.Generator, n_img: int = 4, n_det: int = 280):
    cats = [{"id": 1, "name": "a"}, {"id": 2, "name": "b"}]
    images = [{"id": i + 1, "width": 400, "height": 400} for i in range(n_img)]
    anns, preds = [], []
    for im in images:
        for _ in range(30):
            x, y = rng.uniform(0, 300, 2)
            w, h = rng.uniform(5, 90, 2)
            anns.append(
                {
                    "id": len(anns) + 1,
                    "image_id": im["id"],
                    "category_id": int(rng.integers(1, 3)),
                    "bbox": [x, y, w, h],
                    "area": w * h,
                    "iscrowd": 0,
                }
            )
        for _ in range(n_det):
            a = anns[int(rng.integers(len(anns)))]
            jit = rng.normal(0, 6, 4)
            preds.append(
                {
                    "image_id": im["id"],
                    "category_id": int(rng.integers(1, 3)),
                    "bbox": [float(v) for v in np.abs(np.array(a["bbox"]) + jit)],
                    "score": float(rng.choice([0.3, 0.5, 0.9, 1.0])),  # ties
                }
            )
    return {"images": images, "annotations": anns, "categories": cats}, preds


@pytest.mark.parametrize("scorer", ["pycocotools", "faster"])
def test_stats_at_max_dets_equal_pycocotools(tmp_path, scorer):
    """~140 detections per (image, class): all 12 stats equal pycocotools' `summarize` at
    each maxDets (its positions: AP at the entry 100, AP50.. at maxDets[2]); the cap
    changes AP50."""
    gt, preds = _random_set(np.random.default_rng(3))
    (tmp_path / "coco_gt.json").write_text(json.dumps(gt))
    (tmp_path / "coco_preds.json").write_text(json.dumps(preds))
    ap50 = set()
    for md in ((1, 10, 100), (100, 300, 1000), (10, 50, 120)):
        stats, _ = coco_at_max_dets(gt, preds, scorer, md)
        ref = _pycocotools_stats(tmp_path, md)
        assert [stats[k] for k in stats_at_keys()] == pytest.approx(ref, abs=1e-12)
        ap50.add(round(stats["odinw_AP50"], 9))
    assert len(ap50) == 3  # the option is not a no-op


def test_merge_per_class_labels_boxes_with_the_asked_class():
    recs = [
        {
            "image": "a.jpg",
            "image_id": 1,
            "sample_id": "1#c0",
            "gt": [{"desc": "x"}],
            "query_category": "x",
            "pred": [{"desc": "cat", "bbox_2d": [0, 0, 1, 1]}],
        },
        {
            "image": "a.jpg",
            "image_id": 1,
            "sample_id": "1#c1",
            "gt": [{"desc": "x"}],
            "query_category": "y",
            "pred": [{"desc": "x", "bbox_2d": [0, 0, 2, 2]}],
        },
    ]
    (m,) = merge_per_class(recs)
    assert m["sample_id"] == "1" and "query_category" not in m
    assert [p["desc"] for p in m["pred"]] == ["x", "y"]
    assert m["gt"] == [{"desc": "x"}]


def test_protocol_options_are_validated():
    with pytest.raises(ConfigError, match="prompt-mode"):
        Protocol(prompt_mode="some")
    with pytest.raises(ConfigError, match="max-dets"):
        Protocol(max_dets=(300, 100, 1000))
