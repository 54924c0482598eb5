"""The data types every stage passes on: a split (features and labels), a dataset of three splits, and what a
loader returns (a Source) before it is split; for text, what its token ids mean (Vocabulary)."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    import torch


@dataclass(frozen=True)
class Split:
    """One part of a dataset: features x (N, *input_shape) and integer labels y (N,)."""

    x: np.ndarray
    y: np.ndarray

    def counts(self, num_classes: int) -> list[int]:
        return np.bincount(self.y, minlength=num_classes).tolist()


@dataclass(frozen=True)
class Vocabulary:
    """What the token ids of a tokenized text dataset mean: ids are 0..size-1, pad_id fills each row of x (N, L)
    after its document's tokens, and no document has more than max_length tokens."""

    size: int
    pad_id: int
    max_length: int


@dataclass(frozen=True)
class Dataset:
    train: Split
    val: Split
    test: Split
    classes: list[str]
    tabular: bool = False  # features to standardise with train statistics (images are not)
    unlabeled: Split | None = None  # train samples whose labels are withheld (ssl=pseudo_label)
    images: bool = False  # pixels (N, C, H, W) on the 0..255 scale, normalised on the device per batch
    numeric: tuple[int, ...] | None = None  # tabular: the columns to standardise (one-hot ones are not); None: all
    categorical: tuple[tuple[int, int], ...] = ()  # tabular: the columns [start, stop) of each one-hot category
    source_fingerprint: str = ""  # SHA-256 of what the loader read, before any split (trainer.data.fingerprint)
    pixel_stats: tuple[np.ndarray, np.ndarray] | None = None  # images: per-channel mean and std of the real train
    #                                                             images (before resampling), for normalisation
    text: bool = False  # documents: x holds strings (N,) until tokenized, then token ids (N, L) int64
    vocabulary: Vocabulary | None = None  # text, once tokenized (trainer.data.tokenizer)
    notes: dict[str, float | int | str] = field(default_factory=dict)  # what the loader decided, logged as params

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    @property
    def input_shape(self) -> tuple[int, ...]:
        return tuple(self.train.x.shape[1:])


@dataclass(frozen=True)
class Source:
    """What a loader returns: all labelled data (or the train part when the dataset ships its own test set)."""

    x: np.ndarray
    y: np.ndarray
    classes: list[str]
    tabular: bool = False
    images: bool = False
    numeric: tuple[int, ...] | None = None
    categorical: tuple[tuple[int, int], ...] = ()  # the columns [start, stop) of each one-hot encoded column
    text: bool = False  # x holds documents: strings (N,), tokenized after the split (trainer.data.tokenizer)
    test: Split | None = None  # the dataset's official test split; None: a stratified one is carved out
    notes: dict[str, float | int | str] = field(default_factory=dict)  # e.g. duplicates dropped: logged as params


@dataclass(frozen=True)
class Tensors:
    """A split on the training device: x (N, *input_shape), y (N,) int64."""

    x: torch.Tensor
    y: torch.Tensor

    @classmethod
    def on(cls, split: Split, device: torch.device) -> Tensors:
        """The split's arrays as tensors on device (shared with numpy on the CPU, not copied)."""
        import torch

        return cls(torch.as_tensor(split.x, device=device), torch.as_tensor(split.y, device=device))
