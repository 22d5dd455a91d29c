#!/bin/sh
# conclavectl's arguments, checked before (or instead of) talking to a daemon: bad input is
# a clear usage error (exit 2), never an abort, a guess or a silent fallback.
set -u
ctl=$1
d=$(mktemp -d /tmp/conclave-ctlargs.XXXXXX)
trap 'rm -rf "$d"' EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }
unset CONCLAVE_SOCKET
# No daemon answers here: a command that got past its arguments fails with "not running".
nosock="$d/nosock"

# expect RC TEXT CMD...: CMD exits RC and says TEXT on stderr.
expect() {
    want=$1 text=$2
    shift 2
    "$@" > "$d/out" 2> "$d/err"
    rc=$?
    [ "$rc" = "$want" ] || fail "$* exited $rc, not $want: $(cat "$d/err")"
    grep -qF -- "$text" "$d/err" || fail "$* does not say '$text': $(cat "$d/err")"
    ! grep -q "internal error" "$d/err" || fail "$*: $(cat "$d/err")"
}

# Not UTF-8: the JSON protocol cannot carry it; said up front, not an abort (SIGABRT, 134).
bad=$(printf '/t/\377\376')
expect 2 "is not valid UTF-8" "$ctl" -s "$nosock" put "$bad" /dev/null
expect 2 "reachable only through the mounted tree" "$ctl" -s "$nosock" get "$(printf '/t/\377')"
expect 2 "'/t/\\377\\376' is not valid UTF-8" "$ctl" -s "$nosock" rm "$bad"
expect 2 "is not valid UTF-8" "$ctl" -s "$nosock" mkdir "$bad"
expect 2 "is not valid UTF-8" "$ctl" -s "$nosock" rmdir "$bad"
expect 2 "is not valid UTF-8" "$ctl" -s "$nosock" ls -l "$bad"
expect 2 "is not valid UTF-8" "$ctl" -s "$nosock" mv /a "$bad"
expect 2 "is not valid UTF-8" "$ctl" -s "$nosock" mv "$(printf '/\300\257')" /b  # overlong '/'
expect 2 "node name '\\377' is not valid UTF-8" "$ctl" -s "$nosock" node add "$(printf '\377')" --id 51
expect 2 "is not valid UTF-8" "$ctl" -s "$nosock" node remove "$(printf 'n\355\240\200')"  # a surrogate
expect 2 "is not valid UTF-8" "$ctl" -s "$nosock" votes "$(printf '\377')" 2
# UTF-8 names pass to the daemon (here: none).
expect 1 "not running" "$ctl" -s "$nosock" put "/t/$(printf '\303\251\360\237\230\200')" /dev/null
expect 1 "not running" "$ctl" -s "$nosock" node add "$(printf 'n\303\251')" --id 51
# A local file's name is not sent: any bytes.
expect 1 "No such file or directory" "$ctl" -s "$nosock" put /t/a "$d/$(printf '\377')"

# Every option at most once.
expect 2 "node add: --id given twice" "$ctl" -s "$nosock" node add nA --id 21 --id 22
expect 2 "node add: --votes given twice" "$ctl" -s "$nosock" node add nA --votes 1 --id 21 --votes 2
expect 2 "node add: unknown argument 'nB'" "$ctl" -s "$nosock" node add nA nB --id 21
expect 2 "keygen: -o/--output given twice" "$ctl" keygen -o "$d/c" -o "$d/k"
expect 2 "keygen: -o/--output given twice" "$ctl" keygen -o "$d/c" --output="$d/k"
expect 2 "keygen: -f/--force given twice" "$ctl" keygen -o "$d/k" --force -f
[ ! -e "$d/c" ] && [ ! -e "$d/k" ] || fail "keygen with a repeated option wrote a key"
for c in status links counters "node list" "quorum show" "totem show"; do
    # shellcheck disable=SC2086
    expect 2 "$c: --json given twice" "$ctl" -s "$nosock" $c --json --json
    # shellcheck disable=SC2086
    expect 2 "$c: unknown argument '--jsn'" "$ctl" -s "$nosock" $c --jsn
done
expect 2 "ls: -l given twice" "$ctl" -s "$nosock" ls -l -l /
expect 2 "mv: --exchange given twice" "$ctl" -s "$nosock" mv --exchange /a --exchange /b
expect 2 "mv: --no-replace given twice" "$ctl" -s "$nosock" mv --no-replace --no-replace /a /b
expect 2 "quorum set: --nodes given twice" "$ctl" -s "$nosock" quorum set auto_tie_breaker list --nodes 1 --nodes 2
expect 2 "quorum set: --nodes given twice" "$ctl" -s "$nosock" quorum set auto_tie_breaker list --nodes=1 --nodes 2
expect 2 "-s/--socket given twice" "$ctl" -s "$nosock" --socket "$nosock" status
expect 2 "-c/--config given twice" "$ctl" -c "$d/a.conf" -c "$d/b.conf" status
expect 2 "--timeout given twice" "$ctl" --timeout 1 --timeout 2 -s "$nosock" status

# --timeout is decimal, like every other number.
for t in 0x10 1e3 inf nan " 5" . 1.2.3 0 0.0 86401 -1; do
    expect 2 "--timeout needs a number of seconds (0 < S <= 86400, decimal), not '$t'" "$ctl" --timeout "$t" -s "$nosock" status
done
expect 1 "not running" "$ctl" --timeout 0.5 -s "$nosock" status
expect 1 "not running" "$ctl" --timeout 86400 -s "$nosock" status
expect 1 "not running" "$ctl" --timeout .5 -s "$nosock" status

# --nodes: each tie-breaker once.
expect 2 "--nodes lists node 1 twice" "$ctl" -s "$nosock" quorum set auto_tie_breaker list --nodes 1,1,1
expect 2 "--nodes lists node 3 twice" "$ctl" -s "$nosock" quorum set auto_tie_breaker list --nodes 3,2,3
expect 1 "not running" "$ctl" -s "$nosock" quorum set auto_tie_breaker list --nodes 3,2,1

# Where the socket comes from: -s, then -c, then $CONCLAVE_SOCKET; nothing empty, nothing
# ignored, no fallback after an error.
expect 2 "-s: the path is empty" "$ctl" -s "" status
expect 2 "--socket: the path is empty" "$ctl" --socket "" status
expect 2 "-c: the path is empty" "$ctl" -c "" status
expect 1 "/nonexistent: cannot read the config file" "$ctl" -c /nonexistent status
! grep -q "not running" "$d/err" || fail "-c with a missing file still tried a socket: $(cat "$d/err")"
expect 1 "/nonexistent: cannot read the config file" env CONCLAVE_SOCKET="$nosock" "$ctl" -c /nonexistent quorum show
"$ctl" keygen -o "$d/authkey" > /dev/null || fail keygen
printf 'cluster {\n    name: t\n}\nnode {\n    id: 1\n    name: n1\n}\ncrypto {\n    key_file: %s\n}\npaths {\n    control_socket: %s\n}\n' \
    "$d/authkey" "$d/conf.sock" > "$d/c.conf"
expect 1 "nothing answers on $d/conf.sock" env CONCLAVE_SOCKET="$d/env.sock" "$ctl" -c "$d/c.conf" status
expect 1 "nothing answers on $d/s.sock" env CONCLAVE_SOCKET="$d/env.sock" "$ctl" -c "$d/c.conf" -s "$d/s.sock" status
expect 1 "nothing answers on $d/env.sock" env CONCLAVE_SOCKET="$d/env.sock" "$ctl" status
printf 'cluster {\n    name: t\n' > "$d/broken.conf"
expect 1 "broken.conf" env CONCLAVE_SOCKET="$d/env.sock" "$ctl" -c "$d/broken.conf" status
! grep -q "not running" "$d/err" || fail "-c with a broken file still tried a socket: $(cat "$d/err")"

# Something that is not a socket at the path: said so, not "not running".
touch "$d/file"
expect 1 "'$d/file' is not a socket but a regular file (is -s right?)" "$ctl" -s "$d/file" status
expect 1 "'$d' is not a socket but a directory (is -s right?)" "$ctl" -s "$d" ls /
expect 1 'is not a socket but a regular file (is $CONCLAVE_SOCKET right?)' env CONCLAVE_SOCKET="$d/file" "$ctl" status
sed "s|control_socket: .*|control_socket: $d|" "$d/c.conf" > "$d/dir.conf"
expect 1 "is not a socket but a directory (is paths.control_socket in $d/dir.conf right?)" "$ctl" -c "$d/dir.conf" status

# A daemon's answer that conclavectl cannot use (another version, a bug) is an error, not
# an abort. The fake daemon answers one request; the fifo says when it listens.
mkfifo "$d/ready"
python3 - "$d/fake.sock" "$d/ready" <<'PY' &
import socket, sys
s = socket.socket(socket.AF_UNIX)
s.bind(sys.argv[1])
s.listen(1)
open(sys.argv[2], "w").write("ready\n")
c, _ = s.accept()
c.makefile().readline()
c.sendall(b'{"ok": true, "quorate": true, "members": 5, "quorum": {}}\n')
c.close()
PY
read -r _ < "$d/ready"
"$ctl" -s "$d/fake.sock" status > /dev/null 2> "$d/err"; rc=$?
[ $rc = 1 ] && grep -q "^conclavectl: internal error: " "$d/err" || fail "a malformed answer: exit $rc: $(cat "$d/err")"
wait

# Output that cannot be written is a failure, also for --help and --version.
for c in --help help --version; do
    expect 1 "conclavectl: cannot write stdout: No space left on device" sh -c '"$0" "$1" > /dev/full' "$ctl" "$c"
done
expect 1 "cannot write stdout" sh -c '"$0" keygen --help > /dev/full' "$ctl"
"$ctl" --help > /dev/null || fail "--help to /dev/null failed"
"$ctl" --help | grep -q "given twice\|at most once" || fail "--help does not say options go once"
echo "conclavectl arguments: ok"
