"""Video inputs: a folder of frames or a video file, with clear errors for everything else."""

import numpy as np
import pytest
from PIL import Image

from sa2va_hf.models.sa2va.video_io_sa2va import load_frames
from sa2va_hf.synthetic import random_clip


FRAMES = [scene.image for scene in random_clip(seed=5, size=(64, 48), num_frames=4)]


def test_folder_of_frames_is_read_in_name_order(tmp_path):
    for index, frame in reversed(list(enumerate(FRAMES))):
        frame.save(tmp_path / f"{index:03d}.png")
    (tmp_path / "notes.txt").write_text("not a frame")
    loaded = load_frames(tmp_path)
    assert len(loaded) == len(FRAMES)
    for frame, expected in zip(loaded, FRAMES):
        np.testing.assert_array_equal(np.asarray(frame), np.asarray(expected))


def test_video_file_is_decoded_with_pyav(tmp_path):
    av = pytest.importorskip("av", reason="PyAV is the optional video decoder (`pip install av`)")
    path = tmp_path / "clip.mp4"
    with av.open(str(path), "w") as container:
        stream = container.add_stream("mpeg4", rate=4)
        stream.width, stream.height, stream.pix_fmt = 64, 48, "yuv420p"
        for frame in FRAMES:
            container.mux(stream.encode(av.VideoFrame.from_image(frame)))
        container.mux(stream.encode())
    loaded = load_frames(path)
    assert len(loaded) == len(FRAMES) and loaded[0].size == (64, 48)
    # lossy codec: the frames are close, not equal
    assert np.abs(np.asarray(loaded[0], float) - np.asarray(FRAMES[0], float)).mean() < 12


def test_bad_video_sources_raise_clear_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        load_frames(tmp_path / "missing.mp4")
    with pytest.raises(ValueError, match="no frame images"):
        load_frames(tmp_path)
    (tmp_path / "clip.txt").write_text("x")
    with pytest.raises(ValueError, match="not a supported video"):
        load_frames(tmp_path / "clip.txt")
    (tmp_path / "broken.mp4").write_bytes(b"\x00not a video" * 10)
    pytest.importorskip("av", reason="PyAV is the optional video decoder")
    with pytest.raises(ValueError, match="could not decode"):
        load_frames(tmp_path / "broken.mp4")


def test_predict_forward_takes_a_folder_of_frames(tiny_models, tmp_path):
    model, processor = tiny_models("internvl")
    for index, frame in enumerate(FRAMES):
        frame.save(tmp_path / f"{index:03d}.png")
    seg = processor.seg_token_id
    result = model.predict_forward(
        video=str(tmp_path), text="<image>Please segment the shape.", processor=processor,
        sequence_bias={(seg,): 8.0}, max_new_tokens=2,
    )  # fmt: skip
    assert result["prediction_masks"]
    assert result["prediction_masks"][0].shape == (len(FRAMES), 48, 64)
    assert isinstance(Image.fromarray(result["prediction_masks"][0][0]), Image.Image)
