#!/usr/bin/env bash
# 11_tls.sh - TLS bulk one-way over 127.0.0.1: `nk dial --tls` -> `nk listen --tls` vs
# `ncat --ssl` and socat OPENSSL (the issue's "TLS bulk 1 GiB").
#
# One certificate for every tool: an ECDSA P-256 CA and a leaf for CN=localhost (SAN
# DNS:localhost, IP:127.0.0.1) made with the openssl CLI in the work dir. Every receiver
# listens on 127.0.0.1 with the leaf; every sender connects to 127.0.0.1, verifies the chain
# against the CA and the name localhost (and sends it as SNI):
#   nk         nk listen --tls --cert L --key K 127.0.0.1 P            (stdin /dev/null)
#              nk dial --tls --ca CA --sni localhost 127.0.0.1 P < file
#   nk-ro      the same listener with --recv-only (stdin the FIFO below, like ncat's)
#   ncat       ncat --recv-only --ssl --ssl-cert L --ssl-key K -l 127.0.0.1 P
#              ncat --ssl --ssl-verify --ssl-trustfile CA --ssl-servername localhost 127.0.0.1 P < file
#   socat      socat -u OPENSSL-LISTEN:P,bind=127.0.0.1,reuseaddr,cert=L,key=K,verify=0 -
#              socat -u - OPENSSL:127.0.0.1:P,cafile=CA,commonname=localhost < file
#   socat128k  the same with -b 131072 on both sides (reference only: socat's default 8 KiB
#              buffer makes 8 KiB records; not part of the bar)
# Receiver stdout = /dev/null. Receiver stdin: /dev/null for nk (the issue's plain form: nk
# half-closes its side at once and keeps receiving); a FIFO that never reaches EOF for the
# others: ncat, even with --recv-only, drops the connection when its stdin hits EOF (the
# sender then fails after a few MB); socat -u and nk --recv-only never read it.
# The sender's stdin is the page-cached SIZE_MB file the other bulk benches share.
# Time = wall seconds from just before the sender starts (once the listener shows up in
# `ss -ltn`, so listener start-up is not timed) until the sender and the receiver have both
# exited (handshake and teardown included). MB = 1e6 bytes. A fresh listener on a fresh port
# every run; rounds interleaved, the order rotated each round. CPU = user+sys seconds of the
# sender and of the receiver (GNU time), when /usr/bin/time is there.
# Correctness: untimed runs first pipe the receiver into cksum(1) and check the length and
# CRC against the file: one per tool, CHECKS_NK for nk's plain form (an early half-close of
# the receiver once made nk dial exit with the tail of the stream still in its TLS bridge:
# 64-450 KiB lost, both sides exit 0, a race; fixed in 246b8d2). The first run of each also
# records the negotiated TLS version and suite (nk: `nk dial -v`; socat: the client's
# `-d -d` notices; ncat prints neither, so an `openssl s_client -brief` probe of a fresh ncat
# listener, OpenSSL's defaults like ncat's client).
#
# Env: RUNS=5 SIZE_MB=1024 CHECKS_NK=3 NK=<nk binary> (default <repo>/target/release/nk)
#      TIMEOUT=60 (seconds, per process)  TMPDIR (where the test file is kept)
# Exit: 0 all runs clean; 1 a run failed/hung or a tool lost or corrupted bytes; 2 nk missing
#       (or without `listen --tls`): nk rows skipped.
# Bar (printed, not enforced): nk (plain form) MB/s >= 1.0x the faster of ncat and socat
# (default options); nk --recv-only and socat -b 131072 are for reference.
set -uo pipefail
export LC_ALL=C

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/.." && pwd)
RUNS=${RUNS:-5}
SIZE_MB=${SIZE_MB:-1024}
CHECKS_NK=${CHECKS_NK:-3}
TIMEOUT=${TIMEOUT:-60}
NK=${NK:-$root/target/release/nk}
TIME_BIN=${TIME_BIN:-/usr/bin/time}
BAR=1.0
bytes=$((SIZE_MB * 1024 * 1024))
out_md=$here/results/11_tls.md

. "$here/lib.sh" # log, free_port, wait_listen, TO, stats, ratio, bulk_file, nk_lacks, finish, need_tools, nk_rows, work_dir, listener_failed, make_pki

cur_lpid="" # the listener (sub)shell of the run in progress, if any
work_dir 11 stop_cur_listener
pki=$work/pki

[[ $RUNS =~ ^[1-9][0-9]*$ && $SIZE_MB =~ ^[1-9][0-9]*$ && $CHECKS_NK =~ ^[1-9][0-9]*$ ]] ||
    { log "11_tls: RUNS, SIZE_MB and CHECKS_NK must be positive integers"; exit 1; }
need_tools 11_tls ncat socat openssl ss cksum timeout awk pkill mkfifo
[[ -x $TIME_BIN ]] || { log "11_tls: no GNU time at $TIME_BIN: CPU column left empty"; TIME_BIN=""; }

nk_why=$(nk_lacks listen)
if [[ -z $nk_why ]] && ! "$NK" listen --help 2>/dev/null | grep -q -- '--tls'; then
    nk_why="no \`listen --tls\`"
fi
nk_rows 11_tls

# ---------------------------------------------------------------- certificates
if ! make_pki "$pki" >"$work/pki.log" 2>&1; then
    log "11_tls: could not make the certificates: $(tail -c 300 "$work/pki.log" | tr '\n' ' ')"
    exit 1
fi
cert=$pki/leaf.pem key=$pki/leaf.key ca=$pki/ca.pem

file=$(bulk_file "$SIZE_MB") || { log "11_tls: cannot create the test file"; exit 1; }
want_ck=$(cksum <"$file") # "CRC LENGTH"

# Receiver stdin: fd 9 = a FIFO opened O_RDWR (readers never see EOF); fd 8 = /dev/null.
mkfifo "$work/hold" && exec 9<>"$work/hold" 8</dev/null || exit 1

# ---------------------------------------------------------------- helpers
VFLAG=()         # extra sender flags for the verification run (negotiated suite on stderr)
TM_R=() TM_S=()  # GNU time prefixes (CPU of receiver / sender), empty without it
if [[ -n $TIME_BIN ]]; then
    TM_R=("$TIME_BIN" -f '%U %S' -o "$work/cpu.r")
    TM_S=("$TIME_BIN" -f '%U %S' -o "$work/cpu.s")
fi

recv_cmd() { # tool port
    case $1 in
    nk) TO "${TM_R[@]}" "$NK" listen --tls --cert "$cert" --key "$key" 127.0.0.1 "$2" ;;
    nk-ro) TO "${TM_R[@]}" "$NK" listen --recv-only --tls --cert "$cert" --key "$key" 127.0.0.1 "$2" ;;
    ncat) TO "${TM_R[@]}" ncat --recv-only --ssl --ssl-cert "$cert" --ssl-key "$key" -l 127.0.0.1 "$2" ;;
    socat) TO "${TM_R[@]}" socat -u \
        "OPENSSL-LISTEN:$2,bind=127.0.0.1,reuseaddr,cert=$cert,key=$key,verify=0" - ;;
    socat128k) TO "${TM_R[@]}" socat -b 131072 -u \
        "OPENSSL-LISTEN:$2,bind=127.0.0.1,reuseaddr,cert=$cert,key=$key,verify=0" - ;;
    esac
}
send_cmd() { # tool port
    case $1 in
    nk | nk-ro) TO "${TM_S[@]}" "$NK" dial "${VFLAG[@]}" --tls --ca "$ca" --sni localhost 127.0.0.1 "$2" ;;
    ncat) TO "${TM_S[@]}" ncat --ssl --ssl-verify --ssl-trustfile "$ca" --ssl-servername localhost 127.0.0.1 "$2" ;;
    socat) TO "${TM_S[@]}" socat "${VFLAG[@]}" -u - "OPENSSL:127.0.0.1:$2,cafile=$ca,commonname=localhost" ;;
    socat128k) TO "${TM_S[@]}" socat "${VFLAG[@]}" -b 131072 -u - "OPENSSL:127.0.0.1:$2,cafile=$ca,commonname=localhost" ;;
    esac
}

# cpu_of FILE -> user+sys seconds from GNU time's last line ("" when absent)
cpu_of() { [[ -s $1 ]] && tail -n 1 "$1" | awk 'NF == 2 { printf "%.2f", $1 + $2 }'; }

# run_one TOOL SINK(null|cksum) -> sets R_SECS, R_OK (0/1), R_MSG, R_CK (when SINK=cksum),
# R_CPU_S / R_CPU_R (CPU seconds of sender / receiver, "" without GNU time); the sender's
# stderr stays in $work/err.s.TOOL.
run_one() {
    local tool=$1 sink=$2 port lpid src t0 errs=$work/err.s.$1 errr=$work/err.r.$1
    R_OK=1 R_MSG="" R_CK="" R_SECS="" R_CPU_S="" R_CPU_R=""
    port=$(free_port) || { R_OK=0 R_MSG="no free port"; return; }
    : >"$errs"; : >"$errr"
    rm -f "$work/ck" "$work/cpu.r" "$work/cpu.s"
    # nk is the issue's plain form: receiver stdin /dev/null (EOF at once).
    local in=9; [[ $tool == nk ]] && in=8
    case $sink in
    null) recv_cmd "$tool" "$port" <&"$in" >/dev/null 2>>"$errr" & ;;
    cksum) { recv_cmd "$tool" "$port" <&"$in" 2>>"$errr" | cksum >"$work/ck"; } & ;;
    esac
    lpid=$!
    cur_lpid=$lpid
    wait_listen "$port" "$lpid" || { listener_failed "on port $port" "$errr"; return; }
    t0=$EPOCHREALTIME
    send_cmd "$tool" "$port" <"$file" >/dev/null 2>>"$errs"
    src=$?
    if ! reap_listener "$t0" "$src"; then
        [[ -s $errs ]] && R_MSG+="; sender stderr: $(grep -v '^\(nk: \|.* socat\[[0-9]*\] [NI] \)' "$errs" | tail -c 300 | tr '\n' ' ')"
        [[ -s $errr ]] && R_MSG+="; receiver stderr: $(tail -c 300 "$errr" | tr '\n' ' ')"
    fi
    R_CPU_S=$(cpu_of "$work/cpu.s") R_CPU_R=$(cpu_of "$work/cpu.r")
    [[ $sink == cksum ]] && R_CK=$(cat "$work/ck" 2>/dev/null)
}

mbps() { awk -v b="$bytes" -v s="$1" 'BEGIN { printf "%.1f", b / 1e6 / s }'; }

# suite_of TOOL -> "TLS 1.3, TLS13_AES_256_GCM_SHA384"-like text from the verification
# run's sender stderr (nk -v, socat -d -d).
suite_of() {
    local f=$work/err.s.$1
    case $1 in
    nk*) sed -n 's/^nk: \(TLS [0-9.]*, [A-Z0-9_]*\).*/\1/p' "$f" | head -n 1 ;;
    socat*) awk '/SSL proto version used:/ { v = $NF }
                 /SSL connection using/ { c = $NF }
                 END { if (v != "" || c != "") printf "%s, %s\n", v, c }' "$f" ;;
    esac
}

# probe_ncat -> "TLSv1.3, TLS_AES_256_GCM_SHA384 (...)": openssl s_client against a fresh
# ncat listener (ncat itself does not say what it negotiated).
probe_ncat() {
    local port lpid out
    port=$(free_port) || return
    TO ncat --recv-only --ssl --ssl-cert "$cert" --ssl-key "$key" -l 127.0.0.1 "$port" \
        <&9 >/dev/null 2>/dev/null &
    lpid=$!
    cur_lpid=$lpid
    if wait_listen "$port" "$lpid"; then
        out=$(TO openssl s_client -brief -connect "127.0.0.1:$port" -servername localhost \
            -CAfile "$ca" -verify_hostname localhost -verify_return_error </dev/null 2>&1)
        awk -F': ' '/^Protocol version:/ { v = $2 } /^Ciphersuite:/ { c = $2 }
                    /^(Server|Peer) Temp Key:/ { k = $2 }
                    END { if (v != "") printf "%s, %s (openssl s_client probe of the ncat listener; key exchange %s)\n", v, c, k }' <<<"$out"
    fi
    kill "$lpid" 2>/dev/null; pkill -TERM -P "$lpid" 2>/dev/null; wait "$lpid" 2>/dev/null
    cur_lpid=""
}

# ---------------------------------------------------------------- plan
tools=(ncat socat socat128k)
((have_nk)) && tools=(nk nk-ro "${tools[@]}")
declare -A SECS MBS CPUS CPUR FAILS VERIFY SUITE
status=0

# ---------------------------------------------------------------- verification
# verify TOOL -> sets VERIFY[TOOL] ("ok" or why not); the first run also sets SUITE[TOOL].
verify() {
    local t=$1 i runs=1 lost=0 note="" got
    [[ $t == nk ]] && runs=$CHECKS_NK
    for ((i = 1; i <= runs; i++)); do
        VFLAG=()
        if ((i == 1)); then case $t in nk*) VFLAG=(-v) ;; socat*) VFLAG=(-d -d) ;; esac; fi
        run_one "$t" cksum
        VFLAG=()
        got=$(awk '{ print $2 }' <<<"$R_CK")
        if ((R_OK == 0)); then
            note+="run $i: FAIL: $R_MSG; "; lost=$((lost + 1))
        elif [[ $R_CK != "$want_ck" ]]; then
            lost=$((lost + 1))
            if [[ ${got:-0} == "$bytes" ]]; then
                note+="run $i: CORRUPT (cksum '${R_CK:-none}', want '$want_ck'); "
            else
                note+="run $i: got ${got:-0} of $bytes bytes ($((bytes - ${got:-0})) lost), exit status 0 both sides; "
            fi
        fi
        if ((i == 1)); then
            if [[ $t == ncat ]]; then SUITE[$t]=$(probe_ncat); else SUITE[$t]=$(suite_of "$t"); fi
        fi
    done
    if ((lost == 0)); then
        VERIFY[$t]="ok"; ((runs > 1)) && VERIFY[$t]+=" ($runs of $runs runs)"
    else
        VERIFY[$t]="BYTES LOST/CORRUPT or FAILED in $lost of $runs runs: ${note%; }"; status=1
    fi
}
for t in "${tools[@]}"; do
    verify "$t"
    log "11_tls: verify $t: ${VERIFY[$t]}; ${SUITE[$t]:-suite unknown}"
done

# ---------------------------------------------------------------- timed runs
n=${#tools[@]}
for ((r = 0; r < RUNS; r++)); do
    line="11_tls: round $((r + 1))/$RUNS:"
    for ((k = 0; k < n; k++)); do
        t=${tools[$(((k + r) % n))]} # rotate the order each round
        run_one "$t" null
        if ((R_OK == 0)); then
            FAILS[$t]+="run $((r + 1)): $R_MSG; "; status=1
            line+=" $t=FAIL"
            continue
        fi
        SECS[$t]+="$R_SECS "
        MBS[$t]+="$(mbps "$R_SECS") "
        [[ -n $R_CPU_S ]] && CPUS[$t]+="$R_CPU_S "
        [[ -n $R_CPU_R ]] && CPUR[$t]+="$R_CPU_R "
        line+=" $t=$(printf '%.2f' "$R_SECS")s/$(mbps "$R_SECS")MB/s"
    done
    log "$line"
done

# ---------------------------------------------------------------- table
med() { local s; s=$(stats "${MBS[$1]:-}" %.1f); echo "${s%% *}"; }
cpu() { # tool -> "sender + receiver" medians
    local s r
    s=$(stats "${CPUS[$1]:-}" %.2f); r=$(stats "${CPUR[$1]:-}" %.2f)
    [[ ${s%% *} == - ]] && { echo "-"; return; }
    echo "${s%% *} + ${r%% *}"
}
label() {
    case $1 in
    nk) echo "nk dial --tls -> nk listen --tls (stdin /dev/null)" ;;
    nk-ro) echo "nk dial --tls -> nk listen --recv-only --tls" ;;
    ncat) echo "ncat --ssl -> ncat --recv-only --ssl -l" ;;
    socat) echo "socat -u OPENSSL (default -b 8192)" ;;
    socat128k) echo "socat -b 131072 -u OPENSSL (reference)" ;;
    esac
}

# The faster of ncat and socat (default buffers), by median MB/s.
ref="" ref_v=""
for t in ncat socat; do
    v=$(med "$t")
    [[ $v == - || -z $v ]] && continue
    if [[ -z $ref_v ]] || awk -v a="$v" -v b="$ref_v" 'BEGIN { exit !(a > b) }'; then
        ref=$t ref_v=$v
    fi
done
ok_of() { [[ ${VERIFY[$1]:-} == ok* ]]; }

table=$(
    echo "| tool | median s (min-max) | median MB/s (min-max) | CPU s sender + receiver | nk/this tool | bytes verified | negotiated |"
    echo "| --- | --- | --- | --- | --- | --- | --- |"
    for t in nk nk-ro ncat socat socat128k; do
        r=""
        if [[ $t == nk* ]]; then
            if ((have_nk)); then
                s=$(fmt_range "${SECS[$t]:-}" %.3f); m=$(fmt_range "${MBS[$t]:-}" %.1f)
                ok_of "$t" || { [[ $m != - ]] && m+=" INVALID"; }
                [[ $t == nk-ro ]] && r="$(ratio "$(med nk)" "$(med nk-ro)")"
                [[ $t == nk-ro ]] && ! ok_of nk && r="INVALID (nk bytes not verified)"
            else
                s=$nk_why m=$nk_why
            fi
        else
            s=$(fmt_range "${SECS[$t]:-}" %.3f); m=$(fmt_range "${MBS[$t]:-}" %.1f)
            if ((have_nk)); then
                r=$(ratio "$(med nk)" "$(med "$t")")
                ok_of nk || r="INVALID (nk bytes not verified)"
            fi
        fi
        ver=${VERIFY[$t]:-}
        [[ -n ${FAILS[$t]:-} ]] && ver+="; FAILED RUNS: ${FAILS[$t]}"
        ver=${ver#; }; ver=${ver%; }
        echo "| $(label "$t") | $s | $m | $(cpu "$t") | $r | ${ver//|//} | ${SUITE[$t]:-?} |"
    done
)

if ((!have_nk)); then
    ratio_line="nk vs faster of ncat/socat: - (nk $nk_why)"
elif ! ok_of nk; then
    ratio_line="nk vs faster of ncat/socat: INVALID (nk bytes not verified)"
elif [[ -z $ref ]]; then
    ratio_line="nk vs faster of ncat/socat: - (no ncat or socat figure)"
else
    ratio_line="nk vs faster of ncat/socat ($ref, $ref_v MB/s): $(ratio "$(med nk)" "$ref_v" "$BAR")"
    ok_of nk-ro && ratio_line+="; nk --recv-only: $(ratio "$(med nk-ro)" "$ref_v")"
fi

{
    echo "# 11_tls: TLS bulk one-way over 127.0.0.1, ${SIZE_MB} MiB page-cached file, median of $RUNS runs"
    echo
    echo "$(date -u '+%Y-%m-%d %H:%M UTC'), $(uname -r), $(nproc) CPUs, load $(cut -d' ' -f1 /proc/loadavg); nk: $NK$( ((have_nk)) || echo " ($nk_why)"); git $(git -C "$root" rev-parse --short HEAD 2>/dev/null || echo none); $(openssl version | cut -d' ' -f1-2), $(ncat --version 2>&1 | grep -o 'Version [0-9.]*' | head -n 1 | sed 's/Version/ncat/'), $(socat -V 2>/dev/null | sed -n 's/^socat version \([0-9.]*\).*/socat \1/p')"
    echo
    echo "$table"
    echo
    echo "**$ratio_line**"
    echo
    echo "Time = wall seconds from just before the sender starts until sender and receiver have both exited (handshake included); MB/s = bytes / 1e6 / seconds."
    echo "Same certificate for all: ECDSA P-256 CA + leaf CN=localhost (SAN DNS:localhost, IP:127.0.0.1); every client connects to 127.0.0.1 and verifies the chain and the name localhost."
    echo "Receivers: stdout /dev/null; stdin /dev/null for nk, a FIFO that never reaches EOF for the others (ncat drops the connection at stdin EOF even with --recv-only). Senders: \`< file\`."
    echo "CPU = user+sys seconds (GNU time), medians. Negotiated: nk from \`nk dial -v\`, socat from its client's \`-d -d\` notices, ncat from an \`openssl s_client\` probe."
    echo "Bytes verified: untimed runs with the receiver piped into cksum (length and CRC); $CHECKS_NK for nk's plain form, 1 for the others."
    echo "Bar: nk (plain form) >= ${BAR}x the faster of ncat and socat (default options); nk --recv-only and socat -b 131072 are shown for reference. nk/this tool = ratio of median MB/s (nk plain form over the row)."
} >"$work/out.md"
finish "$out_md"
