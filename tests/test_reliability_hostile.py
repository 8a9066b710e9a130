"""Hostile or damaged run dirs (someone else's run, a bad disk, a hand edit) fed to
`coordbench eval` and to a resuming `coordbench run`: each either works or stops with one
`error:` line naming the file (and line), never a traceback, and never rewrites the generated
records it was given.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from coordbench.cli.main import main
from coordbench.rundir import files as A
from tests.conftest import OracleBackend
from tests.test_reliability_support import assets, copy_run, reference_run, run_args

BOXES = (
    '{"objects": [{"desc": "circle", "bbox_2d": '
    "[<|coord_1|>, <|coord_2|>, <|coord_300|>, <|coord_400|>]}]}<|im_end|>"
)


def _rows(path: Path) -> list:
    return [json.loads(x) for x in path.read_text().splitlines()]


def _write(path: Path, rows: list) -> None:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))


def _record(edit):
    def mutate(rd: Path) -> None:
        rows = _rows(rd / A.GT_VS_PRED)
        edit(rows[1])
        _write(rd / A.GT_VS_PRED, rows)

    return mutate


def _trace(edit):
    def mutate(rd: Path) -> None:
        rows = _rows(rd / A.TRACE)
        edit(rows[1])
        _write(rd / A.TRACE, rows)

    return mutate


def _head(edit):
    def mutate(rd: Path) -> None:
        head = json.loads((rd / A.RUN_JSON).read_text())
        (rd / A.RUN_JSON).write_text(json.dumps(edit(head) or head))

    return mutate


def _no_raw(**kw):
    return lambda r: (r.pop("raw_text"), r.update(**kw))


# name -> (mutation, None when the command must succeed, else the text its error line must hold)
EVAL_CASES = {
    "line_is_a_list": (
        lambda rd: (rd / A.GT_VS_PRED).write_text("[1, 2]\n" + (rd / A.GT_VS_PRED).read_text()),
        "gt_vs_pred.jsonl:1",
    ),
    "trace_without_sample_id": (_trace(lambda t: t.pop("sample_id")), "pred_token_trace.jsonl:2"),
    "run_json_is_a_list": (lambda rd: (rd / A.RUN_JSON).write_text("[1]"), "run.json"),
    "config_is_a_list": (_head(lambda h: h.update(config=[1])), "run.json"),
    "config_value_wrong_type": (
        _head(lambda h: h["config"].update(semantic_threshold="high")),
        "semantic_threshold",
    ),
    "config_bool_as_string": (
        _head(lambda h: h["config"].update(keep_truncated_numeric_objects="yes")),
        "keep_truncated_numeric_objects",
    ),
    "width_is_a_string": (_record(lambda r: r.update(width="256")), "width"),
    "gt_not_a_list": (_record(lambda r: r.update(gt="x")), None),
    "gt_items_not_objects": (_record(lambda r: r.update(gt=[1, None])), None),
    "gt_points_garbage": (
        _record(lambda r: r.update(gt=[{"type": "bbox_2d", "points": [0, 0, "a"], "desc": 5}])),
        None,
    ),
    "gt_huge_numbers": (
        _record(
            lambda r: r.update(gt=[{"type": "bbox_2d", "points": [0, 0, 10**30, 5], "desc": "x"}])
        ),
        None,
    ),
    "raw_text_not_a_string": (_record(lambda r: r.update(raw_text=5)), None),
    "raw_text_with_boxes": (_record(lambda r: r.update(raw_text=BOXES)), None),
    # a `\ud800` JSON escape decodes to a lone surrogate, which no UTF-8 artifact can hold
    "raw_text_lone_surrogate": (
        _record(lambda r: r.update(raw_text=BOXES.replace("circle", "c\\ud800x"))),
        None,
    ),
    "gt_desc_lone_surrogate": (
        _record(
            lambda r: r.update(gt=[{"type": "bbox_2d", "points": [0, 0, 9, 9], "desc": "\ud800"}])
        ),
        None,
    ),
    "pred_items_garbage": (_record(_no_raw(pred=[1, "x", None, {"points": "abcd"}])), None),
    "pred_score_a_string": (
        _record(
            _no_raw(
                pred=[{"type": "bbox_2d", "points": [1, 2, 30, 40], "desc": "c", "score": "hi"}]
            )
        ),
        None,
    ),
    "image_absolute_path": (_record(lambda r: r.update(image="/etc/passwd")), None),
    "huge_image_size": (_record(lambda r: r.update(width=10**15, height=10**15)), None),
    "trace_token_texts_ints": (_trace(lambda t: t.update(generated_token_text=[1, 2, 3])), None),
    "trace_logprobs_garbage": (
        _trace(lambda t: t.update(token_logprobs_raw="x", token_logprobs=[None, "a"])),
        None,
    ),
}


def _finished(tmp_path_factory, tmp_path: Path) -> Path:
    return copy_run(reference_run(tmp_path_factory, "greedy"), tmp_path, "r")


def _assert_outcome(res, expected: str | None) -> None:
    assert res.exception is None or isinstance(res.exception, SystemExit), repr(res.exception)
    if expected is None:
        assert res.exit_code == 0, res.stderr
        return
    assert res.exit_code == 2, (res.exit_code, res.stderr)
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and expected in lines[0], res.stderr


@pytest.mark.parametrize("case", sorted(EVAL_CASES))
def test_eval_of_a_hostile_run_dir(tmp_path_factory, tmp_path, case):
    mutate, expected = EVAL_CASES[case]
    rd = _finished(tmp_path_factory, tmp_path)
    mutate(rd)
    inputs = {n: (rd / n).read_bytes() for n in (A.GT_VS_PRED, A.TRACE, A.RUN_JSON)}
    res = CliRunner().invoke(main, ["eval", str(rd)])
    _assert_outcome(res, expected)
    assert {n: (rd / n).read_bytes() for n in inputs} == inputs  # eval never rewrites its inputs


RUN_CASES = {
    "record_line_is_a_list": (
        lambda rd: (rd / A.GT_VS_PRED).write_text("[1]\n" + (rd / A.GT_VS_PRED).read_text()),
        "gt_vs_pred.jsonl:1",
    ),
    "record_without_sample_id": (_record(lambda r: r.pop("sample_id")), "gt_vs_pred.jsonl:2"),
    "trace_without_sample_id": (_trace(lambda t: t.pop("sample_id")), "pred_token_trace.jsonl:2"),
    "identity_hash_not_a_string": (_head(lambda h: h.update(identity_hash=[1])), "--overwrite"),
    "identity_not_an_object": (
        _head(lambda h: h.update(identity_hash="x", identity=[[1]])),
        "--overwrite",
    ),
    "run_json_is_a_list": (lambda rd: (rd / A.RUN_JSON).write_text("[1]"), "run.json"),
    "record_garbage_values": (
        _record(lambda r: r.update(gt=[1], pred="x", raw_text=None, width="w")),
        "width",
    ),
    "record_garbage_but_valid_size": (
        _record(lambda r: r.update(gt=[1], pred="x", raw_text=None)),
        None,
    ),
}


@pytest.mark.parametrize("case", sorted(RUN_CASES))
def test_resume_over_a_hostile_run_dir(tmp_path_factory, tmp_path, monkeypatch, case):
    a = assets(tmp_path_factory)
    monkeypatch.setattr(
        "coordbench.pipeline.generate.make_backend", lambda cfg, dist: OracleBackend(a.data)
    )
    mutate, expected = RUN_CASES[case]
    rd = _finished(tmp_path_factory, tmp_path)
    mutate(rd)
    inputs = {n: (rd / n).read_bytes() for n in (A.GT_VS_PRED, A.TRACE)}
    res = CliRunner().invoke(main, run_args(a, tmp_path, "r"))
    _assert_outcome(res, expected)
    if expected is not None:
        assert {n: (rd / n).read_bytes() for n in inputs} == inputs
        assert not (rd / A.LOCK).exists()
