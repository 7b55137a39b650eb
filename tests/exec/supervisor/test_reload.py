"""Hot reload of supervisor.conf through the kubelet's atomic symlink swap."""

from __future__ import annotations

from pathlib import Path

from sidecar.exec.supervisor import Supervisor
from tests._wait import until, wait_until
from tests.exec.supervisor.helpers import ConfigMapVolume, alive
from tests.sidecar_proc import SidecarProcess


def _conf(*programs: str, extra: str = "watch-interval: 100ms\n") -> str:
    lines = ["programs:"]
    for spec in programs:
        name, _, seconds = spec.partition(":")
        lines.append(f"  - {{name: {name}, executable-path: /bin/sleep, "
                     f"executable-args: ['{seconds or 600}']}}")
    return "\n".join(lines) + "\n" + extra


def _pids(sidecar: SidecarProcess) -> dict[str, int | None]:
    status, rows = sidecar.get("/supervisor/programs")
    assert status == 200
    return {row["name"]: row["pid"] for row in rows}


def _all_running(sidecar: SidecarProcess) -> dict[str, int] | None:
    """The pids once there are programs and every one of them has a pid."""
    pids = _pids(sidecar)
    running = {name: pid for name, pid in pids.items() if pid}
    return running if running and len(running) == len(pids) else None


def test_a_configmap_swap_applies_the_diff_and_a_broken_one_changes_nothing(
        config_dir: Path, tmp_path: Path, sidecars: list[SidecarProcess]) -> None:
    volume = ConfigMapVolume(tmp_path / "programs")
    volume.write({"supervisor.conf": _conf("a", "b", "c")})
    sidecar = SidecarProcess(config_dir, env={"SUPERVISOR_CONFIG": str(volume.path())})
    sidecars.append(sidecar)
    sidecar.start()
    v1 = wait_until(lambda: _all_running(sidecar), 10, "v1 running")
    assert isinstance(v1, dict) and set(v1) == {"a", "b", "c"}

    # a unchanged, b changed, c removed, d new.
    volume.write({"supervisor.conf": _conf("a", "b:601", "d")})
    v2 = wait_until(lambda: (p := _pids(sidecar)) and p.get("d") and "c" not in p and p, 10,
                    "v2 applied")
    assert isinstance(v2, dict)
    assert v2["a"] == v1["a"] and v2["b"] not in (None, v1["b"])
    assert not alive(v1["c"]) and not alive(v1["b"])
    assert "applied: started d; stopped c; restarted b" in sidecar.output()

    # A broken version (a typo) would have stopped everything but a: it changes nothing.
    volume.write({"supervisor.conf": _conf("a") + "hoks: []\n"})
    wait_until(lambda: "last_error" in sidecar.get("/supervisor")[1]["config"], 10,
               "the rejection")
    error = sidecar.get("/supervisor")[1]["config"]["last_error"]["error"]
    assert error.startswith(f"{volume.path()}: hoks: unknown key (did you mean 'hooks'?)")
    assert _pids(sidecar) == v2
    assert "rejected, the programs keep running as they are" in sidecar.output()
    assert sidecar.get("/readiness")[0] == 200

    # The files vanish for a while (as during a botched update): nothing changes.
    target = volume.hide()
    wait_until(lambda: "is missing; the programs keep running" in sidecar.output(), 10,
               "the missing file noticed")
    assert _pids(sidecar) == v2
    volume.restore(target)

    volume.write({"supervisor.conf": _conf("a", "d")})
    v4 = wait_until(lambda: (p := _pids(sidecar)) and "b" not in p and p, 10, "v4 applied")
    assert v4 == {"a": v1["a"], "d": v2["d"]}
    overview = sidecar.get("/supervisor")[1]["config"]
    assert overview["reloads"] == 2 and overview["rejected"] == 1
    assert sidecar.stop() == 0


async def test_texts_applied_through_the_api_are_not_applied_again_from_the_file(
        tmp_path: Path) -> None:
    volume = ConfigMapVolume(tmp_path / "programs")
    volume.write({"supervisor.conf": _conf("a", extra="watch-interval: 20ms\n")})
    supervisor = Supervisor.from_file(volume.path())
    await supervisor.init()
    try:
        b = _conf("b", extra="watch-interval: 20ms\n")
        c = _conf("c", extra="watch-interval: 20ms\n")
        # The k8s plugin saw two edits; the kubelet has not updated the volume yet.
        await supervisor.reload_text(b, "configmap ns/programs")
        await supervisor.reload_text(c, "configmap ns/programs")
        assert supervisor.get_program_names() == ["c"] and supervisor.reloads.applied == 2
        watcher = supervisor._watcher
        assert watcher is not None

        async def watcher_looked() -> None:
            since = watcher.checks
            await until(lambda: watcher.checks >= since + 3, 5, what="the watcher looking")

        for text in (b, c):  # the volume catches up, one version after the other
            volume.write({"supervisor.conf": text})
            await watcher_looked()
            assert supervisor.get_program_names() == ["c"]
        assert supervisor.reloads.applied == 2
        # A new edit that only the file has is applied.
        volume.write({"supervisor.conf": _conf("d", extra="watch-interval: 20ms\n")})
        await until(lambda: supervisor.get_program_names() == ["d"], 5, what="d applied")
    finally:
        await supervisor.close()


async def test_watch_interval_zero_stops_watching_until_a_config_turns_it_on(
        tmp_path: Path) -> None:
    volume = ConfigMapVolume(tmp_path / "programs")
    volume.write({"supervisor.conf": _conf("a", extra="watch-interval: 0s\n")})
    async with Supervisor.from_file(volume.path()) as supervisor:
        assert supervisor.status()["config"]["watching"] is None
        watcher = supervisor._watcher
        assert watcher is not None
        volume.write({"supervisor.conf": _conf("b", extra="watch-interval: 20ms\n")})
        # Nobody looked, and nobody will: the watcher is parked, not merely slow.
        assert not watcher.running and watcher.checks == 0
        assert supervisor.get_program_names() == ["a"]
        # An API reload (the k8s plugin) turns watching on again: the file is read.
        await supervisor.reload_text(_conf("c", extra="watch-interval: 20ms\n"), "configmap")
        assert supervisor.status()["config"]["watching"] == str(volume.path())
        await until(lambda: supervisor.get_program_names() == ["b"], 5, what="b from the file")
