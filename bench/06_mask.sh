#!/usr/bin/env bash
# 06_mask: `nk mask` on N networks from stdin (one process) vs `ipcalc` once per network, the
# way it is used in shell loops. ipcalc is timed on a sample (SAMPLE, default 300) and its
# per-network cost is reported; the ratio is per network.
# Then aggregation: `nk mask --merge` of MERGE_N (100,000) random /24s of 10.0.0.0/8 (about
# half of them repeats, most touching others) vs Python's ipaddress.collapse_addresses,
# Debian's aggregate(1) and iprange(1), best of RUNS (3) each; every output must be the same
# bytes as nk's. Needs: ipcalc, aggregate, iprange (apt-get install ipcalc aggregate iprange).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
NK=${NK:-$here/../target/release/nk}
N=${N:-100000}
SAMPLE=${SAMPLE:-300}
MERGE_N=${MERGE_N:-100000}
RUNS=${RUNS:-3}
for tool in ipcalc aggregate iprange; do
    command -v "$tool" >/dev/null || { echo "06_mask: $tool missing (apt-get install $tool)" >&2; exit 1; }
done
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
# Aggregation.
python3 - "$MERGE_N" >"$work/slash24" <<'PY'
import random, sys
rng = random.Random(24)
for _ in range(int(sys.argv[1])):
    print(f"10.{rng.randrange(256)}.{rng.randrange(256)}.0/24")
PY
cat >"$work/collapse.py" <<'PY'
import ipaddress, sys
nets = [ipaddress.ip_network(line.strip()) for line in sys.stdin if line.strip()]
sys.stdout.write("".join(f"{n}\n" for n in ipaddress.collapse_addresses(nets)))
PY
# best_of NAME CMD...: runs CMD RUNS times (stdin the /24s, stdout $work/NAME.out), prints
# the fastest wall time in seconds.
best_of() {
    local name=$1 best="" t0 t1 s i
    shift
    for ((i = 0; i < RUNS; i++)); do
        t0=$EPOCHREALTIME
        timeout 300 "$@" <"$work/slash24" >"$work/$name.out"
        t1=$EPOCHREALTIME
        s=$(echo "$t1 - $t0" | bc -l)
        if [[ -z $best ]] || (( $(echo "$s < $best" | bc -l) )); then best=$s; fi
    done
    echo "$best"
}
merge_nk=$(best_of nk "$NK" mask --merge)
merge_py=$(best_of py python3 "$work/collapse.py")
merge_ag=$(best_of aggregate aggregate -q)
merge_ir=$(best_of iprange iprange)
for other in py aggregate iprange; do
    cmp -s "$work/nk.out" "$work/$other.out" || { echo "06_mask: $other's aggregate differs from nk's" >&2; exit 1; }
done
blocks=$(wc -l <"$work/nk.out")
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
    echo
    echo "## --merge: $MERGE_N random /24s of 10.0.0.0/8 -> $blocks blocks (identical output from all four), best of $RUNS"
    echo
    echo "| tool | s | tool time / nk time |"
    echo "| --- | --- | --- |"
    printf '| nk mask --merge | %.3f | 1 |\n' "$merge_nk"
    for row in "python3 collapse_addresses:$merge_py" "aggregate -q:$merge_ag" "iprange:$merge_ir"; do
        printf '| %s | %.3f | %.2f |\n' "${row%%:*}" "${row##*:}" "$(echo "${row##*:} / $merge_nk" | bc -l)"
    done
} | tee "$here/results/06_mask.md"
