"""Sa2VAImageProcessor against the official fixtures: VLM views, SAM-2 view, mask post-processing; API and errors."""

import inspect
import json
from functools import cache

import numpy as np
import pytest
import torch
from PIL import Image

from conftest import official_fixture
from sa2va_hf.models.sa2va.image_processing_sa2va import (
    SETTINGS,
    Sa2VAImageProcessor,
    get_internvl_tile_grid,
    smart_resize,
)


# (fixture folder, vlm_family, file with the per-case facts)
FIXTURE_FAMILIES = [
    ("official_tiny", "internvl", "outputs.json"),
    ("official_tiny_qwen2_5_vl", "qwen2_5_vl", "cases.json"),
    ("official_tiny_qwen3_vl", "qwen3_vl", "cases.json"),
]
CASES = [(name, family, facts, case) for name, family, facts in FIXTURE_FAMILIES for case in ("image", "video")]
CASE_IDS = [f"{family}-{case}" for _, family, _, case in CASES]


@cache
def _recorded(name: str, facts_file: str) -> tuple[dict, dict[str, np.ndarray]]:
    folder = official_fixture(name)
    with np.load(folder / "outputs.npz") as arrays:
        recorded = {key: arrays[key] for key in arrays.files}
    return json.loads((folder / facts_file).read_text())["cases"], recorded


def _inputs(name: str, case: str) -> list[Image.Image]:
    folder = official_fixture(name)
    if case == "image":
        return [Image.open(folder / "image.png")]
    return [Image.open(folder / f"video_frame_{i}.png") for i in range(6)]


@cache
def _processed(name: str, family: str, case: str):
    processor = Sa2VAImageProcessor(vlm_family=family)
    frames = _inputs(name, case)
    if case == "image":
        return processor.preprocess(frames[0])
    return processor.preprocess(frames, is_video=True)  # official: the first 5 of the 6 frames go to the VLM


def _max_abs_diff(actual: torch.Tensor, expected: np.ndarray) -> float:
    assert tuple(actual.shape) == expected.shape
    return float(np.abs(actual.numpy().astype(np.float64) - expected.astype(np.float64)).max())


def _assert_sums(tensor: torch.Tensor, facts: dict, prefix: str) -> None:
    total, absolute = tensor.double().sum().item(), tensor.double().abs().sum().item()
    assert total == pytest.approx(facts[f"{prefix}_sum"], rel=1e-7, abs=1e-3)
    assert absolute == pytest.approx(facts[f"{prefix}_abs_sum"], rel=1e-7)


@pytest.mark.parametrize(("name", "family", "facts_file", "case"), CASES, ids=CASE_IDS)
def test_vlm_view_matches_official(name, family, facts_file, case):
    facts, recorded = _recorded(name, facts_file)
    facts = facts[case]
    out = _processed(name, family, case)
    pixel_values = out["pixel_values"]
    assert pixel_values.dtype == torch.float32
    assert list(pixel_values.shape) == facts["pixel_values_shape"]
    if family == "internvl":
        expected_tiles = [13] if case == "image" else [1] * 5  # 4x3 grid + thumbnail; 5 key frames of 1 tile
        assert out["num_tiles"].tolist() == expected_tiles
        assert "image_grid_thw" not in out
        diff = _max_abs_diff(pixel_values[:, :, ::16, ::16], recorded[f"{case}_pixel_values_sub16"])
    else:
        assert "num_tiles" not in out
        assert out["image_grid_thw"].dtype == torch.long
        assert out["image_grid_thw"].tolist() == recorded[f"{case}_image_grid_thw"].tolist() == facts["image_grid_thw"]
        diff = _max_abs_diff(pixel_values[::32], recorded[f"{case}_pixel_values_rows_sub32"])
    print(f"{family}/{case}: VLM pixel_values max abs diff {diff:.3g}")
    assert diff <= 1e-6
    _assert_sums(pixel_values, facts, "pixel_values")


@pytest.mark.parametrize(("name", "family", "facts_file"), FIXTURE_FAMILIES[1:], ids=["qwen2_5_vl", "qwen3_vl"])
def test_qwen_first_resize_matches_qwen_vl_utils(name, family, facts_file):
    facts, _ = _recorded(name, facts_file)
    processor = Sa2VAImageProcessor(vlm_family=family)
    for case in ("image", "video"):
        key_frames = _inputs(name, case)[:5]
        sizes = [list(processor.qwen_pre_resize(frame).size) for frame in key_frames]
        assert sizes == facts[case]["qwen_vl_utils_resized_sizes_wh"]


@pytest.mark.parametrize(("name", "family", "facts_file", "case"), CASES, ids=CASE_IDS)
def test_sam_view_and_sizes_match_official(name, family, facts_file, case):
    facts, recorded = _recorded(name, facts_file)
    facts = facts[case]
    out = _processed(name, family, case)
    sam_pixel_values = out["sam_pixel_values"]
    assert sam_pixel_values.dtype == torch.float32
    assert list(sam_pixel_values.shape) == facts["g_pixel_values_shape"]
    diff = _max_abs_diff(sam_pixel_values[:, :, ::16, ::16], recorded[f"{case}_g_pixel_values_sub16"])
    print(f"{family}/{case}: SAM-2 pixel_values max abs diff {diff:.3g}")
    assert diff <= 1e-6
    _assert_sums(sam_pixel_values, facts, "g_pixel_values")
    num_frames, height, width = recorded[f"{case}_prediction_masks"].shape[1:]
    assert out["original_sizes"].tolist() == [[height, width]] * num_frames


@pytest.mark.parametrize(("name", "family", "facts_file", "case"), CASES, ids=CASE_IDS)
def test_post_process_masks_reproduces_official_masks(name, family, facts_file, case):
    _, recorded = _recorded(name, facts_file)
    expected = recorded[f"{case}_prediction_masks"]
    logits = torch.from_numpy(recorded[f"{case}_lowres_mask_logits"])
    processor = Sa2VAImageProcessor(vlm_family=family)
    masks = processor.post_process_masks(logits, expected.shape[-2:])
    assert masks.dtype == torch.bool and tuple(masks.shape) == expected.shape
    assert int((masks.numpy() != expected).sum()) == 0
    # one frame at a time (bounded memory) gives the same masks
    assert torch.equal(processor.post_process_masks(logits, expected.shape[-2:], frames_per_chunk=1), masks)


def test_post_process_masks_threshold_and_checks():
    processor = Sa2VAImageProcessor()
    logits = torch.linspace(-4, 4, 16 * 16).reshape(1, 1, 16, 16)
    strict = processor.post_process_masks(logits, (8, 8), threshold=2.0)
    loose = processor.post_process_masks(logits, (8, 8), threshold=-2.0)
    assert strict.sum() < loose.sum() and bool((loose | ~strict).all())
    with pytest.raises(ValueError, match="mask_logits"):
        processor.post_process_masks(logits[0], (8, 8))
    with pytest.raises(TypeError, match="mask_logits"):
        processor.post_process_masks(logits.numpy(), (8, 8))
    with pytest.raises(ValueError, match="original_size"):
        processor.post_process_masks(logits, (8,))


def test_tiling_and_first_resize_rules():
    assert get_internvl_tile_grid(640, 480) == (4, 3)
    assert get_internvl_tile_grid(448, 448) == (1, 1)
    assert get_internvl_tile_grid(4000, 100) == (12, 1)
    assert get_internvl_tile_grid(100, 100, max_tiles=4) == (1, 1)
    # exact tie between 1x1 and 2x2 (both ratio 1): the larger grid only for an image over half its area
    assert get_internvl_tile_grid(1000, 1000, max_tiles=4) == (2, 2)
    assert get_internvl_tile_grid(300, 300, max_tiles=4) == (1, 1)
    assert smart_resize(480, 640) == (476, 644)
    assert smart_resize(240, 320) == (252, 308)
    assert smart_resize(10, 10) == (56, 56)  # grown to at least 4 * 28 * 28 pixels
    assert smart_resize(20000, 10000) == (5068, 2520)  # shrunk to at most 16384 * 28 * 28 pixels
    with pytest.raises(ValueError, match="aspect ratio"):
        smart_resize(10, 3000)


def test_internvl_tiles_layout():
    processor = Sa2VAImageProcessor(tile_size=32, max_tiles=4)
    image = Image.fromarray(np.random.default_rng(0).integers(0, 256, (32, 64, 3), dtype=np.uint8))
    tiles = processor.internvl_tiles(image)
    assert len(tiles) == 3  # 2x1 grid + thumbnail
    assert np.array_equal(np.asarray(tiles[0]), np.asarray(image)[:, :32])
    assert np.array_equal(np.asarray(tiles[1]), np.asarray(image)[:, 32:])
    assert np.array_equal(np.asarray(tiles[2]), np.asarray(image.resize((32, 32), Image.Resampling.BICUBIC)))
    assert Sa2VAImageProcessor(tile_size=32, use_thumbnail=False).preprocess(image)["num_tiles"].tolist() == [2]


@pytest.mark.parametrize("family", ["internvl", "qwen2_5_vl", "qwen3_vl"])
def test_input_types_give_the_same_result(family, tmp_path):
    rng = np.random.default_rng(1)
    array = rng.integers(0, 256, (50, 70, 3), dtype=np.uint8)
    path = tmp_path / "image.png"
    Image.fromarray(array).save(path)
    processor = Sa2VAImageProcessor(vlm_family=family, tile_size=28, sam_image_size=64, min_pixels=56 * 56)
    reference = processor.preprocess(Image.fromarray(array))
    for other in (array, str(path), path, Image.fromarray(array).convert("RGBA")):
        out = processor.preprocess(other)
        assert out.keys() == reference.keys()
        for key in out:
            assert torch.equal(out[key], reference[key]), key
    batch = processor.preprocess([array, array[:40]], return_tensors="np")
    assert isinstance(batch["pixel_values"], np.ndarray)
    assert batch["original_sizes"].tolist() == [[50, 70], [40, 70]]
    assert batch["sam_pixel_values"].shape == (2, 3, 64, 64)


def test_qwen_view_composites_rgba_on_white():
    rgba = np.zeros((56, 56, 4), dtype=np.uint8)  # fully transparent black
    processor = Sa2VAImageProcessor(vlm_family="qwen2_5_vl", min_pixels=56 * 56, max_pixels=56 * 56)
    white = processor.vlm_view(np.full((56, 56, 3), 255, dtype=np.uint8))
    assert torch.equal(processor.vlm_view(rgba)["pixel_values"], white["pixel_values"])
    black = Sa2VAImageProcessor(sam_image_size=32).sam_view(np.zeros((56, 56, 3), dtype=np.uint8))
    assert torch.equal(Sa2VAImageProcessor(sam_image_size=32).sam_view(rgba), black)  # SAM-2 view: alpha dropped


def test_video_key_frames():
    frames = [np.full((24, 32, 3), 40 * i, dtype=np.uint8) for i in range(7)]
    processor = Sa2VAImageProcessor(tile_size=28, sam_image_size=32)
    default = processor.preprocess(frames, is_video=True)
    assert default["num_tiles"].tolist() == [1] * 5
    assert default["sam_pixel_values"].shape == (7, 3, 32, 32)
    assert default["original_sizes"].tolist() == [[24, 32]] * 7
    chosen = processor.preprocess(frames, is_video=True, key_frame_indices=[0, 3, 6])
    assert torch.equal(
        chosen["pixel_values"], processor.vlm_view([frames[i] for i in (0, 3, 6)], is_video=True)["pixel_values"]
    )
    assert torch.equal(chosen["sam_pixel_values"], default["sam_pixel_values"])
    short = processor.preprocess(frames[:2], is_video=True)
    assert short["num_tiles"].tolist() == [1, 1]
    for bad, error in (([7], ValueError), ([], ValueError), ([1, 1], ValueError), (["0"], TypeError), (3, TypeError)):
        with pytest.raises(error, match="key_frame_indices"):
            processor.preprocess(frames, is_video=True, key_frame_indices=bad)
    with pytest.raises(ValueError, match="key_frame_indices"):
        processor.preprocess(frames[0], key_frame_indices=[0])


def test_bad_inputs_name_the_argument(tmp_path):
    processor = Sa2VAImageProcessor()
    image = np.zeros((8, 8, 3), dtype=np.uint8)
    with pytest.raises(TypeError, match=r"`images` must be a PIL.Image.Image.*got int"):
        processor.preprocess(3)
    with pytest.raises(TypeError, match=r"`images\[1\]` must be a PIL.Image.Image.*got dict"):
        processor.preprocess([image, {"image": image}])
    with pytest.raises(TypeError, match=r"`images` is a numpy array of dtype float32"):
        processor.preprocess(image.astype(np.float32))
    with pytest.raises(ValueError, match=r"`images` is a numpy array of shape \(2, 8, 8, 3\)"):
        processor.preprocess(np.zeros((2, 8, 8, 3), dtype=np.uint8))
    with pytest.raises(ValueError, match="`images` is empty"):
        processor.preprocess([])
    with pytest.raises(FileNotFoundError, match="`images`"):
        processor.preprocess(tmp_path / "missing.png")
    with pytest.raises(TypeError, match=r"`frames\[0\]`"):
        processor.sam_view([None])
    with pytest.raises(ValueError, match=r"`images\[2\]` is 9x8 .* frame 0 is 8x8"):
        processor.preprocess([image, image, np.zeros((8, 9, 3), dtype=np.uint8)], is_video=True)
    with pytest.raises(ValueError, match=r"`vlm_family` must be one of internvl, qwen2_5_vl, qwen3_vl; got 'llava'"):
        Sa2VAImageProcessor(vlm_family="llava")
    with pytest.raises(ValueError, match="`max_tiles` must be a positive integer"):
        Sa2VAImageProcessor(max_tiles=0)
    with pytest.raises(ValueError, match="`image_mean` must be three numbers"):
        Sa2VAImageProcessor(image_mean=[0.5, 0.5])
    with pytest.raises(ValueError, match="return_tensors"):
        processor.preprocess(image, return_tensors="tf")


def test_save_and_load_round_trip(tmp_path):
    processor = Sa2VAImageProcessor(vlm_family="qwen3_vl", min_pixels=56 * 56, num_key_frames=3)
    assert processor.patch_size == 16 and processor.image_mean == (0.5, 0.5, 0.5)
    processor.save_pretrained(tmp_path)
    saved = json.loads((tmp_path / "preprocessor_config.json").read_text())
    assert saved["image_processor_type"] == "Sa2VAImageProcessor"
    assert saved["vlm_family"] == "qwen3_vl" and saved["min_pixels"] == 56 * 56
    loaded = Sa2VAImageProcessor.from_pretrained(tmp_path)
    assert loaded.to_dict() == processor.to_dict()
    assert Sa2VAImageProcessor.from_pretrained(tmp_path, max_pixels=112 * 112).max_pixels == 112 * 112
    rebuilt = Sa2VAImageProcessor.from_dict(processor.to_dict())
    assert rebuilt.to_json_string() == processor.to_json_string()
    image = np.random.default_rng(2).integers(0, 256, (30, 40, 3), dtype=np.uint8)
    first, second = processor.preprocess(image), loaded.preprocess(image)
    assert all(torch.equal(first[key], second[key]) for key in first)


def test_per_call_overrides():
    assert list(inspect.signature(Sa2VAImageProcessor.__init__).parameters)[1:-1] == list(SETTINGS)
    processor = Sa2VAImageProcessor(tile_size=32, sam_image_size=32)
    image = np.zeros((32, 96, 3), dtype=np.uint8)
    assert processor.preprocess(image)["num_tiles"].tolist() == [4]  # 3x1 grid + thumbnail
    assert processor.preprocess(image, max_tiles=1)["num_tiles"].tolist() == [1]
    assert processor.max_tiles == 12  # the processor itself is unchanged
    with pytest.raises(TypeError, match=r"unknown keyword argument\(s\) \['max_tile'\]"):
        processor.preprocess(image, max_tile=1)


def test_family_defaults():
    internvl = Sa2VAImageProcessor()
    assert (internvl.tile_size, internvl.max_tiles, internvl.sam_image_size) == (448, 12, 1024)
    assert internvl.image_mean == (0.485, 0.456, 0.406)
    # the official SAM-2 constants: ImageNet mean/std rounded to bfloat16
    imagenet = torch.tensor([[0.485, 0.456, 0.406], [0.229, 0.224, 0.225]], dtype=torch.bfloat16).float().tolist()
    assert [list(internvl.sam_image_mean), list(internvl.sam_image_std)] == imagenet
    qwen = Sa2VAImageProcessor(vlm_family="qwen2_5_vl")
    assert (qwen.patch_size, qwen.min_pixels, qwen.max_pixels) == (14, 512 * 28 * 28, 2048 * 28 * 28)
    assert qwen.image_mean == (0.48145466, 0.4578275, 0.40821073)


@pytest.mark.parametrize(
    ("name", "family"), [(n, f) for n, f, _ in FIXTURE_FAMILIES[1:]], ids=["qwen2_5_vl", "qwen3_vl"]
)
def test_qwen_settings_agree_with_fixture_preprocessor_config(name, family):
    config = json.loads((official_fixture(name) / "preprocessor_config.json").read_text())
    processor = Sa2VAImageProcessor(vlm_family=family)
    assert processor.patch_size == config["patch_size"]
    assert processor.merge_size == config["merge_size"]
    assert processor.temporal_patch_size == config["temporal_patch_size"]
    assert list(processor.image_mean) == config["image_mean"]
    assert list(processor.image_std) == config["image_std"]
