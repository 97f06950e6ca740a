"""SAM-2 as Sa2VA uses it: transformers' `Sam2VideoModel` with the projected `[SEG]` state as an extra sparse prompt.

Sa2VA changes three things in stock SAM-2, and only these live here:
1. the prompt encoder appends the language embedding after the sparse tokens (with no points given, SAM-2 already
   pads two "not a point" tokens, so the decoder sees `[not_a_point, not_a_point, language]` as the official model);
2. a frame's mask is kept when SAM-2 judges the object absent (the official model disabled that blanking; the
   object pointer is still switched to the "no object" pointer);
3. a driver that segments key frames with the language prompt and tracks every other frame with SAM-2's memory.
"""

from collections.abc import Iterator, Sequence
from contextlib import contextmanager

import torch
import torch.nn.functional as F
from transformers import Sam2VideoConfig, Sam2VideoModel
from transformers.models.sam2_video.modeling_sam2_video import (
    Sam2VideoImageSegmentationOutput,
    Sam2VideoInferenceSession,
    Sam2VideoPromptEncoder,
)


class Sa2VASam2InferenceSession(Sam2VideoInferenceSession):
    """A `Sam2VideoInferenceSession` that also holds Sa2VA language prompts, per object and frame."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.language_inputs_per_obj: dict[int, dict[int, torch.Tensor]] = {}

    def add_language_inputs(self, obj_idx: int, frame_idx: int, language_embedding: torch.Tensor) -> None:
        """Prompt object `obj_idx` on frame `frame_idx` with `language_embedding` (`(hidden_size,)`)."""
        self.language_inputs_per_obj.setdefault(obj_idx, {})[frame_idx] = language_embedding.to(self.inference_device)
        if obj_idx not in self.obj_with_new_inputs:
            self.obj_with_new_inputs.append(obj_idx)

    def get_language_inputs(self, obj_idx: int, frame_idx: int) -> torch.Tensor | None:
        return self.language_inputs_per_obj.get(obj_idx, {}).get(frame_idx)


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
        self.blank_absent_objects = blank_absent_objects
        self.post_init()

    def _single_frame_forward(
        self, *args, multimask_output: bool = True, **kwargs
    ) -> Sam2VideoImageSegmentationOutput:
        if self.blank_absent_objects:
            return super()._single_frame_forward(*args, multimask_output=multimask_output, **kwargs)
        decoder_outputs = []
        handle = self.mask_decoder.register_forward_hook(
            lambda module, inputs, outputs: decoder_outputs.append(outputs)
        )
        try:
            output = super()._single_frame_forward(*args, multimask_output=multimask_output, **kwargs)
        finally:
            handle.remove()
        # Re-select the decoder's mask the way stock SAM-2 does, from logits that were never blanked.
        low_res_multimasks, iou_scores = decoder_outputs[-1][0], decoder_outputs[-1][1]
        if multimask_output:
            best = torch.argmax(iou_scores, dim=-1, keepdim=True)[..., None, None]
            shape = (*best.shape[:-2], *low_res_multimasks.shape[-2:])
            low_res_masks = torch.gather(low_res_multimasks, 2, best.expand(shape)).squeeze(2)
        else:
            low_res_masks = low_res_multimasks[:, :, 0]
        output.pred_masks = low_res_masks
        output.high_res_masks = F.interpolate(
            low_res_masks.float(), size=(self.image_size, self.image_size), mode="bilinear", align_corners=False
        ).to(low_res_masks.dtype)
        return output

    def _run_single_frame_inference(self, inference_session, frame_idx, obj_idx, *args, **kwargs):
        language = None
        if isinstance(inference_session, Sa2VASam2InferenceSession):
            language = inference_session.get_language_inputs(obj_idx, frame_idx)
        if language is None or not kwargs.get("is_init_cond_frame", True):
            return super()._run_single_frame_inference(inference_session, frame_idx, obj_idx, *args, **kwargs)
        with self.prompt_encoder.language_prompt(language.reshape(1, 1, 1, -1)):
            return super()._run_single_frame_inference(inference_session, frame_idx, obj_idx, *args, **kwargs)

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
        pixel_values: torch.FloatTensor,
        frame_indices: torch.LongTensor | None = None,
    ) -> Sam2VideoImageSegmentationOutput:
        """Segment images for language prompts, each image encoded once, all prompts decoded as one batch
        (differentiable; no memory).

        Args:
            language_embeddings (`torch.FloatTensor` of shape `(num_prompts, hidden_size)`): projected `[SEG]` states.
            pixel_values (`torch.FloatTensor` of shape `(num_images, 3, image_size, image_size)`): SAM-2 view.
            frame_indices (`torch.LongTensor` of shape `(num_prompts,)`, *optional*): the image each prompt segments;
                by default every prompt segments the only image.

        Returns:
            `Sam2VideoImageSegmentationOutput` with `pred_masks` of shape `(num_prompts, 1, low_res, low_res)` (low-res
            logits of the best of the three multimask outputs; `low_res` is `image_size / 4`) and `iou_scores`
            `(num_prompts, 1, 3)`.
        """
        num_prompts = language_embeddings.shape[0]
        if frame_indices is None:
            if pixel_values.shape[0] != 1:
                raise ValueError(
                    f"`pixel_values` holds {pixel_values.shape[0]} images; pass `frame_indices` to say which image "
                    "each prompt segments."
                )
            frame_indices = torch.zeros(num_prompts, dtype=torch.long, device=pixel_values.device)
        image_embeddings = [feature[frame_indices] for feature in self.image_embeddings(pixel_values)]
        with self.prompt_encoder.language_prompt(language_embeddings[:, None, None, :]):
            return self._single_frame_forward(image_embeddings=image_embeddings, multimask_output=True)

    @torch.inference_mode()
    def propagate_language_prompts(
        self,
        language_embeddings: torch.FloatTensor,
        pixel_values: torch.FloatTensor,
        key_frame_indices: Sequence[int],
        show_progress: bool = False,
    ) -> Iterator[tuple[int, torch.FloatTensor]]:
        """Segment the key frames with the language prompts, then track every frame with SAM-2's memory.

        Each key frame is an independent conditioning frame prompted by the same embedding (official Sa2VA); the
        other frames attend to the key frames' memories and object pointers.

        Args:
            language_embeddings (`torch.FloatTensor` of shape `(num_objects, hidden_size)`): projected `[SEG]` states.
            pixel_values (`torch.FloatTensor` of shape `(num_frames, 3, image_size, image_size)`): SAM-2 view.
            key_frame_indices (`Sequence[int]`): frames prompted with the language embeddings.
            show_progress (`bool`, *optional*, defaults to `False`): show a progress bar while tracking.

        Yields:
            `(frame_idx, low_res_masks)` for the frames from the first key frame to the last frame, in order;
            `low_res_masks` has shape `(num_objects, 1, 256, 256)`.
        """
        session = Sa2VASam2InferenceSession(
            video=pixel_values,
            inference_device=pixel_values.device,
            inference_state_device=pixel_values.device,
            video_storage_device=pixel_values.device,
            dtype=pixel_values.dtype,
        )
        for obj_idx in range(language_embeddings.shape[0]):
            session.obj_id_to_idx(obj_idx)
        for frame_idx in key_frame_indices:
            for obj_idx, embedding in enumerate(language_embeddings):
                session.add_language_inputs(obj_idx, frame_idx, embedding)
            self(session, frame_idx=frame_idx)
            session.obj_with_new_inputs = []
        first = min(key_frame_indices)
        for output in self.propagate_in_video_iterator(
            session, start_frame_idx=first, show_progress_bar=show_progress
        ):
            yield output.frame_idx, output.pred_masks


__all__ = ["Sa2VASam2Model", "Sa2VASam2InferenceSession"]
