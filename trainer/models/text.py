"""Classifiers of token ids (N, L), rows padded after their tokens with pad_id (trainer.data.tokenizer): a
fastText-style bag of hashed n-grams and Kim's convolutional classifier.

Each trims a batch to its longest document before any work, and neither lets padding change a document's logits, so
a document scores the same in any batch.
"""
from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from trainer.data.types import Vocabulary
from trainer.models.networks import classifier

# Hashing of n-grams (Joulin et al. 2017 hash them into a fixed number of buckets, like fastText's -bucket): a
# polynomial rolling hash modulo a Mersenne prime, small enough that int64 products never overflow.
HASH_PRIME = 2_147_483_647
HASH_BASE = 1_000_003


def trim(x: torch.Tensor, pad_id: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The batch cut to its longest document (at least one column), and each document's length in tokens."""
    lengths = (x != pad_id).sum(dim=1)
    return x[:, :max(1, int(lengths.max()))], lengths


def hashed_ngrams(x: torch.Tensor, n: int, buckets: int, offset: int, pad_id: int) -> torch.Tensor:
    """(B, L-n+1) ids offset + hash(x[i:i+n]) % buckets of every n-gram of tokens; pad_id where the n-gram reaches
    into the padding."""
    h = torch.full_like(x[:, :x.shape[1] - n + 1], n)  # the seed tells bigrams and trigrams of the same ids apart
    inside = torch.ones_like(h, dtype=torch.bool)
    for k in range(n):
        part = x[:, k:x.shape[1] - n + 1 + k]
        h = (h * HASH_BASE + part + 1) % HASH_PRIME
        inside &= part != pad_id
    return torch.where(inside, offset + h % buckets, torch.full_like(h, pad_id))


class NgramBag(nn.Module):
    """fastText's supervised classifier (Joulin, Grave, Bojanowski & Mikolov, EACL 2017, "Bag of Tricks for Efficient
    Text Classification"): logits = W mean(embeddings of the document's tokens and of its hashed n-grams), n = 2..
    word_ngrams, in one nn.EmbeddingBag of vocab_size + buckets rows; padding is left out of the mean. Dropout, if
    any, acts on the mean. Input (N, L) token ids; output (N, num_classes) logits."""

    def __init__(self, in_shape: Sequence[int], num_classes: int, vocabulary: Vocabulary, dim: int = 64,
                 word_ngrams: int = 2, buckets: int = 20_000, dropout: float = 0.0, normed_head: bool = False) -> None:
        super().__init__()
        self.pad_id, self.vocab_size = vocabulary.pad_id, vocabulary.size
        self.word_ngrams, self.buckets = int(word_ngrams), int(buckets)
        rows = self.vocab_size + (self.buckets if self.word_ngrams > 1 else 0)
        self.embedding = nn.EmbeddingBag(rows, dim, mode="mean", padding_idx=self.pad_id)
        nn.init.uniform_(self.embedding.weight, -1.0 / dim, 1.0 / dim)  # fastText's initialisation
        with torch.no_grad():
            self.embedding.weight[self.pad_id].zero_()
        self.dropout = nn.Dropout(dropout)
        self.head = classifier(dim, num_classes, normed_head)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x, _ = trim(x, self.pad_id)
        bags = [x] + [hashed_ngrams(x, n, self.buckets, self.vocab_size, self.pad_id)
                      for n in range(2, self.word_ngrams + 1) if n <= x.shape[1]]
        return self.head(self.dropout(self.embedding(torch.cat(bags, dim=1))))


class TextCNN(nn.Module):
    """Kim (EMNLP 2014), "Convolutional Neural Networks for Sentence Classification": token embeddings, one
    nn.Conv1d of `channels` maps per kernel size, ReLU, max over the windows that start on a token (not in the
    padding), dropout, a linear layer. A document shorter than a kernel is padded to its width. Input (N, L) token
    ids; output (N, num_classes) logits."""

    def __init__(self, in_shape: Sequence[int], num_classes: int, vocabulary: Vocabulary, dim: int = 128,
                 kernel_sizes: Sequence[int] = (3, 4, 5), channels: int = 100, dropout: float = 0.0,
                 normed_head: bool = False) -> None:
        super().__init__()
        self.pad_id, self.kernel_sizes = vocabulary.pad_id, tuple(int(k) for k in kernel_sizes)
        self.embedding = nn.Embedding(vocabulary.size, dim, padding_idx=self.pad_id)
        self.convs = nn.ModuleList(nn.Conv1d(dim, channels, k) for k in self.kernel_sizes)
        self.dropout = nn.Dropout(dropout)
        self.head = classifier(channels * len(self.kernel_sizes), num_classes, normed_head)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x, lengths = trim(x, self.pad_id)
        widest = max(self.kernel_sizes)
        if x.shape[1] < widest:
            x = F.pad(x, (0, widest - x.shape[1]), value=self.pad_id)
        e = self.embedding(x).transpose(1, 2)  # (N, dim, L)
        pooled = []
        for k, conv in zip(self.kernel_sizes, self.convs):
            h = F.relu(conv(e))  # (N, channels, L - k + 1), >= 0
            starts = torch.arange(h.shape[2], device=x.device)
            real = starts[None, :] < (lengths - k + 1).clamp(min=1)[:, None]  # windows starting on a token
            pooled.append(h.masked_fill(~real[:, None, :], 0.0).amax(dim=2))  # 0 is below no ReLU output
        return self.head(self.dropout(torch.cat(pooled, dim=1)))
