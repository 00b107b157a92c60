#!/usr/bin/env python3
"""The tutorial's MNIST MLP (784 -> Dense(128, relu) -> Dense(10, softmax)) in numpy alone, to
exchange weights with the C++ library through safetensors files (scripts/safetensors_read.py).

  mnist_numpy.py train --data DIR --seed S --out FILE
      trains the network in numpy (one epoch of minibatch SGD on DIR's training images, from the
      seed) and writes its weights as nn::load_weights reads them: "0.weight" (784, 128),
      "0.bias" (128,), "1.weight" (128, 10), "1.bias" (10,), F32.
  mnist_numpy.py check --data DIR --weights FILE --outputs TEXT
      computes the network's outputs on DIR's test images in numpy, from the weights in FILE, and
      compares them with another program's (TEXT: one line per image, 10 numbers): the same
      predicted class for every image, and every output within --tolerance. Exits 1 otherwise.
"""
import argparse
import gzip
import struct
import sys

import numpy as np

from safetensors_read import read, write


def read_idx(path):
    """An IDX file of unsigned bytes (.gz), as an array of its dimensions."""
    with gzip.open(path, "rb") as f:
        blob = f.read()
    zero, kind, rank = struct.unpack(">HBB", blob[:4])
    if zero != 0 or kind != 0x08:
        sys.exit(f"{path}: not an IDX file of unsigned bytes")
    dims = struct.unpack(f">{rank}I", blob[4 : 4 + 4 * rank])
    return np.frombuffer(blob[4 + 4 * rank :], dtype=np.uint8).reshape(dims)


def load(directory, prefix):
    images = read_idx(f"{directory}/{prefix}-images-idx3-ubyte.gz")
    labels = read_idx(f"{directory}/{prefix}-labels-idx1-ubyte.gz")
    # Scaled as nn::Dataset::batch does: times the float nearest 1/255.
    x = images.reshape(len(images), -1).astype(np.float32) * np.float32(1.0 / 255.0)
    return x, labels.astype(np.int64)


def forward(w, x):
    """The outputs (softmax probabilities) and the hidden layer's activations."""
    hidden = np.maximum(x @ w["0.weight"] + w["0.bias"], np.float32(0))
    logits = hidden @ w["1.weight"] + w["1.bias"]
    e = np.exp(logits - logits.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True), hidden


def train(args):
    x, y = load(args.data, "train")
    rng = np.random.default_rng(args.seed)

    def glorot(fan_in, fan_out):
        limit = np.sqrt(6.0 / (fan_in + fan_out))
        return rng.uniform(-limit, limit, (fan_in, fan_out)).astype(np.float32)

    w = {"0.weight": glorot(784, 128), "0.bias": np.zeros(128, np.float32),
         "1.weight": glorot(128, 10), "1.bias": np.zeros(10, np.float32)}
    # One epoch of SGD on the mean cross-entropy, in shuffled batches of 32.
    order = rng.permutation(len(x))
    for begin in range(0, len(x), 32):
        rows = order[begin : begin + 32]
        probabilities, hidden = forward(w, x[rows])
        d_logits = probabilities
        d_logits[np.arange(len(rows)), y[rows]] -= 1
        d_logits /= len(rows)
        d_hidden = (d_logits @ w["1.weight"].T) * (hidden > 0)
        gradients = {"1.weight": hidden.T @ d_logits, "1.bias": d_logits.sum(axis=0),
                     "0.weight": x[rows].T @ d_hidden, "0.bias": d_hidden.sum(axis=0)}
        for name, g in gradients.items():
            w[name] -= np.float32(args.learning_rate) * g.astype(np.float32)
    write(args.out, w, {"format": "numpy", "trained_by": "scripts/mnist_numpy.py"})
    x_test, y_test = load(args.data, "t10k")
    accuracy = (forward(w, x_test)[0].argmax(axis=1) == y_test).mean()
    print(f"trained in numpy (seed {args.seed}): test accuracy {accuracy:.4f}; wrote {args.out}")
    return 0


def check(args):
    x, y = load(args.data, "t10k")
    ours = forward(read(args.weights), x)[0]
    theirs = np.loadtxt(args.outputs, dtype=np.float64, ndmin=2)
    if theirs.shape != ours.shape:
        print(f"{args.outputs}: {theirs.shape} outputs, numpy has {ours.shape}")
        return 1
    difference = np.abs(theirs - ours)
    worst = np.unravel_index(difference.argmax(), difference.shape)
    ours_class, theirs_class = ours.argmax(axis=1), theirs.argmax(axis=1)
    differ = np.flatnonzero(ours_class != theirs_class)
    print(f"{len(x)} test images: largest difference in an output {difference.max():.3g} "
          f"(image {worst[0]}, class {worst[1]}; tolerance {args.tolerance:g}); "
          f"{len(differ)} predictions differ; accuracy {(theirs_class == y).mean():.4f} "
          f"(numpy: {(ours_class == y).mean():.4f})")
    for i in differ[:5]:
        print(f"  image {i}: predicted {theirs_class[i]}, numpy {ours_class[i]}")
    return 0 if len(differ) == 0 and difference.max() <= args.tolerance else 1


def main():
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True)
    t = commands.add_parser("train")
    t.add_argument("--data", required=True)
    t.add_argument("--seed", type=int, default=1)
    t.add_argument("--learning-rate", type=float, default=0.1)
    t.add_argument("--out", required=True)
    c = commands.add_parser("check")
    c.add_argument("--data", required=True)
    c.add_argument("--weights", required=True)
    c.add_argument("--outputs", required=True)
    c.add_argument("--tolerance", type=float, default=1e-5)
    args = parser.parse_args()
    return train(args) if args.command == "train" else check(args)


if __name__ == "__main__":
    sys.exit(main())
