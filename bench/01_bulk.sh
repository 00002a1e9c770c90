#!/usr/bin/env bash
# 01_bulk.sh - bulk one-way TCP throughput over 127.0.0.1: nk vs OpenBSD nc vs iperf3.
#
# Cases (all in one run, rounds interleaved so machine noise hits every tool alike):
#   file      sender stdin = page-cached file (`< file`), receiver stdout = /dev/null
#             (nk, nc -N, and iperf3 -n SIZE as the TCP ceiling)
#   pipe-in   sender stdin = `cat file |`,                receiver stdout = /dev/null
#   pipe-out  sender stdin = `< file`,                    receiver stdout = `| cat >/dev/null`
# Throughput = bytes / wall time from just before the sender starts until both the
# sender and the receiver have exited (listener start-up is not timed). MB = 1e6 bytes.
# One extra, untimed run per tool and stdin kind pipes the receiver into cksum(1) and
# checks length and CRC against the file: a tool that loses or corrupts bytes is flagged.
#
# Env: RUNS=5 SIZE_MB=2048 NK=<nk binary> (default: <repo>/target/release/nk)
#      TIMEOUT=60 (seconds, per process)  TMPDIR (where the test file is kept)
#      RECV_STDIN=null (default: receiver stdin is /dev/null, as with a plain `cmd &`)
#        or held (a FIFO that never reaches EOF; diagnostic only: separates throughput from
#        what a tool does when its own stdin hits EOF at once, e.g. half-closing the socket)
# Exit: 0 all runs clean; 1 a run failed/hung or bytes were lost; 2 nk binary missing.
# Bars (printed, not enforced): file nk >= 1.2x nc and >= 0.9x iperf3; pipe cases nk >= 1.0x nc.
set -uo pipefail
export LC_ALL=C

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/.." && pwd)
RUNS=${RUNS:-5}
SIZE_MB=${SIZE_MB:-2048}
TIMEOUT=${TIMEOUT:-60}
NK=${NK:-$root/target/release/nk}
NC=${NC_BIN:-nc}
bytes=$((SIZE_MB * 1024 * 1024))
tmpbase=${TMPDIR:-/tmp}
file=$tmpbase/nk-bench-bulk-${SIZE_MB}M.bin
out_md=$here/results/01_bulk.md

. "$here/lib.sh" # log, free_port, wait_listen, TO, stats, need_tools, work_dir, listener_failed, ck_verdict

cur_lpid="" # the listener (sub)shell of the run in progress, if any
work_dir 01 stop_cur_listener

need_tools 01_bulk "$NC" iperf3 ss cksum timeout awk jq
"$NC" -h 2>&1 | grep -q OpenBSD || log "01_bulk: warning: $NC is not OpenBSD netcat"

have_nk=1
if [[ ! -x $NK ]]; then
    log "01_bulk: nk binary not found at $NK (set NK=..., or run bench/run): nk rows skipped"
    have_nk=0
fi

# ---------------------------------------------------------------- test file
if [[ ! -f $file || $(stat -c %s "$file") -ne $bytes ]]; then
    log "01_bulk: creating $file (${SIZE_MB} MiB from /dev/urandom)"
    head -c "${SIZE_MB}M" /dev/urandom >"$file.tmp" && mv "$file.tmp" "$file" || exit 1
fi
cat "$file" >/dev/null # warm the page cache
want_ck=$(cksum <"$file") # "CRC LENGTH"

# ---------------------------------------------------------------- helpers
RECV_STDIN=${RECV_STDIN:-null}
case $RECV_STDIN in
null) exec 9</dev/null ;;
held) mkfifo "$work/hold" && exec 9<>"$work/hold" || exit 1 ;; # O_RDWR: readers never see EOF
*) log "01_bulk: RECV_STDIN must be null or held"; exit 1 ;;
esac

# Receiver / sender command lines. $1 = port. Receiver stdin is /dev/null.
# The receiver's stdout sink is chosen by $sink: null | cat | cksum.
recv_cmd() { # tool port
    case $1 in
    nk) TO "$NK" listen 127.0.0.1 "$2" ;;
    nc) TO "$NC" -l 127.0.0.1 "$2" ;;
    esac
}
send_cmd() { # tool port
    case $1 in
    nk) TO "$NK" dial 127.0.0.1 "$2" ;;
    nc) TO "$NC" -N 127.0.0.1 "$2" ;;
    esac
}

# run_one CASE TOOL SINK -> sets R_SECS, R_OK (0/1), R_MSG, R_CK (when SINK=cksum),
# R_SELF (iperf3 self-reported MB/s).
run_one() {
    local case=$1 tool=$2 sink=$3 port lpid src t0 errf=$work/err.$1.$2
    R_OK=1 R_MSG="" R_CK="" R_SELF="" R_SECS=""
    port=$(free_port) || { R_OK=0 R_MSG="no free port"; return; }
    : >"$errf"
    if [[ $tool == iperf3 ]]; then
        TO iperf3 -s -1 -B 127.0.0.1 -p "$port" </dev/null >/dev/null 2>>"$errf" &
    else
        case $sink in
        null) recv_cmd "$tool" "$port" <&9 >/dev/null 2>>"$errf" & ;;
        cat) { recv_cmd "$tool" "$port" <&9 2>>"$errf" | cat >/dev/null; } & ;;
        cksum) { recv_cmd "$tool" "$port" <&9 2>>"$errf" | cksum >"$work/ck"; } & ;;
        esac
    fi
    lpid=$!
    cur_lpid=$lpid
    wait_listen "$port" "$lpid" || { listener_failed "on port $port" "$errf"; return; }
    t0=$EPOCHREALTIME
    case $tool/$case in
    iperf3/*) TO iperf3 -c 127.0.0.1 -p "$port" -n "${SIZE_MB}M" --json </dev/null >"$work/iperf.json" 2>>"$errf" ;;
    */pipe-in) cat "$file" | send_cmd "$tool" "$port" >/dev/null 2>>"$errf" ;;
    *) send_cmd "$tool" "$port" <"$file" >/dev/null 2>>"$errf" ;;
    esac
    src=$?
    if ! reap_listener "$t0" "$src" " side"; then
        [[ -s $errf ]] && R_MSG+="; stderr: $(tail -c 300 "$errf" | tr '\n' ' ')"
    fi
    if [[ $tool == iperf3 && -s $work/iperf.json ]]; then
        # Check sum_sent: with -n, the iperf3 server stops counting when the client's
        # TEST_END arrives on the control connection, so sum_received can fall a few
        # MB short although the data was delivered (esnet/iperf issue 382).
        local sb
        sb=$(jq -r '.end.sum_sent.bytes // 0' "$work/iperf.json" 2>/dev/null)
        R_SELF=$(jq -r '(.end.sum_received.bits_per_second // 0) / 8 / 1e6' "$work/iperf.json" 2>/dev/null)
        if [[ ${sb%.*} -lt $bytes ]]; then
            R_OK=0 R_MSG+=" iperf3 sent ${sb:-?} of $bytes bytes"
        fi
    fi
    [[ $sink == cksum ]] && R_CK=$(cat "$work/ck" 2>/dev/null)
}

mbps() { awk -v b="$bytes" -v s="$1" 'BEGIN { printf "%.1f", b / 1e6 / s }'; }

# ---------------------------------------------------------------- plan
tools=(nc)
((have_nk)) && tools=(nk nc)
combos=()
for t in "${tools[@]}"; do combos+=("file:$t"); done
combos+=("file:iperf3")
for t in "${tools[@]}"; do combos+=("pipe-in:$t"); done
for t in "${tools[@]}"; do combos+=("pipe-out:$t"); done

declare -A RES SELF FAILS VERIFY
status=0

# ---------------------------------------------------------------- verification
# One untimed run per tool and stdin kind, receiver piped into cksum. file and
# pipe-out share a sender (`< file`), so "file" covers both.
for t in "${tools[@]}"; do
    for c in file pipe-in; do
        run_one "$c" "$t" cksum
        ck_verdict "$c:$t"
        log "01_bulk: verify $c $t: ${VERIFY[$c:$t]}"
    done
    VERIFY[pipe-out:$t]=${VERIFY[file:$t]}
done

# ---------------------------------------------------------------- timed runs
n=${#combos[@]}
for ((r = 0; r < RUNS; r++)); do
    line="01_bulk: round $((r + 1))/$RUNS:"
    for ((k = 0; k < n; k++)); do
        combo=${combos[$(((k + r) % n))]} # rotate the order each round
        c=${combo%%:*} t=${combo#*:}
        case $c in pipe-out) sink=cat ;; *) sink=null ;; esac
        run_one "$c" "$t" "$sink"
        if ((R_OK == 0)); then
            FAILS[$combo]+="run $((r + 1)): $R_MSG; "; status=1
            line+=" $c/$t=FAIL"
            continue
        fi
        v=$(mbps "$R_SECS")
        RES[$combo]+="$v "
        [[ -n $R_SELF ]] && SELF[$combo]+="$R_SELF "
        line+=" $c/$t=$v"
    done
    log "$line"
done

# ---------------------------------------------------------------- table
med() { local s; s=$(stats "${RES[$1]:-}"); echo "${s%% *}"; }
label() {
    case $1 in
    nk) echo "nk" ;;
    nc) echo "nc -N / nc -l" ;;
    iperf3) echo "iperf3 -n ${SIZE_MB}M (wall)" ;;
    esac
}

table=$(
    echo "| case | tool | median MB/s (min-max) | nk/nc | nk/iperf3 | bytes verified |"
    echo "| --- | --- | --- | --- | --- | --- |"
    for c in file pipe-in pipe-out; do
        for t in nk nc iperf3; do
            combo=$c:$t
            [[ $t == iperf3 && $c != file ]] && continue
            r_nc="" r_ip=""
            if [[ $t == nk ]]; then
                if ((have_nk)); then
                    bar=1.0; [[ $c == file ]] && bar=1.2
                    r_nc=$(ratio "$(med "$c:nk")" "$(med "$c:nc")" "$bar")
                    [[ $c == file ]] && r_ip=$(ratio "$(med file:nk)" "$(med file:iperf3)" 0.9)
                    val=$(fmt_range "${RES[$combo]:-}")
                else
                    val="not built"
                fi
            else
                val=$(fmt_range "${RES[$combo]:-}")
            fi
            ver=${VERIFY[$combo]:-}
            if [[ $t == nk && $have_nk == 1 && $ver != ok ]]; then
                r_nc="INVALID (bytes not verified)"; [[ -n $r_ip ]] && r_ip=$r_nc
                [[ $val != - ]] && val+=" INVALID"
            fi
            [[ $t == iperf3 ]] && ver="iperf3 sum_sent = size"
            [[ -n ${FAILS[$combo]:-} ]] && ver+="; FAILED RUNS: ${FAILS[$combo]}"
            ver=${ver%; }
            echo "| $c | $(label "$t") | $val | $r_nc | $r_ip | ${ver//|//} |"
            if [[ $t == iperf3 ]]; then
                echo "| $c | iperf3 self-reported (same runs) | $(fmt_range "${SELF[$combo]:-}") | | | (not used for ratios) |"
            fi
        done
    done
)

{
    echo "# 01_bulk: one-way TCP bulk over 127.0.0.1, ${SIZE_MB} MiB, median of $RUNS runs"
    echo
    echo "$(date -u '+%Y-%m-%d %H:%M UTC'), $(uname -r), $(nproc) CPUs; nk: $NK$( ((have_nk)) || echo ' (missing)'); git $(git -C "$root" rev-parse --short HEAD 2>/dev/null || echo none)"
    echo
    echo "$table"
    echo
    [[ $RECV_STDIN == held ]] && echo "RECV_STDIN=held: receivers' stdin was a FIFO that never reaches EOF (diagnostic run)." && echo
    echo "MB/s = bytes / 1e6 / wall seconds (sender start -> sender and receiver exited)."
    echo "Bars: file nk >= 1.2x nc and >= 0.9x iperf3; pipe-in/pipe-out nk >= 1.0x nc."
} >"$work/out.md"
finish "$out_md"
