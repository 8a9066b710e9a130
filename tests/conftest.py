"""Shared fixtures: a small shapes data set and a fake backend that answers from ground truth."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from coordbench.backends.base import BackendInfo, GenerationStats
from coordbench.types import Generation


@pytest.fixture(scope="module")
def one_torch_thread():
    """Two cores are shared with other jobs: one torch thread avoids oversubscription stalls
    (model tests opt in with `pytestmark = pytest.mark.usefixtures("one_torch_thread")`)."""
    import torch

    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


@pytest.fixture(scope="session")
def shapes_dir(tmp_path_factory) -> Path:
    from coordbench.data.shapes import write_split

    return write_split(tmp_path_factory.mktemp("shapes"), "val", n=12)


class OracleBackend:
    """Answers with the sample's own GT in coord tokens (optionally dropping objects / garbling).

    `plan` maps sample index -> "perfect" | "drop" | "garbage" | "truncate"; default perfect.
    """

    def __init__(self, data_jsonl: Path, plan: dict[int, str] | None = None, logprob: float = -0.1):
        import json

        rows = [json.loads(line) for line in Path(data_jsonl).read_text().splitlines()]
        self.answers = {str(r["image_id"]): (i, r) for i, r in enumerate(rows)}
        self.plan = plan or {}
        self.logprob = logprob
        self.info = BackendInfo(
            name="oracle", model_path=str(data_jsonl), device="cpu", dtype="none"
        )
        self.stats = GenerationStats()
        self.calls: list[list[str]] = []

    def _text(self, idx: int, row: dict) -> tuple[str, str]:
        mode = self.plan.get(idx, "perfect")
        objs = (
            row["objects"][: max(0, len(row["objects"]) - 1)] if mode == "drop" else row["objects"]
        )
        recs = ", ".join(
            '{"desc": "' + o["desc"] + '", "bbox_2d": [' + ", ".join(o["bbox_2d"]) + "]}"
            for o in objs
        )
        text = '{"objects": [' + recs + "]}<|im_end|>"
        if mode == "garbage":
            # no boxes and no refusal ("nothing is there" answers are empty, not malformed)
            return "Sure, here is what I found in the picture.<|im_end|>", "stop"
        if mode == "truncate":
            return text[: len(text) // 2], "length"
        return text, "stop"

    def generate(self, batch, params):
        self.calls.append([r.sample_id for r in batch])
        out = []
        for req in batch:
            idx, row = self.answers[req.sample_id]
            text, finish = self._text(idx, row)
            toks = _split_tokens(text)
            out.append(
                Generation(
                    req.sample_id,
                    text,
                    list(range(len(toks))),
                    toks,
                    [self.logprob] * len(toks),
                    [self.logprob] * len(toks),
                    finish,
                    10,
                )
            )
        return out

    def close(self):
        pass


def _split_tokens(text: str) -> list[str]:
    """A crude tokenisation that keeps coord tokens whole, like the real tokenizer."""
    import re

    return [t for t in re.split(r"(<\|[^|]+\|>|\s+|[{}\[\],:\"])", text) if t]


@pytest.fixture
def oracle_backend(shapes_dir):
    return OracleBackend(shapes_dir / "val.coord.jsonl")


def approx(a: float, b: float, tol: float = 1e-9) -> bool:
    return math.isclose(a, b, rel_tol=0, abs_tol=tol)


ORACLE_DIR = Path(__file__).resolve().parent / "oracle"  # upstream reference outputs (README there)


@pytest.fixture(scope="session")
def oracle_dir() -> Path:
    return ORACLE_DIR


@pytest.fixture(autouse=True, scope="session")
def _semantic_cache(tmp_path_factory):
    """Embedding cache in a temp folder: tests never read or write ~/.cache."""
    import os

    from coordbench.metrics.semantic import CACHE_ENV

    old = os.environ.get(CACHE_ENV)
    os.environ[CACHE_ENV] = str(tmp_path_factory.mktemp("semantic-cache"))
    yield
    if old is None:
        os.environ.pop(CACHE_ENV, None)
    else:
        os.environ[CACHE_ENV] = old
