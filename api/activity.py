"""Whether the server is answering someone now: background work waits for a quiet moment.

The tile warm-up at start-up makes hundreds of tiles; run beside a first page
load it would slow the very requests it is meant to speed up (one process, one
interpreter lock). :class:`Activity` counts the requests in flight and when
the last one ended; :meth:`Watch.wait_quiet` holds the background work until
nobody has been waiting for a moment.
"""

from __future__ import annotations

import threading
import time


class Watch:
    """Requests in flight and when the last one ended (updated by :class:`Activity`).

    Examples
    --------
    >>> w = Watch()
    >>> w.quiet(0.0)
    True
    >>> w.begin(); w.quiet(0.0)
    False
    >>> w.end(); w.quiet(0.0)
    True
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.busy = 0
        self.last = 0.0

    def begin(self) -> None:
        """A request has begun."""
        with self._lock:
            self.busy += 1

    def end(self) -> None:
        """A request has ended."""
        with self._lock:
            self.busy -= 1
            self.last = time.monotonic()

    def quiet(self, seconds: float = 0.3) -> bool:
        """No request in flight, and none ended in the last ``seconds``."""
        return self.busy == 0 and time.monotonic() - self.last >= seconds

    def wait_quiet(self, seconds: float = 0.3, stop: threading.Event | None = None) -> bool:
        """Wait until the server has been quiet for ``seconds``; False if ``stop`` came first."""
        while not self.quiet(seconds):
            if stop is not None and stop.is_set():
                return False
            time.sleep(0.05)
        return stop is None or not stop.is_set()


class Activity:
    """Plain ASGI: tells a :class:`Watch` when each HTTP request begins and ends."""

    def __init__(self, app, watch: Watch) -> None:
        self.app = app
        self.watch = watch

    async def __call__(self, scope, receive, send):
        """Pass the request on, counted while it runs."""
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        self.watch.begin()
        try:
            await self.app(scope, receive, send)
        finally:
            self.watch.end()
