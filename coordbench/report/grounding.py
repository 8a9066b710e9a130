"""Report sections of the grounding task: the per-split table and a gallery of expression, GT
box, top-1 predicted box and IoU, misses first (the worst IoU first among them)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from coordbench.metrics.grounding import top1
from coordbench.report.gallery import Outcome, render_image
from coordbench.report.page import esc, fmt, img_tag, table


def per_split_section(metrics_doc: dict[str, Any]) -> str:
    splits = metrics_doc.get("per_split")
    if not isinstance(splits, dict) or not splits:
        return '<h2>Per split</h2><p class="muted">eval/metrics.json has no per_split table</p>'
    rows = [
        (
            name,
            m.get("grounding_n"),
            m.get("grounding_Acc@0.5"),
            m.get("grounding_Acc@0.75"),
            m.get("grounding_mIoU"),
        )
        for name, m in splits.items()
        if isinstance(m, dict)
    ]
    return "<h2>Per split</h2>" + table(["split", "n", "Acc@0.5", "Acc@0.75", "mIoU"], rows)


def _top1_record(rec: dict[str, Any]) -> dict[str, Any]:
    """The record with only its top-1 prediction, the box the metric scores."""
    preds = [p for p in rec.get("pred") or [] if isinstance(p, dict)]
    best = top1(preds)
    return {**rec, "pred": [] if best is None else [best]}


def gallery_section(
    records: list[dict[str, Any]],
    per_sample: list[dict[str, Any]],
    root: Path | None,
    max_items: int,
    image_root: Path | None = None,
) -> str:
    """Misses first (lowest IoU first), then hits; each item: the image with the GT box
    (orange when missed) and the top-1 box (green hit, red miss), the expression and the IoU."""
    if max_items <= 0 or not records:
        return ""
    by_id = {r.get("sample_id"): r for r in records}
    rows = [r for r in per_sample if isinstance(r, dict) and r.get("sample_id") in by_id]
    rows.sort(key=lambda r: (r.get("hit@0.5", 0), r.get("iou", 0.0)))
    items = []
    for row in rows[:max_items]:
        rec = _top1_record(by_id[row["sample_id"]])
        hit = bool(row.get("hit@0.5"))
        oc = Outcome(pred=["tp" if hit else "fp"] * len(rec["pred"]), gt=["hit" if hit else "fn"])
        jpeg, (w, h), _, found = render_image(rec, root, oc, image_root)
        caption = (
            f"{'hit' if hit else 'MISS'} · IoU {fmt(row.get('iou'))} · split "
            f"{row.get('split')} · “{row.get('query') or ''}”"
            + ("" if row.get("pred_box") is not None else " · no box in the answer")
        )
        items.append(
            '<figure class="item">'
            + img_tag(jpeg, "image/jpeg", str(row.get("query") or ""), "thumb")
            + f"<figcaption>{esc(caption)}"
            + ("" if found else " (image not found)")
            + "</figcaption></figure>"
        )
    n_miss = sum(1 for r in rows if not r.get("hit@0.5"))
    head = f"<h2>Gallery: {n_miss} misses of {len(rows)} expressions, misses first</h2>"
    return head + "".join(items)
