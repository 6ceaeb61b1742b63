#!/usr/bin/env bash
# rbench's native engine against redis-benchmark (and memtier_benchmark when MEMTIER names its
# binary), on a private loopback redis-server.
#
# Rows: SET and GET with -c 50 -d 256 at -P 1 and -P 16, then the open loop: rbench --rate (and
# memtier --rate-limiting) at half of the same round's closed-loop rbench -P 1 rate of the same
# test, SET and GET. The tools take turns inside each round, and the order rotates every round. The tables report
# medians over the rounds of requests/s, of client CPU time (user+sys, from /usr/bin/time) per
# request, and of the server's CPU utilisation during the run (its utime+stime, from /proc, over
# requests / rate): near 100 % the server was the bottleneck, well below it the client was.
#
# Every tool sees the same number of keys and the same value size, and every key is written
# before the first GET so that every GET hits: redis-benchmark -r N and rbench --keyspace N
# --key-prefix key: share the keys key:000000000000…; memtier names a key by its prefix and a
# number without padding, so it gets a prefix of zeros and a range of numbers of one length that
# make names as long (key:000001000000…key:000001099999 for 100,000 keys: Redis's cost per
# request grows with the key, and 9-byte names key:1…key:100000 gave memtier 5 % more SETs/s on
# a server-bound -P 16) and fills its own N keys first. memtier runs with --distinct-client-seed:
# without it every connection draws the same sequence of random keys, and 100,000 SETs of 50
# connections touch about 2,000 distinct keys instead of about 63,000, a hot corner of the
# keyspace that Redis serves from its caches (SET -P 16: 0.19 µs a call inside Redis against
# 0.68 µs over the whole keyspace, twice the throughput).
#
#   bench/rbench-vs-redis-benchmark.sh            # 3 rounds, writes its section of bench/rbench-results.md
#   MEMTIER=/path/to/memtier_benchmark ROUNDS=5 N1=500000 N16=3000000 bench/rbench-vs-redis-benchmark.sh
#
# It writes only its own section of the results file (between the rbench-vs-redis-benchmark
# markers); bench/rbench-tls.sh's TLS section and anything else there is kept.
#
# Bounded: with the defaults it takes about three minutes on a 2-core machine (four with memtier).
set -euo pipefail

cd "$(dirname "$0")/.."
ROUNDS=${ROUNDS:-3}
N1=${N1:-300000}          # requests per run at -P 1
N16=${N16:-2000000}       # requests per run at -P 16
KEYSPACE=${KEYSPACE:-100000}
OUT=${OUT:-bench/rbench-results.md}
MEMTIER=${MEMTIER:-}
CLIENTS=50
SIZE=256

for tool in redis-server redis-benchmark redis-cli; do
    command -v "$tool" >/dev/null || { echo "$0: $tool not found (apt-get install redis-server redis-tools)" >&2; exit 69; }
done
[ -x /usr/bin/time ] || { echo "$0: /usr/bin/time not found (apt-get install time)" >&2; exit 69; }
if [ -n "$MEMTIER" ] && ! [ -x "$MEMTIER" ]; then
    echo "$0: MEMTIER=$MEMTIER is not an executable file" >&2; exit 69
fi

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

# memtier's keys: MT_PREFIX + MT_MIN…MT_MAX, all numbers of digits+1 digits, names as long as
# the 12-digit ones of rbench and redis-benchmark.
digits=${#KEYSPACE}
MT_MIN=$((10 ** digits))
MT_MAX=$((MT_MIN + KEYSPACE - 1))
MT_PREFIX=key:$(printf '%0*d' $((12 - digits - 1)) 0)

# Fill every key each tool will GET.
"$RBENCH" run --url "redis://127.0.0.1:$port" -t set -c 10 -d "$SIZE" -P 16 -n "$KEYSPACE" \
    --keyspace "$KEYSPACE" --key-prefix key: --key-dist sequential -q --format csv >/dev/null
if [ -n "$MEMTIER" ]; then
    "$MEMTIER" -s 127.0.0.1 -p "$port" -t 1 -c 1 --pipeline 16 -d "$SIZE" --ratio 1:0 \
        --key-pattern P:P --key-prefix "$MT_PREFIX" --key-minimum "$MT_MIN" --key-maximum "$MT_MAX" \
        -n allkeys --hide-histogram >/dev/null 2>&1
fi
echo "prefilled: $(redis-cli -p "$port" dbsize) keys" >&2

server_cpu() { awk '{print $14 + $15}' "/proc/$server_pid/stat"; }
tck=$(getconf CLK_TCK)

# run TOOL TEST P N [RATE] → "rps client_cpu_seconds server_cpu_percent"
run() {
    local tool=$1 test=$2 p=$3 n=$4 rate=${5:-} csv c0 c1
    c0=$(server_cpu)
    case $tool in
    redis-benchmark)
        /usr/bin/time -f '%U %S' -o "$work/time" \
            redis-benchmark -h 127.0.0.1 -p "$port" -c "$CLIENTS" -d "$SIZE" -P "$p" -n "$n" \
            -r "$KEYSPACE" -t "$test" --csv >"$work/out" 2>"$work/err"
        # "SET","123.45",… → 123.45
        csv=$(grep -i "^\"$test\"" "$work/out" | head -1 | cut -d, -f2 | tr -d '"')
        ;;
    rbench)
        /usr/bin/time -f '%U %S' -o "$work/time" \
            "$RBENCH" run --url "redis://127.0.0.1:$port" -c "$CLIENTS" -d "$SIZE" -P "$p" -n "$n" \
            --keyspace "$KEYSPACE" --key-prefix key: -t "$test" --format csv -q ${rate:+--rate "$rate"} \
            >"$work/out" 2>"$work/err"
        csv=$(sed -n 2p "$work/out" | cut -d, -f2)
        ;;
    memtier)
        local ratio=1:0 limit=()
        [ "$test" = get ] && ratio=0:1
        # --rate-limiting is per connection.
        [ -n "$rate" ] && limit=(--rate-limiting $(( (rate + CLIENTS / 2) / CLIENTS )))
        /usr/bin/time -f '%U %S' -o "$work/time" \
            "$MEMTIER" -s 127.0.0.1 -p "$port" -t 1 -c "$CLIENTS" -d "$SIZE" --pipeline "$p" \
            -n $((n / CLIENTS)) --ratio "$ratio" --key-pattern R:R --key-prefix "$MT_PREFIX" \
            --key-minimum "$MT_MIN" --key-maximum "$MT_MAX" --distinct-client-seed --hide-histogram \
            "${limit[@]}" \
            >"$work/out" 2>"$work/err"
        # The Totals line: Totals ops/sec hits/sec misses/sec …
        csv=$(awk '$1 == "Totals" {print $2; exit}' "$work/out")
        if [ "$test" = get ]; then
            misses=$(awk '$1 == "Gets" {print $4; exit}' "$work/out")
            awk -v m="$misses" 'BEGIN {exit !(m > 0)}' && echo "$0: memtier GETs missed ($misses/s): the prefill did not cover its keys" >&2
        fi
        ;;
    esac
    c1=$(server_cpu)
    [ -n "$csv" ] || { echo "$0: no result from $tool $test -P $p:" >&2; cat "$work/out" "$work/err" >&2; exit 65; }
    # The server's CPU time over the time the tool says the load lasted (requests / rate): the
    # tools' own start-up and exit, when the server idles, do not dilute it.
    local util
    util=$(awk -v a="$c0" -v b="$c1" -v n="$n" -v r="$csv" -v k="$tck" 'BEGIN {printf "%.1f", (b - a) / k / (n / r) * 100}')
    # One Redis thread cannot be busier than one core: a rate that makes it so is the tool's
    # miscount (memtier once reported 546,000 GETs/s at -P 1 for a server that gives 200,000).
    awk -v u="$util" 'BEGIN {exit !(u > 110)}' &&
        echo "$0: $tool $test -P $p reported $csv req/s, which would put the server at $util % of a core: not a rate this server ran at" >&2
    echo "$csv $(awk '{print $1 + $2}' "$work/time") $util"
}

median() { sort -g | awk '{v[NR]=$1} END {if (NR%2) print v[(NR+1)/2]; else print (v[NR/2]+v[NR/2+1])/2}'; }

tools=(redis-benchmark rbench)
[ -n "$MEMTIER" ] && tools+=(memtier)
rows=("set 1 $N1" "get 1 $N1" "set 16 $N16" "get 16 $N16")
: >"$work/samples"
load_before=$(cut -d' ' -f1-3 /proc/loadavg)
start=$(date +%s)
for round in $(seq "$ROUNDS"); do
    # Rotate the order: round 1 a b c, round 2 b c a, …
    order=()
    for i in "${!tools[@]}"; do order+=("${tools[$(( (i + round - 1) % ${#tools[@]} ))]}"); done
    for row in "${rows[@]}"; do
        set -- $row
        for tool in "${order[@]}"; do
            read -r rps cpu scpu < <(run "$tool" "$1" "$2" "$3")
            echo "$1 $2 $tool $rps $cpu $3 $scpu" >>"$work/samples"
            printf 'round %s  %-4s -P %-2s  %-15s %10.0f req/s  %.2f s CPU  server %s%%\n' "$round" "$1" "$2" "$tool" "$rps" "$cpu" "$scpu" >&2
        done
    done
    # The open loop at half of this round's closed-loop rbench -P 1 rate of the same test, same
    # settings.
    for test in set get; do
        closed=$(awk -v t="$test" '$1==t && $2==1 && $3=="rbench" {v=$4} END {print v}' "$work/samples")
        target=$(awk -v c="$closed" 'BEGIN {printf "%.0f", c / 2}')
        for tool in "${order[@]}"; do
            [ "$tool" = redis-benchmark ] && continue
            read -r rps cpu scpu < <(run "$tool" "$test" 1 "$N1" "$target")
            echo "$test 1 $tool-rate $rps $cpu $N1 $scpu $target $(cut -d' ' -f1 /proc/loadavg)" >>"$work/samples"
            printf 'round %s  %-4s -P 1   %s --rate %s %7.0f req/s  %.2f s CPU  server %s%%\n' "$round" "$test" "$tool" "$target" "$rps" "$cpu" "$scpu" >&2
        done
    done
done
elapsed=$(( $(date +%s) - start ))

# med TEST P TOOL FIELD-EXPRESSION
med() { awk -v t="$1" -v p="$2" -v o="$3" '$1==t && $2==p && $3==o {print '"$4"'}' "$work/samples" | median; }

cmdline="ROUNDS=$ROUNDS N1=$N1 N16=$N16 KEYSPACE=$KEYSPACE${MEMTIER:+ MEMTIER=…/memtier_benchmark} bench/rbench-vs-redis-benchmark.sh"
{
    echo "<!-- rbench-vs-redis-benchmark: written by bench/rbench-vs-redis-benchmark.sh -->"
    echo "# rbench vs redis-benchmark${MEMTIER:+ and memtier_benchmark}"
    echo
    echo "Measured by \`$cmdline\` on $(date -u '+%Y-%m-%d %H:%M UTC'):"
    echo "$(nproc) cores ($(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ *//')), $(uname -sr),"
    echo -n "$(redis-server --version | cut -d' ' -f1-3), $(redis-benchmark --version), rbench $("$RBENCH" --version | cut -d' ' -f2-)"
    if [ -n "$MEMTIER" ]; then echo ", $("$MEMTIER" --version | head -1)."; else echo "."; fi
    echo "Private redis-server on 127.0.0.1, client and server on the same machine; -c $CLIENTS -d $SIZE,"
    echo "$KEYSPACE random keys, all written before the first GET (every GET hits); one client thread"
    echo "each; medians of $ROUNDS rounds with the tools' order rotating ($elapsed s in all)."
    echo "Client CPU is the tool's user+sys time for the whole run (connect included) divided by"
    echo "requests; server CPU is redis-server's utime+stime during the run over the time the load"
    echo "lasted (requests / rate; 100 % = one core busy: the server was the bottleneck)."
    echo "Load average before / after: $load_before / $(cut -d' ' -f1-3 /proc/loadavg) (other work on"
    echo "the machine shows up here; rotating the tools shares that noise between them)."
    echo
    echo "| test | -P | tool | req/s | vs redis-benchmark | client CPU µs/req | server CPU |"
    echo "|---|---:|---|---:|---:|---:|---:|"
    for row in "${rows[@]}"; do
        set -- $row
        base=$(med "$1" "$2" redis-benchmark '$4')
        for tool in "${tools[@]}"; do
            awk -v t="$1" -v p="$2" -v o="$tool" -v b="$base" -v r="$(med "$1" "$2" "$tool" '$4')" \
                -v c="$(med "$1" "$2" "$tool" '$5 / $6 * 1e6')" -v s="$(med "$1" "$2" "$tool" '$7')" \
                'BEGIN {printf "| %s | %s | %s | %.0f | %.2f | %.2f | %.0f %% |\n", toupper(t), p, o, r, r / b, c, s}'
        done
    done
    echo
    echo "Open loop: \`rbench run -t TEST -P 1 --rate R\`${MEMTIER:+ and memtier \`--rate-limiting R/$CLIENTS\`}, R half of the"
    echo "same round's closed-loop rbench -P 1 rate of that test; rbench's closed-loop CPU per request"
    echo "beside it, and the median over rounds of (open-loop CPU per request / the same round's"
    echo "closed-loop CPU per request): the goal is at most 1.00, with achieved/target within 1 %."
    echo
    echo "| test | -P | tool | target req/s | achieved req/s | achieved/target | client CPU µs/req | server CPU | rbench closed-loop CPU µs/req | open/closed CPU |"
    echo "|---|---:|---|---:|---:|---:|---:|---:|---:|---:|"
    for test in set get; do
        ccpu=$(med "$test" 1 rbench '$5 / $6 * 1e6')
        for tool in "${tools[@]}"; do
            [ "$tool" = redis-benchmark ] && continue
            # Per round: this tool's open-loop CPU over rbench's closed-loop CPU of that round.
            ratio=$(awk -v t="$test" -v o="$tool-rate" '$1==t && $2==1 && $3=="rbench" {c[++n]=$5/$6} $1==t && $2==1 && $3==o {r[++m]=$5/$6} END {for (i=1; i<=m; i++) print r[i]/c[i]}' "$work/samples" | median)
            awk -v t="$test" -v o="$tool" -v tg="$(med "$test" 1 "$tool-rate" '$8')" -v a="$(med "$test" 1 "$tool-rate" '$4')" \
                -v r="$(med "$test" 1 "$tool-rate" '$4 / $8')" -v c="$(med "$test" 1 "$tool-rate" '$5 / $6 * 1e6')" \
                -v s="$(med "$test" 1 "$tool-rate" '$7')" -v cc="$ccpu" -v q="$ratio" \
                'BEGIN {printf "| %s | 1 | %s | %.0f | %.0f | %.4f | %.2f | %.0f %% | %.2f | %.2f |\n", toupper(t), o, tg, a, r, c, s, cc, q}'
        done
    done
    echo
    echo "Every sample (test, -P, tool, req/s, client CPU s, requests, server CPU %[, target rate, load]):"
    echo
    echo '```'
    cat "$work/samples"
    echo '```'
    echo "<!-- /rbench-vs-redis-benchmark -->"
} >"$work/section"
# Replace this script's section of $OUT (or put it first), keeping every other section.
python3 - "$OUT" "$work/section" <<'PY'
import os, sys
out, section = sys.argv[1], open(sys.argv[2]).read()
begin, end = "<!-- rbench-vs-redis-benchmark", "<!-- /rbench-vs-redis-benchmark -->\n"
text = open(out).read() if os.path.exists(out) else ""
start, stop = text.find(begin), text.find(end)
if start >= 0 and stop >= 0:
    text = text[:start] + section + text[stop + len(end):]
else:
    text = section + ("\n" + text.lstrip("\n") if text else "")
open(out, "w").write(text)
PY
cat "$work/section"
