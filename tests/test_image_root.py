"""Absolute image paths: allowed under the JSONL's folder or --image-root, refused elsewhere with
a message that says how; the report follows the same rule."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner

from coordbench.cli.main import main
from coordbench.data.dataset import load_samples
from coordbench.errors import DataError
from coordbench.pipeline.run import run
from coordbench.report.gallery import Outcome, render_image
from tests.conftest import OracleBackend
from tests.test_runner_e2e import _cfg


def _absolute_copy(shapes_dir: Path, tmp_path: Path) -> tuple[Path, Path]:
    """The shapes JSONL in its own folder, its images moved to `store/`, paths made absolute."""
    store = tmp_path / "store"
    shutil.copytree(shapes_dir / "images", store)
    rows = [json.loads(x) for x in (shapes_dir / "val.coord.jsonl").read_text().splitlines()]
    for r in rows:
        r["images"] = [str(store / Path(r["images"][0]).relative_to("images"))]
    data = tmp_path / "ds" / "val.coord.jsonl"
    data.parent.mkdir()
    data.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return data, store


def test_absolute_paths_need_image_root_and_the_error_says_how(shapes_dir, tmp_path):
    data, store = _absolute_copy(shapes_dir, tmp_path)
    with pytest.raises(DataError) as e:
        load_samples(data)
    msg = str(e.value)
    assert "--image-root DIR" in msg and str(store) in msg and "line 1" in msg
    samples = load_samples(data, image_root=store)
    assert all(
        Path(s.image_path).is_file() and s.image_path.startswith(str(store)) for s in samples
    )
    assert load_samples(data, image_root=tmp_path)  # any folder above the images
    with pytest.raises(DataError, match="--image-root"):
        load_samples(data, image_root=tmp_path / "ds")  # not above them


def test_absolute_path_under_the_jsonl_folder_is_allowed_and_dotdot_is_not(shapes_dir, tmp_path):
    rows = [json.loads(x) for x in (shapes_dir / "val.coord.jsonl").read_text().splitlines()]
    data = tmp_path / "d" / "val.coord.jsonl"
    shutil.copytree(shapes_dir / "images", tmp_path / "d" / "images")
    r0 = dict(rows[0], images=[str(tmp_path / "d" / rows[0]["images"][0])])
    data.write_text(json.dumps(r0) + "\n")
    assert load_samples(data)[0].image_path == r0["images"][0]
    sneaky = str(tmp_path / "d" / ".." / "outside.jpg")  # lexically outside after normalising
    shutil.copy(r0["images"][0], tmp_path / "outside.jpg")
    data.write_text(json.dumps(dict(r0, images=[sneaky])) + "\n")
    with pytest.raises(DataError, match="--image-root"):
        load_samples(data)


def test_run_and_report_with_image_root(shapes_dir, tmp_path):
    data, store = _absolute_copy(shapes_dir, tmp_path)
    cfg = _cfg(shapes_dir, tmp_path)
    from dataclasses import replace

    cfg = replace(cfg, data=str(data), image_root=str(store))
    summary = run(cfg, backend=OracleBackend(data))
    assert summary["metrics"]["bbox_AP"] == pytest.approx(1.0)
    html = (tmp_path / "r" / "report.html").read_text(encoding="utf-8")
    assert "image not found" not in html
    rec = {"width": 64, "height": 64, "gt": [], "pred": []}
    oc = Outcome(pred=[], gt=[])
    img = next(store.rglob("*.jpg"))
    assert render_image({**rec, "image": str(img)}, data.parent, oc, store)[3] is True
    _, _, path, found = render_image({**rec, "image": str(img)}, data.parent, oc)
    assert (path, found) == (None, False)  # without the run's --image-root: not followed


def test_data_jsonl_cli_takes_image_root(shapes_dir, tmp_path):
    data, store = _absolute_copy(shapes_dir, tmp_path)
    r = CliRunner().invoke(main, ["data", "jsonl", str(data), "--no-images"])
    assert r.exit_code == 2 and "--image-root DIR" in r.output
    r = CliRunner().invoke(main, ["data", "jsonl", str(data), "--image-root", str(store)])
    assert r.exit_code == 0, r.output


def test_symlink_rule_holds_under_image_root_too(shapes_dir, tmp_path):
    """An absolute path under --image-root is followed, but not a link there that resolves
    outside every allowed folder (the rule the JSONL's own folder has)."""
    data, store = _absolute_copy(shapes_dir, tmp_path)
    assert load_samples(data, image_root=store)  # plain files under the root: fine
    first = json.loads(data.read_text().splitlines()[0])
    target = Path(first["images"][0])
    outside = tmp_path / "elsewhere" / "secret.jpg"
    outside.parent.mkdir()
    shutil.move(target, outside)
    target.symlink_to(outside)
    with pytest.raises(DataError, match="symlink that leaves"):
        load_samples(data, image_root=store)
    # the report applies the same rule and shows a placeholder instead of the file
    from coordbench.report.gallery import _image_path

    assert _image_path(str(target), data.parent, store) is None
    assert _image_path(str(target), data.parent, tmp_path) is not None  # the link stays inside
