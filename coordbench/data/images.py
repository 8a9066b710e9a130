"""The one guarded image opener: every path that reads image files (`run`, `data coco`,
`data jsonl`, the report) goes through `read_size` / `open_rgb`.

Why one place: each hand-rolled `Image.open` caught a different set of decoder errors, so a
decompression bomb crashed `data jsonl` with a traceback while `run` refused it cleanly, and a
16-bit PNG became a white image (`convert("RGB")` saturates `I;16` pixels at 255). Here every
decoder failure is a DataError naming the file, and high-bit-depth modes are scaled to 8 bits.
EXIF orientation is never applied (the COCO convention: annotations are in stored-pixel space).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from coordbench.errors import DataError

# what PIL raises for a bad file: truncated or unknown data, bad headers, bombs (a ValueError
# subclass in some versions, an Exception in others), and the odd decoder bug
_DECODE_ERRORS: tuple[type[BaseException], ...] = (
    OSError,
    ValueError,
    SyntaxError,
    EOFError,
    IndexError,
    TypeError,
    ZeroDivisionError,
    MemoryError,
)
HIGH_BIT_MODES = ("I", "F")  # plus every "I;16*" variant
EXIF_NOTE = (
    "EXIF orientation is not applied (the COCO convention): sizes are those of the stored pixels"
)


def _errors() -> tuple[type[BaseException], ...]:
    from PIL import Image

    return (*_DECODE_ERRORS, Image.DecompressionBombError)


def _fail(path: Path, e: BaseException, who: str) -> DataError:
    if isinstance(e, FileNotFoundError):
        return DataError(f"image not found: {path}{who}")
    return DataError(f"cannot read image {path}{who}: {e}")


def read_size(path: str | Path, *, who: str = "") -> tuple[int, int]:
    """(w, h) from the file header without decoding pixels; DataError naming the file otherwise.

    `who` is appended to messages (e.g. " (sample 7)")."""
    from PIL import Image

    path = Path(path)
    try:
        with Image.open(path) as im:
            return im.size
    except _errors() as e:
        raise _fail(path, e, who) from None


def image_size(path: str | Path) -> tuple[int, int] | None:
    """(w, h) from the file header, or None when missing or unreadable (any decoder error)."""
    try:
        return read_size(path)
    except DataError:
        return None


def exif_note(path: str | Path) -> str:
    """EXIF_NOTE, naming the file's own orientation tag when it has one (a size mismatch of a
    photo whose orientation is 5..8 is a transposed image, not a wrong record)."""
    from PIL import Image

    try:
        with Image.open(path) as im:
            orientation = im.getexif().get(0x0112)  # the EXIF Orientation tag
    except Exception:  # noqa: BLE001 - a hint only; the caller reports the real problem
        orientation = None
    if orientation in (None, 1):
        return EXIF_NOTE
    return f"{EXIF_NOTE}; this file has EXIF orientation {orientation}, which viewers rotate"


def to_8bit(im: Any) -> Any:
    """An RGB copy of `im`; 16/32-bit integer and float modes are scaled, not clipped, to 8 bits.

    `I;16*` (16-bit PNG/TIFF) is divided by 257 so 0..65535 maps onto 0..255 exactly (an 8-bit
    image stored as `v * 257` comes back unchanged). `I` and `F` use their natural range when it
    fits (0..255, 0..65535, or 0..1 for floats) and the image's own min..max otherwise.
    """
    if not (im.mode.startswith("I;16") or im.mode in HIGH_BIT_MODES):
        return im.convert("RGB")
    import numpy as np
    from PIL import Image

    a = np.asarray(im, dtype=np.float64)
    if im.mode.startswith("I;16"):
        scaled = a / 257.0
    else:
        finite = a[np.isfinite(a)]
        lo, hi = (float(finite.min()), float(finite.max())) if finite.size else (0.0, 0.0)
        if lo >= 0 and hi <= 255 and im.mode == "I":
            scaled = a
        elif lo >= 0 and hi <= 1 and im.mode == "F":
            scaled = a * 255.0
        elif lo >= 0 and hi <= 65535:
            scaled = a / 257.0
        else:
            scaled = (a - lo) * (255.0 / (hi - lo)) if hi > lo else np.zeros_like(a)
    u8 = np.clip(np.nan_to_num(np.rint(scaled)), 0, 255).astype(np.uint8)
    return Image.fromarray(u8).convert("RGB")


def open_rgb(path: str | Path, *, who: str = "", draft: tuple[int, int] | None = None) -> Any:
    """Decode an image file as 8-bit RGB; DataError naming the file for any decoder failure.

    `draft` lets JPEG decode at a reduced scale (the report's thumbnails)."""
    from PIL import Image

    path = Path(path)
    try:
        with Image.open(path) as im:
            if draft is not None:
                im.draft("RGB", draft)
            return to_8bit(im)
    except _errors() as e:
        raise _fail(path, e, who) from None
