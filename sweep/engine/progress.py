"""One line per epoch on stderr while a run trains: steps, loss, accuracy, images/s, ETA."""
from __future__ import annotations

import sys
import time


class EpochProgress:
    """Redrawn in place on a terminal about once a second; one final line per epoch (also when not a terminal)."""

    def __init__(self, enabled: bool, epochs: int, steps: int, batch_size: int):
        self.enabled, self.epochs, self.steps, self.batch_size = enabled, epochs, steps, batch_size
        self.tty = enabled and sys.stderr.isatty()
        self.last = 0.0

    def due(self) -> bool:
        return self.tty and time.perf_counter() - self.last > 1.0

    def update(self, epoch: int, step: int, totals: dict, start: float) -> None:
        self.last = time.perf_counter()
        elapsed = self.last - start
        count = max(float(totals["count"]), 1.0)
        rate = step * self.batch_size / max(elapsed, 1e-9)
        eta = (self.steps - step) * elapsed / max(step, 1)
        line = (f"epoch {epoch}/{self.epochs}  {step}/{self.steps} steps  loss {float(totals['loss_sum']) / count:.4f}"
                f"  acc {float(totals['correct']) / count:.3f}  {rate:.1f} img/s  ETA {_clock(eta)}")
        print("\r" + line.ljust(100), end="", file=sys.stderr, flush=True)

    def epoch_done(self, row: dict, best: bool) -> None:
        if not self.enabled:
            return
        line = (f"epoch {row['epoch']}/{self.epochs}  {self.steps}/{self.steps} steps  loss {row['loss']:.4f}"
                f"  acc {row['accuracy']:.3f}  val_loss {row['val_loss']:.4f}  val_acc {row['val_accuracy']:.3f}"
                f"  {row['images_per_second']:.1f} img/s  {row['seconds']:.1f}s" + ("  *best" if best else ""))
        print(("\r" if self.tty else "") + line.ljust(100), file=sys.stderr, flush=True)

    def say(self, message: str) -> None:
        if self.enabled:
            print(message, file=sys.stderr, flush=True)


def _clock(seconds: float) -> str:
    seconds = int(max(seconds, 0))
    return f"{seconds // 60}:{seconds % 60:02d}"
