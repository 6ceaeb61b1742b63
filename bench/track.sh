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
#                includes its one `squeue --version` (none with RJ_ONLY_JOB_STATE=0)
#   redis cmds   client commands seen by MONITOR (commands run inside Lua scripts excluded); a
#                pipeline of k commands is one round trip but counts k: a --once run reads the
#                `cluster` field of every tracked job hash, N HGETs in pipelines of 10,000
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
# CLUSTERS=1: the two clusters a and b of scripts/slurm-clusters (one slurmdbd) instead of the
# testbed: the N fake IDs alternate between a and b, each with its job hash's `cluster` field
# (as rj-launch writes it for sbatch's `id;cluster`), so rj-track asks each cluster with -M about
# its own IDs. The tool is rj-track; the table adds the commands per tick of each cluster (the
# shim reads -M/--clusters; "no -M" is a command without it) and slurmctld CPU is a's plus b's;
# the commands of each N's last tick go to stderr:
#   scripts/slurm-clusters up; eval "$(scripts/slurm-clusters env)"; CLUSTERS=1 bench/track.sh
#
# Needs: the Slurm testbed (eval "$(scripts/slurm-testbed env)"), redis-server, redis-cli.
# Environment: RJ_BIN (directory with rj-track; default: cargo build --release), TICKS (default 3),
# LIVE (default 0), CLUSTERS (default 0), TOOLS (default "rj-track original", with LIVE=1
# "rj-track rj-track-full", with CLUSTERS=1 "rj-track").
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
NS=("$@")
[ ${#NS[@]} -gt 0 ] || NS=(100 1000 10000)
TICKS=${TICKS:-3}
LIVE=${LIVE:-0}
CLUSTERS=${CLUSTERS:-0}
if [ "$LIVE" = 1 ] && [ "$CLUSTERS" = 1 ]; then
  echo "bench/track.sh: LIVE=1 and CLUSTERS=1 are not measured together" >&2
  exit 2
fi
if [ "$LIVE" = 1 ]; then
  TOOLS=${TOOLS:-rj-track rj-track-full}
elif [ "$CLUSTERS" = 1 ]; then
  TOOLS=${TOOLS:-rj-track}
else
  TOOLS=${TOOLS:-rj-track original}
fi

if [ -z "${RJ_BIN:-}" ]; then
  (cd "$ROOT" && cargo build --release --quiet --bin rj-track)
  RJ_BIN=$ROOT/target/release
fi
if [ "$CLUSTERS" = 1 ]; then
  [ -n "${SLURM_CONF:-}" ] || eval "$("$ROOT/scripts/slurm-clusters" env)"
  # a's slurm.conf is <dir>/a/slurm.conf; both controllers' pid files are in <dir>/run
  CRUN=$(dirname "$(dirname "$SLURM_CONF")")/run
  CTLD_PIDFILES="$CRUN/slurmctld-a.pid $CRUN/slurmctld-b.pid"
  for f in $CTLD_PIDFILES; do
    [ -s "$f" ] || { echo "bench/track.sh: no $f: is scripts/slurm-clusters up and SLURM_CONF a's?" >&2; exit 2; }
  done
else
  [ -n "${SLURM_CONF:-}" ] || eval "$("$ROOT/scripts/slurm-testbed" env)"
  CTLD_PIDFILES="$(dirname "$SLURM_CONF")/run/slurmctld.pid"
fi

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

# The counting shim: log the command name and the cluster it names (-M X, -MX, --clusters=X,
# --clusters X; "none" without), then exec the real one.
SHIM=$WORK/shim
mkdir -p "$SHIM"
for c in squeue sacct scontrol; do
  real=$(command -v "$c")
  cat >"$SHIM/$c" <<EOF
#!/bin/sh
m= prev=
for a in "\$@"; do
  case \$prev in -M | --clusters) m=\$a ;; esac
  case \$a in -M?*) m=\${a#-M} ;; --clusters=*) m=\${a#--clusters=} ;; esac
  prev=\$a
done
echo "$c \${m:-none}" >> "$WORK/slurm.log"
exec "$real" "\$@"
EOF
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

CTLD_PIDS=
for f in $CTLD_PIDFILES; do CTLD_PIDS="$CTLD_PIDS $(cat "$f" 2>/dev/null || true)"; done
# ctld_cpu: the slurmctlds' user+sys CPU so far, in clock ticks (nothing for a pid unknown)
ctld_cpu() {
  local p t=0
  for p in $CTLD_PIDS; do
    if [ -r "/proc/$p/stat" ]; then
      t=$((t + $(awk '{ sub(/^.*\) /, ""); print $12 + $13 }' "/proc/$p/stat")))
    fi
  done
  echo "$t"
}
HZ=$(getconf CLK_TCK)

# measure TOOL TAG: run one tick under MONITOR and /usr/bin/time; print "cmds rts cpu wall ctld
# on_a on_b on_none" (the last three: its Slurm commands by the cluster they named).
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
  local cmds rts on_a on_b on_none
  cmds=$(wc -l <"$WORK/slurm.log")
  on_a=$(grep -c ' a$' "$WORK/slurm.log" || true)
  on_b=$(grep -c ' b$' "$WORK/slurm.log" || true)
  on_none=$(grep -c ' none$' "$WORK/slurm.log" || true)
  cp "$WORK/slurm.log" "$WORK/slurm.last"
  # MONITOR lines are `time [db client] "CMD" …`; script-internal commands show `[0 lua]`.
  rts=$(grep -v -e ' lua\] ' -e '"monitor"' -e '"MONITOR"' -e '^OK' "$WORK/monitor.log" | grep -c '^[0-9]' || true)
  read -r u s e <"$WORK/time"
  awk -v c="$cmds" -v r="$rts" -v u="$u" -v s="$s" -v e="$e" -v k=$((c1 - c0)) -v hz="$HZ" \
    -v a="$on_a" -v b="$on_b" -v x="$on_none" \
    'BEGIN { printf "%d %d %.3f %.3f %.3f %d %d %d\n", c, r, u + s, e, k / hz, a, b, x }'
}

# ids TAG N: the N job IDs to record under TAG, one a line, with CLUSTERS=1 each followed by its
# cluster (fake IDs, or with LIVE=1 held array tasks)
ids() {
  local tag=$1 n=$2 left=$2 k j
  if [ "$CLUSTERS" = 1 ]; then
    seq 900000001 $((900000000 + n)) | awk '{ print $1, (NR % 2 ? "a" : "b") }'
  elif [ "$LIVE" != 1 ]; then
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
if [ "$CLUSTERS" = 1 ]; then echo "clusters: a and b (scripts/slurm-clusters), IDs alternating a, b"; fi
echo
if [ "$CLUSTERS" = 1 ]; then
  echo "| N | tool | Slurm cmds/tick | on a | on b | no -M | Redis cmds/tick | CPU s/tick | wall s/tick | slurmctld a+b CPU s/tick |"
  echo "|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|"
else
  echo "| N | tool | Slurm cmds/tick | Redis cmds/tick | CPU s/tick | wall s/tick | slurmctld CPU s/tick |"
  echo "|---:|---|---:|---:|---:|---:|---:|"
fi
for n in "${NS[@]}"; do
  tag=bench_$n
  ids "$tag" "$n" | awk -v t="$tag" '{
      print "SADD " t "_ALL " $1; print "SADD " t "_PENDING_AND_RUNNING " $1
      if ($2 != "") print "HSET " t "_JOB:" $1 " cluster " $2
    }' | R --pipe >/dev/null
  for tool in $TOOLS; do
    tc=0 tr=0 tu=0 tw=0 tk=0 ta=0 tb=0 tx=0
    for _ in $(seq "$TICKS"); do
      read -r c r u w k a b x < <(measure "$tool" "$tag")
      tc=$((tc + c)) tr=$((tr + r)) ta=$((ta + a)) tb=$((tb + b)) tx=$((tx + x))
      tu=$(awk -v a="$tu" -v b="$u" 'BEGIN { print a + b }')
      tw=$(awk -v a="$tw" -v b="$w" 'BEGIN { print a + b }')
      tk=$(awk -v a="$tk" -v b="$k" 'BEGIN { print a + b }')
    done
    if [ "$CLUSTERS" = 1 ]; then
      awk -v n="$n" -v t="$tool" -v c="$tc" -v a="$ta" -v b="$tb" -v o="$tx" -v r="$tr" -v u="$tu" -v w="$tw" -v x="$tk" -v k="$TICKS" \
        'BEGIN { printf "| %d | %s | %.0f | %.0f | %.0f | %.0f | %.0f | %.3f | %.2f | %.3f |\n", n, t, c / k, a / k, b / k, o / k, r / k, u / k, w / k, x / k }'
      echo "N=$n $tool, last tick: $(sort "$WORK/slurm.last" | uniq -c | awk '{ printf "%s%s -M %s x%d", sep, $2, $3, $1; sep = ", " }')" >&2
    else
      awk -v n="$n" -v t="${tool/rj-track-full/rj-track full}" -v c="$tc" -v r="$tr" -v u="$tu" -v w="$tw" -v x="$tk" -v k="$TICKS" \
        'BEGIN { printf "| %d | %s | %.0f | %.0f | %.3f | %.2f | %.3f |\n", n, t, c / k, r / k, u / k, w / k, x / k }'
    fi
  done
  left=$(R scard "${tag}_PENDING_AND_RUNNING")
  [ "$left" = "$n" ] || echo "warning: $tag has $left of $n IDs left" >&2
done
