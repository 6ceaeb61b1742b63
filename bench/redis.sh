# Sourced by the bench scripts: a private redis-server in a temporary directory, stopped and
# removed on exit. `bench_redis NAME` sets WORK (the directory) and PORT, defines R (redis-cli on
# that port) and returns once the server answers.
bench_redis() {
  WORK=$(mktemp -d "/tmp/rj-bench-$1.XXXXXX")
  PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
  redis-server --port "$PORT" --bind 127.0.0.1 --save '' --appendonly no --dir "$WORK" \
    --daemonize yes --pidfile "$WORK/redis.pid" --logfile "$WORK/redis.log"
  trap bench_redis_cleanup EXIT
  until R ping >/dev/null 2>&1; do sleep 0.05; done
}
bench_redis_cleanup() {
  [ -s "$WORK/redis.pid" ] && kill "$(cat "$WORK/redis.pid")" 2>/dev/null || true
  rm -rf "$WORK"
}
R() { redis-cli -p "$PORT" "$@"; }
