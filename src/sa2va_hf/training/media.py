"""Opening a sample's image or video frames, and choosing the frames a training sample keeps."""

from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

from ..models.sa2va.video_io_sa2va import load_frames


def resolve_media_path(root: Path, relative: str, index: int, field: str) -> Path:
    """`root / relative`, checked to exist.

    Raises:
        `TypeError` when `relative` is not a string; `FileNotFoundError` naming the sample, the field and the path.
    """
    if not isinstance(relative, str) or not relative:
        raise TypeError(f"sample {index}: field {field}: expected a file path string, got {relative!r}.")
    path = root / relative
    if not path.exists():
        raise FileNotFoundError(
            f"sample {index}: field {field}: {str(path)!r} does not exist (paths are relative to root {str(root)!r})."
        )
    return path


def open_image(root: Path, relative: str, index: int, field: str) -> Image.Image:
    """The RGB image at `root / relative`; errors name the sample `index` and the `field` (e.g. `'image'`)."""
    path = resolve_media_path(root, relative, index, field)
    try:
        with Image.open(path) as image:
            return image.convert("RGB")
    except (UnidentifiedImageError, OSError) as error:
        raise ValueError(f"sample {index}: field {field}: cannot read image {str(path)!r}: {error}") from error


def open_video(root: Path, relative: str, index: int, field: str) -> list[Image.Image]:
    """Every frame of the video file or frame folder at `root / relative` (decoded with `load_frames`)."""
    path = resolve_media_path(root, relative, index, field)
    try:
        return load_frames(path)
    except ValueError as error:
        raise ValueError(f"sample {index}: field {field}: {error}") from error


def sample_frame_indices(num_available: int, num_frames: int | None, seed: int, index: int) -> list[int]:
    """Which frames of a video a training sample keeps, as the official Sa2VA training picks them.

    With more than `num_frames + 1` frames, `num_frames` distinct frames are drawn at random; otherwise `num_frames`
    draws with replacement (a short clip repeats frames). The result is sorted, so frames stay in time order, and
    depends only on `(seed, index)`, so a sample is the same every time it is read.

    Args:
        num_available (`int`): frames in the video.
        num_frames (`int` or `None`): frames to keep; `None` keeps every frame in order.
        seed (`int`): the dataset's seed.
        index (`int`): the sample's index.

    Returns:
        `list[int]` of length `num_frames` (or `num_available`), sorted.
    """
    if num_available < 1:
        raise ValueError(f"sample {index}: the video has no frames.")
    if num_frames is None:
        return list(range(num_available))
    if num_frames < 1:
        raise ValueError(f"`num_frames` must be a positive number of frames or None (all), got {num_frames}.")
    rng = np.random.default_rng((seed, index))
    chosen = rng.choice(num_available, size=num_frames, replace=num_available <= num_frames + 1)
    return sorted(int(i) for i in chosen)


__all__ = ["open_image", "open_video", "resolve_media_path", "sample_frame_indices"]
