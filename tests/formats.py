"""Small datasets written in the real file formats the loaders read: MNIST's IDX files, CIFAR-10's pickled
batches, an ImageFolder tree of PNGs, CSV and parquet tables, texts (tables and load_files folders).

Each image carries a bright square whose place depends on its class, and each text words its class favours, so a
short training run can learn them.
"""
from __future__ import annotations

import gzip
import pickle
import struct
from pathlib import Path

import numpy as np


def class_images(y: np.ndarray, channels: int, size: int, rng: np.random.Generator) -> np.ndarray:
    """uint8 images (N, C, size, size): dim noise plus a bright square at a place set by the class."""
    x = rng.integers(0, 60, size=(len(y), channels, size, size), dtype=np.uint8)
    cell = size // 4
    for i, c in enumerate(y):
        r, col = divmod(int(c) % 16, 4)
        x[i, :, r * cell:(r + 1) * cell, col * cell:(col + 1) * cell] = 255
    return x


def balanced_labels(per_class: int, num_classes: int, rng: np.random.Generator) -> np.ndarray:
    return rng.permutation(np.repeat(np.arange(num_classes), per_class)).astype(np.int64)


def _idx(path: Path, array: np.ndarray, gz: bool) -> None:
    """IDX as on yann.lecun.com: magic (0, 0, 0x08 = ubyte, ndim), big-endian int32 dims, then the bytes."""
    payload = struct.pack(">BBBB", 0, 0, 0x08, array.ndim) + struct.pack(f">{array.ndim}i", *array.shape)
    payload += np.ascontiguousarray(array, dtype=np.uint8).tobytes()
    if gz:
        path.with_name(path.name + ".gz").write_bytes(gzip.compress(payload))
    else:
        path.write_bytes(payload)


def write_mnist(root: Path, folder: str = "MNIST", train_per_class: int = 30, test_per_class: int = 10,
                gz: bool = False, seed: int = 0) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """<root>/<folder>/raw/{train,t10k}-{images-idx3,labels-idx1}-ubyte[.gz]; returns {part: (images, labels)}."""
    rng = np.random.default_rng(seed)
    raw = root / folder / "raw"
    raw.mkdir(parents=True, exist_ok=True)
    written = {}
    for part, prefix, per_class in (("train", "train", train_per_class), ("test", "t10k", test_per_class)):
        y = balanced_labels(per_class, 10, rng)
        x = class_images(y, 1, 28, rng)
        _idx(raw / f"{prefix}-images-idx3-ubyte", x[:, 0], gz)
        _idx(raw / f"{prefix}-labels-idx1-ubyte", y, gz)
        written[part] = (x, y)
    return written


CIFAR_CLASSES = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]


def write_cifar10(root: Path, train_per_class: int = 30, test_per_class: int = 10,
                  seed: int = 0) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """<root>/cifar-10-batches-py/{data_batch_1..5, test_batch, batches.meta} as pickled dicts of rows of 3072
    bytes (channel-major); returns {part: (images, labels)}."""
    rng = np.random.default_rng(seed)
    folder = root / "cifar-10-batches-py"
    folder.mkdir(parents=True, exist_ok=True)

    def batch(name: str, x: np.ndarray, y: np.ndarray) -> None:
        entry = {"batch_label": name, "labels": y.tolist(), "data": x.reshape(len(y), 3072),
                 "filenames": [f"img_{i}.png" for i in range(len(y))]}
        (folder / name).write_bytes(pickle.dumps(entry))

    written = {}
    for part, per_class in (("train", train_per_class), ("test", test_per_class)):
        y = balanced_labels(per_class, 10, rng)
        written[part] = (class_images(y, 3, 32, rng), y)
    for k, rows in enumerate(np.array_split(np.arange(len(written["train"][1])), 5), start=1):
        batch(f"data_batch_{k}", written["train"][0][rows], written["train"][1][rows])
    batch("test_batch", *written["test"])
    meta = {"label_names": CIFAR_CLASSES, "num_cases_per_batch": len(rows), "num_vis": 3072}
    (folder / "batches.meta").write_bytes(pickle.dumps(meta))
    return written


def write_image_folder(root: Path, classes: tuple[str, ...] = ("cat", "dog", "fox"), per_class: int = 20,
                       seed: int = 0) -> Path:
    """root/<class>/<i>.png: RGB PNGs of assorted sizes (not square), one folder per class."""
    from PIL import Image

    rng = np.random.default_rng(seed)
    for c, name in enumerate(classes):
        (root / name).mkdir(parents=True, exist_ok=True)
        for i in range(per_class):
            size = int(rng.integers(24, 40))
            img = class_images(np.array([c]), 3, size, rng)[0].transpose(1, 2, 0)
            side = rng.integers(0, 60, size=(size, size // 8, 3), dtype=np.uint8)
            img = np.concatenate([side, img, side], axis=1)  # wider than high: the centre crop cuts the sides
            Image.fromarray(img, "RGB").save(root / name / f"{i:03d}.png")
    return root


def table(n_per_class: int = 50, seed: int = 0):
    """A pandas DataFrame: numeric `height`, `weight`, categorical `colour`, class column `species` (3 classes)."""
    import pandas as pd

    rng = np.random.default_rng(seed)
    species = np.repeat(np.array(["ant", "bee", "cow"]), n_per_class)
    k = np.repeat(np.arange(3), n_per_class)
    return pd.DataFrame({
        "height": 10.0 + 5.0 * k + rng.normal(0, 1, len(k)),
        "weight": 100.0 - 20.0 * k + rng.normal(0, 3, len(k)),
        "colour": rng.choice(["red", "green", "blue"], len(k)),
        "species": species,
    }).sample(frac=1.0, random_state=seed).reset_index(drop=True)


TEXT_WORDS = {"ham": "meeting project report schedule lunch team review code tomorrow thanks".split(),
              "spam": "free money win prize click offer cheap deal cash bonus urgent".split(),
              "news": "election market weather sport minister league storm council".split()}


def documents(counts: dict[str, int], seed: int = 0) -> tuple[list[str], list[str]]:
    """Documents and their classes: 5 to 60 words, 70% from the class's own words, the rest from all classes'."""
    rng = np.random.default_rng(seed)
    every = [w for words in TEXT_WORDS.values() for w in words]
    texts, labels = [], []
    for label, n in counts.items():
        for _ in range(n):
            size = int(rng.integers(5, 60))
            own = rng.random(size) < 0.7
            texts.append(" ".join(str(rng.choice(TEXT_WORDS[label])) if o else str(rng.choice(every)) for o in own))
            labels.append(label)
    order = rng.permutation(len(texts))
    return [texts[i] for i in order], [labels[i] for i in order]


def write_text_table(path: Path, counts: dict[str, int] | None = None, seed: int = 0) -> Path:
    """A table of documents (column `text`) and classes (column `label`), in the format its suffix names."""
    import pandas as pd

    texts, labels = documents(counts or {"ham": 90, "spam": 30}, seed)
    frame = pd.DataFrame({"text": texts, "label": labels})
    suffix = path.suffix.lower()
    if suffix == ".parquet":
        frame.to_parquet(path)
    elif suffix in (".jsonl", ".ndjson"):
        frame.to_json(path, orient="records", lines=True, force_ascii=False)
    else:
        frame.to_csv(path, sep="\t" if suffix == ".tsv" else ",", index=False)
    return path


def write_text_folder(root: Path, counts: dict[str, int] | None = None, seed: int = 0) -> Path:
    """scikit-learn's load_files layout: root/<class>/<n>.txt."""
    texts, labels = documents(counts or {"ham": 40, "spam": 20}, seed)
    for i, (text, label) in enumerate(zip(texts, labels)):
        (root / label).mkdir(parents=True, exist_ok=True)
        (root / label / f"{i:04d}.txt").write_text(text, encoding="utf-8")
    return root
