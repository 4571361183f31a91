"""Prefect's temporary API server, started as a command begins instead of at its first flow call.

Without an API (``PREFECT_API_URL`` unset), Prefect 3.8 starts a temporary server at the first
flow call: it imports its server code (~1.8 s) and then waits for the server process (~4 s),
with a core idle on a 2-core machine. :class:`TemporaryApi` starts the same process, with the
same command as Prefect's ``SubprocessASGIServer``, before the command imports Prefect, its
flow and libraries, so that they start at once (the main job and the 1.1M benchmark reach their
flow ~4 s sooner, docs/benchmarks.md); it is stopped at once if Prefect's settings, read next,
name an API or forbid a temporary server. If it does not answer, Prefect starts its own.

    api = TemporaryApi.start_if_needed()  # before Prefect and the flow module are imported
    from flows.screen_candidates import screen_candidates
    with api.serving():
        screen_candidates(...)
"""

from __future__ import annotations

import atexit
import os
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


class TemporaryApi:
    """A temporary API server process, or nothing where Prefect has an API (a server named by
    ``PREFECT_API_URL`` or a profile) or may not start one; stopped when this process exits."""

    def __init__(self, spawn: bool = True):
        self.process, self.url, self.timeout = None, None, 0.0
        if not spawn:
            return
        with socket.socket() as probe:  # a free port (Prefect's own server retries on a taken one too)
            probe.bind(("127.0.0.1", 0))
            port = probe.getsockname()[1]
        self.url = f"http://127.0.0.1:{port}/api"
        # the server reads the same environment, profile and settings files as this process
        environment = {
            **os.environ,
            "PREFECT_UI_ENABLED": "0",
            "PREFECT__SERVER_EPHEMERAL": "1",
            "PREFECT__SERVER_FINAL": "1",
        }
        command = ["-m", "uvicorn", "--app-dir", _prefect_parent()]
        command += ["--factory", "prefect.server.api.server:create_app", "--host", "127.0.0.1", "--port", str(port)]
        command += ["--log-level", "error", "--lifespan", "on"]
        self.process = subprocess.Popen([sys.executable, *command], env=environment)
        atexit.register(self.stop)

    @classmethod
    def start_if_needed(cls) -> TemporaryApi:
        """Spawns the server before importing Prefect (~0.8 s, its settings need it) unless the
        environment names an API; then keeps it only if Prefect's settings would start one."""
        api = cls(spawn=not os.environ.get("PREFECT_API_URL"))
        from prefect.settings import get_current_settings

        settings = get_current_settings()
        if settings.api.url or not settings.server.ephemeral.enabled:  # a profile's server, or none allowed
            api.stop()
            return cls(spawn=False)
        api.timeout = settings.server.ephemeral.startup_timeout_seconds
        return api

    @contextmanager
    def serving(self) -> Iterator[None]:
        """This process's flows use the server once it answers (or Prefect's own, if it never
        does), without flow-run heartbeats: they tell a server that a run has not crashed, and this
        one ends with the command (a heartbeat thread sleeps in 1 s steps, and a flow's end waits
        for the step in progress, 0.5 s on average)."""
        if self.process is None or not self._answers():
            self.stop()
            yield
            return
        from prefect import settings
        from prefect.logging import get_logger

        get_logger().info("Temporary server on %s (started with the command)", self.url.removesuffix("/api"))
        updates = {settings.PREFECT_API_URL: self.url, settings.PREFECT_FLOWS_HEARTBEAT_FREQUENCY: None}
        with settings.temporary_settings(updates=updates):
            yield

    def _answers(self) -> bool:
        deadline = time.monotonic() + self.timeout
        while time.monotonic() < deadline and self.process.poll() is None:
            try:
                with urllib.request.urlopen(f"{self.url}/health", timeout=1) as response:
                    if response.status == 200:
                        return True
            except OSError:
                pass
            time.sleep(0.05)
        return False

    def stop(self) -> None:
        """Ends the server (at once: nothing else uses it)."""
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()


def _prefect_parent() -> str:
    """The folder that holds the ``prefect`` package, found without importing it."""
    import importlib.util

    spec = importlib.util.find_spec("prefect")
    return str(Path(spec.origin).parent.parent)
