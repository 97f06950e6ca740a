"""Sa2VA's mask losses: sigmoid cross-entropy and dice on points sampled where the prediction is uncertain.

The official recipe trains on SAM-2's low-resolution logits against the target mask resized (nearest) to the same
grid (`Sa2VAConfig.mask_target_size` can keep the targets finer), on `train_num_points` points per mask chosen
PointRend-style: `oversample_ratio` times as many uniform candidates, of which the `importance_sample_ratio` share
closest to the decision boundary (smallest |logit|) is kept, topped up with uniform points. The two losses are
transformers' Mask2Former ones, which are the same formulas.
"""

import torch
import torch.nn.functional as F
from transformers.models.mask2former.modeling_mask2former import dice_loss, sample_point, sigmoid_cross_entropy_loss


def sample_uncertain_points(
    mask_logits: torch.FloatTensor, num_points: int, oversample_ratio: float, importance_sample_ratio: float
) -> torch.FloatTensor:
    """Point coordinates in `[0, 1]²` per mask, most of them where `|logit|` is smallest.

    Args:
        mask_logits (`torch.FloatTensor` of shape `(num_masks, 1, height, width)`).
        num_points (`int`): points per mask.
        oversample_ratio (`float`): uniform candidates per point.
        importance_sample_ratio (`float`): share of points taken from the most uncertain candidates.

    Returns:
        `torch.FloatTensor` of shape `(num_masks, num_points, 2)`, `(x, y)` as `grid_sample` reads them.
    """
    num_masks = mask_logits.shape[0]
    candidates = torch.rand(num_masks, int(num_points * oversample_ratio), 2, device=mask_logits.device)
    uncertainty = -sample_point(mask_logits, candidates, align_corners=False)[:, 0].abs()
    num_uncertain = int(importance_sample_ratio * num_points)
    most_uncertain = uncertainty.topk(num_uncertain, dim=1).indices
    uncertain_points = torch.gather(candidates, 1, most_uncertain[..., None].expand(-1, -1, 2))
    random_points = torch.rand(num_masks, num_points - num_uncertain, 2, device=mask_logits.device)
    return torch.cat([uncertain_points, random_points], dim=1)


def resize_target_masks(masks: torch.Tensor, size: tuple[int, int]) -> torch.FloatTensor:
    """Binary masks `(num_masks, height, width)` at any size → float `(num_masks, *size)`, nearest neighbour."""
    return F.interpolate(masks[:, None].float(), size=size, mode="nearest")[:, 0]


def mask_losses(
    mask_logits: torch.FloatTensor,
    target_masks: torch.Tensor,
    num_points: int,
    oversample_ratio: float,
    importance_sample_ratio: float,
) -> tuple[torch.FloatTensor, torch.FloatTensor]:
    """Sigmoid cross-entropy and dice between mask logits and binary targets, on sampled points.

    Args:
        mask_logits (`torch.FloatTensor` of shape `(num_masks, height, width)`): SAM-2 low-resolution logits.
        target_masks (`torch.Tensor` of shape `(num_masks, target_height, target_width)`): binary targets on the
            same grid or a finer one (see [`resize_target_masks`]); points are read at the same place in both.
        num_points, oversample_ratio, importance_sample_ratio: see [`sample_uncertain_points`].

    Returns:
        `(bce, dice)`: two scalars, each the mean over masks (and points, for the cross-entropy).
    """
    logits = mask_logits[:, None].float()
    targets = target_masks[:, None].float()
    with torch.no_grad():
        points = sample_uncertain_points(logits, num_points, oversample_ratio, importance_sample_ratio)
        point_targets = sample_point(targets, points, align_corners=False)[:, 0]
    point_logits = sample_point(logits, points, align_corners=False)[:, 0]
    num_masks = logits.shape[0]
    return (
        sigmoid_cross_entropy_loss(point_logits, point_targets, num_masks),
        dice_loss(point_logits, point_targets, num_masks),
    )


__all__ = ["mask_losses", "resize_target_masks", "sample_uncertain_points"]
