#!/bin/sh
# A planted bug in the replicated state machine (node/) must make
# `conclave-sim --workload store` exit 1 reporting one of the expected properties
# (a '|'-separated list: a bug may show first through any of them), with a trace
# excerpt and a replay command.
set -u
sim="$1"; bug="$2"; properties="$3"; faults="${4:-all}"; seeds="${5:-1-200}"; msgs="${6:-80}"
out=$("$sim" --workload store --nodes 3-5 --seeds "$seeds" --faults "$faults" --msgs "$msgs" --plant-bug "$bug")
rc=$?
[ "$rc" -eq 1 ] || { echo "expected exit 1, got $rc"; printf '%s\n' "$out" | tail -5; exit 1; }
printf '%s\n' "$out" | grep -Eq "VIOLATION of '($properties)'" || { echo "none of '$properties' reported"; printf '%s\n' "$out" | grep VIOLATION | head -5; exit 1; }
printf '%s\n' "$out" | grep -q "replay: conclave-sim .*--workload store.*--plant-bug $bug" || { echo "no replay command"; exit 1; }
printf '%s\n' "$out" | grep -q "trace excerpt:" || { echo "no excerpt"; exit 1; }
printf '%s\n' "$out" | grep VIOLATION | sed 's/(nodes.*//' | sort | uniq -c | head
echo "caught: $bug"
