"""What every evaluation runner shares: the predictor, resumable sharded execution and the results file.

A *predictor* is any object with `predict_forward(image=... | video=..., text=...) -> dict` returning the keys of
[`Sa2VAForConditionalGeneration.predict_forward`] (`"prediction"`, `"prediction_masks"`). A model is wrapped by
`ModelPredictor` (which binds its processor); tests and custom pipelines pass their own object, or name a factory on
the command line with `--predictor module:function`.
"""

import argparse
import importlib
import json
import logging
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Protocol

from tqdm.auto import tqdm

from .distributed import Shard


logger = logging.getLogger(__name__)

RECORDS_PREFIX = "records.rank"


class Predictor(Protocol):
    """Anything that answers a prompt about an image or a video with text and masks."""

    def predict_forward(self, **kwargs: Any) -> dict:
        """Return `{"prediction": str, "prediction_masks": [bool array (num_frames, height, width) per [SEG]]}`."""
        ...


class ModelPredictor:
    """A Sa2VA model and its processor as a predictor (the processor and generation options are bound).

    Args:
        model: a model with `predict_forward` (e.g. [`Sa2VAForConditionalGeneration`]).
        processor: its processor.
        generate_kwargs: extra `generate` arguments for every call (e.g. `max_new_tokens`).
    """

    def __init__(self, model: Any, processor: Any, **generate_kwargs: Any) -> None:
        self.model = model
        self.processor = processor
        self.generate_kwargs = generate_kwargs

    def predict_forward(self, **kwargs: Any) -> dict:
        """Call the model's `predict_forward` with the bound processor and generation options."""
        return self.model.predict_forward(processor=self.processor, **self.generate_kwargs, **kwargs)


def add_common_arguments(parser: argparse.ArgumentParser) -> None:
    """The model / predictor / output options every runner takes."""
    group = parser.add_mutually_exclusive_group(required=True)
    group.add_argument("--model", help="a preset name, a local folder or a Hub id of a Sa2VA checkpoint")
    group.add_argument("--predictor", help="`module:function` returning a predictor (an object with predict_forward)")
    parser.add_argument("--dtype", default="bfloat16", choices=["bfloat16", "float16", "float32"])
    parser.add_argument("--max-new-tokens", type=int, default=512, help="generation length of each answer")
    parser.add_argument("--output", required=True, type=Path, help="folder for results.json and resumable records")
    parser.add_argument("--limit", type=int, default=None, help="evaluate only the first N items (quick checks)")


def load_predictor(args: argparse.Namespace, device: str) -> Predictor:
    """Build the predictor named by `--predictor module:function`, or load `--model` onto `device`.

    Raises:
        ValueError: when `--predictor` is not `module:function`.
    """
    if args.predictor:
        module_name, sep, attribute = args.predictor.partition(":")
        if not sep or not module_name or not attribute:
            raise ValueError(f"--predictor must be `module:function`, got {args.predictor!r}")
        return getattr(importlib.import_module(module_name), attribute)()
    import torch

    from ..presets import PRESET_NAMES, load_preset

    dtype = getattr(torch, args.dtype)
    if args.model in PRESET_NAMES:
        model, processor = load_preset(args.model)
    else:
        from transformers import AutoModel, AutoProcessor

        model = AutoModel.from_pretrained(args.model, dtype=dtype)
        processor = AutoProcessor.from_pretrained(args.model)
    model = model.to(device=device, dtype=dtype).eval()
    return ModelPredictor(model, processor, max_new_tokens=args.max_new_tokens)


def load_records(output: Path) -> dict[str, dict]:
    """Every finished item's record found in `output/records.rank*.jsonl`, by item id (any earlier world size)."""
    records: dict[str, dict] = {}
    for path in sorted(output.glob(f"{RECORDS_PREFIX}*.jsonl")):
        for line_number, line in enumerate(path.read_text().splitlines(), start=1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError:
                logger.warning(
                    "%s:%d is not JSON (an interrupted write?); that item will be redone", path, line_number
                )
                continue
            records[record["id"]] = record
    return records


def run_items(
    items: Sequence[Any],
    evaluate: Callable[[Any], dict],
    item_id: Callable[[Any], str],
    output: Path,
    shard: Shard,
    description: str,
) -> list[dict] | None:
    """Evaluate this rank's share of the unfinished items and return every record, in item order, on rank 0.

    Each record is appended to `output/records.rank<rank>.jsonl` as soon as it is computed, so an interrupted run
    resumes where it stopped (with any number of processes).

    Args:
        items (`Sequence`): everything to evaluate.
        evaluate (`Callable`): item → JSON-ready record (its scores); the runner adds `"id"`.
        item_id (`Callable`): item → unique, stable id.
        output (`Path`): the results folder.
        shard ([`Shard`]): this process's place in the run.
        description (`str`): the progress bar's label.

    Returns:
        `list[dict]` of all records on rank 0, `None` on the other ranks.
    """
    output.mkdir(parents=True, exist_ok=True)
    done = load_records(output)
    todo = [item for item in items if item_id(item) not in done]
    if done and shard.is_main:
        logger.info("resuming: %d of %d items already done in %s", len(items) - len(todo), len(items), output)
    # Every rank must read the same finished set before any rank appends to its file; otherwise the ranks split
    # different to-do lists and items are skipped.
    shard.barrier()
    mine = shard.split(todo)
    new_records = []
    with open(output / f"{RECORDS_PREFIX}{shard.rank}.jsonl", "a") as sink:
        for item in tqdm(mine, desc=f"{description} [rank {shard.rank}]", disable=None):
            record = {"id": item_id(item), **evaluate(item)}
            sink.write(json.dumps(record) + "\n")
            sink.flush()
            new_records.append(record)
    gathered = shard.gather(new_records)
    shard.barrier()
    if not shard.is_main:
        return None
    done.update((record["id"], record) for record in gathered)
    return [done[item_id(item)] for item in items]


def write_results(output: Path, summary: dict, records: list[dict], config: dict) -> Path:
    """Write `output/results.json` with the summary metrics, the per-item records and the configuration used."""
    path = output / "results.json"
    path.write_text(json.dumps({"summary": summary, "config": config, "items": records}, indent=2) + "\n")
    return path


def config_of(args: argparse.Namespace, world_size: int) -> dict:
    """The run's configuration as JSON-ready values (paths as strings) plus the number of processes."""
    config = {key: str(value) if isinstance(value, Path) else value for key, value in vars(args).items()}
    config["num_processes"] = world_size
    return config
