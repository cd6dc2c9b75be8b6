"""Timing and memory helpers shared by the bench sections.

Every number the bench reports is a median over repeats, and contenders are interleaved (each
repeat runs every contender once, in a rotated order) so that a burst of load from other processes
on a shared machine hits all of them alike instead of skewing one.
"""

import resource
import statistics
import sys
import time
from typing import Callable


def seconds(fn: Callable[[], object]) -> float:
    """Wall time of one call."""
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def per_call(fn: Callable[[], object], min_time: float) -> float:
    """Seconds per call, calling `fn` repeatedly for at least `min_time` seconds (after 1 warm-up)."""
    fn()
    calls, start = 0, time.perf_counter()
    while True:
        fn()
        calls += 1
        elapsed = time.perf_counter() - start
        if elapsed >= min_time:
            return elapsed / calls


def interleaved(jobs: dict[str, Callable[[], float]], repeats: int) -> dict[str, list[float]]:
    """Run every job once per repeat, rotating the order each repeat; return all samples per job.

    Each job returns its own measurement (seconds), so a job can time just the part it cares about.
    """
    names = list(jobs)
    samples: dict[str, list[float]] = {name: [] for name in names}
    for r in range(repeats):
        shift = r % len(names)
        for name in names[shift:] + names[:shift]:
            samples[name].append(jobs[name]())
    return samples


def median(values: list[float]) -> float:
    return statistics.median(values)


def paired_speedup(samples: dict[str, list[float]], fast: str, slow: str) -> float:
    """How many times faster `fast` ran than `slow`: the median over repeats of the ratio of their
    times in the same repeat. On a shared machine whose speed drifts by tens of percent within
    minutes, both sides of one repeat ran seconds apart, so their ratio cancels most of the
    drift that a ratio of two separate medians keeps."""
    return statistics.median(s / f for f, s in zip(samples[fast], samples[slow]))


def peak_rss_mb() -> float:
    """Peak resident set size of this process so far, in MiB.

    On Linux this reads VmHWM from /proc/self/status, the high-water mark of this process's own
    address space. ru_maxrss is NOT used there: the kernel carries it over from the parent
    through fork and exec, so a child started by a 1 GB parent would report at least ~1 GB.
    Elsewhere ru_maxrss is the best available (KiB on Linux, bytes on macOS).
    """
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024  # kB -> MiB
    except OSError:
        pass
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / (1024 * 1024) if sys.platform == "darwin" else peak / 1024


def current_rss_mb() -> float:
    """Current resident set size in MiB (Linux /proc; falls back to the peak elsewhere)."""
    try:
        with open("/proc/self/statm") as f:
            pages = int(f.read().split()[1])
        return pages * resource.getpagesize() / (1024 * 1024)
    except OSError:
        return peak_rss_mb()


def fmt(value, digits=1) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        if value != 0 and abs(value) < 1e-3:
            return f"{value:.1e}"
        return f"{value:.{digits}f}"
    return str(value)


# Ratios are shown with two decimals: 1.16x printed as "1.2" would read as a met 1.2x target.
RATIO_COLUMNS = ("x ST", "fast / readable")


def markdown_table(header: list[str], rows: list[list]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(v if isinstance(v, str) else fmt(v, 2 if h in RATIO_COLUMNS else 1)
                                for h, v in zip(header, row)) + " |" for row in rows]
    return "\n".join(lines)
