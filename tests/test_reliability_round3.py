"""Round three of the hostile matrix: every eval form agrees with pycocotools or refuses with the
culprit named; bad run options are one-line errors. Each case failed before its fix."""

from __future__ import annotations

import contextlib
import io
import json
from pathlib import Path

import pytest

from tests.test_reliability_support import run_cli


def _gt(**edit):
    gt = {
        "images": [{"id": 1, "width": 100, "height": 100}, {"id": 2, "width": 100, "height": 100}],
        "annotations": [
            {
                "id": 1,
                "image_id": 1,
                "category_id": 1,
                "bbox": [10, 10, 50, 50],
                "area": 2500,
                "iscrowd": 0,
            },
            {
                "id": 2,
                "image_id": 2,
                "category_id": 1,
                "bbox": [10, 10, 60, 60],
                "area": 3600,
                "iscrowd": 0,
            },
        ],
        "categories": [{"id": 1, "name": "a"}],
    }
    for f in edit.values():
        f(gt)
    return gt


def _pair(tmp_path: Path, gt: dict, results: list) -> tuple[Path, Path]:
    g, d = tmp_path / "gt.json", tmp_path / "dt.json"
    g.write_text(json.dumps(gt))
    d.write_text(json.dumps(results))
    return g, d


def _pycocotools(g: Path, d: Path) -> list[float]:
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    with contextlib.redirect_stdout(io.StringIO()):
        gt = COCO(str(g))
        ev = COCOeval(gt, gt.loadRes(str(d)), "bbox")
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
    return [float(x) for x in ev.stats]


HIT = {"image_id": 1, "category_id": 1, "bbox": [10, 10, 50, 50], "score": 0.9}


@pytest.mark.parametrize(
    "edit,match",
    [
        ({"a": lambda g: g["annotations"][1].update(id=1)}, "duplicate annotation id 1"),
        (
            {"a": lambda g: g["categories"].append({"id": 1, "name": "b"})},
            "duplicate category id 1",
        ),
        (
            {"a": lambda g: g["annotations"][1].update(category_id=9)},
            "category_id 9, not in categories",
        ),
        ({"a": lambda g: g["annotations"][1].update(image_id=99)}, "image_id 99, not in images"),
        ({"a": lambda g: g.update(categories=[])}, "not in categories"),
    ],
)
def test_coco_pair_gt_problems_are_refused(tmp_path, edit, match):
    g, d = _pair(tmp_path, _gt(**edit), [HIT])
    p = run_cli(["eval", "--coco-gt", str(g), "--coco-dt", str(d)])
    assert p.returncode == 2 and match in p.stderr and "Traceback" not in p.stderr, p.stderr


def test_results_all_outside_the_gt_categories_equal_pycocotools_and_are_named(tmp_path):
    g, d = _pair(tmp_path, _gt(), [{**HIT, "category_id": 7}])
    p = run_cli(["eval", "--coco-gt", str(g), "--coco-dt", str(d), "--out", str(tmp_path / "e")])
    assert p.returncode == 0, p.stderr
    assert "categories not in the GT (7)" in p.stderr
    ours = json.loads((tmp_path / "e" / "metrics.json").read_text())["metrics"]
    ref = _pycocotools(g, d)
    assert [ours[k] for k in ours][:12] == pytest.approx(ref, abs=1e-12)
    assert ours["bbox_APs"] == -1 and ours["bbox_ARs"] == -1  # no small GT: -1, as pycocotools


def test_pycocotools_scorer_on_gt_without_iscrowd(tmp_path):
    g, d = _pair(tmp_path, _gt(a=lambda g: [a.pop("iscrowd") for a in g["annotations"]]), [HIT])
    out = {}
    for scorer in ("pycocotools", "faster"):
        p = run_cli(
            [
                "eval",
                "--coco-gt",
                str(g),
                "--coco-dt",
                str(d),
                "--scorer",
                scorer,
                "--out",
                str(tmp_path / scorer),
            ]
        )
        assert p.returncode == 0, p.stderr
        out[scorer] = json.loads((tmp_path / scorer / "metrics.json").read_text())["metrics"]
    assert out["pycocotools"] == out["faster"]


@pytest.mark.parametrize("out", ["/dev/null", "FILE"])
def test_eval_out_must_be_a_folder(tmp_path, out):
    g, d = _pair(tmp_path, _gt(), [HIT])
    if out == "FILE":
        out = str(tmp_path / "existing.txt")
        Path(out).write_text("mine")
    p = run_cli(["eval", "--coco-gt", str(g), "--coco-dt", str(d), "--out", out])
    assert p.returncode == 2 and "not a folder" in p.stderr
    if out.endswith(".txt"):
        assert Path(out).read_text() == "mine"


def test_bootstrap_of_one_resample_is_refused(tmp_path):
    g, d = _pair(tmp_path, _gt(), [HIT])
    p = run_cli(["eval", "--coco-gt", str(g), "--coco-dt", str(d), "--bootstrap", "1"])
    assert p.returncode == 2 and "too few resamples" in p.stderr


@pytest.mark.parametrize(
    "args,match",
    [
        (["--seed", str(2**70)], "64-bit integer"),
        (["--threads", "100000"], "--threads must be between 1 and"),
        (["--device", "tpu"], "'tpu' is not supported"),
    ],
)
def test_bad_run_options_are_one_line_errors(tmp_path, args, match):
    p = run_cli(["run", *args, "--limit", "2", "--out", str(tmp_path), "--no-progress"])
    assert p.returncode == 2 and match in p.stderr and "Traceback" not in p.stderr, p.stderr
    assert not any(tmp_path.iterdir())  # refused before any run dir


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory):
    from coordbench.config.run import RunConfig
    from coordbench.data.shapes import write_split
    from coordbench.pipeline.run import run
    from tests.conftest import OracleBackend

    root = tmp_path_factory.mktemp("r3")
    data = write_split(root / "shapes", "val", n=8)
    ckpt = root / "ck"
    ckpt.mkdir()
    (ckpt / "config.json").write_text('{"model_type": "qwen2_5_vl"}')
    cfg = RunConfig(
        ckpt=str(ckpt),
        data=str(data / "val.coord.jsonl"),
        preset="64",
        prompt="default_desc_first",
        out=str(root / "runs"),
        name="r",
        progress=False,
    )
    run(cfg, backend=OracleBackend(data / "val.coord.jsonl"))
    return root / "runs" / "r"


def _copy_run(src: Path, dst: Path) -> Path:
    import shutil

    shutil.copytree(src, dst)
    return dst


@pytest.mark.parametrize(
    "edit,match",
    [
        (lambda rows: rows + rows[:4], "appears twice"),
        (lambda rows: rows + [{**rows[0], "sample_id": "x9", "index": 40}], "outside this run's 8"),
        (
            lambda rows: [{k: v for k, v in r.items() if k != "width"} for r in rows],
            "no positive integer width",
        ),
        (
            lambda rows: rows[:3] + [{k: v for k, v in rows[3].items() if k != "width"}] + rows[4:],
            "no positive integer width",
        ),
    ],
)
def test_hostile_run_dir_records_are_refused_not_scored(finished_run, tmp_path, edit, match):
    rd = _copy_run(finished_run, tmp_path / "r")
    path = rd / "gt_vs_pred.jsonl"
    rows = [json.loads(x) for x in path.read_text().splitlines()]
    path.write_text("".join(json.dumps(r) + "\n" for r in edit(rows)))
    before = (rd / "eval" / "metrics.json").read_bytes()
    p = run_cli(["eval", str(rd)])
    assert p.returncode == 2 and match in p.stderr and "Traceback" not in p.stderr, p.stderr
    assert (rd / "eval" / "metrics.json").read_bytes() == before  # nothing rewritten


def test_scored_file_without_sizes(finished_run, tmp_path):
    rows = [
        json.loads(x) for x in (finished_run / "gt_vs_pred_scored.jsonl").read_text().splitlines()
    ]
    f = tmp_path / "s.jsonl"
    f.write_text(
        "".join(json.dumps({k: v for k, v in r.items() if k != "width"}) + "\n" for r in rows)
    )
    p = run_cli(["eval", str(f)])
    assert p.returncode == 2 and "no record has a positive integer width" in p.stderr
    rows[2].pop("width")
    f.write_text("".join(json.dumps(r) + "\n" for r in rows))
    p = run_cli(["eval", str(f)])
    assert p.returncode == 0 and "1 of 8 records have no width/height" in p.stdout, p.stdout


def test_a_checkpoint_missing_a_weight_is_refused_with_the_key_named(tmp_path):
    import shutil

    from safetensors.torch import load_file, save_file

    from coordbench.config.run import EMBEDDED_CKPT, EMBEDDED_DATA

    bad = tmp_path / "ck"
    shutil.copytree(EMBEDDED_CKPT, bad)
    tensors = load_file(str(bad / "model.safetensors"))
    name = sorted(k for k in tensors if "q_proj.weight" in k)[0]
    del tensors[name]
    save_file(tensors, str(bad / "model.safetensors"), metadata={"format": "pt"})
    p = run_cli(
        [
            "run",
            "--ckpt",
            str(bad),
            "--data",
            str(EMBEDDED_DATA),
            "--preset",
            "64",
            "--limit",
            "2",
            "--out",
            str(tmp_path / "r"),
            "--no-progress",
        ]
    )
    assert p.returncode == 2, p.stderr
    assert "missing (would be randomly initialised)" in p.stderr
    assert name.split(".")[-3] in p.stderr  # the layer's key is named


def test_urls_and_utf16_data_get_messages_with_the_fix(tmp_path):
    from coordbench.data.dataset import load_samples
    from coordbench.errors import DataError

    url = tmp_path / "url.jsonl"
    url.write_text('{"images": ["http://x.org/a.jpg"], "width": 64, "height": 64, "objects": []}\n')
    with pytest.raises(DataError, match="is a URL: coordbench reads local files only"):
        load_samples(url)
    u16 = tmp_path / "u16.jsonl"
    u16.write_bytes(url.read_text().encode("utf-16"))
    with pytest.raises(DataError, match="UTF-16-encoded; JSONL must be UTF-8"):
        load_samples(u16)


def test_replay_backend_with_no_trace_is_refused_before_any_run_dir(tmp_path):
    p = run_cli(
        [
            "run",
            "--backend",
            f"replay:{tmp_path / 'none'}",
            "--limit",
            "2",
            "--out",
            str(tmp_path / "runs"),
            "--no-progress",
        ]
    )
    assert p.returncode == 2 and "no replay source there" in p.stderr
    assert not (tmp_path / "runs").exists()


def test_class_names_are_written_visibly():
    from coordbench.metrics.eval_files import per_class_csv
    from coordbench.report.page import esc

    text = per_class_csv([("", 0.5), ("a\x1b[31mred", 0.25)])
    assert text.splitlines()[1:] == ["(empty),0.5", "a\\x1b[31mred,0.25"]
    assert "\x1b" not in esc("a\x1b[31m") and "\\x1b" in esc("a\x1b[31m")


def test_latex_escapes_a_backslash_once():
    from coordbench.compare.format import tex

    assert tex("a\\b_c") == r"a\textbackslash{}b\_c"


def test_compare_and_log_refuse_bad_arguments(finished_run, tmp_path):
    p = run_cli(["compare", str(finished_run), str(finished_run), "--no-log", "--group-by", "sed"])
    assert p.returncode == 2 and "not an identity key" in p.stderr and "seed" in p.stderr
    p = run_cli(["compare", str(finished_run), "--no-log", "--top-changes", "-1"])
    assert p.returncode == 2
    log = tmp_path / "log.jsonl"
    log.write_text('{"kind": 5, "timestamp": 7, "metrics": "x", "gates": "y"}\n[1]\n')
    for fmt in ("md", "csv", "json"):
        p = run_cli(["log", "--path", str(log), "--format", fmt])
        assert p.returncode == 0 and "Traceback" not in p.stderr, p.stderr
    p = run_cli(["log", "--path", str(log), "--last", "-1"])
    assert p.returncode == 2
