"""The InternLM2 tokenizer conversion (`sa2va_hf.conversion.tokenizer_internlm2`).

The fast tokenizer built from the official tiny InternLM2 fixture gives the official prompt ids of every case and
the official decoded predictions, survives a save / `AutoTokenizer` reload offline, and missing or unsupported
files are refused with the file named.
"""

import json
import os
import struct
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from conftest import official_fixture
from sa2va_hf.conversion.tokenizer_internlm2 import (
    convert_internlm2_tokenizer,
    read_sentencepiece_model,
    save_converted_tokenizer,
)


FIXTURE = "official_tiny_internlm2"
CASES = ("image", "video", "text", "vp")
IMAGE_CONTEXT, IMAGE_CONTEXT_ID, TOKENS_PER_TILE = "<IMG_CONTEXT>", 602, 256


@pytest.fixture(scope="module")
def fixture_dir() -> Path:
    return official_fixture(FIXTURE)


@pytest.fixture(scope="module")
def recorded(fixture_dir: Path) -> tuple[dict, dict[str, np.ndarray]]:
    cases = json.loads((fixture_dir / "cases.json").read_text())["cases"]
    with np.load(fixture_dir / "outputs.npz") as arrays:
        ids = {name: arrays[name] for name in arrays.files if name.endswith(("_prompt_ids", "_generated_ids"))}
    return cases, ids


@pytest.fixture(scope="module")
def tokenizer(fixture_dir: Path):
    return convert_internlm2_tokenizer(fixture_dir)


def official_prompt(name: str, case: dict, prompt_ids: np.ndarray) -> str:
    """The prompt string the official `predict_forward` tokenized (official behaviour doc, §3.4)."""
    if name == "text":
        return case["prompt_text"].removeprefix(" <s>")  # the official decode of the ids: `<s>` is the bos token
    num_context = int((prompt_ids == IMAGE_CONTEXT_ID).sum())
    image = "<img>" + IMAGE_CONTEXT * TOKENS_PER_TILE + "</img>"
    if name == "video":
        images = "\n".join([image] * (num_context // TOKENS_PER_TILE))
    elif name == "vp":
        regions = case["vp_region_tokens"]
        tiles = (num_context - sum(regions)) // TOKENS_PER_TILE
        parts = ", ".join(f"region{i + 1}<vp>{IMAGE_CONTEXT * k}</vp>" for i, k in enumerate(regions))
        images = f"<img>{IMAGE_CONTEXT * TOKENS_PER_TILE * tiles}</img>"
        images += f"\nThere are {len(regions)} part regions in the picture: {parts}.\n"
    else:
        images = "<img>" + IMAGE_CONTEXT * num_context + "</img>"
    text = case["input_text"].replace("<image>", images)
    return f"<|im_start|>user\n{text}<|im_end|>\n<|im_start|>assistant\n"


@pytest.mark.parametrize("name", CASES)
def test_prompt_ids_match_official(tokenizer, recorded, name: str) -> None:
    cases, ids = recorded
    prompt_ids = ids[f"{name}_prompt_ids"]
    encoded = tokenizer(official_prompt(name, cases[name], prompt_ids)).input_ids
    assert encoded == prompt_ids.tolist()


@pytest.mark.parametrize("name", CASES)
def test_predictions_decode_like_official(tokenizer, recorded, name: str) -> None:
    cases, ids = recorded
    generated = ids[f"{name}_generated_ids"].tolist()
    assert tokenizer.convert_ids_to_tokens(generated) == cases[name]["generated_tokens"]
    assert tokenizer.decode(generated, skip_special_tokens=False).strip() == cases[name]["prediction"]


def test_prompt_decodes_like_official(tokenizer, recorded) -> None:
    # `prompt_text` is the official decode: a space before `<s>`, no space after it (special tokens within the text)
    cases, ids = recorded
    assert tokenizer.decode(ids["text_prompt_ids"]) == cases["text"]["prompt_text"]


def test_special_and_added_tokens(tokenizer, fixture_dir: Path) -> None:
    added = json.loads((fixture_dir / "added_tokens.json").read_text())
    assert len(tokenizer) == 600 + len(added)
    assert tokenizer.convert_tokens_to_ids(list(added)) == list(added.values())
    assert (tokenizer.bos_token, tokenizer.eos_token, tokenizer.pad_token, tokenizer.unk_token) == (
        "<s>",
        "</s>",
        "</s>",
        "<unk>",
    )
    assert (tokenizer.bos_token_id, tokenizer.eos_token_id, tokenizer.unk_token_id) == (1, 2, 0)
    assert tokenizer.add_bos_token and not tokenizer.add_eos_token and not tokenizer.clean_up_tokenization_spaces
    # added tokens stay whole and the text after them gets its own dummy prefix; `<|im_end|>` is a piece
    assert tokenizer.tokenize("Sure,[SEG]<|im_end|>") == ["▁Sure", ",", "[SEG]", "▁", "<|im_end|>"]
    assert tokenizer("[SEG]", "<p>").input_ids == [1, 609, 610]  # the official pair: no second `<s>`


RELOAD_SCRIPT = """
import json, sys
from transformers import AutoTokenizer
tokenizer = AutoTokenizer.from_pretrained(sys.argv[1])
request = json.loads(sys.stdin.read())
print(json.dumps({
    "class": type(tokenizer).__name__,
    "sentencepiece_imported": "sentencepiece" in sys.modules,
    "ids": [tokenizer(prompt).input_ids for prompt in request["prompts"]],
    "texts": [tokenizer.decode(ids) for ids in request["generated"]],
}))
"""


def test_save_and_reload_offline(tokenizer, recorded, fixture_dir: Path, tmp_path: Path) -> None:
    cases, ids = recorded
    save_converted_tokenizer(fixture_dir, tmp_path)
    config = json.loads((tmp_path / "tokenizer_config.json").read_text())
    assert "auto_map" not in config and config["tokenizer_class"] == "TokenizersBackend"
    assert (tmp_path / "tokenizer.json").is_file()

    prompts = [official_prompt(name, cases[name], ids[f"{name}_prompt_ids"]) for name in CASES]
    generated = [ids[f"{name}_generated_ids"].tolist() for name in CASES]
    result = subprocess.run(
        [sys.executable, "-c", RELOAD_SCRIPT, str(tmp_path)],
        input=json.dumps({"prompts": prompts, "generated": generated}),
        env=os.environ | {"HF_HUB_OFFLINE": "1"},
        capture_output=True,
        text=True,
        check=True,
    )
    reloaded = json.loads(result.stdout)
    assert reloaded["class"] == "TokenizersBackend" and not reloaded["sentencepiece_imported"]
    assert reloaded["ids"] == [ids[f"{name}_prompt_ids"].tolist() for name in CASES]
    assert reloaded["texts"] == [tokenizer.decode(g) for g in generated]
    assert [text.strip() for text in reloaded["texts"]] == [cases[name]["prediction"] for name in CASES]


def test_reads_sentencepiece_model(fixture_dir: Path) -> None:
    model = read_sentencepiece_model(fixture_dir / "tokenizer.model")
    assert len(model.pieces) == 600 and model.pieces[:5] == [
        ("<unk>", 0.0, 2),
        ("<s>", 0.0, 3),
        ("</s>", 0.0, 3),
        ("<|im_start|>", 0.0, 4),
        ("<|im_end|>", 0.0, 4),
    ]
    assert (model.model_type, model.byte_fallback, model.normalizer_name) == (2, True, "identity")
    assert model.add_dummy_prefix and not model.remove_extra_whitespaces


def test_missing_tokenizer_model(tmp_path: Path) -> None:
    (tmp_path / "tokenizer_config.json").write_text("{}")
    with pytest.raises(FileNotFoundError, match=r"tokenizer\.model is missing.*Copy it from the official"):
        convert_internlm2_tokenizer(tmp_path)


def _varint(value: int) -> bytes:
    encoded = bytearray()
    while value >= 0x80:
        encoded.append(value & 0x7F | 0x80)
        value >>= 7
    return bytes(encoded + bytes([value]))


def _protobuf_field(number: int, value: bytes | int) -> bytes:
    """One protobuf field: a varint for an `int`, length-delimited for `bytes`."""
    if isinstance(value, int):
        return _varint(number << 3) + _varint(value)
    return _varint(number << 3 | 2) + _varint(len(value)) + value


def test_unsupported_sentencepiece_model(tmp_path: Path) -> None:
    piece = _protobuf_field(1, b"a") + _varint(2 << 3 | 5) + struct.pack("<f", -1.0)
    unigram = _protobuf_field(1, piece) + _protobuf_field(2, _protobuf_field(3, 1))  # trainer_spec.model_type
    (tmp_path / "tokenizer.model").write_bytes(unigram)
    (tmp_path / "tokenizer_config.json").write_text("{}")
    with pytest.raises(ValueError, match=r"tokenizer\.model: sentencepiece setting model_type=1 is not supported"):
        convert_internlm2_tokenizer(tmp_path)
    (tmp_path / "tokenizer.model").write_bytes(b"\x0a\xff")
    with pytest.raises(ValueError, match=r"tokenizer\.model is not a readable sentencepiece model"):
        convert_internlm2_tokenizer(tmp_path)
