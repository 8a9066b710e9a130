"""Object-level coordinate helpers of the data contract: sort, rescale, to norm1000, to tokens.

The per-box math (frames, rounding, clamping) lives in `coordbench.geometry`; this module applies
it to object lists as the upstream data pipeline does ([UP-RESIZE] / [UP-NORM1000]), pinned by
`tests/oracle/data_pipeline_oracle.jsonl`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from coordbench.geometry import box_px_to_norm1000, coord_token, scale_box_px


def sort_objects(objects: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """Stable sort by the norm1000 top-left anchor (y1, x1), as in upstream's `.norm`/`.coord`."""
    return sorted(objects, key=lambda o: (float(o["bbox_2d"][1]), float(o["bbox_2d"][0])))


def rescale_objects(
    objects: Sequence[dict[str, Any]], src_wh: tuple[int, int], dst_wh: tuple[int, int]
) -> list[dict[str, Any]]:
    """Objects in source pixels -> preset pixels; key order kept, objects never dropped.

    When the size does not change upstream leaves the geometry untouched (floats stay
    floats, nothing is clamped); we do the same so presets match byte for byte.
    """
    if tuple(src_wh) == tuple(dst_wh):
        return [dict(o) for o in objects]
    return [{**o, "bbox_2d": scale_box_px(o["bbox_2d"], src_wh, dst_wh)} for o in objects]


def objects_to_norm1000(
    objects: Sequence[dict[str, Any]], width: int, height: int
) -> tuple[list[dict[str, Any]], int]:
    """Preset-pixel objects -> sorted norm1000 objects, and how many were dropped as invalid.

    With the >= 1-bin fix nothing is ever dropped; the count exists for parity with upstream's
    `objects_dropped_invalid_bbox` stat.
    """
    out, dropped = [], 0
    for o in objects:
        b = box_px_to_norm1000(o["bbox_2d"], width, height)
        if b[2] > b[0] and b[3] > b[1]:
            out.append({**o, "bbox_2d": b})
        else:  # pragma: no cover - unreachable after the >= 1-bin fix, kept for parity
            dropped += 1
    return sort_objects(out), dropped


def objects_to_tokens(objects: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """Norm1000 objects -> the same objects with `"<|coord_k|>"` strings."""
    return [{**o, "bbox_2d": [coord_token(int(v)) for v in o["bbox_2d"]]} for o in objects]
