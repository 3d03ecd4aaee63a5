"""Reading what a trainbench run plan points at: the data files (IDX, CIFAR-10 binary,
digit CSV), pooled as trainbench pools them, checked against the plan's CRC-32s; and the
plan's compact integer arrays."""
import base64
import gzip
import os
import zlib

import numpy as np


class DataError(Exception):
    """A data file is missing or not what the plan says; the message names it."""


def decode_array(a, what):
    """A plan array {"dtype", "shape", "encoding": "zlib+base64", "data"} as numpy."""
    dtypes = {"int32": np.dtype("<i4"), "uint8": np.dtype("u1")}
    if a.get("encoding") != "zlib+base64" or a.get("dtype") not in dtypes:
        raise DataError(f"{what}: unknown array encoding {a.get('encoding')} / {a.get('dtype')}")
    raw = zlib.decompress(base64.b64decode(a["data"]))
    out = np.frombuffer(raw, dtype=dtypes[a["dtype"]])
    shape = tuple(a["shape"])
    if out.size != int(np.prod(shape, dtype=np.int64)):
        raise DataError(f"{what}: {out.size} values for shape {shape}")
    return out.reshape(shape)


def _read_bytes(path):
    try:
        with (gzip.open(path, "rb") if path.endswith(".gz") else open(path, "rb")) as f:
            return f.read()
    except OSError as e:
        raise DataError(f"{path}: cannot read: {e}") from e


def read_idx(path, want_dims):
    """An IDX file of unsigned bytes with want_dims dimensions (3 images, 1 labels)."""
    b = _read_bytes(path)
    if len(b) < 4 or b[0] != 0 or b[1] != 0 or b[2] != 8 or b[3] != want_dims:
        raise DataError(f"{path}: not an IDX file of unsigned bytes with {want_dims} dimensions")
    dims = [int.from_bytes(b[4 + 4 * i:8 + 4 * i], "big") for i in range(want_dims)]
    offset = 4 + 4 * want_dims
    count = int(np.prod(dims, dtype=np.int64))
    if len(b) - offset != count:
        raise DataError(f"{path}: holds {len(b) - offset} bytes of data, dimensions {dims} "
                        f"need {count}")
    return np.frombuffer(b, np.uint8, offset=offset).reshape(dims)


def read_idx_pair(images_path, labels_path):
    images = read_idx(images_path, 3)
    labels = read_idx(labels_path, 1).astype(np.int32)
    if len(images) != len(labels):
        raise DataError(f"{images_path} has {len(images)} images, {labels_path} "
                        f"{len(labels)} labels")
    return images[:, None, :, :], labels


def read_cifar(paths):
    images, labels = [], []
    for path in paths:
        b = _read_bytes(path)
        if not b or len(b) % 3073:
            raise DataError(f"{path}: {len(b)} bytes is not a whole number of 3073-byte records")
        rec = np.frombuffer(b, np.uint8).reshape(-1, 3073)
        labels.append(rec[:, 0].astype(np.int32))
        images.append(rec[:, 1:].reshape(-1, 3, 32, 32))
    return np.concatenate(images), np.concatenate(labels)


def read_digit_csv(path):
    """label,pixel0..pixel783 rows (a training set must have the label column)."""
    with open(path, "r", newline="") as f:
        header = f.readline().strip().split(",")
        if not header or header[0] != "label" or len(header) != 785:
            raise DataError(f"{path}:1: expected the header label,pixel0,...,pixel783")
        rows = np.loadtxt(f, delimiter=",", dtype=np.int32, ndmin=2)
    if rows.shape[1] != 785:
        raise DataError(f"{path}: rows of {rows.shape[1]} columns, expected 785")
    return rows[:, 1:].astype(np.uint8).reshape(-1, 1, 28, 28), rows[:, 0].astype(np.int32)


def read_files(fmt, paths):
    if not paths:
        return None
    if fmt == "idx":
        return read_idx_pair(paths[0], paths[1])
    if fmt == "cifar10-binary":
        return read_cifar(paths)
    if fmt == "digit-csv":
        return read_digit_csv(paths[0])
    raise DataError(f"unknown data format '{fmt}' in the plan")


def rerooted(paths, plan_dir, data_dir):
    """The plan's file paths, with the plan's data folder replaced by data_dir (a plan written
    on one machine, trained on another); paths outside that folder stay as they are."""
    if not data_dir:
        return list(paths)
    prefix = plan_dir.rstrip("/") + "/"
    return [os.path.join(data_dir, p[len(prefix):]) if p.startswith(prefix) else p
            for p in paths]


def load_pool(dataset, data_dir=None):
    """The plan's pool: the official training items, then the official test items, as
    (uint8 images [N,C,H,W], int32 labels [N]), checked against the plan's sizes and CRCs.
    data_dir: read the files from this folder instead of the plan's data folder."""
    files = dataset["files"]
    train, test = (rerooted(files[k], dataset.get("data_dir", ""), data_dir)
                   for k in ("train", "test"))
    parts = [p for p in (read_files(files["format"], train),
                         read_files(files["format"], test)) if p is not None]
    images = np.ascontiguousarray(np.concatenate([p[0] for p in parts]))
    labels = np.ascontiguousarray(np.concatenate([p[1] for p in parts]).astype("<i4"))
    pool = dataset["pool"]
    want = pool["train_file_items"] + pool["test_file_items"]
    if len(images) != want:
        raise DataError(f"{train}: read {len(images)} items, the plan has {want}")
    if (zlib.crc32(images.tobytes()) != pool["pixels_crc32"] or
            zlib.crc32(labels.tobytes()) != pool["labels_crc32"]):
        raise DataError(f"{train + test}: the data read here differs from what "
                        "trainbench read when it wrote the plan (CRC-32 mismatch)")
    return images, labels


def normalization_constants(norm):
    """trainbench's per-channel scale 1/(255*std) and bias -mean/std, in float32 arithmetic
    exactly as src/data/batch.cpp computes them, so normalised pixels are bit-identical."""
    mean = np.asarray(norm["mean"], np.float32)
    std = np.asarray(norm["std"], np.float32)
    scale = np.float32(1.0) / (np.float32(255.0) * std)
    bias = -mean / std
    return scale.astype(np.float32), bias.astype(np.float32)
