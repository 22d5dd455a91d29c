#!/bin/bash
# Real daemons in network namespaces: ring formation, failover, rejoin, partition and
# heal, process-group messages in one total order, wrong keys and garbage counted.
# usage: test_ring.sh SOURCE_ROOT BUILD_DIR NODES TRANSPORT
set -u
top=$1
export CONCLAVE_BUILD=$2
n=$3
transport=$4
. "$top/tests/cluster/lib.sh"
fail() {
    echo "FAIL ($n nodes, $transport): $*" >&2
    for i in $(seq "$n"); do echo "--- node $i log:" >&2; cluster log "$i" 2>/dev/null | tail -15 >&2; done
    exit 1
}
members() { field "$1" "' '.join(str(m['node_id']) for m in s['members']) if s['ring_state']=='operational' else 'not-operational'"; }
# Waits (deadline in seconds) until every listed node shows exactly these members.
wait_members() {
    local deadline=$1 want=$2
    shift 2
    local end=$(($(date +%s%N) + deadline * 1000000000))
    while :; do
        local ok=1
        for i in "$@"; do [ "$(members "$i")" = "$want" ] || { ok=0; break; }; done
        [ $ok = 1 ] && return 0
        [ "$(date +%s%N)" -gt $end ] && return 1
        sleep 0.05
    done
}
all=$(seq -s ' ' 1 "$n")

cluster up "$n" --name "$name" --transport "$transport" >/dev/null || fail "up"
wait_members 15 "$all" $all || fail "no single ring of $all: $(for i in $all; do echo "node $i: $(members $i);"; done)"
ring1=$(field 1 "s['ring']")
for i in $all; do [ "$(field "$i" "s['ring']")" = "$ring1" ] || fail "nodes disagree on the ring id"; done
[ "$(field 1 "s['quorate']")" = True ] || fail "not quorate with every node up"
echo "formed: ring $ring1, members $all"

# Runs conclave-bench ring-node on every node in process group $1 (further arguments go
# to it); fails unless every node's client delivered the same number of messages. Leaves
# that number in $totals and node 1's report in $report1.
group_run() {
    group=$1
    shift
    for i in $all; do
        cluster exec "$i" conclave-bench ring-node --socket "/run/conclave-cluster/$name/node$i/control.sock" \
            --group "$group" --nodes "$n" --index "$i" --size 200 --secs 1 --warmup 0.2 "$@" \
            > "/tmp/$name-out$i" 2> "/tmp/$name-err$i" &
    done
    wait
    for i in $all; do
        grep -q '"delivered_window"' "/tmp/$name-out$i" || fail "node $i's $group client: $(cat "/tmp/$name-err$i")"
    done
    totals=$(for i in $all; do python3 -c "import json; print(json.load(open('/tmp/$name-out$i'))['delivered_total'])"; done | sort -u)
    report1=$(cat "/tmp/$name-out1")
    rm -f /tmp/$name-*
    [ "$(echo "$totals" | wc -l)" = 1 ] || fail "group $group: nodes delivered different numbers of messages: $totals"
}

# Ordered process-group messages: every node's client sees the same sequence.
group_run order --senders all
echo "group messages: every node delivered $totals"

# A lone writer (node 1, one message outstanding): node 1 keeps the token for its
# client's next message (system.token_linger), and every node still delivers them all.
lingers() { cluster exec 1 conclavectl counters | awk '$1 == "ring.lingers:" {print $2}'; }
before=$(lingers)
group_run lone --senders one --window 1
after=$(lingers)
p50=$(echo "$report1" | python3 -c "import json, sys; print(json.load(sys.stdin)['lat_p50_us'])")
[ -n "$before" ] && [ -n "$after" ] && [ "$after" -gt "$before" ] ||
    fail "lone writer: node 1 never kept the token for its next message (ring.lingers $before -> $after)"
echo "lone writer: every node delivered $totals, p50 $p50 us, node 1 lingered $((after - before)) times"

# kill -9 the highest node: the others form a new ring, quickly.
last=$n
rest=$(seq -s ' ' 1 $((n - 1)))
t0=$(date +%s%N)
cluster kill "$last" || fail "kill -9 node $last"
wait_members 10 "$rest" $rest || fail "survivors did not form a ring without node $last"
# From the kill to node 1's log line of the new ring (the daemon's own timestamp).
formed=$(cluster log 1 | grep "formed: members \[$rest\]" | tail -1 | cut -d' ' -f1)
ms=$(python3 -c "
import datetime
t=datetime.datetime.strptime('$formed','%Y-%m-%dT%H:%M:%S.%fZ').replace(tzinfo=datetime.timezone.utc).timestamp()
print(int((t - $t0 / 1e9) * 1000))")
echo "failover after kill -9 of node $last: $ms ms (kill to the survivors' new ring)"

cluster start "$last" || fail "restart node $last"
wait_members 15 "$all" $all || fail "node $last did not rejoin"
echo "node $last rejoined"

if [ "$n" -ge 3 ]; then
    cluster partition "$(echo "$rest" | tr ' ' ,)/$last" >/dev/null || fail "partition"
    wait_members 10 "$rest" $rest || fail "majority side did not form its own ring"
    wait_members 10 "$last" "$last" || fail "node $last did not form its own ring"
    [ "$(field 1 "s['quorate']")" = True ] || fail "majority side not quorate"
    [ "$(field "$last" "s['quorate']")" = False ] || fail "minority side quorate"
    echo "partition $rest/$last: two rings, majority quorate"
    cluster heal >/dev/null || fail "heal"
    wait_members 15 "$all" $all || fail "no single ring after heal"
    echo "healed: one ring again"
fi

# Garbage and a replayed datagram sent to node 1's port are counted, nothing else happens.
addr1=$(cluster exec 1 ip -4 -br addr show eth0 | awk '{print $3}' | cut -d/ -f1)
before=$(field 1 "s['rejected']['malformed']")
cluster exec 2 python3 -c "
import socket
s=socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
for i in range(5): s.sendto(b'garbage'*(i+1), ('$addr1', 5405))
s.sendto(b'CNCL\x02\x01\x00\x00'+b'\x00'*60, ('$addr1', 5405))
"
end=$(($(date +%s) + 10))
until [ "$(field 1 "s['rejected']['malformed'] + s['rejected']['other_cluster']")" -ge $((before + 6)) ]; do
    [ "$(date +%s)" -gt $end ] && fail "garbage not counted: $(field 1 "s['rejected']")"
    sleep 0.05
done
wait_members 5 "$all" $all || fail "garbage disturbed the ring"
echo "garbage counted as rejected: $(field 1 "s['rejected']")"

# A datagram node 2 really received, sent to it once more, is rejected as a replay.
addr2=$(cluster exec 2 ip -4 -br addr show eth0 | awk '{print $3}' | cut -d/ -f1)
before=$(field 2 "s['rejected']['replay']")
cluster exec 2 python3 -c "
import socket, struct
cap = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.ntohs(0x0800))
cap.bind(('eth0', 0))
cap.settimeout(10)
while True:
    frame = cap.recv(65535)
    ip = frame[14:]
    ihl = (ip[0] & 15) * 4
    if ip[9] == 17 and socket.inet_ntoa(ip[12:16]) == '$addr1' and struct.unpack('!H', ip[ihl+2:ihl+4])[0] == 5405:
        payload = ip[ihl+8:]
        break
socket.socket(socket.AF_INET, socket.SOCK_DGRAM).sendto(payload, ('$addr2', 5405))
" || fail "could not capture and resend a datagram"
end=$(($(date +%s) + 10))
until [ "$(field 2 "s['rejected']['replay']")" -gt "$before" ]; do
    [ "$(date +%s)" -gt $end ] && fail "the replayed datagram was not counted: $(field 2 "s['rejected']")"
    sleep 0.05
done
echo "replayed datagram rejected: $(field 2 "s['rejected']")"

# A unicast node 2 sealed for node 3 (the token), captured on node 3 and sent to node 1,
# is refused there as misdirected: node 1 never saw those counters, so the replay window
# alone would take it as new, and it must not move where node 1 sends to node 2.
addr3=$(cluster exec 3 ip -4 -br addr show eth0 | awk '{print $3}' | cut -d/ -f1)
before=$(field 1 "s['rejected']['misdirected']")
cluster exec 3 python3 -c "
import socket, struct, sys, time
cap = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.ntohs(0x0800))
cap.bind(('eth0', 0))
cap.settimeout(10)
end = time.monotonic() + 15
while True:
    if time.monotonic() > end: sys.exit('no unicast from node 2 to node 3 seen in 15 s')
    frame = cap.recv(65535)
    ip = frame[14:]
    ihl = (ip[0] & 15) * 4
    if ip[9] != 17 or socket.inet_ntoa(ip[12:16]) != '$addr2' or struct.unpack('!H', ip[ihl+2:ihl+4])[0] != 5405:
        continue
    payload = ip[ihl+8:]
    # header: sender at 16, receiver at 48 (wire/datagram.h)
    if len(payload) > 52 and struct.unpack('<I', payload[48:52])[0] == 3:
        break
socket.socket(socket.AF_INET, socket.SOCK_DGRAM).sendto(payload, ('$addr1', 5405))
" || fail "could not capture node 2's unicast to node 3 and send it to node 1"
end=$(($(date +%s) + 10))
until [ "$(field 1 "s['rejected']['misdirected']")" -gt "$before" ]; do
    [ "$(date +%s)" -gt $end ] && fail "node 2's unicast for node 3 was not refused by node 1: $(field 1 "s['rejected']")"
    sleep 0.05
done
[ "$(field 1 "[l['address'] for l in s['links'] if l['node'] == 2][0]")" = "$addr2" ] ||
    fail "node 1 now sends to node 2 at $(field 1 "s['links']")"
wait_members 5 "$all" $all || fail "the misdirected datagram disturbed the ring"
echo "misdirected unicast refused: $(field 1 "s['rejected']")"

# links and counters answer.
cluster exec 1 conclavectl links | grep -q "$addr2" || fail "links does not show node 2"
cluster exec 1 conclavectl counters | grep -q "^rejected.malformed: " || fail "counters lacks rejections"

# A node with the wrong key cannot join; its packets are counted as unknown_key.
cluster kill "$last" || fail "kill node $last"
wait_members 10 "$rest" $rest || fail "survivors did not reform"
"$CONCLAVE_BUILD/src/ctl/conclavectl" keygen -o "$dir/wrongkey" >/dev/null || fail "keygen"
sed -e "s|key_file: .*|key_file: $dir/wrongkey|" -e "s|$dir/node$last/|$dir/rogue/|" \
    "$dir/node$last/conclave.conf" > "$dir/rogue.conf"
mkdir -p "$dir/rogue"
# Not through the cluster() function: $! must be the daemon's own PID (tools/cluster
# exec execs into it), so that exactly this process is killed.
"$top/tools/cluster" exec "$last" conclaved -c "$dir/rogue.conf" 2> "$dir/rogue/log" &
rogue=$!
trap 'kill -9 $rogue 2>/dev/null; cluster down "$name" >/dev/null 2>&1' EXIT
end=$(($(date +%s) + 10))
until [ "$(field 1 "s['rejected']['unknown_key']")" -gt 0 ]; do
    [ "$(date +%s)" -gt $end ] && fail "the wrong key's packets were not counted: $(field 1 "s['rejected']")"
    sleep 0.05
done
[ "$(members 1)" = "$rest" ] || fail "a node with the wrong key got into the ring: $(members 1)"
kill -9 $rogue
wait $rogue 2>/dev/null
echo "wrong key: kept out, $(field 1 "s['rejected']['unknown_key']") datagrams rejected as unknown_key"
echo "ok"
