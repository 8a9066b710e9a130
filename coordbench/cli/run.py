"""`coordbench run`.

Command modules import click and light config at module level only; the library is imported
inside the command, so `coordbench --help` does not pay for numpy, PIL or the scorers.
"""

from __future__ import annotations

import os
from pathlib import Path

import click

from coordbench.cli.common import CONTEXT, friendly_errors, print_run
from coordbench.config.run import RunConfig, Shard

DEFAULTS = RunConfig()  # every option's default is the library's, never a second copy


@click.command("run", context_settings=CONTEXT)
@click.option(
    "--ckpt", type=click.Path(), help="Merged HF checkpoint dir (default: the embedded model)."
)
@click.option(
    "--adapter", type=click.Path(), help="LoRA adapter dir merged into --ckpt at load (needs peft)."
)
@click.option(
    "--data",
    type=click.Path(),
    help="Dataset JSONL (default: the preset's data / embedded shapes).",
)
@click.option(
    "--image-root",
    type=click.Path(file_okay=False),
    help="Allow absolute image paths in --data under this folder (besides the JSONL's folder).",
)
@click.option(
    "--task",
    default=DEFAULTS.task,
    show_default=True,
    help="Benchmark task (configs/task/*.toml): its prompt, data, scorer and metrics.",
)
@click.option("--preset", help="Rescale preset: 64 (embedded), 768, 1024, or a .toml path.")
@click.option("--prompt", help="Prompt preset (configs/prompt/*.toml), e.g. coco80_desc_first.")
@click.option("--limit", type=int, help="Only the first N records (val200 = --limit 200).")
@click.option(
    "--batch-size",
    type=int,
    default=DEFAULTS.batch_size,
    show_default=True,
    help="Images per generate call (not in the identity; halved on CUDA OOM).",
)
@click.option(
    "--temperature", type=float, default=DEFAULTS.temperature, show_default=True, help="0 = greedy."
)
@click.option(
    "--top-p",
    type=float,
    default=DEFAULTS.top_p,
    show_default=True,
    help="Nucleus sampling: keep tokens up to this mass (0 < p <= 1).",
)
@click.option(
    "--top-k",
    type=int,
    default=DEFAULTS.top_k,
    show_default=True,
    help="Sampling: keep the k likeliest tokens (0 = off).",
)
@click.option(
    "--repetition-penalty",
    type=float,
    default=DEFAULTS.repetition_penalty,
    show_default=True,
    help="Penalty on repeated tokens (1.0 = none).",
)
@click.option(
    "--seed",
    type=int,
    default=DEFAULTS.seed,
    show_default=True,
    help="Per-sample seeds derive from it.",
)
@click.option(
    "--max-new-tokens",
    type=int,
    default=DEFAULTS.max_new_tokens,
    show_default=True,
    help="Generation cap per image; hitting it marks the answer truncated.",
)
@click.option(
    "--out",
    type=click.Path(),
    default=DEFAULTS.out,
    show_default=True,
    help="Folder that holds the run dirs.",
)
@click.option("--name", help="Run dir name under --out (default: derived from the run).")
@click.option(
    "--shard",
    help="i/N, 0-based (0/8 .. 7/8): only samples with index % N == i; or `auto` from "
    "SLURM_ARRAY_TASK_ID/MIN/MAX (--array=0-7 or 1-8). Then `coordbench merge`.",
)
@click.option(
    "--backend",
    default=DEFAULTS.backend,
    show_default=True,
    help="hf | vllm | replay:RUN_DIR | openai:URL (an OpenAI-compatible server, e.g. vLLM).",
)
@click.option(
    "--served-model",
    help="openai:URL: the model name the server serves (default: its only one). "
    "Key: $COORDBENCH_API_KEY or $OPENAI_API_KEY.",
)
@click.option(
    "--concurrency",
    type=click.IntRange(min=1),
    default=DEFAULTS.concurrency,
    show_default=True,
    help="openai:URL: requests in flight at once (at most --batch-size).",
)
@click.option(
    "--device",
    default=DEFAULTS.device,
    show_default=True,
    help="auto = CUDA if available, else CPU; or cpu, cuda, cuda:1.",
)
@click.option(
    "--dtype", default=DEFAULTS.dtype, show_default=True, help="auto = bf16 on GPU, fp32 on CPU."
)
@click.option(
    "--threads",
    type=int,
    help="torch CPU threads (default: 1 for small models on CPU, else torch's own).",
)
@click.option(
    "--scorer",
    type=click.Choice(["faster", "pycocotools"]),
    default=DEFAULTS.scorer,
    show_default=True,
    help="COCO scorer: faster-coco-eval, or pycocotools (the reference, slower).",
)
@click.option(
    "--logprob-source",
    type=click.Choice(["raw", "processed"]),
    default=DEFAULTS.logprob_source,
    show_default=True,
    help="Confidence from raw logits (default) or processed scores (upstream parity).",
)
@click.option(
    "--logprobs",
    type=click.Choice(["batched", "per-sample"]),
    default=DEFAULTS.logprobs,
    show_default=True,
    help="hf: log-probs as the batched decode reads them (last digits depend on batch size), or "
    "from a batch-of-one pass per sample: scores byte-identical at any batch size / shards "
    "(a second prefill per sample).",
)
@click.option(
    "--semantic-threshold",
    type=float,
    default=DEFAULTS.semantic_threshold,
    show_default=True,
    help="Cosine similarity needed to map a free-text class onto a GT class.",
)
@click.option(
    "--trust-remote-code", is_flag=True, help="Allow checkpoints that ship their own code."
)
@click.option("--allow-pickle", is_flag=True, help="Allow .bin/pickle weights (unsafe).")
@click.option(
    "--overwrite", is_flag=True, help="Replace an existing run dir with another identity."
)
@click.option(
    "--rescore",
    is_flag=True,
    help="Re-score a finished run (logged as `rescore`); without it a finished run is left as is.",
)
@click.option("--no-progress", is_flag=True, help="No progress bar (e.g. in batch-job logs).")
@click.option(
    "--odinw-root",
    type=click.Path(file_okay=False),
    help="A group task (odinw13): the folder `coordbench data odinw` wrote (one per member).",
)
@click.option(
    "--prompt-mode",
    type=click.Choice(["all_classes", "per_class"]),
    help="Protocol (odinw13): one prompt naming all classes, or one prompt per class.",
)
@click.option(
    "--box-score",
    type=click.Choice(["model", "constant"]),
    help="Protocol (odinw13): the model's confidence, or 1.0 for every box (official scripts).",
)
@click.option("--max-dets", help="Protocol (odinw13): COCOeval maxDets, e.g. 100,300,1000.")
@friendly_errors
def run(**kw) -> None:
    """Generate, parse and score one run; resumes if the run dir already holds this run.

    \b
    Examples:
      coordbench run
      coordbench run --ckpt ckpt/merged --preset 768 --limit 200 \\
          --temperature 0.1 --top-p 0.9 --seed 42
      coordbench run --ckpt ckpt/merged --preset 1024 --shard 3/8 --name big
          # shards count from 0 (0/8 .. 7/8); then: coordbench merge output/runs/big
      sbatch --array=0-7 --wrap "coordbench run --ckpt ckpt/merged --shard auto --name big"
    """
    from coordbench.pipeline.run import run as run_fn

    progress = not kw.pop("no_progress")
    rescore = kw.pop("rescore")
    odinw_root = kw.pop("odinw_root")
    shard = Shard.parse(kw.pop("shard"), os.environ)
    cfg = RunConfig(**kw, shard=shard, progress=progress)
    if cfg.task_preset().members:  # a benchmark group: one run dir per member
        from coordbench.cli.common import print_group

        print_group(cfg, odinw_root, rescore)
        return
    summary = run_fn(cfg, rescore=rescore)
    if not summary:
        return
    if "already_complete" in summary:
        click.echo(
            f"{summary['run_dir']}: already complete ({summary['already_complete']} samples); "
            "use --rescore to re-score"
        )
        return
    if "shard" in summary:
        click.echo(
            f"shard {summary['shard']} written to {summary['work_dir']}; "
            "merge with `coordbench merge`"
        )
        return
    print_run(Path(cfg.resolved().run_dir()), summary)
