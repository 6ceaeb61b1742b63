#!/usr/bin/env bash
# bench/status.sh: rj-status on a tag of N jobs, next to the shell pipeline it replaces.
#
#   bench/status.sh                 # N=1000000
#   N=100000 ROUNDS=5 bench/status.sh
#
# In a private redis-server on loopback, a tag of N jobs (one in ten an array task `J_T`): all
# in T_ALL, 90 % in T_COMPLETED, 5 % in T_FAILED, 5 % in T_PENDING_AND_RUNNING, each with a
# record T_JOB:<id> of the fields rj-launch and rj-track write. Then, ROUNDS rounds, the three
# commands taking turns (the order rotates each round), wall time, CPU time (user + system) and
# peak RSS from /usr/bin/time (for the pipeline, the sum of its processes' CPU and the largest
# one's RSS, as GNU time reports them), and the redis-server's own CPU time for the same run
# (utime + stime of /proc/PID/stat before and after): on a machine of few cores wall time
# includes the server's, and no client of it is faster than the server's own part:
#   redis-cli SMEMBERS T_ALL | sort -n          the shell pipeline
#   rj-status --state ALL --format plain        the IDs in numeric order
#   rj-status --long --format json              every job with its record
# Each output is checked (N lines; N rows) before its figures count. Medians are printed as a
# Markdown table, with each command's wall time as a ratio to the pipeline's in the same round.
# Then where the server's time goes: INFO commandstats of one more --long run, and the server's
# CPU time for the same N HGETALLs sent alone, under which no --long can go (and for N HMGETs of
# the row's 16 fields, which cost Redis more).
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

# One measured run: $s (wall seconds), $c (CPU seconds), $m (peak KB) of the command and $srv
# (the server's CPU seconds meanwhile); its stdout in $WORK/out.
TICK=$(getconf CLK_TCK)
server_ticks() { awk '{print $14 + $15}' "/proc/$(cat "$WORK/redis.pid")/stat"; }
measure() {
  local a b u y
  a=$(server_ticks)
  /usr/bin/time -f '%e %U %S %M' -o "$WORK/time" "$@" > "$WORK/out"
  b=$(server_ticks)
  read -r s u y m < "$WORK/time"
  c=$(echo "$u + $y" | bc -l)
  srv=$(echo "($b - $a) / $TICK" | bc -l)
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

declare -A SEC CPU KB SRV
NAMES=(pipeline plain long)
LOADS=""
for r in $(seq "$ROUNDS"); do
  LOADS+="$(cut -d' ' -f1 /proc/loadavg) "
  for k in 0 1 2; do
    name=${NAMES[$(( (k + r) % 3 ))]}
    run_one "$name"
    SEC[$name]+="$s "
    CPU[$name]+="$(printf '%.2f' "$c") "
    KB[$name]+="$m "
    SRV[$name]+="$(printf '%.2f' "$srv") "
  done
done
LOADS+="$(cut -d' ' -f1 /proc/loadavg)"
median() { tr ' ' '\n' | grep . | sort -g | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }

echo "## rj-status on a tag of $N jobs (medians of $ROUNDS rounds; $(nproc) CPUs, load average $LOADS at each round's start and at the end; redis-server $(redis-server --version | cut -d' ' -f3 | cut -d= -f2))"
echo
echo "| command | wall s | ÷ pipeline | its CPU s | Redis CPU s | peak RSS MB |"
echo "|---|---:|---:|---:|---:|---:|"
# The ratio to the pipeline's wall time in the same round (the three ran back to back, under
# the same load), the median over the rounds: steadier than the ratio of the medians when the
# machine is shared.
ratios() { # name
  paste -d' ' <(echo "${SEC[$1]}" | tr ' ' '\n' | grep .) \
    <(echo "${SEC[pipeline]}" | tr ' ' '\n' | grep .) |
    awk '{printf "%.2f ", $1 / $2}'
}
row() { # name label
  local s r c v m
  s=$(echo "${SEC[$1]}" | median)
  r=$(ratios "$1" | median)
  c=$(echo "${CPU[$1]}" | median)
  v=$(echo "${SRV[$1]}" | median)
  m=$(echo "${KB[$1]}" | median)
  printf '| `%s` | %.2f | %.2f | %.2f | %.2f | %.0f |\n' "$2" "$s" "$r" "$c" "$v" "$(echo "$m / 1024" | bc -l)"
}
row pipeline "redis-cli SMEMBERS T_ALL \\| sort -n"
row plain "rj-status --state ALL --format plain"
row long "rj-status --long --format json"
echo
for n in "${NAMES[@]}"; do
  echo "$n, every round: wall ${SEC[$n]}s (÷ pipeline $(ratios "$n")); CPU ${CPU[$n]}s; Redis ${SRV[$n]}s; ${KB[$n]}KB"
done

# Where the server's time goes in one more --long run: INFO commandstats counts the time inside
# each command, by the clock (so more than its CPU when the server waits for a core), without
# reading requests and writing replies, which the CPU time above includes.
R CONFIG RESETSTAT > /dev/null
run_one long
echo
echo "Redis's time inside the commands of one more \`--long --format json\` (INFO commandstats, by the clock; Redis's CPU time for the whole run: $(printf '%.2f' "$srv") s):"
R INFO commandstats | tr -d '\r' | awk -F'[:,=]' '/^cmdstat_(sscan|hgetall)/ {
  printf "%s: %d calls, %.2f s, %.2f µs a call\n", substr($1, 9), $3, $5 / 1e6, $7 }'

# The floor under --long: the same reads with nothing else, the N records' HGETALLs and, for
# comparison, HMGETs of the 16 fields a row shows (what rj-status sent before), each sent in one
# stream by a client that only drains the replies (a PING after the last one marks the end),
# and the server's CPU time for them.
run_one plain
floor() { # command [field...]
  R CONFIG RESETSTAT > /dev/null
  measure python3 - "$PORT" "$T" "$WORK/ids" "$@" <<'EOF'
import socket, sys, threading
port, t, ids, cmd, fields = int(sys.argv[1]), sys.argv[2].encode(), sys.argv[3], sys.argv[4].encode(), [f.encode() for f in sys.argv[5:]]
def bulk(x):
    return b"$%d\r\n%s\r\n" % (len(x), x)
tail = b"".join(bulk(f) for f in fields)
head = b"*%d\r\n" % (2 + len(fields)) + bulk(cmd)
s = socket.create_connection(("127.0.0.1", port))
def send():
    out = []
    for line in open(ids, "rb"):
        out.append(head + bulk(t + b"_JOB:" + line.strip()) + tail)
        if len(out) == 1000:
            s.sendall(b"".join(out))
            out = []
    s.sendall(b"".join(out) + b"*1\r\n$4\r\nPING\r\n")
w = threading.Thread(target=send)
w.start()
last = b""
while not last.endswith(b"+PONG\r\n"):
    b = s.recv(1 << 20)
    if not b:
        sys.exit("the server closed the connection")
    last = (last + b)[-16:]
w.join()
EOF
  # The drain counts no replies: INFO commandstats does, N calls and none failed or refused.
  local lower stats
  lower=$(echo "$1" | tr '[:upper:]' '[:lower:]')
  stats=$(R INFO commandstats | tr -d '\r' | grep "^cmdstat_$lower:" | cut -d, -f1,4,5)
  check "$1 floor" "cmdstat_$lower:calls=$N,rejected_calls=0,failed_calls=0" "$stats"
}
cp "$WORK/out" "$WORK/ids"
floor HGETALL
hgetall_srv=$srv hgetall_s=$s
floor HMGET state exit_code elapsed start end nodes partition name submitted cluster reason \
  restarts stdout stderr max_rss cpu_efficiency
echo
echo "The same $N records alone, one stream of requests from a client that only drains the replies: HGETALL, Redis CPU $(printf '%.2f' "$hgetall_srv") s (wall $hgetall_s s); HMGET of the 16 fields a row shows, Redis CPU $(printf '%.2f' "$srv") s (wall $s s)."
