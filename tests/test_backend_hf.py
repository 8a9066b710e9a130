"""HF backend decoding: HF-parity oracles, batch invariance, trace, stop/length, OOM back-off,
resize guard; plus the vLLM backend's torch-free helpers (vLLM itself is absent here)."""

from __future__ import annotations

import importlib.util
import logging
from types import SimpleNamespace

import numpy as np
import pytest
from PIL import Image

from coordbench.config.options import GenerationParams
from coordbench.config.seeding import sample_seed
from coordbench.errors import BackendError
from coordbench.types import GenerationRequest

torch = pytest.importorskip("torch")

GREEDY = GenerationParams(temperature=0.0, max_new_tokens=24)
SAMPLED = GenerationParams(temperature=0.7, top_p=0.9, max_new_tokens=24)
SIZES = [(64, 64), (96, 64), (64, 128), (128, 96), (96, 96), (160, 64), (64, 96)]  # multiples of 32


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def backend(tmp_path_factory):
    from coordbench.backends.hf import HFBackend
    from coordbench.embedded.tiny_families import save_tiny

    be = HFBackend(save_tiny("qwen2_5_vl", tmp_path_factory.mktemp("q25"), seed=3))
    yield be
    be.close()


def image(i: int, size: tuple[int, int]) -> Image.Image:
    w, h = size
    return Image.fromarray((np.random.RandomState(i).rand(h, w, 3) * 255).astype("uint8"))


def request(
    i: int, size: tuple[int, int] | None = None, *, image_first: bool = True, run_seed: int = 7
) -> GenerationRequest:
    img = {"type": "image", "image": image(i, size or SIZES[i % len(SIZES)])}
    text = {"type": "text", "text": "Detect every object." + " Please." * (i % 4)}
    content = [img, text] if image_first else [text, img]
    sid = f"s{i}"
    msgs = [
        {"role": "system", "content": "You are a detector."},
        {"role": "user", "content": content},
    ]
    return GenerationRequest(sid, msgs, None, sample_seed(run_seed, sid))


def run_in_batches(be, reqs, params, bs):
    out = []
    for k in range(0, len(reqs), bs):
        out += be.generate(reqs[k : k + bs], params)
    return out


def hf_generate(be, req, **kw):
    """Oracle: transformers' own `generate` on the same inputs (batch of 1)."""
    from coordbench.backends.hf_inputs import build_inputs

    inputs = build_inputs(be.processor, be.template, [req], be.device, be.dtype)
    with torch.inference_mode():
        out = be.model.generate(
            **inputs,
            max_new_tokens=kw.pop("max_new_tokens", 24),
            eos_token_id=sorted(be.stop_ids),
            output_logits=True,
            output_scores=True,
            return_dict_in_generate=True,
            **kw,
        )
    ids = out.sequences[0, inputs["input_ids"].shape[1] :].tolist()
    raw = [
        torch.log_softmax(s[0].float(), -1)[t].item() for s, t in zip(out.logits, ids, strict=True)
    ]
    proc = [
        torch.log_softmax(s[0].float(), -1)[t].item() for s, t in zip(out.scores, ids, strict=True)
    ]
    return ids, raw, proc


# --------------------------------------------------------------------------- parity with HF


def test_greedy_matches_transformers_generate(backend):
    for i in range(3):
        req = request(i)
        ids, raw, _ = hf_generate(backend, req, do_sample=False)
        got = backend.generate([req], GREEDY)[0]
        assert got.token_ids == ids
        np.testing.assert_allclose(got.logprobs_raw, raw, atol=1e-4)
        assert got.logprobs_processed == got.logprobs_raw  # greedy, no penalty: nothing processed


def test_repetition_penalty_greedy_matches_transformers(backend):
    req = request(1)
    ids, raw, proc = hf_generate(backend, req, do_sample=False, repetition_penalty=1.3)
    got = backend.generate([req], GenerationParams(repetition_penalty=1.3, max_new_tokens=24))[0]
    assert got.token_ids == ids
    assert got.token_ids != backend.generate([req], GREEDY)[0].token_ids  # the penalty bites
    np.testing.assert_allclose(got.logprobs_raw, raw, atol=1e-4)
    np.testing.assert_allclose(got.logprobs_processed, proc, atol=1e-4)
    assert any(
        abs(a - b) > 1e-3 for a, b in zip(got.logprobs_raw, got.logprobs_processed, strict=True)
    )


@pytest.mark.parametrize(
    "rp,temp,top_k,top_p",
    [(1.2, 0.7, 0, 0.9), (1.0, 1.3, 50, 1.0), (0.8, 0.5, 7, 0.6), (1.0, 1.0, 0, 1.0)],
)
def test_logits_processing_equals_hf_processors(rp, temp, top_k, top_p):
    from transformers.generation.logits_process import (
        LogitsProcessorList,
        RepetitionPenaltyLogitsProcessor,
        TemperatureLogitsWarper,
        TopKLogitsWarper,
        TopPLogitsWarper,
    )

    from coordbench.backends.hf_decode import process_logits

    g = torch.Generator().manual_seed(0)
    logits = torch.randn(3, 300, generator=g) * 3
    input_ids = torch.randint(0, 300, (3, 40), generator=g)
    seen = torch.zeros(3, 300, dtype=torch.bool).scatter_(1, input_ids, True)
    hf = LogitsProcessorList()
    if rp != 1.0:
        hf.append(RepetitionPenaltyLogitsProcessor(rp))
    hf.append(TemperatureLogitsWarper(temp))
    if top_k:
        hf.append(TopKLogitsWarper(top_k))
    if top_p < 1:
        hf.append(TopPLogitsWarper(top_p))
    params = GenerationParams(temperature=temp, top_k=top_k, top_p=top_p, repetition_penalty=rp)
    torch.testing.assert_close(process_logits(logits, seen, params), hf(input_ids, logits.clone()))


def test_inverse_cdf_sampler_follows_the_distribution():
    from coordbench.backends.hf_decode import sample_rows, top_k_filter

    probs = torch.tensor([0.5, 0.3, 0.0, 0.2])
    scores = top_k_filter(torch.log(probs), 3)[None].repeat(4000, 1)
    gens = [torch.Generator().manual_seed(s) for s in range(4000)]
    freq = torch.bincount(sample_rows(scores, gens), minlength=4).double() / 4000
    assert freq[2] == 0  # a masked / zero-probability token is never drawn
    torch.testing.assert_close(freq, probs.double(), atol=0.03, rtol=0)  # ~4 sigma at n=4000
    again = sample_rows(scores[:5], [torch.Generator().manual_seed(s) for s in range(5)])
    assert (
        again.tolist()
        == sample_rows(scores[:5], [torch.Generator().manual_seed(s) for s in range(5)]).tolist()
    )


# --------------------------------------------------------------------------- batch invariance


@pytest.mark.parametrize("params", [GREEDY, SAMPLED], ids=["greedy", "sampled"])
def test_outputs_do_not_depend_on_batch_size(backend, params):
    reqs = [request(i) for i in range(7)]
    runs = {bs: run_in_batches(backend, reqs, params, bs) for bs in (1, 4, 3)}  # 3: ragged 3+3+1
    for bs in (4, 3):
        for a, b in zip(runs[1], runs[bs], strict=True):
            assert (a.sample_id, a.token_ids, a.text, a.finish_reason) == (
                b.sample_id,
                b.token_ids,
                b.text,
                b.finish_reason,
            )
            np.testing.assert_allclose(a.logprobs_raw, b.logprobs_raw, atol=1e-4)
            np.testing.assert_allclose(a.logprobs_processed, b.logprobs_processed, atol=1e-4)
    assert len({tuple(g.token_ids) for g in runs[1]}) == 7  # non-trivial, input-dependent outputs
    assert all(len(set(g.token_ids)) > 5 for g in runs[1])


def test_outputs_do_not_depend_on_batch_order_or_company(backend):
    target = request(2)
    alone = backend.generate([target], SAMPLED)[0]
    for company in ([request(5), request(0), target], [target, request(6)], [request(4), target]):
        got = next(g for g in backend.generate(company, SAMPLED) if g.sample_id == "s2")
        assert got.token_ids == alone.token_ids and got.text == alone.text


def test_seeds_drive_sampling(backend):
    a = backend.generate([request(1, run_seed=1)], SAMPLED)[0]
    b = backend.generate([request(1, run_seed=2)], SAMPLED)[0]
    assert a.token_ids != b.token_ids  # different per-sample seeds, different samples
    assert backend.generate([request(1, run_seed=1)], SAMPLED)[0].token_ids == a.token_ids
    assert any(abs(x - y) > 1e-3 for x, y in zip(a.logprobs_raw, a.logprobs_processed, strict=True))


# --------------------------------------------------------------------------- trace, stop, length


def test_trace_lengths_and_text(backend):
    gens = backend.generate([request(i) for i in range(3)], SAMPLED)
    tok = backend.tokenizer
    for g in gens:
        n = len(g.token_ids)
        assert n == 24 and g.finish_reason == "length"
        assert len(g.token_texts) == len(g.logprobs_raw) == len(g.logprobs_processed) == n
        assert g.token_texts == [tok.decode([t], skip_special_tokens=False) for t in g.token_ids]
        assert all(lp <= 0 and np.isfinite(lp) for lp in g.logprobs_raw + g.logprobs_processed)
        assert g.n_prompt_tokens > 0


@pytest.mark.parametrize("params", [GREEDY, SAMPLED], ids=["greedy", "sampled"])
def test_stop_token_ends_a_row_without_pads_or_disturbing_others(backend, monkeypatch, params):
    reqs = [request(i) for i in range(4)]
    free = backend.generate(reqs, params)
    stop = free[1].token_ids[4]  # make row 1's 5th token a stop token
    if stop in free[1].token_ids[:4]:
        pytest.skip("tiny model repeated the chosen token early")
    monkeypatch.setattr(backend, "stop_ids", backend.stop_ids | {stop})
    got = backend.generate(reqs, params)
    assert got[1].finish_reason == "stop" and got[1].token_ids == free[1].token_ids[:5]
    # the text ends at the stop token: no trailing pads from longer rows [UP-BATCH-PADS]
    assert got[1].text == backend.tokenizer.decode(free[1].token_ids[:5], skip_special_tokens=False)
    assert got[1].text.endswith(backend.tokenizer.decode([stop], skip_special_tokens=False))
    for a, b in zip(free, got, strict=True):
        if stop not in a.token_ids:  # rows that never met the stop token are untouched
            assert a.token_ids == b.token_ids
        else:
            k = a.token_ids.index(stop)
            assert b.token_ids == a.token_ids[: k + 1] and b.finish_reason == "stop"


def test_max_new_tokens_is_length(backend):
    g = backend.generate([request(0)], GenerationParams(max_new_tokens=3))[0]
    assert len(g.token_ids) == 3 and g.finish_reason == "length"


def test_message_layouts_and_request_image(backend):
    a = request(3, image_first=True)
    b = request(3, image_first=False)
    ga, gb = backend.generate([a, b], GREEDY)
    assert ga.n_prompt_tokens == gb.n_prompt_tokens  # same tokens, another order
    img = a.messages[1]["content"][0]["image"]
    c = GenerationRequest(
        "c", [{"role": "user", "content": [{"type": "image"}, a.messages[1]["content"][1]]}], img, 1
    )
    assert backend.generate([c], GREEDY)[0].n_new_tokens == 24


def test_text_only_requests_batch_like_single(backend):
    def msgs(i):
        return [{"role": "user", "content": [{"type": "text", "text": "hi" + " there" * i}]}]

    reqs = [GenerationRequest(f"t{i}", msgs(i), None, i) for i in range(3)]
    single = [backend.generate([r], GREEDY)[0].token_ids for r in reqs]
    assert [g.token_ids for g in backend.generate(reqs, GREEDY)] == single
    assert single[2] == hf_generate(backend, reqs[2], do_sample=False)[0]


def test_stats_count_tokens_and_time(backend):
    before = SimpleNamespace(**vars(backend.stats))
    gens = backend.generate([request(i) for i in range(3)], GREEDY)
    s = backend.stats
    assert s.prefill_tokens - before.prefill_tokens == sum(g.n_prompt_tokens for g in gens)
    assert s.decode_tokens - before.decode_tokens == sum(g.n_new_tokens for g in gens)
    assert s.prefill_seconds > before.prefill_seconds and s.decode_seconds > before.decode_seconds


def test_invalid_params_are_refused(backend):
    for bad in (
        GenerationParams(top_p=0.0),
        GenerationParams(temperature=-1),
        GenerationParams(top_k=-2),
        GenerationParams(max_new_tokens=0),
    ):
        with pytest.raises(BackendError, match="expected `"):
            backend.generate([request(0)], bad)


# --------------------------------------------------------------------------- OOM back-off


@pytest.mark.parametrize(
    "oom",
    [
        lambda: torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 2 GiB"),
        lambda: RuntimeError("HIP out of memory"),
    ],
    ids=["cuda", "runtime"],
)
def test_oom_halves_the_batch_and_keeps_outputs(backend, monkeypatch, caplog, oom):
    reqs = [request(i) for i in range(5)]
    expected = backend.generate(reqs, SAMPLED)
    real, calls = backend._run_batch, []

    def flaky(chunk, params):
        calls.append(len(chunk))
        if len(chunk) > 2:
            raise oom()
        return real(chunk, params)

    monkeypatch.setattr(backend, "_run_batch", flaky)
    monkeypatch.setattr(backend, "_max_batch", None)
    before = SimpleNamespace(**vars(backend.stats))
    with caplog.at_level(logging.WARNING, logger="coordbench.backends.hf"):
        got = backend.generate(reqs, SAMPLED)
    assert calls == [5, 2, 2, 1]
    assert [(g.sample_id, g.token_ids) for g in got] == [
        (g.sample_id, g.token_ids) for g in expected
    ]
    for a, b in zip(got, expected, strict=True):  # other batch shapes: float noise only
        np.testing.assert_allclose(a.logprobs_raw, b.logprobs_raw, atol=1e-4)
    assert backend.stats.oom_retries == before.oom_retries + 1
    assert backend.stats.decode_tokens - before.decode_tokens == sum(g.n_new_tokens for g in got)
    assert "out of memory with a batch of 5; retrying with 2" in caplog.text
    calls.clear()
    backend.generate(reqs[:3], SAMPLED)  # the learned cap is kept: no second OOM
    assert calls == [2, 1]


def test_oom_at_batch_one_raises_and_other_errors_pass_through(backend, monkeypatch):
    def always(chunk, params):
        raise torch.cuda.OutOfMemoryError("CUDA out of memory")

    monkeypatch.setattr(backend, "_run_batch", always)
    monkeypatch.setattr(backend, "_max_batch", None)
    with pytest.raises(BackendError, match="out of memory on sample s0 even with a batch of 1"):
        backend.generate([request(0), request(1)], GREEDY)

    def broken(chunk, params):
        raise RuntimeError("shape mismatch")

    monkeypatch.setattr(backend, "_run_batch", broken)
    with pytest.raises(RuntimeError, match="shape mismatch"):
        backend.generate([request(0)], GREEDY)


# --------------------------------------------------------------------------- resize guard


def test_check_grid_message_names_sizes_patch_and_grid():
    from coordbench.backends.hf_inputs import check_grid

    with pytest.raises(BackendError) as err:
        check_grid([(1000, 700)], [(1, 50, 72)], 14, 2, ["139"])
    assert str(err.value).startswith(
        "sample 139: processor resized image 1000x700 to 1008x700 (patch 14, merge 2): "
        "images must be multiples of 28 for this checkpoint"
    )
    check_grid([(1008, 700)], [(1, 50, 72)], 14, 2)  # exact: no error


def test_resize_guard_refuses_an_image_off_the_grid(backend, monkeypatch):
    assert backend.expected_grid(96, 64) == (1, 4, 6)
    backend.check_image_size(96, 64)
    with pytest.raises(
        BackendError, match="resized image 100x70 to 96x64 \\(patch 16, merge 2\\).*multiples of 32"
    ):
        backend.check_image_size(100, 70)
    with pytest.raises(BackendError, match="resized image 32x32 to 64x64"):  # under min_pixels
        backend.check_image_size(32, 32)
    bad = request(0, (100, 70))
    with pytest.raises(BackendError, match="sample s0: processor resized image 100x70 to 96x64"):
        backend.generate([request(1), bad], GREEDY)
    monkeypatch.setattr(backend, "check_resize", False)
    assert backend.generate([bad], GenerationParams(max_new_tokens=2))[0].n_new_tokens == 2


def test_split_messages_keeps_order_and_placeholders():
    from coordbench.backends.hf_inputs import split_messages

    img = image(0, (64, 64))
    msgs = [
        {"role": "system", "content": "sys"},
        {
            "role": "user",
            "content": [{"type": "text", "text": "a"}, {"type": "image", "image": img}],
        },
    ]
    rendered, images = split_messages(msgs)
    assert images == [img]
    assert rendered[1]["content"] == [{"type": "text", "text": "a"}, {"type": "image"}]
    assert msgs[1]["content"][1]["image"] is img  # the caller's messages are not modified
    with pytest.raises(BackendError, match="has no image"):
        split_messages([{"role": "user", "content": [{"type": "image"}]}])


# --------------------------------------------------------------------------- vLLM (optional)


def test_vllm_sampling_params_mapping():
    from coordbench.backends.vllm import sampling_kwargs

    kw = sampling_kwargs(
        GenerationParams(temperature=0.1, top_p=0.9, repetition_penalty=1.05, max_new_tokens=3084),
        seed=123,
        stop_ids=[7, 3],
    )
    assert kw == {
        "n": 1,
        "seed": 123,
        "temperature": 0.1,
        "top_p": 0.9,
        "top_k": -1,
        "repetition_penalty": 1.05,
        "max_tokens": 3084,
        "stop_token_ids": [3, 7],
        "logprobs": 1,
        "skip_special_tokens": False,
        "spaces_between_special_tokens": False,
    }
    assert sampling_kwargs(GenerationParams(top_k=20), 1, [])["top_k"] == 20
    with pytest.raises(BackendError, match="top_p"):
        sampling_kwargs(GenerationParams(top_p=1.5), 1, [])


def test_vllm_output_to_generation(backend):
    from coordbench.backends.vllm import generation_from_output

    tok = backend.tokenizer
    ids = tok.encode('{"a": 1}') + [tok.convert_tokens_to_ids("<|im_end|>")]
    steps = [
        {t: SimpleNamespace(logprob=-0.5 * k), t + 1: SimpleNamespace(logprob=-9.0)}
        for k, t in enumerate(ids)
    ]
    out = SimpleNamespace(token_ids=ids, logprobs=steps, finish_reason="stop")
    g = generation_from_output("x", out, tok, n_prompt=11)
    assert g.text == '{"a": 1}<|im_end|>' and g.finish_reason == "stop"
    assert g.logprobs_raw == [-0.5 * k for k in range(len(ids))] == g.logprobs_processed
    assert g.token_texts[-1] == "<|im_end|>" and g.n_prompt_tokens == 11
    out.finish_reason = "length"
    assert generation_from_output("x", out, tok).finish_reason == "length"
    out.logprobs = steps[:-1]
    with pytest.raises(BackendError, match="logprobs for"):
        generation_from_output("x", out, tok)


@pytest.mark.skipif(importlib.util.find_spec("vllm") is not None, reason="vllm is installed")
def test_vllm_missing_is_a_clear_error(tmp_path):
    from coordbench.backends.vllm import VLLMBackend

    with pytest.raises(
        BackendError, match=r"vLLM is not installed: pip install coordbench\[vllm\] on a GPU node"
    ):
        VLLMBackend(tmp_path)


@pytest.mark.skipif(
    importlib.util.find_spec("vllm") is None or not torch.cuda.is_available(),
    reason="vllm is not installed or no GPU (vLLM is a GPU-only optional extra)",
)
def test_vllm_generates_with_a_trace(tmp_path):
    from coordbench.backends.vllm import VLLMBackend
    from coordbench.embedded.tiny_families import save_tiny

    be = VLLMBackend(
        save_tiny("qwen2_5_vl", tmp_path / "ck"), gpu_memory_utilization=0.3, max_model_len=2048
    )
    gens = be.generate([request(i) for i in range(3)], SAMPLED)
    again = be.generate([request(2), request(0)], SAMPLED)
    assert [g.n_new_tokens for g in gens] == [24, 24, 24] or any(
        g.finish_reason == "stop" for g in gens
    )
    assert again[0].token_ids == gens[2].token_ids and again[1].token_ids == gens[0].token_ids
    assert all(len(g.logprobs_raw) == len(g.token_ids) for g in gens)


def test_sampled_trace_equals_a_teacher_forced_forward(backend):
    """What a sampled run records is what the model saw: one plain forward over prompt + the
    recorded tokens gives the trace's raw logprobs at every step (a decode loop that fed back a
    different token than it recorded would fail here, while staying batch-invariant)."""
    from coordbench.backends.hf_inputs import build_inputs

    for i in range(2):
        req = request(i)
        got = backend.generate([req], SAMPLED)[0]
        assert got.token_ids != backend.generate([req], GREEDY)[0].token_ids
        inputs = build_inputs(
            backend.processor, backend.template, [req], backend.device, backend.dtype
        )
        L = inputs["input_ids"].shape[1]
        new = torch.tensor([got.token_ids])
        inputs["input_ids"] = torch.cat([inputs["input_ids"], new], 1)
        inputs["attention_mask"] = torch.cat([inputs["attention_mask"], torch.ones_like(new)], 1)
        if "mm_token_type_ids" in inputs:  # the new tokens are text
            mm = inputs["mm_token_type_ids"]
            inputs["mm_token_type_ids"] = torch.cat([mm, torch.zeros_like(new, dtype=mm.dtype)], 1)
        with torch.inference_mode():
            logits = backend.model(**inputs).logits[0, L - 1 : -1].float()
        lp = torch.log_softmax(logits, -1)[torch.arange(len(got.token_ids)), new[0]]
        np.testing.assert_allclose(got.logprobs_raw, lp.tolist(), atol=1e-4)
