"""Convert the official InternLM2 tokenizer of Sa2VA-8B / Sa2VA-26B into a transformers-native fast tokenizer.

The official folders ship a sentencepiece `tokenizer.model` and name the slow `InternLM2Tokenizer` of their remote
code in `tokenizer_config.json`. This module rebuilds that tokenizer as a `tokenizers` pipeline (`tokenizer.json`,
loaded by [`TokenizersBackend`] through `AutoTokenizer`, with no remote code and no sentencepiece) that gives the
same ids and the same decoded text as the official tokenizer under transformers 4.49 (the official pin):

- **Encoding.** The text is split on the added tokens (`added_tokens_decoder`, e.g. `<img>`, `[SEG]`, and the special
  tokens); every other chunk goes through sentencepiece on its own, so each one gets the dummy prefix `▁`. The
  pieces are the BPE merges of the vocabulary ranked by piece score, like sentencepiece, with byte fallback.
  Sentencepiece's user-defined pieces (`<|im_start|>`, `<|im_end|>`) are never merged with their neighbours; when
  the config does not list them as added tokens they are isolated by a pre-tokenizer and looked up whole. `<s>`
  is added in front.
- **Decoding.** The official `decode(..., skip_special_tokens=False)` joins with a space the "legacy" added tokens
  (ids past the sentencepiece vocabulary, like `[SEG]`) and the text decoded between them; inside that text every
  special token (`<s>`, `</s>`, ...) gets a space at the start of the text before it, each run between special
  tokens loses the leading space of its first piece, and transformers' `clean_up_tokenization` (`" ." -> "."`, ...)
  is applied. The decoder below reproduces this with marker characters (Unicode noncharacters, which no
  vocabulary piece contains) and regular expressions over the fused text.

One known difference: a run of byte-fallback tokens that mixes valid and invalid UTF-8 (e.g. `<0xC3><0xA9><0xFF>`)
decodes to one `�` per byte here (`tokenizers`' `ByteFallback`), to `é�` in sentencepiece. Valid runs, and runs
with no valid character, decode the same.

```python
from sa2va_hf.conversion.tokenizer_internlm2 import save_converted_tokenizer

tokenizer = save_converted_tokenizer("./Sa2VA-8B", "./Sa2VA-8B-hf")
```
"""

import json
import logging
import os
import re
import struct
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from tokenizers import AddedToken, Regex, Tokenizer, decoders, normalizers, pre_tokenizers, processors
from tokenizers.models import BPE
from transformers import TokenizersBackend


logger = logging.getLogger(__name__)

SENTENCEPIECE_MODEL_FILE = "tokenizer.model"
TOKENIZER_CONFIG_FILE = "tokenizer_config.json"
SPECIAL_TOKENS_MAP_FILE = "special_tokens_map.json"
ADDED_TOKENS_FILE = "added_tokens.json"

# Defaults of the official `InternLM2Tokenizer.__init__`.
DEFAULT_SPECIAL_TOKENS = {"bos_token": "<s>", "eos_token": "</s>", "unk_token": "<unk>", "pad_token": "</s>"}

SPIECE_UNDERLINE = "▁"
# `sentencepiece_model.proto`: SentencePiece.Type and TrainerSpec.ModelType values.
NORMAL_PIECE, USER_DEFINED_PIECE = 1, 4
BPE_MODEL = 2

# `transformers.PreTrainedTokenizerBase.clean_up_tokenization`, which the official `convert_tokens_to_string` always
# applies (whatever `clean_up_tokenization_spaces` says), in its order.
CLEAN_UP_TOKENIZATION = (
    (" .", "."),
    (" ?", "?"),
    (" !", "!"),
    (" ,", ","),
    (" ' ", "'"),
    (" n't", "n't"),
    (" 'm", "'m"),
    (" 's", "'s"),
    (" 've", "'ve"),
    (" 're", "'re"),
)

# Markers used inside the decoder only (Unicode noncharacters U+FDD0..U+FDD6, reserved for internal use).
LEGACY_OPEN, LEGACY_CLOSE = "\ufdd0", "\ufdd1"  # around a legacy added token (`[SEG]`, `<img>`, ...)
SPECIAL_OPEN, SPECIAL_CLOSE = "\ufdd2", "\ufdd3"  # around a special token decoded inside the text (`<s>`, `</s>`)
PIECE_SPACE = "\ufdd4"  # a `▁` of a sentencepiece piece (a `▁` decoded from bytes stays `▁`, as in sentencepiece)
DROPPED_SPACE = "\ufdd5"  # the leading `▁` of a run, which sentencepiece drops
TRAILING_SPACE = "\ufdd6"  # a last run that decodes to nothing (the official join still puts a space before it)
MARKERS = LEGACY_OPEN + LEGACY_CLOSE + SPECIAL_OPEN + SPECIAL_CLOSE + PIECE_SPACE + DROPPED_SPACE + TRAILING_SPACE


@dataclass(frozen=True)
class SentencePieceModel:
    """The fields of a sentencepiece `ModelProto` that the conversion reads (defaults as in the proto)."""

    pieces: list[tuple[str, float, int]]
    model_type: int = 1
    byte_fallback: bool = False
    unk_id: int = 0
    normalizer_name: str = ""
    precompiled_charsmap: bytes = b""
    add_dummy_prefix: bool = True
    remove_extra_whitespaces: bool = True
    escape_whitespaces: bool = True
    treat_whitespace_as_suffix: bool = False


def _read_varint(data: bytes, position: int) -> tuple[int, int]:
    value, shift = 0, 0
    while True:
        byte = data[position]
        position += 1
        value |= (byte & 0x7F) << shift
        if byte < 0x80:
            return value, position
        shift += 7


def _protobuf_fields(data: bytes) -> Iterator[tuple[int, int | bytes]]:
    """`(field number, value)` of a serialized protobuf message: varints as `int`, everything else as `bytes`."""
    position = 0
    while position < len(data):
        key, position = _read_varint(data, position)
        wire_type = key & 7
        if wire_type == 0:
            value, position = _read_varint(data, position)
        elif wire_type == 2:
            length, position = _read_varint(data, position)
            value, position = data[position : position + length], position + length
        elif wire_type in (1, 5):
            size = 8 if wire_type == 1 else 4
            value, position = data[position : position + size], position + size
        else:
            raise ValueError(f"unsupported protobuf wire type {wire_type}")
        yield key >> 3, value


def read_sentencepiece_model(path: str | os.PathLike) -> SentencePieceModel:
    """Read a sentencepiece `tokenizer.model` without sentencepiece or protobuf installed.

    Decodes the protobuf wire format of the fields listed in [`SentencePieceModel`] (numbers from sentencepiece's
    `sentencepiece_model.proto`: `ModelProto.pieces` 1, `trainer_spec` 2, `normalizer_spec` 3).

    Args:
        path (`str` or `os.PathLike`): the `tokenizer.model` file.

    Returns:
        [`SentencePieceModel`]: the pieces `(piece, score, type)` in id order and the model's settings.

    Raises:
        `ValueError`: if the file is not a sentencepiece model.
    """
    path = Path(path)
    trainer_fields = {3: "model_type", 35: "byte_fallback", 40: "unk_id", 24: "treat_whitespace_as_suffix"}
    normalizer_fields = {
        1: "normalizer_name",
        2: "precompiled_charsmap",
        3: "add_dummy_prefix",
        4: "remove_extra_whitespaces",
        5: "escape_whitespaces",
    }
    pieces, settings = [], {}
    try:
        for number, value in _protobuf_fields(path.read_bytes()):
            if number == 1:
                piece = {1: b"", 2: b"\0\0\0\0", 3: NORMAL_PIECE} | dict(_protobuf_fields(value))
                pieces.append((piece[1].decode("utf-8"), struct.unpack("<f", piece[2])[0], piece[3]))
            elif number in (2, 3):
                names = trainer_fields if number == 2 else normalizer_fields
                settings |= {names[field]: item for field, item in _protobuf_fields(value) if field in names}
    except (AttributeError, IndexError, KeyError, TypeError, ValueError, struct.error) as error:
        raise ValueError(f"{path} is not a readable sentencepiece model ({error!r}).") from error
    if not pieces:
        raise ValueError(f"{path} holds no sentencepiece pieces; is it a sentencepiece `tokenizer.model`?")
    if "normalizer_name" in settings:
        settings["normalizer_name"] = settings["normalizer_name"].decode("utf-8")
    for name in ("byte_fallback", "add_dummy_prefix", "remove_extra_whitespaces", "escape_whitespaces"):
        if name in settings:
            settings[name] = bool(settings[name])
    return SentencePieceModel(pieces=pieces, **settings)


def _check_supported(model: SentencePieceModel, path: Path) -> None:
    """Refuse the sentencepiece settings this converter does not reproduce (InternLM2 uses none of them)."""
    expected = {
        "model_type": (model.model_type, BPE_MODEL),
        "byte_fallback": (model.byte_fallback, True),
        "normalizer_spec.name": (model.normalizer_name in ("", "identity") and not model.precompiled_charsmap, True),
        "remove_extra_whitespaces": (model.remove_extra_whitespaces, False),
        "escape_whitespaces": (model.escape_whitespaces, True),
        "treat_whitespace_as_suffix": (model.treat_whitespace_as_suffix, False),
    }
    for name, (value, wanted) in expected.items():
        if value != wanted:
            shown = model.normalizer_name if name == "normalizer_spec.name" else value
            raise ValueError(
                f"{path}: sentencepiece setting {name}={shown!r} is not supported; this converter reproduces "
                "InternLM2 tokenizers (BPE, byte fallback, identity normalization, no whitespace removal). Convert "
                "this tokenizer with transformers' own converters instead."
            )


def _token_content(value: str | dict | None) -> str | None:
    """The text of a token as stored in tokenizer files: a string or a serialized `AddedToken`."""
    return value["content"] if isinstance(value, dict) else value


@dataclass(frozen=True)
class _OfficialTokenizerSettings:
    """What the official slow tokenizer is built from, besides the sentencepiece model."""

    special_tokens: dict[str, str]  # bos/eos/unk/pad name -> content
    extra_special_tokens: list[str]  # `additional_special_tokens`
    added_tokens: dict[int, AddedToken]  # id -> token, the tokens split off before sentencepiece
    config: dict  # tokenizer_config.json


def _read_official_settings(src_dir: Path, model: SentencePieceModel) -> _OfficialTokenizerSettings:
    """Read the special and added tokens like the official tokenizer's `from_pretrained` under transformers 4.49.

    `special_tokens_map.json` overrides `tokenizer_config.json`, `added_tokens.json` adds the ids that
    `added_tokens_decoder` lacks, and every special token is an added token (its sentencepiece id when it is a piece).
    """
    config_file = src_dir / TOKENIZER_CONFIG_FILE
    if not config_file.is_file():
        raise FileNotFoundError(
            f"{config_file} is missing; copy it from the official checkpoint folder (it lists the added tokens such "
            "as [SEG] and the special tokens)."
        )
    config = json.loads(config_file.read_text(encoding="utf-8"))
    declared = dict(config)
    special_tokens_map = src_dir / SPECIAL_TOKENS_MAP_FILE
    if special_tokens_map.is_file():
        declared |= json.loads(special_tokens_map.read_text(encoding="utf-8"))
    special_tokens = {
        name: _token_content(declared.get(name)) or default for name, default in DEFAULT_SPECIAL_TOKENS.items()
    }
    extra_special_tokens = [_token_content(token) for token in declared.get("additional_special_tokens") or []]

    added_tokens = {
        int(index): AddedToken(
            entry["content"],
            lstrip=entry.get("lstrip", False),
            rstrip=entry.get("rstrip", False),
            single_word=entry.get("single_word", False),
            normalized=False,
        )
        for index, entry in config.get("added_tokens_decoder", {}).items()
    }
    added_tokens_file = src_dir / ADDED_TOKENS_FILE
    if added_tokens_file.is_file():
        for content, index in json.loads(added_tokens_file.read_text(encoding="utf-8")).items():
            added_tokens.setdefault(index, AddedToken(content, normalized=False))
    piece_ids = {piece: index for index, (piece, _, _) in enumerate(model.pieces)}
    known = {token.content for token in added_tokens.values()}
    for content in [*special_tokens.values(), *extra_special_tokens]:
        if content in known:
            continue
        if content not in piece_ids:
            raise ValueError(
                f"The special token {content!r} of {config_file} is neither a sentencepiece piece of "
                f"{SENTENCEPIECE_MODEL_FILE} nor in added_tokens_decoder; add it there with its id."
            )
        added_tokens[piece_ids[content]] = AddedToken(content, normalized=False)
        known.add(content)

    vocab_size = len(model.pieces)
    for index, token in sorted(added_tokens.items()):
        if index < vocab_size and model.pieces[index][0] != token.content:
            raise ValueError(
                f"{config_file} gives id {index} to {token.content!r}, but that id is the sentencepiece piece "
                f"{model.pieces[index][0]!r} of {SENTENCEPIECE_MODEL_FILE}; the files do not belong together."
            )
    new_ids = sorted(index for index in added_tokens if index >= vocab_size)
    if new_ids != list(range(vocab_size, vocab_size + len(new_ids))):
        raise ValueError(
            f"The added token ids past the sentencepiece vocabulary ({vocab_size} pieces) in {config_file} are "
            f"{new_ids}, not consecutive from {vocab_size}; a fast tokenizer numbers added tokens consecutively."
        )
    return _OfficialTokenizerSettings(special_tokens, extra_special_tokens, added_tokens, config)


def _bpe_merges(model: SentencePieceModel) -> list[tuple[str, str]]:
    """Every pair of pieces whose concatenation is a normal piece, best piece score first.

    Sentencepiece's BPE merges, at each step, the adjacent pair whose concatenation is the highest-scoring normal
    piece; ranking the merges by that score makes `tokenizers`' BPE do the same.
    """
    normal = {piece: index for index, (piece, _, kind) in enumerate(model.pieces) if kind == NORMAL_PIECE}
    merges = []
    for piece, index in normal.items():
        for split in range(1, len(piece)):
            left, right = piece[:split], piece[split:]
            if left in normal and right in normal:
                merges.append((-model.pieces[index][1], index, normal[left], normal[right], left, right))
    return [(left, right) for *_, left, right in sorted(merges)]


def _exact_token(content: str) -> Regex:
    """A pattern matching a decoder token that is exactly `content` (after `▁` became `PIECE_SPACE`)."""
    return Regex(rf"\A{re.escape(content.replace(SPIECE_UNDERLINE, PIECE_SPACE))}\z")


def _official_decoder(legacy_tokens: list[str], text_special_tokens: list[str]) -> decoders.Decoder:
    """The decoder reproducing the official `InternLM2Tokenizer.decode(..., skip_special_tokens=False)`.

    Args:
        legacy_tokens (`list[str]`): tokens decoded on their own and joined to their neighbours with a space.
        text_special_tokens (`list[str]`): special tokens decoded within the text (`convert_tokens_to_string`).
    """
    boundary = f"[^{LEGACY_CLOSE}{SPECIAL_CLOSE}]"  # `(?<!boundary)`: at the start or right after a token
    run_text = f"[^{LEGACY_OPEN}{LEGACY_CLOSE}{SPECIAL_OPEN}{SPECIAL_CLOSE}]+"
    steps = [decoders.Replace(SPIECE_UNDERLINE, PIECE_SPACE)]
    steps += [decoders.Replace(_exact_token(t), LEGACY_OPEN + t + LEGACY_CLOSE) for t in legacy_tokens]
    steps += [decoders.Replace(_exact_token(t), SPECIAL_OPEN + t + SPECIAL_CLOSE) for t in text_special_tokens]
    steps += [
        decoders.ByteFallback(),
        decoders.Fuse(),
        # sentencepiece drops the leading `▁` of the text it decodes: the text before, between and after tokens
        decoders.Replace(Regex(f"(?<!{boundary}){PIECE_SPACE}"), DROPPED_SPACE),
        # a special token puts a space in front of the text it ends, and is preceded by one at the start of a run
        decoders.Replace(Regex(f"(?<!{boundary})(?={run_text}{SPECIAL_OPEN})"), " "),
        decoders.Replace(Regex(f"(?<![^{LEGACY_CLOSE}])(?={SPECIAL_OPEN})"), " "),
        decoders.Replace(Regex(f"(?<={LEGACY_CLOSE}){DROPPED_SPACE}\\z"), TRAILING_SPACE),
        decoders.Replace(DROPPED_SPACE, ""),
        decoders.Replace(PIECE_SPACE, " "),
    ]
    steps += [decoders.Replace(pattern, content) for pattern, content in CLEAN_UP_TOKENIZATION]
    steps += [
        # legacy tokens and the non-empty texts around them are joined with single spaces
        decoders.Replace(Regex(f"(?<=[^{LEGACY_CLOSE}]){LEGACY_OPEN}"), " " + LEGACY_OPEN),
        decoders.Replace(Regex(f"{LEGACY_CLOSE}(?!\\z)"), LEGACY_CLOSE + " "),
        decoders.Replace(Regex(f"[{MARKERS}]"), ""),
    ]
    return decoders.Sequence(steps)


def _warn_about_unreachable_pieces(bpe: BPE, model: SentencePieceModel, path: Path) -> None:
    """Warn about normal pieces that BPE does not produce from their own text.

    With user-defined pieces to keep whole, `ignore_merges` looks every chunk up in the vocabulary before merging;
    that equals sentencepiece's BPE as long as each normal piece encodes to itself.
    """
    unreachable = [
        piece
        for index, (piece, _, kind) in enumerate(model.pieces)
        if kind == NORMAL_PIECE and [token.id for token in bpe.tokenize(piece)] != [index]
    ]
    if unreachable:
        logger.warning(
            f"{path}: {len(unreachable)} pieces (e.g. {unreachable[:5]}) are not what BPE makes of their own text; "
            "a text chunk equal to one of them encodes to that piece here and to smaller pieces in sentencepiece."
        )


def convert_internlm2_tokenizer(src_dir: str | os.PathLike) -> TokenizersBackend:
    """Build the fast tokenizer equivalent to an official folder's InternLM2 sentencepiece tokenizer.

    Reads `tokenizer.model`, `tokenizer_config.json` and, when present, `special_tokens_map.json` and
    `added_tokens.json`. Neither sentencepiece nor protobuf is needed, and the official remote code is not run.

    Args:
        src_dir (`str` or `os.PathLike`): the official checkpoint folder (e.g. a download of `ByteDance/Sa2VA-8B`).

    Returns:
        [`TokenizersBackend`]: the tokenizer (`<s>` added in front, `</s>` as eos and pad, `<unk>` as unk, the
        official added tokens at their ids), ready for `save_pretrained`.

    Raises:
        `FileNotFoundError`: if `tokenizer.model` or `tokenizer_config.json` is missing.
        `ValueError`: if the files are inconsistent or the sentencepiece model is not InternLM2-like.
    """
    src_dir = Path(src_dir)
    model_file = src_dir / SENTENCEPIECE_MODEL_FILE
    if not model_file.is_file():
        raise FileNotFoundError(
            f"{model_file} is missing; the InternLM2 tokenizer of Sa2VA-8B/26B is this sentencepiece model. Copy it "
            "from the official checkpoint folder (e.g. `huggingface-cli download ByteDance/Sa2VA-8B tokenizer.model`)."
        )
    model = read_sentencepiece_model(model_file)
    _check_supported(model, model_file)
    settings = _read_official_settings(src_dir, model)
    for content in [piece for piece, _, _ in model.pieces] + [t.content for t in settings.added_tokens.values()]:
        if any(marker in content for marker in MARKERS):
            raise ValueError(f"The token {content!r} contains a Unicode noncharacter used by the decoder.")

    vocab = {piece: index for index, (piece, _, _) in enumerate(model.pieces)}
    tokenizer = Tokenizer(
        BPE(vocab=vocab, merges=_bpe_merges(model), unk_token=model.pieces[model.unk_id][0], byte_fallback=True)
    )
    prefix = [normalizers.Prepend(SPIECE_UNDERLINE)] if model.add_dummy_prefix else []
    tokenizer.normalizer = normalizers.Sequence([*prefix, normalizers.Replace(" ", SPIECE_UNDERLINE)])
    # user-defined pieces that are not added tokens stay whole inside a sentencepiece chunk
    added_contents = {token.content for token in settings.added_tokens.values()}
    isolated = [piece for piece, _, kind in model.pieces if kind == USER_DEFINED_PIECE and piece not in added_contents]
    if isolated:
        _warn_about_unreachable_pieces(tokenizer.model, model, model_file)
        pattern = "|".join(re.escape(piece) for piece in sorted(isolated, key=len, reverse=True))
        tokenizer.pre_tokenizer = pre_tokenizers.Split(Regex(pattern), behavior="isolated")
        tokenizer.model.ignore_merges = True  # a chunk that is a piece is looked up whole: the user-defined pieces

    all_special = list(dict.fromkeys([*settings.special_tokens.values(), *settings.extra_special_tokens]))
    for index, token in sorted(settings.added_tokens.items()):
        token.special = token.content in all_special
        (tokenizer.add_special_tokens if token.special else tokenizer.add_tokens)([token])
        if tokenizer.token_to_id(token.content) != index:
            raise ValueError(f"The added token {token.content!r} got id {tokenizer.token_to_id(token.content)}.")
    # transformers 4.49 `_decode`: added tokens that are not special, and special ones past the vocabulary
    ids = {token.content: index for index, token in settings.added_tokens.items()}
    legacy = [t for t in ids if t not in all_special or (t in settings.extra_special_tokens and ids[t] >= len(vocab))]
    tokenizer.decoder = _official_decoder(legacy, [token for token in all_special if token not in legacy])

    add_bos_token = settings.config.get("add_bos_token", True)
    add_eos_token = settings.config.get("add_eos_token", False)
    optional = {key: settings.config[key] for key in ("model_max_length", "padding_side") if key in settings.config}
    converted = TokenizersBackend(
        tokenizer_object=tokenizer,
        **settings.special_tokens,
        extra_special_tokens=settings.extra_special_tokens,
        add_bos_token=add_bos_token,
        add_eos_token=add_eos_token,
        clean_up_tokenization_spaces=settings.config.get("clean_up_tokenization_spaces", False),
        **optional,
    )
    # the official `build_inputs_with_special_tokens`: no second `<s>` in front of a pair's second text
    bos = [(converted.bos_token, converted.bos_token_id)] if add_bos_token else []
    eos = [(converted.eos_token, converted.eos_token_id)] if add_eos_token else []
    single = " ".join([*(f"{token}:0" for token, _ in bos), "$A:0", *(f"{token}:0" for token, _ in eos)])
    pair = " ".join([*(f"{token}:0" for token, _ in bos), "$A:0", "$B:1", *(f"{token}:1" for token, _ in eos)])
    converted.backend_tokenizer.post_processor = processors.TemplateProcessing(
        single=single, pair=pair, special_tokens=bos + eos
    )
    return converted


def save_converted_tokenizer(src_dir: str | os.PathLike, dst_dir: str | os.PathLike) -> TokenizersBackend:
    """Convert an official InternLM2 tokenizer (see [`convert_internlm2_tokenizer`]) and save it in `dst_dir`.

    Writes `tokenizer.json` and `tokenizer_config.json` (class `TokenizersBackend`, no `auto_map`), which
    `AutoTokenizer.from_pretrained(dst_dir)` loads without remote code or sentencepiece.

    Args:
        src_dir (`str` or `os.PathLike`): the official checkpoint folder.
        dst_dir (`str` or `os.PathLike`): the output folder (created if needed).

    Returns:
        [`TokenizersBackend`]: the converted tokenizer.
    """
    tokenizer = convert_internlm2_tokenizer(src_dir)
    tokenizer.save_pretrained(dst_dir)
    return tokenizer
