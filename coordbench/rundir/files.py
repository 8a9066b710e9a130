"""Run-directory files: append-with-fsync writers, tolerant readers, run.json, locking, resume.

Layout [ARCH-RUN-DIR]: run.json is written first; gt_vs_pred.jsonl and pred_token_trace.jsonl are
appended per batch (trace first, then records, each flushed and fsynced), so a killed run loses at
most the batch in flight. Everything else is derived from those two files at the end and written
atomically (temp file + rename), so a resumed run ends byte-identical to an uninterrupted one.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import math
import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import orjson

from coordbench.errors import ArtifactError
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
from coordbench.rundir.text import _SURROGATE, REPLACEMENT, scrub_surrogates

SCHEMA_VERSION = 1
log = logging.getLogger("coordbench")


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


def utf8(text: str) -> bytes:
    """UTF-8 bytes of text for an artifact; lone surrogates are written as U+FFFD."""
    try:
        return text.encode("utf-8")
    except UnicodeEncodeError:
        clean, n = _SURROGATE.subn(REPLACEMENT, text)
        log.warning("replaced %d lone surrogate(s) with U+FFFD before writing", n)
        return clean.encode("utf-8")


def _dumps(obj: Any, option: int | None) -> bytes:
    """orjson bytes; strings that are not valid UTF-8 are repaired (U+FFFD), never fatal."""
    try:
        return orjson.dumps(obj, default=_default, option=option)
    except TypeError as e:
        clean, n = scrub_surrogates(obj)
        if not n:
            raise
        log.warning("replaced %d lone surrogate(s) with U+FFFD before writing (%s)", n, e)
        return orjson.dumps(clean, default=_default, option=option)


def dumps_line(obj: Any) -> bytes:
    return _dumps(obj, None) + b"\n"


def dumps_json(obj: Any) -> bytes:
    return _dumps(obj, orjson.OPT_INDENT_2) + b"\n"


def write_bytes_atomic(path: Path, data: bytes | Iterable[bytes]) -> None:
    """Write to a temp file in the same folder, fsync, rename: readers never see half a file.
    `data` may be an iterable of pieces (a large file written without joining them first)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp.{os.getpid()}")
    try:
        with open(tmp, "wb") as f:
            for piece in (data,) if isinstance(data, bytes | bytearray | memoryview) else data:
                f.write(piece)
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
