"""Screening engine for candidate compositions: parse, featurize, score, rank.

Pure computation and IO; nothing here imports Prefect (the flows in ``flows/`` wrap it).
"""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("screening")
except PackageNotFoundError:  # running from a source tree that is not installed
    __version__ = "0.0.0+unknown"
