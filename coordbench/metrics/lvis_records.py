"""A federated LVIS run's scored records -> lvis-api's federated evaluation [ARCH-LVIS].

The records go through the detection ingest (the same validation and pixel boxes); free-text
labels map to LVIS categories by their names and synonyms first (case and `_`/space folded),
and only then by the semantic encoder, as upstream maps descs. Each record's federated lists
(`neg_category_ids`, `not_exhaustive_category_ids`, LVIS ids) come with it; GT areas are the
boxes' areas in the record's (preset) frame, as every coordbench run scores (the eval pair
`--lvis-gt/--lvis-dt` uses the annotation file's own areas).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from coordbench.config.options import EvalOptions
from coordbench.errors import DataError
from coordbench.metrics.coco import per_class_ap
from coordbench.metrics.detection import coco_inputs_for, ingest
from coordbench.metrics.eval_files import per_class_csv
from coordbench.metrics.lvis_eval import LvisDets, lvis_evaluate
from coordbench.metrics.pred_table import pred_table
from coordbench.metrics.semantic import Semantic
from coordbench.rundir import files as A
from coordbench.rundir.layout import COCO_GT, COCO_PREDS, METRICS, PER_CLASS


def _fold(name: str) -> str:
    return " ".join(str(name).replace("_", " ").lower().split())


@dataclass
class LvisResult:
    metrics: dict[str, float]
    counters: dict[str, int]
    per_class: list[tuple[str, float]]
    frequency: list[str]
    coco_gt: dict[str, Any]
    coco_preds: list[dict[str, Any]]
    diagnostics: dict[str, Any] = field(default_factory=lambda: {"warnings": []})
    calibration: dict[str, Any] | None = None


def synonym_map(categories: list[dict[str, Any]]) -> dict[str, str]:
    """Folded name or synonym -> canonical LVIS name (a name wins over another's synonym)."""
    out: dict[str, str] = {}
    for c in categories:
        for s in c.get("synonyms") or []:
            out.setdefault(_fold(s), str(c["name"]))
    for c in categories:
        out[_fold(c["name"])] = str(c["name"])
    return out


def _canonical(records: list[dict[str, Any]], syn: dict[str, str]) -> tuple[list[dict], int]:
    n = 0
    out = []
    for r in records:
        preds = r.get("pred")
        if isinstance(preds, list):
            new = []
            for p in preds:
                if isinstance(p, dict) and isinstance(p.get("desc"), str):
                    name = syn.get(_fold(p["desc"]))
                    if name is not None and name != p["desc"]:
                        p = {**p, "desc": name}
                        n += 1
                new.append(p)
            r = {**r, "pred": new}
        out.append(r)
    return out, n


def _federated_lists(rec: dict[str, Any], pos: dict[Any, int], i: int) -> dict[str, list[int]]:
    out = {}
    for key in ("neg_category_ids", "not_exhaustive_category_ids"):
        ids = rec.get(key)
        if not isinstance(ids, list):
            raise DataError(
                f"record {i} (sample {rec.get('sample_id')!r}) has no `{key}`: an LVIS "
                "(federated) run needs every record built by `coordbench data lvis`"
            )
        bad = [c for c in ids if c not in pos]
        if bad:
            raise DataError(f"record {i}: {key} names categories {bad[:5]} not in categories.json")
        out[key] = [pos[c] for c in ids]
    return out


def evaluate_lvis_records(
    records: list[dict[str, Any]],
    options: EvalOptions,
    categories: list[dict[str, Any]] | None,
    invalid_json: int = 0,
) -> LvisResult:
    if not categories or any(c.get("frequency") not in ("r", "c", "f") for c in categories):
        raise DataError(
            "an LVIS run needs the data set's categories.json with each category's frequency "
            "(r/c/f), as `coordbench data lvis` writes it"
        )
    cats = sorted(categories, key=lambda c: c["id"])
    records, n_syn = _canonical(records, synonym_map(cats))
    images, counters = ingest(records, invalid_json)
    table = pred_table(images)
    semantic = Semantic(options.semantic_model)
    names = [str(c["name"]) for c in cats]
    inputs = coco_inputs_for(images, counters, options, semantic, names, table)
    gt = inputs.coco_gt
    if len(gt["categories"]) != len(cats):
        extra = [c["name"] for c in gt["categories"][len(cats) :]]
        raise DataError(f"GT descs outside the LVIS categories: {extra[:5]}")
    pos = {c["id"]: k + 1 for k, c in enumerate(cats)}  # LVIS id -> the evaluation's id
    for im in gt["images"]:
        im.update(_federated_lists(records[im["id"]], pos, im["id"]))
    for c, lc in zip(gt["categories"], cats, strict=True):
        c["frequency"] = lc["frequency"]
    d = inputs.dets
    out = lvis_evaluate(gt, LvisDets(d.image_id, d.category_id, d.bbox, d.score))
    per_class = per_class_ap(out.precision[..., None, None], names)
    diag = {f"lvis_diag_{k}": v for k, v in out.counters.items()}
    counters = {**counters, **diag, "lvis_synonym_mapped": n_syn}
    metrics = {f"lvis_{k}": v for k, v in out.stats.items()}
    return LvisResult(metrics, counters, per_class, [c["frequency"] for c in cats], gt, d.dicts())


def write_lvis_eval(result: LvisResult, eval_dir: Path) -> None:
    """metrics.json (lvis_* stats, counters with lvis_diag_*, per-class AP and frequency),
    per_class.csv (category, AP, then frequency), coco_gt.json / coco_preds.json (the exact
    inputs, the GT with its federated lists)."""
    eval_dir = Path(eval_dir)
    eval_dir.mkdir(parents=True, exist_ok=True)
    doc = {
        "schema_version": A.SCHEMA_VERSION,
        "metrics": result.metrics,
        "counters": result.counters,
        "per_class_ap": {n: (None if math.isnan(v) else v) for n, v in result.per_class},
        "per_class_frequency": {
            n: f for (n, _), f in zip(result.per_class, result.frequency, strict=True)
        },
        "diagnostics": result.diagnostics,
    }
    A.write_json(eval_dir / METRICS, doc)
    rows = per_class_csv(result.per_class).split("\n")
    rows = [rows[0] + ",frequency"] + [
        r + "," + f for r, f in zip(rows[1:], result.frequency, strict=True)
    ]
    A.write_bytes_atomic(eval_dir / PER_CLASS, A.utf8("\n".join(rows)))
    A.write_json(eval_dir / COCO_GT, result.coco_gt)
    A.write_json(eval_dir / COCO_PREDS, result.coco_preds)
