"""Align parsed boxes with generated tokens (upstream `src/eval/bbox_confidence.py`,
[UP-CONF-SCORE]).

Objects are matched in order with a shared cursor; every match lies right of the cursor and
the cursor moves past it, so "used" token indices never need checking. That lets the
candidate enumeration upstream does by rescanning the trace use position indexes instead,
with the same first candidate and the same candidate count (`ambiguous_matches`).
"""

from __future__ import annotations

import string
from bisect import bisect_left, bisect_right
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass

_MAX_NUMERIC_SPAN = 6  # upstream `max_span_tokens` for one JSON integer
_DIGITS = frozenset(string.digits)  # ASCII only, as upstream


@dataclass(frozen=True)
class SpanMatch:
    indices: tuple[int, ...]
    ambiguous: int  # number of other candidates


def _positions(tokens: Sequence[str]) -> dict[str, list[int]]:
    pos: dict[str, list[int]] = defaultdict(list)
    for i, t in enumerate(tokens):
        pos[t].append(i)
    return pos


def _greedy(pos: dict[str, list[int]], start: int, rest: Sequence[str]) -> tuple[int, ...] | None:
    """Earliest ordered occurrence of `rest` after `start` (gaps allowed)."""
    out = [start]
    for tok in rest:
        hits = pos.get(tok, ())
        k = bisect_right(hits, out[-1])
        if k == len(hits):
            return None
        out.append(hits[k])
    return tuple(out)


def assign_token_spans(
    tokens: Sequence[str], expected: Sequence[Sequence[str]]
) -> list[SpanMatch | None]:
    """Coord-token spans: per object the first ordered subsequence at/after the cursor."""
    pos = _positions(tokens)
    cursor, out = 0, []
    for seq in expected:
        if not seq:
            out.append(None)
            continue
        starts = pos.get(seq[0], [])
        chosen, count = None, 0
        for s in starts[bisect_left(starts, cursor) :]:
            cand = _greedy(pos, s, seq[1:])
            if cand is None:
                break  # greedy matches only move right with the start: later starts fail too
            chosen = chosen or cand
            count += 1
        if chosen is None:
            out.append(None)
            continue
        cursor = max(cursor, chosen[-1] + 1)
        out.append(SpanMatch(chosen, count - 1))
    return out


def _strip(text: str) -> str:
    return text.strip().strip("[,]").strip()


def _numeric_index(tokens: Sequence[str]) -> dict[str, list[tuple[int, tuple[int, ...]]]]:
    """Every upstream numeric candidate: literal -> [(start, kept token indices)] by start.

    From each start, upstream concatenates up to 6 tokens; once the stripped text has a
    non-digit it stops, and each prefix equal to the literal is one candidate (duplicates
    when trailing tokens are only `,`/`]`/blanks, as upstream counts them).
    """
    stripped = [_strip(t) for t in tokens]
    index: dict[str, list[tuple[int, tuple[int, ...]]]] = defaultdict(list)
    n = len(tokens)
    for start in range(n):
        combined = ""
        for end in range(start, min(n, start + _MAX_NUMERIC_SPAN)):
            combined += tokens[end]
            cleaned = _strip(combined)
            if not cleaned:
                continue
            if not _DIGITS.issuperset(cleaned):
                break
            kept = tuple(i for i in range(start, end + 1) if stripped[i])
            if kept:
                index[cleaned].append((start, kept))
    return index


def assign_numeric_spans(
    tokens: Sequence[str], expected: Sequence[Sequence[int]]
) -> list[SpanMatch | None]:
    """Numeric-text spans: each of an object's integers is the first literal match after the
    cursor."""
    index = _numeric_index(tokens)
    cursor, out = 0, []
    for values in expected:
        local, matched, ambiguous = cursor, [], 0
        for v in values:
            cands = index.get(str(int(v)), [])
            k = bisect_left(cands, (local,))
            if k == len(cands):
                matched = None
                break
            chosen = cands[k][1]
            ambiguous += len(cands) - k - 1
            matched.extend(chosen)
            local = max(local, chosen[-1] + 1)
        if matched is None:
            out.append(None)
            continue
        cursor = local
        out.append(SpanMatch(tuple(matched), ambiguous))
    return out


def desc_span(tokens: Sequence[str], coord_start: int, window_start: int) -> list[int] | None:
    """Token indices of the desc string before a box's first coord token (upstream heuristic).

    Backwards from the box to the previous object's span: a token exactly `desc`; then the
    first token with `"` and no `:` opens the string (`",` there means empty); the first later
    token ending in `",` closes it. None when any step fails.
    """
    if not 0 <= coord_start <= len(tokens):
        return None
    window_start = max(0, window_start)
    if window_start >= coord_start:
        return None
    key = next(
        (i for i in range(coord_start - 1, window_start - 1, -1) if tokens[i] == "desc"), None
    )
    if key is None:
        return None
    opening = next(
        (i for i in range(key + 1, coord_start) if '"' in tokens[i] and ":" not in tokens[i]), None
    )
    if opening is None:
        return None
    if tokens[opening].endswith('",'):
        return []
    closing = next((i for i in range(opening + 1, coord_start) if tokens[i].endswith('",')), None)
    if closing is None:
        return None
    return list(range(opening + 1, closing))


def text_span_tokens(
    tokens: Sequence[str], raw_text: str, spans: Sequence[Sequence[int]]
) -> list[int] | None:
    """Indices of the tokens that overlap character `spans` of `raw_text` (native dialects).

    The trace's token texts concatenate to the answer (possibly with a prefix such as a
    prefilled `<think>`); None when the answer cannot be found in them.
    """
    joined = "".join(tokens)
    base = 0 if joined.startswith(raw_text) else joined.find(raw_text)
    if base < 0 or not raw_text:
        return None
    ranges = [(base + int(s), base + int(e)) for s, e in spans if int(e) > int(s)]
    out, pos = [], 0
    for i, tok in enumerate(tokens):
        end = pos + len(tok)
        if end > pos and any(s < end and pos < e for s, e in ranges):
            out.append(i)
        pos = end
    return out or None
