"""Errors that cross layers."""

from __future__ import annotations


class FatalError(Exception):
    """An error that must stop the bot with one line and exit code 3 (bad or revoked
    credentials): never retried, never turned into a user notice."""
