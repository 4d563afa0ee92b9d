"""Where a stage's per-row work runs: in this process (``local``, the default) or on Ray.

A stage reads its inputs and writes its outputs in this process (the driver: one writer, the
writer lock, atomic publishing). What it does to each row or task in between is a *work*
function, ``work(shared, items) -> results`` (one result per item, in order), handed to
:meth:`Engine.map`. The local engine calls it as the rows are read, one row at a time (a few
dozen at a time in :func:`map_groups`, where the caller says how large a row is); the Ray
engine (:mod:`distill.engine.ray_engine`, imported only when asked for) sends chunks of rows to
Ray Data tasks and puts the results back in input order. The work function is the same object
on both engines, so every rule and the firewall have one implementation and both engines
write the same bytes. A work function must be a module-level function (Ray pickles it by name)
and ``shared`` what it needs besides the rows (sent once per call, not once per row).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import TYPE_CHECKING, Any, Generic, Protocol, TypeVar

from distill.errors import DistillError

if TYPE_CHECKING:  # the index (numpy, the embedders) loads only for a run that embeds
    from distill.index.embedders import Embedder

S = TypeVar("S")
T = TypeVar("T")
R = TypeVar("R")
RAY_EXTRA_HINT = "pip install 'distill[ray]' (Ray Data >= 2.40), or run with --engine local"


class EngineName(StrEnum):
    local = "local"
    ray = "ray"


class Engine(Protocol):
    """Runs work functions over rows; builds the embedder an index build embeds with."""

    @property
    def name(self) -> EngineName: ...

    def map(
        self, work: Callable[[S, list[T]], list[R]], shared: S, items: Iterable[T]
    ) -> Iterator[R]:
        """``work`` over ``items``: the results, one per item, in the order of ``items``."""
        ...

    def embedder(self, name: str | None, seed: int) -> Embedder:
        """The embedder ``name`` (``make_embedder``'s names), embedding where this engine runs."""
        ...

    def describe(self) -> dict[str, Any]:
        """What a receipt records about where the run ran."""
        ...


class LocalEngine:
    """This process, one row at a time, as the rows are read: the default; needs no Ray."""

    @property
    def name(self) -> EngineName:
        return EngineName.local

    def map(
        self, work: Callable[[S, list[T]], list[R]], shared: S, items: Iterable[T]
    ) -> Iterator[R]:
        for item in items:
            yield from work(shared, [item])

    def embedder(self, name: str | None, seed: int) -> Embedder:
        from distill.index.embedders import make_embedder

        return make_embedder(name, seed=seed)

    def describe(self) -> dict[str, Any]:
        return {"name": "local"}


LOCAL = LocalEngine()


@contextlib.contextmanager
def open_engine(
    name: EngineName | str = EngineName.local, address: str | None = None
) -> Iterator[Engine]:
    """The engine called ``name``. For ``ray``: the cluster at ``address`` (``ray://…`` or
    ``host:port``), else the Ray this process is already connected to, else a local Ray started
    for the run with this machine's CPUs (and stopped after it)."""
    if EngineName(name) is EngineName.local:
        yield LOCAL
        return
    try:
        from distill.engine.ray_engine import connect
    except ImportError as err:
        raise DistillError(
            "--engine ray needs Ray, which is not installed", hint=RAY_EXTRA_HINT
        ) from err
    with connect(address) as engine:
        yield engine


@dataclass(frozen=True, slots=True)
class GroupEnd:
    """Marks the end of a group's items (and of its results) in :func:`map_groups`."""

    group: int


class _GroupedWork(Generic[S, T, R]):
    """``work`` over the items of a chunk, each group's end passed through where it was."""

    def __init__(self, work: Callable[[S, list[T]], list[R]]) -> None:
        self.work = work

    def __call__(self, shared: S, items: list[T | GroupEnd]) -> list[R | GroupEnd]:
        out: list[R | GroupEnd] = []
        run: list[T] = []
        for item in items:
            if isinstance(item, GroupEnd):
                out += self.work(shared, run) if run else []
                run = []
                out.append(item)
            else:
                run.append(item)
        return out + (self.work(shared, run) if run else [])


LOCAL_CHUNK_ITEMS = 32
"""Items per call of a work function in :func:`map_groups` on the local engine (with
``weigh``): enough to spread the cost of a call and its list over many rows (measured on the
pipeline benchmark: collect 6-9 % less CPU than a call per row), few enough that the rows in
flight stay in the CPU's caches (chunks of 256 measured slower than a row at a time)."""
LOCAL_CHUNK_BYTES = 1 << 20
"""At most this many bytes of input (``weigh``) per local chunk besides its last item, so a
chunk of large units holds no more than one of them and a MiB: memory stays flat."""


def map_groups(
    engine: Engine,
    work: Callable[[S, list[T]], list[R]],
    shared: S,
    groups: Sequence[Iterable[T]],
    *,
    weigh: Callable[[T], int] | None = None,
) -> Iterator[Iterator[R]]:
    """:meth:`Engine.map` over several groups of items (a stage's input files, one output
    each): one iterator of results per group, in order. A group's items are read only once
    the previous group's results have been taken (on the local engine), so a stage publishes
    one output before it opens the next input, as it would without an engine.

    With ``weigh`` (an item's input bytes), the local engine hands ``work`` a group's items in
    chunks (:data:`LOCAL_CHUNK_ITEMS`, :data:`LOCAL_CHUNK_BYTES`) instead of one at a time;
    the results are the same, one per item, in order.
    """
    if weigh is not None and engine.name is EngineName.local:
        per_group = (_local_chunks(work, shared, group, weigh) for group in groups)
    else:
        results = engine.map(_GroupedWork(work), shared, _tagged(groups))
        per_group = (_until_end(results) for _ in groups)
    for group in per_group:
        yield group
        for _ in group:  # what the consumer left of the group
            pass


def _local_chunks(
    work: Callable[[S, list[T]], list[R]],
    shared: S,
    items: Iterable[T],
    weigh: Callable[[T], int],
) -> Iterator[R]:
    chunk: list[T] = []
    held = 0
    for item in items:
        chunk.append(item)
        held += weigh(item)
        if len(chunk) >= LOCAL_CHUNK_ITEMS or held >= LOCAL_CHUNK_BYTES:
            yield from work(shared, chunk)
            chunk, held = [], 0
    if chunk:
        yield from work(shared, chunk)


def _tagged(groups: Sequence[Iterable[T]]) -> Iterator[T | GroupEnd]:
    for index, group in enumerate(groups):
        yield from group
        yield GroupEnd(index)


def _until_end(results: Iterator[R | GroupEnd]) -> Iterator[R]:
    for result in results:
        if isinstance(result, GroupEnd):
            return
        yield result
