"""Stopping a run cleanly on Ctrl-C (SIGINT) or SIGTERM: the trainer finishes its step, writes last.pt
and raises TrainingInterrupted (collab_lib.errors)."""
import signal
import threading


class StopOnSignal:
    """While active, SIGINT/SIGTERM only set `.signum`; the loop then writes a checkpoint and stops.

    A second signal acts as usual (the previous handlers are back after the
    first), so pressing Ctrl-C twice still stops at once. Outside the main
    thread signal handlers cannot be installed; then this does nothing."""

    def __enter__(self):
        self.signum = None
        self.previous = {}
        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGINT, signal.SIGTERM):
                self.previous[sig] = signal.signal(sig, self._handle)
        return self

    def _handle(self, signum, frame):
        self.signum = signum
        self._restore()

    def _restore(self):
        for sig, handler in self.previous.items():
            signal.signal(sig, handler)
        self.previous = {}

    def __exit__(self, *exc):
        self._restore()
        return False
