"""trainbench's tensor container (checkpoints, weights files, golden files) in Python.

Layout (little-endian), as src/train/checkpoint.h writes it and docs/weights-format.md
describes it:
  magic "TBCKPT\\0\\0" | u32 version | u64 json_bytes | json header | tensors... | u32 crc32
  each tensor: u32 name_len | name | u8 dtype | u8 rank | i64 dims[rank] | u64 bytes | data
The CRC-32 (zlib's) covers every byte before it.
"""
import json
import os
import struct
import tempfile
import zlib

import numpy as np

MAGIC = b"TBCKPT\0\0"
VERSION = 1
# trainbench's DType codes (src/core/dtype.h) and the numpy types that hold them. bf16 has no
# numpy type: it is read as its raw 16-bit patterns and widened to float32 on request.
DTYPES = {0: np.dtype("<f4"), 1: np.dtype("<f8"), 2: np.dtype("<u2"), 3: np.dtype("<f2"),
          4: np.dtype("<i4"), 5: np.dtype("u1")}
CODES = {np.dtype("<f4"): 0, np.dtype("<f8"): 1, np.dtype("<f2"): 3, np.dtype("<i4"): 4,
         np.dtype("u1"): 5}
BF16 = 2


class FormatError(Exception):
    """The file is not a valid container; the message names the file."""


def read(path):
    """Returns (header dict, dict name -> numpy array in file order). bf16 tensors come back
    as float32."""
    with open(path, "rb") as f:
        data = f.read()
    if data[:len(MAGIC)] != MAGIC:
        raise FormatError(f"{path} is not a trainbench container (bad magic)")
    (version,) = struct.unpack_from("<I", data, 8)
    if version == 0 or version > VERSION:
        raise FormatError(f"{path}: container version {version} (this reader knows 1..{VERSION})")
    if len(data) < 8 + 4 + 8 + 4:
        raise FormatError(f"{path} is truncated")
    body, (stored_crc,) = data[:-4], struct.unpack_from("<I", data, len(data) - 4)
    if zlib.crc32(body) & 0xFFFFFFFF != stored_crc:
        raise FormatError(f"{path} is corrupt (CRC mismatch)")
    pos = 12
    (header_len,) = struct.unpack_from("<Q", body, pos)
    pos += 8
    header = json.loads(body[pos:pos + header_len].decode("utf-8"))
    pos += header_len
    tensors = {}
    while pos < len(body):
        (name_len,) = struct.unpack_from("<I", body, pos)
        pos += 4
        name = body[pos:pos + name_len].decode("utf-8")
        pos += name_len
        code, rank = struct.unpack_from("<BB", body, pos)
        pos += 2
        if code not in DTYPES:
            raise FormatError(f"{path}: tensor '{name}' has dtype code {code}")
        dims = struct.unpack_from(f"<{rank}q", body, pos)
        pos += 8 * rank
        (nbytes,) = struct.unpack_from("<Q", body, pos)
        pos += 8
        dtype = DTYPES[code]
        count = int(np.prod(dims, dtype=np.int64)) if rank else 1
        if nbytes != count * dtype.itemsize or pos + nbytes > len(body):
            raise FormatError(f"{path}: tensor '{name}' holds {nbytes} bytes for shape {dims}")
        arr = np.frombuffer(body, dtype=dtype, count=count, offset=pos).reshape(dims).copy()
        if code == BF16:
            arr = (arr.astype(np.uint32) << 16).view(np.float32)
        tensors[name] = arr
        pos += nbytes
    return header, tensors


def serialize(header, tensors):
    """The bytes of a container. tensors: iterable of (name, numpy array); float32, float64,
    float16, int32 and uint8 arrays are stored as they are."""
    head = json.dumps(header, separators=(",", ":")).encode("utf-8")
    parts = [MAGIC, struct.pack("<IQ", VERSION, len(head)), head]
    for name, arr in tensors:
        arr = np.ascontiguousarray(arr)
        dtype = arr.dtype.newbyteorder("<") if arr.dtype.byteorder == ">" else arr.dtype
        if dtype not in CODES:
            raise ValueError(f"tensor '{name}': dtype {arr.dtype} has no container code")
        arr = arr.astype(dtype, copy=False)
        raw_name = name.encode("utf-8")
        parts.append(struct.pack("<I", len(raw_name)) + raw_name)
        parts.append(struct.pack("<BB", CODES[dtype], arr.ndim))
        parts.append(struct.pack(f"<{arr.ndim}q", *arr.shape))
        parts.append(struct.pack("<Q", arr.nbytes))
        parts.append(arr.tobytes())
    body = b"".join(parts)
    return body + struct.pack("<I", zlib.crc32(body) & 0xFFFFFFFF)


def write(path, header, tensors):
    """Writes a container atomically (temp file in the same folder, fsync, rename)."""
    data = serialize(header, tensors)
    folder = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(prefix=os.path.basename(path) + ".tmp", dir=folder)
    try:
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)  # mkstemp makes 0600; a written file is an ordinary one
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def weights_header(model, input_chw, classes, normalization=None, class_names=None,
                   producer=None):
    """The header of a weights file (kind "weights", weights_version 1)."""
    header = {"kind": "weights", "weights_version": 1,
              "model": {"name": model, "input": list(input_chw), "classes": classes},
              "class_names": list(class_names or []), "producer": producer or {}}
    if normalization:
        header["normalization"] = {"mean": list(normalization["mean"]),
                                   "std": list(normalization["std"])}
    return header
