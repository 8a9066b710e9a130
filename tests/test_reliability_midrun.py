"""Bad input that only shows mid-run: a corrupt or wrongly sized image, a full disk. Each stops
the run with exit code 2 and one `error:` line naming the culprit, never a traceback, and the
batches finished before it stay on disk and are resumed from.

Disk-full is simulated in-process (ENOSPC from a file write, the CLI via CliRunner with a
ground-truth backend) and for real with RLIMIT_FSIZE in a subprocess (the kernel fails the write
with EFBIG half-way through a line).
"""

from __future__ import annotations

import errno
import os
import resource
import shutil
import signal
from pathlib import Path

import pytest
from click.testing import CliRunner
from PIL import Image

from coordbench.cli.main import main
from coordbench.rundir import files as A
from tests.conftest import OracleBackend
from tests.test_reliability_support import (
    N_SAMPLES,
    assert_clean_error,
    assert_same_artifacts,
    assets,
    line_count,
    reference_run,
    run_args,
    run_cli,
    sessions,
)


def _data_copy(tmp_path_factory, tmp_path: Path) -> Path:
    """A writable copy of the shapes split; returns its JSONL path."""
    a = assets(tmp_path_factory)
    dst = tmp_path / "data"
    shutil.copytree(a.data_dir, dst)
    return dst / a.data.name


# --------------------------------------------------------------------------- bad images mid-run


def _bad_image_mid_run(tmp_path_factory, tmp_path, spoil):
    """Spoil image 5 of a data copy and run: (run dir, image, args, completed process)."""
    a = assets(tmp_path_factory)
    data = _data_copy(tmp_path_factory, tmp_path)
    img = data.parent / "images/val/00005.jpg"
    spoil(img)
    args = run_args(a, tmp_path / "runs", "r", data=data)
    p = run_cli(args)
    rd = tmp_path / "runs" / "r"
    return rd, img, args, p


@pytest.mark.slow
def test_corrupt_image_mid_run_keeps_finished_batches(tmp_path_factory, tmp_path):
    rd, img, _, p = _bad_image_mid_run(
        tmp_path_factory, tmp_path, lambda im: im.write_bytes(im.read_bytes()[:2000])
    )
    assert_clean_error(p, str(img), "sample 5", only_line=False)
    assert (
        line_count(rd / A.GT_VS_PRED) == 4 and line_count(rd / A.TRACE) == 4
    )  # batches [0,1], [2,3]
    assert not (rd / A.LOCK).exists() and not (rd / A.SUMMARY).exists()


@pytest.mark.slow
def test_image_size_not_matching_its_record_mid_run(tmp_path_factory, tmp_path):
    rd, img, args, p = _bad_image_mid_run(
        tmp_path_factory, tmp_path, lambda im: Image.new("RGB", (128, 96)).save(im)
    )
    assert_clean_error(p, str(img), "128x96", "256x256", only_line=False)
    assert line_count(rd / A.GT_VS_PRED) == 4


@pytest.mark.slow
def test_rerun_after_fixing_a_corrupt_image_resumes(tmp_path_factory, tmp_path):
    good = (assets(tmp_path_factory).data_dir / "images/val/00005.jpg").read_bytes()
    rd, img, args, p = _bad_image_mid_run(
        tmp_path_factory, tmp_path, lambda im: im.write_bytes(good[:2000])
    )
    assert p.returncode == 2
    img.write_bytes(good)
    p = run_cli(args)
    assert p.returncode == 0, p.stderr[-2000:]
    assert sessions(rd)[-1]["resumed_from"] == 4
    a = assets(tmp_path_factory)
    fresh = run_cli(
        run_args(a, tmp_path / "runs", "fresh", data=Path(args[args.index("--data") + 1]))
    )
    assert fresh.returncode == 0, fresh.stderr[-2000:]
    assert_same_artifacts(tmp_path / "runs" / "fresh", rd)  # same data path: summary.json too


@pytest.mark.slow
def test_rerun_refuses_when_a_finished_samples_image_changed(tmp_path_factory, tmp_path):
    good = (assets(tmp_path_factory).data_dir / "images/val/00005.jpg").read_bytes()
    rd, img, args, p = _bad_image_mid_run(
        tmp_path_factory, tmp_path, lambda im: im.write_bytes(good[:2000])
    )
    assert p.returncode == 2
    img.write_bytes(good)
    finished = img.parent / "00001.jpg"  # sample 1 is in the first, finished batch
    Image.open(finished).convert("RGB").save(finished, quality=50)
    p = run_cli(args)
    assert_clean_error(p, "00001.jpg", "changed on disk", "--overwrite")
    assert line_count(rd / A.GT_VS_PRED) == 4  # nothing discarded


# --------------------------------------------------------------------------- disk full


def _cli(args: list[str]):
    return CliRunner().invoke(main, args, catch_exceptions=True)


def _enospc_on(monkeypatch, name: str, after: int) -> None:
    """Writes to `name` (or its atomic-write temp file) fail with ENOSPC after `after` good ones,
    the failing write landing half its bytes first (a torn line)."""
    real_open, seen = open, [0]

    class Full:
        def __init__(self, f):
            self._f = f

        def write(self, data):
            seen[0] += 1
            if seen[0] > after:
                self._f.write(data[: len(data) // 2])
                self._f.flush()
                raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
            return self._f.write(data)

        def __getattr__(self, k):
            return getattr(self._f, k)

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            self._f.close()

    def fake_open(path, mode="r", *args, **kw):
        f = real_open(path, mode, *args, **kw)
        base = Path(path).name
        return Full(f) if base == name or base.startswith(f".{name}.tmp.") else f

    monkeypatch.setattr(A, "open", fake_open, raising=False)


@pytest.fixture
def oracle(monkeypatch, tmp_path_factory):
    """The CLI in-process, answering from ground truth: no model, no torch."""
    a = assets(tmp_path_factory)
    monkeypatch.setattr(
        "coordbench.pipeline.generate.make_backend",
        lambda cfg, dist: OracleBackend(a.data, {2: "drop"}),
    )
    return a


def test_disk_full_while_appending_keeps_finished_batches_and_resumes(
    oracle, monkeypatch, tmp_path
):
    args = run_args(oracle, tmp_path, "r")
    ref = _cli(run_args(oracle, tmp_path, "ref"))
    assert ref.exit_code == 0, ref.stderr
    with monkeypatch.context() as m:
        _enospc_on(m, A.GT_VS_PRED, after=2)
        res = _cli(args)
    rd = tmp_path / "r"
    assert res.exit_code == 2 and "Traceback" not in res.stderr
    assert (
        res.stderr.strip().count("\n") == 0
        and "disk full" in res.stderr
        and str(rd / A.GT_VS_PRED) in res.stderr
    )
    data = (rd / A.GT_VS_PRED).read_bytes()
    assert data.count(b"\n") == 5 and not data.endswith(b"\n")  # 2 batches, then half of the third
    res = _cli(args)
    assert res.exit_code == 0, res.stderr
    assert sessions(rd)[-1]["resumed_from"] == 4
    assert_same_artifacts(tmp_path / "ref", rd)


def test_disk_full_while_scoring_leaves_records_and_no_temp_files(oracle, monkeypatch, tmp_path):
    args = run_args(oracle, tmp_path, "r")
    with monkeypatch.context() as m:
        _enospc_on(m, A.SUMMARY, after=0)
        res = _cli(args)
    rd = tmp_path / "r"
    assert res.exit_code == 2 and "Traceback" not in res.stderr, res.stderr
    assert res.stderr.strip().count("\n") == 0 and str(rd / A.SUMMARY) in res.stderr
    assert line_count(rd / A.GT_VS_PRED) == N_SAMPLES and not (rd / A.SUMMARY).exists()
    assert not [p for p in rd.rglob(".*") if p.name != A.LOCK] and not (rd / A.LOCK).exists()
    res = _cli(args)
    assert res.exit_code == 0 and (rd / A.SUMMARY).exists()
    assert sessions(rd)[-1]["generated"] == 0


@pytest.mark.slow
def test_real_write_limit_mid_run_keeps_finished_batches_and_resumes(tmp_path_factory, tmp_path):
    """RLIMIT_FSIZE: the kernel refuses to grow any file past the limit (EFBIG), mid-line."""
    a = assets(tmp_path_factory)
    ref = reference_run(tmp_path_factory, "greedy")
    lines = (ref / A.TRACE).read_bytes().splitlines(keepends=True)
    # a trace append fails mid-line at batch k + 1, with k the first whole number of samples
    # whose trace is past run.json's size (run.json, rewritten per batch, must stay under it)
    head_size = (ref / A.RUN_JSON).stat().st_size + 4096
    k = next(k for k in range(2, len(lines)) if sum(map(len, lines[:k])) > head_size)
    limit = sum(map(len, lines[:k])) + len(lines[k]) // 2

    def limited():
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # EFBIG instead of death by SIGXFSZ
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

    args = run_args(a, tmp_path, "r")
    p = run_cli(args, preexec_fn=limited)
    rd = tmp_path / "r"
    assert_clean_error(p, str(rd / A.TRACE), "File too large", only_line=False)
    assert line_count(rd / A.GT_VS_PRED) == k and (rd / A.TRACE).stat().st_size == limit
    p = run_cli(args)
    assert p.returncode == 0, p.stderr[-3000:]
    assert sessions(rd)[-1]["resumed_from"] == k
    assert_same_artifacts(ref, rd)
