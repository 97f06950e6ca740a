"""Upload a Sa2VA folder to the Hugging Face Hub, with a model card.

```bash
sa2va-hf push ./Sa2VA-4B-hf my-org/Sa2VA-4B-hf --variant sa2va-4b
sa2va-hf convert official ./Sa2VA-4B ./Sa2VA-4B-hf --push-to-hub my-org/Sa2VA-4B-hf
```

The folder is what `sa2va-hf convert`, `sa2va-hf build` or `save_pretrained` (model and processor) wrote: config,
weights, processor files and the remote code. `push_to_hub` creates the repository if needed, adds a `README.md`
rendered from `assets/model_cards/sa2va.md.jinja` when the folder has none, and uploads the folder in one commit.

The card's front matter says `library_name: transformers` and `pipeline_tag: image-text-to-text` (the closest Hub
task; Sa2VA's own task is not one) with `inference: false`, since the hosted widget does not run remote code. For an
official variant (`--variant`, a key of `sa2va_hf.presets.OFFICIAL_VARIANTS`) it also names the base models, the
licenses that come with them and the scores ByteDance published for that checkpoint. Only name a variant for an
unchanged conversion of that checkpoint: the scores are the official checkpoint's, not a fine-tune's.

The token is the one `hf auth login` saved or `HF_TOKEN`, unless `token` is given; `HF_ENDPOINT` selects another Hub.
"""

import argparse
import json
import logging
import re
from dataclasses import asdict, dataclass
from importlib import resources
from pathlib import Path

import jinja2
import yaml
from huggingface_hub import HfApi

from ..presets import OFFICIAL_VARIANTS, TINY_PRESETS


logger = logging.getLogger(__name__)

MODEL_CARD_TEMPLATE = "sa2va.md.jinja"
MODEL_CARD_LICENSE = "apache-2.0"
DEFAULT_COMMIT_MESSAGE = "Upload Sa2VA checkpoint with sa2va-hf"
WEIGHTS_FILES = ("model.safetensors", "model.safetensors.index.json")
CARD_TAGS = ("sa2va", "sam2", "segmentation", "referring-segmentation", "video", "video-object-segmentation")


@dataclass(frozen=True)
class PublishedScores:
    """Scores ByteDance published for one checkpoint on its Hub model card (official implementation).

    Args:
        mme (`str`): MME, perception / cognition.
        mmbench (`float`): MMBench.
        refcoco (`float`): RefCOCO cIoU.
        refcoco_plus (`float`): RefCOCO+ cIoU.
        refcocog (`float`): RefCOCOg cIoU.
        mevis_val_u (`float`): MeViS J&F on `val_u`.
        ref_davis17 (`float`): Ref-DAVIS17 J&F.
    """

    mme: str
    mmbench: float
    refcoco: float
    refcoco_plus: float
    refcocog: float
    mevis_val_u: float
    ref_davis17: float


# The current model cards of ByteDance/Sa2VA-* (the InternVL2.5-generation rows; the January 2025 cards had lower
# numbers from an earlier run, see the behaviour reference §7.5). Sa2VA-Qwen3-VL-2B's card has no results table.
# fmt: off
PUBLISHED_SCORES: dict[str, PublishedScores] = {
    "sa2va-1b":            PublishedScores("1504/434", 71.9, 79.6, 73.6, 77.7, 53.4, 69.5),
    "sa2va-4b":            PublishedScores("1691/610", 81.8, 82.4, 77.6, 79.7, 55.9, 73.7),
    "sa2va-8b":            PublishedScores("1690/610", 84.4, 82.6, 78.0, 80.3, 58.9, 75.9),
    "sa2va-26b":           PublishedScores("1698/653", 85.8, 82.9, 79.3, 81.2, 61.8, 78.6),
    "sa2va-internvl3-2b":  PublishedScores("1631/559", 79.8, 81.4, 75.7, 80.3, 53.9, 74.5),
    "sa2va-internvl3-8b":  PublishedScores("1743/633", 83.0, 83.3, 78.9, 81.8, 56.4, 76.3),
    "sa2va-internvl3-14b": PublishedScores("1746/724", 84.3, 83.6, 79.9, 83.6, 59.2, 76.6),
    "sa2va-qwen2_5-vl-3b": PublishedScores("1533/572", 78.4, 79.6, 74.0, 77.1, 51.6, 73.4),
    "sa2va-qwen2_5-vl-7b": PublishedScores("1552/676", 84.5, 82.4, 77.5, 81.5, 56.4, 79.4),
    "sa2va-qwen3-vl-4b":   PublishedScores("1660/655", 86.3, 81.7, 77.4, 80.0, 57.1, 75.9),
}

# Base VLM -> (its language model when it is a separate model, the licenses of the parts), from the base models'
# cards: InternVL2.5 / InternVL3 are MIT and name their LLM's license; Qwen2.5-3B-Instruct and Qwen2.5-VL-3B-Instruct
# carry the Qwen Research License (the question of ByteDance/Sa2VA-4B discussion #2); the others are Apache-2.0.
BASE_VLM_NOTES: dict[str, tuple[str | None, str]] = {
    "OpenGVLab/InternVL2_5-1B":    ("Qwen2.5-0.5B-Instruct", "InternVL2.5: MIT; Qwen2.5-0.5B-Instruct: Apache-2.0"),
    "OpenGVLab/InternVL2_5-4B":    ("Qwen2.5-3B-Instruct", "InternVL2.5: MIT; Qwen2.5-3B-Instruct: Qwen Research License"),
    "OpenGVLab/InternVL2_5-8B":    ("internlm2_5-7b-chat", "InternVL2.5: MIT; internlm2_5-7b-chat: Apache-2.0"),
    "OpenGVLab/InternVL2_5-26B":   ("internlm2_5-20b-chat", "InternVL2.5: MIT; internlm2_5-20b-chat: Apache-2.0"),
    "OpenGVLab/InternVL3-2B":      ("Qwen2.5-1.5B", "InternVL3: MIT; Qwen2.5: Apache-2.0"),
    "OpenGVLab/InternVL3-8B":      ("Qwen2.5-7B", "InternVL3: MIT; Qwen2.5: Apache-2.0"),
    "OpenGVLab/InternVL3-14B":     ("Qwen2.5-14B", "InternVL3: MIT; Qwen2.5: Apache-2.0"),
    "Qwen/Qwen2.5-VL-3B-Instruct": (None, "Qwen2.5-VL-3B-Instruct: Qwen Research License"),
    "Qwen/Qwen2.5-VL-7B-Instruct": (None, "Qwen2.5-VL-7B-Instruct: Apache-2.0"),
    "Qwen/Qwen3-VL-2B-Instruct":   (None, "Qwen3-VL-2B-Instruct: Apache-2.0"),
    "Qwen/Qwen3-VL-4B-Instruct":   (None, "Qwen3-VL-4B-Instruct: Apache-2.0"),
}
# fmt: on

# `vlm_config.model_type` -> the transformers class that holds the VLM, and the card's family tag
VLM_CLASSES = {
    "internvl": "InternVLForConditionalGeneration",
    "qwen2_5_vl": "Qwen2_5_VLForConditionalGeneration",
    "qwen3_vl": "Qwen3VLForConditionalGeneration",
}


def _yaml_scalar(value: str) -> str:
    """`value` as a YAML scalar: plain when it reads back as itself (a word, a Hub id), else a JSON string (which is
    valid YAML too)."""
    if re.fullmatch(r"[A-Za-z0-9][\w.\-/]*", value) and yaml.safe_load(value) == value:
        return value
    return json.dumps(value)


def _check_variant_name(variant_name: str | None) -> None:
    if variant_name is not None and variant_name not in OFFICIAL_VARIANTS and variant_name not in TINY_PRESETS:
        raise ValueError(
            f"`variant_name` {variant_name!r} is not a known variant; pass one of "
            f"{', '.join((*OFFICIAL_VARIANTS, *TINY_PRESETS))}, or None for a card without published scores."
        )


def render_model_card(
    *,
    repo_id: str,
    variant_name: str | None = None,
    base_model: str | list[str] | None = None,
    source: str | None = None,
) -> str:
    """The `README.md` of a Sa2VA repository: YAML front matter, description, usage, published scores, license.

    Args:
        repo_id (`str`):
            The repository the card is for, `"namespace/name"`; the usage snippet loads it.
        variant_name (`str`, *optional*):
            A key of `OFFICIAL_VARIANTS` (e.g. `"sa2va-4b"`): the card names the official checkpoint and its base
            VLM as `base_model`, the base models' licenses, and the scores published for it (when there are). A key of
            `TINY_PRESETS` makes a card for a tiny random model. `None`: a generic card.
        base_model (`str` or `list[str]`, *optional*):
            Hub ids for `base_model` in the front matter, instead of the variant's `[official checkpoint, base VLM]`.
        source (`str`, *optional*):
            Where the weights come from (a Hub id or a folder), shown in the card; default: the official checkpoint.

    Returns:
        `str`: the card, Markdown with YAML front matter.

    Raises:
        ValueError: `repo_id` is not `"namespace/name"`, or `variant_name` is unknown.
    """
    if not isinstance(repo_id, str) or repo_id.count("/") != 1 or not all(repo_id.split("/")):
        raise ValueError(f"`repo_id` must be 'namespace/name' (e.g. 'my-org/Sa2VA-4B-hf'), got {repo_id!r}.")
    _check_variant_name(variant_name)
    variant = OFFICIAL_VARIANTS.get(variant_name) if variant_name is not None else None
    tiny_family = TINY_PRESETS.get(variant_name) if variant_name is not None else None

    base_models = [base_model] if isinstance(base_model, str) else list(base_model or ())
    variant_context = None
    family = tiny_family
    if variant is not None:
        family = variant.vlm_config["model_type"]
        llm, base_licenses = BASE_VLM_NOTES[variant.base_vlm]
        variant_context = {
            "hub_id": variant.hub_id,
            "base_vlm": variant.base_vlm,
            "llm": llm,
            "base_licenses": base_licenses,
            "published_params": variant.published_params,
            "vlm_class": VLM_CLASSES[family],
        }
        base_models = base_models or [variant.hub_id, variant.base_vlm]
        source = source or variant.hub_id
    scores = None
    if variant_name in PUBLISHED_SCORES:
        scores = {"hub_id": OFFICIAL_VARIANTS[variant_name].hub_id, **asdict(PUBLISHED_SCORES[variant_name])}

    environment = jinja2.Environment(
        undefined=jinja2.StrictUndefined, trim_blocks=True, lstrip_blocks=True, keep_trailing_newline=True
    )
    environment.filters["yaml"] = _yaml_scalar
    template_text = (resources.files("sa2va_hf") / "assets" / "model_cards" / MODEL_CARD_TEMPLATE).read_text()
    return environment.from_string(template_text).render(
        repo_id=repo_id,
        title=repo_id.split("/")[1],
        license=MODEL_CARD_LICENSE,
        base_models=base_models,
        tags=[*CARD_TAGS, *([family] if family else [])],
        variant=variant_context,
        tiny=tiny_family,
        source=source,
        scores=scores,
    )


def _vlm_signature(vlm_config: dict) -> tuple:
    """The shape facts that tell the released checkpoints apart (family, LLM width/depth/vocabulary, ViT width)."""
    text, vision = vlm_config.get("text_config") or {}, vlm_config.get("vision_config") or {}
    return (
        vlm_config.get("model_type"),
        text.get("model_type"),
        text.get("hidden_size"),
        text.get("num_hidden_layers"),
        text.get("vocab_size"),
        vision.get("hidden_size"),
    )


def match_official_variant(folder: str | Path) -> str | None:
    """The key of `OFFICIAL_VARIANTS` whose shapes the checkpoint in `folder` has, or `None`.

    Shapes cannot tell a fine-tune from the checkpoint it started from: use this only for conversions of the official
    checkpoints (what `sa2va-hf convert official` does).

    Args:
        folder (`str` or `os.PathLike`): a folder with a Sa2VA `config.json`.
    """
    config_path = Path(folder) / "config.json"
    if not config_path.is_file():
        return None
    signature = _vlm_signature(json.loads(config_path.read_text()).get("vlm_config") or {})
    matches = [name for name, variant in OFFICIAL_VARIANTS.items() if _vlm_signature(variant.vlm_config) == signature]
    return matches[0] if len(matches) == 1 else None


def push_to_hub(
    folder: str | Path,
    repo_id: str,
    *,
    token: str | None = None,
    private: bool = False,
    commit_message: str = DEFAULT_COMMIT_MESSAGE,
    variant_name: str | None = None,
    base_model: str | list[str] | None = None,
    source: str | None = None,
) -> str:
    """Upload a Sa2VA folder to the Hub, adding a model card when the folder has no `README.md`.

    Args:
        folder (`str` or `os.PathLike`):
            A saved Sa2VA: `config.json`, `model.safetensors` (or shards with their index), processor files and the
            remote code, as `sa2va-hf convert` / `build` or `save_pretrained` write them.
        repo_id (`str`):
            `"namespace/name"` (or `"name"` for the token's own namespace); created if it does not exist.
        token (`str`, *optional*):
            A Hub token with write access; default: the saved login or `HF_TOKEN`.
        private (`bool`, *optional*, defaults to `False`):
            Create the repository private; otherwise the Hub's default (public). An existing repository keeps its
            visibility.
        commit_message (`str`, *optional*):
            The commit's title.
        variant_name, base_model, source:
            The model card's, see [`render_model_card`]. The card is written into `folder` as `README.md` (and
            uploaded) only when `folder` has no `README.md`.

    Returns:
        `str`: the URL of the commit (a `huggingface_hub.CommitInfo`; its `oid` is the commit hash).

    Raises:
        FileNotFoundError: `folder` is not a folder.
        ValueError: `folder` holds no Sa2VA checkpoint, or `variant_name` is unknown.
        huggingface_hub.errors.HfHubHTTPError: the Hub refused a request (no write access, ...).
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"`folder` {str(folder)!r} is not a folder; pass the output folder of a conversion.")
    if not (folder / "config.json").is_file() or not any((folder / name).is_file() for name in WEIGHTS_FILES):
        raise ValueError(
            f"`folder` {str(folder)!r} holds no saved model (config.json and {' or '.join(WEIGHTS_FILES)}); write "
            "one with `sa2va-hf convert official`, `sa2va-hf build` or `model.save_pretrained(folder)`."
        )
    _check_variant_name(variant_name)

    api = HfApi(token=token)
    # `private=None` leaves a new repository's visibility to the Hub (public unless the namespace says otherwise)
    repo_url = api.create_repo(repo_id, private=True if private else None, exist_ok=True, repo_type="model")
    readme = folder / "README.md"
    if readme.exists():
        logger.info("Keeping the README.md already in %s.", folder)
    else:
        card = render_model_card(
            repo_id=repo_url.repo_id, variant_name=variant_name, base_model=base_model, source=source
        )
        readme.write_text(card)
        logger.info("Wrote the model card %s (variant: %s).", readme, variant_name or "none")
    commit = api.upload_folder(repo_id=repo_url.repo_id, folder_path=folder, commit_message=commit_message)
    logger.info("Uploaded %s to %s: %s", folder, repo_url.repo_id, commit.commit_url)
    return commit


def main(argv: list[str] | None = None) -> int:
    """Command line: `FOLDER REPO_ID [--private] [--variant NAME] [--source S] [--base-model ID] [--message M]`.

    Returns:
        `int`: 0 on success, 1 when the folder cannot be pushed (the reason is logged).
    """
    parser = argparse.ArgumentParser(
        prog="sa2va-hf push",
        description="Upload a converted or built Sa2VA folder to the Hugging Face Hub, with a model card. The token "
        "is the saved login (`hf auth login`) or HF_TOKEN.",
    )
    parser.add_argument("folder", metavar="FOLDER", help="the saved model (config.json, weights, processor, code)")
    parser.add_argument("repo_id", metavar="REPO_ID", help="the Hub repository, namespace/name (created if needed)")
    parser.add_argument("--private", action="store_true", help="create the repository private")
    parser.add_argument(
        "--variant",
        choices=(*OFFICIAL_VARIANTS, *TINY_PRESETS),
        default=None,
        metavar="NAME",
        help="the official checkpoint this is an unchanged conversion of (its base models, licenses and published "
        f"scores go into the card), or a tiny preset: {', '.join((*OFFICIAL_VARIANTS, *TINY_PRESETS))}",
    )
    parser.add_argument("--source", default=None, help="where the weights come from, for the card")
    parser.add_argument(
        "--base-model", action="append", default=None, help="base_model of the card (repeat for several)"
    )
    parser.add_argument("--message", default=DEFAULT_COMMIT_MESSAGE, help="the commit message")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    try:
        push_to_hub(
            args.folder,
            args.repo_id,
            private=args.private,
            commit_message=args.message,
            variant_name=args.variant,
            base_model=args.base_model,
            source=args.source,
        )
    except (ValueError, OSError) as error:  # OSError includes the Hub's HTTP errors
        logger.error("%s", error)
        return 1
    return 0


__all__ = [
    "BASE_VLM_NOTES",
    "PUBLISHED_SCORES",
    "PublishedScores",
    "main",
    "match_official_variant",
    "push_to_hub",
    "render_model_card",
]


if __name__ == "__main__":
    raise SystemExit(main())
