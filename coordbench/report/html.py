"""Self-contained HTML reports: `write_run_report` for a run dir, `write_compare_report` for
compare.

The run report reads only the run dir's files (schema: [ARCH-RUN-DIR]) and the dataset images; every
file is optional, so a partial or damaged run still gets a page that says what is missing. It
computes no metric of its own: the calibration table and the reliability diagram print the
`calibration` dict of eval/metrics.json, the PR curves use the same COCOeval matching over
eval/coco_gt.json + eval/coco_preds.json, and GT counts per class are eval/metrics.json's.
"""

from __future__ import annotations

import csv
import logging
from pathlib import Path
from typing import Any

import orjson

from coordbench.errors import ArtifactError
from coordbench.metrics.calibration import Detections, matched_detections
from coordbench.metrics.summary import PARSE_STATUSES
from coordbench.report import grounding as grounding_report
from coordbench.report.gallery import dataset_root, gallery_html
from coordbench.report.page import esc, fmt, img_tag, kv_table, page, table
from coordbench.report.plots import calibration_figure, calibration_label, pr_figure
from coordbench.rundir import files as A
from coordbench.rundir import layout as L
from coordbench.rundir.csvcells import class_label, dict_rows, restore_cell
from coordbench.rundir.layout import RunDir
from coordbench.tasks import Task, task_of

log = logging.getLogger("coordbench")

PLOT_IOU = 0.5  # brief: PR and calibration at IoU 0.5 (COCO AP50 / F1@0.5 threshold)


def _json(path: Path) -> dict:
    """A JSON object file, or {} when missing, unreadable or not an object."""
    try:
        obj = orjson.loads(path.read_bytes())
    except (OSError, orjson.JSONDecodeError):
        return {}
    return obj if isinstance(obj, dict) else {}


def _jsonl(path: Path) -> tuple[list[dict], int]:
    """Rows of a JSONL file and the number of unreadable lines skipped (a report never refuses)."""
    try:
        data = path.read_bytes()
    except OSError:
        return [], 0
    return A.parse_jsonl_lenient(data)


def _detections(eval_dir: Path) -> Detections | None:
    """The evaluated detections (COCOeval matching at IoU 0.5) of the eval dir's COCO files, or
    None."""
    try:
        coco_gt = orjson.loads((eval_dir / L.COCO_GT).read_bytes())
        coco_preds = orjson.loads((eval_dir / L.COCO_PREDS).read_bytes())
        return matched_detections(coco_gt, coco_preds)
    except Exception:  # noqa: BLE001 - missing, torn or foreign COCO files: no PR curve, no crash
        return None


def _calibration(metrics_doc: dict, summary: dict) -> dict | None:
    """The evaluation's calibration dict (eval/metrics.json, else summary.json), None if
    unusable."""
    for calib in (metrics_doc.get("calibration"), summary.get("calibration")):
        if isinstance(calib, dict) and isinstance(calib.get("bins"), list):
            return calib
    return None


def _per_class(path: Path) -> list[tuple[str, float]]:
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        return []
    out = []
    try:
        for row in dict_rows(text):
            try:
                ap = float(row.get("AP") or "nan")
            except ValueError:
                ap = float("nan")
            out.append((restore_cell(row.get("category") or ""), ap))
    except csv.Error as e:
        log.warning("%s: per-class table left out of the report (%s)", path, e)
        return []
    return out


def _load_records(run_dir: Path) -> tuple[list[dict], str, int]:
    """Scored records (raw text joined from gt_vs_pred when missing), their source file, bad
    lines."""
    scored, bad = _jsonl(run_dir / A.SCORED)
    if not scored:
        recs, bad2 = _jsonl(run_dir / A.GT_VS_PRED)
        return recs, A.GT_VS_PRED if recs else "", bad + bad2
    if any("raw_text" not in r for r in scored):
        raw, _ = _jsonl(run_dir / A.GT_VS_PRED)
        by_id = {r.get("sample_id"): r.get("raw_text") for r in raw if "raw_text" in r}
        scored = [
            r
            if "raw_text" in r or r.get("sample_id") not in by_id
            else {**r, "raw_text": by_id[r.get("sample_id")]}
            for r in scored
        ]
    return scored, A.SCORED, bad


def _d(value: Any) -> dict:
    return value if isinstance(value, dict) else {}


def _seconds(sessions: list[dict]) -> float:
    total = 0.0
    for s in sessions:
        try:
            total += float(s.get("generate_seconds") or 0)
        except (TypeError, ValueError):
            pass
    return total


def _s(value: Any, default: str = "-") -> str:
    """A header cell: never a raw `None`."""
    return default if value is None or value == "" else str(value)


def _verdict(summary: dict) -> str:
    """The diagnostics' verdict lines, shown first so a broken run is visible before any table."""
    diag = _d(summary.get("diagnostics"))
    warnings = [w for w in diag.get("warnings") or [] if isinstance(w, str)]
    if not summary:
        return '<div class="verdict"><p class="warn">no summary.json: not scored yet</p></div>'
    if not warnings:
        return '<div class="verdict"><p class="muted">diagnostics: no warnings</p></div>'
    items = "".join(f'<li class="warn">{esc(w)}</li>' for w in warnings)
    return f'<div class="verdict"><p class="warn">diagnostics:</p><ul>{items}</ul></div>'


def _header(run_dir: Path, head: dict, summary: dict) -> str:
    ident, cfg, prov = _d(head.get("identity")), _d(head.get("config")), _d(head.get("provenance"))
    ck, ds, pr = _d(ident.get("checkpoint")), _d(ident.get("dataset")), _d(ident.get("prompt"))
    decode = _d(ident.get("decode")) or _d(summary.get("generation"))
    sessions = [_d(_d(s).get("generation")) for s in prov.get("sessions") or []]
    gen_s = _seconds(sessions)
    # rundir.md: a run without finished_at or without summary.json is partial / in progress
    finished = bool(prov.get("finished_at")) and bool(summary)
    status = (
        '<span class="badge">finished</span>'
        if finished
        else '<span class="badge partial">partial / in progress</span>'
    )
    pairs = [
        ("identity hash", head.get("identity_hash") or summary.get("identity_hash")),
        (
            "checkpoint",
            _s(cfg.get("ckpt"), "embedded default model")
            + (f" + adapter {cfg['adapter']}" if cfg.get("adapter") else ""),
        ),
        ("checkpoint sha256", ck.get("sha256")),
        ("dataset", cfg.get("data") or _d(summary.get("infer")).get("gt_jsonl")),
        (
            "samples",
            f"{_s(ds.get('num_samples'))} "
            + ("(no limit)" if ds.get("limit") is None else f"(limit {ds.get('limit')})"),
        ),
        ("preset", ident.get("preset")),
        (
            "prompt",
            f"{pr.get('name', '-')} · layout {pr.get('layout', '-')} · "
            f"surface {pr.get('surface', '-')} · hash {pr.get('template_hash', '-')}",
        ),
        ("decode", ", ".join(f"{k}={v}" for k, v in decode.items() if k != "seed")),
        ("seed", ident.get("seed", decode.get("seed"))),
        (
            "backend",
            f"{_s(ident.get('backend'))} · device {_s(cfg.get('device'))} · "
            f"dtype {_s(cfg.get('dtype'))} · "
            f"batch {prov.get('batch_size', cfg.get('batch_size', '-'))} · "
            f"world {prov.get('world_size', 1)}",
        ),
        (
            "wall time",
            f"{fmt(prov.get('wall_seconds'), 1)} s (generate {gen_s:.1f} s, "
            f"score {fmt(prov.get('score_seconds'), 1)} s)",
        ),
        ("samples/s", fmt(prov.get("samples_per_s"), 3)),
        ("decode tokens/s", fmt(sessions[-1].get("decode_tokens_per_s"), 1) if sessions else "-"),
        ("versions", " · ".join(f"{k} {v}" for k, v in _d(prov.get("versions")).items()) or "-"),
        (
            "git / started / finished",
            f"{_s(prov.get('git_sha'))} · {_s(prov.get('started_at'))} · "
            f"{_s(prov.get('finished_at'))}",
        ),
    ]
    name = cfg.get("name") or run_dir.name
    return (
        f"<h1>coordbench run: {esc(name)} {status}</h1>{_verdict(summary)}"
        f'<p class="muted">{esc(run_dir)}</p>{kv_table(pairs)}'
    )


def _metric(value: Any) -> Any:
    # pycocotools reports -1 for an area range with no GT [UP-COCO-EVAL]; say so instead of
    # "-1.0000"
    return "n/a (-1: no GT in range)" if value == -1 else value


def _summary_section(summary: dict, metrics: dict, calib: dict | None, task: Task) -> str:
    m = _d(summary.get("metrics")) or metrics
    out = [
        "<h2>Summary</h2>",
        table(
            ["metric", "key", "value"],
            [(label, key, _metric(m.get(key))) for label, key in task.headline_keys()],
        ),
    ]
    counts = _d(_d(summary.get("parse")).get("counts"))
    if counts:
        n = {s: v if isinstance(v := counts.get(s, 0), int) else 0 for s in PARSE_STATUSES}
        total = max(1, sum(n.values()))
        rows = [(s, n[s], n[s] / total) for s in PARSE_STATUSES]
        out.append("<h3>Parse status</h3>" + table(["status", "count", "rate"], rows))
    if calib:
        out.append(
            "<h3>Calibration (eval/metrics.json)</h3>"
            + kv_table((k, v) for k, v in calib.items() if not isinstance(v, dict | list))
        )
        qbins = [b for b in calib.get("quantile_bins") or [] if isinstance(b, dict)]
        if qbins:
            keys = ("lo", "hi", "count", "mean_score", "tp_rate")
            out.append(
                "<h3>TP rate by score quantile</h3>"
                + table(
                    ["score from", "score to", "preds", "mean score", "fraction TP"],
                    [tuple(b.get(k) for k in keys) for b in qbins],
                )
            )
    diag = _d(summary.get("diagnostics"))
    warnings = diag.get("warnings") if isinstance(diag.get("warnings"), list) else []
    out.append("<h3>Diagnostics</h3>")
    out.append(
        "<ul>" + "".join(f'<li class="warn">{esc(w)}</li>' for w in warnings) + "</ul>"
        if warnings
        else '<p class="muted">no warnings</p>'
    )
    scalars = [
        (k, v) for k, v in diag.items() if k != "warnings" and not isinstance(v, dict | list)
    ]
    if scalars:
        out.append(kv_table(scalars))
    return "".join(out)


def _per_class_section(rows: list[tuple[str, float]], n_gt: dict[str, int]) -> str:
    if not rows:
        return '<h2>Per-class AP</h2><p class="muted">eval/per_class.csv not available</p>'

    body = [(class_label(cat), ap, n_gt.get(cat, "-")) for cat, ap in rows]
    return "<h2>Per-class AP</h2>" + table(["category", "AP (COCO, IoU .50:.95)", "GT boxes"], body)


def _plots_section(det: Detections | None, calib: dict | None) -> str:
    if det is None and calib is None:
        return ""
    try:
        pr_png = None if det is None else pr_figure(det, PLOT_IOU)
        cal_png = None if calib is None else calibration_figure(calib)
    except (ImportError, KeyError, TypeError, ValueError) as e:  # no matplotlib; a damaged dict
        return f'<h2>Plots</h2><p class="muted">plots unavailable: {esc(e)}</p>'
    note = (
        "COCOeval matching at IoU 0.5 (area all, at most 100 detections per image and class), "
        "the detections and matching of the COCO numbers and the calibration table."
    )
    parts = [f'<h2>Precision-recall and calibration</h2><p class="muted">{esc(note)}</p>']
    if pr_png is not None:
        parts.append(img_tag(pr_png, "image/png", "precision-recall curves", "plot"))
    else:
        parts.append(
            '<p class="muted">PR curves: eval/coco_gt.json or coco_preds.json unreadable</p>'
        )
    if cal_png is not None and calib is not None:
        label = calibration_label(calib)
        parts.append(img_tag(cal_png, "image/png", label, "plot"))
        parts.append(f'<p class="calibration">{esc(label)}</p>')
    else:
        parts.append(
            '<p class="muted">reliability diagram: no calibration in eval/metrics.json</p>'
        )
    return "".join(parts)


class _Context:
    """What the report's sections read: the run's files, loaded once."""

    def __init__(self, run_dir, head, summary, metrics_doc, metrics, calib, det, records, source):
        self.run_dir, self.head, self.summary = run_dir, head, summary
        self.metrics_doc, self.metrics, self.calib, self.det = metrics_doc, metrics, calib, det
        self.records, self.source = records, source
        self.task: Task | None = None
        self.matches: dict = {}
        self.max_gallery = 0


def _per_class_ap(ctx: _Context) -> str:
    det = ctx.det
    n_gt = _d(ctx.metrics_doc.get("per_class_gt")) or (det.n_gt if det is not None else {})
    return _per_class_section(_per_class(RunDir(ctx.run_dir).eval.per_class), n_gt)


def _gallery(ctx: _Context) -> str | None:
    head, summary, records = ctx.head, ctx.summary, ctx.records
    if ctx.max_gallery > 0 and records:
        data = _d(head.get("config")).get("data") or _d(summary.get("infer")).get("gt_jsonl")
        ir = _d(head.get("config")).get("image_root")
        image_root = Path(ir) if isinstance(ir, str) and ir else None
        root = dataset_root(data, ctx.run_dir)
        return f"<h2>Gallery ({esc(ctx.source)})</h2>" + gallery_html(
            records, ctx.matches, root, ctx.max_gallery, image_root
        )
    if not records:
        return '<h2>Gallery</h2><p class="muted">no records in this run dir</p>'
    return None


def _grounding_gallery(ctx: _Context) -> str | None:
    per_sample, _ = _per_sample(RunDir(ctx.run_dir).eval.per_image)
    head = ctx.head
    data = _d(head.get("config")).get("data") or _d(ctx.summary.get("infer")).get("gt_jsonl")
    ir = _d(head.get("config")).get("image_root")
    image_root = Path(ir) if isinstance(ir, str) and ir else None
    root = dataset_root(data, ctx.run_dir)
    html = grounding_report.gallery_section(
        ctx.records, per_sample, root, ctx.max_gallery, image_root
    )
    return html or None


def _per_sample(path: Path) -> tuple[list[dict], int]:
    """per_image.json rows (a list), or [] when missing or unreadable."""
    try:
        rows = orjson.loads(path.read_bytes())
    except (OSError, orjson.JSONDecodeError):
        return [], 0
    return (rows if isinstance(rows, list) else []), 0


# a task's `report_sections` name these, in the order they appear
SECTIONS = {
    "per_split": lambda ctx: grounding_report.per_split_section(ctx.metrics_doc),
    "grounding_gallery": _grounding_gallery,
    "summary": lambda ctx: _summary_section(ctx.summary, ctx.metrics, ctx.calib, ctx.task),
    "per_class_ap": _per_class_ap,
    "plots": lambda ctx: _plots_section(ctx.det, ctx.calib),
    "gallery": _gallery,
}


def write_run_report(run_dir: Path, *, max_gallery: int = 24) -> Path:
    """Write `run_dir/report.html` from the run's files and return its path."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise ArtifactError(f"run dir not found: {run_dir}")
    head, summary = _json(run_dir / A.RUN_JSON), _json(run_dir / A.SUMMARY)
    metrics_doc = _json(RunDir(run_dir).eval.metrics)
    metrics = _d(metrics_doc.get("metrics"))
    calib = _calibration(metrics_doc, summary)
    det = _detections(RunDir(run_dir).eval.root)
    records, source, bad = _load_records(run_dir)
    rows, _ = _jsonl(RunDir(run_dir).eval.primary_matches)
    matches = {
        r["image_id"]: r
        for r in rows
        if isinstance(r.get("image_id"), int) and r.get("iou_thr") == PLOT_IOU
    }
    parts = [_header(run_dir, head, summary)]
    if bad:
        parts.append(f'<p class="warn">{bad} unreadable JSONL lines skipped</p>')
    task = task_of(head.get("identity"))
    ctx = _Context(run_dir, head, summary, metrics_doc, metrics, calib, det, records, source)
    ctx.task, ctx.matches, ctx.max_gallery = task, matches, max_gallery
    for name in task.report_sections:
        section = SECTIONS[name](ctx)
        if section is not None:  # None: nothing to show, not even a heading
            parts.append(section)
    out = RunDir(run_dir).report
    A.write_bytes_atomic(out, A.utf8(page(f"coordbench · {run_dir.name}", "\n".join(parts))))
    return out


def _rows_table(title: str, rows: Any, columns: list | None = None) -> str:
    """A titled table from a list of dicts (columns = union of keys) or a list of lists."""
    rows = list(rows or [])
    if rows and all(isinstance(r, dict) for r in rows):
        columns = columns or list(dict.fromkeys(k for r in rows for k in r))
        body = [[r.get(c) for c in columns] for r in rows]
    else:
        body = [list(r) if isinstance(r, list | tuple) else [r] for r in rows]
        if columns is None and body:
            columns, body = body[0], body[1:]
    heading = f"<h2>{esc(title)}</h2>" if title else ""
    return heading + table(columns or [], body)


def write_compare_report(compare_data: dict, out_path: Path) -> Path:
    """Render a compare result to one self-contained HTML page and return its path.

    `compare_data`: optional `title` (str), `caveats` / `notes` (lists of str), and `tables`, either
    a list of `{"title", "columns"?, "rows"}` or a dict title -> rows; rows are dicts, or lists
    whose first row is the header when no `columns` is given. Other list-valued keys render as
    tables too.
    """
    title = str(compare_data.get("title") or "coordbench compare")
    parts = [f"<h1>{esc(title)}</h1>"]
    for key in ("caveats", "notes"):
        items = compare_data.get(key) or []
        if items:
            cls = ' class="warn"' if key == "caveats" else ""
            parts.append(
                f"<h2>{esc(key)}</h2><ul>"
                + "".join(f"<li{cls}>{esc(i)}</li>" for i in items)
                + "</ul>"
            )
    tables = compare_data.get("tables") or []
    if isinstance(tables, dict):
        tables = [{"title": k, "rows": v} for k, v in tables.items()]
    for t in tables:
        if isinstance(t, dict):
            parts.append(_rows_table(str(t.get("title", "")), t.get("rows"), t.get("columns")))
    for key, value in compare_data.items():
        if key not in ("title", "caveats", "notes", "tables") and isinstance(value, list):
            parts.append(_rows_table(key, value))
    out_path = Path(out_path)
    A.write_bytes_atomic(out_path, A.utf8(page(title, "\n".join(parts))))
    return out_path
