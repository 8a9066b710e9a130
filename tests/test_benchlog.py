"""The append-only benchmark log: entries, byte-for-byte append-only, torn lines,
`coordbench log`."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from coordbench.cli.main import main
from coordbench.compare.benchlog import (
    ENV_VAR,
    append_compare_entry,
    append_run_entry,
    default_log_path,
    read_log,
    render_log,
)
from coordbench.compare.core import compare_runs
from coordbench.errors import ArtifactError
from coordbench.rundir import files as A
from tests.test_compare_fixtures import drop_half, make_run, make_samples, noisy_predictor


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("out") / "runs"
    samples = make_samples(30)
    preds = noisy_predictor(samples, 1)
    return make_run(root, "a", samples, preds), make_run(root, "b", samples, drop_half(preds))


def test_run_entry_carries_identity_metrics_and_run_dir(runs, tmp_path):
    a, _ = runs
    log = tmp_path / "log.jsonl"
    summary = A.read_json(a / A.SUMMARY)
    assert append_run_entry(a, summary, log) == log
    (entry,), skipped = read_log(log)
    assert skipped == 0
    assert entry["kind"] == "run" and entry["run_dir"] == str(a) and entry["name"] == "a"
    assert entry["identity_hash"] == A.read_json(a / A.RUN_JSON)["identity_hash"]
    assert entry["metrics"]["mAP"] == summary["metrics"]["bbox_AP"]
    assert entry["metrics"]["F1@0.5"] == summary["metrics"]["f1ish@0.50_f1_full_micro"]
    assert entry["metrics"]["parse.malformed_rate"] == 0.0
    assert (
        entry["n_samples"] == 30
        and entry["wall_seconds"] == 10.0
        and entry["timestamp"].endswith("+00:00")
    )


def test_appends_never_change_existing_bytes(runs, tmp_path):
    a, b = runs
    log = tmp_path / "log.jsonl"
    append_run_entry(a, A.read_json(a / A.SUMMARY), log)
    before = log.read_bytes()
    append_run_entry(b, A.read_json(b / A.SUMMARY), log)
    res = compare_runs([a, b], n_boot=50)
    append_compare_entry(res, None, log)
    after = log.read_bytes()
    assert after.startswith(before) and after.count(b"\n") == 3
    entries, _ = read_log(log)
    assert [e["kind"] for e in entries] == ["run", "run", "compare"]
    cmp = entries[2]
    assert cmp["baseline"] == "a" and [r["name"] for r in cmp["runs"]] == ["a", "b"]
    assert cmp["deltas"]["b"]["F1@0.5"]["delta"] == pytest.approx(res.delta("b", "F1@0.5").delta)
    assert cmp["deltas"]["b"]["F1@0.5"]["verdict"] == "worse"


def test_a_torn_last_line_is_skipped_and_never_glued_to(runs, tmp_path):
    a, _ = runs
    log = tmp_path / "log.jsonl"
    append_run_entry(a, A.read_json(a / A.SUMMARY), log)
    with open(log, "ab") as f:
        f.write(b'{"kind": "run", "name": "tor')  # a writer killed mid-line
    torn = log.read_bytes()
    entries, skipped = read_log(log)
    assert len(entries) == 1 and skipped == 1
    append_run_entry(a, A.read_json(a / A.SUMMARY), log)
    assert log.read_bytes().startswith(torn)
    entries, skipped = read_log(log)
    assert len(entries) == 2 and skipped == 1  # the new entry starts on its own line


def test_default_path_is_next_to_the_runs_folder(runs, tmp_path, monkeypatch):
    a, _ = runs
    monkeypatch.delenv(ENV_VAR, raising=False)
    assert default_log_path(a) == a.parent.parent / "benchmark_log.jsonl"  # out/runs/a -> out/
    assert default_log_path(tmp_path / "x" / "r") == tmp_path / "x" / "benchmark_log.jsonl"
    assert str(default_log_path()) == "output/benchmark_log.jsonl"
    monkeypatch.setenv(ENV_VAR, str(tmp_path / "env.jsonl"))
    assert default_log_path(a) == tmp_path / "env.jsonl"


def test_unwritable_log_warns_instead_of_failing_a_finished_run(runs, tmp_path, caplog):
    a, _ = runs
    blocker = tmp_path / "file"
    blocker.write_text("x")
    assert append_run_entry(a, A.read_json(a / A.SUMMARY), blocker / "log.jsonl") is None
    assert "cannot open benchmark log" in caplog.text


def test_compare_cli_logs_gates_and_log_cli_renders(runs, tmp_path):
    a, b = runs
    log = tmp_path / "log.jsonl"
    gates = tmp_path / "g.toml"
    gates.write_text('rules = ["mAP >= 0.99"]\n')
    cli = CliRunner()
    r = cli.invoke(
        main,
        ["compare", str(a), str(b), "--n-boot", "50", "--gates", str(gates), "--log", str(log)],
    )
    assert r.exit_code == 1
    r = cli.invoke(main, ["compare", str(a), str(b), "--n-boot", "0", "--no-log"])
    assert r.exit_code == 0
    (entry,), _ = read_log(log)  # --no-log appended nothing
    assert entry["gates_met"] is False and entry["gates"][0]["rule"] == "mAP >= 0.99"
    append_run_entry(a, A.read_json(a / A.SUMMARY), log)
    r = cli.invoke(main, ["log", "--path", str(log)])
    assert r.exit_code == 0, r.output
    lines = r.stdout.splitlines()
    assert lines[0].startswith("| time (UTC) | kind | run |") and len(lines) == 4
    assert "| compare | b vs a |" in lines[2] and "0/1 met; NOT MET: mAP >= 0.99 (b)" in lines[2]
    assert "Δ -" in lines[2] and "worse" in lines[2]
    assert f"| run | a | {entry['runs'][0]['identity_hash'][:12]} | 30 |" in lines[3]
    r = cli.invoke(main, ["log", "--path", str(log), "--format", "json", "--last", "1"])
    assert [e["kind"] for e in json.loads(r.stdout)] == ["run"]


def test_log_cli_on_a_missing_file_is_one_line(tmp_path):
    r = CliRunner().invoke(main, ["log", "--path", str(tmp_path / "none.jsonl")])
    assert r.exit_code == 2 and r.stderr.startswith("error: benchmark log not found:")
    with pytest.raises(ArtifactError):
        read_log(tmp_path / "none.jsonl")


def test_render_reports_skipped_lines():
    assert "2 unreadable line(s) skipped" in render_log([], "md", skipped=2)


def test_identical_compare_is_logged_once_and_a_different_one_again(runs, tmp_path):
    a, b = runs
    log = tmp_path / "log.jsonl"
    for _ in range(2):
        append_compare_entry(compare_runs([a, b], n_boot=50, seed=0), None, log)
    assert len(read_log(log)[0]) == 1
    append_compare_entry(compare_runs([a, b], n_boot=50, seed=1), None, log)  # other CIs
    append_compare_entry(compare_runs([b, a], n_boot=50, seed=0), None, log)  # other baseline
    assert len(read_log(log)[0]) == 3


def test_rescore_entry_kind(runs, tmp_path):
    a, _ = runs
    log = tmp_path / "log.jsonl"
    append_run_entry(a, A.read_json(a / A.SUMMARY), log, kind="rescore")
    (entry,), _ = read_log(log)
    assert entry["kind"] == "rescore"


def _entries_at(log, stamps):
    log.write_text(
        "".join(
            json.dumps({"kind": "run", "name": f"r{i}", "timestamp": t, "metrics": {}}) + "\n"
            for i, t in enumerate(stamps)
        )
    )


def test_log_since_last_and_formats(tmp_path):
    log = tmp_path / "log.jsonl"
    _entries_at(
        log,
        ["2026-01-01T10:00:00+00:00", "2026-01-15T00:00:00+00:00", "2026-02-01T09:30:00+00:00"],
    )
    cli = CliRunner()

    def names(*args):
        r = cli.invoke(main, ["log", "--path", str(log), "--format", "json", *args])
        assert r.exit_code == 0, r.output
        return [e["name"] for e in json.loads(r.stdout)]

    assert names("--since", "2026-01-15") == ["r1", "r2"]
    assert names("--since", "2026-01-15T00:00:01") == ["r2"]
    assert names("--since", "2026-01-02", "--last", "1") == ["r2"]
    assert names("--last", "2") == ["r1", "r2"]
    r = cli.invoke(main, ["log", "--path", str(log), "--since", "last week"])
    assert r.exit_code == 2 and "--since 'last week' is not a date" in r.stderr
    r = cli.invoke(main, ["log", "--path", str(log), "--format", "csv", "--last", "2"])
    import csv
    import io

    rows = list(csv.DictReader(io.StringIO(r.stdout)))
    assert [row["run"] for row in rows] == ["r1", "r2"]
    assert rows[0]["time (UTC)"] == "2026-01-15T00:00:00+00:00" and rows[0]["kind"] == "run"
    md = cli.invoke(main, ["log", "--path", str(log), "--format", "md"]).stdout
    assert md.startswith("| time (UTC) |") and md.count("\n") == 5
