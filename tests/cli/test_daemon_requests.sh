#!/bin/sh
# Control requests as any client may send them, not only conclavectl: a field of the wrong
# type or out of range is refused with EINVAL, naming the field and what it must be; it is
# never coerced to something the client did not ask for. Absent (or null) optional fields
# keep their defaults.
set -u
daemon=$1
ctl=$2
d=$(mktemp -d /tmp/conclave-dreq.XXXXXX)
pid=""
cleanup() {
    [ -n "$pid" ] && kill "$pid" 2>/dev/null && wait "$pid"
    rm -rf "$d"
}
trap cleanup EXIT
. "$(dirname "$0")/lib.sh"
unset CONCLAVE_SOCKET
loopback_config reqtest
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

python3 - "$d/control.sock" > "$d/out" 2>&1 <<'PY' || fail "requests: $(cat "$d/out")"
import json, socket, sys

def request(req):
    s = socket.socket(socket.AF_UNIX)
    s.connect(sys.argv[1])
    s.sendall(json.dumps(req).encode() + b"\n")
    line = s.makefile().readline()
    s.close()
    return json.loads(line)

failures = []

def refused(req, words):
    r = request(req)
    if r.get("ok") is not False or r.get("errno") != 22 or words not in r.get("error", ""):
        failures.append("%s: %s (wanted EINVAL saying '%s')" % (json.dumps(req), json.dumps(r), words))

def done(req):
    r = request(req)
    if r.get("ok") is not True:
        failures.append("%s: %s" % (json.dumps(req), json.dumps(r)))
    return r

def mode_of(path):
    return request({"cmd": "stat", "path": path}).get("mode", 0) & 0o7777

data = "aGk="  # "hi"
for votes in [-3, "7", 2.5, 0, 256, True, [1], None]:
    req = {"cmd": "node.votes", "node": "n1"}
    if votes is not None:
        req["votes"] = votes
        refused(req, "votes must be an integer 1..255")
    else:
        refused(req, "needs \"votes\"")
for mode in ["0600", -1, 4294968740, 0o10000, 1.5, {"x": 1}]:
    refused({"cmd": "put", "path": "/m", "data": data, "mode": mode}, "mode must be an integer 0..4095")
    refused({"cmd": "mkdir", "path": "/md", "mode": mode}, "mode must be an integer 0..4095")
for flag in ["no_replace", "exchange"]:
    for value in ["yes", 1, 0, {}]:
        refused({"cmd": "mv", "from": "/probe", "to": "/other", flag: value}, flag + " must be true or false")
refused({"cmd": "get", "path": 5}, "path must be a string")
refused({"cmd": "put", "path": "/m"}, "needs \"data\"")
refused({"cmd": "put", "path": "/m", "data": 7}, "data must be a string")
refused({"cmd": "expected", "expected": "3"}, "expected must be an integer 1..4294967295")
refused({"cmd": "quorum.set", "key": "two_node", "value": "1"}, "value must be an integer 0..1")
refused({"cmd": "quorum.set", "key": "two_node", "value": -1}, "value must be an integer 0..1")
refused({"cmd": "quorum.set", "key": "auto_tie_breaker", "value": 3, "nodes": [1, "2"]}, "nodes must be a list")
refused({"cmd": "totem.set", "key": 7, "value": 0}, "key must be a string")
refused({"cmd": "node.votes", "node": 1.0, "votes": 1}, "node must be an integer")
refused({"cmd": "node.votes", "id": "1", "votes": 1}, "id must be an integer")
refused({"cmd": "node.add", "name": "n5", "id": 5, "votes": "7"}, "votes must be an integer 1..255")
refused({"cmd": "node.add", "name": "n5", "id": 5, "votes": -3}, "votes must be an integer 1..255")
refused({"cmd": "node.add", "name": 5, "id": 5}, "name must be a string")
refused({"cmd": "group.join", "group": ["g"]}, "group must be a string")

# In range, or absent (null too): carried out, with the defaults where absent.
done({"cmd": "put", "path": "/m", "data": data, "mode": 0o600})
if mode_of("/m") != 0o600: failures.append("put mode 0600 gave %o" % mode_of("/m"))
done({"cmd": "put", "path": "/m", "data": data, "mode": None})
if mode_of("/m") != 0o600: failures.append("put without a mode changed it to %o" % mode_of("/m"))
done({"cmd": "mkdir", "path": "/d1"})
if mode_of("/d1") != 0o755: failures.append("mkdir without a mode gave %o" % mode_of("/d1"))
done({"cmd": "mkdir", "path": "/d2", "mode": 0o700})
if mode_of("/d2") != 0o700: failures.append("mkdir mode 0700 gave %o" % mode_of("/d2"))
done({"cmd": "mv", "from": "/d2", "to": "/d3", "no_replace": True, "exchange": None})
done({"cmd": "node.votes", "node": "n1", "votes": 1})
done({"cmd": "node.votes", "id": 1, "votes": 1})

for f in failures:
    print(f)
sys.exit(1 if failures else 0)
PY
! grep -q "internal error\|control request failed" "$d/log" || fail "a request hit a handler exception: $(grep error "$d/log")"

# At most 64 clients at once: the 65th is told so, and conclavectl shows what it was told.
python3 - "$d/control.sock" "$ctl" > "$d/out" 2>&1 <<'PY' || fail "client limit: $(cat "$d/out")"
import socket, subprocess, sys
held = []
for i in range(64):
    s = socket.socket(socket.AF_UNIX)
    s.connect(sys.argv[1])
    s.sendall(b'{"cmd":"no.such"}\n')  # answered: the daemon holds this connection
    if b"unknown command" not in s.makefile("rb").readline():
        sys.exit("connection %d not answered" % i)
    held.append(s)
r = subprocess.run([sys.argv[2], "-s", sys.argv[1], "status"], capture_output=True, text=True, timeout=30)
if r.returncode != 1 or "conclaved serves at most 64 clients at once (64 connected)" not in r.stderr:
    sys.exit("conclavectl status with 64 clients connected: exit %d: %s" % (r.returncode, r.stderr))
for s in held:
    s.close()
PY
grep -q "turned a client away: 64 are connected" "$d/log" || fail "the client limit was not logged"
wait_for status_answers || fail "no status answer after the clients left"
echo "conclaved requests: ok"
