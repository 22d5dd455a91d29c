#!/bin/bash
# conclavectl's state commands on a one-node cluster: bootstrap refusals, put/get/ls/rm/
# mkdir/rmdir/mv with their errno-style errors and exit codes, limits set/show, node list
# changes, the State section of status.
# usage: test_ctl.sh SOURCE_ROOT BUILD_DIR
set -u
top=$1
export CONCLAVE_BUILD=$2
. "$top/tests/cluster/lib.sh"
make_work ctl
ctl() { "$CONCLAVE_BUILD/src/ctl/conclavectl" -s "$dir/node1/control.sock" "$@"; }  # one node only
fail() {
    echo "FAIL: $*" >&2
    cluster log 1 2>/dev/null | tail -20 >&2
    exit 1
}
# expect RC PATTERN CMD...: exit code RC and stderr matching PATTERN
expect() {
    local want=$1 pattern=$2 rc
    shift 2
    "$@" > "$work/out" 2> "$work/err"
    rc=$?
    [ "$rc" = "$want" ] || fail "'$*' exited $rc, not $want (stderr: $(cat "$work/err"))"
    grep -q -- "$pattern" "$work/err" || fail "'$*': stderr lacks '$pattern': $(cat "$work/err")"
}

cluster up 1 --name "$name" --no-bootstrap >/dev/null || fail "up"
# No cluster yet: writes say what to do.
expect 1 "conclavectl create" ctl put /a /dev/null
ctl status > "$work/status"; [ $? = 2 ] || fail "status without a cluster state is not exit 2"
grep -q "^Cluster id: *none" "$work/status" || fail "status lacks 'Cluster id: none': $(cat "$work/status")"
ctl create > /dev/null || fail "create"
expect 1 "already belongs to cluster" ctl create
ctl status > "$work/status" || fail "status after create is not exit 0 (quorate)"
grep -q "^State information" "$work/status" || fail "status lacks the State section"
grep -q "^Phase: *synced" "$work/status" || fail "status lacks the phase: $(cat "$work/status")"

# The tree.
printf 'hello\n' | ctl put /hello || fail "put from stdin"
[ "$(ctl get /hello)" = hello ] || fail "get /hello"
head -c 100000 /dev/urandom > "$work/bin"
ctl put /bin "$work/bin" || fail "put from a file"
ctl get /bin > "$work/bin2" && cmp -s "$work/bin" "$work/bin2" || fail "binary round trip"
head -c $((1024 * 1024 + 1)) /dev/zero > "$work/big"
expect 1 "put /big: File too large" ctl put /big "$work/big"
expect 1 "put /missing/a: No such file or directory" ctl put /missing/a /dev/null
expect 1 "Invalid argument" ctl put relative /dev/null
expect 1 "get /nope: No such file or directory" ctl get /nope
expect 1 "No such file or directory" ctl put /x "$work/no-such-file"
ctl mkdir /etc || fail "mkdir"
expect 1 "mkdir /etc: File exists" ctl mkdir /etc
echo a | ctl put /etc/a || fail "put /etc/a"
[ "$(ctl ls /)" = "$(printf 'bin\netc/\nhello')" ] || fail "ls /: $(ctl ls /)"
[ "$(ctl ls /etc/)" = a ] || fail "ls /etc/"
ctl ls -l /etc | grep -q "^-rw.* a$" || fail "ls -l: $(ctl ls -l /etc)"
expect 1 "rmdir /etc: Directory not empty" ctl rmdir /etc
expect 1 "mv /hello /etc/a: File exists" ctl mv --no-replace /hello /etc/a
ctl mv --exchange /hello /etc/a || fail "mv --exchange"
[ "$(ctl get /hello)" = a ] && [ "$(ctl get /etc/a)" = hello ] || fail "exchange did not swap"
ctl mv /hello /etc/a || fail "mv replacing"
expect 1 "get /hello: No such file or directory" ctl get /hello
expect 1 "rm /etc: Is a directory" ctl rm /etc
ctl rm /etc/a && ctl rmdir /etc || fail "rm, rmdir"
[ "$(ctl ls)" = bin ] || fail "ls after rm: $(ctl ls)"

# The cluster's limits.
ctl limits show | grep -q "^max_file_size *1048576 *default" || fail "limits show: $(ctl limits show)"
head -c 1500000 /dev/zero > "$work/1.5m"
expect 1 "File too large" ctl put /big "$work/1.5m"
ctl limits set max_file_size 1500K > "$work/out" || fail "limits set max_file_size 1500K"
grep -q "max_file_size = 1536000" "$work/out" || fail "limits set says: $(cat "$work/out")"
ctl put /big "$work/1.5m" || fail "a put of 1.5 MB with max_file_size 1500K"
ctl limits set max_total_size 1M > /dev/null || fail "limits set max_total_size 1M"
expect 1 "No space left on device" ctl put /more /dev/null  # the tree holds more already
ctl rm /big && ctl put /more /dev/null || fail "a put after shrinking below the lowered total"
ctl limits show --json | grep -q '"max_total_size": 1048576' || fail "limits show --json: $(ctl limits show --json)"
for k in max_file_size max_total_size; do ctl limits set $k default > /dev/null || fail "limits set $k default"; done
ctl limits show | grep -q "^max_total_size *134217728 *default" || fail "limits show after the reset: $(ctl limits show)"
expect 2 "unknown key 'max_files'" ctl limits set max_files 10
expect 2 "the value is 16 to 255" ctl limits set max_name 300
expect 2 "the value is 4096 to 2097152" ctl limits set max_file_size 2G
expect 2 "the value is 1048576 to 134217728" ctl limits set max_total_size lots
expect 2 "limits needs set or show" ctl limits
ctl rm /more || fail "rm /more"

# The node list.
expect 1 "File exists (a node with this id or name is in the node list already)" ctl node add node1 --id 5
# A change of more than one vote is made, and said (not a single-server change); one is not.
ctl votes node1 3 2> "$work/err" || fail "votes node1 3: $(cat "$work/err")"
grep -q "votes node1: warning: the node list's votes change by 2 at once" "$work/err" ||
    fail "votes 1 -> 3 gave no warning: $(cat "$work/err")"
for v in 2 1; do
    ctl votes node1 $v 2> "$work/err" || fail "votes node1 $v: $(cat "$work/err")"
    [ ! -s "$work/err" ] || fail "votes node1 $v (one vote) said: $(cat "$work/err")"
done
ctl node list | grep -q "^ *1 *1  node1" || fail "node1's votes not back to 1: $(ctl node list)"
expect 1 "votes must be an integer 1..255" ctl node add node9 --id 9 --votes 300
# Adding a node that is not running takes quorum away at once (1 of 2 votes): the add is
# applied; its answer may not come (the ack waits for a quorate ring), hence the timeout.
ctl --timeout 3 node add node2 --id 2 2> "$work/err" ||
    grep -q "no answer from conclaved within 3 s" "$work/err" || fail "node add: $(cat "$work/err")"
ctl node list | grep -q "node2 *no" || fail "node list: $(ctl node list)"
# One node of two present: not quorate; writes get EROFS at once.
expect 1 "Read-only file system" ctl put /ro /dev/null
ctl status >/dev/null; [ $? = 2 ] || fail "status with 1 of 2 votes is not exit 2"
cluster kill 1 && cluster start 1 || fail "restart"
expect 1 "Read-only file system" ctl node remove 2  # still not quorate after a restart
[ "$(ctl get /bin | wc -c)" = 100000 ] || fail "reads fail while not quorate"

# Usage errors are exit 2; a short --timeout is honoured.
expect 2 "put needs" ctl put
expect 2 "mv needs FROM TO" ctl mv /a
expect 2 "node add needs NAME --id N" ctl node add x
expect 2 "--timeout needs" "$CONCLAVE_BUILD/src/ctl/conclavectl" --timeout nope status
ctl --timeout 5 status >/dev/null; [ $? = 2 ] || fail "--timeout 5 status"
ctl --help | grep -q "put PATH \[FILE|-\]" || fail "--help lacks put"
echo "ok"
