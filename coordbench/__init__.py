"""coordbench: detection benchmark runner for vision-language checkpoints."""

__version__ = "0.1.0"
