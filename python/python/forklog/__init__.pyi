"""Type stubs for forklog (the native classes live in forklog._native)."""

import os
from typing import Any, Dict, Iterator, List, Literal, Mapping, Optional, Sequence, Union

import numpy as np
import numpy.typing as npt

from ._types import (
    Config as Config,
    Corrupt as Corrupt,
    Error as Error,
    ForkOntoItself as ForkOntoItself,
    GcReport as GcReport,
    InvalidRunId as InvalidRunId,
    InvalidSpec as InvalidSpec,
    InvalidValue as InvalidValue,
    IoError as IoError,
    LineageEntry as LineageEntry,
    NoStore as NoStore,
    NotAStore as NotAStore,
    Poisoned as Poisoned,
    Problem as Problem,
    ReadOnlyStore as ReadOnlyStore,
    ReadOnlyVersion as ReadOnlyVersion,
    RunBusy as RunBusy,
    RunExists as RunExists,
    RunFinished as RunFinished,
    RunInfo as RunInfo,
    RunNotFound as RunNotFound,
    StepNotIncreasing as StepNotIncreasing,
    Summary as Summary,
    TooLarge as TooLarge,
    UnsupportedFormat as UnsupportedFormat,
    VerifyReport as VerifyReport,
)

__version__: str

Value = Union[float, int, bool, str, bytes, None, List["Value"], Dict[str, "Value"], np.generic, np.ndarray]
"""What can be logged: these types, nested lists and str-keyed dicts of them, NumPy scalars and 0-d arrays."""

PathLike = Union[str, "os.PathLike[str]"]
Sync = Union[int, Literal["always", "never"]]

class Run:
    """A run being written: returned by ``Store.init``."""

    @property
    def id(self) -> str: ...
    @property
    def version(self) -> int: ...
    @property
    def step(self) -> int:
        """The step the next ``log`` without ``step=`` uses."""
    @property
    def durable_step(self) -> Optional[int]: ...
    @property
    def finished(self) -> bool: ...
    @property
    def store(self) -> "Store": ...
    @property
    def config(self) -> Config: ...
    @property
    def summary(self) -> Summary: ...
    def log(self, data: Mapping[str, Value], step: Optional[int] = None) -> None:
        """Logs one history row at the next step or at ``step`` (which must exceed the last step)."""
    def log_columns(self, steps: Union[npt.ArrayLike, Sequence[int]], columns: Mapping[str, npt.ArrayLike]) -> Optional[int]:
        """Logs many rows from NumPy columns; returns the last step written (None for no rows)."""
    def sync(self) -> None: ...
    def finish(self, exit_code: int = 0) -> None: ...
    def __enter__(self) -> "Run": ...
    def __exit__(self, *args: Any) -> bool: ...

class HistoryIter(Iterator[Dict[str, Any]]):
    """History rows: ``{"_step": int, "_timestamp": float, ...metrics}`` (and ``"_run"`` with ``origin=True``)."""

    def __iter__(self) -> "HistoryIter": ...
    def __next__(self) -> Dict[str, Any]: ...

class Store:
    """A forklog store: a directory of runs (``Store()``: ``$FORKLOG_STORE``, else ``./forklog-store``)."""

    def __init__(self, path: Optional[PathLike] = None, *, sync: Optional[Sync] = None) -> None: ...
    @property
    def path(self) -> "os.PathLike[str]": ...
    def init(
        self,
        id: Optional[str] = None,
        *,
        config: Optional[Mapping[str, Value]] = None,
        fork_from: Optional[str] = None,
        resume_from: Optional[str] = None,
        resume: Optional[Union[Literal["must", "allow", "never"], bool]] = None,
    ) -> Run: ...
    def history(
        self,
        run: str,
        keys: Optional[Sequence[str]] = None,
        from_step: Optional[int] = None,
        to_step: Optional[int] = None,
        own: bool = False,
        origin: bool = False,
    ) -> HistoryIter: ...
    def columns(self, run: str, keys: Optional[Sequence[str]] = None) -> Dict[str, np.ndarray]: ...
    def sample(
        self,
        run: str,
        keys: Optional[Sequence[str]],
        buckets: int,
        from_step: Optional[int] = None,
        to_step: Optional[int] = None,
    ) -> Dict[str, Dict[str, np.ndarray]]:
        """Exact M4 downsampling: ``{key: {"bucket", "start", "end", "count", "first_step", "first",
        "last_step", "last", "min_step", "min", "max_step", "max"}}``, one array element per non-empty
        bucket (int64; the values float64)."""
    def to_arrow(
        self,
        run: str,
        keys: Optional[Sequence[str]] = None,
        from_step: Optional[int] = None,
        to_step: Optional[int] = None,
        own: bool = False,
    ) -> Any:
        """A ``pyarrow.Table`` (needs pyarrow)."""
    def to_pandas(
        self,
        run: str,
        keys: Optional[Sequence[str]] = None,
        from_step: Optional[int] = None,
        to_step: Optional[int] = None,
        own: bool = False,
    ) -> Any:
        """A ``pandas.DataFrame`` (needs pandas)."""
    def runs(self, all: bool = False) -> List[RunInfo]: ...
    def info(self, run: str) -> RunInfo: ...
    def summary(self, run: str) -> Dict[str, Any]: ...
    def config(self, run: str) -> Dict[str, Any]: ...
    def lineage(self, run: str) -> List[LineageEntry]: ...
    def children(self, run: str) -> List[RunInfo]: ...
    def delete(self, run: str) -> None: ...
    def gc(self) -> GcReport: ...
    def verify(self) -> VerifyReport: ...

def init(
    id: Optional[str] = None,
    *,
    config: Optional[Mapping[str, Value]] = None,
    fork_from: Optional[str] = None,
    resume_from: Optional[str] = None,
    resume: Optional[Union[Literal["must", "allow", "never"], bool]] = None,
    store: Union[Store, PathLike, None] = None,
) -> Run: ...


class ImportFailed(Error):
    imported: List[Dict[str, Any]]
    failures: List[str]
    warnings: List[str]

def import_wandb(
    store: Union[Store, str, os.PathLike[str], None],
    sources: Union[str, os.PathLike[str], Sequence[Union[str, os.PathLike[str]]]],
    *,
    prefix: str = ...,
    as_id: Optional[str] = ...,
) -> List[Dict[str, Any]]: ...
def import_tensorboard(
    store: Union[Store, str, os.PathLike[str], None],
    sources: Union[str, os.PathLike[str], Sequence[Union[str, os.PathLike[str]]]],
    *,
    prefix: str = ...,
    as_id: Optional[str] = ...,
) -> List[Dict[str, Any]]: ...
def import_mlflow(
    store: Union[Store, str, os.PathLike[str], None],
    sources: Union[str, os.PathLike[str], Sequence[Union[str, os.PathLike[str]]]],
    *,
    prefix: str = ...,
    as_id: Optional[str] = ...,
) -> List[Dict[str, Any]]: ...
def import_trackio(
    store: Union[Store, str, os.PathLike[str], None],
    sources: Union[str, os.PathLike[str], Sequence[Union[str, os.PathLike[str]]]],
    *,
    prefix: str = ...,
    as_id: Optional[str] = ...,
) -> List[Dict[str, Any]]: ...
