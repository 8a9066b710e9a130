"""What makes a comparison misleading, said before any number
([ARCH-COMPARE], [UP-SAMPLING] [UP-RESIZE] [UP-THROUGHPUT]).

Each check returns plain sentences; `compare` prints them above the tables.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from coordbench.compare.load import RunData

# A preset change brings its own dataset file (rescale_32_768 vs rescale_32_1024), so a
# differing dataset path/hash is part of the preset axis, not a second axis.
_PRESET_DATASET_KEYS = ("dataset.path_name", "dataset.sha256")


def flat_diff(a: dict[str, Any], b: dict[str, Any], prefix: str = "") -> list[tuple[str, Any, Any]]:
    """(dotted key, value in a, value in b) for every leaf that differs."""
    out: list[tuple[str, Any, Any]] = []
    for k in sorted(set(a) | set(b), key=str):
        va, vb = a.get(k), b.get(k)
        if isinstance(va, dict) and isinstance(vb, dict):
            out += flat_diff(va, vb, f"{prefix}{k}.")
        elif va != vb:
            out.append((f"{prefix}{k}", va, vb))
    return out


def _short(v: Any) -> str:
    s = repr(v) if not isinstance(v, str) else v
    return s[:12] + "…" if len(s) > 16 and all(c in "0123456789abcdef" for c in s) else s


def describe(diffs: Iterable[tuple[str, Any, Any]]) -> str:
    return ", ".join(f"{k} {_short(a)} → {_short(b)}" for k, a, b in diffs)


def _greedy(identity: dict[str, Any]) -> bool:
    return float((identity.get("decode") or {}).get("temperature") or 0.0) <= 0.0


def axes_of(diffs: list[tuple[str, Any, Any]], greedy_side: bool = False) -> list[str]:
    """Top-level identity keys that differ, the preset's own dataset counted as the preset.

    With a greedy run on either side the seed is no axis of its own: it changes nothing in a
    greedy run, and a sampled run's seed is just which draw of the sampling axis was taken.
    """
    keys = {k for k, _, _ in diffs}
    if "preset" in keys:
        keys -= set(_PRESET_DATASET_KEYS)
    axes = {k.split(".")[0] for k in keys}
    if greedy_side:
        axes.discard("seed")
    return sorted(axes)


def identity_caveats(base: RunData, run: RunData, ignore_axes: set[str]) -> tuple[str, list[str]]:
    """An info line naming what differs between two runs, and caveats when it is more
    than one axis."""
    if base.identity is None or run.identity is None:
        return "", [
            f"{run.name} vs {base.name}: identity unknown for "
            f"{', '.join(r.name for r in (base, run) if r.identity is None)}; "
            "cannot check what differs"
        ]
    diffs = flat_diff(base.identity, run.identity)
    greedy_side = _greedy(base.identity) or _greedy(run.identity)
    axes = [a for a in axes_of(diffs, greedy_side) if a not in ignore_axes]
    info = f"{run.name} vs {base.name}: " + (describe(diffs) if diffs else "same identity")
    caveats: list[str] = []
    if len(axes) > 1:
        what = describe(d for d in diffs if d[0].split(".")[0] in axes)
        caveats.append(
            f"{run.name} differs from {base.name} in {len(axes)} axes ({', '.join(axes)}): {what}; "
            "a delta mixes their effects"
        )
    if (
        base.batch_size is not None
        and run.batch_size is not None
        and base.batch_size != run.batch_size
    ):
        caveats.append(
            f"batch size differs ({base.name} {base.batch_size}, {run.name} {run.batch_size}): "
            "sampled "
            "outputs and batched greedy numerics depend on it (padding changes the numbers)"
        )
    return info, caveats


def seed_only_caveat(base: RunData, run: RunData, verdicts: list[str]) -> str | None:
    """Two sampled runs that differ only in the seed: any "better"/"worse" is a chance finding.

    With ~20 metrics each tested at 95 %, about one CI in twenty excludes 0 by chance (more or
    fewer, since the metrics are correlated); a researcher reading a seed pair needs to hear that
    before the table, not infer it.
    """
    if base.identity is None or run.identity is None:
        return None
    if _greedy(base.identity) or _greedy(run.identity):
        return None
    if axes_of(flat_diff(base.identity, run.identity)) != ["seed"]:
        return None
    tested = [v for v in verdicts if v != "n/a"]
    hits = [v for v in tested if v != "within noise"]
    if not hits:
        return None
    have = "metric has" if len(tested) == 1 else "metrics have"
    return (
        f"{run.name} and {base.name} differ only in the sampling seed, "
        f"yet {len(hits)} of {len(tested)} "
        f"{have} a 95 % CI that excludes 0: at 95 % about 1 in 20 does by chance, so read them as "
        "seed noise; compare seed groups (mean ± std over several seeds) instead"
    )


def same_run_caveats(runs: list[RunData]) -> list[str]:
    """Every pair of inputs that is one run dir, or one identity (a re-run), wherever they sit."""
    out = []
    for i, a in enumerate(runs):
        for b in runs[i + 1 :]:
            if a.path.resolve() == b.path.resolve():
                out.append(
                    f"{b.name} is the same run dir as {a.name} ({b.path}): "
                    "every delta between them is 0"
                )
            elif a.identity_hash and a.identity_hash == b.identity_hash:
                extra = ""
                if (
                    a.batch_size is not None
                    and b.batch_size is not None
                    and a.batch_size != b.batch_size
                ):
                    extra = f"; only the batch size differs ({a.batch_size} vs {b.batch_size})"
                out.append(
                    f"{b.name} has the same identity as {a.name} (a re-run{extra}): "
                    "differences between "
                    "them measure nondeterminism only"
                )
    return out


def equal_weights_caveat(base: RunData, run: RunData) -> str | None:
    """Two runs of checkpoints with the same weights (sha256) under different names: a delta
    between them is read as two models' difference, yet it is one model."""
    ca = (base.identity or {}).get("checkpoint")
    cb = (run.identity or {}).get("checkpoint")
    if not (isinstance(ca, dict) and isinstance(cb, dict)) or not ca.get("sha256"):
        return None
    if ca.get("sha256") != cb.get("sha256") or ca.get("path_name") == cb.get("path_name"):
        return None
    return (
        f"{base.name} and {run.name} use checkpoints with equal weights (sha256 "
        f"{str(ca['sha256'])[:12]}…) under different names ({ca.get('path_name')}, "
        f"{cb.get('path_name')}): one model, so their deltas measure nothing but nondeterminism"
    )


def sample_set_caveat(base: RunData, run: RunData, shared: int) -> str | None:
    na, nb = len(base.samples), len(run.samples)
    if shared == 0:
        return (
            f"{run.name} and {base.name} share no samples "
            f"({base.name} {na}, {run.name} {nb}): no deltas"
        )
    if shared < na or shared < nb:
        return (
            f"different sample sets: only the {shared} samples shared by {base.name} ({na}) and "
            f"{run.name} ({nb}) are compared in the paired statistics"
        )
    return None


GT_TOLERANCE = 0.01  # box edges as image fractions: two presets round the same box differently


def _same_gt(a: tuple, b: tuple) -> bool:
    return len(a) == len(b) and all(
        da == db and all(abs(x - y) <= GT_TOLERANCE for x, y in zip(ba, bb, strict=True))
        for (da, ba), (db, bb) in zip(a, b, strict=True)
    )


def different_gt_caveat(base: RunData, run: RunData, shared: list[str]) -> str | None:
    """Shared sample ids whose ground truth differs (another data file or a re-annotation):
    their per-image deltas would otherwise read as a change of the model."""
    differ = [
        k
        for k in shared
        if sorted(base.samples[k].gt_descs) != sorted(run.samples[k].gt_descs)
        or not _same_gt(base.samples[k].gt_boxes, run.samples[k].gt_boxes)
    ]
    if not differ:
        return None
    return (
        f"different ground truth: {len(differ)} of the {len(shared)} shared samples of "
        f"{base.name} and {run.name} carry different GT (e.g. sample {differ[0]}); their deltas "
        "mix a change of the data with a change of the model"
    )


def preset_of(run: RunData) -> str | None:
    p = (run.identity or {}).get("preset") or run.config.get("preset")
    if p is None and run.summary:
        p = (run.summary.get("infer") or {}).get("preset")
    return None if p is None else str(p)


def identical_images_caveat(base: RunData, run: RunData, shared: list[str]) -> str | None:
    """Two presets whose images came out the same size for every shared sample
    [UP-RESIZE]."""
    pa, pb = preset_of(base), preset_of(run)
    if pa is None or pb is None or pa == pb or not shared:
        return None
    sizes_a = [(base.samples[k].width, base.samples[k].height) for k in shared]
    sizes_b = [(run.samples[k].width, run.samples[k].height) for k in shared]
    if sizes_a != sizes_b or None in sizes_a[0]:
        return None
    w, h = sizes_a[0]
    return (
        f"{pa} and {pb} presets produced identical images on this dataset "
        f"(all {len(shared)} shared samples "
        f"have the same size, e.g. {w}x{h}): a difference cannot come from the resolution"
    )


def launch_shape(run: RunData) -> tuple[str, str]:
    """(world size, device) of a run's last generation session, from run.json provenance."""
    p = run.provenance
    device = None
    for sess in reversed(p.get("sessions") or []):
        device = ((sess.get("generation") or {}).get("backend") or {}).get("device")
        if device:
            break
    return str(p.get("world_size", 1)), str(device or run.config.get("device") or "?")


def throughput_caveat(runs: list[RunData]) -> str | None:
    """Wall time is comparable only within one launch shape [UP-THROUGHPUT]."""
    shapes = {r.name: launch_shape(r) for r in runs}
    if len(set(shapes.values())) <= 1:
        return None
    desc = "; ".join(f"{n}: world_size {w}, device {d}" for n, (w, d) in shapes.items())
    return (
        f"wall time and samples/s are not comparable across launch shapes ({desc}) "
        "(more processes or another device change throughput, not the model)"
    )


def partial_caveat(run: RunData) -> str | None:
    if not run.partial:
        return None
    left_out = (
        " and left out of the tables" if run.summary is None else "; its numbers may be stale"
    )
    return f"{run.name} is partial: {run.partial_reason}{left_out}"
