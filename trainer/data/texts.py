"""A user's own texts (dataset=text): a table with a text column and a class column (CSV, TSV, parquet, JSON lines),
or a folder with one sub-folder of .txt files per class (scikit-learn's load_files layout).

Documents stay strings here; they are tokenized after the split, by a tokenizer fitted on the train split only
(trainer.data.tokenizer). Bytes are decoded with dataset.encoding (Python's codec names) and dataset.encoding_errors
(Python's error handlers: strict stops at the first undecodable byte, naming its file and line; replace reads it as
U+FFFD).
"""
from __future__ import annotations

import io
import logging
from pathlib import Path

import numpy as np
from omegaconf import DictConfig

from trainer.data.types import Source
from trainer.errors import UserError

log = logging.getLogger(__name__)

TABLES = (".csv", ".tsv", ".parquet", ".pq", ".jsonl", ".ndjson", ".json")
MIN_DOCUMENTS = 3  # a stratified train/val/test split needs one document of each class in every part


def decode(raw: bytes, encoding: str, errors: str, where: str) -> str:
    """raw decoded; UserError naming `where`, the line and the byte that cannot be decoded, and the two fixes."""
    try:
        return raw.decode(encoding, errors)
    except UnicodeDecodeError as e:
        line = raw.count(b"\n", 0, e.start) + 1
        raise UserError(f"{where}: line {line} (byte {e.start}: {raw[e.start:e.start + 1]!r}) is not valid "
                        f"{encoding} ({e.reason}). Set dataset.encoding to the file's encoding (e.g. "
                        "dataset.encoding=latin-1 or cp1252), or dataset.encoding_errors=replace to read such bytes "
                        "as U+FFFD.") from e
    except LookupError as e:
        raise UserError(f"dataset.encoding={encoding}: not an encoding Python knows ({e}); e.g. utf-8, latin-1, "
                        "cp1252.") from e


def _rows(mask: np.ndarray) -> str:
    rows = [str(i + 1) for i in np.flatnonzero(mask)]
    return ", ".join(rows[:5]) + (f" and {len(rows) - 5} more" if len(rows) > 5 else "")


def _frame(path: Path, cfg: DictConfig):
    """The table as a pandas DataFrame of strings (text cells are never parsed as numbers or NA)."""
    import pandas as pd

    from trainer.data.tables import delimiter

    suffix = path.suffix.lower()
    try:
        if suffix in (".parquet", ".pq"):
            return pd.read_parquet(path)
        text = decode(path.read_bytes(), cfg.encoding, cfg.encoding_errors, f"dataset.path={cfg.path}")
        if suffix in (".jsonl", ".ndjson", ".json"):
            try:
                return pd.read_json(io.StringIO(text), lines=True, dtype=False)
            except ValueError:
                if suffix != ".json":
                    raise
                return pd.read_json(io.StringIO(text), dtype=False)  # one JSON array of records
        sep = "\t" if suffix == ".tsv" else delimiter(path)
        return pd.read_csv(io.StringIO(text), sep=sep, dtype=str, keep_default_na=False)
    except ImportError as e:
        raise UserError(f"dataset.path={cfg.path}: pandas needs a parquet engine to read it ({e}). Install one: "
                        "pip install pyarrow") from e
    except ValueError as e:  # pandas' parser and empty-data errors
        raise UserError(f"dataset.path={cfg.path}: pandas cannot read it as a {suffix.lstrip('.')} table "
                        f"({' '.join(str(e).split())[:300]}).") from e


def load_table(cfg: DictConfig) -> Source:
    """Documents and classes of a table: column cfg.text and column cfg.target."""
    from trainer.data.tables import _labels

    df = _frame(Path(cfg.path).expanduser(), cfg)
    columns = [str(c) for c in df.columns]
    df.columns = columns
    for key in ("text", "target"):
        if cfg[key] not in columns:
            raise UserError(f"dataset.{key}={cfg[key]}: no such column in {cfg.path}; its columns are "
                            f"{', '.join(columns)}. Set dataset.{key} to the column holding the "
                            f"{'documents' if key == 'text' else 'classes'}.")
    if cfg.text == cfg.target:
        raise UserError(f"dataset.text and dataset.target both name the column {cfg.text!r}: the documents and "
                        "their classes are two columns.")
    texts = df[cfg.text].astype("string").fillna("").to_numpy(dtype=object)
    empty = np.array([not str(t).strip() for t in texts])
    if empty.any():
        raise UserError(f"dataset.text={cfg.text}: the document is empty in data row(s) {_rows(empty)} of {cfg.path}."
                        " Remove those rows or give them a text.")
    target = df[cfg.target]
    y, classes = _labels(target.mask(target.astype(str).str.strip() == ""), cfg.target)  # a blank cell: no class
    return Source(np.asarray([str(t) for t in texts], dtype=object), y, classes, text=True)


def load_folder(cfg: DictConfig) -> Source:
    """Documents of PATH/<class>/*.txt, the classes being the sub-folders' names (sorted)."""
    from sklearn.datasets import load_files

    root = Path(cfg.path).expanduser()
    found = load_files(str(root), load_content=False, shuffle=False, allowed_extensions=[".txt"])
    classes = [str(c) for c in found.target_names]
    counts = np.bincount(found.target, minlength=len(classes)) if len(found.target) else np.zeros(len(classes), int)
    if not classes:
        raise UserError(f"dataset.path={cfg.path}: the folder has no sub-folder. Put each class's .txt files in a "
                        "sub-folder named after it (PATH/spam/001.txt, PATH/ham/002.txt, ...).")
    small = [f"{classes[c]!r} ({counts[c]} .txt file{'s' if counts[c] != 1 else ''})"
             for c in np.flatnonzero(counts < MIN_DOCUMENTS)]
    if small:
        raise UserError(f"dataset.path={cfg.path}: class folder(s) {', '.join(small[:10])} hold fewer than "
                        f"{MIN_DOCUMENTS} documents, and a stratified train/val/test split needs one of each class in "
                        "every part. Add .txt files to them (only .txt files are read), or move those folders out.")
    texts, empty = [], []
    for name in found.filenames:
        text = decode(Path(name).read_bytes(), cfg.encoding, cfg.encoding_errors, f"dataset.path: file {name}")
        if not text.strip():
            empty.append(name)
        texts.append(text)
    if empty:
        more = f" and {len(empty) - 5} more" if len(empty) > 5 else ""
        raise UserError(f"dataset.path={cfg.path}: the file(s) {', '.join(empty[:5])}{more} hold no text. Remove "
                        "them or give them a text.")
    log.info("read %d documents of %d classes from %s", len(texts), len(classes), root)
    return Source(np.asarray(texts, dtype=object), np.asarray(found.target, dtype=np.int64), classes, text=True)


def load_texts(cfg: DictConfig) -> Source:
    """dataset=text: the table or the folder cfg.path names."""
    if not cfg.get("path"):
        raise UserError("dataset=text needs dataset.path: a table (.csv, .tsv, .parquet, .jsonl) with the columns "
                        "dataset.text and dataset.target, or a folder with one sub-folder of .txt files per class, "
                        "e.g. python train.py dataset=text dataset.path=reviews.csv")
    path = Path(cfg.path).expanduser()
    if path.is_dir():
        return load_folder(cfg)
    if path.is_file():
        if path.suffix.lower() not in TABLES:
            raise UserError(f"dataset.path={cfg.path}: a {path.suffix or 'suffix-less'} file; dataset=text reads "
                            f"tables ({', '.join(TABLES)}) or a folder with one sub-folder of .txt files per class.")
        return load_table(cfg)
    raise UserError(f"dataset.path={cfg.path}: no such file or folder (relative paths start from the working "
                    f"directory {Path.cwd()}).")
