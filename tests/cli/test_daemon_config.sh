#!/bin/sh
# conclaved -t: checks a node's config and keys, with clear errors and exit codes.
set -u
daemon=$1
ctl=$2
d=$(mktemp -d /tmp/conclave-dconf.XXXXXX)
trap 'rm -rf "$d"' EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }

"$ctl" keygen -o "$d/authkey" >/dev/null || fail keygen
cat > "$d/c.conf" <<CONF
cluster {
    name: test
}
node {
    id: 1
    name: n1
}
crypto {
    key_file: $d/authkey
}
CONF
"$daemon" -t -c "$d/c.conf" > "$d/out" || fail "good config rejected: $(cat "$d/out")"
grep -q "configuration OK" "$d/out" || fail "no OK line"
"$daemon" --print-config -c "$d/c.conf" | grep -q "mcast_group: 239.192.76.1" || fail "--print-config lacks defaults"

sed 's/id: 1/id: one/' "$d/c.conf" > "$d/bad.conf"
"$daemon" -t -c "$d/bad.conf" 2> "$d/err"; rc=$?
[ "$rc" = 1 ] || fail "bad config exit $rc"
grep -q "bad.conf:5:9: node.id: 'one' is not a whole number" "$d/err" || fail "error text: $(cat "$d/err")"

chmod 0444 "$d/authkey"
"$daemon" -t -c "$d/c.conf" 2> "$d/err"; rc=$?
[ "$rc" = 1 ] || fail "world-readable key accepted (exit $rc)"
grep -q "chmod 0400" "$d/err" || fail "key error text: $(cat "$d/err")"

# Cluster-wide settings live in the replicated state only (one book): a leftover section
# in conclave.conf stops the daemon (-t and a real start alike) with the command to use.
chmod 0400 "$d/authkey"
for case in "quorum|two_node: 1|conclavectl quorum set" "totem|token: 3000|conclavectl totem set" \
            "nodelist|node: n2|conclavectl node add"; do
    section=${case%%|*}; rest=${case#*|}; line=${rest%%|*}; cmd=${rest#*|}
    { cat "$d/c.conf"; printf '%s {\n    %s\n}\n' "$section" "$line"; } > "$d/wide.conf"
    "$daemon" -t -c "$d/wide.conf" > /dev/null 2> "$d/err"; rc=$?
    [ "$rc" = 1 ] || fail "-t with a '$section' section: exit $rc"
    grep -q "$cmd" "$d/err" || fail "-t with a '$section' section does not name '$cmd': $(cat "$d/err")"
    printf 'paths {\n    state_dir: %s\n    control_socket: %s\n}\n' "$d/state" "$d/sock" >> "$d/wide.conf"
    timeout 10 "$daemon" -c "$d/wide.conf" > /dev/null 2> "$d/err"; rc=$?
    [ "$rc" = 1 ] || fail "conclaved started with a '$section' section (exit $rc)"
    grep -q "$cmd" "$d/err" || fail "conclaved with a '$section' section does not name '$cmd': $(cat "$d/err")"
    [ -e "$d/sock" ] && fail "conclaved with a '$section' section opened its control socket"
done

"$daemon" -t -c "$d/missing.conf" 2> "$d/err"; [ $? = 1 ] || fail "missing config not exit 1"
"$daemon" --bogus 2>/dev/null; [ $? = 2 ] || fail "unknown option is not a usage error"
echo "conclaved -t: ok"
