"""load_samples / gt_objects / dataset_fingerprint / open_image on hand-written files."""

from __future__ import annotations

import json
import logging

import pytest
from PIL import Image

from coordbench.data.dataset import (
    dataset_fingerprint,
    gt_objects,
    image_sizes,
    load_samples,
    open_image,
)
from coordbench.errors import DataError

W, H = 64, 32


def _image(root, rel="images/a.jpg", size=(W, H)):
    (root / rel).parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", size, (10, 20, 30)).save(root / rel)
    return rel


def _rec(rel="images/a.jpg", objects=None, **kw):
    objs = [{"bbox_2d": [1, 2, 30, 20], "desc": " cat "}] if objects is None else objects
    return {"images": [rel], "objects": objs, "width": W, "height": H, **kw}


def _write(root, records, name="val.jsonl", tail="\n"):
    path = root / name
    path.write_text("\n".join(r if isinstance(r, str) else json.dumps(r) for r in records) + tail)
    return path


def test_pixel_file_round_clamps_and_keeps_extra(tmp_path):
    _image(tmp_path)
    _image(tmp_path, "images/b.jpg")
    objs = [{"bbox_2d": [1.4, 2.5, 70, 40], "desc": " cat ", "category_id": 17, "coco_ann_id": 9}]
    meta = {"source": "coco2017", "split": "val"}
    path = _write(
        tmp_path,
        [
            _rec(
                objects=objs,
                image_id=139,
                file_name="images/a.jpg",
                metadata=meta,
                orig_width=640,
                orig_height=320,
            ),
            _rec("images/b.jpg", objects=[]),
        ],
    )
    a, b = load_samples(path)
    # round half to even (2.5 -> 2) and clamp to [0, W-1] x [0, H-1], as upstream reads pixel GT
    assert a.boxes[0].xyxy() == [1, 2, W - 1, H - 1] and a.boxes[0].label == "cat"
    assert (a.sample_id, a.image_id, a.index, a.image) == ("139", 139, 0, "images/a.jpg")
    assert a.image_path == str(tmp_path / "images/a.jpg")
    assert a.extra == {
        "file_name": "images/a.jpg",
        "metadata": meta,
        "orig_width": 640,
        "orig_height": 320,
        "coco_ids": [{"category_id": 17, "coco_ann_id": 9}],
    }
    assert (b.sample_id, b.image_id, b.boxes, b.extra) == (
        "images/b.jpg",
        None,
        (),
        {},
    )  # empty is valid
    assert gt_objects(a) == [{"type": "bbox_2d", "points": [1, 2, 63, 31], "desc": "cat"}]


def test_frame_comes_from_the_file_not_the_values(tmp_path):
    _image(tmp_path)
    box = [100, 200, 300, 400]  # small numbers that would fit the image either way [UP-COORD-FRAME]
    tokens = [f"<|coord_{v}|>" for v in box]
    # round(k/999*(W-1)): 100/999*63 = 6.31, 200/999*31 = 6.21,
    # 300/999*63 = 18.92, 400/999*31 = 12.41
    expected = [6, 6, 19, 12]
    norm = load_samples(
        _write(tmp_path, [_rec(objects=[{"bbox_2d": box, "desc": "a"}])], "val.norm.jsonl")
    )
    coord = load_samples(
        _write(tmp_path, [_rec(objects=[{"bbox_2d": tokens, "desc": "a"}])], "x.jsonl")
    )
    pixel = load_samples(_write(tmp_path, [_rec(objects=[{"bbox_2d": [1, 2, 3, 4], "desc": "a"}])]))
    assert norm[0].boxes[0].xyxy() == expected == coord[0].boxes[0].xyxy()
    assert pixel[0].boxes[0].xyxy() == [1, 2, 3, 4]


@pytest.mark.parametrize(
    ("record", "name", "match"),
    [
        (
            {"images": ["images/a.jpg", "images/a.jpg"], "objects": [], "width": W, "height": H},
            "val.jsonl",
            "exactly one",
        ),
        (
            {"images": "images/a.jpg", "objects": [], "width": W, "height": H},
            "val.jsonl",
            "exactly one",
        ),
        (_rec("/abs/a.jpg"), "val.jsonl", "relative"),
        (_rec("C:\\data\\a.jpg"), "val.jsonl", "relative"),
        (_rec("images/../../a.jpg"), "val.jsonl", r"'\.\.'"),
        ({**_rec(), "width": 0}, "val.jsonl", "`width` must be a positive integer"),
        ({k: v for k, v in _rec().items() if k != "height"}, "val.jsonl", "`height`"),
        (_rec("images/missing.jpg"), "val.jsonl", r"image not found: .*missing\.jpg \(.*line 2"),
        (
            _rec(objects=[{"poly": [1, 2, 3, 4, 5, 6], "desc": "a"}]),
            "val.jsonl",
            "unsupported geometry key 'poly'",
        ),
        (
            _rec(objects=[{"bbox": [1, 2, 3, 4], "desc": "a"}]),
            "val.jsonl",
            "unsupported geometry key 'bbox'",
        ),
        (_rec(objects=[{"bbox_2d": [1, 2, 3], "desc": "a"}]), "val.jsonl", "4 values"),
        (_rec(objects=[{"bbox_2d": [1, 2, 3, 4]}]), "val.jsonl", "`desc`"),
        (_rec(objects=[{"bbox_2d": [9, 2, 3, 4], "desc": "a"}]), "val.jsonl", "empty or reversed"),
        (_rec(objects=[{"bbox_2d": [1, 2, 1000, 4], "desc": "a"}]), "val.norm.jsonl", "outside"),
        (
            _rec(objects=[{"bbox_2d": [1, 2, 3, 4], "desc": "a"}]),
            "val.coord.jsonl",
            "expected coord tokens",
        ),
        (
            _rec(objects=[{"bbox_2d": ["<|coord_1|>", "<|coord_2|>", 3, 4], "desc": "a"}]),
            "v.jsonl",
            "expected coord",
        ),
        (
            _rec(objects=[{"bbox_2d": [1, 2, "<|coord_3|>", 4], "desc": "a"}]),
            "v.jsonl",
            "expected a number",
        ),
        (
            _rec(objects=[{"bbox_2d": ["<|coord_1000|>"] * 4, "desc": "a"}]),
            "v.jsonl",
            "expected coord",
        ),
    ],
)
def test_bad_records_name_file_and_line(tmp_path, record, name, match):
    _image(tmp_path)
    # line 1 is valid and has no objects, so the frame comes from the file name and line 2
    path = _write(tmp_path, [_rec(objects=[], image_id=1), {**record, "image_id": 2}], name)
    with pytest.raises(DataError, match=match) as e:
        load_samples(path)
    assert f"{path} line 2" in str(e.value) and "sample 2" in str(e.value)


def test_json_errors_and_torn_tail(tmp_path, caplog):
    _image(tmp_path)
    good = json.dumps(_rec())
    with pytest.raises(DataError, match=r"invalid JSON in .*val\.jsonl line 2"):
        load_samples(_write(tmp_path, [good, '{"images": ['], tail="\n"))  # complete line: an error
    with caplog.at_level(logging.WARNING, logger="coordbench"):
        samples = load_samples(
            _write(tmp_path, [good, '{"images": ['], tail="")
        )  # torn tail: dropped
    assert len(samples) == 1 and "torn" in caplog.text
    with pytest.raises(DataError, match="line 1"):
        load_samples(_write(tmp_path, ['{"bad', good], tail=""))  # only the LAST line may be torn
    with pytest.raises(DataError, match="JSON object"):
        load_samples(_write(tmp_path, ["[1, 2]"]))


def test_empty_limit_and_duplicates(tmp_path):
    _image(tmp_path)
    with pytest.raises(DataError, match="empty"):
        load_samples(_write(tmp_path, [], tail=""))
    with pytest.raises(DataError, match="empty"):
        load_samples(_write(tmp_path, ["", "  "]))
    path = _write(tmp_path, [_rec(image_id=i) for i in range(5)])
    assert [s.sample_id for s in load_samples(path, limit=3)] == ["0", "1", "2"]
    assert load_samples(path, limit=0) == [] and len(load_samples(path, limit=99)) == 5
    with pytest.raises(DataError, match="limit"):
        load_samples(path, limit=-1)
    with pytest.raises(DataError, match="not found"):
        load_samples(tmp_path / "nope.jsonl")
    dup = _write(tmp_path, [_rec(image_id=7), _rec(image_id=7)])
    with pytest.raises(DataError, match=r"duplicate sample id '7' .* lines 1 and 2"):
        load_samples(dup)
    with pytest.raises(DataError, match="duplicate sample id 'images/a.jpg'"):
        load_samples(_write(tmp_path, [_rec(), _rec()]))  # no image_id: images[0] is the id


def test_fingerprint_tracks_records_used_not_image_bytes(tmp_path):
    _image(tmp_path)
    path = _write(tmp_path, [_rec(image_id=i) for i in range(3)])
    fp3 = dataset_fingerprint(path, load_samples(path))
    fp2 = dataset_fingerprint(path, load_samples(path, limit=2))
    assert fp3 != fp2 and len(fp3) == 64
    _write(tmp_path, [_rec(image_id=i) for i in range(4)])  # appended records do not change limit=2
    assert dataset_fingerprint(path, load_samples(path, limit=2)) == fp2
    moved = tmp_path / "moved"
    moved.mkdir()
    _image(moved)
    path_b = _write(moved, [_rec(image_id=i) for i in range(3)])
    assert dataset_fingerprint(path_b, load_samples(path_b)) == fp3  # content, not location
    _image(moved, size=(W, H + 1))  # a different image file: image_sizes' job, not identity's
    assert dataset_fingerprint(path_b, load_samples(path_b)) == fp3
    sizes = image_sizes(load_samples(path_b))
    assert sizes != image_sizes(load_samples(path)) and set(sizes) == {"0", "1", "2"}
    samples = load_samples(path_b)
    (moved / "images/a.jpg").unlink()  # removed after loading: image_sizes names it
    with pytest.raises(DataError, match=r"image not found: .*a\.jpg \(sample 0\)"):
        image_sizes(samples)
    _image(moved)
    _write(moved, [_rec(image_id=i, objects=[]) for i in range(3)])
    assert dataset_fingerprint(path_b, load_samples(path_b)) != fp3


def test_open_image(tmp_path):
    _image(tmp_path)
    Image.new("L", (W, H)).save(tmp_path / "images/gray.png")
    _image(tmp_path, "images/small.jpg", size=(W // 2, H))
    (tmp_path / "images/corrupt.jpg").write_bytes(b"\xff\xd8\xff garbage")
    path = _write(
        tmp_path,
        [_rec(), _rec("images/gray.png"), _rec("images/small.jpg"), _rec("images/corrupt.jpg")],
    )
    a, gray, small, corrupt = load_samples(path)
    img = open_image(a)
    assert img.mode == "RGB" and img.size == (W, H)
    assert open_image(gray).mode == "RGB"
    with pytest.raises(DataError, match=r"small\.jpg is 32x32 but its record says 64x32"):
        open_image(small)
    with pytest.raises(
        DataError, match=r"cannot read image .*corrupt\.jpg \(sample images/corrupt\.jpg\)"
    ):
        open_image(corrupt)
    (tmp_path / "images/a.jpg").unlink()
    with pytest.raises(DataError, match=r"image not found: .*a\.jpg"):
        open_image(a)


def test_pixel_and_coord_files_describe_the_same_boxes(tmp_path):
    """A norm1000 file's GT is the pixel GT grown by at most ~1 bin per side [UP-NORM1000]."""
    from coordbench.data.coords import objects_to_tokens
    from coordbench.geometry import box_px_to_norm1000

    _image(tmp_path, size=(W, H))
    px_objs = [{"bbox_2d": [3, 4, 40, 30], "desc": "a"}, {"bbox_2d": [0, 0, 63, 31], "desc": "b"}]
    norm_objs = [{**o, "bbox_2d": box_px_to_norm1000(o["bbox_2d"], W, H)} for o in px_objs]
    px = load_samples(_write(tmp_path, [_rec(objects=px_objs)]))[0]
    co = load_samples(
        _write(tmp_path, [_rec(objects=objects_to_tokens(norm_objs))], "val.coord.jsonl")
    )[0]
    for p, q in zip(px.boxes, co.boxes, strict=True):
        assert q.x0 <= p.x0 and q.y0 <= p.y0 and q.x1 >= p.x1 and q.y1 >= p.y1
        assert max(abs(u - v) for u, v in zip(p.xyxy(), q.xyxy(), strict=True)) <= 1
