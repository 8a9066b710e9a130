"""Issue 27, eval: every eval form agrees with pycocotools or refuses naming the culprit.

The oracle is pycocotools' COCOeval run here on the same data. Where pycocotools misreads a
file (repeated ids, annotations of an unlisted image or category) or crashes on it (no
`iscrowd`, an empty results list), the test asserts what coordbench does instead: a one-line
error naming the entry, or the number COCOeval gives for the equivalent well-formed input.
"""

from __future__ import annotations

import contextlib
import copy
import gzip
import io
import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from coordbench.cli.main import main
from coordbench.config.run import RunConfig
from coordbench.metrics.coco import STAT_NAMES
from coordbench.pipeline.run import run
from coordbench.rundir import files as A
from tests.conftest import OracleBackend


def pycocotools_stats(gt: dict, dets: list) -> list[float]:
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    with contextlib.redirect_stdout(io.StringIO()):
        coco = COCO()
        coco.dataset = copy.deepcopy(gt)
        coco.createIndex()
        ev = COCOeval(coco, coco.loadRes(copy.deepcopy(dets)), "bbox")
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
    return [float(s) for s in ev.stats]


def _gt() -> dict:
    """Two large boxes of one category on two images (no small or medium GT)."""
    images = [{"id": i, "width": 200, "height": 200, "file_name": f"{i}.jpg"} for i in (1, 2)]
    anns = [
        {"id": 1, "image_id": 1, "category_id": 1, "bbox": [10, 10, 100, 100], "area": 1e4},
        {"id": 2, "image_id": 2, "category_id": 1, "bbox": [20, 20, 120, 90], "area": 1.08e4},
    ]
    for a in anns:
        a["iscrowd"] = 0
    return {"images": images, "annotations": anns, "categories": [{"id": 1, "name": "a"}]}


DETS = [
    {"image_id": 1, "category_id": 1, "bbox": [12, 10, 100, 98], "score": 0.9},
    {"image_id": 2, "category_id": 1, "bbox": [60, 60, 50, 50], "score": 0.8},
]


def _invoke(*args: str):
    return CliRunner().invoke(main, ["eval", *args])


def _pair(tmp_path: Path, gt: dict, dets: list | bytes, *extra: str):
    (tmp_path / "gt.json").write_text(json.dumps(gt))
    dt = tmp_path / "dt.json"
    dt.write_bytes(dets if isinstance(dets, bytes) else json.dumps(dets).encode())
    return _invoke("--coco-gt", str(tmp_path / "gt.json"), "--coco-dt", str(dt), *extra)


def _refused(res, *needles: str) -> None:
    assert res.exception is None or isinstance(res.exception, SystemExit), repr(res.exception)
    assert res.exit_code == 2, (res.exit_code, res.output)
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].lower().startswith("error: "), res.stderr
    for n in needles:
        assert n in lines[0], lines[0]


def _stats(out: Path) -> list[float]:
    m = json.loads((out / "metrics.json").read_text())["metrics"]
    return [m[f"bbox_{n}"] for n in STAT_NAMES]


# --- COCO pair: GT that pycocotools misreads or crashes on ------------------------------------


def test_duplicate_annotation_ids_are_refused_not_misscored(tmp_path):
    gt = _gt()
    gt["annotations"][1]["id"] = 1
    # pycocotools keeps the later annotation under id 1 and evaluates it twice on image 2
    assert pycocotools_stats(gt, DETS)[0] != pytest.approx(pycocotools_stats(_gt(), DETS)[0])
    _refused(_pair(tmp_path, gt, DETS), "annotation id 1 appears twice", "annotations 0 and 1")


@pytest.mark.parametrize(
    "edit, needle",
    [
        (lambda g: g["categories"].append({"id": 1, "name": "b"}), "category id 1 appears twice"),
        (lambda g: g["images"].append(dict(g["images"][0])), "image id 1 appears twice"),
        (lambda g: g["annotations"][1].update(category_id=9), "annotation 1 (id 2) has category"),
        (lambda g: g["annotations"][1].update(image_id=9), "annotation 1 (id 2) has image_id 9"),
        (lambda g: g["annotations"][0].update(iscrowd="yes"), "annotation 0 (id 1) has iscrowd"),
        (lambda g: g["annotations"][0].pop("id"), "annotation 0 has no `id`"),
    ],
    ids=["dup_category", "dup_image", "ann_unknown_category", "ann_unknown_image", "iscrowd", "id"],
)
def test_malformed_coco_gt_is_refused_naming_the_entry(tmp_path, edit, needle):
    gt = _gt()
    edit(gt)
    _refused(_pair(tmp_path, gt, DETS), "gt.json", needle)


@pytest.mark.parametrize("scorer", ["faster", "pycocotools"])
def test_gt_without_iscrowd_scores_as_iscrowd_0_with_both_scorers(tmp_path, scorer):
    gt = _gt()
    for a in gt["annotations"]:
        a.pop("iscrowd")
    res = _pair(tmp_path, gt, DETS, "--scorer", scorer, "--out", str(tmp_path / "o"))
    assert res.exit_code == 0, res.output
    assert _stats(tmp_path / "o") == pytest.approx(pycocotools_stats(_gt(), DETS), abs=1e-12)


def test_empty_categories_give_minus_one_as_pycocotools(tmp_path):
    gt = {**_gt(), "annotations": [], "categories": []}
    res = _pair(tmp_path, gt, DETS, "--out", str(tmp_path / "o"))
    assert res.exit_code == 0, res.output
    expected = pycocotools_stats(gt, DETS)
    assert expected == [-1.0] * 12
    assert _stats(tmp_path / "o") == expected
    assert "warning: all 2 of 2 results" in res.output


@pytest.mark.parametrize("scorer", ["faster", "pycocotools"])
def test_only_unknown_category_results_give_pycocotools_numbers_and_a_warning(tmp_path, scorer):
    dets = [{**d, "category_id": 7} for d in DETS]
    res = _pair(tmp_path, _gt(), dets, "--scorer", scorer, "--out", str(tmp_path / "o"))
    assert res.exit_code == 0, res.output
    expected = pycocotools_stats(_gt(), dets)
    assert expected[3] == expected[9] == -1.0  # no small GT: APs / ARs undefined
    assert _stats(tmp_path / "o") == expected
    assert "warning: all 2 of 2 results in dt.json have a category_id" in res.output
    doc = json.loads((tmp_path / "o" / "metrics.json").read_text())
    assert doc["n_results_unknown_category"] == 2 and "category_id" in doc["warnings"][0]


def test_some_unknown_category_results_are_named_and_the_rest_scored(tmp_path):
    dets = [*DETS, {**DETS[0], "category_id": 0}]
    res = _pair(tmp_path, _gt(), dets, "--out", str(tmp_path / "o"))
    assert res.exit_code == 0, res.output
    assert "warning: 1 of 3 results" in res.output
    assert _stats(tmp_path / "o") == pytest.approx(pycocotools_stats(_gt(), dets), abs=1e-12)


def test_empty_results_list_scores_as_results_that_match_nothing(tmp_path):
    res = _pair(tmp_path, _gt(), [], "--out", str(tmp_path / "o"))
    assert res.exit_code == 0, res.output
    # pycocotools cannot load []; results of another category match nothing as well
    nothing = pycocotools_stats(_gt(), [{**DETS[0], "category_id": 7}])
    assert _stats(tmp_path / "o") == nothing
    assert nothing[0] == 0.0 and nothing[3] == -1.0


# --- result files: name what is wrong ---------------------------------------------------------


@pytest.mark.parametrize(
    "data, needle",
    [
        (json.dumps(DETS).replace("0.9", "NaN").encode(), "`NaN` is not a JSON number"),
        (json.dumps(DETS).replace("0.9", "Infinity").encode(), "`Infinity` is not a JSON"),
        (json.dumps(DETS).replace("0.9", "-Infinity").encode(), "`-Infinity` is not a JSON"),
        (gzip.compress(json.dumps(DETS).encode()), "gzip-compressed"),
        ("\n".join(map(json.dumps, DETS)).encode(), "JSON Lines"),
        (json.dumps(DETS[0]).encode(), "JSON Lines"),
        (json.dumps(DETS).encode("utf-16"), "UTF-16"),
    ],
    ids=["nan", "inf", "neg_inf", "gzip", "ndjson", "ndjson_one_line", "utf16"],
)
def test_unreadable_results_name_the_problem(tmp_path, data, needle):
    _refused(_pair(tmp_path, _gt(), data), "dt.json", needle)


def test_gzip_gt_names_the_problem(tmp_path):
    (tmp_path / "gt.json.gz").write_bytes(gzip.compress(json.dumps(_gt()).encode()))
    (tmp_path / "dt.json").write_text(json.dumps(DETS))
    res = _invoke("--coco-gt", str(tmp_path / "gt.json.gz"), "--coco-dt", str(tmp_path / "dt.json"))
    _refused(res, "gt.json.gz is gzip-compressed")


# --- --bootstrap --------------------------------------------------------------------------


@pytest.mark.parametrize("n", ["1", "2", "39"])
def test_bootstrap_below_the_minimum_is_refused(tmp_path, n):
    _refused(_pair(tmp_path, _gt(), DETS, "--bootstrap", n), f"--bootstrap {n}", "at least 40")


def test_bootstrap_at_the_minimum_gives_an_interval_around_ap(tmp_path):
    res = _pair(tmp_path, _gt(), DETS, "--bootstrap", "40", "--out", str(tmp_path / "o"))
    assert res.exit_code == 0, res.output
    b = json.loads((tmp_path / "o" / "metrics.json").read_text())["bootstrap_AP"]
    assert b["n_resamples"] == 40 and b["lo"] <= b["hi"]


# --- run dirs ---------------------------------------------------------------------------------


def _cfg(data: Path, out: Path, name: str, limit: int) -> RunConfig:
    ckpt = out / "fake-ckpt"  # the oracle backend loads nothing; identity hashes these files
    ckpt.mkdir(parents=True, exist_ok=True)
    (ckpt / "config.json").write_text('{"model_type": "qwen2_5_vl"}')
    return RunConfig(
        ckpt=str(ckpt),
        data=str(data),
        preset="64",
        prompt="default_desc_first",
        out=str(out),
        name=name,
        batch_size=4,
        limit=limit,
        progress=False,
    )


@pytest.fixture(scope="module")
def runs(shapes_dir, tmp_path_factory) -> dict[str, Path]:
    """An 8-sample and a 4-sample oracle run (some objects dropped, one answer garbage)."""
    root = tmp_path_factory.mktemp("round3")
    data = shapes_dir / "val.coord.jsonl"
    plan = {1: "drop", 2: "garbage", 5: "drop"}
    out = {}
    for name, limit in (("eight", 8), ("four", 4)):
        run(_cfg(data, root, name, limit), backend=OracleBackend(data, plan))
        out[name] = root / name
    return out


def _copy(src: Path, tmp_path: Path) -> Path:
    import shutil

    dst = tmp_path / "r"
    shutil.copytree(src, dst)
    return dst


def _rows(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def _write(path: Path, rows: list[dict]) -> None:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))


def test_duplicated_rows_in_a_run_dir_are_refused(runs, tmp_path):
    rd = _copy(runs["eight"], tmp_path)
    rows = _rows(rd / A.GT_VS_PRED)
    _write(rd / A.GT_VS_PRED, rows + rows[:4])
    _refused(_invoke(str(rd)), "gt_vs_pred.jsonl:9", "repeats line 1")


def test_foreign_rows_past_the_limit_are_refused(runs, tmp_path):
    rd = _copy(runs["four"], tmp_path)
    rows = _rows(rd / A.GT_VS_PRED) + _rows(runs["eight"] / A.GT_VS_PRED)[4:]
    _write(rd / A.GT_VS_PRED, rows)
    _refused(_invoke(str(rd)), "gt_vs_pred.jsonl:5", "index 4", "this run's 4 samples")


def test_a_run_dir_without_any_width_is_refused(runs, tmp_path):
    rd = _copy(runs["eight"], tmp_path)
    _write(rd / A.GT_VS_PRED, [{**r, "width": None} for r in _rows(rd / A.GT_VS_PRED)])
    _refused(_invoke(str(rd)), "none of its 8 records has a usable width/height")


def _coco_without_image(eval_dir: Path, image_id: int) -> tuple[dict, list]:
    gt = json.loads((eval_dir / "coco_gt.json").read_text())
    dets = json.loads((eval_dir / "coco_preds.json").read_text())
    gt["images"] = [im for im in gt["images"] if im["id"] != image_id]
    gt["annotations"] = [a for a in gt["annotations"] if a["image_id"] != image_id]
    return gt, [d for d in dets if d["image_id"] != image_id]


def test_one_record_without_width_is_dropped_loudly_and_the_rest_equal_pycocotools(runs, tmp_path):
    rd = _copy(runs["eight"], tmp_path)
    rows = _rows(rd / A.GT_VS_PRED)
    rows[3].pop("width")
    _write(rd / A.GT_VS_PRED, rows)
    res = _invoke(str(rd))
    assert res.exit_code == 0, res.output
    note = "dropped 1 of 8 records of"
    assert f"warning: {note}" in res.output and "image_id 3 (record 3)" in res.output
    doc = json.loads((rd / "eval" / "metrics.json").read_text())
    assert note in doc["warnings"][0] and doc["counters"]["missing_size"] == 1
    assert note in json.loads((rd / A.SUMMARY).read_text())["warnings"][0]
    gt, dets = _coco_without_image(runs["eight"] / "eval", 3)
    assert _stats(rd / "eval")[:9] == pytest.approx(pycocotools_stats(gt, dets)[:9], abs=1e-12)


def test_scored_file_record_without_width_is_dropped_loudly(runs, tmp_path):
    rows = _rows(runs["eight"] / A.SCORED)
    rows[0]["width"] = 0
    _write(tmp_path / "s.jsonl", rows)
    res = _invoke(str(tmp_path / "s.jsonl"), "--out", str(tmp_path / "o"))
    assert res.exit_code == 0, res.output
    assert "warning: dropped 1 of 8 records" in res.output
    assert (
        "dropped 1 of 8" in json.loads((tmp_path / "o" / "metrics.json").read_text())["warnings"][0]
    )
    _write(tmp_path / "s.jsonl", [{**r, "height": -1} for r in rows])
    _refused(_invoke(str(tmp_path / "s.jsonl")), "none of its 8 records")


# --- eval --out -------------------------------------------------------------------------------


def _form_args(form: str, runs: dict[str, Path], tmp_path: Path) -> list[str]:
    if form == "run_dir":
        return [str(_copy(runs["four"], tmp_path))]
    if form == "scored_file":
        return [str(runs["four"] / A.SCORED)]
    (tmp_path / "gt.json").write_text(json.dumps(_gt()))
    (tmp_path / "dt.json").write_text(json.dumps(DETS))
    return ["--coco-gt", str(tmp_path / "gt.json"), "--coco-dt", str(tmp_path / "dt.json")]


@pytest.mark.parametrize("form", ["run_dir", "scored_file", "coco_pair"])
@pytest.mark.parametrize("dest", ["file", "dev_null", "under_a_file"])
def test_eval_out_that_is_not_a_folder_is_refused(runs, tmp_path, form, dest):
    args = _form_args(form, runs, tmp_path)
    (tmp_path / "f.txt").write_text("keep me")
    out = {"file": "f.txt", "dev_null": "/dev/null", "under_a_file": "f.txt/sub"}[dest]
    _refused(_invoke(*args, "--out", str(tmp_path / out)), "--out", "is not a folder")
    assert (tmp_path / "f.txt").read_text() == "keep me"


def test_eval_out_never_writes_over_an_input(tmp_path):
    (tmp_path / "gt.json").write_text(json.dumps(_gt()))
    (tmp_path / "metrics.json").write_text(json.dumps(DETS))  # the results, named metrics.json
    before = (tmp_path / "metrics.json").read_bytes()
    res = _invoke(
        "--coco-gt",
        str(tmp_path / "gt.json"),
        "--coco-dt",
        str(tmp_path / "metrics.json"),
        "--out",
        str(tmp_path),
    )
    _refused(res, "an input of this command")
    assert (tmp_path / "metrics.json").read_bytes() == before


def test_eval_out_into_another_run_dir_is_refused(runs, tmp_path):
    other = _copy(runs["eight"], tmp_path)
    before = (other / A.SUMMARY).read_bytes()
    _refused(_invoke(str(runs["four"]), "--out", str(other)), "another run dir")
    assert (other / A.SUMMARY).read_bytes() == before


def test_bootstrap_is_refused_where_it_is_not_computed(runs):
    res = _invoke(str(runs["four"]), "--bootstrap", "100")
    assert res.exit_code == 2 and "--coco-gt/--coco-dt only" in res.output
