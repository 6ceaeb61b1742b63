#!/usr/bin/env bash
# bench/track.sh: cost of one tracking tick, rj-track vs the original one-sacct-per-job loop.
#
#   bench/track.sh [N...]          default N = 100 1000 10000
#
# For each N, records N job IDs under a fresh tag in a private redis-server (fake IDs that Slurm
# does not know, so every tick takes the longest path: squeue, then sacct, then scontrol), then
# measures TICKS ticks of
#   rj-track --once          (release build)
#   the original loop        (ARCHITECTURE.md §4: redis-cli SMEMBERS, then one `sacct -j ID` per job,
#                             SMOVE when the state is final), reproduced below
# and prints a Markdown table per tick:
#   slurm cmds   Slurm client processes spawned, counted by a PATH shim that logs the name and
#                execs the real command (measurement only: the real Slurm answers); a --once run
#                on Slurm >= 23.11.5 includes its one `squeue --version`
#   redis RTs    client commands seen by MONITOR (commands run inside Lua scripts excluded)
#   cpu s        user+sys CPU of the process tree (the tool and the Slurm clients it ran), from
#                /usr/bin/time
#   wall s       elapsed time
#   ctld CPU s   user+sys CPU slurmctld spent meanwhile (from its /proc stat; its pid file is
#                next to SLURM_CONF, run/slurmctld.pid, as scripts/slurm-testbed writes it)
#
# LIVE=1: live jobs instead of fake IDs: N held array tasks (arrays of at most 1000, PENDING for
# the whole run, cancelled at the end), so squeue answers for every ID and nothing moves. The
# tools are then rj-track (squeue --only-job-state where Slurm has it) and "rj-track full"
# (RJ_ONLY_JOB_STATE=0: today's full squeue); on Slurm 24.11:
#   eval "$(RJ_SLURM_VERSION=24.11 scripts/slurm-testbed env)"; LIVE=1 bench/track.sh 100 1000
#
# Needs: the Slurm testbed (eval "$(scripts/slurm-testbed env)"), redis-server, redis-cli.
# Environment: RJ_BIN (directory with rj-track; default: cargo build --release), TICKS (default 3),
# LIVE (default 0), TOOLS (default "rj-track original", with LIVE=1 "rj-track rj-track-full").
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
NS=("$@")
[ ${#NS[@]} -gt 0 ] || NS=(100 1000 10000)
TICKS=${TICKS:-3}
LIVE=${LIVE:-0}
if [ "$LIVE" = 1 ]; then TOOLS=${TOOLS:-rj-track rj-track-full}; else TOOLS=${TOOLS:-rj-track original}; fi

if [ -z "${RJ_BIN:-}" ]; then
  (cd "$ROOT" && cargo build --release --quiet --bin rj-track)
  RJ_BIN=$ROOT/target/release
fi
[ -n "${SLURM_CONF:-}" ] || eval "$("$ROOT/scripts/slurm-testbed" env)"

WORK=$(mktemp -d /tmp/rj-bench-track.XXXXXX)
PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
redis-server --port "$PORT" --bind 127.0.0.1 --save '' --appendonly no --dir "$WORK" \
  --daemonize yes --pidfile "$WORK/redis.pid" --logfile "$WORK/redis.log"
ARRAYS=()
cleanup() {
  [ ${#ARRAYS[@]} -eq 0 ] || scancel "${ARRAYS[@]}" 2>/dev/null || true
  [ -n "${MON:-}" ] && kill "$MON" 2>/dev/null || true
  [ -s "$WORK/redis.pid" ] && kill "$(cat "$WORK/redis.pid")" 2>/dev/null || true
  rm -rf "$WORK"
}
trap cleanup EXIT
R() { redis-cli -p "$PORT" "$@"; }
until R ping >/dev/null 2>&1; do sleep 0.05; done

# The counting shim: log the command name, then exec the real one.
SHIM=$WORK/shim
mkdir -p "$SHIM"
for c in squeue sacct scontrol; do
  real=$(command -v "$c")
  printf '#!/bin/sh\necho %s >> "%s/slurm.log"\nexec "%s" "$@"\n' "$c" "$WORK" "$real" >"$SHIM/$c"
  chmod +x "$SHIM/$c"
done
export PATH=$SHIM:$PATH

# The original tracking loop, one tick (what the shell script did every 3 s).
original_tick() {
  local tag=$1 id state
  for id in $(redis-cli -p "$PORT" smembers "${tag}_PENDING_AND_RUNNING"); do
    state=$(sacct -j "$id" -o State -n -X 2>/dev/null | head -n1 | awk '{print $1}')
    case $state in
      COMPLETED) redis-cli -p "$PORT" smove "${tag}_PENDING_AND_RUNNING" "${tag}_COMPLETED" "$id" >/dev/null ;;
      FAILED) redis-cli -p "$PORT" smove "${tag}_PENDING_AND_RUNNING" "${tag}_FAILED" "$id" >/dev/null ;;
      TIMEOUT) redis-cli -p "$PORT" smove "${tag}_PENDING_AND_RUNNING" "${tag}_TIMEOUT" "$id" >/dev/null ;;
      CANCELLED) redis-cli -p "$PORT" smove "${tag}_PENDING_AND_RUNNING" "${tag}_CANCELLED" "$id" >/dev/null ;;
    esac
  done
}
export -f original_tick
export PORT

CTLD_PID=$(cat "$(dirname "$SLURM_CONF")/run/slurmctld.pid" 2>/dev/null || true)
# ctld_cpu: slurmctld's user+sys CPU so far, in clock ticks (0 when its pid is unknown)
ctld_cpu() {
  if [ -n "$CTLD_PID" ] && [ -r "/proc/$CTLD_PID/stat" ]; then
    awk '{ sub(/^.*\) /, ""); print $12 + $13 }' "/proc/$CTLD_PID/stat"
  else
    echo 0
  fi
}
HZ=$(getconf CLK_TCK)

# measure TOOL TAG: run one tick under MONITOR and /usr/bin/time; print "cmds rts cpu wall ctld".
measure() {
  local tool=$1 tag=$2 c0 c1
  : >"$WORK/slurm.log"
  redis-cli -p "$PORT" monitor >"$WORK/monitor.log" &
  MON=$!
  sleep 0.3
  c0=$(ctld_cpu)
  case $tool in
    rj-track | rj-track-full)
      local ojs=1
      [ "$tool" = rj-track-full ] && ojs=0
      env "RJ_ONLY_JOB_STATE=$ojs" /usr/bin/time -f '%U %S %e' -o "$WORK/time" \
        "$RJ_BIN/rj-track" --url "redis://127.0.0.1:$PORT" --tag "$tag" --once -q --lost-after 100d >/dev/null
      ;;
    *) /usr/bin/time -f '%U %S %e' -o "$WORK/time" bash -c "original_tick $tag" ;;
  esac
  c1=$(ctld_cpu)
  sleep 0.3
  kill "$MON" 2>/dev/null || true
  wait "$MON" 2>/dev/null || true
  MON=
  local cmds rts
  cmds=$(wc -l <"$WORK/slurm.log")
  # MONITOR lines are `time [db client] "CMD" …`; script-internal commands show `[0 lua]`.
  rts=$(grep -v -e ' lua\] ' -e '"monitor"' -e '"MONITOR"' -e '^OK' "$WORK/monitor.log" | grep -c '^[0-9]' || true)
  read -r u s e <"$WORK/time"
  awk -v c="$cmds" -v r="$rts" -v u="$u" -v s="$s" -v e="$e" -v k=$((c1 - c0)) -v hz="$HZ" \
    'BEGIN { printf "%d %d %.3f %.3f %.3f\n", c, r, u + s, e, k / hz }'
}

# ids TAG N: record N job IDs under TAG (fake ones, or with LIVE=1 held array tasks)
ids() {
  local tag=$1 n=$2 left=$2 k j
  if [ "$LIVE" != 1 ]; then
    seq 900000001 $((900000000 + n))
  else
    while [ "$left" -gt 0 ]; do
      k=$((left > 1000 ? 1000 : left))
      j=$(sbatch --parsable --hold -o /dev/null --array=1-$k --wrap true)
      ARRAYS+=("$j")
      seq 1 "$k" | sed "s/^/${j}_/"
      left=$((left - k))
    done
  fi
}

echo "machine: $(uname -srm), $(nproc) CPUs, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //')"
echo "slurm: $(squeue --version), accounting: $(scontrol show config | awk '/^AccountingStorageType/ {print $3}')"
echo "redis: $(redis-server --version | awk '{print $3}')"
echo "ticks per figure: $TICKS (mean)"
echo
echo "live jobs: $([ "$LIVE" = 1 ] && echo "yes (held array tasks)" || echo "no (fake IDs)")"
echo
echo "| N | tool | Slurm cmds/tick | Redis round trips/tick | CPU s/tick | wall s/tick | slurmctld CPU s/tick |"
echo "|---:|---|---:|---:|---:|---:|---:|"
for n in "${NS[@]}"; do
  tag=bench_$n
  ids "$tag" "$n" | awk -v t="$tag" '{ print "SADD " t "_ALL " $1; print "SADD " t "_PENDING_AND_RUNNING " $1 }' |
    R --pipe >/dev/null
  for tool in $TOOLS; do
    tc=0 tr=0 tu=0 tw=0 tk=0
    for _ in $(seq "$TICKS"); do
      read -r c r u w k < <(measure "$tool" "$tag")
      tc=$((tc + c)) tr=$((tr + r))
      tu=$(awk -v a="$tu" -v b="$u" 'BEGIN { print a + b }')
      tw=$(awk -v a="$tw" -v b="$w" 'BEGIN { print a + b }')
      tk=$(awk -v a="$tk" -v b="$k" 'BEGIN { print a + b }')
    done
    awk -v n="$n" -v t="${tool/rj-track-full/rj-track full}" -v c="$tc" -v r="$tr" -v u="$tu" -v w="$tw" -v x="$tk" -v k="$TICKS" \
      'BEGIN { printf "| %d | %s | %.0f | %.0f | %.3f | %.2f | %.3f |\n", n, t, c / k, r / k, u / k, w / k, x / k }'
  done
  left=$(R scard "${tag}_PENDING_AND_RUNNING")
  [ "$left" = "$n" ] || echo "warning: $tag has $left of $n IDs left" >&2
done
