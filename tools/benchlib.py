"""What the benchmarks share (tools/bench_store.py, tools/bench_tree.py)."""
import os


def cpu_seconds(pid):
    """User+system CPU time of process `pid` so far (0 if it is gone)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except OSError:
        return 0.0


def pct(sorted_lat, p):
    """Percentile p (0..1) of sorted latencies in seconds, in microseconds."""
    if not sorted_lat:
        return float("nan")
    return sorted_lat[min(len(sorted_lat) - 1, int(len(sorted_lat) * p))] * 1e6
