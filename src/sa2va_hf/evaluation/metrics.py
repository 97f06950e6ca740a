"""Segmentation metrics of the official Sa2VA evaluation, vectorised in numpy.

Referring image segmentation (LISA convention): `ciou` and `giou`. Referring video segmentation (DAVIS convention):
`region_similarity` (J), `boundary_f_measure` (F), `j_and_f` over a clip. ReVOS (VISA protocol): `revos_accuracy` (A)
and `revos_robustness` (R). Masks travel as COCO run-length encodings (`rle_encode` / `rle_decode`, `pycocotools`).
"""

import math
from collections.abc import Sequence

import numpy as np
from pycocotools import mask as mask_utils


def rle_encode(mask: np.ndarray) -> dict:
    """Encode one binary mask as a JSON-ready COCO RLE.

    Args:
        mask (`np.ndarray` of shape `(height, width)`): a binary mask.

    Returns:
        `dict`: `{"size": [height, width], "counts": str}`.
    """
    rle = mask_utils.encode(np.asfortranarray(np.asarray(mask, dtype=np.uint8)))
    return {"size": [int(s) for s in rle["size"]], "counts": rle["counts"].decode("ascii")}


def rle_decode(rle: dict | list) -> np.ndarray:
    """Decode a COCO RLE (compressed or not), or a list of them (their union), into a boolean mask.

    Args:
        rle (`dict` or `list[dict]`): `{"size": [height, width], "counts": str | bytes | list[int]}`.

    Returns:
        `np.ndarray` of shape `(height, width)`, dtype bool.
    """
    if isinstance(rle, list):
        masks = [rle_decode(r) for r in rle]
        return np.logical_or.reduce(masks) if masks else np.zeros((0, 0), dtype=bool)
    if isinstance(rle.get("counts"), list):
        rle = mask_utils.frPyObjects(rle, *rle["size"])
    elif isinstance(rle.get("counts"), str):
        rle = {"size": rle["size"], "counts": rle["counts"].encode("ascii")}
    return mask_utils.decode(rle).astype(bool)


def intersection_union(preds: Sequence[np.ndarray], gts: Sequence[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """Foreground intersection and union pixel counts of each (prediction, ground truth) pair.

    Args:
        preds (`Sequence[np.ndarray]`): binary masks, each of shape `(height, width)` (sizes may differ per pair).
        gts (`Sequence[np.ndarray]`): binary masks, each the shape of its prediction.

    Returns:
        `tuple[np.ndarray, np.ndarray]`: intersections and unions, int64 of shape `(num_pairs,)`.

    Raises:
        ValueError: when the counts or a pair's shapes differ.
    """
    if len(preds) != len(gts):
        raise ValueError(f"preds and gts must pair up: {len(preds)} predictions, {len(gts)} ground truths")
    inter = np.zeros(len(preds), dtype=np.int64)
    union = np.zeros(len(preds), dtype=np.int64)
    for index, (pred, gt) in enumerate(zip(preds, gts)):
        pred, gt = np.asarray(pred, dtype=bool), np.asarray(gt, dtype=bool)
        if pred.shape != gt.shape:
            raise ValueError(f"pair {index}: prediction shape {pred.shape} != ground-truth shape {gt.shape}")
        inter[index] = np.count_nonzero(pred & gt)
        union[index] = np.count_nonzero(pred | gt)
    return inter, union


def ciou_from_counts(intersections: np.ndarray, unions: np.ndarray) -> float:
    """Cumulative IoU: Σ intersection / Σ union (official: `/ (Σ union + 1e-10)`, so all-empty gives 0)."""
    return float(np.sum(intersections) / (np.sum(unions) + 1e-10))


def giou_from_counts(intersections: np.ndarray, unions: np.ndarray) -> float:
    """Mean per-pair IoU `I / (U + 1e-5)` with empty-union pairs counted as 1 (official LISA formula)."""
    intersections, unions = np.asarray(intersections, dtype=np.float64), np.asarray(unions, dtype=np.float64)
    if intersections.size == 0:
        return 0.0
    iou = intersections / (unions + 1e-5)
    iou[unions == 0] = 1.0
    return float(iou.mean())


def ciou(preds: Sequence[np.ndarray], gts: Sequence[np.ndarray]) -> float:
    """Cumulative IoU over a split: Σ intersection / Σ union of all (prediction, ground truth) pairs."""
    return ciou_from_counts(*intersection_union(preds, gts))


def giou(preds: Sequence[np.ndarray], gts: Sequence[np.ndarray]) -> float:
    """Generalised IoU over a split: the mean per-pair IoU, a pair whose union is empty counting 1."""
    return giou_from_counts(*intersection_union(preds, gts))


def region_similarity(pred: np.ndarray, gt: np.ndarray) -> float:
    """J of one frame: the IoU of two binary masks, 1 when both are empty (DAVIS `db_eval_iou`).

    Args:
        pred (`np.ndarray` of shape `(height, width)`): predicted mask.
        gt (`np.ndarray` of shape `(height, width)`): ground-truth mask.

    Returns:
        `float` in [0, 1].
    """
    inter, union = intersection_union([pred], [gt])
    return 1.0 if union[0] == 0 else float(inter[0] / union[0])


def boundary_map(mask: np.ndarray) -> np.ndarray:
    """One-pixel-wide boundary of a binary mask, offset half a pixel towards the origin (DAVIS `_seg2bmap`).

    A pixel is on the boundary when it differs from its east, south or south-east neighbour (the last row and column
    compare with the neighbour that exists; the bottom-right pixel never is).
    """
    seg = np.asarray(mask, dtype=bool)
    east, south, south_east = np.zeros_like(seg), np.zeros_like(seg), np.zeros_like(seg)
    east[:, :-1] = seg[:, 1:]
    south[:-1, :] = seg[1:, :]
    south_east[:-1, :-1] = seg[1:, 1:]
    boundary = (seg ^ east) | (seg ^ south) | (seg ^ south_east)
    boundary[-1, :] = seg[-1, :] ^ east[-1, :]
    boundary[:, -1] = seg[:, -1] ^ south[:, -1]
    boundary[-1, -1] = False
    return boundary


def disk_dilation(mask: np.ndarray, radius: int) -> np.ndarray:
    """Binary dilation by a disk `{(dy, dx): dy² + dx² <= radius²}` (skimage `disk`), outside the image empty.

    Done row offset by row offset: each row offset `dy` is a horizontal run of half-width `isqrt(r² - dy²)`, counted
    with a cumulative sum, so the cost is `O((2·radius + 1) · height · width)`.
    """
    mask = np.asarray(mask, dtype=bool)
    if radius <= 0:
        return mask.copy()
    height, width = mask.shape
    padded = np.pad(mask.astype(np.int32), radius)
    cumsum = np.zeros((padded.shape[0], padded.shape[1] + 1), dtype=np.int32)
    np.cumsum(padded, axis=1, out=cumsum[:, 1:])
    out = np.zeros_like(mask)
    for dy in range(-radius, radius + 1):
        half = math.isqrt(radius * radius - dy * dy)
        rows = cumsum[radius + dy : radius + dy + height]
        out |= (
            rows[:, radius + half + 1 : radius + half + 1 + width] - rows[:, radius - half : radius - half + width]
        ) > 0
    return out


def boundary_tolerance(shape: tuple[int, int], bound_th: float = 0.008) -> int:
    """The boundary matching tolerance in pixels: `bound_th` if it is >= 1, else `ceil(bound_th · image diagonal)`.

    Raises:
        ValueError: when `bound_th` is not positive, or is >= 1 and not a whole number of pixels.
    """
    if bound_th <= 0:
        raise ValueError(f"bound_th must be > 0 (a fraction of the diagonal, or whole pixels), got {bound_th}")
    if bound_th >= 1:
        if bound_th != int(bound_th):
            raise ValueError(f"bound_th >= 1 is a pixel count and must be whole, got {bound_th}")
        return int(bound_th)
    return int(math.ceil(bound_th * math.hypot(*shape)))


def boundary_f_measure(pred: np.ndarray, gt: np.ndarray, bound_th: float = 0.008) -> float:
    """F of one frame: the DAVIS boundary F-measure (`f_measure` of the DAVIS 2017 / ReVOS evaluation code).

    Boundary pixels of each mask match when a boundary pixel of the other lies within the tolerance disk
    (`boundary_tolerance`); precision and recall are the matched fractions; an empty boundary has precision 1 (when
    predicted) or recall 1 (when ground truth), so empty vs empty is 1 and empty vs non-empty is 0.

    Args:
        pred (`np.ndarray` of shape `(height, width)`): predicted mask.
        gt (`np.ndarray` of shape `(height, width)`): ground-truth mask.
        bound_th (`float`, defaults to 0.008): tolerance, a fraction of the image diagonal (< 1) or pixels (>= 1).

    Returns:
        `float` in [0, 1].
    """
    pred, gt = np.asarray(pred, dtype=bool), np.asarray(gt, dtype=bool)
    if pred.shape != gt.shape or pred.ndim != 2:
        raise ValueError(f"pred and gt must be 2-D masks of one shape, got {pred.shape} and {gt.shape}")
    radius = boundary_tolerance(pred.shape, bound_th)
    pred_boundary, gt_boundary = boundary_map(pred), boundary_map(gt)
    n_pred, n_gt = np.count_nonzero(pred_boundary), np.count_nonzero(gt_boundary)
    if n_pred == 0 or n_gt == 0:
        return 1.0 if n_pred == n_gt else 0.0
    precision = np.count_nonzero(pred_boundary & disk_dilation(gt_boundary, radius)) / n_pred
    recall = np.count_nonzero(gt_boundary & disk_dilation(pred_boundary, radius)) / n_gt
    return 0.0 if precision + recall == 0 else float(2 * precision * recall / (precision + recall))


def j_and_f(preds: np.ndarray, gts: np.ndarray, bound_th: float = 0.008) -> dict[str, float]:
    """J, F and J&F of one clip: J and F are means over frames, J&F their mean (each in [0, 1]).

    Args:
        preds (`np.ndarray` of shape `(num_frames, height, width)`): predicted masks.
        gts (`np.ndarray` of shape `(num_frames, height, width)`): ground-truth masks.
        bound_th (`float`, defaults to 0.008): see `boundary_f_measure`.

    Returns:
        `dict[str, float]`: `{"J": ..., "F": ..., "J&F": ...}`.
    """
    preds, gts = np.asarray(preds, dtype=bool), np.asarray(gts, dtype=bool)
    if preds.shape != gts.shape or preds.ndim != 3:
        raise ValueError(
            f"preds and gts must be (num_frames, height, width) of one shape, got {preds.shape}, {gts.shape}"
        )
    inter = np.count_nonzero(preds & gts, axis=(1, 2))
    union = np.count_nonzero(preds | gts, axis=(1, 2))
    j = np.where(union == 0, 1.0, inter / np.maximum(union, 1)).mean()
    f = float(np.mean([boundary_f_measure(p, g, bound_th) for p, g in zip(preds, gts)]))
    return {"J": float(j), "F": f, "J&F": (float(j) + f) / 2}


def revos_accuracy(preds: np.ndarray, gts: np.ndarray) -> float:
    """ReVOS A: the mean over frames of the fraction of pixels where prediction and ground truth agree.

    Computed on boolean masks (the VISA script compares raw uint8 values, which disagree wherever a PNG stores 255).
    """
    preds, gts = np.asarray(preds, dtype=bool), np.asarray(gts, dtype=bool)
    return float(np.mean(preds == gts, axis=(-2, -1)).mean())


def revos_robustness(preds: np.ndarray, gts: np.ndarray, foregrounds: np.ndarray) -> float:
    """ReVOS R: mean over frames of `max(0, 1 - false positives / (foreground pixels + 1e-6))`.

    Args:
        preds (`np.ndarray` of shape `(num_frames, height, width)`): predicted masks.
        gts (`np.ndarray` of shape `(num_frames, height, width)`): ground-truth masks.
        foregrounds (`np.ndarray` of shape `(num_frames, height, width)`): every annotated object of the video
            (`mask_dict_foreground.json`).
    """
    preds, gts = np.asarray(preds, dtype=bool), np.asarray(gts, dtype=bool)
    foregrounds = np.asarray(foregrounds, dtype=bool)
    false_positives = np.count_nonzero(preds & ~gts, axis=(-2, -1))
    positives = np.count_nonzero(foregrounds, axis=(-2, -1))
    return float(np.maximum(1 - false_positives / (positives + 1e-6), 0.0).mean())
