#!/usr/bin/env bash
# bench/fuzz.sh: run rj's cargo-fuzz targets for a bounded time and report what they reached.
#
#   bench/fuzz.sh TARGET SECONDS      one target (names: bench/fuzz.sh list)
#   bench/fuzz.sh all SECONDS         every target, one after the other (FUZZ_JOBS=2: two at once)
#   bench/fuzz.sh T1,T2 SECONDS       those targets, likewise
#
# Each run seeds fuzz/corpus/TARGET from the captured fixtures in tests/fixtures (whole files and
# their lines, or the job IDs in them) and from the small hand-written fuzz/seeds/TARGET, then runs
# libFuzzer under `nice -n 10` with -max_total_time=SECONDS, and prints per target libFuzzer's final
# `#N DONE cov: X ft: Y corp: …` line. Logs: $FUZZ_LOG_DIR (default /tmp/fuzz-logs)/TARGET.log.
# A crash, timeout or out-of-memory leaves its input in fuzz/artifacts/TARGET/ and makes the
# script exit 1. RJ_FUZZ_STRICT=1 also checks the properties known to fail (fuzz/src/lib.rs).
# Extra libFuzzer flags: FUZZ_FLAGS (e.g. FUZZ_FLAGS=-max_len=65536). FUZZ_NO_BUILD=1 runs the
# targets as last built (cargo +nightly fuzz build, in fuzz/).
#
# Needs: a nightly toolchain and cargo-fuzz (cargo install cargo-fuzz).
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
FUZZ=$ROOT/fuzz
FIX=$ROOT/tests/fixtures
LOGS=${FUZZ_LOG_DIR:-/tmp/fuzz-logs}
BIN=$FUZZ/target/x86_64-unknown-linux-gnu/release
TARGETS=(config url job_id record_ids sbatch squeue sacct scontrol bench_csv resp spool_line)

usage() { echo "usage: bench/fuzz.sh TARGET|all|list SECONDS" >&2; exit 2; }

# Copy the fixture file $2 into corpus $1, whole and one file per non-empty line.
whole_and_lines() {
  local dir=$1 f=$2 base n=0
  base=$(basename "$f")
  cp "$f" "$dir/fix-$base"
  while IFS= read -r line || [ -n "$line" ]; do
    [ -n "$line" ] || continue
    n=$((n + 1))
    printf '%s\n' "$line" >"$dir/fix-$base-$n"
  done <"$f"
}

# The job IDs of the fixtures (first field of sacct/squeue lines, JobId= of scontrol).
fixture_ids() {
  { cut -d'|' -f1 "$FIX"/slurm/squeue-*.txt "$FIX"/slurm/sacct-*.txt
    grep -o 'JobId=[0-9]*' "$FIX/slurm/scontrol-all.txt" | cut -d= -f2
  } | sort -u
}

seed() {
  local t=$1 dir=$FUZZ/corpus/$1 f
  mkdir -p "$dir"
  case $t in
    squeue | sacct | scontrol)
      for f in "$FIX"/slurm/"$t"-*; do [ -s "$f" ] && whole_and_lines "$dir" "$f"; done ;;
    bench_csv)
      for f in "$FIX"/rbench/*.csv "$FIX"/rbench/*.txt; do cp "$f" "$dir/fix-$(basename "$f")"; done ;;
    job_id | sbatch)
      fixture_ids | while read -r id; do printf '%s\n' "$id" >"$dir/fix-id-$id"; done ;;
    record_ids)
      fixture_ids >"$dir/fix-ids" ;;
  esac
  if [ -d "$FUZZ/seeds/$t" ]; then cp "$FUZZ/seeds/$t"/* "$dir/"; fi
}

# Run target $1 for $2 seconds; print its summary line; return non-zero on a finding.
run() {
  local t=$1 secs=$2 log=$LOGS/$1.log rc=0 done files
  seed "$t"
  mkdir -p "$LOGS" "$FUZZ/artifacts/$t"
  # The binary itself, not `cargo fuzz run`: in a git worktree build.rs's rerun-if-changed
  # paths do not exist, so cargo would rebuild rj before every run.
  # shellcheck disable=SC2086
  (cd "$FUZZ" && nice -n 10 "$BIN/$t" -artifact_prefix="artifacts/$t/" \
      -max_total_time="$secs" -timeout=10 -rss_limit_mb=1024 -print_final_stats=1 \
      ${FUZZ_FLAGS:-} "corpus/$t") >"$log" 2>&1 || rc=$?
  done=$(grep -a 'DONE' "$log" | tail -1 | tr -s ' \t' ' ' || true)
  files=$(find "$FUZZ/corpus/$t" -type f | wc -l)
  if [ "$rc" -eq 0 ]; then
    printf '%-11s %ss %s (corpus files: %s)\n' "$t" "$secs" "${done:-no DONE line}" "$files"
  else
    printf '%-11s FOUND (exit %s): %s; see %s and fuzz/artifacts/%s/\n' "$t" "$rc" \
      "$(grep -a -m1 -E 'ERROR: libFuzzer|panicked at|SUMMARY' "$log" | cut -c1-160)" "$log" "$t"
  fi
  return "$rc"
}

[ $# -ge 1 ] || usage
if [ "$1" = list ]; then printf '%s\n' "${TARGETS[@]}"; exit 0; fi
[ $# -eq 2 ] && [[ $2 =~ ^[0-9]+$ ]] || usage
if [ -z "${FUZZ_NO_BUILD:-}" ]; then
  (cd "$FUZZ" && nice -n 10 cargo +nightly fuzz build >/dev/null 2>&1) || {
    echo "bench/fuzz.sh: error: cargo +nightly fuzz build failed (run it in fuzz/ to see why)" >&2
    exit 1
  }
fi
if [ "$1" = all ]; then
  WANT=("${TARGETS[@]}")
else
  IFS=, read -r -a WANT <<<"$1"
  for t in "${WANT[@]}"; do printf '%s\n' "${TARGETS[@]}" | grep -qx -- "$t" || usage; done
fi
if [ ${#WANT[@]} -eq 1 ]; then
  run "${WANT[0]}" "$2"
  exit
fi
jobs=${FUZZ_JOBS:-1}
for t in "${WANT[@]}"; do
  while [ "$(jobs -rp | wc -l)" -ge "$jobs" ]; do wait -n || true; done
  { rc=0; run "$t" "$2" || rc=$?; echo "$rc" >"$LOGS/$t.rc"; } &
done
wait
status=0
for t in "${WANT[@]}"; do [ "$(cat "$LOGS/$t.rc")" = 0 ] || status=1; done
exit $status
