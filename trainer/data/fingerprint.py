"""SHA-256 fingerprints of data: what a run trained on, and what a loader read before any split."""
from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence

import numpy as np


def fingerprint(arrays: Iterable[tuple[str, np.ndarray]], classes: Sequence[str]) -> str:
    """SHA-256 (hex) of the class names and each named array's dtype, shape and bytes, in order. Arrays of Python
    objects (texts) are hashed by each element's UTF-8 repr."""
    h = hashlib.sha256(repr(list(classes)).encode())
    for name, arr in arrays:
        a = np.ascontiguousarray(arr)
        h.update(f"|{name}:{a.dtype.str}:{a.shape}|".encode())
        if a.dtype == object:
            for item in a.reshape(-1):
                h.update(repr(item).encode("utf-8", "surrogatepass"))
                h.update(b"\x00")
        else:
            h.update(a.reshape(-1).view(np.uint8))
    return h.hexdigest()
