"""The COCO converter end to end on the seeded fixture of `fixtures_coco.py`."""

from __future__ import annotations

import hashlib
import json
import shutil

import pytest
from fixtures_coco import COCO_CATEGORIES, DENSE_ID, CocoFixture, make_coco
from PIL import Image

from coordbench.config.prompts import COCO80_CLASSES
from coordbench.data.coco import convert_coco
from coordbench.data.coords import objects_to_tokens
from coordbench.data.dataset import load_samples
from coordbench.errors import DataError
from coordbench.geometry import box_px_to_norm1000

# sha256 of upstream's own val.jsonl + val.norm.jsonl + val.coord.jsonl for this fixture (seed 0),
# produced by running CoordExp cd05f3b's convert_coco2017_instances.py -> rescale_jsonl.py ->
# convert_to_coord_tokens.py, with `images` set to `file_name` (upstream's rescale step rewrites
# it relative to its own output root). Our files equal these once `orig_width/height` are removed.
UPSTREAM_SHA256 = {
    768: "8a878455c550786ca5a091402633a46a5982450c85bcb074eaf21eba40668769",
    64: "0a9eede156aa817446e1575171dcd6ef696a5b49aee566c70bf4e0daf2fccb45",
}
# [UP-RESIZE] worked values at the 768 budget (1268 is 427x640, the transpose of 640x427)
SIZES_768 = {
    139: (1056, 704),
    285: (1024, 768),
    632: (768, 1024),
    724: (1024, 768),
    776: (864, 864),
    785: (1088, 608),
    802: (704, 1056),
    1268: (704, 1056),
}
FILES = ("val.jsonl", "val.norm.jsonl", "val.coord.jsonl")


@pytest.fixture(scope="module")
def pristine(tmp_path_factory):
    return make_coco(tmp_path_factory.mktemp("coco"))


@pytest.fixture
def coco(pristine, tmp_path):
    """A private copy of the fixture that a test may damage."""
    shutil.copytree(pristine.root, tmp_path / "coco")
    return CocoFixture(
        tmp_path / "coco",
        sizes=pristine.sizes,
        kept=pristine.kept,
        counts=pristine.counts,
        empty_ids=pristine.empty_ids,
    )


def _rows(path):
    return [json.loads(line) for line in path.read_text().splitlines()]


def _upstream_view_sha(out):
    h = hashlib.sha256()
    for name in FILES:
        for r in _rows(out / name):
            r.pop("orig_width")
            r.pop("orig_height")
            h.update((json.dumps(r, ensure_ascii=False) + "\n").encode())
    return h.hexdigest()


def _edit_instances(fx, fn):
    coco = json.loads(fx.annotation_path.read_text())
    fn(coco)
    fx.annotation_path.write_text(json.dumps(coco))


def test_fixture_categories_are_the_official_coco_80():
    assert len(COCO_CATEGORIES) == 80 and tuple(n for _, n in COCO_CATEGORIES) == COCO80_CLASSES


def test_convert_768_end_to_end(pristine, tmp_path):
    out = tmp_path / "rescale_32_768"
    st = convert_coco(pristine.root, out_dir=out, progress=False)
    c = pristine.counts
    assert (st.images_total, st.images_written, st.images_skipped_empty) == (12, 10, 2)
    assert (st.anns_total, st.anns_kept, st.anns_skipped_crowd) == (
        c["total"],
        c["keep"],
        c["crowd"],
    )
    assert (st.anns_skipped_outside_image, st.anns_skipped_invalid_bbox) == (
        c["outside"],
        c["zero"],
    )
    assert st.objects_written == c["keep"] and st.images_resized == 10 and st.bad_items == []
    assert _upstream_view_sha(out) == UPSTREAM_SHA256[768]

    pixel, norm, coord = (_rows(out / f) for f in FILES)
    assert [r["image_id"] for r in pixel] == pristine.kept_ids  # ascending id; empty images dropped
    for p, n, t in zip(pixel, norm, coord, strict=True):
        iid = p["image_id"]
        assert [o["coco_ann_id"] for o in p["objects"]] == pristine.kept[iid]  # converter order
        assert (p["orig_width"], p["orig_height"]) == pristine.sizes[iid]
        assert p["images"] == [p["file_name"]] == [f"images/val2017/{iid:012d}.jpg"]
        assert p["metadata"] == {"source": "coco2017", "split": "val"}
        if iid in SIZES_768:
            assert (p["width"], p["height"]) == SIZES_768[iid]
        with Image.open(out / p["images"][0]) as im:
            assert im.size == (p["width"], p["height"]) and im.format == "JPEG"
        expect = sorted(
            (
                {**o, "bbox_2d": box_px_to_norm1000(o["bbox_2d"], p["width"], p["height"])}
                for o in p["objects"]
            ),
            key=lambda o: (o["bbox_2d"][1], o["bbox_2d"][0]),
        )
        assert n["objects"] == expect and t["objects"] == objects_to_tokens(expect)
    line = (out / "val.jsonl").read_text().splitlines()[0]
    assert '", "' in line and '": ' in line  # Python default separators [UP-RECORD-SCHEMA]
    cats = json.loads((out / "categories.json").read_text())
    assert [(c["id"], c["name"]) for c in cats] == list(COCO_CATEGORIES)
    stats = json.loads((out / "conversion_stats.json").read_text())
    assert stats["schema_version"] == 1 and stats["params"]["max_pixels"] == 32 * 32 * 768
    assert sorted(p.name for p in tmp_path.iterdir()) == ["rescale_32_768"]  # no temp folders left
    for name in FILES:
        assert [s.sample_id for s in load_samples(out / name)] == [
            str(i) for i in pristine.kept_ids
        ]


def test_rerun_reuses_images_and_writes_identical_files(pristine, tmp_path):
    out = tmp_path / "p"
    convert_coco(pristine.root, budget=64, out_dir=out, progress=False)
    before = {f: (out / f).read_bytes() for f in FILES}
    img = out / f"images/val2017/{pristine.kept_ids[0]:012d}.jpg"
    ino, data = img.stat().st_ino, img.read_bytes()
    st = convert_coco(pristine.root, budget=64, out_dir=out, progress=False, workers=1)
    assert (st.images_resized, st.images_reused) == (0, 10)
    assert {f: (out / f).read_bytes() for f in FILES} == before
    assert img.stat().st_ino == ino and img.read_bytes() == data  # hard-linked, not re-encoded
    assert _upstream_view_sha(out) == UPSTREAM_SHA256[64]


def test_max_objects_then_limit(pristine, tmp_path):
    """val200 semantics: drop dense images first, then keep the first N by id."""
    st = convert_coco(
        pristine.root, budget=64, max_objects=5, limit=4, out_dir=tmp_path / "o", progress=False
    )
    rows = _rows(tmp_path / "o/val.coord.jsonl")
    survivors = [i for i in pristine.kept_ids if i != DENSE_ID]
    assert [r["image_id"] for r in rows] == survivors[:4]
    assert (st.images_skipped_max_objects, st.images_skipped_limit, st.images_written) == (
        1,
        len(survivors) - 4,
        4,
    )
    assert len(list((tmp_path / "o/images/val2017").iterdir())) == 4
    st = convert_coco(
        pristine.root, budget=64, max_objects=8, out_dir=tmp_path / "o8", progress=False
    )
    assert st.images_skipped_max_objects == 0 and st.images_written == 10  # drop-only: 8 <= 8 kept


def test_missing_and_corrupt_images(coco, tmp_path):
    first, last = coco.kept_ids[0], coco.kept_ids[-1]
    coco.image_path(last).unlink()
    with pytest.raises(
        DataError, match=rf"image not found: .*{last:012d}\.jpg \(image_id {last}\)"
    ):
        convert_coco(coco.root, budget=64, out_dir=tmp_path / "o", progress=False)
    assert not (tmp_path / "o").exists()  # never a half-written preset
    stale = tmp_path / ".o.partial/images/val2017/stale.jpg"
    stale.write_bytes(b"left by an earlier run")
    st = convert_coco(coco.root, budget=64, out_dir=tmp_path / "o", progress=False, skip_bad=True)
    assert [r["image_id"] for r in _rows(tmp_path / "o/val.jsonl")] == coco.kept_ids[:-1]
    # the failed run's images were kept in the temp folder and are reused, not re-encoded
    assert (st.images_reused, st.images_resized, st.images_skipped_bad) == (9, 0, 1)
    assert len(list((tmp_path / "o/images/val2017").iterdir())) == 9  # the stale file is gone

    coco.image_path(first).write_bytes(coco.image_path(first).read_bytes()[:300])  # truncated JPEG
    with pytest.raises(DataError, match=rf"{first:012d}\.jpg.*image_id {first}"):
        convert_coco(coco.root, budget=64, out_dir=tmp_path / "o2", progress=False, workers=1)
    st = convert_coco(
        coco.root, budget=64, out_dir=tmp_path / "o2", progress=False, skip_bad=True, limit=5
    )
    assert [r["image_id"] for r in _rows(tmp_path / "o2/val.jsonl")] == coco.kept_ids[
        1:6
    ]  # refilled
    assert (
        st.images_skipped_bad == 1 and len(st.bad_items) == 1 and f"{first:012d}" in st.bad_items[0]
    )


def test_bad_annotations(coco, tmp_path):
    def unknown_cat(c):
        c["annotations"][0]["category_id"] = 12  # 12 is one of COCO's unused ids

    _edit_instances(coco, unknown_cat)
    ann_id = json.loads(coco.annotation_path.read_text())["annotations"][0]["id"]
    with pytest.raises(DataError, match=rf"annotation {ann_id}: unknown category_id 12"):
        convert_coco(coco.root, budget=64, out_dir=tmp_path / "o", progress=False)
    st = convert_coco(coco.root, budget=64, out_dir=tmp_path / "o", progress=False, skip_bad=True)
    assert st.anns_skipped_missing_category == 1

    def zero_height(c):
        c["images"][0]["height"] = 0

    _edit_instances(coco, zero_height)
    with pytest.raises(DataError, match="positive size"):
        convert_coco(coco.root, budget=64, out_dir=tmp_path / "o2", progress=False, skip_bad=False)


def test_size_mismatch_missing_file_and_refusals(coco, tmp_path):
    def wrong_size(c):
        img = next(i for i in c["images"] if i["id"] == coco.kept_ids[0])
        img["width"] += 2

    _edit_instances(coco, wrong_size)
    with pytest.raises(DataError, match="but the annotation says"):
        convert_coco(coco.root, budget=64, out_dir=tmp_path / "o", progress=False)
    with pytest.raises(DataError, match="annotation file not found"):
        convert_coco(tmp_path, out_dir=tmp_path / "o", progress=False)
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.txt").write_text("precious")
    with pytest.raises(DataError, match="refusing to replace"):
        convert_coco(coco.root, budget=64, out_dir=tmp_path / "mine", progress=False)
    assert (tmp_path / "mine" / "notes.txt").read_text() == "precious"
    with pytest.raises(DataError, match="no images left"):
        convert_coco(coco.root, budget=64, max_objects=0, out_dir=tmp_path / "none", progress=False)
