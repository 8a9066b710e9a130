"""No command deletes or writes over a finished run or a user's file, except the one run dir it
was told to replace (issue: hostile matrix, data loss). Each case failed before the guard."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from coordbench.config.run import RunConfig, Shard, check_run_name
from coordbench.errors import ArtifactError, ConfigError, DataError
from coordbench.pipeline.run import run
from tests.conftest import OracleBackend


def _cfg(shapes_dir: Path, out: Path, **kw) -> RunConfig:
    ckpt = out.parent / "fake-ckpt"
    ckpt.mkdir(exist_ok=True)
    (ckpt / "config.json").write_text('{"model_type": "qwen2_5_vl"}')
    return RunConfig(
        ckpt=str(ckpt),
        data=str(shapes_dir / "val.coord.jsonl"),
        preset="64",
        prompt="default_desc_first",
        out=str(out),
        name=kw.pop("name", "r"),
        batch_size=4,
        progress=False,
        **kw,
    )


def _run(shapes_dir, out, **kw):
    return run(_cfg(shapes_dir, out, **kw), backend=OracleBackend(shapes_dir / "val.coord.jsonl"))


def _snapshot(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in folder.rglob("*") if p.is_file()}


@pytest.mark.parametrize(
    "name", ["..", ".", "a/b", "../x", "/abs", "x\n", "a\x00b", "", "  ", "a\\b", "x" * 300]
)
def test_unsafe_run_names_are_refused(shapes_dir, tmp_path, name):
    out = tmp_path / "runs"
    (out / "sibling").mkdir(parents=True)
    (out / "sibling" / "run.json").write_text('{"identity_hash": "x"}')
    before = _snapshot(tmp_path)
    with pytest.raises(ConfigError, match="not a safe run name"):
        _run(shapes_dir, out, name=name, overwrite=True)
    assert _snapshot(out) == {k[5:]: v for k, v in before.items() if k.startswith("runs/")}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["fake-ckpt", "runs"]


def test_safe_names_pass():
    for name in ("r", "qwen2.5-vl_768_t0.7_s1", "a..b", ".hidden", "名前"):
        check_run_name(name)


def test_overwrite_never_empties_a_users_folder(shapes_dir, tmp_path):
    out = tmp_path / "runs"
    mine = out / "notes"
    mine.mkdir(parents=True)
    (mine / "thesis.tex").write_text("precious")
    with pytest.raises(ArtifactError, match="not one \\(no readable run.json\\)"):
        _run(shapes_dir, out, name="notes", overwrite=True)
    assert (mine / "thesis.tex").read_text() == "precious"
    assert sorted(p.name for p in mine.iterdir()) == ["thesis.tex"]
    with pytest.raises(ArtifactError, match="not one"):  # nor is it written into without it
        _run(shapes_dir, out, name="notes")
    assert sorted(p.name for p in mine.iterdir()) == ["thesis.tex"]


def test_overwrite_replaces_only_its_own_run_dir(shapes_dir, tmp_path):
    out = tmp_path / "runs"
    _run(shapes_dir, out, name="a")
    _run(shapes_dir, out, name="b")
    keep = _snapshot(out / "b")
    _run(shapes_dir, out, name="a", overwrite=True, temperature=0.5)
    assert _snapshot(out / "b") == keep
    head = json.loads((out / "a" / "run.json").read_text())
    assert head["config"]["temperature"] == 0.5


def test_a_start_refused_before_generating_does_not_block_the_corrected_command(
    shapes_dir, tmp_path
):
    class Broken(OracleBackend):
        def generate(self, batch, params):
            raise ConfigError("model failed to load")

    out = tmp_path / "runs"
    with pytest.raises(ConfigError):
        run(_cfg(shapes_dir, out, name="x"), backend=Broken(shapes_dir / "val.coord.jsonl"))
    assert (out / "x" / "run.json").exists()  # the refused start left its identity behind
    summary = _run(shapes_dir, out, name="x", temperature=0.3)  # corrected: another identity
    assert summary["total_emitted"] == 12


def test_merge_out_never_replaces_a_run_of_another_identity(shapes_dir, tmp_path):
    from coordbench.pipeline.merge import merge_and_score

    out = tmp_path / "runs"
    for i in range(2):
        _run(shapes_dir, out, name="sh", shard=Shard(i, 2))
    _run(shapes_dir, out, name="other", temperature=0.9)
    keep = _snapshot(out / "other")
    with pytest.raises(ArtifactError, match="another identity"):
        merge_and_score([out / "sh"], out / "other")
    assert _snapshot(out / "other") == keep
    user = tmp_path / "folder"
    user.mkdir()
    (user / "a.txt").write_text("mine")
    with pytest.raises(ArtifactError, match="not one"):
        merge_and_score([out / "sh"], user)
    assert _snapshot(user) == {"a.txt": b"mine"}
    shard0 = out / "sh" / "shards" / "00000-of-00002"
    with pytest.raises(ArtifactError, match="input"):
        merge_and_score([shard0, out / "sh" / "shards" / "00001-of-00002"], shard0)
    run_dir, _ = merge_and_score([out / "sh"], out / "other", overwrite=True)
    assert json.loads((run_dir / "run.json").read_text())["config"]["temperature"] == 0.0
    assert (out / "sh" / "shards").is_dir()  # the inputs survive


def test_export_never_writes_over_the_runs_own_files(shapes_dir, tmp_path):
    from click.testing import CliRunner

    from coordbench.cli.main import main

    out = tmp_path / "runs"
    _run(shapes_dir, out, name="a")
    keep = _snapshot(out / "a")
    for victim in ("gt_vs_pred.jsonl", "summary.json", "eval/metrics.json", "run.json"):
        res = CliRunner().invoke(
            main, ["export", "coco-results", str(out / "a"), "--out", str(out / "a" / victim)]
        )
        assert res.exit_code == 2, res.output
        assert "run dir" in res.output
    assert _snapshot(out / "a") == keep
    src = shapes_dir / "val.coord.jsonl"  # an input named by --data
    src_bytes = src.read_bytes()
    res = CliRunner().invoke(
        main, ["export", "coco-results", str(out / "a"), "--data", str(src), "--out", str(src)]
    )
    assert res.exit_code == 2 and "input" in res.output, res.output
    assert src.read_bytes() == src_bytes
    # the default destination passes the guard (shapes data then lacks the original sizes)
    res = CliRunner().invoke(main, ["export", "coco-results", str(out / "a")])
    assert "orig_width" in res.output, res.output


def test_compare_out_never_writes_over_a_runs_file(shapes_dir, tmp_path):
    from click.testing import CliRunner

    from coordbench.cli.main import main

    out = tmp_path / "runs"
    _run(shapes_dir, out, name="a")
    _run(shapes_dir, out, name="b", temperature=0.5)
    keep = _snapshot(out)
    for victim in (out / "a" / "summary.json", out / "b" / "eval" / "metrics.json"):
        args = ["compare", str(out / "a"), str(out / "b"), "--no-log", "--out", str(victim)]
        res = CliRunner().invoke(main, args)
        assert res.exit_code == 2, res.output
    assert _snapshot(out) == keep


def test_data_coco_never_replaces_a_users_folder(tmp_path):
    from coordbench.data.coco import convert_coco
    from tests.fixtures_coco import make_coco

    root = make_coco(tmp_path / "coco").root
    user = tmp_path / "mine"
    user.mkdir()
    (user / "val.jsonl").write_text("{}\n")  # a file of the same name is not a preset folder
    (user / "thesis.tex").write_text("precious")
    with pytest.raises(DataError, match="not a preset folder"):
        convert_coco(root, out_dir=user, progress=False)
    assert (user / "thesis.tex").read_text() == "precious"
    with pytest.raises(DataError, match="input --coco-root"):
        convert_coco(root, out_dir=tmp_path, progress=False)
    preset = tmp_path / "preset"
    convert_coco(root, out_dir=preset, progress=False, limit=2)
    convert_coco(root, out_dir=preset, progress=False, limit=3)  # its own folder: replaced
    assert len((preset / "val.jsonl").read_text().splitlines()) == 3
