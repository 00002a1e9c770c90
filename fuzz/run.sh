#!/usr/bin/env bash
# Runs every fuzz target for SECONDS each (default 10), after its committed seeds, and prints
# the executions per target. Any crash, leak or timeout fails the run (exit 1); the input that
# found it is left in fuzz/artifacts/TARGET/. Only the stable toolchain is needed:
# RUSTC_BOOTSTRAP=1 lets it build with the nightly flags cargo-fuzz passes (sanitizers).
#   fuzz/run.sh 10            # every target, 10 s each (CI)
#   fuzz/run.sh 600 dns x509  # named targets only
#   RUNS=10000000 fuzz/run.sh # every target for that many executions instead of a time
#   TIMEOUT=600 ...           # seconds one input may take before it counts as a hang (default
#                             # 10); raise it for long runs that are paused (SIGSTOP) at times,
#                             # since libFuzzer counts a paused input's wall time as its own
#   SANITIZER=leak ...        # LeakSanitizer alone instead of AddressSanitizer (the default):
#                             # leaks are still found, at 3-8x the executions per second; the
#                             # parsers under src/wire hold no `unsafe`, so ASan's memory checks
#                             # have little to catch there. Used for the 10-million runs.
set -euo pipefail
cd "$(dirname "$0")"
seconds="${1:-10}"
shift || true
export RUSTC_BOOTSTRAP=1
# With RUST_BACKTRACE=1 in the environment, anyhow captures a backtrace for every error it
# makes, and the parsers return many: that halved the addr target's executions per second.
# A panic (a finding) still prints its backtrace.
export RUST_LIB_BACKTRACE=0
if ! cargo fuzz --version >/dev/null 2>&1; then
  cargo install --locked cargo-fuzz
fi
targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
  mapfile -t targets < <(cargo fuzz list)
fi
sanitizer=(-s "${SANITIZER:-address}")
cargo fuzz build "${sanitizer[@]}"
failed=()
printf '%-14s %12s %8s %s\n' target executions exec/s result
for target in "${targets[@]}"; do
  mkdir -p "corpus/$target" "seeds/$target"
  log="$(mktemp)"
  # -rss_limit_mb and -timeout: a leak or a hang is a failure too.
  limit=(-max_total_time="$seconds")
  [ -n "${RUNS:-}" ] && limit=(-runs="$RUNS")
  dict=()
  [ -f "dicts/$target.dict" ] && dict=(-dict="dicts/$target.dict")
  if cargo fuzz run "${sanitizer[@]}" "$target" "corpus/$target" "seeds/$target" -- \
      "${limit[@]}" "${dict[@]}" -rss_limit_mb=2048 -timeout="${TIMEOUT:-10}" -print_final_stats=1 \
      >"$log" 2>&1; then
    result=ok
  else
    result=FAILED
    failed+=("$target")
    tail -n 40 "$log" >&2
  fi
  runs="$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -n 1)"
  rate="$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log" | tail -n 1)"
  printf '%-14s %12s %8s %s\n' "$target" "${runs:-?}" "${rate:-?}" "$result"
  rm -f "$log"
done
if [ ${#failed[@]} -gt 0 ]; then
  echo "fuzzing found a problem in: ${failed[*]} (inputs in fuzz/artifacts/)" >&2
  exit 1
fi
