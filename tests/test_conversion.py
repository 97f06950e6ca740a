"""Conversion of official Sa2VA checkpoints (`sa2va_hf.conversion`).

The four official fixtures convert and load strictly, their values trace back to the official tensors (the InternLM2
split reproduces the fused projection, the language models reproduce the recorded logits), broken checkpoints are
rejected with the problem named, and the real sizes of every released checkpoint convert key for key on `meta`.
"""

import importlib.util
import json
import logging
import re
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors import safe_open
from safetensors.torch import load_file, save_file
from torch import nn
from transformers import AutoModelForImageTextToText, Sam2VideoConfig, Sam2VideoModel

from conftest import official_fixture
from sa2va_hf.conversion import (
    DROPPED_KEYS,
    KEY_FAMILIES,
    check_official_layout,
    convert_keys,
    convert_official_checkpoint,
    expected_state_dict_shapes,
    load_official_config,
)
from sa2va_hf.conversion.convert_official import TOKENIZER_FILES, main
from sa2va_hf.models.sa2va.configuration_sa2va import Sa2VAConfig
from sa2va_hf.presets import OFFICIAL_VARIANTS
from sa2va_hf.tiny import TINY_SAM2_CONFIG


SAM2_PREFIX = "grounding_encoder.sam2_model."

# fixture, key family, prompt template, official tensors, converted tensors, [SEG] id
# Converted = official + 4 per InternViT layer (qkv weight/bias → q/k/v) + 2 per InternLM2 layer (wqkv → q/k/v)
#             - 3 (four point embeddings → one) + 1 (the positional matrix is stored twice).
# fmt: off
FIXTURE_CASES = [
    ("official_tiny",            "internvl",           "qwen_chat",      401, 407, 492),
    ("official_tiny_internlm2",  "internvl_internlm2", "internlm2_chat", 391, 401, 609),
    ("official_tiny_qwen2_5_vl", "qwen2_5_vl",         "qwen_chat",      393, 391, 494),
    ("official_tiny_qwen3_vl",   "qwen3_vl",           "qwen_chat",      400, 398, 494),
]
# fmt: on
FIXTURE_NAMES = [case[0] for case in FIXTURE_CASES]


class ReferenceSa2VA(nn.Module):
    """The module tree of `Sa2VAForConditionalGeneration` (`vlm`, `sam2`, `seg_projector`) from transformers parts."""

    def __init__(self, config: Sa2VAConfig):
        super().__init__()
        self.vlm = AutoModelForImageTextToText.from_config(config.vlm_config)
        self.sam2 = Sam2VideoModel(config.sam2_config)
        hidden_size = config.text_config.hidden_size
        self.seg_projector = nn.Sequential(
            nn.Linear(hidden_size, hidden_size), nn.ReLU(), nn.Linear(hidden_size, config.seg_hidden_size)
        )


def sa2va_model_shapes(config: Sa2VAConfig) -> dict[str, tuple[int, ...]] | None:
    """State-dict shapes of the package's own model on `meta`, or `None` while it cannot be imported."""
    try:
        if importlib.util.find_spec("sa2va_hf.models.sa2va.modeling_sa2va") is None:
            return None
        from sa2va_hf.models.sa2va.modeling_sa2va import Sa2VAForConditionalGeneration
    except ImportError:
        return None
    with torch.device("meta"):
        model = Sa2VAForConditionalGeneration(config)
    return {key: tuple(tensor.shape) for key, tensor in model.state_dict().items()}


def load_weights(folder: Path) -> dict[str, torch.Tensor]:
    """Every tensor of a folder's `model*.safetensors` files."""
    tensors = {}
    for path in sorted(folder.glob("model*.safetensors")):
        tensors |= load_file(path)
    return tensors


def official_weights(name: str) -> dict[str, torch.Tensor]:
    return load_file(official_fixture(name) / "model.safetensors")


@pytest.fixture(scope="session")
def converted(tmp_path_factory):
    """`fixture name -> folder` of its conversion with the tiny SAM-2, converted once per session."""
    folders = {}

    def get(name: str) -> Path:
        if name not in folders:
            folders[name] = tmp_path_factory.mktemp(name)
            convert_official_checkpoint(
                official_fixture(name), folders[name], sam2_config=TINY_SAM2_CONFIG, show_progress=False
            )
        return folders[name]

    return get


def write_checkpoint(folder: Path, tensors: dict[str, torch.Tensor], config: dict, like="official_tiny") -> Path:
    """An official-layout folder with `tensors`, `config` and the tokenizer files of the fixture `like`."""
    folder.mkdir(parents=True, exist_ok=True)
    save_file(tensors, folder / "model.safetensors", metadata={"format": "pt"})
    (folder / "config.json").write_text(json.dumps(config))
    for name in TOKENIZER_FILES:
        if (official_fixture(like) / name).is_file():
            shutil.copyfile(official_fixture(like) / name, folder / name)
    return folder


def write_sharded(
    folder: Path, tensors: dict[str, torch.Tensor], config: dict, num_shards: int, like: str = "official_tiny"
) -> list[Path]:
    """Like `write_checkpoint`, with the tensors split over `num_shards` files and an index."""
    write_checkpoint(folder, {}, config, like=like)
    (folder / "model.safetensors").unlink()
    keys, weight_map, paths = sorted(tensors), {}, []
    for index in range(num_shards):
        name = f"model-{index + 1:05d}-of-{num_shards:05d}.safetensors"
        part = keys[index::num_shards]
        save_file({key: tensors[key] for key in part}, folder / name, metadata={"format": "pt"})
        weight_map |= dict.fromkeys(part, name)
        paths.append(folder / name)
    (folder / "model.safetensors.index.json").write_text(json.dumps({"metadata": {}, "weight_map": weight_map}))
    return paths


def official_config(name: str = "official_tiny") -> dict:
    return json.loads((official_fixture(name) / "config.json").read_text())


# ---------------------------------------------------------------------------------------------------------------
# The official fixtures
# ---------------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("name", "family", "template", "num_official", "num_converted", "seg_id"), FIXTURE_CASES)
def test_fixture_converts_and_loads_strictly(converted, name, family, template, num_official, num_converted, seg_id):
    folder = converted(name)
    translated = load_official_config(official_fixture(name), sam2_config=TINY_SAM2_CONFIG)
    assert (translated.key_family, translated.template) == (family, template)

    config = Sa2VAConfig.from_pretrained(folder)
    assert config.seg_token_id == seg_id
    assert config.vlm_config.tie_word_embeddings is False
    assert config.sam2_config.to_dict() == translated.config.sam2_config.to_dict()
    tensors = load_weights(folder)
    assert (len(official_weights(name)), len(tensors)) == (num_official, num_converted)
    assert {tensor.dtype for tensor in tensors.values()} == {torch.float32}

    with torch.device("meta"):
        reference = ReferenceSa2VA(config)
    reference.load_state_dict(tensors, strict=True, assign=True)  # raises on missing, unexpected or mis-shaped keys
    reference_shapes = {key: tuple(tensor.shape) for key, tensor in reference.state_dict().items()}
    assert {key: tuple(tensor.shape) for key, tensor in tensors.items()} == reference_shapes
    assert expected_state_dict_shapes(config) == reference_shapes
    if (model_shapes := sa2va_model_shapes(config)) is not None:
        assert model_shapes == reference_shapes
    assert (folder / "processor_config.json").is_file() and (folder / "tokenizer_config.json").is_file()


@pytest.mark.parametrize("name", FIXTURE_NAMES)
def test_converted_values_trace_back_to_official_tensors(converted, name):
    official, ours = official_weights(name), load_weights(converted(name))
    family = FIXTURE_CASES[FIXTURE_NAMES.index(name)][1]

    renamed = convert_keys(official, family)
    fused = [key for key, target in renamed.items() if target not in ours]
    assert all(re.search(r"\.attn\.qkv\.|\.attention\.wqkv\.|\.point_embeddings\.\d\.", key) for key in fused), fused
    for key, target in renamed.items():  # everything else is a plain copy
        if key not in fused:
            assert torch.equal(ours[target], official[key]), key

    # SAM-2: the four point-type embeddings stacked in index order, the Fourier matrix stored twice, g_weight → scale
    points = [official[f"{SAM2_PREFIX}sam_prompt_encoder.point_embeddings.{index}.weight"] for index in range(4)]
    assert torch.equal(ours["sam2.prompt_encoder.point_embed.weight"], torch.cat(points))
    matrix = official[f"{SAM2_PREFIX}sam_prompt_encoder.pe_layer.positional_encoding_gaussian_matrix"]
    assert torch.equal(ours["sam2.prompt_encoder.shared_embedding.positional_embedding"], matrix)
    assert torch.equal(ours["sam2.shared_image_embedding.positional_embedding"], matrix)
    fuser_scale = official[f"{SAM2_PREFIX}memory_encoder.fuser.layers.1.g_weight"]
    assert torch.equal(ours["sam2.memory_encoder.memory_fuser.layers.1.scale"], fuser_scale)
    final_conv = official[f"{SAM2_PREFIX}memory_encoder.mask_downsampler.encoder.12.weight"]
    assert torch.equal(ours["sam2.memory_encoder.mask_downsampler.final_conv.weight"], final_conv)
    assert torch.equal(ours["seg_projector.2.weight"], official["text_hidden_fcs.2.weight"])

    if family.startswith("internvl"):  # InternViT's fused qkv rows are [query; key; value]
        for layer in range(2):
            for kind in ("weight", "bias"):
                qkv = official[f"vision_model.encoder.layers.{layer}.attn.qkv.{kind}"]
                prefix = f"vlm.model.vision_tower.encoder.layer.{layer}.attention"
                parts = [ours[f"{prefix}.{name}_proj.{kind}"] for name in ("q", "k", "v")]
                assert torch.equal(torch.cat(parts), qkv)
        assert torch.equal(ours["vlm.model.multi_modal_projector.linear_2.weight"], official["mlp1.3.weight"])


def test_internlm2_split_reproduces_the_fused_projection(converted):
    """q/k/v from our split equal InternLM2's own reading of `wqkv(x)`: per key/value head, [queries, key, value]."""
    official, ours = official_weights("official_tiny_internlm2"), load_weights(converted("official_tiny_internlm2"))
    num_heads, num_kv_heads, head_dim = 4, 2, 16
    group_size = num_heads // num_kv_heads
    hidden_states = torch.randn(5, 64, generator=torch.Generator().manual_seed(0))
    for layer in range(2):
        fused = hidden_states @ official[f"language_model.model.layers.{layer}.attention.wqkv.weight"].T
        fused = fused.reshape(5, num_kv_heads, group_size + 2, head_dim)
        expected = {
            "q": fused[:, :, :group_size].reshape(5, num_heads * head_dim),
            "k": fused[:, :, -2].reshape(5, num_kv_heads * head_dim),
            "v": fused[:, :, -1].reshape(5, num_kv_heads * head_dim),
        }
        for name, value in expected.items():
            weight = ours[f"vlm.model.language_model.layers.{layer}.self_attn.{name}_proj.weight"]
            torch.testing.assert_close(hidden_states @ weight.T, value, rtol=0, atol=1e-6)


@pytest.mark.parametrize("name", FIXTURE_NAMES)
def test_converted_language_model_reproduces_official_logits(converted, name):
    """The text-only prompt of each fixture gives the official first-step logits (InternLM2 → Llama included)."""
    folder = converted(name)
    config = Sa2VAConfig.from_pretrained(folder)
    vlm = AutoModelForImageTextToText.from_config(config.vlm_config).eval()
    vlm.load_state_dict({key[4:]: value for key, value in load_weights(folder).items() if key.startswith("vlm.")})
    outputs = np.load(official_fixture(name) / "outputs.npz")
    input_ids = torch.from_numpy(outputs["text_prompt_ids"])[None]
    with torch.no_grad():
        logits = vlm(input_ids=input_ids, mm_token_type_ids=torch.zeros_like(input_ids)).logits[0, -1]
    torch.testing.assert_close(logits, torch.from_numpy(outputs["text_step_logits"][0]), rtol=1e-4, atol=1e-4)


# ---------------------------------------------------------------------------------------------------------------
# Broken checkpoints
# ---------------------------------------------------------------------------------------------------------------


def _unknown_key(tensors):
    return tensors | {"grounding_encoder.extra_head.weight": torch.zeros(2)}


def _renamed_key(tensors):
    tensors["mlp1.2.weight"] = tensors.pop("mlp1.1.weight")
    return tensors


def _wrong_shape(tensors):
    return tensors | {"text_hidden_fcs.2.weight": torch.zeros(64, 64)}


def _missing_point_embedding(tensors):
    del tensors[f"{SAM2_PREFIX}sam_prompt_encoder.point_embeddings.3.weight"]
    return tensors


# fmt: off
BROKEN_WEIGHTS = {
    "unknown key":   (_unknown_key,             r"1 official key\(s\) match no key table of family 'internvl'.*\n"
                                                r"\s+grounding_encoder\.extra_head\.weight"),
    "renamed key":   (_renamed_key,             r"do not exist in the Sa2VA model:\n\s+mlp1\.2\.weight -> mlp1\.2\."
                                                r"weight(.|\n)*not filled by the checkpoint:\n\s+"
                                                r"vlm\.model\.multi_modal_projector\.linear_1\.weight"),
    "wrong shape":   (_wrong_shape,             r"1 shape mismatch\(es\):\n\s+text_hidden_fcs\.2\.weight -> seg_"
                                                r"projector\.2\.weight: checkpoint \(64, 64\), model \(128, 64\)"),
    "missing piece": (_missing_point_embedding, r"point_embeddings\.2\.weight -> sam2\.prompt_encoder\.point_embed"
                                                r"\.weight: checkpoint \(3, 128\), model \(4, 128\)"),
}
# fmt: on


@pytest.mark.parametrize("case", BROKEN_WEIGHTS)
def test_weights_that_do_not_match_are_rejected_with_the_keys_named(tmp_path, case):
    corrupt, message = BROKEN_WEIGHTS[case]
    src = write_checkpoint(tmp_path / "src", corrupt(official_weights("official_tiny")), official_config())
    with pytest.raises(ValueError, match=message):
        convert_official_checkpoint(src, tmp_path / "dst", sam2_config=TINY_SAM2_CONFIG, show_progress=False)
    assert not (tmp_path / "dst").exists()  # nothing is written before the whole checkpoint has been checked


def test_wrong_sam2_config_is_reported_as_shape_mismatches(tmp_path):
    with pytest.raises(ValueError, match=r"shape mismatch(.|\n)*sam2\.vision_encoder(.|\n)*`sam2_config`"):
        convert_official_checkpoint(official_fixture("official_tiny"), tmp_path / "dst", show_progress=False)


def test_wrong_model_type_is_rejected(tmp_path):
    src = write_checkpoint(tmp_path / "src", {}, official_config() | {"model_type": "llava"})
    with pytest.raises(ValueError, match="config.json has model_type 'llava'; official Sa2VA checkpoints have"):
        convert_official_checkpoint(src, tmp_path / "dst", sam2_config=TINY_SAM2_CONFIG, show_progress=False)
    ours = write_checkpoint(tmp_path / "ours", {}, {"model_type": "sa2va"})
    with pytest.raises(ValueError, match="already is a sa2va-hf checkpoint"):
        convert_official_checkpoint(ours, tmp_path / "dst", sam2_config=TINY_SAM2_CONFIG, show_progress=False)


def test_missing_shard_or_weights_are_named(tmp_path):
    shards = write_sharded(tmp_path / "src", official_weights("official_tiny"), official_config(), num_shards=3)
    shards[1].unlink()
    with pytest.raises(ValueError, match=r"1 checkpoint shard\(s\) listed in .*index.json are missing: "
                                         r"model-00002-of-00003\.safetensors"):  # fmt: skip
        convert_official_checkpoint(tmp_path / "src", tmp_path / "dst", sam2_config=TINY_SAM2_CONFIG)
    empty = write_checkpoint(tmp_path / "empty", {}, official_config())
    (empty / "model.safetensors").unlink()
    torch.save({}, empty / "pytorch_model.bin")
    with pytest.raises(ValueError, match=r"No model\.safetensors .* \(found pytorch_model\.bin: only safetensors"):
        convert_official_checkpoint(empty, tmp_path / "dst", sam2_config=TINY_SAM2_CONFIG)


def test_existing_weights_in_destination_are_not_overwritten(converted):
    with pytest.raises(FileExistsError, match="already holds weights"):
        convert_official_checkpoint(official_fixture("official_tiny"), converted("official_tiny"))


# ---------------------------------------------------------------------------------------------------------------
# Shards, dtype, dropped keys, command line, key tables
# ---------------------------------------------------------------------------------------------------------------


def test_sharded_input_and_output_in_bfloat16(tmp_path, converted):
    """Three input shards, 1 MB output shards with an index, bf16: the same tensors as the one-file conversion."""
    name = "official_tiny_qwen3_vl"
    write_sharded(tmp_path / "src", official_weights(name), official_config(name), num_shards=3, like=name)
    convert_official_checkpoint(
        tmp_path / "src",
        tmp_path / "dst",
        sam2_config=TINY_SAM2_CONFIG,
        dtype="bfloat16",
        max_shard_size="1MB",
        show_progress=False,
    )
    index = json.loads((tmp_path / "dst" / "model.safetensors.index.json").read_text())
    files = sorted((tmp_path / "dst").glob("model-*.safetensors"))
    assert len(files) > 3 and set(index["weight_map"].values()) == {path.name for path in files}
    ours, reference = load_weights(tmp_path / "dst"), load_weights(converted(name))
    assert index["weight_map"].keys() == ours.keys() == reference.keys()
    for key, tensor in reference.items():
        assert torch.equal(ours[key], tensor.to(torch.bfloat16)), key
    assert index["metadata"]["total_size"] == sum(tensor.nbytes for tensor in ours.values())
    assert Sa2VAConfig.from_pretrained(tmp_path / "dst").dtype == torch.bfloat16


def test_dropped_keys_are_left_out_and_logged(tmp_path, caplog):
    tensors = official_weights("official_tiny") | {"language_model.model.rotary_emb.inv_freq": torch.ones(8)}
    src = write_checkpoint(tmp_path / "src", tensors, official_config())
    with caplog.at_level(logging.INFO, logger="sa2va_hf.conversion.convert_official"):
        convert_official_checkpoint(src, tmp_path / "dst", sam2_config=TINY_SAM2_CONFIG, show_progress=False)
    assert "Dropped language_model.model.rotary_emb.inv_freq: RoPE inverse frequencies" in caplog.text
    with safe_open(tmp_path / "dst" / "model.safetensors", framework="pt") as handle:
        assert not any("inv_freq" in key for key in handle.keys())


def test_command_line(tmp_path):
    sam2_json = tmp_path / "sam2.json"
    sam2_json.write_text(json.dumps(TINY_SAM2_CONFIG))
    src = official_fixture("official_tiny_internlm2")
    argv = [str(src), str(tmp_path / "dst"), "--sam2-config", str(sam2_json), "--dtype", "float16", "--no-progress"]
    assert main(argv) == 0
    assert {tensor.dtype for tensor in load_weights(tmp_path / "dst").values()} == {torch.float16}
    assert main([str(src), str(tmp_path / "dst"), "--sam2-config", str(sam2_json), "--no-progress"]) == 1  # exists
    assert main([str(src), str(tmp_path / "other"), "--no-progress"]) == 1  # hiera-L SAM-2 does not fit the weights


def test_key_tables():
    # fmt: off
    cases = {
        "qwen2_5_vl": {  # transformers < 4.52 names, then current ones
            "model.visual.blocks.0.attn.qkv.weight":             "vlm.model.visual.blocks.0.attn.qkv.weight",
            "model.model.layers.0.mlp.up_proj.weight":
                "vlm.model.language_model.layers.0.mlp.up_proj.weight",
            "model.model.visual.merger.ln_q.weight":             "vlm.model.visual.merger.ln_q.weight",
            "model.lm_head.weight":                              "vlm.lm_head.weight",
        },
        "internvl_internlm2": {  # InternViT-6B's qk-norm, InternLM2's names
            "language_model.output.weight":                      "vlm.lm_head.weight",
            "language_model.model.layers.3.feed_forward.w2.weight":
                "vlm.model.language_model.layers.3.mlp.down_proj.weight",
            "vision_model.encoder.layers.7.attn.q_norm.weight":
                "vlm.model.vision_tower.encoder.layer.7.attention.q_norm.weight",
            "vision_model.encoder.layers.7.ls2":                 "vlm.model.vision_tower.encoder.layer.7.lambda_2",
        },
        "internvl": {  # SAM-2: the original `gamma`, SAM 2.1's extra tensors, a three-layer head, an attention output
            f"{SAM2_PREFIX}memory_encoder.fuser.layers.1.gamma": "sam2.memory_encoder.memory_fuser.layers.1.scale",
            f"{SAM2_PREFIX}obj_ptr_tpos_proj.weight":
                "sam2.temporal_positional_encoding_projection_layer.weight",
            f"{SAM2_PREFIX}no_obj_embed_spatial":                "sam2.occlusion_spatial_embedding_parameter",
            f"{SAM2_PREFIX}obj_ptr_proj.layers.1.bias":          "sam2.object_pointer_proj.layers.0.bias",
            f"{SAM2_PREFIX}sam_mask_decoder.transformer.layers.1.cross_attn_image_to_token.out_proj.weight":
                "sam2.mask_decoder.transformer.layers.1.cross_attn_image_to_token.o_proj.weight",
        },
    }
    # fmt: on
    for family, mapping in cases.items():
        assert convert_keys(mapping, family) == mapping
    with pytest.raises(ValueError, match=r"1 official key\(s\) are not covered by the 'qwen3_vl' key tables.*: mlp1"):
        convert_keys(["mlp1.0.weight"], "qwen3_vl")
    with pytest.raises(ValueError, match="Unknown checkpoint family 'llava'"):
        convert_keys([], "llava")
    assert set(KEY_FAMILIES) == {case[1] for case in FIXTURE_CASES} and all(DROPPED_KEYS.values())


# ---------------------------------------------------------------------------------------------------------------
# Real sizes on `meta`: the official key list of every released checkpoint, written from the official layout
# ---------------------------------------------------------------------------------------------------------------


def _linear(shapes: dict, key: str, out_features: int, in_features: int, bias: bool = True) -> None:
    shapes[f"{key}.weight"] = (out_features, in_features)
    if bias:
        shapes[f"{key}.bias"] = (out_features,)


def _conv(shapes: dict, key: str, out_channels: int, in_channels: int, kernel: int) -> None:
    shapes[f"{key}.weight"], shapes[f"{key}.bias"] = (out_channels, in_channels, kernel, kernel), (out_channels,)


def _norm(shapes: dict, key: str, size: int, bias: bool = True) -> None:
    shapes[f"{key}.weight"] = (size,)
    if bias:
        shapes[f"{key}.bias"] = (size,)


def official_sam2_shapes(config: Sam2VideoConfig) -> dict[str, tuple[int, ...]]:
    """Keys and shapes of a facebookresearch SAM 2.0 model (as Sa2VA stores it), written from its module layout."""
    assert not config.enable_temporal_pos_encoding_for_object_pointers, "SAM 2.0 has no object-pointer encoding"
    backbone, shapes = config.vision_config.backbone_config, {}
    dim, mem_dim = config.vision_config.fpn_hidden_size, config.memory_encoder_output_channels
    trunk, width = f"{SAM2_PREFIX}image_encoder.trunk", backbone.embed_dim_per_stage[0]
    _conv(shapes, f"{trunk}.patch_embed.proj", width, 3, 7)
    shapes[f"{trunk}.pos_embed"] = (1, width, *backbone.window_positional_embedding_background_size)
    shapes[f"{trunk}.pos_embed_window"] = (1, width, *[backbone.window_size_per_stage[0]] * 2)
    block, dim_in = 0, width
    for num_blocks, dim_out in zip(backbone.blocks_per_stage, backbone.embed_dim_per_stage):
        for _ in range(num_blocks):
            key = f"{trunk}.blocks.{block}"
            _norm(shapes, f"{key}.norm1", dim_in)
            _linear(shapes, f"{key}.attn.qkv", 3 * dim_out, dim_in)
            _linear(shapes, f"{key}.attn.proj", dim_out, dim_out)
            _norm(shapes, f"{key}.norm2", dim_out)
            _linear(shapes, f"{key}.mlp.layers.0", 4 * dim_out, dim_out)
            _linear(shapes, f"{key}.mlp.layers.1", dim_out, 4 * dim_out)
            if dim_in != dim_out:
                _linear(shapes, f"{key}.proj", dim_out, dim_in)
            block, dim_in = block + 1, dim_out
    for index, channels in enumerate(config.vision_config.backbone_channel_list):
        _conv(shapes, f"{SAM2_PREFIX}image_encoder.neck.convs.{index}.conv", dim, channels, 1)

    for layer in range(config.memory_attention_num_layers):
        key, ffn = f"{SAM2_PREFIX}memory_attention.layers.{layer}", config.memory_attention_feed_forward_hidden_size
        for projection in ("q_proj", "k_proj", "v_proj", "out_proj"):
            _linear(shapes, f"{key}.self_attn.{projection}", dim, dim)
            _linear(shapes, f"{key}.cross_attn_image.{projection}", dim, mem_dim if projection[0] in "kv" else dim)
        _linear(shapes, f"{key}.linear1", ffn, dim)
        _linear(shapes, f"{key}.linear2", dim, ffn)
        for norm in ("norm1", "norm2", "norm3"):
            _norm(shapes, f"{key}.{norm}", dim)
    _norm(shapes, f"{SAM2_PREFIX}memory_attention.norm", dim)

    encoder, channels = f"{SAM2_PREFIX}memory_encoder", 1
    for layer in range(4):  # total stride 16 in stride-2 steps, 4× the channels per step
        _conv(shapes, f"{encoder}.mask_downsampler.encoder.{3 * layer}", 4 * channels, channels, 3)
        _norm(shapes, f"{encoder}.mask_downsampler.encoder.{3 * layer + 1}", 4 * channels)
        channels *= 4
    _conv(shapes, f"{encoder}.mask_downsampler.encoder.12", dim, channels, 1)
    _conv(shapes, f"{encoder}.pix_feat_proj", dim, dim, 1)
    for layer in range(2):
        key = f"{encoder}.fuser.layers.{layer}"
        shapes[f"{key}.dwconv.weight"], shapes[f"{key}.dwconv.bias"] = (dim, 1, 7, 7), (dim,)
        _norm(shapes, f"{key}.norm", dim)
        _linear(shapes, f"{key}.pwconv1", 4 * dim, dim)
        _linear(shapes, f"{key}.pwconv2", dim, 4 * dim)
        shapes[f"{key}.g_weight"] = (dim,)
    _conv(shapes, f"{encoder}.out_proj", mem_dim, dim, 1)

    _conv(shapes, f"{SAM2_PREFIX}mask_downsample", 1, 1, 4)
    shapes[f"{SAM2_PREFIX}maskmem_tpos_enc"] = (config.num_maskmem, 1, 1, mem_dim)
    shapes[f"{SAM2_PREFIX}no_mem_embed"] = shapes[f"{SAM2_PREFIX}no_mem_pos_enc"] = (1, 1, dim)
    shapes[f"{SAM2_PREFIX}no_obj_ptr"] = (1, dim)
    for layer in range(3):
        _linear(shapes, f"{SAM2_PREFIX}obj_ptr_proj.layers.{layer}", dim, dim)

    prompt = f"{SAM2_PREFIX}sam_prompt_encoder"
    _conv(shapes, f"{prompt}.mask_downscaling.0", 4, 1, 2)
    _norm(shapes, f"{prompt}.mask_downscaling.1", 4)
    _conv(shapes, f"{prompt}.mask_downscaling.3", 16, 4, 2)
    _norm(shapes, f"{prompt}.mask_downscaling.4", 16)
    _conv(shapes, f"{prompt}.mask_downscaling.6", dim, 16, 1)
    shapes[f"{prompt}.no_mask_embed.weight"] = shapes[f"{prompt}.not_a_point_embed.weight"] = (1, dim)
    shapes[f"{prompt}.pe_layer.positional_encoding_gaussian_matrix"] = (2, dim // 2)
    for index in range(4):
        shapes[f"{prompt}.point_embeddings.{index}.weight"] = (1, dim)

    decoder, sizes = f"{SAM2_PREFIX}sam_mask_decoder", config.mask_decoder_config
    _conv(shapes, f"{decoder}.conv_s0", dim // 8, dim, 1)
    _conv(shapes, f"{decoder}.conv_s1", dim // 4, dim, 1)
    shapes[f"{decoder}.iou_token.weight"] = shapes[f"{decoder}.obj_score_token.weight"] = (1, dim)
    shapes[f"{decoder}.mask_tokens.weight"] = (4, dim)
    iou_hidden = sizes.iou_head_hidden_dim
    for index, (out_features, in_features) in enumerate(
        [(iou_hidden, dim), (iou_hidden, iou_hidden), (4, iou_hidden)]
    ):
        _linear(shapes, f"{decoder}.iou_prediction_head.layers.{index}", out_features, in_features)
    for mlp in range(4):
        for index, out_features in enumerate((dim, dim, dim // 8)):
            _linear(shapes, f"{decoder}.output_hypernetworks_mlps.{mlp}.layers.{index}", out_features, dim)
    for index, out_features in enumerate((dim, dim, 1)):
        _linear(shapes, f"{decoder}.pred_obj_score_head.layers.{index}", out_features, dim)
    shapes[f"{decoder}.output_upscaling.0.weight"] = (dim, dim // 4, 2, 2)  # transposed convolutions: (in, out, k, k)
    shapes[f"{decoder}.output_upscaling.0.bias"] = (dim // 4,)
    _norm(shapes, f"{decoder}.output_upscaling.1", dim // 4)
    shapes[f"{decoder}.output_upscaling.3.weight"] = (dim // 4, dim // 8, 2, 2)
    shapes[f"{decoder}.output_upscaling.3.bias"] = (dim // 8,)

    def attention(prefix: str, inner: int) -> None:
        for projection in ("q_proj", "k_proj", "v_proj"):
            _linear(shapes, f"{prefix}.{projection}", inner, dim)
        _linear(shapes, f"{prefix}.out_proj", dim, inner)

    for layer in range(sizes.num_hidden_layers):
        prefix = f"{decoder}.transformer.layers.{layer}"
        attention(f"{prefix}.self_attn", dim)
        attention(f"{prefix}.cross_attn_token_to_image", dim // 2)
        attention(f"{prefix}.cross_attn_image_to_token", dim // 2)
        _linear(shapes, f"{prefix}.mlp.layers.0", sizes.mlp_dim, dim)
        _linear(shapes, f"{prefix}.mlp.layers.1", dim, sizes.mlp_dim)
        for norm in ("norm1", "norm2", "norm3", "norm4"):
            _norm(shapes, f"{prefix}.{norm}", dim)
    attention(f"{decoder}.transformer.final_attn_token_to_image", dim // 2)
    _norm(shapes, f"{decoder}.transformer.norm_final_attn", dim)
    return shapes


def official_vlm_shapes(config: Sa2VAConfig, family: str) -> dict[str, tuple[int, ...]]:
    """Keys and shapes of the official VLM part (+ `text_hidden_fcs`), written from the official module layout."""
    text = config.text_config
    hidden, seg = text.hidden_size, config.seg_hidden_size
    shapes = {}
    _linear(shapes, "text_hidden_fcs.0", hidden, hidden)
    _linear(shapes, "text_hidden_fcs.2", seg, hidden)
    if family in ("qwen2_5_vl", "qwen3_vl"):  # the official wrapper holds the transformers model as `model`
        with torch.device("meta"):
            vlm = AutoModelForImageTextToText.from_config(config.vlm_config)
        return shapes | {f"model.{key}": tuple(value.shape) for key, value in vlm.state_dict().items()}
    vision = config.vlm_config.vision_config
    width, patch, size = vision.hidden_size, vision.patch_size[0], vision.image_size[0]
    layer_norm = vision.norm_type == "layer_norm"
    shapes["vision_model.embeddings.class_embedding"] = (1, 1, width)
    shapes["vision_model.embeddings.patch_embedding.weight"] = (width, 3, patch, patch)
    shapes["vision_model.embeddings.patch_embedding.bias"] = (width,)
    shapes["vision_model.embeddings.position_embedding"] = (1, (size // patch) ** 2 + 1, width)
    for layer in range(vision.num_hidden_layers):
        key = f"vision_model.encoder.layers.{layer}"
        _linear(shapes, f"{key}.attn.qkv", 3 * width, width, bias=vision.attention_bias)
        _linear(shapes, f"{key}.attn.proj", width, width)
        if vision.use_qk_norm:
            _norm(shapes, f"{key}.attn.q_norm", width, bias=False)
            _norm(shapes, f"{key}.attn.k_norm", width, bias=False)
        shapes[f"{key}.ls1"] = shapes[f"{key}.ls2"] = (width,)
        _linear(shapes, f"{key}.mlp.fc1", vision.intermediate_size, width)
        _linear(shapes, f"{key}.mlp.fc2", width, vision.intermediate_size)
        _norm(shapes, f"{key}.norm1", width, bias=layer_norm)
        _norm(shapes, f"{key}.norm2", width, bias=layer_norm)
    shuffled = width * int(1 / config.vlm_config.downsample_ratio) ** 2
    _norm(shapes, "mlp1.0", shuffled)
    _linear(shapes, "mlp1.1", hidden, shuffled)
    _linear(shapes, "mlp1.3", hidden, hidden)
    heads, kv_heads, head_dim = text.num_attention_heads, text.num_key_value_heads, hidden // text.num_attention_heads
    vocab, ffn = text.vocab_size, text.intermediate_size
    for layer in range(text.num_hidden_layers):
        key = f"language_model.model.layers.{layer}"
        if family == "internvl_internlm2":
            fused_rows, bias = (heads + 2 * kv_heads) * head_dim, text.attention_bias
            _linear(shapes, f"{key}.attention.wqkv", fused_rows, hidden, bias=bias)
            _linear(shapes, f"{key}.attention.wo", hidden, heads * head_dim, bias=bias)
            names = ("feed_forward.w1", "feed_forward.w3", "feed_forward.w2", "attention_norm", "ffn_norm")
        else:  # a transformers Qwen2 causal LM
            _linear(shapes, f"{key}.self_attn.q_proj", heads * head_dim, hidden)
            _linear(shapes, f"{key}.self_attn.k_proj", kv_heads * head_dim, hidden)
            _linear(shapes, f"{key}.self_attn.v_proj", kv_heads * head_dim, hidden)
            _linear(shapes, f"{key}.self_attn.o_proj", hidden, heads * head_dim, bias=False)
            names = ("mlp.gate_proj", "mlp.up_proj", "mlp.down_proj", "input_layernorm", "post_attention_layernorm")
        _linear(shapes, f"{key}.{names[0]}", ffn, hidden, bias=False)
        _linear(shapes, f"{key}.{names[1]}", ffn, hidden, bias=False)
        _linear(shapes, f"{key}.{names[2]}", hidden, ffn, bias=False)
        _norm(shapes, f"{key}.{names[3]}", hidden, bias=False)
        _norm(shapes, f"{key}.{names[4]}", hidden, bias=False)
    embeddings, head = ("tok_embeddings", "output") if family == "internvl_internlm2" else ("embed_tokens", "lm_head")
    shapes[f"language_model.model.{embeddings}.weight"] = shapes[f"language_model.{head}.weight"] = (vocab, hidden)
    _norm(shapes, "language_model.model.norm", hidden, bias=False)
    return shapes


def key_family(config: Sa2VAConfig) -> str:
    if config.vlm_family == "internvl" and config.text_config.model_type == "llama":
        return "internvl_internlm2"
    return config.vlm_family


@pytest.mark.parametrize("name", FIXTURE_NAMES)
def test_official_layout_writers_match_the_fixtures(name):
    """The key lists written from the official layout (used below at real sizes) are exactly the fixtures' lists."""
    translated = load_official_config(official_fixture(name), sam2_config=TINY_SAM2_CONFIG)
    with safe_open(official_fixture(name) / "model.safetensors", framework="pt") as handle:
        fixture = {key: tuple(handle.get_slice(key).get_shape()) for key in handle.keys()}
    written = official_sam2_shapes(translated.config.sam2_config)
    written |= official_vlm_shapes(translated.config, translated.key_family)
    assert written == fixture


@pytest.mark.parametrize("name", OFFICIAL_VARIANTS)
def test_real_size_checkpoints_convert_key_for_key(name):
    """Every released checkpoint, at its real sizes: each official key maps, each model key is filled, shapes agree."""
    config = OFFICIAL_VARIANTS[name].config()
    family = key_family(config)
    official = official_sam2_shapes(config.sam2_config) | official_vlm_shapes(config, family)
    groups, dropped = check_official_layout(official, config, family)
    assert not dropped
    assert sorted(key for group in groups for key in group.sources) == sorted(official)
    targets = [target for group in groups for target in group.targets]
    assert sorted(targets) == sorted(expected_state_dict_shapes(config))
    # hiera-large: image encoder 594 (48 blocks), memory attention 106, memory encoder 40, prompt encoder 17,
    # mask decoder 131, object pointers / memory embeddings / mask downsample 12
    assert sum(key.startswith(SAM2_PREFIX) for key in official) == 900
