#!/bin/sh
# Runs conclave-sim with the given arguments and checks its contract: exit 0, a speed
# line, and the last line "seeds: K, violations: 0, delivered: D".
set -u
sim="$1"; shift
out=$("$sim" "$@")
rc=$?
printf '%s\n' "$out" | tail -n 5
[ "$rc" -eq 0 ] || { echo "conclave-sim exited $rc"; exit 1; }
printf '%s\n' "$out" | grep -q '^speed: [0-9]* simulated messages per CPU second' || { echo "no speed line"; exit 1; }
printf '%s\n' "$out" | tail -n 1 | grep -Eq '^seeds: [0-9]+, violations: 0, delivered: [0-9]+$' || { echo "bad last line"; exit 1; }
