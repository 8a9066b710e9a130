"""Golden numbers of the shipped embedded model on the shipped data (`coordbench run` defaults).

Any change that moves these numbers (model, tokenizer, prompt, decoding, parsing, scoring) shows
up here in review. Update them only together with a note on why the numbers moved.
"""

from __future__ import annotations

import pytest

from coordbench.config.run import EMBEDDED_CKPT, RunConfig
from coordbench.pipeline.run import run

FIRST_SAMPLE_IDS = [
    90,
    1,
    1700,
    82,
    788,
    508,
    90,
    1,
    67,
    3300,
    788,
    330,
    66,
    2128,
    497,
    330,
    65,
    2011,
    62,
    17,
    67,
    788,
    508,
    4212,
    11,
    220,
    4188,
    11,
    220,
    4448,
    11,
    220,
    4506,
    60,
    2137,
    314,
    1,
    67,
    3300,
    788,
]


@pytest.mark.slow
@pytest.mark.skipif(
    not (EMBEDDED_CKPT / "model.safetensors").exists(), reason="embedded model missing"
)
def test_embedded_default_run_is_pinned(tmp_path, monkeypatch):
    import json

    monkeypatch.setenv("COORDBENCH_BENCHMARK_LOG", str(tmp_path / "log.jsonl"))
    summary = run(RunConfig(out=str(tmp_path), name="golden", progress=False))
    m = summary["metrics"]
    assert m["bbox_AP"] == pytest.approx(0.8313502630193615, abs=1e-9)
    assert m["bbox_AP50"] == pytest.approx(1.0, abs=1e-9)
    assert m["f1ish@0.50_f1_loc_micro"] == pytest.approx(1.0, abs=1e-9)
    assert m["f1ish@0.50_pred_total"] == 110
    assert summary["parse"]["counts"] == {
        "ok": 58,
        "salvaged": 0,
        "empty": 6,
        "truncated": 0,
        "malformed": 0,
    }
    first = json.loads((tmp_path / "golden" / "pred_token_trace.jsonl").read_text().splitlines()[0])
    assert first["sample_id"] == "0" and first["token_ids"][:40] == FIRST_SAMPLE_IDS
