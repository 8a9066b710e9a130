"""Refusals: "I don't see any cars in this image" is an empty answer, not a malformed one.

The rule (docs/dialects.md): an answer is a refusal when it holds no box syntax of its dialect,
no JSON or markup (`{`, `[`, `<`) and no digit once the family's control tokens are blank, is
short (at most 400 characters), and says that nothing is there:
- English: the whole answer is "none", "nothing" or "no"; or "there is/are no ...", "there
  isn't/aren't any ...", "no <thing> found/detected/visible/present/in the image", "don't /
  can't / cannot / couldn't / unable to see/find/detect/locate/identify/spot", "not visible",
  "not present", "does not contain";
- Chinese: 没有, 未检测到, 未发现, 未找到, 不存在, 找不到, 看不到, 并无.
Anything else without boxes stays `malformed`: a baseline answering in the wrong format must
never look like a model that found nothing.
"""

from __future__ import annotations

import re

MAX_REFUSAL_CHARS = 400
_MARKUP = re.compile(r"[{\[<\d]")
_EN = re.compile(
    r"^\W*(?:none|nothing|no)\W*$"
    r"|\bthere\s+(?:is|are|was|were)\s+no\b"
    r"|\bthere\s+(?:isn'?t|aren'?t|is\s+not|are\s+not)\s+any\b"
    r"|\bno\s+(?:\w+\s+){0,3}(?:found|detected|visible|present|in\s+(?:the|this)\s+(?:image|picture|photo))"
    r"|\b(?:don'?t|do\s+not|doesn'?t|does\s+not|can'?t|cannot|could\s*n'?t|could\s+not|"
    r"unable\s+to)\s+(?:see|find|detect|locate|identify|spot)\b"
    r"|\bnot\s+(?:visible|present)\b|\b(?:does\s+not|doesn'?t)\s+contain\b",
    re.IGNORECASE,
)
_ZH = re.compile(r"没有|未检测到|未发现|未找到|不存在|找不到|看不到|并无")


def is_refusal(text: str) -> bool:
    """Whether `text` (no boxes were read from it) says that nothing is there."""
    body = text.strip()
    if not body or len(body) > MAX_REFUSAL_CHARS or _MARKUP.search(body):
        return False
    return bool(_EN.search(body) or _ZH.search(body))
