"""Reading videos as frames: a folder of images (sorted by name) or a video file (PyAV, optional)."""

import os
from pathlib import Path

from PIL import Image


IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".webp")
VIDEO_SUFFIXES = (".mp4", ".avi", ".mov", ".mkv", ".webm")


def load_frames(source: str | os.PathLike) -> list[Image.Image]:
    """All frames of `source` as RGB PIL images.

    Args:
        source (`str` or `Path`): a folder of frame images (sorted by file name) or a video file (needs `av`).

    Raises:
        `FileNotFoundError` when `source` does not exist; `ValueError` when it holds no frame or its format is not
        supported; `ImportError` when a video file is given and PyAV is not installed.
    """
    path = Path(source)
    if not path.exists():
        raise FileNotFoundError(f"video source {str(path)!r} does not exist.")
    if path.is_dir():
        files = sorted(p for p in path.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
        if not files:
            raise ValueError(f"video folder {str(path)!r} holds no frame images ({', '.join(IMAGE_SUFFIXES)}).")
        return [Image.open(file).convert("RGB") for file in files]
    if path.suffix.lower() not in VIDEO_SUFFIXES:
        raise ValueError(
            f"{str(path)!r} is not a supported video ({', '.join(VIDEO_SUFFIXES)}) or a folder of frames."
        )
    try:
        import av
    except ImportError as error:
        raise ImportError("Reading video files needs PyAV: `pip install av`.") from error
    try:
        with av.open(str(path)) as container:
            frames = [frame.to_image().convert("RGB") for frame in container.decode(video=0)]
    except av.error.FFmpegError as error:
        raise ValueError(f"could not decode video {str(path)!r}: {error}") from error
    if not frames:
        raise ValueError(f"video {str(path)!r} has no frames.")
    return frames


__all__ = ["load_frames"]
