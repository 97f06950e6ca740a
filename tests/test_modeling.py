"""Sa2VA model behaviour on the tiny model of each family: image and video paths, [SEG] states, save/load, errors."""

import json
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import torch
from PIL import Image

from conftest import FAMILIES
from sa2va_hf import Sa2VAConfig, Sa2VAForConditionalGeneration, Sa2VAProcessor
from sa2va_hf.models.sa2va.modeling_sa2va import CACHE_FIELD
from sa2va_hf.synthetic import random_clip, random_scene


IMAGE = random_scene(seed=3, size=(96, 72)).image
FRAMES = [scene.image for scene in random_clip(seed=4, size=(64, 48), num_frames=7)]
TEXT = "<image>Please segment the red circle."


def seg_bias(processor: Sa2VAProcessor, bias: float = 4.0, max_new_tokens: int = 6) -> dict:
    """Generation kwargs that make a random tiny model write [SEG] often and stop after a few tokens."""
    return {"sequence_bias": {(processor.seg_token_id,): bias}, "max_new_tokens": max_new_tokens}


@pytest.mark.parametrize("family", FAMILIES)
def test_image_gives_one_mask_per_seg_at_input_size(tiny_models, family):
    model, processor = tiny_models(family)
    result = model.predict_forward(image=IMAGE, text=TEXT, processor=processor, **seg_bias(processor))
    # a [SEG] written as the very last token is never fed back, so it gets no mask
    num_seg = result["prediction"].count("[SEG]") - result["prediction"].endswith("[SEG]")
    assert num_seg >= 1
    assert len(result["prediction_masks"]) == num_seg
    for mask in result["prediction_masks"]:
        assert isinstance(mask, np.ndarray) and mask.dtype == np.bool_
        assert mask.shape == (1, IMAGE.height, IMAGE.width)


@pytest.mark.parametrize("family", FAMILIES)
def test_video_gives_a_mask_on_every_frame(tiny_models, family):
    model, processor = tiny_models(family)
    result = model.predict_forward(
        video=FRAMES, text=TEXT, processor=processor, **seg_bias(processor, 8.0, max_new_tokens=3)
    )
    assert result["prediction_masks"], result["prediction"]
    for mask in result["prediction_masks"]:
        assert mask.dtype == np.bool_ and mask.shape == (len(FRAMES), FRAMES[0].height, FRAMES[0].width)


def test_text_only_chat_returns_no_masks(tiny_models):
    model, processor = tiny_models("internvl")
    result = model.predict_forward(text="What is a square?", processor=processor, **seg_bias(processor))
    assert result["prediction_masks"] == []
    assert isinstance(result["prediction"], str)


def test_seg_states_are_the_states_at_the_fed_back_seg_positions(tiny_models):
    """The hook-recorded state of generated token i equals a teacher-forced forward at that position."""
    model, processor = tiny_models("internvl")
    inputs = processor(text=processor.build_prompt(TEXT, num_images=1), images=[IMAGE])
    inputs.pop("sam_pixel_values"), inputs.pop("original_sizes"), inputs.pop("num_tiles")
    config, other = model._generation_config(processor, seg_bias(processor))
    sequences, states = model._generate_with_final_states(inputs, config, **other)
    with torch.no_grad():
        full = model(input_ids=sequences, pixel_values=inputs["pixel_values"], output_hidden_states=True)
    prompt_length = inputs["input_ids"].shape[1]
    expected = full.hidden_states[-1][0, prompt_length : sequences.shape[1] - 1]
    torch.testing.assert_close(states[0], expected, atol=1e-5, rtol=1e-5)


def test_forward_returns_the_language_model_loss(tiny_models):
    model, processor = tiny_models("internvl")
    inputs = processor(text=processor.build_prompt(TEXT, num_images=1) + "Sure, [SEG].<|im_end|>", images=[IMAGE])
    labels = inputs["input_ids"].clone()
    labels[labels == processor.image_token_id] = -100
    output = model(input_ids=inputs["input_ids"], pixel_values=inputs["pixel_values"], labels=labels)
    assert output.loss.ndim == 0 and torch.isfinite(output.loss)
    assert output.logits.shape[:2] == inputs["input_ids"].shape
    assert output.lm_loss is output.loss and output.mask_bce_loss is None
    # the VLM's key/value cache comes back under transformers' own field name (`cache` from 5.24 on)
    assert getattr(output, CACHE_FIELD) is not None


def test_image_masks_batch_objects_like_single_objects(tiny_models):
    model, processor = tiny_models("internvl")
    sam_pixel_values = processor.image_processor.sam_view([IMAGE])
    embeddings = torch.randn(3, model.config.seg_hidden_size, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        together = model.decode_masks(embeddings, sam_pixel_values)
        alone = torch.cat([model.decode_masks(e[None], sam_pixel_values) for e in embeddings])
    assert together.shape == (3, 1, 256, 256)
    torch.testing.assert_close(together, alone, atol=1e-5, rtol=1e-5)


def test_segment_images_takes_pixels_or_the_image_embeddings_of_them(tiny_models):
    model, processor = tiny_models("internvl")
    sam2 = model.sam2
    pixel_values = processor.image_processor.sam_view([IMAGE, FRAMES[0]])
    prompts = torch.randn(3, model.config.seg_hidden_size, generator=torch.Generator().manual_seed(1))
    frames = torch.tensor([1, 0, 1])
    with torch.no_grad():
        from_pixels = sam2.segment_images(prompts, pixel_values, frames).pred_masks
        embeddings = sam2.image_embeddings(pixel_values)
        from_embeddings = sam2.segment_images(prompts, frame_indices=frames, image_embeddings=embeddings).pred_masks
    assert from_pixels.shape == (3, 1, 256, 256)
    torch.testing.assert_close(from_embeddings, from_pixels)
    with pytest.raises(ValueError, match="exactly one of `pixel_values` and `image_embeddings`"):
        sam2.segment_images(prompts, pixel_values, frames, image_embeddings=embeddings)
    with pytest.raises(ValueError, match="pass `frame_indices`"):
        sam2.segment_images(prompts, pixel_values)


REMOTE_SCRIPT = textwrap.dedent(
    """
    import json, sys
    sys.modules["sa2va_hf"] = None  # the package must not be needed
    import numpy as np, torch
    from PIL import Image
    from transformers import AutoModel, AutoProcessor
    folder, image_path, text, bias, out = sys.argv[1:]
    model = AutoModel.from_pretrained(folder, trust_remote_code=True).eval()
    processor = AutoProcessor.from_pretrained(folder, trust_remote_code=True)
    assert type(model).__module__.startswith("transformers_modules"), type(model).__module__
    seg = processor.tokenizer.convert_tokens_to_ids("[SEG]")
    result = model.predict_forward(image=Image.open(image_path), text=text, processor=processor,
                                   sequence_bias={(seg,): float(bias)}, max_new_tokens=6)
    np.savez(out, *result["prediction_masks"])
    print(json.dumps({"prediction": result["prediction"], "model": type(model).__name__}))
    """
)


@pytest.mark.parametrize("family", FAMILIES)
def test_saved_model_loads_as_remote_code_offline_in_a_fresh_process(tiny_models, family, tmp_path):
    model, processor = tiny_models(family)
    folder = tmp_path / "checkpoint"
    model.save_pretrained(folder)
    processor.save_pretrained(folder)
    config = json.loads((folder / "config.json").read_text())
    assert set(config["auto_map"]) >= {"AutoConfig", "AutoModel", "AutoModelForCausalLM"}
    assert json.loads((folder / "processor_config.json").read_text())["auto_map"]["AutoProcessor"]
    for name in ("configuration_sa2va.py", "modeling_sa2va.py", "modeling_sa2va_sam2.py", "processing_sa2va.py"):
        assert (folder / name).is_file(), name
    IMAGE.save(tmp_path / "image.png")

    expected = model.predict_forward(image=IMAGE, text=TEXT, processor=processor, **seg_bias(processor))
    env = dict(os.environ, HF_HUB_OFFLINE="1", HF_MODULES_CACHE=str(tmp_path / "modules"))
    args = [str(folder), str(tmp_path / "image.png"), TEXT, "4.0", str(tmp_path / "masks.npz")]
    run = subprocess.run([sys.executable, "-c", REMOTE_SCRIPT, *args], env=env, capture_output=True, text=True)
    assert run.returncode == 0, run.stderr[-3000:]
    reported = json.loads(run.stdout.strip().splitlines()[-1])
    assert reported == {"prediction": expected["prediction"], "model": "Sa2VAForConditionalGeneration"}
    masks = np.load(tmp_path / "masks.npz")
    assert len(masks.files) == len(expected["prediction_masks"]) >= 1
    for key, mask in zip(masks.files, expected["prediction_masks"]):
        np.testing.assert_array_equal(masks[key], mask)


def test_saved_model_loads_without_trust_remote_code_when_installed(tiny_models, tmp_path):
    from transformers import AutoModel, AutoProcessor

    model, processor = tiny_models("qwen2_5_vl")
    model.save_pretrained(tmp_path)
    processor.save_pretrained(tmp_path)
    loaded = AutoModel.from_pretrained(tmp_path)
    loaded_processor = AutoProcessor.from_pretrained(tmp_path)
    assert type(loaded) is Sa2VAForConditionalGeneration and type(loaded_processor) is Sa2VAProcessor
    for (name, tensor), (_, other) in zip(model.state_dict().items(), loaded.state_dict().items()):
        torch.testing.assert_close(tensor, other, atol=0, rtol=0, msg=name)
    assert loaded_processor.chat_template == processor.chat_template
    assert loaded_processor.stop_words == processor.stop_words


# --- bad input ------------------------------------------------------------------------------------------------


def test_config_rejects_unknown_family_and_bad_values():
    with pytest.raises(ValueError, match="vlm_config.*llava"):
        Sa2VAConfig(vlm_config={"model_type": "llava"})
    with pytest.raises(ValueError, match="sam2_config"):
        Sa2VAConfig(sam2_config={"model_type": "sam2"})
    with pytest.raises(ValueError, match="num_key_frames"):
        Sa2VAConfig(num_key_frames=0)
    with pytest.raises(ValueError, match="seg_token_id"):
        Sa2VAConfig(seg_token_id=10**9)
    with pytest.raises(ValueError, match="mask_target_size"):
        Sa2VAConfig(mask_target_size=0)
    with pytest.raises(Exception, match="vlm_config"):
        Sa2VAConfig(vlm_config=3)


def test_predict_forward_rejects_bad_input(tiny_models):
    model, processor = tiny_models("internvl")
    with pytest.raises(ValueError, match="text"):
        model.predict_forward(image=IMAGE, processor=processor)
    with pytest.raises(ValueError, match="no question"):
        model.predict_forward(image=IMAGE, text="<image>  ", processor=processor)
    with pytest.raises(TypeError, match="image"):
        model.predict_forward(image=12, text=TEXT, processor=processor)
    with pytest.raises(TypeError, match="image"):
        model.predict_forward(image=Image.new("RGB", (8, 8)).tobytes(), text=TEXT, processor=processor)
    with pytest.raises(ValueError, match="video.*empty"):
        model.predict_forward(video=[], text=TEXT, processor=processor)
    with pytest.raises(ValueError, match="processor"):
        model.predict_forward(image=IMAGE, text=TEXT)
    with pytest.raises(TypeError, match="processor"):
        model.predict_forward(image=IMAGE, text=TEXT, processor=processor.tokenizer)


def test_processor_rejects_a_tokenizer_without_sa2va_tokens(tiny_models):
    from transformers import Qwen2Tokenizer

    _, processor = tiny_models("internvl")
    bare = Qwen2Tokenizer(vocab={"a": 0, "b": 1}, merges=[])
    with pytest.raises(ValueError, match=r"\[SEG\]"):
        Sa2VAProcessor(image_processor=processor.image_processor, tokenizer=bare)


def test_model_is_a_transformers_model():
    assert issubclass(Sa2VAForConditionalGeneration, torch.nn.Module)
    assert Sa2VAForConditionalGeneration.supports_gradient_checkpointing


def test_official_call_style_with_tokenizer_only(tiny_models, tmp_path):
    """Code written for the official release passes `tokenizer=`; the checkpoint's processor is found from it."""
    from transformers import AutoTokenizer

    model, processor = tiny_models("internvl")
    processor.save_pretrained(tmp_path)
    tokenizer = AutoTokenizer.from_pretrained(tmp_path)
    expected = model.predict_forward(image=IMAGE, text=TEXT, processor=processor, **seg_bias(processor))
    result = model.predict_forward(image=IMAGE, text=TEXT, tokenizer=tokenizer, **seg_bias(processor))
    assert result["prediction"] == expected["prediction"]
    for mask, other in zip(result["prediction_masks"], expected["prediction_masks"], strict=True):
        np.testing.assert_array_equal(mask, other)


@pytest.mark.parametrize("family", ["internvl", "qwen2_5_vl"])
def test_multi_turn_history_continues_the_conversation(tiny_models, family):
    """`past_text` returned by one turn is the prompt plus the answer; the next turn's prompt extends it exactly."""
    model, processor = tiny_models(family)
    first = model.predict_forward(image=IMAGE, text=TEXT, processor=processor, **seg_bias(processor))
    history = first["past_text"]
    assert history.endswith(processor.turn_end())
    follow_up = processor.build_prompt("And the blue square?", num_images=1, past_text=history)
    assert follow_up.startswith(history) and follow_up.count(processor._placeholder()) == 1
    second = model.predict_forward(
        image=IMAGE, text="And the blue square?", past_text=history, processor=processor, **seg_bias(processor)
    )
    assert second["past_text"].startswith(follow_up)
    with pytest.raises(ValueError, match="already shows the image"):
        processor.build_prompt(TEXT, num_images=1, past_text=history)
