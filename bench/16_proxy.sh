#!/usr/bin/env bash
# 16_proxy.sh - 1 GiB through one HTTP CONNECT hop (tinyproxy), on loopback: the client is
# nk dial --proxy http://P, ncat --proxy P --proxy-type http, or OpenBSD nc -X connect -x P
# (nc's row shows how fast tinyproxy itself relays: the ceiling for every client).
#
# Receiver: nc -l 127.0.0.1 R > /dev/null; tinyproxy on 127.0.0.1:P (foreground, as nobody
# when run as root, config in the work dir). Sender: the client, stdin the page-cached file.
# Throughput = bytes / wall time from just before the client starts until the client and the
# receiver have exited. MB = 1e6 bytes. Rounds alternate the clients, rotating the order. One
# extra, untimed run per client pipes the receiver into sha256sum and checks the digest against
# the file's, so no figure is of a broken transfer (sha256 runs at a few hundred MB/s here: in a timed run it would be the figure).
#
# Both clients half-close at stdin EOF (their default); tinyproxy then writes what it holds
# to the receiver and closes both sides, which ends the receiver and the client.
#
# Env: RUNS=3 SIZE_MB=1024 NK=<nk binary> (default: <repo>/target/release/nk) TIMEOUT=60
# Exit: 0 all runs clean; 1 a run failed, hung or lost bytes; 2 nk missing (rows skipped).
# Bar (issue 21, printed, not enforced): nk >= 1.2x ncat.
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
out_md=$here/results/16_proxy.md

. "$here/lib.sh"

proxy_pid=""
stop_proxy() { stop_pidvar proxy_pid; }
work_dir 16 stop_proxy

need_tools 16_proxy "$NC" ncat tinyproxy ss sha256sum timeout awk
nk_why=$(nk_lacks dial)
nk_rows 16_proxy
status=0
[[ $have_nk == 1 ]] || status=2

tools=()
[[ $have_nk == 1 ]] && tools+=(nk)
tools+=(ncat nc)

file=$(bulk_file "$SIZE_MB") || { log "16_proxy: cannot create the test file"; exit 1; }
want_ck=$(digest <"$file")

# tinyproxy as nobody when root (it will not run as root without a User line).
chmod 755 "$work"
pport=$(free_port) || exit 1
cat >"$work/tinyproxy.conf" <<CFG
Port $pport
Listen 127.0.0.1
Timeout 120
MaxClients 100
LogLevel Error
Allow 127.0.0.1
CFG
if [[ $(id -u) == 0 ]]; then
    timeout -k 5 $((TIMEOUT * (RUNS + 2) * 2)) setpriv --reuid=65534 --regid=65534 --clear-groups \
        tinyproxy -d -c "$work/tinyproxy.conf" >/dev/null 2>>"$work/err" &
else
    timeout -k 5 $((TIMEOUT * (RUNS + 2) * 2)) tinyproxy -d -c "$work/tinyproxy.conf" >/dev/null 2>>"$work/err" &
fi
proxy_pid=$!
wait_listen "$pport" "$proxy_pid" || { log "16_proxy: tinyproxy did not start: $(cat "$work/err")"; exit 1; }

# one_run TOOL CHECK: prints MB/s (or FAIL); with CHECK=1 checks the bytes with sha256sum.
one_run() {
    local tool=$1 check=$2 r t0 t1 rpid
    r=$(free_port) || return 1
    if [[ $check == 1 ]]; then
        ( TO "$NC" -l 127.0.0.1 "$r" | digest >"$work/ck" ) &
    else
        TO "$NC" -l 127.0.0.1 "$r" >/dev/null &
    fi
    rpid=$!
    wait_listen "$r" "$rpid" || { echo FAIL; return 1; }
    t0=$(date +%s.%N)
    case $tool in
    nk) TO "$NK" dial --proxy "http://127.0.0.1:$pport" 127.0.0.1 "$r" <"$file" >/dev/null 2>>"$work/err" ;;
    ncat) TO ncat --proxy "127.0.0.1:$pport" --proxy-type http 127.0.0.1 "$r" <"$file" >/dev/null 2>>"$work/err" ;;
    nc) TO "$NC" -N -X connect -x "127.0.0.1:$pport" 127.0.0.1 "$r" <"$file" >/dev/null 2>>"$work/err" ;;
    esac
    wait "$rpid" || { echo FAIL; return 1; }
    t1=$(date +%s.%N)
    if [[ $check == 1 ]] && ! ck_matches 16_proxy "$tool"; then
        echo FAIL
        return 1
    fi
    mbps "$bytes" "$t0" "$t1"
}

declare -A RES OK
checked_rounds 16_proxy

med() { stats "${RES[$1]:-}" | awk '{print $1}'; }
{
    echo "# 16_proxy: ${SIZE_MB} MiB client -> tinyproxy (CONNECT) -> nc -l (loopback, MB/s, median of $RUNS)"
    echo
    echo "| client | median MB/s | min | max | bytes checked |"
    echo "| --- | --- | --- | --- | --- |"
    for tool in "${tools[@]}"; do
        read -r m lo hi <<<"$(stats "${RES[$tool]:-}")"
        echo "| $tool | $m | $lo | $hi | ${OK[$tool]} |"
    done
    echo
    [[ $have_nk == 1 ]] && echo "nk vs ncat: $(ratio "$(med nk)" "$(med ncat)" 1.2); nk vs nc: $(ratio "$(med nk)" "$(med nc)")"
} | tee "$out_md"
exit "$status"
