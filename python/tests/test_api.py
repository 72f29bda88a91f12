"""The API of the issue: init variants, steps, config/summary, finish and the context manager, reads,
exceptions with their fields, log_columns, Arrow/pandas against history, threads, the W&B seed example."""

import math
import os
import threading

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import forklog


def test_default_store_path(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("FORKLOG_STORE", raising=False)
    s = forklog.Store()
    assert os.path.samefile(s.path, tmp_path / "forklog-store")
    monkeypatch.setenv("FORKLOG_STORE", str(tmp_path / "env-store"))
    s2 = forklog.Store()
    assert os.path.samefile(s2.path, tmp_path / "env-store")
    assert isinstance(s2, forklog.Store)


def test_issue_walkthrough(store):
    run = store.init("base", config={"lr": 0.1})
    assert (run.id, run.version, run.step) == ("base", 0, 0)
    run.log({"loss": 0.5, "acc": 0.9})
    assert run.step == 1
    run.log({"loss": 0.4}, step=10)
    with pytest.raises(forklog.StepNotIncreasing) as e:
        run.log({"loss": 0.3}, step=10)
    assert (e.value.last, e.value.got, e.value.run) == (10, 10, "base")
    assert isinstance(e.value, forklog.Error)
    for i in range(11, 301):
        run.log({"loss": 1 / i})
    run.config.update({"bs": 32})
    run.summary["best"] = 0.3
    assert run.config["bs"] == 32 and run.config.as_dict() == {"lr": 0.1, "bs": 32}
    assert run.summary["best"] == 0.3
    run.finish()
    run.finish()  # a second finish does nothing
    with pytest.raises(forklog.RunFinished):
        run.log({"loss": 1.0})
    assert store.info("base").state == "finished"

    f = store.init("f", fork_from="base?_step=200")
    assert f.step == 201
    f.log({"loss": 0.01})
    assert [r["_step"] for r in store.history("f")][-3:] == [199, 200, 201]
    assert store.config("f") == {"lr": 0.1}  # the bs patch sits at step 300, after the fork point
    r = store.init("base", resume_from="base?_step=100")
    assert (r.version, r.step) == (1, 101)
    assert store.info("base@v0").archived
    r.finish()
    a = store.init("base", resume="must")
    assert (a.version, a.step) == (1, 101)
    a.finish()
    n = store.init("new", resume="allow")
    assert n.step == 0
    n.finish()
    with pytest.raises(forklog.RunNotFound):
        store.init("missing", resume="must")

    rows = list(store.history("f", keys=["loss"], from_step=199, to_step=200, origin=True))
    assert [(x["_step"], x["_run"]) for x in rows] == [(199, "base@v0"), (200, "base@v0")]
    assert [x["_step"] for x in store.history("f", own=True)] == [201]
    assert set(rows[0]) == {"_step", "_timestamp", "loss", "_run"}
    cols = store.columns("f")
    assert cols["_step"].dtype == np.int64 and cols["loss"].dtype == np.float64
    assert list(cols) == ["_step", "acc", "loss"]
    assert np.isnan(cols["acc"][1]) and cols["acc"][0] == 0.9
    assert [e.run for e in store.lineage("f")] == ["base@v0", "f@v0"]
    assert store.lineage("f") == [{"run": "base@v0", "fork_step": None}, {"run": "f@v0", "fork_step": 200}]
    assert [c.id for c in store.children("base")] == ["f"]
    assert [i.id for i in store.runs()] == ["base", "f", "new"]
    assert {(i.id, i.version) for i in store.runs(all=True)} >= {("base", 0), ("base", 1)}
    info = store.info("f")
    assert (info.parent, info.fork_step, info["rows"], info.state) == ("base@v0", 200, 193, "running")
    f.finish()
    store.delete("new")
    assert [i.id for i in store.runs()] == ["base", "f"]
    assert isinstance(store.gc(), forklog.GcReport)
    assert store.verify().clean


def test_context_manager(store):
    with store.init("ok") as run:
        run.log({"x": 1.0})
    assert run.finished
    with pytest.raises(RuntimeError):
        with store.init("bad") as run:
            run.log({"x": 1.0})
            raise RuntimeError("boom")
    assert store.info("bad").state == "finished"
    # exit code 1 is recorded as a finish event; the run can be resumed afterwards.
    with store.init("bad", resume="must") as again:
        assert again.step == 1


def test_every_exception_class(store, tmp_path):
    run = store.init("r")
    run.log({"x": 1.0})
    cases = [
        (forklog.InvalidRunId, lambda: store.init("bad id!"), {"id": "bad id!"}),
        (forklog.InvalidRunId, lambda: store.info(".."), {}),
        (forklog.InvalidSpec, lambda: store.init("f", fork_from="r?step=1"), {"spec": "r?step=1"}),
        (forklog.InvalidSpec, lambda: store.init("f", fork_from="r"), {"spec": "r"}),
        (forklog.InvalidSpec, lambda: store.init("q", resume_from="r?_step=0"), {"spec": "r?_step=0"}),
        (forklog.RunNotFound, lambda: store.info("nope"), {"run": "nope"}),
        (forklog.RunNotFound, lambda: list(store.history("nope")), {"run": "nope"}),
        (forklog.RunExists, lambda: store.init("r"), {"run": "r"}),
        (forklog.RunBusy, lambda: store.init("r", resume="must"), {"run": "r"}),
        (forklog.RunBusy, lambda: store.delete("r"), {"run": "r"}),
        (forklog.StepNotIncreasing, lambda: run.log({"x": 2.0}, step=0), {"last": 0, "got": 0, "run": "r"}),
        (forklog.ForkOntoItself, lambda: store.init("r", fork_from="r?_step=0"), {"run": "r"}),
        (forklog.TooLarge, lambda: run.log({"k" * 70000: 1.0}), {"what": "metric key"}),
        (forklog.InvalidValue, lambda: run.log_columns([5], {"a": [1.0], "b": [1.0, 2.0]}), {}),
    ]
    for cls, call, fields in cases:
        with pytest.raises(cls) as e:
            call()
        assert isinstance(e.value, forklog.Error)
        for k, v in fields.items():
            assert getattr(e.value, k) == v, (cls, k)
        assert str(e.value)
    # None of the refused calls wrote anything.
    assert [i.id for i in store.runs(all=True)] == ["r"]
    assert [r["_step"] for r in store.history("r")] == [0]
    run.finish()
    # ReadOnlyVersion: writing an archived version.
    store.init("r", resume_from="r?_step=0").finish()
    with pytest.raises(forklog.ReadOnlyVersion) as e:
        store.delete("r@v0")
    assert e.value.run == "r@v0"
    # Corrupt: flip a byte in a segment and read it.
    seg = next(p for p in (store.path / "runs" / "r").rglob("*") if p.is_file() and p.stat().st_size > 64
               and "head" not in p.name)
    data = bytearray(seg.read_bytes())
    data[-10] ^= 0xFF
    seg.write_bytes(bytes(data))
    fresh = forklog.Store(store.path)
    with pytest.raises(forklog.Corrupt) as e:
        list(fresh.history("r@v0"))
    assert e.value.file and isinstance(e.value.offset, int) and e.value.reason
    assert not fresh.verify().clean
    # A directory of someone else's files is not made a store.
    foreign = tmp_path / "foreign"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("mine")
    with pytest.raises(forklog.NotAStore) as e:
        forklog.Store(foreign)
    assert e.value.path == str(foreign)
    assert sorted(p.name for p in foreign.iterdir()) == ["notes.txt"]
    # The classes the engine may raise on a damaged machine exist with their fields.
    assert issubclass(forklog.Poisoned, forklog.Error) and issubclass(forklog.IoError, OSError)
    assert issubclass(forklog.UnsupportedFormat, forklog.Error)
    assert issubclass(forklog.NoStore, forklog.Error) and issubclass(forklog.ReadOnlyStore, forklog.Error)
    err = forklog.UnsupportedFormat("msg", file="f", found=9, supported=1)
    assert (err.file, err.found, err.supported) == ("f", 9, 1)


def test_exceptions_pickle():
    import pickle

    e = forklog.StepNotIncreasing("m", run="r", last=3, got=2)
    e2 = pickle.loads(pickle.dumps(e))
    assert (type(e2), str(e2), e2.last, e2.got) == (forklog.StepNotIncreasing, "m", 3, 2)


def test_log_columns(store):
    run = store.init("r")
    run.log({"loss": 9.0})
    steps = np.arange(1, 10001, dtype=np.int64)
    loss = np.linspace(0, 1, 10000)
    acc = np.linspace(1, 2, 10000, dtype=np.float32)
    assert run.log_columns(steps, {"loss": loss, "acc": acc}) == 10000
    assert run.step == 10001
    with pytest.raises(forklog.StepNotIncreasing):
        run.log_columns([10000, 10001], {"loss": np.zeros(2)})
    with pytest.raises(ValueError):
        run.log_columns([20000, 20001], {"loss": np.zeros(3)})
    with pytest.raises(TypeError):
        run.log_columns([20000], {"loss": np.array(["x"], dtype=object)})
    with pytest.raises(TypeError):
        run.log_columns([20000], {"loss": np.zeros((1, 1))})
    with pytest.raises(ValueError):
        run.log_columns([-1], {"loss": np.zeros(1)})
    assert run.log_columns(np.array([], dtype=np.int64), {"loss": np.array([])}) is None
    run.finish()
    cols = store.columns("r")
    assert np.array_equal(cols["_step"], np.arange(0, 10001))
    assert np.array_equal(cols["loss"][1:], loss)
    assert np.array_equal(cols["acc"][1:], acc.astype(np.float64))
    assert np.isnan(cols["acc"][0])
    hist = list(store.history("r", from_step=5000, to_step=5000))
    assert hist[0]["loss"] == loss[4999]


key_names = st.sampled_from(["a", "b", "c", "d"])
typed_cells = {
    "float": st.floats(width=64),
    "int": st.integers(-(2**63), 2**63 - 1),
    "bool": st.booleans(),
    "str": st.text(max_size=3),
    "mixed": st.one_of(st.floats(width=64), st.integers(-(2**40), 2**40), st.booleans(), st.text(max_size=3),
                       st.none()),
}


@st.composite
def histories(draw):
    kinds = {k: draw(st.sampled_from(sorted(typed_cells))) for k in "abcd"}
    n = draw(st.integers(0, 30))
    return [
        {k: draw(typed_cells[kinds[k]]) for k in draw(st.lists(key_names, max_size=4, unique=True))}
        for _ in range(n)
    ]


@settings(max_examples=50, deadline=None, suppress_health_check=list(HealthCheck))
@given(rows=histories())
def test_arrow_and_pandas_match_history(tmp_path_factory, rows):
    pa = pytest.importorskip("pyarrow")
    pd = pytest.importorskip("pandas")
    store = forklog.Store(tmp_path_factory.mktemp("arrow"))
    with store.init("r") as run:
        for r in rows:
            run.log(r)
    hist = list(store.history("r"))
    table = store.to_arrow("r")
    assert isinstance(table, pa.Table) and table.num_rows == len(hist)
    keys = sorted({k for r in hist for k in r if not k.startswith("_")})
    assert table.column_names == ["_step", "_timestamp"] + keys
    cols = table.to_pydict()
    df = store.to_pandas("r")
    assert isinstance(df, pd.DataFrame) and list(df.columns) == table.column_names and len(df) == len(hist)
    assert df["_step"].dtype == np.int64 and df["_timestamp"].dtype == np.float64
    for k in keys:
        present = [r[k] for r in hist if k in r]
        types = {type(v) for v in present if v is not None}
        numeric = len(types) > 1 and types <= {int, float}
        as_json = len(types) > 1 and not numeric
        if all(type(v) is float for v in present):
            assert table.schema.field(k).type == pa.float64() and df[k].dtype == np.float64
        if all(type(v) is int for v in present) and len(present) == len(hist):
            assert table.schema.field(k).type == pa.int64() and df[k].dtype == np.int64
        for i, r in enumerate(hist):
            want, got, cell_pd = r.get(k), cols[k][i], df[k].iloc[i]
            if want is None:
                assert got is None
                assert cell_pd is None or pd.isna(cell_pd)
            elif as_json:
                assert got == forklog._json_text(want)
                assert type(cell_pd) is type(want)
                assert cell_pd == want or (want != want and cell_pd != cell_pd)
            elif isinstance(want, float) and math.isnan(want):
                assert math.isnan(got) and math.isnan(cell_pd)
            elif numeric:
                assert got == float(want) and cell_pd == want
            else:
                assert got == want and type(got) is type(want)
                assert cell_pd == want
    for i, r in enumerate(hist):
        assert cols["_step"][i] == r["_step"] == df["_step"].iloc[i]
        assert cols["_timestamp"][i] == r["_timestamp"] == df["_timestamp"].iloc[i]


def test_threads_share_a_store_and_a_run(store):
    run = store.init("shared")
    errors = []

    def writer(t):
        try:
            own = store.init(f"t{t}")
            for i in range(500):
                own.log({"x": float(i)})
                run.log({f"k{t}": float(i)})
            own.finish()
        except Exception as e:  # pragma: no cover - reported below
            errors.append(e)

    def reader():
        try:
            for _ in range(50):
                list(store.history("shared"))
                store.columns("shared")
                store.runs()
        except Exception as e:  # pragma: no cover
            errors.append(e)

    threads = [threading.Thread(target=writer, args=(t,)) for t in range(4)] + [threading.Thread(target=reader)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    run.finish()
    assert len(list(store.history("shared"))) == 2000
    for t in range(4):
        assert [r["x"] for r in store.history(f"t{t}")] == [float(i) for i in range(500)]


def test_gil_released_during_reads(store):
    run = store.init("big")
    run.log_columns(np.arange(300000), {"a": np.ones(300000), "b": np.ones(300000)})
    run.finish()
    ticks = []
    stop = threading.Event()

    def ticker():
        while not stop.is_set():
            ticks.append(1)
            stop.wait(0.001)

    t = threading.Thread(target=ticker)
    t.start()
    for _ in range(3):
        store.columns("big")
    stop.set()
    t.join()
    assert len(ticks) > 1


def test_wandb_fork_seed_example(tmp_path, monkeypatch):
    """W&B's "Fork from a run" example with only its import and init lines changed."""
    monkeypatch.setenv("FORKLOG_STORE", str(tmp_path / "store"))

    import forklog as wandb  # changed: import
    import math

    # Initialize the first run and log some metrics
    run1 = wandb.init()  # changed: init
    for i in range(300):
        run1.log({"metric": i})
    run1.finish()

    # Fork from the first run at a specific step and log the metric starting from step 200
    run2 = wandb.init(fork_from=f"{run1.id}?_step=200")  # changed: init

    # Continue logging in the new run
    # For the first few steps, log the metric as is from run1
    # After step 250, start logging the spikey pattern
    for i in range(200, 300):
        if i < 250:
            run2.log({"metric": i})  # Continue logging from run1 without spikes
        else:
            # Introduce the spikey behavior starting from step 250
            subtle_spike = i + (2 * math.sin(i / 3.0))  # Apply a subtle spikey pattern
            run2.log({"metric": subtle_spike})
        # Additionally log the new metric at all steps
        run2.log({"additional_metric": i * 1.1})
    run2.finish()

    store = forklog.Store()
    base = list(store.history(run1.id))
    assert [r["metric"] for r in base] == list(range(300))
    fork = list(store.history(run2.id))
    assert [r["_step"] for r in fork] == list(range(401))
    assert [r["metric"] for r in fork[:201]] == list(range(201))
    own = fork[201:]
    assert [r.get("metric") for r in own[0::2][:50]] == list(range(200, 250))
    assert own[100]["metric"] == 250 + 2 * math.sin(250 / 3.0)
    assert [r["additional_metric"] for r in own[1::2]] == [i * 1.1 for i in range(200, 300)]
    assert store.info(run2.id).parent == f"{run1.id}@v0" and store.info(run2.id).fork_step == 200
    assert len(run1.id) == 8 and run1.id != run2.id


def test_columns_filters_and_order(store):
    with store.init("r") as run:
        run.log({"b": 1.0})
        run.log({"a": 2.0, "s": "text"})
        for i in range(3000):  # more than one chunk of the engine's column scan
            run.log({"b": float(i)} if i % 2 else {"c": float(i)})
    cols = store.columns("r")
    assert list(cols) == ["_step", "a", "b", "c"]
    assert all(len(v) == 3002 for v in cols.values())
    assert np.isnan(cols["c"][0]) and cols["c"][2] == 0.0 and np.isnan(cols["c"][3])
    hist = list(store.history("r"))
    for k in ("a", "b", "c"):
        want = [r.get(k, math.nan) for r in hist]
        assert np.array_equal(cols[k], np.array(want), equal_nan=True)
    some = store.columns("r", keys=["c", "a"])
    assert list(some) == ["_step", "c", "a"]
    assert list(some["_step"]) == [r["_step"] for r in hist if "a" in r or "c" in r]
    empty = store.columns("r", keys=["nothing"])
    assert len(empty["_step"]) == 0
    with store.init("blank"):
        pass
    assert list(store.columns("blank")) == ["_step"]
