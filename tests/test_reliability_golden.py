"""Golden numbers: any change that moves them must show up here, in review.

1. `coordbench run` (subprocess, one thread) on the seeded tiny random Qwen2.5-VL built at test
   time: the first sample's token ids and logprobs, greedy and sampled, finish reasons, parse counts
   and metrics. A random model mostly loops on coord tokens, so its metrics are 0; the token ids pin
   the prompt, processor, model and sampler path.
2. The full scoring path on known model text (the ground-truth backend with dropped, garbage and
   truncated answers): COCO, F1 and calibration numbers, pinned to the last bit.

If a change is meant to move these numbers, update the constants in the same commit and say why.
"""

from __future__ import annotations

import math

import pytest

from coordbench.config.run import RunConfig
from coordbench.pipeline.run import run
from coordbench.rundir import files as A
from tests.conftest import OracleBackend
from tests.test_reliability_support import N_SAMPLES, reference_run

ZERO_METRICS = {
    k: 0.0
    for k in (
        "bbox_AP",
        "bbox_AP50",
        "bbox_AP75",
        "bbox_APs",
        "bbox_APm",
        "bbox_APl",
        "bbox_AR1",
        "bbox_AR10",
        "bbox_AR100",
        "f1ish@0.50_f1_full_micro",
        "f1ish@0.30_f1_full_micro",
        "f1ish@0.50_f1_loc_micro",
        "f1ish@0.30_f1_loc_micro",
        "f1ish@0.50_pred_total",
    )
}

TINY = {
    "greedy": {
        "token_ids": [1449, 1313, 1118, 209] + [1195] * 20,
        "logprobs_raw": [-3.7085278034210205, -3.702545642852783, -2.8334298133850098],
        "n_prompt_tokens": 1432,
    },
    "sampled": {
        "token_ids": [
            494,
            764,
            693,
            790,
            1188,
            15,
            831,
            357,
            556,
            261,
            946,
            1418,
            707,
            1308,
            1144,
            1435,
            1115,
            675,
            1446,
            497,
            1194,
            919,
            979,
            658,
        ],
        "logprobs_raw": [-5.16917610168457, -4.9905595779418945, -5.675397872924805],
        "n_prompt_tokens": 1432,
    },
}


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["greedy", "sampled"])
def test_tiny_random_checkpoint_run_is_pinned(tmp_path_factory, kind):
    rd = reference_run(tmp_path_factory, kind)
    traces, _ = A.read_jsonl(rd / A.TRACE)
    first, want = traces[0], TINY[kind]
    assert first["sample_id"] == "0"
    assert first["token_ids"] == want["token_ids"]
    assert first["token_logprobs_raw"][:3] == pytest.approx(want["logprobs_raw"], abs=1e-4)
    assert first["n_prompt_tokens"] == want["n_prompt_tokens"]
    assert [t["finish_reason"] for t in traces] == ["length"] * N_SAMPLES
    summary = A.read_json(rd / A.SUMMARY)
    assert summary["parse"]["counts"] == {
        "ok": 0,
        "salvaged": 0,
        "empty": 0,
        "truncated": N_SAMPLES,
        "malformed": 0,
    }
    assert summary["metrics"] == ZERO_METRICS
    assert summary["generation"]["temperature"] == (0.0 if kind == "greedy" else 0.7)


ORACLE_METRICS = {
    "bbox_AP": 0.7148514851485148,
    "bbox_AP50": 0.7148514851485148,
    "bbox_AP75": 0.7148514851485148,
    "bbox_APs": -1.0,
    "bbox_APm": 0.7029702970297029,
    "bbox_APl": 0.9999999999999998,  # pycocotools' perfect AP: tp / (tp + fp + eps)
    "bbox_AR1": 0.59,
    "bbox_AR10": 0.7133333333333333,
    "bbox_AR100": 0.7133333333333333,
    "f1ish@0.50_f1_full_micro": 0.8421052631578948,
    "f1ish@0.30_f1_full_micro": 0.8421052631578948,
    "f1ish@0.50_f1_loc_micro": 0.8421052631578948,
    "f1ish@0.30_f1_loc_micro": 0.8421052631578948,
    "f1ish@0.50_pred_total": 16.0,
}


def test_scoring_of_known_model_text_is_pinned(shapes_dir, tmp_path):
    ckpt = tmp_path / "ckpt"
    ckpt.mkdir()
    (ckpt / "config.json").write_text('{"model_type": "qwen2_5_vl"}')
    cfg = RunConfig(
        ckpt=str(ckpt),
        data=str(shapes_dir / "val.coord.jsonl"),
        preset="64",
        prompt="default_desc_first",
        out=str(tmp_path),
        name="g",
        batch_size=4,
        progress=False,
    )
    plan = {1: "drop", 2: "garbage", 5: "drop", 7: "truncate"}
    summary = run(cfg, backend=OracleBackend(shapes_dir / "val.coord.jsonl", plan, logprob=-0.3))
    assert summary["metrics"] == ORACLE_METRICS
    assert summary["parse"]["counts"] == {
        "ok": 9,
        "salvaged": 0,
        "empty": 1,
        "truncated": 1,
        "malformed": 1,
    }
    cal = summary["calibration"]
    assert (cal["n_preds"], cal["n_tp"]) == (16, 16)
    p = math.exp(-0.3)  # every token at logprob -0.3: every kept box scores exp(-0.3), all are TPs
    assert cal["mean_score"] == pytest.approx(p, abs=1e-15)
    assert cal["ece"] == pytest.approx(1 - p, abs=1e-15) and cal["brier"] == pytest.approx(
        (1 - p) ** 2, abs=1e-15
    )
