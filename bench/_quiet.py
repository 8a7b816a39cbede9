"""How much CPU did *other* processes use while we measured? On a 2-core box that skews everything.

Total busy time comes from /proc/stat; ours is this process, the PostgreSQL server serving us and all
their descendants (exited children are folded into their parent's cutime/cstime, so short-lived
backends and workers still count as ours). The difference is everyone else: tests, builds, pip.
"""

from __future__ import annotations

import os
from pathlib import Path

import psycopg2

_TICK = os.sysconf("SC_CLK_TCK")


def postmaster_of(uri: str) -> int | None:
    """PID of the (local) PostgreSQL server behind ``uri``: the parent of our backend."""
    with psycopg2.connect(uri) as conn, conn.cursor() as cur:
        cur.execute("SELECT pg_backend_pid()")
        row = cur.fetchone()
    conn.close()
    stat = _stat(int(row[0])) if row else None
    return int(stat[1]) if stat else None  # None: the server is not on this machine


def _stat(pid: int) -> list[str] | None:
    """Fields of /proc/PID/stat after the command name (index 0 is field 3, "state")."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return text[text.rindex(")") + 2 :].split()


def _busy_ticks() -> int:
    user, nice, system, _idle, _iowait, irq, softirq, steal = (
        int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:9]
    )
    return user + nice + system + irq + softirq + steal


def _our_ticks(roots: list[int]) -> int:
    stats = {int(p.name): s for p in Path("/proc").iterdir() if p.name.isdigit() and (s := _stat(int(p.name)))}
    children: dict[int, list[int]] = {}
    for pid, fields in stats.items():
        children.setdefault(int(fields[1]), []).append(pid)
    total, todo, seen = 0, list(roots), set()
    while todo:
        pid = todo.pop()
        if pid in seen or pid not in stats:
            continue
        seen.add(pid)
        total += sum(int(v) for v in stats[pid][11:15])  # utime, stime, cutime, cstime
        todo += children.get(pid, [])
    return total


class OtherLoad:
    """``start()`` / ``stop()`` around a window; ``stop()`` returns CPU-seconds used by others."""

    def __init__(self, roots: list[int]) -> None:
        self.roots = roots
        self._busy = self._ours = 0

    def start(self) -> None:
        self._busy, self._ours = _busy_ticks(), _our_ticks(self.roots)

    def stop(self) -> float:
        busy, ours = _busy_ticks() - self._busy, _our_ticks(self.roots) - self._ours
        return max(busy - ours, 0) / _TICK
