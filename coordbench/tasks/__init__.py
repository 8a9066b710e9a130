"""The task registry: `--task NAME` -> a `Task`, and a run's task from its identity.

`TASKS` maps an implementation name to its `Task`; `configs/task/NAME.toml` presets name an
implementation (`kind`) and its defaults. A run dir written before tasks existed has no `task`
key in its identity and reads as `detection`, whose identity stays as it was (no key), so its
hash and every derived file are unchanged. [ARCH-TASKS]
"""

from __future__ import annotations

from dataclasses import replace
from functools import partial
from typing import Any

from coordbench.config.presets import list_presets, load_task_preset
from coordbench.errors import ConfigError
from coordbench.tasks.base import Metric, Task
from coordbench.tasks.detection import DETECTION
from coordbench.tasks.grounding import GROUNDING
from coordbench.tasks.lvis import LVIS
from coordbench.tasks.odinw import ODINW

DEFAULT_TASK = "detection"

TASKS: dict[str, Task] = {
    DETECTION.name: DETECTION,
    GROUNDING.name: GROUNDING,
    LVIS.name: LVIS,
    ODINW.name: ODINW,
}

__all__ = [
    "DEFAULT_TASK",
    "TASKS",
    "Metric",
    "Task",
    "get_task",
    "task_of",
    "task_identity",
    "with_protocol",
]


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
        options=dict(preset.protocol or impl.options),
    )


def with_protocol(task: Task, protocol: dict[str, Any] | None) -> Task:
    """The task with a run's protocol bound into its scorer (a task that declares one)."""
    if task.resolve_protocol is None or protocol is None:
        return task
    return replace(task, options=dict(protocol), score=partial(task.score, protocol=protocol))


def task_names() -> list[str]:
    return list_presets("task")


def task_of(identity: Any) -> Task:
    """The task a run was made with, from its identity; none recorded means detection."""
    name = identity.get("task") if isinstance(identity, dict) else None
    task = get_task(name if isinstance(name, str) else None)
    protocol = identity.get("protocol") if isinstance(identity, dict) else None
    return with_protocol(task, protocol if isinstance(protocol, dict) else None)


def task_identity(task: Task, protocol: dict[str, Any] | None = None) -> dict[str, Any]:
    """The identity entries of a task: none for detection (so its hash is what it always was),
    `{"task": name}` for every other task, and `protocol` for a task that declares one."""
    out: dict[str, Any] = {} if task.name == DEFAULT_TASK else {"task": task.name}
    if protocol is not None:
        out["protocol"] = protocol
    return out
