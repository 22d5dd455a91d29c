#!/usr/bin/env python3
"""A put workload on a tools/cluster cluster while nodes are killed with -9 and restarted.

usage: store_workload.py SOURCE_ROOT CLUSTER NODES SEED PUTS EPISODES LOG

Writers put through the control socket of a random running node (JSON lines, the
protocol conclavectl speaks) and log every attempt and every acknowledgement. A chaos
thread kills one node at a time with SIGKILL (always leaving a majority) and restarts it,
EPISODES times, at seeded random moments. Afterwards every node is started, the caller
waits for one synced state, and check() verifies on every node: each key holds its last
acknowledged content, or the content of a later attempt on that key (an attempt whose
answer was lost to a kill may have been applied), never anything else and never nothing.
"""
import base64
import json
import os
import random
import socket
import subprocess
import sys
import threading
import time

top, name, nodes, seed, puts, episodes, logpath = sys.argv[1:8]
nodes, seed, puts, episodes = int(nodes), int(seed), int(puts), int(episodes)
CLUSTER = os.path.join(top, "tools", "cluster")
DIR = f"/run/conclave-cluster/{name}"
WRITERS = 3
KEYS_PER_WRITER = 60   # keys are reused: later puts overwrite earlier ones
lock = threading.Lock()
log = open(logpath, "w")


def say(*a):
    with lock:
        print(*a, file=log, flush=True)


class TimedOut(Exception):
    pass


def request(node, req, timeout=20.0):
    """One request on a fresh connection; the reply dict, or None if there was none
    (no daemon, or it died); raises TimedOut when a live daemon did not answer in time."""
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(timeout)
    try:
        s.connect(f"{DIR}/node{node}/control.sock")
        s.sendall((json.dumps(req) + "\n").encode())
        buf = b""
        while not buf.endswith(b"\n"):
            chunk = s.recv(65536)
            if not chunk:
                return None
            buf += chunk
        return json.loads(buf)
    except socket.timeout:
        raise TimedOut()
    except (OSError, ValueError):
        return None
    finally:
        s.close()


def cluster(*args):
    return subprocess.run([CLUSTER, *args], env=dict(os.environ, CONCLAVE_CLUSTER=name),
                          capture_output=True, text=True)


def running(node):
    try:
        pid = int(open(f"{DIR}/node{node}/pid").read())
        os.kill(pid, 0)
        return True
    except (OSError, ValueError):
        return False


down = set()          # nodes the chaos thread has killed and not yet restarted
attempts = {}         # key -> list of (index, content, acked)
stats = {"attempted": 0, "acked": 0, "failed": 0, "timeouts": 0}


chaos_done = threading.Event()


def writer(w, count, rng):
    # At least `count` puts, and on until the last kill/restart episode is over.
    k = -1
    while True:
        k += 1
        if k >= count and chaos_done.is_set():
            break
        key = f"/w/{w}-{rng.randrange(KEYS_PER_WRITER)}"
        content = f"seed {seed} writer {w} put {k} {rng.getrandbits(64):016x}\n" * rng.randint(1, 40)
        with lock:
            candidates = [i for i in range(1, nodes + 1) if i not in down]
            attempts.setdefault(key, []).append([k, content, False])
            stats["attempted"] += 1
            entry = attempts[key][-1]
        node = rng.choice(candidates)
        try:
            r = request(node, {"cmd": "put", "path": key, "data": base64.b64encode(content.encode()).decode()})
        except TimedOut:
            # Still pending in a live daemon: it may be applied at any later point.
            with lock:
                entry[2] = "timeout"
                stats["timeouts"] += 1
            say(f"put {key} via node {node}: no answer within the timeout")
            continue
        ok = bool(r and r.get("ok"))
        with lock:
            if ok:
                entry[2] = True
                stats["acked"] += 1
            else:
                stats["failed"] += 1
        say(f"put {key} via node {node}: {'acked' if ok else 'failed: ' + json.dumps(r)}")


def chaos(rng):
    for e in range(episodes):
        time.sleep(rng.uniform(0.3, 1.5))
        victim = rng.randrange(1, nodes + 1)
        # Killed while writers may be talking to it; only then avoided.
        r = cluster("kill", str(victim))
        with lock:
            down.add(victim)
        say(f"episode {e + 1}: kill -9 node {victim}: rc {r.returncode} {r.stderr.strip()}")
        time.sleep(rng.uniform(0.5, 2.0))
        r = cluster("start", str(victim))
        say(f"episode {e + 1}: start node {victim}: rc {r.returncode} {r.stderr.strip()}")
        with lock:
            down.discard(victim)
    chaos_done.set()


def main():
    rng = random.Random(seed)
    request(1, {"cmd": "mkdir", "path": "/w"})
    threads = [threading.Thread(target=writer, args=(w, puts // WRITERS, random.Random(rng.random())))
               for w in range(WRITERS)]
    ch = threading.Thread(target=chaos, args=(random.Random(rng.random()),))
    for t in threads + [ch]:
        t.start()
    for t in threads + [ch]:
        t.join()
    for i in range(1, nodes + 1):
        if not running(i):
            cluster("start", str(i))
    json.dump(attempts, open(logpath + ".attempts", "w"))
    print(f"workload: {stats['attempted']} puts, {stats['acked']} acknowledged, {stats['failed']} failed, "
          f"{episodes} kill -9/restart episodes")


def check():
    attempts = json.load(open(logpath + ".attempts"))
    bad = []
    for node in range(1, nodes + 1):
        for key, tries in attempts.items():
            acked = [i for i, t in enumerate(tries) if t[2] is True]
            late = [t[1] for t in tries if t[2] == "timeout"]
            r = request(node, {"cmd": "get", "path": key})
            have = base64.b64decode(r["data"]).decode() if r and r.get("ok") else None
            if not acked:
                # Nothing acknowledged: absent, or any attempt's content.
                if have is not None and have not in [t[1] for t in tries]:
                    bad.append(f"node {node} {key}: content from no attempt")
                continue
            allowed = [t[1] for t in tries[acked[-1]:]] + late
            if have is None:
                bad.append(f"node {node} {key}: missing (acknowledged put lost): {json.dumps(r)}")
            elif have not in allowed:
                bad.append(f"node {node} {key}: holds an older or foreign content, not the last acknowledged")
    for b in bad[:20]:
        print("LOST/WRONG:", b)
    n = sum(1 for tries in attempts.values() if any(t[2] is True for t in tries))
    print(f"check: {n} keys with acknowledged puts verified on {nodes} nodes; {len(bad)} problems")
    return not bad


if __name__ == "__main__":
    if len(sys.argv) > 8 and sys.argv[8] == "check":
        sys.exit(0 if check() else 1)
    main()
