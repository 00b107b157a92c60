#!/usr/bin/env python3
"""Writes the fuzz targets' seed corpora (fuzz/corpus/<target>/): a few tiny IDX files, valid and
not, raw and gzip. Deterministic (gzip time stamps are 0), so re-running it changes nothing."""
import gzip
import pathlib
import struct

HERE = pathlib.Path(__file__).resolve().parent


def idx(dims, data_size=None, type_byte=0x08):
    count = 1
    for d in dims:
        count *= d
    if data_size is None:
        data_size = count
    header = bytes([0, 0, type_byte, len(dims)]) + b"".join(struct.pack(">I", d) for d in dims)
    return header + bytes((i * 37) % 256 for i in range(data_size))


def gz(content):
    return gzip.compress(content, compresslevel=9, mtime=0)


raw = {
    "labels": idx([10]),
    "images": idx([3, 4, 4]),
    "matrix": idx([2, 5]),
    "rank4": idx([1, 2, 2, 3]),
    "empty_dim": idx([0, 28, 28]),
    "truncated": idx([3, 4, 4], 40),
    "trailing": idx([2, 3], 9),
    "floats": idx([4], type_byte=0x0D),
    "claims_2GiB": idx([1, 32768, 65536], 10),
    "header_only": idx([5, 5], 0)[:10],
}

corpus_raw = dict(raw)
corpus_raw["images.gz"] = gz(raw["images"])

corpus_gz = {}  # the first byte: 0 = the rest is the file, 1 = the rest is compressed (level 9)
for name in ("labels", "images", "rank4", "truncated", "trailing", "claims_2GiB"):
    corpus_gz[name + ".gz"] = b"\x00" + gz(raw[name])
    corpus_gz[name + ".content"] = b"\x13" + raw[name]
corpus_gz["two_members.gz"] = b"\x00" + gz(raw["images"][:30]) + gz(raw["images"][30:])
corpus_gz["garbage_after.gz"] = b"\x00" + gz(raw["labels"]) + b"\x00\x00garbage"
corpus_gz["cut.gz"] = b"\x00" + gz(raw["images"])[:-6]
corpus_gz["zeros_bomb.gz"] = b"\x00" + gz(idx([1, 256, 256], 0) + bytes(1 << 16))

for target, files in (("fuzz_idx_raw", corpus_raw), ("fuzz_idx_gz", corpus_gz)):
    directory = HERE / "corpus" / target
    directory.mkdir(parents=True, exist_ok=True)
    for name, content in files.items():
        (directory / name).write_bytes(content)
