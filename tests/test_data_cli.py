"""`coordbench data coco|jsonl` through click, and validate_jsonl's report."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner
from fixtures_coco import make_coco
from PIL import Image

from coordbench.cli.data import data_group, default_out_dir
from coordbench.data.validate import validate_jsonl

PHOTOS = Path(__file__).resolve().parents[1] / "public_data" / "photos"


def _dataset(root: Path, records: list, name: str = "val.jsonl") -> Path:
    (root / "images").mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (64, 32)).save(root / "images/a.jpg")
    Image.new("RGB", (60, 32)).save(root / "images/b.jpg")
    path = root / name
    path.write_text("".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in records))
    return path


def _rec(img="images/a.jpg", **kw):
    return {
        "images": [img],
        "objects": [{"bbox_2d": [1, 2, 30, 20], "desc": "cat"}],
        "width": 64,
        "height": 32,
        **kw,
    }


def test_validate_collects_every_problem(tmp_path):
    path = _dataset(
        tmp_path,
        [
            _rec(image_id=1, extra_key=1),
            "{not json",
            _rec("images/b.jpg", image_id=2),  # the file is 60 px wide
            _rec("/etc/passwd", image_id=3),
            _rec(image_id=1),
            {**_rec(image_id=4), "objects": [{"bbox_2d": [1, 2, 3, 4], "desc": "a", "score": 1}]},
        ],
    )
    rep = validate_jsonl(path, factor=32, max_pixels=32 * 32)
    assert not rep.ok and rep.records == 5 and rep.frame == "pixel"
    text = "\n".join(rep.errors)
    assert "line 2" in text and "invalid JSON" in text
    assert "b.jpg is 60x32 but the record says 64x32" in text
    assert "relative" in text and "duplicate sample id '1'" in text
    assert rep.n_errors == 4
    assert any("extra_key" in w for w in rep.warnings) and any("score" in w for w in rep.warnings)
    assert rep.over_budget == 4 and rep.off_grid == 0  # 64x32 > 1024 pixels, on the 32 grid
    assert "INVALID" in rep.summary()


def test_validate_good_file_and_decode(tmp_path):
    path = _dataset(tmp_path, [_rec(image_id=1), _rec(image_id=2, objects=[])])
    rep = validate_jsonl(path, decode=True)
    assert rep.ok and (rep.records, rep.objects, rep.empty_records) == (2, 1, 1)
    (tmp_path / "images/a.jpg").write_bytes(b"\xff\xd8\xff junk")
    assert not validate_jsonl(path, decode=True).ok and not validate_jsonl(path).ok
    assert validate_jsonl(path, check_images=False).ok


def test_cli_jsonl_exit_codes(tmp_path):
    runner = CliRunner()
    good = _dataset(tmp_path, [_rec(image_id=1)])
    res = runner.invoke(data_group, ["jsonl", str(good)])
    assert res.exit_code == 0 and "OK" in res.output
    off_grid = _dataset(tmp_path / "g", [{**_rec("images/b.jpg", image_id=1), "width": 60}])
    assert runner.invoke(data_group, ["jsonl", str(off_grid)]).exit_code == 0
    res = runner.invoke(data_group, ["jsonl", str(off_grid), "--preset", "64"])
    assert res.exit_code == 2 and "not 64 preset images" in res.output  # 60 is off the 32 grid
    bad = _dataset(tmp_path / "b", [_rec("../a.jpg", image_id=1)])
    res = runner.invoke(data_group, ["jsonl", str(bad)])
    assert res.exit_code == 2 and "error:" in res.output and "'..'" in res.output
    res = runner.invoke(data_group, ["jsonl", str(tmp_path / "missing.jsonl")])
    assert res.exit_code == 2 and "data file not found" in res.output


def test_cli_coco(tmp_path):
    fx = make_coco(tmp_path / "coco")
    out = tmp_path / "out"
    args = [
        "coco",
        "--coco-root",
        str(fx.root),
        "--preset",
        "64",
        "--out",
        str(out),
        "--max-objects",
        "5",
        "--limit",
        "3",
        "--workers",
        "1",
        "--no-progress",
    ]
    res = CliRunner().invoke(data_group, args)
    assert res.exit_code == 0, res.output
    assert "wrote 3 images" in res.output and "val.coord.jsonl" in res.output
    assert len((out / "val.jsonl").read_text().splitlines()) == 3
    res = CliRunner().invoke(data_group, ["coco", "--coco-root", str(tmp_path), "--out", str(out)])
    assert res.exit_code == 2 and "annotation file not found" in res.output
    res = CliRunner().invoke(data_group, [*args[:3], "--preset", "nope", "--out", str(out)])
    assert res.exit_code == 2 and "error:" in res.output


def test_default_out_dir_follows_upstream_naming():
    assert default_out_dir(32, 768, None).parts[-3:] == ("public_data", "coco", "rescale_32_768")
    assert default_out_dir(32, 1024, 60).name == "rescale_32_1024_max60"


@pytest.mark.parametrize("cmd", [[], ["coco"], ["jsonl"]])
def test_every_command_is_documented(cmd):
    res = CliRunner().invoke(data_group, [*cmd, "--help"])
    assert res.exit_code == 0 and len(res.output.splitlines()) > 5 and "Usage:" in res.output


@pytest.mark.skipif(not (PHOTOS / "val.jsonl").exists(), reason="public_data/photos not present")
def test_embedded_photos_are_valid_768_preset_data():
    for name in ("val.jsonl", "val.norm.jsonl", "val.coord.jsonl"):
        rep = validate_jsonl(PHOTOS / name, decode=True, factor=32, max_pixels=32 * 32 * 768)
        assert rep.ok and not rep.off_grid and not rep.over_budget, rep.summary()
        assert rep.records >= 4 and rep.empty_records == 0
