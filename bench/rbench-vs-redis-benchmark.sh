#!/usr/bin/env bash
# rbench's native engine against redis-benchmark, on a private loopback redis-server.
#
# Rows: SET and GET with -c 50 -d 256 at -P 1 and -P 16. The two tools alternate inside each
# round (who goes first flips every round), and the table reports medians over the rounds of
# requests/s and of client CPU time (user+sys, from /usr/bin/time) per request. Both tools use
# the same random keys (redis-benchmark -r N = rbench --keyspace N --key-prefix key:).
#
#   bench/rbench-vs-redis-benchmark.sh            # 3 rounds, writes bench/rbench-results.md
#   ROUNDS=5 N1=500000 N16=3000000 bench/rbench-vs-redis-benchmark.sh
#
# Bounded: with the defaults it takes about two minutes on a 2-core machine.
set -euo pipefail

cd "$(dirname "$0")/.."
ROUNDS=${ROUNDS:-3}
N1=${N1:-300000}          # requests per run at -P 1
N16=${N16:-2000000}       # requests per run at -P 16
KEYSPACE=${KEYSPACE:-100000}
OUT=${OUT:-bench/rbench-results.md}

for tool in redis-server redis-benchmark redis-cli; do
    command -v "$tool" >/dev/null || { echo "$0: $tool not found (apt-get install redis-server redis-tools)" >&2; exit 69; }
done
[ -x /usr/bin/time ] || { echo "$0: /usr/bin/time not found (apt-get install time)" >&2; exit 69; }

cargo build --release --quiet --bin rbench
RBENCH=$PWD/target/release/rbench

work=$(mktemp -d)
server_pid=
cleanup() {
    if [ -n "$server_pid" ]; then kill "$server_pid" 2>/dev/null || true; wait "$server_pid" 2>/dev/null || true; fi
    rm -rf "$work"
}
trap cleanup EXIT

# A private server on a free loopback port (retry if another process takes the port first).
for _ in 1 2 3 4 5; do
    port=$(( (RANDOM % 20000) + 30000 ))
    redis-server --port "$port" --bind 127.0.0.1 --save '' --appendonly no --daemonize no \
        --dir "$work" --logfile "$work/redis.log" &
    server_pid=$!
    for _ in $(seq 50); do
        redis-cli -p "$port" ping >/dev/null 2>&1 && break
        kill -0 "$server_pid" 2>/dev/null || break
        sleep 0.1
    done
    if redis-cli -p "$port" ping >/dev/null 2>&1; then break; fi
    wait "$server_pid" 2>/dev/null || true
    server_pid=
done
[ -n "$server_pid" ] || { echo "$0: could not start redis-server" >&2; exit 69; }

# run TOOL TEST P N [RATE] → "rps cpu_seconds"
run() {
    local tool=$1 test=$2 p=$3 n=$4 rate=${5:-} csv
    if [ "$tool" = redis-benchmark ]; then
        /usr/bin/time -f '%U %S' -o "$work/time" \
            redis-benchmark -h 127.0.0.1 -p "$port" -c 50 -d 256 -P "$p" -n "$n" \
            -r "$KEYSPACE" -t "$test" --csv >"$work/out" 2>"$work/err"
        # "SET","123.45",… → 123.45
        csv=$(grep -i "^\"$test\"" "$work/out" | head -1 | cut -d, -f2 | tr -d '"')
    else
        /usr/bin/time -f '%U %S' -o "$work/time" \
            "$RBENCH" run --url "redis://127.0.0.1:$port" -c 50 -d 256 -P "$p" -n "$n" \
            --keyspace "$KEYSPACE" --key-prefix key: -t "$test" --format csv -q ${rate:+--rate "$rate"} \
            >"$work/out" 2>"$work/err"
        csv=$(sed -n 2p "$work/out" | cut -d, -f2)
    fi
    [ -n "$csv" ] || { echo "$0: no result from $tool $test -P $p:" >&2; cat "$work/out" "$work/err" >&2; exit 65; }
    echo "$csv $(awk '{print $1 + $2}' "$work/time")"
}

median() { sort -g | awk '{v[NR]=$1} END {if (NR%2) print v[(NR+1)/2]; else print (v[NR/2]+v[NR/2+1])/2}'; }

rows=("set 1 $N1" "get 1 $N1" "set 16 $N16" "get 16 $N16")
: >"$work/samples"
load_before=$(cut -d' ' -f1-3 /proc/loadavg)
start=$(date +%s)
for round in $(seq "$ROUNDS"); do
    for row in "${rows[@]}"; do
        set -- $row
        if [ $((round % 2)) -eq 1 ]; then order="redis-benchmark rbench"; else order="rbench redis-benchmark"; fi
        for tool in $order; do
            read -r rps cpu < <(run "$tool" "$1" "$2" "$3")
            echo "$1 $2 $tool $rps $cpu $3" >>"$work/samples"
            printf 'round %s  %-4s -P %-2s  %-15s %10.0f req/s  %.2f s CPU\n' "$round" "$1" "$2" "$tool" "$rps" "$cpu" >&2
        done
    done
    # The open loop at half of this round's closed-loop GET -P 1 rate, same settings.
    closed=$(awk -v r="$round" '$1=="get" && $2==1 && $3=="rbench" {v=$4} END {print v}' "$work/samples")
    target=$(awk -v c="$closed" 'BEGIN {printf "%.0f", c / 2}')
    read -r rps cpu < <(run rbench get 1 "$N1" "$target")
    echo "get 1 rbench-rate $rps $cpu $N1 $target" >>"$work/samples"
    printf 'round %s  get  -P 1   rbench --rate %s %7.0f req/s  %.2f s CPU\n' "$round" "$target" "$rps" "$cpu" >&2
done
elapsed=$(( $(date +%s) - start ))

cmdline="ROUNDS=$ROUNDS N1=$N1 N16=$N16 KEYSPACE=$KEYSPACE bench/rbench-vs-redis-benchmark.sh"
{
    echo "# rbench vs redis-benchmark"
    echo
    echo "Measured by \`$cmdline\` on $(date -u +%Y-%m-%d):"
    echo "$(nproc) cores ($(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ *//')), $(uname -sr),"
    echo "$(redis-server --version | cut -d' ' -f1-3), $(redis-benchmark --version), rbench $("$RBENCH" --version | cut -d' ' -f2-)."
    echo "Private redis-server on 127.0.0.1, client and server on the same machine; -c 50 -d 256,"
    echo "$KEYSPACE random keys; medians of $ROUNDS alternating rounds ($elapsed s in all)."
    echo "CPU is the client's user+sys time for the whole run (connect included) divided by requests."
    echo "Load average before / after: $load_before / $(cut -d' ' -f1-3 /proc/loadavg) (other work on"
    echo "the machine shows up here; alternating the tools shares that noise between them)."
    echo
    echo "| test | -P | redis-benchmark req/s | rbench req/s | rbench/redis-benchmark | redis-benchmark CPU µs/req | rbench CPU µs/req |"
    echo "|---|---:|---:|---:|---:|---:|---:|"
    for row in "${rows[@]}"; do
        set -- $row
        rb_rps=$(awk -v t="$1" -v p="$2" '$1==t && $2==p && $3=="redis-benchmark" {print $4}' "$work/samples" | median)
        rj_rps=$(awk -v t="$1" -v p="$2" '$1==t && $2==p && $3=="rbench" {print $4}' "$work/samples" | median)
        rb_cpu=$(awk -v t="$1" -v p="$2" '$1==t && $2==p && $3=="redis-benchmark" {print $5 / $6 * 1e6}' "$work/samples" | median)
        rj_cpu=$(awk -v t="$1" -v p="$2" '$1==t && $2==p && $3=="rbench" {print $5 / $6 * 1e6}' "$work/samples" | median)
        awk -v t="$1" -v p="$2" -v a="$rb_rps" -v b="$rj_rps" -v ca="$rb_cpu" -v cb="$rj_cpu" \
            'BEGIN {printf "| %s | %s | %.0f | %.0f | %.2f | %.2f | %.2f |\n", toupper(t), p, a, b, b / a, ca, cb}'
    done
    echo
    echo "Open loop: \`rbench run -t get -P 1 --rate R\`, R half of the same round's closed-loop GET -P 1"
    echo "rate; the closed loop's CPU per request at the same settings beside it."
    echo
    echo "| test | -P | target req/s | achieved req/s | achieved/target | open-loop CPU µs/req | closed-loop CPU µs/req |"
    echo "|---|---:|---:|---:|---:|---:|---:|"
    tg=$(awk '$3=="rbench-rate" {print $7}' "$work/samples" | median)
    ach=$(awk '$3=="rbench-rate" {print $4}' "$work/samples" | median)
    ratio=$(awk '$3=="rbench-rate" {print $4 / $7}' "$work/samples" | median)
    ocpu=$(awk '$3=="rbench-rate" {print $5 / $6 * 1e6}' "$work/samples" | median)
    ccpu=$(awk '$1=="get" && $2==1 && $3=="rbench" {print $5 / $6 * 1e6}' "$work/samples" | median)
    awk -v a="$tg" -v b="$ach" -v r="$ratio" -v o="$ocpu" -v c="$ccpu" \
        'BEGIN {printf "| GET | 1 | %.0f | %.0f | %.4f | %.2f | %.2f |\n", a, b, r, o, c}'
    echo
    echo "Every sample (test, -P, tool, req/s, CPU s, requests[, target rate]):"
    echo
    echo '```'
    cat "$work/samples"
    echo '```'
} >"$OUT"
cat "$OUT"
