"""coordbench: detection benchmark runner for vision-language checkpoints."""

import importlib

__version__ = "0.1.0"


def __getattr__(name: str) -> object:
    """`coordbench.parse_answer` (the notebook API), resolved on first use.

    Every layer imports `coordbench` for `__version__`, so the root package must not import
    any layer at import time; the attribute is looked up by module name when first asked for.
    """
    if name == "parse_answer":
        return importlib.import_module("coordbench.parse.answer").parse_answer
    raise AttributeError(f"module 'coordbench' has no attribute {name!r}")
