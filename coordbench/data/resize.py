"""Smart resize: the preset image size for an original size, and writing the resized image.

Reproduces upstream's `smart_resize` ([UP-RESIZE], `src/datasets/preprocessors/resize.py`):
the "current" algorithm (since upstream commit f1ddc63, 2026-03-08) fills the pixel budget and
upsamples small images; "legacy" is the Qwen2-VL-style rounding that left COCO images at about
their original size [UP-RESIZE]. The on-disk preset does not record which one built it.
"""

from __future__ import annotations

import math
import os
import shutil
import threading
from pathlib import Path

from coordbench.data.images import exif_note, image_size, open_rgb, read_size
from coordbench.errors import ConfigError, DataError

FACTOR = 32  # upstream IMAGE_FACTOR: Qwen-VL patch 16 x spatial merge 2
MIN_PIXELS = 32 * 32 * 4  # upstream default; only the legacy algorithm uses it
MAX_RATIO = 200  # upstream: long/short side above this is rejected
ALGORITHMS = ("current", "legacy")


def smart_resize(
    width: int,
    height: int,
    *,
    factor: int = FACTOR,
    max_pixels: int,
    min_pixels: int = MIN_PIXELS,
    max_ratio: float = MAX_RATIO,
    algorithm: str = "current",
) -> tuple[int, int]:
    """(width, height) of the preset image: multiples of `factor`, at most `max_pixels`.

    Returns (new_w, new_h); note upstream returns (h, w).
    """
    if algorithm not in ALGORITHMS:
        raise ConfigError(f"expected `algorithm` to be one of {ALGORITHMS} but got {algorithm!r}")
    width, height = int(width), int(height)
    if width <= 0 or height <= 0:
        raise DataError(f"image size must be positive, got {width}x{height}")
    if factor <= 0 or max_pixels <= 0 or min_pixels <= 0:
        raise ConfigError(
            "factor, max_pixels and min_pixels must be positive, "
            f"got {factor}, {max_pixels}, {min_pixels}"
        )
    if max_pixels < min_pixels:
        raise ConfigError(f"max_pixels ({max_pixels}) must be >= min_pixels ({min_pixels})")
    ratio = max(width, height) / min(width, height)
    if ratio > max_ratio:
        raise DataError(f"aspect ratio {ratio:.1f} of a {width}x{height} image exceeds {max_ratio}")
    if algorithm == "legacy":
        h, w = _legacy(height, width, factor, min_pixels, max_pixels)
    else:
        h, w = _fill_budget(height, width, factor, max_pixels)
    return w, h


# --------------------------------------------------------------------------- current algorithm


def _floor_to(v: int, f: int) -> int:
    return (v // f) * f


def _ceil_to(v: int, f: int) -> int:
    return -(-v // f) * f


def _grid_neighbours(value: float, f: int) -> set[int]:
    """Multiples of f around `value`: the floor and ceil of round(value), one step either side."""
    v = max(1, int(round(value)))
    lo, hi = max(f, _floor_to(v, f)), max(f, _ceil_to(v, f))
    return {c for c in (lo - f, lo, hi, hi + f) if c >= f}


def _fill_budget(height: int, width: int, f: int, max_pixels: int) -> tuple[int, int]:
    """(h, w) on the grid under the budget: best aspect ratio, then largest area, then closest
    to the continuous optimum `(H*s, W*s)`, `s = sqrt(max_pixels / (H*W))`.

    The search is local: heights around `H*s` with widths around `h*aspect` plus the widest that
    fits the budget, and the mirror image starting from widths, plus the floored optimum.
    """
    scale = math.sqrt(max_pixels / (height * width))
    ideal_h, ideal_w = height * scale, width * scale
    aspect = width / height
    sizes: set[tuple[int, int]] = set()

    def consider(h: int, w: int) -> None:
        if h >= f and w >= f and h % f == 0 and w % f == 0 and h * w <= max_pixels:
            sizes.add((h, w))

    for h in _grid_neighbours(ideal_h, f):
        w_cap = max(f, _floor_to(max_pixels // h, f))
        for w in _grid_neighbours(h * aspect, f) | {w_cap, w_cap - f}:
            consider(h, min(w_cap, w))
    for w in _grid_neighbours(ideal_w, f):
        h_cap = max(f, _floor_to(max_pixels // w, f))
        for h in _grid_neighbours(w / aspect, f) | {h_cap, h_cap - f}:
            consider(min(h_cap, h), w)
    consider(max(f, _floor_to(int(ideal_h), f)), max(f, _floor_to(int(ideal_w), f)))
    if not sizes:
        return f, f

    def rank(size: tuple[int, int]) -> tuple[float, int, float, int, int]:
        h, w = size
        ratio_error = abs(math.log((w / h) / aspect))
        # trailing (h, w) only makes exact ties deterministic (upstream leaves them to set order)
        return ratio_error, -(h * w), abs(h - ideal_h) + abs(w - ideal_w), h, w

    h, w = min(sizes, key=rank)
    return h, w


# --------------------------------------------------------------------------- legacy algorithm


def _legacy(height: int, width: int, f: int, min_pixels: int, max_pixels: int) -> tuple[int, int]:
    """Qwen2-VL `smart_resize` as upstream had it before f1ddc63: round to the grid, then
    shrink (floor) above the budget or grow (ceil) below `min_pixels`."""
    h = max(f, int(round(height / f)) * f)
    w = max(f, int(round(width / f)) * f)
    if h * w > max_pixels:
        beta = math.sqrt(height * width / max_pixels)
        h = max(f, math.floor(int(height / beta) / f) * f)
        w = max(f, math.floor(int(width / beta) / f) * f)
    elif h * w < min_pixels:
        beta = math.sqrt(min_pixels / (height * width))
        h = math.ceil(int(height * beta) / f) * f
        w = math.ceil(int(width * beta) / f) * f
    return h, w


# --------------------------------------------------------------------------- image files


def resize_image(src: str | Path, dst: str | Path, size: tuple[int, int]) -> Path:
    """Write `src` resized to `size` = (w, h) at `dst`, as upstream: RGB, LANCZOS, PIL defaults.

    The format follows `dst`'s extension (JPEG at PIL's default quality 75); no EXIF transpose
    (upstream leaves it off, [UP-RESIZE]); written to a temp file and renamed, so a killed
    conversion never leaves a torn image behind. Unreadable input raises DataError naming `src`.
    """
    from PIL import Image

    src, dst = Path(src), Path(dst)
    fmt = Image.registered_extensions().get(dst.suffix.lower())
    if fmt is None:
        raise DataError(f"cannot tell the image format from the extension of {dst}")
    out = open_rgb(src).resize(tuple(size), Image.Resampling.LANCZOS)
    dst.parent.mkdir(parents=True, exist_ok=True)
    # a unique name per process and thread; open() (unlike mkstemp) honours the umask
    tmp = dst.with_name(f".{dst.name}.{os.getpid()}-{threading.get_ident()}.tmp")
    try:
        with open(tmp, "wb") as f:
            out.save(f, format=fmt)
        os.replace(tmp, dst)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return dst


def ensure_resized(
    src: str | Path,
    dst: str | Path,
    size: tuple[int, int],
    *,
    src_size: tuple[int, int] | None = None,
    previous: str | Path | None = None,
) -> str:
    """Make `dst` the `size` version of `src`; "reused" when `dst` already has that size (or a
    hard link to `previous`, e.g. the same image in the preset being rebuilt, does), else
    "resized". Upstream reuses outputs the same way [UP-RESIZE]. With `src_size`, a source whose
    file differs from the size its annotation claims is a DataError (its boxes would be wrong).
    """
    src, dst = Path(src), Path(dst)
    if image_size(dst) == tuple(size):
        return "reused"
    if previous is not None and image_size(previous) == tuple(size):
        dst.parent.mkdir(parents=True, exist_ok=True)
        dst.unlink(missing_ok=True)
        try:
            os.link(previous, dst)
        except OSError:  # another file system, or no hard links
            shutil.copy2(previous, dst)
        return "reused"
    if not src.is_file():
        raise DataError(f"image not found: {src}")
    actual = read_size(src)
    if src_size is not None and actual != tuple(src_size):
        raise DataError(
            f"image {src} is {actual[0]}x{actual[1]} "
            f"but the annotation says {src_size[0]}x{src_size[1]}; {exif_note(src)}"
        )
    resize_image(src, dst, size)
    return "resized"
