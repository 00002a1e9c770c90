# bench/lib.sh - helpers shared by the bench/NN_*.sh scripts. Source it after setting
# TIMEOUT (seconds, used by TO). Defines: log, lo_eph, free_port, wait_listen, TO, stats,
# bulk_file, wait_listen_unix, free_port_udp, wait_bound_udp.
# shellcheck shell=bash

log() { printf '%s\n' "$*" >&2; }

# Lowest port of the ephemeral range: the scripts' ports stay below it, so no client socket
# of anyone can be sitting on them.
lo_eph=$(awk '{print $1}' /proc/sys/net/ipv4/ip_local_port_range 2>/dev/null || echo 32768)
(( lo_eph > 20100 )) || lo_eph=32768

# A port below the ephemeral range that no socket (any state) uses locally or remotely.
free_port() {
    local p i
    for ((i = 0; i < 200; i++)); do
        p=$((20000 + RANDOM % (lo_eph - 20000)))
        if [[ -z $(ss -Htan "( sport = :$p or dport = :$p )" 2>/dev/null) ]]; then
            echo "$p"; return 0
        fi
    done
    return 1
}

# Wait (bounded, ~5 s) until something listens on 127.0.0.1:$1; $2 = listener pid.
wait_listen() {
    local i
    for ((i = 0; i < 500; i++)); do
        [[ -n $(ss -Hltn "( sport = :$1 )" 2>/dev/null) ]] && return 0
        kill -0 "$2" 2>/dev/null || return 1
        sleep 0.01
    done
    return 1
}

# Run a command under timeout(1): TERM after $TIMEOUT s, KILL 5 s later.
TO() { timeout -k 5 "$TIMEOUT" "$@"; }

# stats "v1 v2 ..." [printf format, default %.0f] -> "median min max" ("- - -" if no values)
stats() {
    tr ' ' '\n' <<<"$1" | grep -v '^$' | sort -g | awk -v f="${2:-%.0f}" '
        { v[NR] = $1 }
        END { if (NR == 0) { print "- - -"; exit }
              m = (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2
              printf f " " f " " f "\n", m, v[1], v[NR] }'
}

# bulk_file MIB -> prints the path of the MIB-MiB random file the bulk benches share
# (${TMPDIR:-/tmp}/nk-bench-bulk-<MIB>M.bin, as in 01_bulk.sh): creates it when it is missing
# or has the wrong size, then reads it once to warm the page cache.
bulk_file() {
    local mib=$1 f=${TMPDIR:-/tmp}/nk-bench-bulk-$1M.bin
    if [[ ! -f $f || $(stat -c %s "$f") -ne $((mib * 1024 * 1024)) ]]; then
        log "creating $f ($mib MiB from /dev/urandom)"
        head -c "${mib}M" /dev/urandom >"$f.tmp.$$" && mv "$f.tmp.$$" "$f" || return 1
    fi
    cat "$f" >/dev/null
    echo "$f"
}

# Wait (bounded, ~5 s) until a Unix stream socket listens at path $1; $2 = listener pid.
wait_listen_unix() {
    local i
    for ((i = 0; i < 500; i++)); do
        [[ -n $(ss -Hxl src "$1" 2>/dev/null) ]] && return 0
        kill -0 "$2" 2>/dev/null || return 1
        sleep 0.01
    done
    return 1
}

# A UDP port below the ephemeral range that no local UDP socket uses (as free_port for TCP).
free_port_udp() {
    local p i
    for ((i = 0; i < 200; i++)); do
        p=$((20000 + RANDOM % (lo_eph - 20000)))
        if [[ -z $(ss -Huan "( sport = :$p or dport = :$p )" 2>/dev/null) ]]; then
            echo "$p"; return 0
        fi
    done
    return 1
}

# Wait (bounded, ~5 s) until a UDP socket is bound to local port $1; $2 = receiver pid.
wait_bound_udp() {
    local i
    for ((i = 0; i < 500; i++)); do
        [[ -n $(ss -Huan "( sport = :$1 )" 2>/dev/null) ]] && return 0
        kill -0 "$2" 2>/dev/null || return 1
        sleep 0.01
    done
    return 1
}

# ratio A B [BAR] -> "1.23x", or "1.23x (bar >= 1.2x: PASS)" when BAR is given; "-" when a
# figure is missing. For "nk at least BAR times the reference" bars.
ratio() {
    awk -v a="$1" -v b="$2" -v bar="${3:-}" 'BEGIN {
        if (a == "" || b == "" || a == "-" || b == "-" || b == 0) { print "-"; exit }
        r = a / b
        if (bar == "") printf "%.2fx", r
        else printf "%.2fx (bar >= %.1fx: %s)", r, bar, (r >= bar ? "PASS" : "FAIL") }'
}

# nk_lacks COMMAND: prints why $NK cannot run `nk COMMAND` (not built, or no such command);
# prints nothing when it can.
nk_lacks() {
    if [[ ! -x $NK ]]; then
        echo "not built"
    elif ! "$NK" --help 2>/dev/null | grep -Eq "^ +$1( |\$)"; then
        echo "no \`$1\` command"
    fi
}

# ------------------------------------------------------------ process-per-request harness
# For benches that time N sequential processes of each tool (07_resolve, 10_head). The
# caller defines cmd_of TOOL (sets the CMD array) and check_out TOOL FILE COUNT (prints why
# the output is wrong, nothing when it is right), sets work, TIMEOUT, N and RUNS, and declares
# `declare -A SECS CNT ROUND_MS FAILS`; the functions fill those and set status=1 on a failure.

# proc_batch TOOL COUNT -> sets B_SECS (wall seconds of the loop), B_MSG ("" when clean).
# The loop runs in its own bash under timeout(1); it takes the time itself, so neither
# timeout's nor bash's start-up is counted.
proc_batch() {
    local t=$1 n=$2 rc f t0 t1 why
    B_SECS="" B_MSG=""
    cmd_of "$t"
    rm -f "$work/b.res"
    # shellcheck disable=SC2016
    timeout -k 5 "$TIMEOUT" bash -c '
        res=$1 n=$2; shift 2
        f=0 t0=$EPOCHREALTIME
        for ((i = 0; i < n; i++)); do "$@" || f=$((f + 1)); done
        t1=$EPOCHREALTIME
        echo "$f $t0 $t1" >"$res"' _ "$work/b.res" "$n" "${CMD[@]}" \
        </dev/null >"$work/b.out" 2>"$work/b.err"
    rc=$?
    if ((rc != 0)) || [[ ! -s $work/b.res ]]; then
        B_MSG="batch exit $rc (124 = timeout after ${TIMEOUT}s); stderr: $(tail -c 200 "$work/b.err" | tr '\n' ' ')"
        return
    fi
    read -r f t0 t1 <"$work/b.res"
    B_SECS=$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.6f", b - a }')
    if ((f != 0)); then
        B_MSG="$f of $n processes exited non-zero; stderr: $(tail -c 200 "$work/b.err" | tr '\n' ' ')"
    elif why=$(check_out "$t" "$work/b.out" "$n"); [[ -n $why ]]; then
        B_MSG=$why
    fi
}

# proc_rounds NAME TOOL... -> RUNS rounds sharing N processes, the tools' order reversed every
# other round, each round logged as "NAME: round i/RUNS (k each): tool=ms ...".
proc_rounds() {
    local name=$1 r k sz line t ms
    shift
    local tools=("$@") nt=$#
    for ((r = 0; r < RUNS; r++)); do
        sz=$((N / RUNS + (r < N % RUNS ? 1 : 0)))
        line="$name: round $((r + 1))/$RUNS ($sz each):"
        for ((k = 0; k < nt; k++)); do
            if ((r % 2)); then t=${tools[$((nt - 1 - k))]}; else t=${tools[$k]}; fi
            proc_batch "$t" "$sz"
            if [[ -n $B_MSG ]]; then
                FAILS[$t]+="round $((r + 1)): $B_MSG; "; status=1
                line+=" $t=FAIL"
                continue
            fi
            SECS[$t]=$(awk -v a="${SECS[$t]:-0}" -v b="$B_SECS" 'BEGIN { printf "%.6f", a + b }')
            CNT[$t]=$((${CNT[$t]:-0} + sz))
            ms=$(awk -v s="$B_SECS" -v n="$sz" 'BEGIN { printf "%.3f", s / n * 1000 }')
            ROUND_MS[$t]+="$ms "
            line+=" $t=${ms}ms"
        done
        log "$line"
    done
}

# per_ms TOOL -> overall ms per process ("" if none ran).
per_ms() {
    [[ -n ${CNT[$1]:-} ]] || return 0
    awk -v s="${SECS[$1]}" -v n="${CNT[$1]}" 'BEGIN { printf "%.3f", s / n * 1000 }'
}

# fmt_rounds TOOL -> "median (min-max)" of its per-round ms, or "-".
fmt_rounds() {
    local m lo hi
    read -r m lo hi <<<"$(stats "${ROUND_MS[$1]:-}" %.3f)"
    [[ $m == - ]] && { echo "-"; return; }
    echo "$m ($lo-$hi)"
}

# finish OUT_MD: publishes $work/out.md as OUT_MD and prints it, then exits with $status (2
# when nk was missing, $have_nk = 0, and nothing else failed).
finish() {
    mkdir -p "$(dirname "$1")"
    cp "$work/out.md" "$1"
    cat "$work/out.md"
    ((have_nk)) || { ((status)) || status=2; }
    exit "$status"
}
