#!/bin/sh
# conclaved runs on loopback, answers status on its control socket, refuses a second
# daemon on the same state directory, and stops cleanly on SIGTERM.
set -u
daemon=$1
ctl=$2
d=$(mktemp -d /tmp/conclave-drun.XXXXXX)
pid=""
cleanup() {
    [ -n "$pid" ] && kill "$pid" 2>/dev/null
    rm -rf "$d"
}
trap cleanup EXIT
. "$(dirname "$0")/lib.sh"
loopback_config runtest

"$daemon" -c "$d/c.conf" 2> "$d/log" &
pid=$!
status_answers() { "$ctl" -s "$d/control.sock" status; [ $? -ne 1 ]; }
wait_for status_answers || fail "no status answer within 10 s"
"$ctl" -s "$d/control.sock" status > "$d/status"; rc=$?
[ $rc = 0 ] || [ $rc = 2 ] || fail "status exit $rc"
grep -q "Node: *1 (n1)" "$d/status" || fail "status lacks the node: $(cat "$d/status")"
grep -q "^Quorum information" "$d/status" || fail "status lacks the corosync-style header"
CONCLAVE_SOCKET="$d/control.sock" "$ctl" status --json | grep -q '"cluster": "runtest"' || fail "--json lacks the cluster"
"$ctl" -c "$d/c.conf" status >/dev/null; rc=$?; [ $rc = 0 ] || [ $rc = 2 ] || fail "socket path from -c not used"
grep -q "node 1: started: cluster runtest" "$d/log" || fail "no start line in the log"

"$daemon" -c "$d/c.conf" 2> "$d/err2"; rc=$?
[ $rc = 1 ] || fail "a second daemon on the same state dir exited $rc, not 1"
grep -q "another conclaved (pid $pid)" "$d/err2" || fail "second daemon's error: $(cat "$d/err2")"

kill -TERM "$pid"
wait "$pid"; rc=$?
pid=""
[ $rc = 0 ] || fail "exit status after SIGTERM is $rc"
[ ! -e "$d/control.sock" ] || fail "control socket left behind"
grep -q "stopped" "$d/log" || fail "no stop line in the log"

"$ctl" -s "$d/control.sock" status 2> "$d/err3"; rc=$?
[ $rc = 1 ] || fail "status without a daemon exited $rc"
grep -q "not running" "$d/err3" || fail "status error: $(cat "$d/err3")"
echo "conclaved run: ok"
