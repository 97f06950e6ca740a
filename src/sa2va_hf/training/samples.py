"""The canonical training sample every dataset returns, and the one check every reader applies to it.

A sample is a dict:

- `"image"` (`PIL.Image.Image`, RGB): for image samples; or
- `"frames"` (`list[PIL.Image.Image]`, RGB, all the same size): the frames of a video sample (already sampled);
  neither key for text-only samples;
- `"conversation"` (`list[dict]`): `{"role": "user" | "assistant", "content": str}` turns, alternating, starting with
  the user and ending with the assistant. With media, `"<image>"` appears exactly once, at the start of the first user
  turn; without media never. `"[SEG]"` appears only in assistant turns;
- `"masks"` (`np.ndarray`, bool, `(num_objects, num_frames, height, width)`): one mask per `[SEG]` of the assistant
  turns, in order, on every frame (`num_frames` = 1 for an image); `(0, num_frames, height, width)` when there is no
  `[SEG]`, `(0, 1, 1, 1)` for text-only samples;
- `"mask_prompts"` (`np.ndarray`, bool, `(num_regions, height, width)`, or `None`): visual prompts on the image
  (InternVL-family checkpoints). The processor writes `regionK<vp>...</vp>` after the image for each region, so the
  conversation names them `region1`, `region2`, ...
"""

import re

import numpy as np
from PIL import Image
from torch.utils.data import Dataset
from tqdm.auto import tqdm

from ..models.sa2va.chat_templates_sa2va import IMAGE_PLACEHOLDER


SEG_TOKEN = "[SEG]"
ROLES = ("user", "assistant")
# LLaVA-style speaker names and the roles they stand for.
SPEAKERS = {"human": "user", "gpt": "assistant", "user": "user", "assistant": "assistant"}
_REGION_NAME = re.compile(r"region(\d+)")
_PROCESSOR_REGION_MARKERS = ("<vp>", "</vp>")


def normalize_conversation(turns, index: int, field: str = "conversations") -> list[dict[str, str]]:
    """LLaVA-style `{"from": "human" | "gpt", "value": ...}` or `{"role", "content"}` turns → canonical turns.

    Raises:
        `ValueError` naming the sample `index`, the `field` and the turn when a turn is neither form or has an unknown
        speaker.
    """
    if not isinstance(turns, list):
        raise ValueError(f"sample {index}: field '{field}': expected a list of turns, got {type(turns).__name__}.")
    conversation = []
    for position, turn in enumerate(turns):
        where = f"sample {index}: field '{field}'[{position}]"
        if isinstance(turn, dict) and set(turn) == {"from", "value"}:
            speaker, content = turn["from"], turn["value"]
        elif isinstance(turn, dict) and set(turn) == {"role", "content"}:
            speaker, content = turn["role"], turn["content"]
        else:
            keys = sorted(turn) if isinstance(turn, dict) else type(turn).__name__
            raise ValueError(f"{where}: a turn is {{'from', 'value'}} or {{'role', 'content'}}, got {keys}.")
        if speaker not in SPEAKERS:
            raise ValueError(f"{where}: unknown speaker {speaker!r}; use one of {sorted(SPEAKERS)}.")
        if not isinstance(content, str):
            raise ValueError(f"{where}: the text must be a string, got {type(content).__name__}.")
        conversation.append({"role": SPEAKERS[speaker], "content": content})
    return conversation


def validate_sample(sample: dict, index: int) -> dict:
    """Check that `sample` is a canonical training sample (see the module docstring) and return it.

    Args:
        sample (`dict`): what a dataset's `__getitem__` built.
        index (`int`): the sample's index in its dataset, named in every error.

    Returns:
        `dict`: `sample`, unchanged.

    Raises:
        `ValueError` (`TypeError` for a field of the wrong type) naming the index and the field, e.g.
        `sample 3: field 'masks': 2 masks but the assistant turns hold 3 [SEG] ...`.
    """
    where = f"sample {index}: field"
    if "image" in sample and "frames" in sample:
        raise ValueError(f"{where} 'frames': a sample has an 'image' or 'frames', not both.")
    size = _media_size(sample, where)
    num_frames = len(sample["frames"]) if "frames" in sample else 1
    conversation = sample.get("conversation")
    _check_conversation(conversation, where)
    _check_placeholders(conversation, has_media=size is not None, where=where)
    num_segs = sum(turn["content"].count(SEG_TOKEN) for turn in conversation)
    _check_masks(sample.get("masks"), num_segs, num_frames, size, where)
    _check_mask_prompts(sample.get("mask_prompts"), sample, conversation, size, where)
    return sample


def check_dataset(dataset: Dataset, progress: bool = True) -> list[str]:
    """Load every sample of `dataset` once (media included) and collect what is wrong, before a long training run.

    Args:
        dataset (`Dataset`): any reader of this package (its `__getitem__` validates each sample). Check the sources
            of a `MixedDataset` one by one: their errors name their own sample indices.
        progress (`bool`, *optional*, defaults to `True`): show a progress bar.

    Returns:
        `list[str]`: one message per broken sample (each names the sample and the field); empty when all load.
    """
    errors = []
    for index in tqdm(range(len(dataset)), desc="checking samples", disable=not progress):
        try:
            dataset[index]
        except (ValueError, TypeError, FileNotFoundError) as error:
            errors.append(str(error))
    return errors


def _media_size(sample: dict, where: str) -> tuple[int, int] | None:
    """`(height, width)` of the image or frames, `None` for a text-only sample."""
    if "image" in sample:
        image = sample["image"]
        if not isinstance(image, Image.Image):
            raise TypeError(f"{where} 'image': expected a PIL image, got {type(image).__name__}.")
        if image.mode != "RGB":
            raise ValueError(f"{where} 'image': expected mode RGB, got {image.mode}; use `image.convert('RGB')`.")
        return image.height, image.width
    if "frames" in sample:
        frames = sample["frames"]
        if not isinstance(frames, list) or not frames:
            raise ValueError(f"{where} 'frames': expected a non-empty list of PIL images.")
        for position, frame in enumerate(frames):
            if not isinstance(frame, Image.Image):
                raise TypeError(f"{where} 'frames'[{position}]: expected a PIL image, got {type(frame).__name__}.")
            if frame.mode != "RGB":
                raise ValueError(f"{where} 'frames'[{position}]: expected mode RGB, got {frame.mode}.")
            if frame.size != frames[0].size:
                raise ValueError(
                    f"{where} 'frames'[{position}]: size {frame.size} differs from frame 0's {frames[0].size} "
                    "(width, height); all frames of a video must have one size."
                )
        return frames[0].height, frames[0].width
    return None


def _check_conversation(conversation, where: str) -> None:
    if not isinstance(conversation, list) or not conversation:
        raise ValueError(f"{where} 'conversation': empty; a sample needs at least one user turn and one answer.")
    for position, turn in enumerate(conversation):
        if not isinstance(turn, dict) or set(turn) != {"role", "content"}:
            raise ValueError(f"{where} 'conversation'[{position}]: a turn is a dict with 'role' and 'content'.")
        expected = ROLES[position % 2]
        if turn["role"] != expected:
            raise ValueError(
                f"{where} 'conversation'[{position}]: role {turn['role']!r} where {expected!r} was expected; turns "
                "alternate user, assistant, user, ... starting with the user."
            )
        if not isinstance(turn["content"], str) or not turn["content"].strip():
            raise ValueError(f"{where} 'conversation'[{position}]: the {turn['role']} turn has no text.")
        if turn["role"] == "user" and SEG_TOKEN in turn["content"]:
            raise ValueError(f"{where} 'conversation'[{position}]: {SEG_TOKEN} may appear in assistant turns only.")
    if len(conversation) % 2:
        raise ValueError(
            f"{where} 'conversation': ends with a user turn ({len(conversation)} turns); the last turn is the "
            "assistant's answer the model learns."
        )


def _check_placeholders(conversation: list[dict], has_media: bool, where: str) -> None:
    counts = [turn["content"].count(IMAGE_PLACEHOLDER) for turn in conversation]
    if not has_media:
        if sum(counts):
            position = next(p for p, c in enumerate(counts) if c)
            raise ValueError(
                f"{where} 'conversation'[{position}]: {IMAGE_PLACEHOLDER} in a sample without an image or frames."
            )
        return
    if sum(counts) == 0:
        raise ValueError(
            f"{where} 'conversation'[0]: {IMAGE_PLACEHOLDER} is missing; start the first user turn with it "
            f"('{IMAGE_PLACEHOLDER}\\nPlease segment ...')."
        )
    if sum(counts) > 1:
        raise ValueError(
            f"{where} 'conversation': {IMAGE_PLACEHOLDER} appears {sum(counts)} times; it appears once, at the start "
            "of the first user turn (a video's frames share the one placeholder)."
        )
    if not conversation[0]["content"].startswith(IMAGE_PLACEHOLDER):
        position = next(p for p, c in enumerate(counts) if c)
        raise ValueError(
            f"{where} 'conversation'[{position}]: {IMAGE_PLACEHOLDER} must open the first user turn; move it there."
        )


def _check_masks(masks, num_segs: int, num_frames: int, size: tuple[int, int] | None, where: str) -> None:
    if not isinstance(masks, np.ndarray) or masks.dtype != bool:
        raise TypeError(
            f"{where} 'masks': expected a bool np.ndarray (num_objects, num_frames, height, width), got "
            f"{type(masks).__name__}{'' if not isinstance(masks, np.ndarray) else ' of ' + str(masks.dtype)}."
        )
    if masks.ndim != 4:
        raise ValueError(
            f"{where} 'masks': expected 4 dims (num_objects, num_frames, height, width), got {masks.shape}."
        )
    if size is None:
        if num_segs:
            raise ValueError(f"{where} 'masks': {num_segs} {SEG_TOKEN} in a sample without an image or frames.")
        if masks.shape != (0, 1, 1, 1):
            raise ValueError(
                f"{where} 'masks': a text-only sample has masks of shape (0, 1, 1, 1), got {masks.shape}."
            )
        return
    if masks.shape[0] != num_segs:
        raise ValueError(
            f"{where} 'masks': {masks.shape[0]} masks but the assistant turns hold {num_segs} {SEG_TOKEN}; give one "
            f"mask per {SEG_TOKEN}, in order."
        )
    if masks.shape[1] != num_frames:
        raise ValueError(f"{where} 'masks': {masks.shape[1]} frames per mask, but the sample has {num_frames}.")
    if masks.shape[2:] != size:
        raise ValueError(
            f"{where} 'masks': masks of size {masks.shape[2:]} (height, width) on an image/frames of size {size}."
        )


def _check_mask_prompts(mask_prompts, sample: dict, conversation: list[dict], size, where: str) -> None:
    text = "".join(turn["content"] for turn in conversation)
    for marker in _PROCESSOR_REGION_MARKERS:
        if marker in text:
            raise ValueError(
                f"{where} 'conversation': holds {marker!r}; the processor writes the region tokens from "
                "'mask_prompts' itself, so name regions 'region1', 'region2', ... in the text."
            )
    if mask_prompts is None:
        return
    if "image" not in sample:
        raise ValueError(f"{where} 'mask_prompts': visual prompts need an 'image' (not frames, not text-only).")
    if not isinstance(mask_prompts, np.ndarray) or mask_prompts.dtype != bool:
        raise TypeError(f"{where} 'mask_prompts': expected a bool np.ndarray (num_regions, height, width) or None.")
    if mask_prompts.ndim != 3 or mask_prompts.shape[0] == 0:
        raise ValueError(
            f"{where} 'mask_prompts': expected shape (num_regions, height, width) with at least one region, got "
            f"{mask_prompts.shape}; use None when there are no regions."
        )
    if mask_prompts.shape[1:] != size:
        raise ValueError(
            f"{where} 'mask_prompts': regions of size {mask_prompts.shape[1:]} (height, width) on an image of size "
            f"{size}."
        )
    num_regions = mask_prompts.shape[0]
    unknown = sorted({int(n) for n in _REGION_NAME.findall(text)} - set(range(1, num_regions + 1)))
    if unknown:
        raise ValueError(
            f"{where} 'conversation': names region{unknown[0]} but 'mask_prompts' holds {num_regions} regions "
            f"(region1 .. region{num_regions})."
        )


__all__ = ["SEG_TOKEN", "check_dataset", "normalize_conversation", "validate_sample"]
