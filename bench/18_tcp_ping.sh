#!/usr/bin/env bash
# 18_tcp_ping.sh - TCP ping of a loopback listener: `nk ping --tcp` vs nmap's `nping
# --tcp-connect`, COUNT probes INTERVAL apart, no privilege needed by either.
#
#   nk     nk ping --tcp -q -c COUNT -i INTERVAL 127.0.0.1:PORT
#   nping  nping --tcp-connect -p PORT -c COUNT --delay INTERVAL 127.0.0.1   (Debian nmap)
#
# The listener is a python3 loop that accepts and closes each connection (so neither tool
# fills its queue). Per run: wall time (from $EPOCHREALTIME before and after, the tool under
# timeout(1)) and the tool's own average rtt (nk's `rtt min/avg/...` line, nping's `Avg rtt`).
# A run fails when the tool does not report COUNT successful connections. RUNS rounds, the
# tools' order alternating. The wall time is mostly COUNT x INTERVAL for both; the figure that
# tells them apart is the rtt each measures for the same handshake, and the overshoot of the
# wall time over COUNT x INTERVAL (the pacing cost).
# Env: RUNS=5 COUNT=100 INTERVAL_MS=10 TIMEOUT=60 NK=<nk binary> NPING=nping
# Exit: 0 all runs clean (also when nping is missing: logged, skipped); 1 a run failed.
set -uo pipefail
export LC_ALL=C

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/.." && pwd)
RUNS=${RUNS:-5}
COUNT=${COUNT:-100}
INTERVAL_MS=${INTERVAL_MS:-10}
TIMEOUT=${TIMEOUT:-60}
NK=${NK:-$root/target/release/nk}
NPING=${NPING:-nping}
out_md=$here/results/18_tcp_ping.md

. "$here/lib.sh" # log, stats, free_port, wait_listen, TO, need_tools, work_dir

command -v "$NPING" >/dev/null || { log "18_tcp_ping: skipped: no $NPING (apt-get install -y nmap)"; exit 0; }
need_tools 18_tcp_ping python3 timeout awk ss
[[ -x $NK ]] || { log "18_tcp_ping: no nk at $NK (cargo build --release)"; exit 1; }

server_pid=
stop_server() { [[ -n $server_pid ]] && kill "$server_pid" 2>/dev/null; wait 2>/dev/null; }
work_dir 18 stop_server

port=$(free_port) || { log "18_tcp_ping: no free port"; exit 1; }
python3 -c '
import socket, sys
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("127.0.0.1", int(sys.argv[1])))
s.listen(128)
while True:
    c, _ = s.accept()
    c.close()
' "$port" &
server_pid=$!
wait_listen "$port" "$server_pid" || { log "18_tcp_ping: listener did not start"; exit 1; }

interval_s=$(awk -v m="$INTERVAL_MS" 'BEGIN { printf "%g", m / 1000 }')
rc=0
declare -A wall rtt
run_tool() { # TOOL -> appends to wall[TOOL], rtt[TOOL]; returns 1 on a failed run
    local tool=$1 t0 t1 out=$work/$1.out avg ok
    t0=$EPOCHREALTIME
    if [[ $tool == nk ]]; then
        TO "$NK" ping --tcp -q -c "$COUNT" -i "$interval_s" "127.0.0.1:$port" >"$out" 2>&1
    else
        TO "$NPING" --tcp-connect -p "$port" -c "$COUNT" --delay "${INTERVAL_MS}ms" 127.0.0.1 >"$out" 2>&1
    fi
    t1=$EPOCHREALTIME
    if [[ $tool == nk ]]; then
        ok=$(grep -c "^$COUNT probes transmitted, $COUNT connected" "$out")
        avg=$(awk -F'[/ ]' '/^rtt min/ { print $8 }' "$out")
    else
        ok=$(grep -c "Successful connections: $COUNT " "$out")
        avg=$(awk '/Avg rtt:/ { sub("ms", "", $NF); print $NF }' "$out")
    fi
    if [[ $ok != 1 || -z $avg ]]; then
        log "18_tcp_ping: $tool run failed:"; cat "$out" >&2; return 1
    fi
    wall[$tool]+=" $(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.3f", b - a }')"
    rtt[$tool]+=" $avg"
}

for ((r = 0; r < RUNS; r++)); do
    order=(nk nping); ((r % 2)) && order=(nping nk)
    for tool in "${order[@]}"; do run_tool "$tool" || rc=1; done
done

{
    echo "## 18_tcp_ping: $COUNT probes, ${INTERVAL_MS} ms apart, 127.0.0.1 (RUNS=$RUNS, median min max)"
    echo
    echo "| tool | wall s | avg rtt ms |"
    echo "| --- | --- | --- |"
    for tool in nk nping; do
        echo "| $tool | $(stats "${wall[$tool]:-}" %.3f) | $(stats "${rtt[$tool]:-}" %.3f) |"
    done
    w_nk=$(stats "${wall[nk]:-}" %.3f | cut -d' ' -f1)
    w_np=$(stats "${wall[nping]:-}" %.3f | cut -d' ' -f1)
    echo
    echo "wall time nk / nping (medians): $(awk -v a="$w_nk" -v b="$w_np" 'BEGIN { if (b > 0) printf "%.2fx", a / b; else print "-" }')"
} | tee "$out_md"
exit "$rc"
