"""An in-process tile cache keyed by the store's generation.

Every write advances the store's generation (a counter in the GeoPackage, a
sequence in PostGIS), so a tile cached before a write is never served after
it: the key changes and the old entry ages out.
"""

from __future__ import annotations

import threading
from collections import OrderedDict


class TileCache:
    """A thread-safe least-recently-used map of keys to MVT bytes (or analysis results).

    Examples
    --------
    >>> cache = TileCache(2)
    >>> cache.put((1, "area", 0, 0, 0), b"a"); cache.put((1, "area", 1, 0, 0), b"b")
    >>> cache.get((1, "area", 0, 0, 0))
    b'a'
    >>> cache.put((1, "unit", 0, 0, 0), b"c")  # evicts the least recently used
    >>> cache.get((1, "area", 1, 0, 0)) is None, len(cache)
    (True, 2)
    """

    def __init__(self, items: int = 4096) -> None:
        self.items = items
        self._data: OrderedDict[tuple, bytes] = OrderedDict()
        self._lock = threading.Lock()
        self.hits = self.misses = 0

    def get(self, key: tuple) -> bytes | None:
        """The cached tile, or None."""
        with self._lock:
            data = self._data.get(key)
            if data is None:
                self.misses += 1
                return None
            self._data.move_to_end(key)
            self.hits += 1
            return data

    def put(self, key: tuple, data: bytes) -> None:
        """Keep a tile, evicting the least recently used beyond ``items``."""
        with self._lock:
            self._data[key] = data
            self._data.move_to_end(key)
            while len(self._data) > self.items:
                self._data.popitem(last=False)

    def __len__(self) -> int:
        return len(self._data)
