"""Run accounting across resumes, finished-run re-runs, `--shard auto` and merge's shard lines."""

from __future__ import annotations

import time

import pytest

from coordbench.config.run import Shard
from coordbench.errors import ConfigError
from coordbench.pipeline.provenance import run_timing
from coordbench.pipeline.run import run
from coordbench.rundir import files as A
from tests.conftest import OracleBackend
from tests.test_runner_e2e import DERIVED, _cfg

PAUSE = 0.05  # seconds per batch: generation time is then known from below


class Slow(OracleBackend):
    """The oracle, taking PAUSE s per batch; optionally interrupted before batch `stop_at`."""

    def __init__(self, data, stop_at: int | None = None):
        super().__init__(data)
        self.stop_at = stop_at

    def generate(self, batch, params):
        if self.stop_at is not None and len(self.calls) == self.stop_at:
            raise KeyboardInterrupt
        time.sleep(PAUSE)
        return super().generate(batch, params)


def _sessions(rd):
    return A.read_json(rd / A.RUN_JSON)["provenance"]["sessions"]


def test_run_timing_sums_invocations_by_hand():
    prov = {
        "score_seconds": 1.0,
        "sessions": [
            {"wall_seconds": 30.0, "generation": {"generated": 16, "generate_seconds": 20.0}},
            {"wall_seconds": 12.0, "generation": {"generated": 8, "generate_seconds": 10.0}},
            {"wall_seconds": 2.0, "generation": {"generated": 0}},  # a re-score adds nothing
        ],
    }
    t = run_timing(prov)
    assert t == {
        "wall_seconds": 43.0,
        "generate_seconds": 30.0,
        "samples_generated": 24,
        "samples_per_s": 0.8,  # 24 / 30, not 24 / (last session's 12 s)
    }
    shards = {"score_seconds": 1.0, "shards": [prov, {"sessions": prov["sessions"][:1]}]}
    assert run_timing(shards)["samples_generated"] == 40
    assert run_timing(shards)["wall_seconds"] == 43.0  # side by side: the slowest shard


def test_interrupted_then_resumed_run_counts_both_invocations(shapes_dir, tmp_path, caplog):
    data = shapes_dir / "val.coord.jsonl"
    run(_cfg(shapes_dir, tmp_path, name="full"), backend=Slow(data))
    with pytest.raises(KeyboardInterrupt):
        run(_cfg(shapes_dir, tmp_path, name="part"), backend=Slow(data, stop_at=2))
    rd = tmp_path / "part"
    first = _sessions(rd)
    assert len(first) == 1 and first[0]["generation"]["generated"] == 8  # saved on Ctrl-C
    assert first[0]["generation"]["generate_seconds"] >= 2 * PAUSE
    with caplog.at_level("WARNING", logger="coordbench"):
        run(_cfg(shapes_dir, tmp_path, name="part"), backend=Slow(data))
    assert "resuming at 8/12" in caplog.text
    sess = _sessions(rd)
    assert [s["generation"]["generated"] for s in sess] == [8, 4]
    assert all(s["started_at"] and s["ended_at"] for s in sess)
    prov = A.read_json(rd / A.RUN_JSON)["provenance"]
    secs = sum(s["generation"]["generate_seconds"] for s in sess)
    assert prov["samples_generated"] == 12
    assert prov["generate_seconds"] == pytest.approx(secs, abs=1e-3)
    assert prov["samples_per_s"] == pytest.approx(12 / secs, rel=1e-2)
    assert prov["wall_seconds"] >= secs
    for f in DERIVED:  # accounting lives in run.json only
        assert (tmp_path / "full" / f).read_bytes() == (rd / f).read_bytes(), f


def test_finished_run_is_left_alone_unless_rescored(shapes_dir, tmp_path, monkeypatch):
    log = tmp_path / "bench.jsonl"
    monkeypatch.setenv("COORDBENCH_BENCHMARK_LOG", str(log))
    data = shapes_dir / "val.coord.jsonl"
    run(_cfg(shapes_dir, tmp_path), backend=Slow(data))
    rd = tmp_path / "r"
    before = {p: p.read_bytes() for p in rd.rglob("*") if p.is_file()}
    again = Slow(data)
    out = run(_cfg(shapes_dir, tmp_path), backend=again)
    assert out == {"already_complete": 12, "run_dir": str(rd)}
    assert again.calls == [] and before == {p: p.read_bytes() for p in rd.rglob("*") if p.is_file()}
    timing = A.read_json(rd / A.RUN_JSON)["provenance"]["samples_per_s"]

    run(_cfg(shapes_dir, tmp_path), backend=again, rescore=True)
    assert again.calls == []
    prov = A.read_json(rd / A.RUN_JSON)["provenance"]
    assert prov["samples_per_s"] == timing  # a re-score never overwrites the generation timing
    kinds = [e["kind"] for e in A.parse_jsonl_lenient(log.read_bytes())[0]]
    assert kinds == ["run", "rescore"]


def test_damaged_finished_run_is_rebuilt_without_rescore(shapes_dir, tmp_path):
    data = shapes_dir / "val.coord.jsonl"
    run(_cfg(shapes_dir, tmp_path), backend=Slow(data))
    (tmp_path / "r" / "eval" / "per_class.csv").unlink()
    out = run(_cfg(shapes_dir, tmp_path), backend=Slow(data))
    assert "metrics" in out and (tmp_path / "r" / "eval" / "per_class.csv").exists()


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        ({"SLURM_ARRAY_TASK_ID": "0", "SLURM_ARRAY_TASK_COUNT": "8"}, (0, 8)),
        (  # sbatch --array=0-7
            {
                "SLURM_ARRAY_TASK_ID": "7",
                "SLURM_ARRAY_TASK_MIN": "0",
                "SLURM_ARRAY_TASK_MAX": "7",
                "SLURM_ARRAY_TASK_COUNT": "8",
            },
            (7, 8),
        ),
        (  # sbatch --array=1-8
            {
                "SLURM_ARRAY_TASK_ID": "1",
                "SLURM_ARRAY_TASK_MIN": "1",
                "SLURM_ARRAY_TASK_MAX": "8",
                "SLURM_ARRAY_TASK_COUNT": "8",
            },
            (0, 8),
        ),
        (
            {"SLURM_ARRAY_TASK_ID": "8", "SLURM_ARRAY_TASK_MIN": "1", "SLURM_ARRAY_TASK_MAX": "8"},
            (7, 8),
        ),
        (  # sbatch --array=0-14:2
            {
                "SLURM_ARRAY_TASK_ID": "4",
                "SLURM_ARRAY_TASK_MIN": "0",
                "SLURM_ARRAY_TASK_MAX": "14",
                "SLURM_ARRAY_TASK_STEP": "2",
                "SLURM_ARRAY_TASK_COUNT": "8",
            },
            (2, 8),
        ),
    ],
)
def test_shard_auto_reads_slurm_arrays(env, expected):
    s = Shard.parse("auto", env)
    assert (s.index, s.count) == expected


@pytest.mark.parametrize(
    ("env", "needle"),
    [
        ({}, "SLURM_ARRAY_TASK_ID"),
        ({"SLURM_ARRAY_TASK_ID": "8", "SLURM_ARRAY_TASK_COUNT": "8"}, "outside 0..7"),
        ({"SLURM_ARRAY_TASK_ID": "x", "SLURM_ARRAY_TASK_COUNT": "8"}, "not an integer"),
    ],
)
def test_shard_auto_errors_say_what_is_missing(env, needle):
    with pytest.raises(ConfigError, match=needle):
        Shard.parse("auto", env)


def test_one_based_shard_text_says_shards_count_from_zero():
    with pytest.raises(ConfigError, match="count from 0.*0/2 .. 1/2"):
        Shard.parse("2/2")


def test_one_based_slurm_shards_merge_with_one_line_per_shard(shapes_dir, tmp_path):
    from coordbench.pipeline.merge import merge_and_score, shard_lines

    data = shapes_dir / "val.coord.jsonl"
    for task in (1, 2, 3):  # sbatch --array=1-3
        env = {
            "SLURM_ARRAY_TASK_ID": str(task),
            "SLURM_ARRAY_TASK_MIN": "1",
            "SLURM_ARRAY_TASK_MAX": "3",
            "SLURM_ARRAY_TASK_COUNT": "3",
        }
        run(
            _cfg(shapes_dir, tmp_path, name="s", shard=Shard.parse("auto", env)), backend=Slow(data)
        )
    rd, _ = merge_and_score([tmp_path / "s"], None)
    lines = shard_lines(A.read_json(rd / A.RUN_JSON))
    assert [ln.split(" from ")[0] for ln in lines] == [
        "shard 0/3: 4 samples",
        "shard 1/3: 4 samples",
        "shard 2/3: 4 samples",
    ]
    prov = A.read_json(rd / A.RUN_JSON)["provenance"]
    assert prov["samples_generated"] == 12


def test_cli_says_already_complete_and_passes_rescore_and_shard_auto(monkeypatch, tmp_path):
    from click.testing import CliRunner

    import coordbench.pipeline.run as pr
    from coordbench.cli.main import main

    seen = {}

    def fake(cfg, rescore=False):
        seen.update(shard=str(cfg.shard), rescore=rescore)
        return {"already_complete": 24, "run_dir": "output/runs/x"}

    monkeypatch.setattr(pr, "run", fake)
    monkeypatch.setenv("SLURM_ARRAY_TASK_ID", "3")
    monkeypatch.setenv("SLURM_ARRAY_TASK_MIN", "1")
    monkeypatch.setenv("SLURM_ARRAY_TASK_MAX", "8")
    r = CliRunner().invoke(main, ["run", "--shard", "auto", "--out", str(tmp_path)])
    assert r.exit_code == 0, r.output
    assert r.output.strip() == (
        "output/runs/x: already complete (24 samples); use --rescore to re-score"
    )
    assert seen == {"shard": "2/8", "rescore": False}
    CliRunner().invoke(main, ["run", "--rescore", "--out", str(tmp_path)])
    assert seen["rescore"] is True


def test_edited_records_of_a_finished_run_are_read_again(shapes_dir, tmp_path):
    data = shapes_dir / "val.coord.jsonl"
    run(_cfg(shapes_dir, tmp_path), backend=Slow(data))
    recs = tmp_path / "r" / A.GT_VS_PRED
    recs.write_bytes(recs.read_bytes().replace(b'"desc":"', b'"desc":"edited ', 1))
    out = run(_cfg(shapes_dir, tmp_path), backend=Slow(data))
    assert "already_complete" not in out and "metrics" in out  # re-scored from the edited file
