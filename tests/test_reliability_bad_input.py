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
from tests.conftest import OracleBackend
from tests.fixtures_coco import make_coco
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


@pytest.fixture
def coco_fixture(tmp_path):
    """A private seeded COCO folder (annotations + val2017 images) a test may damage."""
    return make_coco(tmp_path / "coco")


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


# --------------------------------------------------------------------------- round two (issue 14)
# Inputs from outside the first matrix: text that is not UTF-8, high-bit-depth and bomb images,
# a run dir that stops being writable, links out of the data folder, hostile CSV cells.

SURROGATE_ANSWER = (
    '{"objects": [{"desc": "c\\ud800x", "bbox_2d": '
    "[<|coord_1|>, <|coord_2|>, <|coord_300|>, <|coord_400|>]}]}<|im_end|>"
)


class _SurrogateBackend(OracleBackend):
    """The oracle, except sample index 1 answers with a `\\ud800` JSON escape in its desc."""

    def _text(self, idx, row):
        return (SURROGATE_ANSWER, "stop") if idx == 1 else super()._text(idx, row)


def _oracle_run(tmp_path_factory, tmp_path, monkeypatch, backend_cls, *extra, data=None):
    from click.testing import CliRunner

    from coordbench.cli.main import main

    a = assets(tmp_path_factory)
    monkeypatch.setattr(
        "coordbench.pipeline.generate.make_backend", lambda cfg, dist: backend_cls(data or a.data)
    )
    return CliRunner().invoke(main, run_args(a, tmp_path, "r", *extra, data=data))


def test_lone_surrogate_in_an_answer_is_replaced_and_counted(
    tmp_path_factory, tmp_path, monkeypatch
):
    res = _oracle_run(tmp_path_factory, tmp_path, monkeypatch, _SurrogateBackend)
    assert res.exit_code == 0, (res.stderr, repr(res.exception))
    rd = tmp_path / "r"
    # every batch kept: as many records as trace rows, and every artifact is valid UTF-8
    assert line_count(rd / A.GT_VS_PRED) == line_count(rd / A.TRACE) == 8
    for p in rd.rglob("*"):
        if p.is_file() and p.suffix in (".jsonl", ".json", ".csv", ".html"):
            p.read_bytes().decode("utf-8")  # raises on invalid UTF-8
    rec = json.loads((rd / A.GT_VS_PRED).read_text().splitlines()[1])
    assert rec["pred"][0]["desc"] == "c\ufffdx" and "lone_surrogate" in rec["parse_issues"]
    diag = json.loads((rd / A.SUMMARY).read_text())["diagnostics"]
    assert diag["lone_surrogates_replaced"] == 1
    assert any("surrogate" in w for w in diag["warnings"])
    # `coordbench eval` re-parses the same text: it must not crash either
    from click.testing import CliRunner

    from coordbench.cli.main import main

    res = CliRunner().invoke(main, ["eval", str(rd)])
    assert res.exit_code == 0, (res.stderr, repr(res.exception))


def test_lone_surrogate_in_a_dataset_class_name(tmp_path_factory, tmp_path, monkeypatch):
    """The same escape in the data set's own desc: GT, per_class.csv and the report hold U+FFFD."""
    data = _data_copy(tmp_path_factory, tmp_path)
    rows = [json.loads(x) for x in data.read_text().splitlines()]
    idx = next(i for i, r in enumerate(rows) if r["objects"])
    _edit_line(data, idx, lambda r: r["objects"][0].update(desc="bad\ud800name"))
    assert "\\ud800" in data.read_text()  # the escape itself, as a foreign writer leaves it
    res = _oracle_run(tmp_path_factory, tmp_path, monkeypatch, OracleBackend, data=data)
    assert res.exit_code == 0, (res.stderr, repr(res.exception))
    rd = tmp_path / "r"
    for p in rd.rglob("*"):
        if p.is_file():
            p.read_bytes().decode("utf-8")
    assert "bad\ufffdname" in (rd / "eval" / "per_class.csv").read_text()
    assert line_count(rd / A.GT_VS_PRED) == 8


def test_lone_surrogate_anywhere_in_an_artifact_is_written_as_replacement_char():
    from coordbench.rundir.files import dumps_json, dumps_line

    obj = {"gt": [{"desc": "a\udc80"}], "k\ud800": ["\udfff", 1.5]}
    for dump in (dumps_line, dumps_json):
        text = dump(obj).decode("utf-8")
        assert "\ufffd" in text and json.loads(text)["k\ufffd"] == ["\ufffd", 1.5]


def _png16_of(src: Path, dst: Path) -> None:
    """A 16-bit grayscale PNG with the content of `src` in gray: value v stored as v * 257."""
    import numpy as np
    from PIL import Image

    gray = np.asarray(Image.open(src).convert("L"), dtype=np.uint16)
    Image.fromarray((gray * 257).astype(np.uint16)).save(dst)


def test_16bit_png_is_scaled_not_saturated(tmp_path):
    import numpy as np
    from PIL import Image

    from coordbench.data.images import open_rgb

    ramp = np.tile(np.arange(0, 256, 4, dtype=np.uint16), (8, 1))  # 64 x 8, values 0..252
    Image.fromarray((ramp * 257).astype(np.uint16)).save(tmp_path / "ramp16.png")
    assert Image.open(tmp_path / "ramp16.png").mode.startswith("I;16")
    got = np.asarray(open_rgb(tmp_path / "ramp16.png"))
    assert (got[..., 0] == ramp).all() and (got[..., 1] == got[..., 0]).all()
    # 32-bit int and float images: their natural range, not a clip at 255
    Image.fromarray((ramp * 257).astype(np.int32)).save(tmp_path / "i32.tiff")
    assert (np.asarray(open_rgb(tmp_path / "i32.tiff"))[..., 0] == ramp).all()
    Image.fromarray((ramp / 255).astype(np.float32)).save(tmp_path / "f.tiff")
    assert np.abs(np.asarray(open_rgb(tmp_path / "f.tiff"))[..., 0].astype(int) - ramp).max() <= 1


def test_16bit_png_gets_the_same_answer_as_the_8bit_image(tmp_path_factory, tmp_path):
    """Same content, two bit depths: the model must see the same pixels, so the greedy answers
    (token ids and their log-probabilities) are identical; a white image would change them."""
    from PIL import Image

    a = assets(tmp_path_factory)
    rows = [json.loads(x) for x in a.data.read_text().splitlines()]
    row = rows[0]
    src = a.data_dir / row["images"][0]
    d = tmp_path / "d"
    d.mkdir()
    Image.open(src).convert("L").save(d / "gray8.png")
    _png16_of(src, d / "gray16.png")
    Image.new("L", Image.open(src).size, 255).save(d / "white.png")
    recs = [
        {**row, "image_id": i, "images": [n]}
        for i, n in enumerate(("gray8.png", "gray16.png", "white.png"), 1)
    ]
    data = d / "val.coord.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in recs))
    p = run_cli(run_args(a, tmp_path / "runs", "r", "--batch-size", "1", data=data))
    assert p.returncode == 0, p.stderr[-3000:]
    trace, _ = A.read_jsonl(tmp_path / "runs" / "r" / A.TRACE)
    by_id = {t["sample_id"]: t for t in trace}
    keys = ("token_ids", "token_logprobs")
    assert [by_id["2"][k] for k in keys] == [by_id["1"][k] for k in keys]
    assert [by_id["3"][k] for k in keys] != [by_id["1"][k] for k in keys]  # the test can fail


def test_16bit_png_through_data_coco_is_not_a_blank_jpeg(coco_fixture, tmp_path):
    import numpy as np
    from PIL import Image

    from coordbench.data.coco import convert_coco

    first = coco_fixture.kept_ids[0]
    path = coco_fixture.image_path(first)
    _png16_of(path, tmp_path / "16.png")
    path.write_bytes((tmp_path / "16.png").read_bytes())  # PNG bytes behind the .jpg name
    convert_coco(coco_fixture.root, budget=64, out_dir=tmp_path / "o", progress=False, limit=1)
    out = np.asarray(Image.open(tmp_path / f"o/images/val2017/{first:012d}.jpg").convert("L"))
    assert out.std() > 5 and out.mean() < 250  # the picture, not one colour


def _bomb_png(path: Path, size: int = 20000) -> None:
    """A PNG whose header claims size x size pixels (a decompression bomb) in a few bytes."""
    import io
    import struct
    import zlib

    from PIL import Image

    buf = io.BytesIO()
    Image.new("L", (8, 8)).save(buf, format="PNG")
    data = bytearray(buf.getvalue())
    ihdr = data.index(b"IHDR")
    data[ihdr + 4 : ihdr + 12] = struct.pack(">II", size, size)
    crc = zlib.crc32(bytes(data[ihdr : ihdr + 17])) & 0xFFFFFFFF
    data[ihdr + 17 : ihdr + 21] = struct.pack(">I", crc)
    path.write_bytes(bytes(data))


def test_decompression_bomb_in_data_jsonl_is_a_named_error(tmp_path):
    _bomb_png(tmp_path / "bomb.png")
    rec = {"images": ["bomb.png"], "width": 20000, "height": 20000, "objects": []}
    data = tmp_path / "val.jsonl"
    data.write_text(json.dumps(rec) + "\n")
    for extra in ((), ("--decode",)):
        p = run_cli(["data", "jsonl", str(data), *extra])
        assert p.returncode == 2 and "Traceback" not in p.stderr, p.stderr[-3000:]
        out = p.stdout + p.stderr
        assert "bomb.png" in out and "decompression bomb" in out.lower() and "line 1" in out


def test_decompression_bomb_in_data_coco_is_skipped_with_skip_bad(coco_fixture, tmp_path):
    from coordbench.data.coco import convert_coco
    from coordbench.errors import DataError

    first = coco_fixture.kept_ids[0]
    _bomb_png(coco_fixture.image_path(first))
    with pytest.raises(DataError, match=rf"{first:012d}\.jpg.*(?i:decompression bomb)") as e:
        convert_coco(coco_fixture.root, budget=64, out_dir=tmp_path / "o", progress=False)
    assert "kept in" in str(e.value) and ".o.partial" in str(e.value)  # said, not silent
    st = convert_coco(
        coco_fixture.root, budget=64, out_dir=tmp_path / "o", progress=False, skip_bad=True
    )
    assert st.images_skipped_bad == 1 and f"{first:012d}" in st.bad_items[0]
    assert not (tmp_path / ".o.partial").exists()  # published: the temp folder is gone


def test_symlink_out_of_the_data_folder_is_refused(tmp_path_factory, tmp_path, finished):
    data = _data_copy(tmp_path_factory, tmp_path)
    shutil.copy(data.parent / "images/val/00002.jpg", tmp_path / "outside.jpg")  # it would load
    link = data.parent / "images/val/00002.jpg"
    link.unlink()
    link.symlink_to(tmp_path / "outside.jpg")
    _refused_up_front(
        assets(tmp_path_factory), finished, data=data, needles=("symlink", "00002.jpg", "line 3")
    )
    # the report follows the same rule: it shows a placeholder, never the linked file
    from coordbench.report.gallery import _image_path

    assert _image_path("images/val/00002.jpg", data.parent) is None
    assert _image_path("images/val/00003.jpg", data.parent) is not None
    # a link that stays inside the folder is fine
    link.unlink()
    link.symlink_to(data.parent / "images/val/00003.jpg")
    assert _image_path("images/val/00002.jpg", data.parent) is not None


def test_boxes_outside_the_image_are_counted_and_named(tmp_path):
    from PIL import Image

    Image.new("RGB", (64, 48)).save(tmp_path / "a.png")
    recs = [
        {
            "images": ["a.png"],
            "width": 64,
            "height": 48,
            "objects": [{"desc": "in", "bbox_2d": [1, 2, 30, 40]}],
        },
        {
            "images": ["a.png"],
            "width": 64,
            "height": 48,
            "image_id": 2,
            "objects": [{"desc": "out", "bbox_2d": [-5, 2, 90, 40]}],
        },
    ]
    data = tmp_path / "val.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in recs))
    p = run_cli(["data", "jsonl", str(data)])
    assert p.returncode == 0, p.stderr
    assert "clamped" in p.stdout and f"{data} line 2" in p.stdout and "object 0" in p.stdout
    assert "boxes outside their image (clamped): 1" in p.stdout


def test_run_dir_that_stops_being_writable_gives_one_clear_error(
    tmp_path_factory, tmp_path, monkeypatch
):
    """The lock's cleanup must not hide the error that stopped the run (a read-only remount,
    `chattr +i`): simulated by making every unlink and rename in the run dir fail with EPERM
    once the first batch is on disk."""
    import errno
    import os

    from coordbench.rundir import lock as L

    real_unlink, real_replace = Path.unlink, os.replace
    frozen = {"on": False}

    def deny(*_a, **_k):
        raise PermissionError(errno.EPERM, "Operation not permitted")

    def unlink(self, *a, **k):
        return deny() if frozen["on"] and self.parent.name == "r" else real_unlink(self, *a, **k)

    def replace(src, dst, *a, **k):
        return deny() if frozen["on"] and Path(dst).parent.name == "r" else real_replace(src, dst)

    real_append = A.Appender.append

    def append(self, rows):
        real_append(self, rows)
        if self.path.name == A.GT_VS_PRED:
            frozen["on"] = True

    monkeypatch.setattr(Path, "unlink", unlink)
    monkeypatch.setattr(os, "replace", replace)
    monkeypatch.setattr(A.Appender, "append", append)
    assert L.run_lock  # the lock's unlink goes through Path.unlink as well
    res = _oracle_run(tmp_path_factory, tmp_path, monkeypatch, OracleBackend)
    assert res.exit_code == 2, (res.stderr, repr(res.exception))
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: cannot write"), res.stderr
    assert "Operation not permitted" in lines[0] and "Traceback" not in res.stderr
    assert line_count(tmp_path / "r" / A.GT_VS_PRED) >= 2  # finished records kept


def test_immutable_run_dir_on_resume_gives_one_clear_error(tmp_path_factory, tmp_path):
    """The real thing where the kernel allows it (root with CAP_LINUX_IMMUTABLE): `chattr +i`
    on a half-finished run dir that still holds a lock file from a killed writer."""
    import subprocess

    rd = copy_run(reference_run(tmp_path_factory, "greedy"), tmp_path, "r")
    for name in (A.GT_VS_PRED, A.TRACE):
        lines = (rd / name).read_text().splitlines(keepends=True)
        (rd / name).write_text("".join(lines[:4]))
    (rd / A.LOCK).write_text("999999999")
    if subprocess.run(["chattr", "+i", str(rd)], capture_output=True).returncode != 0:
        pytest.skip("chattr +i is not permitted here (the monkeypatched test above still runs)")
    try:
        p = run_cli(run_args(assets(tmp_path_factory), tmp_path, "r"))
    finally:
        subprocess.run(["chattr", "-i", str(rd)], check=True)
    assert_clean_error(p, f"cannot write {rd}", "Operation not permitted", only_line=False)
    # the run stops at its first write of run.json (the session record), before generating
    # anything it could not account for; the finished records are all kept
    assert f"cannot write {rd / A.RUN_JSON}: Operation not permitted" in p.stderr
    assert line_count(rd / A.GT_VS_PRED) == 4


def test_formula_cells_are_neutralised_in_every_csv(tmp_path):
    from coordbench.metrics.eval_files import per_class_csv
    from coordbench.report.html import _per_class

    hostile = ['=HYPERLINK("http://x")', "+1+2", "-2+3", "@SUM(A1)", "\tcmd", "ok"]
    text = per_class_csv([(n, 0.5) for n in hostile] + [("neg", -1.0)])
    import csv
    import io

    rows = list(csv.reader(io.StringIO(text)))[1:]
    for (cell, ap), name in zip(rows, [*hostile, "neg"], strict=True):
        assert not cell.startswith(("=", "+", "-", "@", "\t")), cell
        assert cell.removeprefix("'") == name
        assert ap in ("0.5", "-1.0")  # numbers stay numbers
    (tmp_path / "per_class.csv").write_text(text)
    assert [n for n, _ in _per_class(tmp_path / "per_class.csv")] == [*hostile, "neg"]


def test_huge_class_name_truncated_in_report_not_skipped(tmp_path):
    from coordbench.metrics.eval_files import per_class_csv
    from coordbench.report.html import _per_class
    from coordbench.report.page import MAX_TEXT, esc

    name = "x" * 300_000  # over the csv module's 128 KiB field limit
    (tmp_path / "per_class.csv").write_text(per_class_csv([(name, 0.25)]))
    assert _per_class(tmp_path / "per_class.csv") == [(name, 0.25)]
    shown = esc(name)
    assert len(shown) < MAX_TEXT + 100 and "truncated, 300,000 characters" in shown


def test_huge_class_name_still_gives_a_report(tmp_path_factory, tmp_path, monkeypatch, caplog):
    data = _data_copy(tmp_path_factory, tmp_path)
    rows = [json.loads(x) for x in data.read_text().splitlines()]
    idx = next(i for i, r in enumerate(rows) if r["objects"])
    _edit_line(data, idx, lambda r: r["objects"][0].update(desc="y" * 300_000))

    class ShortAnswer(OracleBackend):  # the huge name is in the GT only, not in the answer
        def _text(self, i, row):
            return ("nothing here<|im_end|>", "stop") if i == idx else super()._text(i, row)

    res = _oracle_run(tmp_path_factory, tmp_path, monkeypatch, ShortAnswer, data=data)
    assert res.exit_code == 0, (res.stderr, repr(res.exception))
    assert "not written" not in caplog.text + res.stderr
    page = (tmp_path / "r" / "report.html").read_text()
    assert "truncated, 300,000 characters" in page and "y" * 300_000 not in page


def test_eval_of_a_file_that_is_not_a_run_file_says_what_was_expected(tmp_path):
    f = tmp_path / "random.json"
    f.write_text(json.dumps({"file_name": "image_0.jpg", "gt": [], "pred": []}) + "\n")
    p = run_cli(["eval", str(f)])
    line = assert_clean_error(p, str(f), "not a scored-records file", "run dir")
    assert "record 0" not in line


def test_eval_warns_about_a_torn_last_line(tmp_path_factory, tmp_path, finished):
    rd = finished
    data = (rd / A.GT_VS_PRED).read_bytes()
    lines = data.splitlines(keepends=True)
    (rd / A.GT_VS_PRED).write_bytes(b"".join(lines[:-1]) + lines[-1][: len(lines[-1]) // 2])
    p = run_cli(["eval", str(rd)])
    assert p.returncode == 0, p.stderr[-3000:]
    assert f"{rd / A.GT_VS_PRED}:8: torn last line" in p.stderr
    assert "7 of the run's 8 samples" in p.stderr
    summary = json.loads((rd / A.SUMMARY).read_text())
    assert (summary["total_read"], summary["total_expected"]) == (7, 8)
    # the same for the trace, and for a scored-records file given to eval directly
    data = (rd / A.TRACE).read_bytes()
    (rd / A.TRACE).write_bytes(data[: len(data) - 10])
    p = run_cli(["eval", str(rd)])
    assert p.returncode == 0 and f"{rd / A.TRACE}:8: torn last line" in p.stderr, p.stderr
    data = (rd / A.SCORED).read_bytes()
    (rd / A.SCORED).write_bytes(data[: len(data) - 10])
    p = run_cli(["eval", str(rd / A.SCORED), "--out", str(tmp_path / "e")])
    assert p.returncode == 0 and f"{rd / A.SCORED}:7: torn last line" in p.stderr, p.stderr


def test_preflight_lists_every_problem_at_once(tmp_path):
    p = run_cli(
        ["run", "--ckpt", str(tmp_path / "WRONG"), "--preset", "999", "--out", str(tmp_path)]
    )
    line = assert_clean_error(p, "3 problems", str(tmp_path / "WRONG"), "preset", "data file")
    assert "coordbench data coco --coco-root" in line
    p = run_cli(["run", "--ckpt", str(tmp_path / "WRONG"), "--out", str(tmp_path)])
    assert_clean_error(p, "2 problems", "checkpoint dir not found", "coordbench data coco")
    p = run_cli(
        ["run", "--ckpt", str(tmp_path / "W"), "--prompt", "nope", "--data", str(tmp_path / "d")]
    )
    assert_clean_error(p, "3 problems", "'nope'", str(tmp_path / "d"))


def test_merge_of_a_run_without_shards_says_so(finished):
    p = run_cli(["merge", str(finished)])
    assert_clean_error(p, str(finished), "has no shards")


def test_image_size_mismatch_mentions_exif(tmp_path_factory, tmp_path, finished):
    data = _data_copy(tmp_path_factory, tmp_path)
    _edit_line(data, 0, lambda r: r.update(width=r["width"] * 2))
    p = run_cli(["data", "jsonl", str(data)])
    assert "EXIF orientation is not applied" in p.stdout, p.stdout
    # a photo stored landscape with orientation 6 (viewers show it portrait), annotated portrait
    from PIL import Image

    exif = Image.Exif()
    exif[0x0112] = 6
    Image.new("RGB", (64, 48)).save(tmp_path / "rot.jpg", exif=exif.tobytes())
    rec = {"images": ["rot.jpg"], "width": 48, "height": 64, "objects": []}
    (tmp_path / "rot.jsonl").write_text(json.dumps(rec) + "\n")
    p = run_cli(["data", "jsonl", str(tmp_path / "rot.jsonl")])
    assert "is 64x48 but the record says 48x64" in p.stdout
    assert "this file has EXIF orientation 6" in p.stdout, p.stdout
