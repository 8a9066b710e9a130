"""What a command may delete or write over: only the one run dir it was told to replace.

A run dir is recognised by its own `run.json` (a JSON object with an `identity_hash`), never by
its name or by a file that any folder might hold. `--overwrite` clears such a dir and nothing
else; a folder without one is refused unless it holds only what an aborted start of coordbench
leaves (the lock, temp files of atomic writes). Commands that write a file refuse a destination
that is one of their own inputs. [ARCH-SAFETY]
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterable
from pathlib import Path

import orjson

from coordbench.errors import ArtifactError
from coordbench.rundir.layout import GT_VS_PRED, LOCK, RUN_JSON, SHARDS_DIR, TRACE


def run_json_identity(run_dir: Path) -> str | None:
    """The identity hash of the run in `run_dir`, or None when it holds no readable run.json."""
    try:
        head = orjson.loads((Path(run_dir) / RUN_JSON).read_bytes())
    except (OSError, orjson.JSONDecodeError):
        return None
    h = head.get("identity_hash") if isinstance(head, dict) else None
    return h if isinstance(h, str) else None


def is_run_dir(folder: Path) -> bool:
    """A run dir: its run.json names an identity, or is torn beside the run's own record files
    (resume then explains the damage)."""
    folder = Path(folder)
    if run_json_identity(folder) is not None:
        return True
    return (folder / RUN_JSON).is_file() and any(
        (folder / n).is_file() for n in (GT_VS_PRED, TRACE)
    )


def _leftovers_only(folder: Path) -> bool:
    """Only the lock and temp files of atomic writes (`.NAME.tmp.PID`): an aborted start."""
    return all(p.name in (LOCK, SHARDS_DIR) or ".tmp." in p.name for p in folder.iterdir())


def check_replaceable(folder: Path, what: str = "run dir") -> None:
    """Refuse to clear `folder` unless it is a run dir (its own run.json), empty, or holds only
    the leftovers of an aborted start."""
    folder = Path(folder)
    if not folder.exists():
        return
    if not folder.is_dir():
        raise ArtifactError(f"refusing to replace {folder}: it is a file, not a {what}")
    if os.path.islink(folder):
        raise ArtifactError(f"refusing to replace {folder}: it is a symbolic link")
    if not is_run_dir(folder) and not _leftovers_only(folder):
        raise ArtifactError(
            f"refusing to use {folder} as a {what}: it is not one (no readable {RUN_JSON}) and "
            "holds other files, which coordbench never deletes or writes over; choose another "
            "--name or --out"
        )


def clear_run_dir(folder: Path, keep: tuple[str, ...] = ()) -> None:
    """Delete the contents of one run dir (checked by `check_replaceable`), keeping the lock held
    by the caller and the names in `keep`. Links inside are removed, never followed."""
    folder = Path(folder)
    check_replaceable(folder)
    for p in folder.iterdir() if folder.is_dir() else ():
        if p.name == LOCK or p.name in keep:
            continue
        if p.is_dir() and not p.is_symlink():
            shutil.rmtree(p)
        else:
            p.unlink()


def _same_file(a: Path, b: Path) -> bool:
    try:
        return os.path.samefile(a, b)
    except OSError:
        return Path(os.path.abspath(a)) == Path(os.path.abspath(b))


def refuse_input_as_output(dest: Path, inputs: Iterable[Path], flag: str = "--out") -> None:
    """Refuse a destination that is (a link to) one of the command's inputs."""
    for src in inputs:
        if Path(src).exists() and _same_file(Path(dest), Path(src)):
            raise ArtifactError(
                f"{flag} {dest} is an input of this command ({src}); writing it would destroy "
                "that input: choose another path"
            )


def refuse_inside_run_dir(dest: Path, run_dir: Path, flag: str = "--out") -> None:
    """Refuse an existing file inside a run dir as a destination: every file there is either an
    input or an artifact of the run, and none may be written over by another command."""
    dest, run_dir = Path(dest), Path(run_dir)
    if not dest.exists():
        return
    try:
        inside = Path(os.path.realpath(dest)).parent.is_relative_to(os.path.realpath(run_dir))
    except OSError:
        inside = False
    if inside and dest.name != "coco_results.json":
        raise ArtifactError(
            f"{flag} {dest} is a file of the run dir {run_dir}; writing it would replace that "
            "file: choose a path outside the run dir or a new file name"
        )
