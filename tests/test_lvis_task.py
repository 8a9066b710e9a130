"""`coordbench data lvis` and `coordbench run --task lvis` end to end on a tiny LVIS-format set
built from the shapes generator; the run's numbers equal lvis-api on the run's own eval files."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from coordbench.config.run import RunConfig
from coordbench.data.lvis import convert_lvis
from coordbench.data.shapes import CLASSES, make_image
from coordbench.errors import DataError
from coordbench.pipeline.run import run
from tests.conftest import OracleBackend
from tests.lvis_oracle import lvis_api_stats

NAMES = list(CLASSES) + ["hexagon", "star"]  # two categories no image holds
FREQ = ["f", "c", "r", "f", "c", "r", "r"]


def make_lvis_root(root: Path, n: int = 10) -> Path:
    (root / "val2017").mkdir(parents=True, exist_ok=True)
    images, anns = [], []
    for i in range(n):
        img, objects = make_image(500 + i)
        name = f"{i + 1:012d}.jpg"
        img.save(root / "val2017" / name, quality=90)
        present = sorted({NAMES.index(o.desc) + 1 for o in objects})
        absent = [k for k in range(1, len(NAMES) + 1) if k not in present]
        images.append(
            {
                "id": i + 1,
                "width": 256,
                "height": 256,
                "coco_url": f"http://images.cocodataset.org/val2017/{name}",
                "neg_category_ids": absent[: 2 + i % 3],
                "not_exhaustive_category_ids": present[:1] if i % 4 == 0 else [],
            }
        )
        for o in objects:
            x0, y0, x1, y1 = o.bbox_px
            anns.append(
                {
                    "id": len(anns) + 1,
                    "image_id": i + 1,
                    "category_id": NAMES.index(o.desc) + 1,
                    "bbox": [x0, y0, x1 - x0, y1 - y0],
                    "area": (x1 - x0) * (y1 - y0),
                }
            )
    cats = [
        {"id": k + 1, "name": n_, "synonyms": [n_, f"{n_}_shape"], "frequency": FREQ[k]}
        for k, n_ in enumerate(NAMES)
    ]
    (root / "lvis_v1_val.json").write_text(
        json.dumps({"images": images, "annotations": anns, "categories": cats})
    )
    return root


@pytest.fixture(scope="module")
def lvis_preset(tmp_path_factory):
    root = make_lvis_root(tmp_path_factory.mktemp("lvis"))
    out = root.parent / "preset"
    convert_lvis(root, out_dir=out, budget=64, progress=False)
    return root, out


def test_data_lvis_keeps_the_federated_lists_and_the_categories(lvis_preset):
    root, out = lvis_preset
    src = json.loads((root / "lvis_v1_val.json").read_text())
    rows = [json.loads(x) for x in (out / "val.jsonl").read_text().splitlines()]
    assert [r["image_id"] for r in rows] == [im["id"] for im in src["images"]]
    for r, im in zip(rows, src["images"], strict=True):
        assert r["neg_category_ids"] == im["neg_category_ids"]
        assert r["not_exhaustive_category_ids"] == im["not_exhaustive_category_ids"]
        assert r["metadata"]["dataset_policy"] == "lvis_federated"
    cats = json.loads((out / "categories.json").read_text())
    assert [c["frequency"] for c in cats] == FREQ and cats[0]["synonyms"]


def test_a_coco_file_is_refused_by_data_lvis(tmp_path):
    (tmp_path / "lvis_v1_val.json").write_text(
        json.dumps(
            {"images": [{"id": 1, "width": 2, "height": 2}], "annotations": [], "categories": []}
        )
    )
    with pytest.raises(DataError, match="COCO instances file"):
        convert_lvis(tmp_path, out_dir=tmp_path / "o", progress=False)


@pytest.mark.parametrize(
    "edit,match",
    [
        (lambda im: im.pop("not_exhaustive_category_ids"), "image 3 has no `not_exhaustive_"),
        (lambda im: im.update(neg_category_ids=None), "image 3 has no `neg_category_ids` list"),
        (lambda im: im.update(neg_category_ids=[1, 99]), "image 3: neg_category_ids names unk"),
    ],
)
def test_data_lvis_names_an_image_with_bad_federated_lists(tmp_path, edit, match):
    root = make_lvis_root(tmp_path / "root", n=4)
    doc = json.loads((root / "lvis_v1_val.json").read_text())
    edit(doc["images"][2])  # not the first image, which loading checks
    (root / "lvis_v1_val.json").write_text(json.dumps(doc))
    with pytest.raises(DataError, match=match):
        convert_lvis(root, out_dir=tmp_path / "o", budget=64, progress=False)
    assert not (tmp_path / "o" / "val.jsonl").exists()


def _cfg(out, tmp_path, **kw):
    ckpt = tmp_path / "fake-ckpt"
    ckpt.mkdir(exist_ok=True)
    (ckpt / "config.json").write_text('{"model_type": "qwen2_5_vl"}')
    return RunConfig(
        ckpt=str(ckpt),
        data=str(out / "val.coord.jsonl"),
        preset="64",
        task="lvis",
        out=str(tmp_path / "runs"),
        batch_size=4,
        progress=False,
        **kw,
    )


def test_run_task_lvis_equals_lvis_api_on_its_own_eval_files(lvis_preset, tmp_path):
    root, out = lvis_preset
    backend = OracleBackend(out / "val.coord.jsonl", {1: "drop", 3: "garbage", 6: "drop"})
    summary = run(_cfg(out, tmp_path, name="l"), backend=backend)
    rd = tmp_path / "runs" / "l"
    gt = json.loads((rd / "eval" / "coco_gt.json").read_text())
    preds = json.loads((rd / "eval" / "coco_preds.json").read_text())
    ref = lvis_api_stats(gt, preds)
    m = json.loads((rd / "eval" / "metrics.json").read_text())["metrics"]
    for k, v in ref.items():
        assert m[f"lvis_{k}"] == pytest.approx(v, abs=1e-12), k
    assert 0 < m["lvis_AP"] < 1  # dropped boxes cost recall
    assert summary["metrics"]["lvis_AP"] == m["lvis_AP"]
    head = json.loads((rd / "run.json").read_text())
    assert head["identity"]["task"] == "lvis"
    assert head["config"]["prompt"] == "lvis_stage1_federated"
    recs = [json.loads(x) for x in (rd / "gt_vs_pred.jsonl").read_text().splitlines()]
    assert all("neg_category_ids" in r for r in recs)
    assert (rd / "eval" / "per_class.csv").read_text().splitlines()[0] == "category,AP,frequency"


def test_synonyms_map_labels_before_the_encoder(lvis_preset, tmp_path):
    from coordbench.config.options import EvalOptions
    from coordbench.metrics.lvis_records import evaluate_lvis_records

    root, out = lvis_preset
    cats = json.loads((out / "categories.json").read_text())
    rec = json.loads((out / "val.jsonl").read_text().splitlines()[0])
    gt = [{"type": "bbox_2d", "points": o["bbox_2d"], "desc": o["desc"]} for o in rec["objects"]]
    pred = [{**g, "desc": g["desc"].upper() + "_SHAPE", "score": 0.9} for g in gt]
    r = {
        "image": rec["images"][0],
        "width": rec["width"],
        "height": rec["height"],
        "gt": gt,
        "pred": pred,
        "neg_category_ids": rec["neg_category_ids"],
        "not_exhaustive_category_ids": rec["not_exhaustive_category_ids"],
        "pred_score_source": "x",
        "pred_score_version": 1,
    }
    res = evaluate_lvis_records([r], EvalOptions(), cats)
    assert res.counters["lvis_synonym_mapped"] == len(pred)
    assert res.metrics["lvis_AP"] == pytest.approx(1.0)


def test_cli_run_task_lvis_with_the_embedded_model(lvis_preset, tmp_path):
    from tests.test_reliability_support import run_cli

    root, out = lvis_preset
    p = run_cli(
        [
            "run",
            "--task",
            "lvis",
            "--data",
            str(out / "val.coord.jsonl"),
            "--preset",
            "64",
            "--limit",
            "4",
            "--max-new-tokens",
            "64",
            "--out",
            str(tmp_path / "r"),
            "--name",
            "e",
            "--no-progress",
        ]
    )
    assert p.returncode == 0, p.stderr
    assert "lvis_AP" in p.stdout
