"""coordbench: detection benchmark runner for vision-language checkpoints."""

__version__ = "0.1.0"


def __getattr__(name: str) -> object:
    """`coordbench.parse_answer`, imported on first use so `import coordbench` stays light."""
    if name == "parse_answer":
        from coordbench.parse.answer import parse_answer

        return parse_answer
    raise AttributeError(f"module 'coordbench' has no attribute {name!r}")
