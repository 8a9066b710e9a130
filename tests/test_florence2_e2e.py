"""Florence-2 end to end: a tiny random `Florence2ForConditionalGeneration` checkpoint, built here,
through `coordbench run --ckpt`, against transformers' own greedy `generate`, and batch invariant
under seeded sampling. (Confidence from `<loc_k>` tokens on a replayed trace is
tests/test_dialects.py::test_confidence_from_replayed_trace[florence2_od].)"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from coordbench.backends.registry import backend_class, hf_model_type
from coordbench.config.options import GenerationParams
from coordbench.errors import CheckpointError
from coordbench.types import GenerationRequest

torch = pytest.importorskip("torch")

from coordbench.backends.hf_seq2seq import Seq2SeqBackend  # noqa: E402
from coordbench.embedded.tiny_florence import IMAGE_SEQ_LENGTH, save_tiny_florence  # noqa: E402

pytestmark = pytest.mark.usefixtures("one_torch_thread")

GREEDY = GenerationParams(max_new_tokens=24)
# with per-sample seeds 0..3, rows stop at different steps (22, 64, length): finished rows leave
SAMPLED = GenerationParams(temperature=0.7, top_p=0.9, max_new_tokens=120)
# what Florence2Processor makes of `<OD>` after the image tokens
PROMPT = "<s>Locate the objects with category name in the image.</s>"


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory) -> Path:
    return save_tiny_florence(tmp_path_factory.mktemp("florence2"), seed=0)


@pytest.fixture(scope="module")
def backend(ckpt) -> Seq2SeqBackend:
    be = backend_class("hf")(ckpt, device="cpu")
    yield be
    be.close()


def request(i: int, seed: int = 0) -> GenerationRequest:
    w, h = 128, 96 + 32 * i  # any size: Florence-2 resizes to its fixed square
    img = Image.fromarray((np.random.RandomState(i).rand(h, w, 3) * 255).astype("uint8"))
    content = [{"type": "image", "image": img}, {"type": "text", "text": "<OD>"}]
    return GenerationRequest(f"r{i}", [{"role": "user", "content": content}], None, seed + i)


def test_hf_picks_the_encoder_decoder_backend_by_model_type(ckpt, backend, tmp_path):
    assert hf_model_type(ckpt) == "florence2" and hf_model_type(tmp_path) == ""
    assert isinstance(backend, Seq2SeqBackend) and backend.info.model_type == "florence2"
    assert backend.info.name == "hf" and len(backend.info.identity["weights_sha256"]) == 64
    prov = backend.info.provenance
    assert prov["family"] == "florence2" and prov["check_resize"] is False
    assert "fixed square" in prov["resize_guard_skipped"]
    assert backend.decoder_prefix == [2, 0]  # `</s>` then the forced `<s>`
    assert backend.stop_ids == {2}


def test_processor_expands_the_task_token_without_torchvision(backend):
    improc = backend.processor.image_processor
    assert type(improc).__name__ == "CLIPImageProcessorPil"  # the torchvision-free class
    inputs = backend._build_inputs([request(0), request(1)])
    assert inputs["pixel_values"].shape == (2, 3, 768, 768)  # every size -> the fixed square
    ids = inputs["input_ids"][0].tolist()
    image_id = backend.model.config.image_token_id
    assert ids[:IMAGE_SEQ_LENGTH] == [image_id] * IMAGE_SEQ_LENGTH and image_id not in ids[577:]
    text = backend.tokenizer.decode(ids[IMAGE_SEQ_LENGTH:])
    assert text == PROMPT
    assert backend.check_image_size(100, 70) is None  # no Qwen grid guard here
    assert backend.expected_grid(100, 70) == (1, 24, 24)


def n_prompt(be: Seq2SeqBackend) -> int:
    return IMAGE_SEQ_LENGTH + len(be.tokenizer(PROMPT, add_special_tokens=False)["input_ids"])


def oracle_ids(be: Seq2SeqBackend, req: GenerationRequest, n: int, **kw) -> list[int]:
    """transformers' greedy `generate` on the same inputs, without the decoder prefix."""
    inputs = be._build_inputs([req])
    with torch.inference_mode():
        out = be.model.generate(
            **inputs,
            do_sample=False,
            num_beams=1,
            max_new_tokens=n + 2,
            forced_eos_token_id=None,
            **kw,
        )
    assert out[0, :2].tolist() == be.decoder_prefix
    return out[0, 2 : 2 + n].tolist()


def test_greedy_matches_transformers_generate(backend):
    reqs = [request(i) for i in range(3)]
    got = backend.generate(reqs, GREEDY)
    for r, g in zip(reqs, got, strict=True):
        assert g.token_ids == oracle_ids(backend, r, GREEDY.max_new_tokens)
        assert g.finish_reason == "length" and len(g.token_ids) == GREEDY.max_new_tokens
        assert g.n_prompt_tokens == n_prompt(backend)
    assert len({tuple(g.token_ids) for g in got}) > 1  # input-dependent outputs


def test_repetition_penalty_greedy_matches_transformers(backend):
    # HF penalises the decoder's inputs (start token, forced BOS, answer), not the encoder prompt
    params = GenerationParams(max_new_tokens=24, repetition_penalty=1.3)
    got = backend.generate([request(0)], params)[0]
    assert got.token_ids == oracle_ids(backend, request(0), 24, repetition_penalty=1.3)
    assert got.token_ids != backend.generate([request(0)], GREEDY)[0].token_ids


def test_sampled_tokens_do_not_depend_on_the_batch(backend):
    reqs = [request(i) for i in range(4)]
    batched = backend.generate(reqs, SAMPLED)
    reasons = [g.finish_reason for g in batched]
    assert "stop" in reasons and "length" in reasons  # rows left the batch mid-way
    assert len({len(g.token_ids) for g in batched}) > 2
    singles = [backend.generate([r], SAMPLED)[0] for r in reqs]
    reordered = backend.generate(reqs[::-1][:3], SAMPLED)[::-1]
    for a, b in zip(singles, batched, strict=True):
        assert (a.token_ids, a.text, a.finish_reason) == (b.token_ids, b.text, b.finish_reason)
        np.testing.assert_allclose(a.logprobs_raw, b.logprobs_raw, atol=1e-4)
        np.testing.assert_allclose(a.logprobs_processed, b.logprobs_processed, atol=1e-4)
    assert [g.token_ids for g in reordered] == [g.token_ids for g in singles[1:]]
    other_seed = backend.generate([request(0, seed=7)], SAMPLED)[0]
    assert other_seed.token_ids != singles[0].token_ids  # the per-sample seed drives sampling


def test_trace_keeps_loc_tokens_and_ends_at_the_stop_token(backend):
    gens = backend.generate([request(i) for i in range(4)], SAMPLED)
    g = next(g for g in gens if g.finish_reason == "stop")
    tok = backend.tokenizer
    opts = {"skip_special_tokens": False, "clean_up_tokenization_spaces": False}
    assert g.token_texts == [tok.decode([t], **opts) for t in g.token_ids]
    assert g.text.endswith("</s>") and g.token_ids[-1] == 2 and g.text.count("</s>") == 1
    assert "<loc_" in g.text  # `<loc_k>` survive decoding for the florence2 dialect
    assert all(lp <= 0 and math.isfinite(lp) for lp in g.logprobs_raw + g.logprobs_processed)


def test_adapters_are_refused_with_a_clear_error(ckpt, tmp_path):
    with pytest.raises(CheckpointError, match="LoRA adapters are not supported"):
        Seq2SeqBackend(ckpt, adapter=tmp_path)


def _jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_run_cli_end_to_end(ckpt, backend, tmp_path):
    from coordbench.cli import main
    from coordbench.parse.answer import parse_answer

    args = ["run", "--ckpt", str(ckpt), "--preset", "64", "--prompt", "florence2_od"]
    args += ["--limit", "3", "--max-new-tokens", "120", "--temperature", "0.7", "--top-p", "0.9"]
    args += ["--seed", "0", "--out", str(tmp_path), "--name", "flo"]
    r = CliRunner().invoke(main, args)
    assert r.exit_code == 0, r.output
    run_dir = tmp_path / "flo"
    recs, traces = _jsonl(run_dir / "gt_vs_pred.jsonl"), _jsonl(run_dir / "pred_token_trace.jsonl")
    assert len(recs) == len(traces) == 3
    # seeded: one answer stops at `</s>`, two hit the token limit (a random model's text)
    assert sorted(t["finish_reason"] for t in traces) == ["length", "length", "stop"]
    for rec, tr in zip(recs, traces, strict=True):
        assert rec["raw_text"] == tr["text"] and rec["n_new_tokens"] == len(tr["token_ids"])
        assert rec["n_prompt_tokens"] == n_prompt(backend)
        # honest statuses: what the dialect reads from the text, truncated at the token limit
        expected = parse_answer(
            rec["raw_text"], prompt_preset="florence2_od", width=rec["width"], height=rec["height"]
        )
        status = "truncated" if tr["finish_reason"] == "length" else str(expected.status)
        assert rec["parse_status"] == status
    summary = json.loads((run_dir / "summary.json").read_text())
    run_json = json.loads((run_dir / "run.json").read_text())
    assert json.dumps(run_json).count("florence2") >= 1
    assert "skipped" in json.dumps(run_json["provenance"])  # the resize guard, and why
    assert (run_dir / "eval" / "metrics.json").is_file() and (run_dir / "report.html").is_file()
    assert sum(summary["parse"]["counts"].values()) == 3
    # box scores come from the trace's own logprobs at the matched `<loc_k>` / label tokens
    conf = _jsonl(run_dir / "pred_confidence.jsonl")
    n_scored = sum(len(line["objects"]) for line in conf)
    assert n_scored == summary["metrics"]["f1ish@0.50_pred_total"] > 0
    for line, tr in zip(conf, traces, strict=True):
        for obj in line["objects"]:
            idx = obj["confidence_details"]["matched_token_indices"]
            assert sum(tr["generated_token_text"][i].startswith("<loc_") for i in idx) >= 4
            mean = sum(tr["token_logprobs_raw"][i] for i in idx) / len(idx)  # default: raw
            assert math.isclose(obj["score"], math.exp(mean), rel_tol=1e-9)


def test_decoder_only_backend_refuses_an_encoder_decoder_checkpoint(ckpt):
    from coordbench.backends.hf import HFBackend

    with pytest.raises(CheckpointError, match="encoder-decoder"):
        HFBackend(ckpt, device="cpu")
