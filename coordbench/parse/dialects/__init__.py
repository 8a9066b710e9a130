"""Answer dialects: each model family's native box format -> boxes in preset-image pixels.

A prompt preset names the dialect its model answers in (`PromptPreset.dialect`). `coordjson` is
upstream CoordExp's format, parsed by `coordbench.parse.output` byte-exact with the oracle; the
others are small pure readers (`jsonlist`, `tags`) plus a frame per dialect:

| dialect | format | frame -> pixels (W, H = preset image size) |
|---|---|---|
| `qwen25_json` | ```json `[{"bbox_2d": [x1, y1, x2, y2], "label"}]` | absolute pixels |
| `qwen3_json` | same list | `v / 1000 * W` |
| `gemma3_json` | `[{"box_2d": [y1, x1, y2, x2], "label"}]` | `v / 1000 * W` |
| `internvl` | `<ref>label</ref><box>[[x1, y1, x2, y2], ...]</box>` | `v / 1000 * W` |
| `paligemma` | `<locY1><locX1><locY2><locX2> label ; ...` | `v / 1024 * W` |
| `florence2` | `label<loc_x1><loc_y1><loc_x2><loc_y2>...` | `(v + 0.5) / 1000 * W` |

Every pixel value is then `clamp(round(v), 0, W-1)`, as for CoordJSON's text surfaces, so
boxes are always inside the image. A value outside the dialect's own frame (a pixel beyond the
image, a 0-1000 value above 1000 or below 0, a bin past the grid) is clamped the same way but
reported: the parser adds the issue `out_of_frame` and the answer is `salvaged`, never silently
`ok` (it is also the clearest sign of a dialect mismatch, e.g. Qwen3 0-1000 answers under the
Qwen2.5 pixel preset).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import partial

from coordbench.geometry import round_clamp_px
from coordbench.parse.dialects.base import RawObject, Reading
from coordbench.parse.dialects.jsonlist import read_json_list
from coordbench.parse.dialects.tags import read_florence2, read_internvl, read_paligemma

COORDJSON = "coordjson"


@dataclass(frozen=True)
class Dialect:
    """A reader and the frame of its numbers: pixel = (v + offset) / scale * size."""

    name: str
    read: Callable[[str], Reading]
    scale: float | None  # None: values are already pixels
    yx: bool = False  # (y1, x1, y2, x2) order
    offset: float = 0.0

    def _pixel_floats(self, obj: RawObject, width: int, height: int) -> list[float]:
        """x1, y1, x2, y2 in unrounded preset-image pixels."""
        a, b, c, d = obj.values
        x1, y1, x2, y2 = (b, a, d, c) if self.yx else (a, b, c, d)
        out = []
        for v, size in ((x1, width), (y1, height), (x2, width), (y2, height)):
            out.append(v if self.scale is None else (v + self.offset) / self.scale * size)
        return out

    def out_of_frame(self, obj: RawObject, width: int, height: int) -> bool:
        """Whether a value maps outside the image, [0, W] x [0, H], before the clamp: a pixel
        past the image, a 0-1000 value past 0..1000, a bin past the grid (PaliGemma's 1024,
        Florence-2's 1000 bins 0..999, whose centres (k + 0.5) / 1000 * W reach past W)."""
        px = self._pixel_floats(obj, width, height)
        return any(not 0 <= v <= size for v, size in zip(px, (width, height) * 2, strict=True))

    def to_pixels(self, obj: RawObject, width: int, height: int) -> list[int]:
        """x1, y1, x2, y2 as clamped pixel ints (corners as written: maybe reversed)."""
        px = self._pixel_floats(obj, width, height)
        return [round_clamp_px(v, size) for v, size in zip(px, (width, height) * 2, strict=True)]


DIALECTS: dict[str, Dialect] = {
    d.name: d
    for d in (
        Dialect("qwen25_json", partial(read_json_list, key="bbox_2d"), None),
        Dialect("qwen3_json", partial(read_json_list, key="bbox_2d"), 1000.0),
        Dialect("gemma3_json", partial(read_json_list, key="box_2d"), 1000.0, yx=True),
        Dialect("internvl", read_internvl, 1000.0),
        Dialect("paligemma", read_paligemma, 1024.0, yx=True),
        Dialect("florence2", read_florence2, 1000.0, offset=0.5),
    )
}
DIALECT_NAMES = (COORDJSON, *DIALECTS)
