"""The printed summary and the report header: n/a for -1, integer counts, same names for
`eval FILE` and `eval DIR`, no raw None, sane empty histogram, diagnostics first."""

from __future__ import annotations

import re

import numpy as np
import pytest

from coordbench.metrics.summary import format_summary as _format_summary
from coordbench.metrics.summary import metric_lines as _metric_lines
from coordbench.pipeline.rescore import eval_path
from coordbench.pipeline.run import run
from coordbench.report.html import write_run_report
from coordbench.report.plots import calibration_figure, count_ylim
from coordbench.tasks import get_task
from tests.conftest import OracleBackend
from tests.test_runner_e2e import _cfg

TASK = get_task(None)
HEADLINE = TASK.headline_keys()


def format_summary(summary, prov=None):
    return _format_summary(summary, prov, headline=HEADLINE, counts=TASK.count_keys())


def metric_lines(metrics):
    return _metric_lines(metrics, HEADLINE, TASK.count_keys())


def _summary(**metrics):
    m = {key: 0.5 for _, key in HEADLINE}
    m.update(metrics)
    counts = {"ok": 1, "salvaged": 0, "empty": 0, "truncated": 0, "malformed": 0}
    return {"metrics": m, "parse": {"counts": counts}, "total_emitted": 1}


def test_minus_one_is_na_and_counts_are_integers():
    text = format_summary(_summary(bbox_APs=-1.0, **{"f1ish@0.50_pred_total": 110.0}))
    assert re.search(r"APs\s+n/a \(no GT in range\)", text)
    assert re.search(r"pred_total\s+110$", text, re.M)
    assert "-1.0000" not in text and "110.0000" not in text
    assert re.search(r"mAP\s+0\.5000", text)


def test_summary_without_generated_samples_prints_no_none():
    prov = {"wall_seconds": 3.0, "samples_per_s": None}
    assert "None" not in format_summary(_summary(), prov)


def test_eval_file_and_eval_dir_print_the_same_metric_names(shapes_dir, tmp_path):
    run(_cfg(shapes_dir, tmp_path), backend=OracleBackend(shapes_dir / "val.coord.jsonl"))
    rd = tmp_path / "r"
    as_dir = eval_path(rd, out=str(tmp_path / "o1"), scorer=None, semantic_threshold=None)
    as_file = eval_path(
        rd / "gt_vs_pred_scored.jsonl",
        out=str(tmp_path / "o2"),
        scorer=None,
        semantic_threshold=None,
    )

    def names(text):
        return [ln.split()[0] for ln in text.splitlines() if ln.startswith("  ") and ln.split()]

    expected = [label for label, _ in HEADLINE]
    assert names(as_dir)[: len(expected)] == expected
    assert names(as_file)[: len(expected)] == expected
    assert len(metric_lines({})) == len(expected)


def test_report_header_has_no_raw_none_and_diagnostics_first(shapes_dir, tmp_path):
    run(
        _cfg(shapes_dir, tmp_path),
        backend=OracleBackend(
            shapes_dir / "val.coord.jsonl", {0: "garbage", 1: "garbage", 2: "garbage"}
        ),
    )
    text = write_run_report(tmp_path / "r").read_text(encoding="utf-8")
    visible = re.sub(r"<[^>]+>", " ", text.split("<h2>")[0])
    assert "None" not in visible
    assert "(no limit)" in visible
    verdict = text.index('class="verdict"')
    assert verdict < text.index('<table class="kv"')  # before any table
    assert verdict < text.index("<h2>")


@pytest.mark.parametrize(
    ("count", "expected"),
    [
        (np.zeros(10), (0.0, 1.0)),
        (np.array([]), (0.0, 1.0)),
        (np.array([np.nan, 0.0]), (0.0, 1.0)),
        (np.array([0.0, 20.0, 5.0]), (0.0, 21.0)),
    ],
)
def test_count_axis_starts_at_zero_and_is_never_empty(count, expected):
    assert count_ylim(count) == pytest.approx(expected)


def test_calibration_figure_renders_with_every_bin_empty():
    bins = [{"lo": i / 10, "hi": (i + 1) / 10, "count": 0} for i in range(10)]
    png = calibration_figure({"bins": bins, "ece": None, "n_preds": 0, "iou_threshold": 0.5})
    assert png.startswith(b"\x89PNG")
