#!/usr/bin/env python3
"""tools/bench tree: the FUSE configuration tree on a real 3-node cluster.

Starts its own cluster (tools/cluster up 3, removed at the end) and works through the
nodes' mounts, as programs use /etc/pve:
  * create+write+close of new 1 KiB files (O_CREAT|O_EXCL|O_WRONLY, one write, close):
    close returns when every node of the quorate ring applied the file durably. 1 writer,
    4 writers on node 1 (each in its own directory, and all in one), 1 writer per node;
    the 1-writer row's note splits it into the open (the create, one transition) and the
    close (the contents, another);
  * how long after a write started on node 1 node 2's mount shows it (a poller process
    on node 2 reads the file in a loop), for a rewritten file and for a new one;
  * 512 KiB files (create+write+close);
  * reads of a 1 KiB file from the page cache: open+read+close, and stat, in a tight
    loop, 1 and 4 processes (and pread of an open file: no FUSE open/release); the same
    loops on a tmpfs file as the harness's ceiling.
Workers are processes (no shared interpreter lock). Prints figures; never passes or fails
on time.
"""
import argparse
import errno
import multiprocessing as mp
import os
import signal
import subprocess
import sys
import tempfile
import time

from benchlib import apply_note, cpu_seconds, disk_note, pct

TOP = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CLUSTER = os.path.join(TOP, "tools", "cluster")
PMXCFS = os.path.join(TOP, "..", "shared", "peers", "RESULTS-pmxcfs.md")
KIB = 1024


def err_name(e):
    return errno.errorcode.get(e.errno, str(e.errno))


# ---- workers (forked processes; each sends its result through a pipe) ----

def write_worker(conn, start, where, size, count, secs, unlink_after):
    """New files in directory `where` (or (directory, name prefix)), one after the other,
    until `count` files or `secs`."""
    directory, prefix = where if isinstance(where, tuple) else (where, "f")
    data = os.urandom(size)
    lat, errors = [], []
    opens, closes = [], []  # the create at open, the contents at close: one transition each
    start.wait()
    t_begin = time.monotonic()
    end = t_begin + secs if secs else None
    i, prev = 0, None
    flags = os.O_CREAT | os.O_EXCL | os.O_WRONLY
    while (count is None or i < count) and (end is None or time.monotonic() < end):
        path = f"{directory}/{prefix}{i:06d}"
        i += 1
        t = time.monotonic()
        try:
            fd = os.open(path, flags, 0o640)
            t_open = time.monotonic()
            try:
                os.write(fd, data)
            finally:
                t_close = time.monotonic()
                os.close(fd)
            t_done = time.monotonic()
            lat.append(t_done - t)
            opens.append(t_open - t)
            closes.append(t_done - t_close)
        except OSError as e:
            errors.append(err_name(e))
            continue
        if unlink_after:  # keeps the tree small (not timed)
            if prev:
                os.unlink(prev)
            prev = path
    t_end = time.monotonic()
    if prev:
        os.unlink(prev)
    conn.send((lat, errors, t_begin, t_end, opens, closes))


def read_worker(conn, start, path, mode, secs):
    """open+read+close (mode "read"), stat (mode "stat") or pread of one open descriptor
    (mode "pread") of `path` in a tight loop."""
    n, errors = 0, []
    start.wait()
    t_begin = time.monotonic()
    end = t_begin + secs
    rd, st, op, cl, pr = os.read, os.stat, os.open, os.close, os.pread
    if mode == "pread":
        fd = op(path, os.O_RDONLY)
    while True:
        # 64 operations between clock reads
        try:
            if mode == "read":
                for _ in range(64):
                    fd = op(path, os.O_RDONLY)
                    rd(fd, 4096)
                    cl(fd)
            elif mode == "pread":
                for _ in range(64):
                    pr(fd, 4096, 0)
            else:
                for _ in range(64):
                    st(path)
            n += 64
        except OSError as e:
            errors.append(err_name(e))
        if time.monotonic() >= end:
            break
    t_end = time.monotonic()
    if mode == "pread":
        cl(fd)
    conn.send(([], errors, t_begin, t_end, n))


def poll_worker(conn, path, new_files):
    """On node 2: tells when the file shows the counter the writer asks for. For
    new_files, `path` is a directory and the file is path/c<counter>."""
    while True:
        want = conn.recv()
        if want is None:
            return
        deadline = time.monotonic() + 5
        seen = None
        target = f"{path}/c{want}" if new_files else path
        expect = str(want).encode()
        while time.monotonic() < deadline:
            try:
                with open(target, "rb") as f:
                    if f.read() == expect:
                        seen = time.monotonic()
                        break
            except FileNotFoundError:
                pass
            time.sleep(0.0001)  # polls about every 0.2 ms without taking a core from the daemons
        conn.send(seen)


def run_workers(target, args_list):
    """Starts one process per args tuple, lets them go together, gathers their results."""
    ctx = mp.get_context("fork")
    start = ctx.Event()
    procs = []
    for a in args_list:
        parent, child = ctx.Pipe(duplex=False)
        p = ctx.Process(target=target, args=(child, start) + a, daemon=True)
        p.start()
        procs.append((p, parent))
    start.set()
    out = []
    for p, parent in procs:
        out.append(parent.recv())
        p.join()
    return out


class Row:
    def __init__(self, case, n, rate, lat=None, cpu=None, unit="", note=""):
        self.case, self.n, self.rate, self.lat, self.cpu, self.unit, self.note = case, n, rate, lat, cpu, unit, note


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--count", type=int, default=1000,
                    help="files for the sequential cases and samples for the delay (default 1000; "
                         "512 KiB files: count/10)")
    ap.add_argument("--secs", type=float, default=4.0,
                    help="seconds per write throughput case, half of it per read case (default 4)")
    ap.add_argument("--transport", default="multicast", choices=["multicast", "unicast"])
    args = ap.parse_args()
    if os.geteuid() != 0:
        sys.exit("tools/bench tree: run as root (the cluster lives in network namespaces)")
    if args.count < 1 or args.secs <= 0:
        sys.exit("tools/bench tree: --count and --secs must be positive")

    name = "cv" + os.urandom(2).hex()
    env = dict(os.environ, CONCLAVE_CLUSTER=name)
    base = f"/run/conclave-cluster/{name}"
    mnt = {i: f"{base}/node{i}/mnt" for i in (1, 2, 3)}
    # Ctrl-C and SIGTERM end the run through the finally below (the cluster goes down).
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    signal.signal(signal.SIGINT, signal.default_int_handler)  # also when started with it ignored
    print(f"starting a 3-node cluster {name} ({args.transport}) ...", flush=True)
    rows, rows_read, vis = [], [], []
    disk = applied = None
    t_run = time.monotonic()
    try:
        up = subprocess.run([CLUSTER, "up", "3", "--name", name, "--transport", args.transport],
                            env=env, text=True, capture_output=True)
        if up.returncode != 0:
            sys.exit("tools/bench tree: tools/cluster up failed:\n" + up.stderr)
        pids = [int(open(f"{base}/node{i}/pid").read()) for i in (1, 2, 3)]
        cpu = lambda: sum(cpu_seconds(p) for p in pids)  # noqa: E731
        b = {i: f"{mnt[i]}/bench" for i in (1, 2, 3)}
        os.mkdir(b[1])
        seq = [0]

        def fresh_dir(node):
            seq[0] += 1
            d = f"{b[node]}/d{seq[0]}"
            os.mkdir(d)
            return d

        def writes(case, jobs, size=KIB, count=None, secs=None, unlink_after=False, note="", split=False):
            c0 = cpu()
            res = run_workers(write_worker, [(d, size, count, secs, unlink_after) for d in jobs])
            used = cpu() - c0
            lat = sorted(x for r in res for x in r[0])
            errors = [e for r in res for e in r[1]]
            elapsed = max(r[3] for r in res) - min(r[2] for r in res)
            rate = len(lat) / elapsed if elapsed > 0 else 0
            if size >= 64 * KIB:
                note = f"{len(lat) * size / elapsed / 1e6:.1f} MB/s" + (f"; {note}" if note else "")
            if split and lat:
                opens = sorted(x for r in res for x in r[4])
                closes = sorted(x for r in res for x in r[5])
                note = (f"open p50 {pct(opens, 0.5):.0f} µs, close p50 {pct(closes, 0.5):.0f} µs"
                        + (f"; {note}" if note else ""))
            if errors:
                note += f" {len(errors)} errors ({errors[0]})"
            rows.append(Row(case, len(lat), rate, lat, used / len(lat) * 1e6 if lat else None, "files/s", note))
            print(f"  {case}: {len(lat)} files, {rate:,.0f} files/s", flush=True)

        disk = disk_note(base)
        print("writes ...", flush=True)
        writes("warm-up", [fresh_dir(1)], count=200)
        rows.clear()
        writes("1 KiB, 1 writer, node 1", [fresh_dir(1)], count=args.count, split=True)
        applied = apply_note(CLUSTER, env, (1, 2, 3))  # the 1-writer case's last commits
        writes("1 KiB, 4 writers, node 1", [fresh_dir(1) for _ in range(4)], secs=args.secs,
               note="a directory each")
        shared = fresh_dir(1)
        writes("1 KiB, 4 writers, node 1", [(shared, f"w{k}-") for k in range(4)], secs=args.secs,
               note="one directory for the 4")
        writes("1 KiB, 1 writer on each node", [fresh_dir(i) for i in (1, 2, 3)], secs=args.secs,
               note="3 writers, a directory each")
        writes("512 KiB, 1 writer, node 1", [fresh_dir(1)], size=512 * KIB, count=max(10, args.count // 10),
               unlink_after=True)

        print("delay until node 2 sees a write on node 1 ...", flush=True)
        for new_files in (False, True):
            d1 = fresh_dir(1)
            d2 = d1.replace(mnt[1], mnt[2], 1)
            target1 = f"{d1}/counter"
            target2 = d2 if new_files else f"{d2}/counter"
            if not new_files:
                with open(target1, "wb") as f:
                    f.write(b"0")
            ctx = mp.get_context("fork")
            parent, child = ctx.Pipe()
            poller = ctx.Process(target=poll_worker, args=(child, target2, new_files), daemon=True)
            poller.start()
            from_start, from_return, missed = [], [], 0
            try:
                for k in range(1, args.count + 1):
                    parent.send(k)
                    t0 = time.monotonic()
                    if new_files:
                        fd = os.open(f"{d1}/c{k}", os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o640)
                    else:
                        fd = os.open(target1, os.O_WRONLY | os.O_TRUNC)
                    os.write(fd, str(k).encode())
                    os.close(fd)
                    t1 = time.monotonic()
                    seen = parent.recv()
                    if seen is None:
                        missed += 1
                        continue
                    from_start.append(seen - t0)
                    from_return.append(seen - t1)
                parent.send(None)
            finally:
                poller.join(5)
                if poller.is_alive():
                    poller.kill()
            from_start.sort()
            from_return.sort()
            case = "new file on node 1 seen on 2" if new_files else "rewrite on node 1 seen on 2"
            note = (f"after the write returned: p50 {pct(from_return, 0.5):.0f} µs, p99 {pct(from_return, 0.99):.0f} µs"
                    + (f"; {missed} never seen within 5 s" if missed else ""))
            vis.append(Row(case, len(from_start), None, from_start, None, "", note))
            print(f"  {case}: {note}", flush=True)

        print("reads from the page cache ...", flush=True)
        f1 = f"{b[1]}/read-1k"
        with open(f1, "wb") as f:
            f.write(os.urandom(KIB))
        tmp = tempfile.NamedTemporaryFile(dir="/dev/shm" if os.path.isdir("/dev/shm") else None)
        tmp.write(os.urandom(KIB))
        tmp.flush()
        for path, where in ((f1, "node 1's mount"), (tmp.name, "tmpfs (harness ceiling)")):
            for mode in ("read", "stat", "pread") if path == f1 else ("read", "stat"):
                for procs in (1, 4):
                    run_workers(read_worker, [(path, mode, 0.2)])  # warm the caches
                    c0 = cpu()
                    res = run_workers(read_worker, [(path, mode, args.secs / 2)] * procs)
                    used = cpu() - c0
                    n = sum(r[4] for r in res)
                    elapsed = max(r[3] for r in res) - min(r[2] for r in res)
                    errors = [e for r in res for e in r[1]]
                    what = {"read": "open+read+close", "stat": "stat", "pread": "pread of an open file"}[mode]
                    case = f"{what}, {procs} proc{'s' if procs > 1 else ''}"
                    note = where + (f" {len(errors)} errors ({errors[0]})" if errors else "")
                    rows_read.append(Row(case, n, n / elapsed, None, used / n * 1e6 if n else None, "ops/s", note))
                    print(f"  {case} on {where}: {n / elapsed:,.0f} ops/s", flush=True)
        tmp.close()
    finally:
        subprocess.run([CLUSTER, "down", name], env=env, capture_output=True)
    total = time.monotonic() - t_run

    print()
    print(f"conclave tree: 3 nodes ({args.transport}) in network namespaces on this machine, FUSE mounts; "
          "a write returns when every node applied it durably (fsync'd)")
    print()
    hdr = (f"| {'case':<30} | {'n':>7} | {'rate':>17} | {'p50 µs':>8} | {'p99 µs':>8} | {'CPU µs/op':>9} | note")
    print(hdr)
    print("|" + "|".join("-" * len(c) for c in hdr.split("|")[1:]) + "|")

    def show(r):
        rate = f"{r.rate:>9,.0f} {r.unit:<7}" if r.rate is not None else f"{'-':>17}"
        p50 = f"{pct(r.lat, 0.5):>8.0f}" if r.lat else f"{'-':>8}"
        p99 = f"{pct(r.lat, 0.99):>8.0f}" if r.lat else f"{'-':>8}"
        c = f"{r.cpu:>9.0f}" if r.cpu is not None else f"{'-':>9}"
        print(f"| {r.case:<30} | {r.n:>7} | {rate} | {p50} | {p99} | {c} | {r.note}")

    for r in rows + vis + rows_read:
        show(r)
    print()
    print("CPU µs/op: the 3 daemons' CPU summed per operation. Delay rows: from the start of the write on")
    print("node 1 until a process polling node 2's mount (every ~0.2 ms) read the new contents.")
    print("Targets (not a test): 1 KiB create+write+close p50 <= 600 µs acknowledged by every node; "
          "reads >= 100k ops/s from the page cache.")
    if disk:
        print(disk + "; a 1 KiB file is two durable writes (create at open, contents at close).")
    if applied:
        print(applied + " (after the 1-writer 1 KiB case).")
    pmx = pmxcfs_figures()
    if pmx:
        print("pmxcfs (../shared/peers/RESULTS-pmxcfs.md):")
        for line in pmx:
            print("  " + line)
    else:
        print("pmxcfs: not measured here (../shared/peers/RESULTS-pmxcfs.md does not exist).")
    print(f"whole run {total:.0f} s (--count {args.count}, --secs {args.secs:g})")


def pmxcfs_figures():
    """The markdown table lines of the peers' pmxcfs results, if that file exists."""
    try:
        text = open(PMXCFS).read()
    except OSError:
        return None
    lines = [l.rstrip() for l in text.splitlines() if l.lstrip().startswith("|")]
    return (lines or [l.rstrip() for l in text.splitlines() if l.strip()][:20])[:30]


if __name__ == "__main__":
    try:
        main()
    except KeyboardInterrupt:
        sys.exit("tools/bench tree: interrupted (the cluster was removed)")
