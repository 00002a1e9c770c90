#!/usr/bin/env bash
# 20_proxy_server.sh - nk as a proxy server (`nk listen --proxy http,socks5`), against
# tinyproxy (HTTP CONNECT) and dante (SOCKS5), with the same client: OpenBSD nc.
#
# 1. Throughput: 1 GiB nc -X connect|5 -x P -> proxy -> nc -l 127.0.0.1 R > /dev/null, on
#    loopback. Rows: nk (CONNECT) and tinyproxy with `nc -X connect`; nk (SOCKS5) and danted
#    with `nc -X 5`. Throughput = bytes / wall time from just before the client starts until
#    the client and the receiver have exited; MB = 1e6 bytes; rounds alternate the rows,
#    rotating the order. One extra, untimed run per row pipes the receiver into sha256sum and
#    checks the digest against the file's (sha256 runs at a few hundred MB/s here: in a timed run it would be the figure).
# 2. A whole process through nk's SOCKS5 server: `nk dial --proxy socks5://P 127.0.0.1 T`
#    against a direct `nk dial 127.0.0.1 T`, T a small asyncio server that says one line and
#    closes; ms per process over N processes in RUNS rounds (bench/lib.sh proc_rounds), the
#    output of each checked. The loopback round trip (ping -c 20 127.0.0.1, avg) is printed
#    for the bar.
#
# The proxies: nk listen --proxy on 127.0.0.1:P (release build); tinyproxy and danted as
# nobody when run as root, configs in the work dir, danted with one process (-N 1).
# Env: RUNS=3 SIZE_MB=1024 N=300 NK=<nk binary> (default: <repo>/target/release/nk) TIMEOUT=60
# Exit: 0 all runs clean; 1 a run failed, hung or lost bytes; 2 nk missing (rows skipped).
# Bars (issue 21, printed, not enforced): nk CONNECT >= 1.5x tinyproxy; nk SOCKS5 >= 1x
# dante; the proxied nk dial process <= 1.2x the direct one plus one round trip.
set -uo pipefail
export LC_ALL=C

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/.." && pwd)
RUNS=${RUNS:-3}
SIZE_MB=${SIZE_MB:-1024}
N=${N:-300}
TIMEOUT=${TIMEOUT:-60}
NK=${NK:-$root/target/release/nk}
NC=${NC_BIN:-nc}
bytes=$((SIZE_MB * 1024 * 1024))
out_md=$here/results/20_proxy_server.md

. "$here/lib.sh"

nk_pid="" tiny_pid="" dante_pid="" target_pid=""
stop_all() {
    stop_pidvar nk_pid
    stop_pidvar tiny_pid
    stop_pidvar dante_pid
    stop_pidvar target_pid
}
work_dir 20 stop_all

need_tools 20_proxy_server "$NC" tinyproxy danted python3 ss sha256sum timeout awk ping
nk_why=$(nk_lacks listen)
[[ -z $nk_why ]] && ! "$NK" listen --help 2>/dev/null | grep -q -- "--proxy <KINDS>" &&
    nk_why="no \`listen --proxy\`"
nk_rows 20_proxy_server
status=0
[[ $have_nk == 1 ]] || status=2

file=$(bulk_file "$SIZE_MB") || { log "20_proxy_server: cannot create the test file"; exit 1; }
want_ck=$(digest <"$file")
chmod 755 "$work"
life=$((TIMEOUT * (RUNS + 2) * 6))

# The daemons run as nobody when we are root (tinyproxy will not run as root without a User).
nobody=()
[[ $(id -u) == 0 ]] && nobody=(setpriv --reuid=65534 --regid=65534 --clear-groups)

tport=$(free_port) || exit 1
cat >"$work/tinyproxy.conf" <<CFG
Port $tport
Listen 127.0.0.1
Timeout 120
MaxClients 100
LogLevel Error
Allow 127.0.0.1
CFG
timeout -k 5 "$life" "${nobody[@]}" tinyproxy -d -c "$work/tinyproxy.conf" >/dev/null 2>>"$work/err" &
tiny_pid=$!
wait_listen "$tport" "$tiny_pid" || { log "20_proxy_server: tinyproxy did not start: $(cat "$work/err")"; exit 1; }

dport=$(free_port) || exit 1
cat >"$work/danted.conf" <<CFG
logoutput: stderr
internal: 127.0.0.1 port = $dport
external: 127.0.0.1
socksmethod: none
clientmethod: none
client pass {
  from: 127.0.0.0/8 to: 0.0.0.0/0
}
socks pass {
  from: 127.0.0.0/8 to: 0.0.0.0/0
  command: connect
}
CFG
timeout -k 5 "$life" "${nobody[@]}" danted -f "$work/danted.conf" -N 1 -p "$work/danted.pid" \
    >/dev/null 2>>"$work/err" &
dante_pid=$!
wait_listen "$dport" "$dante_pid" || { log "20_proxy_server: danted did not start: $(cat "$work/err")"; exit 1; }

if [[ $have_nk == 1 ]]; then
    nport=$(free_port) || exit 1
    timeout -k 5 "$life" "$NK" listen --proxy http,socks5 "127.0.0.1:$nport" 2>>"$work/err" &
    nk_pid=$!
    wait_listen "$nport" "$nk_pid" || { log "20_proxy_server: nk did not start: $(cat "$work/err")"; exit 1; }
fi

tools=()
[[ $have_nk == 1 ]] && tools+=(nk-connect)
tools+=(tinyproxy)
[[ $have_nk == 1 ]] && tools+=(nk-socks5)
tools+=(dante)

# one_run ROW CHECK: prints MB/s (or FAIL); with CHECK=1 checks the bytes with sha256sum.
one_run() {
    local row=$1 check=$2 r t0 t1 rpid kind pp
    r=$(free_port) || return 1
    case $row in
    nk-connect) kind=connect pp=$nport ;;
    tinyproxy) kind=connect pp=$tport ;;
    nk-socks5) kind=5 pp=$nport ;;
    dante) kind=5 pp=$dport ;;
    esac
    if [[ $check == 1 ]]; then
        ( TO "$NC" -l 127.0.0.1 "$r" | digest >"$work/ck" ) &
    else
        TO "$NC" -l 127.0.0.1 "$r" >/dev/null &
    fi
    rpid=$!
    wait_listen "$r" "$rpid" || { echo FAIL; return 1; }
    t0=$(date +%s.%N)
    TO "$NC" -N -X "$kind" -x "127.0.0.1:$pp" 127.0.0.1 "$r" <"$file" >/dev/null 2>>"$work/err"
    wait "$rpid" || { echo FAIL; return 1; }
    t1=$(date +%s.%N)
    if [[ $check == 1 ]] && ! ck_matches 20_proxy_server "$row"; then
        echo FAIL
        return 1
    fi
    mbps "$bytes" "$t0" "$t1"
}

declare -A RES OK
checked_rounds 20_proxy_server

# --- 2. a whole nk dial process, direct and through nk's SOCKS5 server
declare -A SECS CNT ROUND_MS FAILS VERIFY
if [[ $have_nk == 1 ]]; then
    target_port=$(free_port) || exit 1
    timeout -k 5 "$life" python3 -c '
import asyncio, sys
async def hello(reader, writer):
    writer.write(b"hello from the target\n")
    await writer.drain()
    writer.close()
async def main():
    server = await asyncio.start_server(hello, "127.0.0.1", int(sys.argv[1]), backlog=512)
    async with server:
        await server.serve_forever()
asyncio.run(main())' "$target_port" 2>>"$work/err" &
    target_pid=$!
    wait_listen "$target_port" "$target_pid" || { log "20_proxy_server: the target did not start"; exit 1; }
    cmd_of() {
        case $1 in
        direct) CMD=("$NK" dial 127.0.0.1 "$target_port") ;;
        proxied) CMD=("$NK" dial --proxy "socks5://127.0.0.1:$nport" 127.0.0.1 "$target_port") ;;
        esac
    }
    check_out() {
        local n
        n=$(grep -c '^hello from the target$' "$2")
        ((n == $3)) || echo "$n of $3 greetings arrived"
    }
    proc_verify direct "$work/v.direct"
    proc_verify proxied "$work/v.proxied"
    proc_rounds 20_proxy_server direct proxied
fi
rtt=$(ping -c 20 -i 0.01 -q 127.0.0.1 2>/dev/null | awk -F/ '/^rtt|^round-trip/ { print $5 }')

med() { stats "${RES[$1]:-}" | awk '{print $1}'; }
{
    echo "# 20_proxy_server: ${SIZE_MB} MiB nc -X -> proxy -> nc -l (loopback, MB/s, median of $RUNS)"
    echo
    echo "Load when measured: $(cut -d' ' -f1-3 /proc/loadavg) on $(nproc) cores."
    echo
    echo "| proxy (client) | median MB/s | min | max | bytes checked |"
    echo "| --- | --- | --- | --- | --- |"
    for row in "${tools[@]}"; do
        read -r m lo hi <<<"$(stats "${RES[$row]:-}")"
        case $row in
        nk-connect) label="nk listen --proxy (nc -X connect)" ;;
        tinyproxy) label="tinyproxy (nc -X connect)" ;;
        nk-socks5) label="nk listen --proxy (nc -X 5)" ;;
        dante) label="danted -N 1 (nc -X 5)" ;;
        esac
        echo "| $label | $m | $lo | $hi | ${OK[$row]} |"
    done
    echo
    if [[ $have_nk == 1 ]]; then
        echo "nk CONNECT vs tinyproxy: $(ratio "$(med nk-connect)" "$(med tinyproxy)" 1.5)"
        echo "nk SOCKS5 vs dante: $(ratio "$(med nk-socks5)" "$(med dante)" 1.0)"
        echo
        d=$(per_ms direct) p=$(per_ms proxied)
        echo "## a whole \`nk dial\` process ($N processes each, $RUNS rounds)"
        echo
        echo "| how | ms per process | per round | output |"
        echo "| --- | --- | --- | --- |"
        echo "| direct | ${d:--} | $(fmt_rounds direct) | ${VERIFY[direct]:-}${FAILS[direct]:+; FAILED: ${FAILS[direct]}} |"
        echo "| through nk's SOCKS5 server | ${p:--} | $(fmt_rounds proxied) | ${VERIFY[proxied]:-}${FAILS[proxied]:+; FAILED: ${FAILS[proxied]}} |"
        echo
        awk -v d="$d" -v p="$p" -v rtt="${rtt:-0}" 'BEGIN {
            if (d == "" || p == "") { print "proxied vs direct: -"; exit }
            bar = 1.2 * d + rtt
            printf "proxied vs direct: %.2fx; bar: proxied <= 1.2 x %.3f + %.3f (loopback RTT) = %.3f ms: %s\n",
                p / d, d, rtt, bar, (p <= bar ? "PASS" : "FAIL") }'
    fi
} >"$work/out.md"
finish "$out_md"
