"""Prefect's temporary API server, started as a command begins instead of at its first flow call.

Without an API (``PREFECT_API_URL`` unset), Prefect 3.8 starts a temporary server at the first
flow call: it imports its server code (~1.8 s) and then waits for the server process (~4 s),
with a core idle on a 2-core machine. :class:`TemporaryApi` starts the same process, with the
same command and environment as Prefect's ``SubprocessASGIServer``, before the command imports
its flow and libraries, so that both start at once (the main job and the 1.1M benchmark reach
their flow ~3 s sooner, docs/benchmarks.md). If it does not answer, Prefect starts its own.

    api = TemporaryApi.start_if_needed()  # before the flow module is imported
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


class TemporaryApi:
    """A temporary API server process, or nothing where Prefect has an API (a server named by
    ``PREFECT_API_URL`` or a profile) or may not start one; stopped when this process exits."""

    def __init__(self, settings=None):
        self.process, self.url = None, None
        if settings is None:
            return
        import prefect

        with socket.socket() as probe:  # a free port (Prefect's own server retries on a taken one too)
            probe.bind(("127.0.0.1", 0))
            port = probe.getsockname()[1]
        self.url, self.timeout = f"http://127.0.0.1:{port}/api", settings.server.ephemeral.startup_timeout_seconds
        environment = {
            **os.environ,
            "PREFECT_UI_ENABLED": "0",
            "PREFECT__SERVER_EPHEMERAL": "1",
            "PREFECT__SERVER_FINAL": "1",
            **settings.to_environment_variables(exclude_unset=True),
        }
        command = ["-m", "uvicorn", "--app-dir", str(prefect.__module_path__.parent)]
        command += ["--factory", "prefect.server.api.server:create_app", "--host", "127.0.0.1", "--port", str(port)]
        command += ["--log-level", "error", "--lifespan", "on"]
        self.process = subprocess.Popen([sys.executable, *command], env=environment)
        atexit.register(self.stop)

    @classmethod
    def start_if_needed(cls) -> TemporaryApi:
        from prefect.settings import get_current_settings

        settings = get_current_settings()
        needed = not settings.api.url and settings.server.ephemeral.enabled
        return cls(settings if needed else None)

    @contextmanager
    def serving(self) -> Iterator[None]:
        """This process's flows use the server once it answers (or Prefect's own, if it never does)."""
        if self.process is None or not self._answers():
            self.stop()
            yield
            return
        from prefect.logging import get_logger
        from prefect.settings import PREFECT_API_URL, temporary_settings

        get_logger().info("Temporary server on %s (started with the command)", self.url.removesuffix("/api"))
        with temporary_settings(updates={PREFECT_API_URL: self.url}):
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
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
