#!/usr/bin/env python3
"""Reads a safetensors file (such as nn::save_weights writes) with only json, struct and numpy,
and prints one line per tensor: its name, its shape and the sum of its values, e.g.

    0.weight [784,128] -1.234568e+00

Usage: scripts/safetensors_read.py FILE
"""
import json
import struct
import sys

import numpy as np

DTYPES = {"F32": "<f4", "F64": "<f8", "F16": "<f2", "I32": "<i4", "I64": "<i8", "U8": "u1"}


def main() -> int:
    if len(sys.argv) != 2:
        print(__doc__.strip(), file=sys.stderr)
        return 2
    with open(sys.argv[1], "rb") as f:
        blob = f.read()
    if len(blob) < 8:
        sys.exit(f"{sys.argv[1]}: too short for a safetensors file")
    (n,) = struct.unpack("<Q", blob[:8])
    if n > len(blob) - 8:
        sys.exit(f"{sys.argv[1]}: header length {n} is past the end of the file")
    header = json.loads(blob[8 : 8 + n].decode("utf-8"))
    data = blob[8 + n :]
    for name, entry in header.items():
        if name == "__metadata__":
            continue
        begin, end = entry["data_offsets"]
        values = np.frombuffer(data[begin:end], dtype=DTYPES[entry["dtype"]])
        values = values.reshape(entry["shape"])
        shape = ",".join(str(d) for d in entry["shape"])
        print(f"{name} [{shape}] {values.astype(np.float64).sum():.6e}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
