"""Fidelity: converted official checkpoints reproduce the official implementation's recorded outputs.

Every `official_tiny*` folder of the shared fixtures (including ones added later) is converted with
`convert_official_checkpoint`, then each recorded case runs through our `predict_forward` with the recorded inputs and
generation settings. Text and generated ids must be identical; projected [SEG] states and low-res mask logits within
1e-4; masks identical except pixels whose official logit lies within 1e-4 of the threshold (float32 rounding of a
different but equivalent computation order can flip those, and only those).
"""

import json

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image
from transformers import LogitsProcessor, LogitsProcessorList

from conftest import FIXTURES, official_fixture
from sa2va_hf.conversion.convert_official import convert_official_checkpoint
from sa2va_hf.models.sa2va.modeling_sa2va import Sa2VAForConditionalGeneration
from sa2va_hf.models.sa2va.processing_sa2va import Sa2VAProcessor
from sa2va_hf.tiny import TINY_SAM2_CONFIG


VARIANTS = sorted(p.name for p in FIXTURES.glob("official_tiny*")) or ["official_tiny"]
TOLERANCE = 1e-4


def fixture_cases(folder) -> tuple[dict, dict]:
    """`(cases, generation)` recorded for a fixture (`outputs.json` in the first fixture, `cases.json` after)."""
    path = folder / "cases.json" if (folder / "cases.json").is_file() else folder / "outputs.json"
    recorded = json.loads(path.read_text())
    return recorded["cases"], recorded["generation"]


class SequenceBiasAsInTransformers4(LogitsProcessor):
    """Multi-token `sequence_bias` entries as transformers 4.x applied them, which the fixtures were recorded with: an
    entry counts only once the sequence is at least as long as the entry. (Transformers 5 applies it as soon as the
    sequence is as long as its prefix; InternVL-family generation starts from embeddings, so this differs right after
    the first generated token.)"""

    def __init__(self, entries: dict[tuple[int, ...], float]):
        self.entries = entries

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor) -> torch.FloatTensor:
        scores = scores.clone()
        for sequence, bias in self.entries.items():
            if len(sequence) > input_ids.shape[1]:
                continue
            matching = (input_ids[:, input_ids.shape[1] - len(sequence) + 1 :] == torch.tensor(sequence[:-1])).all(-1)
            scores[:, sequence[-1]] += torch.where(matching, bias, 0.0)
        return scores


def generation_kwargs(generation: dict) -> dict:
    biases = {tuple(ids): bias for ids, bias in generation["sequence_bias"]}
    kwargs = {
        "sequence_bias": {ids: bias for ids, bias in biases.items() if len(ids) == 1},
        "logits_processor": LogitsProcessorList(
            [SequenceBiasAsInTransformers4({ids: bias for ids, bias in biases.items() if len(ids) > 1})]
        ),
    }
    kwargs["max_new_tokens"] = generation.get("max_new_tokens") or 2048
    if generation.get("forced_eos_token_id") is not None:
        kwargs["forced_eos_token_id"] = generation["forced_eos_token_id"]
    return kwargs


@pytest.fixture(scope="module")
def converted(tmp_path_factory):
    """`variant -> (fixture folder, converted model, processor)`, each variant converted once."""
    cache = {}

    def get(variant: str):
        if variant not in cache:
            folder = official_fixture(variant)
            destination = tmp_path_factory.mktemp(variant)
            convert_official_checkpoint(folder, destination, sam2_config=TINY_SAM2_CONFIG, show_progress=False)
            model = Sa2VAForConditionalGeneration.from_pretrained(destination).eval()
            cache[variant] = folder, model, Sa2VAProcessor.from_pretrained(destination)
        return cache[variant]

    return get


def recorded_cases() -> list[tuple[str, str]]:
    """Every `(variant, case)` the fixtures record (the usual three where the fixtures are absent: they skip)."""
    pairs = []
    for variant in VARIANTS:
        folder = FIXTURES / variant
        names = list(fixture_cases(folder)[0]) if folder.is_dir() else ["image", "video", "text"]
        pairs += [(variant, name) for name in names]
    return pairs


def official_full_resolution_logits(lowres: np.ndarray, height: int, width: int) -> torch.Tensor:
    """The official 256 → 1024 → (H, W) bilinear upsampling of recorded low-res logits `(S, F, 256, 256)`."""
    logits = torch.from_numpy(lowres).flatten(0, 1)[:, None]
    logits = F.interpolate(logits, size=(1024, 1024), mode="bilinear", align_corners=False)
    logits = F.interpolate(logits, size=(height, width), mode="bilinear", align_corners=False)
    return logits[:, 0].reshape(*lowres.shape[:2], height, width)


def run_case(model, processor, folder, case_name: str, case: dict, generation: dict) -> dict:
    """Run our `predict_forward` on a recorded case, capturing what the fixture recorded along the way."""
    captured = {}
    generate, decode_masks = model.vlm.generate, model.decode_masks

    def capture_generate(*args, **kwargs):
        captured["sequences"] = generate(*args, **kwargs)
        captured["prompt_length"] = kwargs["input_ids"].shape[1] if "input_ids" in kwargs else 0
        return captured["sequences"]

    def capture_decode_masks(*args, **kwargs):
        captured["lowres"] = decode_masks(*args, **kwargs)
        return captured["lowres"]

    handle = model.seg_projector.register_forward_hook(lambda m, i, o: captured.update(seg_embeds=o))
    model.vlm.generate, model.decode_masks = capture_generate, capture_decode_masks
    try:
        media = {}
        if case_name in ("image", "vp"):
            media["image"] = Image.open(folder / "image.png")
        if case_name == "vp":
            regions = [np.asarray(Image.open(folder / name)) > 127 for name in case["mask_prompts_input"]["files"]]
            media["mask_prompts"] = [np.stack(regions).astype(np.float32)]
        elif case_name == "video":
            media["video"] = [Image.open(path) for path in sorted(folder.glob("video_frame_*.png"))]
        result = model.predict_forward(
            text=case["input_text"], processor=processor, **media, **generation_kwargs(generation)
        )
    finally:
        handle.remove()
        del model.vlm.generate, model.decode_masks
    captured["result"] = result
    return captured


@pytest.mark.parametrize(("variant", "case_name"), recorded_cases())
def test_predict_forward_matches_the_official_outputs(converted, variant, case_name):
    folder, model, processor = converted(variant)
    cases, generation = fixture_cases(folder)
    recorded = np.load(folder / "outputs.npz")
    case = cases[case_name]
    torch.manual_seed(0)
    captured = run_case(model, processor, folder, case_name, case, generation)
    result = captured["result"]

    assert result["prediction"] == case["prediction"]
    generated = captured["sequences"][0, captured["prompt_length"] :].numpy()
    np.testing.assert_array_equal(generated, recorded[f"{case_name}_generated_ids"])
    if case_name == "text":
        assert result["prediction_masks"] == []
        return

    seg_embeds = captured["seg_embeds"].detach().numpy()
    np.testing.assert_allclose(seg_embeds, recorded[f"{case_name}_seg_embeds"], atol=TOLERANCE, rtol=0)
    lowres = captured["lowres"].detach().numpy()
    official_lowres = recorded[f"{case_name}_lowres_mask_logits"]
    np.testing.assert_allclose(lowres, official_lowres, atol=TOLERANCE, rtol=0)

    official_masks = recorded[f"{case_name}_prediction_masks"]
    masks = np.stack(result["prediction_masks"])
    assert masks.shape == official_masks.shape and masks.dtype == np.bool_
    differing = masks != official_masks
    official_logits = official_full_resolution_logits(official_lowres, *official_masks.shape[-2:]).numpy()
    near_threshold = np.abs(official_logits) <= TOLERANCE
    assert not (differing & ~near_threshold).any(), f"{int((differing & ~near_threshold).sum())} pixels differ"


@pytest.mark.parametrize("variant", VARIANTS)
def test_prompts_match_the_official_prompt_ids(converted, variant):
    """Our processor writes exactly the prompt ids the official code gave `generate`, for every recorded case."""
    folder, model, processor = converted(variant)
    cases, _ = fixture_cases(folder)
    recorded = np.load(folder / "outputs.npz")
    for case_name, case in cases.items():
        num_images = {"image": 1, "vp": 1, "video": 5}.get(case_name, 0)
        prompt = processor.build_prompt(case["input_text"], num_images=num_images)
        media = {}
        if case_name in ("image", "vp"):
            media["images"] = [Image.open(folder / "image.png")]
        if case_name == "vp":
            regions = [np.asarray(Image.open(folder / name)) > 127 for name in case["mask_prompts_input"]["files"]]
            media["mask_prompts"] = np.stack(regions)
        elif case_name == "video":
            media["videos"] = [Image.open(path) for path in sorted(folder.glob("video_frame_*.png"))]
            media["key_frame_indices"] = list(range(5))
        ids = processor(text=prompt, **media).input_ids[0].numpy()
        np.testing.assert_array_equal(ids, recorded[f"{case_name}_prompt_ids"], err_msg=case_name)
