#!/bin/bash
# Cluster locks in the FUSE tree (pmxcfs's priv/lock/NAME) on 3 real daemons with
# tree.lock_timeout 3 s, every step through the nodes' mounts:
#  (a) 3 concurrent mkdir priv/lock/L1, one per node, behind a barrier: exactly one
#      succeeds, the others get EEXIST (and again for a few more locks)
#  (b) the holder renews with touch; another node's touch gets EACCES
#  (c) an unlock request (utime 0) from another node right after a renewal: EACCES, the
#      lock stays
#  (d) unchanged for lock_timeout, the unlock request succeeds (never earlier than 3 s
#      after the renewal started), the lock is gone on every node, a third node takes it
#  (e) rmdir by the holder releases it
#  (f) a lock directory cannot be renamed, nor anything renamed into priv/lock (EACCES)
#  (g) a node without quorum gets EROFS for mkdir of a lock at once; the majority can
#      take one, and node 3 sees it after heal
# usage: test_locks.sh SOURCE_ROOT BUILD_DIR [SEED]
set -u
top=$1
export CONCLAVE_BUILD=$2
seed=${3:-${CONCLAVE_SEED:-$(od -An -N2 -tu2 /dev/urandom | tr -d ' ')}}
timeout=3
. "$top/tests/cluster/lib.sh"
make_work locks
trap 'exit 1' INT TERM
fail() {
    echo "FAIL (seed $seed): $*" >&2
    cluster hashes >&2 2>/dev/null
    for i in 1 2 3; do echo "--- node $i log:" >&2; cluster log "$i" 2>/dev/null | tail -15 >&2; done
    exit 1
}
mnt() { echo "$dir/node$1/mnt"; }
lock() { echo "$dir/node$1/mnt/priv/lock/$2"; }
# op OP ARGS...: one file-system call from python; prints OK or the errno's name.
op() {
    python3 - "$@" <<'EOF'
import errno, os, sys
op, args = sys.argv[1], sys.argv[2:]
try:
    if op == "mkdir": os.mkdir(args[0])
    elif op == "rmdir": os.rmdir(args[0])
    elif op == "unlock": os.utime(args[0], (0, 0))
    elif op == "renew": os.utime(args[0])
    elif op == "rename": os.rename(args[0], args[1])
    else: sys.exit("unknown op " + op)
    print("OK")
except OSError as e:
    print(errno.errorcode.get(e.errno, str(e.errno)))
EOF
}
# expect_err PATTERN CMD...: CMD fails and its stderr matches PATTERN
expect_err() {
    local pattern=$1
    shift
    "$@" > "$work/out" 2> "$work/err" && fail "'$*' succeeded"
    grep -q -- "$pattern" "$work/err" || fail "'$*': stderr lacks '$pattern': $(cat "$work/err")"
}
# on_every_node present|absent NAME: the lock directory as each node's mount shows it
on_every_node() {
    local want=$1 lk=$2 i
    for i in 1 2 3; do
        if [ "$want" = present ]; then
            [ -d "$(lock "$i" "$lk")" ] || fail "node $i does not show lock $lk"
        else
            [ -e "$(lock "$i" "$lk")" ] && fail "node $i still shows lock $lk"
        fi
    done
    return 0
}
echo "seed $seed (rerun with: $0 $top $CONCLAVE_BUILD $seed)"

cluster up 3 --name "$name" --lock-timeout "$timeout" >/dev/null || fail "up"
grep -q "lock_timeout: $timeout" "$dir/node2/conclave.conf" || fail "--lock-timeout is not in conclave.conf"
mkdir -p "$(mnt 1)/priv/lock" || fail "mkdir -p priv/lock"
for i in 2 3; do [ -d "$(mnt "$i")/priv/lock" ] || fail "node $i lacks priv/lock"; done

# (a) one mkdir per node at once: exactly one wins.
race() {  # race NAME: prints the winner's node number, checks the losers got EEXIST
    python3 - "$dir" "$1" "$seed" <<'EOF'
import errno, os, random, sys, threading
base, name, seed = sys.argv[1], sys.argv[2], int(sys.argv[3])
nodes = [1, 2, 3]
random.Random(f"{seed}{name}").shuffle(nodes)  # the order the threads start in
barrier = threading.Barrier(3)
result = {}
def go(i):
    p = f"{base}/node{i}/mnt/priv/lock/{name}"
    barrier.wait()
    try:
        os.mkdir(p)
        result[i] = "OK"
    except OSError as e:
        result[i] = errno.errorcode.get(e.errno, str(e.errno))
threads = [threading.Thread(target=go, args=(i,)) for i in nodes]
for t in threads: t.start()
for t in threads: t.join()
won = [i for i in result if result[i] == "OK"]
lost = sorted(r for i, r in result.items() if r != "OK")
if len(won) != 1 or lost != ["EEXIST", "EEXIST"]:
    sys.exit(f"concurrent mkdir {name}: {dict(sorted(result.items()))}, want one OK and EEXIST twice")
print(won[0])
EOF
}
holder=$(race L1) || fail "race for L1"
on_every_node present L1
for r in R1 R2 R3 R4 R5; do
    w=$(race "$r") || fail "race for $r"
    [ "$(op rmdir "$(lock "$w" "$r")")" = OK ] || fail "the holder (node $w) could not rmdir $r"
    on_every_node absent "$r"
    wins="${wins:-}$w"
done
others=$(for i in 1 2 3; do [ "$i" != "$holder" ] && echo "$i"; done | python3 -c '
import random, sys
n = sys.stdin.read().split(); random.Random(int(sys.argv[1])).shuffle(n); print(*n)' "$seed")
read -r other third <<< "$others"
echo "(a) concurrent mkdir L1: node $holder won, the others got EEXIST (winners of 5 more races: $wins)"

# (b) renewals: the holder's touch succeeds, another node's is refused.
touch "$(lock "$holder" L1)" || fail "the holder's (node $holder) touch of its lock failed"
expect_err "Permission denied" touch "$(lock "$other" L1)"
[ "$(op renew "$(lock "$third" L1)")" = EACCES ] || fail "node $third renewed node $holder's lock"
echo "(b) touch by the holder node $holder: ok; by nodes $other and $third: EACCES"

# (c)+(d): unlock requests from another node, from right after a renewal until one succeeds.
python3 - "$(lock "$holder" L1)" "$(lock "$other" L1)" "$timeout" > "$work/unlock" <<'EOF' || fail "$(cat "$work/unlock")"
import errno, os, sys, time
mine, theirs, timeout = sys.argv[1], sys.argv[2], float(sys.argv[3])
t0 = time.monotonic()
os.utime(mine)  # a renewal by the holder (touch)
renewed = time.monotonic() - t0
def unlock():
    try:
        os.utime(theirs, (0, 0))
        return "OK"
    except OSError as e:
        return errno.errorcode.get(e.errno, str(e.errno))
r = unlock()
if r != "EACCES":
    sys.exit(f"(c) an unlock request right after a renewal: {r}, want EACCES")
if not os.path.isdir(theirs) or not os.path.isdir(mine):
    sys.exit("(c) the lock is gone after a refused unlock request")
refused = 1
deadline = t0 + 15
while True:
    t = time.monotonic()
    r = unlock()
    done = time.monotonic()
    if r == "OK":
        break
    if r != "EACCES":
        sys.exit(f"(d) an unlock request got {r}, want EACCES or success")
    refused += 1
    if done > deadline:
        sys.exit(f"(d) no unlock request succeeded within 15 s of the renewal ({refused} refused)")
    time.sleep(0.05)  # polling interval, not synchronisation
if done - t0 < timeout:
    sys.exit(f"(d) the unlock request succeeded {done - t0:.3f} s after the renewal started, before lock_timeout {timeout} s")
print(f"renewal {renewed * 1000:.1f} ms; {refused} unlock requests refused, the one started "
      f"{t - t0:.3f} s after the renewal succeeded")
EOF
echo "(c) an unlock request by node $other right after a renewal: EACCES, the lock stays"
echo "(d) $(cat "$work/unlock")"
on_every_node absent L1
[ "$(op mkdir "$(lock "$third" L1)")" = OK ] || fail "node $third could not take L1 after it was unlocked"
on_every_node present L1
[ "$(op mkdir "$(lock "$holder" L1)")" = EEXIST ] || fail "node $holder took L1 while node $third holds it"
echo "    L1 gone on every node, then taken by node $third"

# (e) the holder releases it with rmdir.
rmdir "$(lock "$third" L1)" || fail "the holder's (node $third) rmdir failed"
on_every_node absent L1
[ "$(op mkdir "$(lock "$holder" L1)")" = OK ] || fail "node $holder could not take L1 after its release"
echo "(e) rmdir by the holder node $third released L1; node $holder took it again"

# (f) no renames of locks.
expect_err "Permission denied" mv "$(lock "$holder" L1)" "$(lock "$holder" L2)"
expect_err "Permission denied" mv "$(lock "$other" L1)" "$(mnt "$other")/priv/L1"
on_every_node present L1
on_every_node absent L2
mkdir "$(mnt "$holder")/priv/notalock" || fail "mkdir priv/notalock"
[ "$(op rename "$(mnt "$holder")/priv/notalock" "$(lock "$holder" L3)")" = EACCES ] ||
    fail "a directory was renamed into priv/lock"
echo "(f) mv of a lock (within priv/lock and out of it) and into priv/lock: EACCES"

# (g) without quorum: EROFS at once.
cluster partition 1,2/3 >/dev/null || fail "partition"
wait_field 15 3 "not s['quorate']" || fail "node 3 did not lose quorum within 15 s"
wait_field 15 1 "s['quorate'] and [m['node_id'] for m in s['members']] == [1, 2]" ||
    fail "nodes 1,2 did not form a quorate ring"
t0=$(date +%s%N)
expect_err "Read-only file system" mkdir "$(lock 3 L3)"
ms=$((($(date +%s%N) - t0) / 1000000))
[ $ms -lt 2000 ] || fail "node 3's EROFS took $ms ms, not 'at once'"
[ -e "$(lock 3 L3)" ] && fail "node 3 shows L3 after EROFS"
mkdir "$(lock 1 L4)" || fail "the majority's mkdir of L4 failed"
cluster heal >/dev/null || fail "heal"
cluster wait-synced 30 >/dev/null || fail "no single synced state after heal"
[ -d "$(lock 3 L4)" ] || fail "node 3 lacks the majority's lock L4 after heal"
[ -e "$(lock 1 L3)" ] && fail "node 3's refused lock L3 appeared"
[ "$(op mkdir "$(lock 3 L3)")" = OK ] || fail "node 3 could not take L3 after heal"
echo "(g) inquorate node 3: mkdir of a lock gets EROFS in $ms ms; after heal it has L4 and takes L3"
echo "ok"
