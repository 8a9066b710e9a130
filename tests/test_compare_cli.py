"""`coordbench compare` output formats (md / csv / json), CLI errors, import weight."""

from __future__ import annotations

import csv
import io
import json
import subprocess
import sys

import pytest
from click.testing import CliRunner

from coordbench.cli.main import main
from coordbench.compare.core import compare_runs
from coordbench.compare.format import render
from coordbench.compare.gates import evaluate_gates, parse_rule
from tests.test_compare_fixtures import drop_half, make_run, make_samples, noisy_predictor


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("cli")
    samples = make_samples(30)
    preds = noisy_predictor(samples, 1)
    a = make_run(root, "a", samples, preds)
    b = make_run(root, "b", samples, drop_half(preds), batch_size=2)  # batch size differs: a caveat
    return a, b


@pytest.fixture(scope="module")
def result(runs):
    return compare_runs(list(runs), n_boot=50)


def test_markdown_puts_caveats_above_the_tables(result):
    gates = evaluate_gates([parse_rule("mAP >= 0.99")], result)
    md = render(result, "md", gates)
    assert md.index("## Caveats") < md.index("## Runs") < md.index("## b vs a")
    assert "batch size differs (a 8, b 2)" in md
    f1 = result.delta("b", "F1@0.5")
    section = md[md.index("## b vs a") :]
    row = next(line for line in section.splitlines() if line.startswith("| F1@0.5 |"))
    assert row.startswith(
        f"| F1@0.5 | {f1.baseline:.4f} | {f1.value:.4f} | {f1.delta:+.4f} | {f1.delta_pct:+.1f} % |"
    )
    assert row.endswith("| worse |")
    assert "### Per-class AP" in md and "classes with only 1-2 GT boxes" in md
    assert "pitfall" not in md
    assert "### Per-image matched boxes (tp_full@0.50)" in md
    assert "## Gates: 0 of 1 met" in md and "| mAP >= 0.99 | b |" in md and "NOT MET" in md


def test_csv_is_a_long_table_with_the_same_numbers(result):
    rows = list(csv.DictReader(io.StringIO(render(result, "csv"))))
    sections = {r["section"] for r in rows}
    assert {"caveat", "run", "delta", "per_class", "per_image"} <= sections
    d = next(r for r in rows if r["section"] == "delta" and r["metric"] == "AP50")
    want = result.delta("b", "AP50")
    assert (
        float(d["delta"]) == want.delta
        and float(d["ci_low"]) == want.ci_low
        and d["verdict"] == want.verdict
    )
    assert d["run"] == "b" and d["baseline"] == "a" and d["n_samples"] == "30"


def test_json_round_trips_the_result(result):
    data = json.loads(render(result, "json"))
    assert data["baseline"] == "a" and data["n_boot"] == 50 and data["gates"] == []
    row = next(d for d in data["pairs"][0]["deltas"] if d["metric"] == "mAP")
    assert row["delta"] == pytest.approx(result.delta("b", "mAP").delta)
    assert data["caveats"] == result.caveats


def test_cli_compare_formats_and_out_file(runs, tmp_path):
    a, b = runs
    cli = CliRunner()
    r = cli.invoke(main, ["compare", str(a), str(b), "--n-boot", "20", "--no-log"])
    assert r.exit_code == 0, r.output
    assert r.stdout.startswith("# coordbench compare")
    out = tmp_path / "cmp.json"
    r = cli.invoke(
        main,
        [
            "compare",
            str(a),
            str(b),
            "--n-boot",
            "0",
            "--format",
            "json",
            "--out",
            str(out),
            "--baseline",
            "b",
            "--no-log",
        ],
    )
    assert r.exit_code == 0, r.output
    assert json.loads(out.read_text())["baseline"] == "b" and f"wrote {out}" in r.stderr


@pytest.mark.parametrize(
    "args", [["{a}", "{tmp}/nope"], ["{a}", "{tmp}"], ["{a}", "--baseline", "zzz"]]
)
def test_cli_bad_input_is_one_line_exit_2(runs, tmp_path, args):
    a, _ = runs
    argv = [x.format(a=a, tmp=tmp_path) for x in args]
    r = CliRunner().invoke(main, ["compare", *argv, "--no-log"])
    assert r.exit_code == 2
    assert r.stderr.startswith("error: ") and r.stderr.count("\n") == 1
    assert ("nope" in r.stderr) or (str(tmp_path) in r.stderr) or ("zzz" in r.stderr)


@pytest.mark.parametrize(
    "name,text", [("run.json", "[1, 2]"), ("summary.json", '"x"'), ("eval/metrics.json", "3")]
)
def test_cli_run_files_that_are_not_objects_are_named(runs, tmp_path, name, text):
    import shutil

    a, _ = runs
    bad = tmp_path / "bad"
    shutil.copytree(a, bad)
    (bad / name).parent.mkdir(exist_ok=True)
    (bad / name).write_text(text)
    r = CliRunner().invoke(main, ["compare", str(a), str(bad), "--n-boot", "0", "--no-log"])
    assert r.exit_code == 2, r.output
    assert (
        r.stderr
        == f"error: {bad / name}: expected a JSON object, found {type(json.loads(text)).__name__}\n"
    )


def test_hand_edited_fields_of_the_wrong_type_are_ignored(runs, tmp_path):
    import shutil

    a, _ = runs
    odd = tmp_path / "odd"
    shutil.copytree(a, odd)
    head = json.loads((odd / "run.json").read_text())
    (odd / "run.json").write_text(json.dumps({**head, "provenance": 5, "config": "x"}))
    r = CliRunner().invoke(main, ["compare", str(a), str(odd), "--n-boot", "0", "--no-log"])
    assert r.exit_code == 0, r.output
    assert "| mAP |" in r.stdout


def test_compare_and_log_are_registered_and_documented():
    r = CliRunner().invoke(main, ["--help"])
    assert "compare" in r.stdout and "log" in r.stdout
    for cmd in ("compare", "log"):
        r = CliRunner().invoke(main, [cmd, "-h"])
        assert r.exit_code == 0 and "Examples:" in r.stdout


def test_importing_compare_does_not_import_torch():
    code = (
        "import sys, coordbench.cli.main, coordbench.cli.compare, coordbench.compare.core, "
        "coordbench.compare.format, "
        "coordbench.compare.gates, coordbench.compare.benchlog; "
        "assert 'torch' not in sys.modules, 'torch imported'"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
