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
from operator import itemgetter
from pathlib import Path
from typing import Any

import numpy as np

from coordbench.errors import DataError
from coordbench.metrics.ingest import ColumnPreds
from coordbench.rundir.jsonl import binary_problem, iter_lines

log = logging.getLogger("coordbench")

BLOCK = 1 << 22  # bytes read at once (whole lines are decoded per block)
_ABSENT = object()


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
    todo: list[tuple[dict, list, tuple[int, int]]], box: np.ndarray, desc: list, score: list
) -> None:
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
    for k, (rec, _, _) in enumerate(todo):
        if bad_answer[k]:
            continue  # a degenerate box: ingest's general path counts it
        lo, hi = bounds[k], bounds[k + 1]
        rec["pred"] = ColumnPreds(
            box[lo:hi].copy(), desc[lo:hi], score[lo:hi], has[lo:hi] if has is not None else None
        )


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


def read_scored(path: str | Path, *, tolerant: bool = False) -> tuple[list[dict], int]:
    """`rundir.jsonl.read_records` (same records, messages, warnings and skipped count), read
    in blocks with each clean answer's predictions kept as columns."""
    p = Path(path)
    recs: list[dict] = []
    skipped = 0
    for start, data in _blocks(p):
        rows = []
        for ln in iter_lines(data):
            number = start + ln.number - 1
            if ln.row is not None:
                rows.append(ln.row)
            elif not ln.blank:
                if not (tolerant or ln.torn):
                    raise DataError(
                        f"{p}:{number}: malformed JSONL line ({ln.error}); "
                        "pass --tolerant to skip such lines"
                    )
                if ln.torn:
                    log.warning("%s:%d: torn last line skipped (no trailing newline)", p, number)
                skipped += 1
        _clean_answers(rows)
        recs += rows
    return recs, skipped
