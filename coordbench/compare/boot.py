"""Paired bootstrap CIs for COCO AP/AR and F1 via `coordbench.metrics.bootstrap.paired_bootstrap`.

The library re-accumulates COCO from per-image matching computed once per run, and F1 from
per_image.json counts. It pairs images by key; compare re-keys each run's eval data by sample
id (via eval/per_image.json image ids), so two runs pair on the samples themselves even when
their image paths differ. The resample matrix is the library's own draw for (n shared, seed),
which compare reuses for the metrics the library does not cover (pred_total, parse rates).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from coordbench.compare.load import RunData
from coordbench.compare.stats import BootCI
from coordbench.errors import CoordbenchError
from coordbench.metrics.bootstrap import F1_RE, BootstrapData, resample_counts
from coordbench.metrics.bootstrap import paired_bootstrap as lib_paired_bootstrap
from coordbench.metrics.resample import STATS
from coordbench.rundir import layout as L


def library_available() -> bool:
    try:
        import coordbench.metrics.bootstrap  # noqa: F401
    except ImportError:
        return False
    return True


def shared_weights(n_shared: int, n_boot: int, seed: int) -> np.ndarray:
    """The (n_boot, n_shared) counts `paired_bootstrap(n=n_boot, seed=seed)` draws
    for n_shared images."""
    return resample_counts(n_shared, n_boot, np.random.default_rng(seed)).astype(np.float64)


def _data(run: RunData) -> Any:
    """The run's BootstrapData with image keys replaced by sample keys, or why not (a string)."""
    try:
        data = BootstrapData.from_eval_dir(run.path / L.EVAL_DIR)
    except (CoordbenchError, OSError, KeyError, TypeError) as e:
        return f"{run.name}: {e}"
    key_of = {e.get("image_id"): k for k, e in run.per_image.items()}
    ids = sorted(im["id"] for im in data.coco_gt.get("images", []))
    if len(ids) != len(data.image_keys) or any(i not in key_of for i in ids):
        return f"{run.name}: eval/per_image.json does not cover every evaluated image"
    data.image_keys = [key_of[i] for i in ids]
    return data


def _value(v: Any) -> float | None:
    return None if v is None or v == -1 else float(v)


def library_bootstrap(
    base: RunData, run: RunData, shared: Sequence[str], keys: dict[str, str], n_boot: int, seed: int
) -> dict[str, BootCI] | str:
    """label -> BootCI for the metrics in `keys` (label -> metrics key) the library can resample."""
    ok = {
        lab: k
        for lab, k in keys.items()
        if (k.startswith("bbox_") and k[5:] in STATS) or F1_RE.match(k)
    }
    if not ok:
        return {}
    da, db = _data(base), _data(run)
    for d in (da, db):
        if isinstance(d, str):
            return f"COCO AP/AR and F1: no confidence intervals ({d})"
    try:
        got = lib_paired_bootstrap(
            da,
            db,
            image_keys=list(shared),
            n=n_boot,
            seed=seed,
            metrics=tuple(dict.fromkeys(ok.values())),
        )
    except (ValueError, CoordbenchError) as e:
        return f"COCO AP/AR and F1: no confidence intervals ({e})"
    out = {}
    for label, key in ok.items():
        m = got["metrics"][key]
        a, b = _value(m["a"]), _value(m["b"])
        if a is None or b is None or m["delta"] is None:
            continue  # -1: no GT of that area range on the shared samples
        lo, hi = m["ci_low"], m["ci_high"]
        out[label] = BootCI(
            a, b, m["delta"], np.nan if lo is None else lo, np.nan if hi is None else hi
        )
    return out
