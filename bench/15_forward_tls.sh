#!/usr/bin/env bash
# 15_forward_tls.sh - 1 GiB through a TLS-terminating forwarder: TLS client -> forwarder
# (TLS on its listening side) -> nc -l in clear, on loopback.
#
# Forwarders (each listens with TLS on 127.0.0.1:F, the bench PKI's leaf, and connects to the
# receiver on 127.0.0.1:R in clear):
#   nk       nk forward --tls-listen --cert L --key K 127.0.0.1:F 127.0.0.1:R
#   socat    socat OPENSSL-LISTEN:F,bind=127.0.0.1,reuseaddr,fork,cert=L,key=K,verify=0 TCP:127.0.0.1:R
#   haproxy  mode tcp, `bind 127.0.0.1:F ssl crt leaf+key.pem` (only when haproxy is installed)
# Client, the same for all: nk dial --tls --ca CA localhost F < file (page-cached), which
# verifies the chain and the name; its TLS speed is well above every forwarder's here
# (11_tls.sh). Receiver: nc -l 127.0.0.1 R > /dev/null.
# Throughput = bytes / wall time from just before the client starts until client and receiver
# have exited (handshake included). MB = 1e6 bytes. Rounds interleave the forwarders,
# rotating the order. One extra, untimed run per forwarder pipes the receiver into sha256sum
# and checks the digest against the file's, so no figure is of a broken transfer
# (sha256 runs at a few hundred MB/s here: in a timed run it would be the figure).
#
# Env: RUNS=3 SIZE_MB=1024 NK=<nk binary> (default: <repo>/target/release/nk) TIMEOUT=60
# Exit: 0 all runs clean; 1 a run failed, hung or lost bytes; 2 nk missing.
set -uo pipefail
export LC_ALL=C

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/.." && pwd)
RUNS=${RUNS:-3}
SIZE_MB=${SIZE_MB:-1024}
TIMEOUT=${TIMEOUT:-60}
NK=${NK:-$root/target/release/nk}
NC=${NC_BIN:-nc}
bytes=$((SIZE_MB * 1024 * 1024))
out_md=$here/results/15_forward_tls.md

. "$here/lib.sh"

fwd_pid=""
stop_fwd() { stop_pidvar fwd_pid; }
work_dir 15 stop_fwd

need_tools 15_forward_tls "$NC" socat openssl ss sha256sum timeout awk
nk_why=$(nk_lacks forward)
nk_rows 15_forward_tls
# nk is the client of every row: without it there is nothing to measure.
[[ $have_nk == 1 ]] || exit 2
status=0

tools=(nk socat)
if command -v haproxy >/dev/null; then
    tools+=(haproxy)
else
    log "15_forward_tls: haproxy not installed (apt-get install haproxy): its row is skipped"
fi

make_pki "$work/pki" >/dev/null 2>&1 || { log "15_forward_tls: cannot make the PKI"; exit 1; }
ca=$work/pki/ca.pem leaf=$work/pki/leaf.pem key=$work/pki/leaf.key
cat "$leaf" "$key" >"$work/pki/haproxy.pem"
file=$(bulk_file "$SIZE_MB") || { log "15_forward_tls: cannot create the test file"; exit 1; }
want_ck=$(digest <"$file")

# start_fwd TOOL FPORT RPORT: starts the forwarder in the background (fwd_pid), waits for it.
start_fwd() {
    local tool=$1 f=$2 r=$3
    case $tool in
    nk) timeout -k 5 "$TIMEOUT" "$NK" forward --tls-listen --cert "$leaf" --key "$key" \
            "127.0.0.1:$f" "127.0.0.1:$r" >/dev/null 2>>"$work/err" & ;;
    socat) timeout -k 5 "$TIMEOUT" socat \
            "OPENSSL-LISTEN:$f,bind=127.0.0.1,reuseaddr,fork,cert=$leaf,key=$key,verify=0" \
            "TCP:127.0.0.1:$r" >/dev/null 2>>"$work/err" & ;;
    haproxy)
        cat >"$work/haproxy.cfg" <<CFG
global
    maxconn 1000
defaults
    mode tcp
    timeout connect 10s
    timeout client 60s
    timeout server 60s
frontend in
    bind 127.0.0.1:$f ssl crt $work/pki/haproxy.pem
    default_backend out
backend out
    server s 127.0.0.1:$r
CFG
        timeout -k 5 "$TIMEOUT" haproxy -db -f "$work/haproxy.cfg" >/dev/null 2>>"$work/err" &
        ;;
    esac
    fwd_pid=$!
    wait_listen "$f" "$fwd_pid"
}

# one_run TOOL CHECK: prints MB/s (or FAIL); with CHECK=1 pipes the receiver into sha256sum.
one_run() {
    local tool=$1 check=$2 r f t0 t1 rpid
    r=$(free_port) || return 1
    f=$(free_port) || return 1
    if [[ $check == 1 ]]; then
        ( TO "$NC" -l 127.0.0.1 "$r" | digest >"$work/ck" ) &
    else
        TO "$NC" -l 127.0.0.1 "$r" >/dev/null &
    fi
    rpid=$!
    wait_listen "$r" "$rpid" || { echo FAIL; return 1; }
    start_fwd "$tool" "$f" "$r" || { echo FAIL; stop_fwd; return 1; }
    t0=$(date +%s.%N)
    TO "$NK" dial --tls --ca "$ca" localhost "$f" <"$file" >/dev/null 2>>"$work/err" ||
        { echo FAIL; stop_fwd; return 1; }
    wait "$rpid" || { echo FAIL; stop_fwd; return 1; }
    t1=$(date +%s.%N)
    stop_fwd
    if [[ $check == 1 ]] && ! ck_matches 15_forward_tls "$tool"; then
        echo FAIL
        return 1
    fi
    mbps "$bytes" "$t0" "$t1"
}

declare -A RES OK
checked_rounds 15_forward_tls
[[ -s $work/err ]] && log "15_forward_tls: stderr of the runs: $(tail -c 600 "$work/err")"

med() { stats "${RES[$1]:-}" | awk '{print $1}'; }
{
    echo "# 15_forward_tls: ${SIZE_MB} MiB nk dial --tls -> TLS-terminating forwarder -> nc (loopback, MB/s, median of $RUNS)"
    echo
    echo "$(date -u '+%Y-%m-%d %H:%M UTC'), $(nproc) CPUs, load $(cut -d' ' -f1 /proc/loadavg); $($NK --version 2>/dev/null | head -1); $(socat -V 2>/dev/null | awk '/socat version/ {print "socat", $3}')"
    echo
    echo "| forwarder | median MB/s | min | max | bytes checked | nk vs this |"
    echo "| --- | --- | --- | --- | --- | --- |"
    for tool in "${tools[@]}"; do
        read -r m lo hi <<<"$(stats "${RES[$tool]:-}")"
        echo "| $tool | $m | $lo | $hi | ${OK[$tool]} | $(ratio "$(med nk)" "$m") |"
    done
} | tee "$out_md"
exit "$status"
