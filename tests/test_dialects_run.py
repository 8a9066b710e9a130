"""Run level: a replayed stock Qwen3-VL answer set scores the same mAP as the same boxes written
in the CoordExp dialect, and a run under the wrong preset warns with the preset to use."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from coordbench.backends.replay import ReplayBackend
from coordbench.config.run import RunConfig
from coordbench.pipeline.run import run
from coordbench.rundir import files as A
from coordbench.types import Generation


def _tokens(text: str) -> list[str]:
    return re.findall(r"<[^<>]*>|\d|[A-Za-z]+|\s+|[^A-Za-z\d\s<]", text)


def _qwen3(objs: list[dict], w: int, h: int) -> str:
    rows = []
    for o in objs:
        x1, y1, x2, y2 = o["bbox_2d"]
        rel = [
            round(x1 * 1000 / w),
            round(y1 * 1000 / h),
            round(x2 * 1000 / w),
            round(y2 * 1000 / h),
        ]
        rows.append(json.dumps({"bbox_2d": rel, "label": o["desc"]}))
    return "```json\n[\n  " + ",\n  ".join(rows) + "\n]\n```"


def _coordjson(objs: list[dict]) -> str:
    recs = ", ".join(
        json.dumps({"desc": o["desc"], "bbox_2d": o["bbox_2d"]}, separators=(", ", ": "))
        for o in objs
    )
    return '{"objects": [' + recs + "]}"


def _backend(rows: list[dict], render) -> ReplayBackend:
    gens = {}
    for i, r in enumerate(rows):
        objs = r["objects"][:-1] if i % 3 == 0 else r["objects"]  # some misses: AP < 1
        text = render(objs, r["width"], r["height"])
        toks = _tokens(text)
        lps = [-0.001 * (k % 7 + 1) for k in range(len(toks))]
        gens[str(r["image_id"])] = Generation(
            str(r["image_id"]), text, list(range(len(toks))), toks, lps, lps, "stop", 10
        )
    return ReplayBackend(gens)


def _cfg(shapes_dir: Path, tmp_path: Path, prompt: str, name: str) -> RunConfig:
    ckpt = tmp_path / "fake-ckpt"
    ckpt.mkdir(exist_ok=True)
    (ckpt / "config.json").write_text('{"model_type": "qwen3_vl"}')
    return RunConfig(
        ckpt=str(ckpt),
        data=str(shapes_dir / "val.jsonl"),
        preset="64",
        prompt=prompt,
        out=str(tmp_path),
        name=name,
        batch_size=4,
        progress=False,
    )


@pytest.fixture
def rows(shapes_dir: Path) -> list[dict]:
    return [json.loads(x) for x in (shapes_dir / "val.jsonl").read_text().splitlines()]


def test_native_qwen3_answers_score_like_coordjson(shapes_dir, tmp_path, rows):
    pixel_preset = tmp_path / "coordjson_pixel.toml"
    pixel_preset.write_text('name = "coordjson_pixel"\ncoord_mode = "pixel"\n')
    native = run(
        _cfg(shapes_dir, tmp_path, "qwen3_rel1000", "native"),
        backend=_backend(rows, _qwen3),
    )
    coordjson = run(
        _cfg(shapes_dir, tmp_path, str(pixel_preset), "coordjson"),
        backend=_backend(rows, lambda objs, w, h: _coordjson(objs)),
    )
    assert 0 < native["metrics"]["bbox_AP"] < 1
    assert native["metrics"] == coordjson["metrics"]
    counts = native["parse"]["counts"]  # a one-object sample minus its box is an empty list
    assert counts["ok"] + counts["empty"] == len(rows) and counts == coordjson["parse"]["counts"]
    assert native["parse"]["dialect_check"] is None
    scored, _ = A.read_jsonl(tmp_path / "native" / A.SCORED)
    scores = [p["score"] for r in scored for p in r["pred"]]
    assert len(set(scores)) > 1  # from the trace, not a constant


def test_wrong_preset_warns_with_the_right_one(shapes_dir, tmp_path, rows):
    summary = run(
        _cfg(shapes_dir, tmp_path, "default_desc_first", "wrong"),
        backend=_backend(rows, _qwen3),
    )
    check = summary["parse"]["dialect_check"]
    # 11 of 12: the one answer that is an empty list reads the same under every preset
    assert check["better_preset"] == "qwen3_rel1000" and check["share"] == 11 / 12
    warning = "92% of answers look like qwen3_rel1000; this run used default_desc_first"
    assert any(warning in w for w in summary["diagnostics"]["warnings"])
    assert warning in (tmp_path / "wrong" / "report.html").read_text()


def test_thinking_answers_score_the_same_and_report_their_length(shapes_dir, tmp_path, rows):
    think = "<think>Let me look: a draft [1, 2, 3, 4] first.</think>\n\n"
    plain = run(
        _cfg(shapes_dir, tmp_path, "qwen3_rel1000", "plain"), backend=_backend(rows, _qwen3)
    )
    thinking = run(
        _cfg(shapes_dir, tmp_path, "qwen3_rel1000", "think"),
        backend=_backend(rows, lambda objs, w, h: think + _qwen3(objs, w, h)),
    )
    assert thinking["metrics"] == plain["metrics"]
    n_think = len(_tokens(think.rstrip()))  # the tokens up to and including `</think>`
    assert thinking["parse"]["reasoning_tokens"] == {
        "answers_with_reasoning": len(rows),
        "mean": float(n_think),
        "max": n_think,
        "total": n_think * len(rows),
    }
    assert plain["parse"]["reasoning_tokens"]["answers_with_reasoning"] == 0
    recs, _ = A.read_jsonl(tmp_path / "think" / A.GT_VS_PRED)
    assert all(r["reasoning_text"] == "Let me look: a draft [1, 2, 3, 4] first." for r in recs)
