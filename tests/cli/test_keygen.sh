#!/bin/sh
# conclavectl keygen: 256 bytes, mode 0400, no silent overwrite.
set -u
ctl=$1
d=$(mktemp -d /tmp/conclave-keygen.XXXXXX)
trap 'rm -rf "$d"' EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }

"$ctl" keygen -o "$d/k" >/dev/null || fail "first keygen failed"
[ "$(stat -c %s "$d/k")" = 256 ] || fail "size is $(stat -c %s "$d/k"), not 256"
[ "$(stat -c %a "$d/k")" = 400 ] || fail "mode is $(stat -c %a "$d/k"), not 400"
sum1=$(sha256sum < "$d/k")

"$ctl" keygen -o "$d/k" 2>"$d/err" >/dev/null
rc=$?
[ "$rc" = 1 ] || fail "second keygen without --force exited $rc, not 1"
grep -q "already exists" "$d/err" || fail "no message on refusing to overwrite: $(cat "$d/err")"
[ "$(sha256sum < "$d/k")" = "$sum1" ] || fail "the key changed without --force"

"$ctl" keygen -o "$d/k" --force >/dev/null || fail "keygen --force failed"
[ "$(sha256sum < "$d/k")" != "$sum1" ] || fail "--force did not write a new key"
[ "$(stat -c %a "$d/k")" = 400 ] || fail "mode after --force is $(stat -c %a "$d/k")"
[ ! -e "$d/k.tmp" ] || fail "temporary file left behind"

"$ctl" keygen -o 2>/dev/null; [ $? = 2 ] || fail "-o without a path is not a usage error"
"$ctl" keygen --bogus 2>/dev/null; [ $? = 2 ] || fail "unknown option is not a usage error"
"$ctl" frobnicate 2>/dev/null; [ $? = 2 ] || fail "unknown command is not a usage error"
"$ctl" --help | grep -q keygen || fail "--help does not mention keygen"
echo "keygen: ok"
