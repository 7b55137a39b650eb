"""Network namespaces of the cluster test servers: made, cut, and always deleted."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from tests.servers.etcd_cluster import EtcdCluster
from tests.servers.netns import Network


def namespaces() -> set[str]:
    netns = Path("/run/netns")
    return {p.name for p in netns.iterdir()} if netns.is_dir() else set()


def test_an_isolated_member_is_cut_off_from_the_others_but_not_from_clients() -> None:
    with EtcdCluster(isolated=True) as cluster:
        assert cluster.network is not None
        made = set(cluster.network.members) | {cluster.network.hub}
        assert made <= namespaces()
        cut, *others = cluster.members
        cluster.isolate(cut)
        # Clients still reach it (it answers for itself) while it has no quorum.
        status = cluster.status(cut)
        assert status["header"]["member_id"]
        cluster.etcdctl("put", "/while-cut", "1", members=others)
        assert cluster.etcdctl("get", "/while-cut", "--consistency=s", members=[cut]) == ""
        cluster.rejoin(cut)
        cluster.wait_healthy([cut])
    assert not made & namespaces()


def test_namespaces_of_a_run_that_was_killed_are_deleted_by_the_next() -> None:
    # A child process makes a network and dies without cleaning up (SIGKILL).
    code = ("import os, signal, sys; sys.path.insert(0, sys.argv[1]);"
            "from tests.servers.netns import Network; n = Network(1).start();"
            "print(n.prefix, flush=True); os.kill(os.getpid(), signal.SIGKILL)")
    done = subprocess.run([sys.executable, "-c", code, str(Path(__file__).parents[2])],
                          capture_output=True, text=True, timeout=30, check=False)
    prefix = done.stdout.strip()
    assert prefix, done.stderr
    assert any(name.startswith(prefix + "-") for name in namespaces())
    with Network(1):
        pass
    assert not any(name.startswith(prefix + "-") for name in namespaces())
