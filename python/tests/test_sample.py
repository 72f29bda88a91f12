"""Store.sample: exact M4 downsampling, checked against a brute-force computation over `history`."""

import math

import numpy as np
import pytest

import forklog

FIELDS = ["bucket", "start", "end", "count", "first_step", "first", "last_step", "last", "min_step", "min",
          "max_step", "max"]


def numeric(v):
    if isinstance(v, bool):
        return float(v)
    if isinstance(v, (int, float)):
        return float(v)
    return None


def brute(store, run, keys, buckets, from_step=None, to_step=None):
    """The model: every row of `history`, bucketed by `floor((s - from) * n / span)`."""
    rows = list(store.history(run))
    steps = [r["_step"] for r in rows]
    if not steps:
        return {}
    lo = steps[0] if from_step is None else from_step
    hi = steps[-1] if to_step is None else to_step
    span = hi - lo + 1
    out = {}
    for r in rows:
        s = r["_step"]
        if s < lo or s > hi:
            continue
        b = (s - lo) * buckets // span
        for k, v in r.items():
            if k.startswith("_") or (keys is not None and k not in keys):
                continue
            x = numeric(v)
            if x is None:
                continue
            per = out.setdefault(k, {})
            agg = per.get(b)
            if agg is None:
                agg = per[b] = {"count": 0, "first": (s, x), "last": None, "min": None, "max": None}
            agg["count"] += 1
            agg["last"] = (s, x)
            if not math.isnan(x):
                if agg["min"] is None or x < agg["min"][1]:
                    agg["min"] = (s, x)
                if agg["max"] is None or x > agg["max"][1]:
                    agg["max"] = (s, x)
    return out


def same(a, b):
    return (math.isnan(a) and math.isnan(b)) or (a == b and math.copysign(1, a) == math.copysign(1, b))


def check(store, run, keys, buckets, from_step=None, to_step=None):
    got = store.sample(run, keys, buckets, from_step=from_step, to_step=to_step)
    want = brute(store, run, keys, buckets, from_step, to_step)
    if keys is None:
        assert sorted(got) == sorted(want)
    else:
        assert list(got) == list(dict.fromkeys(keys))
    for k, cols in got.items():
        assert sorted(cols) == sorted(FIELDS)
        assert all(isinstance(a, np.ndarray) for a in cols.values())
        assert cols["first"].dtype == np.float64 and cols["count"].dtype == np.int64
        per = want.get(k, {})
        assert list(cols["bucket"]) == sorted(per)
        for i, b in enumerate(cols["bucket"]):
            w = per[int(b)]
            assert cols["count"][i] == w["count"]
            for name in ("first", "last", "min", "max"):
                p = w[name] if w[name] is not None else w["first"]
                assert cols[name + "_step"][i] == p[0], (k, int(b), name)
                assert same(float(cols[name][i]), p[1]), (k, int(b), name, cols[name][i], p[1])
            assert cols["start"][i] <= cols["first_step"][i] <= cols["last_step"][i] <= cols["end"][i]
    return got


def test_sample_matches_brute_force_with_forks(store):
    with store.init("base") as run:
        for i in range(3000):
            row = {"loss": 1.0 / (i + 1), "acc": float(i % 17)}
            if i % 7 == 0:
                row["mixed"] = i if i % 2 else bool(i % 3)
            if i % 11 == 0:
                row["loss"] = math.nan
            if i == 1500:
                row["spike"] = 1e9
            run.log(row, step=2 * i)
    f = store.init("f", fork_from="base?_step=3001")
    for i in range(500):
        f.log({"loss": -float(i), "acc": 0.0}, step=3100 + i)
    f.finish()
    for run in ("base", "f"):
        for buckets in (1, 7, 100, 5000):
            check(store, run, None, buckets)
        check(store, run, ["acc", "loss", "nothing"], 13)
        check(store, run, ["mixed"], 50, from_step=100, to_step=2900)
    got = check(store, "base", ["spike"], 10)
    # A 1-step spike survives any downsampling.
    assert got["spike"]["max"][0] == 1e9 and got["spike"]["count"][0] == 1
    assert len(check(store, "base", ["nothing"], 10)["nothing"]["count"]) == 0


def test_sample_with_a_rewind(store):
    with store.init("r") as run:
        for i in range(1000):
            run.log({"x": float(i)})
    with store.init("r", resume_from="r?_step=400") as run:
        for i in range(300):
            run.log({"x": -float(i)})
    check(store, "r", None, 64)
    check(store, "r@v0", None, 64)


def test_sample_of_an_empty_run(store):
    with store.init("blank"):
        pass
    assert store.sample("blank", None, 10) == {}
    got = store.sample("blank", ["a"], 10)
    assert list(got) == ["a"] and len(got["a"]["count"]) == 0


def test_sample_bad_arguments(store):
    with store.init("r") as run:
        run.log({"x": 1.0})
    with pytest.raises(ValueError):
        store.sample("r", None, 0)
    with pytest.raises(ValueError):
        store.sample("r", None, -3)
    with pytest.raises(TypeError):
        store.sample("r", None, 2.5)
    with pytest.raises(TypeError):
        store.sample("r", None, True)
    with pytest.raises(TypeError):
        store.sample("r", "x", 10)
    with pytest.raises(ValueError):
        store.sample("r", None, 10, from_step=5, to_step=1)
    with pytest.raises(ValueError):
        store.sample("r", None, 10, from_step=-1)
    with pytest.raises(forklog.RunNotFound):
        store.sample("missing", None, 10)
    with pytest.raises(forklog.InvalidRunId):
        store.sample("..", None, 10)
