#!/usr/bin/env python3
"""Ratios of the benchmarks that belong together, from one Google Benchmark run.

    flags="--benchmark_repetitions=10 --benchmark_enable_random_interleaving=true --benchmark_format=json"
    build/bench/bench_scalar $flags > scalar.json
    build/bench/bench_mlp $flags > mlp.json
    scripts/bench_ratios.py scalar.json mlp.json

Uses the median of the repetitions (the machine is shared and noisy).
"""
import json
import sys

PAIRS = [
    ("B1_tape", "B1_hand", 2.0),
    ("B2_tape_gradient", "B2_function", 3.0),
    ("MLP_step/1", "MLP_floor/1", 1.3),
    ("MLP_step/2", "MLP_floor/2", 1.3),
]


def medians(paths):
    """Seconds and counters per benchmark: the median aggregate where there are repetitions."""
    times, counters, from_median = {}, {}, set()
    for path in paths:
        with open(path) as f:
            for b in json.load(f)["benchmarks"]:
                name = b.get("run_name", b["name"])
                is_median = b.get("run_type") == "aggregate" and b.get("aggregate_name") == "median"
                if b.get("run_type") == "aggregate" and not is_median:
                    continue
                if name in from_median and not is_median:
                    continue
                if is_median:
                    from_median.add(name)
                scale = {"ns": 1e-9, "us": 1e-6, "ms": 1e-3, "s": 1.0}[b["time_unit"]]
                times[name] = b["real_time"] * scale
                counters[name] = {k: v for k, v in b.items() if k in ("ns_per_step", "tape_bytes_per_op")}
    return times, counters


def main():
    if len(sys.argv) < 2:
        sys.exit(__doc__)
    times, counters = medians(sys.argv[1:])
    for ours, baseline, target in PAIRS:
        if ours in times and baseline in times:
            ratio = times[ours] / times[baseline]
            verdict = "ok" if ratio <= target else "ABOVE TARGET"
            print(f"{ours} / {baseline} = {ratio:.2f}   (target <= {target}: {verdict})")
    for name, values in sorted(counters.items()):
        for key, value in values.items():
            print(f"{name}: {key} = {value:.2f}")


if __name__ == "__main__":
    main()
