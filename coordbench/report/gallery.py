"""Gallery of the worst images: GT and predicted boxes drawn with PIL, coloured TP/FP/FN at IoU 0.5.

Colours follow eval/matches.jsonl (the f1ish matching behind the F1 numbers): a prediction matched
with the right class is TP (green); unmatched or matched with the wrong class is FP (red); a GT
box left unmatched or matched with the wrong class is FN (orange, dashed), as upstream counts
`fp_full` / `fn_full` [UP-F1ISH]; out-of-scope predictions are grey. A matches row counts only
the objects the scorer accepted, so a record holding invalid boxes has its row mapped back to the
record's own positions; a record with no row at all (a run still in progress has no eval dir)
gets one from the same matcher (`metrics.f1`), with descs compared exactly since the report loads
no model. A missing or unreadable image becomes a grey canvas with the boxes on it and a note
naming the path: never a crash.
"""

from __future__ import annotations

import functools
import io
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from coordbench.data.dataset import allowed_roots, symlink_escape, unsafe_image_path
from coordbench.data.images import open_rgb
from coordbench.metrics.f1 import evaluate_f1, thr_key
from coordbench.metrics.ingest import new_counters, prepare_image
from coordbench.metrics.semantic import Semantic
from coordbench.report.curves import box_of, score_of
from coordbench.report.page import esc, fmt, img_tag

MAX_SIDE = 384  # brief: gallery images at most 384 px on the long side keep the page small
MIN_SIDE = 256  # tiny synthetic images (64-px preset) are enlarged so boxes and labels stay legible
RAW_TEXT_LIMIT = 2000  # brief: raw model text per item truncated to 2 000 characters
MAX_BOX_ROWS = 200  # a runaway answer can hold thousands of boxes; the page must stay small
COLOURS = {
    "tp": (26, 160, 46),
    "fp": (214, 39, 40),
    "fn": (240, 130, 0),
    "ignored": (140, 140, 140),
    "hit": (70, 150, 255),
}


@dataclass(frozen=True)
class Outcome:
    """Status per pred ('tp'|'fp'|'ignored'|None) and per GT ('fn'|'hit'|None) of one image."""

    pred: list[str | None]
    gt: list[str | None]

    def counts(self) -> dict[str, int]:
        return {"tp": self.pred.count("tp"), "fp": self.pred.count("fp"), "fn": self.gt.count("fn")}


def dataset_root(data: str | None, run_dir: Path) -> Path | None:
    """Folder of the dataset JSONL (record images are relative to it), tried as given then under
    run_dir."""
    if not isinstance(data, str) or not data:
        return None
    p = Path(data)
    candidates = [p] if p.is_absolute() else [p, run_dir / p]
    for c in candidates:
        if c.exists():
            return c.parent
    return next((c.parent for c in candidates if c.parent.is_dir()), None)


def _statuses(row: Any, n_pred: int, n_gt: int) -> Outcome | None:
    """Statuses of a matches.jsonl row for `n_pred` preds and `n_gt` GT, or None when it does not
    fit."""
    if not isinstance(row, dict) or row.get("gt_count") != n_gt or row.get("pred_count") != n_pred:
        return None
    ps: list[str | None] = [None] * n_pred
    gs: list[str | None] = [None] * n_gt
    try:
        for i in row.get("unmatched_pred_indices") or []:
            ps[i] = "fp"
        for i in row.get("ignored_pred_indices") or []:
            ps[i] = "ignored"
        for j in row.get("unmatched_gt_indices") or []:
            gs[j] = "fn"
        for m in row.get("matches") or []:
            ok = bool(m.get("sem_ok"))
            ps[m["pred_idx"]] = "tp" if ok else "fp"
            gs[m["gt_idx"]] = "hit" if ok else "fn"
    except (IndexError, KeyError, TypeError):
        return None
    return Outcome(ps, gs)


def outcome_from_matches(rec: dict, row: dict | None) -> Outcome | None:
    """Statuses from a matches.jsonl row, or None when the row does not fit the record."""
    return _statuses(row, len(rec.get("pred") or []), len(rec.get("gt") or []))


def _no_model(texts: list[str]) -> Any:
    """Encoder of the fallback: two different normalised descs have cosine 0 (exact match only)."""
    import numpy as np

    return np.zeros((len(texts), 1), np.float32)


def _positions(objs: list, invalid: list[dict]) -> list[int]:
    """Record positions of the objects the scorer kept (it keeps them in order, the rest aside)."""
    bad = {id(e.get("raw")) for e in invalid}
    return [j for j, o in enumerate(objs) if id(o) not in bad]


def outcome(rec: dict, row: dict | None, iou_threshold: float = 0.5) -> Outcome:
    """Statuses of one record: its matches row, mapped back to record positions when the scorer
    dropped invalid objects, or a row made by the eval's own matcher when there is none."""
    got = outcome_from_matches(rec, row)
    if got is not None:
        return got
    gt, pred = rec.get("gt") or [], rec.get("pred") or []
    unjudged = Outcome([None] * len(pred), [None] * len(gt))
    try:
        img = prepare_image(rec, 0, new_counters())
        if img is None:
            return unjudged
        got = _statuses(row, len(img.preds), len(img.gts))
        if got is None:
            f1 = evaluate_f1([img], (iou_threshold,), "all", Semantic("", _no_model), 1.0)
            got = _statuses(f1.matches[thr_key(iou_threshold)][0], len(img.preds), len(img.gts))
        p_pos, g_pos = _positions(pred, img.invalid_pred), _positions(gt, img.invalid_gt)
    except Exception:  # noqa: BLE001 - a hostile record must leave its boxes unjudged, never stop the report
        return unjudged
    if got is None or len(p_pos) != len(got.pred) or len(g_pos) != len(got.gt):
        return unjudged
    for e, j in enumerate(p_pos):
        unjudged.pred[j] = got.pred[e]
    for e, j in enumerate(g_pos):
        unjudged.gt[j] = got.gt[e]
    return unjudged


def worst_first(outcomes: list[Outcome]) -> list[int]:
    """Record positions by descending FP + FN (then dataset order)."""
    return sorted(
        range(len(outcomes)),
        key=lambda i: (-(outcomes[i].counts()["fp"] + outcomes[i].counts()["fn"]), i),
    )


@functools.lru_cache(maxsize=1)
def _font() -> Any:
    from PIL import ImageFont

    try:
        return ImageFont.load_default(size=11)
    except TypeError:  # Pillow < 10.1: bitmap font only
        return ImageFont.load_default()


def _display_size(w: int, h: int) -> tuple[int, int, float]:
    long = max(w, h, 1)
    scale = min(MAX_SIDE / long, max(1.0, MIN_SIDE / long))
    return max(1, round(w * scale)), max(1, round(h * scale)), scale


def _load(path: Path | None, size: tuple[int, int]) -> Any:
    """The image resized to `size`, or None when missing or unreadable (any decoder error)."""
    if path is None or not path.is_file():
        return None
    from PIL import Image

    try:  # draft: JPEG decodes at a reduced scale, much faster for big photos
        im = open_rgb(path, draft=size)
    except Exception:  # noqa: BLE001 - a bad image must degrade to a placeholder, never stop the report
        return None
    return im.resize(size, Image.Resampling.BILINEAR, reducing_gap=2.0)


def _dashed_rect(
    draw: Any, xy: tuple[float, float, float, float], colour: tuple, width: int, dash: int = 5
) -> None:
    x0, y0, x1, y1 = xy
    for a, b, horizontal, fixed in (
        (x0, x1, True, y0),
        (x0, x1, True, y1),
        (y0, y1, False, x0),
        (y0, y1, False, x1),
    ):
        t = a
        while t < b:
            e = min(t + dash, b)
            draw.line(
                [(t, fixed), (e, fixed)] if horizontal else [(fixed, t), (fixed, e)],
                fill=colour,
                width=width,
            )
            t += 2 * dash


def _label(draw: Any, x: float, y: float, text: str, colour: tuple) -> None:
    text = "".join(ch if ch.isprintable() else "?" for ch in text)[:32]
    font = _font()
    left, t, r, b = draw.textbbox((0, 0), text, font=font)
    w, h = r - left + 4, b - t + 2
    x = max(0.0, min(x, draw.im.size[0] - w))  # keep the label inside the image
    y = y - h if y - h >= 0 else y
    draw.rectangle([x, y, x + w, y + h], fill=colour)
    draw.text((x + 2, y + 1 - t), text, fill=(255, 255, 255), font=font)


def _draw(img: Any, rec: dict, oc: Outcome, scale: float) -> None:
    from PIL import ImageDraw

    draw = ImageDraw.Draw(img)
    lim = 4 * MAX_SIDE  # model boxes can be absurd; keep drawing coordinates in a sane range

    def sxy(b: tuple) -> tuple[float, float, float, float]:
        x0, y0, x1, y1 = (max(-lim, min(lim, v * scale)) for v in b)
        return x0, y0, x1, y1

    for g, st in zip(rec.get("gt") or [], oc.gt, strict=False):
        b = box_of(g)
        if b is not None and st is not None:
            x0, y0, x1, y1 = sxy(b)
            _dashed_rect(draw, (x0, y0, x1, y1), COLOURS[st], 2 if st == "fn" else 1)
            if st == "fn":  # below the box's bottom edge, so it does not hide a pred label
                _label(draw, x0, y1 + 14, f"GT {g.get('desc', '')}", COLOURS["fn"])
    for p, st in zip(rec.get("pred") or [], oc.pred, strict=False):
        b = box_of(p)
        if b is None or st is None:
            continue
        x0, y0, x1, y1 = sxy(b)
        draw.rectangle((x0, y0, x1, y1), outline=COLOURS[st], width=2)
        _label(draw, x0, y0, f"{p.get('desc', '')} {score_of(p):.2f}", COLOURS[st])


def _image_path(rel: Any, root: Path | None, image_root: Path | None = None) -> Path | None:
    """The record's image, or None: as the data loader, the report follows no `..` escape, no
    absolute path outside the data folder or the run's --image-root, and no symlink that
    resolves outside them (a hostile record must not embed arbitrary files)."""
    if not (isinstance(rel, str) and rel and root is not None):
        return None
    roots = allowed_roots(root / "data.jsonl", image_root)
    if unsafe_image_path(rel, roots) or symlink_escape(root, rel, roots):
        return None
    return Path(rel) if Path(rel).is_absolute() else root / rel


def render_image(
    rec: dict, root: Path | None, oc: Outcome, image_root: Path | None = None
) -> tuple[bytes, tuple[int, int], Path | None, bool]:
    """JPEG bytes of the record's image with boxes, its size, the path tried, and whether it was
    found."""
    from PIL import Image, ImageDraw

    path = _image_path(rec.get("image"), root, image_root)
    w, h = rec.get("width"), rec.get("height")
    if not (isinstance(w, int) and isinstance(h, int) and w > 0 and h > 0):
        w, h = MIN_SIDE, MIN_SIDE
    dw, dh, scale = _display_size(w, h)
    img = _load(path, (dw, dh))
    found = img is not None
    if img is None:
        img = Image.new("RGB", (dw, dh), (217, 217, 217))
        ImageDraw.Draw(img).text((6, 6), "image not found", fill=(90, 90, 90), font=_font())
    _draw(img, rec, oc, scale)
    buf = io.BytesIO()
    img.save(buf, "JPEG", quality=80)
    return buf.getvalue(), (dw, dh), path, found


def _boxes_table(rec: dict, oc: Outcome) -> str:
    rows = []
    for kind, objs, sts in (
        ("pred", rec.get("pred") or [], oc.pred),
        ("gt", rec.get("gt") or [], oc.gt),
    ):
        for obj, st in zip(objs, sts, strict=False):
            if isinstance(obj, dict):
                score = fmt(score_of(obj), 3) if kind == "pred" else ""
                cls = {"tp": "tp", "fp": "fp", "fn": "fn", "ignored": "ign"}.get(st or "", "")
                rows.append(
                    f'<tr><td class="{cls}">{esc(kind)} {esc(st or "-")}</td>'
                    f"<td>{esc(obj.get('desc'))}</td>"
                    f'<td class="num">{esc(score)}</td><td>{esc(obj.get("points"))}</td></tr>'
                )
    more = (
        f'<p class="muted">{len(rows) - MAX_BOX_ROWS} more boxes not listed</p>'
        if len(rows) > MAX_BOX_ROWS
        else ""
    )
    head = "<tr><th>box</th><th>desc</th><th>score</th><th>points</th></tr>"
    return f"<table>{head}{''.join(rows[:MAX_BOX_ROWS])}</table>{more}"


def gallery_item(
    pos: int, rec: dict, root: Path | None, oc: Outcome, image_root: Path | None = None
) -> str:
    """One figure: the drawn image (or placeholder note), caption, box list and raw model text."""
    data, size, path, found = render_image(rec, root, oc, image_root)
    c = oc.counts()
    missing = (
        ""
        if found
        else (
            f'<div class="missing">image not found: {esc(path if path else rec.get("image"))}</div>'
        )
    )
    raw = rec.get("raw_text")
    if raw is None:
        raw_html = '<p class="muted">no raw text recorded</p>'
    else:
        raw = str(raw)
        cut = (
            f"\n… ({len(raw) - RAW_TEXT_LIMIT} more characters)"
            if len(raw) > RAW_TEXT_LIMIT
            else ""
        )
        raw_html = f"<pre>{esc(raw[:RAW_TEXT_LIMIT] + cut)}</pre>"
    return (
        f"<figure>{img_tag(data, 'image/jpeg', str(rec.get('image', '')), size=size)}{missing}"
        f"<figcaption><strong>#{esc(rec.get('index', pos))}</strong> "
        f"{esc(rec.get('sample_id', ''))} · {esc(rec.get('image', ''))}<br>"
        f'<span class="tp">TP {c["tp"]}</span> · <span class="fp">FP {c["fp"]}</span> · '
        f'<span class="fn">FN {c["fn"]}</span>'
        f" · parse {esc(rec.get('parse_status', '-'))} · "
        f"finish {esc(rec.get('finish_reason', '-'))}</figcaption>"
        f"<details><summary>boxes</summary>{_boxes_table(rec, oc)}</details>"
        f"<details open><summary>raw model text</summary>{raw_html}</details></figure>"
    )


def gallery_html(
    records: list[dict],
    matches: dict[int, dict],
    root: Path | None,
    max_items: int,
    image_root: Path | None = None,
) -> str:
    """The gallery section body: the `max_items` worst images, worst first."""
    outcomes = [outcome(r, matches.get(i)) for i, r in enumerate(records)]
    chosen = worst_first(outcomes)[: max(0, max_items)]
    items = "".join(gallery_item(i, records[i], root, outcomes[i], image_root) for i in chosen)
    legend = (
        '<p><span class="tp">■ TP</span> <span class="fp">■ FP</span> '
        '<span class="fn">▭ FN (dashed GT)</span> '
        '<span class="ign">■ out of scope</span> · thin blue dashed: matched GT · '
        "labels: desc score · "
        f"{len(chosen)} of {len(records)} images, most FP+FN first (IoU 0.5)</p>"
    )
    return legend + f'<div class="grid">{items}</div>'
