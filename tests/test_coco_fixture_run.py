"""The COCO path end to end with the embedded model: `coordbench data coco --preset 768` on the
val2017-shaped fixture, then `coordbench run` on the converted JSONL with the default (embedded)
checkpoint, then `coordbench export coco-results`.

The shapes model knows nothing of COCO; what is asserted is the plumbing a user relies on: 768
preset images reach the model unresized, records keep the converted sizes and ids, every artifact
is written, and the official-id export runs against the fixture's instances file.
"""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner
from fixtures_coco import make_coco

from coordbench.cli.main import main
from coordbench.rundir import files as A
from tests.test_runner_e2e import RUN_FILES

LIMIT = 3


@pytest.fixture(scope="module")
def converted(tmp_path_factory):
    root = tmp_path_factory.mktemp("coco768")
    fx = make_coco(root / "coco")
    out = root / "rescale_32_768"
    args = [
        "data",
        "coco",
        "--coco-root",
        str(fx.root),
        "--preset",
        "768",
        "--out",
        str(out),
        "--workers",
        "1",
        "--no-progress",
    ]
    res = CliRunner().invoke(main, args)
    assert res.exit_code == 0, res.output
    return fx, out


def test_embedded_model_runs_on_converted_768_coco(converted, tmp_path):
    fx, data = converted
    args = [
        "run",
        "--data",
        str(data / "val.jsonl"),
        "--preset",
        "768",
        "--limit",
        str(LIMIT),
        "--max-new-tokens",
        "24",
        "--batch-size",
        "2",
        "--out",
        str(tmp_path),
        "--name",
        "c",
        "--no-progress",
    ]
    res = CliRunner().invoke(main, args)
    assert res.exit_code == 0, res.output
    rd = tmp_path / "c"
    for f in RUN_FILES:
        assert (rd / f).exists(), f
    src = [json.loads(x) for x in (data / "val.jsonl").read_text().splitlines()][:LIMIT]
    recs, _ = A.read_jsonl(rd / A.GT_VS_PRED)
    assert [(r["image_id"], r["width"], r["height"]) for r in recs] == [
        (s["image_id"], s["width"], s["height"]) for s in src
    ]
    for r in recs:  # 768 preset: multiples of 32 under 32*32*768 pixels, unchanged by the model
        assert (
            r["width"] % 32 == 0
            and r["height"] % 32 == 0
            and r["width"] * r["height"] <= 32 * 32 * 768
        )
    traces, _ = A.read_jsonl(rd / A.TRACE)
    assert all(1 <= len(t["token_ids"]) <= 24 for t in traces)
    summary = A.read_json(rd / A.SUMMARY)
    assert summary["total_read"] == LIMIT and summary["infer"]["preset"] == "768"
    n_gt = sum(len(s["objects"]) for s in src)
    assert summary["calibration"] is not None and n_gt > 0

    out = tmp_path / "results.json"
    ann = str(fx.annotation_path)
    res = CliRunner().invoke(
        main, ["export", "coco-results", str(rd), "--annotations", ann, "--out", str(out)]
    )
    assert res.exit_code == 0, res.output
    dets = json.loads(out.read_text())
    cat_ids = {c["id"] for c in json.loads(fx.annotation_path.read_text())["categories"]}
    assert isinstance(dets, list)
    assert all(
        d["image_id"] in {s["image_id"] for s in src} and d["category_id"] in cat_ids for d in dets
    )
