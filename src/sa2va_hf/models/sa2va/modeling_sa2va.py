"""Sa2VA: a vision-language model whose `[SEG]` tokens prompt SAM-2 for a mask per frame."""

import copy
import os
import shutil
from collections.abc import Iterator
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from torch import nn
from transformers import AutoModelForImageTextToText, GenerationConfig, GenerationMixin, PreTrainedModel
from transformers.modeling_outputs import CausalLMOutputWithPast
from transformers.utils import logging

from .configuration_sa2va import Sa2VAConfig
from .image_processing_sa2va import Sa2VAImageProcessor
from .loss_sa2va import mask_losses, resize_target_masks
from .modeling_sa2va_sam2 import Sa2VASam2Model
from .processing_sa2va import Sa2VAProcessor
from .video_io_sa2va import VideoFrames, check_key_frame_indices, select_key_frames


logger = logging.get_logger(__name__)

# Official `predict_forward` generation: greedy, up to 2048 new tokens.
DEFAULT_MAX_NEW_TOKENS = 2048

# The [SEG] prompt is the last entry of `output_hidden_states` as the released checkpoints were trained and run with
# (transformers 4.5x): after the LLM's final norm for InternVL's LLMs and Qwen2.5-VL, but before it for Qwen3-VL,
# whose text model then appended the last decoder layer's output un-normalised (the official fixture confirms both).
SEG_STATE_AFTER_FINAL_NORM = {"internvl": True, "qwen2_5_vl": True, "qwen3_vl": False}

# How the official code prompts `generate`: InternVL from `inputs_embeds` with the image features in place, so the
# returned sequences and the logits processors (`sequence_bias`, `repetition_penalty`, ...) see only generated
# tokens; Qwen-VL from `input_ids`, prompt included.
GENERATE_FROM_EMBEDDINGS = {"internvl": True, "qwen2_5_vl": False, "qwen3_vl": False}

# The pipeline every saved checkpoint carries (`pipeline(model=folder_or_repo, trust_remote_code=True)`), as
# `config.json["custom_pipelines"]` and the file `pipeline_sa2va.py` next to the modeling code.
CUSTOM_PIPELINES = {"sa2va": {"impl": "pipeline_sa2va.Sa2VAPipeline", "pt": ["AutoModel"], "type": "multimodal"}}

# The field of model outputs that holds the key/value cache: `past_key_values` up to transformers 5.23, `cache` from
# 5.24 (which still accepts the old name as an argument, but only when the output class declares `cache`).
CACHE_FIELD = "cache" if "cache" in {field.name for field in fields(CausalLMOutputWithPast)} else "past_key_values"


@dataclass
class Sa2VACausalLMOutputWithPast(CausalLMOutputWithPast):
    r"""
    Output of [`Sa2VAForConditionalGeneration.forward`]: the VLM's `CausalLMOutputWithPast` (`logits` of shape
    `(batch_size, sequence_length, vocab_size)`, the key/value cache, `hidden_states`, `attentions`) with the loss
    split into its terms.

    Args:
        loss (`torch.FloatTensor` of shape `()`, *optional*): `lm_loss + mask_loss_weight * mask_bce_loss +
            dice_loss_weight * mask_dice_loss`, the terms that were computed.
        lm_loss (`torch.FloatTensor` of shape `()`, *optional*): next-token cross-entropy on `labels`.
        mask_bce_loss (`torch.FloatTensor` of shape `()`, *optional*): sigmoid cross-entropy of the `[SEG]` masks.
        mask_dice_loss (`torch.FloatTensor` of shape `()`, *optional*): dice loss of the `[SEG]` masks.
    """

    lm_loss: torch.FloatTensor | None = None
    mask_bce_loss: torch.FloatTensor | None = None
    mask_dice_loss: torch.FloatTensor | None = None


def _check_frame_size(index: int, frame: Image.Image, size: tuple[int, int]) -> None:
    """Frames of a video must all have frame 0's `size` (`(width, height)`): masks come back at that size."""
    if frame.size != size:
        raise ValueError(
            f"`video[{index}]` is {frame.width}x{frame.height} (width x height) but frame 0 is {size[0]}x{size[1]}: "
            "all frames of a video must have the same size (masks come back at the size of frame 0); resize the "
            "frames to one size first."
        )


class Sa2VAVideoStream:
    """The answer about a video, and its masks tracked lazily (see [`Sa2VAForConditionalGeneration.predict_video_stream`]).

    Attributes:
        prediction (`str`): the answer, special tokens kept.
        past_text (`str`): the conversation so far in prompt form (pass as `past_text` to continue it).
        num_objects (`int`): the `[SEG]` tokens that got a mask (one mask per object per frame).

    Iterate it (once) for `(frame_idx, frame, masks)`: every frame in order, `frame` a `PIL.Image.Image`, `masks` a
    bool `np.ndarray` of shape `(num_objects, H, W)` at frame 0's size.
    """

    def __init__(
        self,
        prediction: str,
        past_text: str,
        num_objects: int,
        masks: Iterator[tuple[int, Image.Image, np.ndarray]],
    ):
        self.prediction = prediction
        self.past_text = past_text
        self.num_objects = num_objects
        self._masks: Iterator | None = masks

    def __iter__(self) -> Iterator[tuple[int, Image.Image, np.ndarray]]:
        if self._masks is None:
            raise RuntimeError("A video stream can be iterated once; call `predict_video_stream` again.")
        masks, self._masks = self._masks, None
        return masks


class Sa2VAPreTrainedModel(PreTrainedModel):
    config: Sa2VAConfig
    config_class = Sa2VAConfig
    base_model_prefix = ""
    main_input_name = "input_ids"
    input_modalities = ("image", "video", "text")
    supports_gradient_checkpointing = True
    _no_split_modules = [
        "InternVLVisionLayer",
        "Qwen2_5_VLVisionBlock",
        "Qwen3VLVisionBlock",
        "Qwen2DecoderLayer",
        "LlamaDecoderLayer",
        "Qwen2_5_VLDecoderLayer",
        "Qwen3VLTextDecoderLayer",
        "Sa2VASam2Model",
    ]
    _skip_keys_device_placement = [CACHE_FIELD]
    _supports_sdpa = True
    _supports_flash_attn = True
    _supports_attention_backend = True
    # `forward` adds per-batch mask losses to the token loss, so `Trainer` must average over accumulation steps
    # itself rather than hand the token count to the language-model loss.
    accepts_loss_kwargs = False


class Sa2VAForConditionalGeneration(Sa2VAPreTrainedModel, GenerationMixin):
    r"""
    Sa2VA: the VLM (`vlm`, a transformers InternVL / Qwen2.5-VL / Qwen3-VL model) answers in text; the final hidden
    state at each `[SEG]` it writes goes through `seg_projector` and prompts SAM-2 (`sam2`), which returns a mask on
    every frame.

    Example:

    ```python
    >>> from transformers import AutoModel, AutoProcessor
    >>> from PIL import Image

    >>> model = AutoModel.from_pretrained("org/Sa2VA-InternVL3-2B", trust_remote_code=True)
    >>> processor = AutoProcessor.from_pretrained("org/Sa2VA-InternVL3-2B", trust_remote_code=True)
    >>> result = model.predict_forward(image=Image.open("cat.jpg"), text="<image>Please segment the cat.",
    ...                                processor=processor)
    >>> result["prediction"], result["prediction_masks"][0].shape  # ('Sure, [SEG].<|im_end|>', (1, H, W))
    ```
    """

    def __init__(self, config: Sa2VAConfig):
        super().__init__(config)
        self.vlm = AutoModelForImageTextToText.from_config(config.vlm_config)
        self.sam2 = Sa2VASam2Model(config.sam2_config, blank_absent_objects=config.blank_absent_objects)
        hidden_size = config.text_config.hidden_size
        self.seg_projector = nn.Sequential(
            nn.Linear(hidden_size, hidden_size), nn.ReLU(), nn.Linear(hidden_size, config.seg_hidden_size)
        )
        self.post_init()

    @classmethod
    def remote_code_auto_map(cls) -> dict[str, str]:
        """The `config.json` `auto_map` entries that load a saved checkpoint with this class as remote code."""
        target = f"{Path(__file__).stem}.{cls.__name__}"
        return {
            auto_class: target for auto_class in ("AutoModel", "AutoModelForCausalLM", "AutoModelForImageTextToText")
        }

    @staticmethod
    def remote_code_extra_files() -> list[Path]:
        """Remote-code files a checkpoint needs besides the model's own imports: the pipeline."""
        return [Path(__file__).with_name("pipeline_sa2va.py")]

    def save_pretrained(self, save_directory: str | os.PathLike, *args, **kwargs) -> None:
        """`PreTrainedModel.save_pretrained`; a model registered for remote code maps every Auto class it serves and
        ships its pipeline (`custom_pipelines`)."""
        if self._auto_class is not None:
            self.config.auto_map = {**(getattr(self.config, "auto_map", None) or {}), **self.remote_code_auto_map()}
            self.config.custom_pipelines = copy.deepcopy(CUSTOM_PIPELINES)
        super().save_pretrained(save_directory, *args, **kwargs)
        if self._auto_class is not None:
            for source in self.remote_code_extra_files():
                shutil.copyfile(source, Path(save_directory) / source.name)

    def get_input_embeddings(self) -> nn.Module:
        return self.vlm.get_input_embeddings()

    def set_input_embeddings(self, value: nn.Module) -> None:
        self.vlm.set_input_embeddings(value)

    def get_output_embeddings(self) -> nn.Module:
        return self.vlm.get_output_embeddings()

    def set_output_embeddings(self, value: nn.Module) -> None:
        self.vlm.set_output_embeddings(value)

    @property
    def final_norm(self) -> nn.Module:
        """The language model's final norm; its output (or input, for Qwen3-VL) is the state `[SEG]` prompts use."""
        return self.vlm.model.language_model.norm

    def forward(
        self,
        input_ids: torch.LongTensor | None = None,
        attention_mask: torch.Tensor | None = None,
        pixel_values: torch.FloatTensor | None = None,
        labels: torch.LongTensor | None = None,
        sam_pixel_values: torch.FloatTensor | None = None,
        sam_frames_per_sample: torch.LongTensor | None = None,
        gt_masks: list[torch.Tensor] | None = None,
        **kwargs,
    ) -> Sa2VACausalLMOutputWithPast:
        r"""
        Run the VLM; with `labels` the language-model loss, and with `gt_masks` the mask losses of every `[SEG]` in
        `input_ids` (teacher forcing, as the official training): each `[SEG]`'s last-layer state is projected and
        prompts SAM-2 on every frame of its sample, each frame decoded on its own (no memory), and the low-resolution
        logits are compared with the target. `loss = lm_loss + mask_loss_weight * mask_bce_loss + dice_loss_weight *
        mask_dice_loss` (weights in the config).

        Args:
            input_ids (`torch.LongTensor` of shape `(batch_size, sequence_length)`): prompt ids from the processor.
            attention_mask (`torch.Tensor` of shape `(batch_size, sequence_length)`, *optional*).
            pixel_values (`torch.FloatTensor`, *optional*): the VLM view of every image in the batch, in prompt order
                (InternVL `(num_tiles, 3, tile_size, tile_size)`; Qwen-VL `(num_patches, patch_dim)` with
                `image_grid_thw` and `mm_token_type_ids` in `kwargs`).
            labels (`torch.LongTensor` of shape `(batch_size, sequence_length)`, *optional*): target ids, -100 ignored.
            sam_pixel_values (`torch.FloatTensor` of shape `(num_frames, 3, image_size, image_size)`, *optional*): the
                SAM-2 view of the frames of every sample that has `[SEG]` targets, sample after sample.
            sam_frames_per_sample (`torch.LongTensor` of shape `(batch_size,)`, *optional*): how many rows of
                `sam_pixel_values` belong to each sample (0 for a sample without targets).
            gt_masks (`list[torch.Tensor]`, *optional*): per sample, binary targets `(num_objects, num_frames, height,
                width)`, one row per `[SEG]` of the sample in order, at any resolution (resized to SAM-2's logits).
            kwargs: passed to the VLM (`image_grid_thw`, `mm_token_type_ids`, `past_key_values`, ...), except
                `region_masks` and `tiles_per_sample` (InternVL visual prompts, see [`internvl_inputs_embeds`]).
        """
        seg_states: list[torch.Tensor] = []
        handle = None
        if gt_masks is not None:
            handle = self.final_norm.register_forward_hook(
                lambda module, args, output: seg_states.append(self._seg_state(args, output))
            )
        region_masks = kwargs.pop("region_masks", None)
        tiles_per_sample = kwargs.pop("tiles_per_sample", None)
        try:
            if region_masks is not None:
                inputs_embeds = self.internvl_inputs_embeds(input_ids, pixel_values, region_masks, tiles_per_sample)
                outputs = self.vlm(inputs_embeds=inputs_embeds, attention_mask=attention_mask, labels=labels, **kwargs)
            else:
                outputs = self.vlm(
                    input_ids=input_ids,
                    attention_mask=attention_mask,
                    pixel_values=pixel_values,
                    labels=labels,
                    **kwargs,
                )
        finally:
            if handle is not None:
                handle.remove()
        loss = lm_loss = outputs.loss
        mask_bce_loss = mask_dice_loss = None
        if gt_masks is not None:
            mask_bce_loss, mask_dice_loss = self._mask_losses(
                seg_states[0], input_ids, sam_pixel_values, sam_frames_per_sample, gt_masks
            )
            mask_loss = self.config.mask_loss_weight * mask_bce_loss + self.config.dice_loss_weight * mask_dice_loss
            loss = mask_loss if loss is None else loss + mask_loss
        return Sa2VACausalLMOutputWithPast(
            loss=loss,
            lm_loss=lm_loss,
            mask_bce_loss=mask_bce_loss,
            mask_dice_loss=mask_dice_loss,
            logits=outputs.logits,
            hidden_states=outputs.hidden_states,
            attentions=outputs.attentions,
            **{CACHE_FIELD: getattr(outputs, CACHE_FIELD)},
        )

    def _seg_state(self, norm_args: tuple, norm_output: torch.Tensor) -> torch.Tensor:
        """The state a `[SEG]` prompt is made from, given the final norm's inputs and output (`SEG_STATE_AFTER_FINAL_NORM`)."""
        return norm_output if SEG_STATE_AFTER_FINAL_NORM[self.config.vlm_family] else norm_args[0]

    def _mask_losses(
        self,
        last_states: torch.FloatTensor,
        input_ids: torch.LongTensor,
        sam_pixel_values: torch.FloatTensor | None,
        sam_frames_per_sample: torch.LongTensor | None,
        gt_masks: list[torch.Tensor],
    ) -> tuple[torch.FloatTensor, torch.FloatTensor]:
        """`(bce, dice)` over every `[SEG]` and frame of the batch; zero (but connected to the trainable mask modules,
        so every rank of a distributed run reduces the same gradients) when the batch has no `[SEG]`.

        `last_states` is `(batch_size, sequence_length, hidden_size)`; the other arguments are as in [`forward`]."""
        seg_positions = input_ids == self.config.seg_token_id
        objects_per_sample = seg_positions.sum(dim=1).tolist()
        if len(gt_masks) != len(objects_per_sample):
            raise ValueError(f"`gt_masks` has {len(gt_masks)} entries for a batch of {len(objects_per_sample)}.")
        seg_embeddings = self.project_seg_hidden_states(last_states[seg_positions])
        frames_per_sample = [0] * len(gt_masks) if sam_frames_per_sample is None else sam_frames_per_sample.tolist()
        prompt_objects, prompt_frames, targets = [], [], []
        first_object = first_frame = 0
        for sample_idx, (num_objects, num_frames, masks) in enumerate(
            zip(objects_per_sample, frames_per_sample, gt_masks)
        ):
            if tuple(masks.shape[:2]) != (num_objects, num_frames):
                raise ValueError(
                    f"Sample {sample_idx} has {num_objects} [SEG] tokens and {num_frames} SAM-2 frames, but its "
                    f"`gt_masks` entry has shape {tuple(masks.shape)}; expected ({num_objects}, {num_frames}, H, W)."
                )
            for frame_idx in range(num_frames if num_objects else 0):
                prompt_objects.extend(range(first_object, first_object + num_objects))
                prompt_frames.extend([first_frame + frame_idx] * num_objects)
                targets.append(masks[:, frame_idx])
            first_object += num_objects
            first_frame += num_frames
        if not targets:
            trainable = [p for p in (*self.seg_projector.parameters(), *self.sam2.parameters()) if p.requires_grad]
            zero = sum((0.0 * p.sum() for p in trainable), last_states.new_zeros(()))
            return zero, zero
        device = seg_embeddings.device
        logits = self.sam2.segment_images(
            seg_embeddings[torch.tensor(prompt_objects, device=device)].to(self.sam2.dtype),
            sam_pixel_values.to(self.sam2.dtype),
            torch.tensor(prompt_frames, device=device),
        ).pred_masks[:, 0]
        return self.mask_loss_terms(logits, targets)

    def mask_loss_terms(
        self, mask_logits: torch.FloatTensor, target_masks: list[torch.Tensor]
    ) -> tuple[torch.FloatTensor, torch.FloatTensor]:
        """The config's mask losses (unweighted): `target_masks` resized to [`mask_target_grid`], points sampled as
        `train_num_points`, `oversample_ratio` and `importance_sample_ratio` say.

        Args:
            mask_logits (`torch.FloatTensor` of shape `(num_masks, height, width)`): SAM-2's low-resolution logits.
            target_masks (`list[torch.Tensor]`): binary targets `(num_masks_i, target_height_i, target_width_i)` at
                any resolution, in the order of `mask_logits` once concatenated.

        Returns:
            `(bce, dice)`: two scalars.
        """
        grid = self.mask_target_grid(mask_logits)
        targets = torch.cat([resize_target_masks(masks, grid) for masks in target_masks])
        config = self.config
        return mask_losses(
            mask_logits, targets, config.train_num_points, config.oversample_ratio, config.importance_sample_ratio
        )

    def mask_target_grid(self, mask_logits: torch.Tensor) -> tuple[int, int]:
        """`(height, width)` the training targets are resized to: `config.mask_target_size` squared, or the grid of
        `mask_logits` (`(..., height, width)`, SAM-2's low-resolution logits) when it is `None` (official)."""
        size = self.config.mask_target_size
        return tuple(mask_logits.shape[-2:]) if size is None else (size, size)

    def internvl_inputs_embeds(
        self,
        input_ids: torch.LongTensor,
        pixel_values: torch.FloatTensor | None = None,
        region_masks: torch.BoolTensor | list[torch.BoolTensor | None] | None = None,
        tiles_per_sample: list[int] | None = None,
    ) -> torch.FloatTensor:
        r"""
        Prompt embeddings of an InternVL-family Sa2VA, image features in place of the image tokens, in the order the
        official model fills them: per sample, every tile's tokens, then for each visual-prompt region the sample's
        last tile's (the thumbnail's) tokens under its mask, row-major.

        Args:
            input_ids (`torch.LongTensor` of shape `(batch_size, sequence_length)`): prompt ids from the processor.
            pixel_values (`torch.FloatTensor` of shape `(num_tiles, 3, tile_size, tile_size)`, *optional*): the tiles
                of every sample, sample after sample.
            region_masks (`torch.BoolTensor` of shape `(num_regions, grid, grid)`, or a list of them (or `None`) per
                sample, *optional*): visual prompts on the thumbnail's token grid, from the processor.
            tiles_per_sample (`list[int]`, *optional*): rows of `pixel_values` per sample; default all in one sample.

        Returns:
            `torch.FloatTensor` of shape `(batch_size, sequence_length, hidden_size)`.
        """
        inputs_embeds = self.get_input_embeddings()(input_ids)
        if pixel_values is None:
            return inputs_embeds
        tiles = self.vlm.model.get_image_features(pixel_values=pixel_values, return_dict=True).pooler_output
        if not isinstance(region_masks, list):
            region_masks = [region_masks]
        tiles_per_sample = [tiles.shape[0]] if tiles_per_sample is None else [int(n) for n in tiles_per_sample]
        if len(tiles_per_sample) != len(region_masks) or sum(tiles_per_sample) != tiles.shape[0]:
            raise ValueError(
                f"`tiles_per_sample` {tiles_per_sample} must give one count per `region_masks` entry "
                f"({len(region_masks)}) and add up to the {tiles.shape[0]} tiles of `pixel_values`."
            )
        features = []
        for sample_tiles, regions in zip(tiles.split(tiles_per_sample), region_masks):
            features.append(sample_tiles.flatten(0, 1))
            features.extend(sample_tiles[-1][mask.flatten()] for mask in ([] if regions is None else regions))
        features = torch.cat(features).to(inputs_embeds.dtype)
        image_positions = input_ids == self.config.vlm_config.image_token_id
        if int(image_positions.sum()) != features.shape[0]:
            raise ValueError(
                f"The prompt has {int(image_positions.sum())} image tokens but the image gives {features.shape[0]} "
                "features; build inputs with the checkpoint's processor."
            )
        return inputs_embeds.masked_scatter(image_positions[..., None], features)

    def generate(self, *args, **kwargs):
        """The VLM's `generate` (same arguments and outputs)."""
        return self.vlm.generate(*args, **kwargs)

    def project_seg_hidden_states(self, seg_hidden_states: torch.FloatTensor) -> torch.FloatTensor:
        """`(num_objects, llm_hidden_size)` final-layer `[SEG]` states → `(num_objects, sam2_hidden_size)` prompts."""
        return self.seg_projector(seg_hidden_states.to(next(self.seg_projector.parameters()).dtype))

    def decode_masks(
        self,
        seg_embeddings: torch.FloatTensor,
        sam_pixel_values: torch.FloatTensor,
        key_frame_indices: list[int] | None = None,
        show_progress: bool = False,
    ) -> torch.FloatTensor:
        r"""
        Low-resolution mask logits for projected `[SEG]` prompts on an image or every frame of a video.

        Args:
            seg_embeddings (`torch.FloatTensor` of shape `(num_objects, sam2_hidden_size)`): from
                [`project_seg_hidden_states`].
            sam_pixel_values (`torch.FloatTensor` of shape `(num_frames, 3, 1024, 1024)`): the SAM-2 view.
            key_frame_indices (`list[int]`, *optional*): frames prompted with the embeddings; the others are tracked.
                Default `[0]` for one frame, else the first `config.num_key_frames` frames.
            show_progress (`bool`, *optional*, defaults to `False`): progress bar over tracked frames.

        Returns:
            `torch.FloatTensor` of shape `(num_objects, num_frames, 256, 256)`: mask logits (see
            [`Sa2VAProcessor.post_process_masks`] for masks at the input size).
        """
        num_frames = sam_pixel_values.shape[0]
        seg_embeddings = seg_embeddings.to(self.sam2.device, self.sam2.dtype)
        if key_frame_indices is None:
            key_frame_indices = select_key_frames(num_frames, self.config.num_key_frames, "first")
        if num_frames == 1:
            return self.sam2.segment_images(
                seg_embeddings, sam_pixel_values.to(self.sam2.device, self.sam2.dtype)
            ).pred_masks
        logits = None
        for frame_idx, _, frame_logits in self.sam2.propagate_language_prompts(
            seg_embeddings,
            sam_pixel_values,
            {index: sam_pixel_values[index] for index in key_frame_indices},
            to_pixel_values=lambda pixel_values: pixel_values,
            num_frames=num_frames,
            show_progress=show_progress,
        ):
            if logits is None:
                logits = frame_logits.new_zeros(len(seg_embeddings), num_frames, *frame_logits.shape[-2:])
            logits[:, frame_idx] = frame_logits[:, 0]
        return logits

    def _generation_config(self, processor: Sa2VAProcessor, generate_kwargs: dict) -> tuple[GenerationConfig, dict]:
        """The official settings (greedy, 2048 new tokens, stop on EOS or a template stop word) updated by the
        caller's `generate_kwargs`; returns the config and the kwargs that are not generation settings."""
        generation_config = generate_kwargs.pop("generation_config", None)
        if generation_config is None:
            generation_config = GenerationConfig(
                max_new_tokens=DEFAULT_MAX_NEW_TOKENS,
                do_sample=False,
                eos_token_id=processor.stop_token_ids or self.vlm.generation_config.eos_token_id,
                pad_token_id=processor.tokenizer.pad_token_id,
                stop_strings=processor.stop_strings or None,
            )
        else:
            generation_config = copy.deepcopy(generation_config)
        other_kwargs = generation_config.update(**generate_kwargs)
        return generation_config, other_kwargs

    @torch.no_grad()
    def predict_forward(
        self,
        image=None,
        video=None,
        text: str | None = None,
        past_text: str = "",
        mask_prompts=None,
        tokenizer=None,
        processor: Sa2VAProcessor | None = None,
        key_frame_indices: list[int] | None = None,
        **generate_kwargs,
    ) -> dict:
        r"""
        Answer `text` about an image, a video or nothing, and return a mask per frame for every `[SEG]` in the answer.

        A drop-in for the official `predict_forward`: same arguments, same returned keys.

        Args:
            image (`PIL.Image.Image`, `np.ndarray` `(H, W, 3)` uint8, or a file path, *optional*): the image.
            video (`list` of images, folder or video file, *optional*): every frame of a video (same kinds as
                `image`), a folder of frame images, or a video file (needs PyAV). The key frames
                (`config.num_key_frames`, chosen by `config.key_frame_strategy`) go to the VLM; every frame gets a
                mask. Wins over `image` when both are given, as in the official code.
            text (`str`): the question, e.g. `"<image>Please segment the person."`.
            past_text (`str`, *optional*): earlier turns in prompt form, prepended verbatim.
            mask_prompts (*optional*): visual prompts on `image` (InternVL-family checkpoints): region masks
                `(num_regions, H, W)` at the image's size, or the official `[masks]`; the question refers to them as
                `region1`, `region2`, ...
            tokenizer (*optional*): the checkpoint's tokenizer (official call style); `processor` is preferred.
            processor ([`Sa2VAProcessor`], *optional*): the checkpoint's processor.
            key_frame_indices (`list[int]`, *optional*): a video's key frames, instead of the configured choice
                (see [`predict_video_stream`]).
            generate_kwargs: passed to `generate` (`max_new_tokens`, `sequence_bias`, `generation_config`, ...).

        Returns:
            `dict` with `"prediction"` (`str`, the answer with special tokens kept) and `"prediction_masks"`
            (`list[np.ndarray]`, one bool array `(num_frames, H, W)` per `[SEG]` in order, at the input's own size
            (a video's first frame); `num_frames` is 1 for an image; empty without media or without `[SEG]`).
            A video is held whole here, as in the official model; [`predict_video_stream`] gives the same masks
            frame by frame in bounded memory.
        """
        processor = self._resolve_processor(processor, tokenizer)
        request = self._prepare_request(processor, image, video, text, past_text, mask_prompts, key_frame_indices)
        return self._answer_requests([request], processor, generate_kwargs)[0]

    @torch.no_grad()
    def batch_predict_forward(
        self,
        requests: list[dict],
        processor: Sa2VAProcessor | None = None,
        tokenizer=None,
        **generate_kwargs,
    ) -> list[dict]:
        r"""
        [`predict_forward`] for several requests in one generation: the prompts are left-padded into one batch (for
        InternVL the prompt embeddings, images in place), answered together, and each row's `[SEG]` states are
        decoded by SAM-2 on its own image or video.

        Args:
            requests (`list[dict]`): one dict per row with `predict_forward`'s per-input arguments: `"text"` and
                optionally `"image"`, `"video"`, `"past_text"`, `"mask_prompts"`, `"key_frame_indices"`.
            processor ([`Sa2VAProcessor`], *optional*), tokenizer (*optional*): as in [`predict_forward`].
            generate_kwargs: passed to `generate` for the whole batch.

        Returns:
            `list[dict]`, one [`predict_forward`] result per request, in order. Row `i` equals `predict_forward` on
            request `i` alone (same text; masks equal up to float rounding at the threshold).
        """
        if not requests:
            raise ValueError("`requests` is empty; pass a list of dicts such as {'image': ..., 'text': ...}.")
        processor = self._resolve_processor(processor, tokenizer)
        allowed = {"image", "video", "text", "past_text", "mask_prompts", "key_frame_indices"}
        prepared = []
        for index, request in enumerate(requests):
            unknown = set(request) - allowed
            if unknown:
                raise ValueError(f"requests[{index}] has unknown keys {sorted(unknown)}; allowed: {sorted(allowed)}.")
            prepared.append(
                self._prepare_request(
                    processor,
                    request.get("image"),
                    request.get("video"),
                    request.get("text"),
                    request.get("past_text", ""),
                    request.get("mask_prompts"),
                    request.get("key_frame_indices"),
                )
            )
        return self._answer_requests(prepared, processor, generate_kwargs)

    def _prepare_request(
        self, processor: Sa2VAProcessor, image, video, text, past_text, mask_prompts, key_frame_indices
    ) -> dict:
        """One request's prompt and processor outputs, with the SAM-2 view set apart."""
        if text is None:
            raise ValueError("`text` is required: the question to answer, e.g. '<image>Please segment the cat.'")
        if video is not None:
            frames = list(self._video_frames(video, processor))
            if not frames:
                raise ValueError("`video` is empty; pass a list of frames (PIL images, arrays or file paths).")
            key_frame_indices = self._key_frame_indices(VideoFrames(frames), key_frame_indices)
            prompt = processor.build_prompt(text, num_images=len(key_frame_indices), past_text=past_text)
            inputs = processor(text=prompt, videos=frames, key_frame_indices=key_frame_indices, return_tensors="pt")
        elif image is not None:
            prompt = processor.build_prompt(text, num_images=1, past_text=past_text)
            inputs = processor(text=prompt, images=[image], mask_prompts=mask_prompts, return_tensors="pt")
        else:
            prompt = processor.build_prompt(text, num_images=0, past_text=past_text)
            inputs = processor(text=prompt, mask_prompts=mask_prompts, return_tensors="pt")
        return {
            "prompt": prompt,
            "sam_pixel_values": inputs.pop("sam_pixel_values", None),
            "original_sizes": inputs.pop("original_sizes", None),
            "key_frame_indices": key_frame_indices,
            "inputs": inputs,
        }

    def _answer_requests(self, requests: list[dict], processor: Sa2VAProcessor, generate_kwargs: dict) -> list[dict]:
        """Generate the answers of prepared requests as one batch, then decode each row's masks."""
        answers = self._answer(
            [r["inputs"] for r in requests], [r["prompt"] for r in requests], processor, generate_kwargs
        )
        results = []
        for request, (prediction, history, generated, fed_back_states) in zip(requests, answers):
            result = {"prediction": prediction, "prediction_masks": [], "past_text": history}
            results.append(result)
            if request["sam_pixel_values"] is None:
                continue
            seg_embeddings = self._seg_embeddings(generated, fed_back_states, processor)
            if len(seg_embeddings) == 0:
                continue
            mask_logits = self.decode_masks(seg_embeddings, request["sam_pixel_values"], request["key_frame_indices"])
            height, width = (int(v) for v in request["original_sizes"][0])
            masks = processor.post_process_masks(
                mask_logits.float().cpu(), (height, width), self.config.mask_threshold
            )
            result["prediction_masks"] = [np.asarray(mask.numpy(), dtype=bool) for mask in masks]
        return results

    @torch.no_grad()
    def predict_video_stream(
        self,
        video: Any,
        text: str,
        processor: Sa2VAProcessor | None = None,
        tokenizer=None,
        past_text: str = "",
        key_frame_indices: list[int] | None = None,
        show_progress: bool = True,
        **generate_kwargs,
    ) -> "Sa2VAVideoStream":
        r"""
        Answer `text` about a video now, and track the masks of every `[SEG]` lazily, frame by frame, in bounded
        memory: frames are decoded one at a time and released (with their SAM-2 features and memories) once
        SAM-2's window no longer needs them. Collecting the stream gives the masks of [`predict_forward`].

        Args:
            video: a video file (needs PyAV), a folder of frame images, a list of frames (PIL images, uint8 arrays
                `(H, W, 3)` or image paths) or an iterator of such frames (read once; a key frame late in it makes
                the frames before it wait in memory). All frames must have frame 0's size.
            text (`str`): the question, e.g. `"<image>Please segment the person."`.
            processor ([`Sa2VAProcessor`], *optional*): the checkpoint's processor (or pass `tokenizer`).
            tokenizer (*optional*): the checkpoint's tokenizer (official call style).
            past_text (`str`, *optional*): earlier turns in prompt form, prepended verbatim.
            key_frame_indices (`list[int]`, *optional*): frames shown to the VLM (in this order) and prompted in
                SAM-2; default `config.num_key_frames` frames chosen by `config.key_frame_strategy`. Frames before
                the first key frame are tracked backward.
            show_progress (`bool`, *optional*, defaults to `True`): progress bar while tracking.
            generate_kwargs: passed to `generate` (`max_new_tokens`, `sequence_bias`, `generation_config`, ...).

        Returns:
            [`Sa2VAVideoStream`]: `.prediction`, `.past_text` and `.num_objects` at once; iterating it yields
            `(frame_idx, frame, masks)` for every frame in order, `frame` a `PIL.Image.Image` and `masks` a bool
            `np.ndarray` of shape `(num_objects, H, W)` at frame 0's size.

        Raises:
            ValueError: for an empty or undecodable video, `key_frame_indices` outside the video, or a frame whose
                size differs from frame 0's (raised when that frame is reached).
        """
        if text is None:
            raise ValueError("`text` is required: the question to answer, e.g. '<image>Please segment the cat.'")
        processor = self._resolve_processor(processor, tokenizer)
        frames = self._video_frames(video, processor)
        default_key_frames = key_frame_indices is None
        key_frame_indices = self._key_frame_indices(frames, key_frame_indices)
        key_frames = frames.frames_at(sorted({0, *key_frame_indices}), strict=not default_key_frames)
        if default_key_frames:  # "first" on a video of unknown length: frames 0..num_key_frames - 1 that exist
            key_frame_indices = [index for index in key_frame_indices if index in key_frames]
        size = key_frames[0].size
        for index in key_frame_indices:
            _check_frame_size(index, key_frames[index], size)
        prompt = processor.build_prompt(text, num_images=len(key_frame_indices), past_text=past_text)
        inputs = processor(
            text=prompt,
            videos=[key_frames[index] for index in key_frame_indices],
            key_frame_indices=list(range(len(key_frame_indices))),
            return_tensors="pt",
        )
        key_frame_pixel_values = dict(zip(key_frame_indices, inputs.pop("sam_pixel_values")))
        inputs.pop("original_sizes")
        del key_frames
        prediction, history, generated, fed_back_states = self._answer([inputs], [prompt], processor, generate_kwargs)[
            0
        ]
        seg_embeddings = self._seg_embeddings(generated, fed_back_states, processor)
        masks = self._stream_masks(
            frames, seg_embeddings, key_frame_pixel_values, processor, size, frames.length_if_known, show_progress
        )
        return Sa2VAVideoStream(prediction, history, len(seg_embeddings), masks)

    def _stream_masks(
        self,
        frames: VideoFrames,
        seg_embeddings: torch.FloatTensor,
        key_frame_pixel_values: dict[int, torch.FloatTensor],
        processor: Sa2VAProcessor,
        size: tuple[int, int],
        num_frames: int | None,
        show_progress: bool,
    ) -> Iterator[tuple[int, Image.Image, np.ndarray]]:
        """`(frame_idx, frame, masks (num_objects, H, W) bool)` for every frame of `frames`, tracked lazily."""
        width, height = size

        def sam_view(indexed_frame: tuple[int, Image.Image]) -> torch.FloatTensor:
            index, frame = indexed_frame
            _check_frame_size(index, frame, size)
            return processor.image_processor.sam_view(frame)[0]

        if len(seg_embeddings) == 0:
            for index, frame in enumerate(frames):
                _check_frame_size(index, frame, size)
                yield index, frame, np.zeros((0, height, width), dtype=bool)
            return
        seg_embeddings = seg_embeddings.to(self.sam2.device, self.sam2.dtype)
        tracked = self.sam2.propagate_language_prompts(
            seg_embeddings, enumerate(frames), key_frame_pixel_values, sam_view, num_frames, show_progress
        )
        for frame_idx, (_, frame), logits in tracked:
            masks = processor.post_process_masks(logits.float().cpu(), (height, width), self.config.mask_threshold)
            yield frame_idx, frame, masks[:, 0].numpy()

    def _video_frames(self, video: Any, processor: Sa2VAProcessor) -> VideoFrames:
        """`video` (file, folder, list or iterator of frames) as lazily decoded RGB-convertible PIL frames."""
        return VideoFrames(video, to_image=lambda item, name: processor.image_processor.load_images(item, name)[0])

    def _key_frame_indices(self, frames: VideoFrames, key_frame_indices: list[int] | None) -> list[int]:
        """The given `key_frame_indices` (checked) or `config.num_key_frames` chosen by `config.key_frame_strategy`;
        for `"first"` on a video of unknown length, frames `0..num_key_frames - 1` (the caller drops missing ones)."""
        num_frames = frames.length_if_known
        if key_frame_indices is not None:
            return check_key_frame_indices(key_frame_indices, num_frames)
        strategy = self.config.key_frame_strategy
        if num_frames is None and strategy == "first":
            return list(range(self.config.num_key_frames))
        return select_key_frames(
            len(frames) if num_frames is None else num_frames, self.config.num_key_frames, strategy
        )

    def _answer(
        self, rows: list, prompts: list[str], processor: Sa2VAProcessor, generate_kwargs: dict
    ) -> list[tuple[str, str, torch.LongTensor, torch.FloatTensor]]:
        """Generate the answers to processor outputs (`rows`, media views already popped) built from `prompts`, all
        rows in one left-padded batch.

        Returns:
            per row `(prediction, past_text, generated, fed_back_states)`: the decoded answer, the conversation so far
            in prompt form, the generated ids `(num_generated,)` (up to the row's end) and their fed-back states
            `(num_generated - 1, hidden_size)` (see [`_generate_with_final_states`]).
        """
        inputs = self._left_padded_batch(rows, processor)
        generation_config, other_kwargs = self._generation_config(processor, generate_kwargs)
        sequences, fed_back_states = self._generate_with_final_states(
            inputs, generation_config, tokenizer=processor.tokenizer, **other_kwargs
        )
        answers = []
        for row, prompt in enumerate(prompts):
            generated = sequences[row, self._prompt_length_in_sequences(inputs) :]
            if len(prompts) > 1:
                generated = self._row_answer(generated, processor)
            prediction = processor.tokenizer.decode(generated, skip_special_tokens=False).strip()
            answer = generated
            while answer.numel() and int(answer[-1]) in processor.stop_token_ids:
                answer = answer[:-1]
            history = prompt + processor.tokenizer.decode(answer, skip_special_tokens=False) + processor.turn_end()
            answers.append((prediction, history, generated, fed_back_states[row, : max(generated.numel() - 1, 0)]))
        return answers

    @staticmethod
    def _row_answer(generated: torch.LongTensor, processor: Sa2VAProcessor) -> torch.LongTensor:
        """A batch row's generated ids up to its end: through its first stop token, without the padding `generate`
        adds once a row is done before the others."""
        stops = torch.isin(generated, torch.tensor(processor.stop_token_ids, device=generated.device))
        if stops.any():
            return generated[: int(stops.nonzero()[0]) + 1]
        pad_id = processor.tokenizer.pad_token_id
        end = generated.numel()
        while pad_id is not None and end and int(generated[end - 1]) == pad_id:
            end -= 1
        return generated[:end]

    def _left_padded_batch(self, rows: list, processor: Sa2VAProcessor) -> dict:
        """One `generate` input from per-row processor outputs: left-padded `input_ids` / `attention_mask` (and
        `mm_token_type_ids`), the rows' image tensors concatenated; InternVL rows become `inputs_embeds`, each with
        its own images and visual prompts in place."""
        rows = [dict(row) for row in rows]
        for row in rows:
            row.pop("num_tiles", None)
        lengths = [row["input_ids"].shape[1] for row in rows]
        longest = max(lengths)

        def left_pad(tensors: list[torch.Tensor], value) -> torch.Tensor:
            padded = [F.pad(t, (*(0, 0) * (t.dim() - 2), longest - t.shape[1], 0), value=value) for t in tensors]
            return torch.cat(padded).to(self.device)

        attention_mask = left_pad([row["attention_mask"] for row in rows], 0)
        if GENERATE_FROM_EMBEDDINGS[self.config.vlm_family]:
            embeds = [
                self.internvl_inputs_embeds(
                    row["input_ids"].to(self.device),
                    row["pixel_values"].to(self.device, self.dtype) if "pixel_values" in row else None,
                    row.get("region_masks"),
                )
                for row in rows
            ]
            return {"inputs_embeds": left_pad(embeds, 0.0), "attention_mask": attention_mask}
        batch = {
            "input_ids": left_pad([row["input_ids"] for row in rows], processor.tokenizer.pad_token_id),
            "attention_mask": attention_mask,
        }
        if "mm_token_type_ids" in rows[0]:
            batch["mm_token_type_ids"] = left_pad([row["mm_token_type_ids"] for row in rows], 0)
        with_images = [row for row in rows if "pixel_values" in row]
        if with_images:
            batch["pixel_values"] = torch.cat([row["pixel_values"] for row in with_images]).to(self.device, self.dtype)
            batch["image_grid_thw"] = torch.cat([row["image_grid_thw"] for row in with_images]).to(self.device)
        return batch

    def _seg_embeddings(
        self, generated: torch.LongTensor, fed_back_states: torch.FloatTensor, processor: Sa2VAProcessor
    ) -> torch.FloatTensor:
        """Projected states `(num_objects, seg_hidden_size)` of the generated `[SEG]` tokens that were fed back."""
        seg_positions = (generated[:-1] == processor.seg_token_id).nonzero().flatten()
        if generated.numel() and generated[-1] == processor.seg_token_id:
            logger.warning("The answer ends with [SEG] (max_new_tokens reached?): that [SEG] gets no mask.")
        return self.project_seg_hidden_states(fed_back_states[seg_positions])

    def _generate_with_final_states(
        self, inputs, generation_config: GenerationConfig, **generate_kwargs
    ) -> tuple[torch.LongTensor, torch.FloatTensor]:
        """Generate, and keep the last-layer state of every generated token when it is fed back as input.

        Returns:
            `(sequences, states)`: `sequences` `(batch_size, num_prompt_tokens + num_generated)` (no prompt tokens
            when generating from `inputs_embeds`) and `states` `(batch_size, num_generated - 1, hidden_size)`, entry
            `[b, i]` the state at row `b`'s generated token `i` (the last token is never fed back). A hook on the final norm records one row per decoding step (its output, or its input where
            `SEG_STATE_AFTER_FINAL_NORM` says so), so no per-layer states are kept.
        """
        last_states: list[torch.Tensor] = []

        def record(module, args, output):
            last_states.append(self._seg_state(args, output)[:, -1])

        handle = self.final_norm.register_forward_hook(record)
        try:
            sequences = self.vlm.generate(**inputs, generation_config=generation_config, **generate_kwargs)
        finally:
            handle.remove()
        num_generated = sequences.shape[1] - self._prompt_length_in_sequences(inputs)
        fed_back = last_states[len(last_states) - (num_generated - 1) :] if num_generated > 1 else []
        if not fed_back:
            hidden_size = self.config.text_config.hidden_size
            return sequences, torch.zeros((sequences.shape[0], 0, hidden_size), dtype=self.dtype, device=self.device)
        return sequences, torch.stack(fed_back, dim=1)

    @staticmethod
    def _prompt_length_in_sequences(generate_inputs: dict) -> int:
        """How many prompt tokens `generate` puts in front of the new ones (none when prompted with embeddings)."""
        return generate_inputs["input_ids"].shape[1] if "input_ids" in generate_inputs else 0

    def _resolve_processor(self, processor: Sa2VAProcessor | None, tokenizer) -> Sa2VAProcessor:
        """The processor to use: the given one, or one built around a tokenizer (the official call style)."""
        if processor is not None:
            if not isinstance(processor, Sa2VAProcessor) and type(processor).__name__ != "Sa2VAProcessor":
                raise TypeError(
                    f"`processor` must be a Sa2VAProcessor (AutoProcessor.from_pretrained of this checkpoint), "
                    f"got {type(processor).__name__}."
                )
            return processor
        if tokenizer is None:
            raise ValueError("Pass `processor=` (preferred) or `tokenizer=` to `predict_forward`.")
        if tokenizer.chat_template is None:
            raise ValueError(
                "`tokenizer` has no chat template; pass `processor=AutoProcessor.from_pretrained(<checkpoint>)`."
            )
        source = getattr(tokenizer, "name_or_path", "")
        if source and os.path.isdir(source) and (Path(source) / "processor_config.json").is_file():
            return Sa2VAProcessor.from_pretrained(source)
        return Sa2VAProcessor(
            image_processor=Sa2VAImageProcessor(vlm_family=self.config.vlm_family),
            tokenizer=tokenizer,
            chat_template=tokenizer.chat_template,
        )


__all__ = [
    "Sa2VAForConditionalGeneration",
    "Sa2VAPreTrainedModel",
    "Sa2VACausalLMOutputWithPast",
    "Sa2VAVideoStream",
    "select_key_frames",
]
