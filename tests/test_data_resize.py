"""smart_resize against upstream's worked values [UP-RESIZE] and resize_image's
contract."""

from __future__ import annotations

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image

from coordbench.data.resize import image_size, resize_image, smart_resize
from coordbench.errors import ConfigError, DataError

MP768, MP1024 = 32 * 32 * 768, 32 * 32 * 1024

# orig W x H -> (768 budget, 1024 budget, legacy at 768), verified upstream ([UP-RESIZE] table)
WORKED = [
    ((640, 480), (1024, 768), (1152, 864), (640, 480)),
    ((640, 427), (1056, 704), (1248, 832), (640, 416)),
    ((480, 640), (768, 1024), (864, 1152), (480, 640)),
    ((500, 375), (1024, 768), (1152, 864), (512, 384)),
    ((612, 612), (864, 864), (1024, 1024), (608, 608)),
    ((640, 360), (1088, 608), (1312, 736), (640, 352)),
    ((333, 500), (704, 1056), (832, 1248), (320, 512)),
]


@pytest.mark.parametrize(("orig", "at768", "at1024", "legacy"), WORKED)
def test_worked_values(orig, at768, at1024, legacy):
    assert smart_resize(*orig, max_pixels=MP768) == at768
    assert smart_resize(*orig, max_pixels=MP1024) == at1024
    assert smart_resize(*orig, max_pixels=MP768, algorithm="legacy") == legacy


def test_legacy_shrinks_large_and_grows_tiny_images():
    # hand-computed with the Qwen2-VL formula: beta = sqrt(4000*3000/786432) = 3.906...
    # H = floor(int(3000/beta)/32)*32 = floor(768/32)*32 = 768; W = floor(1024/32)*32 = 1024
    assert smart_resize(4000, 3000, max_pixels=MP768, algorithm="legacy") == (1024, 768)
    # 20x20 -> round gives 32x32 = 1024 < 4096: beta = sqrt(4096/400) = 3.2, ceil(64/32)*32 = 64
    assert smart_resize(20, 20, max_pixels=MP768, algorithm="legacy") == (64, 64)


def test_current_downsamples_large_images_to_fill_the_budget():
    w, h = smart_resize(4000, 3000, max_pixels=MP768)
    assert (w, h) == (1024, 768)  # 4:3 fits the 768 budget exactly
    assert smart_resize(256, 256, max_pixels=32 * 32 * 64) == (256, 256)  # the shapes fixpoint


@settings(max_examples=300, deadline=None)
@given(st.integers(1, 6000), st.integers(1, 6000), st.sampled_from([64, 768, 1024]))
def test_current_invariants(w, h, budget):
    """On the grid, under the budget, and the aspect ratio kept to within half a grid step."""
    if max(w, h) / min(w, h) > 4:
        return
    mp = 32 * 32 * budget
    nw, nh = smart_resize(w, h, max_pixels=mp)
    assert nw % 32 == 0 and nh % 32 == 0 and nw * nh <= mp
    # rounding the long side to the grid moves the ratio by at most ~16/short side (log scale)
    assert abs(math.log((nw / nh) / (w / h))) <= 0.6 * 32 / min(nw, nh)


def test_bad_arguments():
    with pytest.raises(DataError, match="aspect ratio"):
        smart_resize(201, 1, max_pixels=MP768)
    with pytest.raises(DataError, match="positive"):
        smart_resize(0, 10, max_pixels=MP768)
    with pytest.raises(ConfigError, match="algorithm"):
        smart_resize(10, 10, max_pixels=MP768, algorithm="qwen")
    with pytest.raises(ConfigError, match="min_pixels"):
        smart_resize(10, 10, max_pixels=1000, min_pixels=4096)


def test_resize_image_writes_rgb_jpeg_atomically(tmp_path):
    src = tmp_path / "src.png"
    Image.new("L", (64, 48), 128).save(src)  # grayscale in, RGB out (upstream converts)
    dst = tmp_path / "out" / "a.jpg"
    assert resize_image(src, dst, (96, 64)) == dst
    with Image.open(dst) as im:
        assert im.format == "JPEG" and im.mode == "RGB" and im.size == (96, 64)
    assert [p.name for p in dst.parent.iterdir()] == ["a.jpg"]  # no temp file left behind
    assert image_size(dst) == (96, 64) and image_size(tmp_path / "missing.jpg") is None


def test_resize_image_matches_pil_defaults(tmp_path):
    """Same bytes as upstream's `im.convert('RGB').resize(size, LANCZOS).save(path)`."""
    src = tmp_path / "src.jpg"
    Image.effect_mandelbrot((120, 90), (-2, -1.2, 1, 1.2), 50).convert("RGB").save(src)
    ours = resize_image(src, tmp_path / "ours.jpg", (160, 96))
    with Image.open(src) as im:
        im.convert("RGB").resize((160, 96), Image.Resampling.LANCZOS).save(tmp_path / "ref.jpg")
    assert ours.read_bytes() == (tmp_path / "ref.jpg").read_bytes()


def test_resize_image_names_a_corrupt_source(tmp_path):
    bad = tmp_path / "bad.jpg"
    bad.write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
    with pytest.raises(DataError, match="bad.jpg"):
        resize_image(bad, tmp_path / "o.jpg", (32, 32))
    with pytest.raises(DataError, match="image not found"):
        resize_image(tmp_path / "nope.jpg", tmp_path / "o.jpg", (32, 32))
    assert not (tmp_path / "o.jpg").exists()
