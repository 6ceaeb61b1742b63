#!/usr/bin/env bash
# bench/record-ids.sh: cost of `rj-launch --record -` for many job IDs.
#
#   bench/record-ids.sh [N...]        default N = 10000 100000 1000000
#
# For each N, pipes N distinct job IDs (one a line, 7-8 digits, as `sbatch --parsable` prints
# them) into `rj-launch --record -` under a fresh tag of a private redis-server, and prints a
# Markdown table row:
#   wall s     elapsed time                          (/usr/bin/time -v)
#   cpu s      user + system CPU of rj-launch         (/usr/bin/time -v)
#   peak MB    maximum resident set size of rj-launch (/usr/bin/time -v)
#   server s   CPU time the redis-server spent meanwhile (INFO cpu: used_cpu_user + used_cpu_sys,
#              before and after): what the server itself needs, whatever the client does
#   EXECs      MULTI/EXEC transactions the server ran (INFO commandstats)
# and checks that T_ALL and T_PENDING_AND_RUNNING hold N members afterwards. Each N has four
# rows: rj-launch as it records by default (with one T_EVENTS entry per job), its "floor" (the
# same writes: the two SADDs in commands of 1,000 members, one HSET of the same four fields
# and one XADD per job, sent with `redis-cli --pipe`, without transactions or reading
# anything: what the server alone needs, whatever the client), then the same two without
# events (`--events-max 0`).
#
# Needs: redis-server, redis-cli, /usr/bin/time (GNU time), python3 (a free port).
# Environment: RJ_BIN (directory with rj-launch; default: cargo build --release).
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
NS=("$@")
[ ${#NS[@]} -gt 0 ] || NS=(10000 100000 1000000)

if [ -z "${RJ_BIN:-}" ]; then
  (cd "$ROOT" && cargo build --release --quiet --bin rj-launch)
  RJ_BIN=$ROOT/target/release
fi
[ -x /usr/bin/time ] || { echo "record-ids.sh: /usr/bin/time (GNU time) is needed" >&2; exit 69; }

WORK=$(mktemp -d /tmp/rj-bench-record.XXXXXX)
PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
redis-server --port "$PORT" --bind 127.0.0.1 --save '' --appendonly no --dir "$WORK" \
  --daemonize yes --pidfile "$WORK/redis.pid" --logfile "$WORK/redis.log"
cleanup() {
  if [ -s "$WORK/redis.pid" ]; then
    pid=$(cat "$WORK/redis.pid")
    kill "$pid" 2>/dev/null || true
    while kill -0 "$pid" 2>/dev/null; do sleep 0.05; done
  fi
  rm -rf "$WORK"
}
trap cleanup EXIT
R() { redis-cli -p "$PORT" "$@"; }
server_cpu() { R info cpu | awk -F: '/^used_cpu_(user|sys):/ { s += $2 } END { printf "%.2f", s }'; }
until R ping >/dev/null 2>&1; do sleep 0.05; done

# What the numbers came from, for the results file.
echo "rj-launch $("$RJ_BIN/rj-launch" --version | cut -d' ' -f2-), $(redis-server --version | cut -d' ' -f3), $(nproc) CPUs"
echo
echo "| N | what | wall s | cpu s | peak MB | server s | EXECs |"
echo "|---:|---|---:|---:|---:|---:|---:|"

# One rj-launch run: N IDs from $WORK/ids under tag $tag, with the extra options given.
launch_row() {
  local n=$1 what=$2
  shift 2
  R config resetstat >/dev/null
  cpu0=$(server_cpu)
  env -i PATH="$PATH" HOME="$WORK" XDG_STATE_HOME="$WORK/state" \
    REDIS_URL="redis://127.0.0.1:$PORT" JOB_TAG="$tag" \
    /usr/bin/time -v -o "$WORK/time" "$RJ_BIN/rj-launch" "$@" --record - <"$WORK/ids" >"$WORK/out"
  cpu1=$(server_cpu)
  printed=$(wc -l <"$WORK/out")
  all=$(R scard "${tag}_ALL")
  pending=$(R scard "${tag}_PENDING_AND_RUNNING")
  if [ "$printed" != "$n" ] || [ "$all" != "$n" ] || [ "$pending" != "$n" ]; then
    echo "record-ids.sh: N=$n: printed $printed, T_ALL $all, T_PENDING_AND_RUNNING $pending" >&2
    exit 1
  fi
  execs=$(R info commandstats | sed -n 's/^cmdstat_exec:calls=\([0-9]*\),.*/\1/p')
  awk -v n="$n" -v what="$what" -v execs="${execs:-0}" -v server="$(awk -v a="$cpu0" -v b="$cpu1" 'BEGIN { printf "%.2f", b - a }')" -F': ' '
    /Elapsed \(wall clock\)/ { split($2, t, ":"); wall = (length(t) == 3) ? t[1]*3600 + t[2]*60 + t[3] : t[1]*60 + t[2] }
    /User time/ { cpu += $2 }
    /System time/ { cpu += $2 }
    /Maximum resident set size/ { rss = $2 / 1024 }
    END { printf "| %d | %s | %.2f | %.2f | %.0f | %s | %d |\n", n, what, wall, cpu, rss, server, execs }
  ' "$WORK/time"
  R flushall >/dev/null # the server is this script's own
}

# The floor: the same writes as raw RESP, generated before the clock starts; with events=1 also
# the XADD of each job's event.
floor_row() {
  local n=$1 events=$2 what=$3
  awk -v tag="$tag" -v events="$events" '
    function cmd(n, a,   i, s) { s = "*" n "\r\n"; for (i = 1; i <= n; i++) s = s "$" length(a[i]) "\r\n" a[i] "\r\n"; return s }
    function flush(set,   a, i) { a[1] = "SADD"; a[2] = set; for (i = 1; i <= m; i++) a[i + 2] = ids[i]; printf "%s", cmd(m + 2, a) }
    {
      ids[++m] = $0
      split("HSET " tag "_JOB:" $0 " submitted 2026-01-01T00:00:00Z host bench-host user bench cwd /home/bench/experiments", h, " ")
      printf "%s", cmd(10, h)
      if (events) {
        split("XADD " tag "_EVENTS MAXLEN ~ 100000 * job " $0 " set PENDING_AND_RUNNING state recorded exit_code EMPTY tracked_at 2026-01-01T00:00:00Z tracker rj-launch", x, " ")
        x[14] = ""
        printf "%s", cmd(18, x)
      }
      if (m == 1000) { flush(tag "_ALL"); flush(tag "_PENDING_AND_RUNNING"); m = 0 }
    }
    END { if (m > 0) { flush(tag "_ALL"); flush(tag "_PENDING_AND_RUNNING") } }
  ' "$WORK/ids" >"$WORK/floor.resp"
  cpu0=$(server_cpu)
  start=$(date +%s.%N)
  R --pipe <"$WORK/floor.resp" >"$WORK/pipe.out"
  end=$(date +%s.%N)
  cpu1=$(server_cpu)
  grep -q "errors: 0," "$WORK/pipe.out" || { echo "record-ids.sh: floor run: $(tail -1 "$WORK/pipe.out")" >&2; exit 1; }
  [ "$(R scard "${tag}_ALL")" = "$n" ] || { echo "record-ids.sh: floor run wrote a wrong T_ALL" >&2; exit 1; }
  awk -v n="$n" -v what="$what" -v a="$start" -v b="$end" -v c="$cpu0" -v d="$cpu1" 'BEGIN { printf "| %d | %s | %.2f | | | %.2f | |\n", n, what, b - a, d - c }'
  R flushall >/dev/null
}

for n in "${NS[@]}"; do
  tag=bench_$n
  seq 4000001 $((4000000 + n)) >"$WORK/ids"
  launch_row "$n" "rj-launch --record - (events)"
  floor_row "$n" 1 "floor: redis-cli --pipe (events)"
  launch_row "$n" "rj-launch --events-max 0 --record -" --events-max 0
  floor_row "$n" 0 "floor: redis-cli --pipe (no events)"
done
