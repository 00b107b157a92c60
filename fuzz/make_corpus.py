#!/usr/bin/env python3
"""Writes the fuzz targets' seed corpora (fuzz/corpus/<target>/): a few tiny IDX files, valid and
not, raw and gzip, and a few weights files for fuzz_safetensors' model, valid and not.
Deterministic (gzip time stamps are 0), so re-running it changes nothing."""
import gzip
import json
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


# fuzz_safetensors: weights of its model, Dense(2, 3) -> Dense(3, 2), laid out byte for byte as
# nn::save_weights writes them (compact JSON, metadata first, padded with spaces to 8 bytes).
MODEL = [("0.weight", [2, 3]), ("0.bias", [3]), ("1.weight", [3, 2]), ("1.bias", [2])]


WEIGHTS = {"format": "autodiff", "format_version": "1", "content": "weights"}


def safetensors(tensors, values, metadata=WEIGHTS, header_length=None, pad=True):
    """tensors: (name, dtype, shape, [begin, end]); values: floats of the data section."""
    header = [("__metadata__", metadata)] if metadata else []
    for name, dtype, shape, offsets in tensors:  # a list, so that a name can appear twice
        header.append((name, {"dtype": dtype, "shape": shape, "data_offsets": offsets}))
    text = ("{" + ",".join(json.dumps(k) + ":" + json.dumps(v, separators=(",", ":"))
                           for k, v in header) + "}").encode()
    if pad:
        text += b" " * (-len(text) % 8)
    n = len(text) if header_length is None else header_length
    return struct.pack("<Q", n) + text + struct.pack(f"<{len(values)}f", *values)


def laid_out(model, dtype="F32"):
    tensors, offset = [], 0
    for name, shape in model:
        size = 4
        for d in shape:
            size *= d
        tensors.append((name, dtype, shape, [offset, offset + size]))
        offset += size
    return tensors


VALUES = [(i + 1) / 8 - 1 for i in range(17)]
# The model's architecture, as nn::architecture writes it.
ARCH = ('{"class_name":"Sequential","config":{"layers":[{"name":"0","class_name":"Dense","config":'
        '{"input_dim":2,"units":3,"activation":"relu"}},{"name":"1","class_name":"Dense","config":'
        '{"input_dim":3,"units":2,"activation":"linear"}}]}}')
valid = laid_out(MODEL)
# A convnet of every layer type, as nn::architecture writes it: 23 parameter values.
CONVNET = [("1.weight", [1, 2, 1, 2]), ("1.bias", [2]), ("2.gamma", [2]), ("2.beta", [2]),
           ("2.moving_mean", [2]), ("2.moving_variance", [2]), ("8.weight", [2, 3]),
           ("8.bias", [3])]
CONVNET_ARCH = json.dumps({"class_name": "Sequential", "config": {"layers": [
    {"name": "0", "class_name": "Reshape", "config": {"target_shape": [4, 4, 1]}},
    {"name": "1", "class_name": "Conv2D", "config": {
        "in_channels": 1, "filters": 2, "kernel_size": [1, 2], "strides": [1, 1],
        "padding": "same", "use_bias": True, "activation": "relu"}},
    {"name": "2", "class_name": "BatchNormalization",
     "config": {"channels": 2, "momentum": 0.99, "epsilon": 0.001}},
    {"name": "3", "class_name": "MaxPooling2D",
     "config": {"pool_size": [2, 2], "strides": [2, 2], "padding": "valid"}},
    {"name": "4", "class_name": "AveragePooling2D",
     "config": {"pool_size": [2, 2], "strides": [1, 1], "padding": "same"}},
    {"name": "5", "class_name": "GlobalAveragePooling2D", "config": {}},
    {"name": "6", "class_name": "Flatten", "config": {}},
    {"name": "7", "class_name": "Dropout", "config": {"rate": 0.5, "seed": 3}},
    {"name": "8", "class_name": "Dense",
     "config": {"input_dim": 2, "units": 3, "activation": "softmax"}}]}},
    separators=(",", ":"))
corpus_weights = {
    "valid": safetensors(valid, VALUES),
    "no_metadata": safetensors(valid, VALUES, metadata=None),
    # A checkpoint's optimizer tensors are not the model's, and are let be.
    "checkpoint": safetensors(valid + [("optimizer.m.1.bias", "F32", [2], [68, 76])],
                              VALUES + [0.25, 0.5], dict(WEIGHTS, content="checkpoint")),
    "future_version": safetensors(valid, VALUES, dict(WEIGHTS, format_version="2")),
    # Tensors listed in another order than their data: still valid.
    "reordered": safetensors(valid[::-1], VALUES),
    "wrong_shape": safetensors([(n, d, s[::-1], o) for n, d, s, o in valid], VALUES),
    "missing_tensor": safetensors(valid[:3], VALUES[:15]),
    "extra_tensor": safetensors(valid + [("2.bias", "F32", [1], [68, 72])], VALUES + [0.5]),
    "f64": safetensors(laid_out([("0.weight", [2, 3]), ("0.bias", [3])], "F32")
                       + [("1.weight", "F64", [3, 2], [36, 84])], VALUES[:9] + [0.0] * 12),
    "overlap": safetensors(valid[:3] + [("1.bias", "F32", [2], [56, 64])], VALUES[:16]),
    "gap": safetensors(valid[:3] + [("1.bias", "F32", [2], [64, 72])], VALUES + [0.0]),
    "shape_overflows": safetensors([("0.weight", "F32", [1 << 62, 1 << 62], [0, 24])] + valid[1:],
                                   VALUES),
    "duplicate_name": safetensors(valid[:3] + [("0.bias", "F32", [2], [60, 68])], VALUES),
    "header_past_end": safetensors(valid, VALUES, header_length=1 << 20),
    "header_claims_1TiB": safetensors(valid, VALUES, header_length=1 << 40),
    # Whole models: an architecture that fits the weights, and one that claims far more.
    "model": safetensors(valid, VALUES, dict(WEIGHTS, content="model", architecture=ARCH)),
    "model_too_big": safetensors(valid, VALUES, dict(WEIGHTS, content="model",
                                                     architecture=ARCH.replace('"units":2', '"units":2000000000'))),
    # Every convnet layer type, and a kernel that claims far more than the file holds.
    "convnet_model": safetensors(laid_out(CONVNET), [0.5] * 23,
                                 dict(WEIGHTS, content="model", architecture=CONVNET_ARCH)),
    "convnet_too_big": safetensors(laid_out(CONVNET), [0.5] * 23, dict(
        WEIGHTS, content="model", architecture=CONVNET_ARCH.replace('"filters":2', '"filters":2000000000000'))),
    "truncated": safetensors(valid, VALUES)[:-6],
    "not_json": safetensors(valid, VALUES)[:40],
    "empty": b"",
}

for target, files in (("fuzz_idx_raw", corpus_raw), ("fuzz_idx_gz", corpus_gz),
                      ("fuzz_safetensors", corpus_weights)):
    directory = HERE / "corpus" / target
    directory.mkdir(parents=True, exist_ok=True)
    for name, content in files.items():
        (directory / name).write_bytes(content)
