#!/usr/bin/env bash
# rbench's native engine in --mode direct (one command per round trip) against --mode batched
# --batch 16 (16 operations per round trip, in MSET/MGET), same operations, clients, requests
# and value size; writes bench/batching.md, bench/batching.svg and bench/batching.png.
# ROUNDS rounds (default 3), the two modes alternating which goes first; the ratios reported are
# medians over the rounds, and the table and plot show the round with the median SET ratio.
#
#   bench/rbench-batching.sh                    # against scripts/redis-dev (127.0.0.1:6390)
#   REDIS_URL=redis://host:6379 ROUNDS=5 bench/rbench-batching.sh
#
# Keys are rbench:batching:* only; nothing else on the server is touched.
set -euo pipefail

cd "$(dirname "$0")/.."
URL=${REDIS_URL:-$(scripts/redis-dev up)}
ARGS=(-t set,get -c 50 -n 200000 -d 256 --keyspace 100000 --key-prefix rbench:batching:)

cargo build --release --quiet --bin rbench
RBENCH=$PWD/target/release/rbench
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

ROUNDS=${ROUNDS:-3}
cd "$work"
for r in $(seq 1 "$ROUNDS"); do
    direct=(run --url "$URL" "${ARGS[@]}" --mode direct --output "direct-$r.json" -q)
    batched=(run --url "$URL" "${ARGS[@]}" --mode batched --batch 16 --output "batched-$r.json" -q)
    if ((r % 2)); then
        "$RBENCH" "${direct[@]}" && "$RBENCH" "${batched[@]}"
    else
        "$RBENCH" "${batched[@]}" && "$RBENCH" "${direct[@]}"
    fi
done
# Per-round ratios and their medians (rounds.md), and the round whose SET throughput ratio is
# the median (its files make the full table and the plot).
median_round=$(python3 - "$ROUNDS" 3>rounds.md <<'PY'
import json, os, statistics, sys
rounds = int(sys.argv[1])
md = os.fdopen(3, "w")
def t(mode, r, test):
    return json.load(open(f"{mode}-{r}.json"))["results"]["tests"][test]
ratios = {"SET": [], "GET": []}
print("| round | test | direct req/s | batched req/s | throughput ratio | direct p50 ms "
      "| batched p50 ms | p50 ratio |", file=md)
print("|---:|---|---:|---:|---:|---:|---:|---:|", file=md)
for r in range(1, rounds + 1):
    for test in ("SET", "GET"):
        d, b = t("direct", r, test), t("batched", r, test)
        q = b["requests_per_second"] / d["requests_per_second"]
        l = b["p50_latency_ms"] / d["p50_latency_ms"]
        ratios[test].append((q, l, r))
        print(f"| {r} | {test} | {d['requests_per_second']:.0f} | {b['requests_per_second']:.0f} "
              f"| {q:.2f} | {d['p50_latency_ms']:.3f} | {b['p50_latency_ms']:.3f} | {l:.2f} |",
              file=md)
print(file=md)
for test in ("SET", "GET"):
    q = statistics.median(x[0] for x in ratios[test])
    l = statistics.median(x[1] for x in ratios[test])
    print(f"- {test}: median throughput ratio **{q:.2f}x**, median p50 latency ratio {l:.2f}x",
          file=md)
by_set = sorted(ratios["SET"])
print(by_set[len(by_set) // 2][2])
PY
)
cp "direct-$median_round.json" direct.json
cp "batched-$median_round.json" batched.json
"$RBENCH" compare direct.json batched.json --format markdown --plot batching.svg >table.md
"$RBENCH" compare direct.json batched.json --format markdown --plot batching.png >/dev/null
cd - >/dev/null
cp "$work/batching.svg" "$work/batching.png" bench/

server=$(redis-cli -u "$URL" INFO server | tr -d '\r' | sed -n 's/^redis_version:/Redis server v=/p')
{
    echo "# rbench: direct vs batched mode"
    echo
    echo "Measured by \`bench/rbench-batching.sh\` on $(date -u +%F):"
    echo "$(nproc) cores ($(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -1)), $(uname -sr),"
    echo "$server at $URL (client and server on the same machine), $("$RBENCH" --version)."
    echo
    echo '```sh'
    echo "rbench run --url $URL ${ARGS[*]} --mode direct --output direct.json"
    echo "rbench run --url $URL ${ARGS[*]} --mode batched --batch 16 --output batched.json"
    echo "rbench compare direct.json batched.json --format markdown --plot bench/batching.svg"
    echo '```'
    echo
    echo "In batched mode one round trip carries 16 operations (one MSET or MGET of 16 keys), as a"
    echo "batching agent in front of Redis would send them; requests/s counts operations, and the"
    echo "latency of an operation is that of its whole batch."
    echo
    echo "$ROUNDS rounds, the modes alternating which runs first:"
    echo
    cat "$work/rounds.md"
    echo
    echo "Round $median_round (the median SET ratio), in full:"
    echo
    cat "$work/table.md"
    echo
    echo "Latency percentiles: [batching.svg](batching.svg)."
} >bench/batching.md
echo "wrote bench/batching.md, bench/batching.svg, bench/batching.png" >&2
