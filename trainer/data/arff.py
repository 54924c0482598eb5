"""ARFF (Weka, OpenML) and KEEL .dat tables as pandas DataFrames, nominal attributes kept as categories.

Both formats are a header of @-lines and comma-separated rows after @data. KEEL's variant adds value ranges to
numeric attributes (`@attribute Mcg real [0.11, 1.0]`) and may name the class in `@outputs`. The header is read
here (scipy.io.arff refuses KEEL's ranges and the spaces after its commas); pandas reads the rows.
Formats: https://waikato.github.io/weka-wiki/formats_and_processing/arff_stable/ and
https://sci2s.ugr.es/keel/dataset/data/ (KEEL's .dat).
"""
from __future__ import annotations

import io
import re
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from trainer.errors import UserError

if TYPE_CHECKING:
    import pandas as pd

SUFFIXES = (".arff", ".dat")
_ATTRIBUTE = re.compile(r"""@attribute\s+('(?:[^'\\]|\\.)*'|"(?:[^"\\]|\\.)*"|[^\s{]+)\s*(.*)""", re.IGNORECASE)
_NUMERIC = re.compile(r"(real|numeric|integer)\s*(\[.*\])?\s*$", re.IGNORECASE)


@dataclass(frozen=True)
class Table:
    """The rows (strings, missing '?' as NA), the nominal attributes and the class attribute the file names."""

    frame: pd.DataFrame  # one str column per attribute, in the header's order
    nominal: list[str]
    target: str  # KEEL's @outputs, else the last attribute (Weka's default class)


def _unquote(name: str) -> str:
    return name[1:-1] if len(name) > 1 and name[0] == name[-1] and name[0] in "'\"" else name


def read(path: Path, encoding: str = "utf-8") -> Table:
    """Parse an ARFF or KEEL .dat file, decoded with `encoding` (UnicodeDecodeError if it cannot be); UserError naming
    the line for what it cannot read (sparse rows, relational attributes, an unknown type)."""
    import pandas as pd

    names, nominal, outputs = [], [], None
    lines = path.read_text(encoding=encoding).splitlines()
    for number, line in enumerate(lines, start=1):
        text = line.strip()
        lower = text.lower()
        if not text or text.startswith("%") or lower.startswith(("@relation", "@inputs", "@input ")):
            continue
        if lower.startswith(("@outputs", "@output ")):
            outputs = [_unquote(n.strip()) for n in text.split(None, 1)[1].split(",")] if " " in text else None
            continue
        if lower.startswith("@data"):
            body = "\n".join(lines[number:])
            break
        match = _ATTRIBUTE.match(text)
        if match is None:
            raise UserError(f"dataset.path={path}: line {number} ({text[:60]!r}) is not an ARFF/KEEL header line.")
        name, kind = _unquote(match.group(1)), match.group(2).strip()
        if kind.startswith("{"):
            nominal.append(name)
        elif not (_NUMERIC.match(kind) or kind.lower() == "string"):
            raise UserError(f"dataset.path={path}: attribute {name!r} on line {number} has the type {kind!r}; only "
                            "numeric (real, integer, numeric), nominal {a,b,...} and string attributes are read. "
                            "Convert the file to CSV, or drop that attribute.")
        names.append(name)
    else:
        raise UserError(f"dataset.path={path}: no @data line, so no rows: is it an ARFF or KEEL .dat file?")
    if not body.strip():  # a header without rows: an empty table, which the loader refuses by name
        return Table(pd.DataFrame(columns=names), nominal, outputs[0] if outputs else (names or [None])[-1])
    if body.lstrip().startswith("{"):
        raise UserError(f"dataset.path={path}: sparse ARFF rows ({{index value, ...}}) are not read. Save the data "
                        "as dense ARFF or CSV.")
    try:  # '?' marks a missing value in ARFF, '<null>' in KEEL
        frame = pd.read_csv(io.StringIO(body), header=None, dtype=str, skipinitialspace=True, quotechar="'",
                            comment="%", na_values=["?", "<null>"], keep_default_na=False, skip_blank_lines=True)
    except (ValueError, pd.errors.ParserError) as e:
        raise UserError(f"dataset.path={path}: the rows after @data do not match the {len(names)} attributes of "
                        f"the header ({e}).") from e
    if frame.shape[1] != len(names):
        raise UserError(f"dataset.path={path}: the rows after @data have {frame.shape[1]} values, and the header "
                        f"declares {len(names)} attributes ({', '.join(names)}): the rows do not match the header.")
    frame.columns = names
    frame = frame.apply(lambda column: column.str.strip())
    target = outputs[0] if outputs else names[-1]
    return Table(frame, nominal, target)
