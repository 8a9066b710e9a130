"""CSV cells safe to open in a spreadsheet, and a reader that takes any field size.

Class names come from the data set and from model answers, so a cell may be hostile: a class
named `=HYPERLINK("http://...")` would run as a formula in Excel or LibreOffice. As OWASP
recommends, a text cell starting with `= + - @` (or tab / carriage return) gets a leading `'`;
numbers are left alone (`-1` stays a number). `restore_cell` undoes it for our own readers.
The csv module refuses fields over 128 KiB by default; our readers lift that limit, since a
50 MB class name must still give a report (pages truncate long text themselves).
"""

from __future__ import annotations

import csv
import io
import re
import sys
from collections.abc import Iterator
from typing import Any

FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")
EMPTY_NAME = "(empty)"


def visible_controls(text: str) -> str:
    """Control characters written as visible `\\xNN` escapes (a class name from a model
    answer may hold a bell or an escape sequence that would corrupt a terminal or a page)."""
    return _CONTROL.sub(lambda m: f"\\x{ord(m.group()):02x}", text)


def class_label(name: Any) -> str:
    """A class name as the eval files and the report print it: control characters visible,
    an empty name as `(empty)`."""
    text = visible_controls(str(name))
    return text if text.strip() else EMPTY_NAME


def safe_cell(value: Any) -> Any:
    """`value`, with a `'` in front when it is text a spreadsheet would run as a formula."""
    if isinstance(value, str) and value.startswith(FORMULA_START) and not _is_number(value):
        return "'" + value
    return value


def restore_cell(text: str) -> str:
    """The original text of a cell written by `safe_cell`."""
    if text.startswith("'") and text[1:].startswith(FORMULA_START) and not _is_number(text[1:]):
        return text[1:]
    return text


def dict_rows(text: str) -> Iterator[dict[str, str]]:
    """csv.DictReader over `text` without the 128 KiB field limit."""
    limit = csv.field_size_limit()
    csv.field_size_limit(min(sys.maxsize, 2**31 - 1))
    try:
        yield from csv.DictReader(io.StringIO(text))
    finally:
        csv.field_size_limit(limit)
