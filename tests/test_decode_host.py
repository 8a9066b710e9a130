"""The decode loop's one-copy-per-step host transfer is exact, and NaN logits still stop a run."""

from __future__ import annotations

import pytest

from coordbench.backends.base import GenerationStats
from coordbench.errors import BackendError

torch = pytest.importorskip("torch")


def test_to_host_equals_separate_tolist():
    from coordbench.backends.hf_decode import to_host

    chosen = torch.tensor([0, 151_664, 2**31 - 1])  # large ids survive the float64 stack
    raw = torch.randn(3, dtype=torch.float32) * 30
    proc = torch.tensor([-1e-30, float("-inf"), 3.5], dtype=torch.float32)
    ids, lr, lp = to_host(chosen, raw, proc)
    assert ids == chosen.tolist() and all(isinstance(i, int) for i in ids)
    assert lr == raw.tolist() and lp == proc.tolist()  # float32 -> Python float, bit for bit


def test_nan_logits_raise_a_clear_error():
    from coordbench.backends.hf_decode import Decoder, RowTrace, select_tokens, to_host
    from coordbench.config.options import GenerationParams

    logits = torch.randn(2, 10)
    logits[1, 3] = float("nan")  # one NaN logit poisons its row's log-softmax
    chosen, raw, proc = select_tokens(logits, None, GenerationParams(temperature=0.0), None)
    dec = Decoder.__new__(Decoder)
    dec.stop_ids, dec.stats = set(), GenerationStats()
    with pytest.raises(BackendError, match="NaN logits"):
        dec._record([RowTrace(), RowTrace()], [0, 1], *to_host(chosen, raw, proc))
