"""ordered_mapper: map a function over items in worker processes, results in input order, a bounded number in flight."""
from __future__ import annotations

import collections
import contextlib
import functools
import os
from typing import Callable, Iterable, Iterator, Sequence


def available_cores() -> int:
    """Cores this process may run on (its affinity mask, which Ray and `taskset` set), not the machine's count."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # macOS
        return os.cpu_count() or 1


def _apply(fn: Callable, chunk: Sequence) -> list:
    return [fn(item) for item in chunk]


def _chunks(items: Iterable, size: int) -> Iterator[list]:
    chunk: list = []
    for item in items:
        chunk.append(item)
        if len(chunk) == size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


def _ordered_map(pool, in_flight: int, chunk: int, fn: Callable, items: Iterable) -> Iterator:
    pending: collections.deque = collections.deque()
    try:
        for group in _chunks(items, chunk):
            pending.append(pool.submit(_apply, fn, group))
            if len(pending) >= in_flight:
                yield from pending.popleft().result()
        while pending:
            yield from pending.popleft().result()
    finally:  # the consumer stopped early (an error, Ctrl-C): drop the work not started yet
        for future in pending:
            future.cancel()


@contextlib.contextmanager
def ordered_mapper(workers: int, *, chunk: int = 16, ahead: int = 3) -> Iterator[Callable]:
    """Yields mapper(fn, items) -> iterator of fn(item) in input order. workers <= 1 maps in this process; otherwise
    `fn` (picklable) runs in `workers` spawned processes, started once for every map made through this context, with
    at most workers * ahead chunks in flight, so memory stays bounded whatever the number of items."""
    if workers <= 1:
        yield map
        return
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    with ProcessPoolExecutor(max_workers=workers, mp_context=multiprocessing.get_context("spawn")) as pool:
        yield functools.partial(_ordered_map, pool, workers * ahead, chunk)
