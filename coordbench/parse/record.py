"""One CoordJSON record: split into keys and value spans, then validated [UP-SALVAGE].

Mirrors upstream `_parse_record`/`_scan_value_end`/`_parse_coord_array` in
`src/utils/coordjson_transpiler.py`: a record is kept only with exactly the keys `desc` + one of
`bbox_2d`/`poly` (in the pass's field order), a non-empty JSON-string desc (stored stripped),
and geometry items that are bare `<|coord_k|>` (k <= 999) or bare ints `0|[1-9]\\d{0,2}`
(4 for bbox, an even count >= 6 for poly). Failures carry upstream's drop reason.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field

from coordbench.geometry import TOKEN_PATTERN

GEOMETRY_KEYS = ("bbox_2d", "poly")

_WS = re.compile(r"\s*")
# the body of a JSON string up to its closing quote; upstream skips any char after a backslash
_STRING = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*"', re.S)
_COORD = re.compile(TOKEN_PATTERN)  # upstream `_COORD_LITERAL_RE`
_INT = re.compile(r"(0|[1-9]\d{0,2})")  # upstream `_INT_LITERAL_RE` (so 1000, 01, -1 fail)
_VALUE_EVENT = re.compile(r'[{}\[\]"<]')
_VALUE_END = re.compile(r"[,}\]]")
# fast path for records exactly as prompted (canonical separators, valid values); anything
# else takes the general path, which gives the same result on these
_FAST_VALUE = r"(?:<\|coord_[0-9]{1,3}\|>|0|[1-9][0-9]{0,2})"
_FAST_ARRAY = rf"\[{_FAST_VALUE}(?:, {_FAST_VALUE})*\]"
_FAST_STRING = r'"[^"\\]*(?:\\.[^"\\]*)*"'
_FAST_RECORD = (
    re.compile(rf'\{{"(desc)": ({_FAST_STRING}), "(bbox_2d|poly)": ({_FAST_ARRAY})\}}', re.S),
    re.compile(rf'\{{"(bbox_2d|poly)": ({_FAST_ARRAY}), "(desc)": ({_FAST_STRING})\}}', re.S),
)
_ASCII_INT = re.compile(r"[0-9]+")
# pixel / rel1000 surfaces (coordbench's own, no upstream oracle): any int, clamped later like
# the valid-JSON path, so 1100 px or rel1000 1000 is read the same on both paths
_WIDE_INT = re.compile(r"(0|[1-9]\d{0,8})(?![0-9])")


class RecordError(ValueError):
    """One record is invalid; `reason` is upstream's drop reason."""

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


@dataclass
class Record:
    """One complete `{...}` entry of the objects array, parsed as far as its structure allows."""

    span: tuple[int, int]
    keys: tuple[str, ...] = ()
    values: dict[str, tuple[int, int]] = field(default_factory=dict)
    error: str | None = None  # structural failure, order independent
    fast: bool = False  # matched a canonical pattern: geometry values need no re-validation


def skip_ws(text: str, i: int, end: int) -> int:
    return _WS.match(text, i, end).end()


def json_string_end(text: str, i: int, end: int) -> int | None:
    """End of the JSON string literal starting at `text[i] == '"'`, or None if unterminated."""
    m = _STRING.match(text, i, end)
    return m.end() if m else None


def decode_string(raw: str) -> str:
    try:
        value = json.loads(raw)
    except (ValueError, RecursionError):
        raise RecordError("other") from None
    if not isinstance(value, str):
        raise RecordError("other")
    return value


def _coord_literal_end(text: str, i: int, end: int) -> int:
    m = _COORD.match(text, i, end)
    if m is None:
        raise RecordError("wrong_arity")  # upstream's salvage drops the record
    if int(m.group(1)) > 999:
        raise RecordError("coord_range")  # dropped as upstream; the reason is ours (`parse.output`)
    return m.end()


def _nested_value_end(text: str, i: int, end: int) -> int:
    stack = [text[i]]
    j = i + 1
    while True:
        m = _VALUE_EVENT.search(text, j, end)
        if m is None:
            raise RecordError("other")  # unterminated value
        c, j = m.group(), m.start()
        if c == '"':
            k = json_string_end(text, j, end)
            if k is None:
                raise RecordError("other")
            j = k
        elif c == "<":
            j = _coord_literal_end(text, j, end)
        elif c in "{[":
            stack.append(c)
            j += 1
        else:
            opening = stack.pop()
            if (opening + c) not in ("{}", "[]"):
                raise RecordError("other")
            j += 1
            if not stack:
                return j


def value_end(text: str, i: int, end: int) -> int:
    """End of one record value (upstream `_scan_value_end`)."""
    if i >= end:
        raise RecordError("other")
    c = text[i]
    if c == '"':
        j = json_string_end(text, i, end)
        if j is None:
            raise RecordError("other")
        return j
    if c == "<":
        return _coord_literal_end(text, i, end)
    if c in "{[":
        return _nested_value_end(text, i, end)
    m = _VALUE_END.search(text, i, end)
    j = m.start() if m else end
    if j == i:
        raise RecordError("other")
    return j


def _separator(text: str, i: int, end: int, close: str, reason: str) -> tuple[int, bool]:
    """After a value: `,` continues, `close` ends the container, anything else is `reason`."""
    i = skip_ws(text, i, end)
    if i < end and text[i] == ",":
        return i + 1, False
    if i < end and text[i] == close:
        return i + 1, True
    raise RecordError(reason)


def parse_record_fields(text: str, start: int, end: int) -> Record:
    """Split `text[start:end]` (a balanced `{...}`) into keys and raw value spans."""
    rec = Record(span=(start, end))
    keys: list[str] = []
    try:
        i = start + 1
        while True:
            i = skip_ws(text, i, end)
            if i >= end:
                raise RecordError("other")
            if text[i] == "}":
                i += 1
                break
            if text[i] != '"':
                raise RecordError("other")
            k_end = json_string_end(text, i, end)
            if k_end is None:
                raise RecordError("other")
            key = decode_string(text[i:k_end])
            i = skip_ws(text, k_end, end)
            if i >= end or text[i] != ":":
                raise RecordError("other")
            v_start = skip_ws(text, i + 1, end)
            v_end = value_end(text, v_start, end)
            keys.append(key)
            rec.values[key] = (v_start, v_end)  # upstream: the last duplicate wins
            i, closed = _separator(text, v_end, end, "}", "other")
            if closed:
                break
        if skip_ws(text, i, end) != end:
            raise RecordError("other")
    except RecordError as e:
        rec.error = e.reason
    rec.keys = tuple(keys)
    return rec


def fast_record(text: str, start: int) -> Record | None:
    """A canonical record at `start` (its end is the balanced end: no braces outside strings)."""
    for pattern in _FAST_RECORD:
        m = pattern.match(text, start)
        if m is not None:
            rec = Record(span=m.span(), keys=(m.group(1), m.group(3)), fast=True)
            rec.values = {m.group(1): m.span(2), m.group(3): m.span(4)}
            return rec
    return None


def _array_value(text: str, i: int, end: int, wide: bool) -> re.Match:
    """One value of a coord array: a coord token (0..999, else `coord_range`) or an int."""
    if text[i] == "<":
        m = _COORD.match(text, i, end)
        if m is not None and int(m.group(1)) > 999:
            raise RecordError("coord_range")
    elif text[i].isdigit():
        m = (_WIDE_INT if wide else _INT).match(text, i, end)
    else:
        m = None
    if m is None or (not wide and int(m.group(1)) > 999):
        raise RecordError("wrong_arity")
    return m


def _coord_array(text: str, start: int, end: int, wide: bool = False) -> list[int]:
    """Bare coord tokens / norm1000 ints in `[...]` (upstream `_parse_coord_array`).

    `wide` accepts ints above 999 for the pixel / rel1000 surfaces (upstream's salvage has only
    the 0..999 lattice). A coord token above 999 drops the record as `coord_range` (upstream
    drops it too, as the oracle shows; its reason is ours, as documented in `parse.output`).
    """
    i = skip_ws(text, start, end)
    if i >= end or text[i] != "[":
        raise RecordError("wrong_arity")
    i += 1
    values: list[int] = []
    while True:
        i = skip_ws(text, i, end)
        if i >= end:
            raise RecordError("wrong_arity")
        if text[i] == "]":
            i += 1
            break
        m = _array_value(text, i, end, wide)
        values.append(int(m.group(1)))
        i, closed = _separator(text, m.end(), end, "]", "wrong_arity")
        if closed:
            break
    if skip_ws(text, i, end) != end:
        raise RecordError("other")
    return values


def record_content(text: str, rec: Record, wide: bool = False) -> tuple[str, str, list[int]]:
    """(geometry key, stripped desc, values) of a record whose keys are valid, or RecordError."""
    gkey = next(k for k in rec.keys if k in GEOMETRY_KEYS)
    d0, d1 = rec.values["desc"]
    try:
        desc = json.loads(text[d0:d1])
    except (ValueError, RecursionError):
        raise RecordError("missing_desc") from None
    if not isinstance(desc, str) or not desc.strip():
        raise RecordError("missing_desc")
    g0, g1 = rec.values[gkey]
    if rec.fast:
        values = [int(v) for v in _ASCII_INT.findall(text, g0, g1)]
    else:
        values = _coord_array(text, g0, g1, wide)
    if gkey == "bbox_2d" and len(values) != 4:
        raise RecordError("wrong_arity")
    if gkey == "poly" and (len(values) < 6 or len(values) % 2):
        raise RecordError("wrong_arity")
    return gkey, desc.strip(), values


def key_error(rec: Record) -> str | None:
    """Upstream's key checks, in its order (order-independent part)."""
    if rec.error is not None:
        return rec.error
    if any(k not in ("desc", *GEOMETRY_KEYS) for k in rec.keys):
        return "unexpected_keys"
    if rec.keys.count("desc") != 1:
        return "missing_desc"
    if sum(k in GEOMETRY_KEYS for k in rec.keys) != 1 or len(rec.keys) != 2:
        return "unexpected_keys"
    return None


def record_order(rec: Record) -> str:
    return "desc_first" if rec.keys[0] == "desc" else "geometry_first"
