#!/bin/sh
# conclavectl's output against a running conclaved: names with control characters are
# printed escaped (the JSON output stays exact), and output that cannot be written is a
# failure for every command.
set -u
daemon=$1
ctl=$2
d=$(mktemp -d /tmp/conclave-ctlout.XXXXXX)
pid=""
cleanup() {
    [ -n "$pid" ] && kill "$pid" 2>/dev/null
    rm -rf "$d"
}
trap cleanup EXIT
. "$(dirname "$0")/lib.sh"
unset CONCLAVE_SOCKET
loopback_config outtest
cat >> "$d/c.conf" <<CONF
tree {
    mount: no
}
CONF

"$daemon" -c "$d/c.conf" 2> "$d/log" &
pid=$!
ctl() { "$ctl" -s "$d/control.sock" "$@"; }
status_answers() { ctl status; [ $? -ne 1 ]; }
wait_for status_answers || fail "no status answer within 10 s"
ctl create > /dev/null || fail create
wait_for ctl put /probe /dev/null || fail "not writable after create"

# Names with a newline, an escape sequence, a tab, a backslash and a C1 control (U+009B,
# CSI): one line each, escaped as by ls -b; plain UTF-8 as it is.
nl='a
b'
esc=$(printf 'x\033[31my')
ctl mkdir /n || fail mkdir
for name in "$nl" "$esc" "$(printf 't\tu')" 'back\slash' "$(printf 'c1\302\233z')" "$(printf 'caf\303\251')"; do
    printf 'v' | ctl put "/n/$name" || fail "put '$name'"
done
ctl ls /n > "$d/ls" || fail "ls"
cat > "$d/want" <<'EOF'
a\nb
back\\slash
c1\302\233z
café
t\tu
x\033[31my
EOF
cmp -s "$d/ls" "$d/want" || fail "ls /n printed $(od -c "$d/ls")"
ctl ls -l /n > "$d/lsl" || fail "ls -l"
[ "$(wc -l < "$d/lsl")" = 6 ] || fail "ls -l /n has $(wc -l < "$d/lsl") lines"
grep -q ' a\\nb$' "$d/lsl" && grep -q ' x\\033\[31my$' "$d/lsl" || fail "ls -l /n: $(cat "$d/lsl")"
! grep -q "$(printf '\033')" "$d/ls" "$d/lsl" || fail "an escape character reached the output"
[ "$(ctl get "/n/$nl")" = v ] || fail "get of a name with a newline"
# Not UTF-8: refused up front (the JSON request could not even be written), not an abort.
ctl put "$(printf '/n/\377\376')" /dev/null 2> "$d/err"; rc=$?
[ $rc = 2 ] && grep -q "is not valid UTF-8" "$d/err" || fail "put of a non-UTF-8 path: exit $rc: $(cat "$d/err")"
ctl node add "$(printf '\377')" --id 51 2> "$d/err"; rc=$?
[ $rc = 2 ] && grep -q "is not valid UTF-8" "$d/err" || fail "node add of a non-UTF-8 name: exit $rc: $(cat "$d/err")"
# Errors name the path escaped too.
ctl rmdir "/n/$esc" 2> "$d/err"; [ $? = 1 ] || fail "rmdir of a file succeeded"
grep -qF 'rmdir /n/x\033[31my: Not a directory' "$d/err" || fail "rmdir error: $(od -c "$d/err")"

# The daemon checks what conclavectl checks, for any other client: a tie-breaker list
# naming a node twice.
python3 - "$d/control.sock" > "$d/out" <<'PY' || fail "raw quorum.set request failed to run"
import json, socket, sys
s = socket.socket(socket.AF_UNIX)
s.connect(sys.argv[1])
s.sendall(json.dumps({"cmd": "quorum.set", "key": "auto_tie_breaker", "value": 3, "nodes": [1, 1]}).encode() + b"\n")
print(s.makefile().readline().strip())
PY
grep -q "listed twice" "$d/out" || fail "quorum.set with a duplicate tie-breaker id: $(cat "$d/out")"

# Node names follow conclave.conf's rule (letters, digits, '-_.', not all digits), ids its
# range; the daemon says why. (Added last: a node that does not run makes this one-node
# cluster lose quorum.)
ctl node add "$(printf 'n\nx\033')" --id 7 2> "$d/err"; rc=$?
[ $rc = 1 ] && grep -qF 'n\nx\033' "$d/err" && grep -q "is not a valid node name" "$d/err" ||
    fail "node add of a name with control characters: exit $rc: $(od -c "$d/err")"
ctl node add 12 --id 12 2> "$d/err"; rc=$?
[ $rc = 1 ] && grep -q "all digits" "$d/err" || fail "node add of an all-digit name: exit $rc: $(cat "$d/err")"
ctl node add n8 --id 4294967295 2> "$d/err"; rc=$?
[ $rc != 0 ] && grep -q "4294967294" "$d/err" || fail "node add --id 4294967295: exit $rc: $(cat "$d/err")"
ctl node add n-7 --id 7 > /dev/null || fail "node add"
ctl node list > "$d/nodes" || fail "node list"
grep -qF ' n-7 ' "$d/nodes" || fail "node list: $(od -c "$d/nodes")"
[ "$(wc -l < "$d/nodes")" = 3 ] || fail "node list has $(wc -l < "$d/nodes") lines"
ctl node list --json | grep -qF '"name": "n-7"' || fail "node list --json"

# Every command whose output is lost fails, with the reason.
for c in "ls /" "ls -l /n" "status" "status --json" "links" "links --json" "counters" "counters --json" \
         "node list" "node list --json" "quorum show" "quorum show --json" "totem show" "totem show --json" \
         "get /n/café"; do
    # shellcheck disable=SC2086
    ctl $c > /dev/full 2> "$d/err"; rc=$?
    [ $rc = 1 ] || fail "$c > /dev/full exited $rc"
    grep -q "cannot write stdout: No space left on device" "$d/err" || fail "$c > /dev/full: $(cat "$d/err")"
    [ "$(grep -c "cannot write stdout" "$d/err")" = 1 ] || fail "$c > /dev/full said it more than once"
done
# The daemon's socket from a config file wins over the environment; a missing one stops.
env CONCLAVE_SOCKET="$d/nowhere.sock" "$ctl" -c "$d/c.conf" quorum show > /dev/null || fail "-c lost to \$CONCLAVE_SOCKET"
env CONCLAVE_SOCKET="$d/control.sock" "$ctl" -c /nonexistent quorum show > /dev/null 2>&1 && fail "-c /nonexistent ignored"
echo "conclavectl output: ok"
