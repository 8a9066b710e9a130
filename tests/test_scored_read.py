"""The block reader of `eval FILE` (metrics/scored_read.py) against `rundir.jsonl.read_records`.

The oracle is the reader it replaces: the same records (answers kept as columns compare equal to
the file's lists), the same skipped count and messages, and, through the whole scorer, the same
bytes in every eval file, for a file that mixes clean answers with every kind of answer the
columns must not take.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from coordbench.errors import DataError
from coordbench.metrics import scored_read
from coordbench.metrics.coco_match import CocoResults
from coordbench.metrics.eval_files import drop_matches, write_eval_dir
from coordbench.metrics.ingest import ColumnPreds
from coordbench.metrics.scoring import evaluate_records
from coordbench.rundir.jsonl import read_records


def _box(x: int, y: int, desc: str = "cat", **extra) -> dict:
    return {"type": "bbox_2d", "points": [x, y, x + 20, y + 30], "desc": desc, **extra}


def _rec(i: int, pred, **extra) -> dict:
    base = {
        "image": f"im{i}.jpg",
        "width": 100,
        "height": 80,
        "gt": [_box(5, 5), _box(40, 30, "dog")],
        "pred": pred,
        "pred_score_source": "test",
        "pred_score_version": 1,
    }
    return {**base, **extra}


ANSWERS = [
    [_box(5, 6, score=0.9), _box(41, 30, "dog", score=0.7)],  # clean
    [_box(6, 5, score=0.5), {**_box(1, 1, score=0.4), "extra": 1}],  # an extra key
    [{**_box(5, 5, score=0.5), "points": [5, 5, True, 40]}],  # a bool point
    [{**_box(5, 5, score=0.5), "points": [5.0, 5, 30, 40]}],  # a float point
    [{**_box(5, 5, score=0.5), "points": [5, 5, 5, 40]}],  # degenerate
    [{**_box(5, 5, score=0.5), "points": [5, 5, 500, 400]}],  # clamped, still a box
    [{**_box(95, 5, score=0.5), "points": [120, 5, 130, 40]}],  # degenerate after clamping
    [_box(5, 5, " cat ", score=0.5)],  # a desc with blanks (stripped by ingest)
    [{**_box(5, 5, score=0.5), "desc": 7}],  # a non-string desc
    [_box(5, 5), _box(40, 30, "dog", score=0.3)],  # one without a score
    [_box(5, 5, score=None)],  # a null score: refused by COCO, so only in the reader test
    [_box(5, 5, "chat\u00e9", score=0.5)],  # an escape in the line
    [{**_box(5, 5, score=0.5), "points": [5, 5, 2**70, 40]}],  # beyond int64
    [],  # empty
    [{"type": "poly", "points": [1, 1, 30, 1, 30, 30], "desc": "cat", "score": 0.6}],
    ["not an object"],
    [{"bbox_2d": [5, 5, 30, 40], "desc": "cat", "score": 0.5}],  # upstream's short form
]


def _records(with_null: bool = True) -> list[dict]:
    """Every answer kind of ANSWERS and record kind below; without the two answers COCO
    refuses (a missing and a null score) when `with_null` is False."""
    recs = [_rec(i, a) for i, a in enumerate(ANSWERS) if with_null or i not in (9, 10)]
    n = len(recs)
    recs += [
        _rec(n, ANSWERS[0], coord_mode="norm1000"),
        _rec(n + 1, ANSWERS[0], width=True),
        _rec(n + 2, ANSWERS[0], width="100"),
        {k: v for k, v in _rec(n + 3, ANSWERS[0]).items() if k != "pred"},
        _rec(n + 4, None, predictions=ANSWERS[0]),
        _rec(n + 5, ANSWERS[0], parse_status="ok", finish_reason="stop"),
    ]
    return recs


def _write(path: Path, recs: list[dict], tail: str = "") -> Path:
    lines = [json.dumps(r, ensure_ascii=i % 2 == 1) for i, r in enumerate(recs)]
    path.write_text("\n".join(lines[:3]) + "\n\n" + "\n".join(lines[3:]) + "\n" + tail)
    return path


@pytest.mark.parametrize("block", [64, 1 << 22])
def test_same_records_as_read_records(tmp_path: Path, monkeypatch, block: int) -> None:
    monkeypatch.setattr(scored_read, "BLOCK", block)  # lines cut across many blocks, or none
    path = _write(tmp_path / "s.jsonl", _records(), tail='{"torn": 1')
    want, want_skipped = read_records(path)
    got, skipped = scored_read.read_scored(path)
    assert skipped == want_skipped == 1
    assert got == want
    kinds = [type(r.get("pred")).__name__ for r in got]
    # clean (msgspec, or orjson for the line with an escape): columns; the rest: the file's list
    assert [i for i, k in enumerate(kinds) if k == "ColumnPreds"] == [0, 5, 9, 10, 11, 22]
    for i in (1, 2, 3, 4, 6, 7, 8, 12, 13, 14, 15, 16, 17, 18, 19, 20, 21):
        assert isinstance(got[i].get("pred"), list | type(None)), i  # left to the general path
    assert list(got[0]["pred"]) == want[0]["pred"]


def test_same_messages_and_tolerance(tmp_path: Path) -> None:
    path = tmp_path / "bad.jsonl"
    path.write_text(json.dumps(_rec(0, ANSWERS[0])) + "\n[1, 2]\n{nope\n")
    for tolerant in (False, True):
        try:
            want = read_records(path, tolerant=tolerant)
        except DataError as e:
            with pytest.raises(DataError) as got:
                scored_read.read_scored(path, tolerant=tolerant)
            assert str(got.value) == str(e)
        else:
            assert scored_read.read_scored(path, tolerant=tolerant) == want
    (tmp_path / "gz.jsonl").write_bytes(b"\x1f\x8b\x08rest")
    with pytest.raises(DataError, match="gzip"):
        scored_read.read_scored(tmp_path / "gz.jsonl")


def test_eval_files_byte_identical(tmp_path: Path) -> None:
    path = _write(tmp_path / "s.jsonl", _records(with_null=False))
    a, b = tmp_path / "a", tmp_path / "b"
    write_eval_dir(evaluate_records(read_records(path)[0]), a)
    result = evaluate_records(scored_read.read_scored(path)[0])
    assert isinstance(result.coco_preds, CocoResults)
    write_eval_dir(result, b)
    names = sorted(p.name for p in a.iterdir())
    assert names == sorted(p.name for p in b.iterdir()) and "matches.jsonl" in names
    for name in names:
        assert (a / name).read_bytes() == (b / name).read_bytes(), name
    assert drop_matches(b) and not list(b.glob("matches*.jsonl"))


def test_column_preds_behave_as_the_list() -> None:
    import numpy as np

    cols = ColumnPreds(
        np.array([[1, 2, 3, 4], [5, 6, 7, 8]]), ["a", "b"], [0.5, None], [True, False]
    )
    want = [
        {"type": "bbox_2d", "points": [1, 2, 3, 4], "desc": "a", "score": 0.5},
        {"type": "bbox_2d", "points": [5, 6, 7, 8], "desc": "b"},
    ]
    assert cols == want and list(cols) == want and cols[-1] == want[-1] and cols[:1] == want[:1]
    assert len(cols) == 2 and cols.raw_scores() == [0.5, None]


def test_coco_results_json_is_orjson_of_the_list() -> None:
    import numpy as np
    import orjson

    from coordbench.metrics.coco_match import CocoDets

    n = 7
    dets = CocoDets(
        np.arange(n), np.arange(n) % 3 + 1, np.arange(4 * n).reshape(n, 4), np.linspace(0, 1, n)
    )
    res = CocoResults(dets)
    res.CHUNK = 3  # several chunks
    assert b"".join(res.json_chunks()) == orjson.dumps(dets.dicts())
    assert list(res) == dets.dicts() and res == dets.dicts() and res[2] == dets.dicts()[2]
    assert b"".join(CocoResults(dets.rows(0, 0)).json_chunks()) == b"[]"


def test_eval_no_matches_cli(tmp_path: Path) -> None:
    from click.testing import CliRunner

    from coordbench.cli.eval import eval_cmd

    path = _write(tmp_path / "s.jsonl", _records(with_null=False))
    out = tmp_path / "e"
    assert CliRunner().invoke(eval_cmd, [str(path), "--out", str(out)]).exit_code == 0
    full = {p.name: p.read_bytes() for p in out.iterdir()}
    assert "matches.jsonl" in full and "matches@0.30.jsonl" in full
    run = CliRunner().invoke(eval_cmd, [str(path), "--out", str(out), "--no-matches"])
    assert run.exit_code == 0, run.output
    left = {p.name: p.read_bytes() for p in out.iterdir()}
    assert not [n for n in left if n.startswith("matches")]  # stale ones removed too
    assert left == {k: v for k, v in full.items() if not k.startswith("matches")}


@pytest.mark.parametrize("score", ["123456789012345678901234567890", '{"a": 1}', "[0.5]", '"0.5"'])
def test_scores_orjson_reads_differently_take_the_general_path(tmp_path: Path, score: str) -> None:
    """msgspec keeps a 30-digit int as an int where orjson reads a float: such answers (and
    nested or string scores) must come out as `read_records` gives them."""
    line = json.dumps(_rec(0, [_box(5, 6, score=0.1)])).replace("0.1", score)
    path = tmp_path / "s.jsonl"
    path.write_text(line + "\n")
    want, _ = read_records(path)
    got, _ = scored_read.read_scored(path)
    assert got == want and type(got[0]["pred"]) is list
    assert type(got[0]["pred"][0]["score"]) is type(want[0]["pred"][0]["score"])
