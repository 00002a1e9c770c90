#!/usr/bin/env bash
# 04_udp.sh - UDP receive over 127.0.0.1: nk vs OpenBSD nc vs socat, one sender for all.
#
# Sender: bench/udp_blast.py (one connected socket) sends COUNT datagrams of 64 and of 1400
# bytes, per MODES entry:
#   flood  as fast as it can, FLOOD_BATCH datagrams per sendmmsg(2). "received dgram/s" is
#          what the receiver keeps up with; sent pps (and so received %) varies with the
#          receiver and the run, so it is not compared. A receiver that keeps up with all of
#          it only shows the sender's rate: then the flood bar is n/a (sender-limited).
#   RATE   (a number) paced at exactly RATE datagrams/s, sendmmsg bursts of <= PACE_BURST,
#          sleeping in between: the same offered load for every receiver, so received %
#          compares like with like.
# Receivers (stdin /dev/null), stdout piped into the counting reader `udp_blast.py count`:
#   nk     nk udp -l 127.0.0.1:P
#   nc     nc -u -l 127.0.0.1 P
#   socat  socat -u UDP-RECV:P,bind=127.0.0.1 -
# With PIN=1 (default on >= 2 CPUs) the sender runs on CPU 0 and receiver + counter on CPU 1
# (taskset), which takes most of the scheduler's run-to-run noise out of the flood figures.
# received = whole datagrams in the output (each ends in a marker; cut-short ones are counted
# apart as "truncated"); received % = received / sent; received dgram/s = received / (first
# send -> last output read by the counter). The sender starts SETTLE s after the receiver's
# socket appears; the receiver gets SIGTERM once its socket queue has drained (Recv-Q 0,
# bounded). Kernel drops = the Udp RcvbufErrors delta (/proc/net/snmp, namespace-wide).
# Rounds are interleaved, the order rotated each round. One extra, untimed run per receiver
# and size (VERIFY_COUNT datagrams at VERIFY_RATE pps, output to a file) checks that every
# datagram came out whole and once (udp_blast.py check).
#
# Env: RUNS=3 COUNT=300000 MODES="flood 100000 200000" SIZES="64 1400" FLOOD_BATCH=64
#      PACE_BURST=32 PIN=1 SETTLE=0.2 VERIFY_COUNT=20000 VERIFY_RATE=20000 TIMEOUT=60
#      NK=<nk binary> PYTHON=<python3>
# Exit: 0 all runs clean; 1 a run failed/hung, a receiver died early or ignored SIGTERM, a
#       datagram came out corrupt/duplicated in the check, or nk truncated one; 2 nk missing
#       (or its --help lists no `udp` command): nk rows skipped.
# Bar (printed, not enforced): flood nk >= 1.0x nc received dgram/s (n/a when nk received
# >= 99.9 % of the flood); every paced rate: nk received % >= nc's.
set -uo pipefail
export LC_ALL=C

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/.." && pwd)
RUNS=${RUNS:-3}
COUNT=${COUNT:-300000}
SIZES=${SIZES:-64 1400}
MODES=${MODES:-flood 100000 200000} # "flood" and/or paced rates in datagrams/s
FLOOD_BATCH=${FLOOD_BATCH:-64}
PACE_BURST=${PACE_BURST:-32}
PIN=${PIN:-1}
VERIFY_COUNT=${VERIFY_COUNT:-20000}
VERIFY_RATE=${VERIFY_RATE:-20000}
SETTLE=${SETTLE:-0.2}
TIMEOUT=${TIMEOUT:-60}
NK=${NK:-$root/target/release/nk}
NC=${NC_BIN:-nc}
if [[ -z ${PYTHON:-} ]]; then
    PYTHON=python3
    [[ -x /usr/bin/python3 ]] && PYTHON=/usr/bin/python3
fi
blast=$here/udp_blast.py
out_md=$here/results/04_udp.md

. "$here/lib.sh" # log, free_port_udp, wait_bound_udp, TO, stats, need_tools, nk_rows, work_dir

cur_rpid="" cur_wpid="" # receiver (timeout(1)) and counter of the run in progress
stop_run() {
    [[ -n $cur_rpid ]] && kill -TERM "$cur_rpid" 2>/dev/null
    [[ -n $cur_wpid ]] && kill -TERM "$cur_wpid" 2>/dev/null
}
work_dir 04 stop_run

need_tools 04_udp "$NC" socat ss timeout awk jq "$PYTHON"
"$NC" -h 2>&1 | grep -q OpenBSD || log "04_udp: warning: $NC is not OpenBSD netcat"

# CPU pinning: sender on CPU 0, receiver and counter on CPU 1
PIN_S=() PIN_R=()
if [[ $PIN == 1 ]] && (($(nproc) >= 2)) && command -v taskset >/dev/null; then
    PIN_S=(taskset -c 0) PIN_R=(taskset -c 1)
else
    PIN=0
fi

nk_why=$(nk_lacks udp)
nk_rows 04_udp

# ---------------------------------------------------------------- helpers
# recv_argv TOOL PORT -> RCMD (run directly under timeout(1), so that $! is timeout's pid and
# SIGTERM to it reaches the receiver)
recv_argv() {
    case $1 in
    nk) RCMD=("$NK" udp -l "127.0.0.1:$2") ;;
    nc) RCMD=("$NC" -u -l 127.0.0.1 "$2") ;;
    socat) RCMD=(socat -u UDP-RECV:"$2",bind=127.0.0.1 -) ;;
    esac
}
rcvbuf_errors() { # the Udp RcvbufErrors counter (first Udp: line = names, second = values)
    awk '/^Udp:/ { if (++n == 1) { for (i = 2; i <= NF; i++) if ($i == "RcvbufErrors") c = i }
                   else if (c) { print $c; exit } } END { if (!c) print 0 }' /proc/net/snmp
}
recvq() { ss -Huan "( sport = :$1 )" 2>/dev/null | awk '{ q += $2 } END { print q + 0 }'; }

# run_one TOOL SIZE MODE [verify] -> R_OK (0/1), R_MSG, R_SENT, R_PPS, R_RECV, R_RXSECS,
# R_TRUNC, R_DROPS, R_CHECK (the check JSON in verify mode)
run_one() {
    local tool=$1 size=$2 mode=$3 verify=${4:-} port rpid wpid js src rrc i q0 q1 d0 d1
    local errf=$work/err.$tool out=$work/out cnt=$work/cnt fifo=$work/fifo
    local count=$COUNT rate=0 batch=$FLOOD_BATCH
    [[ $mode != flood ]] && rate=$mode batch=$PACE_BURST
    [[ -n $verify ]] && count=$VERIFY_COUNT rate=$VERIFY_RATE batch=$PACE_BURST
    R_OK=1 R_MSG="" R_SENT=0 R_PPS="" R_RECV=0 R_RXSECS="" R_TRUNC=0 R_DROPS="" R_CHECK=""
    port=$(free_port_udp) || { R_OK=0 R_MSG="no free port"; return; }
    : >"$errf"
    rm -f "$out" "$cnt" "$fifo"
    wpid=""
    recv_argv "$tool" "$port"
    if [[ -n $verify ]]; then
        "${PIN_R[@]}" timeout -k 5 "$TIMEOUT" "${RCMD[@]}" </dev/null >"$out" 2>>"$errf" &
        rpid=$!
    else
        mkfifo "$fifo" || { R_OK=0 R_MSG="mkfifo failed"; return; }
        "${PIN_R[@]}" "$PYTHON" "$blast" count --size "$size" <"$fifo" >"$cnt" 2>>"$errf" &
        wpid=$!
        "${PIN_R[@]}" timeout -k 5 "$TIMEOUT" "${RCMD[@]}" </dev/null >"$fifo" 2>>"$errf" &
        rpid=$! # taskset execs timeout(1): this is its pid
    fi
    cur_rpid=$rpid cur_wpid=$wpid
    if ! wait_bound_udp "$port" "$rpid"; then
        kill -TERM "$rpid" 2>/dev/null; wait "$rpid" 2>/dev/null
        [[ -n $wpid ]] && { kill "$wpid" 2>/dev/null; wait "$wpid" 2>/dev/null; }
        cur_rpid="" cur_wpid=""
        R_OK=0 R_MSG="receiver not bound on udp port $port: $(tail -c 300 "$errf" | tr '\n' ' ')"
        return
    fi
    sleep "$SETTLE" # let the receiver reach its read loop: start-up is not measured
    d0=$(rcvbuf_errors)
    js=$(TO "${PIN_S[@]}" "$PYTHON" "$blast" send 127.0.0.1 "$port" --size "$size" \
        --count "$count" --rate "$rate" --batch "$batch" 2>>"$errf")
    src=$?
    # Let the receiver drain its socket: Recv-Q 0 at two polls 0.1 s apart (at most ~3 s).
    q0=1
    for ((i = 0; i < 30; i++)); do
        q1=$(recvq "$port")
        ((q0 == 0 && q1 == 0)) && break
        q0=$q1
        sleep 0.1
    done
    d1=$(rcvbuf_errors)
    R_DROPS=$((d1 - d0))
    if ! kill -0 "$rpid" 2>/dev/null; then
        wait "$rpid"; rrc=$?
        R_OK=0 R_MSG="receiver exited early with status $rrc"
    else
        kill -TERM "$rpid" 2>/dev/null # timeout(1) passes it on to the receiver
        for ((i = 0; i < 30; i++)); do
            kill -0 "$rpid" 2>/dev/null || break
            sleep 0.1
        done
        if kill -0 "$rpid" 2>/dev/null; then
            R_OK=0 R_MSG="receiver still running 3 s after SIGTERM"
            pkill -KILL -P "$rpid" 2>/dev/null; kill -KILL "$rpid" 2>/dev/null
        fi
        wait "$rpid"; rrc=$?
        # a stop by SIGTERM: 143 (killed by it), 130 (nk's "interrupted"), or 0
        if ((R_OK && rrc != 0 && rrc != 130 && rrc != 143)); then
            R_OK=0 R_MSG="receiver exit status $rrc after SIGTERM"
        fi
    fi
    if [[ -n $wpid ]]; then
        for ((i = 0; i < 50; i++)); do kill -0 "$wpid" 2>/dev/null || break; sleep 0.1; done
        kill -0 "$wpid" 2>/dev/null && { kill "$wpid" 2>/dev/null; R_OK=0 R_MSG+=" counter did not finish"; }
        wait "$wpid"
    else
        "$PYTHON" "$blast" count --size "$size" <"$out" >"$cnt" 2>>"$errf"
    fi
    cur_rpid="" cur_wpid=""
    if ! jq -e .whole "$cnt" >/dev/null 2>&1; then
        R_OK=0 R_MSG+=" counting reader failed"
    else
        R_RECV=$(jq -r .whole "$cnt") R_TRUNC=$(jq -r .truncated "$cnt")
    fi
    if ((src != 0)) || [[ -z $js ]]; then
        R_OK=0 R_MSG+=" sender exit status $src (124 = timeout after ${TIMEOUT}s)"
    else
        R_SENT=$(jq -r .sent <<<"$js") R_PPS=$(jq -r .pps <<<"$js")
        # first send -> last datagram out of the receiver (as read by the counter)
        R_RXSECS=$(jq -rn --argjson s "$js" --slurpfile c "$cnt" \
            'if $c[0].t_last then $c[0].t_last - $s.t_start else 0 end' 2>/dev/null)
        local se; se=$(jq -r .errors <<<"$js")
        ((se > 0)) && R_MSG+=" sender errors: $(jq -c .errnos <<<"$js")"
    fi
    if [[ -n $verify && -n $js ]]; then
        R_CHECK=$("$PYTHON" "$blast" check "$out" --size "$size" --count "$R_SENT" 2>&1)
        jq -e .ok <<<"$R_CHECK" >/dev/null 2>&1 || R_OK=0
    fi
    if ((R_OK == 0)) && [[ -s $errf ]]; then
        R_MSG+="; stderr: $(tail -c 300 "$errf" | tr '\n' ' ')"
    fi
    R_MSG=${R_MSG# }
    rm -f "$out" "$fifo"
}

pct() { awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.2f", 100 * a / b; else print 0 }'; }
rate_of() { awk -v a="$1" -v s="$2" 'BEGIN { if (s > 0) printf "%.0f", a / s; else print 0 }'; }

# ---------------------------------------------------------------- plan
tools=(nc socat)
((have_nk)) && tools=(nk nc socat)
combos=()
for m in $MODES; do
    [[ $m == flood || ($m =~ ^[0-9]+$ && $m -gt 0) ]] || { log "04_udp: MODES: $m is neither flood nor a rate"; exit 1; }
    for s in $SIZES; do
        ((s >= 20 && s <= 65507)) || { log "04_udp: SIZES: $s out of range 20-65507"; exit 1; }
        for t in "${tools[@]}"; do combos+=("$m:$s:$t"); done
    done
done

declare -A SENTPPS PCT RX DROPS TRUNC FAILS VERIFY
status=0

# ---------------------------------------------------------------- verification
for s in $SIZES; do
    for t in "${tools[@]}"; do
        run_one "$t" "$s" "$VERIFY_RATE" verify
        if ((R_OK == 0)); then
            VERIFY[$s:$t]="FAIL: ${R_MSG:-} ${R_CHECK:-}"; status=1
        else
            lost=$(jq -r .lost <<<"$R_CHECK")
            VERIFY[$s:$t]="ok"
            ((lost > 0)) && VERIFY[$s:$t]="ok ($lost of $R_SENT lost at $VERIFY_RATE pps)"
        fi
        log "04_udp: verify $s B $t: ${VERIFY[$s:$t]}"
    done
done

# ---------------------------------------------------------------- timed runs
n=${#combos[@]}
for ((r = 0; r < RUNS; r++)); do
    line="04_udp: round $((r + 1))/$RUNS:"
    for ((k = 0; k < n; k++)); do
        combo=${combos[$(((k + r) % n))]} # rotate the order each round
        IFS=: read -r m s t <<<"$combo"
        run_one "$t" "$s" "$m"
        if ((R_OK == 0)); then
            FAILS[$combo]+="run $((r + 1)): $R_MSG; "; status=1
            line+=" $m/$s/$t=FAIL"
            continue
        fi
        p=$(pct "$R_RECV" "$R_SENT")
        x=$(rate_of "$R_RECV" "$R_RXSECS")
        SENTPPS[$combo]+="$R_PPS " PCT[$combo]+="$p " RX[$combo]+="$x " DROPS[$combo]+="$R_DROPS "
        TRUNC[$combo]+="$R_TRUNC "
        line+=" $m/$s/$t=${p}%,${x}/s"
        ((R_TRUNC > 0)) && line+=",${R_TRUNC}trunc"
        # nk must write every datagram whole (one write per datagram)
        [[ $t == nk ]] && ((R_TRUNC > 0)) && status=1
    done
    log "$line"
done

# ---------------------------------------------------------------- table
med() { local v; v=$(stats "${2:-}" "${3:-%.0f}"); echo "${v%% *}"; }
label() {
    case $1 in
    nk) echo "nk udp -l" ;;
    nc) echo "nc -u -l" ;;
    socat) echo "socat -u UDP-RECV" ;;
    esac
}
# vs_nc MODE SIZE -> nk's bar cell
vs_nc() {
    local m=$1 s=$2 nkx nkp ncx ncp
    nkx=$(med x "${RX[$m:$s:nk]:-}") ncx=$(med x "${RX[$m:$s:nc]:-}")
    nkp=$(med x "${PCT[$m:$s:nk]:-}" %.2f) ncp=$(med x "${PCT[$m:$s:nc]:-}" %.2f)
    awk -v m="$m" -v a="$nkx" -v b="$ncx" -v p="$nkp" -v q="$ncp" 'BEGIN {
        if (a == "-" || b == "-" || b == 0) { print "-"; exit }
        r = a / b
        if (m != "flood")
            printf "%+.2f pt received (bar >= +0 pt: %s); %.2fx dgram/s", p - q, (p + 0 >= q + 0 ? "PASS" : "FAIL"), r
        else if (r >= 1.0)
            printf "%.2fx dgram/s (bar >= 1.0x: PASS); %+.2f pt received", r, p - q
        else if (p + 0 >= 99.9)
            printf "%.2fx dgram/s (bar: n/a, sender-limited: nk kept up with the whole flood, its figure is the sender rate; see the paced rows); %+.2f pt received", r, p - q
        else
            printf "%.2fx dgram/s (bar >= 1.0x: FAIL); %+.2f pt received", r, p - q }'
}

sent_cell() { # MODE values -> median sent pps, flagged when a paced run fell short of its rate
    local v; v=$(med x "$2")
    [[ $1 != flood && $v != - ]] && awk -v v="$v" -v r="$1" 'BEGIN { exit !(v < 0.97 * r) }' &&
        v+=" (short of rate)"
    echo "$v"
}

table=$(
    echo "| size | sender | receiver | sent pps | received % (min-max) | received dgram/s (min-max) | kernel drops | truncated | nk vs nc | verified |"
    echo "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |"
    for m in $MODES; do
        for s in $SIZES; do
            if [[ $m == flood ]]; then sender="flood"; else sender="paced $((m / 1000))k pps"; fi
            for t in nk nc socat; do
                combo=$m:$s:$t
                bar=""
                if [[ $t == nk ]] && ((!have_nk)); then
                    echo "| $s B | $sender | $(label nk) | - | $nk_why | | | | | |"
                    continue
                fi
                pc=$(fmt_range "${PCT[$combo]:-}" %.2f) rx=$(fmt_range "${RX[$combo]:-}")
                ver=${VERIFY[$s:$t]:-}
                tr=$(med x "${TRUNC[$combo]:-}")
                if [[ $t == nk ]]; then
                    bar=$(vs_nc "$m" "$s")
                    if [[ $ver != ok* ]] || [[ $tr != - && $(stats "${TRUNC[$combo]}" | awk '{print $3}') != 0 ]]; then
                        bar="INVALID (datagrams not verified or truncated)"
                        [[ $rx != - ]] && rx+=" INVALID"
                    fi
                fi
                [[ -n ${FAILS[$combo]:-} ]] && ver+="; FAILED RUNS: ${FAILS[$combo]}"
                ver=${ver%; }
                echo "| $s B | $sender | $(label "$t") | $(sent_cell "$m" "${SENTPPS[$combo]:-}") | $pc | $rx | $(med x "${DROPS[$combo]:-}") | $tr | $bar | ${ver//|//} |"
            done
        done
    done
)

{
    echo "# 04_udp: UDP receive over 127.0.0.1, udp_blast.py sender, median of $RUNS runs"
    echo
    echo "$(date -u '+%Y-%m-%d %H:%M UTC'), $(uname -r), $(nproc) CPUs, load $(cut -d' ' -f1 /proc/loadavg); nk: $NK$( ((have_nk)) || echo " ($nk_why)"); git $(git -C "$root" rev-parse --short HEAD 2>/dev/null || echo none); rmem_default $(cat /proc/sys/net/core/rmem_default); pinned: $( ((PIN)) && echo 'sender CPU 0, receiver + counter CPU 1' || echo no)"
    echo
    echo "$table"
    echo
    echo "$COUNT datagrams per run. Receiver stdout piped into \`udp_blast.py count\`. received % = whole datagrams out / sent;"
    echo "received dgram/s = whole datagrams out / (first send -> last output). flood = sendmmsg batches of $FLOOD_BATCH, as fast as"
    echo "the sender goes (its rate varies with the receiver: compare dgram/s; a receiver that keeps up with all of it only shows"
    echo "the sender's rate); paced = a fixed rate, sendmmsg bursts of <= $PACE_BURST (the same load for all: compare received %)."
    echo "kernel drops = Udp RcvbufErrors delta (namespace-wide); truncated = datagrams that came out cut short (median)."
    echo "Bars: flood nk >= 1.0x nc received dgram/s (n/a when nk kept up with the flood); paced nk received % >= nc's."
} >"$work/out.md"
finish "$out_md"
