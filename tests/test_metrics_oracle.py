"""The upstream eval oracle (tests/oracle/eval_oracle_*): every metric, counter and eval-dir file.

The oracle was produced by running upstream CoordExp on 6 images / 10 GT / 11 scored preds; all
pred descs occur verbatim in their image's GT, so no semantic encoder is involved (and none may be
loaded: the stub encoder below fails the test if called).
"""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path

import pytest

from coordbench.metrics.scoring import EvalOptions, evaluate_records, read_records, write_eval_dir

ORACLE = Path(__file__).parent / "oracle"
EXPECTED = json.loads((ORACLE / "eval_oracle_expected.json").read_text())[
    "results_by_f1ish_pred_scope"
]
OUTPUTS = ORACLE / "eval_oracle_expected_outputs"


def no_encoder(texts):
    raise AssertionError(f"the semantic encoder must not be needed here, asked for {texts}")


@pytest.fixture(scope="module")
def records() -> list[dict]:
    recs, skipped = read_records(ORACLE / "eval_oracle_gt_vs_pred_scored.jsonl")
    assert skipped == 0 and len(recs) == 6
    return recs


def assert_close(got, want, path="$"):
    """Structural equality; floats to 1e-12; dict keys must match exactly."""
    if isinstance(want, dict):
        assert isinstance(got, dict), path
        assert list(got) == list(want) or set(got) == set(want), (
            f"{path}: keys {sorted(got)} != {sorted(want)}"
        )
        for k in want:
            assert_close(got[k], want[k], f"{path}.{k}")
    elif isinstance(want, list):
        assert isinstance(got, list) and len(got) == len(want), f"{path}: {got!r} != {want!r}"
        for i, (g, w) in enumerate(zip(got, want, strict=True)):
            assert_close(g, w, f"{path}[{i}]")
    elif isinstance(want, float) or isinstance(got, float):
        assert not isinstance(got, bool) and math.isclose(got, want, rel_tol=0, abs_tol=1e-12), (
            f"{path}: {got!r} != {want!r}"
        )
    else:
        assert got == want and type(got) is type(want), f"{path}: {got!r} != {want!r}"


@pytest.mark.parametrize("scorer", ["faster", "pycocotools"])
@pytest.mark.parametrize("scope", ["annotated", "all"])
def test_metrics_counters_per_class(records, scope, scorer):
    opts = EvalOptions(scorer=scorer, pred_scope=scope, semantic_threshold=0.6)
    res = evaluate_records(records, opts, encoder=no_encoder)
    exp = EXPECTED[scope]
    assert list(res.metrics) == list(exp["metrics"])  # 60 keys in upstream's order
    assert_close(res.metrics, exp["metrics"])
    assert res.counters == exp["counters"]
    assert_close(dict(res.per_class), exp["per_class"])
    assert [c["name"] for c in res.coco_gt["categories"]] == list(exp["categories"])
    assert res.metrics["bbox_AP"] == pytest.approx(0.552993870815653, abs=1e-12)


def _strip_ours(doc: dict, extra: set[str]) -> dict:
    assert extra <= set(doc), f"missing our extra keys {extra - set(doc)}"
    return {k: v for k, v in doc.items() if k not in extra}


def test_eval_dir_matches_upstream_files(records, tmp_path):
    res = evaluate_records(records, EvalOptions(semantic_threshold=0.6), encoder=no_encoder)
    write_eval_dir(res, tmp_path)
    names = {p.name for p in OUTPUTS.iterdir()}
    assert names <= {p.name for p in tmp_path.iterdir()}
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    ours = {
        "schema_version",
        "per_class_ap",
        "per_class_gt",
        "calibration",
        "diagnostics",
        "eval_options",
    }
    assert_close(_strip_ours(metrics, ours), json.loads((OUTPUTS / "metrics.json").read_text()))
    gt = json.loads((tmp_path / "coco_gt.json").read_text())
    assert gt["schema_version"] == 1
    assert_close(
        _strip_ours(gt, {"schema_version"}), json.loads((OUTPUTS / "coco_gt.json").read_text())
    )
    for name in ("coco_preds.json", "per_image.json"):
        assert_close(
            json.loads((tmp_path / name).read_text()),
            json.loads((OUTPUTS / name).read_text()),
            name,
        )
    for name in ("matches.jsonl", "matches@0.30.jsonl"):
        got = [json.loads(x) for x in (tmp_path / name).read_text().splitlines()]
        want = [json.loads(x) for x in (OUTPUTS / name).read_text().splitlines()]
        assert_close(got, want, name)
    with (
        open(tmp_path / "per_class.csv", newline="") as f,
        open(OUTPUTS / "per_class.csv", newline="") as g,
    ):
        rows, want = list(csv.reader(f)), list(csv.reader(g))
    assert rows[0] == want[0] == ["category", "AP"]
    assert [r[0] for r in rows] == [r[0] for r in want]
    assert all(
        abs(float(a[1]) - float(b[1])) <= 1e-12 for a, b in zip(rows[1:], want[1:], strict=True)
    )


def test_extras_are_plain_and_nan_free(records, tmp_path):
    res = evaluate_records(records, EvalOptions(semantic_threshold=0.6), encoder=no_encoder)
    write_eval_dir(res, tmp_path)
    doc = json.loads((tmp_path / "metrics.json").read_text())
    assert doc["per_class_ap"]["horse"] == pytest.approx(1.0)
    assert doc["per_class_gt"] == {
        "cat": 1,
        "dog": 1,
        "person": 4,
        "car": 1,
        "bus": 1,
        "bird": 1,
        "horse": 1,
    }
    cal = doc["calibration"]
    assert cal["n_preds"] == 11 and cal["n_tp"] == 7  # the 7 IoU>=0.5 same-class matches
    assert cal["auroc"] == pytest.approx(18.5 / 28)  # hand count: 18 TP>FP pairs + one tie of 0.7
    assert doc["diagnostics"]["empty_pred_rate"] == pytest.approx(1 / 6)
    assert doc["eval_options"]["semantic_threshold"] == 0.6
    assert "NaN" not in (tmp_path / "metrics.json").read_text()
