"""Tokenizers from Hugging Face `tokenizers`: fitted on the train split only, then every split encoded to token ids.

tokenizer=wordpiece (BERT's) and tokenizer=bpe (GPT-2's byte-level) learn a subword vocabulary, tokenizer=char makes
one token per character, from the train split's documents only (the labelled ones and ssl's unlabelled pool, never
val or test, nor another fold's test part); tokenizer=pretrained is the pretrained model's own (transformers'
AutoTokenizer). Trained vocabularies start with [PAD] 0, [UNK] 1 and [CLS] 2, and every document starts with [CLS].

A document keeps at most tokenizer.max_length tokens; longer ones are truncated, counted and logged. Every split
becomes int64 ids (N, L), each row padded with the padding id after its tokens, L the longest document's length.
The tokenizer, its truncation and padding included, is one tokenizer.json (Tokenizer.save): the run logs it as an
artifact, and resume and scripts/reproduce.py encode with that file instead of fitting again.
"""
from __future__ import annotations

import logging
import re
import time
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
from omegaconf import DictConfig

from trainer.data.types import Dataset, Split, Vocabulary
from trainer.errors import UserError

log = logging.getLogger(__name__)

SPECIALS = ["[PAD]", "[UNK]", "[CLS]"]  # ids 0, 1, 2 of every trained vocabulary
FILENAME = "tokenizer.json"
# Tokenizing costs time per character, and the model sees only max_length tokens: a document is first encoded from
# its first max_length * CHARS_PER_TOKEN characters, cut at a whitespace (where no tokenizer here joins two tokens),
# and again whole only when that head did not already overflow the window. The ids are exact either way.
CHARS_PER_TOKEN = 8
CHUNK = 10_000  # documents per encode_batch call: progress in the log between chunks
LOG_EVERY_S = 5.0
_WHITESPACE = re.compile(r"\s")


@dataclass
class Tokenized:
    """The dataset as token ids, the tokenizer that made them, and what tokenizing decided (logged with the run)."""

    dataset: Dataset
    unlabeled: Split | None
    tokenizer: Any  # tokenizers.Tokenizer, with its truncation (max_length) and padding (pad id) set
    params: dict[str, Any] = field(default_factory=dict)
    metrics: dict[str, float] = field(default_factory=dict)


def head(text: str, chars: int) -> str:
    """text's first `chars` characters, cut at its last whitespace there (the whole text if it has none)."""
    if len(text) <= chars:
        return text
    cut = max((m.start() for m in _WHITESPACE.finditer(text, 0, chars)), default=-1)
    return text[:cut] if cut > 0 else text


def train(cfg: DictConfig, texts: Sequence[str]) -> Any:
    """A tokenizer of kind cfg.name (wordpiece, bpe, char) trained on texts; [PAD] [UNK] [CLS] are ids 0, 1, 2."""
    from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors, trainers

    common = dict(min_frequency=int(cfg.min_frequency), special_tokens=SPECIALS, show_progress=False)
    if cfg.name == "wordpiece":
        tok = Tokenizer(models.WordPiece(unk_token="[UNK]"))
        tok.normalizer = normalizers.BertNormalizer(lowercase=bool(cfg.lowercase))
        tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
        tok.decoder = decoders.WordPiece()
        trainer = trainers.WordPieceTrainer(vocab_size=int(cfg.vocab_size), **common)
    elif cfg.name == "bpe":
        tok = Tokenizer(models.BPE())
        tok.normalizer = normalizers.Sequence([normalizers.NFC()] + ([normalizers.Lowercase()] if cfg.lowercase
                                                                     else []))
        tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
        tok.decoder = decoders.ByteLevel()
        trainer = trainers.BpeTrainer(vocab_size=int(cfg.vocab_size), initial_alphabet=pre_tokenizers.ByteLevel
                                      .alphabet(), **common)
    elif cfg.name == "char":
        tok = Tokenizer(models.WordLevel(unk_token="[UNK]"))
        tok.normalizer = normalizers.Sequence([normalizers.NFC()] + ([normalizers.Lowercase()] if cfg.lowercase
                                                                     else []))
        tok.pre_tokenizer = pre_tokenizers.Split("", "isolated")  # every character a token, spaces included
        trainer = trainers.WordLevelTrainer(**common)
    else:
        raise ValueError(f"unknown tokenizer {cfg.name!r}")
    tok.train_from_iterator(texts, trainer, length=len(texts))
    assert [tok.token_to_id(s) for s in SPECIALS] == [0, 1, 2], "the trainer placed the special tokens elsewhere"
    tok.post_processor = processors.TemplateProcessing(single="[CLS] $A", special_tokens=[("[CLS]", 2)])
    return _windowed(tok, int(cfg.max_length), pad_id=0, pad_token="[PAD]")


def pretrained(cfg: DictConfig) -> Any:
    """The pretrained model's own tokenizer (AutoTokenizer.from_pretrained(cfg.pretrained), a fast one), its window
    the smaller of tokenizer.max_length and the model's own; UserError when it cannot be loaded."""
    from transformers import AutoTokenizer

    name = cfg.get("pretrained")
    if not name:
        raise UserError("tokenizer=pretrained needs a pretrained model: set model.pretrained=<hub name or folder> "
                        "(or tokenizer.pretrained), or choose tokenizer=wordpiece, bpe or char.")
    try:
        hf = AutoTokenizer.from_pretrained(str(name))
    except (OSError, ValueError) as e:
        raise UserError(f"tokenizer.pretrained={name}: transformers cannot load its tokenizer "
                        f"({' '.join(str(e).split())[:300]}). Use a hub name or a folder written by save_pretrained."
                        ) from e
    if not getattr(hf, "is_fast", False):
        raise UserError(f"tokenizer.pretrained={name}: it has no fast (Hugging Face tokenizers) tokenizer, which the "
                        "harness encodes with. Use a model that ships tokenizer.json, or tokenizer=wordpiece.")
    pad_id = hf.pad_token_id if hf.pad_token_id is not None else hf.eos_token_id
    if pad_id is None:
        raise UserError(f"tokenizer.pretrained={name}: the tokenizer has neither a padding nor an end token to pad "
                        "documents with.")
    window = int(cfg.max_length)
    if hf.model_max_length and hf.model_max_length < window:
        log.warning("tokenizer.max_length=%d is more than %s's window of %d tokens: using %d", window, name,
                    hf.model_max_length, hf.model_max_length)
        window = int(hf.model_max_length)
    return _windowed(hf.backend_tokenizer, window, pad_id=int(pad_id), pad_token=hf.convert_ids_to_tokens(pad_id))


def _windowed(tok: Any, max_length: int, pad_id: int, pad_token: str) -> Any:
    """tok with its window and padding set: they are saved with it, so the file alone says how to encode."""
    tok.enable_truncation(max_length)
    tok.enable_padding(pad_id=pad_id, pad_token=pad_token)
    return tok


def load(path: Path) -> Any:
    """A tokenizer saved by save(); UserError if the file is not one."""
    from tokenizers import Tokenizer

    try:
        tok = Tokenizer.from_file(str(path))
    except Exception as e:  # the Rust side raises a bare Exception for a malformed file
        raise UserError(f"tokenizer file {path} cannot be read ({e}).") from e
    if tok.truncation is None or tok.padding is None:
        raise UserError(f"tokenizer file {path} has no window or padding: it was not saved by this harness.")
    return tok


def save(tok: Any, folder: Path) -> Path:
    """tok as folder/tokenizer.json (Hugging Face's format: Tokenizer.from_file reads it back)."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / FILENAME
    tok.save(str(path))
    return path


def vocabulary(tok: Any) -> Vocabulary:
    return Vocabulary(tok.get_vocab_size(with_added_tokens=True), int(tok.padding["pad_id"]),
                      int(tok.truncation["max_length"]))


def encode(tok: Any, texts: Sequence[str], what: str) -> tuple[np.ndarray, int]:
    """Token ids (N, L) int64 of texts, each row padded after its tokens, L the longest row's length; and how many
    documents were truncated to the window. Logs progress every LOG_EVERY_S seconds on a large corpus."""
    window, pad = int(tok.truncation["max_length"]), int(tok.padding["pad_id"])
    chars = window * CHARS_PER_TOKEN
    padding = tok.padding
    tok.no_padding()  # rows are padded once, to the longest of all chunks
    rows: list[list[int]] = []
    truncated, start, last = 0, time.perf_counter(), time.perf_counter()
    try:
        for first in range(0, len(texts), CHUNK):
            chunk = [str(t) for t in texts[first:first + CHUNK]]
            heads = [head(t, chars) for t in chunk]
            encodings = tok.encode_batch(heads)
            again = [i for i, (h, t, e) in enumerate(zip(heads, chunk, encodings)) if len(h) < len(t)
                     and not e.overflowing]
            for i, e in zip(again, tok.encode_batch([chunk[i] for i in again]) if again else []):
                encodings[i] = e
            truncated += sum(1 for e in encodings if e.overflowing)
            rows += [e.ids for e in encodings]
            now = time.perf_counter()
            if now - last >= LOG_EVERY_S and len(rows) < len(texts):
                log.info("tokenizing %s: %d / %d documents (%.0f documents/s)", what, len(rows), len(texts),
                         len(rows) / (now - start))
                last = now
    finally:
        tok.enable_padding(pad_id=padding["pad_id"], pad_token=padding["pad_token"])
    lengths = np.fromiter((len(r) for r in rows), np.int64, len(rows))
    ids = np.full((len(rows), max(1, int(lengths.max(initial=1)))), pad, np.int64)
    ids[np.arange(ids.shape[1]) < lengths[:, None]] = np.fromiter((i for r in rows for i in r), np.int64,
                                                                   int(lengths.sum()))
    return ids, truncated


def _widen(x: np.ndarray, width: int, pad: int) -> np.ndarray:
    return x if x.shape[1] == width else np.pad(x, ((0, 0), (0, width - x.shape[1])), constant_values=pad)


def tokenize(ds: Dataset, unlabeled: Split | None, cfg: DictConfig, saved: Path | None = None) -> Tokenized:
    """Fit cfg's tokenizer on the train split's documents (and ssl's unlabelled pool; never val or test), or load the
    saved one, and encode every split; all splits padded to one width."""
    started = time.perf_counter()
    pool = list(ds.train.x) + (list(unlabeled.x) if unlabeled is not None else [])
    if saved is not None:
        tok, source = load(saved), f"loaded from {saved}"
    elif cfg.name == "pretrained":
        tok, source = pretrained(cfg), f"pretrained {cfg.pretrained}"
    else:
        tok = train(cfg, [head(str(t), int(cfg.max_length) * CHARS_PER_TOKEN) for t in pool])
        source = f"trained on the {len(pool)} train-split documents"
    fitted_s = time.perf_counter() - started
    parts = {"train": ds.train, "val": ds.val, "test": ds.test} | ({"unlabeled": unlabeled} if unlabeled else {})
    encoded = {name: encode(tok, part.x, name) for name, part in parts.items()}
    vocab = vocabulary(tok)
    width = max(x.shape[1] for x, _ in encoded.values())
    split = {name: Split(_widen(x, width, vocab.pad_id), parts[name].y) for name, (x, _) in encoded.items()}
    documents = sum(len(part.y) for part in parts.values())
    truncated = sum(n for _, n in encoded.values())
    if truncated:
        log.warning("tokenizer: %d of %d documents (%.1f%%) have more than tokenizer.max_length=%d tokens and are cut "
                    "to their first %d; raise tokenizer.max_length to keep more (the models' cost grows with it)",
                    truncated, documents, 100 * truncated / documents, vocab.max_length, vocab.max_length)
    seconds = time.perf_counter() - started
    log.info("tokenizer=%s (%s): %d tokens in the vocabulary, %d documents in %.1f s (%.0f documents/s encoded)",
             cfg.name, source, vocab.size, documents, seconds, documents / max(seconds - fitted_s, 1e-9))
    dataset = replace(ds, train=split["train"], val=split["val"], test=split["test"], vocabulary=vocab)
    params = {"tokenizer.used.vocabulary_size": vocab.size, "tokenizer.used.source": source,
              "tokenizer.used.width": width}
    metrics = {"time/tokenize_s": seconds, "tokenizer/truncated": float(truncated),
               "tokenizer/truncated_fraction": truncated / documents}
    return Tokenized(dataset, split.get("unlabeled"), tok, params, metrics)
