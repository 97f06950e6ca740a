"""Datasets named in a training config (`{"type": ..., "weight": ..., **reader arguments}`), built and mixed."""

from collections.abc import Callable

from torch.utils.data import Dataset

from .jsonl_dataset import JsonlDataset
from .llava_dataset import LlavaDataset
from .mixed_dataset import MixedDataset
from .refseg_dataset import ReferringSegmentationDataset
from .shapes import ShapesDataset


# type → (reader, its required arguments). Paths are `path` (the annotation file) and `root` (media folder).
DATASET_TYPES: dict[str, tuple[Callable[..., Dataset], tuple[str, ...]]] = {
    "jsonl": (lambda path, root=None, num_frames=5, seed=0: JsonlDataset(path, root, num_frames, seed), ("path",)),
    "official": (
        lambda path, root=None, seed=0: ReferringSegmentationDataset(path, image_folder=root, seed=seed),
        ("path",),
    ),
    "llava": (lambda path, root=None: LlavaDataset(path, image_folder=root), ("path",)),
    "shapes": (lambda num_samples=1000, seed=0: ShapesDataset(num_samples=num_samples, seed=seed), ()),
}


def build_dataset(specs: list[dict], num_samples: int | None = None, seed: int = 0) -> Dataset:
    """One dataset from a config's `datasets` list: each entry built by its `type`, then mixed by `weight`.

    Example entry: `{"type": "jsonl", "path": "data/train.jsonl", "root": "data", "weight": 2.0}`; types: `jsonl`
    (our format), `official` (the official fine-tuning JSON), `llava` (LLaVA conversations), `shapes` (synthetic).
    """
    if not specs:
        raise ValueError("`datasets` is empty: name at least one, e.g. {type: jsonl, path: data/train.jsonl}.")
    datasets, weights = [], []
    for index, spec in enumerate(specs):
        kind = spec.get("type")
        if kind not in DATASET_TYPES:
            raise ValueError(f"datasets[{index}]: unknown type {kind!r}; known: {', '.join(sorted(DATASET_TYPES))}.")
        reader, required = DATASET_TYPES[kind]
        arguments = {key: value for key, value in spec.items() if key not in ("type", "weight")}
        missing = [name for name in required if name not in arguments]
        if missing:
            raise ValueError(f"datasets[{index}] ({kind}): missing {', '.join(missing)}.")
        try:
            datasets.append(reader(**arguments))
        except TypeError as error:
            raise ValueError(f"datasets[{index}] ({kind}): {error}") from None
        weights.append(float(spec.get("weight", 1.0)))
    if len(datasets) == 1 and num_samples is None:
        return datasets[0]
    return MixedDataset(datasets, weights, num_samples=num_samples, seed=seed)


__all__ = ["DATASET_TYPES", "build_dataset"]
