"""A checkpoint's trained prompt preset (`coordbench.json`): the default prompt, the warning when
--prompt differs, the fingerprint that ignores the note, and the malformed-answers warning."""

from __future__ import annotations

import logging
import shutil

import pytest

from coordbench.config.run import EMBEDDED_CKPT, EMBEDDED_DATA, RunConfig, checkpoint_prompt
from coordbench.errors import ConfigError
from coordbench.parse.mismatch import prompt_check
from coordbench.pipeline.plan import checkpoint_fingerprint, plan_run
from coordbench.pipeline.run import run
from tests.conftest import OracleBackend


def _fake_ckpt(tmp_path, meta: str | None):
    ckpt = tmp_path / "ckpt"
    ckpt.mkdir()
    (ckpt / "config.json").write_text('{"model_type": "qwen2_5_vl"}')
    if meta is not None:
        (ckpt / "coordbench.json").write_text(meta)
    return ckpt


def test_the_embedded_checkpoint_ships_its_trained_prompt():
    assert checkpoint_prompt(EMBEDDED_CKPT) == "default_desc_first"


def test_a_copied_checkpoint_keeps_its_prompt_at_another_preset(tmp_path):
    ckpt = _fake_ckpt(tmp_path, '{"prompt": "default_desc_first"}')
    cfg = RunConfig(ckpt=str(ckpt), preset="768", data=str(EMBEDDED_DATA)).resolved()
    assert cfg.prompt == "default_desc_first"
    # --prompt still wins
    cfg = RunConfig(ckpt=str(ckpt), preset="768", data="x", prompt="qwen25_pixel").resolved()
    assert cfg.prompt == "qwen25_pixel"


def test_without_the_note_the_task_prompt_is_the_default(tmp_path):
    ckpt = _fake_ckpt(tmp_path, None)
    assert RunConfig(ckpt=str(ckpt), preset="768", data="x").resolved().prompt == (
        "coco80_desc_first"
    )


@pytest.mark.parametrize("meta", ["{not json", '{"prompt": 3}', '{"prompt": ""}'])
def test_a_bad_note_is_an_error_naming_the_file(tmp_path, meta):
    ckpt = _fake_ckpt(tmp_path, meta)
    with pytest.raises(ConfigError, match="coordbench.json"):
        RunConfig(ckpt=str(ckpt), preset="768", data="x").resolved()


def test_the_note_is_not_part_of_the_checkpoint_hash(tmp_path):
    copy = tmp_path / "copy"
    shutil.copytree(EMBEDDED_CKPT, copy)
    with_note = checkpoint_fingerprint(str(copy))
    (copy / "coordbench.json").unlink()
    assert checkpoint_fingerprint(str(copy)) == with_note
    (copy / "generation_config.json").write_text("{}")  # a real JSON config still counts
    assert checkpoint_fingerprint(str(copy)) != with_note


def test_a_differing_prompt_warns(tmp_path, caplog):
    ckpt = _fake_ckpt(tmp_path, '{"prompt": "default_desc_first"}')
    (ckpt / "model.safetensors").write_bytes(b"0")
    with caplog.at_level(logging.WARNING, logger="coordbench"):
        plan_run(RunConfig(ckpt=str(ckpt), data=str(EMBEDDED_DATA), limit=2, preset="64"))
    assert not caplog.records
    with caplog.at_level(logging.WARNING, logger="coordbench"):
        plan_run(
            RunConfig(
                ckpt=str(ckpt), data=str(EMBEDDED_DATA), limit=2, preset="64", prompt="qwen25_pixel"
            )
        )
    msg = caplog.records[-1].getMessage()
    assert "--prompt qwen25_pixel differs from default_desc_first" in msg and "ckpt" in msg


def test_prompt_check_counts_malformed_and_truncated():
    ok = {"ok": 5, "empty": 0, "truncated": 2, "malformed": 3}
    assert prompt_check(ok, "p") is None  # 5 of 10: not most
    bad = prompt_check({"ok": 4, "truncated": 3, "malformed": 3}, "coco80_desc_first")
    assert bad["share"] == pytest.approx(0.6) and bad["n"] == 10
    assert "coco80_desc_first" in bad["warning"] and "expect another" in bad["warning"]
    assert prompt_check({}, "p") is None


def test_most_answers_malformed_names_the_prompt(shapes_dir, tmp_path, monkeypatch, capsys):
    from coordbench.cli.common import print_run

    monkeypatch.setenv("COORDBENCH_BENCHMARK_LOG", str(tmp_path / "log.jsonl"))
    ckpt = _fake_ckpt(tmp_path, None)
    plan = {i: ("garbage" if i % 3 else "truncate") for i in range(12)}
    cfg = RunConfig(
        ckpt=str(ckpt),
        data=str(shapes_dir / "val.coord.jsonl"),
        preset="64",
        prompt="default_desc_first",
        out=str(tmp_path),
        name="r",
        progress=False,
    )
    summary = run(cfg, backend=OracleBackend(shapes_dir / "val.coord.jsonl", plan))
    assert summary["parse"]["prompt_check"]["prompt_preset"] == "default_desc_first"
    warnings = summary["diagnostics"]["warnings"]
    assert any("under prompt preset default_desc_first" in w for w in warnings)
    print_run(tmp_path / "r", summary)  # the terminal table says it too
    assert "warning: 100% of answers are malformed or truncated under prompt preset" in (
        capsys.readouterr().out
    )


def test_a_clean_run_has_no_prompt_check(shapes_dir, tmp_path, monkeypatch):
    monkeypatch.setenv("COORDBENCH_BENCHMARK_LOG", str(tmp_path / "log.jsonl"))
    ckpt = _fake_ckpt(tmp_path, None)
    cfg = RunConfig(
        ckpt=str(ckpt),
        data=str(shapes_dir / "val.coord.jsonl"),
        preset="64",
        prompt="default_desc_first",
        out=str(tmp_path),
        name="r",
        progress=False,
    )
    summary = run(cfg, backend=OracleBackend(shapes_dir / "val.coord.jsonl"))
    assert "prompt_check" not in summary["parse"]
