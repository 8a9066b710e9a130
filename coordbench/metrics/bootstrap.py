"""Image-level paired bootstrap of metric deltas between two evaluations of the same images.

COCO's per-(image, category, area) matching is computed once per run (`coco_images`); each
resample re-runs only the accumulate step over the resampled multiset of images (`resample`),
which equals COCOeval on that set with duplicated images renamed. F1-ish metrics come from the
per-image counts of per_image.json. Images are paired by key (the record's `image`), so two runs
are compared on exactly the same resampled images.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from coordbench.errors import ArtifactError
from coordbench.metrics.coco_images import AREA_NAMES, PerImageEval, per_image_eval
from coordbench.metrics.detection import unique_keys
from coordbench.metrics.resample import STATS, CocoResampler
from coordbench.rundir import files as A
from coordbench.rundir import layout as L

DEFAULT_METRICS = (
    "bbox_AP",
    "bbox_AP50",
    "bbox_AP75",
    "bbox_AR1",
    "bbox_AR100",
    "f1ish@0.50_f1_full_micro",
    "f1ish@0.50_f1_loc_micro",
    "f1ish@0.30_f1_full_micro",
)
F1_RE = re.compile(r"^f1ish@(\d\.\d\d)_(precision|recall|f1)_(loc|full)_(micro|macro)$")


@dataclass
class BootstrapData:
    """What the bootstrap needs from one evaluation: image keys, COCO dicts, per-image F1 counts.

    `method` makes the per-image COCO matching: "numpy" (coordbench's vectorised evaluateImg)
    or "pycocotools" (the reference, slow on large sets).
    """

    image_keys: list[str]
    coco_gt: dict[str, Any]
    coco_preds: list[dict[str, Any]]
    f1_counts: list[dict[str, dict[str, Any]]]  # per image: {thr key: per_image f1ish counts}
    method: str = "numpy"
    _pie: dict[tuple[str, ...], PerImageEval] = field(default_factory=dict, repr=False)
    _f1: dict[tuple[str, str], np.ndarray] = field(default_factory=dict, repr=False)

    @classmethod
    def from_result(cls, result: Any, method: str = "numpy") -> BootstrapData:
        counts = [row.get("f1ish", {}) for row in result.per_image]
        return cls(list(result.image_keys), result.coco_gt, result.coco_preds, counts, method)

    @classmethod
    def from_eval_dir(cls, eval_dir: str | Path, method: str = "numpy") -> BootstrapData:
        """Rebuild from an eval dir written by `write_eval_dir` (or upstream's: same schema)."""
        d = Path(eval_dir)
        per_image = A.read_json(d / L.PER_IMAGE)
        coco_gt, coco_preds = A.read_json(d / L.COCO_GT), A.read_json(d / L.COCO_PREDS)
        if not isinstance(per_image, list) or not isinstance(coco_preds, list):
            raise ArtifactError(f"{d}: per_image.json and coco_preds.json must be JSON lists")
        if [r.get("image_id") for r in per_image] != sorted(
            im["id"] for im in coco_gt.get("images", [])
        ):
            raise ArtifactError(f"{d}: per_image.json and coco_gt.json list different images")
        keys = unique_keys([str(r.get("file_name")) for r in per_image])
        return cls(keys, coco_gt, coco_preds, [r.get("f1ish", {}) for r in per_image], method)

    def coco(self, stats: tuple[str, ...]) -> CocoResampler:
        """A resampler for these COCO stats; the per-image matching is computed once
        per area set."""
        areas = tuple(a for a in AREA_NAMES if any(STATS[s][1] == a for s in stats))
        if areas not in self._pie:
            self._pie[areas] = per_image_eval(self.coco_gt, self.coco_preds, self.method, areas)
        return CocoResampler(self._pie[areas], stats)


def resample_counts(n_images: int, n_resamples: int, rng: np.random.Generator) -> np.ndarray:
    """(B, n) how often each image is drawn in each of B resamples of n images with replacement."""
    draws = rng.integers(0, n_images, size=(n_resamples, n_images))
    flat = (draws + np.arange(n_resamples)[:, None] * n_images).ravel()
    return np.bincount(flat, minlength=n_resamples * n_images).reshape(n_resamples, n_images)


def _prf(tp: np.ndarray, fp: np.ndarray, fn: np.ndarray) -> dict[str, np.ndarray]:
    """Vectorised f1.prf: P = 1 without predictions, R = 1 without GT, F1 = 0 when P + R = 0."""
    p = np.where(tp + fp > 0, tp / np.maximum(tp + fp, 1), 1.0)
    r = np.where(tp + fn > 0, tp / np.maximum(tp + fn, 1), 1.0)
    f1 = np.where(p + r > 0, 2 * p * r / np.where(p + r > 0, p + r, 1.0), 0.0)
    return {"precision": p, "recall": r, "f1": f1}


def f1_counts(data: BootstrapData, key: str, kind: str) -> np.ndarray:
    """(n_images, 3) tp, fp, fn per image at IoU `key` ("loc" or "full" counts), cached."""
    if (key, kind) not in data._f1:
        try:
            rows = [[row[key][f"{x}_{kind}"] for x in ("tp", "fp", "fn")] for row in data.f1_counts]
        except KeyError:
            raise ValueError(
                f"per-image F1 counts at IoU {key} are missing: cannot bootstrap them"
            ) from None
        data._f1[key, kind] = np.array(rows, dtype=float).reshape(-1, 3)
    return data._f1[key, kind]


def f1_metric(data: BootstrapData, name: str, w: np.ndarray) -> np.ndarray:
    """(B,) value of an `f1ish@t_{precision|recall|f1}_{loc|full}_{micro|macro}` metric."""
    m = F1_RE.match(name)
    if m is None:
        raise ValueError(
            f"cannot bootstrap {name!r}: expected bbox_<stat> or "
            "f1ish@t_<precision|recall|f1>_<loc|full>_<micro|macro>"
        )
    key, stat, kind, agg = m.groups()
    c = f1_counts(data, key, kind)
    if agg == "micro":  # P/R/F1 of the summed counts
        s = w @ c
        return _prf(s[:, 0], s[:, 1], s[:, 2])[stat]
    per_image = _prf(c[:, 0], c[:, 1], c[:, 2])[stat]  # macro: mean over the resampled images
    return (w @ per_image) / np.maximum(w.sum(axis=1), 1)


def resample_metrics(
    data: BootstrapData, w: np.ndarray, metrics: tuple[str, ...]
) -> dict[str, np.ndarray]:
    """Metric -> (B,) values over the image multisets given by count vectors `w` (B, n_images)."""
    w = np.atleast_2d(w)
    coco = tuple(m.removeprefix("bbox_") for m in metrics if m.startswith("bbox_"))
    out: dict[str, np.ndarray] = {}
    if coco:
        got = data.coco(coco).evaluate(w)
        out.update({f"bbox_{k}": v for k, v in got.items()})
    for m in metrics:
        if not m.startswith("bbox_"):
            out[m] = f1_metric(data, m, w.astype(float))
    return {m: out[m] for m in metrics}


def _data(x: Any) -> BootstrapData:
    if isinstance(x, BootstrapData):
        return x
    if isinstance(x, str | Path):
        return BootstrapData.from_eval_dir(x)
    return BootstrapData.from_result(x)


def _summary(a: np.ndarray, b: np.ndarray, ci: float) -> dict[str, Any]:
    """Point values (row 0), delta and percentile CI over resamples (rows 1..); -1 = undefined."""
    va, vb = np.where(a == -1, np.nan, a), np.where(b == -1, np.nan, b)
    d = (vb - va)[1:]
    d = d[np.isfinite(d)]
    point = float(vb[0] - va[0]) if np.isfinite(vb[0] - va[0]) else None
    out = {
        "a": float(a[0]),
        "b": float(b[0]),
        "delta": point,
        "ci_low": None,
        "ci_high": None,
        "verdict": "undefined",
        "n_valid": int(len(d)),
    }
    if len(d):
        lo, hi = np.percentile(d, [50 * (1 - ci), 50 * (1 + ci)])
        out.update(
            ci_low=float(lo),
            ci_high=float(hi),
            verdict="better" if lo > 0 else "worse" if hi < 0 else "noise",
        )
    return out


def paired_bootstrap(
    result_a: Any,
    result_b: Any,
    image_keys: list[str] | None = None,
    n: int = 1000,
    seed: int = 0,
    metrics: tuple[str, ...] = DEFAULT_METRICS,
    ci: float = 0.95,
) -> dict[str, Any]:
    """Delta B - A per metric with a percentile CI from `n` paired image resamples.

    `result_a` / `result_b`: an EvalResult, a BootstrapData or an eval dir. Images are paired by
    key; `image_keys` restricts the comparison (default: the keys both runs have). The verdict is
    "better" (CI above 0), "worse" (below 0), "noise" (CI contains 0) or "undefined".
    """
    da, db = _data(result_a), _data(result_b)
    pos_a = {k: i for i, k in enumerate(da.image_keys)}
    pos_b = {k: i for i, k in enumerate(db.image_keys)}
    keys = [
        k
        for k in (image_keys if image_keys is not None else da.image_keys)
        if k in pos_a and k in pos_b
    ]
    if not keys:
        raise ValueError("the two evaluations share no image key: nothing to pair")
    rng = np.random.default_rng(seed)
    wc = np.vstack([np.ones((1, len(keys)), np.int64), resample_counts(len(keys), n, rng)])
    wa = np.zeros((len(wc), len(da.image_keys)), np.int64)
    wb = np.zeros((len(wc), len(db.image_keys)), np.int64)
    wa[:, [pos_a[k] for k in keys]] = wc
    wb[:, [pos_b[k] for k in keys]] = wc
    va, vb = resample_metrics(da, wa, tuple(metrics)), resample_metrics(db, wb, tuple(metrics))
    return {
        "n_resamples": n,
        "seed": seed,
        "ci": ci,
        "n_images": len(keys),
        "only_a": len(set(pos_a) - set(keys)),
        "only_b": len(set(pos_b) - set(keys)),
        "metrics": {m: _summary(va[m], vb[m], ci) for m in metrics},
    }
