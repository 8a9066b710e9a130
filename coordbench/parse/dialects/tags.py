"""Tag dialects: InternVL `<ref>/<box>`, PaliGemma `<locYYYY>`, Florence-2 `<loc_k>`.

Each reader is a handful of regexes over the answer. A marker that starts a box but does not
finish one counts as unreadable (status `malformed`), or as truncated when it is at the end.
"""

from __future__ import annotations

import re

from coordbench.parse.dialects.base import RawObject, Reading, number

# InternVL 2.5/3/3.5 grounding: `<ref>label</ref><box>[[x1, y1, x2, y2], ...]</box>`, 0..1000
_IV_BOX = re.compile(r"<box>(.*?)</box>", re.S)
_IV_REF = re.compile(r"<ref>(.*?)</ref>", re.S)
_IV_QUAD = re.compile(r"\[\s*([^\[\]]*?)\s*\]")
_NUM = r"-?\d+(?:\.\d+)?"


def _quad(body: str) -> tuple[float, ...] | None:
    parts = [p.strip() for p in body.split(",")]
    if len(parts) != 4 or not all(re.fullmatch(_NUM, p) for p in parts):
        return None
    values = [number(float(p)) for p in parts]
    return (
        None if any(v is None for v in values) else tuple(float(v) for v in values if v is not None)
    )


def read_internvl(text: str) -> Reading:
    """Every `<box>` with the last `<ref>` label before it; a `<ref>` labels each box up to the
    next `<ref>` (an unlabelled `<box>` before any `<ref>` gets an empty label)."""
    reading, last = Reading(), 0
    ref = None
    for m in _IV_BOX.finditer(text):
        reading.found = True
        refs = list(_IV_REF.finditer(text, last, m.start()))
        ref = refs[-1] if refs else ref
        label = ref.group(1).strip() if ref else ""
        label_span = (ref.start(1), ref.end(1)) if ref else None
        quads = list(_IV_QUAD.finditer(m.group(1)))
        if not quads:
            reading.unreadable += 1
            reading.issues.append("bad_coordinates")
        for q in quads:
            values = _quad(q.group(1))
            if values is None:
                reading.unreadable += 1
                reading.issues.append("bad_coordinates")
                continue
            span = (m.start(1) + q.start(1), m.start(1) + q.end(1))
            spans = (span, label_span) if label_span else (span,)
            reading.objects.append(RawObject(label, values, spans))
        last = m.end()
    tail = text[last:]
    if "<box>" in tail:
        reading.found, reading.truncated = True, True
    return reading


# PaliGemma `detect`: `<loc0123><loc0456><loc0789><loc1000> label ; ...` (ymin xmin ymax xmax)
_PG_RUN = re.compile(r"((?:<loc\d{4}>)+)([^<;]*)")
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
_FL_RUN = re.compile(r"([^<>]*)((?:<loc_\d+>)+)")
_FL_LOC = re.compile(r"<loc_(\d+)>")
_FL_SPECIAL = re.compile(r"</?s>|<pad>|<unk>")


def read_florence2(text: str) -> Reading:
    """Label then one or more groups of four `<loc_k>`; a leftover group is unreadable."""
    reading = Reading()
    clean = _FL_SPECIAL.sub(lambda m: " " * len(m.group()), text)  # offsets stay put
    for m in _FL_RUN.finditer(clean):
        reading.found = True
        raw_label = m.group(1)
        label = raw_label.strip()
        lstart = m.start(1) + (raw_label.find(label) if label else 0)
        locs = list(_FL_LOC.finditer(m.group(2)))
        full, rest = divmod(len(locs), 4)
        for g in range(full):
            group = locs[4 * g : 4 * g + 4]
            values = tuple(float(x.group(1)) for x in group)
            span = (m.start(2) + group[0].start(), m.start(2) + group[-1].end())
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
