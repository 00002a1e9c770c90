#!/usr/bin/env bash
# 06_mask: `nk mask` on N networks from stdin (one process) vs `ipcalc` once per network, the
# way it is used in shell loops. ipcalc is timed on a sample (SAMPLE, default 300) and its
# per-network cost is reported; the ratio is per network. Needs: ipcalc (apt-get install ipcalc).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
NK=${NK:-$here/../target/release/nk}
N=${N:-100000}
SAMPLE=${SAMPLE:-300}
command -v ipcalc >/dev/null || { echo "06_mask: ipcalc missing (apt-get install ipcalc)" >&2; exit 1; }
[[ -x $NK ]] || { echo "06_mask: nk not found at $NK" >&2; exit 2; }
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
python3 - "$N" >"$work/nets" <<'PY'
import random, sys
rng = random.Random(6)
for _ in range(int(sys.argv[1])):
    a = rng.getrandbits(32)
    print(f"{a >> 24}.{(a >> 16) & 255}.{(a >> 8) & 255}.{a & 255}/{rng.randint(8, 30)}")
PY
t0=$EPOCHREALTIME
timeout 120 "$NK" mask <"$work/nets" >"$work/nk.out"
t1=$EPOCHREALTIME
nk_s=$(echo "$t1 - $t0" | bc -l)
head -n "$SAMPLE" "$work/nets" >"$work/sample"
t0=$EPOCHREALTIME
while read -r net; do timeout 10 ipcalc -n -b "$net" >/dev/null; done <"$work/sample"
t1=$EPOCHREALTIME
ip_s=$(echo "$t1 - $t0" | bc -l)
nk_per=$(echo "$nk_s / $N * 1000000" | bc -l)
ip_per=$(echo "$ip_s / $SAMPLE * 1000000" | bc -l)
ratio=$(echo "$ip_per / $nk_per" | bc -l)
mkdir -p "$here/results"
{
    echo "# 06_mask: per-network cost, nk mask (one process, stdin) vs ipcalc (one process per network)"
    echo
    echo "$(date -u '+%Y-%m-%d %H:%M UTC'), $(nproc) CPUs; nk: $NK; git $(git -C "$here" rev-parse --short HEAD 2>/dev/null)"
    echo
    echo "| tool | networks | total s | µs per network |"
    echo "| --- | --- | --- | --- |"
    printf '| nk mask < file | %d | %.3f | %.1f |\n' "$N" "$nk_s" "$nk_per"
    printf '| ipcalc NET (loop) | %d (sample) | %.3f | %.1f |\n' "$SAMPLE" "$ip_s" "$ip_per"
    echo
    printf 'nk is %.0fx faster per network (no bar; the issue asks for the ratio).\n' "$ratio"
} | tee "$here/results/06_mask.md"
