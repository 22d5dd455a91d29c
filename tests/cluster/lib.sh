# Shared by the cluster test scripts (sourced after setting $top, the source root, and
# exporting CONCLAVE_BUILD): a cluster name of the script's own (cv + 4 random hex
# digits, as tools/cluster wants), the helpers every script uses, and the EXIT trap
# that removes the cluster and $work (if the script made one) also on failure. A script
# that needs more cleanup sets its own trap after sourcing this.
name=cv$(od -An -N2 -tx1 /dev/urandom | tr -d ' \n')
export CONCLAVE_CLUSTER=$name
dir=/run/conclave-cluster/$name
work=""
cluster() { "$top/tools/cluster" "$@"; }
ctl() { local i=$1; shift; "$CONCLAVE_BUILD/src/ctl/conclavectl" -s "$dir/node$i/control.sock" "$@"; }
trap 'cluster down "$name" >/dev/null 2>&1; [ -n "$work" ] && rm -rf "$work"' EXIT
# make_work TAG: a scratch directory in $work, removed on exit
make_work() { work=$(mktemp -d "/tmp/conclave-$1-test.XXXXXX"); }
field() {  # field I EXPR: a python expression over s = node I's status JSON
    ctl "$1" status --json 2>/dev/null | python3 -c "import json,sys; s=json.load(sys.stdin); print($2)" 2>/dev/null
}
wait_field() {  # wait_field SECS I EXPR: until EXPR holds on node I (1 at the deadline)
    local secs=$1 i=$2 expr=$3 end
    end=$(($(date +%s%N) + secs * 1000000000))
    until [ "$(field "$i" "$expr")" = True ]; do
        [ "$(date +%s%N)" -gt $end ] && return 1
        sleep 0.05
    done
}
