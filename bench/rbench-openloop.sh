#!/usr/bin/env bash
# rbench's open loop against its closed loop, and an older rbench binary's beside it, counted
# with perf stat: per request the client's CPU time (task-clock: user+sys), context switches
# and epoll_wait calls, and timerfd_settime calls. Each round runs, per binary, the closed
# loop (-c 50 -P 1 SET) and then the open loop at half of the rate that closed loop reached;
# the binaries take turns. Then, for the current binary, closed loops of fewer connections
# (-c in LADDER, default "4 6 8 12"), which run slower because each waits for its reply: their
# CPU per request at the rate they reach, interpolated by rate at the open loop's rate (the
# nearest end when no two of them bracket it), gives the closed loop's cost at the open loop's
# throughput. Prints one line per run and the medians of the rounds' open/closed CPU ratios:
# against the closed loop of -c 50 (twice the open loop's rate) and against the closed loop at
# the same rate. Needs perf with the syscalls tracepoints (apt-get install linux-perf).
#
#   OLD=/path/to/rbench-before ROUNDS=3 N=300000 bench/rbench-openloop.sh
set -euo pipefail

cd "$(dirname "$0")/.."
ROUNDS=${ROUNDS:-3}
N=${N:-300000}
OLD=${OLD:-}
LADDER=${LADDER:-4 6 8 12}
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
    perf stat -x, -e "$ev" -o "$WORK/stat" "$bin" run --url "redis://127.0.0.1:$PORT" \
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
        read -r rps cpu cs ep tf < <(one "$bin" -c 50)
        rate=$(awk -v r="$rps" 'BEGIN {printf "%.0f", r / 2}')
        read -r orps ocpu ocs oep otf < <(one "$bin" -c 50 --rate "$rate")
        printf 'round %s %-3s closed %6.0f req/s %6.2f µs/req ctxsw %.3f epoll %.3f | open@%s %6.0f req/s %6.2f µs/req ctxsw %.3f epoll %.3f timerfd %.3f\n' \
            "$round" "$b" "$rps" "$cpu" "$cs" "$ep" "$rate" "$orps" "$ocpu" "$ocs" "$oep" "$otf"
        echo "$b $(awk -v o="$ocpu" -v c="$cpu" 'BEGIN {print o / c}')" >>"$WORK/ratios"
        [ "$b" = new ] || continue
        : >"$WORK/ladder"
        for c in $LADDER; do
            read -r lrps lcpu lcs lep ltf < <(one "$bin" -c "$c")
            printf 'round %s %-3s closed -c %-2s %6.0f req/s %6.2f µs/req ctxsw %.3f epoll %.3f\n' \
                "$round" "$b" "$c" "$lrps" "$lcpu" "$lcs" "$lep"
            echo "$lrps $lcpu" >>"$WORK/ladder"
        done
        # The ladder's CPU per request at the open loop's achieved rate, by rate.
        at=$(sort -g "$WORK/ladder" | awk -v r="$orps" '
            {x[NR] = $1; y[NR] = $2}
            END {
                if (r <= x[1]) {print y[1]; exit}
                if (r >= x[NR]) {print y[NR]; exit}
                for (i = 2; i <= NR; i++) if (r <= x[i]) {
                    print y[i-1] + (y[i] - y[i-1]) * (r - x[i-1]) / (x[i] - x[i-1]); exit }
            }')
        printf 'round %s new closed loop at %.0f req/s: %.2f µs/req (open/closed at the same rate %.2f)\n' \
            "$round" "$orps" "$at" "$(awk -v o="$ocpu" -v c="$at" 'BEGIN {print o / c}')"
        echo "same $(awk -v o="$ocpu" -v c="$at" 'BEGIN {print o / c}')" >>"$WORK/ratios"
    done
done
echo "load after: $(cut -d' ' -f1-3 /proc/loadavg)"
for b in "${bins[@]}" same; do
    awk -v b="$b" '$1 == b {print $2}' "$WORK/ratios" | sort -g |
        awk -v b="$b" '{v[NR] = $1} END {printf "%s: median open/closed CPU per request %.2f over %d rounds\n", (b == "same" ? "new, against the closed loop at the same rate" : b), (NR % 2 ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2), NR}'
done
