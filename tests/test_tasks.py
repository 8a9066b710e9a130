"""The task layer: detection is the default and unchanged; a new task plugs in with one module
(its `Task`) and one TOML, and generation, finalize, the finished-run check, summary, report,
compare and log all follow it."""

from __future__ import annotations

import json
import shutil
from dataclasses import replace
from pathlib import Path

import pytest

from coordbench.config.presets import configs_dir, load_prompt_preset
from coordbench.config.prompts import PromptContext, build_messages, native_prompt
from coordbench.config.run import RunConfig
from coordbench.errors import ConfigError
from coordbench.rundir import files as A
from coordbench.tasks import TASKS, Metric, Task, get_task, task_identity, task_of
from coordbench.tasks.detection import DETECTION
from tests.conftest import OracleBackend


def test_detection_is_the_default_and_old_identities_read_as_detection():
    assert get_task(None).name == "detection"
    assert task_of({}).name == "detection"
    assert task_of({"task": "detection"}).score is DETECTION.score
    assert task_of(None).eval_files == DETECTION.eval_files
    assert task_identity(get_task(None)) == {}  # the detection hash is what it always was


def test_an_unknown_task_is_refused_with_the_known_ones():
    with pytest.raises(ConfigError, match="unknown task preset 'lvis2'.*detection"):
        get_task("lvis2")


def test_native_prompts_name_the_data_sets_classes_unless_the_preset_pins_them():
    preset = load_prompt_preset("qwen25_pixel")
    ctx = PromptContext(classes=("red circle", "blue square"))
    assert '"red circle, blue square"' in native_prompt(preset, ctx)
    assert "person, bicycle" in native_prompt(preset)  # no data set list: the variant's list
    pinned = replace(preset, classes="variant")
    assert "person, bicycle" in native_prompt(pinned, ctx)
    pali = load_prompt_preset("paligemma_loc")
    content = build_messages(pali, None, ctx)[0]["content"]
    assert [c["text"] for c in content if c["type"] == "text"] == [
        "detect red circle ; blue square"
    ]
    # CoordJSON prompts keep upstream's bytes whatever the data (tests/test_prompts.py oracle)
    coco = load_prompt_preset("coco80_desc_first")
    assert build_messages(coco, None, ctx) == build_messages(coco, None)


# ----------------------------------------------------------------- a toy task, end to end


def _count_score(records, options, vocabulary, invalid_json=0, categories=None):
    """Toy scorer: the fraction of images whose predicted box count equals the GT count."""

    class Result:
        pass

    hits = [len(r.get("pred") or []) == len(r.get("gt") or []) for r in records]
    res = Result()
    res.metrics = {"count_acc": sum(hits) / max(1, len(hits)), "n_images": len(hits)}
    res.diagnostics = {"warnings": []}
    res.calibration = None
    res.hits = hits
    return res


def _count_write(result, eval_dir: Path):
    A.write_json(eval_dir / "metrics.json", {"metrics": result.metrics})
    A.write_json(eval_dir / "count.json", {"hits": result.hits})


COUNT = Task(
    name="count",
    description="count the objects",
    score=_count_score,
    write_eval=_count_write,
    headline=(Metric("CountAcc", "count_acc"), Metric("n", "n_images", 0, fraction=False)),
    eval_files=("metrics.json", "count.json"),
    report_sections=("summary", "gallery"),
    log_metrics=("CountAcc",),
    record_fields=lambda sample: {"n_gt": len(sample.boxes)},
)


@pytest.fixture
def count_task(tmp_path, monkeypatch):
    cfgs = tmp_path / "configs"
    shutil.copytree(configs_dir(), cfgs)
    (cfgs / "task" / "count.toml").write_text(
        'name = "count"\nkind = "count"\nprompt = "default_desc_first"\n'
    )
    monkeypatch.setenv("COORDBENCH_CONFIGS", str(cfgs))
    monkeypatch.setitem(TASKS, "count", COUNT)
    return COUNT


def _cfg(shapes_dir, tmp_path, **kw):
    ckpt = tmp_path / "fake-ckpt"
    ckpt.mkdir(exist_ok=True)
    (ckpt / "config.json").write_text('{"model_type": "qwen2_5_vl"}')
    return RunConfig(
        ckpt=str(ckpt),
        data=str(shapes_dir / "val.coord.jsonl"),
        preset="64",
        out=str(tmp_path / "runs"),
        batch_size=4,
        progress=False,
        **kw,
    )


def test_a_new_task_runs_through_the_one_layer(count_task, shapes_dir, tmp_path):
    from coordbench.compare.core import compare_runs
    from coordbench.pipeline.run import finished_samples, run

    plan = {1: "drop", 4: "drop"}
    data = shapes_dir / "val.coord.jsonl"
    summary = run(
        _cfg(shapes_dir, tmp_path, task="count", name="c"), backend=OracleBackend(data, plan)
    )
    rd = tmp_path / "runs" / "c"
    n = len(data.read_text().splitlines())
    dropped = sum(1 for line in data.read_text().splitlines() if json.loads(line)["objects"])
    dropped = min(dropped, len(plan))  # both planned samples have objects in the shapes set
    assert summary["metrics"] == {"count_acc": (n - dropped) / n, "n_images": n}
    head = json.loads((rd / "run.json").read_text())
    assert head["identity"]["task"] == "count" and head["config"]["task"] == "count"
    assert head["config"]["prompt"] == "default_desc_first"  # the task preset's default prompt
    recs = [json.loads(x) for x in (rd / "gt_vs_pred.jsonl").read_text().splitlines()]
    assert all(r["n_gt"] == len(r["gt"]) for r in recs)  # the task's record fields
    assert (rd / "eval" / "count.json").is_file()
    assert not (rd / "eval" / "coco_gt.json").exists()  # no detection files
    assert finished_samples(rd, head["identity_hash"]) == n  # finished by the task's files
    (rd / "eval" / "count.json").unlink()
    assert finished_samples(rd, head["identity_hash"]) is None
    html = (rd / "report.html").read_text()
    assert "CountAcc" in html and "Per-class AP" not in html
    log = (tmp_path / "runs").parent / "benchmark_log.jsonl"
    entries = [json.loads(x) for x in log.read_text().splitlines()] if log.exists() else []
    assert entries and entries[-1]["metrics"] == {"CountAcc": summary["metrics"]["count_acc"]}

    run(_cfg(shapes_dir, tmp_path, task="count", name="d"), backend=OracleBackend(data))
    res = compare_runs([str(rd), str(tmp_path / "runs" / "d")], n_boot=0)
    assert res.metrics[:2] == ["CountAcc", "n"]
    run(_cfg(shapes_dir, tmp_path, name="det"), backend=OracleBackend(data))
    with pytest.raises(ConfigError, match="different tasks"):
        compare_runs([str(rd), str(tmp_path / "runs" / "det")], n_boot=0)


def test_the_detection_identity_has_no_task_key(shapes_dir, tmp_path):
    from coordbench.pipeline.plan import plan_run

    plan = plan_run(_cfg(shapes_dir, tmp_path, name="x"))
    assert "task" not in plan.identity and plan.task.name == "detection"
