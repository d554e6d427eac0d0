"""``python -m bench [name [args...]]``: run ``bench/<name>.py``'s ``main()``.

Without a name, every benchmark module runs in turn with default arguments.
"""

from __future__ import annotations

import importlib
import pkgutil
import sys

import bench


def _names() -> list[str]:
    return sorted(
        m.name for m in pkgutil.iter_modules(bench.__path__) if not m.name.startswith("_")
    )


def _run(name: str, args: list[str]) -> int:
    module = importlib.import_module(f"bench.{name}")
    sys.argv = [f"bench {name}", *args]  # each benchmark parses sys.argv itself
    return int(module.main() or 0)


def main() -> int:
    args = sys.argv[1:]
    if args and args[0] in ("-h", "--help"):
        print(f"usage: python -m bench [name [args...]]; benchmarks: {', '.join(_names())}")
        return 0
    if args:
        if args[0] not in _names():
            print(f"unknown benchmark {args[0]!r}; known: {', '.join(_names())}", file=sys.stderr)
            return 2
        return _run(args[0], args[1:])
    return max((_run(name, []) for name in _names()), default=0)


if __name__ == "__main__":
    sys.exit(main())
