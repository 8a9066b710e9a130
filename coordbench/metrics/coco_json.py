"""COCO results rows written as JSON straight from columns, byte for byte what orjson writes.

`orjson.dumps` of a list of `{"image_id", "category_id", "bbox", "score"}` dicts costs a dict
(and five number objects) per detection: at 1 M detections that is most of the time spent writing
`coco_preds.json`. Here orjson writes each column once (a numpy array: its own number
formatter, the one it uses for Python numbers), the token boundaries come from the separators,
and each row is stitched as `{"image_id":` I `,"category_id":` C `,"bbox":[` B `],"score":` S `}`
with one numpy gather over the bytes. Numbers never contain `,`, `[` or `]`, so the boundaries
are exact. Columns orjson would not take as arrays (ids that are not integers, object arrays)
return None: the caller builds the dicts instead.
"""

from __future__ import annotations

import numpy as np
import orjson

_TEMPLATES = (b'{"image_id":', b',"category_id":', b',"bbox":[', b'],"score":', b"},")
_TEMPLATE = np.frombuffer(b"".join(_TEMPLATES), np.uint8)
_T_START = np.cumsum([0] + [len(t) for t in _TEMPLATES])[:-1]
_T_LEN = np.array([len(t) for t in _TEMPLATES])
_COMMA, _OPEN, _CLOSE = ord(","), ord("["), ord("]")


def _dump(a: np.ndarray) -> np.ndarray:
    """orjson's bytes of a numeric array, as uint8."""
    return np.frombuffer(
        orjson.dumps(np.ascontiguousarray(a), option=orjson.OPT_SERIALIZE_NUMPY), np.uint8
    )


def _flat_tokens(a: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(bytes, token starts, token lengths) of a 1-D column `[t0,t1,...]`."""
    b = _dump(a)
    comma = np.flatnonzero(b == _COMMA)
    starts = np.r_[1, comma + 1]
    return b, starts, np.r_[comma, len(b) - 1] - starts


def _row_tokens(a: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(bytes, starts, lengths) of each row's inside `b0,b1,b2,b3` of an (n, 4) array."""
    b = _dump(a)
    starts = np.flatnonzero(b == _OPEN)[1:] + 1
    return b, starts, np.flatnonzero(b == _CLOSE)[:-1] - starts


def columns_supported(
    image_id: np.ndarray, category_id: np.ndarray, bbox: np.ndarray, score: np.ndarray
) -> bool:
    """Whether orjson takes every column as an array, formatting each number as it would the
    Python number `tolist()` gives (integer ids; integer or float boxes; float scores)."""
    ints = all(a.ndim == 1 and a.dtype.kind in "iu" for a in (image_id, category_id))
    box = bbox.ndim == 2 and bbox.shape[1] == 4 and (bbox.dtype.kind in "iu" or _f64(bbox))
    return ints and box and score.ndim == 1 and _f64(score)


def _f64(a: np.ndarray) -> bool:
    """float64 only: orjson writes a float32 element shorter than its Python float."""
    return a.dtype == np.float64


class Scratch:
    """Index and output buffers reused from chunk to chunk: a fresh array per chunk costs more in
    page faults than the gather itself."""

    def __init__(self) -> None:
        self.step = np.empty(0, np.int64)
        self.index = np.empty(0, np.int64)
        self.out = np.empty(0, np.uint8)

    def views(self, n: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        if len(self.out) < n:
            self.step, self.index = np.empty(n, np.int64), np.empty(n, np.int64)
            self.out = np.empty(n, np.uint8)
        return self.step[:n], self.index[:n], self.out[:n]


def results_body(
    image_id: np.ndarray,
    category_id: np.ndarray,
    bbox: np.ndarray,
    score: np.ndarray,
    scratch: Scratch | None = None,
) -> bytes:
    """The rows joined by `,` without the outer brackets (empty for no rows): the bytes between
    `[` and `]` of `orjson.dumps` of the dicts. Columns as `columns_supported` says."""
    n = len(score)
    if not n:
        return b""
    parts = (_flat_tokens(image_id), _flat_tokens(category_id), _row_tokens(bbox))
    parts += (_flat_tokens(score),)
    src = np.concatenate([_TEMPLATE, *(p[0] for p in parts)])
    base = np.cumsum([len(_TEMPLATE), *(len(p[0]) for p in parts)])
    start = np.empty((n, 9), np.int64)
    length = np.empty((n, 9), np.int64)
    start[:, 0::2], length[:, 0::2] = _T_START, _T_LEN
    for j, (_, s, ln) in enumerate(parts):
        start[:, 2 * j + 1], length[:, 2 * j + 1] = s + base[j], ln
    return _gather(src, start.ravel(), length.ravel(), scratch or Scratch())


def _gather(src: np.ndarray, start: np.ndarray, length: np.ndarray, scratch: Scratch) -> bytes:
    """Segments src[start:start+length] concatenated, the last one cut by one byte (the
    trailing `,`). Every segment is non-empty: the index of each output byte is a running sum
    of 1 plus a jump at each segment's first byte."""
    length[-1] -= 1
    out_end = np.cumsum(length)
    step, index, out = scratch.views(int(out_end[-1]))
    step.fill(1)
    step[0] = start[0]
    step[out_end[:-1]] = start[1:] - (start[:-1] + length[:-1] - 1)
    np.cumsum(step, out=index)
    return np.take(src, index, out=out).tobytes()
