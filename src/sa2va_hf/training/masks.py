"""Masks as training data stores them: COCO run-length encoding or polygons, decoded with pycocotools.

Write masks with `rle_encode` (shared with the evaluation records).
"""

import numpy as np
from pycocotools import mask as mask_utils

from ..evaluation.metrics import rle_decode, rle_encode


def decode_mask(encoded: dict | list | None, height: int, width: int) -> np.ndarray:
    """Decode one stored mask at a frame's size.

    Args:
        encoded: one of
            - COCO RLE `{"size": [height, width], "counts": str | list[int]}` (compressed string or uncompressed
              run lengths), whose size must equal the frame's;
            - polygons `[[x1, y1, x2, y2, x3, y3, ...], ...]` in pixels (one or more rings, each at least 3
              points), rasterised at the frame's size;
            - `None`: the object is absent from this frame (an all-false mask).
        height (`int`), width (`int`): the size of the image or frame the mask belongs to.

    Returns:
        `np.ndarray` of shape `(height, width)`, dtype bool.

    Raises:
        `ValueError` naming what is wrong with `encoded` (unknown encoding, RLE of another size, malformed polygon).
    """
    if encoded is None:
        return np.zeros((height, width), dtype=bool)
    if isinstance(encoded, dict):
        return _decode_rle(encoded, height, width)
    if isinstance(encoded, list):
        return _decode_polygons(encoded, height, width)
    raise ValueError(
        f"unknown mask encoding {type(encoded).__name__}; give COCO RLE {{'size': [h, w], 'counts': ...}}, "
        "polygons [[x1, y1, x2, y2, ...], ...] or null for an empty mask."
    )


def _decode_rle(rle: dict, height: int, width: int) -> np.ndarray:
    if set(rle) != {"size", "counts"}:
        raise ValueError(
            f"unknown mask encoding: a dict with keys {sorted(rle)}; COCO RLE has exactly 'size' and 'counts'."
        )
    size = rle["size"]
    if not (isinstance(size, list | tuple) and len(size) == 2 and all(isinstance(s, int) for s in size)):
        raise ValueError(f"RLE 'size' must be [height, width], got {size!r}.")
    if tuple(size) != (height, width):
        raise ValueError(
            f"mask size {list(size)} (height, width) differs from its image/frame's size {[height, width]}; "
            "encode the mask at the size of the image it belongs to."
        )
    counts = rle["counts"]
    if isinstance(counts, list) and all(isinstance(c, int) for c in counts):
        if sum(counts) != height * width:
            raise ValueError(f"uncompressed RLE counts sum to {sum(counts)}, not height * width = {height * width}.")
    elif not isinstance(counts, str):
        raise ValueError("RLE 'counts' must be a compressed string or a list of run lengths.")
    return rle_decode({"size": [height, width], "counts": counts})


def _decode_polygons(polygons: list, height: int, width: int) -> np.ndarray:
    if not polygons:
        raise ValueError("empty polygon list; write null for an object absent from this frame.")
    for ring, polygon in enumerate(polygons):
        if not isinstance(polygon, list) or not all(isinstance(v, int | float) for v in polygon):
            raise ValueError(
                f"unknown mask encoding: polygon {ring} is not a flat list of numbers [x1, y1, x2, y2, ...]; "
                "a mask is a list of polygons, so even one polygon needs the outer list."
            )
        if len(polygon) < 6 or len(polygon) % 2:
            raise ValueError(
                f"polygon {ring} has {len(polygon)} coordinates; a polygon needs an even number, at least 6 (3 points)."
            )
    rles = mask_utils.frPyObjects([[float(v) for v in polygon] for polygon in polygons], height, width)
    return mask_utils.decode(mask_utils.merge(rles)).astype(bool)


__all__ = ["decode_mask", "rle_encode"]
