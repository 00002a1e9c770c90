#!/usr/bin/env bash
# 05_portscan.sh - full TCP port scan (1-65535) of 127.0.0.1 with three open ports:
# nk dial -z vs OpenBSD nc -z vs nmap (SYN scan and connect scan).
#
# Everything runs inside one private network namespace (`unshare -n`, loopback up), so the
# scans meet only the three listeners this script starts there, never the host's own ports.
# The script re-executes itself inside the namespace; needs root (or CAP_SYS_ADMIN +
# CAP_NET_RAW): unshare -n, and nmap's default SYN scan uses raw sockets.
#
# Verification (untimed, once per tool): each tool's list of open ports must be exactly the
# three listeners. OpenBSD `nc -zv` also reports TCP self-connects as open (a connect whose
# ephemeral source port equals the port it scans connects the socket to itself): those extra
# ports are listed as bogus, not counted as a failure of nc. nk or nmap reporting anything
# but the three ports is a failure.
# Timing: hyperfine, RUNS runs (+1 warm-up) per command, no shell (-N); medians compared.
# Bars (printed, not enforced): nk/nmap-SYN <= 1.0 and nk/nc <= 0.5 (time ratios).
#
# Env: RUNS=5 NK=<nk binary> (default: <repo>/target/release/nk) TIMEOUT=300 (seconds, per
#      hyperfine invocation; 60 per verification run) PORTS=p1,p2,p3 (default: random, one
#      in 1-1023, one in 1024-32767, one in 32768-65535) PYTHON=/usr/bin/python3
# Exit: 0 every run clean and nk/nmap found exactly the 3 ports; 1 a run failed or a tool
#       missed a port (or nk/nmap reported an extra one); 2 nk binary missing or without -z.
set -uo pipefail
export LC_ALL=C

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/.." && pwd)
RUNS=${RUNS:-5}
TIMEOUT=${TIMEOUT:-300}
NK=${NK:-$root/target/release/nk}
NC=${NC_BIN:-nc}
PYTHON=${PYTHON:-$(command -v /usr/bin/python3 || command -v python3)}
out_md=$here/results/05_portscan.md

. "$here/lib.sh" # log, TO, stats, need_tools, work_dir

# ---------------------------------------------------------------- outside: checks, re-exec
if [[ ${NK_BENCH05_IN_NETNS:-} != 1 ]]; then
    if ! command -v nmap >/dev/null && ((EUID == 0)) && command -v apt-get >/dev/null; then
        log "05_portscan: nmap missing: apt-get install -y nmap"
        apt-get install -y nmap >&2 || { apt-get update >&2 && apt-get install -y nmap >&2; }
    fi
    need_tools 05_portscan unshare ip "$NC" nmap hyperfine jq timeout awk "$PYTHON"
    "$NC" -h 2>&1 | grep -q OpenBSD || log "05_portscan: warning: $NC is not OpenBSD netcat"
    unshare -n true 2>/dev/null || {
        log "05_portscan: cannot create a network namespace (unshare -n): run as root"
        exit 1
    }
    NK_BENCH05_IN_NETNS=1 exec unshare -n bash "${BASH_SOURCE[0]}" "$@"
fi

# ---------------------------------------------------------------- inside the namespace
ip link set lo up || { log "05_portscan: ip link set lo up failed"; exit 1; }

lpid=""
stop_lpid() { [[ -n $lpid ]] && kill "$lpid" 2>/dev/null && wait "$lpid" 2>/dev/null; }
work_dir 05 stop_lpid

have_nk=1
if [[ ! -x $NK ]]; then
    log "05_portscan: nk binary not found at $NK (set NK=..., or run bench/run): nk rows skipped"
    have_nk=0
elif ! "$NK" dial --help 2>/dev/null | grep -q -- '--scan'; then
    log "05_portscan: $NK has no dial -z/--scan yet: nk rows skipped"
    have_nk=0
fi

# Three listeners that accept and close at once (so no accept queue ever fills up).
"$PYTHON" - "$work/ports" "${PORTS:-}" <<'EOF' &
import os, random, selectors, socket, sys
path, spec = sys.argv[1], sys.argv[2]
if spec:
    ports = [int(p) for p in spec.split(",")]
else:
    ports = [random.randrange(1, 1024), random.randrange(1024, 32768),
             random.randrange(32768, 65536)]
sel = selectors.DefaultSelector()
for p in ports:
    s = socket.socket()
    s.bind(("127.0.0.1", p))
    s.listen(4096)
    s.setblocking(False)
    sel.register(s, selectors.EVENT_READ)
with open(path + ".tmp", "w") as f:
    f.write(" ".join(str(p) for p in sorted(ports)) + "\n")
os.rename(path + ".tmp", path)
while True:
    for key, _ in sel.select():
        try:
            c, _ = key.fileobj.accept()
            c.close()
        except OSError:
            pass
EOF
lpid=$!
for ((i = 0; i < 500; i++)); do
    [[ -s $work/ports ]] && break
    kill -0 "$lpid" 2>/dev/null || { log "05_portscan: the listeners failed to start"; exit 1; }
    sleep 0.01
done
[[ -s $work/ports ]] || { log "05_portscan: the listeners did not come up in 5 s"; exit 1; }
want=$(cat "$work/ports")
log "05_portscan: listening on 127.0.0.1 ports: $want (private network namespace)"

# ---------------------------------------------------------------- the commands
declare -A CMD LABEL FOUND NOTE TIME
tools=(nc nmap-syn nmap-connect)
((have_nk)) && tools=(nk "${tools[@]}")
CMD[nk]="$NK dial -z 127.0.0.1 1-65535"
CMD[nc]="$NC -z -w1 127.0.0.1 1-65535"
CMD[nmap-syn]="nmap -p- -T4 127.0.0.1"
CMD[nmap-connect]="nmap -sT -p- -T4 127.0.0.1"
LABEL[nk]="nk dial -z 127.0.0.1 1-65535"
LABEL[nc]="nc -z -w1 127.0.0.1 1-65535"
LABEL[nmap-syn]="nmap -p- -T4 127.0.0.1"
LABEL[nmap-connect]="nmap -sT -p- -T4 127.0.0.1"
declare -A NAME=([nk]="nk" [nc]="nc (OpenBSD)" [nmap-syn]="nmap SYN scan" [nmap-connect]="nmap connect scan")

# One untimed run of tool $1; sets RC (its exit status) and GOT (the open ports it reported,
# space-separated, ascending).
verify_run() {
    local parse
    case $1 in
    nk)
        TO "$NK" dial -z -v 127.0.0.1 1-65535 >"$work/out" 2>"$work/err"; RC=$?
        parse=$(awk '$3 == "open" { split($2, a, "/"); print a[1] }' "$work/out") ;;
    nc)
        # nc reports only with -v, on stderr.
        TO "$NC" -zv -w1 127.0.0.1 1-65535 >"$work/out" 2>"$work/err"; RC=$?
        parse=$(sed -n 's/^Connection to [^ ]* \([0-9]*\) port .*succeeded.*/\1/p' "$work/err") ;;
    nmap-syn | nmap-connect)
        local sT=(); [[ $1 == nmap-connect ]] && sT=(-sT)
        TO nmap "${sT[@]}" -p- -T4 -oG - 127.0.0.1 >"$work/out" 2>"$work/err"; RC=$?
        parse=$(grep -o 'Ports: .*' "$work/out" | sed 's/^Ports: //; s/\t.*//' | tr ',' '\n' |
            awk -F/ '$2 == "open" { gsub(/ /, "", $1); print $1 }') ;;
    esac
    GOT=$(sort -n <<<"$parse" | grep -v '^$' | tr '\n' ' ')
    GOT=${GOT% }
}
only_in() { # "a b c" "b" -> "a c" (words of $1 not in $2)
    local w out=""
    for w in $1; do [[ " $2 " == *" $w "* ]] || out+="$w "; done
    echo "${out% }"
}

status=0
for t in "${tools[@]}"; do
    verify_run "$t"
    FOUND[$t]=$GOT
    missing=$(only_in "$want" "$GOT")
    extra=$(only_in "$GOT" "$want")
    probs=()
    ((RC == 0)) || probs+=("FAIL: exit $RC (124 = timeout); stderr: $(tail -c 300 "$work/err" | tr '\n' ' ')")
    [[ -n $missing ]] && probs+=("FAIL: missed $missing")
    if [[ -n $extra && $t == nc ]]; then
        probs+=("bogus open: $extra (TCP self-connect: nothing listens there)")
    elif [[ -n $extra ]]; then
        probs+=("FAIL: reported open but nothing listens: $extra")
    fi
    note="ok"
    ((${#probs[@]})) && { note=$(printf '%s; ' "${probs[@]}"); note=${note%; }; }
    [[ $note == *FAIL* ]] && status=1
    [[ $note != ok && $note != *FAIL* ]] && note="ok; $note" # nc's self-connects only
    [[ $t == nk ]] && log "05_portscan: nk -v: $(grep 'scanned' "$work/err" | tail -1)"
    NOTE[$t]=$note
    log "05_portscan: verify $t: found [$GOT]: $note"
done

# ---------------------------------------------------------------- timed runs
for t in "${tools[@]}"; do
    log "05_portscan: hyperfine $RUNS runs: ${CMD[$t]}"
    if TO hyperfine -N --style basic --warmup 1 --runs "$RUNS" \
        --export-json "$work/$t.json" "${CMD[$t]}" >&2; then
        TIME[$t]=$(jq -r '.results[0] | "\(.median) \(.min) \(.max)"' "$work/$t.json")
    else
        NOTE[$t]+="; FAILED timed runs (hyperfine exit $?)"
        status=1
    fi
done

# ---------------------------------------------------------------- table
fmt() { # "median min max" -> "1.234 (1.100-1.300)"
    [[ -z $1 ]] && { echo "-"; return; }
    awk '{ printf "%.3f (%.3f-%.3f)", $1, $2, $3 }' <<<"$1"
}
ratio() { # nk-median tool-median bar -> "0.42 (bar <= 0.5: PASS)"; bar "" = no bar
    awk -v a="$1" -v b="$2" -v bar="$3" 'BEGIN {
        if (a == "" || b == "" || b == 0) { print "-"; exit }
        r = a / b
        if (bar == "") printf "%.2f", r
        else printf "%.2f (bar <= %.1f: %s)", r, bar, (r <= bar ? "PASS" : "FAIL") }'
}
med() { local m=${TIME[$1]:-}; echo "${m%% *}"; }

table=$(
    echo "| tool | command | median s (min-max) | nk / tool | open ports found |"
    echo "| --- | --- | --- | --- | --- |"
    for t in nk nc nmap-syn nmap-connect; do
        r="" bar=""
        case $t in nc) bar=0.5 ;; nmap-syn) bar=1.0 ;; esac
        if [[ $t == nk ]]; then
            if ((have_nk)); then val=$(fmt "${TIME[nk]:-}"); else val="not built"; fi
        else
            val=$(fmt "${TIME[$t]:-}")
            ((have_nk)) && r=$(ratio "$(med nk)" "$(med "$t")" "$bar")
            [[ $have_nk == 1 && ${NOTE[nk]:-} != ok ]] && r="INVALID (nk's scan not verified)"
        fi
        found="${FOUND[$t]:-} (${NOTE[$t]:-not run})"
        echo "| ${NAME[$t]} | \`${LABEL[$t]}\` | $val | $r | ${found//|//} |"
    done
)

{
    echo "# 05_portscan: TCP scan of 127.0.0.1 ports 1-65535, 3 open, private network namespace"
    echo
    echo "$(date -u '+%Y-%m-%d %H:%M UTC'), $(uname -r), $(nproc) CPUs; nk: $NK$( ((have_nk)) || echo ' (missing)'); $(nmap --version | head -1); git $(git -C "$root" rev-parse --short HEAD 2>/dev/null || echo none)"
    echo
    echo "Listening: $want. hyperfine -N, $RUNS runs after 1 warm-up, wall seconds."
    echo
    echo "$table"
    echo
    echo "Bars: nk/nmap SYN scan <= 1.0 and nk/nc <= 0.5 (time ratios, medians). nk/nmap -sT for reference."
    echo "Open ports: from one untimed run per tool (nc with -zv, nmap with -oG -, nk with -v)."
} >"$work/out.md"
finish "$out_md"
