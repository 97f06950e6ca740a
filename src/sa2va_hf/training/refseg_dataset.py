"""The official Sa2VA fine-tuning annotations: an image, polygon masks and one description per mask."""

import os
from pathlib import Path

import numpy as np
from torch.utils.data import Dataset

from .annotation_files import read_json_list
from .masks import decode_mask
from .media import open_image
from .samples import validate_sample
from .templates import referring_conversation


class ReferringSegmentationDataset(Dataset):
    r"""
    Referring segmentation samples from the official Sa2VA fine-tuning file (`annotations.json`).

    The file is a JSON list of `{"image": "name.jpg", "mask": [[polygon, ...], ...], "text": ["description", ...]}`:
    one polygon list (`[x1, y1, x2, y2, ...]` rings in pixels) and one description per object. Each record becomes a
    conversation with one question per object ("Please segment {description} in this image.") answered with one
    `[SEG]` ("Sure, [SEG]."), the wordings drawn from `templates.py` by `(seed, index)`, and the masks in the same
    order, shape `(num_objects, 1, height, width)`.

    Args:
        annotation_file (`str` or `os.PathLike`): the JSON list.
        image_folder (`str` or `os.PathLike`, *optional*): where the images are (default: the file's folder).
        seed (`int`, *optional*, defaults to 0): seeds the wording draw together with the sample index.
    """

    def __init__(
        self, annotation_file: str | os.PathLike, image_folder: str | os.PathLike | None = None, seed: int = 0
    ):
        self.annotation_file = Path(annotation_file)
        self.image_folder = Path(image_folder) if image_folder is not None else self.annotation_file.parent
        self.seed = seed
        self.records = read_json_list(self.annotation_file)

    def __len__(self) -> int:
        return len(self.records)

    def __getitem__(self, index: int) -> dict:
        record = self.records[index]
        if not isinstance(record, dict) or not {"image", "mask", "text"} <= set(record):
            raise ValueError(f"sample {index}: expected an object with 'image', 'mask' and 'text'.")
        objects, phrases = record["mask"], record["text"]
        if not isinstance(objects, list) or not isinstance(phrases, list) or len(objects) != len(phrases):
            raise ValueError(
                f"sample {index}: field 'text': expected one description per mask, got "
                f"{_length(phrases)} descriptions for {_length(objects)} masks."
            )
        if not objects:
            raise ValueError(f"sample {index}: field 'mask': the record has no object to segment.")
        for k, phrase in enumerate(phrases):
            if not isinstance(phrase, str) or not phrase.strip():
                raise ValueError(f"sample {index}: field 'text'[{k}]: expected a non-empty description.")
        image = open_image(self.image_folder, record["image"], index, "'image'")
        masks = np.zeros((len(objects), 1, image.height, image.width), dtype=bool)
        for k, polygons in enumerate(objects):
            try:
                masks[k, 0] = decode_mask(polygons, image.height, image.width)
            except ValueError as error:
                raise ValueError(f"sample {index}: field 'mask'[{k}]: {error}") from error
        rng = np.random.default_rng((self.seed, index))
        sample = {
            "image": image,
            "conversation": referring_conversation(phrases, rng),
            "masks": masks,
            "mask_prompts": None,
        }
        return validate_sample(sample, index)


def _length(value) -> int | str:
    return len(value) if isinstance(value, list) else type(value).__name__


__all__ = ["ReferringSegmentationDataset"]
