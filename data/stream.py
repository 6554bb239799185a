"""Stream the training pipeline with no model: images/s and peak resident memory (this process plus any worker
processes). What `fusion-sweep data stream` prints and the bench's pipeline section records."""
from __future__ import annotations

import os
import sys
import threading
import time

import numpy as np

from data.pipeline import LoaderOptions, steps_per_epoch, train_batches
from data.spec import PipelineSpec


class PeakMemory:
    """Samples the summed RSS of this process and its descendants (grain worker processes) every `interval` s, in
    a background thread, from start() to stop(). peak_mb is the largest sum seen. cpu_seconds is the CPU time
    (user + system) they used meanwhile: unlike wall time, it hardly changes when other jobs share the cores."""

    def __init__(self, interval: float = 0.02):
        import psutil

        self.interval, self.peak_bytes, self.samples = interval, 0, 0
        self._process = psutil.Process(os.getpid())
        self._cpu_start = self._cpu(self._process)
        self._cpu_last: dict[int, float] = {}  # pid -> its CPU seconds at the latest sample
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="fusion-sweep-rss", daemon=True)

    @staticmethod
    def _cpu(proc) -> float:
        times = proc.cpu_times()
        return times.user + times.system

    def sample(self) -> int:
        import psutil

        total = 0
        for proc in [self._process, *self._process.children(recursive=True)]:
            try:
                total += proc.memory_info().rss
                self._cpu_last[proc.pid] = self._cpu(proc)
            except (psutil.NoSuchProcess, psutil.AccessDenied):
                continue  # a worker that just exited
        self.peak_bytes = max(self.peak_bytes, total)
        self.samples += 1
        return total

    @property
    def cpu_seconds(self) -> float:
        """Workers start inside the sampled phase (from 0 s); a worker's last few ms before it exits are missed."""
        return sum(self._cpu_last.values()) - self._cpu_start

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            self.sample()

    def start(self) -> "PeakMemory":
        self.sample()
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()
        self.sample()

    @property
    def peak_mb(self) -> float:
        return self.peak_bytes / 2**20


def stream(split, spec: PipelineSpec, *, batch_size: int, num_classes: int, epochs: int = 1, seed: int = 0,
           loader: LoaderOptions | None = None, max_seconds: float | None = None, progress: bool = False) -> dict:
    """Iterate `epochs` training epochs of `split` (or stop after max_seconds) and measure. Returns the JSON of
    `data stream`: images, seconds, images_per_second, peak_rss_mb, and how it was run. Opening the split's files
    (open_seconds) happens before the timed, memory-sampled streaming phase; worker processes reopen them inside it."""
    if epochs < 1:
        raise ValueError(f"epochs must be >= 1, got {epochs}")
    loader = loader or LoaderOptions()
    steps = steps_per_epoch(split, spec, batch_size, num_classes)
    opened = time.perf_counter()
    if getattr(split, "reader", None) is not None:  # a prepared split: a one-off per process, reported apart
        split.reader.open()
    open_seconds = time.perf_counter() - opened
    bar = _bar(progress, steps * epochs * batch_size)
    memory = PeakMemory().start()
    images, batches, start = 0, 0, time.perf_counter()
    out_of_time = False
    try:
        for epoch in range(1, epochs + 1):
            for batch in train_batches(split, spec, batch_size=batch_size, seed=seed, epoch=epoch,
                                       num_classes=num_classes, loader=loader):
                valid = int(np.count_nonzero(batch["valid"]))
                images, batches = images + valid, batches + 1
                if bar is not None:
                    bar.update(valid)
                out_of_time = max_seconds is not None and time.perf_counter() - start >= max_seconds
                if out_of_time:
                    break
            if out_of_time:
                break
        seconds = time.perf_counter() - start
    finally:
        memory.stop()
        if bar is not None:
            bar.close()
    return {"images": images, "batches": batches, "seconds": round(seconds, 3), "open_seconds": round(open_seconds, 3),
            "images_per_second": round(images / max(seconds, 1e-9), 1), "peak_rss_mb": round(memory.peak_mb, 1),
            "cpu_seconds": round(memory.cpu_seconds, 3),
            "images_per_cpu_second": round(images / max(memory.cpu_seconds, 1e-9), 1),
            "rss_samples": memory.samples, "batch_size": batch_size, "augment": spec.augment, "epochs": epochs,
            "workers": loader.worker_count(), "worker_kind": "processes" if loader.processes else "threads",
            "image_size": int(np.asarray(split.images[:1]).shape[-1]), "split_images": len(split.labels),
            "load_average": [round(x, 2) for x in os.getloadavg()]}


def _bar(enabled: bool, total: int):
    if not enabled:
        return None
    from tqdm import tqdm

    return tqdm(total=total, unit="img", unit_scale=True, file=sys.stderr, dynamic_ncols=True, smoothing=0.1)
