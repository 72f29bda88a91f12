"""forklog: event-sourced storage for experiment-tracking runs, with copy-free forks.

W&B-style runs over a local store::

    import forklog
    store = forklog.Store("path")                      # or Store(): $FORKLOG_STORE, else ./forklog-store
    run = store.init("base", config={"lr": 0.1})
    run.log({"loss": 0.5})                             # step 0, then 1, 2, ...
    run.finish()
    fork = store.init("f", fork_from="base?_step=200") # inherits steps 0..200 without copying them
    rows = list(store.history("f"))                    # [{"_step": 0, "_timestamp": ..., "loss": ...}, ...]
    cols = store.columns("f")                          # {"_step": int64 array, "loss": float64 array}

``python -m forklog ...`` runs the command-line tool. Errors are subclasses of ``forklog.Error``.
"""

from __future__ import annotations

import atexit
import os
import sys
import weakref
from typing import Any, Dict, List, Optional, Sequence, Union

from . import _native, _types
from ._native import HistoryIter, Run
from ._types import (
    Config,
    Corrupt,
    Error,
    ForkOntoItself,
    GcReport,
    InvalidRunId,
    InvalidSpec,
    InvalidValue,
    ImportFailed,
    IoError,
    LineageEntry,
    NoStore,
    NotAStore,
    Poisoned,
    Problem,
    ReadOnlyStore,
    ReadOnlyVersion,
    RunBusy,
    RunExists,
    RunFinished,
    RunInfo,
    RunNotFound,
    StepNotIncreasing,
    Summary,
    TooLarge,
    UnsupportedFormat,
    VerifyReport,
)

__version__ = "0.1.0"

__all__ = [
    "Store",
    "Run",
    "HistoryIter",
    "init",
    "import_wandb",
    "import_tensorboard",
    "import_mlflow",
    "import_trackio",
    *_types.__all__,
]


def _json_text(value: Any) -> Optional[str]:
    """A value of a mixed-type column as JSON text (bytes as a list of ints, like the CLI)."""
    import json
    import math

    def plain(v: Any) -> Any:
        if isinstance(v, float) and not math.isfinite(v):
            return "NaN" if math.isnan(v) else ("Infinity" if v > 0 else "-Infinity")
        if isinstance(v, bytes):
            return list(v)
        if isinstance(v, list):
            return [plain(x) for x in v]
        if isinstance(v, dict):
            return {k: plain(x) for k, x in v.items()}
        return v

    return None if value is None else json.dumps(plain(value), sort_keys=True)


# Runs still open when the interpreter exits are finished (exit code 1 after an uncaught exception, else 0),
# as wandb does: their buffered rows reach the disk and the run reads as finished, not crashed.
_open_runs: "weakref.WeakSet[Run]" = weakref.WeakSet()


@atexit.register
def _finish_open_runs() -> None:
    code = 1 if getattr(sys, "last_value", None) is not None else 0
    for run in list(_open_runs):
        try:
            run.finish(code)
        except Error:
            pass


class Store(_native.Store):
    __doc__ = _native.Store.__doc__
    __slots__ = ()

    def init(
        self,
        id: Optional[str] = None,
        *,
        config: Optional[Dict[str, Any]] = None,
        fork_from: Optional[str] = None,
        resume_from: Optional[str] = None,
        resume: Optional[Union[str, bool]] = None,
    ) -> Run:
        run = super().init(id, config=config, fork_from=fork_from, resume_from=resume_from, resume=resume)
        _open_runs.add(run)
        return run

    init.__doc__ = _native.Store.init.__doc__

    def to_arrow(
        self,
        run: str,
        keys: Optional[Sequence[str]] = None,
        from_step: Optional[int] = None,
        to_step: Optional[int] = None,
        own: bool = False,
    ) -> Any:
        """The run's history as a ``pyarrow.Table``, one row per step: ``_step`` (int64), ``_timestamp``
        (float64) and one column per metric, null where a row has no value for it. A metric whose values
        are all floats (ints, bools) is a float64 (int64, bool) column; strings, bytes, lists and dicts
        keep pyarrow's inferred type; a metric mixing ints and floats is float64, one mixing other types (or
        nested values pyarrow cannot type) becomes JSON text. Needs pyarrow."""
        import pyarrow as pa

        steps, times, cols = self._table(run, keys, from_step, to_step, own)
        names = ["_step", "_timestamp"]
        arrays = [pa.array(steps, type=pa.int64()), pa.array(times, type=pa.float64())]
        for key, kind, data, present in cols:
            if kind == "object":
                types = {type(v) for v in data if v is not None}
                arr = None
                if types == {int, float}:
                    arr = pa.array([None if v is None else float(v) for v in data], type=pa.float64())
                elif len(types) <= 1:
                    try:
                        arr = pa.array(data)
                    except (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError, OverflowError):
                        arr = None
                if arr is None:
                    arr = pa.array([_json_text(v) for v in data], type=pa.string())
            else:
                arr = pa.array(data, mask=~present)
            names.append(key)
            arrays.append(arr)
        return pa.Table.from_arrays(arrays, names=names)

    def to_pandas(
        self,
        run: str,
        keys: Optional[Sequence[str]] = None,
        from_step: Optional[int] = None,
        to_step: Optional[int] = None,
        own: bool = False,
    ) -> Any:
        """The run's history as a ``pandas.DataFrame``, one row per step: ``_step`` (int64), ``_timestamp``
        (float64) and one column per metric. Float metrics are float64 with NaN where absent; int metrics
        are int64 (float64 with NaN when some rows lack them); bool metrics are bool (object with None
        when some rows lack them); other values are objects, None where absent. Needs pandas (not pyarrow)."""
        import numpy as np
        import pandas as pd

        steps, times, cols = self._table(run, keys, from_step, to_step, own)
        data: Dict[str, Any] = {"_step": steps, "_timestamp": times}
        for key, kind, values, present in cols:
            if kind == "object":
                out = np.empty(len(values), dtype=object)
                for i, v in enumerate(values):
                    out[i] = v
                data[key] = out
            elif kind == "float" or present.all():
                data[key] = values
            elif kind == "int":
                out = values.astype(np.float64)
                out[~present] = np.nan
                data[key] = out
            elif kind == "bool":
                out = values.astype(object)
                out[~present] = None
                data[key] = out
        return pd.DataFrame(data, columns=list(data))


def init(
    id: Optional[str] = None,
    *,
    config: Optional[Dict[str, Any]] = None,
    fork_from: Optional[str] = None,
    resume_from: Optional[str] = None,
    resume: Optional[Union[str, bool]] = None,
    store: Union[Store, str, "os.PathLike[str]", None] = None,
) -> Run:
    """``Store(store).init(id, ...)``: starts a run in the default store (``$FORKLOG_STORE``, else
    ``./forklog-store``) or the given one, like ``wandb.init``. See ``Store.init``."""
    if not isinstance(store, _native.Store):
        store = Store(store)
    return store.init(id, config=config, fork_from=fork_from, resume_from=resume_from, resume=resume)


def _import(
    fmt: str,
    store: Union[Store, str, "os.PathLike[str]", None],
    sources: Union[str, "os.PathLike[str]", Sequence[Union[str, "os.PathLike[str]"]]],
    prefix: str,
    as_id: Optional[str],
) -> List[Dict[str, Any]]:
    import warnings as _warnings

    if not isinstance(store, _native.Store):
        store = Store(store)
    if isinstance(sources, (str, os.PathLike)):
        sources = [sources]
    paths = [os.fspath(s) for s in sources]
    if not paths:
        raise ValueError("no source given")
    imported, failures, notes = _native._import(store, fmt, paths, prefix, as_id)
    for note in notes:
        _warnings.warn(note, stacklevel=3)
    if failures:
        raise ImportFailed(
            f"{len(failures)} of the {fmt} runs or sources could not be imported: " + "; ".join(failures),
            imported=imported,
            failures=failures,
            warnings=notes,
        )
    return imported


def import_wandb(store, sources, *, prefix: str = "", as_id: Optional[str] = None) -> List[Dict[str, Any]]:
    """Imports W&B offline runs (``run-<id>.wandb`` files, ``offline-run-*`` folders or a ``wandb/`` folder)
    into ``store`` (a ``Store`` or a path), as ``forklog import --format wandb``: forks and rewinds
    (``branch_point``) become forklog forks and rewinds. Returns one dict per imported run (``source, run,
    version, rows, parent, fork_step``); raises ``ImportFailed`` (after importing the rest) if any run or
    source is bad. ``prefix`` is prepended to every id; ``as_id`` names a single run."""
    return _import("wandb", store, sources, prefix, as_id)


def import_tensorboard(store, sources, *, prefix: str = "", as_id: Optional[str] = None) -> List[Dict[str, Any]]:
    """Imports TensorBoard log directories (each folder holding ``events.out.tfevents.*`` files is a run);
    a restart that purges steps becomes a rewind. See ``import_wandb`` for the arguments and result."""
    return _import("tensorboard", store, sources, prefix, as_id)


def import_mlflow(store, sources, *, prefix: str = "", as_id: Optional[str] = None) -> List[Dict[str, Any]]:
    """Imports MLflow runs from a file store (``mlruns/``) or a SQLite backend (``mlflow.db``); steps
    logged again after a resume become a rewind. See ``import_wandb`` for the arguments and result."""
    return _import("mlflow", store, sources, prefix, as_id)


def import_trackio(store, sources, *, prefix: str = "", as_id: Optional[str] = None) -> List[Dict[str, Any]]:
    """Imports trackio project databases (``<project>.db``). See ``import_wandb`` for the arguments and
    result."""
    return _import("trackio", store, sources, prefix, as_id)


def _main_args(args: Optional[List[str]] = None) -> int:
    import sys

    return _native._cli_main(list(sys.argv[1:] if args is None else args))
