#!/usr/bin/env bash
# bench/record-ids.sh: cost of `rj-launch --record -` for many job IDs, by recording path.
#
#   bench/record-ids.sh [-r ROUNDS] [N...]        default: 3 rounds, N = 100000 1000000
#
# For each N, pipes N distinct job IDs (one a line, 7-8 digits, as `sbatch --parsable` prints
# them) into `rj-launch --record -` and checks that T_ALL and T_PENDING_AND_RUNNING hold N
# members afterwards. Each run gets a fresh private redis-server (same state for every row: an
# empty database, no memory left over from the run before), not counted in the figures. One
# round runs every row once, in this order; the table shows each row's median over the rounds:
#   script      rj-launch as it records by default: one Lua script (EVAL) per 1,000 jobs
#   multi/exec  the same rj-launch logged in as a user refused EVAL, who records with WATCHed
#               MULTI/EXECs (the path of rj-launch's least-privilege ACL line)
#   old         with RJ_BIN_OLD set: $RJ_BIN_OLD/rj-launch, an earlier build (for example the
#               last commit before a change), as the default user
#   floor       the same writes (SADDs of 1,000 members, one HSET of the same four fields and
#               one XADD per job) as raw RESP piped by `redis-cli --pipe`, built before the clock
#               starts, without transactions, scripts or reading anything: what the server
#               needs for these writes whatever the client does
# Every row writes one T_EVENTS entry per job (the default --events-max); EVENTS=0 runs all of
# them without events (`--events-max 0`, no XADD in the floor).
# Columns:
#   wall s     elapsed time of rj-launch (/usr/bin/time -v), of redis-cli for the floor
#   cpu s      user + system CPU of rj-launch (/usr/bin/time -v)
#   peak MB    maximum resident set size of rj-launch (/usr/bin/time -v)
#   server s   CPU the redis-server spent meanwhile: utime + stime of /proc/<pid>/stat, before
#              and after
#   calls      EVAL and EXEC calls the server ran (INFO commandstats), as eval/exec
#   load       the 1-minute load average just before the run (the machine is shared)
#
# Needs: redis-server, redis-cli, /usr/bin/time (GNU time), python3 (a free port).
# Environment: RJ_BIN (directory with rj-launch; default: cargo build --release), RJ_BIN_OLD.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
ROUNDS=3
if [ "${1:-}" = "-r" ]; then
  ROUNDS=$2
  shift 2
fi
NS=("$@")
[ ${#NS[@]} -gt 0 ] || NS=(100000 1000000)
EVENTS=${EVENTS:-1}

if [ -z "${RJ_BIN:-}" ]; then
  (cd "$ROOT" && cargo build --release --quiet --locked --bin rj-launch)
  RJ_BIN=$ROOT/target/release
fi
[ -x /usr/bin/time ] || { echo "record-ids.sh: /usr/bin/time (GNU time) is needed" >&2; exit 69; }

WORK=$(mktemp -d /tmp/rj-bench-record.XXXXXX)
PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
TICK=$(getconf CLK_TCK)
PID=
stop_server() {
  if [ -n "$PID" ]; then
    kill "$PID" 2>/dev/null || true
    while kill -0 "$PID" 2>/dev/null; do sleep 0.05; done
    PID=
  fi
}
cleanup() {
  stop_server
  rm -rf "$WORK"
}
trap cleanup EXIT
R() { redis-cli -p "$PORT" "$@"; }
start_server() {
  rm -rf "$WORK/db" && mkdir "$WORK/db"
  redis-server --port "$PORT" --bind 127.0.0.1 --save '' --appendonly no --dir "$WORK/db" \
    --daemonize yes --pidfile "$WORK/db/redis.pid" --logfile "$WORK/db/redis.log"
  until R ping >/dev/null 2>&1; do sleep 0.05; done
  PID=$(cat "$WORK/db/redis.pid")
  R acl setuser noeval on '>bench-pw' '~*' '+@all' -eval >/dev/null
}
# CPU seconds of the server so far (fields 14 and 15 of /proc/<pid>/stat, in clock ticks; the
# command name in field 2 has no spaces here).
server_cpu() { awk -v t="$TICK" '{ printf "%.2f", ($14 + $15) / t }' "/proc/$PID/stat"; }
load() { cut -d' ' -f1 /proc/loadavg; }
calls() {
  R info commandstats | awk -F'[:=,]' '/^cmdstat_(eval|exec):/ { c[$1] = $3 }
    END { printf "%d/%d", c["cmdstat_eval"], c["cmdstat_exec"] }'
}
events_opt=()
[ "$EVENTS" = 1 ] || events_opt=(--events-max 0)

# One rj-launch run: N IDs from $WORK/ids, by binary $2 as URL $3; appends a result line
# `what wall cpu mb server calls load` to $WORK/results.
launch_run() {
  local n=$1 what=$2 bin=$3 url=$4
  start_server
  local l0 cpu0 cpu1
  l0=$(load)
  cpu0=$(server_cpu)
  env -i PATH="$PATH" HOME="$WORK" XDG_STATE_HOME="$WORK/state" REDIS_URL="$url" JOB_TAG="$tag" \
    /usr/bin/time -v -o "$WORK/time" "$bin/rj-launch" "${events_opt[@]}" --record - \
    <"$WORK/ids" >"$WORK/out"
  cpu1=$(server_cpu)
  local printed all pending
  printed=$(wc -l <"$WORK/out")
  all=$(R scard "${tag}_ALL")
  pending=$(R scard "${tag}_PENDING_AND_RUNNING")
  if [ "$printed" != "$n" ] || [ "$all" != "$n" ] || [ "$pending" != "$n" ]; then
    echo "record-ids.sh: $what, N=$n: printed $printed, T_ALL $all, T_PENDING_AND_RUNNING $pending" >&2
    exit 1
  fi
  awk -v n="$n" -v what="$what" -v calls="$(calls)" -v ld="$l0" \
    -v server="$(awk -v a="$cpu0" -v b="$cpu1" 'BEGIN { printf "%.2f", b - a }')" -F': ' '
    /Elapsed \(wall clock\)/ { k = split($2, t, ":"); wall = (k == 3) ? t[1]*3600 + t[2]*60 + t[3] : t[1]*60 + t[2] }
    /User time/ { cpu += $2 }
    /System time/ { cpu += $2 }
    /Maximum resident set size/ { rss = $2 / 1024 }
    END { printf "%d\t%s\t%.2f\t%.2f\t%.0f\t%s\t%s\t%s\n", n, what, wall, cpu, rss, server, calls, ld }
  ' "$WORK/time" >>"$WORK/results"
  stop_server
}

# The floor's RESP, built once per N, before any clock starts.
floor_resp() {
  awk -v tag="$tag" -v events="$EVENTS" '
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
}

floor_run() {
  local n=$1
  start_server
  local l0 cpu0 cpu1 t0 t1
  l0=$(load)
  cpu0=$(server_cpu)
  t0=$(date +%s.%N)
  R --pipe <"$WORK/floor.resp" >"$WORK/pipe.out"
  t1=$(date +%s.%N)
  cpu1=$(server_cpu)
  grep -q "errors: 0," "$WORK/pipe.out" || { echo "record-ids.sh: floor: $(tail -1 "$WORK/pipe.out")" >&2; exit 1; }
  [ "$(R scard "${tag}_ALL")" = "$n" ] || { echo "record-ids.sh: the floor wrote a wrong T_ALL" >&2; exit 1; }
  awk -v n="$n" -v a="$t0" -v b="$t1" -v c="$cpu0" -v d="$cpu1" -v ld="$l0" \
    'BEGIN { printf "%d\tfloor: redis-cli --pipe\t%.2f\t\t\t%.2f\t\t%s\n", n, b - a, d - c, ld }' >>"$WORK/results"
  stop_server
}

# What the numbers came from, for the results file.
echo "rj-launch $("$RJ_BIN/rj-launch" --version | cut -d' ' -f2-), redis-server $(redis-server --version | cut -d' ' -f3 | cut -d= -f2), $(nproc) CPUs, $ROUNDS rounds, events: $EVENTS, $(date -u +%FT%TZ)"
[ -z "${RJ_BIN_OLD:-}" ] || echo "old: $RJ_BIN_OLD/rj-launch ($("$RJ_BIN_OLD/rj-launch" --version | cut -d' ' -f2-))"
: >"$WORK/results"
for n in "${NS[@]}"; do
  tag=bench_$n
  seq 4000001 $((4000000 + n)) >"$WORK/ids"
  floor_resp
  for r in $(seq "$ROUNDS"); do
    launch_run "$n" "script (default)" "$RJ_BIN" "redis://127.0.0.1:$PORT"
    launch_run "$n" "multi/exec (refused EVAL)" "$RJ_BIN" "redis://noeval:bench-pw@127.0.0.1:$PORT"
    [ -z "${RJ_BIN_OLD:-}" ] || launch_run "$n" "old build" "$RJ_BIN_OLD" "redis://127.0.0.1:$PORT"
    floor_run "$n"
  done
done

echo
echo "Every run (N, what, wall s, cpu s, peak MB, server s, eval/exec calls, load):"
echo
sed 's/^/    /' "$WORK/results"
echo
echo "Medians of $ROUNDS:"
echo
echo "| N | what | wall s | cpu s | peak MB | server s | eval/exec | load |"
echo "|---:|---|---:|---:|---:|---:|---:|---|"
# Per (N, what), in the order first seen: the median of each figure, the loads as a range.
awk -F'\t' '
  function median(s,   a, k, i, j, t) {
    if (s == "") return ""
    k = split(substr(s, 2), a, " ")
    for (i = 1; i <= k; i++) for (j = i + 1; j <= k; j++) if (a[j] + 0 < a[i] + 0) { t = a[i]; a[i] = a[j]; a[j] = t }
    return (k % 2) ? a[(k + 1) / 2] : sprintf("%.2f", (a[k / 2] + a[k / 2 + 1]) / 2)
  }
  {
    key = $1 SUBSEP $2
    if (!(key in seen)) { seen[key] = 1; order[++m] = key; n[key] = $1; w[key] = $2; calls[key] = $7 }
    for (f = 3; f <= 6; f++) if ($f != "") v[key, f] = v[key, f] " " $f
    if (!(key in lo) || $8 + 0 < lo[key] + 0) lo[key] = $8
    if (!(key in hi) || $8 + 0 > hi[key] + 0) hi[key] = $8
  }
  END {
    for (i = 1; i <= m; i++) {
      k = order[i]
      printf "| %s | %s | %s | %s | %s | %s | %s | %s-%s |\n", n[k], w[k], median(v[k, 3]), median(v[k, 4]), median(v[k, 5]), median(v[k, 6]), calls[k], lo[k], hi[k]
    }
  }
' "$WORK/results"
