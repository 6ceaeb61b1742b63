#!/usr/bin/env bash
# bench/put.sh: what rj-put costs a job script, next to the redis-cli call it replaces.
#
#   bench/put.sh
#
# In a private redis-server on loopback:
#   1. one write, whole process (start, config, connect, write, exit): `rj-put NAME VALUE`
#      (finding the server through RJ_CONFIG, as in a job) vs `redis-cli -p PORT SET KEY VALUE`,
#      RUNS runs each, taking turns, median and mean wall time. With hyperfine when installed
#      (apt-get install hyperfine; -N: no shell between), else a Python loop.
#   2. `cat FILE | rj-put --lines log` for LINES lines of 40 bytes: lines/s, median of ROUNDS
#      rounds, the list checked to hold LINES entries each time; next to the original job
#      script's way, one `redis-cli RPUSH` per line, for LOOP_LINES lines.
#
# Environment: RJ_BIN (directory with rj-put; default: cargo build --release), RUNS (300),
# SLICES (10), LINES (1000000), ROUNDS (5), LOOP_LINES (2000); NO_HYPERFINE=1 forces the loop.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
RUNS=${RUNS:-300}
LINES=${LINES:-1000000}
ROUNDS=${ROUNDS:-5}
LOOP_LINES=${LOOP_LINES:-2000}

if [ -z "${RJ_BIN:-}" ]; then
  (cd "$ROOT" && cargo build --release --locked --quiet --bin rj-put)
  RJ_BIN=$ROOT/target/release
fi
PUT=$RJ_BIN/rj-put

# shellcheck source=bench/redis.sh
. "$ROOT/bench/redis.sh"
bench_redis put

# The environment of a job that rj-launch started.
printf '{"host": "127.0.0.1", "port": %s}\n' "$PORT" > "$WORK/redis.json"
export RJ_CONFIG=$WORK/redis.json JOB_TAG=bench SLURM_JOB_ID=4242 XDG_STATE_HOME=$WORK/state
unset REDIS_URL SLURM_ARRAY_JOB_ID SLURM_ARRAY_TASK_ID

echo "## One write, whole process ($RUNS runs each; $(nproc) CPUs, load average $(cut -d' ' -f1 /proc/loadavg); redis-server $(redis-server --version | cut -d' ' -f3 | cut -d= -f2))"
echo
# The machine may be busy: the two commands take turns, in SLICES rounds of RUNS/SLICES runs
# each (first one, then the other, then the other way round), and all samples are pooled, so
# that load that comes and goes falls on both alike.
SLICES=${SLICES:-10}
CLI=(redis-cli -p "$PORT" SET bench-4242:loss 0.25)
RJ=("$PUT" loss 0.25)
if [ -z "${NO_HYPERFINE:-}" ] && command -v hyperfine >/dev/null; then
  how="hyperfine $(hyperfine --version | cut -d' ' -f2) -N, $SLICES alternating rounds of $((RUNS / SLICES)) runs each (after 20 warm-up runs), pooled"
  for i in $(seq "$SLICES"); do
    if ((i % 2)); then a=("${CLI[*]}") b=("${RJ[*]}"); else a=("${RJ[*]}") b=("${CLI[*]}"); fi
    hyperfine -N --warmup $((i == 1 ? 20 : 2)) --runs $((RUNS / SLICES)) \
      --export-json "$WORK/one-$i.json" "${a[0]}" "${b[0]}" >/dev/null 2>&1
  done
  python3 - "${CLI[*]}" "${RJ[*]}" "$WORK"/one-*.json > "$WORK/one.txt" <<'PY'
import json, sys
cli, rj, files = sys.argv[1], sys.argv[2], sys.argv[3:]
times = {cli: [], rj: []}
cpu = {cli: 0.0, rj: 0.0}
for f in files:
    for r in json.load(open(f))["results"]:
        times[r["command"]] += r["times"]
        cpu[r["command"]] += (r["user"] + r["system"]) * len(r["times"])
for k in times:
    name = k.split()[0].rsplit("/", 1)[-1]
    print(name, cpu[k] / len(times[k]), " ".join(str(t) for t in times[k]))
PY
else
  how="a Python loop, fork+exec+wait timed with perf_counter, the two alternating run by run"
  python3 - "$RUNS" "${CLI[*]}" "${RJ[*]}" > "$WORK/one.txt" <<'PY'
import resource, subprocess, sys, time
runs, cli, rj = int(sys.argv[1]), sys.argv[2].split(), sys.argv[3].split()
times = {"redis-cli": [], "rj-put": []}
cpu = {"redis-cli": 0.0, "rj-put": 0.0}
def used():
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime
for _ in range(runs):
    for name, argv in (("redis-cli", cli), ("rj-put", rj)):
        c0, t0 = used(), time.perf_counter()
        subprocess.run(argv, check=True, stdout=subprocess.DEVNULL)
        times[name].append(time.perf_counter() - t0)
        cpu[name] += used() - c0
for k, v in times.items():
    print(k, cpu[k] / runs, " ".join(str(t) for t in v))
PY
fi
python3 - "$WORK/one.txt" <<'PY'
import statistics, sys
rows, cpu = {}, {}
for line in open(sys.argv[1]):
    name, c, *ts = line.split()
    rows[name] = [float(t) * 1e3 for t in ts]
    cpu[name] = float(c) * 1e3
label = {"redis-cli": "redis-cli -p PORT SET KEY VALUE", "rj-put": "rj-put NAME VALUE"}
print("| command | runs | median ms | mean ms | p10 ms | p90 ms | CPU ms (user+sys) | median vs redis-cli |")
print("|---|---:|---:|---:|---:|---:|---:|---:|")
base = statistics.median(rows["redis-cli"])
for name in ("redis-cli", "rj-put"):
    t = sorted(rows[name])
    q = statistics.quantiles(t, n=10)
    print(f"| `{label[name]}` | {len(t)} | {statistics.median(t):.2f} | {statistics.mean(t):.2f} "
          f"| {q[0]:.2f} | {q[-1]:.2f} | {cpu[name]:.2f} | {statistics.median(t)/base:.2f} |")
PY
echo
echo "($how)"
[ "$(R GET bench-4242:loss)" = 0.25 ] || { echo "rj-put did not write" >&2; exit 1; }
[ ! -e "$XDG_STATE_HOME/rj/bench.results" ] || { echo "rj-put spooled" >&2; exit 1; }

echo
echo "## --lines: $LINES lines of 40 bytes into one list (median of $ROUNDS rounds)"
echo
python3 -c '
import sys
n = int(sys.argv[1])
with open(sys.argv[2], "w") as f:
    for i in range(n):
        f.write(f"step {i:>10} loss 0.{i % 9973:04d} lr 1e-4 ok\n")
' "$LINES" "$WORK/lines.txt"
: > "$WORK/lines.s"
for _ in $(seq "$ROUNDS"); do
  R DEL bench-4242:log >/dev/null
  t0=$(date +%s%N)
  cat "$WORK/lines.txt" | "$PUT" --lines log
  t1=$(date +%s%N)
  got=$(R LLEN bench-4242:log)
  [ "$got" = "$LINES" ] || { echo "list holds $got lines, not $LINES" >&2; exit 1; }
  echo "$(( t1 - t0 ))" >> "$WORK/lines.s"
done
R DEL bench-4242:log >/dev/null
head -n "$LOOP_LINES" "$WORK/lines.txt" > "$WORK/loop.txt"
t0=$(date +%s%N)
while IFS= read -r line; do
  redis-cli -p "$PORT" RPUSH bench-4242:log "$line" >/dev/null
done < "$WORK/loop.txt"
t1=$(date +%s%N)
[ "$(R LLEN bench-4242:log)" = "$LOOP_LINES" ] || { echo "loop lost lines" >&2; exit 1; }
python3 - "$WORK/lines.s" "$LINES" "$((t1 - t0))" "$LOOP_LINES" <<'EOF'
import statistics, sys
runs = [int(l) / 1e9 for l in open(sys.argv[1])]
n, loop_s, loop_n = int(sys.argv[2]), int(sys.argv[3]) / 1e9, int(sys.argv[4])
med = statistics.median(runs)
print("| writer | lines | wall s (median) | lines/s |")
print("|---|---:|---:|---:|")
print(f"| `cat FILE \\| rj-put --lines log` | {n} | {med:.2f} | {n/med:,.0f} |")
print(f"| one `redis-cli RPUSH` per line (the old job.sbatch) | {loop_n} | {loop_s:.2f} | {loop_n/loop_s:,.0f} |")
print()
print("rounds (s): " + " ".join(f"{r:.2f}" for r in runs))
EOF
