"""Build information shown in status: version, build date and commit hash.

Images get them from ``SIDECAR_BUILD_DATE`` and ``SIDECAR_COMMIT_HASH`` (set by
the Dockerfile's build arguments); a source checkout reads its git HEAD.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import cache
from pathlib import Path

from ._version import __version__


@dataclass(frozen=True)
class BuildInfo:
    version: str
    date: str
    commit_hash: str


def _git_head(start: Path) -> str | None:
    """The commit of a source checkout, read from .git without running git."""
    for directory in (start, *start.parents):
        git = directory / ".git"
        if not git.is_dir():
            continue
        try:
            head = (git / "HEAD").read_text().strip()
            if head.startswith("ref: "):
                ref = head[5:]
                ref_file = git / ref
                if ref_file.exists():
                    return ref_file.read_text().strip()
                packed = git / "packed-refs"
                if packed.exists():
                    for line in packed.read_text().splitlines():
                        if line.endswith(" " + ref):
                            return line.split(" ", 1)[0]
                return None
        except OSError:
            return None
        return head
    return None


@cache
def current() -> BuildInfo:
    commit = os.environ.get("SIDECAR_COMMIT_HASH") or _git_head(Path(__file__).resolve().parent)
    date = os.environ.get("SIDECAR_BUILD_DATE")
    if not date:
        stamp = Path(__file__).stat().st_mtime
        date = datetime.fromtimestamp(stamp, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    return BuildInfo(version=__version__, date=date, commit_hash=(commit or "unknown")[:7])
