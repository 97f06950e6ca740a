"""The model folder is Hub remote code: flat, importing only what a Hub user has (and its own siblings)."""

import ast
from pathlib import Path

import pytest


MODEL_DIR = Path(__file__).resolve().parents[1] / "src" / "sa2va_hf" / "models" / "sa2va"
ALLOWED_TOP_LEVEL = {"torch", "numpy", "PIL", "transformers", "huggingface_hub", "safetensors", "tokenizers"}
OPTIONAL_IN_TRY = {"av"}  # optional dependencies: imported only inside `try`, which the Hub loader does not require
STDLIB_ALLOWED = {
    "collections", "contextlib", "copy", "dataclasses", "math", "os", "pathlib", "re", "typing", "itertools",
    "functools", "json", "warnings", "shutil",
}  # fmt: skip
FILES = sorted(p for p in MODEL_DIR.glob("*.py") if p.name != "__init__.py")


def test_model_folder_has_the_expected_files():
    names = {p.name for p in FILES}
    assert {"configuration_sa2va.py", "modeling_sa2va.py", "modeling_sa2va_sam2.py", "processing_sa2va.py",
            "image_processing_sa2va.py", "chat_templates_sa2va.py"} <= names  # fmt: skip


@pytest.mark.parametrize("path", FILES, ids=lambda p: p.name)
def test_imports_stay_inside_the_remote_code_rules(path):
    siblings = {p.stem for p in FILES}
    tree = ast.parse(path.read_text())
    in_try = {id(n) for t in ast.walk(tree) if isinstance(t, ast.Try) for b in t.body for n in ast.walk(b)}
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            if node.level > 1:
                pytest.fail(f"{path.name}:{node.lineno} uses a `..` import; remote code must be flat")
            if node.level == 1:
                assert node.module in siblings, f"{path.name}:{node.lineno} imports .{node.module}, not a sibling"
                continue
            top = node.module.split(".")[0]
        elif isinstance(node, ast.Import):
            top = node.names[0].name.split(".")[0]
        else:
            continue
        assert top != "sa2va_hf", f"{path.name}:{node.lineno} imports sa2va_hf (Hub users need not install it)"
        allowed = ALLOWED_TOP_LEVEL | STDLIB_ALLOWED | (OPTIONAL_IN_TRY if id(node) in in_try else set())
        assert top in allowed, f"{path.name}:{node.lineno} imports {top!r}"


def test_no_private_transformers_decorators():
    for path in FILES:
        text = path.read_text()
        for private in ("@auto_docstring", "@can_return_tuple", "@check_model_inputs", "@deprecate_kwarg"):
            assert private not in text, f"{path.name} uses {private}, a private transformers decorator"
