"""report.html prints the evaluation's numbers: the headline table, the calibration table and the
reliability diagram's label equal eval/metrics.json and summary.json, and the figures are drawn
from the same calibration dict and the same COCOeval-matched detections (no second matcher)."""

from __future__ import annotations

import html
import json
import re

import pytest

from coordbench.config.run import EMBEDDED_CKPT, RunConfig
from coordbench.pipeline.run import run
from coordbench.report import html as report_html
from coordbench.report.page import fmt
from coordbench.report.plots import calibration_label
from coordbench.tasks import get_task

HEADLINE = get_task(None).headline_keys()


def _cell(text: str, key: str) -> str:
    """The value cell of the headline row of metric `key`."""
    m = re.search(rf"<td>{re.escape(key)}</td><td[^>]*>([^<]*)</td>", text)
    assert m, key
    return html.unescape(m.group(1))


def _kv(text: str, section: str, key: str) -> str:
    """The value of `key` in the key/value table that follows the `section` heading."""
    part = text[text.index(section) :]
    m = re.search(rf"<tr><th>{re.escape(key)}</th><td>([^<]*)</td></tr>", part)
    assert m, key
    return html.unescape(m.group(1))


@pytest.mark.slow
@pytest.mark.skipif(
    not (EMBEDDED_CKPT / "model.safetensors").exists(), reason="embedded model missing"
)
def test_report_prints_the_numbers_of_metrics_json_and_summary(tmp_path, monkeypatch):
    monkeypatch.setenv("COORDBENCH_BENCHMARK_LOG", str(tmp_path / "log.jsonl"))
    run(RunConfig(out=str(tmp_path), name="r", limit=8, progress=False))
    rd = tmp_path / "r"
    doc = json.loads((rd / "eval" / "metrics.json").read_text())
    summary = json.loads((rd / "summary.json").read_text())
    cal = doc["calibration"]
    assert cal["n_preds"] > 0 and cal["ece"] is not None
    # one calibration, one diagnostics: summary.json holds the evaluation's own dicts
    assert summary["calibration"] == cal
    assert summary["diagnostics"] == doc["diagnostics"]
    for _, key in HEADLINE:
        assert summary["metrics"][key] == doc["metrics"][key], key

    seen: dict = {}
    real_cal, real_pr = report_html.calibration_figure, report_html.pr_figure

    def cal_spy(calib):
        seen["calibration"] = calib
        return real_cal(calib)

    def pr_spy(det, iou):
        seen["detections"] = det
        return real_pr(det, iou)

    monkeypatch.setattr(report_html, "calibration_figure", cal_spy)
    monkeypatch.setattr(report_html, "pr_figure", pr_spy)
    text = report_html.write_run_report(rd, max_gallery=2).read_text(encoding="utf-8")

    # the figures are drawn from the evaluation: the calibration dict itself, and detections whose
    # count and TP count are the calibration's (one COCOeval matching at IoU 0.5)
    assert seen["calibration"] == cal
    det = seen["detections"]
    assert (len(det.scores), int(det.tp.sum())) == (cal["n_preds"], cal["n_tp"])
    assert sum(det.n_gt.values()) == sum(doc["per_class_gt"].values())

    label = calibration_label(cal)
    assert f"ECE {fmt(cal['ece'])} ({cal['n_preds']} preds)" in label
    assert html.escape(label) in text  # the diagram's title, printed under it as text
    assert "not a probability" in text and "TP rate by score quantile" in text
    keys = ("ece", "ece_precision_mapped", "n_preds", "n_tp", "brier", "mean_score", "tp_rate")
    for key in (*keys, "auroc", "spearman"):
        assert _kv(text, "Calibration (eval/metrics.json)", key) == fmt(cal[key]), key
    for _, key in HEADLINE:
        value = doc["metrics"][key]
        want = "n/a (-1: no GT in range)" if value == -1 else fmt(value)
        assert _cell(text, key) == want, key
    diag = doc["diagnostics"]
    for key in ("pred_total", "duplicate_preds", "score_tie_share", "empty_pred_rate"):
        assert _kv(text, "<h3>Diagnostics</h3>", key) == fmt(diag[key]), key
