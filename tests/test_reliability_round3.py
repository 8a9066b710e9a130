"""Round three of the hostile matrix: every eval form agrees with pycocotools or refuses with the
culprit named; bad run options are one-line errors. Each case failed before its fix."""

from __future__ import annotations

import pytest

from tests.test_reliability_support import run_cli


@pytest.mark.parametrize(
    "args,match",
    [
        (["--seed", str(2**70)], "64-bit integer"),
        (["--threads", "100000"], "--threads must be between 1 and"),
        (["--device", "tpu"], "'tpu' is not supported"),
    ],
)
def test_bad_run_options_are_one_line_errors(tmp_path, args, match):
    p = run_cli(["run", *args, "--limit", "2", "--out", str(tmp_path), "--no-progress"])
    assert p.returncode == 2 and match in p.stderr and "Traceback" not in p.stderr, p.stderr
    assert not any(tmp_path.iterdir())  # refused before any run dir


def _has_cuda() -> bool:
    try:
        import torch
    except ImportError:
        return False
    return torch.cuda.is_available()


@pytest.mark.skipif(_has_cuda(), reason="this machine has a CUDA device")
def test_device_cuda_on_a_cpu_only_machine_is_a_one_line_error(tmp_path):
    p = run_cli(
        ["run", "--device", "cuda", "--limit", "2", "--out", str(tmp_path), "--no-progress"]
    )
    assert p.returncode == 2 and "Traceback" not in p.stderr, p.stderr
    assert "--device cuda: this machine has no CUDA device" in p.stderr
    assert not any(tmp_path.iterdir())


def test_tied_head_loads_and_an_unexpected_weight_is_refused_by_name(tmp_path):
    """The embedded checkpoint stores no lm_head (tied to embed_tokens): it must load. A tensor
    the architecture does not have is refused, naming it."""
    import shutil

    from safetensors.torch import load_file, save_file

    from coordbench.backends.hf import HFBackend
    from coordbench.config.run import EMBEDDED_CKPT
    from coordbench.errors import CheckpointError

    tensors = load_file(str(EMBEDDED_CKPT / "model.safetensors"))
    assert not any(k.startswith("lm_head") for k in tensors)  # the tied case, on disk
    HFBackend(EMBEDDED_CKPT, device="cpu").close()
    bad = tmp_path / "ck"
    shutil.copytree(EMBEDDED_CKPT, bad)
    tensors["model.language_model.extra_proj.weight"] = tensors["model.embed_tokens.weight"][
        :2
    ].clone()
    save_file(tensors, str(bad / "model.safetensors"), metadata={"format": "pt"})
    with pytest.raises(CheckpointError, match="unexpected: .*extra_proj"):
        HFBackend(bad, device="cpu")


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory):
    from coordbench.config.run import RunConfig
    from coordbench.data.shapes import write_split
    from coordbench.pipeline.run import run
    from tests.conftest import OracleBackend

    root = tmp_path_factory.mktemp("r3")
    data = write_split(root / "shapes", "val", n=8)
    ckpt = root / "ck"
    ckpt.mkdir()
    (ckpt / "config.json").write_text('{"model_type": "qwen2_5_vl"}')
    cfg = RunConfig(
        ckpt=str(ckpt),
        data=str(data / "val.coord.jsonl"),
        preset="64",
        prompt="default_desc_first",
        out=str(root / "runs"),
        name="r",
        progress=False,
    )
    run(cfg, backend=OracleBackend(data / "val.coord.jsonl"))
    return root / "runs" / "r"


def test_a_checkpoint_missing_a_weight_is_refused_with_the_key_named(tmp_path):
    import shutil

    from safetensors.torch import load_file, save_file

    from coordbench.config.run import EMBEDDED_CKPT, EMBEDDED_DATA

    bad = tmp_path / "ck"
    shutil.copytree(EMBEDDED_CKPT, bad)
    tensors = load_file(str(bad / "model.safetensors"))
    name = sorted(k for k in tensors if "q_proj.weight" in k)[0]
    del tensors[name]
    save_file(tensors, str(bad / "model.safetensors"), metadata={"format": "pt"})
    p = run_cli(
        [
            "run",
            "--ckpt",
            str(bad),
            "--data",
            str(EMBEDDED_DATA),
            "--preset",
            "64",
            "--limit",
            "2",
            "--out",
            str(tmp_path / "r"),
            "--no-progress",
        ]
    )
    assert p.returncode == 2, p.stderr
    assert "missing (would be randomly initialised)" in p.stderr
    assert name.split(".")[-3] in p.stderr  # the layer's key is named


def test_urls_and_utf16_data_get_messages_with_the_fix(tmp_path):
    from coordbench.data.dataset import load_samples
    from coordbench.errors import DataError

    url = tmp_path / "url.jsonl"
    url.write_text('{"images": ["http://x.org/a.jpg"], "width": 64, "height": 64, "objects": []}\n')
    with pytest.raises(DataError, match="is a URL: coordbench reads local files only"):
        load_samples(url)
    u16 = tmp_path / "u16.jsonl"
    u16.write_bytes(url.read_text().encode("utf-16"))
    with pytest.raises(DataError, match="UTF-16-encoded; JSONL must be UTF-8"):
        load_samples(u16)


def test_replay_backend_with_no_trace_is_refused_before_any_run_dir(tmp_path):
    p = run_cli(
        [
            "run",
            "--backend",
            f"replay:{tmp_path / 'none'}",
            "--limit",
            "2",
            "--out",
            str(tmp_path / "runs"),
            "--no-progress",
        ]
    )
    assert p.returncode == 2 and "no replay source there" in p.stderr
    assert not (tmp_path / "runs").exists()


def test_class_names_are_written_visibly():
    from coordbench.metrics.eval_files import per_class_csv
    from coordbench.report.page import esc

    text = per_class_csv([("", 0.5), ("a\x1b[31mred", 0.25)])
    assert text.splitlines()[1:] == ["(empty),0.5", "a\\x1b[31mred,0.25"]
    assert "\x1b" not in esc("a\x1b[31m") and "\\x1b" in esc("a\x1b[31m")


def test_latex_escapes_a_backslash_once():
    from coordbench.compare.format import tex

    assert tex("a\\b_c") == r"a\textbackslash{}b\_c"


def test_compare_and_log_refuse_bad_arguments(finished_run, tmp_path):
    p = run_cli(["compare", str(finished_run), str(finished_run), "--no-log", "--group-by", "sed"])
    assert p.returncode == 2 and "not an identity key" in p.stderr and "seed" in p.stderr
    p = run_cli(["compare", str(finished_run), "--no-log", "--top-changes", "-1"])
    assert p.returncode == 2
    log = tmp_path / "log.jsonl"
    log.write_text('{"kind": 5, "timestamp": 7, "metrics": "x", "gates": "y"}\n[1]\n')
    for fmt in ("md", "csv", "json"):
        p = run_cli(["log", "--path", str(log), "--format", fmt])
        assert p.returncode == 0 and "Traceback" not in p.stderr, p.stderr
    p = run_cli(["log", "--path", str(log), "--last", "-1"])
    assert p.returncode == 2
