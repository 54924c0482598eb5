"""Which process trains a run, as its `process` tag records it (pid@host/start), and whether that process is alive.

A run a process left RUNNING when it died (kill -9, a lost node, the OOM killer) can only be told apart from one
still training by asking the host it ran on: this machine answers for its own processes, never for another's.
"""
from __future__ import annotations

import os
import socket
from dataclasses import dataclass
from pathlib import Path


def this_process() -> str:
    """This process as the PROCESS tag records it: pid@host/start (start: its start time in clock ticks since boot,
    so that a later process given the same pid is not taken for it)."""
    return f"{os.getpid()}@{socket.gethostname()}/{start_ticks(os.getpid())}"


def start_ticks(pid: int) -> str:
    """The start time of process pid in clock ticks since boot (/proc); "" where it cannot be read."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[19]
    except (OSError, IndexError):  # not Linux, or no such process
        return ""


@dataclass(frozen=True)
class Owner:
    """A PROCESS tag read back: pid, host and start ("" and None where the tag lacks them)."""

    pid: int | None
    host: str
    start: str

    @classmethod
    def parse(cls, tag: str) -> Owner:
        pid, _, rest = (tag or "").partition("@")
        host, _, start = rest.rpartition("/")
        return cls(int(pid) if pid.isdigit() else None, host, start)

    @property
    def here(self) -> bool:
        """Whether the process ran on this machine (only then can this machine tell whether it is alive)."""
        return self.pid is not None and self.host == socket.gethostname()

    def alive(self) -> bool:
        """Whether the process still runs (on this host; see `here`): the pid exists and started when the tag says."""
        assert self.pid is not None
        try:
            os.kill(self.pid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:  # another user's process
            pass
        return not self.start or start_ticks(self.pid) in (self.start, "")

    def __str__(self) -> str:
        return f"pid {self.pid} on host {self.host}" if self.host else "a process this harness did not record"
