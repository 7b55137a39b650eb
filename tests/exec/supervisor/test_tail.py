"""``sidecar programs tail NAME``: a program's last lines, then its new ones as written,
from the sidecar's own output or from the program's logfile."""

from __future__ import annotations

import asyncio
import os
import re
import subprocess
import sys
from pathlib import Path

import yaml

from sidecar.exec.supervisor.output import OutputLog, follow_file
from tests._wait import until, wait_until
from tests.sidecar_proc import SidecarProcess, request


def numbers(text: str, word: str) -> list[int]:
    return [int(n) for n in re.findall(rf"^{word} (\d+)$", text, re.MULTILINE)]


def tail(url: str, *args: str, stdout: int | None = None) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, "-m", "sidecar", "programs", "tail", *args,
                             "--url", url], stdout=stdout or subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=dict(os.environ))


def counter(word: str, **more: str) -> dict[str, object]:
    script = f'i=0; while :; do i=$((i+1)); echo "{word} $i"; sleep 0.05; done'
    return {"name": word, "executable-path": "/bin/sh", "executable-args": ["-c", script],
            **more}


def test_tail_prints_the_last_lines_and_follows_until_the_sidecar_stops(
        config_dir: Path, tmp_path: Path, sidecars: list[SidecarProcess]) -> None:
    logfile = tmp_path / "filed.log"
    (config_dir / "supervisor.conf").write_text(yaml.safe_dump({"programs": [
        counter("printed"), counter("filed", **{"logfile-path": str(logfile)})]}))
    proc = SidecarProcess(config_dir, env={"MICROSERVICE_LABEL": "tail"})
    sidecars.append(proc)
    proc.start()
    wait_until(lambda: len(numbers(proc.output(), r"\[printed\] printed")) >= 5, 15,
               "five lines of 'printed' in the sidecar's output")
    wait_until(lambda: len(numbers(logfile.read_text(), "filed")) >= 5, 15,
               "five lines in filed.log")

    for name in ("printed", "filed"):
        done = tail(proc.url, name, "-n", "3", "--no-follow")
        out, err = done.communicate(timeout=30)
        assert done.returncode == 0, err
        shown = numbers(out, name)
        assert len(shown) == 3 and shown == list(range(shown[0], shown[0] + 3)), out
        # The sidecar's own output keeps the [name] prefix; the tail shows the program's words.
        assert "[printed]" not in out

    followers = {name: tail(proc.url, name, "-n", "1") for name in ("printed", "filed")}
    for name, follower in followers.items():
        lines: list[int] = []

        def more(f: subprocess.Popen[str] = follower, seen: list[int] = lines,
                 word: str = name) -> bool:
            assert f.stdout is not None
            seen.extend(numbers(f.stdout.readline(), word))
            return len(seen) >= 6
        wait_until(more, 30, f"six lines followed from {name}")
        assert lines == list(range(lines[0], lines[0] + len(lines))), (name, lines)

    assert proc.stop(timeout=15) == 0
    for name, follower in followers.items():
        follower.communicate(timeout=15)
        assert follower.returncode == 0, name  # the log ended with the sidecar


def test_tail_is_an_admin_route_and_names_unknown_programs(
        config_dir: Path, sidecars: list[SidecarProcess]) -> None:
    (config_dir / "http.conf").write_text("admin-allow: []\nadmin-token: s3cret\n")
    (config_dir / "supervisor.conf").write_text(
        "programs: [{name: idle, executable-path: /bin/sleep, executable-args: ['600']}]\n")
    proc = SidecarProcess(config_dir, env={"MICROSERVICE_LABEL": "tail-admin"})
    sidecars.append(proc)
    proc.start()
    assert request("GET", f"{proc.url}/supervisor/programs/idle/log")[0] == 401
    refused = tail(proc.url, "idle", "--no-follow")
    _, err = refused.communicate(timeout=30)
    assert refused.returncode == 1 and "401" in err and "--token" in err
    unknown = tail(proc.url, "nope", "--token", "s3cret")
    _, err = unknown.communicate(timeout=30)
    assert unknown.returncode == 1
    assert "404 no program named 'nope' (programs: idle)" in err
    bad = request("GET", f"{proc.url}/supervisor/programs/idle/log?lines=many",
                  headers={"Authorization": "Bearer s3cret"})
    assert bad == (400, {"error": "lines: expected a number of lines, got 'many'"})


async def test_output_log_keeps_the_last_lines_and_ends_followers_on_close() -> None:
    log = OutputLog(keep=3)
    for n in range(5):
        log.append(f"line {n}")
    assert log.last(2) == ["line 3", "line 4"]
    assert log.last(10) == ["line 2", "line 3", "line 4"]
    seen: list[str] = []

    async def follow() -> None:
        async for line in log.follow(1):
            seen.append(line)

    task = asyncio.create_task(follow())
    await until(lambda: seen == ["line 4"], 5, "the last line first")
    log.append("line 5")
    await until(lambda: seen == ["line 4", "line 5"], 5, "a new line")
    log.close()
    await asyncio.wait_for(task, 5)  # closing ends the follow


async def test_follow_file_reads_appends_truncation_and_rotation(tmp_path: Path) -> None:
    path = tmp_path / "app.log"
    path.write_text("a\nb\nc\npart")
    closed = asyncio.Event()
    seen: list[str] = []

    async def follow() -> None:
        async for line in follow_file(path, 2, True, closed):
            seen.append(line)

    task = asyncio.create_task(follow())
    await until(lambda: seen == ["b", "c"], 5, "the last two complete lines")
    with path.open("a") as handle:
        handle.write("ial\nd\n")  # the partial line is shown once it is complete
    await until(lambda: seen[2:] == ["partial", "d"], 5, "appended lines")
    path.write_text("e\n")  # truncated and rewritten, as copytruncate does
    await until(lambda: seen[4:] == ["e"], 5, "the truncated file from its start")
    path.rename(tmp_path / "app.log.1")
    path.write_text("f\n")  # rotated: a new file of the same name
    await until(lambda: seen[5:] == ["f"], 5, "the new file")
    closed.set()
    await asyncio.wait_for(task, 5)
