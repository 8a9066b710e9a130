"""Torch only when needed, the on-disk embedding cache, and the dataset vocabulary.

- `python -X importtime -m coordbench eval` on a file whose descs are all class names (some
  predicted classes absent from their image's GT, which upstream would compare by cosine)
  imports neither torch nor transformers.
- A second Semantic of the same model reads the embeddings from the disk cache and never loads
  the encoder.
- With the dataset's full vocabulary, "surfboard" on a subset without surfboard GT stays a
  surfboard (a false positive of its own class); `categories="subset"` keeps upstream's rule and
  relabels it onto the most similar present class.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from coordbench.metrics import semantic as S
from coordbench.metrics.result import EvalOptions
from coordbench.metrics.scoring import evaluate_records

REPO = Path(__file__).resolve().parent.parent


def rec(i: int, gt: list[tuple], pred: list[tuple]) -> dict:
    def obj(b, d, s=None):
        o = {"type": "bbox_2d", "points": list(b), "desc": d}
        if s is not None:
            o["score"] = s
        return o

    return {
        "image": f"img{i}.jpg",
        "width": 100,
        "height": 100,
        "gt": [obj(b, d) for b, d in gt],
        "pred": [obj(b, d, s) for b, d, s in pred],
        "pred_score_source": "test",
        "pred_score_version": 1,
    }


def test_class_name_eval_imports_no_torch(tmp_path: Path) -> None:
    recs = [
        rec(
            0,
            [((0, 0, 50, 50), "cat")],
            [((0, 0, 50, 50), "cat", 0.9), ((5, 5, 60, 60), "dog", 0.4)],
        ),
        rec(1, [((10, 10, 40, 40), "dog")], [((10, 10, 40, 40), "Cat", 0.7)]),
    ]
    src = tmp_path / "scored.jsonl"
    src.write_text("".join(json.dumps(r) + "\n" for r in recs))
    env = {**os.environ, "PYTHONPATH": str(REPO), "COORDBENCH_SEMANTIC_CACHE": "off"}
    done = subprocess.run(
        [
            sys.executable,
            "-X",
            "importtime",
            "-m",
            "coordbench",
            "eval",
            str(src),
            "--out",
            str(tmp_path / "eval"),
        ],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    modules = {
        line.split("|")[-1].strip().split(".")[0]
        for line in done.stderr.splitlines()
        if line.startswith("import time:")
    }
    assert "coordbench" in modules  # the importtime trace is really there
    assert "torch" not in modules and "transformers" not in modules
    assert json.loads((tmp_path / "eval" / "metrics.json").read_text())["metrics"]["bbox_AP"] > 0


def test_embeddings_come_from_the_disk_cache(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv(S.CACHE_ENV, str(tmp_path))
    calls: list[list[str]] = []

    def fake_encoder(texts: list[str]) -> np.ndarray:
        calls.append(list(texts))
        v = np.array([[len(t), 1.0] for t in texts], np.float32)
        return v / np.linalg.norm(v, axis=1, keepdims=True)

    monkeypatch.setattr(S, "load_encoder", lambda model: fake_encoder)
    first = S.Semantic("some-model")
    sim = first.sim("kitten", "cat")
    assert calls == [["cat", "kitten"]] and first.loaded
    assert list(tmp_path.glob("*.npz"))  # written atomically next to nothing else
    assert not list(tmp_path.glob(".*tmp*"))

    def no_encoder(model: str):
        raise AssertionError("the encoder must not load when every text is cached")

    monkeypatch.setattr(S, "load_encoder", no_encoder)
    second = S.Semantic("some-model")
    assert second.sim("kitten", "cat") == pytest.approx(sim)
    assert not second.loaded
    monkeypatch.setenv(S.CACHE_ENV, "off")
    assert S.cache_dir() is None


def test_cache_dir_honours_xdg(monkeypatch, tmp_path: Path) -> None:
    monkeypatch.delenv(S.CACHE_ENV, raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    assert S.cache_dir() == tmp_path / "coordbench" / "semantic"


def one_hot_sport(texts: list[str]) -> np.ndarray:
    """surfboard ~ skateboard (cosine 0.8); everything else orthogonal."""
    out = []
    for t in texts:
        v = np.zeros(8, np.float32)
        if t in ("surfboard", "skateboard"):
            v[0], v[1 if t == "surfboard" else 2] = 0.8, 0.6
        else:
            v[3 + hash(t) % 5] = 1.0
        out.append(v / np.linalg.norm(v))
    return np.stack(out)


def test_surfboard_stays_a_surfboard_with_the_full_vocabulary() -> None:
    recs = [
        rec(0, [((0, 0, 50, 50), "skateboard")], [((0, 0, 50, 50), "skateboard", 0.9)]),
        rec(1, [((10, 10, 60, 60), "skateboard")], [((10, 10, 60, 60), "surfboard", 0.8)]),
    ]
    vocab = ["person", "skateboard", "surfboard"]
    full = evaluate_records(recs, EvalOptions(), encoder=one_hot_sport, categories=vocab)
    names = {c["id"]: c["name"] for c in full.coco_gt["categories"]}
    assert [names[p["category_id"]] for p in full.coco_preds] == ["skateboard", "surfboard"]
    assert full.counters["semantic_mapped"] == 0
    assert full.metrics["bbox_AP50"] == pytest.approx(0.5, abs=0.02)  # one of two GT found

    sub = evaluate_records(
        recs, EvalOptions(categories="subset"), encoder=one_hot_sport, categories=vocab
    )
    names = {c["id"]: c["name"] for c in sub.coco_gt["categories"]}
    assert [names[p["category_id"]] for p in sub.coco_preds] == ["skateboard", "skateboard"]
    assert sub.counters["semantic_mapped"] == 1
    assert sub.metrics["bbox_AP50"] == pytest.approx(1.0)
    assert sub.options.identity()["categories"] == "subset"
    assert full.options.identity()["categories"] == "dataset"


def test_run_vocabulary_is_the_datasets_categories_json(tmp_path: Path) -> None:
    from coordbench.config.run import RunConfig
    from coordbench.pipeline.finalize import dataset_categories

    data = tmp_path / "val.coord.jsonl"
    data.write_text("")
    assert dataset_categories(RunConfig(data=str(data))) is None  # no declared list: GT descs
    cats = [{"id": 42, "name": "surfboard"}, {"id": 1, "name": "person"}]
    (tmp_path / "categories.json").write_text(json.dumps(cats))
    assert dataset_categories(RunConfig(data=str(data))) == ["person", "surfboard"]
