"""Checkpoint loading: three Qwen-VL families and two processor layouts against transformers'
own `generate`, the safety refusals (pickle, remote code, corrupt / incomplete folders), the
content hash, the processor paths, and LoRA adapters."""

from __future__ import annotations

import importlib.util
import json
import shutil
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from coordbench.config.options import GenerationParams
from coordbench.errors import CheckpointError
from coordbench.types import GenerationRequest

torch = pytest.importorskip("torch")

from coordbench.backends.hf import HFBackend  # noqa: E402
from coordbench.backends.hf_checkpoint import content_sha256, inspect_checkpoint  # noqa: E402
from coordbench.embedded.tiny_families import FAMILIES, save_tiny  # noqa: E402

GREEDY = GenerationParams(max_new_tokens=12)


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def ckpts(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("families")
    return {fam: save_tiny(fam, root / fam, seed=11) for fam in FAMILIES}


@pytest.fixture
def q25(ckpts, tmp_path) -> Path:
    """A private copy of the Qwen2.5-VL checkpoint that a test may damage."""
    return Path(shutil.copytree(ckpts["qwen2_5_vl"], tmp_path / "ck"))


def request(i: int, size=(96, 64)) -> GenerationRequest:
    w, h = size
    img = Image.fromarray((np.random.RandomState(i).rand(h, w, 3) * 255).astype("uint8"))
    content = [
        {"type": "image", "image": img},
        {"type": "text", "text": "Find the boxes." * (i + 1)},
    ]
    return GenerationRequest(f"r{i}", [{"role": "user", "content": content}], None, 1234 + i)


def oracle_ids(be: HFBackend, req: GenerationRequest, n: int = 12, model=None) -> list[int]:
    """transformers' greedy `generate` on the same inputs."""
    from coordbench.backends.hf_inputs import build_inputs

    inputs = build_inputs(be.processor, be.template, [req], be.device, be.dtype)
    with torch.inference_mode():
        out = (model or be.model).generate(
            **inputs, do_sample=False, max_new_tokens=n, eos_token_id=sorted(be.stop_ids)
        )
    return out[0, inputs["input_ids"].shape[1] :].tolist()


# --------------------------------------------------------------------------- families, layouts


@pytest.mark.parametrize("family", FAMILIES)
def test_family_loads_and_decodes_like_transformers(ckpts, family):
    be = HFBackend(ckpts[family])
    assert be.info.model_type == family and be.info.name == "hf"
    assert (be.info.dtype, be.info.device) == ("float32", "cpu")  # auto = fp32 on CPU
    assert be.info.provenance["processor"] == "fallback"  # no torchvision here [ARCH-PROCESSOR]
    assert be.info.provenance["attn_implementation"] == "sdpa"
    assert len(be.info.identity["weights_sha256"]) == 64
    reqs = [request(0, (96, 64)), request(1, (64, 128))]
    singles = [be.generate([r], GREEDY)[0] for r in reqs]
    for r, g in zip(reqs, singles, strict=True):
        assert g.token_ids == oracle_ids(be, r)  # decode positions (multimodal RoPE) are right
    batched = be.generate(reqs, GREEDY)  # left-padded rows with different image grids
    assert [g.token_ids for g in batched] == [g.token_ids for g in singles]
    be.close()


@pytest.mark.parametrize("family", ["qwen2_vl", "qwen3_vl"])
def test_processor_config_layout_loads_the_same(ckpts, family, tmp_path):
    new = save_tiny(family, tmp_path / "ck", seed=11, layout="processor")
    assert (new / "processor_config.json").is_file() and not (
        new / "preprocessor_config.json"
    ).exists()
    req = request(2)
    a = HFBackend(ckpts[family]).generate([req], GREEDY)[0]
    be = HFBackend(new)
    assert be.info.provenance["processor"] == "fallback"
    assert be.processor.image_processor.patch_size == 16
    assert be.generate([req], GREEDY)[0].token_ids == a.token_ids
    assert (
        be.info.identity["weights_sha256"]
        == HFBackend(ckpts[family]).info.identity["weights_sha256"]
    )


def test_autoprocessor_path_is_used_when_it_works(q25, monkeypatch):
    import transformers

    from coordbench.backends import hf_loading

    files = inspect_checkpoint(q25)
    built = hf_loading.fallback_processor(files, q25, False)
    monkeypatch.setattr(transformers.AutoProcessor, "from_pretrained", lambda *a, **k: built)
    be = HFBackend(q25)
    assert be.info.provenance["processor"] == "auto"
    assert be.tokenizer.padding_side == "left"


def test_unavailable_attention_falls_back_to_sdpa(ckpts):
    be = HFBackend(ckpts["qwen3_vl"], attn_implementation="flash_attention_2")  # not installed here
    assert be.info.provenance["attn_requested"] == "flash_attention_2"
    assert be.info.provenance["attn_implementation"] == "sdpa"


# --------------------------------------------------------------------------- identity hash


def test_weights_hash_follows_content(ckpts, tmp_path):
    a = save_tiny("qwen2_5_vl", tmp_path / "a", seed=11)
    b = save_tiny("qwen2_5_vl", tmp_path / "b", seed=12)

    def h(p):
        f = inspect_checkpoint(p)
        return content_sha256([*f.weights, p / "config.json"], p)

    assert h(a) == h(ckpts["qwen2_5_vl"])  # same seed, other folder: same content, same hash
    assert h(a) != h(b)
    cfg = json.loads((a / "config.json").read_text())
    cfg["text_config"]["rms_norm_eps"] = 1e-5
    (a / "config.json").write_text(json.dumps(cfg))
    assert h(a) != h(ckpts["qwen2_5_vl"])  # config.json is part of the hash


# --------------------------------------------------------------------------- refusals


def _one_line_naming(exc: pytest.ExceptionInfo, path: Path) -> None:
    msg = str(exc.value)
    assert "\n" not in msg and str(path) in msg


def test_missing_folder_or_config(tmp_path):
    with pytest.raises(CheckpointError, match="checkpoint not found") as e:
        HFBackend(tmp_path / "nope")
    _one_line_naming(e, tmp_path / "nope")
    (tmp_path / "file.safetensors").write_bytes(b"x")
    with pytest.raises(CheckpointError, match="must be a folder"):
        HFBackend(tmp_path / "file.safetensors")
    with pytest.raises(CheckpointError, match="no config.json in") as e:
        HFBackend(tmp_path)
    _one_line_naming(e, tmp_path)


def test_remote_code_is_refused_unless_trusted(q25):
    cfg = json.loads((q25 / "config.json").read_text())
    cfg["auto_map"] = {"AutoModelForImageTextToText": "modeling_evil.EvilModel"}
    (q25 / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(CheckpointError, match="remote code.*--trust-remote-code") as e:
        HFBackend(q25)
    _one_line_naming(e, q25)
    assert inspect_checkpoint(q25, trust_remote_code=True).model_type == "qwen2_5_vl"


def test_pickle_weights_need_allow_pickle(ckpts, q25):
    from safetensors.torch import load_file

    torch.save(load_file(q25 / "model.safetensors"), q25 / "pytorch_model.bin")
    (q25 / "model.safetensors").unlink()
    with pytest.raises(
        CheckpointError, match="only pickle weights \\(pytorch_model.bin\\).*--allow-pickle"
    ) as e:
        HFBackend(q25)
    _one_line_naming(e, q25)
    be = HFBackend(q25, allow_pickle=True)
    ref = HFBackend(ckpts["qwen2_5_vl"])
    assert (
        be.generate([request(0)], GREEDY)[0].token_ids
        == ref.generate([request(0)], GREEDY)[0].token_ids
    )


@pytest.mark.parametrize("damage", ["truncate", "garbage", "short"])
def test_corrupt_safetensors(q25, damage):
    f = q25 / "model.safetensors"
    data = f.read_bytes()
    f.write_bytes(
        {
            "truncate": data[: len(data) // 2],
            "garbage": b"\x10\x00\x00\x00\x00\x00\x00\x00{not json at all",
            "short": b"\x01\x02",
        }[damage]
    )
    with pytest.raises(CheckpointError, match="corrupt safetensors file") as e:
        HFBackend(q25)
    _one_line_naming(e, f)


def test_text_only_model_is_the_wrong_family(q25):
    cfg = json.loads((q25 / "config.json").read_text())
    del cfg["vision_config"]
    cfg["model_type"] = "qwen2"
    (q25 / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(CheckpointError, match="not a vision-language checkpoint.*'qwen2'") as e:
        HFBackend(q25)
    _one_line_naming(e, q25)


@pytest.mark.parametrize(
    "remove,match",
    [
        (["tokenizer.json"], "no tokenizer files in"),
        (["preprocessor_config.json"], "no image processor config in"),
        (["model.safetensors"], "no weights"),
    ],
)
def test_missing_files(q25, remove, match):
    for name in remove:
        (q25 / name).unlink()
    with pytest.raises(CheckpointError, match=match) as e:
        HFBackend(q25)
    _one_line_naming(e, q25)


def test_missing_shard_and_bad_dtype(q25):
    (q25 / "model.safetensors.index.json").write_text(
        json.dumps({"weight_map": {"a": "model-00002-of-00002.safetensors"}})
    )
    with pytest.raises(
        CheckpointError, match="shard model-00002-of-00002.safetensors .* is missing"
    ):
        HFBackend(q25)
    (q25 / "model.safetensors.index.json").unlink()
    with pytest.raises(CheckpointError, match="expected `dtype`"):
        HFBackend(q25, dtype="int3")


# --------------------------------------------------------------------------- LoRA adapters


def test_adapter_needs_config_and_peft(q25, tmp_path, monkeypatch):
    ad = tmp_path / "adapter"
    ad.mkdir()
    with pytest.raises(CheckpointError, match="no adapter_config.json in adapter folder") as e:
        HFBackend(q25, adapter=ad)
    _one_line_naming(e, ad)
    (ad / "adapter_config.json").write_text(json.dumps({"peft_type": "LORA"}))
    with pytest.raises(CheckpointError, match="no weights"):
        HFBackend(q25, adapter=ad)
    shutil.copy(q25 / "model.safetensors", ad / "adapter_model.safetensors")  # any valid file
    monkeypatch.setitem(sys.modules, "peft", None)  # as if peft were not installed
    with pytest.raises(CheckpointError, match=r"needs peft: pip install 'coordbench\[lora\]'"):
        HFBackend(q25, adapter=ad)


@pytest.mark.skipif(
    importlib.util.find_spec("peft") is None, reason="peft not installed (optional extra `lora`)"
)
def test_lora_adapter_is_merged_at_load(ckpts, tmp_path):
    from peft import LoraConfig, get_peft_model

    from coordbench.embedded.tiny_families import build_tiny

    base, _, _ = build_tiny("qwen2_5_vl", seed=11)
    torch.manual_seed(0)
    lora = get_peft_model(
        base,
        LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj"], init_lora_weights=False),
    )
    lora.save_pretrained(tmp_path / "adapter")
    be = HFBackend(ckpts["qwen2_5_vl"], adapter=tmp_path / "adapter")
    plain = HFBackend(ckpts["qwen2_5_vl"])
    req = request(3)
    got = be.generate([req], GREEDY)[0].token_ids
    assert got == oracle_ids(be, req, model=lora.eval())  # merged == unmerged peft model
    assert got != plain.generate([req], GREEDY)[0].token_ids
    assert be.info.identity["weights_sha256"] != plain.info.identity["weights_sha256"]
    assert len(be.info.identity["adapter_sha256"]) == 64
