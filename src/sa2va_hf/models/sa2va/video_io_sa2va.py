"""Reading videos as frames (a folder of images, a video file, a list or an iterator of frames) and picking key frames.

Frames are decoded lazily, one at a time, so a long video is never held whole (see `VideoFrames`).
"""

import os
from collections.abc import Callable, Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image


IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".webp")
VIDEO_SUFFIXES = (".mp4", ".avi", ".mov", ".mkv", ".webm")
KEY_FRAME_STRATEGIES = ("first", "uniform")


def select_key_frames(num_frames: int, num_key_frames: int, strategy: str) -> list[int]:
    """Frames shown to the VLM and prompted in SAM-2: `"first"` (official) takes frames `0..k-1`, `"uniform"` spreads
    `k` frames over the video (always including the first and the last), with `k = min(num_key_frames, num_frames)`."""
    count = min(num_key_frames, num_frames)
    if strategy == "first":
        return list(range(count))
    if strategy == "uniform":
        return sorted({int(round(i * (num_frames - 1) / max(count - 1, 1))) for i in range(count)})
    raise ValueError(f"`key_frame_strategy` must be one of {', '.join(KEY_FRAME_STRATEGIES)}, got {strategy!r}.")


def check_key_frame_indices(key_frame_indices: Any, num_frames: int | None) -> list[int]:
    """`key_frame_indices` as a list of distinct ints inside `0..num_frames - 1` (any non-negative index when
    `num_frames` is None, i.e. not known yet); raises `TypeError` / `ValueError` naming the argument otherwise."""
    if isinstance(key_frame_indices, torch.Tensor | np.ndarray):
        key_frame_indices = key_frame_indices.tolist()
    if not isinstance(key_frame_indices, Sequence) or isinstance(key_frame_indices, str):
        raise TypeError(
            f"`key_frame_indices` must be a sequence of frame indices, got {type(key_frame_indices).__name__}."
        )
    indices = list(key_frame_indices)
    if not indices:
        raise ValueError("`key_frame_indices` is empty; pass at least one frame index (or None for the default).")
    for index in indices:
        if isinstance(index, bool) or not isinstance(index, int | np.integer):
            raise TypeError(f"`key_frame_indices` must hold integers, got {index!r} ({type(index).__name__}).")
        if index < 0 or (num_frames is not None and index >= num_frames):
            inside = "0 or more" if num_frames is None else f"0..{num_frames - 1}"
            raise ValueError(f"`key_frame_indices` holds {index}, outside the video's frames {inside}.")
    if len(set(indices)) != len(indices):
        raise ValueError(f"`key_frame_indices` holds repeated frames: {indices}.")
    return [int(index) for index in indices]


def load_frames(source: str | os.PathLike) -> list[Image.Image]:
    """All frames of `source` as RGB PIL images.

    Args:
        source (`str` or `Path`): a folder of frame images (sorted by file name) or a video file (needs `av`).

    Raises:
        `FileNotFoundError` when `source` does not exist; `ValueError` when it holds no frame or its format is not
        supported; `ImportError` when a video file is given and PyAV is not installed.
    """
    frames = list(VideoFrames(source))
    if not frames:
        raise ValueError(f"video {str(source)!r} has no frames.")
    return frames


class VideoFrames:
    """The frames of a video, decoded lazily in order; each iteration starts again from frame 0.

    Args:
        video: a video file (decoded with PyAV), a folder of frame images (sorted by file name), a list or tuple of
            frames, or any other iterable of frames (e.g. a generator; read once, see below).
        to_image (`Callable`, *optional*): turns an item of a list/iterable (and its name for error messages, e.g.
            `"video[3]"`) into a PIL image; by default items must already be PIL images. Files become RGB images.

    A one-shot iterator can be read once: the frames [`frames_at`] reads ahead are kept (and handed back first
    by the next iteration), so asking for a late frame of such a source holds every frame before it.
    """

    def __init__(self, video: Any, to_image: Callable[[Any, str], Image.Image] | None = None):
        self.to_image = to_image or _require_pil_image
        self._path: Path | None = None
        self._files: list[Path] | None = None
        self._items: Sequence | None = None
        self._iterator: Iterator | None = None
        self._read_ahead: list[Image.Image] = []
        if isinstance(video, str | os.PathLike):
            path = Path(video)
            if not path.exists():
                raise FileNotFoundError(f"video source {str(path)!r} does not exist.")
            if path.is_dir():
                self._files = sorted(p for p in path.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
                if not self._files:
                    raise ValueError(
                        f"video folder {str(path)!r} holds no frame images ({', '.join(IMAGE_SUFFIXES)})."
                    )
            elif path.suffix.lower() not in VIDEO_SUFFIXES:
                raise ValueError(
                    f"{str(path)!r} is not a supported video ({', '.join(VIDEO_SUFFIXES)}) or a folder of frames."
                )
            else:
                self._path = path
        elif isinstance(video, list | tuple):
            self._items = video
        elif isinstance(video, Iterable) and not isinstance(video, Image.Image | np.ndarray | torch.Tensor):
            self._iterator = iter(video)
        else:
            raise TypeError(
                "`video` must be a video file or frame folder path, a list of frames or an iterable of frames; "
                f"got {type(video).__name__}."
            )

    def __len__(self) -> int:
        """The number of frames (a video file is decoded once to count them; a one-shot iterator cannot tell)."""
        if self._files is not None:
            return len(self._files)
        if self._items is not None:
            return len(self._items)
        if self._path is not None:
            return sum(1 for _ in self._decode())
        raise ValueError(
            "the length of a `video` given as a one-shot iterator is unknown; pass a list, folder or video file "
            "(or explicit `key_frame_indices`) for `key_frame_strategy='uniform'`."
        )

    @property
    def length_if_known(self) -> int | None:
        """The number of frames when known without decoding (lists and folders), else None."""
        return len(self) if self._files is not None or self._items is not None else None

    def __iter__(self) -> Iterator[Image.Image]:
        if self._files is not None:
            for file in self._files:
                with Image.open(file) as image:
                    yield image.convert("RGB")
        elif self._items is not None:
            for index, item in enumerate(self._items):
                yield self.to_image(item, f"video[{index}]")
        elif self._path is not None:
            yield from self._decode()
        else:
            if self._iterator is None:
                raise ValueError("`video` is an iterator that was already read; pass a list, folder or video file.")
            iterator, self._iterator = self._iterator, None
            num_read_ahead = len(self._read_ahead)
            while self._read_ahead:
                yield self._read_ahead.pop(0)
            for index, item in enumerate(iterator, start=num_read_ahead):
                yield self.to_image(item, f"video[{index}]")

    def frames_at(
        self, indices: Sequence[int], argument_name: str = "key_frame_indices", strict: bool = True
    ) -> dict[int, Image.Image]:
        """The frames at `indices`, read from the start up to the last one (with `strict=False`, those that exist).

        Raises:
            ValueError: when the video has no frame, or (if `strict`) fewer frames than an index asks for, naming
                `argument_name`.
        """
        wanted, last = set(indices), max(indices)
        found, num_read = {}, 0
        if self._iterator is not None:
            while len(self._read_ahead) <= last:
                item = next(self._iterator, _END)
                if item is _END:
                    break
                self._read_ahead.append(self.to_image(item, f"video[{len(self._read_ahead)}]"))
            found = {i: frame for i, frame in enumerate(self._read_ahead) if i in wanted}
            num_read = len(self._read_ahead)
        else:
            for index, frame in enumerate(self):
                num_read = index + 1
                if index in wanted:
                    found[index] = frame
                if index >= last:
                    break
        if num_read == 0:
            raise ValueError("`video` is empty; pass a video with at least one frame.")
        if strict and len(found) < len(wanted):
            missing = min(wanted - set(found))
            raise ValueError(f"`{argument_name}` holds {missing}, but the video has only {num_read} frames.")
        return found

    def _decode(self) -> Iterator[Image.Image]:
        try:
            import av
        except ImportError as error:
            raise ImportError("Reading video files needs PyAV: `pip install av`.") from error
        try:
            with av.open(str(self._path)) as container:
                for frame in container.decode(video=0):
                    yield frame.to_image().convert("RGB")
        except av.error.FFmpegError as error:
            raise ValueError(f"could not decode video {str(self._path)!r}: {error}") from error


_END = object()


def _require_pil_image(item: Any, name: str) -> Image.Image:
    if not isinstance(item, Image.Image):
        raise TypeError(f"`{name}` must be a PIL.Image.Image, got {type(item).__name__}.")
    return item


__all__ = ["VideoFrames", "check_key_frame_indices", "load_frames", "select_key_frames"]
