"""Is a worker alive? Worker ids, hosts, and what /proc says about a pid.

A worker registers with its host (plus pid namespace) and pid. On the same host a worker
whose process is gone is dead at once; so is one whose pid now belongs to a process that
started after it registered (a restarted container gets its predecessor's pid back).
Elsewhere only the lease decides (``Engine``).
"""

from __future__ import annotations

import logging
import os
import socket
import time
import uuid
from datetime import timedelta
from typing import TYPE_CHECKING

from legato.model.workers import WorkerInfo
from legato.storage.base import Store

if TYPE_CHECKING:
    from legato.engine.worker import Engine

log = logging.getLogger("legato.engine.worker")  # its messages, as they always were


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


async def reap_dead_workers(store: Store, worker_id: str, lease_s: float) -> dict[str, int]:
    """Remove the rows of workers presumed dead (silent past their lease, or gone from
    this host), releasing their runs, and release runs no worker row names. Returns the
    workers presumed dead that held runs, with how many runs their removal released."""
    host = this_host()
    now = time.time()
    dead = [
        w.worker_id
        for w in await store.list_workers()
        if w.worker_id != worker_id
        and (
            # By its own lease (it heartbeats for that), else by ours.
            now - w.heartbeat_at.timestamp()
            > w.lease_or(timedelta(seconds=lease_s)).total_seconds()
            or (w.host == host and is_dead_here(w))
        )
    ]
    held: dict[str, int] = {}
    if dead:
        released = await store.remove_workers(dead)
        log.info("released %d run(s) of %d dead worker(s)", released, len(dead))
        if released:
            held = dict.fromkeys(dead, released)
    orphans = await store.release_orphaned_runs()
    if orphans:
        log.warning(
            "released %d run(s) owned by a worker id that no worker row names (a worker "
            "presumed dead wrote them before it noticed)",
            orphans,
        )
    return held


async def register_again(engine: Engine) -> None:
    """``engine``'s heartbeat found no row: another worker presumed this one dead.

    That worker released every run this one owned, and may have claimed them. Stop
    executing them here, writing nothing for them, and register under a new id: until
    then the store refuses this worker claims, and a run that still names the old id
    is an orphan that the next recovery pass releases.
    """
    lost = list(engine.live.values())
    old_id, engine.worker_id = engine.worker_id, new_worker_id()
    log.warning(
        "worker %s was presumed dead by another worker (its heartbeat found no row); its "
        "runs were taken over: stopping the %d run(s) it held, without writing for "
        "them, and registering again as %s",
        old_id,
        len(lost),
        engine.worker_id,
    )
    engine.live.clear()
    for execution in lost:
        engine._lost[execution.run_id] = execution
        execution.abandon()
    # Released already, by whoever removed our row. A release under the new id could
    # let go of a run claimed again since, and executing here.
    engine._to_release.clear()
    now = time.time()
    await register(engine, now)
    engine._last_heartbeat = now


async def register(engine: Engine, now: float) -> None:
    """Register ``engine``'s worker (again): who it is, what it serves, its lease."""
    await engine.store.register_worker(
        engine.worker_id,
        this_host(),
        os.getpid(),
        now,
        list(engine.registry.workflows),
        engine.lease_s,
    )
