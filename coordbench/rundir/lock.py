"""One writer per run dir: `run_lock`, a kernel flock on `.lock` holding the writer's pid."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path

from coordbench.errors import ArtifactError, ResumeError
from coordbench.rundir.layout import LOCK


def pid_alive(pid: int) -> bool:
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
        # while still holding the flock: a waiter re-checks the inode. A run dir that stopped
        # being writable (chattr +i, a read-only remount) must not let this unlink hide the
        # error that stopped the run; a lock file left behind is harmless (its flock is gone)
        with contextlib.suppress(OSError):
            lock.unlink()
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
        if pid and pid != os.getpid() and pid_alive(pid):
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
