"""forklog.import_wandb / import_tensorboard / import_mlflow / import_trackio: the importers of the
forklog-interop crate, on the files the real clients wrote (tests/fixtures/interop/, generate.py there), give
the same runs, forks and rewinds as `forklog import`, with every value the generating script logged."""

import json
import os
import shutil

import pytest

import forklog

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
FIXTURES = os.path.join(ROOT, "tests", "fixtures", "interop")
EXPECTED = json.load(open(os.path.join(FIXTURES, "expected.json")))


def same(a, b):
    """Floats compared bit-exactly (W&B writes a whole float as an int: accept an equal int)."""
    if isinstance(b, float) and isinstance(a, int) and not isinstance(a, bool):
        return float(a) == b and b.is_integer()
    if isinstance(a, float) and isinstance(b, float):
        return a == b or (a != a and b != b)
    return a == b


def test_import_wandb_gives_forks_rewinds_and_every_value(store):
    runs = forklog.import_wandb(store, os.path.join(FIXTURES, "wandb", "wandb"), prefix="w-")
    by_run = {}
    for r in runs:
        assert set(r) == {"source", "run", "version", "rows", "parent", "fork_step"}
        by_run.setdefault(r["run"], []).append(r)
    assert set(by_run) == {"w-base-run-a", "w-fork-run-b"}
    fork = by_run["w-fork-run-b"][0]
    assert fork["parent"] == "w-base-run-a@v0" and fork["fork_step"] == 20
    assert max(r["version"] for r in by_run["w-base-run-a"]) == 1  # the rewind made v1

    base, forked, rewound = EXPECTED["wandb"]["runs"]
    # The base as first written is archived as @v0; every logged value is there.
    rows = list(store.history("w-base-run-a@v0"))
    assert [r["_step"] for r in rows] == [r["_step"] for r in base["rows"]]
    for got, want in zip(rows, base["rows"]):
        for key, value in want.items():
            assert same(got[key], value), (key, got, want)
    # The fork inherits 0..=20 of v0, then its own rows.
    rows = list(store.history("w-fork-run-b"))
    assert [r["_step"] for r in rows] == list(range(21)) + [r["_step"] for r in forked["rows"]]
    for got, want in zip(rows[21:], forked["rows"]):
        assert same(got["loss"], want["loss"])
    # The rewind: v1 keeps 0..=15, then the new rows.
    rows = list(store.history("w-base-run-a"))
    assert [r["_step"] for r in rows] == list(range(16)) + [r["_step"] for r in rewound["rows"]]
    info = store.info("w-base-run-a@v0")
    assert info["rows"] == len(base["rows"])
    assert store.verify().is_clean()


def test_import_tensorboard_mlflow_trackio(store):
    tb = forklog.import_tensorboard(store, os.path.join(FIXTURES, "tensorboard"), prefix="tb.")
    assert {r["run"] for r in tb} == {"tb.native", "tb.tbx.run1"}  # ids: folder path, / -> .
    ml = forklog.import_mlflow(store, os.path.join(FIXTURES, "mlflow", "mlflow.db"), prefix="ml-")
    assert ml and all(r["run"].startswith("ml-") for r in ml)
    tr = forklog.import_trackio(store, [os.path.join(FIXTURES, "trackio", "fixture.db")], prefix="tr-")
    assert tr and all(r["run"].startswith("tr-") for r in tr)
    # The TensorBoard purge is a rewind: the archived version keeps the purged rows.
    native = EXPECTED["tensorboard"]["runs"]["native"]
    rewind_at = native["rewinds"][0]
    rows = list(store.history("tb.native"))
    assert rows[rewind_at]["_step"] == rewind_at
    first = native["sessions"][0]
    for row in list(store.history("tb.native@v0"))[:5]:
        assert row["loss"] == first[str(row["_step"])]["loss"]
    assert store.verify().is_clean()


def test_a_bad_source_raises_import_failed_and_keeps_the_good_ones(store, tmp_path):
    good = os.path.join(FIXTURES, "trackio", "fixture.db")
    bad = tmp_path / "broken.db"
    bad.write_bytes(b"this is not a SQLite database" * 10)
    with pytest.raises(forklog.ImportFailed) as caught:
        forklog.import_trackio(store, [good, str(bad)])
    assert isinstance(caught.value, forklog.Error)
    assert caught.value.imported and caught.value.failures
    assert "broken.db" in caught.value.failures[0]
    assert {r.id for r in store.runs()} == {r["run"] for r in caught.value.imported}


def test_bad_arguments(store, tmp_path):
    with pytest.raises(ValueError):
        forklog.import_wandb(store, [])
    missing = tmp_path / "nothing-here"
    with pytest.raises(forklog.ImportFailed):
        forklog.import_tensorboard(store, missing)
    assert store.runs() == []
