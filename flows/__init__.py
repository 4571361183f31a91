"""Prefect flows: thin orchestration over the ``screening`` library."""

import os

# The embedded (ephemeral) API takes 12-14 s to start on a fresh PREFECT_HOME on 2 cores, close
# to Prefect's 20 s default limit when the machine is busy; give it room (a user's own setting wins).
os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "120")
# Prefect's server analytics write to its SQLite database beside the flow's own writes and print
# "database is locked" tracebacks on a busy machine; the project's entry points turn them off
# (a user's own setting wins).
os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
