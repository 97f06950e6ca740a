"""Evaluation metrics against independent references: pycocotools, closed forms and a brute-force DAVIS F."""

import math

import numpy as np
import pytest
from pycocotools import mask as mask_utils

from sa2va_hf.evaluation.metrics import (
    boundary_f_measure,
    boundary_tolerance,
    ciou,
    giou,
    j_and_f,
    region_similarity,
    revos_accuracy,
    revos_robustness,
    rle_decode,
    rle_encode,
)


def square(shape, top, left, side):
    mask = np.zeros(shape, dtype=bool)
    mask[top : top + side, left : left + side] = True
    return mask


def random_masks(rng, count, shape=(37, 53)):
    """Blobby random masks: thresholded smoothed noise (some empty, some full)."""
    masks = []
    for _ in range(count):
        noise = rng.random((shape[0] // 4 + 1, shape[1] // 4 + 1))
        blob = np.kron(noise, np.ones((4, 4)))[: shape[0], : shape[1]]
        masks.append(blob > rng.uniform(0.3, 0.9))
    masks += [np.zeros(shape, bool), np.ones(shape, bool)]
    return masks


def brute_force_f(pred, gt, radius):
    """DAVIS F written pixel by pixel: boundary = differs from E, S or SE neighbour; match = within `radius`."""

    def boundary(seg):
        h, w = seg.shape
        out = np.zeros_like(seg)
        for y in range(h):
            for x in range(w):
                if y == h - 1 and x == w - 1:
                    continue
                east = seg[y, x + 1] if x + 1 < w else False
                south = seg[y + 1, x] if y + 1 < h else False
                south_east = seg[y + 1, x + 1] if (y + 1 < h and x + 1 < w) else False
                if y == h - 1:
                    out[y, x] = seg[y, x] != east
                elif x == w - 1:
                    out[y, x] = seg[y, x] != south
                else:
                    out[y, x] = seg[y, x] != east or seg[y, x] != south or seg[y, x] != south_east
        return out

    pb, gb = np.argwhere(boundary(pred)), np.argwhere(boundary(gt))
    if len(pb) == 0 or len(gb) == 0:
        return 1.0 if len(pb) == len(gb) else 0.0
    dist2 = ((pb[:, None, :] - gb[None, :, :]) ** 2).sum(-1)
    precision = np.mean(dist2.min(axis=1) <= radius**2)
    recall = np.mean(dist2.min(axis=0) <= radius**2)
    return 0.0 if precision + recall == 0 else 2 * precision * recall / (precision + recall)


def test_rle_round_trip():
    mask = random_masks(np.random.default_rng(0), 1)[0]
    rle = rle_encode(mask)
    assert isinstance(rle["counts"], str) and rle["size"] == list(mask.shape)
    np.testing.assert_array_equal(rle_decode(rle), mask)


def test_iou_matches_pycocotools_on_random_masks():
    rng = np.random.default_rng(1)
    preds, gts = random_masks(rng, 20), random_masks(rng, 20)
    rle_p = [mask_utils.encode(np.asfortranarray(m.astype(np.uint8))) for m in preds]
    rle_g = [mask_utils.encode(np.asfortranarray(m.astype(np.uint8))) for m in gts]
    for p, g, rp, rg in zip(preds, gts, rle_p, rle_g):
        union = mask_utils.area(mask_utils.merge([rp, rg], intersect=False))
        expected = 1.0 if union == 0 else mask_utils.iou([rp], [rg], [0])[0, 0]
        assert region_similarity(p, g) == pytest.approx(expected, abs=1e-12)
    inter = [mask_utils.area(mask_utils.merge([rp, rg], intersect=True)) for rp, rg in zip(rle_p, rle_g)]
    union = [mask_utils.area(mask_utils.merge([rp, rg], intersect=False)) for rp, rg in zip(rle_p, rle_g)]
    assert ciou(preds, gts) == pytest.approx(sum(inter) / sum(union), rel=1e-9)
    per_query = [1.0 if u == 0 else i / (u + 1e-5) for i, u in zip(inter, union)]
    assert giou(preds, gts) == pytest.approx(np.mean(per_query), rel=1e-9)


def test_giou_counts_empty_union_as_one_and_ciou_of_all_empty_is_zero():
    empty = np.zeros((4, 4), bool)
    full = np.ones((4, 4), bool)
    assert giou([empty, empty], [empty, full]) == pytest.approx(0.5)
    assert ciou([empty], [empty]) == 0.0


@pytest.mark.parametrize("shift", [0, 1, 3, 7])
def test_j_of_a_shifted_square(shift):
    side = 20
    gt = square((50, 60), 10, 10, side)
    pred = square((50, 60), 10, 10 + shift, side)
    assert region_similarity(pred, gt) == pytest.approx((side - shift) / (side + shift))


def test_j_and_f_empty_and_full_frames():
    empty, full = np.zeros((30, 40), bool), np.ones((30, 40), bool)
    blob = square((30, 40), 5, 5, 10)
    assert region_similarity(empty, empty) == 1.0 and boundary_f_measure(empty, empty) == 1.0
    assert region_similarity(empty, blob) == 0.0 and boundary_f_measure(empty, blob) == 0.0
    assert region_similarity(blob, empty) == 0.0 and boundary_f_measure(blob, empty) == 0.0
    assert region_similarity(full, full) == 1.0 and boundary_f_measure(full, full) == 1.0
    # DAVIS's _seg2bmap gives a full frame no boundary, so F(full, empty) = 1 while J = 0 (reference behaviour).
    assert region_similarity(full, empty) == 0.0 and boundary_f_measure(full, empty) == 1.0


@pytest.mark.parametrize(("shape", "expected"), [((480, 854), 8), ((1080, 1920), 18), ((100, 100), 2), ((30, 40), 1)])
def test_bound_th_is_a_fraction_of_the_diagonal(shape, expected):
    assert boundary_tolerance(shape) == expected == math.ceil(0.008 * math.hypot(*shape))
    assert boundary_tolerance(shape, bound_th=5) == 5


def test_f_tolerance_on_a_davis_sized_frame():
    gt = square((480, 854), 100, 200, 200)
    for shift in range(0, 9):  # tolerance ceil(0.008 * 979.6) = 8 px
        assert boundary_f_measure(np.roll(gt, shift, axis=1), gt) == 1.0
    assert boundary_f_measure(np.roll(gt, 9, axis=1), gt) < 1.0
    assert boundary_f_measure(np.roll(gt, 9, axis=1), gt, bound_th=9) == 1.0


def test_f_matches_a_brute_force_reference():
    rng = np.random.default_rng(2)
    preds, gts = random_masks(rng, 8, (23, 31)), random_masks(rng, 8, (23, 31))
    for bound_th in (0.008, 3):
        radius = boundary_tolerance((23, 31), bound_th)
        for p, g in zip(preds, gts):
            assert boundary_f_measure(p, g, bound_th) == pytest.approx(brute_force_f(p, g, radius), abs=1e-12)


def test_j_and_f_of_a_clip():
    gt = np.stack([square((40, 40), 5, 5, 10), np.zeros((40, 40), bool)])
    pred = np.stack([square((40, 40), 5, 5, 10), square((40, 40), 0, 0, 3)])
    scores = j_and_f(pred, gt)
    assert scores == {"J": 0.5, "F": 0.5, "J&F": 0.5}


def test_revos_accuracy_and_robustness():
    gt = np.zeros((2, 10, 10), bool)
    gt[:, :5, :5] = True
    foreground = np.zeros_like(gt)
    foreground[:, :5, :] = True  # 50 px
    pred = gt.copy()
    pred[0, 9, :] = True  # 10 false positives in frame 0
    assert revos_accuracy(pred, gt) == pytest.approx((0.9 + 1.0) / 2)
    assert revos_robustness(pred, gt, foreground) == pytest.approx((1 - 10 / (50 + 1e-6) + 1.0) / 2)
    pred[1] = True  # 75 false positives > 50 foreground pixels: clipped at 0
    assert revos_robustness(pred[1:], gt[1:], foreground[1:]) == 0.0


def test_shape_mismatch_is_an_error():
    with pytest.raises(ValueError, match="shape"):
        region_similarity(np.zeros((2, 2)), np.zeros((3, 3)))
    with pytest.raises(ValueError, match="bound_th"):
        boundary_f_measure(np.zeros((2, 2)), np.zeros((2, 2)), bound_th=2.5)
