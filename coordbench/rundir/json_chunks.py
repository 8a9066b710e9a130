"""A big JSON list of flat objects (a detector's results file) turned into columns in chunks.

`orjson.loads` of a 5 M-detection results file builds 5 M dicts at once (GBs). Here the list is
split at `},` boundaries into pieces of about `chunk` bytes; each piece is parsed as its own list
and handed to `convert` (which returns columns), so its dicts are dropped before the next piece.
A split inside an object (a nested object, or `},` inside a string) leaves unbalanced braces,
which no JSON parser accepts: then every piece is discarded and the whole file is parsed at once,
so the outcome is always what `orjson.loads` of the file would give.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import orjson

from coordbench.errors import ArtifactError

CHUNK = 1 << 24  # bytes per piece (16 MiB ~ 150 k detections)
T = TypeVar("T")


def _pieces(data: bytes, chunk: int) -> Iterator[bytes]:
    start, end = data.index(b"[") + 1, data.rindex(b"]")
    pos = start
    while pos < end:
        cut = data.find(b"},", min(pos + chunk, end), end)
        stop = end if cut < 0 else cut + 1
        yield b"[" + data[pos:stop] + b"]"
        pos = end if cut < 0 else stop + 1


def parse_whole(path: Path, data: bytes) -> Any:
    try:
        return orjson.loads(data)
    except orjson.JSONDecodeError as e:
        raise ArtifactError(
            f"{path} is not valid JSON ({e}); NaN and Infinity are not JSON numbers, and gzip "
            "or NDJSON (one object per line) files are not read: write one JSON list"
        ) from None


def json_list_columns(
    path: Path, convert: Callable[[list[Any], int], T], chunk: int = CHUNK
) -> list[T] | Any:
    """`convert(piece, offset)` of each piece of the JSON list in `path` (offset: the index of
    the piece's first element), in order; a file that is not a JSON list is returned parsed,
    for the caller to refuse."""
    try:
        data = Path(path).read_bytes()
    except FileNotFoundError:
        raise ArtifactError(f"missing {path}") from None
    except OSError as e:
        raise ArtifactError(f"cannot read {path}: {e.strerror or e}") from None
    if not data.lstrip().startswith(b"[") or not data.rstrip().endswith(b"]"):
        return parse_whole(path, data)
    out: list[T] = []
    offset = 0
    try:
        for piece in _pieces(data, chunk):
            rows = orjson.loads(piece)
            out.append(convert(rows, offset))
            offset += len(rows)
    except orjson.JSONDecodeError:
        doc = parse_whole(path, data)  # the split was wrong (or the file is bad): once, whole
        return [convert(doc, 0)] if isinstance(doc, list) else doc
    return out
