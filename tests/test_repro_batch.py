"""Scored outputs do not depend on batch size, shards or resume (issue 27).

Tokens never did; the log-probs read during a batched decode did (by up to ~1e-5), and with them
the confidence scores, `gt_vs_pred_scored.jsonl` and `metrics.json`. The per-sample log-prob pass
(`backends/hf_rescore.py`) reads them from a batch-of-one forward instead.

- Every family the HF backend runs (tiny checkpoints): a sample's log-probs are equal (==) alone
  and in a padded batch, and equal the decode loop's own (bs 1, to 1e-4: the oracle that the pass
  scores the right positions, masks and processors).
- The embedded model end to end (slow): bs 1, bs 8, a 3-shard merge and a resume at another batch
  size give byte-identical files. The control runs the same comparison without the pass, to show
  that this set-up does tell the two apart.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
from PIL import Image

from coordbench.config.options import GenerationParams
from coordbench.config.run import EMBEDDED_CKPT, RunConfig, Shard
from coordbench.types import GenerationRequest

pytest.importorskip("torch")
pytestmark = pytest.mark.usefixtures("one_torch_thread")
embedded = [  # seven embedded runs of 16 samples: ~45 s on 2 shared cores
    pytest.mark.slow,
    pytest.mark.skipif(
        not (EMBEDDED_CKPT / "model.safetensors").exists(), reason="embedded model missing"
    ),
]
FAMILIES = ("qwen2_5_vl", "qwen3_vl", "internvl", "gemma3", "paligemma", "florence2")
# sampled through top-p with a repetition penalty: every processor the processed log-prob reads
PARAMS = GenerationParams(
    temperature=0.8, top_p=0.9, repetition_penalty=1.2, max_new_tokens=16, logprobs="per-sample"
)

FILES = [
    "gt_vs_pred.jsonl",
    "pred_token_trace.jsonl",
    "pred_confidence.jsonl",
    "gt_vs_pred_scored.jsonl",
    "summary.json",
    "eval/metrics.json",
    "eval/per_image.json",
    "eval/coco_preds.json",
]


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    from coordbench.backends.registry import backend_class

    made: dict = {}

    def get(family: str):
        if family not in made:
            made[family] = backend_class("hf")(_save_tiny(family, tmp_path_factory), device="cpu")
        return made[family]

    yield get
    for be in made.values():
        be.close()


def _save_tiny(family: str, tmp_path_factory):
    root = tmp_path_factory.mktemp(family)
    if family == "florence2":
        from coordbench.embedded.tiny_florence import save_tiny_florence

        return save_tiny_florence(root, seed=0)
    if family.startswith("qwen"):
        from coordbench.embedded.tiny_families import save_tiny

        return save_tiny(family, root, seed=3)
    from coordbench.embedded.tiny_others import save_tiny

    return save_tiny(family, root, seed=1)


def _request(family: str, i: int) -> GenerationRequest:
    w, h = [(64, 64), (96, 64), (64, 128)][i]  # multiples of 32 (Qwen's resize guard)
    img = Image.fromarray((np.random.RandomState(i).rand(h, w, 3) * 255).astype("uint8"))
    text = "<OD>" if family == "florence2" else "Detect every object." + " Please." * i
    content = [{"type": "image", "image": img}, {"type": "text", "text": text}]
    return GenerationRequest(f"s{i}", [{"role": "user", "content": content}], None, 11 + i)


@pytest.mark.parametrize("family", FAMILIES)
def test_logprobs_are_equal_alone_and_batched_and_match_the_decode(tiny, family):
    be = tiny(family)
    reqs = [_request(family, i) for i in range(3)]  # three prompt lengths: real padding
    together = be.generate(reqs, PARAMS)
    alone = [be.generate([r], PARAMS)[0] for r in reqs]
    batched = replace(PARAMS, logprobs="batched")
    decoded = [be.generate([r], batched)[0] for r in reqs]  # as the decode loop read them
    for a, b, d in zip(alone, together, decoded, strict=True):
        assert a.token_ids == b.token_ids == d.token_ids
        assert (a.logprobs_raw, a.logprobs_processed) == (b.logprobs_raw, b.logprobs_processed)
        np.testing.assert_allclose(a.logprobs_raw, d.logprobs_raw, atol=1e-4)
        np.testing.assert_allclose(a.logprobs_processed, d.logprobs_processed, atol=1e-4)
    assert any(g.logprobs_raw != g.logprobs_processed for g in alone)  # the processors acted
    assert len({g.n_prompt_tokens for g in together}) == 3 or family == "florence2"  # one task


class Shared:
    """One loaded embedded backend for every run of the module (`run` closes its backend)."""

    def __init__(self, backend, crash_after: int | None = None):
        self.backend, self.crash_after, self.calls = backend, crash_after, 0
        self.info, self.stats = backend.info, backend.stats

    def generate(self, batch, params):
        if self.crash_after is not None and self.calls == self.crash_after:
            raise KeyboardInterrupt  # a kill between batches
        self.calls += 1
        return self.backend.generate(batch, params)

    def close(self) -> None:
        pass


@pytest.fixture(scope="module")
def backend():
    from coordbench.backends.hf import HFBackend

    be = HFBackend(EMBEDDED_CKPT, device="cpu", threads=1)
    yield be
    be.close()


def _run(backend, out, name, **kw):
    from coordbench.pipeline.run import run

    cfg = RunConfig(
        out=str(out),
        name=name,
        limit=16,
        temperature=0.7,  # sampled: the processed log-probs go through top-p too
        top_p=0.9,
        seed=3,
        progress=False,
        **{"logprobs": "per-sample", **kw},
    )
    run(cfg, backend=Shared(backend) if not isinstance(backend, Shared) else backend)
    return out / name


def _differing(a, b) -> list[str]:
    return [f for f in FILES if (a / f).read_bytes() != (b / f).read_bytes()]


@pytest.fixture(scope="module")
def runs(backend, tmp_path_factory):
    from coordbench.pipeline.merge import merge_and_score

    out = tmp_path_factory.mktemp("runs")
    dirs = {
        "bs8": _run(backend, out, "bs8", batch_size=8),
        "bs1": _run(backend, out, "bs1", batch_size=1),
    }
    for i in range(3):
        _run(backend, out, "sharded", batch_size=8, shard=Shard(i, 3))
    merge_and_score([out / "sharded"], None)
    dirs["sharded"] = out / "sharded"
    with pytest.raises(KeyboardInterrupt):  # killed after its first batch of 8 ...
        _run(Shared(backend, crash_after=1), out, "resumed", batch_size=8)
    dirs["resumed"] = _run(backend, out, "resumed", batch_size=3)  # ... resumed at another size
    return dirs


@pytest.mark.parametrize("other", ["bs1", "sharded", "resumed"])
@embedded[0]
@embedded[1]
def test_scored_outputs_are_byte_identical(runs, other):
    assert _differing(runs["bs8"], runs[other]) == []


@embedded[0]
@embedded[1]
def test_without_the_pass_batch_size_moves_the_scores(backend, tmp_path):
    a = _run(backend, tmp_path, "a", batch_size=8, logprobs="batched")
    b = _run(backend, tmp_path, "b", batch_size=1, logprobs="batched")
    differing = _differing(a, b)
    assert "gt_vs_pred.jsonl" not in differing  # the tokens are equal either way
    assert "pred_token_trace.jsonl" in differing and "gt_vs_pred_scored.jsonl" in differing


def test_per_sample_logprobs_are_in_the_identity_and_need_the_hf_backend():
    from coordbench.errors import ConfigError

    batched, per_sample = GenerationParams(), GenerationParams(logprobs="per-sample")
    assert "logprobs" not in batched.identity()  # batched runs keep the identity they had
    assert per_sample.identity()["logprobs"] == "per-sample"  # no resume/merge across the two
    with pytest.raises(ConfigError, match="--logprobs per-sample needs --backend hf"):
        RunConfig(logprobs="per-sample", backend="vllm").resolved()
    with pytest.raises(ConfigError, match="--logprobs"):
        GenerationParams(logprobs="exact").check()
