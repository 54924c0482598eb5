"""dataset=dna_splice: StatLog's primate splice-junction sequences (UCI "Molecular Biology (Splice-junction Gene
Sequences)", as prepared for StatLog; GPL-2 in R's mlbench), read from Debian's r-cran-mlbench without R.

mlbench's DNA.rda holds 3,186 rows of 180 binary indicators and a Class factor (ei 767, ie 765, n 1,654): three bits
per nucleotide, A = 100, C = 010, G = 001, T = 000, which are decoded back to 60-letter strings (the ei class then
shows the GT donor consensus at positions 31-32, the ie class the AG acceptor at 29-30). Rows 1-2,000 are StatLog's
training set and rows 2,001-3,186 its test set (Michie, Spiegelhalter & Taylor 1994, "Machine Learning, Neural and
Statistical Classification", the DNA dataset). The R data file is read by PyPI's rdata; the .deb that
`apt-get download r-cran-mlbench` fetches is read in place (an ar archive holding data.tar.xz), so R is never
installed.
"""
from __future__ import annotations

import io
import tarfile
import warnings
from pathlib import Path

import numpy as np
from omegaconf import DictConfig

from trainer.data.types import Source, Split
from trainer.errors import UserError

RDA = "usr/lib/R/site-library/mlbench/data/DNA.rda"  # where the package installs it (and where the .deb holds it)
DEB = "r-cran-mlbench_*.deb"
NUCLEOTIDES = np.array(list("TGC?A"))  # indexed by a triple's bits read as a binary number: 100 A, 010 C, 001 G, 000 T
STATLOG_TRAIN = 2000


def fetch_command(root: Path) -> str:
    """The one command that puts the .deb where dataset.root looks (apt-get download writes to the working folder)."""
    return f"mkdir -p {root} && cd {root} && apt-get download r-cran-mlbench"


def ar_members(raw: bytes) -> dict[str, bytes]:
    """The members of a Unix ar archive (a .deb): a 60-byte header per member (name, ..., decimal size), 2-aligned."""
    if raw[:8] != b"!<arch>\n":
        raise ValueError("not an ar archive")
    members, pos = {}, 8
    while pos + 60 <= len(raw):
        header = raw[pos:pos + 60]
        name, size = header[:16].decode("ascii").strip().rstrip("/"), int(header[48:58])
        members[name] = raw[pos + 60:pos + 60 + size]
        pos += 60 + size + size % 2
    return members


def from_deb(path: Path) -> bytes:
    """DNA.rda's bytes from inside the r-cran-mlbench .deb."""
    members = ar_members(path.read_bytes())
    data = next(name for name in members if name.startswith("data.tar"))
    with tarfile.open(fileobj=io.BytesIO(members[data])) as archive:
        return archive.extractfile("./" + RDA).read()


def rda_bytes(root: Path) -> tuple[bytes, Path]:
    """DNA.rda's bytes and where they came from: a .deb in root, root/DNA.rda, an unpacked .deb under root, or the
    installed R package; UserError naming the command that fetches the .deb."""
    debs = sorted(root.glob(DEB))
    candidates = [root / "DNA.rda", root / RDA, Path("/") / RDA]
    try:
        if debs:
            return from_deb(debs[-1]), debs[-1]
        for path in candidates:
            if path.is_file():
                return path.read_bytes(), path
    except (OSError, ValueError, KeyError, StopIteration, tarfile.TarError) as e:
        bad = debs[-1] if debs else path
        raise UserError(f"dataset=dna_splice: {bad} cannot be read ({type(e).__name__}: {e}): truncated? Delete it "
                        f"and fetch it again:  {fetch_command(root.resolve())}") from e
    raise UserError(f"dataset=dna_splice: no r-cran-mlbench .deb (or DNA.rda) in {root.resolve()}/. Get it with:  "
                    f"{fetch_command(root.resolve())}  (or set dataset.root to the folder that holds it).")


def decode(bits: np.ndarray) -> list[str]:
    """(N, 180) 0/1 indicators -> N strings of 60 nucleotides (A = 100, C = 010, G = 001, T = 000)."""
    codes = bits.reshape(len(bits), -1, 3) @ np.array([4, 2, 1])
    if np.isin(codes, (0, 1, 2, 4), invert=True).any():
        raise ValueError("a nucleotide's three indicators are not one of 100, 010, 001, 000")
    return ["".join(row) for row in NUCLEOTIDES[codes]]


def load_dna_splice(cfg: DictConfig) -> Source:
    """The sequences as documents, classes in the factor's order (ei, ie, n); StatLog's test set as the official test
    split with dataset.statlog_split."""
    import rdata

    raw, where = rda_bytes(Path(cfg.root).expanduser())
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # rdata: "Unknown encoding. Assumed ASCII." for each of the 181 factors
        frame = rdata.conversion.convert(rdata.parser.parse_data(raw))["DNA"]
    labels = frame["Class"]
    classes = [str(c) for c in labels.cat.categories]
    y = labels.cat.codes.to_numpy().astype(np.int64)
    try:
        if len(y) != 3186:
            raise ValueError(f"it holds {len(y)} sequences, not StatLog's 3,186")
        x = np.asarray(decode(frame.drop(columns="Class").astype(int).to_numpy()), dtype=object)
    except ValueError as e:
        raise UserError(f"dataset=dna_splice: {where}: {e}: not mlbench's DNA data? Delete it and fetch it again:  "
                        f"{fetch_command(Path(cfg.root).expanduser().resolve())}") from e
    if not cfg.statlog_split:
        return Source(x, y, classes, text=True)
    return Source(x[:STATLOG_TRAIN], y[:STATLOG_TRAIN], classes, text=True,
                  test=Split(x[STATLOG_TRAIN:], y[STATLOG_TRAIN:]))
