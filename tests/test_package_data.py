"""Package data (what a wheel ships) and the top-level folders that are edited stay the same files.

`coordbench/resources/configs` and `coordbench/resources/shapes` are symlinks to `configs/` and
`public_data/shapes/`; if one is ever replaced by a copy, the copy must not drift from its source.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path

import pytest

from coordbench.config import run as run_config
from coordbench.config.presets import configs_dir
from coordbench.pipeline import provenance

REPO = Path(__file__).resolve().parents[1]
PAIRS = [("configs", REPO / "configs"), ("shapes", REPO / "public_data" / "shapes")]


def _tree(root) -> dict[str, bytes]:
    """Relative path -> bytes of every file under a Traversable (or Path), hidden files skipped."""
    out: dict[str, bytes] = {}
    stack = [(root, "")]
    while stack:
        node, prefix = stack.pop()
        for child in node.iterdir():
            if child.name.startswith(".") or child.name == "__pycache__":
                continue
            rel = f"{prefix}{child.name}"
            if child.is_dir():
                stack.append((child, rel + "/"))
            else:
                out[rel] = child.read_bytes()
    return out


@pytest.mark.parametrize(("name", "source"), PAIRS, ids=[p[0] for p in PAIRS])
def test_package_data_matches_the_top_level_folder(name, source):
    shipped = _tree(resources.files("coordbench") / "resources" / name)
    edited = _tree(source)
    assert sorted(shipped) == sorted(edited), f"coordbench/resources/{name} lists other files"
    drifted = [rel for rel in edited if shipped[rel] != edited[rel]]
    assert not drifted, f"coordbench/resources/{name} differs from {source}: {drifted[:5]}"


def test_package_data_holds_what_a_default_run_reads():
    data = resources.files("coordbench") / "resources" / "shapes"
    assert (data / "val.coord.jsonl").is_file()
    assert len(list((data / "images" / "val").iterdir())) == 64
    for kind, name in (("rescale", "64"), ("prompt", "default_desc_first")):
        assert (
            resources.files("coordbench") / "resources" / "configs" / kind / f"{name}.toml"
        ).is_file()


def test_a_checkout_still_names_its_top_level_folders(monkeypatch):
    monkeypatch.delenv("COORDBENCH_CONFIGS", raising=False)
    assert configs_dir() == REPO / "configs"
    assert run_config.EMBEDDED_DATA == REPO / "public_data" / "shapes" / "val.coord.jsonl"
    assert run_config.IN_CHECKOUT
    coco = run_config.RunConfig(ckpt="some/ckpt", preset="1024").resolved().data
    assert coco == str(REPO / "public_data/coco/rescale_32_1024/val.coord.jsonl")


def test_installed_coco_preset_data_is_under_the_working_directory(tmp_path, monkeypatch):
    monkeypatch.setattr(run_config, "IN_CHECKOUT", False)
    monkeypatch.chdir(tmp_path)
    coco = run_config.RunConfig(ckpt="some/ckpt").resolved().data
    assert coco == str(tmp_path / "public_data/coco/rescale_32_768/val.coord.jsonl")
    from coordbench.cli.data import default_out_dir

    assert default_out_dir(32, 768, 60) == tmp_path / "public_data/coco/rescale_32_768_max60"


def test_git_sha_is_none_outside_a_checkout(tmp_path, monkeypatch):
    monkeypatch.setattr(provenance, "CHECKOUT_ROOT", tmp_path)
    assert provenance.git_sha() is None
