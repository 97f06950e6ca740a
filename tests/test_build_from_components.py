"""Assembly of a fresh Sa2VA from a transformers VLM and SAM-2 weights (`sa2va_hf.conversion.build_from_components`).

Tiny parts are made here: InternVL, Qwen2.5-VL and Qwen3-VL folders with a tokenizer that lacks the Sa2VA tokens, and
one SAM-2 saved both as a transformers folder and as Meta's original `.pt` (written by running the key mapping
backwards). The built folder must load back, hold every source tensor unchanged (apart from the new embedding rows),
and segment.
"""

import json
import logging
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from safetensors.torch import load_file, save_file
from transformers import (
    AutoConfig,
    AutoModel,
    AutoModelForImageTextToText,
    AutoProcessor,
    Sam2Config,
    Sam2Model,
    Sam2VideoConfig,
    Sam2VideoModel,
)

from sa2va_hf import Sa2VAForConditionalGeneration, Sa2VAProcessor
from sa2va_hf.conversion.build_from_components import build_from_components, load_sam2, main
from sa2va_hf.conversion.key_mapping import convert_keys, plan_tensor_groups
from sa2va_hf.models.sa2va.chat_templates_sa2va import get_chat_template
from sa2va_hf.models.sa2va.processing_sa2va import SA2VA_SPECIAL_TOKENS
from sa2va_hf.tiny import QWEN_VL_CHAT_TEMPLATE, TINY_SAM2_CONFIG, build_tiny_tokenizer, tiny_vlm_config
from test_conversion import SAM2_PREFIX, official_sam2_shapes


TEXT = "<image>Please segment the red circle."
INTERNVL_OWN_TEMPLATE = "{% for message in messages %}<|im_start|>{{ message['role'] }}{% endfor %}"
SAM2_1_ORIGINAL_KEYS = {"obj_ptr_tpos_proj.weight", "obj_ptr_tpos_proj.bias", "no_obj_embed_spatial"}


def red_circle(width: int = 96, height: int = 72) -> Image.Image:
    y, x = np.mgrid[:height, :width]
    pixels = np.full((height, width, 3), 40, dtype=np.uint8)
    pixels[(x - 50) ** 2 + (y - 30) ** 2 < 15**2] = (220, 30, 30)
    return Image.fromarray(pixels)


def write_vlm(folder: Path, family: str, tie_word_embeddings: bool) -> dict[str, torch.Tensor]:
    """A transformers VLM folder (weights, config, tokenizer, chat template); returns its state dict."""
    tokenizer = build_tiny_tokenizer(family, sa2va_tokens=False)
    token_ids = {token: tokenizer.convert_tokens_to_ids(token) for token in tokenizer.get_added_vocab()}
    values = tiny_vlm_config(family, len(tokenizer), token_ids)
    values["tie_word_embeddings"] = values["text_config"]["tie_word_embeddings"] = tie_word_embeddings
    torch.manual_seed(1)
    vlm = AutoModelForImageTextToText.from_config(AutoConfig.for_model(**values))
    vlm.save_pretrained(folder)
    tokenizer.chat_template = INTERNVL_OWN_TEMPLATE if family == "internvl" else QWEN_VL_CHAT_TEMPLATE
    tokenizer.save_pretrained(folder)
    return {key: tensor.clone() for key, tensor in vlm.state_dict().items()}


def original_sam2_state_dict(sam2: Sam2VideoModel) -> dict[str, torch.Tensor]:
    """`sam2`'s weights under Meta's facebookresearch names, by running the SAM-2 key mapping backwards."""
    config_2_0 = Sam2VideoConfig(**TINY_SAM2_CONFIG)  # the key writer knows SAM 2.0; 2.1 adds two modules
    keys = [key.removeprefix(SAM2_PREFIX) for key in official_sam2_shapes(config_2_0)]
    if sam2.config.enable_temporal_pos_encoding_for_object_pointers:
        keys += sorted(SAM2_1_ORIGINAL_KEYS)
    converted = sam2.state_dict()
    original, filled = {}, set()
    for group in plan_tensor_groups(convert_keys([SAM2_PREFIX + key for key in keys], "internvl")):
        targets = [converted[target.removeprefix("sam2.")] for target in group.targets]
        filled.update(target.removeprefix("sam2.") for target in group.targets)
        parts = targets[0].split(1) if len(group.sources) > 1 else targets[:1]  # the four stacked point embeddings
        for source, tensor in zip(group.sources, parts):
            original[source.removeprefix(SAM2_PREFIX)] = tensor.clone()
    assert filled == set(converted), "the inverted mapping must cover every SAM-2 tensor"
    return original


def tiny_sam2(sam2_1: bool = False) -> Sam2VideoModel:
    """A seeded tiny SAM 2.0 (or 2.1) whose every tensor is random."""
    flags = {"enable_temporal_pos_encoding_for_object_pointers": sam2_1, "enable_occlusion_spatial_embedding": sam2_1}
    torch.manual_seed(2)
    sam2 = Sam2VideoModel(Sam2VideoConfig(**(TINY_SAM2_CONFIG | flags))).eval()
    for name, parameter in sam2.named_parameters():  # zeros and ones at init would hide swapped tensors
        if name.endswith(
            ("scale", "positional_encoding", "no_memory_embedding", "occlusion_spatial_embedding_parameter")
        ):
            parameter.data.normal_()
    # one random matrix serves the prompt encoder and the image-wide encoding, as in every real SAM-2
    sam2.shared_image_embedding.positional_embedding.copy_(sam2.prompt_encoder.shared_embedding.positional_embedding)
    return sam2


@pytest.fixture(scope="module")
def parts(tmp_path_factory):
    """The source components, written once: VLM folders, SAM-2 as a transformers folder and as an original .pt."""
    root = tmp_path_factory.mktemp("parts")
    sources = {"vlm": {}, "vlm_dir": {}}
    for family, tied in (("internvl", True), ("qwen2_5_vl", False), ("qwen3_vl", False)):
        sources["vlm_dir"][family] = root / family
        sources["vlm"][family] = write_vlm(root / family, family, tie_word_embeddings=tied)
    sam2 = tiny_sam2()
    sam2.save_pretrained(root / "sam2_hf")
    torch.save({"model": original_sam2_state_dict(sam2)}, root / "sam2_original.pt")
    sources |= {"sam2": sam2.state_dict(), "sam2_hf": root / "sam2_hf", "sam2_pt": root / "sam2_original.pt"}
    return sources


# family, SAM-2 source, built through the command line
BUILD_CASES = [("internvl", "sam2_pt", False), ("qwen2_5_vl", "sam2_hf", True), ("qwen3_vl", "sam2_pt", False)]


@pytest.fixture(scope="module")
def built(parts, tmp_path_factory):
    folders = {}

    def get(family: str, sam2_source: str, command_line: bool) -> Path:
        key = (family, sam2_source)
        if key not in folders:
            folders[key] = tmp_path_factory.mktemp(f"built_{family}")
            vlm_dir, sam2_path = parts["vlm_dir"][family], parts[sam2_source]
            if command_line:
                argv = ["--vlm", str(vlm_dir), "--sam2", str(sam2_path), str(folders[key])]
                assert main(argv) == 0
            else:
                build_from_components(
                    vlm_dir,
                    sam2_path,
                    folders[key],
                    sam2_config=None if sam2_source == "sam2_hf" else TINY_SAM2_CONFIG,
                )
        return folders[key]

    return get


@pytest.mark.parametrize(("family", "sam2_source", "command_line"), BUILD_CASES)
def test_built_model_keeps_every_source_tensor_and_adds_the_sa2va_tokens(
    parts, built, family, sam2_source, command_line
):
    folder = built(family, sam2_source, command_line)
    model = AutoModel.from_pretrained(folder).eval()
    processor = AutoProcessor.from_pretrained(folder)
    assert type(model) is Sa2VAForConditionalGeneration and type(processor) is Sa2VAProcessor

    tokenizer, source = processor.tokenizer, parts["vlm"][family]
    old_vocab = source["model.language_model.embed_tokens.weight"].shape[0]
    assert len(tokenizer) == old_vocab + len(SA2VA_SPECIAL_TOKENS)
    assert [tokenizer.convert_tokens_to_ids(token) for token in SA2VA_SPECIAL_TOKENS] == list(
        range(old_vocab, len(tokenizer))
    )
    assert model.config.seg_token_id == processor.seg_token_id == old_vocab
    assert model.config.text_config.vocab_size == len(tokenizer)
    assert not model.config.vlm_config.tie_word_embeddings and not model.config.text_config.tie_word_embeddings

    vlm = model.vlm.state_dict()
    assert set(vlm) == set(source)
    resized = ("model.language_model.embed_tokens.weight", "lm_head.weight")
    for key, tensor in source.items():
        if key in resized:
            assert vlm[key].shape == (len(tokenizer), tensor.shape[1])
            torch.testing.assert_close(vlm[key][:old_vocab], tensor, atol=0, rtol=0, msg=key)
            mean = tensor.mean(0).expand(len(SA2VA_SPECIAL_TOKENS), -1)
            torch.testing.assert_close(vlm[key][old_vocab:], mean, atol=1e-5, rtol=0, msg=f"new rows of {key}")
        else:
            torch.testing.assert_close(vlm[key], tensor, atol=0, rtol=0, msg=key)
    assert model.vlm.lm_head.weight.data_ptr() != model.vlm.get_input_embeddings().weight.data_ptr()
    sam2 = model.sam2.state_dict()
    assert set(sam2) == set(parts["sam2"])
    for key, tensor in parts["sam2"].items():
        torch.testing.assert_close(sam2[key], tensor, atol=0, rtol=0, msg=key)
    assert not model.config.sam2_config.enable_occlusion_spatial_embedding

    expected_template = get_chat_template("qwen_chat")[0] if family == "internvl" else QWEN_VL_CHAT_TEMPLATE
    assert processor.chat_template == tokenizer.chat_template == expected_template
    assert all(token in tokenizer.get_added_vocab() for token in SA2VA_SPECIAL_TOKENS)

    image = red_circle()
    result = model.predict_forward(
        image=image, text=TEXT, processor=processor, sequence_bias={(processor.seg_token_id,): 5.0}, max_new_tokens=4
    )
    assert result["prediction"].count("[SEG]") == 4
    assert len(result["prediction_masks"]) == 3  # the last [SEG] is never fed back, so it has no state
    for mask in result["prediction_masks"]:
        assert mask.shape == (1, image.height, image.width) and mask.dtype == np.bool_


REMOTE_SCRIPT = textwrap.dedent(
    """
    import json, sys
    sys.modules["sa2va_hf"] = None  # Hub users need not install the package
    from transformers import AutoModel, AutoProcessor
    model = AutoModel.from_pretrained(sys.argv[1], trust_remote_code=True)
    processor = AutoProcessor.from_pretrained(sys.argv[1], trust_remote_code=True)
    modules = {name: type(obj).__module__.split(".")[0] for name, obj in (("model", model), ("processor", processor))}
    print(json.dumps(modules | {"seg": model.config.seg_token_id}))
    """
)


def test_built_folder_loads_as_remote_code_in_a_fresh_process(built, tmp_path):
    folder = built(*BUILD_CASES[0])
    config = json.loads((folder / "config.json").read_text())
    assert {"AutoConfig", "AutoModel"} <= set(config["auto_map"])
    assert json.loads((folder / "processor_config.json").read_text())["auto_map"]["AutoProcessor"]
    for name in ("configuration_sa2va.py", "modeling_sa2va.py", "modeling_sa2va_sam2.py", "processing_sa2va.py"):
        assert (folder / name).is_file(), name
    env = dict(os.environ, HF_HUB_OFFLINE="1", HF_MODULES_CACHE=str(tmp_path / "modules"))
    run = subprocess.run([sys.executable, "-c", REMOTE_SCRIPT, str(folder)], env=env, capture_output=True, text=True)
    assert run.returncode == 0, run.stderr[-3000:]
    reported = json.loads(run.stdout.strip().splitlines()[-1])
    assert reported == {"model": "transformers_modules", "processor": "transformers_modules", "seg": 262}


def test_same_seed_builds_the_same_weights(parts, built, tmp_path):
    build_from_components(parts["vlm_dir"]["internvl"], parts["sam2_pt"], tmp_path, sam2_config=TINY_SAM2_CONFIG)
    first = AutoModel.from_pretrained(built(*BUILD_CASES[0])).state_dict()
    second = AutoModel.from_pretrained(tmp_path).state_dict()
    for key, tensor in first.items():
        torch.testing.assert_close(second[key], tensor, atol=0, rtol=0, msg=key)


def test_sam2_1_checkpoint_sets_the_flags_and_warns(tmp_path, caplog):
    sam2 = tiny_sam2(sam2_1=True)
    torch.save({"model": original_sam2_state_dict(sam2)}, tmp_path / "sam2.1.pt")
    with caplog.at_level(logging.WARNING):
        loaded = load_sam2(tmp_path / "sam2.1.pt", TINY_SAM2_CONFIG)  # a SAM 2.0 config: the keys decide
    assert "SAM 2.1" in caplog.text and "SAM 2.0" in caplog.text
    assert loaded.config.enable_temporal_pos_encoding_for_object_pointers
    assert loaded.config.enable_occlusion_spatial_embedding
    for key, tensor in sam2.state_dict().items():
        torch.testing.assert_close(loaded.state_dict()[key], tensor, atol=0, rtol=0, msg=key)


def test_sam2_image_model_folder_needs_the_memory_weights(parts, tmp_path):
    image_config = Sam2Config(
        vision_config=TINY_SAM2_CONFIG["vision_config"],
        prompt_encoder_config=TINY_SAM2_CONFIG["prompt_encoder_config"],
        mask_decoder_config=TINY_SAM2_CONFIG["mask_decoder_config"],
    )
    # A Sam2Model config.json carries no memory sizes, so the video defaults (the real SAM-2 ones) apply: weights with
    # every module load at real sizes, and the tiny memory weights here are reported as shape mismatches.
    shutil.copytree(parts["sam2_hf"], tmp_path / "full")
    image_config.save_pretrained(tmp_path / "full")
    with pytest.raises(ValueError, match=r"full do not match(.|\n)*shape mismatch(.|\n)*memory_attention"):
        load_sam2(tmp_path / "full")
    # an image-only checkpoint has no memory modules: refused, naming them
    Sam2Model(image_config).save_pretrained(tmp_path / "image_only")
    with pytest.raises(
        ValueError, match=r"image_only(.|\n)*not in the checkpoint(.|\n)*memory_attention(.|\n)*no memory modules"
    ):
        load_sam2(tmp_path / "image_only")


# --- errors -----------------------------------------------------------------------------------------------------


def test_missing_or_unsupported_vlm_is_named(parts, tmp_path):
    with pytest.raises(FileNotFoundError, match="`vlm_dir` .*nowhere is not a folder"):
        build_from_components(tmp_path / "nowhere", parts["sam2_pt"], tmp_path / "out")
    (tmp_path / "llava").mkdir()
    (tmp_path / "llava" / "config.json").write_text(json.dumps({"model_type": "llava"}))
    with pytest.raises(
        ValueError, match=r"'llava'.*internvl \(InternVLForConditionalGeneration.*qwen2_5_vl.*qwen3_vl"
    ):
        build_from_components(tmp_path / "llava", parts["sam2_pt"], tmp_path / "out")
    (tmp_path / "llava" / "config.json").write_text(json.dumps({"model_type": "internvl_chat"}))
    with pytest.raises(ValueError, match="-hf"):
        build_from_components(tmp_path / "llava", parts["sam2_pt"], tmp_path / "out")
    (tmp_path / "llava" / "config.json").unlink()
    with pytest.raises(FileNotFoundError, match="no config.json"):
        build_from_components(tmp_path / "llava", parts["sam2_pt"], tmp_path / "out")


def test_bad_sam2_checkpoints_are_named(parts, tmp_path):
    with pytest.raises(FileNotFoundError, match="`sam2_path` .*missing.pt does not exist"):
        load_sam2(tmp_path / "missing.pt")
    torch.save({"state_dict": {}}, tmp_path / "other.pt")
    with pytest.raises(ValueError, match=r"other\.pt holds a dict with keys \['state_dict'\].*'model'"):
        load_sam2(tmp_path / "other.pt")
    (tmp_path / "garbage.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(ValueError, match="garbage.pt is not a readable PyTorch checkpoint"):
        load_sam2(tmp_path / "garbage.pt")
    with pytest.raises(ValueError, match=r"sam2_original\.pt(.|\n)*shape"):  # tiny weights, hiera-large default
        load_sam2(parts["sam2_pt"])
    with pytest.raises(ValueError, match="`sam2_config` applies to an original .pt"):
        load_sam2(parts["sam2_hf"], TINY_SAM2_CONFIG)


def test_vlm_weights_or_tokenizer_that_do_not_fit_are_named(parts, tmp_path):
    folder = shutil.copytree(parts["vlm_dir"]["qwen2_5_vl"], tmp_path / "vlm")
    config = json.loads((folder / "config.json").read_text())
    (folder / "config.json").write_text(json.dumps(config | {"image_token_id": 3}))
    with pytest.raises(
        ValueError, match=r"gives <\|image_pad\|> the id \d+, but its config.json has image_token_id 3"
    ):
        build_from_components(folder, parts["sam2_hf"], tmp_path / "out")
    (folder / "config.json").write_text(json.dumps(config))
    tensors = load_file(folder / "model.safetensors")
    del tensors["model.norm.weight"]  # transformers saves Qwen2.5-VL under its legacy names
    save_file(tensors, folder / "model.safetensors", metadata={"format": "pt"})
    with pytest.raises(ValueError, match=r"VLM weights in .*vlm do not match(.|\n)*language_model.norm.weight"):
        build_from_components(folder, parts["sam2_hf"], tmp_path / "out")


def test_template_must_fit_the_family(parts, tmp_path):
    with pytest.raises(ValueError, match="Qwen-VL prompts come from the chat template"):
        build_from_components(parts["vlm_dir"]["qwen2_5_vl"], parts["sam2_hf"], tmp_path, template="qwen_chat")
    with pytest.raises(ValueError, match="'llama3' is not a Sa2VA template.*qwen_chat, internlm2_chat"):
        build_from_components(parts["vlm_dir"]["internvl"], parts["sam2_hf"], tmp_path, template="llama3")


def test_existing_weights_are_not_overwritten_and_the_command_line_reports_errors(parts, built, caplog):
    folder = built(*BUILD_CASES[0])
    with pytest.raises(FileExistsError, match="already holds weights"):
        build_from_components(parts["vlm_dir"]["internvl"], parts["sam2_hf"], folder)
    with caplog.at_level(logging.ERROR):
        assert main(["--vlm", str(parts["vlm_dir"]["internvl"]), "--sam2", str(parts["sam2_pt"]), str(folder)]) == 1
    assert "already holds weights" in caplog.text
