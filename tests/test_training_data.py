"""Training data: mask encodings, the JSON-lines format, the official fine-tuning and LLaVA readers, the mixture,
and the errors that name the sample and the field."""

import json
from collections import Counter

import numpy as np
import pytest
from PIL import Image

from sa2va_hf.evaluation.gcg import parse_answer
from sa2va_hf.training import (
    JsonlDataset,
    LlavaDataset,
    MixedDataset,
    ReferringSegmentationDataset,
    check_dataset,
    decode_mask,
    gcg_conversation,
    grounded_caption,
    rle_encode,
    sample_frame_indices,
    validate_sample,
)
from sa2va_hf.training.templates import SEGMENTATION_ANSWERS


HEIGHT, WIDTH = 48, 64
SQUARE = [[10, 10, 30, 10, 30, 30, 10, 30]]  # pixels 10..29 in x and y


def square_mask(height: int = HEIGHT, width: int = WIDTH) -> np.ndarray:
    mask = np.zeros((height, width), dtype=bool)
    mask[10:30, 10:30] = True
    return mask


def random_mask(seed: int, height: int = HEIGHT, width: int = WIDTH) -> np.ndarray:
    return np.random.default_rng(seed).random((height, width)) > 0.6


def save_image(path, seed: int, size: tuple[int, int] = (WIDTH, HEIGHT)) -> np.ndarray:
    """Write a random RGB PNG (lossless) and return its pixels."""
    pixels = np.random.default_rng(seed).integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)
    Image.fromarray(pixels).save(path)
    return pixels


def write_jsonl(path, records: list[dict]):
    path.write_text("\n".join(json.dumps(record) for record in records) + "\n")
    return path


def image_record(**overrides) -> dict:
    record = {
        "image": "img.png",
        "conversations": [
            {"from": "human", "value": "<image>\nPlease segment the square."},
            {"from": "gpt", "value": "Sure, [SEG]."},
        ],
        "masks": [[SQUARE]],
    }
    record.update(overrides)
    return record


@pytest.fixture
def image_dir(tmp_path):
    save_image(tmp_path / "img.png", seed=0)
    return tmp_path


# ---------------------------------------------------------------------------------------------------------- masks


def test_rle_from_pycocotools_decodes_back_equal():
    mask = random_mask(1)
    rle = rle_encode(mask)
    assert rle["size"] == [HEIGHT, WIDTH] and isinstance(rle["counts"], str)
    np.testing.assert_array_equal(decode_mask(json.loads(json.dumps(rle)), HEIGHT, WIDTH), mask)


def test_uncompressed_rle_decodes_column_major_runs():
    mask = random_mask(2)
    flat = mask.flatten(order="F").astype(np.int8)
    change = np.flatnonzero(np.diff(flat)) + 1
    bounds = np.concatenate([[0], change, [flat.size]])
    counts = np.diff(bounds).tolist()
    if flat[0]:  # COCO runs start with zeros
        counts = [0, *counts]
    np.testing.assert_array_equal(decode_mask({"size": [HEIGHT, WIDTH], "counts": counts}, HEIGHT, WIDTH), mask)


def test_polygons_rasterise_to_the_expected_pixels():
    mask = decode_mask(SQUARE, HEIGHT, WIDTH)
    assert mask.sum() == 400
    np.testing.assert_array_equal(mask, square_mask())
    two_rings = decode_mask([*SQUARE, [40, 0, 50, 0, 50, 10, 40, 10]], HEIGHT, WIDTH)
    assert two_rings.sum() == 500 and two_rings[:10, 40:50].all()
    assert not decode_mask(None, HEIGHT, WIDTH).any()


@pytest.mark.parametrize(
    "encoded, match",
    [
        (7, "unknown mask encoding int"),
        ("abc", "unknown mask encoding str"),
        ({"counts": "abc"}, "unknown mask encoding: a dict with keys \\['counts'\\]"),
        ([1, 2, 3, 4, 5, 6], "polygon 0 is not a flat list"),
        ([[1, 2, 3, 4]], "polygon 0 has 4 coordinates"),
        ([], "empty polygon list"),
        ({"size": [HEIGHT, WIDTH + 1], "counts": "abc"}, "mask size \\[48, 65\\] .* differs from .* \\[48, 64\\]"),
        ({"size": [HEIGHT, WIDTH], "counts": [5, 5]}, "counts sum to 10"),
        ({"size": [HEIGHT, WIDTH], "counts": "abc"}, "Invalid RLE"),
    ],
)
def test_bad_mask_encodings_raise(encoded, match):
    with pytest.raises(ValueError, match=match):
        decode_mask(encoded, HEIGHT, WIDTH)


# ------------------------------------------------------------------------------------------------- frame sampling


def test_frame_sampling_follows_the_official_rule_and_is_deterministic():
    long = sample_frame_indices(20, 5, seed=0, index=3)
    assert long == sorted(long) and len(set(long)) == 5 and max(long) < 20
    assert long == sample_frame_indices(20, 5, seed=0, index=3)
    draws = {tuple(sample_frame_indices(20, 5, seed=0, index=i)) for i in range(20)}
    assert len(draws) > 15  # the index changes the draw
    assert sample_frame_indices(20, 5, seed=1, index=3) != long or sample_frame_indices(20, 5, 2, 3) != long
    # 6 frames or fewer for 5 kept: draws with replacement, so frames repeat
    short = [sample_frame_indices(4, 5, seed=0, index=i) for i in range(10)]
    assert all(len(s) == 5 and s == sorted(s) and max(s) < 4 for s in short)
    assert sample_frame_indices(7, None, seed=0, index=0) == list(range(7))


# ---------------------------------------------------------------------------------------------- JSON-lines format


def test_jsonl_image_sample_round_trip(tmp_path):
    pixels = save_image(tmp_path / "img.png", seed=0)
    other = random_mask(3)
    record = image_record(
        conversations=[
            {"role": "user", "content": "<image>Please segment the square."},
            {"role": "assistant", "content": "Sure, [SEG]."},
            {"from": "human", "value": "And the noise?"},
            {"from": "gpt", "value": "It is [SEG]."},
        ],
        masks=[[SQUARE], [rle_encode(other)]],
    )
    sample = JsonlDataset(write_jsonl(tmp_path / "train.jsonl", [record]))[0]
    np.testing.assert_array_equal(np.asarray(sample["image"]), pixels)
    assert [turn["role"] for turn in sample["conversation"]] == ["user", "assistant"] * 2
    assert sample["conversation"][2]["content"] == "And the noise?"
    assert sample["masks"].shape == (2, 1, HEIGHT, WIDTH) and sample["masks"].dtype == bool
    np.testing.assert_array_equal(sample["masks"][0, 0], square_mask())
    np.testing.assert_array_equal(sample["masks"][1, 0], other)
    assert sample["mask_prompts"] is None


def test_jsonl_text_only_and_no_seg_samples(image_dir):
    records = [
        {"conversations": [{"from": "human", "value": "Hi?"}, {"from": "gpt", "value": "Hello."}]},
        image_record(
            conversations=[{"from": "human", "value": "<image>\nDescribe it."}, {"from": "gpt", "value": "Noise."}],
            masks=[],
        ),
    ]
    dataset = JsonlDataset(write_jsonl(image_dir / "train.jsonl", records))
    assert "image" not in dataset[0] and dataset[0]["masks"].shape == (0, 1, 1, 1)
    assert dataset[1]["masks"].shape == (0, 1, HEIGHT, WIDTH)


def write_frames(folder, count: int) -> list[str]:
    """Frames whose pixels all equal their index, so a kept frame tells which one it is."""
    folder.mkdir()
    names = []
    for index in range(count):
        Image.fromarray(np.full((HEIGHT, WIDTH, 3), index * 10, dtype=np.uint8)).save(folder / f"{index:02d}.png")
        names.append(f"{folder.name}/{index:02d}.png")
    return names


def frame_masks(count: int) -> list[dict]:
    """Per-frame masks whose first `index + 1` rows are set, so a kept mask tells which frame it belongs to."""
    masks = []
    for index in range(count):
        mask = np.zeros((HEIGHT, WIDTH), dtype=bool)
        mask[: index + 1] = True
        masks.append(rle_encode(mask))
    return masks


@pytest.mark.parametrize("media", ["frames", "video"])
def test_jsonl_video_keeps_sampled_frames_with_their_masks(tmp_path, media):
    names = write_frames(tmp_path / "clip", 10)
    conversations = [
        {"from": "human", "value": "<image>\nSegment the band."},
        {"from": "gpt", "value": "[SEG]."},
    ]
    record = {
        media: names if media == "frames" else "clip",
        "conversations": conversations,
        "masks": [frame_masks(10)],
    }
    record["masks"][0][4] = None  # absent from frame 4
    path = write_jsonl(tmp_path / "train.jsonl", [record] * 3)
    dataset = JsonlDataset(path, num_frames=4, seed=7)
    sample = dataset[0]
    kept = [int(np.asarray(frame)[0, 0, 0]) // 10 for frame in sample["frames"]]
    assert kept == sample_frame_indices(10, 4, seed=7, index=0) and len(set(kept)) == 4
    assert sample["masks"].shape == (1, 4, HEIGHT, WIDTH)
    for frame_id, mask in zip(kept, sample["masks"][0]):
        assert mask.sum() == (0 if frame_id == 4 else (frame_id + 1) * WIDTH)
    again = [int(np.asarray(frame)[0, 0, 0]) // 10 for frame in JsonlDataset(path, num_frames=4, seed=7)[0]["frames"]]
    assert again == kept
    assert len(JsonlDataset(path, num_frames=None)[2]["frames"]) == 10


def test_jsonl_video_file_is_decoded_and_sampled(tmp_path):
    av = pytest.importorskip("av", reason="PyAV is the optional video decoder (`pip install av`)")
    with av.open(str(tmp_path / "clip.mp4"), "w") as container:
        stream = container.add_stream("mpeg4", rate=4)
        stream.width, stream.height, stream.pix_fmt = WIDTH, HEIGHT, "yuv420p"
        for index in range(8):
            frame = Image.fromarray(np.full((HEIGHT, WIDTH, 3), index * 30, dtype=np.uint8))
            container.mux(stream.encode(av.VideoFrame.from_image(frame)))
        container.mux(stream.encode())
    conversations = [{"from": "human", "value": "<image>\nSegment the band."}, {"from": "gpt", "value": "[SEG]."}]
    record = {"video": "clip.mp4", "conversations": conversations, "masks": [frame_masks(8)]}
    sample = JsonlDataset(write_jsonl(tmp_path / "train.jsonl", [record]), num_frames=3)[0]
    kept = [round(np.asarray(frame, float).mean() / 30) for frame in sample["frames"]]  # lossy codec: nearest level
    assert kept == sample_frame_indices(8, 3, seed=0, index=0)
    assert [int(mask.sum()) // WIDTH - 1 for mask in sample["masks"][0]] == kept


def test_jsonl_mask_prompts_are_decoded_on_the_image(image_dir):
    record = image_record(
        conversations=[
            {"from": "human", "value": "<image>\nWhat is in region1 and region2?"},
            {"from": "gpt", "value": "Noise in both."},
        ],
        masks=[],
        mask_prompts=[SQUARE, rle_encode(random_mask(4))],
    )
    sample = JsonlDataset(write_jsonl(image_dir / "train.jsonl", [record]))[0]
    assert sample["mask_prompts"].shape == (2, HEIGHT, WIDTH) and sample["mask_prompts"].dtype == bool
    np.testing.assert_array_equal(sample["mask_prompts"][0], square_mask())
    np.testing.assert_array_equal(sample["mask_prompts"][1], random_mask(4))


# ---------------------------------------------------------------------------------------------- other readers


def test_official_finetune_records_become_multi_turn_referring_conversations(tmp_path):
    (tmp_path / "images").mkdir()
    save_image(tmp_path / "images" / "a.png", seed=0)
    records = [
        {"image": "a.png", "mask": [SQUARE, [[40, 0, 50, 0, 50, 10, 40, 10]]], "text": ["the square.", "a corner box"]}
    ]
    (tmp_path / "annotations.json").write_text(json.dumps(records * 30))
    dataset = ReferringSegmentationDataset(tmp_path / "annotations.json", tmp_path / "images", seed=0)
    sample = dataset[0]
    turns = sample["conversation"]
    assert [turn["role"] for turn in turns] == ["user", "assistant"] * 2
    assert turns[0]["content"].startswith("<image>\n") and "the square" in turns[0]["content"]
    assert "the square." not in turns[0]["content"]  # the description's full stop is dropped
    assert "a corner box" in turns[2]["content"] and "<image>" not in turns[2]["content"]
    assert all(turn["content"] in SEGMENTATION_ANSWERS for turn in turns[1::2])
    np.testing.assert_array_equal(sample["masks"][0, 0], square_mask())
    assert sample["masks"][1, 0].sum() == 100 and sample["masks"].shape == (2, 1, HEIGHT, WIDTH)
    # the wording depends on (seed, index) only, and varies across samples
    assert ReferringSegmentationDataset(tmp_path / "annotations.json", tmp_path / "images")[0]["conversation"] == turns
    assert len({dataset[i]["conversation"][0]["content"] for i in range(30)}) > 2


def test_llava_records_move_the_image_placeholder_to_the_start(tmp_path):
    save_image(tmp_path / "img.png", seed=0)
    records = [
        {
            "id": "x",
            "image": "img.png",
            "conversations": [
                {"from": "human", "value": "What colour dominates?\n<image>"},
                {"from": "gpt", "value": "None."},
            ],
        },
        {"conversations": [{"from": "human", "value": "2 + 2?"}, {"from": "gpt", "value": "4."}]},
    ]
    (tmp_path / "llava.json").write_text(json.dumps(records))
    dataset = LlavaDataset(tmp_path / "llava.json")
    assert dataset[0]["conversation"][0]["content"] == "<image>\nWhat colour dominates?"
    assert dataset[0]["masks"].shape == (0, 1, HEIGHT, WIDTH)
    assert "image" not in dataset[1] and dataset[1]["masks"].shape == (0, 1, 1, 1)


def test_grounded_captions_tag_each_span_and_parse_back():
    caption = "A man rides a horse near the sea."
    spans = [(0, 5), (12, 19), (25, 32)]
    answer = grounded_caption(caption, spans)
    assert answer == "<p> A man </p> [SEG] rides <p> a horse </p> [SEG] near <p> the sea </p> [SEG]."
    parsed_caption, phrases = parse_answer(answer)  # the evaluation's reader of GCG answers
    assert phrases == ["A man", "a horse", "the sea"] and parsed_caption.split() == caption.replace(".", " .").split()
    conversation = gcg_conversation(caption, spans, np.random.default_rng(0))
    image = Image.new("RGB", (WIDTH, HEIGHT))
    validate_sample({"image": image, "conversation": conversation, "masks": np.zeros((3, 1, HEIGHT, WIDTH), bool)}, 0)
    with pytest.raises(ValueError, match=r"`spans`\[1\] = \(3, 8\) must be non-empty, .* after the previous span"):
        grounded_caption(caption, [(0, 5), (3, 8)])


# ------------------------------------------------------------------------------------------------------ mixture


def test_mixture_follows_the_weights_and_is_deterministic():
    sources = [list(range(10)), list(range(100, 150)), list(range(1000, 1003))]
    mixture = MixedDataset(sources, weights=[1, 2, 5], num_samples=4000, seed=3)
    counts = Counter(mixture.source(i)[0] for i in range(len(mixture)))
    for position, expected in enumerate([1 / 8, 2 / 8, 5 / 8]):
        assert abs(counts[position] / 4000 - expected) < 0.03
    first = [mixture.source(i) for i in range(4000)]
    same, other = MixedDataset(sources, [1, 2, 5], 4000, seed=3), MixedDataset(sources, [1, 2, 5], 4000, seed=4)
    assert first == [same.source(i) for i in range(4000)]
    assert first != [other.source(i) for i in range(4000)]
    # within a source every sample comes once before any comes twice
    from_first = [index for position, index in first if position == 0]
    assert sorted(from_first[:10]) == list(range(10))
    assert mixture[0] == sources[first[0][0]][first[0][1]]
    assert len(MixedDataset(sources, [1, 1, 1])) == 63


def test_mixture_rejects_bad_arguments():
    with pytest.raises(ValueError, match="`weights` has 1 entries for 2 datasets"):
        MixedDataset([[1], [2]], [1])
    with pytest.raises(ValueError, match="non-negative with a positive sum"):
        MixedDataset([[1], [2]], [0, 0])
    with pytest.raises(ValueError, match="positions \\[1\\] are empty"):
        MixedDataset([[1], []], [1, 1])
    with pytest.raises(IndexError, match="out of range"):
        MixedDataset([[1]], [1])[1]


# ---------------------------------------------------------------------------------------------------- errors


def turns(*contents: str) -> list[dict]:
    return [{"from": "human" if i % 2 == 0 else "gpt", "value": text} for i, text in enumerate(contents)]


@pytest.mark.parametrize(
    "record, error, match",
    [
        (
            image_record(image="missing.png"),
            FileNotFoundError,
            r"sample 1: field 'image': .*missing\.png' does not exist",
        ),
        (
            image_record(masks=[[{"size": [HEIGHT + 1, WIDTH], "counts": "abc"}]]),
            ValueError,
            r"sample 1: field 'masks'\[0\]\[0\]: mask size \[49, 64\]",
        ),
        (
            image_record(conversations=turns("<image>\nBoth?", "[SEG] and [SEG].")),
            ValueError,
            r"sample 1: field 'masks': 1 masks but the assistant turns hold 2 \[SEG\]",
        ),
        (
            image_record(masks=[[SQUARE], [SQUARE]]),
            ValueError,
            r"sample 1: field 'masks': 2 masks but the assistant turns hold 1 \[SEG\]",
        ),
        (image_record(conversations=[]), ValueError, r"sample 1: field 'conversation': empty"),
        (
            image_record(conversations=turns("<image>\nHi", "Hi", "What?")),
            ValueError,
            r"sample 1: field 'conversation': ends with a user turn",
        ),
        (
            image_record(conversations=[{"from": "gpt", "value": "<image>x"}, {"from": "human", "value": "y"}]),
            ValueError,
            r"sample 1: field 'conversation'\[0\]: role 'assistant' where 'user' was expected",
        ),
        (
            image_record(conversations=turns("Segment it.", "[SEG].")),
            ValueError,
            r"sample 1: field 'conversation'\[0\]: <image> is missing",
        ),
        (
            image_record(conversations=turns("<image>\nSegment it.", "[SEG].", "<image>\nAgain?", "No.")),
            ValueError,
            r"sample 1: field 'conversation': <image> appears 2 times",
        ),
        (
            image_record(conversations=turns("Segment <image> it.", "[SEG].")),
            ValueError,
            r"sample 1: field 'conversation'\[0\]: <image> must open the first user turn",
        ),
        (image_record(masks=[[7]]), ValueError, r"sample 1: field 'masks'\[0\]\[0\]: unknown mask encoding int"),
        (
            image_record(masks=[[SQUARE, SQUARE]]),
            ValueError,
            r"sample 1: field 'masks'\[0\]: expected a list of 1 mask\(s\), one per frame \(an image has 1\), got 2",
        ),
        (
            image_record(conversations=turns("<image>\nWhat is [SEG]?", "[SEG].")),
            ValueError,
            r"sample 1: field 'conversation'\[0\]: \[SEG\] may appear in assistant turns only",
        ),
        (
            image_record(conversations=turns("<image>\nHi", "")),
            ValueError,
            r"sample 1: field 'conversation'\[1\]: the assistant turn has no text",
        ),
        (
            image_record(conversations=[{"from": "system", "value": "x"}]),
            ValueError,
            r"sample 1: field 'conversations'\[0\]: unknown speaker 'system'",
        ),
        (
            image_record(mask_prompts=[SQUARE], conversations=turns("<image>\nWhat is region2?", "[SEG].")),
            ValueError,
            r"sample 1: field 'conversation': names region2 but 'mask_prompts' holds 1 regions",
        ),
        (
            image_record(mask_prompts=[[[7]]]),
            ValueError,
            r"sample 1: field 'mask_prompts'\[0\]: polygon 0 has 1 coordinates",
        ),
        (
            {"conversations": turns("<image>\nHi", "Hello.")},
            ValueError,
            r"sample 1: field 'conversation'\[0\]: <image> in a sample without an image",
        ),
        (
            {"conversations": turns("Hi", "Hello."), "masks": [[SQUARE]]},
            ValueError,
            r"sample 1: field 'masks': given for a sample without an image",
        ),
    ],
)
def test_jsonl_errors_name_the_sample_and_the_field(image_dir, record, error, match):
    dataset = JsonlDataset(write_jsonl(image_dir / "train.jsonl", [image_record(), record]))
    dataset[0]  # the good sample still loads
    with pytest.raises(error, match=match):
        dataset[1]


def test_check_dataset_lists_every_broken_sample(image_dir):
    records = [image_record(), image_record(image="gone.png"), image_record(), image_record(masks=[])]
    errors = check_dataset(JsonlDataset(write_jsonl(image_dir / "train.jsonl", records)), progress=False)
    assert len(errors) == 2
    assert errors[0].startswith("sample 1: field 'image'") and "gone.png" in errors[0]
    assert errors[1].startswith("sample 3: field 'masks': 0 masks")


def test_jsonl_file_level_errors_name_the_sample(image_dir):
    with pytest.raises(ValueError, match=r"sample 1: unknown fields \['mask'\]"):
        JsonlDataset(write_jsonl(image_dir / "a.jsonl", [image_record(), {"image": "img.png", "mask": []}]))
    with pytest.raises(ValueError, match=r"sample 0: field 'frames': give one of"):
        JsonlDataset(write_jsonl(image_dir / "b.jsonl", [image_record(frames=["img.png"])]))
    (image_dir / "c.jsonl").write_text('{"image": "img.png"}\n{oops\n')
    with pytest.raises(ValueError, match="line 2: not valid JSON"):
        JsonlDataset(image_dir / "c.jsonl")
    with pytest.raises(FileNotFoundError, match="does not exist"):
        JsonlDataset(image_dir / "none.jsonl")


def test_validate_sample_checks_arrays_built_by_any_reader():
    image = Image.new("RGB", (WIDTH, HEIGHT))
    conversation = [{"role": "user", "content": "<image>Segment."}, {"role": "assistant", "content": "[SEG]."}]
    good = {"image": image, "conversation": conversation, "masks": np.zeros((1, 1, HEIGHT, WIDTH), bool)}
    assert validate_sample(good, 5) is good
    with pytest.raises(ValueError, match=r"sample 5: field 'masks': masks of size \(48, 32\)"):
        validate_sample({**good, "masks": np.zeros((1, 1, HEIGHT, 32), bool)}, 5)
    with pytest.raises(TypeError, match=r"sample 5: field 'masks': expected a bool np.ndarray"):
        validate_sample({**good, "masks": np.zeros((1, 1, HEIGHT, WIDTH), np.uint8)}, 5)
    with pytest.raises(ValueError, match=r"sample 5: field 'image': expected mode RGB"):
        validate_sample({**good, "image": image.convert("L")}, 5)
    frames = {"frames": [image, Image.new("RGB", (WIDTH, 20))], "conversation": conversation}
    with pytest.raises(ValueError, match=r"sample 5: field 'frames'\[1\]: size \(64, 20\) differs"):
        validate_sample({**frames, "masks": np.zeros((1, 2, HEIGHT, WIDTH), bool)}, 5)
    with pytest.raises(ValueError, match=r"sample 5: field 'masks': 1 frames per mask, but the sample has 2"):
        validate_sample({**frames, "frames": [image, image], "masks": np.zeros((1, 1, HEIGHT, WIDTH), bool)}, 5)
    with pytest.raises(ValueError, match=r"sample 5: field 'mask_prompts': visual prompts need an 'image'"):
        one_frame = {**frames, "frames": [image], "masks": np.zeros((1, 1, HEIGHT, WIDTH), bool)}
        validate_sample({**one_frame, "mask_prompts": np.ones((1, HEIGHT, WIDTH), bool)}, 5)
    with pytest.raises(ValueError, match=r"sample 5: field 'conversation': holds '<vp>'"):
        validate_sample({**good, "conversation": [conversation[0], {"role": "assistant", "content": "<vp>[SEG]"}]}, 5)
