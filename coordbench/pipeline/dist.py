"""Data parallelism under torchrun / accelerate launch, and shard folders."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from coordbench.backends.registry import accelerate_state
from coordbench.config.run import Shard
from coordbench.errors import ConfigError
from coordbench.rundir.layout import RunDir


@dataclass
class Dist:
    rank: int = 0
    world: int = 1
    local_rank: int = 0
    state: Any = None

    @property
    def enabled(self) -> bool:
        return self.world > 1

    def barrier(self) -> None:
        if self.state is not None:
            self.state.wait_for_everyone()


def detect_dist() -> Dist:
    """torchrun / accelerate launch data parallel; PartialState(cpu=True) + gloo without CUDA."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return Dist()
    state = accelerate_state()
    if state.num_processes != world:  # [ARCH-DATA-PARALLEL]: silently duplicated work otherwise
        raise ConfigError(
            f"launcher reports WORLD_SIZE={world} "
            f"but accelerate sees {state.num_processes} processes"
        )
    return Dist(state.process_index, state.num_processes, state.local_process_index, state)


def shard_dir(run_dir: Path, shard: Shard) -> Path:
    return RunDir(run_dir).shard(shard.index, shard.count).root
