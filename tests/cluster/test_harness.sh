#!/bin/bash
# The netns harness itself: up, per-node exec and status, kill -9 and restart, partition
# and heal, down leaving nothing behind (also a killed daemon's stale tree mount, and
# also when this test fails midway).
set -u
top=$1
export CONCLAVE_BUILD=$2
. "$top/tests/cluster/lib.sh"
fail() { echo "FAIL: $*" >&2; exit 1; }

cluster up 3 --name "$name" >/dev/null || fail "up"
for i in 1 2 3; do
    out=$(cluster exec "$i" conclavectl status)
    rc=$?
    [ $rc = 0 ] || [ $rc = 2 ] || fail "node $i status exit code $rc"
    echo "$out" | grep -q "Node: *$i (node$i)" || fail "node $i status: $out"
done
addr3=$(cluster exec 3 ip -4 -br addr show eth0 | awk '{print $3}' | cut -d/ -f1)
cluster exec 1 ping -c1 -W2 "$addr3" >/dev/null || fail "node 1 cannot reach node 3"

cluster kill 2 || fail "kill -9 node 2"
cluster exec 2 conclavectl status >/dev/null 2>&1; [ $? = 1 ] || fail "node 2 answers after kill -9"
cluster start 2 || fail "restart node 2"
cluster exec 2 conclavectl status >/dev/null; rc=$?
[ $rc = 0 ] || [ $rc = 2 ] || fail "node 2 does not answer after restart"

cluster partition 1,2/3 >/dev/null || fail "partition"
cluster exec 1 ping -c1 -W1 "$addr3" >/dev/null 2>&1 && fail "partition let node 1 reach node 3"
cluster heal >/dev/null || fail "heal"
cluster exec 1 ping -c1 -W2 "$addr3" >/dev/null || fail "heal did not restore node 1 -> node 3"

# A daemon killed with -9 leaves its tree mount behind (stale): down removes it too.
cluster kill 3 || fail "kill -9 node 3"
grep -q "/run/conclave-cluster/$name/node3/mnt " /proc/self/mountinfo || fail "node 3's tree was not mounted"
cluster down "$name" || fail "down"
grep -q "/run/conclave-cluster/$name/" /proc/self/mountinfo && fail "tree mounts left behind"
ip netns list | grep -q "^$name-" && fail "namespaces left behind"
ip -br link | grep -q "^$name-" && fail "links left behind"
[ -e "/run/conclave-cluster/$name" ] && fail "state left behind"
echo "harness: ok"
