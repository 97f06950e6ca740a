"""Run by `accelerate launch` in tests/test_training.py: a 2-step LoRA run, then each rank writes a digest of its
trainable weights (`rank{N}.json`) so the test can check the ranks agree."""

import hashlib
import json
import sys
from pathlib import Path

from sa2va_hf.training.train import TrainConfig, run_training


def main(model_dir: str, data: str, output_dir: str) -> None:
    config = TrainConfig(
        model=model_dir,
        output_dir=output_dir,
        datasets=[{"type": "jsonl", "path": data}],
        lora={"r": 4, "lora_alpha": 8, "lora_dropout": 0.0},
        merge_lora=False,
        training_args={
            "max_steps": 2,
            "per_device_train_batch_size": 1,
            "gradient_accumulation_steps": 1,
            "learning_rate": 1e-2,
            "warmup_steps": 0,
            "logging_steps": 1,
        },
    )
    trainer = run_training(config)
    digest = hashlib.sha256()
    total = 0.0
    for name, parameter in sorted(trainer.model.named_parameters()):
        if parameter.requires_grad:
            digest.update(name.encode())
            digest.update(parameter.detach().float().cpu().numpy().tobytes())
            total += float(parameter.detach().float().abs().sum())
    rank = trainer.args.process_index
    record = {"digest": digest.hexdigest(), "abs_sum": total, "world_size": trainer.args.world_size}
    (Path(output_dir) / f"rank{rank}.json").write_text(json.dumps(record))


if __name__ == "__main__":
    main(*sys.argv[1:4])
