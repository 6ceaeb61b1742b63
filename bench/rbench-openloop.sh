#!/usr/bin/env bash
# rbench's open loop against its closed loop, and an older rbench binary's beside it, counted
# with perf stat: per request the client's CPU time (task-clock: user+sys), context switches
# and epoll_wait calls, and timerfd_settime calls. Each round runs, per binary, the closed
# loop (-c 50 -P 1 SET) and then the open loop at half of the rate that closed loop reached;
# the binaries take turns. Prints one line per run and the per-binary medians of the rounds'
# open/closed CPU ratio. Needs perf with the syscalls tracepoints (apt-get install linux-perf).
#
#   OLD=/path/to/rbench-before ROUNDS=3 N=300000 bench/rbench-openloop.sh
set -euo pipefail

cd "$(dirname "$0")/.."
ROUNDS=${ROUNDS:-3}
N=${N:-300000}
OLD=${OLD:-}
for tool in redis-server redis-cli perf; do
    command -v "$tool" >/dev/null || { echo "$0: $tool not found" >&2; exit 69; }
done
if [ -n "$OLD" ] && ! [ -x "$OLD" ]; then echo "$0: OLD=$OLD is not an executable" >&2; exit 69; fi
cargo build --release --quiet --bin rbench
NEW=$PWD/target/release/rbench
. bench/redis.sh
bench_redis openloop

ev=task-clock,context-switches,syscalls:sys_enter_epoll_wait,syscalls:sys_enter_timerfd_settime
# one BIN [ARGS…] → "rps cpu_us_per_req ctxsw_per_req epoll_per_req timerfd_per_req"
one() {
    local bin=$1; shift
    perf stat -x, -e "$ev" -o "$WORK/stat" "$bin" run --url "redis://127.0.0.1:$PORT" -c 50 \
        -d 256 -P 1 -n "$N" --keyspace 100000 --key-prefix key: -t set --format csv -q "$@" \
        >"$WORK/out"
    awk -F, -v n="$N" -v rps="$(sed -n 2p "$WORK/out" | cut -d, -f2)" '
        $3 == "task-clock" {tc = $1} $3 == "context-switches" {cs = $1}
        $3 ~ /epoll_wait/ {ep = $1} $3 ~ /timerfd_settime/ {tf = $1}
        END {printf "%.0f %.2f %.3f %.3f %.3f\n", rps, tc * 1000 / n, cs / n, ep / n, tf / n}' "$WORK/stat"
}

bins=(new)
[ -n "$OLD" ] && bins=(old new)
echo "load before: $(cut -d' ' -f1-3 /proc/loadavg)"
: >"$WORK/ratios"
for round in $(seq "$ROUNDS"); do
    for b in "${bins[@]}"; do
        bin=$NEW; [ "$b" = old ] && bin=$OLD
        read -r rps cpu cs ep tf < <(one "$bin")
        rate=$(awk -v r="$rps" 'BEGIN {printf "%.0f", r / 2}')
        read -r orps ocpu ocs oep otf < <(one "$bin" --rate "$rate")
        printf 'round %s %-3s closed %6.0f req/s %6.2f µs/req ctxsw %.3f epoll %.3f | open@%s %6.0f req/s %6.2f µs/req ctxsw %.3f epoll %.3f timerfd %.3f\n' \
            "$round" "$b" "$rps" "$cpu" "$cs" "$ep" "$rate" "$orps" "$ocpu" "$ocs" "$oep" "$otf"
        echo "$b $(awk -v o="$ocpu" -v c="$cpu" 'BEGIN {print o / c}')" >>"$WORK/ratios"
    done
done
echo "load after: $(cut -d' ' -f1-3 /proc/loadavg)"
for b in "${bins[@]}"; do
    awk -v b="$b" '$1 == b {print $2}' "$WORK/ratios" | sort -g |
        awk -v b="$b" '{v[NR] = $1} END {printf "%s: median open/closed CPU per request %.2f over %d rounds\n", b, (NR % 2 ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2), NR}'
done
