"""LLaVA-style instruction data: a JSON list of conversations, with or without an image, and no masks."""

import os
from pathlib import Path

import numpy as np
from torch.utils.data import Dataset

from ..models.sa2va.chat_templates_sa2va import IMAGE_PLACEHOLDER
from .annotation_files import check_record_keys, read_json_list
from .media import open_image
from .samples import normalize_conversation, validate_sample


RECORD_KEYS = {"id", "image", "conversations"}


class LlavaDataset(Dataset):
    r"""
    Question-answering samples in the LLaVA format (e.g. LLaVA-665k), which the official Sa2VA co-trains with.

    The file is a JSON list of `{"id"?, "image"?, "conversations": [{"from": "human" | "gpt", "value": ...}, ...]}`.
    As LLaVA does, an `<image>` written anywhere in the first human turn moves to its start (`"<image>\n" + rest`).
    Samples carry no `[SEG]`: masks are `(0, 1, height, width)`, or `(0, 1, 1, 1)` for text-only records.

    Args:
        annotation_file (`str` or `os.PathLike`): the JSON list.
        image_folder (`str` or `os.PathLike`, *optional*): where the images are (default: the file's folder).
    """

    def __init__(self, annotation_file: str | os.PathLike, image_folder: str | os.PathLike | None = None):
        self.annotation_file = Path(annotation_file)
        self.image_folder = Path(image_folder) if image_folder is not None else self.annotation_file.parent
        self.records = read_json_list(self.annotation_file)

    def __len__(self) -> int:
        return len(self.records)

    def __getitem__(self, index: int) -> dict:
        record = self.records[index]
        if not isinstance(record, dict):
            raise ValueError(f"sample {index}: expected a JSON object, got {type(record).__name__}.")
        check_record_keys(record, RECORD_KEYS, index)
        conversation = normalize_conversation(record.get("conversations"), index)
        sample: dict = {"conversation": conversation, "mask_prompts": None}
        if "image" in record:
            image = open_image(self.image_folder, record["image"], index, "'image'")
            sample["image"] = image
            sample["masks"] = np.zeros((0, 1, image.height, image.width), dtype=bool)
            first = conversation[0]["content"] if conversation else ""
            if first.count(IMAGE_PLACEHOLDER) == 1:
                conversation[0]["content"] = f"{IMAGE_PLACEHOLDER}\n{first.replace(IMAGE_PLACEHOLDER, '').strip()}"
        else:
            sample["masks"] = np.zeros((0, 1, 1, 1), dtype=bool)
        return validate_sample(sample, index)


__all__ = ["LlavaDataset"]
