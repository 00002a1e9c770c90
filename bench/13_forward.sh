#!/usr/bin/env bash
# 13_forward.sh - 1 GiB through a TCP port forwarder: nc -> forwarder -> nc -l, on loopback.
#
# Forwarders (each listens on 127.0.0.1:F and connects to the receiver on 127.0.0.1:R):
#   none     no forwarder: the sender connects to the receiver directly (the ceiling)
#   nk       nk forward 127.0.0.1:F 127.0.0.1:R
#   socat    socat TCP-LISTEN:F,bind=127.0.0.1,reuseaddr,fork TCP:127.0.0.1:R
#   haproxy  mode tcp, one frontend and one backend (only when haproxy is installed)
# With TAP=1, the forwarders that record what they carry, each to a file in the work dir:
#   nk-x     nk forward -x FILE        socat-x  socat -x ... 2>FILE (its hex dump on stderr)
#   nk-pcap  nk forward --pcap FILE    (no anchor writes a capture)
#   (use SIZE_MB=256 or less: a hex dump is ~5 bytes of text per byte carried)
# Receiver: nc -l 127.0.0.1 R > /dev/null; sender: nc -N 127.0.0.1 F < file (page-cached).
# Throughput = bytes / wall time from just before the sender starts until both nc have
# exited. MB = 1e6 bytes. Rounds interleave the forwarders, rotating the order. One extra,
# untimed run per forwarder pipes the receiver into sha256sum and checks the digest against
# the file's, so no figure is of a broken transfer (sha256 runs at a few hundred MB/s here: in a timed run it would be the figure).
#
# Env: RUNS=3 SIZE_MB=1024 TAP=0 NK=<nk binary> (default: <repo>/target/release/nk) TIMEOUT=60
# Exit: 0 all runs clean; 1 a run failed, hung or lost bytes; 2 nk missing (rows skipped).
# Bars (issue 20, printed, not enforced): nk >= 1.1x haproxy, nk >= 0.7x none.
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
TAP=${TAP:-0}
out_md=$here/results/13_forward.md
[[ $TAP == 1 ]] && out_md=$here/results/13_forward_tap.md

. "$here/lib.sh"

fwd_pid=""
stop_fwd() {
    if [[ -n $fwd_pid ]]; then
        kill -TERM "$fwd_pid" 2>/dev/null
        wait "$fwd_pid" 2>/dev/null
        fwd_pid=""
    fi
}
work_dir 13 stop_fwd

need_tools 13_forward "$NC" socat ss sha256sum timeout awk
"$NC" -h 2>&1 | grep -q OpenBSD || log "13_forward: warning: $NC is not OpenBSD netcat"
nk_why=$(nk_lacks forward)
nk_rows 13_forward
status=0
[[ $have_nk == 1 ]] || status=2

tools=(none)
[[ $have_nk == 1 ]] && tools+=(nk)
tools+=(socat)
if [[ $TAP == 1 ]]; then
    [[ $have_nk == 1 ]] && tools+=(nk-x nk-pcap)
    tools+=(socat-x)
elif command -v haproxy >/dev/null; then
    tools+=(haproxy)
else
    log "13_forward: haproxy not installed (apt-get install haproxy): its row is skipped"
fi

file=$(bulk_file "$SIZE_MB") || { log "13_forward: cannot create the test file"; exit 1; }
want_ck=$(digest <"$file")

# start_fwd TOOL FPORT RPORT: starts the forwarder in the background (fwd_pid), waits for it.
start_fwd() {
    local tool=$1 f=$2 r=$3
    case $tool in
    none) return 0 ;;
    # timeout(1) itself in the background (not the TO function, whose subshell would be
    # $!), so stop_fwd's TERM reaches it; stdout away from the caller's $(...) pipe.
    nk) timeout -k 5 "$TIMEOUT" "$NK" forward "127.0.0.1:$f" "127.0.0.1:$r" >/dev/null 2>>"$work/err" & ;;
    socat) timeout -k 5 "$TIMEOUT" socat "TCP-LISTEN:$f,bind=127.0.0.1,reuseaddr,fork" "TCP:127.0.0.1:$r" >/dev/null 2>>"$work/err" & ;;
    nk-x) timeout -k 5 "$TIMEOUT" "$NK" forward -x "$work/dump" "127.0.0.1:$f" "127.0.0.1:$r" >/dev/null 2>>"$work/err" & ;;
    nk-pcap) timeout -k 5 "$TIMEOUT" "$NK" forward --pcap "$work/cap.pcapng" "127.0.0.1:$f" "127.0.0.1:$r" >/dev/null 2>>"$work/err" & ;;
    socat-x) timeout -k 5 "$TIMEOUT" socat -x "TCP-LISTEN:$f,bind=127.0.0.1,reuseaddr,fork" "TCP:127.0.0.1:$r" >/dev/null 2>"$work/dump" & ;;
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
    bind 127.0.0.1:$f
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
    local tool=$1 check=$2 r f port t0 t1 rpid
    r=$(free_port) || return 1
    f=$(free_port) || return 1
    if [[ $check == 1 ]]; then
        ( TO "$NC" -l 127.0.0.1 "$r" | digest >"$work/ck" ) &
    else
        TO "$NC" -l 127.0.0.1 "$r" >/dev/null &
    fi
    rpid=$!
    wait_listen "$r" "$rpid" || { echo FAIL; return 1; }
    port=$r
    if [[ $tool != none ]]; then
        start_fwd "$tool" "$f" "$r" || { echo FAIL; stop_fwd; return 1; }
        port=$f
    fi
    t0=$(date +%s.%N)
    TO "$NC" -N 127.0.0.1 "$port" <"$file" || { echo FAIL; stop_fwd; return 1; }
    wait "$rpid" || { echo FAIL; stop_fwd; return 1; }
    t1=$(date +%s.%N)
    stop_fwd
    if [[ $check == 1 ]] && ! ck_matches 13_forward "$tool"; then
        echo FAIL
        return 1
    fi
    mbps "$bytes" "$t0" "$t1"
}

declare -A RES OK
checked_rounds 13_forward

med() { stats "${RES[$1]:-}" | awk '{print $1}'; }
{
    echo "# 13_forward: ${SIZE_MB} MiB nc -> forwarder -> nc (loopback, MB/s, median of $RUNS)"
    echo
    echo "| forwarder | median MB/s | min | max | bytes checked | vs none |"
    echo "| --- | --- | --- | --- | --- | --- |"
    base=$(med none)
    for tool in "${tools[@]}"; do
        read -r m lo hi <<<"$(stats "${RES[$tool]:-}")"
        echo "| $tool | $m | $lo | $hi | ${OK[$tool]} | $(ratio "$m" "$base") |"
    done
    echo
    if [[ $have_nk == 1 ]]; then
        echo "nk vs none: $(ratio "$(med nk)" "$base" 0.7); nk vs socat: $(ratio "$(med nk)" "$(med socat)")"
        [[ -n ${RES[haproxy]:-} ]] && echo "nk vs haproxy: $(ratio "$(med nk)" "$(med haproxy)" 1.1)"
        if [[ $TAP == 1 ]]; then
            echo "nk-x vs socat-x: $(ratio "$(med nk-x)" "$(med socat-x)"); nk-pcap vs nk: $(ratio "$(med nk-pcap)" "$(med nk)")"
        fi
    fi
} | tee "$out_md"
exit "$status"
