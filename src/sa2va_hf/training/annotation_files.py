"""Reading annotation files: a JSON list of samples, or JSON lines (one sample object per line)."""

import json
from pathlib import Path


def read_json_list(path: Path) -> list:
    """The JSON list in `path`.

    Raises:
        `FileNotFoundError` when `path` is missing; `ValueError` when it is not JSON or not a list.
    """
    if not path.is_file():
        raise FileNotFoundError(f"annotation file {str(path)!r} does not exist.")
    with path.open(encoding="utf-8") as file:
        try:
            records = json.load(file)
        except json.JSONDecodeError as error:
            raise ValueError(f"{str(path)!r} is not valid JSON ({error}).") from error
    if not isinstance(records, list):
        raise ValueError(f"{str(path)!r} must hold a JSON list of samples, got {type(records).__name__}.")
    return records


def read_json_lines(path: Path) -> list[dict]:
    """One object per non-empty line of `path`; a sample's index is its position among those lines.

    Raises:
        `FileNotFoundError` when `path` is missing; `ValueError` naming the line that is not a JSON object.
    """
    if not path.is_file():
        raise FileNotFoundError(f"annotation file {str(path)!r} does not exist.")
    records = []
    with path.open(encoding="utf-8") as file:
        for line_number, line in enumerate(file, start=1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError as error:
                raise ValueError(f"{str(path)!r} line {line_number}: not valid JSON ({error}).") from error
            if not isinstance(record, dict):
                raise ValueError(
                    f"sample {len(records)} ({str(path)!r} line {line_number}): expected a JSON object, got "
                    f"{type(record).__name__}."
                )
            records.append(record)
    return records


def check_record_keys(record: dict, allowed: set[str], index: int) -> None:
    """Raise `ValueError` naming the sample and its fields outside `allowed` (nothing is silently ignored)."""
    unknown = sorted(set(record) - allowed)
    if unknown:
        raise ValueError(f"sample {index}: unknown fields {unknown}; allowed: {sorted(allowed)}.")


__all__ = ["check_record_keys", "read_json_lines", "read_json_list"]
