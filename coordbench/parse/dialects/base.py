"""What every dialect reader returns: raw objects with text spans, and what went wrong.

A reader is pure and never raises on model text. It does not know the image size: it returns
each object's values as written, and `dialects.to_box` maps them to preset-image pixels with
the dialect's frame. Spans are character offsets into the text the reader was given; the
confidence step maps them to the tokens that spell the coordinates and the label.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field


@dataclass(frozen=True)
class RawObject:
    """One object as written: label, its coordinate values, and the spans that spell them."""

    label: str
    values: tuple[float, ...]  # as written, in the dialect's own order and frame
    spans: tuple[tuple[int, int], ...]  # character spans of the coordinates and the label


@dataclass
class Reading:
    """A reader's result. `unreadable` counts recognisable boxes it could not read."""

    objects: list[RawObject] = field(default_factory=list)
    unreadable: int = 0
    truncated: bool = False  # the text ends inside an object (the incomplete one is dropped)
    found: bool = False  # the dialect's container or markers were seen at all
    issues: list[str] = field(default_factory=list)


def number(value: object) -> float | None:
    """A finite int/float coordinate (never a bool, never a string), else None."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    try:
        v = float(value)
    except OverflowError:
        return None
    return v if math.isfinite(v) else None
