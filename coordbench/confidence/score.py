"""Per-object confidence from the token trace (upstream confidence post-op, [UP-CONF-SCORE]).

Score of a box = `exp(mean logprob)` of its 4 coord tokens (coord-token surfaces) or of its
digit tokens (numeric surfaces), fused `w_geom*geom + w_desc*desc` with the desc tokens' score
when the desc span is found (coord-token surfaces only). Reproduces `pred_confidence.jsonl`,
`gt_vs_pred_scored.jsonl` and `confidence_postop_summary.json` (oracle `conf_oracle_*`).

Fallback: an object that cannot be scored is not given score 0; it is dropped from the scored
record with one reason from the closed upstream set `FAILURE_REASONS` (e.g. `missing_span` when
its tokens are not in the trace, `nonfinite_logprob` for `-inf` pads, `pred_alignment_mismatch`
when `pred` cannot be rebuilt from `raw_output_json`), and counted in the summary.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

from coordbench.confidence.align import aligned_bins, raw_points, record_has_coord_tokens
from coordbench.confidence.trace import (
    assign_numeric_spans,
    assign_token_spans,
    desc_span,
    text_span_tokens,
)
from coordbench.config.options import ConfidenceOptions
from coordbench.parse.standardize import MAX_BIN, flatten_points, is_coord_token
from coordbench.parse.think import reasoning_tokens

PRED_SCORE_SOURCE = "confidence_postop"
PRED_SCORE_VERSION = 2
CONFIDENCE_METHOD = "bbox_logprob_confidence_exp"
FAILURE_REASONS = (
    "missing_trace",
    "trace_len_mismatch",
    "unsupported_geometry_type",
    "missing_coord_bins",
    "missing_span",
    "nonfinite_logprob",
    "pred_alignment_mismatch",
    "object_idx_oob",
    "missing_desc_span",
)


def _mean_exp(logprobs: Sequence[float]) -> float | None:
    """exp(mean) with upstream's left-to-right sum (not `sum()`, which compensates on 3.12+)."""
    if not logprobs:
        return None
    acc = 0.0
    for lp in logprobs:
        if not math.isfinite(lp):
            return None
        acc += lp
    mean = acc / float(len(logprobs))
    return math.exp(mean) if mean < 700.0 else math.inf  # exp(710) overflows; > 1 is invalid anyway


def _valid(score: float | None) -> bool:
    return score is not None and math.isfinite(score) and 0.0 < score <= 1.0


def _result(
    idx: int,
    pred: Mapping,
    *,
    reason: str | None = None,
    score: float | None = None,
    count: int = 0,
    indices: Sequence[int] = (),
    ambiguous: int = 0,
    mode: str | None = None,
    geom: float | None = None,
    desc: float | None = None,
    fusion: float | None = None,
    desc_idx: Sequence[int] | None = None,
    weights: tuple[float, float] | None = None,
) -> dict:
    details: dict[str, Any] = {
        "method": CONFIDENCE_METHOD,
        "coord_token_count": count,
        "matched_token_indices": list(indices),
        "ambiguous_matches": ambiguous,
        "failure_reason": reason,
    }
    if mode is not None:
        details["geom_span_mode"] = mode
    if desc_idx is not None:
        details["desc_span_token_indices"] = list(desc_idx)
    if weights is not None:
        details["fusion_weights"] = {"w_geom": weights[0], "w_desc": weights[1]}
    return {
        "object_idx": idx,
        "type": str(pred.get("type", "")),
        "desc": str(pred.get("desc", "")),
        "points": list(pred.get("points") or []),
        "confidence": score,
        "score": score,
        "score_geom": geom,
        "score_desc": desc,
        "score_fusion": fusion,
        "kept": reason is None,
        "confidence_details": details,
    }


# --------------------------------------------------------------------------- scoring


def _span_modes(
    record: Mapping, preds: list[Mapping], bins: list, tokens: Sequence[str]
) -> list[str | None]:
    """Per object `coord_tokens` | `numeric_text` (None: not a bbox with bins)."""
    coord_surface = any(is_coord_token(t) for t in tokens) or record_has_coord_tokens(record)
    raw = record.get("raw_output_json")
    raw_objects = raw.get("objects") if isinstance(raw, Mapping) else None
    modes: list[str | None] = []
    for i, pred in enumerate(preds):
        if str(pred.get("type", "")) != "bbox_2d" or bins[i] is None:
            modes.append(None)
            continue
        # upstream indexes raw objects by pred position here, even when some were dropped
        flat = None
        if (
            isinstance(raw_objects, list)
            and i < len(raw_objects)
            and isinstance(raw_objects[i], Mapping)
        ):
            flat = flatten_points(raw_points(raw_objects[i]))
        tokens_here = flat is not None and any(is_coord_token(v) for v in flat)
        if coord_surface or tokens_here:
            modes.append("coord_tokens" if all(0 <= b <= MAX_BIN for b in bins[i]) else None)
        else:
            modes.append("numeric_text")
    return modes


def _spans(tokens: Sequence[str], bins: list, modes: list[str | None]) -> dict[int, Any]:
    coord = [
        (i, tuple(f"<|coord_{b}|>" for b in bins[i]))
        for i, m in enumerate(modes)
        if m == "coord_tokens"
    ]
    numeric = [(i, tuple(bins[i])) for i, m in enumerate(modes) if m == "numeric_text"]
    out: dict[int, Any] = {}
    for (i, _), match in zip(coord, assign_token_spans(tokens, [s for _, s in coord]), strict=True):
        out[i] = match
    for (i, _), match in zip(
        numeric, assign_numeric_spans(tokens, [s for _, s in numeric]), strict=True
    ):
        out[i] = match
    return out


def _score_desc(
    pred: Mapping,
    tokens: Sequence[str],
    logprobs: Sequence[float],
    first: int,
    window: int,
    options: ConfidenceOptions,
) -> tuple[str | None, float | None, list[int] | None]:
    """(failure reason, desc score, desc token indices) for a coord-token box."""
    idx = desc_span(tokens, first, window)
    if idx is None:
        return ("missing_desc_span" if options.desc_span_policy == "strict" else None), None, None
    if not idx or not str(pred.get("desc") or "").strip():
        return ("missing_desc_span" if options.empty_desc_policy == "drop" else None), None, idx
    score = _mean_exp([logprobs[i] for i in idx])
    return (None if _valid(score) else "nonfinite_logprob"), (score if _valid(score) else None), idx


def _score_native(
    record: Mapping, preds: list[Mapping], tokens: Sequence[str], logprobs: Sequence[float]
) -> list[dict]:
    """Native dialects: exp(mean logprob) of the tokens spelling each object's coordinates and
    label (the parser's `text_spans`), whatever they are: digits, `<loc>` or `<loc_k>` tokens."""
    raw = str(record.get("raw_text") or "")
    results = []
    for i, pred in enumerate(preds):
        idx = text_span_tokens(tokens, raw, pred.get("text_spans") or [])
        if idx is None:
            results.append(_result(i, pred, reason="missing_span", mode="text_spans"))
            continue
        span = {"count": len(idx), "indices": idx, "ambiguous": False, "mode": "text_spans"}
        score = _mean_exp([logprobs[j] for j in idx])
        if not _valid(score):
            results.append(_result(i, pred, reason="nonfinite_logprob", **span))
            continue
        results.append(_result(i, pred, score=score, geom=score, fusion=score, **span))
    return results


def _score_objects(
    record: Mapping,
    preds: list[Mapping],
    tokens: Sequence[str],
    logprobs: Sequence[float],
    options: ConfidenceOptions,
) -> list[dict]:
    aligned = aligned_bins(record, preds, options.upstream_numeric_bin_range)
    if isinstance(aligned, str):
        return [_result(i, p, reason=aligned) for i, p in enumerate(preds)]
    weights = options.weights()
    modes = _span_modes(record, preds, aligned, tokens)
    spans = _spans(tokens, aligned, modes)
    results, window = [], 0
    for i, pred in enumerate(preds):
        mode = modes[i]
        if str(pred.get("type", "")) != "bbox_2d":
            results.append(_result(i, pred, reason="unsupported_geometry_type"))
            continue
        if aligned[i] is None:
            results.append(_result(i, pred, reason="missing_coord_bins", mode=mode))
            continue
        match = spans.get(i)
        if match is None:
            results.append(_result(i, pred, reason="missing_span", count=4, mode=mode))
            continue
        idx, window_start = list(match.indices), window
        window = max(window, idx[-1] + 1)
        span = {"count": len(idx), "indices": idx, "ambiguous": match.ambiguous, "mode": mode}
        fw = weights if mode == "coord_tokens" else None
        geom = _mean_exp([logprobs[j] for j in idx])
        if not _valid(geom):
            results.append(_result(i, pred, reason="nonfinite_logprob", **span))
            continue
        desc, desc_idx, reason = None, None, None
        if mode == "coord_tokens":
            reason, desc, desc_idx = _score_desc(
                pred, tokens, logprobs, idx[0], window_start, options
            )
        fusion = geom if desc is None else weights[0] * geom + weights[1] * desc
        if reason is None and not _valid(fusion):
            reason = "nonfinite_logprob"
        if reason is not None:
            keep_fusion = reason == "nonfinite_logprob" and desc is not None
            results.append(
                _result(
                    i,
                    pred,
                    reason=reason,
                    geom=geom,
                    desc=desc if keep_fusion else None,
                    fusion=fusion if keep_fusion else None,
                    desc_idx=desc_idx,
                    weights=fw,
                    **span,
                )
            )
            continue
        results.append(
            _result(
                i,
                pred,
                score=fusion,
                geom=geom,
                desc=desc,
                fusion=fusion,
                desc_idx=desc_idx,
                weights=fw,
                **span,
            )
        )
    return results


def _think_tokens(record: Mapping, tokens: Sequence[str]) -> int:
    """How many leading trace tokens spell a stripped `<think>` span (0 without one)."""
    if record.get("reasoning_text") is None:
        return 0
    return reasoning_tokens(str(record.get("raw_text") or ""), list(tokens))


def confidence_for_record(
    record: dict,
    line_idx: int,
    token_texts: list[str] | None,
    logprobs: list[float] | None,
    options: ConfidenceOptions,
) -> dict:
    """One `pred_confidence.jsonl` line: a result per `record["pred"]` object, in order.

    `token_texts`/`logprobs` are the sample's trace (None: no trace); the caller picks raw or
    processed logprobs per `options.logprob_source`. Non-finite values (`-inf` pads) are fine.
    """
    preds = record.get("pred")
    preds = [p if isinstance(p, Mapping) else {} for p in preds] if isinstance(preds, list) else []
    if not preds:
        objects: list[dict] = []
    elif token_texts is None or logprobs is None:
        objects = [_result(i, p, reason="missing_trace") for i, p in enumerate(preds)]
    elif len(token_texts) != len(logprobs):
        objects = [_result(i, p, reason="trace_len_mismatch") for i, p in enumerate(preds)]
    else:
        tokens = [str(t) for t in token_texts]
        lps = [_as_float(v) for v in logprobs]
        if any("text_spans" in p for p in preds):  # a native-dialect parse: absolute spans
            objects = _score_native(record, preds, tokens, lps)
        else:
            skip = _think_tokens(record, tokens)  # a draft's coord tokens are not the answer's
            objects = _score_objects(record, preds, tokens[skip:], lps[skip:], options)
            for obj in objects:
                details = obj["confidence_details"]
                details["matched_token_indices"] = [
                    i + skip for i in details["matched_token_indices"]
                ]
                if "desc_span_token_indices" in details:
                    details["desc_span_token_indices"] = [
                        i + skip for i in details["desc_span_token_indices"]
                    ]
    return {"line_idx": int(line_idx), "image": str(record.get("image", "")), "objects": objects}


def _as_float(v: Any) -> float:
    try:
        return float(v)
    except (TypeError, ValueError, OverflowError):
        return float("nan")  # unreadable logprob: treated as non-finite


def scored_record(record: dict, confidence_line: dict) -> dict:
    """The `gt_vs_pred_scored.jsonl` record: kept objects only, each with `score`."""
    preds = record.get("pred") if isinstance(record.get("pred"), list) else []
    results = confidence_line.get("objects") or []
    scored = []
    if len(results) == len(preds):
        for pred, res in zip(preds, results, strict=True):
            if res.get("kept") and _valid(res.get("score")):
                scored.append({**pred, "score": float(res["score"])})
    out = dict(record)
    out["pred"] = scored
    out["pred_score_source"] = PRED_SCORE_SOURCE
    out["pred_score_version"] = PRED_SCORE_VERSION
    return out


def postop_summary(confidence_lines: list[dict]) -> dict:
    """`confidence_postop_summary.json`: totals and drop reasons over all lines."""
    total = kept = 0
    dropped: dict[str, int] = {}
    for line in confidence_lines:
        for obj in line.get("objects") or []:
            total += 1
            if obj.get("kept"):
                kept += 1
                continue
            reason = (obj.get("confidence_details") or {}).get("failure_reason")
            reason = reason if reason in FAILURE_REASONS else "object_idx_oob"
            dropped[reason] = dropped.get(reason, 0) + 1
    return {
        "total_samples": len(confidence_lines),
        "total_pred_objects": total,
        "kept_pred_objects": kept,
        "dropped_pred_objects": total - kept,
        "kept_fraction": kept / total if total else 1.0,
        "dropped_by_reason": dropped,
        "pred_score_source": PRED_SCORE_SOURCE,
        "pred_score_version": PRED_SCORE_VERSION,
        "confidence_method": CONFIDENCE_METHOD,
    }
