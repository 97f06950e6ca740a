"""Shared by the benchmarks: SAM-2 builders, input makers, and the official video algorithm as a baseline.

The baseline re-implements what the official Sa2VA code does with a video: every frame's SAM-2 view is built and
kept up front, each `[SEG]` object is run on its own (so every frame goes through the image encoder once per
object), and every frame's mask logits are kept at the 1024² "video resolution" until the end.
"""

import resource
import time
from collections.abc import Iterator

import torch
import torch.nn.functional as F
from transformers import Sam2VideoConfig

from sa2va_hf import Sa2VAConfig
from sa2va_hf.models.sa2va.modeling_sa2va_sam2 import Sa2VASam2Model
from sa2va_hf.tiny import TINY_SAM2_CONFIG


SAM2_CHOICES = ("tiny", "hiera-large")


def build_sam2(name: str, seed: int = 0) -> Sa2VASam2Model:
    """A SAM-2 with random weights: `"tiny"` (the tiny test model) or `"hiera-large"` (Sa2VA's real shapes), 1024²."""
    config = Sam2VideoConfig(**TINY_SAM2_CONFIG) if name == "tiny" else Sa2VAConfig().sam2_config
    torch.manual_seed(seed)
    return Sa2VASam2Model(config).eval()


def random_frame(sam2: Sa2VASam2Model, index: int) -> torch.FloatTensor:
    """A seeded random SAM-2 view `(3, image_size, image_size)` standing in for a decoded, resized frame."""
    generator = torch.Generator().manual_seed(index)
    return torch.randn(3, sam2.image_size, sam2.image_size, generator=generator)


def random_embeddings(sam2: Sa2VASam2Model, num_objects: int) -> torch.FloatTensor:
    """`(num_objects, hidden_size)` seeded random `[SEG]` prompts."""
    hidden_size = sam2.config.prompt_encoder_config.hidden_size
    return torch.randn(num_objects, hidden_size, generator=torch.Generator().manual_seed(1))


def run_ours(sam2: Sa2VASam2Model, embeddings: torch.FloatTensor, num_frames: int, num_key_frames: int) -> None:
    """Our engine: frames made lazily, all objects batched, each frame's logits upsampled then dropped."""
    key_frames = {index: random_frame(sam2, index) for index in range(min(num_key_frames, num_frames))}
    frames = (index for index in range(num_frames))
    for _, _, logits in sam2.propagate_language_prompts(
        embeddings, frames, key_frames, lambda index: random_frame(sam2, index), num_frames
    ):
        upsample(sam2, logits)


def run_official(sam2: Sa2VASam2Model, embeddings: torch.FloatTensor, num_frames: int, num_key_frames: int) -> list:
    """The official algorithm: all frames resident, one run per object, every 1024² logit map kept."""
    pixel_values = torch.stack([random_frame(sam2, index) for index in range(num_frames)])
    key_frames = {index: pixel_values[index] for index in range(min(num_key_frames, num_frames))}
    kept = []
    for embedding in embeddings:
        outputs = sam2.propagate_language_prompts(embedding[None], pixel_values, key_frames, lambda p: p, num_frames)
        kept.append(torch.cat([upsample(sam2, logits) for _, _, logits in outputs], dim=1))
    return kept


def upsample(sam2: Sa2VASam2Model, logits: torch.FloatTensor) -> torch.FloatTensor:
    """Low-res logits `(K, 1, 256, 256)` -> `(K, 1, image_size, image_size)`, as both pipelines post-process."""
    return F.interpolate(logits.float(), size=(sam2.image_size,) * 2, mode="bilinear", align_corners=False)


def timed(function, *args) -> float:
    """Wall-clock seconds of `function(*args)` under `torch.inference_mode`."""
    start = time.perf_counter()
    with torch.inference_mode():
        function(*args)
    return time.perf_counter() - start


def peak_rss_mib() -> float:
    """This process's peak resident memory so far, in MiB (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def table(header: list[str], rows: list[list]) -> Iterator[str]:
    """Lines of a Markdown table."""
    yield "| " + " | ".join(header) + " |"
    yield "|" + "|".join("---" for _ in header) + "|"
    for row in rows:
        yield "| " + " | ".join(str(cell) for cell in row) + " |"
