"""A benchmark task: one declared unit of everything that differs between benchmarks.

Generation, finalize, rescore, the finished-run check, compare, report and log ask the run's task
for its prompt context, record fields, scorer, headline metrics, eval files, bootstrap columns
and report sections; none of them holds a benchmark's constant. A task is a frozen dataclass in a
plain dict (`tasks.TASKS`), in the style of the dialect registry; its preset
(`configs/task/NAME.toml`) names the implementation and the defaults a user may change.
[ARCH-TASKS]
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from coordbench.config.prompts import PromptContext
from coordbench.types import Sample


@dataclass(frozen=True)
class Metric:
    """One headline metric: the label people read, its key in eval/metrics.json, which way is
    better (+1 higher, -1 lower, 0 neither) and whether it is a fraction (printed with 4
    decimals) or a count."""

    label: str
    key: str
    direction: int = +1
    fraction: bool = True
    # the per-sample column (in eval/per_image.json) whose mean is this metric, for compare's
    # paired bootstrap; None: resampled another way (detection's counts, COCO re-matching)
    per_sample: str | None = None


# `score(records, options, vocabulary, invalid_json=0, categories=None)`: records
# (gt_vs_pred_scored.jsonl rows), the eval options, the data set's class names, how many input
# lines were unreadable, and its categories.json entries (LVIS: frequency, synonyms) -> a result
# whose `.metrics` holds the headline keys; the writer puts the task's eval files in a folder
Scorer = Callable[..., Any]
Writer = Callable[[Any, Path], None]


def no_record_fields(sample: Sample) -> dict[str, Any]:
    """The default: a record holds the sample's upstream keys only."""
    return {}


def vocabulary_context(sample: Sample, vocabulary: Sequence[str] | None) -> PromptContext:
    """The default prompt context: the data set's class list (its categories, in order)."""
    return PromptContext(classes=tuple(vocabulary) if vocabulary else None)


@dataclass(frozen=True)
class Task:
    """Everything a run needs to know about its benchmark.

    - `score` / `write_eval`: records -> metrics, and the eval files they are written to;
    - `headline`: the metrics summary, report, compare and log show, in order, with direction;
    - `eval_files`: names inside `eval/` that a finished run has (with the run-level files);
    - `bootstrap_columns`: per-sample columns compare's paired bootstrap resamples;
    - `report_sections`: the report's sections, in order;
    - `prompt_context`: a sample's prompt inputs (its vocabulary; later its query);
    - `record_fields`: what a record holds beyond the upstream keys;
    - `scorers`: the `--scorer` values the task accepts;
    - `log_metrics`: the labels a benchmark-log line keeps.
    """

    name: str
    description: str
    score: Scorer
    write_eval: Writer
    headline: tuple[Metric, ...]
    eval_files: tuple[str, ...]
    bootstrap_columns: tuple[str, ...] = ()
    report_sections: tuple[str, ...] = ()
    scorers: tuple[str, ...] = ()
    log_metrics: tuple[str, ...] = ()  # labels of the benchmark-log line (a few headline ones)
    default_prompt: str | None = None
    prompt_context: Callable[[Sample, Sequence[str] | None], PromptContext] = vocabulary_context
    record_fields: Callable[[Sample], dict[str, Any]] = no_record_fields
    # `eval --task NAME --coco-gt G --coco-dt R`: (gt, results, out dir or None) -> printed text;
    # None: the COCO pair path (detection)
    score_pair: Callable[[Path, Path, Path | None], str] | None = None
    options: dict[str, Any] = field(default_factory=dict)
    # a task with protocol options (ODinW): (run config, the preset's defaults) -> the
    # protocol's identity entries; the scorer then takes them as `protocol=` [ARCH-GROUPS]
    resolve_protocol: Callable[[Any, dict[str, Any]], dict[str, Any]] | None = None
    # (samples, protocol, vocabulary) -> the samples a run generates (per_class: one per class)
    expand_samples: Callable[..., list[Sample]] | None = None

    def headline_keys(self) -> tuple[tuple[str, str], ...]:
        """(label, key) pairs, the shape summary and report tables take."""
        return tuple((m.label, m.key) for m in self.headline)

    def count_keys(self) -> frozenset[str]:
        """Headline keys that are counts (printed as integers)."""
        return frozenset(m.key for m in self.headline if not m.fraction)
