"""The status file parser: every field, two-word states, and the live /proc of real processes."""

from __future__ import annotations

import os
import signal
import subprocess

import pytest

from sidecar.exec.processmanager import IdSet, ProcessState, parse_status, read_status
from sidecar.exec.processmanager.status import StatFile, parse_stat

SAMPLE = """\
Name:\tpostgres: wal writer
Umask:\t0077
State:\tD (disk sleep)
Tgid:\t4242
Ngid:\t0
Pid:\t4242
PPid:\t1
TracerPid:\t0
Uid:\t999\t1000\t999\t1000
Gid:\t998\t998\t998\t998
FDSize:\t64
Groups:\t4 24 998\t
NStgid:\t4242\t17
NSpid:\t4242\t17
NSpgid:\t4242\t17
NSsid:\t4242\t17
VmPeak:\t  218700 kB
VmSize:\t  218652 kB
VmLck:\t       0 kB
VmPin:\t       0 kB
VmHWM:\t    7420 kB
VmRSS:\t    7412 kB
RssAnon:\t     812 kB
RssFile:\t    4208 kB
RssShmem:\t    2392 kB
VmData:\t    1072 kB
VmStk:\t     132 kB
VmExe:\t    6568 kB
VmLib:\t   10140 kB
VmPTE:\t     120 kB
VmSwap:\t       0 kB
HugetlbPages:\t       0 kB
CoreDumping:\t0
THP_enabled:\t1
Threads:\t3
SigQ:\t0/63439
SigPnd:\t0000000000000000
ShdPnd:\t0000000000000800
SigBlk:\t0000000000000000
SigIgn:\t0000000001001000
SigCgt:\t0000000180006a07
CapInh:\t0000000000000000
CapPrm:\t0000000000000000
CapEff:\t0000000000000000
CapBnd:\t000001ffffffffff
CapAmb:\t0000000000000000
NoNewPrivs:\t1
Seccomp:\t2
Seccomp_filters:\t1
Speculation_Store_Bypass:\tthread vulnerable
Cpus_allowed:\tf
Cpus_allowed_list:\t0-3
Mems_allowed_list:\t0
voluntary_ctxt_switches:\t150
nonvoluntary_ctxt_switches:\t3
"""


def test_every_field_of_a_status_file_is_parsed() -> None:
    status = parse_status(SAMPLE)
    assert status.name == "postgres: wal writer"  # a colon in the value stays
    assert status.state is ProcessState.DISK_SLEEP
    assert (status.state_code, status.state_label) == ("D", "disk sleep")
    assert status.umask == 0o077
    assert (status.tgid, status.pid, status.ppid, status.tracer_pid) == (4242, 4242, 1, 0)
    assert status.uid == IdSet(999, 1000, 999, 1000)
    assert status.gid == IdSet(998, 998, 998, 998)
    assert status.groups == (4, 24, 998)
    assert status.ns_pid == (4242, 17)
    assert status.vm_rss == 7412 * 1024
    assert status.vm_peak == 218700 * 1024
    assert status.rss_shmem == 2392 * 1024
    assert status.threads == 3
    assert (status.sig_queued, status.sig_max) == (0, 63439)
    assert status.pending_signals() == {signal.SIGUSR2}  # bit n-1 is signal n
    assert signal.SIGPIPE in status.ignored_signals()
    assert {signal.SIGHUP, signal.SIGINT, signal.SIGTERM} <= status.caught_signals()
    assert status.cap_bnd == 0x1ffffffffff
    assert status.no_new_privs is True
    assert status.seccomp == 2
    assert status.cpus_allowed_list == "0-3"
    assert status.voluntary_ctxt_switches == 150
    assert status.core_dumping is False
    assert status.raw["Speculation_Store_Bypass"] == "thread vulnerable"


@pytest.mark.parametrize(("line", "state"), [
    ("R (running)", ProcessState.RUNNING),
    ("S (sleeping)", ProcessState.SLEEPING),
    ("D (disk sleep)", ProcessState.DISK_SLEEP),
    ("T (stopped)", ProcessState.STOPPED),
    ("t (tracing stop)", ProcessState.TRACING_STOP),
    ("T (tracing stop)", ProcessState.TRACING_STOP),  # Linux < 2.6.33 used T for both
    ("Z (zombie)", ProcessState.ZOMBIE),
    ("X (dead)", ProcessState.DEAD),
    ("I (idle)", ProcessState.IDLE),
    ("P (parked)", ProcessState.PARKED),
    ("W (paging)", ProcessState.WAKING),
    ("K (wakekill)", ProcessState.WAKEKILL),
    ("Q (quantum leap)", ProcessState.UNKNOWN),
])
def test_states_with_one_or_two_words(line: str, state: ProcessState) -> None:
    status = parse_status(f"Name:\tx\nState:\t{line}\n")
    assert status.state is state
    assert status.state_label == line[3:-1]


def test_missing_and_malformed_fields_do_not_break_parsing() -> None:
    status = parse_status("Name:\tkthreadd\nState:\tS (sleeping)\nUid:\tnot numbers\n"
                          "VmRSS:\tlots\nno colon here\n")
    assert status.state is ProcessState.SLEEPING
    assert status.uid is None
    assert status.vm_rss is None
    assert status.threads is None
    assert status.raw["Uid"] == "not numbers"


def test_stat_line_with_spaces_and_parentheses_in_the_command_name() -> None:
    line = parse_stat(b"77 (my (odd) name) t 1 77 77 0 -1 4194560 0 0 0 0 0 0 0 0 20 0 1 0 "
                      b"123456 0 0\n")
    assert line.state is ProcessState.TRACING_STOP
    assert (line.ppid, line.pgid, line.start_ticks) == (1, 77, 123456)


def test_real_processes_running_and_stopped() -> None:
    own = read_status(os.getpid())
    assert own.pid == os.getpid()
    assert own.state is ProcessState.RUNNING
    assert own.threads is not None and own.threads >= 1
    child = subprocess.Popen(["sleep", "30"])
    try:
        stat = StatFile(child.pid)
        child.send_signal(signal.SIGSTOP)
        deadline_reads = 500
        while stat.read().state is not ProcessState.STOPPED and deadline_reads:
            deadline_reads -= 1
            os.sched_yield()
        status = read_status(child.pid)
        assert status.state is ProcessState.STOPPED
        assert status.name == "sleep"
        assert status.ppid == os.getpid()
        child.kill()
        child.wait()
        with pytest.raises(ProcessLookupError):
            stat.read()  # the kept descriptor never reads a reused pid
        stat.close()
        with pytest.raises(ProcessLookupError):
            read_status(child.pid)
    finally:
        child.kill()
        child.wait()
