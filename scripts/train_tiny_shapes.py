"""Train the embedded default model ("tiny-shapes") on the synthetic shapes task and save it with its scores.

    python scripts/train_tiny_shapes.py --output-dir src/sa2va_hf/assets/tiny-shapes

The recipe (written next to the weights as `training_recipe.json`): every module trained from scratch with
`Sa2VATrainer` (stock `transformers.Trainer`), AdamW, cosine schedule, batch 8, on CPU in about half an hour.
Held-out scores come from `evaluate_shapes` on a seed the training never saw, measured on the saved weights.
"""

import argparse
import json
import tempfile
import time
from pathlib import Path

import torch
from transformers import TrainingArguments

from sa2va_hf.models.sa2va.modeling_sa2va import Sa2VAForConditionalGeneration
from sa2va_hf.models.sa2va.processing_sa2va import Sa2VAProcessor
from sa2va_hf.training.collator import Sa2VADataCollator
from sa2va_hf.training.shapes import ShapesDataset, build_shapes_model, evaluate_shapes
from sa2va_hf.training.trainer import Sa2VATrainer


def drop_remote_code(folder: Path) -> None:
    """The package's own classes load the bundled model: remove the copy of the remote code and its `auto_map`."""
    for path in folder.glob("*.py"):
        path.unlink()
    for path in folder.glob("*config.json"):
        config = json.loads(path.read_text())
        for section in (config, *(v for v in config.values() if isinstance(v, dict))):
            section.pop("auto_map", None)
        path.write_text(json.dumps(config, indent=2, sort_keys=True) + "\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--output-dir", required=True, type=Path)
    parser.add_argument("--priming-steps", type=int, default=250, help="curriculum stage: [SEG] followed by its name")
    parser.add_argument("--max-steps", type=int, default=750, help="main stage: the final answer format")
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--learning-rate", type=float, default=2e-3)
    parser.add_argument("--clip-frames", type=int, default=4, help="most frames per training clip (2 at least)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--eval-seed", type=int, default=1234)
    parser.add_argument("--eval-images", type=int, default=100, help="held-out referring images")
    parser.add_argument("--eval-clips", type=int, default=20, help="held-out referring clips (8 frames)")
    parser.add_argument("--eval-others", type=int, default=20, help="held-out absent-shape and caption questions each")
    args = parser.parse_args()

    model, processor = build_shapes_model(seed=args.seed)
    recipe = {
        "per_device_train_batch_size": args.batch_size,
        "learning_rate": args.learning_rate,
        "warmup_steps": 0.03,
        "weight_decay": 0.01,
        "max_grad_norm": 1.0,
        "seed": args.seed,
        "clip_frames": [2, args.clip_frames],
    }
    # Stage 1 (priming, constant rate after warm-up): [SEG] followed by its name; stage 2 (cosine to 0): the final
    # "Sure, [SEG]." answers. Both stages draw fresh scenes (different seeds).
    clip_frames = (2, args.clip_frames)
    stages = [
        ("priming", args.priming_steps, "constant_with_warmup", ShapesDataset(
            args.priming_steps * args.batch_size, seed=args.seed + 1, video_frames=clip_frames, priming=True)),
        ("main", args.max_steps, "cosine", ShapesDataset(
            args.max_steps * args.batch_size, seed=args.seed, video_frames=clip_frames)),
    ]  # fmt: skip
    history = {}
    start = time.time()
    for name, steps, schedule, dataset in stages:
        with tempfile.TemporaryDirectory() as scratch:
            training_args = TrainingArguments(
                output_dir=scratch,
                max_steps=steps,
                lr_scheduler_type=schedule,
                logging_steps=25,
                save_strategy="no",
                dataloader_num_workers=1,
                dataloader_persistent_workers=True,
                report_to=[],
                remove_unused_columns=False,
                use_cpu=not torch.cuda.is_available(),
                **{k: v for k, v in recipe.items() if k != "clip_frames"},
            )
            trainer = Sa2VATrainer(
                model=model, args=training_args, train_dataset=dataset, data_collator=Sa2VADataCollator(processor)
            )
            trainer.train()
        logged = [entry for entry in trainer.state.log_history if "loss" in entry]
        history[name] = {
            "steps": steps,
            "lr_scheduler_type": schedule,
            "first_logged": logged[0] if logged else None,
            "last_logged": logged[-1] if logged else None,
        }
    minutes = (time.time() - start) / 60

    model.eval()
    model.half()
    model.config.dtype = "float32"
    args.output_dir.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(args.output_dir)
    processor.save_pretrained(args.output_dir)
    drop_remote_code(args.output_dir)

    saved_model = Sa2VAForConditionalGeneration.from_pretrained(args.output_dir).eval()
    saved_processor = Sa2VAProcessor.from_pretrained(args.output_dir)
    scores = evaluate_shapes(
        saved_model,
        saved_processor,
        seed=args.eval_seed,
        num_images=args.eval_images,
        num_clips=args.eval_clips,
        num_absent=args.eval_others,
        num_captions=args.eval_others,
    )
    report = {
        "recipe": recipe,
        "train_minutes": round(minutes, 1),
        "torch_threads": torch.get_num_threads(),
        "device": "cuda" if torch.cuda.is_available() else "cpu",
        "stages": history,
        "held_out_scores": scores,
    }
    (args.output_dir / "training_recipe.json").write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
