"""The `coordbench` command line: thin click commands over the library API."""

from __future__ import annotations

import logging
from pathlib import Path

import click

from coordbench import __version__
from coordbench.cli.common import CONTEXT, friendly_errors
from coordbench.rundir.layout import EVAL_ORIGINAL_DIR


@click.group(context_settings=CONTEXT)
@click.version_option(__version__, "-V", "--version", prog_name="coordbench")
@click.option("-v", "--verbose", is_flag=True, help="Log debug messages.")
def main(verbose: bool) -> None:
    """Detection benchmarks for vision-language checkpoints that print boxes as text.

    \b
    Examples:
      coordbench run                                     # embedded default model + data, on CPU
      coordbench run --ckpt path/to/merged --preset 768 --limit 200
      coordbench eval output/runs/NAME                   # re-parse and re-score a run, no model
      coordbench compare output/runs/a output/runs/b     # is B really better than A?
      torchrun --nproc_per_node 8 -m coordbench run --ckpt ... --preset 768
    """
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.WARNING, format="%(levelname)s: %(message)s"
    )


@main.command(context_settings=CONTEXT)
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
@click.option("--preset", help="Rescale preset: 64 (embedded), 768, 1024, or a .toml path.")
@click.option("--prompt", help="Prompt preset (configs/prompt/*.toml), e.g. coco80_desc_first.")
@click.option("--limit", type=int, help="Only the first N records (val200 = --limit 200).")
@click.option("--batch-size", type=int, default=8, show_default=True)
@click.option("--temperature", type=float, default=0.0, show_default=True, help="0 = greedy.")
@click.option("--top-p", type=float, default=1.0, show_default=True)
@click.option("--top-k", type=int, default=0, show_default=True)
@click.option("--repetition-penalty", type=float, default=1.0, show_default=True)
@click.option(
    "--seed", type=int, default=0, show_default=True, help="Per-sample seeds derive from it."
)
@click.option("--max-new-tokens", type=int, default=1024, show_default=True)
@click.option("--out", type=click.Path(), default="output/runs", show_default=True)
@click.option("--name", help="Run dir name under --out (default: derived from the run).")
@click.option("--shard", help="i/N: run only this shard (SLURM arrays); then `coordbench merge`.")
@click.option("--backend", default="hf", show_default=True, help="hf | vllm | replay:RUN_DIR")
@click.option("--device", default="auto", show_default=True)
@click.option("--dtype", default="auto", show_default=True, help="auto = bf16 on GPU, fp32 on CPU.")
@click.option(
    "--scorer", type=click.Choice(["faster", "pycocotools"]), default="faster", show_default=True
)
@click.option(
    "--logprob-source",
    type=click.Choice(["raw", "processed"]),
    default="raw",
    show_default=True,
    help="Confidence from raw logits (default) or processed scores (upstream parity).",
)
@click.option("--semantic-threshold", type=float, default=0.5, show_default=True)
@click.option(
    "--trust-remote-code", is_flag=True, help="Allow checkpoints that ship their own code."
)
@click.option("--allow-pickle", is_flag=True, help="Allow .bin/pickle weights (unsafe).")
@click.option(
    "--overwrite", is_flag=True, help="Replace an existing run dir with another identity."
)
@click.option("--no-progress", is_flag=True)
@friendly_errors
def run(**kw) -> None:
    """Generate, parse and score one run; resumes if the run dir already holds this run.

    \b
    Examples:
      coordbench run
      coordbench run --ckpt ckpt/merged --preset 768 --limit 200 \\
          --temperature 0.1 --top-p 0.9 --seed 42
      coordbench run --ckpt ckpt/merged --preset 1024 --shard 3/8 --name big
          # then: coordbench merge
    """
    from coordbench.config.run import RunConfig, Shard
    from coordbench.pipeline.run import run as run_fn

    progress = not kw.pop("no_progress")
    shard = Shard.parse(kw.pop("shard"))
    cfg = RunConfig(**kw, shard=shard, progress=progress)
    summary = run_fn(cfg)
    if not summary:
        return
    if "shard" in summary:
        click.echo(
            f"shard {summary['shard']} written to {summary['work_dir']}; "
            "merge with `coordbench merge`"
        )
        return
    _print_run(Path(cfg.resolved().run_dir()), summary)


def _print_run(run_dir: Path, summary: dict) -> None:
    from coordbench.metrics.summary import format_summary
    from coordbench.rundir.files import RUN_JSON, read_json

    prov = read_json(run_dir / RUN_JSON).get("provenance", {})
    click.echo(format_summary(summary, prov, str(run_dir)))


@main.command("eval", context_settings=CONTEXT)
@click.argument("path", type=click.Path(exists=True))
@click.option("--out", type=click.Path(), help="Eval dir (default: PATH/eval or next to the file).")
@click.option("--scorer", type=click.Choice(["faster", "pycocotools"]), default=None)
@click.option("--semantic-threshold", type=float, default=None)
@click.option(
    "--tolerant", is_flag=True, help="Skip malformed JSONL lines (counted) instead of failing."
)
@click.option(
    "--original-scale",
    "annotations",
    type=click.Path(exists=True, dir_okay=False),
    help="Also score at original COCO scale against this instances json (official areas, crowds).",
)
@friendly_errors
def eval_cmd(
    path: str,
    out: str | None,
    scorer: str | None,
    semantic_threshold: float | None,
    tolerant: bool,
    annotations: str | None,
) -> None:
    """Re-parse and re-score a run dir, or score an upstream gt_vs_pred_scored.jsonl.

    \b
    Examples:
      coordbench eval output/runs/NAME
      coordbench eval upstream/gt_vs_pred_scored.jsonl --out eval_dir --scorer pycocotools
    """
    from coordbench.pipeline.rescore import eval_path

    text = eval_path(
        Path(path), out=out, scorer=scorer, semantic_threshold=semantic_threshold, tolerant=tolerant
    )
    click.echo(text)
    if annotations:
        from coordbench.export.coco_results import eval_original_scale

        stats = eval_original_scale(
            Path(path),
            Path(annotations),
            scorer=scorer or "faster",
            out_dir=Path(out) / EVAL_ORIGINAL_DIR if out else None,
        )
        click.echo("original scale (official COCO areas, crowd regions ignored):")
        for k, v in stats.items():
            click.echo(f"  {k:<12} {v:.4f}")


@main.command(context_settings=CONTEXT)
@click.argument("dirs", nargs=-1, required=True, type=click.Path(exists=True))
@click.option(
    "--out", type=click.Path(), help="Merged run dir (default: the run dir holding the shards)."
)
@friendly_errors
def merge(dirs: tuple[str, ...], out: str | None) -> None:
    """Merge `--shard i/N` runs: validates identities and coverage, then scores.

    \b
    Examples:
      coordbench merge output/runs/big                 # a run dir with shards/ inside
      coordbench merge runs/s0 runs/s1 --out runs/all  # separate shard run dirs
    """
    from coordbench.pipeline.merge import merge_and_score

    run_dir, summary = merge_and_score([Path(d) for d in dirs], Path(out) if out else None)
    _print_run(run_dir, summary)


def _register_groups() -> None:
    """Sub-commands that live in their own modules (each imports only click at module level)."""
    from coordbench.cli.compare import register as register_compare
    from coordbench.cli.data import data_group

    main.add_command(data_group, "data")
    register_compare(main)
    from coordbench.cli.export import register as register_export

    register_export(main)


_register_groups()

if __name__ == "__main__":  # pragma: no cover
    main()
