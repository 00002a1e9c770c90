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
