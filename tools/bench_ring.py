#!/usr/bin/env python3
"""tools/bench ring: ordered-message benchmark on a real cluster in network namespaces.

The same patterns as the peers' rig (../shared/peers, RESULTS.md) so figures sit side by
side: `all` = every node sends, saturating; `one` = node 1 sends, saturating; `seq` =
node 1 sends with one message outstanding (unloaded send -> own delivery latency);
`seqsafe` = seq with the safe guarantee (delivered once every member holds it; not one of
the peers' patterns, Corosync has no safe delivery). Prints figures; never passes or fails on time.
"""
import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

TOP = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CLUSTER = os.path.join(TOP, "tools", "cluster")


def run(cmd, **kw):
    return subprocess.run(cmd, check=True, text=True, capture_output=True, **kw).stdout


def daemon_pids(name, n):
    return [int(open(f"/run/conclave-cluster/{name}/node{i}/pid").read()) for i in range(1, n + 1)]


def cpu_seconds(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def wait_one_ring(name, n, env, deadline_s=30):
    """Until every node's status shows one ring of n members."""
    end = time.time() + deadline_s
    while time.time() < end:
        ok = True
        for i in range(1, n + 1):
            p = subprocess.run([CLUSTER, "exec", str(i), "conclavectl", "status", "--json"], env=env,
                               text=True, capture_output=True)
            try:
                s = json.loads(p.stdout)
            except ValueError:
                ok = False
                break
            if len(s.get("members") or []) != n:
                ok = False
                break
        if ok:
            return True
        time.sleep(0.2)
    return False


def one_case(name, n, size, case, secs, group, env, tmp):
    pids = daemon_pids(name, n)
    procs = []
    for i in range(1, n + 1):
        senders = "all" if case == "all" else "one"
        window = "1" if case in ("seq", "seqsafe") else "0"
        cmd = [CLUSTER, "exec", str(i), "conclave-bench", "ring-node", "--socket",
               f"/run/conclave-cluster/{name}/node{i}/control.sock", "--group", group, "--nodes", str(n),
               "--index", str(i), "--size", str(size), "--secs", str(secs), "--senders", senders,
               "--window", window, "--pid", str(pids[i - 1]), "--lat", os.path.join(tmp, f"lat{i}")]
        if case == "seqsafe":
            cmd.append("--safe")
        procs.append(subprocess.Popen(cmd, env=env, text=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE))
    results = []
    try:
        for p in procs:
            out, err = p.communicate(timeout=secs + 120)
            if p.returncode != 0:
                raise RuntimeError(f"ring-node failed: {err.strip()}")
            results.append(json.loads(out))
    finally:
        for p in procs:  # the other nodes' clients of a failed run (ours, by PID)
            if p.poll() is None:
                p.kill()
                p.wait()
    lat = []
    for i in range(1, n + 1):
        path = os.path.join(tmp, f"lat{i}")
        if os.path.exists(path):
            lat += [int(x) / 1000.0 for x in open(path).read().split()]
    lat.sort()
    rate = statistics.median(r["msgs_per_s"] for r in results)
    mb = statistics.median(r["mb_per_s"] for r in results)
    ticks = [r["daemon_cpu_ticks"] for r in results]
    hz = results[0]["ticks_per_s"]
    cpu_s = sum(t for t in ticks if t >= 0) / hz
    delivered = statistics.median(r["delivered_window"] for r in results)
    return {
        "nodes": n, "size": size, "case": case, "msgs_per_s": rate, "mb_per_s": mb,
        "p50_us": lat[len(lat) // 2] if lat else 0.0, "p99_us": lat[min(len(lat) - 1, int(len(lat) * 0.99))] if lat else 0.0,
        "cores": cpu_s / secs, "cpu_us_per_msg": (cpu_s * 1e6 / delivered) if delivered else 0.0,
    }


def median_row(rs):
    """The median run by throughput, with the spread of every run's rate."""
    rs = sorted(rs, key=lambda r: r["msgs_per_s"])
    m = dict(rs[len(rs) // 2])
    m["p50_us"] = statistics.median(r["p50_us"] for r in rs)
    m["p99_us"] = statistics.median(r["p99_us"] for r in rs)
    m["spread"] = "-".join(f"{r['msgs_per_s'] / 1000:.1f}k" for r in rs) if len(rs) > 1 else ""
    return m


def main():
    ap = argparse.ArgumentParser(prog="tools/bench ring", description=__doc__.splitlines()[0])
    ap.add_argument("--nodes", default="3,5", help="cluster sizes, comma-separated (default 3,5)")
    ap.add_argument("--sizes", default="64,1024,8192", help="message sizes in bytes (default 64,1024,8192)")
    ap.add_argument("--cases", default="one,all,seq", help="patterns: one, all, seq, and seqsafe (seq with the safe guarantee); "
                    "default one,all,seq")
    ap.add_argument("--secs", type=float, default=5.0, help="measured seconds per figure (default 5)")
    ap.add_argument("--reps", type=int, default=3,
                    help="repetitions of every figure, interleaved, the median printed (default 3, as the peers' rig)")
    ap.add_argument("--transport", default="multicast", choices=["multicast", "unicast"])
    ap.add_argument("--json", action="store_true", help="also print every figure as JSON")
    a = ap.parse_args()
    if os.geteuid() != 0:
        sys.exit("tools/bench ring: needs root (network namespaces)")
    env = dict(os.environ)
    rows = []
    failed = {}
    for n in [int(x) for x in a.nodes.split(",")]:
        name = "cv" + os.urandom(2).hex()
        env["CONCLAVE_CLUSTER"] = name
        subprocess.run([CLUSTER, "up", str(n), "--name", name, "--transport", a.transport], check=True,
                       env=env, stdout=subprocess.DEVNULL)
        try:
            if not wait_one_ring(name, n, env):
                raise RuntimeError(f"{n} nodes did not form one ring within 30 s")
            pids = daemon_pids(name, n)
            c0 = sum(cpu_seconds(p) for p in pids)
            time.sleep(3)  # idle measurement: nothing to wait for, a fixed span
            idle = (sum(cpu_seconds(p) for p in pids) - c0) / 3
            print(f"# {n} nodes ({a.transport}): idle CPU {idle:.4f} cores (all daemons)", flush=True)
            # Repetitions outermost, as the peers' rig: a slow spell of this shared
            # machine then spreads over every figure instead of spoiling one.
            runs = {}
            for rep in range(a.reps):
                for size in [int(x) for x in a.sizes.split(",")]:
                    for case in a.cases.split(","):
                        runs.setdefault((size, case), [])
                        try:
                            with tempfile.TemporaryDirectory() as tmp:
                                r = one_case(name, n, size, case, a.secs, f"b{size}{case}{rep}", env, tmp)
                        except (RuntimeError, ValueError, subprocess.TimeoutExpired) as e:
                            # A client the daemon dropped (it fell 64 MiB behind the
                            # deliveries: a saturating run on few CPUs) spoils this run only.
                            print(f"# {n} nodes, {size} B, {case}, run {rep + 1}: {e}", flush=True)
                            failed.setdefault((n, size, case), []).append(str(e))
                            continue
                        runs[(size, case)].append(r)
                        if a.json:
                            print(json.dumps(dict(r, rep=rep)), flush=True)
            for (size, case), rs in runs.items():
                if rs:
                    rows.append(median_row(rs))
        finally:
            subprocess.run([CLUSTER, "down", name], env=env)
    print()
    print(f"Medians of {a.reps} runs (msgs/s: the median run's figures; its runs' rates in the last column).")
    print("| nodes | size | case | msgs/s (per node) | MB/s | p50 us | p99 us | daemon cores (sum) | daemon CPU us/msg (sum) | runs |")
    print("|---:|---:|---|---:|---:|---:|---:|---:|---:|---|")
    for r in rows:
        print(f"| {r['nodes']} | {r['size']} | {r['case']} | {r['msgs_per_s']:,.0f} | {r['mb_per_s']:.2f} | "
              f"{r['p50_us']:,.1f} | {r['p99_us']:,.1f} | {r['cores']:.2f} | {r['cpu_us_per_msg']:.1f} | {r['spread']} |")
    for (n, size, case), errs in failed.items():
        print(f"{n} nodes, {size} B, {case}: {len(errs)} of {a.reps} runs failed ({errs[0]})")


if __name__ == "__main__":
    main()
