"""Run every benchmark under bench/ several times and write BENCHMARKS.md.

    python -m bench                      # every module, 3 runs each -> BENCHMARKS.md
    python -m bench --quick              # smaller and 1 run each (a smoke test of the benches)
    python -m bench walking fleet        # only these; --runs N, --output FILE, --no-report

Each run of a module is a fresh ``python -m bench --one MODULE`` child, so that
no run inherits another's imports, caches or heap. A module is a plain script
with ``main(argv)`` that prints its figures through ``bench._common.report``, and
``figures(argv)`` that returns them as ``Figure`` records; optional module
attributes tune the runner:

``RUN_ARGS``   arguments of a report run (default: none, the module's defaults)
``QUICK_ARGS`` arguments under ``--quick``
``RUNS``       runs for the report when the module repeats inside one run (fleet)
"""

from __future__ import annotations

import argparse
import dataclasses
import importlib
import json
import os
import pkgutil
import shlex
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from types import ModuleType

from bench._common import ROOT, Figure, collect
from bench._report import Outcome, update_report, write_report


def modules(only: list[str]) -> list[str]:
    here = Path(__file__).parent
    found = sorted(m.name for m in pkgutil.iter_modules([str(here)]) if not m.name.startswith("_"))
    unknown = sorted(set(only) - set(found))
    if unknown:
        raise SystemExit(f"no benchmark {', '.join(unknown)} (there are: {', '.join(found)})")
    return [m for m in found if not only or m in only]


def _attr(module: ModuleType, name: str, default: object) -> object:
    return getattr(module, name, default)


def run_one(module: str, argv: list[str], out: Path) -> None:
    """The child: run one module once, write its figures as JSON to ``out``."""
    loaded = importlib.import_module(f"bench.{module}")
    get = getattr(loaded, "figures", None)
    found = get(argv) if get is not None else collect(loaded.main, argv)
    out.write_text(json.dumps([dataclasses.asdict(f) for f in found]))


def run_module(module: str, runs: int, argv: list[str]) -> Outcome:
    outcome = Outcome(module, argv, runs)
    begin = time.monotonic()
    for index in range(runs):
        print(f"== bench.{module} run {index + 1}/{runs}"
              + (f" ({shlex.join(argv)})" if argv else ""), flush=True)
        with tempfile.NamedTemporaryFile(suffix=".json") as out:
            child = subprocess.run(
                [sys.executable, "-m", "bench", "--one", module, "--json", out.name, "--", *argv],
                cwd=ROOT, check=False)
            text = Path(out.name).read_text()
        if child.returncode != 0 or not text:
            outcome.errors.append(f"run {index + 1} exited with {child.returncode}")
            continue
        outcome.runs.append([Figure(**f) for f in json.loads(text)])
        print(flush=True)
    outcome.seconds = time.monotonic() - begin
    return outcome


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("modules", nargs="*", help="benchmark modules (default: all)")
    parser.add_argument("--runs", type=int, default=3, help="runs per module (default 3)")
    parser.add_argument("--quick", action="store_true",
                        help="each module's QUICK_ARGS and one run: checks that benches work")
    parser.add_argument("--output", default=str(ROOT / "BENCHMARKS.md"),
                        help="the report (default BENCHMARKS.md)")
    parser.add_argument("--no-report", action="store_true", help="print only")
    parser.add_argument("--full-report", action="store_true",
                        help="with modules named: write a report of those only (by default "
                             "their figures replace theirs in the existing report)")
    parser.add_argument("--one", help=argparse.SUPPRESS)
    parser.add_argument("--json", help=argparse.SUPPRESS)
    argv = sys.argv[1:]
    extra: list[str] = []
    if "--" in argv:
        argv, extra = argv[:argv.index("--")], argv[argv.index("--") + 1:]
    args = parser.parse_args(argv)
    if args.one:
        run_one(args.one, extra, Path(args.json))
        return

    command = f"`{shlex.join(['python', '-m', 'bench', *sys.argv[1:]])}`"
    if os.environ.get("MAKELEVEL"):  # run by `make bench`: say so, it is what people type
        command = f"`make bench`, which runs {command}"
    begin = time.monotonic()
    outcomes = []
    for name in modules(args.modules):
        module = importlib.import_module(f"bench.{name}")
        if args.quick:
            runs, module_argv = 1, list(_attr(module, "QUICK_ARGS", []))  # type: ignore[call-overload]
        else:
            runs = int(_attr(module, "RUNS", args.runs))  # type: ignore[call-overload]
            module_argv = list(_attr(module, "RUN_ARGS", []))  # type: ignore[call-overload]
        outcomes.append(run_module(name, runs, module_argv))
    took = time.monotonic() - begin
    failed = [o for o in outcomes if o.errors]
    if not args.no_report and args.modules and not args.full_report:
        # Some modules only: their figures replace theirs, the others' stay.
        update_report(Path(args.output), outcomes, command=command, seconds=took,
                      quick=args.quick)
    elif not args.no_report:
        write_report(Path(args.output), outcomes, command=command, seconds=took,
                     quick=args.quick)
        print(f"wrote {args.output} ({took / 60:.1f} min)")
    for outcome in failed:
        print(f"bench.{outcome.module}: {'; '.join(outcome.errors)}", file=sys.stderr)
    if failed:
        raise SystemExit(1)


if __name__ == "__main__":
    main()
