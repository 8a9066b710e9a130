"""Run one pure computation in a forked child while the parent goes on [ARCH-EVAL-SPEED].

A 200 k-detection evaluation has two independent halves: the COCO matching and accumulate (numpy
on a few arrays) and the F1 rows, result dicts and diagnostics (Python objects). On a machine
with two cores the child computes the first while the parent builds the second; the child
inherits the arrays (no copy, no pickling of inputs) and sends back a small pickled result.

The child is only an optimisation: on any failure (no `fork`, one core, a crash, an exception,
an unreadable result) the parent computes the same function itself, so errors surface exactly
as they would without it. It is not used when other threads run or torch is loaded (fork is
unsafe with running threads), nor for small inputs (a fork costs a few milliseconds).
"""

from __future__ import annotations

import contextlib
import os
import pickle
import signal
import sys
import threading
from collections.abc import Callable, Iterator
from typing import Any

MIN_ROWS = 20_000  # below this a fork costs more than it saves
ENV = "COORDBENCH_FORK"  # "0" disables the child


def _cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def _threads_running() -> bool:
    """Other threads (or torch's thread pools) could hold a lock the child would wait for."""
    return threading.active_count() > 1 or "torch" in sys.modules


def can_fork(rows: int) -> bool:
    return (
        rows >= MIN_ROWS
        and os.environ.get(ENV, "1") != "0"
        and sys.platform.startswith("linux")
        and hasattr(os, "fork")
        and _cores() >= 2
        and not _threads_running()
    )


class Job:
    """The result of `fn(*args)`, computed by a child process when one was started."""

    def __init__(self, fn: Callable[..., Any], args: tuple[Any, ...], use_child: bool):
        self.fn, self.args = fn, args
        self.pid: int | None = None
        self.fd: int | None = None
        if use_child:
            self._start()

    def _start(self) -> None:
        try:
            rfd, wfd = os.pipe()
            pid = os.fork()
        except OSError:
            return
        if pid == 0:  # the child: compute, send, exit without running the parent's atexit
            code = 0
            try:
                os.close(rfd)
                data = pickle.dumps(self.fn(*self.args), protocol=pickle.HIGHEST_PROTOCOL)
                with os.fdopen(wfd, "wb") as out:
                    out.write(data)
            except BaseException:  # noqa: BLE001 - the parent recomputes and raises it
                code = 1
            finally:
                os._exit(code)
        os.close(wfd)
        self.pid, self.fd = pid, rfd

    def result(self) -> Any:
        if self.pid is None:
            return self.fn(*self.args)
        try:
            with os.fdopen(self.fd, "rb") as src:
                self.fd = None
                data = src.read()
            _, status = os.waitpid(self.pid, 0)
            self.pid = None
            if status == 0 and data:
                return pickle.loads(data)
        except (OSError, EOFError, pickle.UnpicklingError):
            pass
        self.close()
        return self.fn(*self.args)  # the child failed: compute here (errors surface as usual)

    def close(self) -> None:
        if self.fd is not None:
            with contextlib.suppress(OSError):
                os.close(self.fd)
            self.fd = None
        if self.pid is not None:
            with contextlib.suppress(OSError):
                os.kill(self.pid, signal.SIGKILL)
                os.waitpid(self.pid, 0)
            self.pid = None


@contextlib.contextmanager
def beside(fn: Callable[..., Any], *args: Any, rows: int = 0) -> Iterator[Job]:
    """`with beside(fn, *args, rows=n) as job: ...; value = job.result()`; a child computes
    `fn(*args)` when `rows` is large enough and forking is safe here."""
    job = Job(fn, args, can_fork(rows))
    try:
        yield job
    finally:
        job.close()
