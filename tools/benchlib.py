"""What the benchmarks share (tools/bench_store.py, tools/bench_tree.py)."""
import json
import os
import subprocess
import tempfile
import threading
import time


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


def sync_latency(directory, writers, count=400):
    """p50 µs of a 4 KiB pwrite+fdatasync in `directory`, with `writers` files written at
    once (threads; each its own file): what a durable write costs on the disk the
    nodes' state is on. None if the directory cannot take the files."""
    results = []

    def run():
        try:
            fd, path = tempfile.mkstemp(prefix=".bench-sync-", dir=directory)
        except OSError:
            return
        try:
            os.unlink(path)
            os.pwrite(fd, b"\0" * (4096 * 64), 0)
            os.fsync(fd)
            lat = []
            page = b"x" * 4096
            for i in range(count):
                t = time.perf_counter()
                os.pwrite(fd, page, (i % 64) * 4096)
                os.fdatasync(fd)
                lat.append(time.perf_counter() - t)
            results.append(sorted(lat)[len(lat) // 2] * 1e6)
        except OSError:
            pass
        finally:
            os.close(fd)

    threads = [threading.Thread(target=run) for _ in range(writers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return sorted(results)[len(results) // 2] if len(results) == writers else None


def disk_note(directory):
    """One line on the disk under `directory` (a cluster's state directory): its
    write+fdatasync latency alone and with three at once (the three nodes of a bench
    cluster share this machine's disk)."""
    one, three = sync_latency(directory, 1), sync_latency(directory, 3)
    shown = os.path.dirname(directory.rstrip("/")) or directory
    if one is None or three is None:
        return f"disk under {shown}: not measured (cannot write there)"
    return (f"disk under {shown} (the nodes' state): one 4 KiB pwrite+fdatasync p50 {one:.0f} µs "
            f"alone, {three:.0f} µs with 3 at once (the 3 nodes share it here)")


def apply_note(cluster, env, nodes):
    """One line on where each node's apply time went over its last commits (conclavectl
    status --json, state.apply.latency_us): queued (a store job waiting for the apply
    worker), commit (store + journal fsync + cache invalidations) and fsync alone, p50/p99
    in µs; None if no node answered."""
    parts, window = [], None
    for i in nodes:
        out = subprocess.run([cluster, "exec", str(i), "conclavectl", "status", "--json"], env=env, text=True,
                             capture_output=True)
        try:
            lat = json.loads(out.stdout)["state"]["apply"]["latency_us"]
        except (ValueError, KeyError, TypeError):
            continue
        window = lat.get("window")
        cells = ", ".join(f"{k} {lat[k]['p50']}/{lat[k]['p99']}" for k in ("queued", "commit", "fsync"))
        parts.append(f"node {i}: {cells}")
    if not parts:
        return None
    return f"apply worker, p50/p99 µs over each node's last {window} commits: " + "; ".join(parts)
