"""Compare output for a paper: tidy CSV (pandas if installed, else csv), LaTeX, single run vs a
seed group's mean, and no upstream jargon in user output."""

from __future__ import annotations

import csv
import io
import math
import re

import numpy as np
import pytest

from coordbench.compare.core import compare_runs
from coordbench.compare.format import CSV_COLUMNS, render
from coordbench.compare.groups import NOISE_Z
from tests.test_compare import _own
from tests.test_compare_fixtures import make_run, make_samples, noisy_predictor

NUMERIC = (
    "value",
    "baseline_value",
    "delta",
    "delta_pct",
    "ci_low",
    "ci_high",
    "std",
    "z",
    "p_value",
    "n_samples",
    "n_runs",
    "n_gt",
    "pred",
    "baseline_pred",
)


@pytest.fixture(scope="module")
def seeded(tmp_path_factory):
    """A greedy run `greedy_base` (baseline) and a 3-seed group `sampled_s0..2`."""
    root = tmp_path_factory.mktemp("paper")
    samples = make_samples(30)
    paths = [
        make_run(
            root,
            "greedy_base",
            samples,
            noisy_predictor(samples, 99, keep=0.8),
            identity={"seed": 0, "decode": {"temperature": 0.0}},
        )
    ]
    for seed in range(3):
        paths.append(
            make_run(
                root,
                f"sampled_s{seed}",
                samples,
                noisy_predictor(samples, seed, keep=0.7),
                identity={"seed": seed, "decode": {"temperature": 0.7}},
            )
        )
    return paths, compare_runs(paths, n_boot=50)


def _read(text: str) -> list[dict]:
    try:
        import pandas as pd
    except ImportError:
        return list(csv.DictReader(io.StringIO(text)))
    df = pd.read_csv(io.StringIO(text), keep_default_na=True)
    assert tuple(df.columns) == CSV_COLUMNS
    for col in NUMERIC:  # one kind of value per column: every numeric column parses as numbers
        assert df[col].dtype.kind in "fi", col
    return [
        {k: ("" if isinstance(v, float) and math.isnan(v) else str(v)) for k, v in r.items()}
        for r in df.astype(object).to_dict("records")
    ]


def test_csv_is_tidy_fixed_columns_one_kind_per_column(seeded):
    _, res = seeded
    text = render(res, "csv")
    assert tuple(next(csv.reader(io.StringIO(text)))) == CSV_COLUMNS
    rows = _read(text)
    for r in rows:
        for col in NUMERIC:
            if r[col] != "":
                float(r[col])  # never a path, a "tp / pred" or "std 0.1; members" string
    keys = [
        (r["section"], r["run"], r["baseline"], r["metric"], r["category"], r["sample"])
        for r in rows
        if r["section"] not in ("caveat", "gate")
    ]
    assert len(keys) == len(set(keys))  # one row per (section, run, metric)
    sections = {r["section"] for r in rows}
    assert {"run", "delta", "group", "single_vs_group"} <= sections
    grp = next(r for r in rows if r["section"] == "group" and r["metric"] == "F1@0.5")
    g = res.groups[0]
    assert float(grp["std"]) == pytest.approx(g.std["F1@0.5"]) and grp["n_runs"] in ("3", "3.0")
    assert grp["members"] == " ".join(g.members)
    img = [r for r in rows if r["section"] == "per_image"]
    assert img and all(r["image"] and r["sample"] for r in img)


def test_single_run_vs_group_mean_uses_the_group_std(seeded):
    paths, res = seeded
    assert [g.members for g in res.groups] == [["sampled_s0", "sampled_s1", "sampled_s2"]]
    row = next(d for d in res.single_vs_group if d.run == "greedy_base" and d.metric == "F1@0.5")
    vals = [_own(p, "F1@0.5") for p in paths[1:]]
    mean, std = float(np.mean(vals)), float(np.std(vals, ddof=1))
    own = _own(paths[0], "F1@0.5")
    assert row.group_mean == pytest.approx(mean) and row.group_std == pytest.approx(std)
    assert row.delta == pytest.approx(own - mean) and row.z == pytest.approx((own - mean) / std)
    want = "within noise" if abs(row.z) <= NOISE_Z else ("better" if own > mean else "worse")
    assert row.verdict == want
    md = render(res, "md")
    assert "### greedy_base vs the mean of sampled [seed ×3]" in md
    assert not any(d.run.startswith("sampled") for d in res.single_vs_group)


def test_latex_is_booktabs_with_delta_ci_and_best_in_bold(seeded):
    _, res = seeded
    tex = render(res, "latex")
    for cmd in (r"\toprule", r"\midrule", r"\bottomrule", r"\begin{tabular}{lrrrrrr}"):
        assert cmd in tex
    assert r"greedy\_base (baseline)" in tex and "sampled\\_s1" in tex
    lines = [ln for ln in tex.splitlines() if ln.endswith(r"\\") and "&" in ln]
    header, body = lines[0], lines[1:]
    metrics = [c.strip(" \\") for c in header.split("&")[1:]]
    assert metrics[:2] == ["mAP", "AP50"] and len(body) == 4
    for j, m in enumerate(metrics):
        vals = {r.name: r.values[m] for r in res.runs}
        best = max(vals.values())
        for line in body:
            name = line.split("&")[0].strip().split(" ")[0].replace("\\_", "_")
            cell = line.split("&")[1 + j]
            assert (r"\textbf{" in cell) == (vals[name] == best), (m, name, cell)
    d = res.delta("sampled_s1", "mAP")
    row = next(ln for ln in body if ln.startswith("sampled\\_s1"))
    assert re.search(r"\$\\Delta\$ [+-]\d\.\d{4} \[[+-]\d\.\d{4}, [+-]\d\.\d{4}\]", row)
    assert f"{d.delta:+.4f}" in row


@pytest.mark.parametrize("fmt", ["md", "csv", "json", "latex"])
def test_no_upstream_jargon_in_user_output(seeded, fmt):
    _, res = seeded
    assert "pitfall" not in render(res, fmt).lower()
