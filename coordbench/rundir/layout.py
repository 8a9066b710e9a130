"""Every file name of a run directory, in one place: the run-dir contract.

docs/architecture.md describes what each file holds and which step writes it. Other modules
take names from here (or from a `RunDir`), never as string literals, so the contract has one
owner. Key names inside the files follow the upstream CoordExp artifacts.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

# written while generating (appended per batch, trace first)
RUN_JSON = "run.json"
GT_VS_PRED = "gt_vs_pred.jsonl"
TRACE = "pred_token_trace.jsonl"
LOCK = ".lock"
# derived at the end of a run, and again by `coordbench eval`
CONFIDENCE = "pred_confidence.jsonl"
SCORED = "gt_vs_pred_scored.jsonl"
POSTOP_SUMMARY = "confidence_postop_summary.json"
SUMMARY = "summary.json"
REPORT = "report.html"
# folders
EVAL_DIR = "eval"
SHARDS_DIR = "shards"
EVAL_ORIGINAL_DIR = "eval_original"  # `coordbench eval --original-scale`
# inside eval/ (upstream eval-dir names)
METRICS = "metrics.json"
CATEGORIES_JSON = "categories.json"  # next to a dataset JSONL: its full vocabulary
PER_CLASS = "per_class.csv"
PER_IMAGE = "per_image.json"
COCO_GT = "coco_gt.json"
COCO_PREDS = "coco_preds.json"
SEMANTIC_REPORT = "semantic_desc_report.json"
MATCHES = "matches.jsonl"  # F1 matches at the primary threshold; others: matches@{key}.jsonl


def matches_name(key: str, primary_key: str) -> str:
    """matches.jsonl for the primary F1 threshold, matches@{key}.jsonl for the others."""
    return MATCHES if key == primary_key else f"matches@{key}.jsonl"


def shard_dir_name(index: int, count: int) -> str:
    """`shards/00003-of-00008`: zero-padded so a listing sorts in shard order."""
    return f"{index:05d}-of-{count:05d}"


@dataclass(frozen=True)
class EvalDir:
    """An eval folder (a run's `eval/`, or `--out` of `coordbench eval`)."""

    root: Path

    @property
    def metrics(self) -> Path:
        return self.root / METRICS

    @property
    def per_class(self) -> Path:
        return self.root / PER_CLASS

    @property
    def per_image(self) -> Path:
        return self.root / PER_IMAGE

    @property
    def coco_gt(self) -> Path:
        return self.root / COCO_GT

    @property
    def coco_preds(self) -> Path:
        return self.root / COCO_PREDS

    @property
    def semantic_report(self) -> Path:
        return self.root / SEMANTIC_REPORT

    @property
    def primary_matches(self) -> Path:
        return self.root / MATCHES

    def matches(self, key: str, primary_key: str) -> Path:
        return self.root / matches_name(key, primary_key)


@dataclass(frozen=True)
class RunDir:
    """A run directory and the path of every file in it."""

    root: Path

    def __post_init__(self) -> None:
        object.__setattr__(self, "root", Path(self.root))

    @property
    def run_json(self) -> Path:
        return self.root / RUN_JSON

    @property
    def records(self) -> Path:
        return self.root / GT_VS_PRED

    @property
    def trace(self) -> Path:
        return self.root / TRACE

    @property
    def lock(self) -> Path:
        return self.root / LOCK

    @property
    def confidence(self) -> Path:
        return self.root / CONFIDENCE

    @property
    def scored(self) -> Path:
        return self.root / SCORED

    @property
    def postop_summary(self) -> Path:
        return self.root / POSTOP_SUMMARY

    @property
    def summary(self) -> Path:
        return self.root / SUMMARY

    @property
    def report(self) -> Path:
        return self.root / REPORT

    @property
    def eval(self) -> EvalDir:
        return EvalDir(self.root / EVAL_DIR)

    @property
    def eval_original(self) -> Path:
        return self.root / EVAL_ORIGINAL_DIR

    @property
    def shards_dir(self) -> Path:
        return self.root / SHARDS_DIR

    def derived_files(self, eval_files: tuple[str, ...]) -> list[Path]:
        """What finalize always writes: the run-level files and the task's `eval_files` inside
        `eval/`; a finished run has every one of them."""
        return [
            self.records,
            self.trace,
            self.confidence,
            self.scored,
            self.postop_summary,
            self.summary,
            *(self.eval.root / name for name in eval_files),
        ]

    def shard(self, index: int, count: int) -> RunDir:
        return RunDir(self.shards_dir / shard_dir_name(index, count))

    def shard_dirs(self) -> list[Path]:
        """The shard folders present, in shard order (empty when the run was not sharded)."""
        if not self.shards_dir.is_dir():
            return []
        return sorted(p for p in self.shards_dir.iterdir() if p.is_dir())
