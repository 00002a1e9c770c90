#!/usr/bin/env bash
# 02_echo_many.sh - many TCP clients against one listener over 127.0.0.1.
#
# Part 1, sequential echo: CONNS times, one after the other, connect + "ping\n" + read the
#   echo + close (bench/echo_client.py seq), against
#     nk listen -k -e /bin/cat 127.0.0.1:P
#     socat TCP-LISTEN:P,bind=127.0.0.1,fork,reuseaddr EXEC:cat
#     ncat -lk --exec /bin/cat 127.0.0.1 P
#   RUNS rounds, each with a fresh server, the order rotated each round. conn/s = good
#   connections / wall time of the round's loop (median of the rounds, min-max); p50 / p99 =
#   percentiles of every connection's connect-to-close time, all rounds pooled.
# Part 2, held connections: HELD clients connect to `nk listen -k 127.0.0.1:P` (stdin = a FIFO
#   this script holds open, stdout = /dev/null), BATCH connects at a time, and each sends one
#   line. Once the server has accepted them all, the server's memory is read (VmRSS and PSS
#   from /proc/PID/smaps_rollup, summed over its process tree); then one line is written into
#   the FIFO, which nk must broadcast to every client, and the clients count who got it.
#
# Env: CONNS=2000 RUNS=3 HELD=1000 BATCH=50 (connects in flight in part 2)
#      HELD_REF=0 (1: also run part 2 against `ncat -lk -m 10000`, the same stdin-broadcast
#                  contract; about 15-40 s more, ncat accepts slowly)
#      BCAST_WAIT=10 (s each client may take to receive the broadcast)
#      NK=<nk binary> (default <repo>/target/release/nk)  PYTHON=<python3>
#      TIMEOUT=60 (seconds, per process)
# Exit: 0 all runs clean; 1 a run failed/hung, an echo or the broadcast was lost, or a
#       server crashed or ignored SIGTERM; 2 nk missing or without `listen -k` (rows skipped).
# Bars (printed, not enforced): part 1 nk >= 1.5x socat conn/s; part 2 nk VmRSS <= 64 MiB
# with HELD connections open, and every client received the broadcast.
set -uo pipefail
export LC_ALL=C

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/.." && pwd)
CONNS=${CONNS:-2000}
RUNS=${RUNS:-3}
HELD=${HELD:-1000}
BATCH=${BATCH:-50}
HELD_REF=${HELD_REF:-0}
BCAST_WAIT=${BCAST_WAIT:-10}
TIMEOUT=${TIMEOUT:-60}
NK=${NK:-$root/target/release/nk}
if [[ -z ${PYTHON:-} ]]; then
    PYTHON=python3
    [[ -x /usr/bin/python3 ]] && PYTHON=/usr/bin/python3
fi
client=$here/echo_client.py
out_md=$here/results/02_echo_many.md
RSS_BAR_MIB=64
RATIO_BAR=1.5

. "$here/lib.sh" # log, free_port, wait_listen, TO, stats, need_tools, work_dir, term_server

live=() # timeout(1) pids of servers / clients still running
stop_live() {
    local p
    for p in "${live[@]}"; do
        kill -TERM "$p" 2>/dev/null # timeout(1) passes it on to its process group
    done
}
work_dir 02 stop_live
forget() { # pid: drop it from $live
    local p keep=()
    for p in "${live[@]}"; do [[ $p == "$1" ]] || keep+=("$p"); done
    live=("${keep[@]}")
}

need_tools 02_echo_many socat ncat ss timeout awk jq pgrep "$PYTHON"

# Both the server and the client need an fd each per connection: raise the soft limit.
need_fd=$((HELD + 256)); ((need_fd < 4096)) && need_fd=4096
if (($(ulimit -n) < need_fd)); then
    ulimit -n "$need_fd" 2>/dev/null || {
        log "02_echo_many: cannot raise the fd limit to $need_fd (hard limit $(ulimit -Hn))"; exit 1; }
fi

have_nk=1 nk_why=""
if [[ ! -x $NK ]]; then
    have_nk=0 nk_why="not built"
elif ! "$NK" listen --help 2>/dev/null | grep -qE '(^|[[:space:]])-k[,[:space:]]'; then
    have_nk=0 nk_why="no listen -k"
fi
((have_nk)) || log "02_echo_many: nk at $NK: $nk_why: nk rows skipped"

# ---------------------------------------------------------------- servers
# start_server TOOL MODE PORT STDIN-FD -> S_TPID (timeout pid), S_PID (the server itself).
# MODE: exec (echo through /bin/cat) | plain (stdin/stdout, no child).
start_server() {
    local tool=$1 mode=$2 port=$3 errf=$work/err.$1.$2 i
    : >"$errf"
    case $tool/$mode in
    # exec: $! is then timeout(1) itself, and the server is its only child.
    nk/exec) exec timeout -k 5 "$TIMEOUT" "$NK" listen -k -e /bin/cat "127.0.0.1:$port" ;;
    socat/exec) exec timeout -k 5 "$TIMEOUT" socat "TCP-LISTEN:$port,bind=127.0.0.1,fork,reuseaddr" EXEC:cat ;;
    ncat/exec) exec timeout -k 5 "$TIMEOUT" ncat -lk --exec /bin/cat 127.0.0.1 "$port" ;;
    nk/plain) exec timeout -k 5 "$TIMEOUT" "$NK" listen -k "127.0.0.1:$port" ;;
    ncat/plain) exec timeout -k 5 "$TIMEOUT" ncat -lk -m 10000 127.0.0.1 "$port" ;;
    esac <&"$4" >/dev/null 2>"$errf" &
    S_TPID=$! S_PID=""
    live+=("$S_TPID")
    for ((i = 0; i < 100; i++)); do
        S_PID=$(pgrep -P "$S_TPID" | head -n1)
        [[ -n $S_PID ]] && break
        sleep 0.01
    done
    wait_listen "$port" "$S_TPID" && [[ -n $S_PID ]]
}
# stop_server -> S_STOP: "SIGTERM" if it exited within 3 s of SIGTERM, else what it took.
# (3 s, not 5: timeout(1) itself sends SIGKILL 5 s after passing SIGTERM on.)
stop_server() {
    S_STOP="SIGTERM"
    term_server "$S_TPID" "$S_PID" || S_STOP="still running 3 s after SIGTERM: SIGKILL"
    forget "$S_TPID"
}
err_tail() { tail -c 300 "$work/err.$1.$2" 2>/dev/null | tr '\n|' ' /'; }

# mem_of PID -> "rss_kib pss_kib procs threads fds" summed over PID and its descendants
mem_of() {
    local pids=("$1") i=0 p rss=0 pss=0 thr=0 fds=0 v
    while ((i < ${#pids[@]})); do
        for p in $(pgrep -P "${pids[i]}"); do pids+=("$p"); done
        i=$((i + 1))
    done
    for p in "${pids[@]}"; do
        v=$(awk '/^VmRSS:/ { print $2 }' "/proc/$p/status" 2>/dev/null); rss=$((rss + ${v:-0}))
        v=$(awk '/^Threads:/ { print $2 }' "/proc/$p/status" 2>/dev/null); thr=$((thr + ${v:-0}))
        v=$(awk '/^Pss:/ { print $2 }' "/proc/$p/smaps_rollup" 2>/dev/null); pss=$((pss + ${v:-0}))
        v=$(ls "/proc/$p/fd" 2>/dev/null | wc -l); fds=$((fds + v))
    done
    echo "$rss $pss ${#pids[@]} $thr $fds"
}
mib() { awk -v k="$1" 'BEGIN { printf "%.1f", k / 1024 }'; }
# Connections on local port $1 that process $2 has accepted (owns an fd for).
accepted() { ss -Htnp state established "( sport = :$1 )" 2>/dev/null | grep -c "pid=$2,"; }

# ---------------------------------------------------------------- part 1: sequential echo
tools=(socat ncat)
((have_nk)) && tools=(nk socat ncat)
declare -A CPS FAILS NOTE
status=0
exec 8</dev/null
n=${#tools[@]}
for ((r = 0; r < RUNS; r++)); do
    line="02_echo_many: seq round $((r + 1))/$RUNS:"
    for ((k = 0; k < n; k++)); do
        t=${tools[$(((k + r) % n))]}
        port=$(free_port) || { FAILS[$t]+="round $((r + 1)): no free port; "; status=1; continue; }
        if ! start_server "$t" exec "$port" 8; then
            FAILS[$t]+="round $((r + 1)): not listening on $port: $(err_tail "$t" exec); "
            status=1 line+=" $t=FAIL"
            stop_server
            continue
        fi
        res=$(TO "$PYTHON" "$client" seq 127.0.0.1 "$port" --count "$CONNS" \
            --lat-out "$work/lat.$t.$r" --deadline "$((TIMEOUT > 15 ? TIMEOUT - 10 : TIMEOUT / 2))" \
            2>"$work/cl.err")
        crc=$?
        alive=1; kill -0 "$S_PID" 2>/dev/null || alive=0
        stop_server
        ok=$(jq -r '.ok // 0' <<<"$res" 2>/dev/null); ok=${ok:-0}
        cps=$(jq -r '.conn_per_s // empty' <<<"$res" 2>/dev/null)
        msg=""
        ((crc == 124 || crc == 137)) && msg+="client timed out after ${TIMEOUT}s; "
        ((ok != CONNS)) && msg+="$ok/$CONNS echoed: $(jq -r '"\(.errors) errors, \(.not_attempted) not attempted (\(.stopped // "-")): " + (.error_samples[:2] | join(" / "))' <<<"$res" 2>/dev/null) $(tail -c 200 "$work/cl.err" | tr '\n' ' '); "
        ((alive)) || msg+="server died during the round: $(err_tail "$t" exec); "
        [[ $S_STOP == SIGTERM ]] || msg+="server $S_STOP; "
        if [[ -n $msg ]]; then
            FAILS[$t]+="round $((r + 1)): ${msg%; }; "; status=1
            line+=" $t=FAIL"
        else
            CPS[$t]+="$cps "
            line+=" $t=${cps}/s"
        fi
    done
    log "$line"
done

# pooled percentile: pct TOOL P -> ms
pct() {
    cat "$work"/lat."$1".* 2>/dev/null | sort -g | awk -v p="$2" '
        { v[NR] = $1 }
        END { if (NR == 0) { print "-"; exit }
              k = int((p * NR + 99) / 100); if (k < 1) k = 1; if (k > NR) k = NR
              printf "%.2f", v[k] }'
}
med() { local s; s=$(stats "${CPS[$1]:-}"); echo "${s%% *}"; }
label() {
    case $1 in
    nk) echo "nk listen -k -e /bin/cat" ;;
    socat) echo "socat TCP-LISTEN,fork,reuseaddr EXEC:cat" ;;
    ncat) echo "ncat -lk --exec /bin/cat" ;;
    esac
}
table1=$(
    echo "| server | conn/s median (min-max) | p50 ms | p99 ms | nk/socat | nk/ncat | runs |"
    echo "| --- | --- | --- | --- | --- | --- | --- |"
    for t in nk socat ncat; do
        if [[ $t == nk ]] && ((!have_nk)); then
            echo "| $(label nk) | $nk_why | | | | | |"; continue
        fi
        read -r m lo hi <<<"$(stats "${CPS[$t]:-}")"
        val="-"; [[ $m != - ]] && val="$m ($lo-$hi)"
        r_s="" r_n=""
        if [[ $t == nk ]]; then
            r_s=$(ratio "$(med nk)" "$(med socat)" "$RATIO_BAR")
            r_n=$(ratio "$(med nk)" "$(med ncat)")
            if [[ -n ${FAILS[nk]:-} ]]; then
                r_s="INVALID (failed runs)"; r_n=$r_s
            fi
        fi
        runs="$(wc -w <<<"${CPS[$t]:-}")/$RUNS clean"
        [[ -n ${FAILS[$t]:-} ]] && runs+="; FAILED: ${FAILS[$t]%; }"
        echo "| $(label "$t") | $val | $(pct "$t" 50) | $(pct "$t" 99) | $r_s | $r_n | ${runs//|//} |"
    done
)

# ---------------------------------------------------------------- part 2: held connections
# held_run TOOL -> one table row. The client (echo_client.py held) runs as a coprocess:
# it prints "ready" once every connect has finished, waits for "go", collects the broadcast,
# prints "result", and closes everything on "close".
held_run() {
    local t=$1 port fifo=$work/stdin.fifo bline lr res closed i n_acc=0 m_idle m_held m_after
    local opened msg="" open_s="-" recv="-" bar_rss="-" ok_all=0 acc_s rss_max
    rm -f "$fifo"; mkfifo "$fifo" || { echo "| $t | mkfifo failed | | | | | | | |"; status=1; return; }
    exec 9<>"$fifo" # O_RDWR: the server's stdin never reaches EOF, and writes never block
    bline="nk-bench-broadcast-$RANDOM$RANDOM"
    port=$(free_port) || { echo "| $t | no free port | | | | | | | |"; status=1; exec 9>&-; return; }
    if ! start_server "$t" plain "$port" 9; then
        echo "| $t | not listening: $(err_tail "$t" plain) | | | | | | | |"; status=1
        stop_server; exec 9>&-; return
    fi
    sleep 0.2
    m_idle=$(mem_of "$S_PID")
    coproc CL { exec 9>&- 8>&-; exec timeout -k 5 "$TIMEOUT" "$PYTHON" "$client" held 127.0.0.1 "$port" \
        --count "$HELD" --batch "$BATCH" --expect "$bline" --timeout 15 --cmd-timeout "$TIMEOUT" --wait "$BCAST_WAIT" 2>"$work/held.err"; }
    # Own copies of the coprocess's pipes: bash closes CL[*] as soon as the client exits.
    local cpid=$CL_PID cin cout
    exec {cin}>&"${CL[1]}" {cout}<&"${CL[0]}"
    live+=("$cpid")
    lr=""
    read -r -t "$((TIMEOUT + 5))" -u "$cout" lr
    opened=$(jq -r '.opened // 0' <<<"$lr" 2>/dev/null); opened=${opened:-0}
    open_s=$(jq -r '.open_s // "-"' <<<"$lr" 2>/dev/null)
    if [[ -z $lr ]]; then
        msg+="client never reported ready: $(tail -c 200 "$work/held.err" | tr '\n' ' '); "
    elif ((opened != HELD)); then
        msg+="$opened/$HELD connects succeeded: $(jq -r '.fail_samples | join(" / ")' <<<"$lr"); "
    fi
    # Wait (bounded, 20 s) until the server has accepted every open connection.
    local t0=$EPOCHREALTIME
    for ((i = 0; i < 100; i++)); do
        n_acc=$(accepted "$port" "$S_PID")
        ((n_acc >= opened)) && break
        kill -0 "$S_PID" 2>/dev/null || break
        sleep 0.2
    done
    acc_s=$(awk -v a="$t0" -v b="$EPOCHREALTIME" -v o="$open_s" 'BEGIN { printf "%.2f", (o == "-" ? 0 : o) + b - a }')
    ((n_acc < opened)) && msg+="server accepted only $n_acc of $opened within 20 s; "
    m_held=$(mem_of "$S_PID")
    # Broadcast: tell the client to start its clock, then write the line into the server's stdin.
    echo go >&"$cin"
    printf '%s\n' "$bline" >&9
    res=""
    read -r -t "$((BCAST_WAIT + 10))" -u "$cout" res
    m_after=$(mem_of "$S_PID")
    if [[ -z $res ]]; then
        msg+="client gave no result; "
    else
        recv=$(jq -r '.received' <<<"$res")
        local extra wrong pre eof errs
        read -r extra wrong pre eof errs <<<"$(jq -r '"\(.extra) \(.wrong_data) \(.data_before_go) \(.closed_by_server) \(.errors)"' <<<"$res")"
        ((recv == HELD)) && ok_all=1
        ((recv == HELD)) || msg+="broadcast reached $recv/$HELD clients; "
        ((extra > 0)) && msg+="$extra clients got more than the line (duplicate or echo): $(jq -r '.samples_wrong | join(" ")' <<<"$res"); "
        ((wrong > 0)) && msg+="$wrong clients got wrong data: $(jq -r '.samples_wrong | join(" ")' <<<"$res"); "
        ((pre > 0)) && msg+="$pre clients got data before the broadcast; "
        ((eof > 0)) && msg+="server closed $eof connections; "
        ((errs > 0)) && msg+="$errs connections reset/failed; "
        local bl; bl=$(jq -r 'if .bcast_max_ms then "\(.bcast_p50_ms*100|round/100) / \(.bcast_max_ms*100|round/100)" else "-" end' <<<"$res")
        NOTE[bcast]=$bl
    fi
    echo close >&"$cin" 2>/dev/null
    closed=""
    read -r -t 10 -u "$cout" closed
    for ((i = 0; i < 100; i++)); do kill -0 "$cpid" 2>/dev/null || break; sleep 0.05; done
    kill -TERM "$cpid" 2>/dev/null
    wait "$cpid" 2>/dev/null
    forget "$cpid"
    exec {cin}>&- {cout}<&-
    local alive=1; kill -0 "$S_PID" 2>/dev/null || alive=0
    ((alive)) || msg+="server died: $(err_tail "$t" plain); "
    stop_server
    [[ $S_STOP == SIGTERM ]] || msg+="server $S_STOP; "
    exec 9>&-
    [[ -n $msg ]] && status=1
    local r_i p_i r_h p_h pr_h th_h fd_h r_a p_a
    read -r r_i p_i _ _ _ <<<"$m_idle"
    read -r r_h p_h pr_h th_h fd_h <<<"$m_held"
    read -r r_a p_a _ _ _ <<<"$m_after"
    rss_max=$((r_h > r_a ? r_h : r_a))
    if [[ $t == nk ]]; then
        bar_rss="$(mib "$rss_max") MiB (bar <= $RSS_BAR_MIB MiB: $( ((rss_max <= RSS_BAR_MIB * 1024)) && echo PASS || echo FAIL))"
        ((ok_all)) || bar_rss+="; broadcast bar: FAIL"
    fi
    local lbl="nk listen -k"; [[ $t == ncat ]] && lbl="ncat -lk -m 10000 (reference)"
    echo "| $lbl | $opened/$HELD in ${open_s}s, $n_acc accepted (${acc_s}s) | $recv/$HELD (p50 / max ms: ${NOTE[bcast]:--}) | $(mib "$r_i") / $(mib "$p_i") | $(mib "$r_h") / $(mib "$p_h") | $(mib "$r_a") / $(mib "$p_a") | $pr_h / $th_h / $fd_h | $bar_rss | $(msg=${msg%; }; echo "${msg:-ok}") |"
    NOTE[bcast]=""
}

held_tools=()
((have_nk)) && held_tools+=(nk)
[[ $HELD_REF == 1 ]] && held_tools+=(ncat)
{
    echo "| server | connections open, accepted (time) | got the broadcast (latency) | idle RSS / PSS MiB | held RSS / PSS MiB | after broadcast RSS / PSS MiB | procs / threads / fds | nk bar | problems |"
    echo "| --- | --- | --- | --- | --- | --- | --- | --- | --- |"
    ((have_nk)) || echo "| nk listen -k | $nk_why | | | | | | | |"
} >"$work/table2"
for t in "${held_tools[@]}"; do
    log "02_echo_many: held: $t, $HELD connections"
    held_run "$t" >>"$work/table2"
    log "02_echo_many: held: $t: $(tail -n1 "$work/table2")"
done
table2=$(cat "$work/table2")

{
    echo "# 02_echo_many: many TCP clients over 127.0.0.1"
    echo
    echo "$(date -u '+%Y-%m-%d %H:%M UTC'), $(uname -r), $(nproc) CPUs; nk: $NK$( ((have_nk)) || echo " ($nk_why)"); git $(git -C "$root" rev-parse --short HEAD 2>/dev/null || echo none)"
    echo
    echo "## Sequential connect + \"ping\\n\" + echo + close: $RUNS x $CONNS"
    echo
    echo "$table1"
    echo
    echo "conn/s = echoed connections / wall time of the round (median of $RUNS rounds); p50 / p99 over"
    echo "all rounds' connections (connect to close, bench/echo_client.py seq). Bar: nk >= ${RATIO_BAR}x socat conn/s."
    echo
    echo "## $HELD held connections, stdin broadcast (\`listen -k\`, stdin = FIFO, stdout = /dev/null)"
    echo
    echo "$table2"
    echo
    echo "Connects $BATCH at a time; each client sends one line; memory is read once the server has"
    echo "accepted them all (\"held\") and again after one line written to the server's stdin reached"
    echo "the clients. RSS = VmRSS, PSS from /proc/PID/smaps_rollup, both summed over the server's"
    echo "process tree; MiB = 1024^2 bytes. Bars: nk RSS <= $RSS_BAR_MIB MiB (the larger of held and"
    echo "after broadcast), and all $HELD clients receive the broadcast line exactly once."
} >"$work/out.md"
finish "$out_md"
