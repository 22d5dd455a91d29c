#!/bin/bash
# The replicated state on real daemons (N nodes, tools/cluster up bootstraps it):
#  (a) a put workload logging every acknowledged put while nodes are killed with -9 and
#      restarted at seeded random moments: afterwards every acknowledged put is on every
#      node and the content hashes are equal
#  (b) partition 1..N-1/N: the minority's put fails with EROFS at once, the majority's
#      succeed; heal: identical hashes, node N holds the majority's put
#  (c) a node whose store was wiped joins with an empty state and catches up by sync
#  (d) every node killed with -9 at once and restarted: nothing acknowledged is lost
#  and a client that gives up (--timeout) before its answer harms nothing
# usage: test_store.sh SOURCE_ROOT BUILD_DIR [NODES [SEED]]
set -u
top=$1
export CONCLAVE_BUILD=$2
n=${3:-3}
seed=${4:-${CONCLAVE_SEED:-$(od -An -N2 -tu2 /dev/urandom | tr -d ' ')}}
last=$n
majority=$(seq -s , 1 $((n - 1)))
. "$top/tests/cluster/lib.sh"
make_work store
fail() {
    echo "FAIL (seed $seed): $*" >&2
    cluster hashes >&2 2>/dev/null
    for i in $(seq "$n"); do echo "--- node $i log:" >&2; cluster log "$i" 2>/dev/null | tail -25 >&2; done
    [ -f "$work/workload.log" ] && { echo "--- workload log (tail):" >&2; tail -20 "$work/workload.log" >&2; }
    exit 1
}
echo "seed $seed (rerun with: $0 $top $CONCLAVE_BUILD $n $seed)"

cluster up "$n" --name "$name" >/dev/null || fail "up (with bootstrap)"
echo "up: $(cluster hashes | tr '\n' ';')"

# (a) puts while nodes are killed with -9 and restarted.
python3 "$top/tests/cluster/store_workload.py" "$top" "$name" "$n" "$seed" 200 4 "$work/workload.log" ||
    fail "the workload did not run"
cluster wait-synced 60 || fail "no single synced state after the kill/restart episodes"
python3 "$top/tests/cluster/store_workload.py" "$top" "$name" "$n" "$seed" 200 4 "$work/workload.log" check ||
    fail "acknowledged puts lost or wrong after kill -9/restart"
echo "kill -9/restart: $(cluster hashes | tr '\n' ';')"

# Receipts: on the idle ring a lone put is known safe from the members' receipts (the
# token need not go round first), so node 1 receives some.
receipts() { ctl 1 counters | awk '$1 == "ring.receipts_received:" {print $2}'; }
r0=$(receipts)
for k in 1 2 3; do echo "r$k" | ctl 1 put "/receipt-$k" || fail "put /receipt-$k"; done
r1=$(receipts)
[ -n "$r0" ] && [ -n "$r1" ] && [ "$r1" -gt "$r0" ] || fail "no receipts for puts on an idle ring ($r0 -> $r1)"
echo "receipts received by node 1 for 3 puts: $((r1 - r0))"

# The apply worker's latencies in status: every node fsync'd its journal for those puts,
# and the text shows the fsync row.
for i in $(seq "$n"); do
    [ "$(field "$i" "(lambda l: l['window'] == 1024 and l['fsync']['samples'] >= 3 and
        0 < l['fsync']['p50'] <= l['fsync']['max'] and l['commit']['samples'] >= l['fsync']['samples'])
        (s['state']['apply']['latency_us'])")" = True ] ||
        fail "node $i: apply latencies missing or wrong: $(field "$i" "s['state']['apply']")"
done
ctl 2 status | grep -Eq '^Journal fsync: +p50 [0-9]+ µs, p99 [0-9]+ µs, max [0-9]+ µs \(last [0-9]+ commits\)$' ||
    fail "conclavectl status shows no journal fsync row: $(ctl 2 status | grep -i fsync)"
echo "journal fsync on node 2: $(ctl 2 status | sed -n 's/^Journal fsync: *//p')"

# (b) partition: the minority cannot write, the majority can; heal converges.
cluster partition "$majority/$last" >/dev/null || fail "partition"
# A client that gives up before the answer (the ring is stalled until it re-forms): it
# exits 1 saying so; the daemon's late answer is dropped and the daemon carries on.
pid1=$(cat "$dir/node1/pid")
echo gave-up | ctl 1 --timeout 0.2 put /gave-up 2> "$work/err1"; rc=$?
[ $rc = 1 ] && grep -q "no answer from conclaved within 0.2 s" "$work/err1" ||
    fail "a put with --timeout 0.2 on a stalled ring: exit $rc, $(cat "$work/err1")"
wait_field 15 "$last" "s['state']['phase'] == 'synced' and [m['node_id'] for m in s['members']] == [$last]" ||
    fail "node $last did not form its own ring"
wait_field 15 1 "s['quorate'] and [m['node_id'] for m in s['members']] == [$majority]" ||
    fail "nodes $majority did not form a quorate ring"
t0=$(date +%s%N)
echo minority | ctl "$last" put /minority 2> "$work/err3"; rc=$?
ms=$((($(date +%s%N) - t0) / 1000000))
[ $rc != 0 ] || fail "a put on the minority node $last succeeded"
grep -q "Read-only" "$work/err3" || fail "minority put error is not EROFS: $(cat "$work/err3")"
[ $ms -lt 2000 ] || fail "the minority's EROFS took $ms ms, not 'at once'"
echo "minority put: $(cat "$work/err3") (${ms} ms)"
for k in 1 2 3; do
    echo "majority $k" | ctl 1 put "/majority$k" || fail "a put on the majority node 1 failed"
done
echo "majority put x3 on node 1: acknowledged"
ctl "$last" get /majority1 >/dev/null 2>&1 && fail "node $last has the majority's put while partitioned"
cluster heal >/dev/null || fail "heal"
cluster wait-synced 30 || fail "no single synced state after heal"
[ "$(ctl "$last" get /majority3)" = "majority 3" ] || fail "node $last lacks the majority's put after heal"
ctl 2 get /minority >/dev/null 2>&1 && fail "the minority's refused put appeared"
cluster log "$last" | grep -Eq "synced at version [0-9]+ from node [0-9]+ by log \([0-9]+ transitions\)" ||
    fail "node $last's log does not say it synced by log: $(cluster log "$last" | grep 'synced at' | tail -2)"
[ "$(cat "$dir/node1/pid")" = "$pid1" ] && kill -0 "$pid1" || fail "node 1's daemon died after a client gave up"
echo "healed: $(cluster hashes | tr '\n' ';')"

# (c) a fresh node: node N's store wiped, it rejoins empty and catches up by sync.
cluster kill "$last" || fail "kill node $last"
rm -rf "$dir/node$last/state/store"
echo "written while node $last is away" | ctl 1 put /while-away || fail "put with node $last down"
cluster start "$last" || fail "restart node $last with an empty store"
cluster wait-synced 30 || fail "the wiped node did not catch up"
[ "$(ctl "$last" get /while-away)" = "written while node $last is away" ] || fail "node $last lacks /while-away after sync"
[ "$(ctl "$last" get /majority1)" = "majority 1" ] || fail "node $last lacks /majority1 after sync"
echo "fresh node $last synced: $(cluster hashes | tr '\n' ';')"

# (d) the whole cluster killed at once: everything acknowledged is on disk.
for i in $(seq "$n"); do cluster kill "$i" || fail "kill node $i"; done
for i in $(seq "$n"); do cluster start "$i" || fail "restart node $i"; done
cluster wait-synced 30 || fail "no single synced state after restarting every node"
python3 "$top/tests/cluster/store_workload.py" "$top" "$name" "$n" "$seed" 200 4 "$work/workload.log" check ||
    fail "acknowledged puts lost after killing every node"
[ "$(ctl 2 get /while-away)" = "written while node $last is away" ] || fail "/while-away lost after a full restart"
echo "all nodes killed and restarted: $(cluster hashes | tr '\n' ';')"
echo "ok"
