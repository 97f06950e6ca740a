"""Sa2VA processor: the tokenizer, the prompt template of the checkpoint, and one image processor for both views."""

import re
from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F
from transformers import BatchFeature, ProcessorMixin
from transformers.utils import logging

from .chat_templates_sa2va import IMAGE_PLACEHOLDER


logger = logging.get_logger(__name__)

# Tokens every Sa2VA tokenizer holds: the mask token, phrase markers for grounded captions, region markers.
SA2VA_SPECIAL_TOKENS = ("[SEG]", "<p>", "</p>", "<vp>", "</vp>")

# How each VLM family writes an image into the prompt. InternVL: `<img>` + 256 context tokens per tile + `</img>`;
# Qwen-VL: `<|vision_start|><|image_pad|>...<|vision_end|>` with one pad per merged patch.
# fmt: off
IMAGE_TOKENS = {
    "internvl":   {"start": "<img>", "context": "<IMG_CONTEXT>", "end": "</img>"},
    "qwen2_5_vl": {"start": "<|vision_start|>", "context": "<|image_pad|>", "end": "<|vision_end|>"},
    "qwen3_vl":   {"start": "<|vision_start|>", "context": "<|image_pad|>", "end": "<|vision_end|>"},
}
# fmt: on


class Sa2VAProcessor(ProcessorMixin):
    r"""
    Turns a question and an image or video into Sa2VA inputs, and mask logits back into masks.

    Args:
        image_processor ([`Sa2VAImageProcessor`]): the VLM view and the SAM-2 view of images and frames.
        tokenizer ([`PreTrainedTokenizerBase`]): the checkpoint's tokenizer, holding the Sa2VA tokens
            (`[SEG]`, `<p>`, `</p>`, `<vp>`, `</vp>`) and the family's image tokens.
        chat_template (`str`, *optional*): Jinja template of the checkpoint's prompt format (see
            `chat_templates_sa2va.py`). An image is written `<image>` (InternVL) or as the Qwen vision tokens.
        stop_words (`list[str]`, *optional*): strings that end an answer besides the tokenizer's EOS.
        image_seq_length (`int`, *optional*, defaults to 256): InternVL tokens per 448-px tile.
    """

    def __init__(
        self,
        image_processor=None,
        tokenizer=None,
        chat_template: str | None = None,
        stop_words: Sequence[str] | None = None,
        image_seq_length: int = 256,
        **kwargs,
    ):
        super().__init__(image_processor, tokenizer, chat_template=chat_template, **kwargs)
        self.stop_words = list(stop_words or [])
        self.image_seq_length = image_seq_length
        missing = [
            token for token in (*SA2VA_SPECIAL_TOKENS, *self.image_tokens.values()) if self._token_id(token) is None
        ]
        if missing:
            raise ValueError(
                f"`tokenizer` lacks the tokens {missing}; add them with "
                "`tokenizer.add_tokens([...], special_tokens=True)` and resize the model's embeddings."
            )

    @property
    def vlm_family(self) -> str:
        return self.image_processor.vlm_family

    @property
    def image_tokens(self) -> dict[str, str]:
        return IMAGE_TOKENS[self.vlm_family]

    @property
    def seg_token_id(self) -> int:
        return self._token_id("[SEG]")

    @property
    def image_token_id(self) -> int:
        return self._token_id(self.image_tokens["context"])

    @property
    def stop_token_ids(self) -> list[int]:
        """Ids that end generation: the tokenizer's EOS and every stop word that is a single token."""
        ids = [] if self.tokenizer.eos_token_id is None else [self.tokenizer.eos_token_id]
        ids += [self._token_id(word) for word in self.stop_words if self._token_id(word) is not None]
        return list(dict.fromkeys(ids))

    @property
    def stop_strings(self) -> list[str]:
        """Stop words that are not single tokens (they end generation through `stop_strings`)."""
        return [word for word in self.stop_words if self._token_id(word) is None]

    def _token_id(self, token: str) -> int | None:
        """The id of `token` if the tokenizer has it as one token (unknown tokens map to the unk id instead)."""
        token_id = self.tokenizer.convert_tokens_to_ids(token)
        if token_id is None or self.tokenizer.convert_ids_to_tokens(token_id) != token:
            return None
        return token_id

    def build_prompt(self, text: str, num_images: int = 0, past_text: str = "") -> str:
        """Write the checkpoint's prompt for one user turn, exactly as the official `predict_forward` does.

        Args:
            text (`str`): the user's turn. For InternVL checkpoints `<image>` marks where the image goes (added in
                front when missing); Qwen-VL checkpoints put the images first and drop `<image>`.
            num_images (`int`): images (or key frames) shown to the VLM; 0 for text-only chat. When `past_text`
                already shows the media (a follow-up turn), they are not placed again.
            past_text (`str`): earlier turns in prompt form (as `predict_forward` returns it), prepended verbatim.

        Returns:
            `str`: the prompt, with one `<image>` (InternVL) or one Qwen vision block per image, to pass to `__call__`.
        """
        if not isinstance(text, str):
            raise TypeError(f"`text` must be a string, got {type(text).__name__}.")
        if not text.replace(IMAGE_PLACEHOLDER, "").strip():
            raise ValueError(
                f"`text` holds no question ({text!r}); write what to do, e.g. '<image>Please segment the cat.'"
            )
        if self._count_placeholders(past_text):
            if IMAGE_PLACEHOLDER in text:
                raise ValueError("`text` has <image> but `past_text` already shows the image; drop it from `text`.")
            num_images = 0
        if num_images == 0 or self.vlm_family != "internvl":
            content: str | list[dict] = text.replace(IMAGE_PLACEHOLDER, "")
            if num_images:
                content = [{"type": "image"}] * num_images + [{"type": "text", "text": content}]
        else:
            if IMAGE_PLACEHOLDER not in text:
                logger.warning_once(
                    "`text` has no <image>; the image goes in front of the question ('<image>\\n' + text), as Sa2VA "
                    "was trained. Write <image> where the image belongs to choose."
                )
            content = text if IMAGE_PLACEHOLDER in text else f"{IMAGE_PLACEHOLDER}\n{text}"
        messages = [{"role": "user", "content": content}]
        return past_text + self.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)

    def turn_end(self) -> str:
        """What the chat template writes after an assistant answer (e.g. `<|im_end|>\\n`)."""
        marker = "\x00"
        rendered = self.apply_chat_template([{"role": "assistant", "content": marker}], tokenize=False)
        return rendered.split(marker, 1)[1]

    def __call__(
        self,
        text: str | list[str],
        images=None,
        videos=None,
        key_frame_indices: Sequence[int] | None = None,
        mask_prompts=None,
        return_tensors: str = "pt",
        **kwargs,
    ) -> BatchFeature:
        r"""
        Tokenize prompts (from [`build_prompt`]) and prepare the image or the video they refer to.

        Args:
            text (`str` or `list[str]`): prompts holding the family's image placeholders.
            images (image or `list` of images, *optional*): one image per placeholder (PIL, numpy `(H, W, 3)` uint8,
                or a file path).
            videos (`list` of frames, *optional*): one video; its key frames fill the placeholders.
            key_frame_indices (`Sequence[int]`, *optional*): frames of `videos` shown to the VLM (default: the first 5).
            mask_prompts (*optional*): visual prompts for one image (InternVL family): region masks, an array or
                tensor `(num_regions, H, W)` at the image's size, or a list whose first element is one (official
                style). Each region becomes `region{i}<vp>...</vp>` after the image, filled with the thumbnail's
                features under the region.

        Returns:
            [`BatchFeature`] with `input_ids`, `attention_mask` `(batch_size, sequence_length)`; with media also
            `pixel_values` (VLM view), `sam_pixel_values` `(num_frames, 3, 1024, 1024)`, `original_sizes`
            `(num_frames, 2)`, and for Qwen-VL `image_grid_thw` `(num_images, 3)` and `mm_token_type_ids`; with
            `mask_prompts` also `region_masks` `(num_regions, grid, grid)` (bool, the thumbnail's token grid).
        """
        texts = [text] if isinstance(text, str) else list(text)
        if not texts or not all(isinstance(t, str) for t in texts):
            raise TypeError(f"`text` must be a string or a list of strings, got {type(text).__name__}.")
        if images is not None and videos is not None:
            raise ValueError("Pass either `images` or `videos`, not both.")
        vision = {}
        if images is not None or videos is not None:
            is_video = videos is not None
            media = videos if is_video else images
            media = list(media) if isinstance(media, list | tuple) else [media]
            vision = self.image_processor.preprocess(
                media, is_video=is_video, key_frame_indices=key_frame_indices, return_tensors="pt"
            )
            if mask_prompts is not None:
                vision["region_masks"] = self.region_masks(mask_prompts, is_video=is_video, num_images=len(media))
            texts = self._expand_image_tokens(texts, vision, is_video)
        elif mask_prompts is not None:
            raise ValueError("`mask_prompts` need the image they were drawn on: pass `images=[image]`.")
        elif any(self._count_placeholders(t) for t in texts):
            raise ValueError("`text` has image placeholders but no `images` or `videos` were given.")
        encoding = self.tokenizer(texts, padding=len(texts) > 1, return_tensors=return_tensors, **kwargs)
        data = dict(encoding)
        if self.vlm_family != "internvl":
            data["mm_token_type_ids"] = (encoding["input_ids"] == self.image_token_id).long()
        data.update(vision)
        return BatchFeature(data=data, tensor_type=return_tensors)

    def _placeholder(self) -> str:
        if self.vlm_family == "internvl":
            return IMAGE_PLACEHOLDER
        tokens = self.image_tokens
        return tokens["start"] + tokens["context"] + tokens["end"]

    def _count_placeholders(self, text: str) -> int:
        return text.count(self._placeholder())

    def _image_token_runs(self, vision: BatchFeature, is_video: bool) -> list[str]:
        """The token string that replaces each placeholder, in order."""
        tokens = self.image_tokens
        if self.vlm_family == "internvl":
            blocks = [
                tokens["start"] + tokens["context"] * (self.image_seq_length * int(n)) + tokens["end"]
                for n in vision["num_tiles"]
            ]
            return ["\n".join(blocks)] if is_video else blocks
        merge = self.image_processor.merge_size**2
        return [
            tokens["start"] + tokens["context"] * (int(torch.as_tensor(thw).prod()) // merge) + tokens["end"]
            for thw in vision["image_grid_thw"]
        ]

    def region_masks(self, mask_prompts, is_video: bool = False, num_images: int = 1) -> torch.BoolTensor:
        """Region masks `(num_regions, H, W)` → the thumbnail's token grid `(num_regions, grid, grid)` (nearest), as the
        official model pools visual prompts."""
        if self.vlm_family != "internvl":
            raise ValueError(
                f"`mask_prompts` (visual prompts) work with InternVL-family Sa2VA checkpoints only; this processor is "
                f"for {self.vlm_family}, whose Sa2VA training had no region prompts."
            )
        if is_video or num_images != 1:
            raise ValueError("`mask_prompts` apply to a single image; pass one image and no video.")
        if isinstance(mask_prompts, list | tuple):
            if len(mask_prompts) != 1:
                raise ValueError(
                    f"`mask_prompts` as a list must hold one array (regions, H, W); got {len(mask_prompts)}."
                )
            mask_prompts = mask_prompts[0]
        masks = torch.as_tensor(
            np.asarray(mask_prompts) if not isinstance(mask_prompts, torch.Tensor) else mask_prompts
        )
        if masks.ndim != 3 or masks.shape[0] == 0:
            raise ValueError(f"`mask_prompts` must have shape (num_regions, H, W), got {tuple(masks.shape)}.")
        grid = int(round(self.image_seq_length**0.5))
        regions = F.interpolate(masks[None].float(), size=(grid, grid), mode="nearest")[0] > 0.5
        for index, count in enumerate(regions.flatten(1).sum(1).tolist()):
            if count == 0:
                logger.warning(
                    f"mask_prompts region {index + 1} covers no cell of the {grid}x{grid} token grid: it gets no "
                    "image tokens (as in the official model). Draw a larger region."
                )
        return regions

    def _region_prompt(self, region_masks: torch.BoolTensor) -> str:
        """The official visual-prompt sentence that follows the image: one `<vp>` run per region."""
        context = self.image_tokens["context"]
        regions = ", ".join(
            f"region{index + 1}<vp>{context * int(mask.sum())}</vp>" for index, mask in enumerate(region_masks)
        )
        return f"\nThere are {len(region_masks)} part regions in the picture: {regions}.\n"

    def _expand_image_tokens(self, texts: list[str], vision: BatchFeature, is_video: bool) -> list[str]:
        runs = self._image_token_runs(vision, is_video)
        if "region_masks" in vision:
            runs[-1] += self._region_prompt(vision["region_masks"])
        placeholder = self._placeholder()
        found = sum(t.count(placeholder) for t in texts)
        if found != len(runs):
            what = "video" if is_video else "images"
            raise ValueError(
                f"`text` has {found} image placeholder(s) ({placeholder!r}) but the {what} gave {len(runs)}; "
                "build prompts with `processor.build_prompt(text, num_images=...)`."
            )
        pieces = iter(runs)
        pattern = re.compile(re.escape(placeholder))
        return [pattern.sub(lambda _: next(pieces), t) for t in texts]

    def post_process_masks(
        self, mask_logits: torch.Tensor, original_size: tuple[int, int], threshold: float = 0.0
    ) -> torch.BoolTensor:
        """Low-res logits `(num_objects, num_frames, 256, 256)` → bool masks `(num_objects, num_frames, H, W)`."""
        return self.image_processor.post_process_masks(mask_logits, original_size, threshold=threshold)

    @property
    def model_input_names(self) -> list[str]:
        names = ["input_ids", "attention_mask", "pixel_values", "sam_pixel_values", "original_sizes"]
        return names + (["num_tiles"] if self.vlm_family == "internvl" else ["image_grid_thw", "mm_token_type_ids"])


__all__ = ["Sa2VAProcessor", "SA2VA_SPECIAL_TOKENS"]
