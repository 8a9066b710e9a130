"""Thinking spans: `<think>...</think>` drafts are not the answer (Qwen3 thinking, R1-style).

Every dialect reads only what follows the last closed think span. An unclosed `<think>` with no
closer after it (the model ran out of tokens while thinking) makes the rest of the text
reasoning, so the answer is empty: a draft box list inside the reasoning is never scored.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

_OPEN, _CLOSE = "<think>", "</think>"
_OPEN_RE = re.compile(re.escape(_OPEN))


@dataclass(frozen=True)
class Split:
    """An answer split into reasoning and final answer; offsets index the original text."""

    answer: str
    answer_start: int  # where `answer` begins in the original text
    reasoning: str | None  # the think span(s) without tags; None when there is none
    reasoning_end: int  # end offset of the reasoning part in the original text (0: none)


def split_thinking(text: str) -> Split:
    """Strip think spans; a `</think>` without an opener (templates that pre-fill it) counts."""
    close = text.rfind(_CLOSE)
    if close != -1:
        head, start = text[:close], close + len(_CLOSE)
        reasoning = _OPEN_RE.sub("", head.replace(_CLOSE, "\n")).strip()
        tail = text[start:]
        opened = tail.find(_OPEN)
        if opened == -1:
            lead = len(tail) - len(tail.lstrip())
            return Split(tail.strip(), start + lead, reasoning, start)
        # a fresh unclosed think after the last closer: everything from it is reasoning
        return Split("", len(text), reasoning + "\n" + tail[opened + len(_OPEN) :], len(text))
    opened = text.find(_OPEN)
    if opened == -1:
        return Split(text, 0, None, 0)
    lead = text[:opened]
    return Split(
        lead.strip(),
        text.find(lead.strip()) if lead.strip() else 0,
        text[opened + len(_OPEN) :].strip(),
        len(text),
    )


def reasoning_tokens(text: str, tokens: list[str]) -> int:
    """How many generated tokens the `<think>` span took (0 when there is none)."""
    split = split_thinking(text)
    if split.reasoning is None:
        return 0
    pos, count = 0, 0
    for tok in tokens:
        if pos >= split.reasoning_end:
            break
        count += 1
        pos += len(tok)
    return count
