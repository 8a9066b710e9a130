"""Tag dialects: InternVL `<ref>/<box>`, PaliGemma `<locYYYY>`, Florence-2 `<loc_k>`.

Each reader is a handful of regexes over the answer. A marker that starts a box but does not
finish one counts as unreadable (status `malformed`), or as truncated when it is at the end.
"""

from __future__ import annotations

import re

from coordbench.parse.dialects.base import RawObject, Reading, number

# InternVL 2.5/3/3.5 grounding: `<ref>label</ref><box>[[x1, y1, x2, y2], ...]</box>`, 0..1000
_IV_QUAD = re.compile(r"\[([^\[\]]*)\]")
_NUM = r"-?\d+(?:\.\d+)?"


def _quad(body: str) -> tuple[float, ...] | None:
    parts = [p.strip() for p in body.split(",")]
    if len(parts) != 4 or not all(re.fullmatch(_NUM, p) for p in parts):
        return None
    values = [number(float(p)) for p in parts]
    return (
        None if any(v is None for v in values) else tuple(float(v) for v in values if v is not None)
    )


def _tagged(text: str, tag: str, start: int = 0, end: int | None = None) -> list[tuple[int, int]]:
    """Content spans of `<tag>...</tag>` in text[start:end], each closed by the first end tag.

    A linear scan (str.find), not a lazy regex: a lazy `<tag>(.*?)</tag>` rescans the rest of
    the text from every unclosed open tag, which is quadratic on hostile answers.
    """
    end = len(text) if end is None else end
    open_tag, close_tag = f"<{tag}>", f"</{tag}>"
    spans, pos = [], start
    while (i := text.find(open_tag, pos, end)) >= 0:
        j = text.find(close_tag, i + len(open_tag), end)
        if j < 0:
            break  # no later open tag can close either
        spans.append((i + len(open_tag), j))
        pos = j + len(close_tag)
    return spans


def _stripped(text: str, a: int, b: int) -> tuple[int, int]:
    """text[a:b] without surrounding whitespace, as a span."""
    body = text[a:b]
    lead = len(body) - len(body.lstrip())
    return a + lead, a + lead + len(body.strip())


def read_internvl(text: str) -> Reading:
    """Every `<box>` with the last `<ref>` label before it; a `<ref>` labels each box up to the
    next `<ref>` (an unlabelled `<box>` before any `<ref>` gets an empty label)."""
    reading, last = Reading(), 0
    label, label_span = "", None
    for b0, b1 in _tagged(text, "box"):
        reading.found = True
        refs = _tagged(text, "ref", last, b0 - len("<box>"))
        if refs:
            r0, r1 = refs[-1]
            label, label_span = text[r0:r1].strip(), (r0, r1)
        quads = list(_IV_QUAD.finditer(text, b0, b1))
        if not quads:
            reading.unreadable += 1
            reading.issues.append("bad_coordinates")
        for q in quads:
            q0, q1 = _stripped(text, q.start(1), q.end(1))
            values = _quad(text[q0:q1])
            if values is None:
                reading.unreadable += 1
                reading.issues.append("bad_coordinates")
                continue
            spans = ((q0, q1), label_span) if label_span else ((q0, q1),)
            reading.objects.append(RawObject(label, values, spans))
        last = b1 + len("</box>")
    if "<box>" in text[last:]:
        reading.found, reading.truncated = True, True
    return reading


# PaliGemma `detect`: `<loc0123><loc0456><loc0789><loc1000> label ; ...` (ymin xmin ymax xmax)
# an optional run of 16 `<segNNN>` mask tokens may sit between the box and its label, with
# whitespace on either side of it, as big_vision's `extract_objs` reads segmentation answers
_PG_RUN = re.compile(r"((?:<loc\d{4}>)+)(?:\s*(?:<seg\d{3}>)+)?([^<;]*)")
_PG_LOC = re.compile(r"<loc(\d{4})>")


def read_paligemma(text: str) -> Reading:
    """Runs of exactly four `<locYYYY>` then a label; a run of another length is unreadable."""
    reading = Reading()
    for m in _PG_RUN.finditer(text):
        reading.found = True
        locs = _PG_LOC.findall(m.group(1))
        label = m.group(2).strip()
        if len(locs) != 4:
            at_end = m.end() == len(text.rstrip()) and len(locs) < 4 and not label
            if at_end:
                reading.truncated = True
            else:
                reading.unreadable += 1
                reading.issues.append("bad_coordinates")
            continue
        values = tuple(float(v) for v in locs)
        spans = [(m.start(1), m.end(1))]
        if label:
            spans.append(
                (
                    m.start(2) + m.group(2).find(label),
                    m.start(2) + m.group(2).find(label) + len(label),
                )
            )
        reading.objects.append(RawObject(label, values, tuple(spans)))
    if re.search(r"<loc\d{0,3}$", text.rstrip()):
        reading.found, reading.truncated = True, True
    return reading


# Florence-2 `<OD>`: `label<loc_x1><loc_y1><loc_x2><loc_y2>` (several boxes may follow a label)
_FL_LOCS = re.compile(r"(?:<loc_\d+>)+")
_FL_LOC = re.compile(r"<loc_(\d+)>")
_FL_SPECIAL = re.compile(r"</?s>|<pad>|<unk>")


def read_florence2(text: str) -> Reading:
    """Label then one or more groups of four `<loc_k>`; a leftover group is unreadable."""
    reading = Reading()
    clean = _FL_SPECIAL.sub(lambda m: " " * len(m.group()), text)  # offsets stay put
    prev_end = 0
    for m in _FL_LOCS.finditer(clean):
        # the label is the text right before the run back to a `<`/`>` or the previous run
        # (what `([^<>]*)` before the run would take, found without backtracking)
        start = max(prev_end, clean.rfind("<", prev_end, m.start()) + 1)
        start = max(start, clean.rfind(">", prev_end, m.start()) + 1)
        prev_end = m.end()
        reading.found = True
        raw_label = clean[start : m.start()]
        label = raw_label.strip()
        lstart = start + (raw_label.find(label) if label else 0)
        locs = list(_FL_LOC.finditer(m.group()))
        full, rest = divmod(len(locs), 4)
        for g in range(full):
            group = locs[4 * g : 4 * g + 4]
            values = tuple(float(x.group(1)) for x in group)
            span = (m.start() + group[0].start(), m.start() + group[-1].end())
            spans = (span, (lstart, lstart + len(label))) if label else (span,)
            reading.objects.append(RawObject(label, values, spans))
        if rest:
            if m.end() == len(clean.rstrip()):
                reading.truncated = True
            else:
                reading.unreadable += 1
                reading.issues.append("bad_coordinates")
    if re.search(r"<loc_\d*$", clean.rstrip()):
        reading.found, reading.truncated = True, True
    return reading
