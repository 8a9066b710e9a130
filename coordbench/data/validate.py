"""`coordbench data jsonl PATH`: check a dataset file against the contract and its image files.

Collects every problem instead of stopping at the first (as upstream's `validate_jsonl.py`):
structure and coordinates through the loader's own `parse_record`, image sizes from the file
headers (or a full decode with `decode=True`), unknown keys as warnings, and optionally the
preset grid (`factor`, `max_pixels`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from coordbench.data.dataset import (
    KNOWN_OBJECT_KEYS,
    KNOWN_RECORD_KEYS,
    detect_frame,
    open_image,
    parse_record,
    read_dataset_lines,
)
from coordbench.data.images import exif_note, read_size
from coordbench.errors import DataError

MAX_MESSAGES = 50  # per list; the counts stay exact


@dataclass
class ValidationReport:
    path: str
    frame: str = ""
    records: int = 0
    objects: int = 0
    empty_records: int = 0
    off_grid: int = 0  # width or height not a multiple of `factor`
    over_budget: int = 0  # width * height > max_pixels
    clamped: int = 0  # pixel boxes outside the image, clamped into it (as upstream reads them)
    n_errors: int = 0
    n_warnings: int = 0
    errors: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.n_errors == 0

    def error(self, msg: str) -> None:
        self.n_errors += 1
        if len(self.errors) < MAX_MESSAGES:
            self.errors.append(msg)

    def warn(self, msg: str) -> None:
        self.n_warnings += 1
        if len(self.warnings) < MAX_MESSAGES:
            self.warnings.append(msg)

    def summary(self) -> str:
        lines = [
            f"{self.path}: {'OK' if self.ok else 'INVALID'} ({self.frame} frame)",
            f"  records {self.records} (no objects: {self.empty_records}), objects {self.objects}",
        ]
        if self.clamped:
            lines.append(f"  boxes outside their image (clamped): {self.clamped}")
        if self.off_grid or self.over_budget:
            lines.append(
                f"  not on the preset grid: {self.off_grid}, "
                f"over the pixel budget: {self.over_budget}"
            )
        for title, n, msgs in (
            ("errors", self.n_errors, self.errors),
            ("warnings", self.n_warnings, self.warnings),
        ):
            if n:
                more = f" (first {len(msgs)} shown)" if n > len(msgs) else ""
                lines += [f"  {title}: {n}{more}"] + [f"    - {m}" for m in msgs]
        return "\n".join(lines)


def _check_keys(rec: dict, line: int, report: ValidationReport) -> None:
    unknown = sorted(set(rec) - KNOWN_RECORD_KEYS)
    if unknown:
        report.warn(f"line {line}: unknown record keys {unknown}")
    objects = rec.get("objects") if isinstance(rec.get("objects"), list) else []
    unknown_obj = sorted({k for o in objects if isinstance(o, dict) for k in o} - KNOWN_OBJECT_KEYS)
    if unknown_obj:
        report.warn(f"line {line}: unknown object keys {unknown_obj}")


def validate_jsonl(
    path: str | Path,
    *,
    check_images: bool = True,
    decode: bool = False,
    factor: int | None = None,
    max_pixels: int | None = None,
    image_root: str | Path | None = None,
) -> ValidationReport:
    """Validate every record of a dataset JSONL; never raises for problems inside the file."""
    path = Path(path)
    report = ValidationReport(str(path))
    json_errors: list[str] = []
    rows = read_dataset_lines(path, errors=json_errors)  # a missing file still raises DataError
    for msg in json_errors:
        report.error(msg)
    report.frame = detect_frame(path, [r for _, _, r in rows])
    seen: dict[str, int] = {}
    for index, (line, _, rec) in enumerate(rows):
        report.records += 1
        _check_keys(rec, line, report)
        notes: list[str] = []
        try:
            s = parse_record(
                rec,
                path=path,
                line=line,
                index=index,
                frame=report.frame,
                notes=notes,
                image_root=image_root,
            )
        except DataError as e:
            report.error(str(e))
            continue
        for note in notes:
            report.clamped += 1
            report.warn(note)
        report.objects += len(s.boxes)
        report.empty_records += not s.boxes
        if s.sample_id in seen:
            report.error(
                f"line {line}: duplicate sample id {s.sample_id!r} "
                f"(first on line {seen[s.sample_id]})"
            )
        seen.setdefault(s.sample_id, line)
        report.off_grid += bool(factor) and (s.width % factor != 0 or s.height % factor != 0)
        report.over_budget += bool(max_pixels) and s.width * s.height > max_pixels
        if check_images:
            _check_image(s, line, decode, report)
    if report.records == 0 and not json_errors:
        report.error(f"{path}: no records (the dataset is empty)")
    return report


def _check_image(s, line: int, decode: bool, report: ValidationReport) -> None:
    if decode:
        try:
            open_image(s)
        except DataError as e:
            report.error(f"line {line}: {e}")
        return
    try:
        size = read_size(s.image_path, who=f" (sample {s.sample_id})")
    except DataError as e:
        report.error(f"line {line}: {e}")
        return
    if size != (s.width, s.height):
        report.error(
            f"line {line}: image {s.image_path} is {size[0]}x{size[1]} but the record says "
            f"{s.width}x{s.height} (sample {s.sample_id}); {exif_note(s.image_path)}"
        )
