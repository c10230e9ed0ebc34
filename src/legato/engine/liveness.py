"""Is a worker alive? Worker ids, hosts, and what /proc says about a pid.

A worker registers with its host (plus pid namespace) and pid. On the same host a worker
whose process is gone is dead at once; so is one whose pid now belongs to a process that
started after it registered (a restarted container gets its predecessor's pid back).
Elsewhere only the lease decides (``Engine``).
"""

from __future__ import annotations

import os
import socket
import time
import uuid

from legato.model.workers import WorkerInfo


def new_worker_id() -> str:
    """A worker id: host, pid and a random part (a worker registering again gets a new one)."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


def this_host() -> str:
    """The host name, plus the pid namespace where there is one to tell apart.

    Two containers may share a host name (host networking) while their pids are numbered
    apart: a pid says nothing about a process in another namespace, so its worker must not
    be judged dead by it. Only the lease decides there.
    """
    try:
        namespace = os.stat("/proc/self/ns/pid").st_ino
    except OSError:
        return socket.gethostname()
    return f"{socket.gethostname()}#pidns:{namespace}"


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def process_started_at(pid: int) -> float | None:
    """When process ``pid`` started, in Unix seconds (to ~10 ms); None where /proc can't say."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as stat, open("/proc/uptime", "rb") as uptime:
            # starttime (clock ticks after boot) is field 22; fields 3.. follow the ")".
            ticks = int(stat.read().rsplit(b")", 1)[1].split()[19])
            booted_at = time.time() - float(uptime.read().split()[0])
    except (OSError, ValueError, IndexError):
        return None
    return booted_at + ticks / os.sysconf("SC_CLK_TCK")


_CLOCK_SLACK_S = 0.05
"""How far /proc's estimate of a process's start may be off (uptime and ticks: 10 ms)."""


def is_dead_here(worker: WorkerInfo) -> bool:
    """True if ``worker`` ran on this host and its process is gone.

    A pid that is alive may belong to a new process: a container restarted gives its
    worker the same pid (often 1) as the one it replaced. A process that started after
    the worker registered cannot be that worker.
    """
    if not _pid_alive(worker.pid):
        return True
    started_at = process_started_at(worker.pid)
    return started_at is not None and started_at > worker.started_at.timestamp() + _CLOCK_SLACK_S
