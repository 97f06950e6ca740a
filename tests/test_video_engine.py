"""The video engine: objects batched through SAM-2, lazy frames in bounded memory, key frames both ways, errors.

A tiny model with a 128-px SAM-2 input keeps these fast; the engine does not depend on the input size.
"""

import copy
import resource

import numpy as np
import pytest
import torch
from PIL import Image

from sa2va_hf import Sa2VAConfig, Sa2VAForConditionalGeneration
from sa2va_hf.models.sa2va.modeling_sa2va_sam2 import ObjectBatchedMemory
from sa2va_hf.synthetic import random_clip
from sa2va_hf.tiny import TINY_SAM2_CONFIG


SAM_SIZE = 128
FRAMES = [scene.image for scene in random_clip(seed=11, size=(64, 48), num_frames=9)]
TEXT = "<video>Please segment the moving shapes."


def small_sam2_config(image_size: int = SAM_SIZE) -> dict:
    """The tiny SAM-2 at a smaller square input (feature maps at strides 4 / 8 / 16)."""
    config = copy.deepcopy(TINY_SAM2_CONFIG)
    config["image_size"] = image_size
    config["vision_config"]["backbone_config"]["image_size"] = [image_size, image_size]
    config["vision_config"]["backbone_feature_sizes"] = [[image_size // s] * 2 for s in (4, 8, 16)]
    config["prompt_encoder_config"]["image_size"] = image_size
    config["memory_attention_rope_feat_sizes"] = [image_size // 16] * 2
    return config


@pytest.fixture(scope="module")
def one_thread():
    """One torch thread: on the shared 2-core machine two threads contend and run ~10x slower."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def small_model(tiny_models, one_thread):
    """The tiny InternVL Sa2VA with a 128-px SAM-2, and its processor (SAM view at 128 px)."""
    model, processor = tiny_models("internvl")
    config = Sa2VAConfig.from_dict({**model.config.to_dict(), "sam2_config": small_sam2_config()})
    torch.manual_seed(0)
    small = Sa2VAForConditionalGeneration(config).eval()
    small.vlm.load_state_dict(model.vlm.state_dict())
    processor = copy.deepcopy(processor)
    processor.image_processor.sam_image_size = SAM_SIZE
    return small, processor


def seg_kwargs(processor, bias: float = 8.0) -> dict:
    return {"sequence_bias": {(processor.seg_token_id,): bias}, "max_new_tokens": 4}


def track(sam2, embeddings, pixel_values, key_frames, num_frames=None):
    """All low-res logits `(num_objects, num_frames, h, w)` from the engine over in-memory SAM views."""
    outputs = list(
        sam2.propagate_language_prompts(
            embeddings, pixel_values, {i: pixel_values[i] for i in key_frames}, lambda p: p, num_frames
        )
    )
    assert [index for index, _, _ in outputs] == list(range(len(pixel_values)))
    return torch.stack([logits[:, 0] for _, _, logits in outputs], dim=1)


def random_inputs(sam2, num_frames: int, num_objects: int, seed: int = 0):
    generator = torch.Generator().manual_seed(seed)
    pixel_values = torch.randn(num_frames, 3, SAM_SIZE, SAM_SIZE, generator=generator)
    embeddings = torch.randn(num_objects, sam2.config.prompt_encoder_config.hidden_size, generator=generator)
    return pixel_values, embeddings


def test_objects_batched_match_objects_run_alone(small_model):
    sam2 = small_model[0].sam2
    pixel_values, embeddings = random_inputs(sam2, num_frames=10, num_objects=3)
    together = track(sam2, embeddings, pixel_values, key_frames=[3, 6], num_frames=10)
    alone = torch.cat([track(sam2, e[None], pixel_values, key_frames=[3, 6], num_frames=10) for e in embeddings])
    assert together.shape == (3, 10, SAM_SIZE // 4, SAM_SIZE // 4)
    torch.testing.assert_close(together, alone, atol=1e-5, rtol=1e-5)


def test_each_frame_goes_through_the_image_encoder_once(small_model):
    sam2 = small_model[0].sam2
    pixel_values, embeddings = random_inputs(sam2, num_frames=8, num_objects=4)
    calls = []
    handle = sam2.vision_encoder.register_forward_hook(lambda m, args, out: calls.append(args[0].shape[0]))
    try:
        track(sam2, embeddings, pixel_values, key_frames=[0, 2, 5])
    finally:
        handle.remove()
    assert calls == [1] * 8


def test_frames_before_the_first_key_frame_are_tracked_backward(small_model):
    """Tracking backward from key frame 5 equals tracking the reversed video forward from the same frame."""
    sam2 = small_model[0].sam2
    pixel_values, embeddings = random_inputs(sam2, num_frames=9, num_objects=2, seed=1)
    logits = track(sam2, embeddings, pixel_values, key_frames=[5], num_frames=9)
    reversed_logits = track(sam2, embeddings, pixel_values.flip(0), key_frames=[3], num_frames=9).flip(1)
    torch.testing.assert_close(logits[:, :6], reversed_logits[:, :6], atol=1e-5, rtol=1e-5)
    # the earlier frames are tracked (memory-conditioned), not copies of the key frame or of each other
    assert not torch.allclose(logits[:, 4], logits[:, 5]) and not torch.allclose(logits[:, 0], logits[:, 1])


def test_stream_gives_the_masks_of_predict_forward(small_model):
    model, processor = small_model
    result = model.predict_forward(video=FRAMES, text=TEXT, processor=processor, **seg_kwargs(processor))
    stream = model.predict_video_stream(
        FRAMES, TEXT, processor=processor, show_progress=False, **seg_kwargs(processor)
    )
    assert stream.prediction == result["prediction"] and stream.past_text == result["past_text"]
    assert stream.num_objects == len(result["prediction_masks"]) >= 1
    collected = list(stream)
    assert [index for index, _, _ in collected] == list(range(len(FRAMES)))
    for index, frame, masks in collected:
        assert isinstance(frame, Image.Image) and np.array_equal(np.asarray(frame), np.asarray(FRAMES[index]))
        assert masks.dtype == np.bool_ and masks.shape == (stream.num_objects, FRAMES[0].height, FRAMES[0].width)
    streamed = np.stack([masks for _, _, masks in collected], axis=1)
    np.testing.assert_array_equal(streamed, np.stack(result["prediction_masks"]))
    with pytest.raises(RuntimeError, match="iterated once"):
        list(stream)


def test_explicit_key_frames_from_a_folder_and_an_iterator_give_the_same_masks(small_model, tmp_path):
    model, processor = small_model
    for index, frame in enumerate(FRAMES):
        frame.save(tmp_path / f"{index:03d}.png")
    kwargs = {"processor": processor, "key_frame_indices": [6, 3], **seg_kwargs(processor)}
    expected = model.predict_forward(video=FRAMES, text=TEXT, **kwargs)["prediction_masks"]
    assert expected
    for video in (str(tmp_path), iter(FRAMES)):
        stream = model.predict_video_stream(video, TEXT, show_progress=False, **kwargs)
        streamed = np.stack([masks for _, _, masks in stream], axis=1)
        np.testing.assert_array_equal(streamed, np.stack(expected))


def test_uniform_key_frames_are_spread_over_the_video(small_model, monkeypatch):
    model, processor = small_model
    monkeypatch.setattr(model.config, "key_frame_strategy", "uniform")
    shown = []
    monkeypatch.setattr(
        model.sam2, "propagate_language_prompts", _recording(model.sam2.propagate_language_prompts, shown)
    )
    stream = model.predict_video_stream(
        FRAMES, TEXT, processor=processor, show_progress=False, **seg_kwargs(processor)
    )
    assert len(list(stream)) == len(FRAMES)
    assert shown == [[0, 2, 4, 6, 8]]


def _recording(propagate, shown):
    def wrapper(embeddings, frames, key_frame_pixel_values, *args, **kwargs):
        shown.append(sorted(key_frame_pixel_values))
        return propagate(embeddings, frames, key_frame_pixel_values, *args, **kwargs)

    return wrapper


def test_a_200_frame_clip_streams_with_a_bounded_memory_bank(small_model, monkeypatch):
    model, processor = small_model
    sizes = []
    store = ObjectBatchedMemory.store

    def recording_store(self, frame_idx, output, is_key_frame):
        store(self, frame_idx, output, is_key_frame)
        with_features = sum("maskmem_features" in entry for entry in self.tracked_frames.values())
        sizes.append((len(self.key_frames), len(self.tracked_frames), with_features))

    monkeypatch.setattr(ObjectBatchedMemory, "store", recording_store)
    frames = (scene.image for scene in random_clip(seed=2, size=(48, 32), num_frames=200))
    stream = model.predict_video_stream(
        frames, TEXT, processor=processor, show_progress=False, **seg_kwargs(processor)
    )
    assert stream.num_objects >= 1
    indices = [index for index, _, masks in stream if masks.shape == (stream.num_objects, 32, 48)]
    assert indices == list(range(200))
    sam = model.sam2
    assert max(size[0] for size in sizes) == 5
    assert max(size[1] for size in sizes) == sam.config.max_object_pointers_in_encoder - 1
    assert max(size[2] for size in sizes) == sam.num_maskmem - 1


@pytest.mark.slow
def test_a_2000_frame_clip_runs_in_flat_memory(small_model):
    sam2 = small_model[0].sam2
    _, embeddings = random_inputs(sam2, num_frames=1, num_objects=2)
    generator = torch.Generator().manual_seed(0)
    key_frames = {0: torch.randn(3, SAM_SIZE, SAM_SIZE, generator=generator)}
    peak_at = {}
    frames = (torch.randn(3, SAM_SIZE, SAM_SIZE, generator=generator) for _ in range(2000))
    for index, _, _ in sam2.propagate_language_prompts(embeddings, frames, key_frames, lambda p: p):
        if index in (200, 1999):
            peak_at[index] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux
    assert peak_at[1999] - peak_at[200] < 50 * 1024, peak_at


def test_bad_videos_raise_errors_naming_the_argument(small_model, tmp_path):
    model, processor = small_model
    kwargs = {"processor": processor, "show_progress": False, **seg_kwargs(processor)}
    with pytest.raises(ValueError, match="`video` is empty"):
        model.predict_video_stream([], TEXT, **kwargs)
    with pytest.raises(ValueError, match="`video` is empty"):
        model.predict_video_stream(iter([]), TEXT, **kwargs)
    with pytest.raises(ValueError, match="`key_frame_indices` holds 9, outside the video's frames 0..8"):
        model.predict_video_stream(FRAMES, TEXT, key_frame_indices=[2, 9], **kwargs)
    with pytest.raises(ValueError, match="`key_frame_indices` holds 12, but the video has only 9 frames"):
        model.predict_video_stream(iter(FRAMES), TEXT, key_frame_indices=[12], **kwargs)
    with pytest.raises(ValueError, match="`key_frame_indices` holds -1"):
        model.predict_forward(video=FRAMES, text=TEXT, processor=processor, key_frame_indices=[-1])
    resized = [*FRAMES[:6], FRAMES[6].resize((50, 40)), *FRAMES[7:]]
    stream = model.predict_video_stream(resized, TEXT, **kwargs)  # frame 6 is read (and checked) while tracking
    with pytest.raises(ValueError, match=r"`video\[6\]` is 50x40 .* frame 0 is 64x48"):
        list(stream)
    (tmp_path / "broken.mp4").write_bytes(b"\x00not a video" * 10)
    pytest.importorskip("av", reason="PyAV is the optional video decoder")
    with pytest.raises(ValueError, match="could not decode video"):
        model.predict_video_stream(str(tmp_path / "broken.mp4"), TEXT, **kwargs)
