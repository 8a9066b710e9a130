"""Refusals: "I don't see any cars in this image" is an empty answer, not a malformed one.

The rule (docs/dialects.md). An answer with no boxes is a refusal when, once the family's control
tokens are blank, it
1. holds no box syntax of its dialect, no JSON or markup (`{`, `[`, `<`) and no digit;
2. is short (at most 400 characters);
3. says that nothing is there:
   - English: the whole answer is "none", "nothing", "no", "no <one to three words>" ("No
     cars.") or "none/nothing found"; or it holds "there is/are/was/were no", "there's no",
     "there is/are zero/nothing", "see/find/detect no", "there isn't/aren't any", "no <thing>
     found/detected/visible/present/in the image", "nothing <...> found/detected/visible/
     present/here", "don't / can't / cannot / couldn't / unable to see/find/detect/locate/
     identify/spot", "not (be) found / detected / visible / present / seen", "does not
     contain", "contains no";
   - Chinese (simplified or traditional): the whole answer is 无; or it holds 没有, 未检测到,
     未发现, 未找到, 未看到, 没看到, 没发现, 未识别, 不存在, 找不到, 看不到, 并无, 并未, 不包含,
     不含, 无任何;
4. and does not also say something else, which makes it a failure to answer in the format:
   - that something *is* there: a contrast ("but", "however", "although", "though", "except",
     "yet", "only", "just", "instead"; 但, 不过, 然而, 却, 只有) or "there is a/an/one/some...",
     "I (can) see a/an/some...";
   - that the model could not look at all: "can't see / view / access / open / load / process
     the image", "no image"; 看不到图片, 无法查看图片, 没有图片 (the image never reached it).
Anything else without boxes stays `malformed`: a baseline answering in the wrong format must
never look like a model that found nothing.
"""

from __future__ import annotations

import re

MAX_REFUSAL_CHARS = 400
_MARKUP = re.compile(r"[{\[<\d]")
_VERB = r"(?:see|find|detect|locate|identify|spot)"
_EN = re.compile(
    r"^\W*(?:none|nothing|no)(?:\s+(?:found|detected|visible|present))?\W*$"
    r"|^\W*no(?:[\s-]+[a-z]+){1,3}\W*$"
    r"|\bthere\s*(?:is|are|was|were|'s)\s+(?:no|zero|nothing)\b"
    r"|\b(?:see|find|found|detect|detected)\s+no\b"
    r"|\bthere\s+(?:isn'?t|aren'?t|wasn'?t|weren'?t|is\s+not|are\s+not)\s+any\b"
    r"|\bno\s+(?:\w+\s+){0,3}(?:found|detected|visible|present|in\s+(?:the|this)\s+(?:image|picture|photo))"
    r"|\bnothing\s+(?:\w+\s+){0,2}(?:found|detected|visible|present|here)\b"
    r"|\b(?:don'?t|do\s+not|doesn'?t|does\s+not|can'?t|cannot|could\s*n'?t|could\s+not|"
    rf"unable\s+to)\s+{_VERB}\b"
    r"|\bnot\s+(?:be\s+)?(?:found|detected|visible|present|seen)\b"
    r"|\b(?:does\s+not|doesn'?t|do\s+not|don'?t)\s+contain\b|\bcontains?\s+no\b",
    re.IGNORECASE,
)
_ZH = re.compile(
    r"^\W*[无無]\W*$"
    r"|[没沒]有|未[检檢]测到|未[检檢]測到|未[发發]现|未[发發]現|未找到|未看到|[没沒]看到|[没沒][发發][现現]"
    r"|未识别|未識別|不存在|找不到|看不到|[并並][无無]|[并並]未|不包含|不含|[无無]任何"
)
# it says more than "nothing is there": something is there, or the image never reached it
_EN_BUT = re.compile(
    r"\b(?:but|however|although|though|except|yet|only|just|instead)\b"
    r"|\bthere\s*(?:is|are|'s)\s+(?:a|an|one|two|three|some|several|many|multiple)\b"
    r"|\bI\s+(?:can\s+)?see\s+(?:a|an|one|two|three|some|several|many|multiple)\b"
    r"|\b(?:see|view|access|open|load|process|analy[sz]e|read)\s+(?:the\s+|this\s+|that\s+|an?\s+|any\s+)?"
    r"(?:image|picture|photo|file)s?\b"
    r"|\bno\s+(?:image|picture|photo)s?\b(?!\s+(?:of|shows))",
    re.IGNORECASE,
)
_ZH_BUT = re.compile(
    r"但|不[过過]|然而|却|卻|只有"
    r"|(?:看不到|看不[见見]|[无無]法[查察]看|[无無]法看到|[无無]法打[开開]|[无無]法[读讀]取|[无無]法[处處]理"
    r"|[没沒]有看到|[没沒]有提供|[没沒]有|未提供)"
    r"(?:[这這]张|[这這]張|[该該]|任何)?(?:[图圖]片|[图圖][像象]|照片|[图圖])(?![中里裡内內上])"
)


def is_refusal(text: str) -> bool:
    """Whether `text` (no boxes were read from it) says only that nothing is there."""
    body = text.strip()
    if not body or len(body) > MAX_REFUSAL_CHARS or _MARKUP.search(body):
        return False
    if not (_EN.search(body) or _ZH.search(body)):
        return False
    return not (_EN_BUT.search(body) or _ZH_BUT.search(body))
