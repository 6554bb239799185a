"""ordered_map: fn over items in worker processes, results in input order, with a bounded number in flight."""
from __future__ import annotations

import collections
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


def ordered_map(fn: Callable, items: Iterable, *, workers: int, chunk: int = 16, ahead: int = 3) -> Iterator:
    """Yield fn(item) for each item, in order. workers <= 1 runs in this process; otherwise `fn` (picklable) runs in
    spawned processes with at most workers * ahead chunks in flight, so memory stays bounded whatever the input size."""
    if workers <= 1:
        yield from map(fn, items)
        return
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    with ProcessPoolExecutor(max_workers=workers, mp_context=multiprocessing.get_context("spawn")) as pool:
        pending: collections.deque = collections.deque()
        try:
            for group in _chunks(items, chunk):
                pending.append(pool.submit(_apply, fn, group))
                if len(pending) >= workers * ahead:
                    yield from pending.popleft().result()
            while pending:
                yield from pending.popleft().result()
        finally:  # the consumer stopped early (an error, Ctrl-C): drop the work not started yet
            for future in pending:
                future.cancel()
