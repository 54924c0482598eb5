"""A user's table (CSV, parquet, ARFF or KEEL .dat) as a labelled dataset: numeric columns as they are, categorical
ones one-hot.

Numeric columns are standardised later, with train-split statistics only (trainer.data.standardize); here
they are only checked and placed first, so the Source can say which columns to scale.
"""
from __future__ import annotations

import re
from pathlib import Path

import numpy as np
from omegaconf import DictConfig, OmegaConf

from trainer.data.types import Source
from trainer.errors import UserError

PARQUET = (".parquet", ".pq")


def delimiter(file: Path, encoding: str = "utf-8") -> str:
    """The field separator of a CSV file: ',' or what Python's csv.Sniffer finds among ',', ';', tab and '|' in its
    first 64 KiB (spreadsheets in many locales export ';', since ',' is their decimal mark)."""
    import csv

    with open(file, newline="", encoding=encoding, errors="replace") as f:
        sample = f.read(65536)
    try:
        return csv.Sniffer().sniff(sample, delimiters=",;\t|").delimiter
    except csv.Error:  # one column, or nothing to tell by
        return ","


def read_table(path: str, encoding: str = "utf-8"):
    """The file as a pandas DataFrame, by its suffix: parquet, ARFF / KEEL .dat (an arff.Table, which also names the
    nominal attributes and the class), else CSV (tab-separated for .tsv; else the separator csv.Sniffer finds).
    Text files are decoded with `encoding` (dataset.encoding); UserError naming the first line it cannot decode."""
    import pandas as pd

    from trainer.data import arff

    file = Path(path).expanduser()
    if file.is_dir():
        raise UserError(f"dataset.path={path} is a folder; dataset=csv reads one table file (.csv, .tsv, .parquet, "
                        ".arff or KEEL .dat): name the file in it. For a folder of images, one sub-folder per class, "
                        "use dataset=image_folder.")
    if not file.is_file():
        raise UserError(f"dataset.path={path}: no such file (relative paths start from the working directory "
                        f"{Path.cwd()}).")
    try:
        if file.suffix.lower() in PARQUET:
            return pd.read_parquet(file)
        if file.suffix.lower() in arff.SUFFIXES:
            return arff.read(file, encoding)
        return pd.read_csv(file, sep="\t" if file.suffix.lower() == ".tsv" else delimiter(file, encoding),
                           encoding=encoding)
    except UnicodeDecodeError as e:
        raise UserError(undecodable(file, path, encoding, e)) from e
    except ImportError as e:
        raise UserError(f"dataset.path={path}: pandas needs a parquet engine to read it ({e}). "
                        "Install one: pip install pyarrow") from e
    except (ValueError, OSError) as e:  # pandas' parser and empty-data errors are ValueErrors
        raise UserError(f"dataset.path={path}: pandas cannot read it as a "
                        f"{'parquet' if file.suffix.lower() in PARQUET else 'CSV'} file ({e}).") from e


def undecodable(file: Path, path: str, encoding: str, error: UnicodeDecodeError) -> str:
    """What to say of a text file that `encoding` cannot decode: the line and byte of the first failure and the
    setting that names the file's encoding."""
    data = file.read_bytes()
    try:
        data.decode(encoding)
        where = ""
    except UnicodeDecodeError as e:  # the position in the whole file (pandas' error counts within its chunk)
        line = data[:e.start].count(b"\n") + 1
        where = f" (line {line}: byte {data[e.start:e.start + 1]!r})"
    return (f"dataset.path={path} is not {encoding} text{where}, and dataset.encoding={encoding}. Name the "
            "file's encoding, e.g. dataset.encoding=latin-1, or cp1252 for a file a Windows spreadsheet saved "
            f"({error.reason}).")


def _rows(mask) -> str:
    rows = [str(i + 1) for i in np.flatnonzero(np.asarray(mask))]
    return ", ".join(rows[:5]) + (f" and {len(rows) - 5} more" if len(rows) > 5 else "")


def _labels(column, target: str) -> tuple[np.ndarray, list[str]]:
    """Integer labels and sorted class names of the target column."""
    import pandas as pd

    if column.isna().any():
        raise UserError(f"dataset.target={target}: the column is empty in data row(s) {_rows(column.isna())}. "
                        "Give every row a class, or remove those rows.")
    values = column.to_numpy()
    if pd.api.types.is_float_dtype(column) and np.all(values == np.round(values)):
        values = values.astype(np.int64)  # 0.0 / 1.0 read from a file are the classes 0 and 1
    uniques, y = np.unique(values, return_inverse=True)
    classes = [str(u) for u in uniques]
    if len(classes) == 1:  # would train, and score accuracy 1.0 by predicting the one class
        raise UserError(f"dataset.target={target}: all {len(values)} rows have the class {classes[0]!r}, and a "
                        "classifier needs at least two classes. Is dataset.target the class column? Otherwise add "
                        "rows of the other classes.")
    counts = np.bincount(y, minlength=len(classes))
    if counts.min() < 3:
        small = [f"{classes[c]!r} ({counts[c]} row{'s' if counts[c] > 1 else ''})" for c in np.flatnonzero(counts < 3)]
        hint = (f" The column has {len(classes)} distinct values for {len(values)} rows: is dataset.target a class "
                "column?" if len(classes) > len(values) / 3 else "")
        raise UserError(f"dataset.target={target}: class(es) {', '.join(small[:10])}{' ...' if len(small) > 10 else ''}"
                        " have fewer than 3 rows, and a stratified train/val/test split needs one of each class in "
                        f"every part. Add rows of those classes, merge them into others, or drop them.{hint}")
    return y.astype(np.int64), classes


def _numeric(column, name: str) -> np.ndarray:
    """The column as float32, or a UserError naming its first non-numeric or empty cells."""
    import pandas as pd

    as_number = pd.to_numeric(column, errors="coerce") if not pd.api.types.is_bool_dtype(column) else column
    bad = column.notna() & as_number.isna()
    if bad.any():
        examples = ", ".join(repr(v) for v in column[bad].unique()[:3])
        raise UserError(f"{name!r} holds numbers but also non-numeric values ({examples}) in data row(s) "
                        f"{_rows(bad)}: fix those cells, or list the column in dataset.categorical to one-hot "
                        "encode it")
    if as_number.isna().any():
        raise UserError(f"numeric column {name!r} is empty in data row(s) {_rows(as_number.isna())} (a missing value: "
                        "an empty cell, or '?' in ARFF and '<null>' in KEEL files; the harness does not impute): "
                        "fill those cells or remove the rows")
    values = as_number.to_numpy(dtype=np.float64)
    # features are float32: inf, 1e400 (read as inf) and anything beyond float32's range (1e200) would make every
    # loss and metric NaN or inf
    beyond = ~(np.abs(values) <= np.finfo(np.float32).max)
    if beyond.any():
        examples = ", ".join(str(column[beyond].iloc[i]) for i in range(min(3, int(beyond.sum()))))
        raise UserError(f"numeric column {name!r} holds values that are not finite float32 numbers ({examples}: "
                        "inf, or beyond +-3.4e38) in data row(s) " + _rows(beyond) + ": fix those cells or remove "
                        "the rows")
    return values.astype(np.float32)


def _one_hot(column, name: str, max_categories: int) -> np.ndarray:
    """0/1 columns, one per category (empty cells are a category of their own)."""
    import pandas as pd

    values = column.astype("string").fillna("<missing>")
    if values.nunique() > max_categories:
        raise UserError(f"{name!r} has {values.nunique()} distinct non-numeric values, more than "
                        f"dataset.max_categories={max_categories} (an id or free text?): raise dataset.max_categories "
                        "to one-hot encode it anyway")
    return pd.get_dummies(values, dtype=np.float32).to_numpy()


def _override_value(names: list[str]) -> str:
    """A list as a Hydra override value, quoting the names that are not plain words."""
    return "[" + ",".join(n if re.fullmatch(r"[\w.\-]+", n) else repr(n) for n in names) + "]"


def _is_categorical(column, name: str, listed: list[str] | None) -> bool:
    """Listed in dataset.categorical; or, when that is null, mostly non-numeric text."""
    import pandas as pd

    if listed is not None:
        return name in listed
    if pd.api.types.is_numeric_dtype(column) or pd.api.types.is_bool_dtype(column):
        return False
    present = column.dropna()
    return pd.to_numeric(present, errors="coerce").notna().sum() < len(present) / 2


def load_table(cfg: DictConfig) -> Source:
    """Read cfg.path; cfg.target is the class column, cfg.features (default: all others) the inputs.

    Categorical columns (cfg.categorical, or when null the nominal attributes of an ARFF / KEEL file and the mostly
    non-numeric columns) are one-hot encoded over the categories of the whole file; numeric ones come first and are
    the columns standardised later. The Source names each one-hot block (Source.categorical), so that resampling
    can keep categories whole. An ARFF / KEEL file's class (@outputs, else its last attribute) is the default target.
    """
    from trainer.data.arff import Table

    table = read_table(cfg.path, cfg.get("encoding") or "utf-8") if cfg.get("path") else None
    df, nominal = (table.frame, table.nominal) if isinstance(table, Table) else (table, [])
    if df is not None and len(df) == 0:
        raise UserError(f"dataset.path={cfg.path}: the file has a header ({len(df.columns)} columns) but no data rows. "
                        "Point dataset.path at the file that holds the data.")
    target = cfg.get("target") or (table.target if isinstance(table, Table) else None)
    if df is None or not target:
        raise UserError("dataset=csv needs dataset.path=FILE (.csv, .tsv, .parquet, .arff or KEEL .dat) and, for CSV "
                        "and parquet, dataset.target=COLUMN (the class column), e.g. python train.py dataset=csv "
                        "dataset.path=my.csv dataset.target=label")
    cfg = OmegaConf.merge(cfg, {"target": target})
    columns = [str(c) for c in df.columns]
    df.columns = columns
    features = list(cfg.features) if cfg.get("features") is not None else [c for c in columns if c != cfg.target]
    listed = list(cfg.categorical) if cfg.get("categorical") is not None else None
    for key, names in (("dataset.target", [cfg.target]), ("dataset.features", features),
                       ("dataset.categorical", listed or [])):
        missing = [n for n in names if n not in columns]
        if missing:
            raise UserError(f"{key}: no column {', '.join(map(repr, missing))} in {cfg.path}; its columns are "
                            f"{', '.join(columns)}.")
    if cfg.target in features:
        raise UserError(f"dataset.features lists the target column {cfg.target!r}: leave it out.")
    if listed and set(listed) - set(features):
        raise UserError(f"dataset.categorical lists {sorted(set(listed) - set(features))}, which are not in "
                        "dataset.features.")
    if not features:
        raise UserError(f"dataset.features: {cfg.path} has no column besides the target {cfg.target!r}.")
    y, classes = _labels(df[cfg.target], cfg.target)
    if listed is None and nominal:  # ARFF / KEEL: declared nominal, even when the values are digits ({0,1})
        listed = [c for c in features if c in nominal or _is_categorical(df[c], c, None)]

    numeric, onehot, problems = {}, {}, {}
    for name in features:
        try:
            if _is_categorical(df[name], name, listed):
                onehot[name] = _one_hot(df[name], name, cfg.max_categories)
            else:
                numeric[name] = _numeric(df[name], name)
        except UserError as e:  # gathered, so that one message names every column to fix
            problems[name] = str(e)
    if problems:
        usable = [n for n in features if n not in problems]
        leave_out = f", or leave them out: dataset.features={_override_value(usable)}" if usable else ""
        raise UserError(f"dataset: {len(problems)} column(s) of {cfg.path} cannot be used as they are: "
                        f"{'; '.join(problems.values())}. Fix the file{leave_out}.")
    x = np.column_stack(list(numeric.values()) + list(onehot.values())).astype(np.float32)
    ends = np.cumsum([len(numeric)] + [block.shape[1] for block in onehot.values()])
    blocks = tuple((int(a), int(b)) for a, b in zip(ends[:-1], ends[1:]))
    return Source(x, y, classes, tabular=True, numeric=tuple(range(len(numeric))), categorical=blocks)
