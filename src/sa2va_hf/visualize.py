"""Mask overlays: each `[SEG]` in its own colour over the image, with a legend tying phrase to colour."""

import re

import numpy as np
from PIL import Image, ImageDraw


PALETTE = ((255, 64, 64), (64, 160, 255), (255, 200, 0), (64, 220, 120), (200, 80, 255), (255, 128, 32))


def seg_phrases(prediction: str, num_masks: int) -> list[str]:
    """A label per mask: the `<p> phrase </p>` before each `[SEG]` in a grounded caption, else `"[SEG] i"`."""
    phrases = []
    for index, piece in enumerate(prediction.split("[SEG]")[:num_masks]):
        found = re.findall(r"<p>(.*?)</p>", piece)
        phrases.append(found[-1].strip() if found else f"[SEG] {index + 1}")
    phrases += [f"[SEG] {i + 1}" for i in range(len(phrases), num_masks)]
    return phrases


def overlay_masks(
    image: Image.Image, masks: list[np.ndarray], labels: list[str] | None = None, alpha: float = 0.5
) -> Image.Image:
    """Blend bool masks `(H, W)` over `image` in palette colours, outline them, and draw a legend at the top left.

    Args:
        image (`PIL.Image.Image`): the frame, any mode.
        masks (`list[np.ndarray]`): one bool `(H, W)` array per object, at the image's size.
        labels (`list[str]`, *optional*): one legend entry per mask.
        alpha (`float`, *optional*, defaults to 0.5): opacity of the mask colour.
    """
    canvas = np.asarray(image.convert("RGB"), dtype=np.float32)
    for index, mask in enumerate(masks):
        if mask.shape != canvas.shape[:2]:
            raise ValueError(f"mask {index} has shape {mask.shape}, the image is {canvas.shape[:2]}.")
        colour = np.array(PALETTE[index % len(PALETTE)], dtype=np.float32)
        canvas[mask] = (1 - alpha) * canvas[mask] + alpha * colour
    result = Image.fromarray(canvas.round().astype(np.uint8))
    draw = ImageDraw.Draw(result)
    for index, label in enumerate(labels or []):
        colour = PALETTE[index % len(PALETTE)]
        top = 4 + 14 * index
        draw.rectangle((4, top, 14, top + 10), fill=colour, outline=(0, 0, 0))
        draw.text((18, top - 1), label, fill=(0, 0, 0))
    return result


__all__ = ["PALETTE", "overlay_masks", "seg_phrases"]
