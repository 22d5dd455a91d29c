#!/bin/bash
# Two nodes that each created their own cluster while cut off from each other: when the
# network heals, the node whose state belongs to the other cluster id refuses to join,
# says why and what to do, and stops; the other carries on.
# usage: test_foreign.sh SOURCE_ROOT BUILD_DIR
set -u
top=$1
export CONCLAVE_BUILD=$2
. "$top/tests/cluster/lib.sh"
fail() {
    echo "FAIL: $*" >&2
    for i in 1 2; do echo "--- node $i log:" >&2; cluster log "$i" 2>/dev/null | tail -15 >&2; done
    exit 1
}
alone() {  # alone I: node I is synced in a ring of its own
    ctl "$1" status --json 2>/dev/null | python3 -c "
import json, sys
s = json.load(sys.stdin)
sys.exit(0 if [m['node_id'] for m in s['members']] == [$1] and s['state']['phase'] == 'synced' else 1)"
}
until_true() {  # until_true SECS CMD...
    local end=$(($(date +%s%N) + $1 * 1000000000))
    shift
    until "$@"; do
        [ "$(date +%s%N)" -gt $end ] && return 1
        sleep 0.05
    done
}

cluster up 2 --name "$name" --no-bootstrap >/dev/null || fail "up"
cluster partition 1/2 >/dev/null || fail "partition"
until_true 15 alone 1 && until_true 15 alone 2 || fail "the nodes did not split"
ctl 1 create >/dev/null || fail "create on node 1"
ctl 2 create >/dev/null || fail "create on node 2"
pid2=$(cat "$dir/node2/pid")
cluster heal >/dev/null || fail "heal"
gone() { ! kill -0 "$pid2" 2>/dev/null && ! kill -0 "$(cat "$dir/node1/pid")" 2>/dev/null; }
one_left() { ! kill -0 "$(cat "$dir/node1/pid")" 2>/dev/null || ! kill -0 "$(cat "$dir/node2/pid")" 2>/dev/null; }
until_true 20 one_left || fail "both nodes still run after the heal"
gone && fail "both nodes stopped"
# The one that stopped says why; the other is quorate on its own cluster.
for i in 1 2; do
    if ! kill -0 "$(cat "$dir/node$i/pid")" 2>/dev/null; then
        cluster log "$i" | grep -q "refusing to join" || fail "node $i stopped without saying why"
        cluster log "$i" | grep -q "stopped on an error" || fail "node $i: no 'stopped on an error'"
        other=$((3 - i))
    fi
done
until_true 15 alone "$other" || fail "node $other is not running on its own"
ctl "$other" status >/dev/null || fail "node $other is not quorate"
echo "ok: the node with the other cluster's state refused to join and stopped"
