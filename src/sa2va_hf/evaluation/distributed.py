"""Sharding evaluation items across the processes of `accelerate launch`, and gathering their records on rank 0.

One process (plain `python`, CPU or one GPU) is the one-shard case of the same code. Several processes on one
machine: `accelerate launch --multi_gpu --num_processes N -m sa2va_hf.evaluation.<runner> ...` (or `torchrun`); on a
machine without CUDA (or with `ACCELERATE_USE_CPU=1`) the processes talk over gloo on the CPU. Note that
`accelerate launch --cpu --num_processes N` starts only one process.
"""

import logging
import os
from collections.abc import Sequence
from typing import Any

from accelerate import PartialState
from accelerate.utils import gather_object, parse_flag_from_env


logger = logging.getLogger(__name__)


class Shard:
    """This process's share of an evaluation: `items[rank::world_size]`, and the gather of everyone's results.

    Args:
        cpu (`bool`, *optional*): run on the CPU (gloo between processes). Defaults to True when CUDA is unavailable
            or `ACCELERATE_USE_CPU` is set.
    """

    def __init__(self, cpu: bool | None = None) -> None:
        if cpu is None:
            import torch

            cpu = parse_flag_from_env("ACCELERATE_USE_CPU") or not torch.cuda.is_available()
        self.state = PartialState(cpu=cpu)
        if self.world_size > 1:
            logger.info("rank %d of %d on %s (pid %d)", self.rank, self.world_size, self.device, os.getpid())

    @property
    def rank(self) -> int:
        """The index of this process."""
        return self.state.process_index

    @property
    def world_size(self) -> int:
        """The number of processes."""
        return self.state.num_processes

    @property
    def is_main(self) -> bool:
        """Whether this is rank 0 (the one that aggregates and writes the results)."""
        return self.state.is_main_process

    @property
    def device(self) -> str:
        """The device `accelerate` assigned to this process (e.g. `"cuda:1"`, `"cpu"`)."""
        return str(self.state.device)

    def split(self, items: Sequence[Any]) -> list[Any]:
        """This rank's items: every `world_size`-th one starting at `rank` (deterministic, balanced to one item)."""
        return list(items[self.rank :: self.world_size])

    def gather(self, records: list[Any]) -> list[Any]:
        """Concatenate every rank's `records` (picklable) in rank order; every rank receives the full list."""
        if self.world_size == 1:
            return list(records)
        return gather_object(records)

    def barrier(self) -> None:
        """Wait until every rank reaches this point."""
        self.state.wait_for_everyone()
