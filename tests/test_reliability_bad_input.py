"""Bad-input matrix: every bad input is refused with exit code 2 and one `error:` line on stderr
naming the culprit, never a traceback, and never at the cost of finished work.

Each bad input runs against the name of an existing finished run: its run dir must come out byte
for byte unchanged. Bad input found only mid-run (images, a full disk): test_reliability_midrun.py.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from coordbench.rundir import files as A
from tests.test_reliability_support import (
    artifact_bytes,
    assert_clean_error,
    assets,
    copy_run,
    line_count,
    reference_run,
    run_args,
    run_cli,
)


@pytest.fixture
def finished(tmp_path_factory, tmp_path) -> Path:
    """A copy of a finished greedy run, named "r" under tmp_path."""
    return copy_run(reference_run(tmp_path_factory, "greedy"), tmp_path, "r")


def _data_copy(tmp_path_factory, tmp_path: Path) -> Path:
    """A writable copy of the shapes split; returns its JSONL path."""
    a = assets(tmp_path_factory)
    dst = tmp_path / "data"
    shutil.copytree(a.data_dir, dst)
    return dst / a.data.name


def _edit_line(jsonl: Path, index: int, edit) -> None:
    lines = jsonl.read_text().splitlines(keepends=True)
    rec = json.loads(lines[index])
    edit(rec)
    lines[index] = json.dumps(rec) + "\n"
    jsonl.write_text("".join(lines))


def _refused_up_front(
    a,
    finished: Path,
    *extra: str,
    data: Path | None = None,
    ckpt: Path | None = None,
    needles: tuple[str, ...] = (),
) -> str:
    """Run against the finished run's name: clean one-line error, run dir byte-identical."""
    before = artifact_bytes(finished)
    p = run_cli(run_args(a, finished.parent, finished.name, *extra, data=data, ckpt=ckpt))
    line = assert_clean_error(p, *needles)
    assert artifact_bytes(finished) == before
    return line


# --------------------------------------------------------------------------- data set


def test_missing_image(tmp_path_factory, tmp_path, finished):
    data = _data_copy(tmp_path_factory, tmp_path)
    (data.parent / "images/val/00003.jpg").unlink()
    _refused_up_front(
        assets(tmp_path_factory),
        finished,
        data=data,
        needles=("image not found", "00003.jpg", "line 4"),
    )


def test_invalid_jsonl_line_in_the_middle(tmp_path_factory, tmp_path, finished):
    data = _data_copy(tmp_path_factory, tmp_path)
    lines = data.read_text().splitlines(keepends=True)
    lines[4] = lines[4][: len(lines[4]) // 2] + "\n"  # a torn line that is not the last one
    data.write_text("".join(lines))
    _refused_up_front(assets(tmp_path_factory), finished, data=data, needles=(str(data), "line 5"))


def test_record_that_is_not_an_object(tmp_path_factory, tmp_path, finished):
    data = _data_copy(tmp_path_factory, tmp_path)
    data.write_text(data.read_text().replace("\n", "\n[1, 2]\n", 1))
    _refused_up_front(
        assets(tmp_path_factory), finished, data=data, needles=("line 2", "JSON object")
    )


def test_absolute_image_path(tmp_path_factory, tmp_path, finished):
    data = _data_copy(tmp_path_factory, tmp_path)
    target = tmp_path / "elsewhere" / "00002.jpg"  # exists, outside the JSONL's folder
    target.parent.mkdir()
    shutil.copy(data.parent / "images/val/00002.jpg", target)
    _edit_line(data, 2, lambda r: r.update(images=[str(target)]))
    _refused_up_front(
        assets(tmp_path_factory),
        finished,
        data=data,
        needles=("--image-root DIR", "relative", str(target), "line 3"),
    )


def test_dotdot_path_escape(tmp_path_factory, tmp_path, finished):
    data = _data_copy(tmp_path_factory, tmp_path)
    shutil.copy(data.parent / "images/val/00002.jpg", tmp_path / "outside.jpg")  # it would load
    _edit_line(data, 2, lambda r: r.update(images=["images/../../outside.jpg"]))
    _refused_up_front(
        assets(tmp_path_factory), finished, data=data, needles=("'..'", "outside.jpg", "line 3")
    )


def test_box_outside_the_image_or_reversed(tmp_path_factory, tmp_path, finished):
    data = _data_copy(tmp_path_factory, tmp_path)
    rows = [json.loads(x) for x in data.read_text().splitlines()]
    idx = next(i for i, r in enumerate(rows) if r["objects"])
    _edit_line(
        data,
        idx,
        lambda r: r["objects"][0].update(
            bbox_2d=["<|coord_900|>", "<|coord_10|>", "<|coord_100|>", "<|coord_20|>"]
        ),
    )
    _refused_up_front(
        assets(tmp_path_factory), finished, data=data, needles=("reversed", f"line {idx + 1}")
    )


def test_duplicate_sample_id(tmp_path_factory, tmp_path, finished):
    data = _data_copy(tmp_path_factory, tmp_path)
    _edit_line(data, 5, lambda r: r.update(image_id=1))
    _refused_up_front(
        assets(tmp_path_factory),
        finished,
        data=data,
        needles=("duplicate sample id", "lines 2 and 6"),
    )


def test_empty_dataset(tmp_path_factory, tmp_path, finished):
    data = tmp_path / "empty.coord.jsonl"
    data.write_text("\n\n")
    _refused_up_front(assets(tmp_path_factory), finished, data=data, needles=("empty", str(data)))


def test_limit_zero(tmp_path_factory, finished):
    _refused_up_front(assets(tmp_path_factory), finished, "--limit", "0", needles=("--limit 0",))


def test_missing_data_file(tmp_path_factory, tmp_path, finished):
    _refused_up_front(
        assets(tmp_path_factory),
        finished,
        data=tmp_path / "nope.jsonl",
        needles=("data file not found", "nope.jsonl"),
    )


# --------------------------------------------------------------------------- presets and options


def test_unknown_key_in_preset_toml(tmp_path_factory, tmp_path, finished):
    toml = tmp_path / "some.toml"
    toml.write_text("factor = 32\nbudget = 64\nmax_pixel = 65536\n")  # typo of a real knob
    _refused_up_front(
        assets(tmp_path_factory),
        finished,
        "--preset",
        str(toml),
        needles=(str(toml), "'max_pixel'"),
    )


def test_unknown_prompt_preset(tmp_path_factory, finished):
    _refused_up_front(
        assets(tmp_path_factory),
        finished,
        "--prompt",
        "no_such_prompt",
        needles=("'no_such_prompt'", "default_desc_first"),
    )


@pytest.mark.parametrize(
    ("extra", "needle"),
    [
        (("--batch-size", "0"), "--batch-size"),
        (("--top-p", "0"), "top_p"),
        (("--shard", "3/2"), "--shard"),
        (("--max-new-tokens", "0"), "--max-new-tokens"),
        (("--scorer", "nope"), "'nope'"),
    ],
)
def test_bad_options(tmp_path_factory, finished, extra, needle):
    a = assets(tmp_path_factory)
    p = run_cli(run_args(a, finished.parent, finished.name, *extra))
    assert p.returncode == 2 and "Traceback" not in p.stderr and needle in p.stderr, p.stderr


# --------------------------------------------------------------------------- checkpoints


def _ckpt_copy(tmp_path_factory, tmp_path: Path) -> Path:
    dst = tmp_path / "ckpt"
    shutil.copytree(assets(tmp_path_factory).ckpt, dst)
    return dst


def test_checkpoint_dir_missing(tmp_path_factory, tmp_path, finished):
    _refused_up_front(
        assets(tmp_path_factory),
        finished,
        ckpt=tmp_path / "gone",
        needles=("checkpoint", str(tmp_path / "gone")),
    )


def test_adapter_dir_missing(tmp_path_factory, tmp_path, finished):
    _refused_up_front(
        assets(tmp_path_factory),
        finished,
        "--adapter",
        str(tmp_path / "lora"),
        needles=("adapter", str(tmp_path / "lora")),
    )


def test_remote_code_checkpoint_is_refused_before_anything_is_written(tmp_path_factory, tmp_path):
    a = assets(tmp_path_factory)
    ck = _ckpt_copy(tmp_path_factory, tmp_path)
    cfg = json.loads((ck / "config.json").read_text())
    cfg["auto_map"] = {"AutoModelForImageTextToText": "modeling_evil.EvilForConditionalGeneration"}
    (ck / "config.json").write_text(json.dumps(cfg))
    p = run_cli(run_args(a, tmp_path / "runs", "r", ckpt=ck))
    assert_clean_error(p, str(ck / "config.json"), "--trust-remote-code")
    assert not (tmp_path / "runs" / "r").exists()
    # with the flag the preflight lets it through; the code it asks for is not there: still one line
    p = run_cli(run_args(a, tmp_path / "runs", "r", "--trust-remote-code", ckpt=ck))
    assert_clean_error(p, "modeling_evil", only_line=False)
    assert line_count(tmp_path / "runs" / "r" / A.GT_VS_PRED) == 0


@pytest.mark.slow
def test_pickle_only_checkpoint_needs_allow_pickle(tmp_path_factory, tmp_path):
    import torch
    from safetensors.torch import load_file

    a = assets(tmp_path_factory)
    ck = _ckpt_copy(tmp_path_factory, tmp_path)
    torch.save(load_file(ck / "model.safetensors"), ck / "pytorch_model.bin")
    (ck / "model.safetensors").unlink()
    p = run_cli(run_args(a, tmp_path / "runs", "r", "--limit", "2", ckpt=ck))
    assert_clean_error(p, str(ck), "pytorch_model.bin", "--allow-pickle")
    assert not (tmp_path / "runs" / "r").exists()
    p = run_cli(run_args(a, tmp_path / "runs", "r", "--limit", "2", "--allow-pickle", ckpt=ck))
    assert p.returncode == 0, p.stderr[-3000:]
    # same weights as the safetensors reference: the first two samples' outputs agree
    ref = reference_run(tmp_path_factory, "greedy")
    got, _ = A.read_jsonl(tmp_path / "runs" / "r" / A.TRACE)
    want, _ = A.read_jsonl(ref / A.TRACE)
    assert [t["token_ids"] for t in got] == [t["token_ids"] for t in want[:2]]


def test_pickle_weights_are_part_of_the_identity(tmp_path_factory, tmp_path):
    from coordbench.pipeline.plan import checkpoint_fingerprint

    ck = tmp_path / "ck"
    ck.mkdir()
    (ck / "config.json").write_text("{}")
    (ck / "pytorch_model.bin").write_bytes(b"weights v1")
    h1 = checkpoint_fingerprint(str(ck))
    (ck / "pytorch_model.bin").write_bytes(b"weights v2")
    assert checkpoint_fingerprint(str(ck)) != h1


# --------------------------------------------------------------------------- output dir


def test_output_dir_not_writable(tmp_path_factory, tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")  # we run as root: chmod would not stop us, a file does
    p = run_cli(run_args(assets(tmp_path_factory), blocker / "runs", "r"))
    assert_clean_error(p, str(blocker / "runs" / "r"))
    assert blocker.read_text() == "not a folder"
