"""Text that every artifact can hold: lone surrogates (not UTF-8) replaced by U+FFFD."""

from __future__ import annotations

import re
from typing import Any

_SURROGATE = re.compile("[\ud800-\udfff]")  # in a Python str every surrogate left is a lone one
REPLACEMENT = "\ufffd"


def scrub_surrogates(obj: Any) -> tuple[Any, int]:
    """`obj` with every lone surrogate (keys and values) replaced by U+FFFD, and how many were.

    A JSON escape such as `\\ud800` in a model answer decodes to a str that is not valid UTF-8;
    orjson then refuses the whole record, and with it the batch. Returns `obj` itself when clean.
    """
    if isinstance(obj, str):
        return _SURROGATE.subn(REPLACEMENT, obj)
    if isinstance(obj, dict):
        n, out = 0, {}
        for k, v in obj.items():
            k2, a = scrub_surrogates(k)
            v2, b = scrub_surrogates(v)
            out[k2], n = v2, n + a + b
        return (out if n else obj), n
    if isinstance(obj, list | tuple):
        pairs = [scrub_surrogates(v) for v in obj]
        n = sum(c for _, c in pairs)
        return ([v for v, _ in pairs] if n else obj), n
    return obj, 0
