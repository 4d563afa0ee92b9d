"""The Ray engine: a stage's work function as a Ray Data pipeline, results put back in order.

The driver (this process) reads the rows as the local engine does and cuts them into chunks
of :data:`CHUNK_ITEMS`. Each chunk goes to Ray's object store as one row of a dataset (``seq``,
its position in the local engine's order, which is files then lines; ``chunk``, the pickled
rows); ``map_batches`` runs the work function on it in a Ray task and the result comes back
beside its ``seq``. The driver then restores the local engine's order by ``seq`` (a dictionary
of the chunks that came early, not ``Dataset.sort``: a shuffle costs seconds for a few hundred
keys) and checks that every chunk came back with one result per row.

At most :data:`WINDOW_CHUNKS` chunks are in flight (one dataset each), so the driver's memory
and the object store stay bounded however long the input. An exception in a work function
comes back as that chunk's result and is raised here, in order, as the local engine would raise
it: a stage's writes are then abandoned as they would be without Ray.
"""

from __future__ import annotations

import contextlib
import logging
import os
import pickle
import traceback
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from itertools import islice
from typing import TYPE_CHECKING, Any, Generic, TypeVar

import pyarrow as pa
import ray
import ray.data

from distill.engine import EngineName
from distill.errors import DistillError

if TYPE_CHECKING:
    from distill.index.embedders import Embedder

S = TypeVar("S")
T = TypeVar("T")
R = TypeVar("R")
CHUNK_ITEMS = 2_000  # rows per Ray task: ~0.2-0.5 s of work, so a task's overhead is small
WINDOW_CHUNKS = 64  # chunks per dataset: what the driver and the object store hold at once
_CACHED = 4  # shared payloads a worker process keeps (one per stage it ran lately)
_SHARED: dict[str, Any] = {}


@contextlib.contextmanager
def connect(address: str | None) -> Iterator[RayEngine]:
    """A :class:`RayEngine` on the cluster at ``address``, on the Ray this process is already
    connected to, or on a local Ray started here with every CPU (stopped afterwards)."""
    started = not ray.is_initialized()
    if started:
        options: dict[str, Any] = {
            "include_dashboard": False,
            "log_to_driver": False,
            "logging_level": logging.ERROR,
        }
        try:
            if address:
                ray.init(address=address, **options)
            else:
                ray.init(address="local", num_cpus=os.cpu_count() or 1, **options)
        except (ConnectionError, RuntimeError, ValueError) as err:
            raise DistillError(
                f"could not reach Ray at {address or 'a new local instance'}: {err}"[:400],
                hint="check --ray-address / $RAY_ADDRESS (`ray status` on the head node "
                "prints it), or leave both unset to start a local Ray",
            ) from err
    _quiet_data()
    try:
        yield RayEngine(address)
    finally:
        if started:
            ray.shutdown()


def _quiet_data() -> None:
    """No progress bars or execution plans on a CLI's stderr."""
    logging.getLogger("ray.data").setLevel(logging.ERROR)
    context = ray.data.DataContext.get_current()
    context.enable_progress_bars = False
    context.print_on_execution_start = False


class RayEngine:
    """Work functions as Ray Data pipelines on the connected cluster."""

    def __init__(
        self, address: str | None, chunk_items: int = CHUNK_ITEMS, window: int = WINDOW_CHUNKS
    ) -> None:
        self.address = address
        self.chunk_items = chunk_items
        self.window = window

    @property
    def name(self) -> EngineName:
        return EngineName.ray

    def cpus(self) -> int:
        resources: dict[str, float] = ray.cluster_resources()  # type: ignore[no-untyped-call]
        return int(resources.get("CPU", 1))

    def describe(self) -> dict[str, Any]:
        return {"name": "ray", "address": self.address or "local", "cpus": self.cpus()}

    def embedder(self, name: str | None, seed: int) -> Embedder:
        from distill.engine.ray_embed import RayEmbedder
        from distill.index.embedders import make_embedder

        return RayEmbedder(make_embedder(name, seed=seed), name, seed, actors=self.cpus())

    def map(
        self, work: Callable[[S, list[T]], list[R]], shared: S, items: Iterable[T]
    ) -> Iterator[R]:
        payload = ray.put(_Work(work, shared))
        chunks = _chunks(items, self.chunk_items)
        first = 0
        while window := list(islice(chunks, self.window)):
            yield from _run_window(payload, window, first)
            first += len(window)


@dataclass(frozen=True)
class _Work(Generic[S, T, R]):
    work: Callable[[S, list[T]], list[R]]
    shared: S


@dataclass(frozen=True)
class _Failed:
    """A work function's exception, carried back to the driver to be raised there.

    Carried as its pickle when that round-trips, else as its class, ``args`` and attributes
    (an exception whose ``__init__`` takes more than ``args`` holds, such as ValidationFailed,
    does not unpickle), else as its words in a DistillError.
    """

    pickled: bytes | None
    parts: tuple[type[BaseException], tuple[Any, ...], dict[str, Any]] | None
    trace: str

    @classmethod
    def of(cls, err: Exception) -> _Failed:
        trace = "".join(traceback.format_exception(err))
        for way in ("pickle", "parts"):
            try:
                if way == "pickle":
                    candidate = cls(pickle.dumps(err), None, trace)
                else:
                    candidate = cls(None, (type(err), err.args, dict(vars(err))), trace)
                pickle.loads(pickle.dumps(candidate)).error()
                return candidate
            except Exception:  # the next way, then words
                continue
        words = DistillError(f"{type(err).__name__}: {err}"[:500])
        return cls(None, (DistillError, words.args, {}), trace)

    def error(self) -> BaseException:
        if self.pickled is not None:
            err: BaseException = pickle.loads(self.pickled)
        else:
            assert self.parts is not None
            kind, args, attributes = self.parts
            err = kind.__new__(kind, *args)
            err.args = args
            vars(err).update(attributes)
        err.add_note(f"raised on a Ray worker:\n{self.trace}")
        return err


def _chunks(items: Iterable[T], size: int) -> Iterator[tuple[int, bytes]]:
    """(rows, pickled rows) of ``size`` rows at a time."""
    iterator = iter(items)
    while chunk := list(islice(iterator, size)):
        yield len(chunk), pickle.dumps(chunk, protocol=pickle.HIGHEST_PROTOCOL)


def _run_window(payload: Any, window: list[tuple[int, bytes]], first: int) -> Iterator[Any]:
    refs: list[Any] = [
        ray.put(pa.table({"seq": [first + i], "rows": [rows], "chunk": [blob]}))
        for i, (rows, blob) in enumerate(window)
    ]
    dataset: Any = ray.data.from_arrow_refs(refs)  # Ray's stubs type batches loosely
    dataset = dataset.map_batches(
        _run_chunks,
        fn_kwargs={"payload": [payload]},  # in a list: Ray passes the reference, not the value
        batch_size=1,
        batch_format="pyarrow",
    )
    early: dict[int, bytes] = {}
    expected = first
    for batch in dataset.iter_batches(batch_size=None, batch_format="pyarrow"):
        for seq, blob in zip(batch["seq"].to_pylist(), batch["result"].to_pylist(), strict=True):
            early[seq] = blob
        while expected in early:
            yield from _unpacked(early.pop(expected))
            expected += 1
    if expected != first + len(window) or early:
        raise DistillError(
            f"Ray returned {expected - first} of {len(window)} chunks in order "
            f"({len(early)} out of order): no output was written from them",
            hint="a bug or a lost Ray worker; rerun, or run with --engine local",
        )


def _unpacked(blob: bytes) -> list[Any]:
    results = pickle.loads(blob)
    if isinstance(results, _Failed):
        raise results.error()
    assert isinstance(results, list)
    return results


def _run_chunks(batch: pa.Table, payload: list[Any]) -> pa.Table:
    """The Ray task: the work function over each chunk of ``batch``."""
    work = _shared(payload[0])
    results = [
        _apply(work, rows, blob)
        for rows, blob in zip(batch["rows"].to_pylist(), batch["chunk"].to_pylist(), strict=True)
    ]
    return pa.table({"seq": batch["seq"], "result": pa.array(results, pa.large_binary())})


def _apply(work: _Work[Any, Any, Any], rows: int, blob: bytes) -> bytes:
    try:
        results = work.work(work.shared, pickle.loads(blob))
        if len(results) != rows:
            raise DistillError(f"a work function returned {len(results)} results for {rows} rows")
        return pickle.dumps(results, protocol=pickle.HIGHEST_PROTOCOL)
    except Exception as err:  # raised on the driver, in order
        return pickle.dumps(_Failed.of(err), protocol=pickle.HIGHEST_PROTOCOL)


def _shared(ref: Any) -> _Work[Any, Any, Any]:
    """The payload behind ``ref``, fetched once per worker process."""
    key = ref.hex()
    if key not in _SHARED:
        while len(_SHARED) >= _CACHED:
            _SHARED.pop(next(iter(_SHARED)))
        _SHARED[key] = ray.get(ref)
    work: _Work[Any, Any, Any] = _SHARED[key]
    return work
