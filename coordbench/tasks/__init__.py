"""The task registry: `--task NAME` -> a `Task`, and a run's task from its identity.

`TASKS` maps an implementation name to its `Task`; `configs/task/NAME.toml` presets name an
implementation (`kind`) and its defaults. A run dir written before tasks existed has no `task`
key in its identity and reads as `detection`, whose identity stays as it was (no key), so its
hash and every derived file are unchanged. [ARCH-TASKS]
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from coordbench.config.presets import list_presets, load_task_preset
from coordbench.errors import ConfigError
from coordbench.tasks.base import Metric, Task
from coordbench.tasks.detection import DETECTION
from coordbench.tasks.grounding import GROUNDING
from coordbench.tasks.lvis import LVIS

DEFAULT_TASK = "detection"

TASKS: dict[str, Task] = {
    DETECTION.name: DETECTION,
    GROUNDING.name: GROUNDING,
    LVIS.name: LVIS,
}

__all__ = ["DEFAULT_TASK", "TASKS", "Metric", "Task", "get_task", "task_of", "task_identity"]


def get_task(name: str | None) -> Task:
    """The task of a preset name (`configs/task/NAME.toml`); None is the default task."""
    name = name or DEFAULT_TASK
    try:
        preset = load_task_preset(name)
    except ConfigError as e:
        raise ConfigError(f"--task: {e}") from None
    impl = TASKS.get(preset.kind)
    if impl is None:
        raise ConfigError(
            f"task preset {name!r}: unknown kind {preset.kind!r}; known: {', '.join(TASKS)}"
        )
    return replace(
        impl,
        name=preset.name,
        description=preset.description or impl.description,
        default_prompt=preset.prompt or impl.default_prompt,
    )


def task_names() -> list[str]:
    return list_presets("task")


def task_of(identity: Any) -> Task:
    """The task a run was made with, from its identity; none recorded means detection."""
    name = identity.get("task") if isinstance(identity, dict) else None
    return get_task(name if isinstance(name, str) else None)


def task_identity(task: Task) -> dict[str, Any]:
    """The identity entries of a task: none for detection (so its hash is what it always was),
    `{"task": name}` for every other task."""
    return {} if task.name == DEFAULT_TASK else {"task": task.name}
