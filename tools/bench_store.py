#!/usr/bin/env python3
"""tools/bench store: durable put latency and throughput on a real 3-node cluster.

A put is acknowledged only when every node of the quorate ring holds it durably (journal
fsync'd): the like of an etcd put (a majority-committed, durable write). The client
(conclave-bench store-put, C++) talks to node 1's control socket (JSON lines, what
conclavectl sends), 1 KiB values, keys random in 10,000, as the peers' etcd rig did
(../shared/peers, RESULTS.md), and the etcd figures from there are printed alongside.
Prints figures; never passes or fails on time.
"""
import argparse
import json
import os
import re
import subprocess
import sys

from benchlib import apply_note, cpu_seconds, disk_note

TOP = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CLUSTER = os.path.join(TOP, "tools", "cluster")
RESULTS = os.path.join(TOP, "..", "shared", "peers", "RESULTS.md")
# etcd 3.4.23, 3 members on disk, plain http (RESULTS.md, "etcd-disk-plain"): used when
# the file is not there to read them from.
ETCD_FALLBACK = {1: (1499, 644, 1362), 8: (4004, 1895, 4868), 64: (8396, 6667, 19578)}


def etcd_figures():
    """clients -> (puts/s, p50 µs, p99 µs) of etcd-disk-plain puts."""
    try:
        text = open(RESULTS).read()
    except OSError:
        return ETCD_FALLBACK, "built-in copy"
    out = {}
    for line in text.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) >= 7 and cells[0] == "etcd-disk-plain" and cells[1] == "put":
            m = re.match(r"(\d+)/(\d+)", cells[2])
            if m:
                out[int(m.group(2))] = (int(cells[4].replace(",", "")), int(cells[5]), int(cells[6]))
    return (out or ETCD_FALLBACK), ("../shared/peers/RESULTS.md" if out else "built-in copy")


def run_clients(env, node, socket, clients, size, keys, secs=None, count=None, seed=1):
    """`clients` connections of conclave-bench store-put (C++: one thread polling every
    connection, one put outstanding on each), for `secs` or `count` puts in all.
    Returns its JSON figures."""
    cmd = [CLUSTER, "exec", str(node), "conclave-bench", "store-put", "--socket", socket, "--clients",
           str(clients), "--size", str(size), "--keys", str(keys), "--seed", str(seed)]
    cmd += ["--secs", str(secs)] if secs else ["--count", str(count)]
    p = subprocess.run(cmd, env=env, text=True, capture_output=True)
    if p.returncode != 0:
        sys.exit("tools/bench store: conclave-bench store-put failed: " + p.stderr.strip())
    return json.loads(p.stdout)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--nodes", type=int, default=3)
    ap.add_argument("--transport", default="multicast", choices=["multicast", "unicast"])
    ap.add_argument("--size", type=int, default=1024, help="value bytes (default 1024)")
    ap.add_argument("--count", type=int, default=2000, help="sequential puts for the latency figure")
    ap.add_argument("--clients", default="1,8,64", help="concurrent clients for puts/s (default 1,8,64)")
    ap.add_argument("--secs", type=float, default=5.0, help="seconds per throughput case")
    ap.add_argument("--keys", type=int, default=10000)
    ap.add_argument("--node", type=int, default=1, help="the node the clients talk to")
    args = ap.parse_args()
    if os.geteuid() != 0:
        sys.exit("tools/bench store: run as root (the cluster lives in network namespaces)")
    if args.nodes < 1 or not 1 <= args.node <= args.nodes:
        sys.exit("tools/bench store: --node must be one of the --nodes")
    levels = [int(x) for x in args.clients.split(",") if x]

    name = "cv" + os.urandom(2).hex()
    env = dict(os.environ, CONCLAVE_CLUSTER=name)
    print(f"starting a {args.nodes}-node cluster {name} ({args.transport}) ...", flush=True)
    up = subprocess.run([CLUSTER, "up", str(args.nodes), "--name", name, "--transport", args.transport],
                        env=env, text=True, capture_output=True)
    if up.returncode != 0:
        sys.exit("tools/bench store: tools/cluster up failed:\n" + up.stderr)
    try:
        base = f"/run/conclave-cluster/{name}"
        path = f"{base}/node{args.node}/control.sock"
        pids = [int(open(f"{base}/node{i}/pid").read()) for i in range(1, args.nodes + 1)]
        rows = []
        mk = subprocess.run([CLUSTER, "exec", str(args.node), "conclavectl", "-s", path, "mkdir", "/bench"],
                            env=env, text=True, capture_output=True)
        if mk.returncode != 0 and "exists" not in mk.stderr:
            sys.exit(f"tools/bench store: mkdir /bench: {mk.stderr.strip()}")
        disk = disk_note(base)
        run_clients(env, args.node, path, 4, args.size, args.keys, count=400)  # warm-up
        cpu0 = sum(cpu_seconds(p) for p in pids)
        r = run_clients(env, args.node, path, 1, args.size, args.keys, count=args.count, seed=2)
        rows.append(("seq", 1, r, sum(cpu_seconds(p) for p in pids) - cpu0))
        for n in levels:
            cpu0 = sum(cpu_seconds(p) for p in pids)
            r = run_clients(env, args.node, path, n, args.size, args.keys, secs=args.secs, seed=3 + n)
            rows.append(("load", n, r, sum(cpu_seconds(p) for p in pids) - cpu0))
        applied = apply_note(CLUSTER, env, range(1, args.nodes + 1))
        status = subprocess.run([CLUSTER, "exec", str(args.node), "conclavectl", "status", "--json"], env=env,
                                text=True, capture_output=True)
        try:
            st = json.loads(status.stdout)["state"]
            apply = st.get("apply", {})
            version = st.get("version")
        except (ValueError, KeyError):
            apply, version = {}, "?"
    finally:
        subprocess.run([CLUSTER, "down", name], env=env, capture_output=True)

    etcd, source = etcd_figures()
    print()
    print(f"conclave store: {args.nodes} nodes ({args.transport}), {args.size}-byte values, keys random in "
          f"{args.keys}, clients on node {args.node}'s control socket; durable = fsync'd on every ring member")
    print()
    hdr = (f"| {'case':<26} | {'puts':>7} | {'puts/s':>8} | {'p50 µs':>8} | {'p99 µs':>8} | {'CPU µs/put':>10} "
           f"| {'etcd puts/s':>11} | {'etcd p50':>8} | {'etcd p99':>8} |")
    print(hdr)
    print("|" + "|".join("-" * (len(c)) for c in hdr.split("|")[1:-1]) + "|")
    for kind, n, r, cpu in rows:
        puts, elapsed = r["puts"], r["elapsed"]
        rate = puts / elapsed if elapsed > 0 else 0
        case = "sequential put, 1 client" if kind == "seq" else f"puts at {n} client{'s' if n > 1 else ''}"
        e = etcd.get(n)
        etcd_cells = (f"{e[0]:>11,} | {e[1]:>8} | {e[2]:>8}" if e else f"{'-':>11} | {'-':>8} | {'-':>8}")
        cpu_per = cpu / puts * 1e6 if puts else float("nan")
        print(f"| {case:<26} | {puts:>7} | {rate:>8,.0f} | {r['p50_us']:>8.0f} | {r['p99_us']:>8.0f} "
              f"| {cpu_per:>10.0f} | {etcd_cells} |" +
              (f"  {r['errors']} errors: {r['first_error']}" if r["errors"] else ""))
    print()
    print(f"etcd 3.4.23 (3 members, data on disk, plain http; from {source}). CPU µs/put: all "
          f"{args.nodes} daemons summed.")
    print("Targets (issue 6, not a test): put p50 <= 500 µs, >= 17k puts/s at 64 clients.")
    print(disk + ".")
    if apply:
        commits = apply.get("commits") or 0
        jobs = apply.get("jobs") or 0
        print(f"apply worker on node {args.node}: {jobs} store jobs in {commits} commits "
              f"({jobs / commits if commits else 0:.1f} per fsync; largest {apply.get('largest_commit')}), "
              f"state version {version}")
    if applied:
        print(applied + ".")


if __name__ == "__main__":
    main()
