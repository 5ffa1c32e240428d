"""What the benchmarks share: CPU clocks (this process, other processes), per-stage accounting, the machine's
description, tables and JSON."""
from __future__ import annotations

import contextlib
import json
import os
import platform
import sys
import time
from pathlib import Path

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def cpu_s() -> float:
    """CPU seconds of this whole process (every thread, user + system; CLOCK_PROCESS_CPUTIME_ID, not tick-based)."""
    return time.process_time()


def process_cpu_s(pid: int) -> float:
    """User + system CPU seconds of another live process (and its waited-for children), from /proc/<pid>/stat
    (clock ticks: 10 ms resolution)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return sum(int(v) for v in fields[11:15]) / CLOCK_TICKS


class StageClock:
    """Wall and CPU seconds accumulated per named stage."""

    def __init__(self):
        self.wall: dict[str, float] = {}
        self.cpu: dict[str, float] = {}

    @contextlib.contextmanager
    def stage(self, name: str):
        wall, cpu = time.perf_counter(), cpu_s()
        try:
            yield
        finally:
            self.wall[name] = self.wall.get(name, 0.0) + time.perf_counter() - wall
            self.cpu[name] = self.cpu.get(name, 0.0) + cpu_s() - cpu

    def wrap(self, owner, attribute: str, name: str):
        """Time every call of `owner.attribute` as stage `name`; returns the function that undoes it."""
        original = getattr(owner, attribute)

        def timed(*args, **kwargs):
            with self.stage(name):
                return original(*args, **kwargs)

        setattr(owner, attribute, timed)
        return lambda: setattr(owner, attribute, original)

    def pop(self, name: str) -> tuple[float, float]:
        """(wall, cpu) of stage `name`, removed from the clock."""
        return self.wall.pop(name), self.cpu.pop(name)

    def rows(self, clips: int) -> list[dict]:
        """One row per stage: milliseconds per clip over `clips` clips, and its share of the CPU time."""
        total = sum(self.cpu.values()) or 1.0
        return [{"stage": name, "wall_ms_per_clip": round(1e3 * self.wall[name] / clips, 3),
                 "cpu_ms_per_clip": round(1e3 * self.cpu[name] / clips, 3),
                 "cpu_share": round(self.cpu[name] / total, 4)} for name in self.wall]


def cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def machine(**extra) -> dict:
    """This machine and the libraries loaded, with the load average now (the machine is often shared)."""
    info = {"cpu": cpu_name(), "logical_cpus": os.cpu_count(), "python": platform.python_version(),
            "load_average": [round(v, 2) for v in os.getloadavg()]}
    for module, name in (("tensorflow", "tensorflow"), ("cv2", "opencv"), ("numpy", "numpy")):
        if module in sys.modules:
            info[name] = sys.modules[module].__version__
    return {**info, **extra}


def write_json(path, report: dict) -> Path:
    """Writes `report` (atomically: a stopped run never leaves half a file) and returns the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(report, indent=1) + "\n")
    tmp.replace(path)
    return path


def table(title: str, rows: list[dict]) -> str:
    """A plain-text table of dict rows (the first row's keys are the columns)."""
    if not rows:
        return f"{title}\n(none)"
    keys = list(rows[0])
    cells = [[_cell(r.get(k)) for k in keys] for r in rows]
    widths = [max(len(k), *(len(c[i]) for c in cells)) for i, k in enumerate(keys)]
    lines = [title, "  ".join(k.ljust(w) for k, w in zip(keys, widths))]
    lines += ["  ".join(c.ljust(w) for c, w in zip(row, widths)) for row in cells]
    return "\n".join(lines)


def _cell(value) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value)
