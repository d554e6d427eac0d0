"""Surfaces: a Matrix bot that gives every user a private workspace with their own AI agent.

``__version__`` is the one place the version is written: ``pyproject.toml`` reads it
(``[tool.setuptools.dynamic]``), and ``surfaces --version``, ``surfaces doctor``, the
``bot_started`` log line and the ``surfaces_build_info`` metric report it.
"""

import platform

__version__ = "0.1.0"

__all__ = ["__version__", "version_fields", "version_text"]


def version_fields() -> dict[str, str]:
    """The version as log fields: ``log.info("bot_started", ..., **version_fields())``."""
    return {"version": __version__, "python": platform.python_version()}


def version_text() -> str:
    """One line for people: ``surfaces 0.1.0 (Python 3.11.7)``."""
    return f"surfaces {__version__} (Python {platform.python_version()})"
