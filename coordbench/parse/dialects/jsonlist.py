"""Native JSON lists (stock Qwen2.5-VL / Qwen3-VL, Gemma 3 / Gemini): `[{"bbox_2d", "label"}]`.

Accepts what the families' own parsers accept: a ```json fence or bare JSON, prose around it,
single quotes (read with `ast.literal_eval`, never `eval`), trailing commas, extra keys, labels
under `label`/`desc`/`name`, and a cut-off answer (every complete object is kept). Objects are
found one by one with a quote-aware brace scanner, so one broken object costs only itself.
"""

from __future__ import annotations

import ast
import json
import re
from typing import Any

from coordbench.parse.dialects.base import RawObject, Reading, number

LABEL_KEYS = ("label", "desc", "name")
_FENCE = re.compile(r"```[ \t]*(?:json|JSON|python)?[ \t]*\n?")
_TRAILING_COMMA = re.compile(r",\s*([}\]])")
_MAX_OBJECT_CHARS = 20_000  # one object is a few dozen chars; longer is not an object of ours


def _regions(text: str) -> list[tuple[int, int]]:
    """Where the list may be, in order: the first fenced block (to its closer or the end),
    then the text before the first fence, then the whole text. A closing fence with no opening
    one (an answer after a pre-filled ```json turn) or a stray fence before "Hope this
    helps!" leaves the boxes *before* the first fence, which the official Qwen parsers and
    supervision read."""
    m = _FENCE.search(text)
    if m is None:
        return [(0, len(text))]
    close = text.find("```", m.end())
    return [(m.end(), close if close != -1 else len(text)), (0, m.start()), (0, len(text))]


def _objects(text: str, start: int, end: int) -> tuple[list[tuple[int, int]], int | None]:
    """Spans of the outermost `{...}` in text[start:end] and the start of an unclosed one."""
    spans: list[tuple[int, int]] = []
    depth, opened, quote, i = 0, -1, "", start
    while i < end:
        c = text[i]
        if quote:
            if c == "\\":
                i += 1
            elif c == quote:
                quote = ""
        elif c in "\"'" and depth > 0:
            quote = c
        elif c == "{":
            if depth == 0:
                opened = i
            depth += 1
        elif c == "}" and depth > 0:
            depth -= 1
            if depth == 0:
                spans.append((opened, i + 1))
        i += 1
    return spans, (opened if depth > 0 else None)


def _load(snippet: str) -> Any:
    if len(snippet) > _MAX_OBJECT_CHARS:
        return None
    for candidate in (snippet, _TRAILING_COMMA.sub(r"\1", snippet)):
        try:
            return json.loads(candidate)
        except (ValueError, RecursionError):
            pass
        try:
            return ast.literal_eval(candidate)
        except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
            pass
    return None


def _label(obj: dict) -> str:
    for key in LABEL_KEYS:
        value = obj.get(key)
        if isinstance(value, str):
            return value.strip()
    return ""


def _spans(text: str, span: tuple[int, int], key: str, label: str) -> tuple[tuple[int, int], ...]:
    """Where the coordinates (the list after `key`) and the label are written in the object."""
    s, e = span
    out = []
    k = text.find(key, s, e)
    lb = text.find("[", k, e) if k != -1 else -1
    rb = text.find("]", lb, e) if lb != -1 else -1
    if lb != -1 and rb != -1:
        out.append((lb + 1, rb))
    if label:
        at = text.find(label, rb if rb != -1 else s, e)
        if at == -1:
            at = text.find(label, s, e)
        if at != -1:
            out.append((at, at + len(label)))
    return tuple(out)


def read_json_list(text: str, key: str) -> Reading:
    """Objects carrying `key` (4 numbers each) in the first JSON list/fence of `text` (the first
    region of `_regions` that holds any box syntax)."""
    regions = _regions(text)
    for start, end in regions:
        reading = _read_region(text, key, start, end)
        if reading.found:
            return reading
    return _read_region(text, key, *regions[0])


def _read_region(text: str, key: str, start: int, end: int) -> Reading:
    reading = Reading()
    spans, unclosed = _objects(text, start, end)
    for span in spans:
        obj = _load(text[span[0] : span[1]])
        if not isinstance(obj, dict):
            if key in text[span[0] : span[1]]:
                reading.found, reading.unreadable = True, reading.unreadable + 1
                reading.issues.append("unreadable_object")
            continue
        if key not in obj:
            if any(k in obj for k in ("bbox_2d", "box_2d", "bbox")):
                reading.found, reading.unreadable = True, reading.unreadable + 1
                reading.issues.append("wrong_box_key")
            continue
        reading.found = True
        raw = obj[key]
        values = [number(v) for v in raw] if isinstance(raw, (list, tuple)) else []
        if len(values) != 4 or any(v is None for v in values):
            reading.unreadable += 1
            reading.issues.append("bad_coordinates")
            continue
        label = _label(obj)
        coords = tuple(float(v) for v in values if v is not None)
        reading.objects.append(RawObject(label, coords, _spans(text, span, key, label)))
    if unclosed is not None and key in text[unclosed:end]:
        reading.found, reading.truncated = True, True
    if not reading.found and re.search(r"\[\s*\]", text[start:end]):
        reading.found = True  # an explicit empty list: a clean "nothing here"
    return reading
