"""Image datasets read into uint8 arrays (N, C, H, W): torchvision's MNIST, Fashion-MNIST, CIFAR-10, image folders.

Pixels stay uint8 on the 0..255 scale (a quarter of float32's memory, on the host and on the device);
trainer.models.inputs normalises and augments them on the device per batch.
"""
from __future__ import annotations

import gzip
import logging
import socket
import struct
import time
from collections.abc import Iterator
from contextlib import contextmanager
from functools import partial
from pathlib import Path

import numpy as np

from trainer.data.types import Source, Split
from trainer.errors import UserError

log = logging.getLogger(__name__)

TORCHVISION = {"mnist": "MNIST", "fashion_mnist": "FashionMNIST", "cifar10": "CIFAR10"}
# Folders where a system package installs a dataset's IDX files, read in place (Debian's dataset-fashion-mnist).
SYSTEM_DIRS = {"fashion_mnist": Path("/usr/share/datasets/fashion-mnist")}
DOWNLOAD_TIMEOUT_S = 60  # torchvision opens URLs without a timeout: a silent network would hang the run forever


def expected_files(cls: type, root: Path) -> tuple[Path, list[str]]:
    """The folder torchvision reads a dataset class from, and the file names it needs there."""
    if hasattr(cls, "resources"):  # MNIST and its relatives: IDX files in <root>/<ClassName>/raw
        return root / cls.__name__ / "raw", [name.removesuffix(".gz") for name, _ in cls.resources]
    files = [name for name, _ in cls.train_list + cls.test_list] + [cls.meta["filename"]]
    return root / cls.base_folder, files


def download_command(cls: type, root: Path) -> str:
    """A command that downloads the dataset with torchvision into root."""
    return f"python -c \"from torchvision.datasets import {cls.__name__}; {cls.__name__}('{root}', download=True)\""


def _extract_gz(folder: Path, files: list[str]) -> None:
    """Unpack NAME.gz placed by hand next to a missing NAME (torchvision only unpacks what it downloaded)."""
    from torchvision.datasets.utils import extract_archive

    for name in files:
        if not (folder / name).is_file() and (folder / f"{name}.gz").is_file():
            extract_archive(str(folder / f"{name}.gz"), str(folder))


@contextmanager
def _socket_timeout(seconds: float) -> Iterator[None]:
    previous = socket.getdefaulttimeout()
    socket.setdefaulttimeout(seconds)
    try:
        yield
    finally:
        socket.setdefaulttimeout(previous)


def read_idx(path: Path) -> np.ndarray:
    """An IDX file of unsigned bytes (MNIST's format: magic 0 0 0x08 ndim, big-endian int32 sizes, then the data),
    gzipped when its name ends in .gz, as a uint8 array of those sizes."""
    raw = gzip.decompress(path.read_bytes()) if path.suffix == ".gz" else path.read_bytes()
    if raw[:3] != b"\x00\x00\x08":
        raise UserError(f"{path} is not an IDX file of unsigned bytes (as in MNIST): delete or replace it.")
    ndim = raw[3]
    sizes = struct.unpack(f">{ndim}i", raw[4:4 + 4 * ndim])
    return np.frombuffer(bytearray(raw), np.uint8, offset=4 + 4 * ndim).reshape(sizes)  # writable, for torch


def idx_files(cls: type, folder: Path) -> list[Path] | None:
    """The four IDX files of an MNIST-like dataset directly in folder (each .gz or not), or None if any is missing."""
    if not hasattr(cls, "resources"):
        return None
    found = []
    for gz_name, _ in cls.resources:
        path = next((p for p in (folder / gz_name, folder / gz_name.removesuffix(".gz")) if p.is_file()), None)
        if path is None:
            return None
        found.append(path)
    return found


def _from_idx(cls: type, files: list[Path]) -> Source:
    """Source of train-images, train-labels, t10k-images, t10k-labels (torchvision's resource order), read in place."""
    x_train, y_train, x_test, y_test = (read_idx(p) for p in files)
    return Source(np.ascontiguousarray(x_train[:, None]), y_train.astype(np.int64), list(cls.classes), images=True,
                  test=Split(np.ascontiguousarray(x_test[:, None]), y_test.astype(np.int64)))


def load_torchvision(name: str, root: str, download: bool) -> Source:
    """Train and official test split of torchvision dataset `name`, downloaded into root when missing and allowed.

    MNIST-like datasets are also read in place from IDX files directly in root, or from the folder a system package
    installs them in (SYSTEM_DIRS: Debian's dataset-fashion-mnist) before anything is downloaded.
    """
    import torchvision.datasets

    cls = getattr(torchvision.datasets, TORCHVISION[name])
    root_path = Path(root).expanduser()
    folder, files = expected_files(cls, root_path)
    _extract_gz(folder, files)
    missing = [f for f in files if not (folder / f).is_file()]
    for place in (root_path, SYSTEM_DIRS.get(name)) if missing else ():
        found = idx_files(cls, place) if place is not None else None
        if found:
            log.info("dataset=%s: reading the IDX files in %s in place", name, place)
            return _from_idx(cls, found)
    gz = ", each possibly .gz" if hasattr(cls, "resources") else ""
    absent = (f"dataset={name}: the files are not in {folder.resolve()}/ (expected {', '.join(files)}{gz})"
              if len(missing) == len(files) else
              f"dataset={name}: {', '.join(missing)} missing from {folder.resolve()}/ (expected {', '.join(files)}{gz})")
    top = folder.relative_to(root_path).parts[0]
    fix = (f"On a machine with internet run  {download_command(cls, root_path)}  and copy the {root_path / top}/ it "
           f"makes into {root_path.resolve()}/ here, or set dataset.root to the folder that holds {top}/.")
    if missing and not download:
        raise UserError(f"{absent}, and dataset.download=false. {fix} Or set dataset.download=true on a machine "
                        "with internet.")
    try:
        with _socket_timeout(DOWNLOAD_TIMEOUT_S):
            train = cls(str(root_path), train=True, download=download)
            test = cls(str(root_path), train=False, download=download)
    except (RuntimeError, OSError) as e:  # URLError is an OSError; torchvision reports bad checksums as RuntimeError
        reason = " ".join(str(e).split())[-300:]
        if missing:
            raise UserError(f"{absent}, and downloading them failed ({reason}). {fix}") from e
        raise UserError(f"dataset={name}: torchvision cannot use the files in {folder.resolve()}/ ({reason}): "
                        f"incomplete or corrupted? Delete {folder}/ and download again. {fix}") from e
    return Source(*_arrays(train), list(train.classes), images=True, test=Split(*_arrays(test)))


def _arrays(ds) -> tuple[np.ndarray, np.ndarray]:
    """(uint8 images (N, C, H, W), int64 labels) of a torchvision MNIST-like or CIFAR-like dataset."""
    data = ds.data.numpy() if hasattr(ds.data, "numpy") else np.asarray(ds.data)
    x = data[:, None] if data.ndim == 3 else data.transpose(0, 3, 1, 2)  # (N, H, W) gray or (N, H, W, C) colour
    return np.ascontiguousarray(x, dtype=np.uint8), np.asarray(ds.targets, dtype=np.int64)


def _open(path: str, mode: str):
    from PIL import Image

    with Image.open(path) as img:
        return img.convert(mode)


def load_image_folder(path: str, image_size: int, grayscale: bool) -> Source:
    """All images of an ImageFolder tree (one sub-folder per class) as uint8 (N, 1 or 3, size, size).

    Each image is resized so that its shorter side is image_size, then centre-cropped to a square.
    """
    from torchvision.datasets import ImageFolder
    from torchvision.transforms import v2
    from tqdm.auto import tqdm

    root = Path(path).expanduser()
    if root.is_file():
        raise UserError(f"dataset.path={path} is a file; dataset=image_folder reads a folder with one sub-folder of "
                        "images per class. For a table (.csv, .tsv, .parquet, .arff, .dat) use dataset=csv.")
    if not root.is_dir():
        raise UserError(f"dataset.path={path}: no such folder. Point it at a folder with one sub-folder of images "
                        "per class (torchvision's ImageFolder layout: PATH/cat/001.png, PATH/dog/002.jpg, ...).")
    tf = v2.Compose([v2.PILToTensor(), v2.Resize(image_size, antialias=True), v2.CenterCrop(image_size)])
    try:
        folder = ImageFolder(str(root), transform=tf, loader=partial(_open, mode="L" if grayscale else "RGB"))
    except FileNotFoundError as e:
        raise UserError(f"dataset.path={path}: {e}. Put the images of each class in their own sub-folder "
                        "(PATH/cat/001.png, PATH/dog/002.jpg, ...).") from e
    start = time.perf_counter()
    x = np.empty((len(folder), 1 if grayscale else 3, image_size, image_size), np.uint8)
    for i in tqdm(range(len(folder)), desc="images", unit="img", disable=None if len(folder) > 2000 else True):
        try:
            x[i] = folder[i][0].numpy()
        except OSError as e:  # PIL's UnidentifiedImageError and truncated files are OSErrors
            raise UserError(f"dataset.path={path}: cannot read the image {folder.samples[i][0]} ({e}). Remove or "
                            "replace it.") from e
    log.info("read %d images of %d classes from %s in %.1f s", len(x), len(folder.classes), root,
             time.perf_counter() - start)
    return Source(x, np.asarray(folder.targets, dtype=np.int64), list(folder.classes), images=True)
