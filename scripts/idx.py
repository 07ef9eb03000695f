"""Read the gzipped IDX files of MNIST / Fashion-MNIST directly (no torchvision download).

Layout expected under a data root (the same as datasets/ and /work/shared/data):
    <root>/<set>/{train,t10k}-{images-idx3,labels-idx1}-ubyte.gz   with <set> = mnist | fashion-mnist

Transforms match torchvision: `ToTensor()` is x / 255 as float32, `Normalize(m, s)` is (x - m) / s.
"""

from __future__ import annotations

import gzip
import os
import struct
from pathlib import Path

import numpy as np
import torch

# (mean, std) of seed 004's Normalize((0.1307,), (0.3081)).
MNIST_MEAN, MNIST_STD = 0.1307, 0.3081

_DTYPES = {0x08: np.uint8, 0x09: np.int8, 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}


def read_idx(path: str | os.PathLike) -> np.ndarray:
    """Read one IDX file (gzipped if the name ends in .gz) into a numpy array of its shape."""
    path = Path(path)
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rb") as f:
        raw = f.read()
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0:
        raise ValueError(f"{path}: not an IDX file (magic bytes {raw[:4].hex()})")
    dtype, ndim = raw[2], raw[3]
    if dtype not in _DTYPES:
        raise ValueError(f"{path}: unknown IDX element type 0x{dtype:02x}")
    dims = struct.unpack(f">{ndim}I", raw[4 : 4 + 4 * ndim])
    data = np.frombuffer(raw, dtype=_DTYPES[dtype], offset=4 + 4 * ndim)
    if data.size != int(np.prod(dims)):
        raise ValueError(f"{path}: header says {dims} = {int(np.prod(dims))} items, found {data.size}")
    return data.reshape(dims)


def data_root(arg: str | None) -> Path:
    """The data root from --data-dir, else $CONVNETS_DATA, else an error naming both."""
    root = arg or os.environ.get("CONVNETS_DATA")
    if not root:
        raise SystemExit("no data directory: pass --data-dir DIR or set CONVNETS_DATA")
    return Path(root)


def idx_paths(root: Path, name: str, split: str) -> tuple[Path, Path]:
    """Image and label paths for `name` in {mnist, fashion-mnist}, `split` in {train, t10k}."""
    d = Path(root) / name
    return d / f"{split}-images-idx3-ubyte.gz", d / f"{split}-labels-idx1-ubyte.gz"


def load_split(
    root: Path, name: str, split: str, normalize: tuple[float, float] | None = None, limit: int | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """Images as float32 [n, 1, 28, 28] (ToTensor scaling, then optional Normalize) and int64 labels [n]."""
    ip, lp = idx_paths(root, name, split)
    images = read_idx(ip)
    labels = read_idx(lp)
    if images.shape[0] != labels.shape[0]:
        raise ValueError(f"{ip}: {images.shape[0]} images but {lp}: {labels.shape[0]} labels")
    if limit is not None:
        images, labels = images[:limit], labels[:limit]
    pixels = images.astype(np.float32)
    pixels /= np.float32(255.0)  # in place: the float32 set is the biggest allocation here
    x = torch.from_numpy(pixels).unsqueeze(1)
    if normalize is not None:
        mean, std = normalize
        x.sub_(mean).div_(std)
    y = torch.from_numpy(labels.astype(np.int64))
    return x.contiguous(), y
