"""BENCHMARKS.md: every figure (median, min, max over runs), the machine, the command."""

from __future__ import annotations

import importlib
import os
import platform
import re
import shutil
import statistics
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from bench._common import ROOT, Figure, format_value


@dataclass
class Outcome:
    """All runs of one benchmark module."""

    module: str
    argv: list[str]
    planned_runs: int
    runs: list[list[Figure]] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    seconds: float = 0.0


@dataclass(frozen=True)
class Row:
    module: str
    figure: Figure  # the first run's record: name, unit, target, direction
    values: list[float]

    @property
    def median(self) -> float:
        return statistics.median(self.values)


def rows(outcome: Outcome) -> list[Row]:
    """Figures by name, in the order they were first reported; a module that reports a
    name several times in one run (fleet's measurement windows) gives several values."""
    values: dict[str, list[float]] = {}
    first: dict[str, Figure] = {}
    for run in outcome.runs:
        for figure in run:
            first.setdefault(figure.name, figure)
            values.setdefault(figure.name, []).append(figure.value)
    return [Row(outcome.module, first[name], values[name]) for name in first]


def _read(path: str) -> str:
    try:
        return Path(path).read_text()
    except OSError:
        return ""


def _run(*cmd: str) -> str:
    if shutil.which(cmd[0]) is None and not Path(cmd[0]).exists():
        return ""
    try:
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=30, check=False)
    except (OSError, subprocess.SubprocessError):
        return ""
    return (done.stdout or done.stderr).strip()


def machine() -> list[tuple[str, str]]:
    cpuinfo = _read("/proc/cpuinfo")
    model = re.search(r"^model name\s*:\s*(.+)$", cpuinfo, re.M)
    mem = re.search(r"^MemTotal:\s*(\d+) kB", _read("/proc/meminfo"), re.M)
    os_release = re.search(r'^PRETTY_NAME="?([^"\n]+)', _read("/etc/os-release"), re.M)
    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    info = [
        ("CPU", model.group(1).strip() if model else platform.processor() or "unknown"),
        ("cores", f"{usable} usable of {os.cpu_count()}"),
        ("memory", f"{int(mem.group(1)) / 2**20:.1f} GiB" if mem else "unknown"),
        ("kernel", f"{platform.system()} {platform.release()}"),
        ("OS", os_release.group(1) if os_release else "unknown"),
        ("Python", f"{platform.python_implementation()} {platform.python_version()}"),
    ]
    etcd = Path(sys.executable).parent / "etcd"
    etcd_version = _run(str(etcd), "--version").splitlines()
    if etcd_version:
        info.append(("etcd", etcd_version[0].removeprefix("etcd Version: ")))
    java = _run("java", "-version").splitlines()
    if java:
        info.append(("Java", java[0]))
    try:
        from tests.servers.kafka import find_kafka_libs

        info.append(("Kafka", find_kafka_libs().parent.name.removeprefix("kafka-")))
    except (ImportError, FileNotFoundError):
        pass
    wrk = _run("wrk", "--version").splitlines()
    if wrk:
        info.append(("wrk", wrk[0].split(" [")[0]))
    return info


def _commit() -> str:
    head = _run("git", "-C", str(ROOT), "rev-parse", "--short", "HEAD")
    dirty = _run("git", "-C", str(ROOT), "status", "--porcelain", "--untracked-files=no")
    return f"{head}{' (with uncommitted changes)' if dirty else ''}" if head else "unknown"


def _met(row: Row) -> str:
    verdict = row.figure.meets(row.median)
    return "" if verdict is None else ("yes" if verdict else "**no**")


def _how_measured(module: str) -> str:
    try:
        doc = importlib.import_module(f"bench.{module}").__doc__ or ""
    except ImportError:
        return ""
    # The docstring up to the usage line: what is measured and how.
    text = doc.split("\n    python -m", 1)[0].strip()
    return " ".join(text.split())


def write_report(path: Path, outcomes: list[Outcome], *, command: str, seconds: float,
                 quick: bool) -> None:
    load = os.getloadavg()
    now = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    lines = [
        "# Benchmarks",
        "",
        "Written by `make bench` (`python -m bench`, [bench/](bench/)); do not edit by hand.",
        "Each figure is the **median of the runs** of its benchmark, each run a fresh "
        "process measuring the same way every time; *min* and *max* are the extremes over "
        "the runs. *Target* is the bound the figure is held to (from the issue that "
        "introduced it); *met* compares the median with it.",
        "",
        f"- command: {command}" + (" (quick: smaller runs, not for comparison)" if quick
                                   else ""),
        f"- run on {now} at commit {_commit()}, took {seconds / 60:.1f} min",
        f"- load average when the report was written: {load[0]:.2f} / {load[1]:.2f} / "
        f"{load[2]:.2f} (1/5/15 min; the machine may be shared)",
        "",
        "## Machine",
        "",
        "| | |",
        "|---|---|",
        *(f"| {key} | {value} |" for key, value in machine()),
        "",
        "## Figures",
        "",
        "| area | figure | median | min | max | unit | target | met | runs |",
        "|---|---|--:|--:|--:|---|---|---|--:|",
    ]
    for outcome in outcomes:
        for row in rows(outcome):
            direction = "↑" if row.figure.higher_is_better else "↓"
            lines.append(
                f"| {row.module} | {row.figure.name.replace('|', '/')} {direction} "
                f"| {format_value(row.median)} | {format_value(min(row.values))} "
                f"| {format_value(max(row.values))} | {row.figure.unit} "
                f"| {row.figure.target_text} | {_met(row)} | {len(row.values)} |")
        if outcome.errors:
            lines.append(f"| {outcome.module} | **failed**: {'; '.join(outcome.errors)} "
                         "| | | | | | | |")
    lines += ["", "↑ higher is better, ↓ lower is better.", ""]

    sections = [section for outcome in outcomes if (section := _section(outcome))]
    lines += [*(f"{s}\n" for s in sections)]

    lines += ["## How each area is measured", ""]
    for outcome in outcomes:
        args = f" with `{' '.join(outcome.argv)}`" if outcome.argv else ""
        lines.append(f"- **{outcome.module}** ([bench/{outcome.module}.py]"
                     f"(bench/{outcome.module}.py), {len(outcome.runs)} run(s){args}, "
                     f"{outcome.seconds / 60:.1f} min): {_how_measured(outcome.module)}")
    lines.append("")
    path.write_text("\n".join(lines))


def _section(outcome: Outcome) -> str:
    """The module's own section (its ``report_section``), empty when it has none."""
    extra: Callable[[dict[str, float]], str] | None = getattr(
        importlib.import_module(f"bench.{outcome.module}"), "report_section", None)
    medians = {row.figure.name: row.median for row in rows(outcome)}
    return extra(medians).strip() if extra is not None and medians else ""


def _replace_section(out: list[str], section: str) -> None:
    """Put ``section`` where the section of the same heading is (up to the next ``## ``),
    else before "How each area is measured"."""
    if not section:
        return
    lines = [*section.split("\n"), ""]
    heading = lines[0]
    if heading in out:
        begin = out.index(heading)
        end = next((i for i in range(begin + 1, len(out)) if out[i].startswith("## ")),
                   len(out))
        out[begin:end] = lines
        return
    how = next((i for i, line in enumerate(out) if line.startswith("## How each")), len(out))
    out[how:how] = lines


def _figure_lines(outcome: Outcome) -> list[str]:
    lines = []
    for row in rows(outcome):
        direction = "↑" if row.figure.higher_is_better else "↓"
        lines.append(
            f"| {row.module} | {row.figure.name.replace('|', '/')} {direction} "
            f"| {format_value(row.median)} | {format_value(min(row.values))} "
            f"| {format_value(max(row.values))} | {row.figure.unit} "
            f"| {row.figure.target_text} | {_met(row)} | {len(row.values)} |")
    if outcome.errors:
        lines.append(f"| {outcome.module} | **failed**: {'; '.join(outcome.errors)} "
                     "| | | | | | | |")
    return lines


def _how_line(outcome: Outcome) -> str:
    args = f" with `{' '.join(outcome.argv)}`" if outcome.argv else ""
    return (f"- **{outcome.module}** ([bench/{outcome.module}.py](bench/{outcome.module}.py), "
            f"{len(outcome.runs)} run(s){args}, {outcome.seconds / 60:.1f} min): "
            f"{_how_measured(outcome.module)}")


_ROW = re.compile(r"^\| ([\w.-]+) \|")
_HOW = re.compile(r"^- \*\*([\w.-]+)\*\* ")
_RERUN = re.compile(r"^- re-run alone: \*\*([\w.-]+)\*\* ")


def update_report(path: Path, outcomes: list[Outcome], *, command: str, seconds: float,
                  quick: bool) -> None:
    """Replace only ``outcomes``' figures, descriptions and sections in the report at
    ``path`` (the others' stay as their last full run left them), saying when and how
    they were re-run; a new report when there is none."""
    try:
        old = path.read_text().split("\n")
    except OSError:
        write_report(path, outcomes, command=command, seconds=seconds, quick=quick)
        return
    rerun = {o.module for o in outcomes}
    load = os.getloadavg()
    now = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    notes = {o.module: (f"- re-run alone: **{o.module}** on {now} at commit {_commit()} with "
                        f"{command}{' (quick)' if quick else ''}, load average "
                        f"{load[0]:.2f} / {load[1]:.2f} / {load[2]:.2f}") for o in outcomes}
    figures: dict[str, list[str]] = {}
    hows: dict[str, str] = {}
    out: list[str] = []
    table_at = how_at = notes_at = -1
    section = ""
    for line in old:
        if line.startswith("## "):
            section = line
        if (match := _RERUN.match(line)) is not None:
            notes.setdefault(match.group(1), line)
            notes_at = len(out) if notes_at < 0 else notes_at
            continue
        if line.startswith("- load average") and notes_at < 0:
            out.append(line)
            notes_at = len(out)
            continue
        if section == "## Figures" and (match := _ROW.match(line)) is not None \
                and match.group(1) != "area":
            figures.setdefault(match.group(1), []).append(line)
            table_at = len(out) if table_at < 0 else table_at
            continue
        if section.startswith("## How each") and (match := _HOW.match(line)) is not None:
            hows[match.group(1)] = line
            how_at = len(out) if how_at < 0 else how_at
            continue
        out.append(line)
    for outcome in outcomes:
        figures[outcome.module] = _figure_lines(outcome)
        hows[outcome.module] = _how_line(outcome)
    # Insert from the bottom up, so that the earlier positions stay right.
    inserts = sorted([(how_at, [hows[m] for m in sorted(hows)]),
                      (table_at, [line for m in sorted(figures) for line in figures[m]]),
                      (notes_at, [notes[m] for m in sorted(notes)])],
                     key=lambda item: item[0], reverse=True)
    for at, lines in inserts:
        if at >= 0:
            out[at:at] = lines
    for outcome in outcomes:
        _replace_section(out, _section(outcome))
    path.write_text("\n".join(out))
    print(f"updated {', '.join(sorted(rerun))} in {path}")
