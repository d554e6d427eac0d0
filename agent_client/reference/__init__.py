"""Reference agent: the server side of the agent protocol (tests, demo, benchmarks).

See ``_server.py`` for the behaviour grammar.
"""

from ._cli import build_parser, cli_main, main
from ._server import BEHAVIOURS, ReferenceAgent, parse_behaviour, serve_reference_agent

__all__ = [
    "BEHAVIOURS",
    "ReferenceAgent",
    "build_parser",
    "cli_main",
    "main",
    "parse_behaviour",
    "serve_reference_agent",
]
