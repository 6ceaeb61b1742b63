#!/usr/bin/env bash
# rbench's native engine in --mode direct (one command per round trip) against --mode batched
# --batch 16 (16 operations per round trip, in MSET/MGET), same operations, clients, requests
# and value size; writes bench/batching.md, bench/batching.svg and bench/batching.png.
#
#   bench/rbench-batching.sh                    # against scripts/redis-dev (127.0.0.1:6390)
#   REDIS_URL=redis://host:6379 bench/rbench-batching.sh
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

cd "$work"
"$RBENCH" run --url "$URL" "${ARGS[@]}" --mode direct --output direct.json -q
"$RBENCH" run --url "$URL" "${ARGS[@]}" --mode batched --batch 16 --output batched.json -q
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
    cat "$work/table.md"
    echo
    echo "Latency percentiles: [batching.svg](batching.svg)."
} >bench/batching.md
echo "wrote bench/batching.md, bench/batching.svg, bench/batching.png" >&2
