"""SIGINT / SIGTERM during training: the first one stops the run cleanly (the trainer saves the last completed
iteration, Ray is shut down, the CLI prints the ``--resume`` command and exits 130 / 143); a second one stops it
at once. Both are raised as exceptions in the main thread, so ``finally`` blocks (the checkpoint writer's temp
file clean-up among them) still run and no half-written file is left behind."""

from __future__ import annotations

import signal
from collections.abc import Callable, Iterator
from contextlib import contextmanager

SIGNALS = (signal.SIGINT, signal.SIGTERM)


class Interrupted(BaseException):
    """The first SIGINT / SIGTERM. A BaseException, like KeyboardInterrupt, so ``except Exception`` cannot eat it."""

    def __init__(self, signum: int):
        super().__init__(signum)
        self.signum = signum

    @property
    def name(self) -> str:
        return signal.Signals(self.signum).name

    @property
    def exit_code(self) -> int:
        """The shell's convention: 128 + the signal number (130 for SIGINT, 143 for SIGTERM)."""
        return 128 + self.signum


class Aborted(Interrupted):
    """A second signal while the first one is being handled: stop without saving anything more."""


@contextmanager
def stop_on_signals() -> Iterator[Callable[[], None]]:
    """Within this block the first SIGINT / SIGTERM raises ``Interrupted``, a second one ``Aborted``; a third one
    gets the default action. The previous handlers come back when the block ends. ``ray.init`` installs its own
    fatal-signal handler for SIGTERM (it aborts with a stack dump), so the block yields ``arm``: call it again
    once Ray is up."""
    previous = {s: signal.getsignal(s) for s in SIGNALS}

    def second(signum, frame):
        for s in SIGNALS:
            signal.signal(s, signal.SIG_DFL)
        raise Aborted(signum)

    def first(signum, frame):
        for s in SIGNALS:
            signal.signal(s, second)
        raise Interrupted(signum)

    def arm() -> None:
        for s in SIGNALS:
            signal.signal(s, first)

    arm()
    try:
        yield arm
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)
