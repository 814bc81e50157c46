"""digest: a self-hosted newsletter and digest publisher."""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version

try:
    # The distribution's name (pyproject.toml), not the import package's.
    __version__ = version("digest-publisher")
except PackageNotFoundError:  # running from a source tree without installing
    __version__ = "0.0.0"
