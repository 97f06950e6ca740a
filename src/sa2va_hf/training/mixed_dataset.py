"""Co-training mixture: draw samples from several datasets in chosen proportions."""

from collections.abc import Sequence

import numpy as np
from torch.utils.data import Dataset


class MixedDataset(Dataset):
    r"""
    A fixed, seeded mixture of datasets, as the official Sa2VA co-trains referring segmentation, video segmentation,
    question answering, grounded captions and visual prompts.

    Position `i` of the mixture takes its source dataset from a draw with probabilities proportional to `weights`;
    within a source, samples are visited in a seeded random order, every sample once before any repeats. The plan is
    made once, at construction, from `seed`, so the mixture is the same in every process and every run.

    Args:
        datasets (`Sequence[Dataset]`): the sources, each non-empty.
        weights (`Sequence[float]`): one non-negative weight per source (normalised; at least one positive).
        num_samples (`int`, *optional*): the mixture's length (default: the sum of the sources' lengths).
        seed (`int`, *optional*, defaults to 0): seeds the plan.

    Example:

    ```python
    >>> mixture = MixedDataset([refseg, llava], weights=[3, 1], num_samples=10_000)
    >>> mixture.source(0)  # (dataset position, sample index) behind mixture[0]
    ```
    """

    def __init__(
        self,
        datasets: Sequence[Dataset],
        weights: Sequence[float],
        num_samples: int | None = None,
        seed: int = 0,
    ):
        self.datasets = list(datasets)
        if not self.datasets:
            raise ValueError("`datasets` is empty; give at least one dataset to mix.")
        if len(weights) != len(self.datasets):
            raise ValueError(f"`weights` has {len(weights)} entries for {len(self.datasets)} datasets; give one each.")
        probabilities = np.asarray(weights, dtype=float)
        if not np.all(np.isfinite(probabilities)) or np.any(probabilities < 0) or probabilities.sum() <= 0:
            raise ValueError(f"`weights` must be non-negative with a positive sum, got {list(weights)}.")
        lengths = [len(dataset) for dataset in self.datasets]
        empty = [position for position, length in enumerate(lengths) if length == 0]
        if empty:
            raise ValueError(f"datasets at positions {empty} are empty; drop them or give them data.")
        self.num_samples = sum(lengths) if num_samples is None else num_samples
        if self.num_samples < 1:
            raise ValueError(f"`num_samples` must be positive, got {num_samples}.")
        rng = np.random.default_rng(seed)
        self.dataset_ids = rng.choice(len(self.datasets), size=self.num_samples, p=probabilities / probabilities.sum())
        self.sample_ids = np.zeros(self.num_samples, dtype=np.int64)
        for position, length in enumerate(lengths):
            slots = np.flatnonzero(self.dataset_ids == position)
            for start in range(0, len(slots), length):
                self.sample_ids[slots[start : start + length]] = rng.permutation(length)[: len(slots) - start]

    def __len__(self) -> int:
        return self.num_samples

    def source(self, index: int) -> tuple[int, int]:
        """`(position of the dataset in datasets, index in that dataset)` of mixture sample `index`."""
        if not -self.num_samples <= index < self.num_samples:
            raise IndexError(f"index {index} is out of range for a mixture of {self.num_samples} samples.")
        return int(self.dataset_ids[index]), int(self.sample_ids[index])

    def __getitem__(self, index: int) -> dict:
        position, sample_index = self.source(index)
        return self.datasets[position][sample_index]


__all__ = ["MixedDataset"]
