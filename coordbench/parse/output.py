"""Model text -> boxes: upstream CoordJSON parsing, salvage and standardization [UP-PARSE].

`parse_output` reproduces what CoordExp writes into `gt_vs_pred.jsonl` (`pred`,
`raw_output_json`, `raw_special_tokens`, `raw_ends_with_im_end`, `errors`, `error_entries`;
oracle `parse_oracle.jsonl`), and adds what upstream hides: a parse `status`, finer `issues`
per dropped record, and `objects`, the boxes an evaluator actually keeps. It never raises on
model text. Modules: `parse_scan` (JSON block, special tokens), `parse_salvage` (CoordJSON
container), `parse_standardize` (coordinates -> pixels).

Surfaces (coordbench.types.SURFACES) and their pixel formulas (W, H = preset image size):
- `coord_tokens`: `<|coord_k|>`, k in 0..999 -> `clamp(round(k/999*(W-1)), 0, W-1)`; values
  outside 0..999 drop the object (`coord_range`). Upstream mode "coord".
- `norm1000`: bare ints 0..999, same formula, no range check (upstream mode "text",
  pred_coord_mode "norm1000").
- `pixel`: absolute pixels (Qwen2.5-VL) -> `clamp(round(v), 0, W-1)` (mode "text", "pixel").
- `rel1000`: 0..1000 relative (Qwen3-VL) -> `clamp(round(v/1000*W), 0, W-1)`; coordbench's
  own, parsed like the other text surfaces.
"""

from __future__ import annotations

import json
import operator
from dataclasses import dataclass, field
from typing import Any

from coordbench.config.options import ParseOptions
from coordbench.errors import ConfigError, DataError
from coordbench.parse import salvage as S
from coordbench.parse.refusal import is_refusal
from coordbench.parse.scan import answer_text, first_json_block, is_blank, special_tokens
from coordbench.parse.standardize import (
    GEOMETRY_KEYS,
    UPSTREAM_MODES,
    ObjectError,
    entry_dict,
    payload_objects,
    prediction_entries,
    standardize_framed,
)
from coordbench.rundir.text import scrub_surrogates
from coordbench.types import SURFACES, Box, ParseStatus

# upstream engine `ERROR_CANONICAL` and its per-code message/stage [UP-ERROR-CODES]
CANONICAL = {
    "geometry_keys": "invalid_geometry",
    "geometry_points": "invalid_geometry",
    "geometry_kind": "invalid_geometry",
    "bbox_points": "invalid_geometry",
    "poly_points": "invalid_geometry",
    "degenerate": "invalid_geometry",
    "coord_parse": "invalid_coord",
    "coord_range": "invalid_coord",
}
_MESSAGES = {
    "empty_pred": ("Prediction parsing produced no valid objects.", "infer.parse_pred"),
    "invalid_coord": ("Prediction contains invalid coordinate values.", "infer.validate_pred"),
    "invalid_geometry": ("Prediction contains invalid geometry.", "infer.validate_pred"),
}
_BUDGET_PER_CHAR, _BUDGET_BASE = 8, 100_000  # salvage work cap; a real answer needs ~2 per char


@dataclass(frozen=True)
class ParsedOutput:
    """One parsed answer: upstream's gt_vs_pred fields plus status, issues and kept boxes."""

    status: ParseStatus
    objects: tuple[Box, ...]  # boxes the evaluator keeps: inside the image, x0<x1, y0<y1
    pred: list[dict]  # upstream `pred` (reversed boxes kept, as upstream)
    raw_output_json: dict | None
    raw_special_tokens: list[str]
    raw_ends_with_im_end: bool
    errors: list[str]  # canonical upstream codes, one per occurrence
    error_entries: list[dict]
    issues: tuple[str, ...]  # coordbench's finer codes, one per dropped record/object
    reasoning_text: str | None = None  # a stripped `<think>` span (coordbench.parse.think)

    def upstream_fields(self) -> dict[str, Any]:
        """The [UP-GT-VS-PRED] parse keys of a gt_vs_pred record, in upstream's order."""
        return {
            "pred": self.pred,
            "raw_output_json": self.raw_output_json,
            "raw_special_tokens": self.raw_special_tokens,
            "raw_ends_with_im_end": self.raw_ends_with_im_end,
            "errors": self.errors,
            "error_entries": self.error_entries,
        }

    def status_fields(self) -> dict[str, Any]:
        """coordbench's own parse keys of a record: status and finer issues."""
        out: dict[str, Any] = {"parse_status": self.status.value, "parse_issues": list(self.issues)}
        if self.reasoning_text is not None:
            out["reasoning_text"] = self.reasoning_text
        return out


@dataclass
class _Loaded:
    """Where the payload came from, for status and issues."""

    payload: dict | None = None  # upstream raw_output_json
    fallback: dict | None = None  # parse_prediction's last-chance dict when payload is None
    span: tuple[int, int] | None = None  # text outside it is junk
    truncated: bool = False
    issues: list[str] = field(default_factory=list)


def upstream_modes(surface: str) -> tuple[str, str]:
    """(upstream `mode`, `pred_coord_mode`) for a surface; ConfigError if unknown."""
    if surface not in SURFACES:
        raise ConfigError(f"expected `surface` to be one of {SURFACES} but got {surface!r}")
    return UPSTREAM_MODES[surface]


def _size(name: str, value: Any) -> int:
    try:
        size = operator.index(value)  # ints and numpy ints; floats are rejected
    except TypeError:
        size = 0
    if isinstance(value, bool) or size < 1:
        raise DataError(f"image {name} must be a positive int, got {value!r}")
    return size


def _loads(raw: str) -> Any:
    try:
        return json.loads(raw)
    except (ValueError, RecursionError):  # incl. 4300-digit ints, deep nesting
        return None


def _legacy_payload(parsed: dict) -> tuple[dict | None, bool]:
    """Upstream step 1 shapes: (payload, canonical?)."""
    objects = parsed.get("objects")
    if isinstance(objects, list):
        return {"objects": list(objects)}, len(parsed) == 1
    if parsed and all(isinstance(k, str) and k.isdigit() for k in parsed):
        try:
            keyed = sorted(((int(k), v) for k, v in parsed.items()), key=lambda kv: kv[0])
        except ValueError:  # e.g. "²".isdigit() but int("²") fails; upstream raises
            keyed = []
        objs = [v for _, v in keyed if isinstance(v, dict)]
        if objs:
            return {"objects": objs}, False
    if parsed and all(isinstance(v, dict) for v in parsed.values()):
        return {"objects": list(parsed.values())}, False
    if any(k in parsed for k in (*GEOMETRY_KEYS, "line", "line_points")):
        return {"objects": [parsed]}, False
    return None, False


def _salvage(text: str, budget: S.Budget, loaded: _Loaded, order: str, wide: bool) -> None:
    try:
        box = S.find_container(text, budget)
    except S.BudgetExceeded:
        loaded.issues.append("parse_budget_exceeded")
        return
    if box is None:
        return
    best = S.best_pass(text, box, wide)
    loaded.payload = {"objects": best.objects}
    loaded.span = (box.start, box.end if box.end is not None else len(text))
    loaded.truncated = box.truncated
    loaded.issues.extend(best.dropped)
    if best.objects and best.order != order:
        loaded.issues.append("field_order_mismatch")


def _truncated_block(text: str, block: tuple[int, int], budget: S.Budget) -> S.Container | None:
    """The truncated container a step-1 block sits inside [UP-TRUNCATION], if any."""
    if text.find("{", 0, block[0]) == -1:
        return None
    try:
        box = S.find_container(text, budget)
    except S.BudgetExceeded:
        return None
    if box is None or not box.truncated or box.start >= block[0]:
        return None
    return box


def _load(text: str, options: ParseOptions, numeric: bool, wide: bool = False) -> _Loaded:
    """Upstream `load_prediction_dict` (+ `parse_prediction`'s fallback), with provenance."""
    loaded = _Loaded()
    budget = S.Budget(_BUDGET_PER_CHAR * len(text) + _BUDGET_BASE)
    block = first_json_block(text)
    parsed = _loads(text[block[0] : block[1]]) if block else None
    if isinstance(parsed, dict):
        payload, canonical = _legacy_payload(parsed)
        if payload is not None:
            loaded.payload, loaded.span = payload, block
            box = _truncated_block(text, block, budget)
            if box is not None:  # the block is the first record of a cut-off container
                keep_all = options.keep_truncated_numeric_objects and numeric
                _truncated_numeric(text, box, loaded, keep_all)
            elif not canonical:
                loaded.issues.append("noncanonical_container")
            return loaded
        loaded.fallback = parsed
    _salvage(text, budget, loaded, options.field_order, wide)
    return loaded


def _truncated_numeric(text: str, box: S.Container, loaded: _Loaded, keep_all: bool) -> None:
    loaded.truncated, loaded.span = True, (box.start, len(text))
    if box.incomplete_tail:
        loaded.issues.append("dropped_incomplete_tail")
    if not keep_all:
        loaded.issues.extend(["dropped_truncated_record"] * max(0, len(box.records) - 1))
        return
    objects = []
    for rec in box.records:
        obj = _loads(text[rec.span[0] : rec.span[1]])
        if isinstance(obj, dict):
            objects.append(obj)
        else:
            loaded.issues.append("malformed_record")
    loaded.payload = {"objects": objects}


def _entries(loaded: _Loaded, issues: list[str]) -> list:
    source = loaded.payload if loaded.payload is not None else loaded.fallback
    if source is None:
        return []
    objects = payload_objects(source)
    if objects is None:
        return []
    if loaded.payload is None:
        issues.append("noncanonical_container")
    return prediction_entries(objects, issues)


def _error_entry(code: str) -> dict:
    message, stage = _MESSAGES.get(code, (code, "infer"))
    return {"code": code, "message": message, "stage": stage}


def parsed_output(
    text: str,
    status: ParseStatus,
    objects: list[Box] | tuple[Box, ...],
    pred: list[dict],
    payload: dict | None,
    errors: list[str],
    issues: list[str] | tuple[str, ...],
) -> ParsedOutput:
    """A ParsedOutput with the fields every dialect derives the same way from the raw text
    (special tokens, the `<|im_end|>` flag) and from the error codes (upstream's entries)."""
    return ParsedOutput(
        status=status,
        objects=tuple(objects),
        pred=pred,
        raw_output_json=payload,
        raw_special_tokens=special_tokens(text),
        raw_ends_with_im_end=text.endswith("<|im_end|>"),
        errors=errors,
        error_entries=[_error_entry(c) for c in errors],
        issues=tuple(issues),
    )


def _junk(text: str, span: tuple[int, int] | None) -> bool:
    if span is None:
        return False
    return bool(answer_text(text[: span[0]]) or answer_text(text[span[1] :]))


def _box(obj: dict) -> Box | None:
    """The evaluator's view [UP-EVAL-INGEST].

    A bbox is kept only if x2-x1>0 and y2-y1>0 as given; a poly becomes its extent.
    """
    p = obj["points"]
    if obj["type"] == "bbox_2d":
        x0, y0, x1, y1 = p
    else:
        x0, y0, x1, y1 = min(p[0::2]), min(p[1::2]), max(p[0::2]), max(p[1::2])
    if x1 - x0 <= 0 or y1 - y0 <= 0:
        return None
    return Box(float(x0), float(y0), float(x1), float(y1), obj["desc"])


def _status(
    text: str, loaded: _Loaded, objects: tuple, issues: list[str], finished: bool | None
) -> ParseStatus:
    if finished is False or loaded.truncated:
        return ParseStatus.TRUNCATED
    if is_blank(text):  # control tokens of any family, whitespace, a bare ``` fence
        return ParseStatus.EMPTY
    if loaded.payload is None and not objects:
        # no JSON at all: a refusal ("there are no cars") is empty, anything else malformed
        return ParseStatus.EMPTY if is_refusal(answer_text(text)) else ParseStatus.MALFORMED
    if issues:
        return ParseStatus.SALVAGED
    return ParseStatus.OK if objects else ParseStatus.EMPTY


def _standardized(
    entries: list, frame: tuple[str, str, int, int], issues: list[str], codes: list[str]
) -> list[dict]:
    """Upstream's standardized `pred` of the entries; each dropped object's code goes to
    `issues` (and to upstream's `codes`), each clamped one adds `out_of_frame` to `issues`."""
    pred: list[dict] = []
    for entry in entries:
        try:
            obj, outside = standardize_framed(entry_dict(entry), *frame)
        except ObjectError as e:
            issues.append(e.code)
            if e.code != "nonfinite":  # upstream crashes there instead of logging a code
                codes.append(e.code)
            continue
        pred.append(obj)
        if outside:  # clamped as upstream, but said: never a silent `ok`
            issues.append("out_of_frame")
    return pred


def parse_output(
    text: str,
    *,
    surface: str,
    width: int,
    height: int,
    options: ParseOptions | None = None,
    finished: bool | None = None,
) -> ParsedOutput:
    """Parse one model answer; never raises on `text` (ConfigError/DataError for bad arguments).

    `finished`: False when the backend stopped at max_new_tokens (None: unknown).
    Status precedence: TRUNCATED (finished is False, or the text ends inside the objects
    container) > EMPTY (nothing but control tokens of any family, blanks and bare ``` fences, or
    a refusal: no JSON and the text says nothing is there, `parse.refusal`) > MALFORMED (no
    container or JSON object found, nothing usable) > SALVAGED (any issue: a dropped record or
    object, junk around the JSON, a non-canonical container, a reversed box, a value outside its
    frame clamped as upstream (`out_of_frame`), an empty desc, the other field order) > EMPTY
    (a clean `{"objects": []}`) > OK. So OK means every record became a kept box, as written,
    and MALFORMED/EMPTY mean no objects.
    """
    mode, pred_mode = upstream_modes(surface)
    width, height = _size("width", width), _size("height", height)
    if not isinstance(text, str):
        text = (
            bytes(text).decode("utf-8", "replace")
            if isinstance(text, (bytes, bytearray))
            else str(text)
        )
    options = options or ParseOptions()
    wide = surface in ("pixel", "rel1000")  # no 0..999 cap on the repair path either
    loaded = _load(text, options, numeric=surface != "coord_tokens", wide=wide)
    issues = list(loaded.issues)
    entries = _entries(loaded, issues)
    codes: list[str] = [] if entries else ["empty_pred"]
    pred = _standardized(entries, (mode, pred_mode, width, height), issues, codes)
    if not pred and "empty_pred" not in codes:
        codes.append("empty_pred")
    # a `\\ud800` escape decodes to a lone surrogate: not UTF-8, so no artifact could hold it
    pred, n_pred = scrub_surrogates(pred)
    payload, n_payload = scrub_surrogates(loaded.payload)
    issues += ["lone_surrogate"] * max(n_pred, n_payload)
    objects = []
    for obj in pred:
        box = _box(obj)
        if box is None:
            issues.append("reversed_box")
        else:
            objects.append(box)
            if not box.label:
                issues.append("empty_desc")
    if _junk(text, loaded.span) and not loaded.truncated:
        issues.append("junk_around_json")
    errors = [CANONICAL.get(c, c) for c in codes]
    status = _status(text, loaded, tuple(objects), issues, finished)
    return parsed_output(text, status, objects, pred, payload, errors, issues)
