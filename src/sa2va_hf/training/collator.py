"""Training samples → padded `Sa2VAForConditionalGeneration.forward` inputs, with token labels and target masks."""

from collections.abc import Sequence

import numpy as np
import torch

from ..models.sa2va.processing_sa2va import Sa2VAProcessor


IGNORE_INDEX = -100


class Sa2VADataCollator:
    r"""
    Batches training samples for `transformers.Trainer`.

    A sample is a dict (what the datasets in `sa2va_hf.training` return):

    - `"image"` (`PIL.Image.Image`) or `"frames"` (`list[PIL.Image.Image]`, all the same size), or neither;
    - `"conversation"`: `[{"role": "user", "content": ...}, {"role": "assistant", "content": ...}, ...]`, alternating,
      the first user turn starting with `<image>` when the sample has media;
    - `"masks"`: `np.ndarray` bool `(num_objects, num_frames, H, W)`, one row per `[SEG]` in the answers, in order;
    - `"mask_prompts"` (*optional*): `np.ndarray` bool `(num_regions, H, W)`, visual prompts on the image.

    Each turn is written with the checkpoint's chat template exactly as `predict_forward` prompts it (so a trained
    model is asked the way it was taught); only the answers and their end-of-turn token are labelled. Every frame of a
    video sample is a key frame: shown to the VLM and, for samples with targets, decoded by SAM-2.

    Args:
        processor ([`Sa2VAProcessor`]): the checkpoint's processor.
        max_length (`int`, *optional*): longest allowed sequence; a longer sample is an error, never cut.

    Returns (from `__call__`): a `dict` with `input_ids`, `attention_mask`, `labels` `(batch_size, sequence_length)`
    (right-padded), the VLM view of every image in order (`pixel_values`, and `image_grid_thw` /
    `mm_token_type_ids` for Qwen-VL or `tiles_per_sample` for InternVL), `region_masks` when a sample has visual
    prompts, `sam_pixel_values` `(num_frames, 3, S, S)` and `sam_frames_per_sample` `(batch_size,)` for the samples
    with targets, and `gt_masks` (a list of bool tensors `(num_objects, num_frames, H, W)`, `(0, 0, 1, 1)` for a
    sample without targets).
    """

    def __init__(self, processor: Sa2VAProcessor, max_length: int | None = None):
        self.processor = processor
        self.max_length = max_length

    def encode(self, sample: dict) -> dict:
        """One sample → unpadded `input_ids` and `labels` `(sequence_length,)` plus its vision tensors and masks."""
        processor = self.processor
        turns = sample["conversation"]
        questions, answers = [t["content"] for t in turns[0::2]], [t["content"] for t in turns[1::2]]
        media = {}
        if sample.get("image") is not None:
            media = {"images": [sample["image"]], "mask_prompts": sample.get("mask_prompts")}
        elif sample.get("frames") is not None:
            frames = list(sample["frames"])
            media = {"videos": frames, "key_frame_indices": list(range(len(frames)))}
        num_images = len(media.get("videos", ())) or len(media.get("images", ()))
        first = processor(text=processor.build_prompt(questions[0], num_images=num_images), **media)
        ids, labels = [first["input_ids"][0]], [torch.full_like(first["input_ids"][0], IGNORE_INDEX)]
        turn_end = processor.turn_end()
        labelled_end = turn_end.rstrip()
        for turn_idx, answer in enumerate(answers):
            if turn_idx > 0:
                question = self._tokens(processor.build_prompt(questions[turn_idx], num_images=0))
                ids.append(question)
                labels.append(torch.full_like(question, IGNORE_INDEX))
            answer_ids = self._tokens(answer + labelled_end)
            ids.append(answer_ids)
            labels.append(answer_ids)
            separator = self._tokens(turn_end[len(labelled_end) :])
            ids.append(separator)
            labels.append(torch.full_like(separator, IGNORE_INDEX))
        input_ids, token_labels = torch.cat(ids), torch.cat(labels)
        if self.max_length is not None and input_ids.numel() > self.max_length:
            raise ValueError(
                f"A sample is {input_ids.numel()} tokens long, over `max_length` {self.max_length} (first question: "
                f"{questions[0][:60]!r}); raise `max_length` or split its conversation. Nothing is truncated."
            )
        encoded = {
            "input_ids": input_ids,
            "labels": token_labels,
            "masks": torch.as_tensor(np.asarray(sample["masks"], dtype=bool)),
        }
        encoded.update({k: v for k, v in first.items() if k not in ("input_ids", "attention_mask", "original_sizes")})
        return encoded

    def _tokens(self, text: str) -> torch.LongTensor:
        return torch.tensor(self.processor.tokenizer(text, add_special_tokens=False)["input_ids"], dtype=torch.long)

    def __call__(self, samples: Sequence[dict]) -> dict:
        encoded = [self.encode(sample) for sample in samples]
        longest = max(e["input_ids"].numel() for e in encoded)
        pad_id = self.processor.tokenizer.pad_token_id
        batch = {
            "input_ids": torch.full((len(encoded), longest), pad_id, dtype=torch.long),
            "attention_mask": torch.zeros((len(encoded), longest), dtype=torch.long),
            "labels": torch.full((len(encoded), longest), IGNORE_INDEX, dtype=torch.long),
        }
        for row, e in enumerate(encoded):
            length = e["input_ids"].numel()
            batch["input_ids"][row, :length] = e["input_ids"]
            batch["attention_mask"][row, :length] = 1
            batch["labels"][row, :length] = e["labels"]
        with_media = [e for e in encoded if "pixel_values" in e]
        if with_media:
            batch["pixel_values"] = torch.cat([e["pixel_values"] for e in with_media])
        if self.processor.vlm_family == "internvl":
            batch["tiles_per_sample"] = torch.tensor(
                [int(e["num_tiles"].sum()) if "num_tiles" in e else 0 for e in encoded]
            )
            if any("region_masks" in e for e in encoded):
                batch["region_masks"] = [e.get("region_masks") for e in encoded]
        elif with_media:
            batch["image_grid_thw"] = torch.cat([e["image_grid_thw"] for e in with_media])
            batch["mm_token_type_ids"] = (batch["input_ids"] == self.processor.image_token_id).long()
        with_targets = [e["masks"].shape[0] > 0 for e in encoded]
        batch["sam_frames_per_sample"] = torch.tensor(
            [e["sam_pixel_values"].shape[0] if has else 0 for e, has in zip(encoded, with_targets)]
        )
        if any(with_targets):
            batch["sam_pixel_values"] = torch.cat(
                [e["sam_pixel_values"] for e, has in zip(encoded, with_targets) if has]
            )
        batch["gt_masks"] = [
            e["masks"] if has else torch.zeros((0, 0, 1, 1), dtype=torch.bool) for e, has in zip(encoded, with_targets)
        ]
        return batch


__all__ = ["IGNORE_INDEX", "Sa2VADataCollator"]
