"""Which prompt preset's dialect reads a run's answers best: the dialect-mismatch warning.

A stock model scored under the wrong preset reads few or no boxes and nothing else looks
wrong. Each answer is re-read under one built-in preset per dialect and surface; when more
than half of the answers read strictly more boxes under another preset than under the run's,
the run gets a warning naming that preset. "Better" compares labelled boxes, then boxes, then
a clean `ok` status, so a Qwen list read by CoordJSON as one unlabelled box counts as worse.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping
from typing import Any

from coordbench.config.presets import load_prompt_preset
from coordbench.parse.answer import parse_for_preset
from coordbench.types import ParseStatus

# one built-in preset per (dialect, surface); order breaks ties (Qwen3 before Qwen2.5)
CANDIDATES = (
    "default_desc_first",
    "coco80_norm1000",
    "qwen3_rel1000",
    "qwen25_pixel",
    "gemma3_box2d",
    "internvl_box",
    "paligemma_loc",
    "florence2_od",
)


def _quality(text: str, preset: Any, w: int, h: int) -> tuple[int, int, bool]:
    """How well a preset reads an answer: labelled boxes, then boxes, then a clean status."""
    p = parse_for_preset(text, preset, width=w, height=h)
    return sum(bool(o.label) for o in p.objects), len(p.objects), p.status is ParseStatus.OK


def dialect_check(records: Iterable[Mapping], preset_name: str) -> dict[str, Any] | None:
    """`{"better_preset", "share", "n", "warning"}` when >half the answers read better under
    another preset, else None. Records need `raw_text`, `width`, `height`."""
    run = load_prompt_preset(preset_name)
    others = [load_prompt_preset(c) for c in CANDIDATES if c != preset_name]
    best: Counter[str] = Counter()
    n = 0
    for rec in records:
        text, w, h = rec.get("raw_text"), rec.get("width"), rec.get("height")
        if not isinstance(text, str) or not isinstance(w, int) or not isinstance(h, int):
            continue
        n += 1
        if w < 1 or h < 1:
            continue
        mine = _quality(text, run, w, h)
        top = max((_quality(text, p, w, h), -i, p.name) for i, p in enumerate(others))
        if top[0] > mine:
            best[top[2]] += 1
    if not best or n == 0:
        return None
    name, hits = best.most_common(1)[0]
    if hits * 2 <= n:
        return None
    share = hits / n
    return {
        "better_preset": name,
        "share": share,
        "n": n,
        "warning": f"{share:.0%} of answers look like {name}; this run used {preset_name} "
        f"(run with --prompt {name})",
    }


BAD_SHARE = 0.5  # more than half the answers unreadable: the prompt, not the model, is suspect


def prompt_check(counts: Mapping[str, int], preset_name: str) -> dict[str, Any] | None:
    """`{"prompt_preset", "share", "n", "warning"}` when most answers are malformed or truncated.

    A checkpoint asked in a prompt it was never trained on (e.g. COCO-80 for a model trained on
    another prompt) writes answers that do not parse, and the run reads as mAP 0 with nothing
    pointing at the cause; the warning names the preset used so the user can try another.
    """
    n = sum(int(v) for v in counts.values())
    bad = int(counts.get("malformed", 0)) + int(counts.get("truncated", 0))
    if n == 0 or bad <= BAD_SHARE * n:
        return None
    share = bad / n
    return {
        "prompt_preset": preset_name,
        "share": share,
        "n": n,
        "warning": f"{share:.0%} of answers are malformed or truncated under prompt preset "
        f"{preset_name}: the checkpoint may expect another prompt preset (the one it was "
        "trained with: put it in coordbench.json beside config.json, or pass --prompt)",
    }
