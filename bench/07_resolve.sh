#!/usr/bin/env bash
# 07_resolve.sh - one DNS query per process: `nk resolve` vs `dig`, N sequential processes
# each, against the same dnsmasq on 127.0.0.1 (the issue's "1,000 sequential processes").
#
#   nk    nk resolve -t A NAME --server 127.0.0.1:P --short
#   dig   dig +short @127.0.0.1 -p P NAME A
#   true  /bin/true (reference: what one fork+exec from the same bash loop costs)
# OUTPUT=full drops --short / +short from both (then each prints its full answer).
#
# dnsmasq (Debian dnsmasq-base) runs in the foreground on 127.0.0.1:P (a port free for UDP
# and TCP, below the ephemeral range), no config file, no upstream, no /etc/hosts, with one
# --host-record NAME -> ADDR (bench.example.test -> 192.0.2.10) and --local=/example.test/.
# The processes are started by a plain bash loop (`for ...; do cmd; done`, stdout to a file,
# no per-process timeout(1) wrapper: that would add a fork+exec to every query), timed with
# $EPOCHREALTIME around the loop. The N processes of each tool are split into RUNS rounds;
# every round runs one batch per tool, the order alternating, so noise hits all alike.
# Correctness: one untimed query per tool first must print exactly the answer; after every
# batch, every process must have exited 0 and the batch's output must hold exactly one
# answer line per process and nothing wrong.
#
# Env: N=1000 (processes per tool) RUNS=5 (rounds) OUTPUT=short|full
#      TIMEOUT=120 (seconds, per batch of N/RUNS processes)  NK=<nk binary>
#      DNSMASQ=/usr/sbin/dnsmasq  DIG=dig  FLOOR=1 (0: no /bin/true row)
# Exit: 0 all runs clean (also when dig or dnsmasq is missing: the script is skipped);
#       1 a query failed, gave a wrong answer, a batch timed out, or dnsmasq died;
#       2 nk missing or its --help lists no `resolve` command (dig rows only).
# Bar (printed, not enforced): dig time / nk time >= 10x per process.
set -uo pipefail
export LC_ALL=C

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/.." && pwd)
N=${N:-1000}
RUNS=${RUNS:-5}
OUTPUT=${OUTPUT:-short}
TIMEOUT=${TIMEOUT:-120}
NK=${NK:-$root/target/release/nk}
DNSMASQ=${DNSMASQ:-/usr/sbin/dnsmasq}
DIG=${DIG:-dig}
FLOOR=${FLOOR:-1}
NAME=bench.example.test
ADDR=192.0.2.10
BAR=10
out_md=$here/results/07_resolve.md

. "$here/lib.sh" # log, free_port_udp, wait_bound_udp, stats, ratio, nk_lacks, need_tools, nk_rows, work_dir

[[ $N =~ ^[1-9][0-9]*$ && $RUNS =~ ^[1-9][0-9]*$ ]] && ((RUNS <= N)) ||
    { log "07_resolve: N and RUNS must be positive integers, RUNS <= N"; exit 1; }
[[ $OUTPUT == short || $OUTPUT == full ]] || { log "07_resolve: OUTPUT must be short or full"; exit 1; }

# The reference tools: skip (exit 0) when absent; nothing is installed from here.
if ! command -v "$DIG" >/dev/null; then
    log "07_resolve: skipped: $DIG not found (apt-get install -y bind9-dnsutils)"; exit 0
fi
if [[ ! -x $DNSMASQ ]]; then
    log "07_resolve: skipped: $DNSMASQ not found (apt-get install -y dnsmasq-base)"; exit 0
fi
need_tools 07_resolve ss timeout awk

nk_why=$(nk_lacks resolve)
nk_rows 07_resolve

dns_pid="" # timeout(1) wrapping dnsmasq; TERM to it is passed on to dnsmasq
stop_dns() { stop_pidvar dns_pid; }
work_dir 07 stop_dns

# ---------------------------------------------------------------- dnsmasq
# Lives at most as long as the whole run can take (a safety net if this script is killed).
life=$(((2 * RUNS + 4) * TIMEOUT + 60))
port=""
for ((try = 0; try < 5; try++)); do
    p=$(free_port_udp) || break
    [[ -z $(ss -Htan "( sport = :$p or dport = :$p )" 2>/dev/null) ]] || continue # TCP too
    timeout -k 5 "$life" "$DNSMASQ" -k -C /dev/null --pid-file= --log-facility=- \
        --port="$p" --listen-address=127.0.0.1 --bind-interfaces \
        --no-resolv --no-hosts --local=/example.test/ --host-record="$NAME,$ADDR" \
        </dev/null >/dev/null 2>"$work/dnsmasq.err" &
    dns_pid=$!
    if wait_bound_udp "$p" "$dns_pid"; then port=$p; break; fi
    log "07_resolve: dnsmasq did not start on port $p: $(tail -c 300 "$work/dnsmasq.err" | tr '\n' ' ')"
    stop_dns
done
[[ -n $port ]] || { log "07_resolve: could not start dnsmasq"; exit 1; }

# Wait (bounded, ~10 s) until it answers the test name.
deadline=$((SECONDS + 10)) ans=""
while ((SECONDS < deadline)); do
    ans=$("$DIG" +short +time=1 +tries=1 @127.0.0.1 -p "$port" "$NAME" A 2>/dev/null)
    [[ $ans == "$ADDR" ]] && break
    kill -0 "$dns_pid" 2>/dev/null || break
    sleep 0.05
done
if [[ $ans != "$ADDR" ]]; then
    log "07_resolve: dnsmasq on 127.0.0.1:$port does not answer $NAME A (got '${ans//$'\n'/ }'): $(tail -c 300 "$work/dnsmasq.err" | tr '\n' ' ')"
    exit 1
fi
log "07_resolve: dnsmasq ($("$DNSMASQ" --version | head -1 | awk '{print $3}')) answering on 127.0.0.1:$port"

# ---------------------------------------------------------------- commands
sflag_nk=() sflag_dig=()
[[ $OUTPUT == short ]] && sflag_nk=(--short) sflag_dig=(+short)
# cmd_of TOOL -> sets the array CMD
cmd_of() {
    case $1 in
    nk) CMD=("$NK" resolve -t A "$NAME" --server "127.0.0.1:$port" "${sflag_nk[@]}") ;;
    dig) CMD=("$DIG" "${sflag_dig[@]}" @127.0.0.1 -p "$port" "$NAME" A) ;;
    true) CMD=(/bin/true) ;;
    esac
}
shown() { cmd_of "$1"; local s="${CMD[*]}"; s=${s/#$NK/nk}; s=${s/#$DIG/dig}; s=${s//:$port/:P}; echo "${s//-p $port/-p P}"; }

# check_out TOOL FILE COUNT -> "" when FILE holds exactly COUNT answers and nothing wrong,
# else why not. short: every line is ADDR. full: COUNT lines "NAME. TTL IN A ADDR" (any
# whitespace), and no other A record for NAME (dig's full output has other lines too).
check_out() {
    [[ $1 == true ]] && { [[ -s $2 ]] && echo "unexpected output"; return; }
    awk -v mode="$OUTPUT" -v name="$NAME." -v addr="$ADDR" -v want="$3" '
        mode == "short" { if ($0 == addr) good++; else { bad++; if (!ex) ex = $0 } ; next }
        NF == 5 && $1 == name && $3 == "IN" && $4 == "A" { if ($5 == addr) good++; else { bad++; if (!ex) ex = $0 } }
        END { if (good != want || bad) printf "%d of %d answers right, %d wrong%s\n", good + 0, want, bad + 0, (ex != "" ? " (e.g. \"" ex "\")" : "") }' "$2"
}

# ---------------------------------------------------------------- verification
tools=(dig)
((have_nk)) && tools=(nk dig)
((FLOOR)) && tools+=(true)
declare -A VERIFY SECS CNT ROUND_MS FAILS
status=0
for t in "${tools[@]}"; do
    proc_verify "$t" "$work/v.out"
    [[ $t == true ]] || log "07_resolve: verify $t: ${VERIFY[$t]}; output: $(grep -v -e '^;' -e '^$' "$work/v.out" | tr '\t\n' '  ' | tail -c 300)"
done

# ---------------------------------------------------------------- timed runs
run_tools=()
for t in "${tools[@]}"; do [[ ${VERIFY[$t]} == ok ]] && run_tools+=("$t"); done
proc_rounds 07_resolve "${run_tools[@]}"

if ! kill -0 "$dns_pid" 2>/dev/null; then
    log "07_resolve: dnsmasq died during the run: $(tail -c 300 "$work/dnsmasq.err" | tr '\n' ' ')"
    status=1
fi

# ---------------------------------------------------------------- table
nk_ms=$(per_ms nk) dig_ms=$(per_ms dig)
valid=1
[[ $have_nk == 1 && ${VERIFY[nk]:-} == ok && -z ${FAILS[nk]:-} && ${VERIFY[dig]:-} == ok && -z ${FAILS[dig]:-} ]] || valid=0
# Per-round ratios (same round, same conditions): median (min-max).
round_ratio=""
if ((valid)); then
    read -ra a <<<"${ROUND_MS[dig]}"; read -ra b <<<"${ROUND_MS[nk]}"
    rr=""
    for ((i = 0; i < ${#a[@]} && i < ${#b[@]}; i++)); do
        rr+="$(awk -v x="${a[$i]}" -v y="${b[$i]}" 'BEGIN { printf "%.2f", x / y }') "
    done
    read -r m lo hi <<<"$(stats "$rr" %.2f)"
    round_ratio="$m ($lo-$hi)"
fi

label() {
    case $1 in
    nk) echo "nk resolve" ;;
    dig) echo "dig" ;;
    true) echo "/bin/true (process floor)" ;;
    esac
}
table=$(
    echo "| tool | command | processes | total s | ms per process | per round ms, median (min-max) | dig / nk | answers verified |"
    echo "| --- | --- | --- | --- | --- | --- | --- | --- |"
    for t in nk dig true; do
        [[ $t == true ]] && ((FLOOR == 0)) && continue
        r=""
        if [[ $t == nk && $have_nk == 0 ]]; then
            echo "| nk resolve | \`nk resolve -t A $NAME --server 127.0.0.1:P\` | - | $nk_why | | | | |"
            continue
        fi
        if [[ $t == nk ]]; then
            if ((valid)); then
                r="$(ratio "$dig_ms" "$nk_ms" "$BAR")"
                [[ -n $round_ratio ]] && r+="; per round $round_ratio"
            else
                r="INVALID"
            fi
        fi
        proc_row "$t" "$r"
    done
)

{
    echo "# 07_resolve: $N sequential processes per tool, one A query each, same dnsmasq on 127.0.0.1"
    echo
    echo "$(date -u '+%Y-%m-%d %H:%M UTC'), $(uname -r), $(nproc) CPUs, load $(cut -d' ' -f1 /proc/loadavg); nk: $NK$( ((have_nk)) || echo " ($nk_why)"); $("$DIG" -v 2>&1 | head -1); dnsmasq $("$DNSMASQ" --version | head -1 | awk '{print $3}'); git $(git -C "$root" rev-parse --short HEAD 2>/dev/null || echo none)"
    echo
    echo "$table"
    echo
    if [[ $OUTPUT == short ]]; then
        echo "Output mode: short for both (nk --short, dig +short): each prints only \`$ADDR\`."
    else
        echo "Output mode: full for both (nk's answer line, dig's default report)."
    fi
    echo "dnsmasq -k -C /dev/null --no-resolv --no-hosts --local=/example.test/ --host-record=$NAME,$ADDR on 127.0.0.1:P."
    echo "A plain bash loop starts the processes one after the other (stdout to a file, no per-process"
    echo "wrapper); total s = wall time of the loops. $RUNS rounds of about $((N / RUNS)) per tool, order alternating."
    echo "Every process exited 0 and printed the right answer unless FAILED is shown."
    echo "Bar: dig time / nk time >= ${BAR}x per process (dig / nk column; per round = the same ratio in each round)."
} >"$work/out.md"
finish "$out_md"
