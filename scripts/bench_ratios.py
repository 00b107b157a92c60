#!/usr/bin/env python3
"""Ratios of the benchmarks that belong together, from one Google Benchmark run.

    flags="--benchmark_repetitions=10 --benchmark_enable_random_interleaving=true --benchmark_format=json"
    build/bench/bench_scalar $flags > scalar.json
    build/bench/bench_mlp $flags > mlp.json
    build/bench/bench_cnn $flags > cnn.json
    build/bench/bench_matmul $flags > matmul.json
    scripts/bench_ratios.py scalar.json mlp.json cnn.json matmul.json

The machine is shared and noisy, and noise only adds: the ratio is of the fastest repetitions
(the median's ratio is shown beside it).
"""
import json
import statistics
import sys

PAIRS = [
    ("B1_tape", "B1_hand", 2.0),
    ("B2_tape_gradient", "B2_function", 3.0),
    ("B3_hvp", "B2_tape_gradient", 2.5),
    ("MLP_step/1", "MLP_floor/1", 1.3),
    ("MLP_step/2", "MLP_floor/2", 1.3),
    ("MLP_step/2", "MLP_step/1", 0.7),  # every core pays at batch 32
    ("MLP_hvp/1", "MLP_gradient/1", 3.0),
    ("MLP_hvp/2", "MLP_gradient/2", 3.0),
    ("CNN_step/1", "CNN_floor/1", 1.4),
    ("CNN_step/2", "CNN_floor/2", 1.4),
    ("BatchedMatMul/1", "BatchedMatMul_floor", 1.3),
    ("BatchedMatMul_forward/2", "BatchedMatMul_forward/1", 0.7),  # the matrices split over the pool
]
COUNTERS = ("ns_per_step", "tape_bytes_per_op", "tape_bytes_per_elementary_op")


def repetitions(paths):
    """Seconds of every repetition, and the counters, per benchmark."""
    times, counters = {}, {}
    for path in paths:
        with open(path) as f:
            for b in json.load(f)["benchmarks"]:
                if b.get("run_type") == "aggregate":
                    continue
                name = b.get("run_name", b["name"])
                scale = {"ns": 1e-9, "us": 1e-6, "ms": 1e-3, "s": 1.0}[b["time_unit"]]
                times.setdefault(name, []).append(b["real_time"] * scale)
                values = {k: v for k, v in b.items() if k in COUNTERS}
                if values:
                    old = counters.get(name, {})
                    counters[name] = {k: min(v, old.get(k, v)) for k, v in values.items()}
    return times, counters


def main():
    if len(sys.argv) < 2:
        sys.exit(__doc__)
    times, counters = repetitions(sys.argv[1:])
    for ours, baseline, target in PAIRS:
        if ours in times and baseline in times:
            ratio = min(times[ours]) / min(times[baseline])
            median = statistics.median(times[ours]) / statistics.median(times[baseline])
            verdict = "ok" if ratio <= target else "ABOVE TARGET"
            print(f"{ours} / {baseline} = {ratio:.2f} fastest, {median:.2f} median"
                  f"   (target <= {target}: {verdict})")
    for name, values in sorted(counters.items()):
        for key, value in values.items():
            print(f"{name}: {key} = {value:.2f} (lowest)")


if __name__ == "__main__":
    main()
