#!/usr/bin/env bash
# bench/status.sh: rj-status on a tag of N jobs, next to the shell pipeline it replaces.
#
#   bench/status.sh                 # N=1000000
#   N=100000 ROUNDS=5 bench/status.sh
#
# In a private redis-server on loopback, a tag of N jobs (one in ten an array task `J_T`): all
# in T_ALL, 90 % in T_COMPLETED, 5 % in T_FAILED, 5 % in T_PENDING_AND_RUNNING, each with a
# record T_JOB:<id> of the fields rj-launch and rj-track write. Then, ROUNDS rounds, the three
# commands taking turns (the order rotates each round), wall time and peak RSS from
# /usr/bin/time (for the pipeline, the largest process of it, as GNU time reports it):
#   redis-cli SMEMBERS T_ALL | sort -n          the shell pipeline
#   rj-status --state ALL --format plain        the IDs in numeric order
#   rj-status --long --format json              every job with its record
# Each output is checked (N lines; N rows) before its figures count. Medians are printed as a
# Markdown table.
#
# Environment: RJ_BIN (directory with rj-status; default: cargo build --release), N (1000000),
# ROUNDS (3).
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
N=${N:-1000000}
ROUNDS=${ROUNDS:-3}

if [ -z "${RJ_BIN:-}" ]; then
  (cd "$ROOT" && cargo build --release --locked --quiet --bin rj-status)
  RJ_BIN=$ROOT/target/release
fi
STATUS=$RJ_BIN/rj-status

# shellcheck source=bench/redis.sh
. "$ROOT/bench/redis.sh"
bench_redis status

T=bench
# The tag, as RESP for `redis-cli --pipe`: SADDs of 1000 IDs, one HSET per record.
python3 - "$N" "$T" > "$WORK/fill.resp" <<'EOF'
import sys
n, t = int(sys.argv[1]), sys.argv[2]
out = sys.stdout.buffer
def cmd(*a):
    b = [b"*%d\r\n" % len(a)]
    for x in a:
        x = x if isinstance(x, bytes) else str(x).encode()
        b.append(b"$%d\r\n%s\r\n" % (len(x), x))
    out.write(b"".join(b))
ids = []
job = 4000000
for i in range(n):
    if i % 10 == 9:
        ids.append("%d_%d" % (job, i % 7))
    else:
        job += 1
        ids.append(str(job))
sets = {"ALL": ids, "COMPLETED": [], "FAILED": [], "PENDING_AND_RUNNING": []}
for i, j in enumerate(ids):
    s = "COMPLETED" if i % 20 < 18 else ("FAILED" if i % 20 == 18 else "PENDING_AND_RUNNING")
    sets[s].append(j)
for s, members in sets.items():
    for k in range(0, len(members), 1000):
        cmd("SADD", "%s_%s" % (t, s), *members[k:k + 1000])
for i, j in enumerate(ids):
    f = ["submitted", "2026-01-01T00:00:00Z", "host", "login1", "user", "ana",
         "cwd", "/home/ana/exp", "sbatch_args", '["job.sbatch"]']
    if i % 20 < 19:
        st = "COMPLETED" if i % 20 < 18 else "FAILED"
        f += ["state", st, "exit_code", "0:0" if st == "COMPLETED" else "1:0",
              "start", "2026-01-01T00:01:00", "end", "2026-01-01T00:02:00",
              "elapsed", "00:01:00", "nodes", "node%03d" % (i % 100), "partition", "batch",
              "name", "train-%d" % (i % 50), "source", "sacct",
              "tracked_at", "2026-01-01T00:03:00Z", "tracked_by", "login1:4242:ab12"]
    cmd("HSET", "%s_JOB:%s" % (t, j), *f)
EOF
R --pipe < "$WORK/fill.resp" > /dev/null
rm "$WORK/fill.resp"
[ "$(R SCARD "${T}_ALL")" = "$N" ] || { echo "fill failed" >&2; exit 1; }
export REDIS_URL=redis://127.0.0.1:$PORT JOB_TAG=$T

# One measured run: $s (seconds) and $m (peak KB) of the command, its stdout in $WORK/out.
measure() {
  /usr/bin/time -f '%e %M' -o "$WORK/time" "$@" > "$WORK/out"
  read -r s m < "$WORK/time"
}
lines() { wc -l < "$WORK/out" | tr -d ' '; }
check() { # name want got
  [ "$2" = "$3" ] || { echo "$1: expected $2, got $3" >&2; exit 1; }
}

run_one() {
  case $1 in
    pipeline)
      measure sh -c "redis-cli -p $PORT SMEMBERS ${T}_ALL | sort -n"
      check pipeline "$N" "$(lines)" ;;
    plain)
      measure "$STATUS" -q --state ALL --format plain
      check plain "$N" "$(lines)" ;;
    long)
      measure "$STATUS" -q --long --format json
      check long "$N" "$(grep -c '"job_id"' "$WORK/out")" ;;
  esac
}

declare -A SEC KB
NAMES=(pipeline plain long)
for r in $(seq "$ROUNDS"); do
  for k in 0 1 2; do
    name=${NAMES[$(( (k + r) % 3 ))]}
    run_one "$name"
    SEC[$name]+="$s "
    KB[$name]+="$m "
  done
done
median() { tr ' ' '\n' | grep . | sort -g | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }

echo "## rj-status on a tag of $N jobs (medians of $ROUNDS rounds; $(nproc) CPUs, load average $(cut -d' ' -f1 /proc/loadavg); redis-server $(redis-server --version | cut -d' ' -f3 | cut -d= -f2))"
echo
echo "| command | wall s | peak RSS MB |"
echo "|---|---:|---:|"
row() { # name label
  local s m
  s=$(echo "${SEC[$1]}" | median)
  m=$(echo "${KB[$1]}" | median)
  printf '| `%s` | %.2f | %.0f |\n' "$2" "$s" "$(echo "$m / 1024" | bc -l)"
}
row pipeline "redis-cli SMEMBERS T_ALL \\| sort -n"
row plain "rj-status --state ALL --format plain"
row long "rj-status --long --format json"
echo
echo "every run: pipeline ${SEC[pipeline]}s / ${KB[pipeline]}KB; plain ${SEC[plain]}s / ${KB[plain]}KB; long ${SEC[long]}s / ${KB[long]}KB"
