#!/usr/bin/env bash
# bench/results-table.sh: the results table of an experiment, rj-last against the original way.
#
#   bench/results-table.sh                       # 10,000 jobs x 10 keys, 1,000,000 other keys
#   JOBS=1000 OTHER=100000 ROUNDS=5 bench/results-table.sh
#
# A private redis-server holds OTHER unrelated keys (DEBUG POPULATE, the keys `other:N`) and an
# experiment of JOBS jobs recorded as rj-track leaves them (T_ALL, T_COMPLETED, a record
# T_JOB:<id> with state, exit code and elapsed), each job with KEYS string keys `T-<id>:kN`.
# Then, ROUNDS times, the tools alternating which goes first, each exports the experiment:
#   rj-last --all --format csv            the long table, one row per key (release build)
#   rj-last --all --wide --format csv     the wide table, one row per job
#   original long    what the original example's Python did, with redis-py: KEYS T-*, then one
#                    GET per key, written as CSV rows key,value
#   original wide    the same reads, pivoted into one row per job before writing
# Wall time and peak RSS of each run come from /usr/bin/time -v; the time the server spent in
# the run's commands ("Redis busy") and the longest mean call of one command (KEYS: the time it
# blocked every other client) from INFO commandstats; the row counts of every output are
# checked. Prints a Markdown table of medians and every sample.
#
# Needs: redis-server and redis-cli 7 (DEBUG POPULATE; the server is started with
# --enable-debug-command local), python3, GNU time. redis-py is installed for the original way
# into a virtualenv in $VENV (default /tmp/rj-bench-venv) when it is not there yet.
# Environment: RJ_BIN (a directory with rj-last; default: cargo build --release), JOBS (10000),
# KEYS (10), OTHER (1000000), ROUNDS (3), VENV.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
JOBS=${JOBS:-10000}
KEYS=${KEYS:-10}
OTHER=${OTHER:-1000000}
ROUNDS=${ROUNDS:-3}
VENV=${VENV:-/tmp/rj-bench-venv}
TAG=bench

if [ -z "${RJ_BIN:-}" ]; then
  (cd "$ROOT" && cargo build --release --quiet --bin rj-last)
  RJ_BIN=$ROOT/target/release
fi
if ! "$VENV/bin/python" -c 'import redis' 2>/dev/null; then
  python3 -m venv "$VENV"
  "$VENV/bin/pip" install --quiet redis
fi
PY=$VENV/bin/python

# shellcheck source=bench/redis.sh
. "$ROOT/bench/redis.sh"
bench_redis table

# The data: unrelated keys first, then the experiment through redis-cli --pipe.
R DEBUG POPULATE "$OTHER" other >/dev/null
python3 - "$TAG" "$JOBS" "$KEYS" >"$WORK/fill.resp" <<'PY'
import sys
tag, jobs, keys = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
out = sys.stdout.buffer
def cmd(*args):
    b = [f"*{len(args)}\r\n".encode()]
    for a in args:
        a = str(a).encode()
        b.append(b"$%d\r\n%s\r\n" % (len(a), a))
    out.write(b"".join(b))
first = 4238610
for j in range(first, first + jobs):
    cmd("SADD", f"{tag}_ALL", j)
    cmd("SADD", f"{tag}_COMPLETED", j)
    cmd("HSET", f"{tag}_JOB:{j}", "state", "COMPLETED", "exit_code", "0:0",
        "elapsed", "00:01:%02d" % (j % 60))
    for k in range(keys):
        cmd("SET", f"{tag}-{j}:k{k}", f"{(j * 7 + k) % 1000 / 997:.6f}")
PY
R --pipe <"$WORK/fill.resp" >/dev/null
echo "# dbsize $(R DBSIZE): $JOBS jobs x $KEYS keys of tag $TAG, $OTHER other keys" >&2

# The original way, as the original example's Python read results (KEYS, one GET per key).
cat >"$WORK/original.py" <<'PY'
import csv, sys
import redis
port, tag, form = int(sys.argv[1]), sys.argv[2], sys.argv[3]
r = redis.Redis(port=port)
w = csv.writer(sys.stdout)
names = r.keys(f"{tag}-*")
if form == "long":
    w.writerow(["key", "value"])
    for k in names:
        w.writerow([k.decode(), r.get(k).decode()])
else:
    rows, cols = {}, set()
    for k in names:
        job, name = k.decode()[len(tag) + 1:].split(":", 1)
        rows.setdefault(job, {})[name] = r.get(k).decode()
        cols.add(name)
    cols = sorted(cols)
    w.writerow(["job"] + cols)
    for job in sorted(rows, key=int):
        w.writerow([job] + [rows[job].get(c, "") for c in cols])
PY

export REDIS_URL=redis://127.0.0.1:$PORT JOB_TAG=$TAG
# measure NAME LINES CMD...: run once under /usr/bin/time -v, check the output's line count,
# append "NAME wall_s rss_mb busy_s block_ms" to samples: the time Redis spent in the run's
# commands and the longest mean call of one command, from INFO commandstats, which CONFIG
# RESETSTAT zeroes before each run.
measure() {
  local name=$1 lines=$2
  shift 2
  R CONFIG RESETSTAT >/dev/null
  /usr/bin/time -v -o "$WORK/time" "$@" >"$WORK/out.csv"
  R INFO commandstats >"$WORK/stats"
  local got
  got=$(wc -l <"$WORK/out.csv")
  if [ "$got" -ne "$lines" ]; then
    echo "$name: $got lines, expected $lines" >&2
    exit 1
  fi
  python3 - "$name" "$WORK/time" "$WORK/stats" >>"$WORK/samples" <<'PY'
import re, sys
name, path, stats = sys.argv[1:4]
# Every command but the INFO that read the figures: the total, and the longest mean time of
# one call of a command (for KEYS, called once, the time it blocked every other client).
cmds = [(m.group(1), int(m.group(2)), float(m.group(3))) for m in re.finditer(
    r"cmdstat_([^:]+):calls=\d+,usec=(\d+),usec_per_call=([0-9.]+)", open(stats).read())
    if m.group(1) != "info"]
usec = sum(c[1] for c in cmds)
block = max(c[2] for c in cmds)
t = {}
for line in open(path):
    k, _, v = line.strip().rpartition(": ")
    t[k] = v
wall = 0.0
for part in t["Elapsed (wall clock) time (h:mm:ss or m:ss)"].split(":"):
    wall = wall * 60 + float(part)
print(name, f"{wall:.3f}", f"{int(t['Maximum resident set size (kbytes)']) / 1024:.1f}",
      f"{usec / 1e6:.3f}", f"{block / 1e3:.1f}")
PY
}

LONG=$((JOBS * KEYS + 1))
WIDE=$((JOBS + 1))
: >"$WORK/samples"
for r in $(seq 1 "$ROUNDS"); do
  rj() {
    measure "rj-last long" "$LONG" "$RJ_BIN/rj-last" --all --format csv
    measure "rj-last wide" "$WIDE" "$RJ_BIN/rj-last" --all --wide --format csv
  }
  orig() {
    measure "original long" "$LONG" "$PY" "$WORK/original.py" "$PORT" "$TAG" long
    measure "original wide" "$WIDE" "$PY" "$WORK/original.py" "$PORT" "$TAG" wide
  }
  if ((r % 2)); then rj; orig; else orig; rj; fi
  echo "# round $r done" >&2
done

LOAD=$(cut -d' ' -f1-3 /proc/loadavg)
python3 - "$WORK/samples" "$JOBS" "$KEYS" "$OTHER" "$ROUNDS" "$LOAD" "$(nproc)" <<'PY'
import statistics, sys
path, jobs, keys, other, rounds = sys.argv[1], *map(int, sys.argv[2:6])
load, cpus = sys.argv[6], sys.argv[7]
s = {}
for line in open(path):
    tool, form, *v = line.split()
    s.setdefault((tool, form), []).append(tuple(map(float, v)))
print(f"{jobs} jobs x {keys} keys among {other} other keys; medians of {rounds} rounds; "
      f"load average at the end {load} on {cpus} CPUs\n")
print("| table | tool | wall s | peak RSS MB | Redis busy s | longest call ms "
      "| original/rj-last wall |")
print("|---|---|---:|---:|---:|---:|---:|")
for form in ("long", "wide"):
    med = {t: [statistics.median(x[i] for x in s[(t, form)]) for i in range(4)]
           for t in ("rj-last", "original")}
    ratio = med["original"][0] / med["rj-last"][0]
    for t in ("rj-last", "original"):
        w, m, busy, block = med[t]
        r = f"{ratio:.1f}" if t == "rj-last" else ""
        print(f"| {form} CSV | {t} | {w:.2f} | {m:.1f} | {busy:.2f} | {block:.1f} | {r} |")
print("\nEvery sample (wall s / peak RSS MB / Redis busy s / longest call ms):\n")
for (tool, form), v in sorted(s.items()):
    print(f"- {tool} {form}: " + ", ".join(f"{w:.2f} / {m:.1f} / {b:.2f} / {l:.1f}"
                                           for w, m, b, l in v))
PY
