#!/bin/sh
# A planted bug must make conclave-sim exit 1 naming the expected property, with a
# trace excerpt and a replay command. Optional 4th argument: the faults (default the
# packet faults; the membership bugs need configuration changes: 'all').
set -u
sim="$1"; bug="$2"; property="$3"; faults="${4:-loss,dup,reorder,delay}"
out=$("$sim" --nodes 2-7 --seeds 1-10 --faults "$faults" --loss 0.2 --msgs 60 --plant-bug "$bug")
rc=$?
[ "$rc" -eq 1 ] || { echo "expected exit 1, got $rc"; exit 1; }
printf '%s\n' "$out" | grep -q "VIOLATION of '$property'" || { echo "property '$property' not reported"; printf '%s\n' "$out" | head -20; exit 1; }
printf '%s\n' "$out" | grep -q "replay: conclave-sim .*--plant-bug $bug --trace /tmp/conclave-sim-" || { echo "no replay command"; exit 1; }
printf '%s\n' "$out" | grep -q "trace excerpt:" || { echo "no excerpt"; exit 1; }
echo "caught: $bug -> $property"
