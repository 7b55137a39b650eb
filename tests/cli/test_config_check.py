"""``sidecar config check [DIR]``: every mistake of every file at once, files no plugin
reads as warnings, exit 0/1; ``sidecar run`` warns about the same files."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from sidecar.builder import CONFIG_NAMES, Options, example_config_dir
from sidecar.configcheck import check
from tests.sidecar_proc import SidecarProcess


def sidecar(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    environ = {k: v for k, v in os.environ.items()
               if k not in {"CONFIG_DIR", "HTTP_PORT"} and not k.endswith("_CONFIG")}
    return subprocess.run([sys.executable, "-m", "sidecar", *args], capture_output=True,
                          text=True, timeout=60, check=False, env={**environ, **(env or {})})


def write(directory: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        (directory / name).write_text(text)
    return directory


def test_every_error_of_every_file_is_printed_at_once(config_dir: Path) -> None:
    write(config_dir, {
        "http.conf": "admin-alow: [127.0.0.0/8]\nmax-body-size: big\n",
        "statuscheck.conf": "probe-interval: often\n",
        "etcd.conf": "endpoints: [1\n",
        "supervisor.conf": "programs:\n  - executable-path: /bin/true\n    restars: 3\n",
        "logs.conf": "default-level: info\n",
    })
    done = sidecar("config", "check", str(config_dir))
    assert done.returncode == 1
    errors = [line for line in done.stderr.splitlines() if line.startswith("error: ")]
    # Each unknown key lists the valid ones (checked here once; the list grows with releases).
    assert "valid keys are: admin-allow, admin-token, admin-token-file, endpoint," in errors[0]
    http, status, etcd, supervisor = (str(config_dir / n) for n in (
        "http.conf", "statuscheck.conf", "etcd.conf", "supervisor.conf"))
    assert [line.split("; valid keys are: ")[0] for line in errors] == [
        f"error: {http}: admin-alow: unknown key (did you mean 'admin-allow'?)",
        f"error: {http}: max-body-size: expected an integer, got 'big' (str)",
        f"error: {status}: probe-interval: expected a duration such as 500ms, 5s, 15m or "
        "1h30m, got 'often'",
        f"error: {etcd}: invalid YAML: line 1, column 12: a list opened with '[' here is not "
        "closed with ']' (or two of its items lack a ',' between them) (YAML: expected ',' or "
        "']', but got '<stream end>')",
        f"error: {supervisor}: programs[0].restars: unknown key (did you mean 'restarts'?)",
    ]
    rows = {line.split()[0]: line.split()[1:] for line in done.stdout.splitlines()[1:]}
    assert rows["http.conf"][:2] == ["2", "errors"]
    assert rows["logs.conf"][0] == "ok"
    assert rows["kafka.conf"][:2] == ["no", "file"]
    assert set(rows) == {f"{name}.conf" for name in CONFIG_NAMES}
    assert done.stderr.splitlines()[-1] == (
        f"config check failed: 5 files checked in {config_dir}, 5 errors, 0 warnings")


def test_files_no_plugin_reads_are_warnings_with_the_name_meant(config_dir: Path) -> None:
    write(config_dir, {"etdc.conf": "endpoints: [a:1]\n", "logs.yaml": "default-level: x\n",
                       "README.md": "notes\n", ".hidden": ""})
    (config_dir / "..data").mkdir()  # what a mounted ConfigMap has beside its files
    done = sidecar("config", "check", str(config_dir))
    assert done.returncode == 0, done.stderr  # warnings alone do not fail the check
    warnings = [line for line in done.stderr.splitlines() if line.startswith("warning: ")]
    assert warnings == [
        f"warning: {config_dir / 'README.md'}: no plugin reads this file",
        f"warning: {config_dir / 'etdc.conf'}: no plugin reads this file "
        "(did you mean etcd.conf?)",
        f"warning: {config_dir / 'logs.yaml'}: no plugin reads this file "
        "(did you mean logs.conf?)",
    ]
    assert done.stdout.splitlines()[-1] == (
        f"config ok: 0 files checked in {config_dir}, 0 errors, 3 warnings")


def test_what_only_the_files_env_and_flags_get_wrong_together(config_dir: Path,
                                                                tmp_path: Path) -> None:
    write(config_dir, {"fleet.conf": "enabled: true\n"})
    done = sidecar("config", "check", env={"CONFIG_DIR": str(config_dir), "HTTP_PORT": "70000"})
    assert done.returncode == 1
    # Found only once the files are fine on their own: the port first, as run reports it.
    assert "error: HTTP_PORT: invalid port '70000'" in done.stderr
    done = sidecar("config", "check", env={"CONFIG_DIR": str(config_dir)})
    assert "error: fleet.conf: the fleet view reads agent statuses from etcd" in done.stderr
    assert any(line.split()[:3] == ["fleet.conf", "1", "error"]
               for line in done.stdout.splitlines())
    # A file named by a variable or a flag is checked (and must exist), as run reads it.
    named = write(tmp_path, {"mine.conf": "probe-intervall: 5s\n"}) / "mine.conf"
    done = sidecar("config", "check", str(config_dir), "--statuscheck-config", str(named))
    assert f"error: {named}: probe-intervall: unknown key (did you mean 'probe-interval'?)" \
        in done.stderr
    done = sidecar("config", "check", env={"ETCD_CONFIG": str(tmp_path / "nope.conf")})
    assert done.returncode == 1
    assert f"error: {tmp_path / 'nope.conf'}: no such file" in done.stderr


def test_the_repository_examples_pass_and_json_output(tmp_path: Path) -> None:
    done = sidecar("config", "check", str(example_config_dir()), "-o", "json")
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert report["ok"] is True and report["errors"] == [] and report["warnings"] == []
    shown = {f["file"]: f["status"] for f in report["files"]}
    assert shown["http.conf"] == "ok" and shown["etcd.conf"] == "no file"
    missing = sidecar("config", "check", str(tmp_path / "nowhere"))
    assert missing.returncode == 1
    assert f"error: config dir {tmp_path / 'nowhere'}: no such directory" in missing.stderr


def test_check_in_process_reports_the_same(config_dir: Path) -> None:
    write(config_dir, {"metrics.conf": "path: metrics\nenabeld: false\n"})
    report = check(Options(config_dir=str(config_dir), env={}))
    assert not report.ok
    assert report.errors == [
        f"{config_dir / 'metrics.conf'}: enabeld: unknown key (did you mean 'enabled'?); "
        "valid keys are: default-registry, enabled, http-requests, path"]
    write(config_dir, {"metrics.conf": "path: metrics\n"})
    report = check(Options(config_dir=str(config_dir), env={}))
    assert report.errors == [f"{config_dir / 'metrics.conf'}: path must start with '/', "
                             "got 'metrics'"]


@pytest.mark.parametrize("name", ["etdc.conf", "statuscheck.yml"])
def test_sidecar_run_warns_about_the_same_files(config_dir: Path, name: str,
                                                sidecars: list[SidecarProcess]) -> None:
    write(config_dir, {name: "{}\n"})
    proc = SidecarProcess(config_dir, env={"MICROSERVICE_LABEL": "warned"})
    sidecars.append(proc)
    proc.start()
    meant = {"etdc.conf": "etcd.conf", "statuscheck.yml": "statuscheck.conf"}[name]
    assert (f"{config_dir / name}: no plugin reads this file (did you mean {meant}?)"
            in proc.output())
    assert proc.stop(timeout=10) == 0


def test_a_plugin_statuscheck_conf_misnames_is_an_error_with_a_did_you_mean(
        config_dir: Path) -> None:
    write(config_dir, {"statuscheck.conf": "readiness:\n  include: [etdc, 'program:*']\n"})
    report = check(Options(config_dir=str(config_dir), env={}))
    status = str(config_dir / "statuscheck.conf")
    assert report.errors == [f"{status}: readiness.include[0]: no plugin 'etdc' (did you mean "
                             "'etcd'?); the plugins are: etcd, fleet, k8s, kafka, "
                             "process-manager, supervisor, program:<name>, process:<name>, or a "
                             "pattern such as 'program:*'"]
    (row,) = [r for r in report.files if r.file.name == "statuscheck"]
    assert row.status == "error"
