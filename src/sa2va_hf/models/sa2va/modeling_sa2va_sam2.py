"""SAM-2 as Sa2VA uses it: transformers' `Sam2VideoModel` with the projected `[SEG]` state as an extra sparse prompt.

Sa2VA changes three things in stock SAM-2, and only these live here:
1. the prompt encoder appends the language embedding after the sparse tokens (with no points given, SAM-2 already
   pads two "not a point" tokens, so the decoder sees `[not_a_point, not_a_point, language]` as the official model);
2. a frame's mask is kept when SAM-2 judges the object absent (the official model disabled that blanking; the
   object pointer is still switched to the "no object" pointer);
3. a driver that segments key frames with the language prompt and tracks every other frame with SAM-2's memory,
   all objects batched, in bounded memory.
"""

from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from typing import TypeVar

import torch
import torch.nn.functional as F
from transformers import Sam2VideoConfig, Sam2VideoModel
from transformers.models.sam2_video.modeling_sam2_video import (
    NO_OBJ_SCORE,
    Sam2VideoImageSegmentationOutput,
    Sam2VideoMemoryAttention,
    Sam2VideoPromptEncoder,
)
from transformers.utils.logging import tqdm


FrameT = TypeVar("FrameT")


class Sa2VASam2PromptEncoder(Sam2VideoPromptEncoder):
    """SAM-2's prompt encoder, appending a language embedding to the sparse prompt while one is set."""

    def __init__(self, config):
        super().__init__(config)
        self.language_embeddings: torch.Tensor | None = None

    @contextmanager
    def language_prompt(self, language_embeddings: torch.Tensor) -> Iterator[None]:
        """Append `language_embeddings` (`(batch_size, num_objects, 1, hidden_size)`) to every sparse prompt inside."""
        self.language_embeddings = language_embeddings
        try:
            yield
        finally:
            self.language_embeddings = None

    def forward(self, input_points, input_labels, input_boxes, input_masks):
        sparse_embeddings, dense_embeddings = super().forward(input_points, input_labels, input_boxes, input_masks)
        if self.language_embeddings is not None:
            language = self.language_embeddings.to(sparse_embeddings.dtype)
            sparse_embeddings = torch.cat([sparse_embeddings, language], dim=2)
        return sparse_embeddings, dense_embeddings


class Sa2VASam2MemoryAttention(Sam2VideoMemoryAttention):
    """SAM-2's memory attention returning `(batch_size, height * width, channels)`, the layout
    `Sam2VideoModel._prepare_memory_conditioned_features` reshapes correctly for any batch size (the stock
    `(1, batch_size, height * width, channels)` is only right for one object at a time)."""

    def forward(self, *args, **kwargs) -> torch.Tensor:
        return super().forward(*args, **kwargs)[0]


class Sa2VASam2Model(Sam2VideoModel):
    """`Sam2VideoModel` prompted by Sa2VA `[SEG]` embeddings.

    Args:
        config (`Sam2VideoConfig`): SAM-2 configuration.
        blank_absent_objects (`bool`, *optional*, defaults to `False`):
            Replace a frame's mask logits by -1024 when SAM-2 judges the object absent (stock SAM-2). The official
            Sa2VA model keeps the mask.
    """

    def __init__(self, config: Sam2VideoConfig, blank_absent_objects: bool = False):
        super().__init__(config)
        self.prompt_encoder = Sa2VASam2PromptEncoder(config.prompt_encoder_config)
        self.memory_attention = Sa2VASam2MemoryAttention(config)
        self.blank_absent_objects = blank_absent_objects
        self.post_init()

    def _single_frame_forward(
        self, *args, multimask_output: bool = True, **kwargs
    ) -> Sam2VideoImageSegmentationOutput:
        """Stock `_single_frame_forward`, with its mask and object-pointer selection redone per batch row (the stock
        one mixes rows when `batch_size > 1`, as when objects are batched) and absent-object blanking optional."""
        decoder_outputs = []
        handle = self.mask_decoder.register_forward_hook(
            lambda module, inputs, outputs: decoder_outputs.append(outputs)
        )
        try:
            output = super()._single_frame_forward(*args, multimask_output=multimask_output, **kwargs)
        finally:
            handle.remove()
        low_res_multimasks, iou_scores, output_tokens, object_score_logits = decoder_outputs[-1][:4]
        is_present = object_score_logits > 0  # (batch_size, point_batch_size, 1)
        if self.blank_absent_objects:
            low_res_multimasks = torch.where(is_present[..., None, None], low_res_multimasks, NO_OBJ_SCORE)
        best = torch.argmax(iou_scores, dim=-1, keepdim=True)
        if not multimask_output:
            best = torch.zeros_like(best)
        mask_index = best[..., None, None].expand(*best.shape, *low_res_multimasks.shape[-2:])
        low_res_masks = torch.gather(low_res_multimasks, 2, mask_index).squeeze(2)
        token_index = best.clamp(max=output_tokens.shape[2] - 1)[..., None].expand(
            *best.shape, output_tokens.shape[-1]
        )
        object_pointer = self.object_pointer_proj(torch.gather(output_tokens, 2, token_index).squeeze(2))
        present = is_present.to(object_pointer.dtype)
        output.object_pointer = present * object_pointer + (1 - present) * self.no_object_pointer
        output.pred_masks = low_res_masks
        output.high_res_masks = F.interpolate(
            low_res_masks.float(), size=(self.image_size, self.image_size), mode="bilinear", align_corners=False
        ).to(low_res_masks.dtype)
        return output

    def image_embeddings(self, pixel_values: torch.FloatTensor) -> list[torch.Tensor]:
        """SAM-2 features of single frames with no memory, as the mask decoder takes them.

        Args:
            pixel_values (`torch.FloatTensor` of shape `(batch_size, 3, image_size, image_size)`): SAM-2 view.

        Returns:
            `list[torch.Tensor]`: one feature map per level, `(batch_size, channels, height, width)`, finest first;
            the last (coarsest) already has the "no memory" embedding added.
        """
        feature_maps = self.get_image_features(pixel_values, return_dict=True).fpn_hidden_states
        feature_maps[-1] = feature_maps[-1] + self.no_memory_embedding
        batch_size = pixel_values.shape[0]
        return [
            feature.permute(1, 2, 0).view(batch_size, -1, *size)
            for feature, size in zip(feature_maps, self.backbone_feature_sizes)
        ]

    def segment_images(
        self,
        language_embeddings: torch.FloatTensor,
        pixel_values: torch.FloatTensor | None = None,
        frame_indices: torch.LongTensor | None = None,
        image_embeddings: list[torch.Tensor] | None = None,
    ) -> Sam2VideoImageSegmentationOutput:
        """Segment images for language prompts, each image encoded once, all prompts decoded as one batch
        (differentiable; no memory).

        Args:
            language_embeddings (`torch.FloatTensor` of shape `(num_prompts, hidden_size)`): projected `[SEG]` states.
            pixel_values (`torch.FloatTensor` of shape `(num_images, 3, image_size, image_size)`, *optional*): SAM-2
                view.
            frame_indices (`torch.LongTensor` of shape `(num_prompts,)`, *optional*): the image each prompt segments;
                by default every prompt segments the only image.
            image_embeddings (`list[torch.Tensor]`, *optional*): what [`~Sa2VASam2Model.image_embeddings`] returns
                for the images, for a caller that also uses those features; pass it or `pixel_values`, not both.

        Returns:
            `Sam2VideoImageSegmentationOutput` with `pred_masks` of shape `(num_prompts, 1, low_res, low_res)` (low-res
            logits of the best of the three multimask outputs; `low_res` is `image_size / 4`) and `iou_scores`
            `(num_prompts, 1, 3)`.
        """
        if (pixel_values is None) == (image_embeddings is None):
            raise ValueError("Pass exactly one of `pixel_values` and `image_embeddings` to `segment_images`.")
        if image_embeddings is None:
            image_embeddings = self.image_embeddings(pixel_values)
        num_prompts, num_images = language_embeddings.shape[0], image_embeddings[0].shape[0]
        if frame_indices is None:
            if num_images != 1:
                raise ValueError(
                    f"The images are {num_images}; pass `frame_indices` to say which image each prompt segments."
                )
            frame_indices = torch.zeros(num_prompts, dtype=torch.long, device=image_embeddings[0].device)
        image_embeddings = [feature[frame_indices] for feature in image_embeddings]
        with self.prompt_encoder.language_prompt(language_embeddings[:, None, None, :]):
            return self._single_frame_forward(image_embeddings=image_embeddings, multimask_output=True)

    @torch.inference_mode()
    def propagate_language_prompts(
        self,
        language_embeddings: torch.FloatTensor,
        frames: Iterable[FrameT],
        key_frame_pixel_values: dict[int, torch.FloatTensor],
        to_pixel_values: Callable[[FrameT], torch.FloatTensor],
        num_frames: int | None = None,
        show_progress: bool = False,
    ) -> Iterator[tuple[int, FrameT, torch.FloatTensor]]:
        """Segment the key frames with the language prompts, then track every other frame with SAM-2's memory.

        All objects go through SAM-2 together: each frame is encoded once, and the mask decoder, memory attention
        and memory encoder run the objects as one batch. Each key frame is an independent conditioning frame
        prompted by the same embeddings (official Sa2VA). Frames after the first key frame are tracked forward,
        frames before it backward (each direction reads the key frames and its own tracked frames only).

        Memory stays bounded: key frames are encoded up front and only their memories kept; while tracking, a
        frame's features are released once it is decoded and its memory once SAM-2's window (`num_maskmem - 1`
        frames of memory features, `max_object_pointers_in_encoder - 1` of object pointers) has passed it. Only
        the frames before the first key frame are held (as given, then as low-res logits) until they are yielded.

        Args:
            language_embeddings (`torch.FloatTensor` of shape `(num_objects, hidden_size)`): projected `[SEG]` states.
            frames (`Iterable`): every frame of the video in order, in any form `to_pixel_values` reads (read once).
            key_frame_pixel_values (`dict[int, torch.FloatTensor]`): SAM-2 view `(3, image_size, image_size)` of each
                key frame, by frame index.
            to_pixel_values (`Callable`): a frame of `frames` -> its SAM-2 view `(3, image_size, image_size)`;
                called once per frame that is not a key frame.
            num_frames (`int`, *optional*): the video's length when known (SAM-2 bounds object pointers by it).
            show_progress (`bool`, *optional*, defaults to `False`): show a progress bar while tracking.

        Yields:
            `(frame_idx, frame, low_res_masks)` for every frame in order, `frame` as given and `low_res_masks` of
            shape `(num_objects, 1, 256, 256)` (mask logits).

        Raises:
            ValueError: when there is no key frame, or `frames` ends before the last key frame.
        """
        if not key_frame_pixel_values:
            raise ValueError("`key_frame_pixel_values` is empty; the language prompts need at least one key frame.")
        memory = ObjectBatchedMemory(self, len(language_embeddings), num_frames)
        key_frame_logits = {}
        for frame_idx in sorted(key_frame_pixel_values):
            features = self._frame_features(key_frame_pixel_values[frame_idx])
            with self.prompt_encoder.language_prompt(language_embeddings[:, None, None, :]):
                key_frame_logits[frame_idx] = self._segment_frame(memory, frame_idx, features, is_key_frame=True)
        first_key_frame = min(key_frame_logits)
        earlier_frames = []
        frame_idx = -1
        with tqdm(total=num_frames, desc="Tracking", unit="frame", disable=not show_progress) as progress:
            for frame_idx, frame in enumerate(frames):
                if frame_idx < first_key_frame:
                    earlier_frames.append(frame)
                    continue
                if earlier_frames:
                    yield from self._track_backward(memory, earlier_frames, to_pixel_values, progress)
                    earlier_frames = []
                if frame_idx in key_frame_logits:
                    logits = key_frame_logits.pop(frame_idx)
                else:
                    logits = self._segment_frame(memory, frame_idx, self._frame_features(to_pixel_values(frame)))
                progress.update()
                yield frame_idx, frame, logits
        if key_frame_logits:
            raise ValueError(
                f"The video has {frame_idx + 1} frames but key frame {max(key_frame_logits)} was requested; "
                "pass `key_frame_indices` inside the video."
            )

    def _track_backward(
        self,
        memory: "ObjectBatchedMemory",
        frames: list[FrameT],
        to_pixel_values: Callable[[FrameT], torch.FloatTensor],
        progress,
    ) -> Iterator[tuple[int, FrameT, torch.FloatTensor]]:
        """Track `frames` (frames `0..len(frames) - 1`, before the first key frame) backward, yield them in order."""
        logits = [None] * len(frames)
        for frame_idx in reversed(range(len(frames))):
            features = self._frame_features(to_pixel_values(frames[frame_idx]))
            logits[frame_idx] = self._segment_frame(memory, frame_idx, features, reverse=True)
            progress.update()
        memory.forget_tracked_frames()
        for frame_idx, frame in enumerate(frames):
            yield frame_idx, frame, logits[frame_idx]
            logits[frame_idx] = None

    def _frame_features(self, pixel_values: torch.FloatTensor) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
        """One image-encoder pass: `(3, S, S)` -> SAM-2 feature maps and positions, each `(height * width, 1, C)`."""
        pixel_values = pixel_values.to(self.device, self.dtype)
        outputs = self.get_image_features(pixel_values[None], return_dict=True)
        return outputs.fpn_hidden_states, outputs.fpn_position_encoding

    def _segment_frame(
        self,
        memory: "ObjectBatchedMemory",
        frame_idx: int,
        features: tuple[list[torch.Tensor], list[torch.Tensor]],
        is_key_frame: bool = False,
        reverse: bool = False,
    ) -> torch.FloatTensor:
        """Decode every object on one frame (memory-conditioned unless a key frame) and store its memory.

        Returns:
            `torch.FloatTensor` of shape `(num_objects, 1, 256, 256)`: low-res mask logits.
        """
        num_objects = memory.num_objects
        feature_maps = [feature.expand(-1, num_objects, -1) for feature in features[0]]
        positions = features[1][-1].expand(-1, num_objects, -1)
        high_res_features = [
            feature.permute(1, 2, 0).reshape(num_objects, -1, *size)
            for feature, size in zip(feature_maps[:-1], self.backbone_feature_sizes[:-1])
        ]
        pixel_features = self._prepare_memory_conditioned_features(
            inference_session=memory,
            frame_idx=frame_idx,
            obj_idx=0,
            is_initial_conditioning_frame=is_key_frame,
            current_vision_features=feature_maps[-1],
            current_vision_positional_embeddings=positions,
            num_total_frames=memory.num_frames,
            track_in_reverse_time=reverse,
            streaming=memory.num_frames is None,
        )
        outputs = self._single_frame_forward(
            image_embeddings=[*high_res_features, pixel_features],
            multimask_output=self._use_multimask(is_key_frame, None),
        )
        memory_features, memory_positions = self._encode_new_memory(
            current_vision_feats=feature_maps[-1],
            pred_masks_high_res=outputs.high_res_masks,
            object_score_logits=outputs.object_score_logits,
            is_mask_from_pts=False,
        )
        memory.store(
            frame_idx,
            {
                "maskmem_features": memory_features,
                "maskmem_pos_enc": memory_positions,
                "object_pointer": outputs.object_pointer,
            },
            is_key_frame=is_key_frame,
        )
        return outputs.pred_masks


class ObjectBatchedMemory:
    """SAM-2's memory bank for one video with every object along the batch axis, holding only what tracking reads.

    It has the layout `Sam2VideoModel._prepare_memory_conditioned_features` reads from a `Sam2VideoInferenceSession`
    (`output_dict_per_obj[0]`, `dtype`), with one "object" whose tensors carry all objects at once: memory features
    `(height * width, num_objects, mem_dim)` and object pointers `(num_objects, hidden_size)`. Key frames
    (conditioning frames) stay for the whole video; a tracked frame's memory features are dropped once
    `num_maskmem - 1` newer frames are tracked, the whole entry once `max_object_pointers_in_encoder - 1` are.

    Args:
        model (`Sam2VideoModel`): the model tracking (its config sets the window; its dtype the memory's).
        num_objects (`int`): objects tracked together.
        num_frames (`int`, *optional*): the video's length, when known.
    """

    def __init__(self, model: Sam2VideoModel, num_objects: int, num_frames: int | None = None):
        self.num_objects = num_objects
        self.num_frames = num_frames
        self.dtype = model.dtype
        self.memory_window = model.num_maskmem - 1
        self.pointer_window = max(self.memory_window, model.config.max_object_pointers_in_encoder - 1)
        self.key_frames: dict[int, dict[str, torch.Tensor]] = {}
        self.tracked_frames: dict[int, dict[str, torch.Tensor]] = {}
        self.output_dict_per_obj = {
            0: {"cond_frame_outputs": self.key_frames, "non_cond_frame_outputs": self.tracked_frames}
        }

    def store(self, frame_idx: int, output: dict[str, torch.Tensor], is_key_frame: bool) -> None:
        """Keep `output` (`maskmem_features`, `maskmem_pos_enc`, `object_pointer`) for frame `frame_idx`, and
        release what the next frame tracked (next to `frame_idx`, either direction) no longer reads."""
        if is_key_frame:
            self.key_frames[frame_idx] = output
            return
        self.tracked_frames[frame_idx] = output
        for other in list(self.tracked_frames):
            distance_from_next = abs(frame_idx - other) + 1
            if distance_from_next > self.pointer_window:
                del self.tracked_frames[other]
            elif distance_from_next > self.memory_window:
                self.tracked_frames[other] = {"object_pointer": self.tracked_frames[other]["object_pointer"]}

    def forget_tracked_frames(self) -> None:
        """Drop every tracked frame (before tracking in the other direction)."""
        self.tracked_frames.clear()


__all__ = ["ObjectBatchedMemory", "Sa2VASam2Model"]
