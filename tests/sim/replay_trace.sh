#!/bin/sh
# Two runs of one seed with --trace must write identical files.
set -eu
sim="$1"; dir="$2"
mkdir -p "$dir"
"$sim" --nodes 5 --seeds 42-42 --faults loss,dup,reorder,delay --loss 0.2 --trace "$dir/a.trace" >/dev/null
"$sim" --nodes 5 --seeds 42-42 --faults loss,dup,reorder,delay --loss 0.2 --trace "$dir/b.trace" >/dev/null
cmp "$dir/a.trace" "$dir/b.trace"
[ "$(wc -l < "$dir/a.trace")" -gt 100 ]
