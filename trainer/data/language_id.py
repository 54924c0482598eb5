"""dataset=language_id: which language a word is in, from the word lists Debian installs in /usr/share/dict.

Each chosen language's list is one class, at its natural size: the lists are very unequal (Gaelic 15,670 words,
Portuguese 419,167), which is the point. A list is read as UTF-8, and as ISO-8859-1 when it is not valid UTF-8
(Debian's Swedish, Norwegian and Manx lists); blank lines and a list's repeated lines are dropped. A word found in
several of the chosen lists (hotel, radio, ...) is dropped from all of them with dataset.shared_words=drop, or kept in
each with shared_words=keep: the same string then carries several labels, a natural source of label noise. Then
dataset.fraction of every list is kept, the same share for all, so the ratios between languages stay; the kept words
are the same for every run (drawn with a fixed seed, SAMPLE_SEED): runs of other seeds differ in their split, not in
their words, so they pair in scripts/compare.py as runs on one dataset.
"""
from __future__ import annotations

import logging
from collections import Counter
from pathlib import Path

import numpy as np
from omegaconf import DictConfig

from trainer.data.types import Source
from trainer.errors import UserError

log = logging.getLogger(__name__)

SAMPLE_SEED = 0  # the words dataset.fraction keeps: one dataset for every run

# language -> (Debian package, file in /usr/share/dict)
LISTS = {
    "english": ("wamerican", "american-english"),
    "british": ("wbritish", "british-english"),
    "german": ("wngerman", "ngerman"),
    "swiss_german": ("wswiss", "swiss"),
    "french": ("wfrench", "french"),
    "spanish": ("wspanish", "spanish"),
    "italian": ("witalian", "italian"),
    "portuguese": ("wportuguese", "portuguese"),
    "brazilian": ("wbrazilian", "brazilian"),
    "catalan": ("wcatalan", "catalan"),
    "dutch": ("wdutch", "dutch"),
    "danish": ("wdanish", "danish"),
    "swedish": ("wswedish", "swedish"),
    "norwegian": ("wnorwegian", "bokmaal"),
    "nynorsk": ("wnorwegian", "nynorsk"),
    "faroese": ("wfaroese", "faroese"),
    "irish": ("wirish", "irish"),
    "gaelic": ("wgaelic", "gaelic"),
    "manx": ("wmanx", "manx"),
    "polish": ("wpolish", "polish"),
    "bulgarian": ("wbulgarian", "bulgarian"),
    "ukrainian": ("wukrainian", "ukrainian"),
    "esperanto": ("wesperanto", "esperanto"),
}


def install_command(languages: list[str]) -> str:
    """The one command that installs the word lists of these languages."""
    return "apt-get install " + " ".join(dict.fromkeys(LISTS[lang][0] for lang in languages))


def read_list(path: Path) -> list[str]:
    """A word list's distinct non-blank lines, in order: UTF-8, or ISO-8859-1 where it is not valid UTF-8."""
    raw = path.read_bytes()
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        text = raw.decode("iso-8859-1")  # every byte is a character: never fails
    return list(dict.fromkeys(w for w in (line.strip() for line in text.splitlines()) if w))


def load_language_id(cfg: DictConfig) -> Source:
    """Words (documents) and their language (class), the classes in the order of dataset.languages."""
    languages = list(cfg.languages)
    unknown = [lang for lang in languages if lang not in LISTS]
    if unknown:
        raise UserError(f"dataset.languages: {', '.join(map(repr, unknown))} has no Debian word list here; choose "
                        f"among {', '.join(LISTS)}.")
    root = Path(cfg.root)
    missing = [lang for lang in languages if not (root / LISTS[lang][1]).is_file()]
    if missing:
        raise UserError(f"dataset=language_id: the word list(s) of {', '.join(missing)} are not installed (expected "
                        f"{', '.join(str(root / LISTS[lang][1]) for lang in missing)}). Install them with:  "
                        f"{install_command(missing)}  (or leave them out of dataset.languages).")
    lists = {lang: read_list(root / LISTS[lang][1]) for lang in languages}
    counts = Counter(w for words in lists.values() for w in words)
    shared = {w for w, n in counts.items() if n > 1}
    log.info("dataset=language_id: %d word(s) are in more than one of the %d lists: %s", len(shared), len(languages),
             "dropped from all" if cfg.shared_words == "drop" else "kept in each (one string, several labels)")
    if cfg.shared_words == "drop":
        lists = {lang: [w for w in words if w not in shared] for lang, words in lists.items()}
    rng = np.random.default_rng(SAMPLE_SEED)
    words, labels = [], []
    for c, lang in enumerate(languages):
        kept = lists[lang]
        if cfg.fraction < 1:
            chosen = rng.choice(len(kept), size=max(1, round(cfg.fraction * len(kept))), replace=False)
            kept = [kept[i] for i in np.sort(chosen)]
        words += kept
        labels += [c] * len(kept)
    return Source(np.asarray(words, dtype=object), np.asarray(labels, dtype=np.int64), languages, text=True,
                  notes={"dataset.used.shared_words": len(shared)})
