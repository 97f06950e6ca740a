"""Sa2VA image processor: the VLM view (InternVL tiles or Qwen-VL patches), the SAM-2 view and the original sizes.

Every step reproduces the official Sa2VA preprocessing (PIL's default bicubic resizes, the official normalisation
constants and their dtypes), so that a converted checkpoint sees the same pixels as the official model.
"""

import math
import os
from collections.abc import Sequence
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from transformers import BatchFeature, Qwen2VLImageProcessorPil
from transformers.image_processing_utils import BaseImageProcessor
from transformers.processing_utils import ImagesKwargs

from .video_io_sa2va import check_key_frame_indices, select_key_frames


ImageLike = Image.Image | np.ndarray | str | os.PathLike

VLM_FAMILIES = ("internvl", "qwen2_5_vl", "qwen3_vl")

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
OPENAI_CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
OPENAI_CLIP_STD = (0.26862954, 0.26130258, 0.27577711)
# The official SAM-2 preprocessing builds ImageNet mean/std as bfloat16 tensors and applies them to the float32
# frames, so the constants it really uses are the bfloat16 roundings of the ImageNet values (exact in float32).
SAM_IMAGENET_MEAN_BF16 = (0.484375, 0.455078125, 0.40625)
SAM_IMAGENET_STD_BF16 = (0.228515625, 0.2236328125, 0.224609375)

# Defaults of the VLM view per family: normalisation of the VLM's vision tower and its patch size (Qwen: the
# second resize rounds to `patch_size * merge_size`; InternVL: informative only, 448-px tiles of 14-px patches).
# fmt: off
FAMILY_DEFAULTS = {
    "internvl":   {"image_mean": IMAGENET_MEAN,    "image_std": IMAGENET_STD,    "patch_size": 14},
    "qwen2_5_vl": {"image_mean": OPENAI_CLIP_MEAN, "image_std": OPENAI_CLIP_STD, "patch_size": 14},
    "qwen3_vl":   {"image_mean": (0.5, 0.5, 0.5),  "image_std": (0.5, 0.5, 0.5),  "patch_size": 16},
}
# fmt: on

# `qwen_vl_utils.process_vision_info` (which the official Qwen code calls before the processor) resizes every PIL
# image to a multiple of 28 between 4 and 16384 "tokens" of 28x28 pixels, for Qwen2.5-VL and Qwen3-VL alike.
QWEN_VL_UTILS_FACTOR = 28
QWEN_VL_UTILS_MIN_PIXELS = 4 * 28 * 28
QWEN_VL_UTILS_MAX_PIXELS = 16384 * 28 * 28
MAX_ASPECT_RATIO = 200

# `post_process_masks` upsamples at most this many float32 logits at the SAM-2 resolution at once (128 MiB).
POST_PROCESS_CHUNK_ELEMENTS = 2**25

BICUBIC = Image.Resampling.BICUBIC

# The constructor settings of `Sa2VAImageProcessor` (what `preprocess` accepts as per-call overrides).
SETTINGS = (
    "vlm_family", "tile_size", "min_tiles", "max_tiles", "use_thumbnail", "image_mean", "image_std", "num_key_frames",
    "sam_image_size", "sam_image_mean", "sam_image_std", "patch_size", "merge_size", "temporal_patch_size",
    "min_pixels", "max_pixels", "pre_resize", "pre_resize_factor", "pre_resize_min_pixels", "pre_resize_max_pixels",
)  # fmt: skip


class Sa2VAImageProcessorKwargs(ImagesKwargs, total=False):
    r"""
    vlm_family (`str`): `"internvl"`, `"qwen2_5_vl"` or `"qwen3_vl"`, the VLM whose image view is produced.
    tile_size (`int`): InternVL tile side in pixels.
    min_tiles (`int`), max_tiles (`int`): bounds on the number of InternVL tiles (thumbnail excluded).
    use_thumbnail (`bool`): append the whole image as one more tile when the image is split into several tiles.
    num_key_frames (`int`): frames of a video shown to the VLM when no `key_frame_indices` are given.
    sam_image_size (`int`): side of the square SAM-2 input.
    sam_image_mean (`list[float]`), sam_image_std (`list[float]`): SAM-2 normalisation.
    patch_size (`int`), merge_size (`int`), temporal_patch_size (`int`): Qwen-VL patching.
    min_pixels (`int`), max_pixels (`int`): pixel bounds of the Qwen-VL processor's resize.
    pre_resize (`bool`): apply `qwen_vl_utils`' resize before the Qwen-VL processor's (official behaviour).
    pre_resize_factor (`int`), pre_resize_min_pixels (`int`), pre_resize_max_pixels (`int`): its settings.
    """

    vlm_family: str
    tile_size: int
    min_tiles: int
    max_tiles: int
    use_thumbnail: bool
    num_key_frames: int
    sam_image_size: int
    sam_image_mean: list[float] | tuple[float, ...]
    sam_image_std: list[float] | tuple[float, ...]
    patch_size: int
    merge_size: int
    temporal_patch_size: int
    min_pixels: int
    max_pixels: int
    pre_resize: bool
    pre_resize_factor: int
    pre_resize_min_pixels: int
    pre_resize_max_pixels: int


def smart_resize(
    height: int,
    width: int,
    factor: int = QWEN_VL_UTILS_FACTOR,
    min_pixels: int = QWEN_VL_UTILS_MIN_PIXELS,
    max_pixels: int = QWEN_VL_UTILS_MAX_PIXELS,
) -> tuple[int, int]:
    """The size `qwen_vl_utils` resizes an image to before the Qwen-VL processor sees it.

    Both sides become multiples of `factor` (rounded to the nearest, at least `factor`); if the area leaves
    `[min_pixels, max_pixels]` the image is scaled, keeping its aspect ratio, to fit (sides floored when shrinking,
    ceiled when growing). It differs from transformers' `smart_resize` only in where the `factor` floor applies.

    Args:
        height (`int`): image height in pixels.
        width (`int`): image width in pixels.
        factor (`int`, *optional*, defaults to 28): both output sides are multiples of it.
        min_pixels (`int`, *optional*, defaults to `4 * 28 * 28`): smallest allowed output area.
        max_pixels (`int`, *optional*, defaults to `16384 * 28 * 28`): largest allowed output area.

    Returns:
        `tuple[int, int]`: `(height, width)` after resizing.

    Raises:
        ValueError: if the longer side is more than 200 times the shorter one, or the bounds are inconsistent.
    """
    if height <= 0 or width <= 0:
        raise ValueError(f"`height` and `width` must be positive, got height={height}, width={width}.")
    if max_pixels < min_pixels:
        raise ValueError(f"`max_pixels` ({max_pixels}) must be at least `min_pixels` ({min_pixels}).")
    if max(height, width) / min(height, width) > MAX_ASPECT_RATIO:
        raise ValueError(
            f"The image is {width}x{height} (width x height): its aspect ratio exceeds {MAX_ASPECT_RATIO}, which "
            "Qwen-VL cannot process; crop or pad it first."
        )
    resized_height = max(factor, round(height / factor) * factor)
    resized_width = max(factor, round(width / factor) * factor)
    if resized_height * resized_width > max_pixels:
        scale = math.sqrt(height * width / max_pixels)
        resized_height = math.floor(height / scale / factor) * factor
        resized_width = math.floor(width / scale / factor) * factor
    elif resized_height * resized_width < min_pixels:
        scale = math.sqrt(min_pixels / (height * width))
        resized_height = math.ceil(height * scale / factor) * factor
        resized_width = math.ceil(width * scale / factor) * factor
    return resized_height, resized_width


@lru_cache(maxsize=16)
def _candidate_grids(min_tiles: int, max_tiles: int) -> tuple[tuple[int, int], ...]:
    """Every `(columns, rows)` grid with `min_tiles <= columns * rows <= max_tiles`, by increasing tile count.

    Grids with the same tile count keep the order of the reference implementation, which sorts a Python `set` of
    the grids (tuples of small ints hash identically on every run, so that order is deterministic).
    """
    grids = {
        (columns, rows)
        for count in range(min_tiles, max_tiles + 1)
        for columns in range(1, count + 1)
        for rows in range(1, count + 1)
        if min_tiles <= columns * rows <= max_tiles
    }
    return tuple(sorted(grids, key=lambda grid: grid[0] * grid[1]))


def get_internvl_tile_grid(
    width: int, height: int, tile_size: int = 448, min_tiles: int = 1, max_tiles: int = 12
) -> tuple[int, int]:
    """The InternVL tiling grid for an image: the grid whose aspect ratio is closest to the image's.

    Candidates are visited by increasing tile count; on an exact tie with the best so far, the later (larger) grid
    wins only if the image area exceeds half of the grid's area in pixels.

    Args:
        width (`int`): image width in pixels.
        height (`int`): image height in pixels.
        tile_size (`int`, *optional*, defaults to 448): tile side in pixels.
        min_tiles (`int`, *optional*, defaults to 1): fewest tiles.
        max_tiles (`int`, *optional*, defaults to 12): most tiles (the thumbnail is not counted).

    Returns:
        `tuple[int, int]`: `(columns, rows)`.
    """
    aspect_ratio = width / height
    area = width * height
    best_difference = float("inf")
    best_grid = (1, 1)
    for columns, rows in _candidate_grids(min_tiles, max_tiles):
        difference = abs(aspect_ratio - columns / rows)
        if difference < best_difference:
            best_difference = difference
            best_grid = (columns, rows)
        elif difference == best_difference and area > 0.5 * tile_size * tile_size * columns * rows:
            best_grid = (columns, rows)
    return best_grid


def _as_float_tuple(value: Any, name: str) -> tuple[float, float, float]:
    if isinstance(value, torch.Tensor | np.ndarray):
        value = value.tolist()
    if (
        not isinstance(value, list | tuple)
        or len(value) != 3
        or not all(isinstance(v, int | float | np.integer | np.floating) and not isinstance(v, bool) for v in value)
    ):
        raise ValueError(f"`{name}` must be three numbers (one per RGB channel), got {value!r}.")
    return tuple(float(v) for v in value)


def _as_positive_int(value: Any, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int | np.integer) or value <= 0:
        raise ValueError(f"`{name}` must be a positive integer, got {value!r}.")
    return int(value)


def _to_rgb(image: Image.Image) -> Image.Image:
    """RGB view of a PIL image, alpha dropped (the InternVL and SAM-2 views)."""
    return image if image.mode == "RGB" else image.convert("RGB")


def _to_rgb_on_white(image: Image.Image) -> Image.Image:
    """RGB view of a PIL image as `qwen_vl_utils` makes it: an RGBA image is composited on a white background."""
    if image.mode == "RGBA":
        background = Image.new("RGB", image.size, (255, 255, 255))
        background.paste(image, mask=image.getchannel("A"))
        return background
    return _to_rgb(image)


def _normalize(pixels: np.ndarray, mean: Sequence[float], std: Sequence[float]) -> torch.Tensor:
    """`(N, H, W, 3)` uint8 → `(N, 3, H, W)` float32: `x / 255`, minus `mean`, divided by `std`, all in float32."""
    if not (pixels.flags.writeable and pixels.flags.c_contiguous):
        pixels = np.array(pixels, order="C")
    tensor = torch.from_numpy(pixels).permute(0, 3, 1, 2).float().div_(255)
    mean_t = torch.tensor(mean, dtype=torch.float32).view(1, 3, 1, 1)
    std_t = torch.tensor(std, dtype=torch.float32).view(1, 3, 1, 1)
    return tensor.sub_(mean_t).div_(std_t).contiguous()


class Sa2VAImageProcessor(BaseImageProcessor):
    r"""
    Prepares images and video frames for Sa2VA: the view of the vision-language model, the view of SAM-2 and the
    original sizes; and turns SAM-2's low-resolution mask logits back into masks at the input size.

    The defaults describe the released checkpoints (`ByteDance/Sa2VA-InternVL3-2B` etc.):

    - **InternVL view** (`vlm_family="internvl"`): an image is split into up to 12 tiles of 448x448 on the grid
      whose aspect ratio is closest to the image's (PIL bicubic resize, row-major crops), plus a 448x448
      thumbnail of the whole image when there is more than one tile; each tile is scaled to `[0, 1]` and normalised
      with ImageNet mean/std. A video key frame is resized straight to 448x448 (no tiling, no thumbnail).
    - **Qwen-VL view** (`"qwen2_5_vl"`, `"qwen3_vl"`): like the official code, each image is first resized by
      `qwen_vl_utils`' rule (multiples of 28, PIL bicubic), then by transformers' Qwen2-VL image processor
      (`min_pixels=512*28*28`, `max_pixels=2048*28*28`, multiples of `patch_size * merge_size`) into flat patches.
    - **SAM-2 view**: every frame is resized with PIL's bicubic filter to 1024x1024 (aspect ratio not kept),
      scaled to `[0, 1]` and normalised with ImageNet mean/std rounded to bfloat16, as the official code does.

    Args:
        vlm_family (`str`, *optional*, defaults to `"internvl"`):
            `"internvl"`, `"qwen2_5_vl"` or `"qwen3_vl"`: the VLM whose image view is produced.
        tile_size (`int`, *optional*, defaults to 448): InternVL tile side in pixels.
        min_tiles (`int`, *optional*, defaults to 1): fewest InternVL tiles.
        max_tiles (`int`, *optional*, defaults to 12): most InternVL tiles (the thumbnail is not counted).
        use_thumbnail (`bool`, *optional*, defaults to `True`): append the thumbnail when there are several tiles.
        image_mean (`list[float]`, *optional*): VLM normalisation mean; defaults to the family's (ImageNet for
            InternVL, OpenAI CLIP for Qwen2.5-VL, 0.5 for Qwen3-VL).
        image_std (`list[float]`, *optional*): VLM normalisation std; defaults to the family's.
        num_key_frames (`int`, *optional*, defaults to 5): frames of a video shown to the VLM when `preprocess`
            gets no `key_frame_indices` (the first `min(num_key_frames, num_frames)`, as the official model).
        sam_image_size (`int`, *optional*, defaults to 1024): side of the square SAM-2 input.
        sam_image_mean (`list[float]`, *optional*, defaults to `(0.484375, 0.455078125, 0.40625)`): SAM-2 mean
            (ImageNet, rounded to bfloat16).
        sam_image_std (`list[float]`, *optional*, defaults to `(0.228515625, 0.2236328125, 0.224609375)`): SAM-2
            std (ImageNet, rounded to bfloat16).
        patch_size (`int`, *optional*): vision patch size; defaults to 14 (InternVL, Qwen2.5-VL) or 16 (Qwen3-VL).
        merge_size (`int`, *optional*, defaults to 2): Qwen-VL spatial merge of patches into one LLM token.
        temporal_patch_size (`int`, *optional*, defaults to 2): Qwen-VL temporal patch size (images are repeated).
        min_pixels (`int`, *optional*, defaults to 401408): smallest area of the Qwen-VL processor's resize.
        max_pixels (`int`, *optional*, defaults to 1605632): largest area of the Qwen-VL processor's resize.
        pre_resize (`bool`, *optional*, defaults to `True`): resize Qwen-VL inputs with `qwen_vl_utils`' rule
            first (the official double resize).
        pre_resize_factor (`int`, *optional*, defaults to 28): multiple of that first resize (28 for both Qwen
            families: the official Qwen3-VL code does not pass its 16-px patch to `qwen_vl_utils`).
        pre_resize_min_pixels (`int`, *optional*, defaults to `4 * 28 * 28`): smallest area of the first resize.
        pre_resize_max_pixels (`int`, *optional*, defaults to `16384 * 28 * 28`): largest area of the first resize.

    Inputs are PIL images (any mode), `uint8` numpy arrays `(height, width)`, `(height, width, 3)` or
    `(height, width, 4)`, or paths of image files (opened with PIL; EXIF orientation is not applied, like the
    official code). They are converted to RGB (alpha dropped; for the Qwen-VL view an RGBA image is composited on
    white, like `qwen_vl_utils`).
    """

    valid_kwargs = Sa2VAImageProcessorKwargs
    model_input_names = ["pixel_values", "num_tiles", "image_grid_thw", "sam_pixel_values", "original_sizes"]

    def __init__(
        self,
        vlm_family: str = "internvl",
        tile_size: int = 448,
        min_tiles: int = 1,
        max_tiles: int = 12,
        use_thumbnail: bool = True,
        image_mean: Sequence[float] | None = None,
        image_std: Sequence[float] | None = None,
        num_key_frames: int = 5,
        sam_image_size: int = 1024,
        sam_image_mean: Sequence[float] = SAM_IMAGENET_MEAN_BF16,
        sam_image_std: Sequence[float] = SAM_IMAGENET_STD_BF16,
        patch_size: int | None = None,
        merge_size: int = 2,
        temporal_patch_size: int = 2,
        min_pixels: int = 512 * 28 * 28,
        max_pixels: int = 2048 * 28 * 28,
        pre_resize: bool = True,
        pre_resize_factor: int = QWEN_VL_UTILS_FACTOR,
        pre_resize_min_pixels: int = QWEN_VL_UTILS_MIN_PIXELS,
        pre_resize_max_pixels: int = QWEN_VL_UTILS_MAX_PIXELS,
        **kwargs,
    ):
        super().__init__(**kwargs)
        if vlm_family not in FAMILY_DEFAULTS:
            raise ValueError(f"`vlm_family` must be one of {', '.join(VLM_FAMILIES)}; got {vlm_family!r}.")
        defaults = FAMILY_DEFAULTS[vlm_family]
        self.vlm_family = vlm_family
        self.tile_size = _as_positive_int(tile_size, "tile_size")
        self.min_tiles = _as_positive_int(min_tiles, "min_tiles")
        self.max_tiles = _as_positive_int(max_tiles, "max_tiles")
        if self.min_tiles > self.max_tiles:
            raise ValueError(f"`min_tiles` ({min_tiles}) must not exceed `max_tiles` ({max_tiles}).")
        self.use_thumbnail = bool(use_thumbnail)
        self.image_mean = _as_float_tuple(defaults["image_mean"] if image_mean is None else image_mean, "image_mean")
        self.image_std = _as_float_tuple(defaults["image_std"] if image_std is None else image_std, "image_std")
        self.num_key_frames = _as_positive_int(num_key_frames, "num_key_frames")
        self.sam_image_size = _as_positive_int(sam_image_size, "sam_image_size")
        self.sam_image_mean = _as_float_tuple(sam_image_mean, "sam_image_mean")
        self.sam_image_std = _as_float_tuple(sam_image_std, "sam_image_std")
        self.patch_size = _as_positive_int(defaults["patch_size"] if patch_size is None else patch_size, "patch_size")
        self.merge_size = _as_positive_int(merge_size, "merge_size")
        self.temporal_patch_size = _as_positive_int(temporal_patch_size, "temporal_patch_size")
        self.min_pixels = _as_positive_int(min_pixels, "min_pixels")
        self.max_pixels = _as_positive_int(max_pixels, "max_pixels")
        if self.min_pixels > self.max_pixels:
            raise ValueError(f"`min_pixels` ({min_pixels}) must not exceed `max_pixels` ({max_pixels}).")
        self.pre_resize = bool(pre_resize)
        self.pre_resize_factor = _as_positive_int(pre_resize_factor, "pre_resize_factor")
        self.pre_resize_min_pixels = _as_positive_int(pre_resize_min_pixels, "pre_resize_min_pixels")
        self.pre_resize_max_pixels = _as_positive_int(pre_resize_max_pixels, "pre_resize_max_pixels")

    # ------------------------------------------------------------------------------------------------ inputs

    def load_images(self, images: ImageLike | Sequence[ImageLike], argument_name: str = "images") -> list[Image.Image]:
        """Open and check the inputs; returns PIL images in their own mode (views convert to RGB themselves).

        Args:
            images: one image or a list/tuple of images: PIL images, `uint8` numpy arrays `(height, width[, C])`
                with C in (1, 3, 4), or image file paths (`str` / `os.PathLike`).
            argument_name (`str`, *optional*, defaults to `"images"`): name used in error messages.

        Returns:
            `list[PIL.Image.Image]`, one per input.

        Raises:
            TypeError: for an input of another type, or an array that is not `uint8`.
            ValueError: for an empty list or an array of the wrong shape.
            FileNotFoundError: for a path that is not a file.
        """
        if isinstance(images, list | tuple):
            if not images:
                raise ValueError(f"`{argument_name}` is empty; pass at least one image.")
            return [self._load_image(image, f"{argument_name}[{i}]") for i, image in enumerate(images)]
        return [self._load_image(images, argument_name)]

    @staticmethod
    def _load_image(image: Any, name: str) -> Image.Image:
        if isinstance(image, Image.Image):
            return image
        if isinstance(image, str | os.PathLike):
            path = Path(image)
            if not path.is_file():
                raise FileNotFoundError(f"`{name}` is the path {str(path)!r}, which is not a file.")
            with Image.open(path) as opened:
                return opened.copy()
        if isinstance(image, np.ndarray):
            if image.dtype != np.uint8:
                raise TypeError(
                    f"`{name}` is a numpy array of dtype {image.dtype}; pass uint8 pixels in [0, 255], "
                    "e.g. `(array * 255).round().astype(np.uint8)` for floats in [0, 1]."
                )
            if image.ndim == 3 and image.shape[-1] == 1:
                image = image[..., 0]
            if not (image.ndim == 2 or (image.ndim == 3 and image.shape[-1] in (3, 4))) or 0 in image.shape:
                raise ValueError(
                    f"`{name}` is a numpy array of shape {tuple(image.shape)}; pass one image as (height, width), "
                    "(height, width, 3) or (height, width, 4) (channels last), or a list of such arrays."
                )
            return Image.fromarray(np.ascontiguousarray(image))
        raise TypeError(
            f"`{name}` must be a PIL.Image.Image, a uint8 numpy array (height, width, 3) or an image file path; "
            f"got {type(image).__name__}."
        )

    # ------------------------------------------------------------------------------------------------ views

    def preprocess(
        self,
        images: ImageLike | Sequence[ImageLike],
        *,
        is_video: bool = False,
        key_frame_indices: Sequence[int] | None = None,
        return_tensors: str | None = "pt",
        **overrides,
    ) -> BatchFeature:
        r"""
        Prepare images, or the frames of one video, for Sa2VA.

        Args:
            images: one image or a list of images; with `is_video=True`, the list of all frames of one video (all
                of the same size: masks come back at that size). See the class docstring for accepted types.
            is_video (`bool`, *optional*, defaults to `False`): treat `images` as the frames of one video.
            key_frame_indices (`Sequence[int]`, *optional*): frames of the video shown to the VLM (in the given
                order). Defaults to the first `min(num_key_frames, num_frames)` frames, the official choice.
            return_tensors (`str`, *optional*, defaults to `"pt"`): `"pt"` for torch tensors, `"np"` or `None` for
                numpy arrays.
            overrides: constructor settings to use for this call only, e.g. `max_tiles=6` or `min_pixels=...`.

        Returns:
            [`BatchFeature`] with:

            - `pixel_values`: the VLM view. InternVL: `torch.FloatTensor` of shape `(num_tiles_total, 3, tile_size,
              tile_size)`, the tiles of all images (or one per key frame) in order. Qwen-VL: `torch.FloatTensor`
              of shape `(num_patches_total, 3 * temporal_patch_size * patch_size**2)`.
            - `num_tiles` (InternVL only): `torch.LongTensor` of shape `(num_images,)`, tiles per image (1 per key
              frame); the prompt holds 256 `<IMG_CONTEXT>` tokens per tile.
            - `image_grid_thw` (Qwen-VL only): `torch.LongTensor` of shape `(num_images, 3)`, the patch grid of each
              image or key frame.
            - `sam_pixel_values`: `torch.FloatTensor` of shape `(num_frames, 3, sam_image_size, sam_image_size)`,
              every image or frame.
            - `original_sizes`: `torch.LongTensor` of shape `(num_frames, 2)`, `(height, width)` of each input.

        Raises:
            TypeError: for inputs of an unsupported type, or an unknown setting in `overrides`.
            ValueError: for video frames of different sizes or invalid `key_frame_indices`.
        """
        if overrides:
            return self._with_overrides(overrides).preprocess(
                images, is_video=is_video, key_frame_indices=key_frame_indices, return_tensors=return_tensors
            )
        if return_tensors not in ("pt", "np", None):
            raise ValueError(f"`return_tensors` must be 'pt', 'np' or None, got {return_tensors!r}.")
        pil_images = self.load_images(images)
        if is_video:
            self._check_same_size(pil_images)
            indices = (
                select_key_frames(len(pil_images), self.num_key_frames, "first")
                if key_frame_indices is None
                else check_key_frame_indices(key_frame_indices, len(pil_images))
            )
            data = self._vlm_view([pil_images[i] for i in indices], is_video=True)
        else:
            if key_frame_indices is not None:
                raise ValueError("`key_frame_indices` applies to videos only; pass `is_video=True` with the frames.")
            data = self._vlm_view(pil_images, is_video=False)
        data["sam_pixel_values"] = self._sam_view(pil_images)
        data["original_sizes"] = torch.tensor([(image.height, image.width) for image in pil_images], dtype=torch.long)
        if return_tensors != "pt":
            data = {key: value.numpy() for key, value in data.items()}
        return BatchFeature(data=data, tensor_type=return_tensors)

    def _with_overrides(self, overrides: dict[str, Any]) -> "Sa2VAImageProcessor":
        """A copy of this processor with some constructor settings replaced (validated like in `__init__`)."""
        unknown = sorted(set(overrides) - set(SETTINGS))
        if unknown:
            raise TypeError(
                f"`preprocess` got unknown keyword argument(s) {unknown}; the settings it accepts are "
                f"{', '.join(SETTINGS)}."
            )
        return type(self)(**{**{key: getattr(self, key) for key in SETTINGS}, **overrides})

    def vlm_view(self, images: ImageLike | Sequence[ImageLike], *, is_video: bool = False) -> dict[str, torch.Tensor]:
        r"""
        The VLM's view of images, or of video key frames.

        Args:
            images: one image or a list of images (or the key frames of a video).
            is_video (`bool`, *optional*, defaults to `False`): InternVL resizes video frames straight to one tile;
                Qwen-VL treats frames as images (the official code passes them as separate images).

        Returns:
            `dict` with `pixel_values` and `num_tiles` (InternVL) or `image_grid_thw` (Qwen-VL), as in
            [`~Sa2VAImageProcessor.preprocess`].
        """
        return self._vlm_view(self.load_images(images), is_video=is_video)

    def sam_view(self, frames: ImageLike | Sequence[ImageLike]) -> torch.FloatTensor:
        r"""
        SAM-2's view of images or frames: PIL bicubic resize to a square of `sam_image_size`, `/ 255`, then
        `(x - sam_image_mean) / sam_image_std` in float32.

        Frames can be passed in pieces (e.g. while streaming a long video): each frame is processed on its own.

        Args:
            frames: one image or a list of images / frames (any sizes).

        Returns:
            `sam_pixel_values` (`torch.FloatTensor` of shape `(num_frames, 3, sam_image_size, sam_image_size)`).
        """
        return self._sam_view(self.load_images(frames, argument_name="frames"))

    def _vlm_view(self, images: list[Image.Image], is_video: bool) -> dict[str, torch.Tensor]:
        if self.vlm_family == "internvl":
            if is_video:
                size = (self.tile_size, self.tile_size)
                tiles_per_image = [[_to_rgb(image).resize(size, BICUBIC)] for image in images]
            else:
                tiles_per_image = [self.internvl_tiles(image) for image in images]
            tiles = np.stack([np.asarray(tile) for tiles in tiles_per_image for tile in tiles])
            return {
                "pixel_values": _normalize(tiles, self.image_mean, self.image_std),
                "num_tiles": torch.tensor([len(tiles) for tiles in tiles_per_image], dtype=torch.long),
            }
        if self.pre_resize:
            images = [self.qwen_pre_resize(image) for image in images]
        else:
            images = [_to_rgb_on_white(image) for image in images]
        outputs = self._qwen_image_processor()(images, return_tensors=None)
        return {
            "pixel_values": torch.from_numpy(np.ascontiguousarray(outputs["pixel_values"], dtype=np.float32)),
            "image_grid_thw": torch.from_numpy(np.asarray(outputs["image_grid_thw"], dtype=np.int64)),
        }

    def _sam_view(self, frames: list[Image.Image]) -> torch.Tensor:
        size = (self.sam_image_size, self.sam_image_size)
        output = torch.empty((len(frames), 3, *size), dtype=torch.float32)
        for i, frame in enumerate(frames):
            pixels = np.asarray(_to_rgb(frame).resize(size, BICUBIC))[None]
            output[i] = _normalize(pixels, self.sam_image_mean, self.sam_image_std)[0]
        return output

    def internvl_tiles(self, image: Image.Image) -> list[Image.Image]:
        """Split one image into InternVL tiles: `columns * rows` crops of `tile_size`, then the thumbnail if there
        is more than one crop (see [`get_internvl_tile_grid`]).

        Args:
            image (`PIL.Image.Image`): the image.

        Returns:
            `list[PIL.Image.Image]` of RGB tiles `tile_size x tile_size`, row-major, thumbnail last.
        """
        image = _to_rgb(image)
        tile = self.tile_size
        columns, rows = get_internvl_tile_grid(image.width, image.height, tile, self.min_tiles, self.max_tiles)
        resized = image.resize((tile * columns, tile * rows), BICUBIC)
        tiles = []
        for k in range(columns * rows):
            left, top = (k % columns) * tile, (k // columns) * tile
            tiles.append(resized.crop((left, top, left + tile, top + tile)))
        if self.use_thumbnail and len(tiles) > 1:
            tiles.append(image.resize((tile, tile), BICUBIC))
        return tiles

    def qwen_pre_resize(self, image: Image.Image) -> Image.Image:
        """The first Qwen-VL resize, as `qwen_vl_utils.process_vision_info` does it: RGB (RGBA on white), then a PIL
        bicubic resize to [`smart_resize`] of its size with the `pre_resize_*` settings.

        Args:
            image (`PIL.Image.Image`): the image.

        Returns:
            `PIL.Image.Image`: the resized RGB image.
        """
        image = _to_rgb_on_white(image)
        height, width = smart_resize(
            image.height,
            image.width,
            factor=self.pre_resize_factor,
            min_pixels=self.pre_resize_min_pixels,
            max_pixels=self.pre_resize_max_pixels,
        )
        return image.resize((width, height), BICUBIC)

    def _qwen_image_processor(self) -> Qwen2VLImageProcessorPil:
        """transformers' PIL Qwen2-VL image processor with this processor's settings (built on demand, so that it is
        not part of the serialised configuration)."""
        return Qwen2VLImageProcessorPil(
            size={"shortest_edge": self.min_pixels, "longest_edge": self.max_pixels},
            patch_size=self.patch_size,
            merge_size=self.merge_size,
            temporal_patch_size=self.temporal_patch_size,
            image_mean=list(self.image_mean),
            image_std=list(self.image_std),
            resample=BICUBIC,
            do_convert_rgb=True,
        )

    def _check_same_size(self, frames: list[Image.Image]) -> None:
        first = frames[0].size
        for i, frame in enumerate(frames[1:], start=1):
            if frame.size != first:
                raise ValueError(
                    f"`images[{i}]` is {frame.width}x{frame.height} (width x height) but frame 0 is "
                    f"{first[0]}x{first[1]}: all frames of a video must have the same size (masks come back at "
                    "the size of frame 0); resize the frames to one size first."
                )

    # ------------------------------------------------------------------------------------------------ masks

    def post_process_masks(
        self,
        mask_logits: torch.Tensor,
        original_size: Sequence[int] | torch.Tensor,
        threshold: float = 0.0,
        *,
        frames_per_chunk: int | None = None,
    ) -> torch.BoolTensor:
        r"""
        Turn SAM-2's low-resolution mask logits into boolean masks at the input size, as the official model does:
        bilinear upsampling (align_corners=False) to `sam_image_size`, bilinear again to `original_size`, then
        `sigmoid(logits) > sigmoid(threshold)`. With `threshold=0` this is the official `sigmoid > 0.5`, which
        differs from `logits > 0` for tiny positive logits (below about 1e-7) whose float32 sigmoid rounds to 0.5.

        Frames are processed in chunks, so a long video never holds all its `sam_image_size`-resolution logits at
        once; each plane is upsampled independently, so the result does not depend on the chunking.

        Args:
            mask_logits (`torch.Tensor` of shape `(num_objects, num_frames, low_res_height, low_res_width)`):
                SAM-2's low-resolution logits (256x256 for the released models). Computed in float32.
            original_size (`tuple[int, int]`): `(height, width)` of the input (frame 0 for a video).
            threshold (`float`, *optional*, defaults to 0.0): logit above which a pixel is in the mask.
            frames_per_chunk (`int`, *optional*): frames upsampled at once; by default as many as keep the
                intermediate logits under 128 MiB.

        Returns:
            `torch.BoolTensor` of shape `(num_objects, num_frames, height, width)` on the device of `mask_logits`.
        """
        if not isinstance(mask_logits, torch.Tensor):
            raise TypeError(f"`mask_logits` must be a torch.Tensor, got {type(mask_logits).__name__}.")
        if mask_logits.ndim != 4:
            raise ValueError(
                "`mask_logits` must have shape (num_objects, num_frames, height, width), got "
                f"{tuple(mask_logits.shape)}; add the missing dimensions with `unsqueeze`."
            )
        if isinstance(original_size, torch.Tensor | np.ndarray):
            original_size = original_size.tolist()
        if not isinstance(original_size, Sequence) or len(original_size) != 2:
            raise ValueError(f"`original_size` must be (height, width), got {original_size!r}.")
        height = _as_positive_int(original_size[0], "original_size[0]")
        width = _as_positive_int(original_size[1], "original_size[1]")
        num_objects, num_frames = mask_logits.shape[:2]
        if frames_per_chunk is None:
            frames_per_chunk = max(1, POST_PROCESS_CHUNK_ELEMENTS // max(1, num_objects * self.sam_image_size**2))
        frames_per_chunk = _as_positive_int(frames_per_chunk, "frames_per_chunk")
        cutoff = torch.sigmoid(torch.tensor(threshold, dtype=torch.float32, device=mask_logits.device))
        masks = torch.empty((num_objects, num_frames, height, width), dtype=torch.bool, device=mask_logits.device)
        sam_size = (self.sam_image_size, self.sam_image_size)
        for start in range(0, num_frames, frames_per_chunk):
            chunk = mask_logits[:, start : start + frames_per_chunk].to(torch.float32)
            chunk = F.interpolate(chunk, size=sam_size, mode="bilinear", align_corners=False)
            chunk = F.interpolate(chunk, size=(height, width), mode="bilinear", align_corners=False)
            masks[:, start : start + frames_per_chunk] = torch.sigmoid(chunk) > cutoff
        return masks


__all__ = ["Sa2VAImageProcessor", "get_internvl_tile_grid", "smart_resize"]
