"""JSONL reading: one line splitter and decoder, and the policies built on it.

Every JSONL file the tool reads goes through `iter_lines`; the readers below differ only in
what they do with a bad line: name it (run artifacts), skip and count it (scored records with
`--tolerant`, the report, the benchmark log), and how they treat a torn last line, the trace
of a writer killed mid-line.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import orjson

from coordbench.errors import ArtifactError, DataError
from coordbench.rundir.text import scrub_surrogates

log = logging.getLogger("coordbench")


@dataclass(frozen=True)
class Line:
    """One line of a JSONL file, decoded."""

    number: int  # 1-based
    raw: bytes
    row: dict | None  # the JSON object, or None when the line is blank or not an object
    error: str | None  # why `row` is None (the decoder's message, or "not an object")
    last: bool  # the file's last line
    torn: bool  # the last line of a file that does not end with a newline
    non_object: str | None = None  # the JSON type of a valid line that is not an object

    @property
    def blank(self) -> bool:
        return not self.raw.strip()


def _loads(raw: bytes):
    """orjson, except that a `\\ud800` escape (a lone surrogate, which orjson refuses) is
    read by the stdlib decoder and written back as U+FFFD, as our writers do."""
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError as e:
        if "surrogate" not in str(e):
            raise
        value = json.loads(raw)
    return scrub_surrogates(value)[0]


_NON_FINITE = ("-Infinity", "Infinity", "NaN", "-nan", "nan", "inf", "-inf")


def binary_problem(data: bytes) -> str | None:
    """What a file that is not UTF-8 JSON text is, from its first bytes (None: it may be JSON)."""
    if data[:2] == b"\x1f\x8b":
        return "is gzip-compressed, not JSON text: decompress it first (gunzip -k FILE)"
    if data[:2] in (b"\xff\xfe", b"\xfe\xff") or (len(data) > 1 and b"\x00" in data[:2]):
        return "is UTF-16 text, not UTF-8: save it as UTF-8"
    return None


def decode_problem(raw: bytes, error: Exception) -> str:
    """The decoder's message, with the cause named where it is a common one: a NaN/Infinity
    literal (Python's json.dumps writes them for non-finite floats; JSON has none) or a second
    document after the first (JSON Lines where one JSON document was expected)."""
    msg = str(error)
    pos = getattr(error, "pos", None)
    if not isinstance(pos, int):
        return msg
    text = raw.decode("utf-8", "replace")
    near = text[max(0, pos - 1) : pos + 10]
    for lit in _NON_FINITE:
        if near.startswith(lit) or near[1:].startswith(lit):
            return (
                f"{msg}; `{lit}` is not a JSON number (Python's json.dumps writes it for a "
                "non-finite float): write finite numbers"
            )
    if getattr(error, "msg", "") == "unexpected content after document":
        return (
            f"{msg}; it holds more than one JSON document (JSON Lines / NDJSON?), where one "
            "JSON document was expected"
        )
    return msg


def read_json_document(path: Path) -> object:
    """One JSON document (an input the user gives, e.g. COCO GT or results); any problem is a
    DataError that names the file and the cause (gzip, UTF-16, NaN, JSON Lines)."""
    try:
        data = Path(path).read_bytes()
    except OSError as e:
        raise DataError(f"cannot read {path}: {e.strerror or e}") from None
    problem = binary_problem(data)
    if problem is not None:
        raise DataError(f"{path} {problem}")
    try:
        return orjson.loads(data)
    except orjson.JSONDecodeError as e:
        raise DataError(f"{path} is not valid JSON ({decode_problem(data, e)})") from None


def iter_lines(data: bytes) -> Iterator[Line]:
    """Every line of JSONL bytes (the empty piece after a final newline is not a line)."""
    pieces = data.split(b"\n")
    if pieces and not pieces[-1]:
        pieces.pop()
    torn_possible = not data.endswith(b"\n")
    for n, raw in enumerate(pieces, 1):
        last = n == len(pieces)
        row, error, non_object = None, None, None
        try:
            value = _loads(raw)
        except (orjson.JSONDecodeError, ValueError, RecursionError) as e:
            error = decode_problem(raw, e)
        else:
            if isinstance(value, dict):
                row = value
            else:
                non_object = type(value).__name__
                error = f"a JSON {non_object}, not an object"
        yield Line(n, raw, row, error, last, last and torn_possible, non_object)


def read_jsonl(
    path: Path, *, tolerant_tail: bool = True, require: tuple[str, ...] = ()
) -> tuple[list[dict], int]:
    """Rows (JSON objects) of a run artifact and the byte length of its valid prefix.

    A torn last line (no trailing newline, or invalid JSON) is dropped when `tolerant_tail`;
    any other invalid line, or a row without a `require`d key, is an error naming the file and
    line.
    """
    if not path.exists():
        return [], 0
    rows: list[dict] = []
    good = 0
    for ln in iter_lines(path.read_bytes()):
        error = "no trailing newline" if ln.torn else ln.error
        if error is not None:
            if tolerant_tail and ln.last:
                break
            raise ArtifactError(f"{path}:{ln.number}: invalid JSON line ({error})")
        missing = [k for k in require if k not in ln.row]
        if missing:
            raise ArtifactError(f"{path}:{ln.number}: no {missing[0]!r} in this line")
        rows.append(ln.row)
        good += len(ln.raw) + 1
    return rows, good


def parse_jsonl_lenient(data: bytes) -> tuple[list[dict], int]:
    """JSON-object rows of JSONL bytes and the count of unreadable or non-object lines skipped.

    For readers that must never refuse (the HTML report, the benchmark log); run artifacts use
    `read_jsonl`, which names a corrupt line instead of skipping it.
    """
    rows: list[dict] = []
    skipped = 0
    for ln in iter_lines(data):
        if ln.row is not None:
            rows.append(ln.row)
        elif not ln.blank:
            skipped += 1
    return rows, skipped


def read_records(path: str | Path, *, tolerant: bool = False) -> tuple[list[dict], int]:
    """Records of a scored-records JSONL file and how many lines were skipped.

    A malformed line is a DataError naming file and line, or skipped and counted when
    `tolerant`; a torn last line (no trailing newline) is always skipped and counted.
    """
    p = Path(path)
    try:
        data = p.read_bytes()
    except OSError as e:
        raise DataError(f"cannot read {p}: {e.strerror or e}") from None
    if (problem := binary_problem(data)) is not None:
        raise DataError(f"{p} {problem}")
    recs: list[dict] = []
    skipped = 0
    for ln in iter_lines(data):
        if ln.row is not None:
            recs.append(ln.row)
        elif not ln.blank:
            if not (tolerant or ln.torn):
                raise DataError(
                    f"{p}:{ln.number}: malformed JSONL line ({ln.error}); "
                    "pass --tolerant to skip such lines"
                )
            if ln.torn:
                log.warning("%s:%d: torn last line skipped (no trailing newline)", p, ln.number)
            skipped += 1
    return recs, skipped
