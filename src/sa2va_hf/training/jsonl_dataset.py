"""The sa2va-hf training format: one JSON object per line, an image, frames or a video, a conversation and masks."""

import os
from pathlib import Path

import numpy as np
from torch.utils.data import Dataset

from .annotation_files import check_record_keys, read_json_lines
from .masks import decode_mask
from .media import open_image, open_video, sample_frame_indices
from .samples import normalize_conversation, validate_sample


MEDIA_KEYS = ("image", "frames", "video")
RECORD_KEYS = {*MEDIA_KEYS, "conversations", "masks", "mask_prompts", "id"}


class JsonlDataset(Dataset):
    r"""
    Training samples from a JSON-lines file (the format is described in the README, "Training data format").

    Each line holds at most one of `"image"` (a path), `"frames"` (a list of paths) or `"video"` (a video file or a
    folder of frames, read with `load_frames`), all relative to `root`; `"conversations"` (LLaVA-style
    `{"from": "human" | "gpt", "value"}` or `{"role", "content"}` turns); `"masks"`, one entry per `[SEG]` in order,
    each a list with one mask per frame of the image or video (COCO RLE, polygons, or `null` where the object is
    absent); optionally `"mask_prompts"`, one mask per visual-prompt region of the image; and optionally `"id"`.
    Media are opened in `__getitem__`; every sample goes through `validate_sample`.

    Args:
        path (`str` or `os.PathLike`): the `.jsonl` file.
        root (`str` or `os.PathLike`, *optional*): the folder media paths are relative to (default: the file's folder).
        num_frames (`int` or `None`, *optional*, defaults to 5): frames kept per video sample, drawn as the official
            training does (see `sample_frame_indices`); `None` keeps every frame.
        seed (`int`, *optional*, defaults to 0): seeds the frame draw together with the sample index.

    Example:

    ```python
    >>> dataset = JsonlDataset("data/train.jsonl")
    >>> sample = dataset[0]
    >>> sample["masks"].shape  # (num_objects, num_frames, height, width)
    ```
    """

    def __init__(
        self,
        path: str | os.PathLike,
        root: str | os.PathLike | None = None,
        num_frames: int | None = 5,
        seed: int = 0,
    ):
        self.path = Path(path)
        self.root = Path(root) if root is not None else self.path.parent
        if num_frames is not None and num_frames < 1:
            raise ValueError(f"`num_frames` must be a positive number of frames or None (all), got {num_frames}.")
        self.num_frames = num_frames
        self.seed = seed
        self.records = read_json_lines(self.path)
        for index, record in enumerate(self.records):
            check_record_keys(record, RECORD_KEYS, index)
            media = [key for key in MEDIA_KEYS if key in record]
            if len(media) > 1:
                raise ValueError(f"sample {index}: field '{media[1]}': give one of {list(MEDIA_KEYS)}, not {media}.")

    def __len__(self) -> int:
        return len(self.records)

    def __getitem__(self, index: int) -> dict:
        record = self.records[index]
        sample, frame_ids, record_frames = self._load_media(record, index)
        sample["conversation"] = normalize_conversation(record.get("conversations"), index)
        if "image" in sample or "frames" in sample:
            first = sample["image"] if "image" in sample else sample["frames"][0]
            size = (first.height, first.width)
            sample["masks"] = self._decode_masks(record.get("masks", []), frame_ids, record_frames, size, index)
            sample["mask_prompts"] = self._decode_mask_prompts(record.get("mask_prompts"), size, index)
        else:
            for key in ("masks", "mask_prompts"):
                if record.get(key):
                    raise ValueError(f"sample {index}: field '{key}': given for a sample without an image or frames.")
            sample["masks"] = np.zeros((0, 1, 1, 1), dtype=bool)
            sample["mask_prompts"] = None
        return validate_sample(sample, index)

    def _load_media(self, record: dict, index: int) -> tuple[dict, list[int], int]:
        """The sample's `image` or sampled `frames`, which of the record's frames they are, and how many it has."""
        if "image" in record:
            return {"image": open_image(self.root, record["image"], index, "'image'")}, [0], 1
        if "frames" in record:
            paths = record["frames"]
            if not isinstance(paths, list) or not paths:
                raise ValueError(f"sample {index}: field 'frames': expected a non-empty list of frame paths.")
            frame_ids = sample_frame_indices(len(paths), self.num_frames, self.seed, index)
            frames = [open_image(self.root, paths[i], index, f"'frames'[{i}]") for i in frame_ids]
            return {"frames": frames}, frame_ids, len(paths)
        if "video" in record:
            video = open_video(self.root, record["video"], index, "'video'")
            frame_ids = sample_frame_indices(len(video), self.num_frames, self.seed, index)
            return {"frames": [video[i] for i in frame_ids]}, frame_ids, len(video)
        return {}, [], 0

    @staticmethod
    def _decode_masks(
        entries, frame_ids: list[int], record_frames: int, size: tuple[int, int], index: int
    ) -> np.ndarray:
        """`(num_objects, num_frames, height, width)` bool: each object's masks on the kept frames."""
        if not isinstance(entries, list):
            raise ValueError(f"sample {index}: field 'masks': expected a list with one entry per [SEG].")
        masks = np.zeros((len(entries), len(frame_ids), *size), dtype=bool)
        for k, per_frame in enumerate(entries):
            if not isinstance(per_frame, list) or len(per_frame) != record_frames:
                got = len(per_frame) if isinstance(per_frame, list) else type(per_frame).__name__
                raise ValueError(
                    f"sample {index}: field 'masks'[{k}]: expected a list of {record_frames} mask(s), one per frame "
                    f"(an image has 1), got {got}."
                )
            for j, frame_id in enumerate(frame_ids):
                masks[k, j] = _decode_at(per_frame[frame_id], size, index, f"'masks'[{k}][{frame_id}]")
        return masks

    @staticmethod
    def _decode_mask_prompts(entries, size: tuple[int, int], index: int) -> np.ndarray | None:
        """`(num_regions, height, width)` bool, or `None` without visual prompts."""
        if entries is None:
            return None
        if not isinstance(entries, list) or not entries:
            raise ValueError(f"sample {index}: field 'mask_prompts': expected a non-empty list, one mask per region.")
        return np.stack([_decode_at(entry, size, index, f"'mask_prompts'[{r}]") for r, entry in enumerate(entries)])


def _decode_at(encoded, size: tuple[int, int], index: int, field: str) -> np.ndarray:
    try:
        return decode_mask(encoded, *size)
    except ValueError as error:
        raise ValueError(f"sample {index}: field {field}: {error}") from error


__all__ = ["JsonlDataset"]
