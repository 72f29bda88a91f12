"""Values round-trip bit-exactly through log/history, config and summary; bad values are refused with a
TypeError naming the key, and nothing of the row is written."""

import math
import struct

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import forklog


def bits(x):
    return struct.unpack("<Q", struct.pack("<d", x))[0]


def nan_with_payload(payload):
    return struct.unpack("<d", struct.pack("<Q", 0x7FF0000000000000 | payload))[0]


floats = st.one_of(
    st.floats(width=64),
    st.integers(1, 2**52 - 1).map(nan_with_payload),
    st.integers(1, 2**52 - 1).map(lambda p: -nan_with_payload(p)),
    st.sampled_from([0.0, -0.0, math.inf, -math.inf]),
)
scalars = st.one_of(
    floats,
    st.integers(-(2**63), 2**63 - 1),
    st.booleans(),
    st.text(),
    st.binary(),
    st.none(),
)
nested = st.recursive(
    scalars,
    lambda inner: st.one_of(st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=8), inner, max_size=4)),
    max_leaves=12,
)


def identical(a, b):
    """Equal with exact types and float bits."""
    if type(a) is not type(b):
        return False
    if isinstance(a, float):
        return bits(a) == bits(b)
    if isinstance(a, list):
        return len(a) == len(b) and all(identical(x, y) for x, y in zip(a, b))
    if isinstance(a, dict):
        return list(a) == list(b) and all(identical(a[k], b[k]) for k in a) if False else (
            a.keys() == b.keys() and all(identical(a[k], b[k]) for k in a)
        )
    return a == b


@settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck))
@given(row=st.dictionaries(st.text(min_size=1, max_size=10).filter(lambda k: k not in ("_step", "_timestamp")),
                           nested, max_size=5))
def test_round_trip(tmp_path_factory, row):
    store = forklog.Store(tmp_path_factory.mktemp("rt"))
    with store.init("r", config={"c": row}) as run:
        run.log(row)
        run.summary["s"] = row
    (got,) = list(store.history("r"))
    assert got["_step"] == 0 and isinstance(got["_timestamp"], float)
    del got["_step"], got["_timestamp"]
    assert identical(got, row)
    assert identical(store.config("r"), {"c": row})
    assert identical(store.summary("r")["s"], row)


def test_special_floats_bit_exact(store):
    specials = [math.nan, -math.nan, nan_with_payload(0xDEADBEEF), -0.0, 0.0, math.inf, -math.inf, 5e-324]
    with store.init("r") as run:
        for x in specials:
            run.log({"x": x})
    got = [r["x"] for r in store.history("r")]
    assert [bits(x) for x in got] == [bits(x) for x in specials]
    cols = store.columns("r")
    assert [bits(x) for x in cols["x"]] == [bits(x) for x in specials]


def test_numpy_scalars(store):
    with store.init("r") as run:
        run.log({
            "f64": np.float64(0.1), "f32": np.float32(0.1), "f16": np.float16(1.5), "i8": np.int8(-3),
            "u64": np.uint64(7), "b": np.bool_(True), "z": np.array(2.5), "zi": np.array(4), "s": np.str_("x"),
        })
    (row,) = list(store.history("r"))
    assert identical(row["f64"], 0.1)
    assert identical(row["f32"], float(np.float32(0.1)))
    assert identical(row["f16"], 1.5)
    assert identical(row["i8"], -3) and identical(row["u64"], 7)
    assert identical(row["b"], True)
    assert identical(row["z"], 2.5) and identical(row["zi"], 4)
    assert identical(row["s"], "x")


class Weird:
    pass


BAD_VALUES = [
    Weird(), {1, 2}, (1, 2), 1 + 2j, bytearray(b"x"), np.array([1.0, 2.0]), np.datetime64("2020-01-01"),
    2**64, -(2**63) - 1, [1, Weird()], {"a": {"b": object()}}, {1: "int key"}, np.uint64(2**64 - 1), print,
]


@pytest.mark.parametrize("bad", BAD_VALUES, ids=lambda v: type(v).__name__)
def test_bad_values_refused_nothing_written(store, bad):
    run = store.init("r")
    run.log({"ok": 1.0})
    with pytest.raises(TypeError) as e:
        run.log({"good": 1.0, "badkey": bad})
    assert "badkey" in str(e.value)
    with pytest.raises(TypeError):
        run.config.update({"c": bad})
    with pytest.raises(TypeError):
        run.summary["s"] = bad
    with pytest.raises(TypeError):
        store.init("r2", config={"c": bad})
    assert [i.id for i in store.runs()] == ["r"]
    assert run.step == 1
    run.log({"ok": 2.0})
    run.finish()
    assert [r["_step"] for r in store.history("r")] == [0, 1]
    assert store.config("r") == {} and "s" not in store.summary("r")
    assert store.verify().clean


def test_bad_arguments(store):
    run = store.init("r")
    with pytest.raises(TypeError):
        run.log([("a", 1.0)])
    with pytest.raises(TypeError):
        run.log({1: 1.0})
    with pytest.raises(ValueError):
        run.log({"_step": 1.0})
    with pytest.raises(ValueError):
        run.log({"a": 1.0}, step=-1)
    with pytest.raises(TypeError):
        run.log({"a": 1.0}, step=1.5)
    with pytest.raises(TypeError):
        run.log({"a": 1.0}, step="3")
    with pytest.raises(ValueError):
        run.log({"a": 1.0}, step=2**63)
    with pytest.raises(TypeError):
        store.history("r", keys="loss")
    with pytest.raises(ValueError):
        store.init("x", resume="sometimes")
    with pytest.raises(ValueError):
        store.init("x", fork_from="r?_step=0", resume="must")
    with pytest.raises(ValueError):
        forklog.Store(store.path, sync="sometimes")
    run.finish()
    assert run.finished
    assert [r["_step"] for r in store.history("r")] == []
    assert [i.id for i in store.runs()] == ["r"]
