#!/usr/bin/env python3
"""Interop benchmarks, each a ratio against a baseline measured in the same run:

1. import a TensorBoard event file of 1M scalars (200k steps x 5 tags, one scalar per Event as tensorboardX
   writes them) with `forklog import --format tensorboard` vs TensorBoard's own EventAccumulator reading the
   same file (size_guidance 0 = keep every scalar). Target >= 10x.
2. export 10M rows (5 float metrics) to Parquet with `forklog export --format parquet` vs pandas `to_parquet`
   of the same data (the DataFrame read from forklog's file, so both write the same columns: _run, _step,
   _timestamp, 5 floats; pyarrow engine, snappy, its defaults). Target >= 2x.

Usage (after `cargo build --release -p forklog-cli && cargo build --release -p forklog-interop --example bench_store`):

    python interop/bench/bench_interop.py [--scalars 1000000] [--rows 10000000] [--repeat 3]

Needs tensorboard, pyarrow and pandas (the versions in tests/fixtures/interop/VERSIONS.md, pyarrow, pandas).
Results print as a table and go to target/interop-bench.json.
"""
import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
FORKLOG = os.path.join(ROOT, "target", "release", "forklog")
BENCH_STORE = os.path.join(ROOT, "target", "release", "examples", "bench_store")


def best(fn, repeat):
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return min(times), times


def make_event_file(path, scalars):
    from tensorboard.compat.proto import event_pb2, summary_pb2
    from tensorboard.summary.writer.record_writer import RecordWriter

    tags = ["train/loss", "train/acc", "lr", "grad_norm", "val/loss"]
    steps = scalars // len(tags)
    os.makedirs(path, exist_ok=True)
    with open(os.path.join(path, "events.out.tfevents.1700000000.bench"), "wb") as f:
        w = RecordWriter(f)
        w.write(event_pb2.Event(wall_time=1700000000.0, file_version="brain.Event:2").SerializeToString())
        for s in range(steps):
            for i, tag in enumerate(tags):
                ev = event_pb2.Event(wall_time=1700000000.0 + s * 0.01, step=s,
                                     summary=summary_pb2.Summary(value=[summary_pb2.Summary.Value(
                                         tag=tag, simple_value=1.0 / (s + 1) + i)]))
                w.write(ev.SerializeToString())
    return steps * len(tags)


def bench_tensorboard(work, scalars, repeat):
    from tensorboard.backend.event_processing import event_accumulator as ea

    logdir = os.path.join(work, "tb")
    n = make_event_file(os.path.join(logdir, "run"), scalars)
    size = sum(os.path.getsize(os.path.join(logdir, "run", f)) for f in os.listdir(os.path.join(logdir, "run")))

    def forklog_import():
        store = os.path.join(work, "store-tb")
        shutil.rmtree(store, ignore_errors=True)
        subprocess.run([FORKLOG, "--store", store, "import", "--format", "tensorboard", logdir], check=True,
                       stdout=subprocess.DEVNULL)

    def accumulator():
        acc = ea.EventAccumulator(os.path.join(logdir, "run"), size_guidance={ea.SCALARS: 0})
        acc.Reload()
        got = sum(len(acc.Scalars(t)) for t in acc.Tags()["scalars"])
        assert got == n, (got, n)

    f, ft = best(forklog_import, repeat)
    b, bt = best(accumulator, repeat)
    # The import must hold every scalar.
    out = subprocess.run([FORKLOG, "--store", os.path.join(work, "store-tb"), "runs", "--json"], check=True,
                         capture_output=True, text=True).stdout
    rows = json.loads(out.splitlines()[0])["rows"]
    assert rows == n // 5, (rows, n)
    return {"workload": f"import TensorBoard file, {n:,} scalars ({size / 1e6:.1f} MB)",
            "forklog_s": f, "baseline": "EventAccumulator.Reload (size_guidance 0)", "baseline_s": b,
            "ratio": b / f, "target": 10.0, "forklog_all": ft, "baseline_all": bt}


def cpu(who):
    r = resource.getrusage(who)
    return r.ru_utime + r.ru_stime


def bench_parquet(work, rows, repeat):
    import pandas as pd
    import pyarrow.parquet as pq

    store = os.path.join(work, "store-pq")
    shutil.rmtree(store, ignore_errors=True)
    subprocess.run([BENCH_STORE, store, str(rows)], check=True)
    out = os.path.join(work, "forklog.parquet")

    def forklog_export():
        subprocess.run([FORKLOG, "--store", store, "export", "bench", "--flat", "--format", "parquet", out],
                       check=True)

    c0 = cpu(resource.RUSAGE_CHILDREN)
    f, ft = best(forklog_export, repeat)
    f_cpu = (cpu(resource.RUSAGE_CHILDREN) - c0) / repeat
    df = pd.read_parquet(out)
    assert len(df) == rows, (len(df), rows)
    # Same row groups as pandas' writer (pyarrow's default of 1Mi rows).
    assert pq.ParquetFile(out).metadata.num_row_groups == -(-rows // (1024 * 1024))
    assert df["_step"].iloc[-1] == rows - 1 and df["loss"].iloc[0] == 1.0
    pq_out = os.path.join(work, "pandas.parquet")

    def pandas_write():
        df.to_parquet(pq_out)

    c0 = cpu(resource.RUSAGE_SELF)
    b, bt = best(pandas_write, repeat)
    b_cpu = (cpu(resource.RUSAGE_SELF) - c0) / repeat
    return {"workload": f"export {rows:,} rows x 5 floats to Parquet", "forklog_s": f,
            "baseline": "pandas DataFrame.to_parquet (pyarrow, snappy)", "baseline_s": b, "ratio": b / f,
            "target": 2.0, "forklog_all": ft, "baseline_all": bt, "forklog_cpu_s": f_cpu, "baseline_cpu_s": b_cpu,
            "sizes_mb": [os.path.getsize(out) / 1e6, os.path.getsize(pq_out) / 1e6]}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--scalars", type=int, default=1_000_000)
    ap.add_argument("--rows", type=int, default=10_000_000)
    ap.add_argument("--repeat", type=int, default=3)
    a = ap.parse_args()
    for exe in [FORKLOG, BENCH_STORE]:
        if not os.path.exists(exe):
            sys.exit(f"{exe} is missing: cargo build --release -p forklog-cli && cargo build --release -p forklog-interop --example bench_store")
    work = tempfile.mkdtemp(prefix="forklog-interop-bench-")
    try:
        results = [bench_tensorboard(work, a.scalars, a.repeat), bench_parquet(work, a.rows, a.repeat)]
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print(f"{'workload':<58} {'forklog':>10} {'baseline':>10} {'ratio':>8}  target")
    for r in results:
        verdict = "met" if r["ratio"] >= r["target"] else "NOT met"
        print(f"{r['workload']:<58} {r['forklog_s']:>9.3f}s {r['baseline_s']:>9.3f}s {r['ratio']:>7.1f}x"
              f"  >= {r['target']:.0f}x {verdict}  (baseline: {r['baseline']})")
        if "forklog_cpu_s" in r:
            print(f"{'':<58} cpu {r['forklog_cpu_s']:>6.2f}s cpu {r['baseline_cpu_s']:>6.2f}s (user + system, mean per run)")
    os.makedirs(os.path.join(ROOT, "target"), exist_ok=True)
    with open(os.path.join(ROOT, "target", "interop-bench.json"), "w") as f:
        json.dump(results, f, indent=1)


if __name__ == "__main__":
    main()
