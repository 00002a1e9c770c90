#!/usr/bin/env bash
# 19_fping_sweep.sh - a /24 sweep with 3 live hosts: `nk ping -g` vs Debian's fping 5.1 with
# its default options (10 ms between requests, 3 retries with backoff), same namespace, same run.
#
#   nk     nk ping -g 10.99.0.0/24           (one request per host, -W 1s, 1 ms apart)
#   fping  fping -g 10.99.0.0/24             (defaults)
#
# The sweep happens inside a private network namespace: the script re-executes itself under
# `unshare -n` (root), brings `lo` up, gives lo the addresses 10.99.0.10, .77 and .200, and
# routes the rest of 10.99.0.0/24 to lo, where nobody answers and no error comes back (the
# silent hosts of a real sweep). No packet leaves the namespace.
#
# Per run: wall time ($EPOCHREALTIME before and after, the tool under timeout(1)), and the
# set of hosts the tool reports alive (`ADDR is alive` lines), which must be exactly the three
# live ones for both tools; a run that finds another set fails. RUNS rounds, the tools' order
# alternating.
# Env: RUNS=5 TIMEOUT=60 NK=<nk binary> FPING=fping
# Exit: 0 all runs clean (also when skipped: not root, or no fping); 1 a run failed.
# Bar (printed, not enforced): nk wall time <= 0.5x fping's (medians), same hosts found.
set -uo pipefail
export LC_ALL=C

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/.." && pwd)
RUNS=${RUNS:-5}
TIMEOUT=${TIMEOUT:-60}
NK=${NK:-$root/target/release/nk}
FPING=${FPING:-fping}
out_md=$here/results/19_fping_sweep.md
live="10.99.0.10 10.99.0.200 10.99.0.77"

. "$here/lib.sh" # log, stats, TO, need_tools, work_dir

command -v "$FPING" >/dev/null || { log "19_fping_sweep: skipped: no $FPING (apt-get install -y fping)"; exit 0; }
[[ -x $NK ]] || { log "19_fping_sweep: no nk at $NK (cargo build --release)"; exit 1; }
if [[ -z ${NK_BENCH19_IN_NETNS:-} ]]; then
    [[ $(id -u) -eq 0 ]] || { log "19_fping_sweep: skipped: needs root (unshare -n)"; exit 0; }
    need_tools 19_fping_sweep unshare ip timeout awk
    NK_BENCH19_IN_NETNS=1 exec unshare -n bash "${BASH_SOURCE[0]}" "$@"
fi
ip link set lo up
ip route add 10.99.0.0/24 dev lo
for host in $live; do ip addr add "$host/32" dev lo; done

work_dir 19
rc=0
declare -A wall
run_tool() { # TOOL -> appends to wall[TOOL]; returns 1 on a failed run
    local tool=$1 t0 t1 out=$work/$1.out found
    t0=$EPOCHREALTIME
    if [[ $tool == nk ]]; then
        TO "$NK" ping -g 10.99.0.0/24 >"$out" 2>&1
    else
        TO "$FPING" -g 10.99.0.0/24 >"$out" 2>&1
    fi
    t1=$EPOCHREALTIME
    found=$(awk '/ is alive$/ { print $1 }' "$out" | sort | tr '\n' ' ')
    if [[ $found != "$live " ]] || [[ $(grep -c ' is unreachable$' "$out") != 251 ]]; then
        log "19_fping_sweep: $tool found [$found], want [$live]:"; head -20 "$out" >&2; return 1
    fi
    wall[$tool]+=" $(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.3f", b - a }')"
}

for ((r = 0; r < RUNS; r++)); do
    order=(nk fping); ((r % 2)) && order=(fping nk)
    for tool in "${order[@]}"; do run_tool "$tool" || rc=1; done
done

{
    echo "## 19_fping_sweep: 10.99.0.0/24, 3 live hosts, private netns (RUNS=$RUNS, median min max)"
    echo
    echo "| tool | wall s | hosts found |"
    echo "| --- | --- | --- |"
    for tool in nk fping; do
        echo "| $tool | $(stats "${wall[$tool]:-}" %.3f) | $live |"
    done
    w_nk=$(stats "${wall[nk]:-}" %.3f | cut -d' ' -f1)
    w_fp=$(stats "${wall[fping]:-}" %.3f | cut -d' ' -f1)
    echo
    echo "wall time nk / fping (medians): $(awk -v a="$w_nk" -v b="$w_fp" 'BEGIN { if (b > 0) printf "%.2fx", a / b; else print "-" }') (bar: <= 0.5x)"
} | tee "$out_md"
exit "$rc"
