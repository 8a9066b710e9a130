"""End-to-end runner tests with a fake backend (no model): artifacts, schemas, resume, shards."""

from __future__ import annotations

import json

import pytest

from coordbench.config.run import RunConfig, Shard
from coordbench.pipeline.run import run
from coordbench.rundir import files as A
from tests.conftest import OracleBackend

RUN_FILES = [
    "run.json",
    "gt_vs_pred.jsonl",
    "pred_token_trace.jsonl",
    "pred_confidence.jsonl",
    "gt_vs_pred_scored.jsonl",
    "summary.json",
    "eval/metrics.json",
    "eval/per_class.csv",
    "eval/per_image.json",
    "eval/coco_gt.json",
    "eval/coco_preds.json",
]
DERIVED = [f for f in RUN_FILES if f != "run.json"]


def _cfg(shapes_dir, tmp_path, **kw):
    ckpt = tmp_path / "fake-ckpt"  # the oracle backend loads nothing; identity hashes these files
    ckpt.mkdir(exist_ok=True)
    (ckpt / "config.json").write_text('{"model_type": "qwen2_5_vl"}')
    return RunConfig(
        ckpt=str(ckpt),
        data=str(shapes_dir / "val.coord.jsonl"),
        preset="64",
        prompt="default_desc_first",
        out=str(tmp_path),
        name=kw.pop("name", "r"),
        batch_size=kw.pop("batch_size", 4),
        progress=False,
        **kw,
    )


def test_perfect_predictions_score_one_and_write_every_artifact(shapes_dir, tmp_path):
    summary = run(_cfg(shapes_dir, tmp_path), backend=OracleBackend(shapes_dir / "val.coord.jsonl"))
    rd = tmp_path / "r"
    for f in RUN_FILES:
        assert (rd / f).exists(), f
    assert summary["metrics"]["bbox_AP"] == pytest.approx(1.0)
    assert summary["metrics"]["f1ish@0.50_f1_full_micro"] == pytest.approx(1.0)
    assert summary["parse"]["counts"]["ok"] + summary["parse"]["counts"]["empty"] == 12
    head = A.read_json(rd / "run.json")
    assert head["schema_version"] == 1 and len(head["identity_hash"]) == 64
    recs, _ = A.read_jsonl(rd / "gt_vs_pred.jsonl")
    assert [r["index"] for r in recs] == list(range(12))
    assert list(recs[0])[:11] == [
        "image",
        "width",
        "height",
        "mode",
        "coord_mode",
        "gt",
        "pred",
        "raw_output_json",
        "raw_special_tokens",
        "raw_ends_with_im_end",
        "errors",
    ]


def test_metrics_equal_a_recomputation_with_pycocotools(shapes_dir, tmp_path):
    plan = {1: "drop", 2: "garbage", 5: "drop", 7: "truncate"}
    run(_cfg(shapes_dir, tmp_path), backend=OracleBackend(shapes_dir / "val.coord.jsonl", plan))
    rd = tmp_path / "r"
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    gt = COCO(str(rd / "eval/coco_gt.json"))
    preds = json.loads((rd / "eval/coco_preds.json").read_text())
    ev = COCOeval(gt, gt.loadRes(preds), "bbox")
    ev.evaluate(), ev.accumulate(), ev.summarize()
    metrics = json.loads((rd / "eval/metrics.json").read_text())["metrics"]
    assert metrics["bbox_AP"] == pytest.approx(ev.stats[0], abs=1e-12)
    assert metrics["bbox_AR100"] == pytest.approx(ev.stats[8], abs=1e-12)
    assert 0 < metrics["bbox_AP"] < 1


def test_batch_size_does_not_change_artifacts(shapes_dir, tmp_path):
    plan = {1: "drop", 2: "garbage"}
    run(
        _cfg(shapes_dir, tmp_path, name="a", batch_size=1),
        backend=OracleBackend(shapes_dir / "val.coord.jsonl", plan),
    )
    run(
        _cfg(shapes_dir, tmp_path, name="b", batch_size=5),
        backend=OracleBackend(shapes_dir / "val.coord.jsonl", plan),
    )
    for f in DERIVED:
        assert (tmp_path / "a" / f).read_bytes() == (tmp_path / "b" / f).read_bytes(), f


def test_resume_after_partial_run_is_byte_identical(shapes_dir, tmp_path):
    full = OracleBackend(shapes_dir / "val.coord.jsonl")
    run(_cfg(shapes_dir, tmp_path, name="full"), backend=full)

    class Crash(OracleBackend):
        def generate(self, batch, params):
            if len(self.calls) == 2:
                raise KeyboardInterrupt
            return super().generate(batch, params)

    with pytest.raises(KeyboardInterrupt):
        run(_cfg(shapes_dir, tmp_path, name="part"), backend=Crash(shapes_dir / "val.coord.jsonl"))
    rd = tmp_path / "part"
    with open(rd / "gt_vs_pred.jsonl", "ab") as f:  # a torn line from the kill
        f.write(b'{"image": "images/val/000')
    again = OracleBackend(shapes_dir / "val.coord.jsonl")
    run(_cfg(shapes_dir, tmp_path, name="part"), backend=again)
    assert sum(len(c) for c in again.calls) == 12 - 8  # two batches of 4 were kept
    for f in DERIVED:
        assert (tmp_path / "full" / f).read_bytes() == (rd / f).read_bytes(), f


def test_changed_identity_refuses_to_resume(shapes_dir, tmp_path):
    from coordbench.errors import ResumeError

    run(_cfg(shapes_dir, tmp_path), backend=OracleBackend(shapes_dir / "val.coord.jsonl"))
    with pytest.raises(ResumeError, match="temperature"):
        run(
            _cfg(shapes_dir, tmp_path, temperature=0.7),
            backend=OracleBackend(shapes_dir / "val.coord.jsonl"),
        )


def test_shards_merge_to_the_single_run(shapes_dir, tmp_path):
    from coordbench.pipeline.merge import merge_and_score

    run(
        _cfg(shapes_dir, tmp_path, name="single"),
        backend=OracleBackend(shapes_dir / "val.coord.jsonl", {3: "drop"}),
    )
    for i in range(3):
        cfg = _cfg(shapes_dir, tmp_path, name="sharded", shard=Shard(i, 3))
        run(cfg, backend=OracleBackend(shapes_dir / "val.coord.jsonl", {3: "drop"}))
    merge_and_score([tmp_path / "sharded"], None)
    for f in DERIVED:
        assert (tmp_path / "single" / f).read_bytes() == (tmp_path / "sharded" / f).read_bytes(), f
