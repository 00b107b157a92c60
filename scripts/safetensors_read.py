#!/usr/bin/env python3
"""Reads a safetensors file (such as nn::save_weights writes) with only json, struct and numpy,
and prints one line per tensor: its name, its shape and the sum of its values, e.g.

    0.weight [784,128] -1.234568e+00

Usage: scripts/safetensors_read.py FILE
(scripts/mnist_numpy.py imports read() and write() from here.)
"""
import json
import struct
import sys

import numpy as np

DTYPES = {"F32": "<f4", "F64": "<f8", "F16": "<f2", "I32": "<i4", "I64": "<i8", "U8": "u1"}


def read(path):
    """The tensors in the file, by name, in the header's order."""
    with open(path, "rb") as f:
        blob = f.read()
    if len(blob) < 8:
        sys.exit(f"{path}: too short for a safetensors file")
    (n,) = struct.unpack("<Q", blob[:8])
    if n > len(blob) - 8:
        sys.exit(f"{path}: header length {n} is past the end of the file")
    header = json.loads(blob[8 : 8 + n].decode("utf-8"))
    data = blob[8 + n :]
    tensors = {}
    for name, entry in header.items():
        if name == "__metadata__":
            continue
        begin, end = entry["data_offsets"]
        values = np.frombuffer(data[begin:end], dtype=DTYPES[entry["dtype"]])
        tensors[name] = values.reshape(entry["shape"])
    return tensors


def write(path, tensors, metadata):
    """Writes float32 tensors (name -> array, in that order) and string metadata."""
    header = {"__metadata__": metadata}
    offset = 0
    for name, values in tensors.items():
        size = values.size * 4
        header[name] = {"dtype": "F32", "shape": list(values.shape),
                        "data_offsets": [offset, offset + size]}
        offset += size
    text = json.dumps(header, separators=(",", ":")).encode("utf-8")
    text += b" " * (-len(text) % 8)  # the data section starts 8-byte aligned
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(text)) + text)
        for values in tensors.values():
            f.write(np.ascontiguousarray(values, dtype="<f4").tobytes())


def main() -> int:
    if len(sys.argv) != 2:
        print(__doc__.strip(), file=sys.stderr)
        return 2
    for name, values in read(sys.argv[1]).items():
        shape = ",".join(str(d) for d in values.shape)
        print(f"{name} [{shape}] {values.astype(np.float64).sum():.6e}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
