"""Network namespaces of the cluster test servers: made, cut, and always let go."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from tests._wait import wait_until
from tests.servers.etcd_cluster import EtcdCluster


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return Path(f"/proc/{pid}/status").read_text().find("State:\tZ") < 0


def test_an_isolated_member_is_cut_off_from_the_others_but_not_from_clients() -> None:
    with EtcdCluster(isolated=True) as cluster:
        assert cluster.network is not None and cluster.network.hub is not None
        holders = [cluster.network.hub.pid, *(m.pid for m in cluster.network.members)]
        own = Path("/proc/self/ns/net").stat().st_ino
        assert all(Path(f"/proc/{pid}/ns/net").stat().st_ino != own for pid in holders)
        leader = cluster.leader()
        cut = next(m for m in cluster.members if m is not leader)
        others = [m for m in cluster.members if m is not cut]
        cluster.isolate(cut)
        # Clients still reach it (it answers for itself) while it has no quorum.
        assert cluster.status(cut)["header"]["member_id"]
        wait_until(lambda: cluster.etcdctl("put", "/while-cut", "1", members=others), 20,
                   "a write on the majority side")
        assert cluster.etcdctl("get", "/while-cut", "--consistency=s", members=[cut]) == ""
        cluster.rejoin(cut)
        cluster.wait_healthy([cut])
        wait_until(lambda: cluster.etcdctl("get", "/while-cut", "--consistency=s",
                                           "--print-value-only", members=[cut]) == "1\n",
                   10, "the cut-off member catching up")
    assert not any(alive(pid) for pid in holders)


def test_a_killed_run_leaves_no_namespace_behind() -> None:
    # A child process makes a network and dies at once, cleaning nothing up (SIGKILL).
    code = ("import os, signal, sys; sys.path.insert(0, sys.argv[1]);"
            "from tests.servers.netns import Network; n = Network(2).start();"
            "print(n.hub.pid, *(m.pid for m in n.members), flush=True);"
            "os.kill(os.getpid(), signal.SIGKILL)")
    done = subprocess.run([sys.executable, "-c", code, str(Path(__file__).parents[2])],
                          capture_output=True, text=True, timeout=30, check=False)
    holders = [int(pid) for pid in done.stdout.split()]
    assert len(holders) == 3, done.stderr
    # The holders end when their pipe from the dead process closes; the kernel then
    # frees the namespaces (nothing else holds them).
    wait_until(lambda: not any(alive(pid) for pid in holders), 10, "the holders gone")
