"""Exceptions, report types and the ``run.config`` / ``run.summary`` views of the forklog package.

The native module (``forklog._native``) builds these; import them from ``forklog``.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Dict, Iterator, List, Mapping, Optional

__all__ = [
    "Error",
    "InvalidRunId",
    "InvalidSpec",
    "RunNotFound",
    "RunExists",
    "RunBusy",
    "StepNotIncreasing",
    "ForkOntoItself",
    "ReadOnlyVersion",
    "NotAStore",
    "NoStore",
    "ReadOnlyStore",
    "Corrupt",
    "UnsupportedFormat",
    "Poisoned",
    "InvalidValue",
    "TooLarge",
    "IoError",
    "ImportFailed",
    "RunFinished",
    "RunInfo",
    "LineageEntry",
    "GcReport",
    "Problem",
    "VerifyReport",
    "Config",
    "Summary",
]


# --------------------------------------------------------------------------------------------------
# Exceptions: one class per engine error, fields as attributes.


class Error(Exception):
    """Base class of every forklog error. ``str(e)`` is the engine's message."""

    def __init__(self, message: str = "", **fields: Any) -> None:
        super().__init__(message)
        for name, value in fields.items():
            setattr(self, name, value)

    def __reduce__(self):  # keep the fields across pickling (multiprocessing)
        return (self.__class__, self.args, dict(self.__dict__))


class InvalidRunId(Error, ValueError):
    """A run id broke the naming rule (1 to 64 characters of ``A-Za-z0-9._-``, not ``.`` or ``..``)."""

    id: str
    reason: str


class InvalidSpec(Error, ValueError):
    """A fork or rewind spec (``RUN?_step=N``, ``RUN@vK?_step=N``) could not be parsed."""

    spec: str
    reason: str


class RunNotFound(Error):
    """No live run (or no such archived version) has this id."""

    run: str


class RunExists(Error):
    """A new run was asked for with an id that is already taken."""

    run: str


class RunBusy(Error):
    """Another writer (in this or another process) has the run open."""

    run: str


class StepNotIncreasing(Error, ValueError):
    """A logged step was not greater than the last one (``last``); nothing was written."""

    run: str
    last: int
    got: int


class ForkOntoItself(Error, ValueError):
    """A fork's new id equals its parent's id."""

    run: str


class ReadOnlyVersion(Error):
    """An archived version (``ID@vK``) was given where only a live run can be used."""

    run: str


class NotAStore(Error):
    """The directory holds files but no forklog store file; forklog does not create a store among them."""

    path: str


class NoStore(Error):
    """No store at this path, and the open was not allowed to create one."""

    path: str


class ReadOnlyStore(Error):
    """A write through a store opened read-only."""

    path: str


class Corrupt(Error):
    """A file failed a check (magic, CRC, length or structure) at byte ``offset``."""

    file: str
    offset: int
    reason: str


class UnsupportedFormat(Error):
    """A file was written by a format version this build cannot read."""

    file: str
    found: int
    supported: int


class Poisoned(Error):
    """The run's writer saw an I/O failure (or a panic inside it) and refuses further writes: init the run again
    with resume="must". ``cause`` is the first failure."""

    run: str
    cause: str


class InvalidValue(Error, ValueError):
    """A value the engine refused (e.g. nested too deeply, a key repeated in one row)."""

    reason: str


class TooLarge(Error, ValueError):
    """A single event, key or frame is larger than the format allows."""

    what: str
    size: int
    limit: int


class IoError(Error, OSError):
    """An operating-system I/O error while ``op`` on ``path`` (``errno`` when known)."""

    op: str
    path: str
    errno: Optional[int]  # type: ignore[assignment]

    def __init__(self, message: str = "", **fields: Any) -> None:
        Exception.__init__(self, message)
        for name, value in fields.items():
            setattr(self, name, value)

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else ""


class ImportFailed(Error):
    """Some runs or sources of an ``import_*`` call could not be imported (nothing of them stays in the
    store); the others were imported. ``imported`` lists those (dicts as ``import_*`` returns them),
    ``failures`` one message per failed run or source (file and byte offset, or table and row), ``warnings``
    the notes of the call."""

    imported: list
    failures: list
    warnings: list


class RunFinished(Error):
    """The run was already finished by this ``Run`` object (the Python API's own error)."""

    run: str


# --------------------------------------------------------------------------------------------------
# Reports and listings: frozen dataclasses that also read like dicts (``info.rows``, ``info["rows"]``).


class _Record:
    """Field access by attribute or key; equal to another record of its type with equal fields, or to a
    dict of its fields."""

    def __eq__(self, other: object) -> bool:
        if isinstance(other, dict):
            return self.to_dict() == other
        if type(other) is type(self):
            return self.to_dict() == other.to_dict()  # type: ignore[attr-defined]
        return NotImplemented

    def __hash__(self) -> int:
        return hash(tuple(repr(getattr(self, k)) for k in self.keys()))

    def __getitem__(self, key: str) -> Any:
        if key in self.__dataclass_fields__:  # type: ignore[attr-defined]
            return getattr(self, key)
        raise KeyError(key)

    def keys(self):
        return self.__dataclass_fields__.keys()  # type: ignore[attr-defined]

    def to_dict(self) -> Dict[str, Any]:
        """The fields as a plain dict."""
        return asdict(self)  # type: ignore[call-overload]


@dataclass(frozen=True, eq=False)
class RunInfo(_Record):
    """Facts about one run version, as ``Store.info``, ``runs`` and ``children`` return them."""

    id: str
    version: int
    parent: Optional[str]
    """The fork parent as ``"ID@vK"``, or None."""
    fork_step: Optional[int]
    rewind_step: Optional[int]
    first_step: Optional[int]
    last_step: Optional[int]
    rows: int
    """History rows, inherited ones included."""
    events: int
    state: str
    """``"running"``, ``"finished"`` or ``"crashed"``."""
    created: float
    archived: bool
    deleted: bool

    @property
    def ref(self) -> str:
        """``"ID@vK"``."""
        return f"{self.id}@v{self.version}"


@dataclass(frozen=True, eq=False)
class LineageEntry(_Record):
    """One step of a run's ancestry: the version ``run`` (``"ID@vK"``) and where it forked from the
    previous entry (None for the root)."""

    run: str
    fork_step: Optional[int]


@dataclass(frozen=True, eq=False)
class GcReport(_Record):
    """What ``Store.gc`` removed."""

    files_removed: int
    bytes_freed: int
    runs_removed: List[str] = field(default_factory=list)


@dataclass(frozen=True, eq=False)
class Problem(_Record):
    """One problem ``Store.verify`` found: ``kind`` is ``"corrupt"`` or ``"torn tail"``."""

    file: str
    offset: int
    kind: str
    message: str


@dataclass(frozen=True, eq=False)
class VerifyReport(_Record):
    """The result of ``Store.verify``: ``clean`` unless a file is corrupt (a torn tail, which recovery
    cuts, is reported but clean)."""

    files: int
    bytes: int
    problems: List[Problem]
    clean: bool

    def __bool__(self) -> bool:
        return self.clean

    def is_clean(self) -> bool:
        """Same as ``clean``."""
        return self.clean


# --------------------------------------------------------------------------------------------------
# run.config and run.summary


class _RunView(Mapping[str, Any]):
    _what = ""

    def __init__(self, run: Any) -> None:
        self._run = run

    def _read(self) -> Dict[str, Any]:
        return getattr(self._run.store, self._what)(self._run.id)

    def _write(self, patch: Dict[str, Any]) -> None:
        getattr(self._run, "_set_" + self._what)(patch)

    def update(self, patch: Optional[Mapping[str, Any]] = None, /, **kwargs: Any) -> None:
        """Appends a patch (one event): the given keys take the given values."""
        merged: Dict[str, Any] = dict(patch) if patch is not None else {}
        merged.update(kwargs)
        self._write(merged)

    def __setitem__(self, key: str, value: Any) -> None:
        self._write({key: value})

    def __getitem__(self, key: str) -> Any:
        return self._read()[key]

    def __getattr__(self, key: str) -> Any:
        if key.startswith("_"):
            raise AttributeError(key)
        try:
            return self._read()[key]
        except KeyError:
            raise AttributeError(key) from None

    def __iter__(self) -> Iterator[str]:
        return iter(self._read())

    def __len__(self) -> int:
        return len(self._read())

    def as_dict(self) -> Dict[str, Any]:
        """The current merged values as a dict."""
        return self._read()

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self._read()!r})"


class Config(_RunView):
    """``run.config``: reads the run's merged config; ``update``/item assignment append config patches."""

    _what = "config"


class Summary(_RunView):
    """``run.summary``: reads the run's summary (last logged values, overridden by explicit ones);
    ``run.summary[key] = value`` and ``update`` set explicit summary values."""

    _what = "summary"
