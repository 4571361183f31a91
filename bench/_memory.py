"""Peak memory of a benchmark: this process and every process it starts (Dask workers)."""

from __future__ import annotations

import threading
import time

import psutil


class PeakMemory:
    """Peak resident memory of this process and all its children, sampled every ``interval`` s."""

    def __init__(self, interval: float = 0.02):
        self.peak, self.interval = 0, interval
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self):
        me = psutil.Process()
        while not self._stop.is_set():
            total = 0
            for proc in [me, *me.children(recursive=True)]:
                try:
                    total += proc.memory_info().rss
                except psutil.Error:
                    pass
            self.peak = max(self.peak, total)
            time.sleep(self.interval)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()
