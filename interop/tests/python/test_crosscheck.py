"""Cross-checks of the importers and exporters against the trackers' own readers and analysis tools.

- TensorBoard: EventAccumulator (the classic reader, which purges on restart) on the fixture logdirs shows
  exactly the scalars `forklog history` shows after `forklog import --format tensorboard`; and it reads back
  every scalar of a `forklog export --format tensorboard`.
- MLflow: MlflowClient.get_metric_history (file store and SQLite, on temp copies) returns every point, and
  they are exactly the points forklog keeps across the rewound run's versions.
- W&B: `wandb leet inspect --json` of each fixture file: its history records are the rows forklog imported.
- Parquet / Arrow exports: pyarrow, pandas and DuckDB read them and agree with `forklog history --origin`.

Run: FORKLOG=target/debug/forklog python -m pytest interop/tests/python (needs the packages in
tests/fixtures/interop/VERSIONS.md plus pyarrow, pandas, duckdb, pytest).
"""
import json
import math
import os
import shutil
import struct
import subprocess
import sys

import pytest

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..", ".."))
FIX = os.path.join(ROOT, "tests", "fixtures", "interop")
FORKLOG = os.environ.get("FORKLOG", os.path.join(ROOT, "target", "debug", "forklog"))
EXPECTED = json.load(open(os.path.join(FIX, "expected.json")))


def fl(store, *args):
    out = subprocess.run([FORKLOG, "--store", str(store), *args], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    return out.stdout


def history(store, run, *extra):
    return [json.loads(l) for l in fl(store, "history", run, *extra).splitlines()]


def f32(x):
    return struct.unpack("f", struct.pack("f", x))[0]


def num(v):
    return {"NaN": math.nan, "Infinity": math.inf, "-Infinity": -math.inf}.get(v, v) if isinstance(v, str) else v


# ------------------------------------------------------------------------------------------- TensorBoard
@pytest.mark.parametrize("run", ["tbx/run1", "native"])
def test_tensorboard_import_matches_event_accumulator(tmp_path, run):
    from tensorboard.backend.event_processing import event_accumulator as ea

    fl(tmp_path / "s", "import", "--format", "tensorboard", os.path.join(FIX, "tensorboard"))
    acc = ea.EventAccumulator(os.path.join(FIX, "tensorboard", run), size_guidance={ea.SCALARS: 0, ea.TENSORS: 0})
    acc.Reload()
    rows = history(tmp_path / "s", run.replace("/", "."))
    by_step = {r["_step"]: r for r in rows}
    # tensorboardX writes simple_value scalars; TensorBoard's own writer scalar tensors (read as tensors).
    from tensorboard.util import tensor_util

    if acc.Tags()["scalars"]:
        tags, read = acc.Tags()["scalars"], acc.Scalars
    else:
        tags = acc.Tags()["tensors"]

        def read(tag):
            return [ea.ScalarEvent(t.wall_time, t.step, tensor_util.make_ndarray(t.tensor_proto).item())
                    for t in acc.Tensors(tag)]
    assert tags
    if read == acc.Scalars:
        # Scalars: the classic reader purges on restart, and shows exactly forklog's visible history.
        n = 0
        for tag in tags:
            pts = read(tag)
            for p in pts:
                assert by_step[p.step][tag] == p.value, (tag, p.step)  # float32 widened, bit for bit
                n += 1
            assert sorted(p.step for p in pts) == sorted(s for s, r in by_step.items() if tag in r)
        assert n == sum(len([k for k in r if not k.startswith("_")]) for r in rows)
    else:
        # Tensors are not purged by the classic reader: it keeps both sessions' points, which are exactly
        # forklog's archived version 0 plus the rewound version's own rows.
        name = run.replace("/", ".")
        kept = history(tmp_path / "s", name + "@v0") + history(tmp_path / "s", name, "--own")
        for tag in tags:
            theirs = sorted((p.step, p.value) for p in read(tag))
            ours = sorted((r["_step"], r[tag]) for r in kept if tag in r)
            assert theirs == ours, tag


def test_tensorboard_export_read_back_by_event_accumulator(tmp_path):
    from tensorboard.backend.event_processing import event_accumulator as ea

    s = tmp_path / "s"
    fl(s, "import", "--format", "wandb", os.path.join(FIX, "wandb"))
    out = tmp_path / "tb"
    fl(s, "export", "--tree", "base-run-a", "--format", "tensorboard", str(out))
    for run in ["base-run-a", "fork-run-b"]:
        acc = ea.EventAccumulator(str(out / run), size_guidance={ea.SCALARS: 0})
        acc.Reload()
        rows = history(s, run)
        want = {}
        for r in rows:
            for k, v in r.items():
                if k in ("_step", "_timestamp") or isinstance(v, (str, dict, list)) or v is None:
                    continue
                want.setdefault(k, []).append((r["_step"], f32(float(v)), r["_timestamp"]))
        assert sorted(acc.Tags()["scalars"]) == sorted(want)
        for tag, pts in want.items():
            got = [(p.step, p.value, p.wall_time) for p in acc.Scalars(tag)]
            assert [(a, b) for a, b, _ in got] == [(a, b) for a, b, _ in pts], tag
            assert all(abs(g[2] - w[2]) < 1e-6 for g, w in zip(got, pts))


# ------------------------------------------------------------------------------------------------ MLflow
@pytest.mark.parametrize("backend", ["file", "sqlite"])
def test_mlflow_points_match_get_metric_history(tmp_path, backend):
    os.environ["MLFLOW_ALLOW_FILE_STORE"] = "true"
    from mlflow.tracking import MlflowClient

    copy = tmp_path / "mlflow"
    shutil.copytree(os.path.join(FIX, "mlflow"), copy)
    # git keeps no empty folders: give each run folder back the empty ones MLflow's file store checks for.
    for exp in (copy / "mlruns").iterdir():
        for run_dir in exp.iterdir() if exp.is_dir() else []:
            if (run_dir / "meta.yaml").exists():
                for sub in ("artifacts", "metrics", "params", "tags"):
                    (run_dir / sub).mkdir(exist_ok=True)
    e = EXPECTED["mlflow"][backend]
    src = copy / e["uri"]
    uri = ("sqlite:///" + str(src)) if backend == "sqlite" else ("file://" + str(src))
    s = tmp_path / "s"
    fl(s, "import", "--format", "mlflow", str(src))
    client = MlflowClient(tracking_uri=uri)
    for run in e["runs"]:
        rid = run["run_id"]
        versions = [json.loads(l) for l in fl(s, "runs", "--json", "--all").splitlines() if json.loads(l)["id"] == rid]
        # Every point forklog holds: version 0's rows, then each later version's own rows.
        ours = []
        for v in sorted(versions, key=lambda v: v["version"]):
            name = f"{rid}@v{v['version']}"
            own = history(s, name) if v["version"] == 0 else history(s, name, "--own")
            ours += [(r["_step"], num(r[k]), round(r["_timestamp"] * 1000), k) for r in own for k in r
                     if not k.startswith("_")]
        for key in {k for _, _, _, k in ours}:
            theirs = sorted((m.step, m.value, m.timestamp) for m in client.get_metric_history(rid, key))
            mine = sorted((st, val, ts) for st, val, ts, k in ours if k == key)
            assert mine == theirs, key


# --------------------------------------------------------------------------------------------------- W&B
def test_wandb_history_matches_leet_inspect(tmp_path):
    s = tmp_path / "s"
    fl(s, "import", "--format", "wandb", os.path.join(FIX, "wandb"))
    # The `wandb` script of this interpreter's environment (a virtualenv need not be activated).
    wandb = os.path.join(os.path.dirname(sys.executable), "wandb")
    if not os.path.exists(wandb):
        wandb = shutil.which("wandb")
    assert wandb, "the wandb client is not installed"
    for i, f in enumerate(EXPECTED["wandb"]["files"]):
        out = subprocess.run([wandb, "leet", "inspect", "--json", os.path.join(FIX, "wandb", f)],
                             capture_output=True, text=True, check=True).stdout
        recs = [json.loads(l) for l in out.splitlines() if l.strip()]
        hist = [r["history"]["item"] for r in recs if r.get("type") == "history"]
        run = ["base-run-a@v0", "fork-run-b", "base-run-a"][i]
        rows = {r["_step"]: r for r in history(s, run)}
        assert hist
        for h in hist:
            r = rows[h["_step"]]
            assert r["_timestamp"] == pytest.approx(h["_timestamp"], abs=1e-6)
            for k, v in h.items():
                if k in ("_step", "_timestamp"):
                    continue
                if isinstance(v, dict):
                    for k2, v2 in v.items():
                        assert num(r[f"{k}.{k2}"]) == v2, (k, k2)
                else:
                    assert num(r[k]) == v, (run, h["_step"], k)


# ---------------------------------------------------------------------------------- Parquet / Arrow export
@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    d = tmp_path_factory.mktemp("exp")
    s = d / "s"
    fl(s, "import", "--format", "wandb", os.path.join(FIX, "wandb"))
    fl(s, "import", "--format", "tensorboard", os.path.join(FIX, "tensorboard"))
    runs = ["base-run-a", "fork-run-b", "tbx.run1"]
    fl(s, "export", *runs, "--format", "parquet", str(d / "o.parquet"))
    fl(s, "export", *runs, "--format", "arrow", str(d / "o.arrow"))
    fl(s, "export", *runs, "--flat", "--format", "parquet", str(d / "flat.parquet"))
    want, seen = [], set()
    for run in runs:
        for r in history(s, run, "--origin"):
            if (r["_run"], r["_step"]) not in seen:
                seen.add((r["_run"], r["_step"]))
                want.append(r)
    flat = [dict(r, _run=run) for run in runs for r in history(s, run)]
    return d, want, flat


def same_rows(records, want):
    assert len(records) == len(want)
    for got, w in zip(records, want):
        assert got["_run"] == w["_run"] and got["_step"] == w["_step"]
        assert abs(got["_timestamp"] - w["_timestamp"]) < 1e-6
        for k, v in w.items():
            if k in ("_run", "_step", "_timestamp"):
                continue
            g = got[k]
            v = num(v)
            if isinstance(v, float) and math.isnan(v):
                assert math.isnan(g)
            else:
                assert g == v, (w["_run"], w["_step"], k, g, v)
        for k, g in got.items():
            if k not in w:
                assert g is None or (isinstance(g, float) and math.isnan(g)), (k, g)


def test_pyarrow_reads_parquet_and_arrow(exported):
    import pyarrow.feather as feather
    import pyarrow.parquet as pq

    d, want, flat = exported
    for path, w in [(d / "o.parquet", want), (d / "flat.parquet", flat)]:
        t = pq.read_table(path)
        assert str(t.schema.field("_timestamp").type) == "timestamp[us, tz=UTC]"
        assert str(t.schema.field("_run").type).startswith("dictionary")
        recs = t.to_pylist()
        for r in recs:
            r["_timestamp"] = r["_timestamp"].timestamp()
        same_rows(recs, w)
    recs = feather.read_table(d / "o.arrow").to_pylist()
    for r in recs:
        r["_timestamp"] = r["_timestamp"].timestamp()
    same_rows(recs, want)


def test_pandas_and_duckdb_read_parquet(exported):
    import duckdb
    import pandas as pd

    d, want, _ = exported
    df = pd.read_parquet(d / "o.parquet")
    assert len(df) == len(want)
    assert list(df["_step"]) == [w["_step"] for w in want]
    assert list(df["_run"].astype(str)) == [w["_run"] for w in want]
    loss = [num(w.get("loss")) for w in want]
    got = list(df["loss"])
    assert all((a is None and (b is None or math.isnan(b))) or a == b for a, b in zip(loss, got))
    con = duckdb.connect()
    q = f"SELECT _run, count(*) AS n, max(_step) AS m FROM '{d / 'o.parquet'}' GROUP BY _run ORDER BY _run"
    rows = con.execute(q).fetchall()
    expect = {}
    for w in want:
        n, m = expect.get(w["_run"], (0, -1))
        expect[w["_run"]] = (n + 1, max(m, w["_step"]))
    assert rows == [(k, *expect[k]) for k in sorted(expect)]
