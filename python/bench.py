"""forklog's Python package against what Python trackers use today, measured in the same run:

- sqlite3: trackio/MLflow style, `executemany` in transactions (WAL, synchronous=NORMAL). Row logging uses a
  `(run, step, time, metrics JSON)` table (one `json.dumps` per row, as trackio stores rows); the columnar
  workloads use a wide `(run, step, time, m0..m4 REAL)` table, sqlite3's best case.
- JSONL: one `json.dumps` line per row into a buffered file.
- A fork is `store.init(new, fork_from=...)` (durable when it returns); sqlite3's is `INSERT ... SELECT` of
  the parent's rows committed with synchronous=FULL.

    python python/bench.py           # full sizes (the README table)
    python python/bench.py --quick   # smaller sizes, same workloads (seconds)

Each number is the median of several repetitions. Prints a table and the targets (met / not met) like
benches/compare.rs; a missed target is reported, never a failure.
"""

import argparse
import json
import os
import shutil
import sqlite3
import statistics
import tempfile
import time

import numpy as np

import forklog

KEYS = [f"m{i}" for i in range(5)]


def median_time(fn, reps):
    times = []
    for r in range(reps):
        t0 = time.perf_counter()
        fn(r)
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def sqlite_conn(path):
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=NORMAL")
    conn.execute("CREATE TABLE IF NOT EXISTS rows (run TEXT, step INTEGER, time REAL, metrics TEXT, PRIMARY KEY (run, step))")
    wide = ", ".join(f"{k} REAL" for k in KEYS)
    conn.execute(f"CREATE TABLE IF NOT EXISTS wide (run TEXT, step INTEGER, time REAL, {wide}, PRIMARY KEY (run, step))")
    return conn


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true", help="smaller sizes")
    args = ap.parse_args()
    n_log = 50_000 if args.quick else 300_000
    n_cols = 200_000 if args.quick else 1_000_000
    n_fork_big = 200_000 if args.quick else 1_000_000
    reps = 3 if args.quick else 5
    root = tempfile.mkdtemp(prefix="forklog-pybench-", dir=os.environ.get("FORKLOG_BENCH_DIR"))
    results = {}
    try:
        rng = np.random.default_rng(0)
        data = rng.random((max(n_log, n_cols, n_fork_big), len(KEYS)))
        row_dicts = [dict(zip(KEYS, r)) for r in data[:n_log].tolist()]

        # ---- run.log(dict) per row ---------------------------------------------------------------
        store = forklog.Store(os.path.join(root, "fl"))

        def fl_log(r):
            log = opened[r].log
            for d in row_dicts:
                log(d)
            opened[r].finish()

        conn = sqlite_conn(os.path.join(root, "sq.db"))

        def sq_log(r):
            run, batch = f"log{r}", []
            for step, d in enumerate(row_dicts):
                batch.append((run, step, time.time(), json.dumps(d)))
                if len(batch) == 1000:
                    conn.execute("BEGIN")
                    conn.executemany("INSERT INTO rows VALUES (?, ?, ?, ?)", batch)
                    conn.execute("COMMIT")
                    batch.clear()
            if batch:
                conn.execute("BEGIN")
                conn.executemany("INSERT INTO rows VALUES (?, ?, ?, ?)", batch)
                conn.execute("COMMIT")

        def jl_log(r):
            with open(os.path.join(root, f"log{r}.jsonl"), "w", buffering=1 << 16) as f:
                for step, d in enumerate(row_dicts):
                    f.write(json.dumps({"_step": step, "_timestamp": time.time(), **d}) + "\n")

        # Runs are created before the clock starts (like sqlite3's tables); finish (a flush and fsync) is timed.
        opened = [store.init(f"log{r}") for r in range(reps)]
        results["log"] = {name: n_log / median_time(fn, reps) for name, fn in
                          [("forklog", fl_log), ("sqlite3", sq_log), ("jsonl", jl_log)]}

        # ---- log_columns from NumPy vs executemany of the same rows ---------------------------------
        steps = np.arange(n_cols, dtype=np.int64)
        cols = {k: np.ascontiguousarray(data[:n_cols, i]) for i, k in enumerate(KEYS)}

        def fl_cols(r):
            opened[r].log_columns(steps, cols)
            opened[r].finish()

        def sq_cols(r):
            run, now = f"cols{r}", time.time()
            conn.execute("BEGIN")
            conn.executemany("INSERT INTO wide VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                             ((run, s, now, *v) for s, v in zip(steps.tolist(), data[:n_cols].tolist())))
            conn.execute("COMMIT")

        opened = [store.init(f"cols{r}") for r in range(reps)]
        results["log_columns"] = {name: n_cols / median_time(fn, reps) for name, fn in
                                  [("forklog", fl_cols), ("sqlite3", sq_cols)]}

        # ---- columns() to NumPy vs SELECT into NumPy ----------------------------------------------
        def fl_read(r):
            c = store.columns("cols0")
            assert len(c["_step"]) == n_cols

        def sq_read(r):
            rows = conn.execute(f"SELECT step, {', '.join(KEYS)} FROM wide WHERE run = ? ORDER BY step",
                                ("cols0",)).fetchall()
            a = np.array(rows, dtype=np.float64)
            out = {"_step": a[:, 0].astype(np.int64), **{k: a[:, i + 1] for i, k in enumerate(KEYS)}}
            assert len(out["_step"]) == n_cols

        def jl_read(r):
            with open(os.path.join(root, "log0.jsonl")) as f:
                rows = [json.loads(line) for line in f]
            out = {"_step": np.array([x["_step"] for x in rows])}
            for k in KEYS:
                out[k] = np.array([x.get(k, np.nan) for x in rows])

        read = {"forklog": n_cols / median_time(fl_read, reps), "sqlite3": n_cols / median_time(sq_read, reps)}
        read["jsonl"] = n_log / median_time(jl_read, reps)
        results["columns"] = read

        # ---- fork at 1k and at 1M rows vs INSERT ... SELECT -----------------------------------------
        small = 1000
        # The parents are logged row by row, as a tracker logs (normal 64 KiB frames); a fork point inside a
        # log_columns batch would first decode its part of the batch's 4 MiB frame.
        for parent, n in (("big", n_fork_big), ("small", small)):
            run = store.init(parent)
            for d in data[:n].tolist():
                run.log(dict(zip(KEYS, d)))
            run.finish()
        fork_reps = 15

        # Forks of the big and the small run alternate, so both see the same disk and machine load.
        fork_times = {"big": [], "small": []}
        for r in range(fork_reps):
            for parent, n in (("big", n_fork_big), ("small", small)):
                t0 = time.perf_counter()
                run = store.init(f"f-{parent}-{r}", fork_from=f"{parent}?_step={n - 1}")
                fork_times[parent].append(time.perf_counter() - t0)
                run.finish()
        big_s = statistics.median(fork_times["big"])
        small_s = statistics.median(fork_times["small"])
        conn.execute("BEGIN")
        conn.executemany("INSERT INTO wide VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                         (("sqbig", s, 0.0, *v) for s, v in enumerate(data[:n_fork_big].tolist())))
        conn.execute("COMMIT")

        # A fork is durable in forklog (fsynced before init returns): the sqlite3 copy commits durably too.
        conn.execute("PRAGMA synchronous=FULL")

        def sq_fork(r):
            conn.execute("BEGIN")
            conn.execute(f"INSERT INTO wide SELECT 'sqf{r}', step, time, {', '.join(KEYS)} FROM wide "
                         "WHERE run = 'sqbig' AND step <= ?", (n_fork_big - 1,))
            conn.execute("COMMIT")

        sq_fork_s = median_time(sq_fork, 3)
        results["fork"] = {"forklog_big_s": big_s, "forklog_small_s": small_s, "sqlite3_big_s": sq_fork_s}
        conn.close()
    finally:
        shutil.rmtree(root, ignore_errors=True)

    # ---- report ------------------------------------------------------------------------------------
    log, lc, rd, fk = results["log"], results["log_columns"], results["columns"], results["fork"]
    big = f"{n_fork_big // 1000}k" if n_fork_big < 1_000_000 else "1M"
    print(f"forklog Python bench ({'quick' if args.quick else 'full'}), 5 float metrics per row\n")
    print("| workload | forklog | sqlite3 | JSONL | forklog / sqlite3 |")
    print("|---|---|---|---|---|")
    print(f"| `run.log(dict)`, {n_log:,} rows | {log['forklog']:,.0f} rows/s | {log['sqlite3']:,.0f} rows/s | "
          f"{log['jsonl']:,.0f} rows/s | {log['forklog'] / log['sqlite3']:.1f}x |")
    print(f"| `log_columns` from NumPy, {n_cols:,} rows | {lc['forklog']:,.0f} rows/s | {lc['sqlite3']:,.0f} rows/s "
          f"| | {lc['forklog'] / lc['sqlite3']:.1f}x |")
    print(f"| `columns()` to NumPy, {n_cols:,} rows | {rd['forklog']:,.0f} rows/s | {rd['sqlite3']:,.0f} rows/s | "
          f"{rd['jsonl']:,.0f} rows/s | {rd['forklog'] / rd['sqlite3']:.1f}x |")
    print(f"| fork at {big} rows | {fk['forklog_big_s'] * 1e3:.2f} ms | {fk['sqlite3_big_s'] * 1e3:.1f} ms "
          f"(INSERT … SELECT) | | {fk['sqlite3_big_s'] / fk['forklog_big_s']:.0f}x faster |")
    print(f"| fork at 1k rows | {fk['forklog_small_s'] * 1e3:.2f} ms | | | |")
    targets = [
        ("run.log(dict) >= 3x sqlite3 rows/s", log["forklog"] / log["sqlite3"], 3, True),
        ("log_columns from NumPy >= 30x sqlite3", lc["forklog"] / lc["sqlite3"], 30, True),
        ("columns() to NumPy >= 10x sqlite3 SELECT into NumPy", rd["forklog"] / rd["sqlite3"], 10, True),
        (f"fork at {big} rows <= 1.5x fork at 1k rows", fk["forklog_big_s"] / fk["forklog_small_s"], 1.5, False),
        (f"fork at {big} rows >= 500x sqlite3 INSERT ... SELECT", fk["sqlite3_big_s"] / fk["forklog_big_s"], 500, True),
    ]
    print("\nTargets:")
    for name, ratio, bound, at_least in targets:
        met = ratio >= bound if at_least else ratio <= bound
        print(f"- {name}: {ratio:.2f}x — {'met' if met else 'NOT MET'}")


if __name__ == "__main__":
    main()
