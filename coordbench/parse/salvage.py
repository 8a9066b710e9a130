"""CoordJSON salvage: find the `{"objects": [...]}` container in model text, keep valid records.

Reproduces CoordExp's salvage transpiler (`src/utils/coordjson_transpiler.py`, [UP-SALVAGE]):
container = the first `{` where `{ "objects" : [` parses; each array entry must be a `{...}`
record (validated in `parse_record`); bad records are dropped with a reason, while a bad
separator rejects the whole container and the scan moves on to the next `{`. Two passes
(geometry_first, then desc_first) keep the one with more records. A work budget (scanned
characters) guards against adversarial nesting, where upstream's rescans would be quadratic;
running out is reported, never raised.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from coordbench.parse.record import (
    Record,
    RecordError,
    decode_string,
    fast_record,
    json_string_end,
    key_error,
    parse_record_fields,
    record_content,
    record_order,
    skip_ws,
)

_BRACE_OR_QUOTE = re.compile(r'[{}"]')
# a `{` worth a full container attempt: key "objects", a key with escapes, or `{` + blanks + EOF
_CANDIDATE = re.compile(r'\{(?=\s*(?:"objects"|"[^"\\]*\\|\Z))')


class BudgetExceeded(Exception):
    """The scan did more work than its budget allows (adversarial input)."""


@dataclass
class Budget:
    left: int

    def spend(self, n: int) -> None:
        self.left -= n
        if self.left < 0:
            raise BudgetExceeded


@dataclass
class Container:
    start: int
    end: int | None = None  # None while open
    records: list[Record] = field(default_factory=list)
    truncated: bool = False
    incomplete_tail: bool = False


def balanced_object_end(text: str, start: int, budget: Budget) -> int | None:
    """End of the `{...}` starting at `start` (string aware, braces only), None if unclosed."""
    depth, i, n = 0, start, len(text)
    while True:
        m = _BRACE_OR_QUOTE.search(text, i)
        if m is None:
            budget.spend(n - start)
            return None
        c, i = m.group(), m.start()
        if c == '"':
            j = json_string_end(text, i, n)
            if j is None:
                budget.spend(n - start)
                return None
            i = j
            continue
        depth += 1 if c == "{" else -1
        i += 1
        if depth == 0:
            budget.spend(i - start)
            return i


def _container_head(text: str, start: int, budget: Budget) -> int | None:
    """Index after `{ "objects" : [` at `start`, or None."""
    n = len(text)
    i = skip_ws(text, start + 1, n)
    if text[i] != '"':
        return None
    k_end = json_string_end(text, i, n)
    budget.spend((n if k_end is None else k_end) - i)
    if k_end is None:
        return None
    try:
        if decode_string(text[i:k_end]) != "objects":
            return None
    except RecordError:
        return None
    i = skip_ws(text, k_end, n)
    if i >= n or text[i] != ":":
        return None
    i = skip_ws(text, i + 1, n)
    return i + 1 if i < n and text[i] == "[" else None


def _next_record(text: str, i: int, box: Container, budget: Budget) -> int:
    """Append the record at `text[i] == "{"`; index after it (len(text) if it never closes)."""
    rec = fast_record(text, i)
    if rec is None:
        r_end = balanced_object_end(text, i, budget)
        if r_end is None:
            box.truncated = box.incomplete_tail = True
            return len(text)
        rec = parse_record_fields(text, i, r_end)
    budget.spend(rec.span[1] - i)
    box.records.append(rec)
    return rec.span[1]


def _parse_container(text: str, start: int, budget: Budget) -> Container | None:
    n = len(text)
    if skip_ws(text, start + 1, n) >= n:  # `{` + blanks: upstream accepts it, empty, truncated
        return Container(start=start, end=n, truncated=True)
    i = _container_head(text, start, budget)
    if i is None:
        return None
    box = Container(start=start)
    expect_record = True  # after `[` or `,`: a record or `]`; after a record: `,` or `]`
    while True:
        i = skip_ws(text, i, n)
        if i >= n:
            box.truncated = True
            break
        if text[i] == "]":
            i += 1
            break
        if expect_record and text[i] == "{":
            i = _next_record(text, i, box, budget)
            expect_record = False
        elif not expect_record and text[i] == ",":
            i += 1
            expect_record = True
        else:
            return None
    i = skip_ws(text, i, n)
    if i >= n:
        box.truncated, box.end = True, n
        return box
    if text[i] == "}":
        box.end = i + 1
        return box
    return None  # `,` (a second top-level key) or junk after the array


def find_container(text: str, budget: Budget) -> Container | None:
    """The first `{` (left to right) where a container parses; None if none does."""
    for m in _CANDIDATE.finditer(text):
        box = _parse_container(text, m.start(), budget)
        if box is not None:
            return box
    return None


@dataclass
class SalvagePass:
    """One upstream transpiler pass: kept objects (upstream key order) and drop reasons."""

    order: str
    objects: list[dict] = field(default_factory=list)
    dropped: list[str] = field(default_factory=list)


def salvage_pass(text: str, box: Container, order: str, wide: bool = False) -> SalvagePass:
    out = SalvagePass(order)
    for rec in box.records:
        reason = key_error(rec)
        if reason is None and record_order(rec) != order:
            reason = "order_violation"
        if reason is None:
            try:
                gkey, desc, values = record_content(text, rec, wide)
            except RecordError as e:
                reason = e.reason
        if reason is not None:
            out.dropped.append(reason)
            continue
        obj = (
            {"desc": desc, gkey: values} if order == "desc_first" else {gkey: values, "desc": desc}
        )
        out.objects.append(obj)
    if box.incomplete_tail:
        out.dropped.append("dropped_incomplete_tail")
    return out


def best_pass(text: str, box: Container, wide: bool = False) -> SalvagePass:
    """geometry_first, then desc_first; the one keeping more records wins, ties -> the first.

    `wide`: ints above 999 are coordinates (pixel / rel1000 surfaces).
    """
    first = salvage_pass(text, box, "geometry_first", wide)
    second = salvage_pass(text, box, "desc_first", wide)
    return second if len(second.objects) > len(first.objects) else first
