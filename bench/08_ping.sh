#!/usr/bin/env bash
# 08_ping.sh - flood ping over the loopback: `nk ping -f -c COUNT` vs iputils `ping -f -c COUNT`,
# to 127.0.0.1 (the bar) and ::1 (reported only).
#
#   nk       nk ping -f -c COUNT HOST
#   iputils  ping -f -c COUNT HOST          (Debian iputils-ping)
#
# Needs root: flood without -i (interval below 2 ms) is refused to other users by both tools,
# and the run happens inside a private network namespace: the script re-executes itself under
# `unshare -n` and brings `lo` up, so the raw ICMP sockets see only the benchmark's own
# packets (a raw ICMP socket gets a copy of every ICMP packet in its namespace: somebody else's
# ping on the host would otherwise add to both tools' work). In a fresh namespace
# net.ipv4.ping_group_range is "1 0", so both tools fall back from an ICMP datagram socket to
# a raw one (SOCKET=dgram widens the range inside the namespace, so both use datagram sockets).
# Not root, or iputils ping missing: the script logs why and exits 0 (nothing is installed).
#
# Per run: wall time from $EPOCHREALTIME just before to just after the command, taken inside a
# `bash -c` that runs under timeout(1) (so timeout's own start is not counted), stdout to a
# file, stdin /dev/null; CPU = user+sys of the tool (bash `times`). From the output: the
# summary line (transmitted, received, errors, duplicates, loss, the tool's own `time`), the rtt
# line, and the flood line ('.' per request, "\b \b" per reply: both counts must match the
# summary). A run fails when the tool exits non-zero, times out, prints no summary, sends other
# than COUNT requests, or its flood characters disagree with its summary; loss alone is
# reported, not a failure. Before the timed runs, one untimed run per tool and host (warm-up
# and check): nk's output, digits masked, must have the same lines as iputils' (a difference
# is shown, not failed). RUNS rounds; each round runs both tools on every host, the order of the
# tools alternating from round to round.
# SYSCALLS=1 (default when strace is there): one more, untimed, run per tool and host under
# `strace -f -C`: system calls per request and which ICMP socket the tool opened.
#
# Env: RUNS=5 COUNT=10000 HOSTS="127.0.0.1 ::1" TIMEOUT=60 (seconds, per run) NK=<nk binary>
#      PING=/usr/bin/ping SOCKET=raw|dgram NETNS=1 (0: the host's network and its own
#      ping_group_range; SOCKET is then ignored) SYSCALLS=1|0
# Exit: 0 all runs clean (also when skipped: not root, or no iputils ping); 1 a run failed;
#       2 nk missing or its --help lists no `ping` command (iputils rows only).
# Bars (printed, not enforced), 127.0.0.1 only: nk wall time <= 1.1x iputils' (medians), and
# the same loss (nk loses no more packets than iputils over all runs).
set -uo pipefail
export LC_ALL=C

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/.." && pwd)
RUNS=${RUNS:-5}
COUNT=${COUNT:-10000}
HOSTS=${HOSTS:-127.0.0.1 ::1}
TIMEOUT=${TIMEOUT:-60}
NK=${NK:-$root/target/release/nk}
PING=${PING:-/usr/bin/ping}
SOCKET=${SOCKET:-raw}
NETNS=${NETNS:-1}
SYSCALLS=${SYSCALLS:-1}
BAR=1.1
BAR_HOST=127.0.0.1
out_md=$here/results/08_ping.md

. "$here/lib.sh" # log, stats, nk_lacks, need_tools, nk_rows, work_dir

[[ $RUNS =~ ^[1-9][0-9]*$ && $COUNT =~ ^[1-9][0-9]*$ ]] ||
    { log "08_ping: RUNS and COUNT must be positive integers"; exit 1; }
[[ $SOCKET == raw || $SOCKET == dgram ]] || { log "08_ping: SOCKET must be raw or dgram"; exit 1; }
[[ $NETNS == 0 || $NETNS == 1 ]] || { log "08_ping: NETNS must be 0 or 1"; exit 1; }
read -ra hosts <<<"$HOSTS"
((${#hosts[@]})) || { log "08_ping: HOSTS is empty"; exit 1; }

# ---------------------------------------------------------------- outside: checks, re-exec
if [[ ${NK_BENCH08_IN_NETNS:-} != 1 ]]; then
    if ((EUID != 0)); then
        log "08_ping: skipped: needs root (flood ping below a 2 ms interval, raw ICMP sockets, unshare -n)"
        exit 0
    fi
    if [[ ! -x $PING ]] || ! "$PING" -V 2>/dev/null | grep -q iputils; then
        log "08_ping: skipped: $PING is not iputils ping (apt-get install -y iputils-ping)"
        exit 0
    fi
    need_tools 08_ping timeout awk sed
    if ((NETNS)); then
        NEED_HINT=" (or run with NETNS=0)" need_tools 08_ping unshare ip sysctl
        unshare -n true 2>/dev/null || { log "08_ping: cannot create a network namespace (unshare -n)"; exit 1; }
        NK_BENCH08_IN_NETNS=1 exec unshare -n bash "${BASH_SOURCE[0]}" "$@"
    fi
fi

# ---------------------------------------------------------------- inside the namespace
if ((NETNS)); then
    ip link set lo up || { log "08_ping: ip link set lo up failed"; exit 1; }
    if [[ $SOCKET == dgram ]]; then
        sysctl -qw net.ipv4.ping_group_range="0 2147483647" ||
            { log "08_ping: cannot set net.ipv4.ping_group_range"; exit 1; }
    fi
fi
group_range=$(tr '\t' ' ' </proc/sys/net/ipv4/ping_group_range 2>/dev/null)
netns_desc="a private network namespace (unshare -n), net.ipv4.ping_group_range $group_range"
((NETNS)) || netns_desc="the host's network namespace (NETNS=0), net.ipv4.ping_group_range $group_range"

nk_why=$(nk_lacks ping)
nk_rows 08_ping
have_strace=0
if ((SYSCALLS)); then
    if command -v strace >/dev/null; then have_strace=1; else log "08_ping: no strace: syscall counts skipped"; fi
fi

work_dir 08

# ---------------------------------------------------------------- commands
tools=(iputils)
((have_nk)) && tools=(nk iputils)
cmd_of() { # TOOL HOST -> sets the array CMD
    case $1 in
    nk) CMD=("$NK" ping -f -c "$COUNT" "$2") ;;
    iputils) CMD=("$PING" -f -c "$COUNT" "$2") ;;
    esac
}
shown() { cmd_of "$1" "$2"; local s="${CMD[*]}"; s=${s/#$NK/nk}; echo "${s/#$PING/ping}"; }

# parse_out FILE -> prints "tx rx dups errors loss% self_ms dots replies other" on one line
# and the rtt line (or "-") on the next. Fields it cannot find are "-". The flood characters
# are everything between the header (line 1) and the "--- HOST ping statistics ---" line.
parse_out() {
    awk -v bs="$(printf '\b')" '
        BEGIN { tx = rx = loss = self = "-"; dups = errs = 0; rtt = "-"; fl = ""; instats = 0 }
        NR == 1 { next }
        /^--- .* ping statistics ---$/ { instats = 1; next }
        !instats { fl = fl $0; next }
        / packets transmitted, / {
            tx = $1
            for (i = 2; i <= NF; i++) {
                if ($i ~ /^received,?$/) rx = $(i - 1)
                if ($i ~ /^duplicates,?$/) { dups = $(i - 1); sub(/^\+/, "", dups) }
                if ($i ~ /^errors,?$/) { errs = $(i - 1); sub(/^\+/, "", errs) }
                if ($i == "packet" && $(i + 1) ~ /^loss/) { loss = $(i - 1); sub(/%$/, "", loss) }
                if ($i == "time") { self = $(i + 1); sub(/ms$/, "", self) }
            }
            next
        }
        /^rtt / { rtt = $0 }
        END {
            replies = gsub(bs " " bs, "", fl)
            dots = gsub(/\./, "", fl)
            printf "%s %s %s %s %s %s %d %d %d\n", tx, rx, dups, errs, loss, self, dots, replies, length(fl)
            print rtt
        }' "$1"
}

# skeleton FILE -> the output's lines without the flood line, digit runs masked as N, and
# without the rtt line's optional ", pipe N" (both tools print it when a reply was late
# enough for a second request to go out first: it depends on the run, not on the tool)
skeleton() {
    awk 'NR == 1 { print; next } /^--- .* ping statistics ---$/ { on = 1 } on' "$1" |
        sed -E 's/, pipe [0-9]+//; s/[0-9]+/N/g'
}

# run_one TOOL HOST -> sets R_WALL, R_CPU (ms), R_TX, R_RX, R_LOSS (%), R_LOST, R_SELF (ms),
# R_RTT, R_MSG ("" when clean), R_NOTE (loss, errors, duplicates: reported, not failed).
# The output stays in $work/out, stderr in $work/err.
run_one() {
    local t=$1 h=$2 rc=0 t0 t1 line dups errs dots replies other cu cs
    R_WALL="" R_CPU="" R_TX="" R_RX="" R_LOSS="" R_LOST="" R_SELF="" R_RTT="" R_MSG="" R_NOTE=""
    cmd_of "$t" "$h"
    rm -f "$work/res" "$work/out" "$work/err"
    # shellcheck disable=SC2016
    timeout -k 5 "$TIMEOUT" bash -c '
        res=$1 out=$2 err=$3; shift 3
        t0=$EPOCHREALTIME
        "$@" </dev/null >"$out" 2>"$err"; rc=$?
        t1=$EPOCHREALTIME
        times >"$res.times" # no pipe or $(...): a subshell would report its own times
        echo "$rc $t0 $t1 $(tail -n 1 "$res.times")" >"$res"' _ "$work/res" "$work/out" "$work/err" "${CMD[@]}" \
        </dev/null >/dev/null 2>&1
    rc=$?
    if [[ ! -s $work/res ]]; then
        R_MSG="exit $rc (124 = timeout after ${TIMEOUT}s); stderr: $(tail -c 200 "$work/err" 2>/dev/null | tr '\n' ' ')"
        return
    fi
    read -r rc t0 t1 cu cs <"$work/res" # cu/cs: children's user/sys, as "0m0.041s"
    R_WALL=$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.1f", (b - a) * 1000 }')
    R_CPU=$(awk -v u="$cu" -v s="$cs" 'function ms(x, a) { split(x, a, /[ms]/); return (a[1] * 60 + a[2]) * 1000 }
        BEGIN { printf "%.0f", ms(u) + ms(s) }')
    { read -r R_TX R_RX dups errs R_LOSS R_SELF dots replies other; read -r R_RTT; } < <(parse_out "$work/out")
    local why=()
    ((rc == 0)) || why+=("exit $rc")
    if [[ $R_TX == - || $R_RX == - ]]; then
        why+=("no summary line")
    else
        [[ $R_TX == "$COUNT" ]] || why+=("$R_TX transmitted, not $COUNT")
        ((dots == R_TX)) || why+=("$dots '.' for $R_TX requests")
        ((replies == R_RX + dups)) || why+=("$replies '\\b \\b' for $R_RX replies + $dups duplicates")
        ((other == 0 || errs > 0)) || why+=("$other other characters on the flood line")
        R_LOST=$((R_TX - R_RX))
        ((R_RX == COUNT)) || R_NOTE+="only $R_RX received ($R_LOSS% loss); "
        ((errs == 0)) || R_NOTE+="+$errs errors; "
        ((dups == 0)) || R_NOTE+="+$dups duplicates; "
    fi
    ((${#why[@]})) && { R_MSG=$(printf '%s; ' "${why[@]}"); R_MSG=${R_MSG%; }; }
    [[ -n $R_MSG && -s $work/err ]] && R_MSG+="; stderr: $(tail -c 200 "$work/err" | tr '\n' ' ')"
    R_NOTE=${R_NOTE%; }
}

# ---------------------------------------------------------------- verification / warm-up
declare -A VERIFY SKEL_DIFF WALL CPU SELF LOST TXS RXS FAILS NOTES PERRUN SYSC SOCK
status=0
for h in "${hosts[@]}"; do
    for t in iputils nk; do
        [[ " ${tools[*]} " == *" $t "* ]] || continue
        run_one "$t" "$h"
        if [[ -n $R_MSG ]]; then
            VERIFY[$t,$h]="FAIL: $R_MSG"; status=1
        else
            VERIFY[$t,$h]=ok
            skeleton "$work/out" >"$work/skel.$t"
        fi
        log "08_ping: verify $(shown "$t" "$h"): ${VERIFY[$t,$h]}; ${R_WALL:-?} ms; $(tail -n 2 "$work/out" 2>/dev/null | tr '\n' ' ')"
    done
    if [[ ${VERIFY[nk,$h]:-} == ok && ${VERIFY[iputils,$h]:-} == ok ]] &&
        ! diff -q "$work/skel.iputils" "$work/skel.nk" >/dev/null; then
        SKEL_DIFF[$h]=$(diff "$work/skel.iputils" "$work/skel.nk" | grep '^[<>]' | head -4 | tr '\n' ' ')
        log "08_ping: $h: nk's output lines differ from iputils' (digits masked): ${SKEL_DIFF[$h]}"
    fi
done

# ---------------------------------------------------------------- timed runs
for ((r = 1; r <= RUNS; r++)); do
    order=("${tools[@]}")
    ((r % 2 == 0 && ${#tools[@]} == 2)) && order=("${tools[1]}" "${tools[0]}")
    for h in "${hosts[@]}"; do
        line="08_ping: round $r/$RUNS $h:"
        for t in "${order[@]}"; do
            [[ ${VERIFY[$t,$h]} == ok ]] || continue
            run_one "$t" "$h"
            if [[ -n $R_MSG ]]; then
                FAILS[$t,$h]+="round $r: $R_MSG; "; status=1
                line+=" $t=FAIL ($R_MSG)"
            else
                WALL[$t,$h]+="$R_WALL " CPU[$t,$h]+="$R_CPU " SELF[$t,$h]+="$R_SELF "
                LOST[$t,$h]=$((${LOST[$t,$h]:-0} + R_LOST))
                TXS[$t,$h]=$((${TXS[$t,$h]:-0} + R_TX)) RXS[$t,$h]=$((${RXS[$t,$h]:-0} + R_RX))
                line+=" $t=${R_WALL}ms"
            fi
            [[ -n $R_NOTE ]] && NOTES[$t,$h]+="round $r: $R_NOTE; "
            PERRUN[$h]+="| $r | $t | ${R_WALL:--} | ${R_CPU:--} | ${R_SELF:--} | ${R_TX:--} | ${R_RX:--} | ${R_LOSS:--}% | ${R_RTT#rtt } | ${R_MSG:-ok} |"$'\n'
        done
        log "$line"
    done
done

# ---------------------------------------------------------------- syscall counts (untimed)
# strace -f -C: the trace (for the socket(2) calls) and the per-syscall counts in one file.
if ((have_strace)); then
    for h in "${hosts[@]}"; do
        for t in "${tools[@]}"; do
            [[ ${VERIFY[$t,$h]} == ok ]] || continue
            cmd_of "$t" "$h"
            timeout -k 5 "$((TIMEOUT * 3))" strace -f -C -o "$work/strace" "${CMD[@]}" \
                </dev/null >/dev/null 2>"$work/err"
            SOCK[$t,$h]=$(grep -E 'socket\(AF_INET6?, SOCK_(RAW|DGRAM)[^,]*, IPPROTO_ICMP(V6)?\) = [0-9]' "$work/strace" |
                sed -E 's/.*, (SOCK_(RAW|DGRAM)).*/\1/' | sort -u | tr '\n' ' ')
            SOCK[$t,$h]=${SOCK[$t,$h]% }
            SYSC[$t,$h]=$(awk -v n="$COUNT" '
                /^% time/ { on = 1; next }
                on && /^-/ { next }
                on && $NF == "total" { printf "%s%.2f total", sep, $4 / n; exit }
                on && $4 / n >= 0.01 {
                    printf "%s%s %.2f", sep, $NF, $4 / n; sep = ", "
                    if (NF == 6 && $5 / n >= 0.01) printf " (%.2f failed)", $5 / n }' "$work/strace")
            log "08_ping: strace $t $h: socket ${SOCK[$t,$h]:-?}; per request: ${SYSC[$t,$h]}"
        done
    done
fi

# ---------------------------------------------------------------- tables
fmt3() { # "median min max" -> "123.4 (110.0-130.2)"
    local m lo hi
    read -r m lo hi <<<"$1"
    [[ $m == - ]] && { echo "-"; return; }
    echo "$m ($lo-$hi)"
}
med() { local m; read -r m _ <<<"$(stats "$1" %.1f)"; echo "$m"; }
ratio_le() { # A B BAR -> "1.03 (bar <= 1.1: PASS)"; BAR "" = no bar
    awk -v a="$1" -v b="$2" -v bar="$3" 'BEGIN {
        if (a == "" || b == "" || a == "-" || b == "-" || b == 0) { print "-"; exit }
        r = a / b
        if (bar == "") printf "%.2f", r
        else printf "%.2f (bar <= %.1f: %s)", r, bar, (r <= bar ? "PASS" : "FAIL") }'
}

table=$(
    echo "| host | tool | command | wall ms, median (min-max) | nk / iputils | CPU ms (user+sys), median | own \`time\` ms, median | received / transmitted, all runs | lost | verified |"
    echo "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |"
    for h in "${hosts[@]}"; do
        bar=""; [[ $h == "$BAR_HOST" ]] && bar=$BAR
        valid=0
        [[ $have_nk == 1 && ${VERIFY[nk,$h]:-} == ok && ${VERIFY[iputils,$h]:-} == ok &&
            -z ${FAILS[nk,$h]:-} && -z ${FAILS[iputils,$h]:-} ]] && valid=1
        for t in nk iputils; do
            if [[ $t == nk && $have_nk == 0 ]]; then
                echo "| $h | nk | \`nk ping -f -c $COUNT $h\` | $nk_why | | | | | | |"
                continue
            fi
            r=""
            if [[ $t == nk ]]; then
                if ((valid)); then
                    r=$(ratio_le "$(med "${WALL[nk,$h]}")" "$(med "${WALL[iputils,$h]}")" "$bar")
                    # per-round ratios: same round, same conditions
                    read -ra a <<<"${WALL[nk,$h]}"; read -ra b <<<"${WALL[iputils,$h]}"
                    rr=""
                    for ((i = 0; i < ${#a[@]} && i < ${#b[@]}; i++)); do
                        rr+="$(awk -v x="${a[$i]}" -v y="${b[$i]}" 'BEGIN { printf "%.2f", x / y }') "
                    done
                    r+="; per round $(fmt3 "$(stats "$rr" %.2f)")"
                else
                    r="INVALID"
                fi
            fi
            ver=${VERIFY[$t,$h]:-not run}
            [[ -n ${FAILS[$t,$h]:-} ]] && ver+="; FAILED: ${FAILS[$t,$h]%; }"
            [[ -n ${NOTES[$t,$h]:-} ]] && ver+="; ${NOTES[$t,$h]%; }"
            [[ $t == nk && -n ${SKEL_DIFF[$h]:-} ]] && ver+="; output lines differ from iputils': ${SKEL_DIFF[$h]}"
            lost=${LOST[$t,$h]:-}
            if [[ -n $lost ]]; then
                lost+=" ($(awk -v l="$lost" -v n="${TXS[$t,$h]}" 'BEGIN { printf "%.3g", l * 100 / n }')%)"
                if [[ $t == nk && -n $bar ]] && ((valid)); then
                    ln=${LOST[nk,$h]} li=${LOST[iputils,$h]:-0}
                    if ((ln <= li)); then lost+=" (bar: same loss: PASS)"; else lost+=" (bar: same loss: FAIL)"; fi
                fi
            fi
            rxtx="-"; [[ -n ${TXS[$t,$h]:-} ]] && rxtx="${RXS[$t,$h]} / ${TXS[$t,$h]}"
            echo "| $h | $t | \`$(shown "$t" "$h")\` | $(fmt3 "$(stats "${WALL[$t,$h]:-}" %.1f)") | $r | $(med "${CPU[$t,$h]:-}") | $(med "${SELF[$t,$h]:-}") | $rxtx | ${lost:--} | ${ver//|//} |"
        done
    done
)

{
    echo "# 08_ping: flood ping over the loopback, $COUNT requests: nk ping -f vs iputils ping -f"
    echo
    echo "$(date -u '+%Y-%m-%d %H:%M UTC'), $(uname -r), $(nproc) CPUs, load $(cut -d' ' -f1-3 /proc/loadavg); nk: $NK$( ((have_nk)) || echo " ($nk_why)"); $("$PING" -V | head -1); git $(git -C "$root" rev-parse --short HEAD 2>/dev/null || echo none)"
    echo
    echo "Run as root in $netns_desc. $RUNS rounds; in each, both tools on every host, the order of the tools alternating."
    echo
    echo "$table"
    echo
    echo "Wall ms: \$EPOCHREALTIME just before and after the command (process start and exit included),"
    echo "stdout to a file. CPU ms: the tool's user+sys (bash \`times\`). Own \`time\`: the figure on the"
    echo "tool's summary line (first to last request). Lost = transmitted - received over all runs."
    echo "Verified: one untimed run per tool and host first; every run must exit 0, send $COUNT requests and"
    echo "print one '.' per request and one \"\\b \\b\" per reply (FAIL/FAILED otherwise); loss is reported."
    echo "Bars ($BAR_HOST only): nk / iputils wall time <= ${BAR} (medians; per round = the same ratio in each"
    echo "round), and the same loss: nk loses no more packets than iputils over all runs."
    if ((have_strace)); then
        echo
        echo "System calls per request (one more untimed run per tool and host under \`strace -f -C\`;"
        echo "calls of at least 0.01 per request, and how many of them failed, e.g. EAGAIN; start-up included in the total):"
        echo
        echo "| host | tool | ICMP socket | syscalls per request |"
        echo "| --- | --- | --- | --- |"
        for h in "${hosts[@]}"; do
            for t in "${tools[@]}"; do
                [[ -n ${SYSC[$t,$h]:-} ]] || continue
                echo "| $h | $t | ${SOCK[$t,$h]:-?} | ${SYSC[$t,$h]} |"
            done
        done
    fi
    echo
    echo "Every run:"
    for h in "${hosts[@]}"; do
        echo
        echo "| round | tool ($h) | wall ms | CPU ms | own time ms | transmitted | received | loss | rtt | run |"
        echo "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |"
        printf '%s' "${PERRUN[$h]:-}"
    done
} >"$work/out.md"
finish "$out_md"
