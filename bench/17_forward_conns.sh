#!/usr/bin/env bash
# 17_forward_conns.sh - what a forwarder costs per connection, on loopback.
#
# Two workloads, each through every forwarder (F -> echo server on R):
#   rate  sequential connect + 1 KiB echo (checked) + close, COUNT times, by one client
#         (bench/conn_client.py seq); connections per second.
#   held  HELD connections opened through the forwarder and kept open, each echoing one line
#         (bench/conn_client.py held); then the forwarder's resident memory (VmRSS of its
#         process tree, /proc) is read while all of them are open.
# Forwarders: none (the client talks to the echo server: the ceiling of the rate), nk forward,
# haproxy (mode tcp; maxconn 9990, which is what the 20,000-descriptor limit allows), and
# socat (TCP-LISTEN,fork: rate only; a process per connection cannot hold 9,900).
# The echo server is `nk echo -l --tcp` (one event loop) for every row, so only the
# forwarder changes between rows. Rounds interleave the forwarders, rotating the order.
#
# Env: RUNS=3 COUNT=3000 HELD=9900 NK=<nk binary> (default <repo>/target/release/nk) TIMEOUT=120
# Exit: 0 all runs clean; 1 a run failed or an echo differed; 2 nk missing (rows skipped).
# Bars (issue 20, printed, not enforced): rate >= 1.0x haproxy; held: every connection
# echoes, nk's RSS <= haproxy's.
set -uo pipefail
export LC_ALL=C

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/.." && pwd)
RUNS=${RUNS:-3}
COUNT=${COUNT:-3000}
HELD=${HELD:-9900}
TIMEOUT=${TIMEOUT:-120}
NK=${NK:-$root/target/release/nk}
out_md=$here/results/17_forward_conns.md

. "$here/lib.sh"

fwd_pid=""
echo_pid=""
stop_all() {
    stop_pidvar fwd_pid
    stop_pidvar echo_pid
}
work_dir 17 stop_all

need_tools 17_forward_conns python3 socat ss timeout awk
nk_why=$(nk_lacks forward)
nk_rows 17_forward_conns
status=0
if [[ $have_nk == 0 ]]; then
    log "17_forward_conns: the echo server is nk too: nothing to measure"
    exit 2
fi
tools=(none nk)
if command -v haproxy >/dev/null; then
    tools+=(haproxy)
else
    log "17_forward_conns: haproxy not installed (apt-get install haproxy): its rows are skipped"
fi
tools+=(socat)

client() { TO python3 "$here/conn_client.py" "$@"; }

# start_fwd TOOL FPORT RPORT: the forwarder in the background (fwd_pid), listening.
start_fwd() {
    local tool=$1 f=$2 r=$3
    case $tool in
    none) return 0 ;;
    nk) "$NK" forward -m 20000 "127.0.0.1:$f" "127.0.0.1:$r" >/dev/null 2>>"$work/err" & ;;
    socat) socat "TCP-LISTEN:$f,bind=127.0.0.1,reuseaddr,fork,backlog=1024" "TCP:127.0.0.1:$r" >/dev/null 2>>"$work/err" & ;;
    haproxy)
        cat >"$work/haproxy.cfg" <<CFG
global
    maxconn 9990
defaults
    mode tcp
    maxconn 9990
    timeout connect 10s
    timeout client 120s
    timeout server 120s
frontend in
    bind 127.0.0.1:$f
    default_backend out
backend out
    server s 127.0.0.1:$r maxconn 9990
CFG
        haproxy -db -f "$work/haproxy.cfg" >/dev/null 2>>"$work/err" &
        ;;
    esac
    fwd_pid=$!
    wait_listen "$f" "$fwd_pid"
}

# rss_kb PID: resident memory of PID and its children, in kB.
rss_kb() {
    local total=0 p kb
    for p in $1 $(pgrep -P "$1" 2>/dev/null); do
        kb=$(awk '/^VmRSS:/ {print $2}' "/proc/$p/status" 2>/dev/null)
        total=$((total + ${kb:-0}))
    done
    echo "$total"
}

r=$(free_port) || exit 1
"$NK" echo -l --tcp -m 20000 -i 0 "127.0.0.1:$r" >/dev/null 2>>"$work/err" &
echo_pid=$!
wait_listen "$r" "$echo_pid" || { log "17_forward_conns: the echo server did not start"; exit 1; }

# rate_run TOOL: prints connections/s, or FAIL.
rate_run() {
    local tool=$1 f port out
    f=$(free_port) || { echo FAIL; return; }
    port=$r
    if [[ $tool != none ]]; then
        start_fwd "$tool" "$f" "$r" || { echo FAIL; stop_pidvar fwd_pid; return; }
        port=$f
    fi
    out=$(client seq "$port" --count "$COUNT" --size 1024 --deadline "$TIMEOUT")
    stop_pidvar fwd_pid
    awk -v want="$COUNT" -F'[:,}]' '{
        for (i = 1; i < NF; i++) { gsub(/[ "{]/, "", $i); v[$i] = $(i + 1) }
        if (v["ok"] + 0 != want) { print "FAIL"; exit }
        printf "%.0f\n", v["conn_per_s"] }' <<<"$out"
}

declare -A RATE HELD_OK RSS
n=${#tools[@]}
for ((run = 0; run < RUNS; run++)); do
    for ((i = 0; i < n; i++)); do
        tool=${tools[$(((i + run) % n))]}
        v=$(rate_run "$tool")
        log "17_forward_conns: rate run $((run + 1)) $tool: $v conn/s"
        if [[ $v == FAIL ]]; then status=1; else RATE[$tool]+="$v "; fi
    done
done

# held_run TOOL: fills HELD_OK[TOOL] ("echoed/HELD") and RSS[TOOL] (kB).
held_run() {
    local tool=$1 f line
    f=$(free_port) || return 1
    start_fwd "$tool" "$f" "$r" || { stop_pidvar fwd_pid; return 1; }
    coproc HOLD { client held "$f" --count "$HELD" --batch 200 --timeout "$TIMEOUT"; }
    local hold_pid=$HOLD_PID
    read -r -t "$TIMEOUT" line <&"${HOLD[0]}"
    RSS[$tool]=$(rss_kb "$fwd_pid")
    echo close >&"${HOLD[1]}"
    wait "$hold_pid" 2>/dev/null
    stop_pidvar fwd_pid
    HELD_OK[$tool]=$(sed -n 's/.*"echoed": \([0-9]*\).*/\1/p' <<<"$line")
    log "17_forward_conns: held $tool: ${HELD_OK[$tool]:-?}/$HELD echoed, RSS ${RSS[$tool]} kB ($line)"
    [[ ${HELD_OK[$tool]:-0} == "$HELD" ]] || return 1
}
for tool in nk haproxy; do
    [[ " ${tools[*]} " == *" $tool "* ]] || continue
    held_run "$tool" || status=1
done

med() { stats "${RATE[$1]:-}" | awk '{print $1}'; }
{
    echo "# 17_forward_conns: cost per connection (loopback; echo server: nk echo -l)"
    echo
    echo "Sequential connect + 1 KiB echo (checked) + close, $COUNT per run, median of $RUNS:"
    echo
    echo "| forwarder | conn/s median | min | max | vs none |"
    echo "| --- | --- | --- | --- | --- |"
    base=$(med none)
    for tool in "${tools[@]}"; do
        read -r m lo hi <<<"$(stats "${RATE[$tool]:-}")"
        echo "| $tool | $m | $lo | $hi | $(ratio "$m" "$base") |"
    done
    echo
    [[ -n ${RATE[haproxy]:-} ]] && echo "nk vs haproxy: $(ratio "$(med nk)" "$(med haproxy)" 1.0)"
    echo "nk vs socat: $(ratio "$(med nk)" "$(med socat)")"
    echo
    echo "$HELD connections held open, each echoing one line:"
    echo
    echo "| forwarder | echoed | RSS (MB) |"
    echo "| --- | --- | --- |"
    for tool in nk haproxy; do
        [[ -n ${RSS[$tool]:-} ]] || continue
        echo "| $tool | ${HELD_OK[$tool]:-0}/$HELD | $(awk -v k="${RSS[$tool]}" 'BEGIN { printf "%.1f", k / 1024 }') |"
    done
    if [[ -n ${RSS[haproxy]:-} && -n ${RSS[nk]:-} ]]; then
        echo
        echo "nk RSS / haproxy RSS: $(ratio "${RSS[nk]}" "${RSS[haproxy]}") (bar <= 1.0x: $( ((RSS[nk] <= RSS[haproxy])) && echo PASS || echo FAIL))"
    fi
} | tee "$out_md"
exit "$status"
