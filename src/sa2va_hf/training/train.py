"""`sa2va-hf train`: fine-tune a Sa2VA checkpoint with `transformers.Trainer` (LoRA through `peft` by default).

    sa2va-hf train --config train.yaml
    accelerate launch --config_file examples/accelerate/ddp.yaml -m sa2va_hf.cli train --config train.yaml

The YAML file (every key can also be given as a flag; flags win):

    model: path/or/org/Sa2VA-checkpoint     # loaded with AutoModel / AutoProcessor
    output_dir: runs/my-finetune
    datasets:                               # mixed by weight (see `sa2va_hf.training`)
      - {type: jsonl, path: data/train.jsonl, root: data, weight: 1.0}
    num_samples: null                       # length of the mix per epoch (default: the sum of the datasets)
    max_length: 8192                        # longer samples are an error, never cut
    lora: {r: 128, lora_alpha: 256, lora_dropout: 0.05}   # null: train the LLM in full
    train_vision: false                     # the vision tower (frozen in the official recipe)
    train_sam2_encoder: false               # SAM-2's image encoder (frozen in the official recipe)
    merge_lora: true                        # also write output_dir/merged, loadable with AutoModel
    training_args: {learning_rate: 4.0e-5, num_train_epochs: 1, per_device_train_batch_size: 2, ...}

`training_args` takes any `transformers.TrainingArguments` field; `remove_unused_columns` is always `False` (the
collator's keys are all model inputs) and bf16 is switched on where the device supports it unless set.
"""

import argparse
import dataclasses
import json
import sys
from pathlib import Path

import torch
import yaml
from transformers import AutoModel, AutoProcessor, TrainingArguments
from transformers.utils import logging

from .collator import Sa2VADataCollator
from .datasets_registry import build_dataset
from .lora import freeze_for_finetuning, lora_config, merge_lora, trainable_parameter_summary, vision_tower
from .trainer import Sa2VATrainer


logger = logging.get_logger(__name__)

OFFICIAL_TRAINING_ARGS = {
    "learning_rate": 4e-5,
    "weight_decay": 0.05,
    "adam_beta2": 0.999,
    "max_grad_norm": 1.0,
    "warmup_steps": 0.05,
    "lr_scheduler_type": "cosine",
    "num_train_epochs": 1,
    "per_device_train_batch_size": 2,
    "gradient_accumulation_steps": 4,
    "logging_steps": 10,
    "save_strategy": "no",
    "report_to": [],
}


@dataclasses.dataclass
class TrainConfig:
    """What `sa2va-hf train` runs (see the module docstring for the YAML form)."""

    model: str
    output_dir: str
    datasets: list[dict]
    num_samples: int | None = None
    max_length: int | None = 8192
    lora: dict | None = dataclasses.field(default_factory=lambda: {"r": 128, "lora_alpha": 256, "lora_dropout": 0.05})
    train_vision: bool = False
    train_sam2_encoder: bool = False
    merge_lora: bool = True
    seed: int = 0
    training_args: dict = dataclasses.field(default_factory=dict)

    @classmethod
    def from_dict(cls, values: dict, source: str = "config") -> "TrainConfig":
        known = {field.name for field in dataclasses.fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ValueError(f"{source}: unknown key(s) {', '.join(unknown)}; known keys: {', '.join(sorted(known))}.")
        missing = [name for name in ("model", "output_dir", "datasets") if not values.get(name)]
        if missing:
            raise ValueError(f"{source}: missing {', '.join(missing)} (give them in the YAML file or as flags).")
        return cls(**values)


def training_arguments(config: TrainConfig) -> TrainingArguments:
    """The official optimisation settings, updated by `config.training_args`."""
    values = {**OFFICIAL_TRAINING_ARGS, **config.training_args}
    values.update(output_dir=config.output_dir, remove_unused_columns=False, seed=config.seed)
    if "bf16" not in config.training_args and "fp16" not in config.training_args:
        values["bf16"] = torch.cuda.is_available() and torch.cuda.is_bf16_supported()
    return TrainingArguments(**values)


def prepare_model(config: TrainConfig):
    """Load the checkpoint, freeze what the recipe freezes and wrap it with LoRA; returns `(model, processor)`."""
    processor = AutoProcessor.from_pretrained(config.model)
    model = AutoModel.from_pretrained(config.model)
    if config.lora is None:
        freeze_for_finetuning(model, train_vision=config.train_vision, train_sam2_encoder=config.train_sam2_encoder)
    else:
        from peft import get_peft_model

        model = get_peft_model(model, lora_config(model, processor.tokenizer, **config.lora))
        base = model.base_model.model
        if config.train_vision:
            vision_tower(base).requires_grad_(True)
        if config.train_sam2_encoder:
            base.sam2.vision_encoder.requires_grad_(True)
    logger.info(trainable_parameter_summary(model))
    return model, processor


def run_training(config: TrainConfig) -> Sa2VATrainer:
    """Train, then save the result in `output_dir` (the adapter with LoRA, else the model) and, with LoRA and
    `merge_lora`, a merged model in `output_dir/merged`. Returns the trainer."""
    args = training_arguments(config)
    model, processor = prepare_model(config)
    dataset = build_dataset(config.datasets, num_samples=config.num_samples, seed=config.seed)
    collator = Sa2VADataCollator(processor, max_length=config.max_length)
    trainer = Sa2VATrainer(model=model, args=args, train_dataset=dataset, data_collator=collator)
    trainer.train()
    trainer.save_model(config.output_dir)
    if trainer.is_world_process_zero():
        processor.save_pretrained(config.output_dir)
        if config.lora is not None and config.merge_lora:
            merged_dir = Path(config.output_dir) / "merged"
            merge_lora(trainer.accelerator.unwrap_model(trainer.model)).save_pretrained(merged_dir)
            processor.save_pretrained(merged_dir)
        (Path(config.output_dir) / "sa2va_train_config.json").write_text(
            json.dumps(dataclasses.asdict(config), indent=2) + "\n"
        )
    return trainer


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="sa2va-hf train", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--config", type=Path, help="YAML file with the keys above")
    parser.add_argument("--model", help="checkpoint folder or Hub id")
    parser.add_argument("--output-dir", help="where the adapter / model and the merged model go")
    parser.add_argument("--data", action="append", help="a JSON-lines dataset (repeatable); root = its folder")
    parser.add_argument("--max-steps", type=int, help="stop after this many optimizer steps")
    parser.add_argument("--learning-rate", type=float)
    parser.add_argument("--no-lora", action="store_true", help="train the LLM in full instead of LoRA")
    return parser


def config_from_args(args: argparse.Namespace) -> TrainConfig:
    values: dict = {}
    if args.config is not None:
        if not args.config.is_file():
            raise FileNotFoundError(f"--config: no such file {args.config}")
        values = yaml.safe_load(args.config.read_text()) or {}
        if not isinstance(values, dict):
            raise ValueError(f"--config: {args.config} must hold a mapping of keys to values.")
    if args.model:
        values["model"] = args.model
    if args.output_dir:
        values["output_dir"] = args.output_dir
    if args.data:
        values["datasets"] = [{"type": "jsonl", "path": path, "root": str(Path(path).parent)} for path in args.data]
    training = dict(values.get("training_args") or {})
    if args.max_steps is not None:
        training["max_steps"] = args.max_steps
    if args.learning_rate is not None:
        training["learning_rate"] = args.learning_rate
    values["training_args"] = training
    if args.no_lora:
        values["lora"] = None
    return TrainConfig.from_dict(values, source=str(args.config or "flags"))


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        config = config_from_args(args)
    except (ValueError, FileNotFoundError) as error:
        parser.error(str(error))
    run_training(config)
    return 0


if __name__ == "__main__":
    sys.exit(main())
