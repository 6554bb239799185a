"""Progress while a run trains: one line per epoch on stderr (steps, loss, accuracy, images/s, ETA), and a status
dict every couple of seconds for an `on_step` listener (a sweep's live view)."""
from __future__ import annotations

import sys
import time
from typing import Callable

STEP_LISTENER_SECONDS = 2.0  # how often `on_step` hears about a running epoch


class EpochProgress:
    """Redrawn in place on a terminal about once a second; one final line per epoch (also when not a terminal);
    `listener(status)` every couple of seconds within an epoch."""

    def __init__(self, enabled: bool, epochs: int, steps: int, batch_size: int,
                 listener: Callable[[dict], None] | None = None, passes: int = 1,
                 clock: Callable[[], float] = time.perf_counter):
        """`passes`: how many times an epoch's steps run one after another (seeds trained in turn share the bar);
        `clock`: seconds, for rates and when an update is due (a test gives its own)."""
        self.clock = clock
        self.enabled, self.epochs, self.steps, self.batch_size = enabled, epochs, steps, batch_size
        self.passes = max(1, int(passes))
        self.tty = enabled and sys.stderr.isatty()
        self.listener = listener
        self.last = 0.0
        self.mark: tuple[float, int, int] | None = None  # (time, epoch, step) of the last update
        self.pass_index = 0  # which of the epoch's passes is running (the step count went back: the next seed)
        self.step_seconds: float | None = None  # the last measured rate, for the start of a pass

    def due(self) -> bool:
        if not (self.tty or self.listener):
            return False
        return self.clock() - self.last > (1.0 if self.tty else STEP_LISTENER_SECONDS)

    def update(self, epoch: int, step: int, totals: dict) -> None:
        now = self.clock()
        self.last = now
        same_pass = self.mark is not None and self.mark[1] == epoch and step > self.mark[2]
        if self.mark is not None and not same_pass:
            self.pass_index = self.pass_index + 1 if self.mark[1] == epoch else 0
        # a rate only from two updates of the same pass: time since the epoch began would count the step that
        # compiled, validation, or other seeds' passes. A new pass or epoch keeps the last rate measured (none yet
        # at the run's first update, which comes right after the step that compiled)
        step_seconds = (now - self.mark[0]) / (step - self.mark[2]) if same_pass else self.step_seconds
        self.mark = (now, epoch, step)
        self.step_seconds = step_seconds
        count = max(float(totals["count"]), 1.0)
        loss, accuracy = float(totals["loss_sum"]) / count, float(totals["correct"]) / count
        rate = None if step_seconds is None else self.batch_size / max(step_seconds, 1e-9)
        if self.tty:
            line = f"epoch {epoch}/{self.epochs}  {step}/{self.steps} steps  loss {loss:.4f}  acc {accuracy:.3f}"
            if step_seconds is not None:
                line += f"  {rate:.1f} img/s  ETA {_clock((self.steps - step) * step_seconds)}"
            print("\r" + line.ljust(100), end="", file=sys.stderr, flush=True)
        if self.listener:
            left = (self.steps - step) + (self.passes - 1 - self.pass_index) * self.steps \
                + (self.epochs - epoch) * self.passes * self.steps
            self.listener({"epoch": epoch, "epochs": self.epochs, "step": step, "steps": self.steps, "loss": loss,
                           "accuracy": accuracy, "images_per_second": rate, "step_seconds": step_seconds,
                           "eta_seconds": None if step_seconds is None else max(left, 0) * step_seconds})

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
