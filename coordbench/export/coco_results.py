"""Preset-scale predictions -> original COCO scale: results json and official-style scoring.

Upstream's test-dev exporter [UP-TESTDEV-EXPORT] rescales boxes by `sx = W_src / W_preset` (no
−1 correction), clamps to [0, W_src] and maps descs to official ids with the same semantic mapper
as the metrics. We do the same, with the metrics' own validation (`prepare_image`), mapper
(`map_descs`) and results order (`to_coco_preds`: record order, then pred order, [UP-TIE-ORDER]),
and
add `eval_original_scale`: the untouched COCO annotations (mask areas for the area buckets, crowd
regions that COCOeval ignores) instead of the preset GT [UP-CROWD-AREA].
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

from coordbench.config.options import DEFAULT_SEMANTIC_MODEL, EvalOptions
from coordbench.data.dataset import read_dataset_lines
from coordbench.errors import ArtifactError, DataError
from coordbench.metrics.coco import map_descs, to_coco_preds
from coordbench.metrics.ingest import (
    EvalImage,
    check_score_provenance,
    new_counters,
    prepare_image,
)
from coordbench.metrics.semantic import Encoder, Semantic
from coordbench.rundir import files as A

CATEGORIES_JSON = "categories.json"  # written next to the preset JSONLs by `coordbench data coco`


@dataclass
class Export:
    """What `build_export` made of a run: COCO results plus what was dropped and why."""

    results: list[dict[str, Any]]  # {image_id, category_id, bbox xywh (original px), score}
    image_ids: list[int]  # official ids of every evaluated record, in record order
    orig_sizes: dict[int, tuple[int, int]]
    counters: dict[str, int] = field(default_factory=new_counters)
    semantic_report: dict[str, Any] | None = None


# --------------------------------------------------------------------------- projection


def project_box(
    box_xyxy: list[float], preset_wh: tuple[int, int], orig_wh: tuple[int, int]
) -> list[float]:
    """xyxy in preset pixels -> original pixels: `x * W_orig / W_preset`, clamped to [0, W_orig]."""
    out = []
    for i, v in enumerate(box_xyxy):
        orig, preset = (orig_wh[0], preset_wh[0]) if i % 2 == 0 else (orig_wh[1], preset_wh[1])
        out.append(min(max(v * orig / preset, 0.0), float(orig)))
    return out


def _project_image(img: EvalImage, orig_wh: tuple[int, int]) -> EvalImage:
    wh = (img.width, img.height)
    out = EvalImage(img.index, img.file_name, *orig_wh)
    out.gts = [{**g, "bbox": project_box(g["bbox"], wh, orig_wh)} for g in img.gts]
    out.preds = [{**p, "bbox": project_box(p["bbox"], wh, orig_wh)} for p in img.preds]
    return out


def _bbox_obj(obj: dict[str, Any]) -> dict[str, Any]:
    out = {"type": "bbox_2d", "points": obj["bbox"], "desc": obj["desc"]}
    if "score" in obj:
        out["score"] = obj["score"]
    return out


def project_record_to_original(rec: dict, orig_w: int, orig_h: int) -> dict:
    """A scored record with its boxes at original scale (float xyxy `points`).

    Geometry is validated as the metrics do (clamped to the preset image, degenerate or invalid
    objects dropped, polygons -> their extent box), then scaled by `W_orig / W_preset`.
    """
    img = prepare_image(rec, 0, new_counters())
    if img is None:
        raise DataError(f"record {rec.get('image')!r} has no width/height to project from")
    proj = _project_image(img, (orig_w, orig_h))
    return {
        **rec,
        "width": orig_w,
        "height": orig_h,
        "preset_width": img.width,
        "preset_height": img.height,
        "coord_mode": "pixel",
        "gt": [_bbox_obj(g) for g in proj.gts],
        "pred": [_bbox_obj(p) for p in proj.preds],
    }


# --------------------------------------------------------------------------- inputs


def _dataset_path(run_dir: Path, head: dict[str, Any], data: Path | None) -> Path:
    if data is not None:
        path = Path(data)
    else:
        cfg_data = (head.get("config") or {}).get("data")
        if not cfg_data:
            raise ArtifactError(
                f"{run_dir / A.RUN_JSON} has no `config.data`; pass the dataset JSONL"
            )
        path = Path(cfg_data)
    if not path.is_file():
        raise DataError(
            f"dataset of run {run_dir} not found: {path} (pass its preset JSONL explicitly)"
        )
    return path


def _sample_key(rec: dict[str, Any]) -> str | None:
    """The runner's sample id: `image_id` when present, else `images[0]` (data/dataset.py)."""
    if rec.get("image_id") is not None:
        return str(rec["image_id"])
    images = rec.get("images")
    return str(images[0]) if isinstance(images, list) and images else None


def _dataset_index(path: Path) -> dict[str, dict[str, Any]]:
    return {k: rec for _, _, rec in read_dataset_lines(path) if (k := _sample_key(rec)) is not None}


def _positive_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool) and v > 0


def _original(
    rec: dict[str, Any], ds: dict[str, Any] | None, dataset: Path
) -> tuple[int, tuple[int, int]]:
    """(official image id, original (w, h)) of a scored record, from its dataset record."""
    key = rec.get("sample_id") or _sample_key(rec)
    if ds is None:
        raise DataError(
            f"sample {key!r} of the run is not in {dataset}: is this the run's dataset?"
        )
    ow, oh, iid = ds.get("orig_width"), ds.get("orig_height"), ds.get("image_id")
    if not (_positive_int(ow) and _positive_int(oh)):
        raise DataError(
            f"{dataset} has no `orig_width`/`orig_height` (sample {key!r}): original-scale export "
            "needs a COCO preset built by `coordbench data coco`"
        )
    if not isinstance(iid, int) or isinstance(iid, bool):
        raise DataError(f"{dataset}: sample {key!r} has no integer COCO `image_id`, got {iid!r}")
    if (ds.get("width"), ds.get("height")) != (rec.get("width"), rec.get("height")):
        raise DataError(
            f"sample {key!r} is {rec.get('width')}x{rec.get('height')} in the run but "
            f"{ds.get('width')}x{ds.get('height')} in {dataset}: not the run's dataset"
        )
    return iid, (ow, oh)


def load_categories(path: Path) -> list[dict[str, Any]]:
    """`[{id, name}, ...]` from a categories.json or a COCO annotations file."""
    try:
        obj = orjson.loads(path.read_bytes())
    except FileNotFoundError:
        raise DataError(
            f"{path} not found: original-scale export needs the COCO categories "
            "(written by `coordbench data coco`)"
        ) from None
    except orjson.JSONDecodeError as e:
        raise DataError(f"invalid JSON in {path}: {e}") from None
    cats = obj.get("categories") if isinstance(obj, dict) else obj
    return check_categories(cats, path)


def check_categories(cats: Any, where: Path | str) -> list[dict[str, Any]]:
    ok = (
        isinstance(cats, list)
        and cats
        and all(
            isinstance(c, dict) and _positive_int(c.get("id")) and isinstance(c.get("name"), str)
            for c in cats
        )
    )
    if not ok:
        raise DataError(f"{where}: expected a non-empty list of {{id, name}} COCO categories")
    return cats


def _semantic_options(head: dict[str, Any]) -> tuple[str, float]:
    """(model, threshold) the run was scored with: identity options first, then config."""
    ev = ((head.get("identity") or {}).get("options") or {}).get("eval") or {}
    cfg = head.get("config") or {}
    model = ev.get("semantic_model") or DEFAULT_SEMANTIC_MODEL
    thr = ev.get("semantic_threshold", cfg.get("semantic_threshold"))
    # a run.json without the option was scored with EvalOptions' default [UP-SEM-THRESHOLD]
    return str(model), float(EvalOptions.semantic_threshold if thr is None else thr)


# --------------------------------------------------------------------------- results


def build_export(
    run_dir: Path,
    *,
    categories: list[dict] | None = None,
    data: Path | None = None,
    encoder: Encoder | None = None,
) -> Export:
    """Project a run's scored predictions to original scale with official category ids."""
    run_dir = Path(run_dir)
    head = A.read_json(run_dir / A.RUN_JSON)
    scored = run_dir / A.SCORED
    if not scored.is_file():
        raise ArtifactError(f"{scored} not found: the run has not been scored yet")
    records, _ = A.read_jsonl(scored)
    if not records:
        raise ArtifactError(f"{scored} has no records")
    check_score_provenance(records)
    dataset = _dataset_path(run_dir, head, data)
    index = _dataset_index(dataset)
    exp = Export([], [], {})
    images = []
    for i, rec in enumerate(records):
        iid, orig = _original(
            rec, index.get(str(rec.get("sample_id") or _sample_key(rec))), dataset
        )
        img = prepare_image(rec, i, exp.counters)
        if img is None:
            continue
        img = _project_image(img, orig)
        img.index = iid  # COCO results carry the official image id
        images.append(img)
        exp.image_ids.append(iid)
        exp.orig_sizes[iid] = orig
    if categories is None:
        categories = load_categories(dataset.parent / CATEGORIES_JSON)
    cats = check_categories(categories, "the `categories` given")
    names = {c["name"].strip(): c["id"] for c in cats}
    model, threshold = _semantic_options(head)
    mapping, exp.semantic_report = map_descs(images, names, Semantic(model, encoder), threshold)
    exp.results = to_coco_preds(images, names, mapping, exp.counters)
    return exp


def coco_results(
    run_dir: Path,
    *,
    categories: list[dict] | None = None,
    data: Path | None = None,
    encoder: Encoder | None = None,
) -> list[dict]:
    """COCO results (`[{image_id, category_id, bbox: [x, y, w, h], score}]`) at original scale."""
    return build_export(run_dir, categories=categories, data=data, encoder=encoder).results


def write_results(path: Path, results: list[dict[str, Any]]) -> None:
    """The plain list COCO's `loadRes` and the test-dev server expect (no schema_version
    wrapper)."""
    A.write_bytes_atomic(Path(path), orjson.dumps(results))


# --------------------------------------------------------------------------- scoring


def load_annotations(path: Path, *, need_annotations: bool = True) -> dict[str, Any]:
    """A COCO json; test-dev's `image_info` files have no annotations (`need_annotations=False`)."""
    try:
        coco = orjson.loads(Path(path).read_bytes())
    except FileNotFoundError:
        raise DataError(f"annotation file not found: {path}") from None
    except orjson.JSONDecodeError as e:
        raise DataError(f"invalid JSON in {path}: {e}") from None
    keys = ("images", "annotations", "categories") if need_annotations else ("images", "categories")
    if not isinstance(coco, dict) or not all(isinstance(coco.get(k), list) for k in keys):
        raise DataError(f"{path}: not a COCO annotations file (needs {', '.join(keys)} lists)")
    return coco


def restrict_annotations(coco: dict[str, Any], exp: Export, where: Path) -> dict[str, Any]:
    """The annotations file cut to the run's images (every annotation kept, crowds included)."""
    wanted = set(exp.image_ids)
    images = [img for img in coco["images"] if isinstance(img, dict) and img.get("id") in wanted]
    found = {img["id"]: (img.get("width"), img.get("height")) for img in images}
    for iid in exp.image_ids:
        if iid not in found:
            raise DataError(f"image_id {iid} of the run is not in {where}: wrong annotations file?")
        if found[iid] != exp.orig_sizes[iid]:
            raise DataError(
                f"image_id {iid} is {found[iid][0]}x{found[iid][1]} in {where} but "
                f"{exp.orig_sizes[iid][0]}x{exp.orig_sizes[iid][1]} in the dataset"
            )
    anns = [
        a
        for a in coco.get("annotations") or []
        if isinstance(a, dict) and a.get("image_id") in wanted
    ]
    cats = sorted(coco["categories"], key=lambda c: c["id"])  # per-class rows follow catIds order
    return {
        "info": coco.get("info", {}),
        "licenses": coco.get("licenses", []),
        "images": images,
        "annotations": anns,
        "categories": cats,
    }
