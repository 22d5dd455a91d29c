#!/bin/sh
# conclaved -t and --print-config: files that are not regular files, the tree's group, and
# the two options together. Every check runs under timeout: a FIFO once hung the daemon.
set -u
daemon=$1
ctl=$2
d=$(mktemp -d /tmp/conclave-dcheck.XXXXXX)
trap 'rm -rf "$d"' EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }
run() { timeout 20 "$@"; }

"$ctl" keygen -o "$d/authkey" >/dev/null || fail keygen
write_conf() {  # write_conf FILE KEY_FILE [EXTRA SECTIONS...]
    f=$1; k=$2; shift 2
    { printf 'cluster {\n    name: test\n}\nnode {\n    id: 1\n    name: n1\n}\n'
      printf 'crypto {\n    key_file: %s\n}\n' "$k"
      for extra in "$@"; do printf '%s\n' "$extra"; done; } > "$f"
}
write_conf "$d/c.conf" "$d/authkey"
run "$daemon" -t -c "$d/c.conf" > "$d/out" 2>&1 || fail "good config rejected: $(cat "$d/out")"

# A FIFO as the key file or the config file: refused at once, not waited on.
mkfifo "$d/keyfifo" "$d/conffifo"
write_conf "$d/fifokey.conf" "$d/keyfifo"
run "$daemon" -t -c "$d/fifokey.conf" > /dev/null 2> "$d/err"; rc=$?
[ "$rc" = 1 ] || fail "FIFO key file: exit $rc (124: it hung)"
grep -q "key file $d/keyfifo is not a regular file" "$d/err" || fail "FIFO key text: $(cat "$d/err")"
run "$daemon" -t -c "$d/conffifo" > /dev/null 2> "$d/err"; rc=$?
[ "$rc" = 1 ] || fail "FIFO config: exit $rc (124: it hung)"
grep -q "$d/conffifo: is not a regular file" "$d/err" || fail "FIFO config text: $(cat "$d/err")"
env -u CONCLAVE_SOCKET timeout 20 "$ctl" -c "$d/conffifo" status > /dev/null 2> "$d/err"; rc=$?
[ "$rc" = 124 ] && fail "conclavectl -c FIFO hung"
grep -q "$d/conffifo: is not a regular file" "$d/err" || fail "conclavectl -c FIFO text: $(cat "$d/err")"
run "$daemon" -t -c "$d" > /dev/null 2> "$d/err"; rc=$?
[ "$rc" = 1 ] || fail "directory as config: exit $rc"
grep -q "$d: is a directory" "$d/err" || fail "directory config text: $(cat "$d/err")"

# tree.group must exist when the tree is mounted, as the daemon's start requires.
write_conf "$d/group.conf" "$d/authkey" 'tree {' '    group: conclave-no-such-grp' '}'
run "$daemon" -t -c "$d/group.conf" > /dev/null 2> "$d/err"; rc=$?
[ "$rc" = 1 ] || fail "missing tree.group passed -t (exit $rc)"
grep -q "tree.group: no group named 'conclave-no-such-grp'" "$d/err" || fail "group text: $(cat "$d/err")"
write_conf "$d/nomount.conf" "$d/authkey" 'tree {' '    mount: no' '    group: conclave-no-such-grp' '}'
run "$daemon" -t -c "$d/nomount.conf" > /dev/null 2> "$d/err" || fail "group checked without the mount: $(cat "$d/err")"

# --print-config shows the group in effect; with -t it prints, then checks.
run "$daemon" --print-config -c "$d/c.conf" > "$d/printed" || fail "--print-config failed"
if getent group www-data > /dev/null; then want=www-data; else want=root; fi
grep -q "^    group: $want\$" "$d/printed" || fail "--print-config lacks 'group: $want': $(cat "$d/printed")"
run "$daemon" --print-config -t -c "$d/c.conf" > "$d/printed" 2> "$d/err" || fail "--print-config -t: $(cat "$d/err")"
grep -q "configuration OK" "$d/err" || fail "--print-config -t: no OK on stderr: $(cat "$d/err")"
grep -q "configuration OK" "$d/printed" && fail "--print-config -t: OK line in the printed config"
run "$daemon" -t -c "$d/printed" > /dev/null 2> "$d/err" || fail "printed config does not pass -t: $(cat "$d/err")"
write_conf "$d/nokey.conf" "$d/missing.key"
run "$daemon" -t --print-config -c "$d/nokey.conf" > "$d/printed" 2> "$d/err"; rc=$?
[ "$rc" = 1 ] || fail "--print-config -t with a missing key: exit $rc"
grep -q "key_file: $d/missing.key" "$d/printed" || fail "--print-config -t printed nothing"
grep -q "does not exist" "$d/err" || fail "--print-config -t missing key text: $(cat "$d/err")"
run "$daemon" --print-config -c "$d/nokey.conf" > /dev/null || fail "--print-config alone checks the key"

# Paths that overlap, and multicast settings with unicast: errors naming the keys.
write_conf "$d/overlap.conf" "$d/authkey" 'paths {' "    state_dir: $d/s" "    mount_point: $d/s/" '}'
run "$daemon" -t -c "$d/overlap.conf" > /dev/null 2> "$d/err"; rc=$?
[ "$rc" = 1 ] || fail "overlapping state_dir and mount_point: exit $rc"
grep -q "paths.mount_point: .* paths.state_dir" "$d/err" || fail "overlap text: $(cat "$d/err")"
write_conf "$d/uni.conf" "$d/authkey" 'network {' '    transport: unicast' '    peers: 10.0.0.2' \
    '    mcast_group: 239.1.1.1' '}'
run "$daemon" -t -c "$d/uni.conf" > /dev/null 2> "$d/err"; rc=$?
[ "$rc" = 1 ] || fail "unicast with mcast_group: exit $rc"
grep -q "network.mcast_group: only used with 'transport: multicast'" "$d/err" || fail "unicast text: $(cat "$d/err")"
echo "conclaved checks: ok"
