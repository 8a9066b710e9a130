"""InternVL, Gemma 3 and PaliGemma through the HF backend: tiny random checkpoints built here.

Per family: `coordbench run` end to end with the family's prompt preset; greedy tokens and
log-probs equal transformers' own `generate`; sampled tokens do not depend on batch size;
the prompt the model sees is the family's (hand-written expectations); safe loading still
refuses pickle weights and remote code; a processor that needs torchvision fails clearly.
"""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
from PIL import Image

from coordbench.config.options import GenerationParams
from coordbench.config.seeding import sample_seed
from coordbench.errors import CheckpointError
from coordbench.types import GenerationRequest

torch = pytest.importorskip("torch")
pytestmark = pytest.mark.usefixtures("one_torch_thread")

FAMILIES = ("internvl", "gemma3", "paligemma")
PRESET = {"internvl": "internvl_box", "gemma3": "gemma3_box2d", "paligemma": "paligemma_loc"}
GREEDY = GenerationParams(temperature=0.0, max_new_tokens=12)
SAMPLED = GenerationParams(temperature=0.8, top_p=0.95, max_new_tokens=12)
# different sizes: InternVL tiles a 256x128 image into 2 tiles + a thumbnail (3 x 256 tokens)
SIZES = [(256, 256), (256, 128), (96, 256)]


@pytest.fixture(scope="module")
def ckpts(tmp_path_factory):
    from coordbench.embedded.tiny_others import save_tiny

    root = tmp_path_factory.mktemp("families")
    return {f: save_tiny(f, root / f, seed=1) for f in FAMILIES}


@pytest.fixture(scope="module")
def backends(ckpts):
    from coordbench.backends.hf import HFBackend

    made: dict = {}

    def get(family: str):
        if family not in made:
            made[family] = HFBackend(ckpts[family], device="cpu")
        return made[family]

    yield get
    for be in made.values():
        be.close()


def request(i: int, text: str = "detect cat ; dog") -> GenerationRequest:
    w, h = SIZES[i % len(SIZES)]
    img = Image.fromarray((np.random.RandomState(i).rand(h, w, 3) * 255).astype("uint8"))
    content = [{"type": "image", "image": img}, {"type": "text", "text": text + " ; bird" * i}]
    sid = f"s{i}"
    return GenerationRequest(sid, [{"role": "user", "content": content}], None, sample_seed(5, sid))


def tokens(be, req) -> list[str]:
    from coordbench.backends.hf_inputs import build_inputs

    ids = build_inputs(be.processor, be.template, [req], "cpu", be.dtype, family=be.family)
    return be.tokenizer.convert_ids_to_tokens(ids["input_ids"][0].tolist())


# --------------------------------------------------------------------------- the prompt


def test_paligemma_prompt_is_image_tokens_bos_task_newline(backends):
    """No chat template: 256 <image> tokens, <bos>, the bare task text, "\\n" (PaliGemma's
    prefix format); token_type_ids 0 over the whole prefix (bidirectional)."""
    be = backends("paligemma")
    toks = tokens(be, request(0, "detect cat"))
    assert toks[:256] == ["<image>"] * 256
    assert toks[256] == "<bos>"
    assert "".join(toks[257:-1]).replace("▁", " ") == "detect cat"
    assert toks[-1] == "<0x0A>"
    assert be.template is None and be.info.provenance["family"] == "paligemma"


def test_gemma3_prompt_has_one_bos_turns_and_expanded_image(backends):
    be = backends("gemma3")
    toks = tokens(be, request(0, "detect cat"))
    assert toks.count("<bos>") == 1 and toks[0] == "<bos>"  # the template's BOS only
    start = toks.index("<start_of_image>")
    assert toks[start + 1 : start + 257] == ["<image_soft_token>"] * 256
    assert toks[start + 257] == "<end_of_image>"
    text = "".join(toks).replace("▁", " ").replace("<0x0A>", "\n")
    assert text.startswith("<bos><start_of_turn>user\n")
    assert text.endswith("detect cat<end_of_turn>\n<start_of_turn>model\n")


def test_internvl_prompt_expands_one_context_block_per_tile(backends):
    be = backends("internvl")
    square = tokens(be, request(0))  # 256x256: one 448-px tile
    wide = tokens(be, request(1))  # 256x128: 2x1 tiles + a thumbnail
    assert square.count("<IMG_CONTEXT>") == 256 and wide.count("<IMG_CONTEXT>") == 3 * 256
    assert square.count("<img>") == square.count("</img>") == 1
    text = be.tokenizer.convert_tokens_to_string(square)
    assert text.startswith("<|im_start|>system\n你是书生·万象")  # InternVL's default system text
    assert text.endswith("detect cat ; dog<|im_end|>\n<|im_start|>assistant\n")


# --------------------------------------------------------------------------- decode parity


def hf_generate(be, req, **kw):
    """Oracle: transformers' own `generate` on the same inputs (batch of 1)."""
    from coordbench.backends.hf_inputs import build_inputs

    inputs = build_inputs(be.processor, be.template, [req], be.device, be.dtype, family=be.family)
    with torch.inference_mode():
        out = be.model.generate(
            **inputs,
            max_new_tokens=12,
            eos_token_id=sorted(be.stop_ids),
            output_logits=True,
            return_dict_in_generate=True,
            **kw,
        )
    ids = out.sequences[0, inputs["input_ids"].shape[1] :].tolist()
    logits = zip(out.logits, ids, strict=True)
    raw = [torch.log_softmax(s[0].float(), -1)[t].item() for s, t in logits]
    return ids, raw


@pytest.mark.parametrize("family", FAMILIES)
def test_greedy_tokens_equal_transformers_generate(backends, family):
    be = backends(family)
    for i in (0, 1):
        req = request(i)
        ids, raw = hf_generate(be, req, do_sample=False)
        got = be.generate([req], GREEDY)[0]
        assert got.token_ids == ids
        np.testing.assert_allclose(got.logprobs_raw, raw, atol=1e-4)
    assert len(set(ids)) > 3  # a varied answer, not one token repeated


@pytest.mark.parametrize("family", FAMILIES)
def test_sampled_tokens_do_not_depend_on_batch_size(backends, family):
    be = backends(family)
    reqs = [request(i) for i in range(3)]  # different lengths: real left padding in the batch
    alone = [be.generate([r], SAMPLED)[0] for r in reqs]
    together = be.generate(reqs, SAMPLED)
    for a, b in zip(alone, together, strict=True):
        assert (a.sample_id, a.token_ids, a.finish_reason) == (
            b.sample_id,
            b.token_ids,
            b.finish_reason,
        )
        np.testing.assert_allclose(a.logprobs_raw, b.logprobs_raw, atol=1e-4)
    assert len({tuple(g.token_ids) for g in alone}) == 3
    assert (
        be.generate([reqs[0]], SAMPLED)[0].token_ids != be.generate([reqs[0]], GREEDY)[0].token_ids
    )


@pytest.mark.parametrize("family, first", [("paligemma", 1), ("internvl", 0), ("gemma3", 0)])
def test_positions_skip_left_pads_and_start_where_the_family_counts(backends, family, first):
    """Prefill and step position ids per row: pads excluded, PaliGemma counts from 1 (as its
    `generate` does; RoPE is shift-invariant, so the parity test alone cannot see this)."""
    be = backends(family)
    seen = []
    hook = be.model.register_forward_pre_hook(
        lambda m, a, kw: seen.append((kw["attention_mask"], kw["position_ids"])), with_kwargs=True
    )
    try:
        be.generate([request(0), request(2)], GenerationParams(max_new_tokens=2))
    finally:
        hook.remove()
    (mask, pos), (_, step) = seen[0], seen[1]
    for row in range(2):
        real = mask[row].bool()
        n = int(real.sum())
        assert pos[row][real].tolist() == list(range(first, first + n))
        assert step[row].tolist() == [first + n]


def test_family_stop_tokens_and_resize_guard_provenance(backends):
    gemma, internvl = backends("gemma3"), backends("internvl")
    vocab = gemma.tokenizer.get_vocab()
    assert {vocab["<end_of_turn>"], vocab["<eos>"]} <= gemma.stop_ids
    assert internvl.tokenizer.get_vocab()["<|im_end|>"] in internvl.stop_ids
    prov = internvl.info.provenance
    assert prov["check_resize"] is False and "fixed" in prov["resize_guard_skipped"]
    internvl.check_image_size(100, 70)  # no 32-px grid for these families: not an error


# --------------------------------------------------------------------------- end to end


@pytest.mark.parametrize("family", FAMILIES)
def test_run_end_to_end_writes_traces_and_honest_statuses(ckpts, shapes_dir, tmp_path, family):
    from coordbench.config.run import RunConfig
    from coordbench.pipeline.run import run
    from coordbench.rundir import files as A

    cfg = RunConfig(
        ckpt=str(ckpts[family]),
        data=str(shapes_dir / "val.coord.jsonl"),
        preset="64",
        prompt=PRESET[family],
        limit=2,
        max_new_tokens=16,
        device="cpu",
        out=str(tmp_path),
        name="r",
        progress=False,
    )
    summary = run(cfg)
    rd = tmp_path / "r"
    recs, _ = A.read_jsonl(rd / "gt_vs_pred.jsonl")
    traces, _ = A.read_jsonl(rd / "pred_token_trace.jsonl")
    assert len(recs) == len(traces) == 2
    assert all(len(t["generated_token_text"]) == len(t["token_logprobs"]) > 0 for t in traces)
    counts = summary["parse"]["counts"]
    assert sum(counts.values()) == 2 and counts.get("ok", 0) == 0  # random weights: no clean answer
    head = A.read_json(rd / "run.json")
    backend = json.dumps(head["provenance"])
    assert (
        f'"family": "{family}"' in backend and '"resize_guard_skipped": "the processor' in backend
    )
    assert (rd / "summary.json").exists() and (rd / "eval" / "metrics.json").exists()


# --------------------------------------------------------------------------- safe loading


def _copy(src, dst):
    shutil.copytree(src, dst)
    return dst


@pytest.mark.parametrize("family", FAMILIES)
def test_safe_loading_refuses_pickle_and_remote_code(ckpts, tmp_path, family):
    from coordbench.backends.hf import HFBackend

    pick = _copy(ckpts[family], tmp_path / "pickle")
    (pick / "model.safetensors").unlink()
    (pick / "pytorch_model.bin").write_bytes(b"not unpickled")
    with pytest.raises(CheckpointError, match="refusing to unpickle"):
        HFBackend(pick)
    remote = _copy(ckpts[family], tmp_path / "remote")
    cfg = json.loads((remote / "config.json").read_text())
    cfg["auto_map"] = {"AutoModel": "modeling_x.Model"}
    (remote / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(CheckpointError, match="remote code"):
        HFBackend(remote)


def test_unknown_and_remote_only_model_types_name_the_supported_ones(ckpts, tmp_path):
    from coordbench.backends.hf import HFBackend

    other = _copy(ckpts["internvl"], tmp_path / "llava")
    cfg = json.loads((other / "config.json").read_text())
    (other / "config.json").write_text(json.dumps({**cfg, "model_type": "llava"}))
    with pytest.raises(CheckpointError, match=r"'llava'.*supported: qwen2_vl, .*paligemma"):
        HFBackend(other)
    chat = _copy(ckpts["internvl"], tmp_path / "chat")
    cfg = {**cfg, "model_type": "internvl_chat", "auto_map": {"AutoModel": "m.InternVLChatModel"}}
    (chat / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(CheckpointError, match="remote code"):
        HFBackend(chat)
    with pytest.raises(CheckpointError, match=r"'internvl_chat'.*'-hf' repos"):
        HFBackend(chat, trust_remote_code=True)


def test_a_processor_that_needs_torchvision_fails_clearly(ckpts, monkeypatch):
    import transformers

    from coordbench.backends.hf_checkpoint import inspect_checkpoint
    from coordbench.backends.hf_loading import load_processor

    def needs_torchvision(*a, **k):
        raise ValueError("X requires `torchvision` to be installed.")

    monkeypatch.setattr(transformers.AutoProcessor, "from_pretrained", needs_torchvision)
    monkeypatch.setattr(transformers.AutoImageProcessor, "from_pretrained", needs_torchvision)
    with pytest.raises(CheckpointError, match="'gemma3'.*needs torchvision"):
        load_processor(inspect_checkpoint(ckpts["gemma3"]))
