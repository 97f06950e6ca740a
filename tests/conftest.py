"""Shared test fixtures: the official reference fixtures folder and tiny models built once per session."""

import os
from pathlib import Path

import pytest
import torch


FIXTURES = Path(os.environ.get("SA2VA_FIXTURES", Path(__file__).resolve().parents[2] / "shared" / "fixtures"))
FAMILIES = ("internvl", "qwen2_5_vl", "qwen3_vl")

torch.set_num_threads(max(1, min(2, os.cpu_count() or 1)))


def official_fixture(name: str) -> Path:
    """The folder of an official reference fixture; skips the test (with the reason) when fixtures are absent."""
    path = FIXTURES / name
    if not path.is_dir():
        if os.environ.get("CI"):
            pytest.fail(f"official fixture {path} is missing in CI (set SA2VA_FIXTURES)")
        pytest.skip(f"official fixture {path} not present (set SA2VA_FIXTURES to the shared/fixtures folder)")
    return path


@pytest.fixture(scope="session")
def tiny_models():
    """`family -> (model, processor)`, each tiny model built once per test session."""
    from sa2va_hf.tiny import build_tiny_model

    cache = {}

    def get(family: str):
        if family not in cache:
            cache[family] = build_tiny_model(family, seed=0)
        return cache[family]

    return get
