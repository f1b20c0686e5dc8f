"""The one thread that changes a panel's widgets and bokeh models.

Training and sampling threads only produce events (the monitor's stream, a few plain
attributes of the panel); the updater turns them into widget and bokeh changes, a few
times a second and whenever it is woken. Changes that arrive from the browser (typing,
clicks, jupyter_bokeh's echoes of plot state) are applied under the same lock, so two
threads never change one widget or one bokeh document at once. Hand-written because
neither ipywidgets nor jupyter_bokeh serialises updates made from several threads.
"""

from __future__ import annotations

import logging
import threading

from jupyter_bokeh import BokehModel

logger = logging.getLogger(__name__)

#: The updater thread's name, by which tests (and a debugger) tell it from the others.
THREAD_NAME = "enb-ui"


class Updater:
    """Apply every widget and bokeh change of one panel, from one thread.

    State
    -----
    lock : threading.RLock
        Held while the updater renders, and while a browser message to a guarded widget is
        applied (see :meth:`guard`).
    renderers : list of callables
        Called with no arguments on every tick, in order; each reads plain state (the
        monitor's events, the panel's attributes) and sets the widgets that differ.
    period : float
        Seconds between ticks when nothing wakes the updater.
    requested, completed : int
        Tick counters: :meth:`flush` asks for tick ``requested`` and waits until
        ``completed`` reaches it.

    Methods a user of it calls
    --------------------------
    wake()
        Render now instead of at the next period (after changing plain state).
    flush(timeout)
        Block until everything changed so far is on the widgets.
    stop(timeout, final=None)
        Render a last time, run ``final`` in the updater's thread, and end the thread.
    """

    def __init__(self, period=0.2):
        self.period = period
        self.lock = threading.RLock()
        self.renderers = []
        self.requested = self.completed = 0
        self._changed = threading.Condition()
        self._stopping = False
        self._final = None
        self._holding = threading.local()  # depth of guard() holds in this thread
        self._thread = threading.Thread(target=self._loop, name=THREAD_NAME, daemon=True)

    def start(self):
        if not self._thread.is_alive() and not self._stopping:
            self._thread.start()
        return self

    @property
    def running(self) -> bool:
        return self._thread.is_alive()

    # ------------------------------------------------------------------ the loop
    def _loop(self):
        while True:
            with self._changed:
                if self.requested == self.completed and not self._stopping:
                    self._changed.wait(self.period)
                asked, stopping = self.requested, self._stopping
            self._tick()
            if stopping and self._final is not None:
                self._run(self._final)
            with self._changed:
                self.completed = max(self.completed, asked)
                self._changed.notify_all()
            if stopping:
                return

    def _tick(self):
        with self.lock:
            for render in list(self.renderers):
                self._run(render)

    @staticmethod
    def _run(render):
        try:
            render()
        except Exception:  # a broken renderer must not end the panel's updates
            logger.exception("panel renderer %r failed", render)

    # ------------------------------------------------------------------ callers
    def wake(self):
        with self._changed:
            self.requested += 1
            self._changed.notify_all()

    def flush(self, timeout=10.0) -> bool:
        """Block until a tick that started after this call has finished.

        Returns at once (False) where waiting would deadlock: in the updater's own thread,
        or in a thread applying a browser message under :attr:`lock`; the changes are then
        rendered as soon as that message has been handled.
        """
        if threading.current_thread() is self._thread or getattr(self._holding, "depth", 0):
            self.wake()
            return False
        if not self._thread.is_alive():
            return False
        with self._changed:
            self.requested += 1
            wanted = self.requested
            self._changed.notify_all()
            return self._changed.wait_for(lambda: self.completed >= wanted, timeout)

    def stop(self, timeout=10.0, final=None):
        """Render once more, run ``final()`` in the updater's thread, and end it."""
        with self._changed:
            self._final, self._stopping = final, True
            self._changed.notify_all()
        if self._thread.is_alive() and threading.current_thread() is not self._thread:
            self._thread.join(timeout)
        elif not self._thread.is_alive() and final is not None:  # never started
            self._run(final)

    # ------------------------------------------------------------------ browser
    def guard(self, widget):
        """Apply the browser's messages to ``widget`` under :attr:`lock`.

        ipywidgets calls ``widget._handle_msg`` for every message from the browser (state
        updates, clicks, jupyter_bokeh's plot events). State, and every message to a bokeh
        view, is applied under the lock; a click handler runs without it, so a long action (a
        launch) does not hold up the rendering of its own progress messages.
        """
        handle = widget._handle_msg
        plot = isinstance(widget, BokehModel)

        def guarded(msg):
            if not plot and msg.get("content", {}).get("data", {}).get("method") == "custom":
                return handle(msg)  # a click: the action changes plain state and wakes us
            self._holding.depth = getattr(self._holding, "depth", 0) + 1
            try:
                with self.lock:
                    return handle(msg)
            finally:
                self._holding.depth -= 1

        widget.comm.on_msg(guarded)
        return widget
