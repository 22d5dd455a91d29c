# Shared by the command-line tests that run one conclaved on loopback. The sourcing script
# sets $d (its temp dir) and $ctl (conclavectl) first.

fail() { echo "FAIL: $*" >&2; [ -f "$d/log" ] && sed 's/^/  daemon: /' "$d/log" >&2; exit 1; }

# Wait (with a deadline) until a command succeeds.
wait_for() {
    i=0
    until "$@" >/dev/null 2>&1; do
        i=$((i + 1))
        [ $i -gt 200 ] && return 1
        sleep 0.05
    done
}

# loopback_config CLUSTER: a new authkey and $d/c.conf for node 1 (n1) of cluster CLUSTER,
# unicast on 127.0.0.1 at a free UDP port, state and control socket in $d. The caller may
# append sections.
loopback_config() {
    port=$(python3 -c 'import socket; s=socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
    "$ctl" keygen -o "$d/authkey" >/dev/null || fail keygen
    cat > "$d/c.conf" <<CONF
cluster {
    name: $1
}
node {
    id: 1
    name: n1
}
network {
    transport: unicast
    bind_address: 127.0.0.1
    port: $port
    peers: 127.0.0.1:1
}
crypto {
    key_file: $d/authkey
}
paths {
    state_dir: $d/state
    control_socket: $d/control.sock
}
CONF
}
