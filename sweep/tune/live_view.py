"""What a person watching a sweep reads: one status line per running trial, redrawn in place every few seconds on a
terminal, with finished trials' summary lines scrolling above; in a log (not a terminal), periodic plain lines."""
from __future__ import annotations

import math
import os
import shutil
import sys
import time
from typing import Callable, TextIO

UP_AND_CLEAR = "\x1b[{n}A\r\x1b[J"  # cursor n lines up to the line start, then clear to the end of the screen
STALE_SECONDS = 60.0  # a trial silent this long says so on its line
PHASE_WORDS = {"starting": "starting (loading data, compiling)", "testing": "testing"}
LOG_EVERY_ENV = "FUSION_SWEEP_PROGRESS_SECONDS"  # how often a log (not a terminal) gets the status lines; default 30


def clock(seconds: float) -> str:
    """h:mm:ss or m:ss."""
    seconds = int(max(seconds, 0))
    hours, rest = divmod(seconds, 3600)
    return f"{hours}:{rest // 60:02d}:{rest % 60:02d}" if hours else f"{rest // 60}:{rest % 60:02d}"


def stamp(seconds: float) -> str:
    """The driver's time stamp, mm:ss since the sweep started (minutes grow past 99 as needed)."""
    seconds = int(max(seconds, 0))
    return f"{seconds // 60:02d}:{seconds % 60:02d}"


def eta_seconds(entry: dict) -> float | None:
    """Time left for a trial at its current step rate, if it trains to its last epoch (early stopping may end it
    sooner); None before the first timed step."""
    if isinstance(entry.get("eta_seconds"), (int, float)):  # the engine's own: it knows how many seeds run in turn
        return float(entry["eta_seconds"])
    step, steps, epoch, epochs = (entry.get(k) for k in ("step", "steps", "epoch", "epochs"))
    per_step = entry.get("step_seconds")
    if not all(isinstance(v, (int, float)) for v in (step, steps, epoch, epochs, per_step)) or per_step <= 0:
        return None
    return ((epochs - epoch) * steps + (steps - step)) * per_step


def status_line(name: str, entry: dict, now: float) -> str:
    """e.g. 'cnn:block3_drop/b16/h2048 seed 1  epoch 3/7  step 45/88  loss 0.412  val_acc 0.812  286 img/s  ETA 0:42'."""
    parts = [name]
    phase = entry.get("phase", "training")
    if phase != "training":
        parts.append(PHASE_WORDS.get(phase, phase))
    if entry.get("epoch") is not None and entry.get("epochs"):
        parts.append(f"epoch {entry['epoch']}/{entry['epochs']}")
    if entry.get("step") is not None and entry.get("steps"):
        parts.append(f"step {entry['step']}/{entry['steps']}")
    for key, label, spec in (("loss", "loss", ".3f"), ("val_accuracy", "val_acc", ".3f"),
                             ("images_per_second", "", ".0f")):
        value = entry.get(key)
        if isinstance(value, (int, float)) and math.isfinite(value):
            parts.append(f"{label} {value:{spec}}" if label else f"{value:{spec}} img/s")
    eta = eta_seconds(entry) if phase == "training" else None
    if eta is not None:
        parts.append(f"ETA {clock(eta)}")
    silent = now - entry.get("time", now)
    if silent > STALE_SECONDS:
        parts.append(f"(no word for {clock(silent)})")
    return "  ".join(parts)


class LiveView:
    """Draws a block of status lines. On a terminal the block is redrawn in place at most every `refresh` seconds
    and lines are cut to the terminal's width (a wrapped line would break the redraw); elsewhere the block is
    printed as plain lines every `log_every` seconds. Lines printed with `say` scroll above the block."""

    def __init__(self, stream: TextIO | None = None, *, interactive: bool | None = None, refresh: float = 2.0,
                 log_every: float | None = None, clock_fn: Callable[[], float] = time.monotonic):
        self.stream = stream or sys.stdout
        self.interactive = self.stream.isatty() if interactive is None else interactive
        if log_every is None:
            log_every = float(os.environ.get(LOG_EVERY_ENV) or 30.0)
        self.every = refresh if self.interactive else log_every
        self.clock = clock_fn
        self.last_draw = -math.inf
        self.block: list[str] = []
        self.drawn = 0  # lines of the block currently on the terminal

    def say(self, line: str) -> None:
        """A line that stays (a finished trial, a warning): printed above the live block."""
        if self.interactive:
            self._erase()
            self.stream.write(line + "\n")
            self._draw()
        else:
            self.stream.write(line + "\n")
        self.stream.flush()

    def due(self) -> bool:
        """True when the last drawing is older than the refresh interval (2 s on a terminal, 30 s in a log)."""
        return self.clock() - self.last_draw >= self.every

    def update(self, lines: list[str]) -> None:
        """Show these status lines now: redrawn in place on a terminal, appended as plain lines in a log."""
        self.block = list(lines)
        self.last_draw = self.clock()
        if self.interactive:
            self._erase()
            self._draw()
        else:
            self.stream.write("".join(line + "\n" for line in lines))
        self.stream.flush()

    def close(self) -> None:
        """Remove the live block (the final summary follows in plain lines)."""
        if self.interactive:
            self._erase()
            self.stream.flush()
        self.block = []

    def _erase(self) -> None:
        if self.drawn:
            self.stream.write(UP_AND_CLEAR.format(n=self.drawn))
            self.drawn = 0

    def _draw(self) -> None:
        width = max(20, shutil.get_terminal_size((120, 24)).columns - 1)
        for line in self.block:
            self.stream.write((line if len(line) <= width else line[: width - 1] + "…") + "\n")
        self.drawn = len(self.block)
