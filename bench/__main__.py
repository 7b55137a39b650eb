"""Run every benchmark module under bench/ (each has a ``main()``)."""

from __future__ import annotations

import importlib
import pkgutil
import sys
from pathlib import Path


def main() -> None:
    only = sys.argv[1:]
    here = Path(__file__).parent
    for module in sorted(m.name for m in pkgutil.iter_modules([str(here)])):
        if module.startswith("_") or (only and module not in only):
            continue
        importlib.import_module(f"bench.{module}").main([])
        print()


if __name__ == "__main__":
    main()
