#!/usr/bin/env bash
# 03_unix_bulk.sh - bulk one-way throughput over a Unix stream socket: nk vs OpenBSD nc vs socat.
#
# Sender stdin = a page-cached file (`< file`, the file 01_bulk.sh uses), receiver stdout =
# /dev/null (case "file"; with CASES="file pipe-out" also `| cat >/dev/null`, case
# "pipe-out": a sink that reads, so that splice(2) to /dev/null cannot skip the copy).
# Tools (receiver + sender):
#   nk         nk unix -l PATH                        nk unix PATH < file
#   nc         nc -U -l PATH                          nc -N -U PATH < file
#   socat      socat -u UNIX-LISTEN:PATH -            socat -u - UNIX-CONNECT:PATH < file
#   socat128k  the same with -b 131072 on both sides (socat's default 8 KiB buffer halves it)
# Throughput = bytes / wall time from just before the sender starts (once the socket is
# listening, `ss -xl`) until both sides have exited. MB = 1e6 bytes. Rounds are interleaved,
# the order rotated each round. The socket path is removed before every run (nc -U -l fails
# on an existing path). One extra, untimed run per tool pipes the receiver into cksum(1) and
# checks length and CRC against the file.
#
# Env: RUNS=5 SIZE_MB=2048 CASES=file NK=<nk binary> (default: <repo>/target/release/nk)
#      TIMEOUT=60 (seconds, per process)  TMPDIR (where the test file is kept)
# Exit: 0 all runs clean; 1 a run failed/hung or bytes were lost; 2 nk missing (or its
#       --help lists no `unix` command): nk rows skipped.
# Bar (printed, not enforced): file: nk >= 1.2x nc. pipe-out and nk/socat: for reference.
set -uo pipefail
export LC_ALL=C

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/.." && pwd)
RUNS=${RUNS:-5}
SIZE_MB=${SIZE_MB:-2048}
CASES=${CASES:-file}
TIMEOUT=${TIMEOUT:-60}
NK=${NK:-$root/target/release/nk}
NC=${NC_BIN:-nc}
BAR=1.2
bytes=$((SIZE_MB * 1024 * 1024))
out_md=$here/results/03_unix_bulk.md

. "$here/lib.sh" # log, wait_listen_unix, TO, stats, bulk_file, need_tools, work_dir, listener_failed, ck_verdict

cur_lpid="" # the listener (sub)shell of the run in progress, if any
work_dir 03 stop_cur_listener
sock=$work/s.sock

need_tools 03_unix_bulk "$NC" socat ss cksum timeout awk pkill
"$NC" -h 2>&1 | grep -q OpenBSD || log "03_unix_bulk: warning: $NC is not OpenBSD netcat"

nk_why=$(nk_lacks unix)
nk_rows 03_unix_bulk

file=$(bulk_file "$SIZE_MB") || { log "03_unix_bulk: cannot create the test file"; exit 1; }
want_ck=$(cksum <"$file") # "CRC LENGTH"

# ---------------------------------------------------------------- helpers
recv_cmd() { # tool
    case $1 in
    nk) TO "$NK" unix -l "$sock" ;;
    nc) TO "$NC" -U -l "$sock" ;;
    socat) TO socat -u UNIX-LISTEN:"$sock" - ;;
    socat128k) TO socat -b 131072 -u UNIX-LISTEN:"$sock" - ;;
    esac
}
send_cmd() { # tool
    case $1 in
    nk) TO "$NK" unix "$sock" ;;
    nc) TO "$NC" -N -U "$sock" ;;
    socat) TO socat -u - UNIX-CONNECT:"$sock" ;;
    socat128k) TO socat -b 131072 -u - UNIX-CONNECT:"$sock" ;;
    esac
}

# run_one TOOL SINK(null|cat|cksum) -> sets R_SECS, R_OK (0/1), R_MSG, R_CK
run_one() {
    local tool=$1 sink=$2 lpid src t0 errf=$work/err.$1
    R_OK=1 R_MSG="" R_CK="" R_SECS=""
    rm -f "$sock" "$work/ck"
    [[ -e $sock ]] && { R_OK=0 R_MSG="cannot remove $sock"; return; }
    : >"$errf"
    case $sink in
    null) recv_cmd "$tool" </dev/null >/dev/null 2>>"$errf" & ;;
    cat) { recv_cmd "$tool" </dev/null 2>>"$errf" | cat >/dev/null; } & ;;
    cksum) { recv_cmd "$tool" </dev/null 2>>"$errf" | cksum >"$work/ck"; } & ;;
    esac
    lpid=$!
    cur_lpid=$lpid
    wait_listen_unix "$sock" "$lpid" || { listener_failed "at $sock" "$errf"; return; }
    t0=$EPOCHREALTIME
    send_cmd "$tool" <"$file" >/dev/null 2>>"$errf"
    src=$?
    if ! reap_listener "$t0" "$src"; then
        [[ -s $errf ]] && R_MSG+="; stderr: $(tail -c 300 "$errf" | tr '\n' ' ')"
    fi
    [[ $sink == cksum ]] && R_CK=$(cat "$work/ck" 2>/dev/null)
    rm -f "$sock"
}

mbps() { awk -v b="$bytes" -v s="$1" 'BEGIN { printf "%.1f", b / 1e6 / s }'; }

# ---------------------------------------------------------------- plan
tools=(nc socat socat128k)
((have_nk)) && tools=(nk "${tools[@]}")
combos=()
for c in $CASES; do
    case $c in file | pipe-out) ;; *) log "03_unix_bulk: CASES: unknown case $c"; exit 1 ;; esac
    for t in "${tools[@]}"; do combos+=("$c:$t"); done
done
declare -A RES FAILS VERIFY
status=0

# ---------------------------------------------------------------- verification
# One untimed run per tool, receiver piped into cksum (both cases share the sender, `< file`).
for t in "${tools[@]}"; do
    run_one "$t" cksum
    ck_verdict "$t"
    log "03_unix_bulk: verify $t: ${VERIFY[$t]}"
done

# ---------------------------------------------------------------- timed runs
n=${#combos[@]}
for ((r = 0; r < RUNS; r++)); do
    line="03_unix_bulk: round $((r + 1))/$RUNS:"
    for ((k = 0; k < n; k++)); do
        combo=${combos[$(((k + r) % n))]} # rotate the order each round
        c=${combo%%:*} t=${combo#*:}
        sink=null; [[ $c == pipe-out ]] && sink=cat
        run_one "$t" "$sink"
        if ((R_OK == 0)); then
            FAILS[$combo]+="run $((r + 1)): $R_MSG; "; status=1
            line+=" $c/$t=FAIL"
            continue
        fi
        v=$(mbps "$R_SECS")
        RES[$combo]+="$v "
        line+=" $c/$t=$v"
    done
    log "$line"
done

# ---------------------------------------------------------------- table
med() { local s; s=$(stats "${RES[$1]:-}"); echo "${s%% *}"; }
label() {
    case $1 in
    nk) echo "nk unix -l / nk unix" ;;
    nc) echo "nc -U -l / nc -N -U" ;;
    socat) echo "socat -u (default -b 8192)" ;;
    socat128k) echo "socat -u -b 131072" ;;
    esac
}
sinkname() { [[ $1 == pipe-out ]] && echo 'pipe to cat' || echo '/dev/null'; }

table=$(
    echo "| receiver stdout | tool | median MB/s (min-max) | nk/this tool | bytes verified |"
    echo "| --- | --- | --- | --- | --- |"
    for c in $CASES; do
        for t in nk nc socat socat128k; do
            combo=$c:$t r=""
            if [[ $t == nk ]]; then
                ((have_nk)) && val=$(fmt_range "${RES[$combo]:-}") || val=$nk_why
            else
                val=$(fmt_range "${RES[$combo]:-}")
                if ((have_nk)); then
                    bar=""; [[ $t == nc && $c == file ]] && bar=$BAR
                    r=$(ratio "$(med "$c:nk")" "$(med "$combo")" "$bar")
                    [[ ${VERIFY[nk]:-} != ok ]] && r="INVALID (nk bytes not verified)"
                fi
            fi
            ver=${VERIFY[$t]:-}
            [[ $t == nk && $have_nk == 1 && $ver != ok && $val != - ]] && val+=" INVALID"
            [[ -n ${FAILS[$combo]:-} ]] && ver+="; FAILED RUNS: ${FAILS[$combo]}"
            ver=${ver#; }; ver=${ver%; }
            echo "| $(sinkname "$c") | $(label "$t") | $val | $r | ${ver//|//} |"
        done
    done
)

{
    echo "# 03_unix_bulk: one-way Unix stream bulk, ${SIZE_MB} MiB page-cached file, median of $RUNS runs"
    echo
    echo "$(date -u '+%Y-%m-%d %H:%M UTC'), $(uname -r), $(nproc) CPUs, load $(cut -d' ' -f1 /proc/loadavg); nk: $NK$( ((have_nk)) || echo " ($nk_why)"); git $(git -C "$root" rev-parse --short HEAD 2>/dev/null || echo none)"
    echo
    echo "$table"
    echo
    echo "MB/s = bytes / 1e6 / wall seconds (sender start -> sender and receiver exited)."
    echo "Sender stdin \`< file\`. Bar: with receiver stdout /dev/null, nk >= ${BAR}x nc (the rest for reference)."
} >"$work/out.md"
finish "$out_md"
