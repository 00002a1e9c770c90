# bench/lib.sh - helpers shared by the bench/NN_*.sh scripts. Source it after setting
# TIMEOUT (seconds, used by TO). Defines: log, lo_eph, free_port, wait_listen, TO, stats,
# bulk_file, wait_listen_unix, free_port_udp, wait_bound_udp, ratio, nk_lacks, the proc_* harness,
# fmt_range, elapsed, need_tools, nk_rows, work_dir, stop_pidvar, stop_proc_tree, listener_failed,
# ck_verdict, reap_listener, wait_gone, term_server, make_pki, digest, ck_matches, mbps,
# checked_rounds.
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

# fmt_range "v1 v2 ..." [printf format, default %.0f] -> "median (min-max)", or "-" if no values.
fmt_range() {
    local m lo hi
    read -r m lo hi <<<"$(stats "${1:-}" "${2:-}")"
    [[ $m == - ]] && { echo "-"; return; }
    echo "$m ($lo-$hi)"
}

# elapsed T0 T1 -> T1 - T0 in seconds ("%.6f"), for $EPOCHREALTIME stamps.
elapsed() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.6f", b - a }'; }

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
    B_SECS=$(elapsed "$t0" "$t1")
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
fmt_rounds() { fmt_range "${ROUND_MS[$1]:-}" %.3f; }

# proc_verify TOOL OUT: one untimed run of TOOL's CMD, stdout to OUT; sets VERIFY[TOOL] ("ok" or
# "FAIL: ..."), and status=1 when it is not ok.
proc_verify() {
    local t=$1 rc why
    cmd_of "$t"
    timeout -k 5 "$TIMEOUT" "${CMD[@]}" </dev/null >"$2" 2>"$work/v.err"; rc=$?
    why=$(check_out "$t" "$2" 1)
    if ((rc != 0)); then
        VERIFY[$t]="FAIL: exit $rc; stderr: $(tail -c 200 "$work/v.err" | tr '\n' ' ')"
    elif [[ -n $why ]]; then
        VERIFY[$t]="FAIL: $why"
    else
        VERIFY[$t]=ok
    fi
    [[ ${VERIFY[$t]} == ok ]] || status=1
}

# proc_row TOOL CELL: prints TOOL's table row (label, `shown` command, processes, total s, ms per
# process, per-round ms, CELL, verification); the caller defines label TOOL and shown TOOL.
proc_row() {
    local t=$1 tot ver ms
    tot=${SECS[$t]:-}; [[ -n $tot ]] && tot=$(printf '%.3f' "$tot")
    ver=${VERIFY[$t]:-}
    [[ $t == true ]] && ver="(no output)"
    [[ -n ${FAILS[$t]:-} ]] && ver+="; FAILED: ${FAILS[$t]}"
    ver=${ver%; }
    ms=$(per_ms "$t")
    echo "| $(label "$t") | \`$(shown "$t")\` | ${CNT[$t]:-0} | ${tot:--} | ${ms:--} | $(fmt_rounds "$t") | $2 | ${ver//|//} |"
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

# ------------------------------------------------------------ set-up and process helpers

# need_tools NAME TOOL...: exits 1 ("NAME: missing tool: T", plus $NEED_HINT) on the first TOOL not found.
need_tools() {
    local name=$1 t
    shift
    for t in "$@"; do
        command -v "$t" >/dev/null || { log "$name: missing tool: $t${NEED_HINT:-}"; exit 1; }
    done
}

# nk_rows NAME: sets have_nk from $nk_why (1 when empty), else logs that nk rows are skipped.
nk_rows() {
    have_nk=1
    if [[ -n $nk_why ]]; then
        log "$1: nk at $NK: $nk_why (set NK=..., or run bench/run): nk rows skipped"
        have_nk=0
    fi
}

# work_dir NN [HOOK]: $work = new ${TMPDIR:-/tmp}/nk-bench-NN.XXXXXX; on exit HOOK runs, then $work goes.
work_dir() {
    work=$(mktemp -d "${TMPDIR:-/tmp}/nk-bench-$1.XXXXXX") || exit 1
    _work_hook=${2:-}
    trap '[[ -n $_work_hook ]] && "$_work_hook"; rm -rf "$work"' EXIT
    trap 'exit 130' INT TERM
}

# stop_pidvar VAR: TERMs the pid held in variable VAR (if any; timeout(1) passes it on), reaps it, clears VAR.
stop_pidvar() {
    local -n _pv=$1
    [[ -n $_pv ]] || return 0
    kill -TERM "$_pv" 2>/dev/null
    wait "$_pv" 2>/dev/null
    _pv=""
}

# stop_proc_tree PID: TERMs PID's children (timeout(1)s pass it on) and PID itself, then reaps PID.
stop_proc_tree() {
    pkill -TERM -P "$1" 2>/dev/null
    kill "$1" 2>/dev/null
    wait "$1" 2>/dev/null
}

# stop_cur_listener: stop_proc_tree on $cur_lpid (the listener of the run in progress), if set.
stop_cur_listener() {
    [[ -n ${cur_lpid:-} ]] && stop_proc_tree "$cur_lpid"
    cur_lpid=""
}

# listener_failed WHERE ERRFILE: stops the listener $cur_lpid; R_OK=0, R_MSG="listener not ready WHERE: <stderr tail>".
listener_failed() {
    stop_cur_listener
    R_OK=0 R_MSG="listener not ready $1: $(tail -c 300 "$2" | tr '\n' ' ')"
}

# ck_verdict KEY: VERIFY[KEY] = "ok", "FAIL: $R_MSG" or "BYTES LOST/CORRUPT: ..." (R_CK vs $want_ck)
# for the cksum run just made; status=1 unless ok.
ck_verdict() {
    if ((R_OK == 0)); then
        VERIFY[$1]="FAIL: $R_MSG"; status=1
    elif [[ $R_CK != "$want_ck" ]]; then
        VERIFY[$1]="BYTES LOST/CORRUPT: got cksum '${R_CK:-none}', want '$want_ck'"; status=1
    else
        VERIFY[$1]="ok"
    fi
}

# reap_listener T0 SRC [SIDE]: waits for $cur_lpid (clearing it); R_SECS = now - T0; when SRC or the
# listener's status is non-zero, R_OK=0, R_MSG="exit status sender[SIDE]=.. receiver[SIDE]=.. (..)", returns 1.
reap_listener() {
    local lrc t1
    wait "$cur_lpid"; lrc=$?
    t1=$EPOCHREALTIME
    cur_lpid=""
    R_SECS=$(elapsed "$1" "$t1")
    (($2 != 0 || lrc != 0)) || return 0
    R_OK=0 R_MSG="exit status sender${3:-}=$2 receiver${3:-}=$lrc (124 = timeout after ${TIMEOUT}s)"
    return 1
}

# wait_gone PID TRIES: polls every 0.05 s, at most TRIES times, until PID is gone; 1 if still alive.
wait_gone() {
    local i
    for ((i = 0; i < $2; i++)); do
        kill -0 "$1" 2>/dev/null || return 0
        sleep 0.05
    done
    ! kill -0 "$1" 2>/dev/null
}

# term_server TPID PID: TERM to timeout(1) TPID; PID gets SIGKILL if alive 3 s later (returns 1
# then); TPID is SIGKILLed if not gone 5 s on, and reaped.
term_server() {
    local rc=0
    kill -TERM "$1" 2>/dev/null
    if ! wait_gone "$2" 60; then
        rc=1
        kill -KILL "$2" 2>/dev/null
    fi
    wait_gone "$1" 100
    kill -KILL "$1" 2>/dev/null
    wait "$1" 2>/dev/null
    return $rc
}

# make_pki DIR: an ECDSA P-256 CA (DIR/ca.pem, ca.key) and a leaf for localhost signed by it
# (DIR/leaf.pem, PKCS#8 key DIR/leaf.key: every tool reads it; SAN DNS:localhost, IP:127.0.0.1),
# made with the openssl CLI; the leaf is checked against the CA. Runs in a subshell (it cds).
make_pki() (
    mkdir -p "$1" && cd "$1" || exit 1
    openssl ecparam -name prime256v1 -genkey -noout -out ca.key &&
        openssl req -x509 -new -key ca.key -sha256 -days 2 -subj "/CN=nk bench CA" \
            -addext "basicConstraints=critical,CA:TRUE" \
            -addext "keyUsage=critical,keyCertSign,cRLSign" -out ca.pem &&
        openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out leaf.key &&
        openssl req -new -key leaf.key -subj "/CN=localhost" -out leaf.csr &&
        printf '%s\n' "basicConstraints=critical,CA:FALSE" \
            "keyUsage=critical,digitalSignature" "extendedKeyUsage=serverAuth" \
            "subjectAltName=DNS:localhost,IP:127.0.0.1" >leaf.ext &&
        openssl x509 -req -in leaf.csr -CA ca.pem -CAkey ca.key -set_serial 2 -days 2 \
            -sha256 -extfile leaf.ext -out leaf.pem &&
        openssl verify -CAfile ca.pem -verify_hostname localhost leaf.pem
)

# digest: the SHA-256 of stdin, hex, alone on its line (what ck_matches compares).
digest() { sha256sum | awk '{ print $1 }'; }

# ck_matches NAME TOOL: whether $work/ck (a receiver's cksum or digest) is $want_ck; says so
# when not.
ck_matches() {
    local got
    got=$(cat "$work/ck")
    [[ $got == "$want_ck" ]] && return 0
    log "$1: $2: bytes differ (got ${got:-nothing}, want $want_ck)"
    return 1
}

# mbps BYTES T0 T1 -> whole MB/s (1e6 bytes) for date +%s.%N stamps.
mbps() { awk -v b="$1" -v a="$2" -v z="$3" 'BEGIN { printf "%.0f\n", b / 1e6 / (z - a) }'; }

# checked_rounds NAME: with the caller's one_run TOOL CHECK, tools=(...), RUNS and the
# associative arrays RES and OK declared: one checked, untimed run per tool (OK[tool]=yes|no),
# then RUNS timed rounds over the tools, the order rotating each round (RES[tool]+="MB/s ").
# Sets status=1 when a run fails.
checked_rounds() {
    local name=$1 tool v run i n=${#tools[@]}
    for tool in "${tools[@]}"; do
        log "$name: $tool: checking the bytes (untimed run)"
        v=$(one_run "$tool" 1)
        if [[ $v == FAIL ]]; then OK[$tool]=no; status=1; else OK[$tool]=yes; fi
    done
    for ((run = 0; run < RUNS; run++)); do
        for ((i = 0; i < n; i++)); do
            tool=${tools[$(((i + run) % n))]}
            v=$(one_run "$tool" 0)
            log "$name: run $((run + 1)) $tool: $v MB/s"
            if [[ $v == FAIL ]]; then status=1; else RES[$tool]+="$v "; fi
        done
    done
}
