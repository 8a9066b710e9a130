"""Gates: TOML parsing with line-naming errors, evaluation, and `compare --gates` exit codes."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from coordbench.cli.main import main
from coordbench.compare.core import compare_runs
from coordbench.compare.gates import evaluate_gates, load_gates, parse_rule
from coordbench.errors import ConfigError
from tests.test_compare_fixtures import drop_half, make_run, make_samples, noisy_predictor

EXAMPLE = Path(__file__).resolve().parents[1] / "configs" / "gates" / "example.toml"


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("gruns")
    samples = make_samples(40)
    preds = noisy_predictor(samples, 1)
    return make_run(root, "a", samples, preds), make_run(root, "b", samples, drop_half(preds))


def _write(tmp_path, text: str) -> Path:
    p = tmp_path / "g.toml"
    p.write_text(text)
    return p


def test_rule_parsing_and_aliases():
    g = parse_rule("delta.AP_S >= -0.5")
    assert (g.field, g.metric, g.op, g.threshold) == ("delta", "APs", ">=", -0.5)
    g = parse_rule("parse.malformed_rate<=0.01")
    assert (g.field, g.metric, g.threshold) == ("value", "parse.malformed_rate", 0.01)
    assert parse_rule("bbox_ARs > 0").metric == "bbox_ARs"  # raw eval/metrics.json key
    assert parse_rule("delta_ci_low.F1@0.5 > 0").field == "delta_ci_low"


@pytest.mark.parametrize(
    ("rule", "msg"),
    [
        ("mAP >> 0.3", "expected `<metric> <op> <number>`"),
        ("mAP >= x1", "value must be a number"),
        ("mAP 0.3", "expected `<metric> <op> <number>`"),
        ("mAPP >= 0.3", "unknown metric 'mAPP'"),
        ("mAP >= nan", "must be finite"),
        ("delta.nope > 0", "unknown metric"),
    ],
)
def test_malformed_rules_are_one_line_errors_naming_the_rule(rule, msg):
    with pytest.raises(ConfigError, match=msg) as e:
        parse_rule(rule, "g.toml:3 (rule 1)")
    assert "g.toml:3 (rule 1)" in str(e.value) and "\n" not in str(e.value)


def test_example_file_loads():
    gates = load_gates(EXAMPLE)
    assert [g.rule for g in gates] == [
        "mAP >= 0.30",
        "delta.AP50 >= 0",
        "parse.malformed_rate <= 0.01",
        "delta_ci_high.F1@0.5 >= 0",
    ]


def test_malformed_files_name_file_and_line(tmp_path):
    p = _write(tmp_path, 'rules = [\n  "mAP >= 0.3",\n  "AP50 => 0.1",\n]\n')
    with pytest.raises(ConfigError, match=r"g\.toml:3 \(rule 2\): gate 'AP50 => 0.1'"):
        load_gates(p)
    p = _write(tmp_path, 'rules = ["mAP >= 0.3"]\nfoo = \n')
    with pytest.raises(ConfigError, match=r"g\.toml:2: invalid TOML: .*line 2"):
        load_gates(p)
    with pytest.raises(ConfigError, match=r"g\.toml: invalid TOML: Unclosed array"):
        load_gates(_write(tmp_path, 'rules = ["mAP >= 0.3"\n'))
    p = _write(
        tmp_path,
        '[[gate]]\nmetric = "mAP"\nop = ">="\nvalue = 0.3\n\n'
        '[[gate]]\nmetric = "AP50"\nvalue = 1\n',
    )
    with pytest.raises(
        ConfigError, match=r"g\.toml:6 \(\[\[gate\]\] 2\): a \[\[gate\]\] needs metric, op, value"
    ):
        load_gates(p)
    p = _write(tmp_path, 'gates = ["mAP >= 0.3"]\n')
    with pytest.raises(ConfigError, match="unknown key"):
        load_gates(p)
    with pytest.raises(ConfigError, match="no gates"):
        load_gates(_write(tmp_path, "rules = []\n"))
    with pytest.raises(ConfigError, match="cannot read gates file"):
        load_gates(tmp_path / "missing.toml")


def test_evaluation_values_and_verdicts(runs):
    a, b = runs
    res = compare_runs([a, b], n_boot=100)
    map_b, d_ap50 = res.value("b", "mAP"), res.delta("b", "AP50").delta
    gates = [
        parse_rule(f"mAP >= {map_b - 0.01}"),
        parse_rule(f"mAP > {map_b}"),
        parse_rule("delta.AP50 >= 0"),
        parse_rule("delta_ci_high.F1@0.5 < 0"),
        parse_rule("parse.malformed_rate <= 0.01"),
    ]
    out = evaluate_gates(gates, res)
    assert [(g.run, g.met) for g in out] == [
        ("b", True),
        ("b", False),
        ("b", False),
        ("b", True),
        ("b", True),
    ]
    assert out[0].value == map_b and out[2].value == d_ap50 < 0


def test_missing_values_fail_closed(runs, tmp_path):
    a, _ = runs
    one = compare_runs([a], n_boot=0)
    out = evaluate_gates([parse_rule("delta.mAP >= 0"), parse_rule("APs >= 0")], one)
    assert [g.met for g in out] == [False, False]
    assert "baseline has no delta" in out[0].detail and "missing" in out[1].detail
    g = load_gates(_write(tmp_path, '[[gate]]\nmetric = "mAP"\nop = ">"\nvalue = 0\nrun = "zzz"\n'))
    out = evaluate_gates(g, one)
    assert not out[0].met and "no run named 'zzz'" in out[0].detail
    g = load_gates(_write(tmp_path, '[[gate]]\nmetric = "mAP"\nop = ">"\nvalue = 0\nrun = "all"\n'))
    assert [r.run for r in evaluate_gates(g, compare_runs(list(runs), n_boot=0))] == ["a", "b"]


def test_cli_exit_codes(runs, tmp_path):
    a, b = runs
    cli = CliRunner()
    ok = _write(tmp_path, 'rules = ["mAP >= 0.01", "parse.malformed_rate <= 0.01"]\n')
    r = cli.invoke(
        main, ["compare", str(a), str(b), "--gates", str(ok), "--n-boot", "50", "--no-log"]
    )
    assert r.exit_code == 0, r.output
    assert "## Gates: 2 of 2 met" in r.stdout and "gates: 2 of 2 met" in r.stderr
    bad = tmp_path / "bad.toml"
    bad.write_text('rules = ["mAP >= 0.99", "delta.AP50 >= 0"]\n')
    r = cli.invoke(
        main, ["compare", str(a), str(b), "--gates", str(bad), "--n-boot", "50", "--no-log"]
    )
    assert r.exit_code == 1
    assert "| mAP >= 0.99 | b |" in r.stdout and "NOT MET" in r.stdout
    assert "NOT MET: mAP >= 0.99 on b" in r.stderr and "NOT MET: delta.AP50 >= 0 on b" in r.stderr
    broken = tmp_path / "broken.toml"
    broken.write_text('rules = ["mAP >= 0.3", "wat"]\n')
    r = cli.invoke(main, ["compare", str(a), str(b), "--gates", str(broken), "--no-log"])
    assert r.exit_code == 2
    assert r.stderr.strip().count("\n") == 0 and "broken.toml:1 (rule 2): gate 'wat'" in r.stderr


def test_raw_metric_gate_reaches_the_tables(runs, tmp_path):
    a, b = runs
    p = _write(tmp_path, 'rules = ["bbox_ARm >= 0"]\n')
    r = CliRunner().invoke(
        main,
        [
            "compare",
            str(a),
            str(b),
            "--gates",
            str(p),
            "--n-boot",
            "0",
            "--no-log",
            "--format",
            "csv",
        ],
    )
    assert r.exit_code == 0, r.output
    assert "run,a,,bbox_ARm," in r.stdout and "gate,b,,bbox_ARm >= 0," in r.stdout
