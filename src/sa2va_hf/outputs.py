"""Writing a prediction to disk as its frames arrive: overlay PNGs, an MP4 overlay for videos, masks as COCO RLE."""

import json
from pathlib import Path

import numpy as np
from PIL import Image

from .evaluation.metrics import rle_encode
from .visualize import overlay_masks, seg_phrases


VIDEO_CODECS = ("libx264", "mpeg4")


class PredictionWriter:
    r"""
    Writes one answer and its masks under `out_dir`, frame by frame, so a long video never holds all its masks:

    - `<name>.png` (an image) or `<name>_0000.png`, ... (a video): the frame with each `[SEG]` in its own colour and a
      legend tying each mask to its phrase;
    - `<name>.mp4` (videos, when PyAV is installed): the same overlays as a video;
    - `<name>.json`: `{"prediction": str, "masks": [{"label": str, "shape": [num_frames, H, W], "rle": [COCO RLE per
      frame]}]}`, one entry per `[SEG]` in order (decode with `pycocotools.mask.decode`).

    Args:
        out_dir (`Path`): existing output folder.
        name (`str`): file stem (`"image"`, `"video"`, ...).
        prediction (`str`): the answer, whose `<p> phrase </p>` labels the masks.
        num_objects (`int`): masks per frame.
        is_video (`bool`): write numbered frames and an MP4.
        fps (`float`, *optional*, defaults to 8): frame rate of the MP4.
    """

    def __init__(self, out_dir: Path, name: str, prediction: str, num_objects: int, is_video: bool, fps: float = 8):
        self.out_dir, self.name, self.is_video, self.fps = Path(out_dir), name, is_video, fps
        self.prediction = prediction
        self.labels = seg_phrases(prediction, num_objects)
        self.rles: list[list[dict]] = [[] for _ in range(num_objects)]
        self.size: tuple[int, int] | None = None
        self.overlays: list[Path] = []
        self._container = self._stream = None

    def add(self, frame_idx: int, frame: Image.Image, masks: np.ndarray) -> None:
        """Write frame `frame_idx` (frames arrive in order) with its bool `masks` `(num_objects, H, W)`."""
        if len(masks) != len(self.rles):
            raise ValueError(f"frame {frame_idx} has {len(masks)} masks; the answer has {len(self.rles)} [SEG].")
        if frame_idx != len(self.overlays):
            raise ValueError(f"frames must arrive in order: got frame {frame_idx}, expected {len(self.overlays)}.")
        self.size = (frame.height, frame.width)
        for rles, mask in zip(self.rles, masks):
            rles.append(rle_encode(mask))
        overlay = overlay_masks(frame, list(masks), self.labels)
        path = self.out_dir / (f"{self.name}_{frame_idx:04d}.png" if self.is_video else f"{self.name}.png")
        overlay.save(path)
        self.overlays.append(path)
        if self.is_video:
            self._encode(overlay)

    def close(self) -> dict[str, list[Path]]:
        """Finish the MP4 and write the JSON; returns the written paths by kind (`"overlays"`, `"json"`, `"mp4"`)."""
        written = {"overlays": self.overlays, "json": [self.out_dir / f"{self.name}.json"], "mp4": []}
        if self._stream is not None:
            for packet in self._stream.encode():
                self._container.mux(packet)
            self._container.close()
            written["mp4"].append(self.out_dir / f"{self.name}.mp4")
        shape = [len(self.overlays), *(self.size or (0, 0))]
        summary = {
            "prediction": self.prediction,
            "masks": [{"label": label, "shape": shape, "rle": rles} for label, rles in zip(self.labels, self.rles)],
        }
        written["json"][0].write_text(json.dumps(summary, ensure_ascii=False) + "\n")
        return written

    def _encode(self, overlay: Image.Image) -> None:
        try:
            import av
        except ImportError:
            return  # PNG overlays only; `pip install "sa2va-hf[video]"` adds the MP4
        # yuv420p needs even sides: pad by one black pixel where a side is odd.
        width, height = overlay.width + overlay.width % 2, overlay.height + overlay.height % 2
        if (width, height) != overlay.size:
            padded = Image.new("RGB", (width, height))
            padded.paste(overlay)
            overlay = padded
        if self._stream is None:
            self._container = av.open(str(self.out_dir / f"{self.name}.mp4"), "w")
            for codec in VIDEO_CODECS:
                try:
                    self._stream = self._container.add_stream(codec, rate=self.fps)
                    break
                except (ValueError, av.error.FFmpegError):
                    continue
            self._stream.width, self._stream.height, self._stream.pix_fmt = width, height, "yuv420p"
        for packet in self._stream.encode(av.VideoFrame.from_image(overlay)):
            self._container.mux(packet)


def write_prediction(
    out_dir: Path, name: str, prediction: str, frames: list[Image.Image], masks: list[np.ndarray], is_video: bool
) -> dict[str, list[Path]]:
    """Write a whole `predict_forward` result: `masks` one bool `(num_frames, H, W)` array per `[SEG]` over `frames`
    (one frame for an image). Returns [`PredictionWriter.close`]'s paths."""
    writer = PredictionWriter(out_dir, name, prediction, len(masks), is_video)
    height, width = frames[0].height, frames[0].width
    for index, frame in enumerate(frames):
        writer.add(
            index, frame, np.stack([mask[index] for mask in masks]) if masks else np.zeros((0, height, width), bool)
        )
    return writer.close()


__all__ = ["PredictionWriter", "write_prediction"]
