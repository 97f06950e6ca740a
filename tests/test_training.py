"""Training: the collator prompts as inference does, the losses, gradients, activation checkpointing, a LoRA run with
save / merge / reload, two processes agreeing, and the `sa2va-hf train` errors."""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from transformers import AutoModel, AutoProcessor

from conftest import FAMILIES
from sa2va_hf.cli import main as cli_main
from sa2va_hf.synthetic import random_scene
from sa2va_hf.tiny import build_tiny_model
from sa2va_hf.training import Sa2VADataCollator, rle_encode
from sa2va_hf.training.collator import IGNORE_INDEX
from sa2va_hf.training.lora import freeze_for_finetuning
from sa2va_hf.training.shapes import build_shapes_model, moving_clip, referring_sample
from sa2va_hf.training.train import TrainConfig, run_training


# Parts of the trainable mask decoder that the mask losses cannot reach: the IoU and object-score heads (their
# outputs are not in the loss, as in the official recipe) and the hypernetwork MLPs of the masks not chosen.
UNREACHED_BY_MASK_LOSS = ("iou_prediction_head", "pred_obj_score_head", "output_hypernetworks_mlps")


def image_sample(seed: int, turns: int = 2) -> dict:
    """A referring sample with one turn (and mask) per shape of a `turns`-shape scene."""
    return referring_sample(np.random.default_rng(seed), [random_scene(seed, size=(96, 64), num_shapes=turns)])


def video_sample(seed: int) -> dict:
    rng = np.random.default_rng(seed)
    return referring_sample(rng, moving_clip(rng, (80, 64), 3, 2))


def text_sample() -> dict:
    image = random_scene(5, size=(64, 64)).image
    conversation = [
        {"role": "user", "content": "<image>How many shapes are there?"},
        {"role": "assistant", "content": "Three."},
    ]
    return {"image": image, "conversation": conversation, "masks": np.zeros((0, 1, 64, 64), dtype=bool)}


@pytest.mark.parametrize("family", FAMILIES)
def test_collator_prompts_as_inference_and_labels_only_answers(tiny_models, family):
    _, processor = tiny_models(family)
    sample = image_sample(0, turns=2)
    encoded = Sa2VADataCollator(processor).encode(sample)
    question = sample["conversation"][0]["content"]
    inference = processor(text=processor.build_prompt(question, num_images=1), images=[sample["image"]])
    prompt_ids = inference["input_ids"][0]
    assert torch.equal(encoded["input_ids"][: len(prompt_ids)], prompt_ids)
    assert torch.equal(encoded["pixel_values"], inference["pixel_values"])
    labelled = encoded["input_ids"][encoded["labels"] != IGNORE_INDEX]
    end = processor.turn_end().rstrip()
    assert processor.tokenizer.decode(labelled) == f"Sure, [SEG].{end}Sure, [SEG].{end}"
    assert int((encoded["input_ids"] == processor.seg_token_id).sum()) == encoded["masks"].shape[0] == 2


def test_collator_batches_images_videos_and_text(tiny_models):
    _, processor = tiny_models("internvl")
    batch = Sa2VADataCollator(processor)([image_sample(0, 1), video_sample(1), text_sample()])
    assert batch["input_ids"].shape == batch["labels"].shape == batch["attention_mask"].shape
    assert batch["sam_frames_per_sample"].tolist() == [1, 3, 0]
    assert batch["sam_pixel_values"].shape[0] == 4
    assert [tuple(m.shape[:2]) for m in batch["gt_masks"]] == [(1, 1), (2, 3), (0, 0)]
    assert batch["tiles_per_sample"].tolist()[1] == 3
    lengths = batch["attention_mask"].sum(1)
    assert (batch["input_ids"][2, lengths[2] :] == processor.tokenizer.pad_token_id).all()
    with pytest.raises(ValueError, match="over `max_length` 10.*Nothing is truncated"):
        Sa2VADataCollator(processor, max_length=10)([text_sample()])


@pytest.mark.parametrize("family", FAMILIES)
def test_loss_terms_and_every_trainable_parameter_gets_a_gradient(family):
    model, processor = build_tiny_model(family)
    model.train()
    freeze_for_finetuning(model)
    batch = Sa2VADataCollator(processor)([image_sample(0, 2), video_sample(1), text_sample()])
    torch.manual_seed(0)
    outputs = model(**batch)
    expected = outputs.lm_loss + 2.0 * outputs.mask_bce_loss + 0.5 * outputs.mask_dice_loss
    torch.testing.assert_close(outputs.loss, expected)
    outputs.loss.backward()
    without = [n for n, p in model.named_parameters() if p.requires_grad and (p.grad is None or not p.grad.any())]
    assert without, "the IoU head never gets a gradient; the test would not notice a change"
    assert all(any(part in name for part in UNREACHED_BY_MASK_LOSS) for name in without), without
    reached = [n for n, p in model.named_parameters() if "output_hypernetworks_mlps" in n and p.grad is not None]
    assert reached, "no mask hypernetwork was trained"
    frozen = [n for n, p in model.named_parameters() if not p.requires_grad]
    assert any(".memory_attention." in n for n in frozen) and any("sam2.vision_encoder" in n for n in frozen)
    seg_row = model.get_input_embeddings().weight.grad[model.config.seg_token_id]
    assert seg_row.abs().sum() > 0


def test_mask_loss_is_zero_and_connected_without_targets():
    model, processor = build_shapes_model()
    batch = Sa2VADataCollator(processor)([text_sample()])
    outputs = model(**batch)
    assert outputs.mask_bce_loss.item() == 0.0 and outputs.mask_dice_loss.item() == 0.0
    outputs.loss.backward()
    assert model.seg_projector[0].weight.grad is not None


def test_gt_masks_must_match_the_seg_tokens():
    model, processor = build_shapes_model()
    batch = Sa2VADataCollator(processor)([image_sample(0, 2)])
    batch["gt_masks"] = [batch["gt_masks"][0][:1]]
    with pytest.raises(ValueError, match=r"Sample 0 has 2 \[SEG\] tokens and 1 SAM-2 frames.*\(2, 1, H, W\)"):
        model(**batch)


def test_activation_checkpointing_gives_the_same_loss_and_gradients():
    model, processor = build_shapes_model()
    model.train()
    batch = Sa2VADataCollator(processor)([image_sample(0, 2), video_sample(1)])
    results = []
    for checkpointing in (False, True):
        if checkpointing:
            model.activation_checkpointing_enable()
        model.zero_grad()
        torch.manual_seed(0)
        loss = model(**batch).loss
        loss.backward()
        results.append((loss.detach(), model.seg_projector[0].weight.grad.clone()))
    assert model.is_activation_checkpointing
    torch.testing.assert_close(results[0][0], results[1][0])
    torch.testing.assert_close(results[0][1], results[1][1])


@pytest.fixture(scope="module")
def shapes_folder(tmp_path_factory):
    """An untrained shapes model saved in Hub layout, and a 4-sample JSON-lines dataset of shapes images."""
    root = tmp_path_factory.mktemp("training")
    model, processor = build_shapes_model(seed=0)
    model.save_pretrained(root / "model")
    processor.save_pretrained(root / "model")
    lines = []
    for index in range(4):
        sample = image_sample(index, turns=1)
        sample["image"].save(root / f"image{index}.png")
        masks = [[rle_encode(frame) for frame in obj] for obj in sample["masks"]]
        conversations = [{"from": "human" if t["role"] == "user" else "gpt", "value": t["content"]}
                         for t in sample["conversation"]]  # fmt: skip
        lines.append(json.dumps({"image": f"image{index}.png", "conversations": conversations, "masks": masks}))
    (root / "train.jsonl").write_text("\n".join(lines) + "\n")
    return root


def fixed_batch_loss(model, batch) -> float:
    torch.manual_seed(0)
    with torch.no_grad():
        return float(model(**batch).loss)


def test_lora_run_lowers_the_loss_and_merges_into_a_model_that_loads(shapes_folder, tmp_path):
    from peft import PeftModel

    from sa2va_hf.training import JsonlDataset

    config = TrainConfig(
        model=str(shapes_folder / "model"),
        output_dir=str(tmp_path / "run"),
        datasets=[{"type": "jsonl", "path": str(shapes_folder / "train.jsonl")}],
        lora={"r": 8, "lora_alpha": 16, "lora_dropout": 0.0},
        training_args={"max_steps": 8, "per_device_train_batch_size": 4, "gradient_accumulation_steps": 1,
                       "learning_rate": 3e-3, "warmup_steps": 0, "lr_scheduler_type": "constant"},
    )  # fmt: skip
    base = AutoModel.from_pretrained(shapes_folder / "model")
    processor = AutoProcessor.from_pretrained(shapes_folder / "model")
    processor_batch = Sa2VADataCollator(processor)([JsonlDataset(shapes_folder / "train.jsonl")[i] for i in range(4)])
    before = fixed_batch_loss(base, processor_batch)
    trainer = run_training(config)
    peft_model = trainer.model.eval()
    after = fixed_batch_loss(peft_model, processor_batch)
    assert after < 0.9 * before, (before, after)

    run = tmp_path / "run"
    assert (run / "adapter_config.json").is_file() and (run / "processor_config.json").is_file()
    merged = AutoModel.from_pretrained(run / "merged").eval()
    assert type(merged).__name__ == "Sa2VAForConditionalGeneration"
    assert fixed_batch_loss(merged, processor_batch) == pytest.approx(after, rel=1e-4)
    reloaded = PeftModel.from_pretrained(AutoModel.from_pretrained(shapes_folder / "model"), run).eval()
    assert fixed_batch_loss(reloaded, processor_batch) == pytest.approx(after, rel=1e-5)


def test_two_processes_agree_on_the_weights(shapes_folder, tmp_path):
    env = {**os.environ, "ACCELERATE_USE_CPU": "1", "CUDA_VISIBLE_DEVICES": "", "OMP_NUM_THREADS": "1"}
    env["PYTHONPATH"] = os.pathsep.join([str(Path(__file__).parent), *sys.path])
    command = [sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", "2"]
    command += ["--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no"]
    command += [str(Path(__file__).parent / "distributed_training_worker.py")]
    command += [str(shapes_folder / "model"), str(shapes_folder / "train.jsonl"), str(tmp_path)]
    completed = subprocess.run(command, env=env, capture_output=True, text=True, timeout=300)
    assert completed.returncode == 0, completed.stderr[-3000:]
    ranks = [json.loads((tmp_path / f"rank{i}.json").read_text()) for i in range(2)]
    assert ranks[0]["world_size"] == ranks[1]["world_size"] == 2
    assert ranks[0]["digest"] == ranks[1]["digest"]


def test_train_command_errors_name_the_problem(tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_info:
        cli_main(["train", "--model", "somewhere"])
    assert exit_info.value.code == 2
    assert "missing output_dir, datasets" in capsys.readouterr().err
    config = tmp_path / "train.yaml"
    config.write_text("model: m\noutput_dir: o\ndatasets: [{type: csv, path: x}]\nepochs: 3\n")
    with pytest.raises(SystemExit):
        cli_main(["train", "--config", str(config)])
    assert "unknown key(s) epochs" in capsys.readouterr().err
    config.write_text("model: m\noutput_dir: o\ndatasets: [{type: csv, path: x}]\n")
    with pytest.raises(ValueError, match=r"datasets\[0\]: unknown type 'csv'"):
        from sa2va_hf.training import build_dataset

        build_dataset([{"type": "csv", "path": "x"}])


def test_mask_losses_vanish_on_a_perfect_prediction_and_sample_the_boundary():
    from sa2va_hf.models.sa2va.loss_sa2va import mask_losses, sample_uncertain_points

    target = torch.zeros(2, 64, 64)
    target[0, 16:48, 16:48] = 1
    target[1, :, :20] = 1
    perfect = (target * 2 - 1) * 30
    # Uniform points: only the few that straddle an edge (target and logit both interpolated) cost anything.
    bce, dice = mask_losses(perfect, target, 12544, 3.0, 0.0)
    uniform_wrong_bce, _ = mask_losses(-perfect, target, 12544, 3.0, 0.0)
    assert bce.item() < uniform_wrong_bce.item() / 50 and dice.item() < 0.02
    # Three quarters of the points on the edges, where bilinear sampling leaves soft targets and logits near 0.
    edge_bce, edge_dice = mask_losses(perfect, target, 12544, 3.0, 0.75)
    wrong_bce, wrong_dice = mask_losses(-perfect, target, 12544, 3.0, 0.75)
    assert edge_bce.item() < wrong_bce.item() / 10 and edge_dice.item() < 0.3 < 0.9 < wrong_dice.item()

    distance = torch.linspace(-1, 1, 64).abs()[None, None, None, :].expand(1, 1, 64, 64)
    points = sample_uncertain_points(distance, 1000, 3.0, 0.75)
    assert points.shape == (1, 1000, 2)
    uncertain_x = points[0, :750, 0]
    assert (uncertain_x - 0.5).abs().mean() < 0.2 < (points[0, 750:, 0] - 0.5).abs().mean() + 0.1


def test_targets_finer_than_the_logits_teach_where_inside_a_cell_an_edge_falls():
    """`Sa2VAConfig.mask_target_size`: resized to the 16 x 16 logit grid (official), a 64-px target whose edge lies
    halfway through logit cell 6 has it at the cell border (7.0); kept at 64 px, the loss prefers the true edge (6.5)."""
    from sa2va_hf.models.sa2va.loss_sa2va import mask_losses, resize_target_masks

    target = torch.zeros(1, 64, 64)
    target[:, :, :26] = 1  # the edge at pixel 26 = 6.5 cells of 4 pixels
    cell_centres = torch.arange(16) + 0.5

    def ramp(edge: float) -> torch.Tensor:
        return (-4.0 * (cell_centres - edge)).expand(1, 16, 16)

    def bce(logits: torch.Tensor, targets: torch.Tensor) -> float:
        torch.manual_seed(0)
        return mask_losses(logits, targets, 50000, 1.0, 0.0)[0].item()

    coarse = resize_target_masks(target, (16, 16))
    assert bce(ramp(7.0), coarse) < bce(ramp(6.5), coarse)
    assert bce(ramp(6.5), target) < bce(ramp(7.0), target)
    model, _ = build_shapes_model()
    logits = torch.zeros(3, 48, 48)
    assert model.mask_target_grid(logits) == (192, 192) == (model.config.mask_target_size,) * 2
    model.config.mask_target_size = None
    assert model.mask_target_grid(logits) == (48, 48)


def test_visual_prompt_samples_batch_like_single_samples():
    model, processor = build_shapes_model()
    model.eval()
    scene = random_scene(3, size=(96, 64), num_shapes=2)
    region = {
        "image": scene.image,
        "conversation": [
            {"role": "user", "content": "<image>What is region1?"},
            {"role": "assistant", "content": f"The {scene.shapes[0].name}."},
        ],
        "masks": np.zeros((0, 1, 64, 96), dtype=bool),
        "mask_prompts": scene.masks[0][None],
    }
    collator = Sa2VADataCollator(processor)
    single = collator([region])
    batch = collator([region, image_sample(0, 1)])
    assert len(batch["region_masks"]) == 2 and batch["region_masks"][1] is None
    with torch.no_grad():
        alone = model(**single).logits[0]
        together = model(**batch).logits[0, : alone.shape[0]]
    torch.testing.assert_close(alone, together, atol=1e-4, rtol=1e-4)
