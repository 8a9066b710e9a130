"""Run-directory files: append-with-fsync writers, tolerant readers, run.json, locking, resume.

Layout [ARCH-RUN-DIR]: run.json is written first; gt_vs_pred.jsonl and pred_token_trace.jsonl are
appended per batch (trace first, then records, each flushed and fsynced), so a killed run loses at
most the batch in flight. Everything else is derived from those two files at the end and written
atomically (temp file + rename), so a resumed run ends byte-identical to an uninterrupted one.
"""

from __future__ import annotations

import contextlib
import errno
import math
import os
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import orjson

from coordbench.errors import ArtifactError, ResumeError
from coordbench.rundir.jsonl import parse_jsonl_lenient, read_jsonl  # noqa: F401 - A.read_jsonl
from coordbench.rundir.layout import (  # noqa: F401 - run-dir names, re-exported as A.NAME
    CONFIDENCE,
    GT_VS_PRED,
    LOCK,
    RUN_JSON,
    SCORED,
    SUMMARY,
    TRACE,
)

SCHEMA_VERSION = 1


def _default(obj: Any) -> Any:
    if isinstance(obj, Path):
        return str(obj)
    raise TypeError(f"not JSON serialisable: {type(obj).__name__}")


def _clean(obj: Any) -> Any:
    """orjson writes NaN/inf as null; keep -inf logprobs explicit as strings readers understand."""
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    if isinstance(obj, dict):
        return {k: _clean(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [_clean(v) for v in obj]
    return obj


def dumps_line(obj: Any) -> bytes:
    return orjson.dumps(obj, default=_default) + b"\n"


def dumps_json(obj: Any) -> bytes:
    return orjson.dumps(obj, default=_default, option=orjson.OPT_INDENT_2) + b"\n"


def write_bytes_atomic(path: Path, data: bytes) -> None:
    """Write to a temp file in the same folder, fsync, rename: readers never see half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp.{os.getpid()}")
    try:
        with open(tmp, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except OSError as e:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise ArtifactError(f"cannot write {path}: {e.strerror or e}") from None


def write_json(path: Path, obj: Any) -> None:
    if isinstance(obj, dict) and "schema_version" not in obj:
        obj = {"schema_version": SCHEMA_VERSION, **obj}
    write_bytes_atomic(path, dumps_json(obj))


def write_jsonl(path: Path, rows: Iterable[Any]) -> None:
    write_bytes_atomic(path, b"".join(dumps_line(r) for r in rows))


def read_json(path: Path) -> Any:
    try:
        return orjson.loads(path.read_bytes())
    except FileNotFoundError:
        raise ArtifactError(f"missing {path}") from None
    except orjson.JSONDecodeError as e:
        raise ArtifactError(f"{path} is not valid JSON ({e})") from None


class Appender:
    """Append JSONL lines with write + fsync per call (one call per batch).

    Unbuffered: after a failed write (disk full) no bytes wait in a buffer, so `close` cannot
    fail a second time; the torn line on disk is dropped by `consistent_prefix` on resume.
    """

    def __init__(self, path: Path):
        self.path = path
        try:
            self._f = open(path, "ab", buffering=0)
        except OSError as e:
            raise ArtifactError(f"cannot open {path} for writing: {e.strerror or e}") from None

    def append(self, rows: Iterable[Any]) -> None:
        data = memoryview(b"".join(dumps_line(r) for r in rows))
        try:
            while data:  # a raw write may be partial
                data = data[self._f.write(data) :]
            os.fsync(self._f.fileno())
        except OSError as e:
            msg = "disk full" if e.errno == errno.ENOSPC else (e.strerror or str(e))
            raise ArtifactError(f"cannot append to {self.path}: {msg}") from None

    def close(self) -> None:
        self._f.close()


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


@contextlib.contextmanager
def run_lock(run_dir: Path) -> Iterator[None]:
    """One writer per run dir: a lock file holding the writer's pid.

    Exclusion is a kernel `flock` on the file, so it dies with its process (a kill -9 never leaves
    a lock that blocks) and two processes taking over the same stale lock cannot both win, which
    a pid check alone cannot promise. A file naming another live pid is still respected (a lock
    written by hand, or by a platform without flock).
    """
    lock = run_dir / LOCK
    try:
        run_dir.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise ArtifactError(f"cannot create run dir {run_dir}: {e.strerror or e}") from None
    fd = _acquire(lock, run_dir)
    try:
        yield
    finally:
        with contextlib.suppress(FileNotFoundError):
            lock.unlink()  # while still holding the flock: a waiter re-checks the inode
        os.close(fd)


def _acquire(lock: Path, run_dir: Path) -> int:
    try:
        import fcntl
    except ImportError:  # no flock (Windows): the pid check below is all there is
        fcntl = None  # type: ignore[assignment]
    while True:
        try:
            fd = os.open(lock, os.O_CREAT | os.O_RDWR, 0o644)
        except OSError as e:
            raise ArtifactError(f"cannot write in {run_dir}: {e.strerror or e}") from None
        if fcntl is not None:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                os.close(fd)
                raise _in_use(run_dir, lock, _lock_pid(lock)) from None
            try:  # the holder we waited on may have unlinked the file: lock the current one
                same = os.stat(lock).st_ino == os.fstat(fd).st_ino
            except FileNotFoundError:
                same = False
            if not same:
                os.close(fd)
                continue
        pid = _lock_pid(lock)
        if pid and pid != os.getpid() and _pid_alive(pid):
            os.close(fd)
            raise _in_use(run_dir, lock, pid)
        os.ftruncate(fd, 0)
        os.pwrite(fd, str(os.getpid()).encode(), 0)
        return fd


def _lock_pid(lock: Path) -> int:
    try:
        return int(lock.read_text().strip() or 0)
    except (OSError, ValueError):
        return 0


def _in_use(run_dir: Path, lock: Path, pid: int) -> ResumeError:
    who = f"process {pid}" if pid else "another process"
    return ResumeError(
        f"run dir {run_dir} is in use by {who} (lock {lock}); wait for it or use another --name"
    )


def identity_diff(old: dict, new: dict, prefix: str = "") -> list[str]:
    """Dotted keys whose values differ between two identity dicts."""
    out = []
    for k in sorted(set(old) | set(new)):
        a, b = old.get(k), new.get(k)
        if isinstance(a, dict) and isinstance(b, dict):
            out += identity_diff(a, b, f"{prefix}{k}.")
        elif a != b:
            out.append(f"{prefix}{k}: {a!r} -> {b!r}")
    return out


def check_resume(run_dir: Path, identity: dict, identity_hash: str) -> bool:
    """True when run_dir holds a run with this identity (resume); refuse when it differs."""
    path = run_dir / RUN_JSON
    if not path.exists():
        return False
    try:
        old = read_json(path)
        if not isinstance(old, dict):
            raise ArtifactError(f"{path} is not a JSON object")
    except ArtifactError:
        if _has_records(run_dir):  # never discard generated records over a damaged run.json
            raise ResumeError(
                f"{path} is damaged but {run_dir} holds generated records; restore run.json, "
                "or pass --overwrite to discard them"
            ) from None
        return False  # a run.json torn before anything was generated: start afresh
    if old.get("identity_hash") == identity_hash:
        return True
    old_identity = old.get("identity")
    diff = identity_diff(old_identity if isinstance(old_identity, dict) else {}, identity)
    raise ResumeError(
        f"{run_dir} holds a run with a different identity "
        f"({'; '.join(diff[:6]) or 'hash differs'}); "
        "pass --overwrite to replace it or --name to start a new run"
    )


def _has_records(run_dir: Path) -> bool:
    return any(
        (run_dir / n).is_file() and (run_dir / n).stat().st_size for n in (GT_VS_PRED, TRACE)
    )


def remove_stale_temps(run_dir: Path) -> None:
    """Delete the temp files of atomic writes (`.NAME.tmp.PID`) whose writer is dead."""
    for folder in (run_dir, run_dir / "eval"):
        for p in folder.glob(".*.tmp.*") if folder.is_dir() else ():
            pid = p.name.rsplit(".", 1)[-1]
            if pid.isdigit() and not _pid_alive(int(pid)):
                with contextlib.suppress(OSError):
                    p.unlink()


def consistent_prefix(
    run_dir: Path, batch_size: int = 1, total: int | None = None
) -> tuple[list[dict], list[dict]]:
    """Records and traces of samples complete in both files; rewrites both to that prefix.

    Unless all `total` samples are done, the prefix is cut back to a multiple of `batch_size`: a
    batch half-written by a killed run is regenerated whole, so every sample is decoded in the same
    batch as in an uninterrupted run (batched logprobs differ in the last bits across batch shapes).
    """
    recs, rec_len = read_jsonl(run_dir / GT_VS_PRED, require=("sample_id",))
    traces, tr_len = read_jsonl(run_dir / TRACE, require=("sample_id",))
    done = {t["sample_id"] for t in traces}
    keep = []
    for r in recs:
        if r["sample_id"] not in done:
            break
        keep.append(r)
    if len(keep) != total:
        keep = keep[: len(keep) - len(keep) % max(1, batch_size)]
    ids = {r["sample_id"] for r in keep}
    keep_traces = [t for t in traces if t["sample_id"] in ids]
    for name, rows, full, good in (
        (GT_VS_PRED, keep, recs, rec_len),
        (TRACE, keep_traces, traces, tr_len),
    ):
        path = run_dir / name
        if path.exists() and (len(rows) != len(full) or path.stat().st_size != good):
            write_jsonl(path, rows)
    return keep, keep_traces
