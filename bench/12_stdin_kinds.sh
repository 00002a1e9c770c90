#!/usr/bin/env bash
# 12_stdin_kinds.sh - whole sessions of a one-way bulk transfer client -> listener, with the
# listener's stdin of every kind a user gives it (issue 16 item 8): nk vs OpenBSD nc over TCP
# and Unix stream sockets, nk vs ncat and socat over TLS, all in one run.
#
# The client sends SIZE_MB MiB (the page-cached random file the other bulk benches share) from
# `< file`; the listener writes what it receives to stdout. Listener stdin (CASES, KIND[/OUT]):
#   null       </dev/null                         (EOF at once: a plain `cmd &` in a script)
#   file       < an empty regular file            (EOF at once, but a regular file)
#   pipe-idle  `sleep 100000 | listener`          (a pipe that never delivers; killed afterwards)
#   pipe-busy  `yes | head -c BACK_MB MiB | listener`: a producer writing as fast as the
#              listener reads, so the listener sends data back while it receives; bounded, so
#              the session ends (an endless producer keeps nk's session open by design: nk
#              sends what stdin delivers until its EOF)
#   tty        a terminal nobody types on: `script -qec 'listener >out' /dev/null`
#              (util-linux script), script's own stdin an idle pipe (so no EOF is typed)
#   socket     an idle connected Unix stream socket (socketpair(2); a Python helper holds the
#              other end, never writes, and exits when the listener closes it)
# OUT = the client's stdout: null (/dev/null, the default), file (a regular file), pipe
# (`| cksum`, a reader): it matters where the listener sends data back (pipe-busy).
# Tools (TRANSPORTS):
#   tcp   nk listen 127.0.0.1 P                    nk dial 127.0.0.1 P
#         nc -l 127.0.0.1 P                        nc -N 127.0.0.1 P
#   unix  nk unix -l PATH                          nk unix PATH
#         nc -U -l PATH                            nc -N -U PATH
#   tls   nk listen --tls --cert L --key K 127.0.0.1 P
#                                                  nk dial --tls --ca CA --sni localhost 127.0.0.1 P
#         ncat --ssl --ssl-cert L --ssl-key K -l 127.0.0.1 P
#                                                  ncat --ssl --ssl-verify --ssl-trustfile CA --ssl-servername localhost 127.0.0.1 P
#         socat OPENSSL-LISTEN:P,bind=127.0.0.1,reuseaddr,cert=L,key=K,verify=0 -
#                                                  socat - OPENSSL:127.0.0.1:P,cafile=CA,commonname=localhost
#   Every tool in its plain, bidirectional form (what a user types; no --recv-only, no -u,
#   socat's default -b 8192 and -t 0.5), so each one meets the listener's stdin. One
#   certificate for all (make_pki in lib.sh, as 11_tls.sh). Unix sockets in a temp dir.
# Time = wall seconds of the whole session: from just before the listener is started (its
# wrapper too: script, or the Python helper) until the client (and its `| cksum`) and the
# listener have both exited; the client starts once the listener shows up in `ss`. MB/s =
# SIZE_MB MiB / 1e6 / seconds. Median (min-max) of RUNS; rounds interleaved, order rotated.
# Listener stdout: a file in the verification run, /dev/null in the timed runs (RECV_OUT=file:
# a file there too, its length checked after each run).
# Correctness: one untimed run per transport, case and tool first: the listener's stdout file
# goes through cksum(1) (length and CRC against the source file); where the client's stdout is
# a file or `| cksum`, the bytes sent back are checked against `yes | head -c BACK_MB MiB` in
# every run. A combination whose verification run failed (timeout, error, bytes lost) gets no
# timed runs. Every process runs under timeout(1) (TIMEOUT s): a hang shows as TIMEOUT.
#
# Env: RUNS=3 (or N=3) SIZE_MB=512 BACK_MB=16 TIMEOUT=60 RECV_OUT=null|file
#      TRANSPORTS="tcp unix tls"
#      CASES="null file pipe-idle pipe-busy pipe-busy/file pipe-busy/pipe tty socket"
#      NK=<nk binary> (default <repo>/target/release/nk) NC_BIN=nc PYTHON=/usr/bin/python3
#      TMPDIR (where the test file is kept)
# Exit: 0 every nk run clean; 1 an nk run failed, hung or lost bytes (the reference tools'
#       failures are shown, not counted: ncat drops the connection when its stdin ends);
#       2 nk missing (its rows are left out). A missed bar does not change the exit status.
# Bars (issue 16 item 8; printed, not enforced): with every listener stdin kind, nk >= 1.2x nc
# (TCP, Unix) and >= 1.0x the faster of ncat and socat (TLS), by median MB/s.
set -uo pipefail
export LC_ALL=C

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/.." && pwd)
RUNS=${RUNS:-${N:-3}}
SIZE_MB=${SIZE_MB:-512}
BACK_MB=${BACK_MB:-16}
TIMEOUT=${TIMEOUT:-60}
RECV_OUT=${RECV_OUT:-null}
TRANSPORTS=${TRANSPORTS:-tcp unix tls}
CASES=${CASES:-null file pipe-idle pipe-busy pipe-busy/file pipe-busy/pipe tty socket}
NK=${NK:-$root/target/release/nk}
NC=${NC_BIN:-nc}
PY=${PYTHON:-/usr/bin/python3}
[[ -x $PY ]] || PY=$(command -v python3 || echo python3)
BAR_CLEAR=1.2 BAR_TLS=1.0
bytes=$((SIZE_MB * 1024 * 1024))
back_bytes=$((BACK_MB * 1024 * 1024))
out_md=$here/results/12_stdin_kinds.md
name=12_stdin_kinds

. "$here/lib.sh" # log, free_port, wait_listen, wait_listen_unix, TO, stats, ratio, fmt_range, elapsed, bulk_file, nk_lacks, finish, need_tools, nk_rows, work_dir, stop_cur_listener, listener_failed, reap_listener, make_pki

[[ $RUNS =~ ^[1-9][0-9]*$ && $SIZE_MB =~ ^[1-9][0-9]*$ && $BACK_MB =~ ^[1-9][0-9]*$ && $TIMEOUT =~ ^[1-9][0-9]*$ ]] ||
    { log "$name: RUNS, SIZE_MB, BACK_MB and TIMEOUT must be positive integers"; exit 1; }
[[ $RECV_OUT == null || $RECV_OUT == file ]] || { log "$name: RECV_OUT must be null or file"; exit 1; }
for tr in $TRANSPORTS; do
    case $tr in tcp | unix | tls) ;; *) log "$name: TRANSPORTS: unknown transport $tr"; exit 1 ;; esac
done
for c in $CASES; do
    case $c in
    null | file | pipe-idle | pipe-busy | tty | socket) ;;
    null/* | file/* | pipe-idle/* | pipe-busy/* | tty/* | socket/*)
        case ${c#*/} in null | file | pipe) ;; *) log "$name: CASES: unknown client stdout in $c"; exit 1 ;; esac ;;
    *) log "$name: CASES: unknown case $c"; exit 1 ;;
    esac
done

cur_lpid="" # the listener job of the run in progress, if any
feeder=""   # the process feeding the listener's stdin pipe (pipe-idle, pipe-busy, tty), if any
in_fd=""    # the listener's stdin, opened in this shell for the run in progress
stop_feeder() {
    [[ -n $in_fd ]] && exec {in_fd}<&-
    in_fd=""
    if [[ -n $feeder ]]; then
        pkill -TERM -P "$feeder" 2>/dev/null
        kill "$feeder" 2>/dev/null
        wait "$feeder" 2>/dev/null
        feeder=""
    fi
}
# shellcheck disable=SC2317 # called by the EXIT trap of work_dir
cleanup() { stop_cur_listener; stop_feeder; }
work_dir 12 cleanup
sock=$work/s.sock
empty=$work/empty
: >"$empty"

need=("$NC" ss cksum timeout awk pkill yes head stat sleep)
[[ " $TRANSPORTS " == *" tls "* ]] && need+=(ncat socat openssl)
[[ " $CASES " == *" tty"* ]] && need+=(script)
[[ " $CASES " == *" socket"* ]] && need+=("$PY")
need_tools "$name" "${need[@]}"
"$NC" -h 2>&1 | grep -q OpenBSD || log "$name: warning: $NC is not OpenBSD netcat"
if [[ " $CASES " == *" tty"* ]] && ! script --version 2>&1 | grep -q util-linux; then
    log "$name: script(1) is not util-linux script: the tty case needs it"; exit 1
fi

nk_why=$(nk_lacks listen)
nk_rows "$name"
declare -A NK_NO # transport -> why nk cannot run it
nk_sha=""
if ((have_nk)); then
    nk_sha=$(sha256sum "$NK" | cut -c1-12) # the binary at the start (checked again at the end)
    nk_id="$NK ($("$NK" --version 2>/dev/null | head -n 1), sha256 $nk_sha, built $(date -u -r "$NK" '+%Y-%m-%d %H:%M UTC'))"
    w=$(nk_lacks unix); [[ -n $w ]] && NK_NO[unix]=$w
    "$NK" listen --help 2>/dev/null | grep -q -- '--tls' || NK_NO[tls]="no \`listen --tls\`"
fi

if [[ " $TRANSPORTS " == *" tls "* ]]; then
    if ! make_pki "$work/pki" >"$work/pki.log" 2>&1; then
        log "$name: could not make the certificates: $(tail -c 300 "$work/pki.log" | tr '\n' ' ')"
        exit 1
    fi
fi
cert=$work/pki/leaf.pem key=$work/pki/leaf.key ca=$work/pki/ca.pem

file=$(bulk_file "$SIZE_MB") || { log "$name: cannot create the test file"; exit 1; }
want_ck=$(cksum <"$file")                             # "CRC LENGTH"
want_back=$(yes | head -c "$back_bytes" | cksum) # what pipe-busy sends back

# The socket case: fd 0 of the listener = one end of a Unix stream socketpair; a forked child
# holds the other end idle (stdio on /dev/null) until the listener closes it; the helper then
# execs the listener, so the listener keeps this pid (timeout's TERM reaches it directly).
sock_py='import os, socket, sys
a, b = socket.socketpair()
if os.fork() == 0:
    b.close()
    n = os.open(os.devnull, os.O_RDWR)
    for f in (0, 1, 2):
        os.dup2(n, f)
    try:
        while a.recv(65536):
            pass
    except OSError:
        pass
    os._exit(0)
a.close()
os.dup2(b.fileno(), 0)
b.close()
os.execvp(sys.argv[1], sys.argv[1:])'

# ---------------------------------------------------------------- helpers
# recv_argv TR TOOL PORT -> R_ARGV; send_argv TR TOOL PORT -> S_ARGV (PORT unused for unix).
recv_argv() {
    case $1/$2 in
    tcp/nk) R_ARGV=("$NK" listen 127.0.0.1 "$3") ;;
    tcp/nc) R_ARGV=("$NC" -l 127.0.0.1 "$3") ;;
    unix/nk) R_ARGV=("$NK" unix -l "$sock") ;;
    unix/nc) R_ARGV=("$NC" -U -l "$sock") ;;
    tls/nk) R_ARGV=("$NK" listen --tls --cert "$cert" --key "$key" 127.0.0.1 "$3") ;;
    tls/ncat) R_ARGV=(ncat --ssl --ssl-cert "$cert" --ssl-key "$key" -l 127.0.0.1 "$3") ;;
    tls/socat) R_ARGV=(socat "OPENSSL-LISTEN:$3,bind=127.0.0.1,reuseaddr,cert=$cert,key=$key,verify=0" -) ;;
    esac
}
send_argv() {
    case $1/$2 in
    tcp/nk) S_ARGV=("$NK" dial 127.0.0.1 "$3") ;;
    tcp/nc) S_ARGV=("$NC" -N 127.0.0.1 "$3") ;;
    unix/nk) S_ARGV=("$NK" unix "$sock") ;;
    unix/nc) S_ARGV=("$NC" -N -U "$sock") ;;
    tls/nk) S_ARGV=("$NK" dial --tls --ca "$ca" --sni localhost 127.0.0.1 "$3") ;;
    tls/ncat) S_ARGV=(ncat --ssl --ssl-verify --ssl-trustfile "$ca" --ssl-servername localhost 127.0.0.1 "$3") ;;
    tls/socat) S_ARGV=(socat - "OPENSSL:127.0.0.1:$3,cafile=$ca,commonname=localhost") ;;
    esac
}

# stdin_open KIND: opens the listener's stdin (or, for tty, script's stdin) as $in_fd.
stdin_open() {
    feeder=""
    case $1 in
    null | socket) exec {in_fd}</dev/null ;;
    file) exec {in_fd}<"$empty" ;;
    pipe-idle | tty) exec {in_fd}< <(exec sleep 100000) && feeder=$! ;;
    pipe-busy) exec {in_fd}< <(yes | head -c "$back_bytes") && feeder=$! ;;
    esac
}

# run_one TR CASE TOOL VERIFY(0|1) -> R_SECS, R_OK (0/1), R_TIMEOUT (0/1), R_MSG, R_CK (the
# listener's output, VERIFY=1), R_BACK ("" when not checked, else the cksum of what came back).
run_one() {
    local tr=$1 case=$2 tool=$3 ver=$4 kind=${2%%/*} out=null port=0 src t0 cmd
    local errr=$work/err.r errs=$work/err.s sinkf=/dev/null
    [[ $case == */* ]] && out=${case#*/}
    R_OK=1 R_TIMEOUT=0 R_MSG="" R_CK="" R_BACK="" R_SECS=""
    if [[ $tr == unix ]]; then
        rm -f "$sock"
        [[ -e $sock ]] && { R_OK=0 R_MSG="cannot remove $sock"; return; }
    else
        port=$(free_port) || { R_OK=0 R_MSG="no free port"; return; }
    fi
    ((ver)) || [[ $RECV_OUT == file ]] && sinkf=$work/recv.out
    rm -f "$work/recv.out" "$work/back" "$work/back.ck"
    : >"$errr"; : >"$errs"
    recv_argv "$tr" "$tool" "$port"
    send_argv "$tr" "$tool" "$port"
    stdin_open "$kind" || { R_OK=0 R_MSG="cannot open stdin ($kind)"; stop_feeder; return; }

    t0=$EPOCHREALTIME
    case $kind in
    tty)
        cmd="$(printf '%q ' "${R_ARGV[@]}")>$(printf '%q' "$sinkf") 2>>$(printf '%q' "$errr")"
        TO env SHELL=/bin/bash script -qec "$cmd" /dev/null <&"$in_fd" >/dev/null 2>>"$errr" &
        ;;
    socket) TO "$PY" -I -S -c "$sock_py" "${R_ARGV[@]}" <&"$in_fd" >"$sinkf" 2>>"$errr" & ;;
    *) TO "${R_ARGV[@]}" <&"$in_fd" >"$sinkf" 2>>"$errr" & ;;
    esac
    cur_lpid=$!
    if [[ $tr == unix ]]; then
        wait_listen_unix "$sock" "$cur_lpid" || { listener_failed "at $sock" "$errr"; stop_feeder; return; }
    else
        wait_listen "$port" "$cur_lpid" || { listener_failed "on port $port" "$errr"; stop_feeder; return; }
    fi
    case $out in
    null) TO "${S_ARGV[@]}" <"$file" >/dev/null 2>>"$errs"; src=$? ;;
    file) TO "${S_ARGV[@]}" <"$file" >"$work/back" 2>>"$errs"; src=$? ;;
    pipe) TO "${S_ARGV[@]}" <"$file" 2>>"$errs" | cksum >"$work/back.ck"; src=${PIPESTATUS[0]} ;;
    esac
    if ! reap_listener "$t0" "$src"; then
        [[ $R_MSG =~ =(124|137)\  ]] && R_TIMEOUT=1 R_MSG="TIMEOUT: $R_MSG"
        [[ -s $errs ]] && R_MSG+="; client stderr: $(tail -c 200 "$errs" | tr '\n' ' ')"
        [[ -s $errr ]] && R_MSG+="; listener stderr: $(tail -c 200 "$errr" | tr '\n' ' ')"
    fi
    stop_feeder
    [[ $tr == unix ]] && rm -f "$sock"
    if ((ver)); then
        R_CK=$(cksum <"$work/recv.out" 2>/dev/null)
    elif [[ $RECV_OUT == file ]] && ((R_OK)); then
        local got
        got=$(stat -c %s "$work/recv.out" 2>/dev/null || echo 0)
        ((got == bytes)) || { R_OK=0 R_MSG="listener wrote $got of $bytes bytes"; }
    fi
    if [[ $kind == pipe-busy ]]; then
        case $out in
        file) R_BACK=$(cksum <"$work/back" 2>/dev/null) ;;
        pipe) R_BACK=$(cat "$work/back.ck" 2>/dev/null) ;;
        esac
    fi
    rm -f "$work/recv.out" "$work/back" "$work/back.ck"
}

mbps() { awk -v b="$bytes" -v s="$1" 'BEGIN { printf "%.1f", b / 1e6 / s }'; }

# note_back COMBO TOOL: books R_BACK (when checked) for COMBO; a short or wrong return from nk
# fails the run (nk delivers every byte it read), from the others it is shown only.
# A run that failed anyway books nothing.
note_back() {
    ((R_OK)) || return 0
    [[ -n $R_BACK || $1 != *pipe-busy/* || ${1#*pipe-busy/} == null* ]] || R_BACK="(none) 0"
    [[ -n $R_BACK ]] || return 0
    if [[ $R_BACK == "$want_back" ]]; then
        BACK_OK[$1]=$((${BACK_OK[$1]:-0} + 1))
    else
        BACK_BAD[$1]+="$(awk '{ print $2 }' <<<"$R_BACK") "
        if [[ $2 == nk ]]; then
            R_OK=0 R_MSG="sent back $(awk '{ print $2 }' <<<"$R_BACK") of $back_bytes bytes (cksum '$R_BACK', want '$want_back')"
        fi
    fi
}

# ---------------------------------------------------------------- plan
# combo = TR:CASE:TOOL
tools_of() {
    local t=()
    if ((have_nk)) && [[ -z ${NK_NO[$1]:-} ]]; then t=(nk); fi
    case $1 in
    tcp | unix) t+=(nc) ;;
    tls) t+=(ncat socat) ;;
    esac
    echo "${t[@]}"
}
combos=()
for tr in $TRANSPORTS; do
    for c in $CASES; do
        for t in $(tools_of "$tr"); do combos+=("$tr:$c:$t"); done
    done
done
declare -A MBS SECS FAILS VERIFY BACK_OK BACK_BAD
status=0

# ---------------------------------------------------------------- verification
for combo in "${combos[@]}"; do
    IFS=: read -r tr c t <<<"$combo"
    run_one "$tr" "$c" "$t" 1
    if ((R_OK == 0)); then
        VERIFY[$combo]="FAIL: $R_MSG"
        ((R_TIMEOUT)) && VERIFY[$combo]="TIMEOUT (${TIMEOUT}s): ${R_MSG#TIMEOUT: }"
    elif [[ $R_CK != "$want_ck" ]]; then
        got=$(awk '{ print $2 }' <<<"$R_CK")
        if [[ ${got:-0} == "$bytes" ]]; then
            VERIFY[$combo]="BYTES CORRUPT: cksum '${R_CK:-none}', want '$want_ck'"
        else
            VERIFY[$combo]="BYTES LOST: got ${got:-0} of $bytes, exit status 0 both sides"
        fi
    else
        VERIFY[$combo]="ok"
    fi
    note_back "$combo" "$t"
    if [[ ${VERIFY[$combo]} == ok ]] && ((R_OK == 0)); then VERIFY[$combo]="FAIL: $R_MSG"; fi
    [[ $t == nk && ${VERIFY[$combo]} != ok ]] && status=1
    log "$name: verify $tr $c $t: ${VERIFY[$combo]}$([[ -n $R_SECS ]] && printf ' (%.2fs)' "$R_SECS")"
done

# ---------------------------------------------------------------- timed runs
# Only the combinations whose verification run was clean.
timed=()
for combo in "${combos[@]}"; do [[ ${VERIFY[$combo]} == ok ]] && timed+=("$combo"); done
n=${#timed[@]}
for ((r = 0; r < RUNS && n > 0; r++)); do
    line="$name: round $((r + 1))/$RUNS:"
    for ((k = 0; k < n; k++)); do
        combo=${timed[$(((k + r) % n))]} # rotate the order each round
        IFS=: read -r tr c t <<<"$combo"
        run_one "$tr" "$c" "$t" 0
        note_back "$combo" "$t"
        if ((R_OK == 0)); then
            FAILS[$combo]+="run $((r + 1)): $R_MSG; "
            [[ $t == nk ]] && status=1
            line+=" $tr/$c/$t=FAIL"
            continue
        fi
        SECS[$combo]+="$R_SECS "
        MBS[$combo]+="$(mbps "$R_SECS") "
        line+=" $tr/$c/$t=$(printf '%.2f' "$R_SECS")s"
    done
    log "$line"
done

# ---------------------------------------------------------------- tables
med() { local s; s=$(stats "${MBS[$1]:-}" %.1f); echo "${s%% *}"; }
# clean COMBO: verified, every timed run clean, and a median
clean() { [[ ${VERIFY[$1]:-} == ok && -z ${FAILS[$1]:-} && -n ${MBS[$1]:-} ]]; }
kind_label() {
    case $1 in
    null) echo "/dev/null" ;;
    file) echo "empty file" ;;
    pipe-idle) echo "idle pipe (\`sleep \\| \`)" ;;
    pipe-busy) echo "busy pipe (\`yes \\| head -c ${BACK_MB}M \\| \`)" ;;
    tty) echo "terminal (\`script -qec\`)" ;;
    socket) echo "idle socket (socketpair)" ;;
    esac
}
out_label() {
    case $1 in
    null) echo "/dev/null" ;;
    file) echo "file" ;;
    pipe) echo "\`\\| cksum\`" ;;
    esac
}
tool_label() {
    case $1/$2 in
    tcp/nk) echo "nk dial -> nk listen" ;;
    tcp/nc) echo "nc -N -> nc -l" ;;
    unix/nk) echo "nk unix -> nk unix -l" ;;
    unix/nc) echo "nc -N -U -> nc -U -l" ;;
    tls/nk) echo "nk dial --tls -> nk listen --tls" ;;
    tls/ncat) echo "ncat --ssl -> ncat --ssl -l" ;;
    tls/socat) echo "socat OPENSSL -> OPENSSL-LISTEN" ;;
    esac
}
tr_label() { case $1 in tcp) echo TCP ;; unix) echo Unix ;; tls) echo TLS ;; esac; }

# ref_of TR CASE -> "TOOL MBS" of the reference (nc; for TLS the faster clean one of ncat and
# socat), or nothing when none is clean.
ref_of() {
    local tr=$1 c=$2 t v best="" bv=""
    local refs=(nc); [[ $tr == tls ]] && refs=(ncat socat)
    for t in "${refs[@]}"; do
        clean "$tr:$c:$t" || continue
        v=$(med "$tr:$c:$t")
        if [[ -z $bv ]] || awk -v a="$v" -v b="$bv" 'BEGIN { exit !(a > b) }'; then best=$t bv=$v; fi
    done
    [[ -n $best ]] && echo "$best $bv"
}

# verdict TR CASE -> the bar cell: "1.35x nc (bar >= 1.2x: PASS)", or why there is none.
verdict() {
    local tr=$1 c=$2 nkc=$1:$2:nk ref rt rv bar=$BAR_CLEAR
    [[ $tr == tls ]] && bar=$BAR_TLS
    if ((!have_nk)); then echo "- (nk $nk_why)"; return; fi
    [[ -n ${NK_NO[$tr]:-} ]] && { echo "- (nk: ${NK_NO[$tr]})"; return; }
    if [[ ${VERIFY[$nkc]:-} != ok ]]; then
        case ${VERIFY[$nkc]:-} in
        TIMEOUT*) echo "FAIL (nk: TIMEOUT)" ;;
        BYTES*) echo "FAIL (nk: bytes lost)" ;;
        *) echo "FAIL (nk failed)" ;;
        esac
        return
    fi
    [[ -n ${FAILS[$nkc]:-} ]] && { echo "FAIL (nk: failed runs)"; return; }
    ref=$(ref_of "$tr" "$c")
    [[ -z $ref ]] && { echo "- (no clean reference)"; return; }
    read -r rt rv <<<"$ref"
    ratio "$(med "$nkc")" "$rv" "$bar" | sed "s/x (/x $rt (/"
}

back_cell() {
    local combo=$1 c=${1#*:} ok bad
    c=${c%:*}
    [[ ${c%%/*} == pipe-busy ]] || { echo "-"; return; }
    [[ $c == */file || $c == */pipe ]] || { echo "not read (/dev/null)"; return; }
    ok=${BACK_OK[$combo]:-0} bad=${BACK_BAD[$combo]:-}
    if [[ -z $bad ]]; then
        ((ok)) && echo "all $back_bytes B in $ok of $ok runs" || echo "-"
    else
        echo "SHORT/WRONG in $(wc -w <<<"$bad") of $((ok + $(wc -w <<<"$bad"))) runs (got $(tr -s ' ' <<<"${bad% }" | tr ' ' ','))"
    fi
}

summary=$(
    hdr="| listener stdin | client stdout |"
    sep="| --- | --- |"
    for tr in $TRANSPORTS; do
        case $tr in
        tcp) hdr+=" TCP: nk / nc |" ;;
        unix) hdr+=" Unix: nk / nc |" ;;
        tls) hdr+=" TLS: nk / faster of ncat, socat |" ;;
        esac
        sep+=" --- |"
    done
    echo "$hdr"; echo "$sep"
    for c in $CASES; do
        o=null; [[ $c == */* ]] && o=${c#*/}
        row="| $(kind_label "${c%%/*}") | $(out_label "$o") |"
        for tr in $TRANSPORTS; do row+=" $(verdict "$tr" "$c") |"; done
        echo "$row"
    done
)

detail=$(
    echo "| transport | listener stdin | client stdout | tool | median s (min-max) | median MB/s (min-max) | nk/this tool | bytes verified | sent back to the client |"
    echo "| --- | --- | --- | --- | --- | --- | --- | --- | --- |"
    for tr in $TRANSPORTS; do
        for c in $CASES; do
            o=null; [[ $c == */* ]] && o=${c#*/}
            for t in nk nc ncat socat; do
                case $tr/$t in tcp/nc | unix/nc | tls/ncat | tls/socat | */nk) ;; *) continue ;; esac
                combo=$tr:$c:$t
                if [[ $t == nk ]] && { ((!have_nk)) || [[ -n ${NK_NO[$tr]:-} ]]; }; then
                    why=$nk_why; [[ -n ${NK_NO[$tr]:-} ]] && why=${NK_NO[$tr]}
                    echo "| $(tr_label "$tr") | $(kind_label "${c%%/*}") | $(out_label "$o") | $(tool_label "$tr" nk) | $why | $why | | | |"
                    continue
                fi
                s=$(fmt_range "${SECS[$combo]:-}" %.3f) m=$(fmt_range "${MBS[$combo]:-}" %.1f)
                ver=${VERIFY[$combo]:-}
                [[ $ver != ok && $s == - ]] && s="(not timed)" m="(not timed)"
                r=""
                if [[ $t != nk ]] && ((have_nk)) && [[ -z ${NK_NO[$tr]:-} ]] && clean "$tr:$c:nk" && [[ -n ${MBS[$combo]:-} ]]; then
                    r=$(ratio "$(med "$tr:$c:nk")" "$(med "$combo")")
                    [[ $ver == ok ]] || r+=" (INVALID: bytes not verified)"
                fi
                [[ -n ${FAILS[$combo]:-} ]] && ver+="; FAILED RUNS: ${FAILS[$combo]}"
                ver=${ver%; }
                echo "| $(tr_label "$tr") | $(kind_label "${c%%/*}") | $(out_label "$o") | $(tool_label "$tr" "$t") | $s | $m | $r | ${ver//|//} | $(back_cell "$combo") |"
            done
        done
    done
)

if ((!have_nk)); then
    nk_id="$NK ($nk_why)"
elif [[ $(sha256sum "$NK" 2>/dev/null | cut -c1-12) != "$nk_sha" ]]; then
    nk_id+=" **CHANGED DURING THE RUN** (now sha256 $(sha256sum "$NK" 2>/dev/null | cut -c1-12)): the figures mix two builds"
    log "$name: warning: $NK changed during the run"
fi
vers="$("$NC" -h 2>&1 | head -n 1 | sed 's/ (Debian patchlevel /-/; s/)$//')"
[[ " $TRANSPORTS " == *" tls "* ]] && vers+=", $(ncat --version 2>&1 | grep -o 'Version [0-9.]*' | head -n 1 | sed 's/Version/ncat/'), $(socat -V 2>/dev/null | sed -n 's/^socat version \([0-9.]*\).*/socat \1/p'), $(openssl version | cut -d' ' -f1-2)"
[[ " $CASES " == *" tty"* ]] && vers+=", $(script --version 2>&1 | sed 's/ from / /')"

{
    echo "# 12_stdin_kinds: whole sessions, ${SIZE_MB} MiB client -> listener, by the listener's stdin kind, median of $RUNS runs"
    echo
    echo "$(date -u '+%Y-%m-%d %H:%M UTC'), $(uname -r), $(nproc) CPUs, load $(cut -d' ' -f1 /proc/loadavg); nk: $nk_id; bench git $(git -C "$root" rev-parse --short HEAD 2>/dev/null || echo none); $vers"
    echo
    echo "Bars (issue 16 item 8): nk >= ${BAR_CLEAR}x nc over TCP and Unix, >= ${BAR_TLS}x the faster of ncat and socat over TLS, with every listener stdin kind (ratios of median MB/s)."
    echo
    echo "$summary"
    echo
    echo "$detail"
    echo
    echo "Time = wall seconds of the whole session: from just before the listener (and its wrapper: script for the terminal, a Python socketpair helper for the socket) is started until the client and the listener have both exited; the client starts once the listener shows up in \`ss\`. MB/s = ${SIZE_MB} MiB / 1e6 / seconds."
    echo "Client stdin: the page-cached ${SIZE_MB} MiB random file (\`< file\`). Listener stdout: a file in the verification run, $([[ $RECV_OUT == file ]] && echo "a file (length checked)" || echo /dev/null) in the timed runs."
    echo "Every tool in its plain bidirectional form: \`nc -N\` client, \`nc -l\` / \`nc -U -l\` listener; ncat and socat with default options (socat -b 8192, -t 0.5). One certificate for all TLS tools (ECDSA P-256 CA + leaf CN=localhost); the clients verify it."
    echo "Busy pipe: \`yes | head -c ${BACK_MB}M\` feeds the listener's stdin at full speed, so it sends ${back_bytes} bytes back while it receives; \"sent back\" checks them (cksum) where the client's stdout is a file or a pipe. nc -l ends at the client's EOF and drops what its stdin still holds; nk sends it all."
    echo "Bytes verified: one untimed run per combination, the listener's stdout file through cksum (length and CRC). A combination that failed it (or timed out, TIMEOUT = ${TIMEOUT}s per process) has no timed runs. Reference tools that fail are shown, and left out of the ratios: ncat (7.93 here) ends the connection as soon as its own stdin reaches EOF (/dev/null, an empty file, the end of the busy pipe), and its client then fails (\`Ncat: Input/output error\`) with part of the data undelivered."
} >"$work/out.md"
finish "$out_md"
