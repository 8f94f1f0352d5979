"""Progress for long work: a rich live display when a person runs the CLI, Prefect logs otherwise."""

from __future__ import annotations

import logging
import time
from typing import Any, Protocol


class Reporter(Protocol):
    def stage(self, name: str) -> None: ...

    def update(self, info: dict[str, Any]) -> None: ...

    def done(self) -> None: ...


class LogReporter:
    """Logs a line per stage and at most one progress line every few seconds."""

    def __init__(self, logger: logging.Logger | logging.LoggerAdapter, every_s: float = 5.0) -> None:
        self.logger = logger
        self.every_s = every_s
        self._last = 0.0

    def stage(self, name: str) -> None:
        self.logger.info("stage: %s", name)

    def update(self, info: dict[str, Any]) -> None:
        now = time.monotonic()
        if now - self._last >= self.every_s or info.get("final"):
            self._last = now
            self.logger.info("progress: %s", ", ".join(f"{k}={v}" for k, v in info.items() if k != "final"))

    def done(self) -> None:
        pass


class RichReporter:
    """A rich progress bar for generation and a line per stage."""

    def __init__(self) -> None:
        from rich.console import Console
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

        # stdout: stderr is kept for the one-line error a failed run ends with.
        self.console = Console()
        self.progress = Progress(
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[info]}"),
            TimeElapsedColumn(),
            console=self.console,
            transient=False,
        )
        self._task: Any = None
        self._started = False

    def stage(self, name: str) -> None:
        self._finish_bar()
        self.console.print(f"[cyan]•[/] {name}")

    def update(self, info: dict[str, Any]) -> None:
        total = info.get("total")
        completed = info.get("done", 0)
        text = "  ".join(
            f"{key} {value}" for key, value in info.items() if key not in {"total", "done", "final", "label"}
        )
        if self._task is None:
            if not self._started:
                self.progress.start()
                self._started = True
            self._task = self.progress.add_task(info.get("label", "working"), total=total, info=text)
        self.progress.update(self._task, completed=completed, total=total, info=text)

    def _finish_bar(self) -> None:
        if self._started:
            self.progress.stop()
            self._started = False
            self._task = None
            self.progress = type(self.progress)(*self.progress.columns, console=self.console)

    def done(self) -> None:
        self._finish_bar()


_current: Reporter | None = None


def install(reporter: Reporter | None) -> None:
    global _current
    _current = reporter


def reporter(logger: logging.Logger | logging.LoggerAdapter) -> Reporter:
    return _current or LogReporter(logger)
