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



# fuzz_model and fuzz_checkpoint: whole files as nn::save_model and nn::save_checkpoint write them
# (tests/test_weights_hostile.cpp loads each valid seed, saves it again and compares the bytes).
def encode(metadata, tensors):
    """nn::encode_safetensors: tensors (name, dtype, shape, raw bytes) laid out in order."""
    header, offset = {}, 0
    if metadata:
        header["__metadata__"] = metadata
    for name, dtype, shape, raw in tensors:
        header[name] = {"dtype": dtype, "shape": shape, "data_offsets": [offset, offset + len(raw)]}
        offset += len(raw)
    text = json.dumps(header, separators=(",", ":"), ensure_ascii=False).encode()
    text += b" " * (-len(text) % 8)
    return struct.pack("<Q", len(text)) + text + b"".join(t[3] for t in tensors)


def f32(values):
    return struct.pack(f"<{len(values)}f", *values)


def i64(values):
    return struct.pack(f"<{len(values)}q", *values)


def compact(value):
    return json.dumps(value, separators=(",", ":"))


def dense(name, inputs, units, activation):
    return {"name": name, "class_name": "Dense",
            "config": {"input_dim": inputs, "units": units, "activation": activation}}


def sequential(layers):
    return {"class_name": "Sequential", "config": {"layers": layers}}


def model_file(arch, tensors, architecture_text=None):
    metadata = dict(WEIGHTS, content="model",
                    architecture=compact(arch) if architecture_text is None else architecture_text)
    return encode(metadata, tensors)


MLP = sequential([dense("0", 2, 3, "relu"), dense("1", 3, 2, "linear")])
def filled(parameters, value):
    """(name, shape) pairs as F32 tensors of one value."""
    out = []
    for name, shape in parameters:
        n = 1
        for d in shape:
            n *= d
        out.append((name, "F32", shape, f32([value] * n)))
    return out


MLP_TENSORS = [(name, "F32", shape, f32(VALUES[begin // 4:end // 4]))
               for name, _, shape, (begin, end) in valid]
CONVNET_TENSORS = filled(CONVNET, 0.5)


def convnet_with(index, **config):
    arch = json.loads(CONVNET_ARCH)
    arch["config"]["layers"][index]["config"].update(config)
    return model_file(arch, CONVNET_TENSORS)


def mlp_with(index, **config):
    arch = json.loads(compact(MLP))
    arch["config"]["layers"][index]["config"].update(config)
    return model_file(arch, MLP_TENSORS)


def nested(depth):
    arch = dense("x", 2, 2, "linear")
    for _ in range(depth):
        arch = {"name": "x", **sequential([arch])}
    del arch["name"]
    return arch


nested_70 = nested(70)  # 70 Sequentials around a Dense(2, 2): its 6 values as "x.x.….x.weight"
nested_names = "x." * 70
corpus_model = {
    "mlp": model_file(MLP, MLP_TENSORS),
    "convnet": model_file(json.loads(CONVNET_ARCH), CONVNET_TENSORS),
    "weights_only": safetensors(valid, VALUES),
    "dense_1e12_units": mlp_with(1, units=10 ** 12),
    "dense_overflows": mlp_with(0, input_dim=1 << 62, units=4),
    "units_string": mlp_with(0, units="3"),
    "units_float": mlp_with(0, units=3.0),
    "units_1e300": mlp_with(0, units=1e300),
    "activation_number": mlp_with(1, activation=5),
    "layers_object": model_file({"class_name": "Sequential", "config": {"layers": {"0": {}}}},
                                MLP_TENSORS),
    "unknown_class": model_file(dict(MLP, class_name="Sequential3D"), MLP_TENSORS),
    "architecture_not_json": model_file(None, MLP_TENSORS, architecture_text="{\"class_name\""),
    "architecture_array": model_file(None, MLP_TENSORS, architecture_text="[1,2]"),
    "nested_70_modules": model_file(nested_70, filled([(nested_names + "weight", [2, 2]),
                                                       (nested_names + "bias", [2])], 0.5)),
    "nested_600_arrays": model_file(None, MLP_TENSORS, architecture_text="[" * 600 + "]" * 600),
    "conv_huge_kernel": convnet_with(1, kernel_size=[1000000, 1000000]),
    "conv_kernel_overflows": convnet_with(1, kernel_size=[1 << 62, 1 << 62]),
    "conv_strides_huge": convnet_with(1, strides=[1 << 62, 1 << 62]),
    "pool_huge_same": convnet_with(3, pool_size=[(1 << 63) - 1, 1], padding="same"),
    "pool_strides_zero": convnet_with(4, strides=[0, 0]),
    "reshape_float": convnet_with(0, target_shape=[1e300, 1.5, 1]),
    "reshape_negative": convnet_with(0, target_shape=[-1, -1, 1]),
    "dropout_seed_float": convnet_with(7, seed=-1e300),
    "dropout_rate_1": convnet_with(7, rate=1.0),
    "batchnorm_epsilon_nan": convnet_with(2, epsilon="nan"),
    "truncated": model_file(MLP, MLP_TENSORS)[:-7],
}

# fuzz_checkpoint's trainer: Dense(2, 3, relu) -> Dropout(0.5, seed 3) -> Dense(3, 2, softmax)
# with Adam(learning_rate 0.01), here after 2 epochs of 3 steps on 6 rows (values made up: any
# that fit), and before any training.
TRAINER = sequential([dense("0", 2, 3, "relu"),
                      {"name": "1", "class_name": "Dropout", "config": {"rate": 0.5, "seed": 3}},
                      dense("2", 3, 2, "softmax")])
TRAINER_PARAMETERS = [("0.weight", [2, 3]), ("0.bias", [3]), ("2.weight", [3, 2]), ("2.bias", [2])]


def mt19937_64_state(seed):
    """std::mt19937_64(seed) as its operator<< writes it: the 312 words, then the index."""
    words = [seed]
    for i in range(1, 312):
        words.append((6364136223846793005 * (words[-1] ^ (words[-1] >> 62)) + i) % (1 << 64))
    return " ".join(map(str, words)) + " 312"


def checkpoint(trained=True, optimizer=None, training=None, order=None, counter=None,
               tensors=None, metadata=None, generator=False):
    """trained: Adam's slots, 6 steps; generator: the epoch order's state (6.5 KB of text) and a
    permutation of the 6 rows, else none (as before fit); tensors: a function of the list of
    tensors, to change them."""
    weights = [(name, dtype, shape, f32([(len(raw) + k) / 16 - 0.5 for k in range(len(raw) // 4)]))
               for name, dtype, shape, raw in filled(TRAINER_PARAMETERS, 0)]
    slots = []
    if trained:
        for slot, scale in (("m", 0.01), ("v", 0.0001)):
            slots += [(f"optimizer.{slot}.{name}", "F32", shape,
                       f32([scale * (k + 1) for k in range(len(raw) // 4)]))
                      for name, _, shape, raw in weights]
    optimizer = optimizer or {
        "type": "Adam",
        "settings": {"learning_rate": 0.01, "beta1": 0.9, "beta2": 0.999, "epsilon": 1e-07},
        "iterations": 6 if trained else 0, "slots": ["m", "v"] if trained else []}
    history = [{"epoch": e, "seconds": 0.125 * e,
                "logs": [["loss", 0.75 - 0.0625 * e], ["accuracy", 0.5]]} for e in (1, 2)]
    training = training or {"epoch": 2 if trained else 0, "shuffle": True,
                            "generator": mt19937_64_state(5) if generator else "",
                            "history": history if trained else []}
    if order is None:
        order = [3, 0, 5, 1, 4, 2] if generator else []
    counter = (6 if trained else 0) if counter is None else counter
    state = [("training.order", "I64", [len(order)], i64(order)),
             ("training.counter.1.calls", "I64", [1], i64([counter]))]
    all_tensors = weights + slots + state
    if tensors:
        all_tensors = tensors(all_tensors)
    metadata = metadata or dict(WEIGHTS, content="checkpoint", architecture=compact(TRAINER),
                                optimizer=compact(optimizer), training=compact(training))
    return encode(metadata, all_tensors)


def adam(**changes):
    state = {"type": "Adam",
             "settings": {"learning_rate": 0.01, "beta1": 0.9, "beta2": 0.999, "epsilon": 1e-07},
             "iterations": 6, "slots": ["m", "v"]}
    state.update(changes)
    return state


def progress(**changes):
    state = {"epoch": 2, "shuffle": True, "generator": "",
             "history": [{"epoch": 1, "seconds": 0.125, "logs": [["loss", 0.6875]]}]}
    state.update(changes)
    return state


def retyped(name, dtype):
    """The tensor as another dtype, of the same shape (its bytes repeated or cut to fit)."""
    def change(tensors):
        out = []
        for n, d, shape, raw in tensors:
            if n == name:
                size = len(raw) // (4 if d == "F32" else 8) * (4 if dtype == "F32" else 8)
                d, raw = dtype, (raw * 2)[:size]
            out.append((n, d, shape, raw))
        return out
    return change


def without(name):
    return lambda tensors: [t for t in tensors if t[0] != name]


corpus_checkpoint = {
    "trained": checkpoint(generator=True),
    "trained_no_order": checkpoint(),
    "before_fit": checkpoint(trained=False),
    "model_file": model_file(TRAINER, filled(TRAINER_PARAMETERS, 0.25)),
    "sgd_state": checkpoint(optimizer={"type": "SGD", "settings": {
        "learning_rate": 0.01, "momentum": 0.0, "nesterov": 0.0}, "iterations": 0, "slots": []},
        trained=False),
    "iterations_negative": checkpoint(optimizer=adam(iterations=-1)),
    "iterations_max": checkpoint(optimizer=adam(iterations=(1 << 63) - 1)),
    "iterations_1e300": checkpoint(optimizer=adam(iterations=1e300)),
    "learning_rate_nan": checkpoint(optimizer=adam(settings={
        "learning_rate": "nan", "beta1": 0.9, "beta2": 0.999, "epsilon": 1e-07})),
    "slots_repeated": checkpoint(optimizer=adam(slots=["m"] * 200 + ["v"])),
    "slot_missing": checkpoint(tensors=without("optimizer.v.2.bias")),
    "slot_i64": checkpoint(tensors=retyped("optimizer.m.2.bias", "I64")),
    "epoch_negative": checkpoint(training=progress(epoch=-1)),
    "epoch_4294967298": checkpoint(training=progress(epoch=4294967298)),
    "epoch_1e300": checkpoint(training=progress(epoch=1e300)),
    "history_epoch_1e300": checkpoint(training=progress(history=[
        {"epoch": 1e300, "seconds": 0.5, "logs": []}])),
    "history_long": checkpoint(training=progress(history=[
        {"epoch": 1, "seconds": 0, "logs": [[f"m{k}", k] for k in range(150)]}])),
    "history_bad_pair": checkpoint(training=progress(history=[
        {"epoch": 1, "seconds": "inf", "logs": [["loss", 1, 2]]}])),
    "history_not_array": checkpoint(training=progress(history=7)),
    "generator_garbage": checkpoint(training=progress(generator="1 2 3")),
    "order_not_permutation": checkpoint(order=[0, 0, 1, 2, 3, 4]),
    "order_without_generator": checkpoint(order=[0, 1, 2, 3, 4, 5]),
    "order_f32": checkpoint(tensors=retyped("training.order", "F32")),
    "counter_f32": checkpoint(tensors=retyped("training.counter.1.calls", "F32")),
    "counter_missing": checkpoint(tensors=without("training.counter.1.calls")),
    "not_checkpoint": checkpoint(metadata=dict(WEIGHTS, content="model",
                                               architecture=compact(TRAINER))),
    "training_nested": checkpoint(metadata=dict(WEIGHTS, content="checkpoint",
                                                optimizer=compact(adam()),
                                                training="[" * 600 + "]" * 600)),
    "truncated": checkpoint()[:-5],
    "cut_header": checkpoint()[:300],
}

for target, files in (("fuzz_idx_raw", corpus_raw), ("fuzz_idx_gz", corpus_gz),
                      ("fuzz_safetensors", corpus_weights), ("fuzz_model", corpus_model),
                      ("fuzz_checkpoint", corpus_checkpoint)):
    directory = HERE / "corpus" / target
    directory.mkdir(parents=True, exist_ok=True)
    for name, content in files.items():
        (directory / name).write_bytes(content)
