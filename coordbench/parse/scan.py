"""Linear-time text scanners behind `coordbench.parse.output` (stdlib only).

Upstream (CoordExp `src/common/prediction_parsing.py`) finds JSON with per-character loops that
restart at every `{`, which is quadratic on adversarial text. These functions return exactly
what those loops return, in one pass each, so a 1 MB model answer parses in milliseconds.
"""

from __future__ import annotations

import re

# upstream token regex `<\|.*?\|>` ([UP-GT-VS-PRED] raw_special_tokens): `.` stops at "\n" only
_SPECIAL_OPEN, _SPECIAL_CLOSE = "<|", "|>"
# coord tokens are content, not chat control; used when deciding whether text is "empty"
_NON_COORD_SPECIAL = re.compile(r"<\|(?!coord_\d{1,4}\|>)[^\n]*?\|>")
# the four characters that change the brace/string state of upstream's block scanner
_INTERESTING = re.compile(r"\{+|\}+|\\+|\"")


def special_tokens(text: str) -> list[str]:
    """Every `<|...|>` occurrence in order, duplicates kept (upstream `raw_special_tokens`).

    Same matches as `re.finditer(r"<\\|.*?\\|>", text)`, without its quadratic rescans.
    """
    out: list[str] = []
    i = text.find(_SPECIAL_OPEN)
    while i != -1:
        j = text.find(_SPECIAL_CLOSE, i + 2)
        if j == -1:
            break  # no closer anywhere after i, so none after any later opener either
        nl = text.find("\n", i + 2, j)
        if nl != -1:  # every opener before that newline fails the same way
            i = text.find(_SPECIAL_OPEN, nl + 1)
            continue
        out.append(text[i : j + 2])
        i = text.find(_SPECIAL_OPEN, j + 2)
    return out


# every family's stop / BOS / pad tokens as the backends may keep them in the text: Qwen's
# `<|im_end|>`, `<|endoftext|>`; Florence-2 / PaliGemma `</s>`, `<s>`, `<pad>`, `<unk>`;
# Gemma 3 / PaliGemma `<eos>`, `<bos>`, `<end_of_turn>`, `<start_of_turn>`
_STOP_TOKENS = re.compile(
    r"<\|(?:im_end|im_start|endoftext|end|eot_id)\|>|</?s>|<pad>|<unk>|<eos>|<bos>"
    r"|<end_of_turn>|<start_of_turn>"
)


def blank_stop_tokens(text: str) -> str:
    """The text with each family's stop/BOS/pad tokens replaced by spaces of the same length:
    they are control tokens, not answer text, and character offsets stay the model's."""
    return _STOP_TOKENS.sub(lambda m: " " * len(m.group()), text)


def strip_control_tokens(text: str) -> str:
    """Text without chat-control specials (`<|im_end|>`, pads) and outer whitespace."""
    return _NON_COORD_SPECIAL.sub("", text).strip()


# a markdown fence marker on its own: ``` with an optional language tag
_BARE_FENCE = re.compile(r"```[ \t]*(?:json|JSON|python)?")


def answer_text(text: str) -> str:
    """What the model said once every family's control tokens are gone (`<|...|>` specials
    other than coord tokens, `</s>`, `<eos>`, `<end_of_turn>`, ...), without outer whitespace:
    the text the status rules (empty, refusal, junk) look at."""
    return strip_control_tokens(blank_stop_tokens(text))


def is_blank(text: str) -> bool:
    """Whether the answer holds nothing: only control tokens, whitespace and markdown fence
    markers (an empty ```json block says nothing is there)."""
    return not _BARE_FENCE.sub("", answer_text(text)).strip()


def _merge(a: list[int] | None, b: list[int] | None) -> list[int] | None:
    """Two pending-start stacks that now scan identically: top-aligned elementwise min."""
    if not b:
        return a or None  # a world with nothing pending can no longer produce an answer
    if not a:
        return b
    if len(a) < len(b):
        a, b = b, a
    for k in range(1, len(b) + 1):
        if b[-k] < a[-k]:
            a[-k] = b[-k]
    return a


_VECTOR_MIN_LEN = 4096  # below this the event loop is faster than numpy's setup


def _block_without_backslash(text: str) -> tuple[int, int] | None:
    """`first_json_block` for text with no backslash, vectorized.

    Without escapes a scan started at p is outside strings at x iff the number of quotes in
    [p, x) is even, so starts split into two worlds by quote parity that never merge; each is
    plain bracket matching over the braces of its parity.
    """
    import numpy as np

    code = np.frombuffer(text.encode("utf-32-le", "surrogatepass"), dtype=np.uint32)
    quote = code == ord('"')
    parity = (np.cumsum(quote) - quote) & 1
    is_open, is_close = code == ord("{"), code == ord("}")
    best: tuple[int, int] | None = None
    for world in (0, 1):
        pos = np.flatnonzero((is_open | is_close) & (parity == world))
        if pos.size == 0:
            continue
        step = np.where(is_open[pos], 1, -1)
        depth = np.cumsum(step)
        # lowest depth reached strictly after each brace
        after = np.append(np.minimum.accumulate(depth[::-1])[::-1][1:], depth.max() + 1)
        closes = (step == 1) & (after <= depth - 1)
        if not closes.any():
            continue
        j = int(np.argmax(closes))
        k = j + 1 + int(np.argmax(depth[j + 1 :] <= depth[j] - 1))
        if best is None or int(pos[j]) < best[0]:
            best = (int(pos[j]), int(pos[k]) + 1)
    return best


def first_json_block(text: str) -> tuple[int, int] | None:
    """Span `[start, end)` of upstream `extract_json_block(text)`, or None.

    Upstream tries every `{` from the left and scans forward (string/escape aware, counting only
    braces) until its depth returns to zero; the first start that closes wins. Scans that reach
    the same string state at the same position behave identically from then on, so at most
    three "worlds" are alive at once: outside a string (`out`), inside (`ins`), inside right
    after a backslash (`esc`). Each keeps a stack of brace levels holding the smallest start
    that closes with that level.
    """
    if len(text) >= _VECTOR_MIN_LEN and "\\" not in text:
        return _block_without_backslash(text)
    out: list[int] | None = None
    ins: list[int] | None = None
    esc: list[int] | None = None
    best: tuple[int, int] | None = None
    prev_end = 0
    for m in _INTERESTING.finditer(text):
        p, run = m.start(), m.group()
        if esc is not None and p > prev_end:  # an ordinary character ends an escape
            ins, esc = _merge(ins, esc), None
        prev_end = m.end()
        c = run[0]
        if c in '"\\':
            out, ins, esc = _string_step(c, len(run), out, ins, esc)
            continue
        if esc is not None:  # the brace is the escaped character
            ins, esc = _merge(ins, esc), None
        if c == "{":
            out = out if out is not None else []
            out.extend(range(p, p + len(run)))  # every `{` starts a candidate, in state `out`
        elif out:
            best = _close(out, p, len(run), best)
            if not out:
                out = None
                if ins is None and esc is None:
                    break  # nothing pending; any later start lies right of `best`
    return best


def _string_step(
    c: str, n: int, out: list[int] | None, ins: list[int] | None, esc: list[int] | None
) -> tuple[list[int] | None, list[int] | None, list[int] | None]:
    """The worlds after a `"` (swaps outside and inside) or a run of `n` backslashes (an odd
    run swaps inside and inside-after-backslash)."""
    if c == '"':
        return ins, _merge(out, esc), None
    return (out, esc, ins) if n % 2 else (out, ins, esc)


def _close(
    stack: list[int], p: int, k: int, best: tuple[int, int] | None
) -> tuple[int, int] | None:
    """Pop `k` levels for the `}` run at `p`; the smallest start among them may beat `best`."""
    seg = stack[-k:]
    del stack[-k:]
    lo = min(seg)
    close = p + (len(seg) - 1 - seg.index(lo))  # the top level closes first
    return (lo, close + 1) if best is None or lo < best[0] else best
