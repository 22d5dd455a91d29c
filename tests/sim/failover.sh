#!/bin/sh
# Failover with the default timers (issue 4): over many crashes on 3 nodes, the time from
# a crash to the survivors' regular configuration must stay <= 1.5 s.
set -u
sim="$1"; shift
out=$("$sim" "$@")
rc=$?
printf '%s\n' "$out" | tail -n 3
[ "$rc" -eq 0 ] || { echo "conclave-sim exited $rc"; exit 1; }
line=$(printf '%s\n' "$out" | grep '^failover: [0-9]* crashes, median [0-9]* ms, max [0-9]* ms') || { echo "no failover line"; exit 1; }
n=$(printf '%s\n' "$line" | sed 's/^failover: \([0-9]*\) crashes.*/\1/')
max=$(printf '%s\n' "$line" | sed 's/.* max \([0-9]*\) ms.*/\1/')
[ "$n" -ge 10 ] || { echo "too few crashes measured ($n)"; exit 1; }
[ "$max" -le 1500 ] || { echo "failover max $max ms > 1500 ms"; exit 1; }
echo "failover max $max ms over $n crashes"
