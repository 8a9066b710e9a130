"""Read a scored-records file in blocks, each answer straight into columns [ARCH-EVAL-MEMORY].

`rundir.jsonl.read_records` holds the file's bytes, a copy of them split into lines, and every
prediction as a dict: about 750 MB for a 1 M-detection file, most of it dicts that ingest reads
once. This reader gives the same records, line for line and error for error (it runs the same
line decoder, `iter_lines`, on blocks of whole lines), but replaces each clean answer's `pred`
list by `ingest.ColumnPreds` while the block is read, so a block's prediction dicts are freed
before the next block is decoded. Memory then grows with the columns (about 100 bytes per
prediction), not with the dicts (about 600).

A clean answer is one the columnar ingest would take anyway and whose dicts the columns rebuild
exactly: every object a dict with exactly `type: "bbox_2d"`, `points` (4 ints, bools excluded,
within int64), `desc` (a string with no surrounding blanks) and optionally `score`, in a record
with a usable width/height, no `coord_mode: norm1000`, and no box degenerate after clamping.
Any other answer stays the list the file holds and takes ingest's general path.
"""

from __future__ import annotations

import logging
from itertools import chain, repeat
from operator import attrgetter, itemgetter
from pathlib import Path
from typing import Any, Literal

import msgspec
import numpy as np
import orjson

from coordbench.errors import DataError
from coordbench.metrics.ingest import ColumnPreds
from coordbench.rundir.jsonl import binary_problem, iter_lines

log = logging.getLogger("coordbench")

BLOCK = 1 << 22  # bytes read at once (whole lines are decoded per block)
_ABSENT = object()
_POINTS, _DESC, _SCORE = attrgetter("points"), attrgetter("desc"), attrgetter("score")
_SCALARS = {float, int, bool, type(None), type(msgspec.UNSET)}


def _orjson_int(v: Any) -> bool:
    """orjson keeps an int within 64 bits (signed or unsigned) and reads a bigger one as a
    float; msgspec keeps it a Python int."""
    return type(v) is not int or -(2**63) <= v < 2**64


def _size(rec: dict[str, Any]) -> tuple[int, int] | None:
    w, h = rec.get("width"), rec.get("height")
    if type(w) is int and type(h) is int and w > 0 and h > 0:
        return w, h
    return None  # ingest decides (and names) anything else


_HEAD = itemgetter("type", "points", "desc")


def _batch(objs: list[Any]) -> tuple[np.ndarray, list[str], list[Any]] | None:
    """(points, descs, raw scores) when every object is clean, else None. Three passes over
    the objects (`map`, C level; freshly decoded dicts are scattered in memory, so each pass
    costs cache misses), then checks on the columns."""
    try:
        head = list(map(_HEAD, objs))  # a non-dict (list, str, number) or a missing key raises
    except (KeyError, TypeError):
        return None
    score = list(map(dict.get, objs, repeat("score"), repeat(_ABSENT)))
    # exactly type, points, desc (+ score): the key count is 3, plus 1 with a score
    if sum(map(len, objs)) != 4 * len(objs) - score.count(_ABSENT):
        return None
    kinds, pts, desc = zip(*head, strict=True)
    if set(kinds) != {"bbox_2d"} or set(map(type, pts)) != {list} or set(map(len, pts)) != {4}:
        return None
    if set(map(type, chain.from_iterable(pts))) != {int}:
        return None
    desc = list(desc)
    if set(map(type, desc)) != {str} or list(map(str.strip, desc)) != desc:
        return None
    try:
        box = np.fromiter(chain.from_iterable(pts), np.int64, 4 * len(pts)).reshape(-1, 4)
    except OverflowError:
        return None
    return box, desc, score


class _Pred(msgspec.Struct, forbid_unknown_fields=True):
    """A clean prediction as msgspec decodes it: exactly these keys, strict types (an int is
    never a bool or a float), anything else fails the decode."""

    type: Literal["bbox_2d"]
    points: tuple[int, int, int, int]
    desc: str
    score: Any = msgspec.UNSET


_TOP = msgspec.json.Decoder(dict[str, msgspec.Raw])  # top-level keys, values left as bytes
_PREDS = msgspec.json.Decoder(list[_Pred])


def _record(raw: bytes) -> tuple[dict[str, Any], list[_Pred] | None, bytes] | None:
    """(record, typed predictions or None, their bytes) of one line; None when the line needs
    the general reader (anything unusual: an escape, invalid JSON, a value orjson refuses).
    Only `pred` is decoded by msgspec, and only for a record whose answer may be clean; the
    other values, and `pred` otherwise, are orjson's, as in `read_records`."""
    if b"\\u" in raw:
        return None  # escapes (lone surrogates are repaired by the general reader)
    try:
        top = _TOP.decode(raw)
        rec = {k: orjson.loads(bytes(v)) if k != "pred" else v for k, v in top.items()}
    except (msgspec.DecodeError, orjson.JSONDecodeError):
        return None
    pred = top.get("pred")
    if pred is None:
        return rec, None, b""
    data = bytes(pred)
    typed = None
    if data != b"[]" and rec.get("coord_mode") != "norm1000" and _size(rec) is not None:
        try:
            typed = _PREDS.decode(data)
        except msgspec.DecodeError:
            typed = None
    if not typed:  # not clean, or an empty answer written with blanks: orjson's list
        try:
            rec["pred"] = orjson.loads(data)
        except orjson.JSONDecodeError:
            return None
        return rec, None, data
    return rec, typed, data


def _struct_columns(
    typed: list[_Pred], names: dict[str, str]
) -> tuple[np.ndarray, list[str], list[Any]] | None:
    """Columns of typed answers; `names` holds one str object per distinct desc (msgspec makes
    one per box: 50 MB of copies of a few class names at 1 M boxes)."""
    pts = list(map(_POINTS, typed))
    try:
        box = np.fromiter(chain.from_iterable(pts), np.int64, 4 * len(pts)).reshape(-1, 4)
    except OverflowError:  # an int beyond int64: the general path clamps it as a Python int
        return None
    raw = list(map(_DESC, typed))
    desc = list(map(names.setdefault, raw, raw))
    if list(map(str.strip, desc)) != desc:
        return None
    score = list(map(_SCORE, typed))
    kinds = set(map(type, score))
    if not kinds <= _SCALARS or (int in kinds and not all(map(_orjson_int, score))):
        return None  # a nested or huge-int score: orjson's reading (a float) is the reference
    if msgspec.UNSET in score:
        score = [_ABSENT if v is msgspec.UNSET else v for v in score]
    return box, desc, score


def _typed_answers(
    todo: list[tuple[dict[str, Any], list[_Pred], bytes]], names: dict[str, str]
) -> None:
    """Columns of the typed answers of a block, or their dicts (orjson) where not clean."""
    if not todo:
        return
    got = _struct_columns(list(chain.from_iterable(t for _, t, _ in todo)), names)
    if got is not None:
        items = [(rec, typed, _size(rec)) for rec, typed, _ in todo]
        for k in _replace(items, *got):
            todo[k][0]["pred"] = orjson.loads(todo[k][2])
        return
    for rec, typed, data in todo:  # some answer is not clean: find which, one by one
        one = _struct_columns(typed, names)
        if one is None or _replace([(rec, typed, _size(rec))], *one):
            rec["pred"] = orjson.loads(data)


def _clean_answers(rows: list[dict[str, Any]]) -> None:
    """Replace the `pred` list of each clean answer of `rows` by its columns, in place."""
    todo = []
    for rec in rows:
        pred = rec.get("pred")
        if type(pred) is list and pred and rec.get("coord_mode") != "norm1000":
            size = _size(rec)
            if size is not None:
                todo.append((rec, pred, size))
    if not todo:
        return
    batch = _batch(list(chain.from_iterable(p for _, p, _ in todo)))
    if batch is None:  # some answer is not clean: find which, one by one
        for item in todo:
            got = _batch(item[1])
            if got is not None:
                _replace([item], *got)
        return
    _replace(todo, *batch)


def _replace(
    todo: list[tuple[dict, Any, tuple[int, int]]], box: np.ndarray, desc: list, score: list
) -> list[int]:
    """Put each answer's columns in its record; the positions of the answers left alone (a
    box degenerate in its image: ingest's general path counts it)."""
    counts = np.fromiter((len(p) for _, p, _ in todo), np.int64, len(todo))
    lim = np.repeat(np.array([s for _, _, s in todo], np.int64) - 1, counts, axis=0)
    clamped = np.clip(box, 0, lim[:, [0, 1, 0, 1]])
    bad = (clamped[:, 2] <= clamped[:, 0]) | (clamped[:, 3] <= clamped[:, 1])
    bounds = [0, *np.cumsum(counts).tolist()]
    bad_answer = np.add.reduceat(bad, bounds[:-1]) > 0
    has = None
    if _ABSENT in score:
        has = [v is not _ABSENT for v in score]
        score = [v if k else None for v, k in zip(score, has, strict=True)]
    left = []
    for k, (rec, _, _) in enumerate(todo):
        if bad_answer[k]:
            left.append(k)
            continue
        lo, hi = bounds[k], bounds[k + 1]
        rec["pred"] = ColumnPreds(
            box[lo:hi].copy(), desc[lo:hi], score[lo:hi], has[lo:hi] if has is not None else None
        )
    return left


def _blocks(path: Path) -> Any:
    """(first line number, bytes of whole lines) per block; the last may lack its newline."""
    try:
        f = open(path, "rb")
    except OSError as e:
        raise DataError(f"cannot read {path}: {e.strerror or e}") from None
    with f:
        carry, number, first = b"", 1, True
        while True:
            try:
                data = f.read(BLOCK)
            except OSError as e:
                raise DataError(f"cannot read {path}: {e.strerror or e}") from None
            if first and (problem := binary_problem(data)) is not None:
                raise DataError(f"{path} {problem}")
            first = False
            if not data:
                if carry:
                    yield number, carry
                return
            data = carry + data
            cut = data.rfind(b"\n") + 1
            carry = data[cut:]
            if cut:
                yield number, data[:cut]
                number += data.count(b"\n", 0, cut)


def _general_line(raw: bytes, torn: bool) -> Any:
    """The `iter_lines` view of one line (its decoder, messages and surrogate repair)."""
    return next(iter_lines(raw if torn else raw + b"\n"))


def read_scored(path: str | Path, *, tolerant: bool = False) -> tuple[list[dict], int]:
    """`rundir.jsonl.read_records` (same records, messages, warnings and skipped count), read
    in blocks with each clean answer's predictions kept as columns."""
    p = Path(path)
    recs: list[dict] = []
    skipped = 0
    names: dict[str, str] = {}  # one str per distinct desc, for this file
    for start, data in _blocks(p):
        pieces = data.split(b"\n")
        torn_at = -1 if pieces[-1] else None  # a last piece without newline: the file's end
        if not pieces[-1]:
            pieces.pop()
        rows, general, typed = [], [], []
        for i, raw in enumerate(pieces):
            got = _record(raw) if raw else None
            if got is not None:
                rows.append(got[0])
                if got[1] is not None:
                    typed.append(got)
                continue
            ln = _general_line(raw, torn_at is not None and i == len(pieces) - 1)
            if ln.row is not None:
                rows.append(ln.row)
                general.append(ln.row)
            elif not ln.blank:
                number = start + i
                if not (tolerant or ln.torn):
                    raise DataError(
                        f"{p}:{number}: malformed JSONL line ({ln.error}); "
                        "pass --tolerant to skip such lines"
                    )
                if ln.torn:
                    log.warning("%s:%d: torn last line skipped (no trailing newline)", p, number)
                skipped += 1
        _typed_answers(typed, names)
        _clean_answers(general)
        recs += rows
    return recs, skipped
