"""The processes under load, read from /proc: the gateway and the Rasa tree, their memory (sampled by
a thread) and CPU time, the machine's busy CPU, and which process listens on a port."""

from __future__ import annotations

import contextlib
import os
import threading
import time
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

CLK_TCK = os.sysconf("SC_CLK_TCK")
PAGE = os.sysconf("SC_PAGE_SIZE")


def proc_stat(pid: int) -> tuple[int, int, int, int] | None:
    """(ppid, pgrp, utime+stime ticks, starttime) of a live process, None if it's gone."""
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return None
    fields = raw[raw.rfind(")") + 2 :].split()
    if fields[0] == "Z":
        return None
    return int(fields[1]), int(fields[2]), int(fields[11]) + int(fields[12]), int(fields[19])


def rss_bytes(pid: int) -> int:
    try:
        return int(Path(f"/proc/{pid}/statm").read_text().split()[1]) * PAGE
    except (FileNotFoundError, ProcessLookupError, PermissionError, IndexError):
        return 0


def cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace").strip()
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return ""


def all_pids() -> list[int]:
    return [int(p) for p in os.listdir("/proc") if p.isdigit()]


def descendants(root: int) -> list[int]:
    children: dict[int, list[int]] = defaultdict(list)
    for pid in all_pids():
        st = proc_stat(pid)
        if st:
            children[st[0]].append(pid)
    found, todo = [], [root]
    while todo:
        for child in children.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found


def pid_listening_on(port: int) -> int | None:
    """The process with a listening TCP socket on ``port`` (needs permission to read its fds)."""
    inodes: set[str] = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with contextlib.suppress(FileNotFoundError):
            for line in Path(table).read_text().splitlines()[1:]:
                parts = line.split()
                if parts[3] == "0A" and int(parts[1].rsplit(":", 1)[1], 16) == port:
                    inodes.add(parts[9])
    if not inodes:
        return None
    for pid in all_pids():
        with contextlib.suppress(FileNotFoundError, PermissionError, ProcessLookupError, NotADirectoryError):
            for fd in os.listdir(f"/proc/{pid}/fd"):
                with contextlib.suppress(OSError):
                    link = os.readlink(f"/proc/{pid}/fd/{fd}")
                    if link.startswith("socket:[") and link[8:-1] in inodes:
                        return pid
    return None


def cpu_busy_ticks() -> int:
    """All CPUs' non-idle time, from /proc/stat."""
    values = [int(v) for v in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    return sum(values[:8]) - values[3] - values[4]  # minus idle, iowait (guest is inside user)


@dataclass
class Peak:
    at_ready: int = 0
    startup: int = 0
    load: int = 0


class ProcessWatch(threading.Thread):
    """Tracks the gateway pid and the Rasa tree; samples RSS every ``interval`` s."""

    def __init__(
        self,
        gateway_pid: Callable[[], int | None],
        rasa_root: Callable[[int | None], int | None],
        interval: float = 0.1,
    ) -> None:
        super().__init__(name="rss-sampler", daemon=True)
        self._gateway_pid = gateway_pid
        self._rasa_root = rasa_root
        self.interval = interval
        self.gateway = Peak()
        self.rasa = Peak()
        self.phase = "startup"
        self.samples = 0
        self.gateway_now: int | None = None
        self.rasa_tree: list[int] = []
        self.rasa_roots_seen: dict[int, int] = {}  # pid → starttime: how often Rasa was restarted
        self._halt = threading.Event()
        self._lock = threading.Lock()

    def rediscover(self) -> None:
        gw = self._gateway_pid()
        root = self._rasa_root(gw)
        tree: list[int] = []
        if root is not None:
            tree = [root, *descendants(root)]
            st = proc_stat(root)
            if st:
                self.rasa_roots_seen.setdefault(root, st[3])
        elif gw is not None:  # e.g. `rasa train` while starting, before `rasa run`
            tree = descendants(gw)
        with self._lock:
            self.gateway_now, self.rasa_tree = gw, tree

    def pids(self) -> tuple[int | None, list[int]]:
        with self._lock:
            return self.gateway_now, list(self.rasa_tree)

    def mark_ready(self) -> None:
        self.rediscover()
        gw, tree = self.pids()
        self.gateway.at_ready = rss_bytes(gw) if gw else 0
        self.rasa.at_ready = sum(rss_bytes(p) for p in tree)
        self.phase = "load"

    def run(self) -> None:
        last_discovery = 0.0
        while not self._halt.is_set():
            now = time.monotonic()
            gw, tree = self.pids()
            if now - last_discovery > 1.0 or not tree or any(proc_stat(p) is None for p in tree[:1]):
                self.rediscover()
                gw, tree = self.pids()
                last_discovery = now
            g = rss_bytes(gw) if gw else 0
            r = sum(rss_bytes(p) for p in tree)
            for peak, value in ((self.gateway, g), (self.rasa, r)):
                if self.phase == "startup":
                    peak.startup = max(peak.startup, value)
                elif self.phase == "load":
                    peak.load = max(peak.load, value)
            self.samples += 1
            self._halt.wait(max(0.0, self.interval - (time.monotonic() - now)))

    def stop(self) -> None:
        self._halt.set()
        self.join(timeout=2)

    def cpu_snapshot(self) -> dict[str, int]:
        gw, tree = self.pids()
        own = proc_stat(os.getpid())
        return {
            "gateway": (proc_stat(gw) or (0, 0, 0, 0))[2] if gw else 0,
            "rasa": sum((proc_stat(p) or (0, 0, 0, 0))[2] for p in tree),
            "load generator": own[2] if own else 0,
            "total": cpu_busy_ticks(),
        }


def cpu_delta(before: dict[str, int], after: dict[str, int]) -> dict[str, float]:
    d = {k: max(0, after[k] - before[k]) / CLK_TCK for k in before}
    d["other processes"] = max(0.0, d.pop("total") - d["gateway"] - d["rasa"] - d["load generator"])
    return d


def background_cpu(seconds: float = 2.0) -> float:
    """Cores busy on this machine before we start anything."""
    before = cpu_busy_ticks()
    time.sleep(seconds)
    return (cpu_busy_ticks() - before) / CLK_TCK / seconds


def rasa_child_of(gateway_pid: int | None) -> int | None:
    """The ``rasa run`` process among the gateway's descendants (the Rasa it supervises)."""
    if gateway_pid is None:
        return None
    for pid in descendants(gateway_pid):
        cmd = cmdline(pid)
        if " run " in f" {cmd} " and "rasa" in cmd and "--model" in cmd:
            return pid
    return None
