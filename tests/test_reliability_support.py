"""Shared helpers for the reliability suite (no tests here): a tiny random checkpoint and a small
shapes split built once per session, `coordbench run` in a subprocess (optionally with a fault
injected at an fsync), reference runs, and artifact comparison.

Faults are injected by wrapping `os.fsync`, the call every durable write in
`coordbench.rundir.files` makes (appends and atomic temp-file writes alike), so the tests do not
depend on internals: at the n-th fsync of a named file the child either SIGKILLs itself (`kill`),
cuts the file's last line in half and then SIGKILLs itself (`torn`), or stops there holding the
run lock (`pause`).
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from coordbench.rundir import files as A

N_SAMPLES = 8
BATCH = 2  # 4 batches of 2: several distinct kill points
SAMPLED = ("--temperature", "0.7", "--top-p", "0.9")

FAULT_RUNNER = r"""
import os, signal, sys, time
# a command started in the background (`make test &`, nohup) inherits SIGINT ignored, and then
# Python installs no KeyboardInterrupt handler: the Ctrl-C tests would wait for nothing
signal.signal(signal.SIGINT, signal.default_int_handler)
name, n, mode = os.environ["CB_FAULT"].split(":")
n, calls, real_fsync = int(n), [0], os.fsync

def fsync(fd):
    base = os.path.basename(os.readlink(f"/proc/self/fd/{fd}"))
    if base == name or base.startswith(f".{name}.tmp."):
        calls[0] += 1
        if calls[0] == n:
            if mode == "torn":  # the kernel has the whole batch; keep half of its last line
                path = os.readlink(f"/proc/self/fd/{fd}")
                data = open(path, "rb").read()
                start = data.rstrip(b"\n").rfind(b"\n") + 1
                os.ftruncate(fd, start + (len(data) - start) // 2)
            if mode == "pause":
                open(os.environ["CB_PAUSED"], "w").close()
                time.sleep(600)
            os.kill(os.getpid(), signal.SIGKILL)
    return real_fsync(fd)

os.fsync = fsync
from coordbench.cli.main import main
main(args=sys.argv[1:], prog_name="coordbench")
"""


@dataclass(frozen=True)
class Assets:
    root: Path
    ckpt: Path
    data_dir: Path

    @property
    def data(self) -> Path:
        return self.data_dir / "val.coord.jsonl"


_CACHE: dict[str, object] = {}


def assets(tmp_path_factory) -> Assets:
    """A seeded tiny Qwen2.5-VL checkpoint and an 8-image shapes split, built once per session."""
    if "assets" not in _CACHE:
        from coordbench.data.shapes import write_split
        from coordbench.embedded.tiny_families import save_tiny

        root = tmp_path_factory.mktemp("reliability")
        ckpt = save_tiny("qwen2_5_vl", root / "tiny-q25", seed=0)
        data_dir = write_split(root / "shapes", "val", n=N_SAMPLES)
        _CACHE["assets"] = Assets(root, Path(ckpt), data_dir)
    return _CACHE["assets"]  # type: ignore[return-value]


def run_args(
    a: Assets, out: Path, name: str, *extra: str, data: Path | None = None, ckpt: Path | None = None
) -> list[str]:
    """`coordbench run` arguments of the suite's standard small run."""
    return [
        "run",
        "--ckpt",
        str(ckpt or a.ckpt),
        "--data",
        str(data or a.data),
        "--preset",
        "64",
        "--prompt",
        "default_desc_first",
        "--max-new-tokens",
        "24",
        "--batch-size",
        str(BATCH),
        "--device",
        "cpu",
        "--out",
        str(out),
        "--name",
        name,
        "--no-progress",
        *extra,
    ]


def child_env(fault: str | None = None, **extra: str) -> dict[str, str]:
    env = dict(os.environ)
    env.pop("CB_FAULT", None)
    env.pop("COORDBENCH_BENCHMARK_LOG", None)  # default: next to the run dirs, inside tmp_path
    # one thread: deterministic float reductions (the golden test) and a light CPU footprint
    env.update(
        OMP_NUM_THREADS="1",
        MKL_NUM_THREADS="1",
        TOKENIZERS_PARALLELISM="false",
        HF_HUB_OFFLINE="1",
        PYTHONUNBUFFERED="1",
        **extra,
    )
    if fault:
        env["CB_FAULT"] = fault
    return env


def command(args: list[str], fault: str | None) -> list[str]:
    if fault:
        return [sys.executable, "-c", FAULT_RUNNER, *args]
    return [sys.executable, "-m", "coordbench", *args]


def run_cli(
    args: list[str], *, fault: str | None = None, timeout: float = 180, preexec_fn=None, **env: str
):
    """Run the CLI to completion; returns the CompletedProcess (text mode)."""
    return subprocess.run(
        command(args, fault),
        env=child_env(fault, **env),
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=str(Path(__file__).resolve().parents[1]),
        preexec_fn=preexec_fn,
    )


def popen_cli(args: list[str], *, fault: str | None = None, **env: str) -> subprocess.Popen:
    return subprocess.Popen(
        command(args, fault),
        env=child_env(fault, **env),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=str(Path(__file__).resolve().parents[1]),
    )


def wait_for(
    pred, proc: subprocess.Popen | None = None, timeout: float = 120, poll: float = 0.01
) -> None:
    """Poll `pred()` until true; fails early if `proc` exits first."""
    end = time.monotonic() + timeout
    while not pred():
        if proc is not None and proc.poll() is not None:
            out, err = proc.communicate()
            raise AssertionError(
                f"child exited ({proc.returncode}) before the condition held:\n{err[-3000:]}"
            )
        if time.monotonic() > end:
            raise AssertionError("timed out waiting for the child")
        time.sleep(poll)


def popen_held(args: list[str], tmp_path: Path, batch: int) -> subprocess.Popen:
    """Start the CLI and return once it is held inside batch `batch`'s record write (the
    "pause" fault), so a signal sent now lands mid-run however fast the child is."""
    paused = tmp_path / "paused"
    proc = popen_cli(args, fault=f"{A.GT_VS_PRED}:{batch}:pause", CB_PAUSED=str(paused))
    wait_for(paused.exists, proc)
    return proc


def kill9(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        os.kill(proc.pid, signal.SIGKILL)
    proc.communicate(timeout=30)
    assert proc.returncode == -signal.SIGKILL


def reference_run(tmp_path_factory, kind: str) -> Path:
    """An uninterrupted run ("greedy" or "sampled"), made once per session."""
    key = f"ref-{kind}"
    if key not in _CACHE:
        a = assets(tmp_path_factory)
        extra = SAMPLED if kind == "sampled" else ()
        p = run_cli(run_args(a, a.root / "refs", kind, *extra))
        assert p.returncode == 0, p.stderr[-3000:]
        _CACHE[key] = a.root / "refs" / kind
    return _CACHE[key]  # type: ignore[return-value]


def copy_run(src: Path, out: Path, name: str) -> Path:
    """A copy of a run dir under a new name (the name is not part of the identity)."""
    dst = out / name
    shutil.copytree(src, dst)
    return dst


# run.json holds provenance (timings, sessions) and report.html prints timings: everything else
# is derived only from the generated records and must match byte for byte.
VOLATILE = {"run.json", "report.html"}


def artifact_bytes(run_dir: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(run_dir)): p.read_bytes()
        for p in sorted(run_dir.rglob("*"))
        if p.is_file()
    }


def assert_same_artifacts(expected: Path, got: Path) -> None:
    """Same set of files (no stray temp files, no lock) and byte-identical derived artifacts."""
    from coordbench.rundir import files as A

    exp, new = artifact_bytes(expected), artifact_bytes(got)
    assert sorted(new) == sorted(exp), f"file sets differ: {sorted(set(new) ^ set(exp))}"
    differ = [f for f in exp if f not in VOLATILE and exp[f] != new[f]]
    assert not differ, f"artifacts differ from the uninterrupted run: {differ}"
    a, b = A.read_json(expected / A.RUN_JSON), A.read_json(got / A.RUN_JSON)
    assert a["identity_hash"] == b["identity_hash"]
    assert "finished_at" in b["provenance"]


def sessions(run_dir: Path) -> list[dict]:
    from coordbench.rundir import files as A

    return [s["generation"] for s in A.read_json(run_dir / A.RUN_JSON)["provenance"]["sessions"]]


def line_count(path: Path) -> int:
    return path.read_bytes().count(b"\n") if path.exists() else 0


def assert_clean_error(proc, *needles: str, only_line: bool = True) -> str:
    """Exit code 2, no traceback, exactly one `error:` line on stderr naming the culprit.

    `only_line`: stderr holds nothing else (errors raised before any model library is imported).
    """
    err = proc.stderr if isinstance(proc.stderr, str) else proc.stderr.decode()
    assert proc.returncode == 2, f"exit code {proc.returncode}; stderr:\n{err[-3000:]}"
    assert "Traceback" not in err, err[-3000:]
    lines = [ln for ln in err.splitlines() if ln.startswith("error: ")]
    assert len(lines) == 1, err[-3000:]
    if only_line:
        assert err.strip() == lines[0], err[-3000:]
    for n in needles:
        assert n in lines[0], f"{n!r} not named in: {lines[0]}"
    return lines[0]
