"""Exceptions with messages that name the culprit; the CLI prints them as one line, no traceback."""

from __future__ import annotations


class CoordbenchError(Exception):
    """Base class: anything the user can fix; the CLI prints `error: <message>` and exits 2."""


class DataError(CoordbenchError):
    """A dataset file, record or image is missing or invalid."""


class ConfigError(CoordbenchError):
    """A preset, option or config file is unknown or invalid."""


class CheckpointError(CoordbenchError):
    """A checkpoint directory is missing, unsafe or of the wrong family."""


class BackendError(CoordbenchError):
    """A backend cannot honour a request (e.g. an unsupported generation parameter)."""


class ArtifactError(CoordbenchError):
    """A run-directory artifact is missing, torn or inconsistent."""


class ResumeError(CoordbenchError):
    """A run directory cannot be resumed (identity changed, locked by another process)."""
