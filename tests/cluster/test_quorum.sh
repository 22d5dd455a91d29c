#!/bin/bash
# Quorum (votequorum) and the cluster's configuration on real daemons (issue 7).
#
#   split     5 nodes, partition 1,2,3/4,5: puts succeed on node 1 and get EROFS on node 4;
#             a second node list change while one is pending is refused (EBUSY);
#             `conclavectl expected 2` on node 4 makes that side writable and is logged
#             loudly; heal: one ring, identical state, and the history with the higher
#             (epoch, version) wins: the other side's changes are logged and listed in
#             <state_dir>/discarded.log by path (a path that is not UTF-8 in base64 too);
#             the override is cleared. Twice: once with more changes on the majority,
#             once with more on the minority
#   two_node  2 nodes, `quorum set two_node 1`: the survivor of a kill -9 stays quorate
#             and takes puts; the killed node rejoins and catches up. `totem set`: a
#             refused combination; a setting in force everywhere, and after a restart
#   members   3 nodes and a spare: `node add` of a 4th node that then starts and syncs and
#             counts in the votes; `node remove` refused while it runs (EBUSY); stopped and
#             `node remove`d: expected votes back to 3.
#             Then `quorum set wait_for_all 1`, every node stopped, two started: not
#             quorate (exit 2, WaitForAll, "Activity blocked"); the third started:
#             quorate; one stopped again: still quorate (2 of 3)
#
# usage: test_quorum.sh SOURCE_ROOT BUILD_DIR split|two_node|members
set -u
top=$1
export CONCLAVE_BUILD=$2
mode=$3
. "$top/tests/cluster/lib.sh"
make_work quorum
nodes=0
fail() {
    echo "FAIL ($mode): $*" >&2
    cluster hashes >&2 2>/dev/null
    for i in $(seq "$nodes"); do echo "--- node $i log:" >&2; cluster log "$i" 2>/dev/null | tail -25 >&2; done
    exit 1
}
wait_file() {  # wait_file SECS FILE PATTERN: until FILE has a line matching PATTERN
    local end=$(($(date +%s%N) + $1 * 1000000000))
    until grep -q -- "$3" "$2" 2>/dev/null; do
        [ "$(date +%s%N)" -gt $end ] && return 1
        sleep 0.05
    done
}
# expect RC PATTERN CMD...: exit code RC and stdout+stderr matching PATTERN
expect() {
    local want=$1 pattern=$2 rc
    shift 2
    "$@" > "$work/out" 2>&1
    rc=$?
    [ "$rc" = "$want" ] || fail "'$*' exited $rc, not $want: $(cat "$work/out")"
    grep -q -- "$pattern" "$work/out" || fail "'$*' lacks '$pattern': $(cat "$work/out")"
}
ring_is() {  # ring_is LIST: a python condition "synced ring with exactly these members"
    echo "s['ring_state'] == 'operational' and s['state']['phase'] == 'synced' and sorted(m['node_id'] for m in s['members']) == [$1]"
}

# One round of split: partition 1,2,3/4,5, the majority makes MAJOR puts, node 4's side
# gets `expected 2` and makes MINOR puts (and both sides write /rR/both); heal; the side
# with the higher (epoch, version) wins, the other's changes are in its discarded.log.
split_round() {  # split_round R MAJOR MINOR
    local r=$1 major=$2 minor=$3 k
    ctl 1 mkdir "/r$r" || fail "mkdir /r$r"
    cluster partition 1,2,3/4,5 >/dev/null || fail "partition"
    if [ "$r" = 1 ]; then
        # The ring is stalled until it re-forms (token loss): a node list change from node
        # 1 stays pending meanwhile (its client gives up), and a second one is refused.
        ctl 1 --timeout 0.3 votes 1 1 > /dev/null 2>&1
        expect 1 "Device or resource busy (another node list change" ctl 1 votes node2 1
        echo "second node list change while one is pending: $(head -1 "$work/out")"
    fi
    wait_field 20 1 "s['quorate'] and $(ring_is 1,2,3)" || fail "nodes 1,2,3 did not form a quorate ring"
    wait_field 20 4 "$(ring_is 4,5)" || fail "nodes 4,5 did not form their own ring"
    for k in $(seq "$major"); do echo "majority $k" | ctl 1 put "/r$r/major$k" || fail "put $k on the majority"; done
    echo "majority" | ctl 1 put "/r$r/both" || fail "put /r$r/both on node 1"
    expect 1 "put /r$r/minor1: Read-only file system" ctl 4 put "/r$r/minor1" /dev/null
    [ "$r" = 1 ] && echo "minority put: $(head -1 "$work/out")"
    if [ "$r" = 1 ]; then
        # 5 votes for absent node 4: 3 of 9 votes, the majority would stop (votequorum
        # refuses such a change too).
        expect 1 "this partition would lose quorum (3 of 9 expected votes, quorum 5)" ctl 1 votes 4 5
        [ "$(field 1 "s['quorate']")" = True ] || fail "the refused votes change cost quorum"
    fi
    expect 2 "Activity blocked" ctl 4 status
    # Recovery of the fragment: refused below the votes present (as Corosync), then 2.
    expect 1 "below the 2 votes present" ctl 4 expected 1
    expect 1 "above the configured 5" ctl 4 expected 6
    ctl 4 expected 2 > /dev/null || fail "expected 2 on node 4"
    wait_field 10 4 "s['quorate']" || fail "expected 2 did not make node 4 quorate"
    wait_field 10 5 "s['quorate']" || fail "expected 2 on node 4 did not make node 5 quorate"
    [ "$(grep -c "OPERATOR OVERRIDE: expected votes set to 2" "$dir/node4/log")" = "$r" ] ||
        fail "node 4's log lacks the override"
    expect 0 "ExpectedOverride" ctl 4 status
    for k in $(seq "$minor"); do echo "minority $k" | ctl 4 put "/r$r/minor$k" || fail "put $k on node 4 under the override"; done
    echo "minority" | ctl 5 put "/r$r/both" || fail "put /r$r/both on node 5 under the override"
    # A name in the tree may be any bytes (not UTF-8): the losing side records its change
    # exactly too (path_base64). Recording one once killed the daemon.
    python3 -c "import sys; open(sys.argv[1].encode() + b'/bad\xfe', 'w').write('x')" "$dir/node4/mnt/r$r" ||
        fail "write /r$r/bad\\xfe through node 4's mount"
    python3 -c "import sys; open(sys.argv[1].encode() + b'/bad\xff', 'w').write('x')" "$dir/node1/mnt/r$r" ||
        fail "write /r$r/bad\\xff through node 1's mount"
    [ "$r" = 1 ] && echo "override: node 4 writable; $(grep -m1 -o 'OPERATOR OVERRIDE: [^;]*' "$dir/node4/log")"
    # Which history will win: the higher (epoch, version), the higher node id on a tie
    # (DESIGN.md §6.4).
    local h1 h4 winner
    h1=$(field 1 "[s['state']['epoch'], s['state']['version']]") || fail "head of node 1"
    h4=$(field 5 "[s['state']['epoch'], s['state']['version']]") || fail "head of node 5"
    winner=$(python3 -c "print('minority' if $h4 >= $h1 else 'majority')") || fail "heads: $h1 $h4"
    echo "round $r: heads before heal: majority (epoch, version) = $h1, minority $h4: the $winner's history wins"
    cluster heal >/dev/null || fail "heal"
    cluster wait-synced 40 || fail "no single synced state after heal"
    local losers lost kept
    if [ "$winner" = majority ]; then losers="4 5" lost="/r$r/minor1" kept="/r$r/major1"
    else losers="1 2 3" lost="/r$r/major1" kept="/r$r/minor1"; fi
    for i in 1 2 3 4 5; do
        ctl "$i" get "$kept" > /dev/null || fail "node $i lacks $kept"
        [ "$(ctl "$i" get "/r$r/both")" = "$winner" ] || fail "node $i: /r$r/both is not the $winner's"
        ctl "$i" get "$lost" > /dev/null 2>&1 && fail "node $i holds the replaced $lost"
    done
    for i in $losers; do
        wait_file 10 "$dir/node$i/state/discarded.log" "\"path\":\"$lost\"" ||
            fail "node $i's discarded.log lacks $lost: $(cat "$dir/node$i/state/discarded.log" 2>&1)"
        wait_file 5 "$dir/node$i/state/discarded.log" "\"path\":\"/r$r/both\"" || fail "node $i's discarded.log lacks /r$r/both"
        local bad
        bad=$(python3 -c "import base64; print(base64.b64encode(b'/r$r/bad' + (b'\xfe' if '$winner' == 'majority' else b'\xff')).decode())")
        wait_file 5 "$dir/node$i/state/discarded.log" "\"path_base64\":\"$bad\"" ||
            fail "node $i's discarded.log lacks the non-UTF-8 path ($bad): $(cat "$dir/node$i/state/discarded.log" 2>&1)"
        grep -q "are not in the cluster's history" "$dir/node$i/log" || fail "node $i's log lacks the warning"
        [ "$(field "$i" "s['discarded']['total'] >= 2")" = True ] || fail "node $i's discarded counter"
    done
    for i in 1 2 3 4 5; do
        [ "$(field "$i" "s['quorum']['flags']['override_expected']")" = False ] || fail "node $i: override not cleared"
        [ "$(field "$i" "s['quorum']['expected_votes']")" = 5 ] || fail "node $i: expected votes not back to 5"
    done
    echo "round $r: discarded.log of node ${losers%% *}: $(grep "/r$r/" "$dir/node${losers%% *}/state/discarded.log" | cut -c1-120 | head -2 | tr '\n' ' ')"
}

split() {
    nodes=5
    cluster up 5 --name "$name" >/dev/null || fail "up 5"
    echo "before" | ctl 1 put /before || fail "put before the split"
    # Round 1: the majority makes more changes (usually wins); round 2: the minority does
    # (usually wins: an override can replace acknowledged writes of the majority).
    split_round 1 3 1
    split_round 2 1 5
    [ "$(ctl 5 get /before)" = before ] || fail "/before lost"
    echo "healed: $(cluster hashes | tr '\n' ';')"

    # last_man_standing: {1,2,3} lowers expected votes to 3; then {1,2} / {3,4,5}. By
    # numbers both halves would be quorate (2 of 3, and 3 of the node list's 5); only
    # the votes of the lowered set count, so {3,4,5} holds 1 of 3 and stays read-only.
    ctl 1 quorum set last_man_standing 1 > /dev/null || fail "quorum set last_man_standing 1"
    ctl 1 quorum set last_man_standing_window 1000 > /dev/null || fail "quorum set last_man_standing_window"
    cluster wait-synced 30 > /dev/null || fail "not synced after the quorum settings"
    cluster partition 1,2,3/4,5 > /dev/null || fail "partition 1,2,3/4,5"
    wait_field 30 1 "s['quorum']['expected_votes'] == 3 and $(ring_is 1,2,3)" ||
        fail "last_man_standing did not lower expected votes to 3 on {1,2,3}"
    cluster partition 1,2/3,4,5 > /dev/null || fail "partition 1,2/3,4,5"
    wait_field 30 1 "s['quorate'] and $(ring_is 1,2)" || fail "{1,2} not quorate with 2 of the lowered 3"
    wait_field 30 3 "$(ring_is 3,4,5)" || fail "{3,4,5} did not form a ring"
    for i in 3 4 5; do
        [ "$(field "$i" "s['quorate']")" = False ] || fail "{3,4,5} quorate too: two quorate partitions"
    done
    echo lms | ctl 1 put /lms || fail "put on {1,2}"
    expect 1 "Read-only file system" ctl 3 put /lms3 /dev/null
    cluster heal > /dev/null || fail "heal"
    cluster wait-synced 30 > /dev/null || fail "not synced after the heal"
    [ "$(ctl 4 get /lms)" = lms ] || fail "/lms, acknowledged on {1,2}, lost after the heal"
    [ "$(field 1 "s['quorum']['expected_votes']")" = 5 ] || fail "expected votes not back to 5"
    echo "last_man_standing: {1,2} quorate, {3,4,5} not; /lms kept after the heal"
}

two_node() {
    nodes=2
    cluster up 2 --name "$name" >/dev/null || fail "up 2"
    ctl 1 quorum set two_node 1 > /dev/null || fail "quorum set two_node 1"
    wait_field 10 2 "s['quorum']['flags']['two_node']" || fail "two_node not in force on node 2"
    expect 0 "Flags: *2Node Quorate WaitForAll" ctl 1 status
    expect 0 "^Quorum: *1 *$" ctl 1 status
    echo "a" | ctl 1 put /a || fail "put with both nodes"
    # A cluster-wide ring setting: refused when the ring could not use it, else in force
    # on every node at once and, from the replicated state, after a restart.
    expect 1 "must be longer than token_retransmit" ctl 1 totem set token_retransmit 1000
    expect 2 "the value is 20 to 60000" ctl 1 totem set merge 5
    ctl 1 totem set merge 150 > /dev/null || fail "totem set merge 150"
    wait_field 10 2 "s['totem']['in_force']['merge'] == 150" || fail "merge 150 not in force on node 2"
    cluster kill 2 || fail "kill -9 node 2"
    wait_field 20 1 "s['quorate'] and $(ring_is 1)" || fail "node 1 is not quorate alone"
    echo "alone" | ctl 1 put /alone || fail "put on the survivor"
    echo "survivor quorate alone: put acknowledged"
    cluster start 2 || fail "restart node 2"
    cluster wait-synced 30 || fail "node 2 did not rejoin"
    [ "$(ctl 2 get /alone)" = alone ] || fail "node 2 lacks /alone after rejoining"
    [ "$(field 2 "s['totem']['in_force']['merge'], s['totem']['settings']")" = "150 {'merge': 150}" ] ||
        fail "node 2 did not start with merge 150: $(field 2 "s['totem']")"
    grep -q "ring settings from the replicated state: merge=150" "$dir/node2/log" || fail "node 2's log lacks its ring settings"
    echo "b" | ctl 2 put /b || fail "put on node 2 after rejoining"
    cluster wait-synced 10 || fail "not identical after the last put"
    echo "rejoined: $(cluster hashes | tr '\n' ';')"
}

members() {
    nodes=4
    cluster up 3 --spare 1 --name "$name" >/dev/null || fail "up 3 --spare 1"
    echo "x" | ctl 1 put /x || fail "put"
    ctl 1 node add node4 --id 4 > /dev/null || fail "node add node4 --id 4"
    wait_field 10 2 "s['quorum']['expected_votes'] == 4 and s['quorum']['total_votes'] == 3 and s['quorate']" ||
        fail "after node add: not 3 of 4 votes, quorate"
    expect 1 "File exists" ctl 1 node add node4 --id 4
    cluster start 4 || fail "start node 4"
    cluster wait-synced 30 || fail "node 4 did not sync"
    [ "$(ctl 4 get /x)" = x ] || fail "node 4 lacks /x"
    [ "$(field 4 "s['quorum']['total_votes']")" = 4 ] || fail "node 4's vote does not count"
    echo "node 4 added, synced, 4 of 4 votes"
    expect 1 "is in the ring now: stop conclaved on it first" ctl 1 node remove node4
    expect 1 "is this node" ctl 1 node remove 1
    cluster stop 4 || fail "stop node 4"
    wait_field 20 1 "s['quorate'] and $(ring_is 1,2,3)" || fail "nodes 1,2,3 without node 4"
    ctl 1 node remove node4 > /dev/null || fail "node remove node4"
    for i in 1 2 3; do
        wait_field 10 "$i" "s['quorum']['expected_votes'] == 3 and len(s['state']['nodes']) == 3" ||
            fail "node $i: expected votes not back to 3 after node remove"
    done
    expect 1 "No such file or directory" ctl 1 node remove 4
    echo "node 4 removed: expected votes 3"

    ctl 2 quorum set wait_for_all 1 > /dev/null || fail "quorum set wait_for_all 1"
    wait_field 10 3 "s['quorum']['options']['wait_for_all']" || fail "wait_for_all did not reach node 3"
    for i in 1 2 3; do cluster stop "$i" || fail "stop node $i"; done
    cluster start 1 && cluster start 2 || fail "start nodes 1, 2"
    wait_field 20 1 "$(ring_is 1,2)" || fail "nodes 1,2 did not form a ring"
    expect 2 "Activity blocked" ctl 1 status
    grep -q "^Flags: .*WaitForAll" "$work/out" || fail "no WaitForAll flag: $(cat "$work/out")"
    grep -q "^Flags: .*Quorate" "$work/out" && fail "Quorate flag while waiting for all"
    expect 1 "waiting for all nodes (wait_for_all)" ctl 2 put /y /dev/null
    grep -q "Read-only file system" "$work/out" || fail "not EROFS: $(cat "$work/out")"
    echo "after a full restart, 2 of 3 nodes: not quorate (wait_for_all)"
    # The documented way out when node 3 is gone for good: an override ends the wait, as
    # corosync-quorumtool -e does.
    ctl 1 expected 2 > /dev/null || fail "expected 2"
    wait_field 20 2 "s['quorate']" || fail "expected 2 did not end the wait for all nodes"
    echo w | ctl 2 put /w || fail "put under the override"
    echo "expected 2: quorate without node 3"
    cluster start 3 || fail "start node 3"
    cluster wait-synced 30 || fail "not quorate with every node back"
    cluster stop 3 || fail "stop node 3"
    wait_field 20 1 "s['quorate'] and $(ring_is 1,2)" || fail "nodes 1,2 not quorate after node 3 left"
    echo "y" | ctl 2 put /y || fail "put with 2 of 3 nodes after everyone was seen"
    echo "all 3 seen, then 2 of 3: quorate"
}

case $mode in
    split) split ;;
    two_node) two_node ;;
    members) members ;;
    *) echo "usage: $0 SOURCE_ROOT BUILD_DIR split|two_node|members" >&2; exit 2 ;;
esac
echo "ok"
