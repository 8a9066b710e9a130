"""RefCOCO grounding: the Acc@0.5 rule on hand-computed cases, the data builders (MDETR JSON and
refer's pickle, a malicious pickle refused) and `coordbench run --task refcoco` end to end."""

from __future__ import annotations

import json
import os
import pickle

import numpy as np
import pytest

from coordbench.data.refcoco import convert_refcoco, load_refs_pickle
from coordbench.errors import DataError
from coordbench.metrics.grounding import box_iou, evaluate_grounding, top1
from tests.fixtures_refcoco import make_refcoco


def _rec(gt, preds, split="val", **kw):
    return {
        "sample_id": kw.pop("sid", "0"),
        "image": "a.jpg",
        "width": 100,
        "height": 100,
        "gt": [{"type": "bbox_2d", "points": gt, "desc": "q"}],
        "pred": [
            {"type": "bbox_2d", "points": b, "desc": "q", **({} if s is None else {"score": s})}
            for b, s in preds
        ],
        "split": split,
        **kw,
    }


def test_iou_equals_pycocotools():
    from pycocotools import mask

    rng = np.random.default_rng(0)
    for _ in range(200):
        a = np.sort(rng.uniform(0, 100, 4).reshape(2, 2), axis=0).T.ravel()[[0, 2, 1, 3]]
        b = np.sort(rng.uniform(0, 100, 4).reshape(2, 2), axis=0).T.ravel()[[0, 2, 1, 3]]
        xywh = lambda v: [v[0], v[1], v[2] - v[0], v[3] - v[1]]  # noqa: E731
        ref = mask.iou([xywh(a)], [xywh(b)], [0])[0][0]
        assert box_iou(list(a), list(b)) == pytest.approx(ref, abs=1e-12)


def test_hand_computed_accuracy():
    gt = [10, 10, 50, 50]  # area 1600
    recs = [
        # 1: exact hit
        _rec(gt, [([10, 10, 50, 50], 0.9)], sid="1"),
        # 2: tie on score: the first in answer order counts (a miss), not the better second
        _rec(gt, [([60, 60, 90, 90], 0.5), ([10, 10, 50, 50], 0.5)], sid="2"),
        # 3: no box at all: a miss with IoU 0
        _rec(gt, [], sid="3"),
        # 4: several boxes, the higher score wins: IoU([10,10,50,42]) = 1280/1600 = 0.8
        _rec(gt, [([0, 0, 5, 5], 0.1), ([10, 10, 50, 42], 0.7)], sid="4"),
        # 5: unscored boxes: the first; IoU([10,10,50,30],gt) = 800/1600 = 0.5 -> hit@0.5 only
        _rec(gt, [([10, 10, 50, 30], None), ([10, 10, 50, 50], None)], sid="5", split="testA"),
        # 6: a box beyond the image (as the parser leaves it after clamping): IoU 1600/2000
        _rec(gt, [([10, 10, 60, 50], 0.3)], sid="6", split="testA"),
    ]
    res = evaluate_grounding(recs)
    ious = [r["iou"] for r in res.per_sample]
    assert ious == pytest.approx([1.0, 0.0, 0.0, 0.8, 0.5, 0.8])
    assert [r["hit@0.5"] for r in res.per_sample] == [1, 0, 0, 1, 1, 1]
    assert [r["hit@0.75"] for r in res.per_sample] == [1, 0, 0, 1, 0, 1]
    assert res.metrics["grounding_Acc@0.5"] == pytest.approx(4 / 6)
    assert res.metrics["grounding_Acc@0.75"] == pytest.approx(3 / 6)
    assert res.metrics["grounding_mIoU"] == pytest.approx(3.1 / 6)
    assert res.metrics["grounding_no_box"] == 1
    assert res.per_split["val"]["grounding_Acc@0.5"] == pytest.approx(2 / 4)
    assert res.per_split["testA"]["grounding_Acc@0.5"] == 1.0


def test_original_pixels_are_scored_when_the_record_has_them():
    # preset image 100x100 of a 200x100 original: a preset box [10,10,50,50] is [20,10,100,50]
    rec = _rec([10, 10, 50, 50], [([10, 10, 50, 50], 0.9)])
    rec.update(orig_width=200, orig_height=100, gt_orig_bbox=[20, 10, 100, 40])
    row = evaluate_grounding([rec]).per_sample[0]
    assert row["pred_box"] == [20, 10, 100, 50]
    assert row["iou"] == pytest.approx((80 * 30) / (80 * 40))


def test_top1_rule():
    assert top1([]) is None
    a, b = {"score": 0.2}, {"score": 0.2}
    assert top1([a, b]) is a
    assert top1([{"score": None}, b]) is b


def test_malicious_pickle_is_refused_with_the_class_named(tmp_path):
    class Boom:
        def __reduce__(self):
            return (os.system, ("echo pwned > " + str(tmp_path / "pwned"),))

    bad = tmp_path / "refs(unc).p"
    bad.write_bytes(pickle.dumps([{"ref_id": 1, "x": Boom()}]))
    with pytest.raises(DataError, match=r"refusing to unpickle (posix|os)\.system"):
        load_refs_pickle(bad)
    assert not (tmp_path / "pwned").exists()
    ok = tmp_path / "ok.p"
    ok.write_bytes(pickle.dumps([{"ref_id": 1, "sentences": [{"sent": "a", "sent_id": 2}]}]))
    assert load_refs_pickle(ok)[0]["ref_id"] == 1


@pytest.fixture(scope="module")
def refcoco(tmp_path_factory):
    root = tmp_path_factory.mktemp("refcoco")
    truth = make_refcoco(root)
    out = root / "preset"
    convert_refcoco(
        root / "coco",
        out_dir=out,
        annotations=root / "final_refcoco_val.json",
        budget=64,
        progress=False,
    )
    return root, out, truth


def test_mdetr_and_refer_layouts_give_the_same_expressions(refcoco, tmp_path):
    root, out, truth = refcoco
    rows = [json.loads(x) for x in (out / "val.jsonl").read_text().splitlines()]
    assert [r["image_id"] for r in rows] == sorted(truth)  # sample id = expression id
    for r in rows:
        q, box = truth[r["image_id"]]
        assert r["query"] == q and r["gt_orig_bbox"] == box and r["objects"][0]["desc"] == q
        assert (out / r["images"][0]).is_file()
    assert len({r["images"][0] for r in rows}) < len(rows)  # images repeat across expressions
    out2 = tmp_path / "refer"
    convert_refcoco(
        root / "coco",
        out_dir=out2,
        refs=root / "refs(unc).p",
        instances=root / "instances.json",
        split="testA",
        budget=64,
        progress=False,
    )
    rows2 = [json.loads(x) for x in (out2 / "testA.jsonl").read_text().splitlines()]
    assert rows2 and all(r["split"] == "testA" for r in rows2)
    assert {r["query"] for r in rows2} <= {q for q, _ in truth.values()}
    with pytest.raises(DataError, match="splits val, testA, testB"):
        convert_refcoco(
            root / "coco",
            out_dir=tmp_path / "x",
            refs=root / "refs(unc).p",
            instances=root / "instances.json",
            split="test",
            budget=64,
        )


def _trace(sid: str, text: str) -> dict:
    return {
        "sample_id": sid,
        "generated_token_text": [text],
        "token_logprobs": [-0.1],
        "token_logprobs_raw": [-0.1],
        "token_ids": [1],
        "finish_reason": "stop",
        "text": text,
        "n_prompt_tokens": 5,
    }


def test_run_task_refcoco_with_replayed_answers_end_to_end(refcoco, tmp_path):
    from tests.test_reliability_support import run_cli

    root, out, truth = refcoco
    ids = sorted(truth)
    answers, hits = [], 0
    for k, eid in enumerate(ids):
        x0, y0, x1, y1 = (int(v) for v in truth[eid][1])
        if k % 3 == 0:  # the right box: a hit
            box, hit = [x0, y0, x1, y1], 1
        elif k % 3 == 1:  # a box shifted right by its own width: IoU 0, a miss
            box, hit = [x1, y0, min(255, x1 + (x1 - x0)), y1], 0
        else:  # no box: a miss
            box, hit = None, 0
        hits += hit
        text = "[]" if box is None else json.dumps([{"bbox_2d": box, "label": truth[eid][0]}])
        answers.append(_trace(str(eid), "```json\n" + text + "\n```"))
    replay = tmp_path / "replay"
    replay.mkdir()
    (replay / "pred_token_trace.jsonl").write_text("".join(json.dumps(a) + "\n" for a in answers))
    args = [
        "run",
        "--task",
        "refcoco",
        "--data",
        str(out / "val.jsonl"),
        "--preset",
        "64",
        "--prompt",
        "qwen25_ground",
        "--backend",
        f"replay:{replay}",
        "--out",
        str(tmp_path / "runs"),
        "--name",
        "g",
        "--no-progress",
    ]
    p = run_cli(args)
    assert p.returncode == 0, p.stderr
    rd = tmp_path / "runs" / "g"
    m = json.loads((rd / "eval" / "metrics.json").read_text())["metrics"]
    assert m["grounding_Acc@0.5"] == pytest.approx(hits / len(ids))
    assert m["grounding_no_box"] == sum(1 for k in range(len(ids)) if k % 3 == 2)
    assert "Acc@0.5" in p.stdout
    summary = json.loads((rd / "summary.json").read_text())
    assert summary["metrics"]["grounding_Acc@0.5"] == m["grounding_Acc@0.5"]
    head = json.loads((rd / "run.json").read_text())
    assert head["identity"]["task"] == "refcoco"
    recs = [json.loads(x) for x in (rd / "gt_vs_pred.jsonl").read_text().splitlines()]
    assert all(r["query"] == truth[int(r["sample_id"])][0] for r in recs)
    html = (rd / "report.html").read_text()
    assert "misses first" in html and "Per split" in html
    again = run_cli(args)  # finished: nothing to do
    assert again.returncode == 0 and "already complete" in again.stdout
    # compare a second, better run: Acc delta with a paired-bootstrap CI
    perfect = [
        _trace(
            str(e),
            "```json\n"
            + json.dumps([{"bbox_2d": [int(v) for v in truth[e][1]], "label": "x"}])
            + "\n```",
        )
        for e in ids
    ]
    (replay / "pred_token_trace.jsonl").write_text("".join(json.dumps(a) + "\n" for a in perfect))
    p2 = run_cli([*args[:-2], "g2", "--no-progress"])
    assert p2.returncode == 0, p2.stderr
    cmp = run_cli(
        ["compare", str(rd), str(tmp_path / "runs" / "g2"), "--no-log", "--format", "json"]
    )
    assert cmp.returncode == 0, cmp.stderr
    doc = json.loads(cmp.stdout)
    rows = [d for p_ in doc["pairs"] for d in p_["deltas"] if d["metric"] == "Acc@0.5"]
    assert rows and rows[0]["delta"] == pytest.approx(1 - hits / len(ids))
    assert rows[0]["ci_low"] is not None


def test_embedded_model_on_grounding_prompts_is_a_parse_outcome(refcoco, tmp_path):
    from tests.test_reliability_support import run_cli

    root, out, truth = refcoco
    p = run_cli(
        [
            "run",
            "--task",
            "refcoco",
            "--data",
            str(out / "val.jsonl"),
            "--preset",
            "64",
            "--prompt",
            "coordexp_ground",
            "--limit",
            "4",
            "--max-new-tokens",
            "64",
            "--out",
            str(tmp_path / "runs"),
            "--name",
            "e",
            "--no-progress",
        ]
    )
    assert p.returncode == 0, p.stderr
    m = json.loads((tmp_path / "runs" / "e" / "eval" / "metrics.json").read_text())["metrics"]
    assert m["grounding_n"] == 4 and 0.0 <= m["grounding_Acc@0.5"] <= 1.0


def test_eval_pair_scores_any_models_results_against_mdetr_gt(refcoco, tmp_path):
    from tests.test_reliability_support import run_cli

    root, out, truth = refcoco
    gt = root / "final_refcoco_val.json"
    results, hits = [], 0
    for k, (eid, (_, (x0, y0, x1, y1))) in enumerate(sorted(truth.items())):
        w, h = x1 - x0, y1 - y0
        if k % 2 == 0:  # a high-scored exact box after a low-scored wrong one: top-1 = exact
            results.append({"image_id": eid, "bbox": [0, 0, 5, 5], "score": 0.1})
            results.append({"image_id": eid, "bbox": [x0, y0, w, h], "score": 0.9})
            hits += 1
        else:  # a box half as tall: IoU 0.5 exactly -> a hit at 0.5, a miss at 0.75
            results.append({"image_id": eid, "bbox": [x0, y0, w, h / 2], "score": 0.5})
    dt = tmp_path / "results.json"
    dt.write_text(json.dumps(results))
    p = run_cli(
        [
            "eval",
            "--task",
            "refcoco",
            "--coco-gt",
            str(gt),
            "--coco-dt",
            str(dt),
            "--out",
            str(tmp_path / "ev"),
        ]
    )
    assert p.returncode == 0, p.stderr
    m = json.loads((tmp_path / "ev" / "metrics.json").read_text())["metrics"]
    assert m["grounding_Acc@0.5"] == 1.0
    assert m["grounding_Acc@0.75"] == pytest.approx(hits / len(truth))
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps([{"image_id": 99999, "bbox": [0, 0, 1, 1], "score": 1}]))
    p = run_cli(["eval", "--task", "refcoco", "--coco-gt", str(gt), "--coco-dt", str(bad)])
    assert p.returncode == 2 and "image_id 99999" in p.stderr
