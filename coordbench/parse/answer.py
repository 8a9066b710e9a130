"""One entry point from answer text to boxes for any prompt preset: strip thinking, then read
the preset's dialect (`coordbench.parse.dialects`).

`parse_answer` is the library API (`coordbench.parse_answer`); the pipeline calls
`parse_for_preset` with the run's parse options and the backend's finish flag.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from coordbench.config.options import ParseOptions
from coordbench.config.presets import load_prompt_preset
from coordbench.config.prompts import PromptPreset
from coordbench.parse.dialects import COORDJSON, DIALECTS, Dialect
from coordbench.parse.output import ParsedOutput, _size, parse_output, parsed_output
from coordbench.parse.refusal import is_refusal
from coordbench.parse.scan import blank_stop_tokens, is_blank
from coordbench.parse.think import split_thinking
from coordbench.types import Box, ParseStatus


def _as_text(text: object) -> str:
    if isinstance(text, str):
        return text
    if isinstance(text, (bytes, bytearray)):
        return bytes(text).decode("utf-8", "replace")
    return str(text)


def parse_native(
    text: str,
    dialect: Dialect,
    *,
    width: int,
    height: int,
    finished: bool | None = None,
    offset: int = 0,
) -> ParsedOutput:
    """Read one answer (already without thinking) in a native dialect; never raises on text.

    Status (docs/dialects.md): TRUNCATED (finished is False, or the text ends inside a box) >
    EMPTY (blank once the family's stop/BOS tokens and bare ``` fences are removed, or a
    refusal: no box syntax, no JSON, and the text says nothing is there) > MALFORMED (no box
    kept, and box syntax that could not be read or none at all) > SALVAGED (boxes kept while
    something was dropped, reordered or clamped: a bad box beside good ones, reversed corners,
    an out-of-frame value, a zero-area box) > EMPTY (no boxes) > OK.
    `offset` shifts the recorded text spans (the answer's start in the full text).
    """
    width, height = _size("width", width), _size("height", height)
    text = blank_stop_tokens(text)  # offsets stay put: spans still index the model's text
    reading = dialect.read(text)
    issues = list(reading.issues)
    pred, objects = [], []
    for obj in reading.objects:
        if dialect.out_of_frame(obj, width, height):
            issues.append("out_of_frame")
        x1, y1, x2, y2 = dialect.to_pixels(obj, width, height)
        if x1 > x2 or y1 > y2:
            issues.append("reversed_box")
            x1, x2, y1, y2 = min(x1, x2), max(x1, x2), min(y1, y2), max(y1, y2)
        if x2 - x1 <= 0 or y2 - y1 <= 0:
            issues.append("degenerate")
            continue
        spans = [[s + offset, e + offset] for s, e in obj.spans]
        pred.append(
            {"type": "bbox_2d", "points": [x1, y1, x2, y2], "desc": obj.label, "text_spans": spans}
        )
        objects.append(Box(float(x1), float(y1), float(x2), float(y2), obj.label))
    status = _native_status(text, reading, objects, issues, finished)
    errors = [] if pred else ["empty_pred"]
    return parsed_output(text, status, objects, pred, None, errors, issues)


def _native_status(
    text: str, reading: Any, objects: list[Box], issues: list[str], finished: bool | None
) -> ParseStatus:
    if finished is False or reading.truncated:
        return ParseStatus.TRUNCATED
    if is_blank(text):  # control tokens, whitespace, a bare ``` fence
        return ParseStatus.EMPTY
    if not objects and not reading.found and is_refusal(text):
        return ParseStatus.EMPTY
    if not objects and (not reading.found or reading.unreadable):
        return ParseStatus.MALFORMED
    if issues or reading.unreadable:
        return ParseStatus.SALVAGED
    return ParseStatus.OK if objects else ParseStatus.EMPTY


def parse_for_preset(
    text: str,
    preset: PromptPreset,
    *,
    width: int,
    height: int,
    options: ParseOptions | None = None,
    finished: bool | None = None,
) -> ParsedOutput:
    """Strip `<think>` spans, then parse the final answer in the preset's dialect."""
    text = _as_text(text)
    split = split_thinking(text)
    if preset.dialect == COORDJSON:
        if split.reasoning is None:  # byte-exact upstream path
            return parse_output(
                text,
                surface=preset.surface,
                width=width,
                height=height,
                options=options,
                finished=finished,
            )
        parsed = parse_output(
            split.answer,
            surface=preset.surface,
            width=width,
            height=height,
            options=options,
            finished=finished,
        )
    else:
        parsed = parse_native(
            split.answer,
            DIALECTS[preset.dialect],
            width=width,
            height=height,
            finished=finished,
            offset=split.answer_start,
        )
    return replace(parsed, reasoning_text=split.reasoning)


def parse_answer(text: str, *, prompt_preset: str, width: int, height: int) -> ParsedOutput:
    """Parse one model answer as the named prompt preset's model writes it.

    `.status` is a `ParseStatus`; `.objects` are `Box`es with `.label` and `.xyxy()` in the
    pixels of the image the model saw (`width` x `height`). Never raises on `text`.
    """
    return parse_for_preset(text, load_prompt_preset(prompt_preset), width=width, height=height)
