#!/usr/bin/env bash
# rbench run over TLS against plain TCP, on one private redis-server that listens on both (a
# throwaway CA made with openssl): throughput and client CPU per request, GET -c 50 -d 256 at
# -P 1 and -P 16; with OLD=path/to/an/older/rbench also that binary's plain run, to see whether
# TLS support costs the plain path anything. ROUNDS rounds (default 5), the runs' order rotating
# each round; medians. Writes the "TLS" section of bench/rbench-results.md (the rest is kept).
#
#   bench/rbench-tls.sh
#   OLD=/tmp/rbench-before ROUNDS=5 N1=300000 N16=1000000 bench/rbench-tls.sh
set -euo pipefail

cd "$(dirname "$0")/.."
ROUNDS=${ROUNDS:-5} N1=${N1:-300000} N16=${N16:-1000000} OLD=${OLD:-}
OUT=$(realpath -m "${OUT:-bench/rbench-results.md}")
if [[ -z ${RBENCH:-} ]]; then
    cargo build --release --quiet --bin rbench
    RBENCH=$PWD/target/release/rbench
fi
work=$(mktemp -d)
cleanup() {
    [[ -f $work/redis.pid ]] && kill "$(cat "$work/redis.pid")" 2>/dev/null
    rm -rf "$work"
}
trap cleanup EXIT

cd "$work"
openssl req -x509 -newkey rsa:2048 -nodes -keyout ca.key -out ca.pem -days 2 -subj /CN=bench-ca 2>/dev/null
openssl req -newkey rsa:2048 -nodes -keyout srv.key -out srv.csr -subj /CN=localhost 2>/dev/null
echo "subjectAltName=DNS:localhost,IP:127.0.0.1" >ext
openssl x509 -req -in srv.csr -CA ca.pem -CAkey ca.key -CAcreateserial -out srv.pem -days 2 \
    -extfile ext 2>/dev/null
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
tport=$((port + 1))
redis-server --port "$port" --tls-port "$tport" --bind 127.0.0.1 --save '' --appendonly no \
    --tls-cert-file srv.pem --tls-key-file srv.key --tls-ca-cert-file ca.pem \
    --tls-auth-clients no --daemonize yes --pidfile "$work/redis.pid" --logfile "$work/redis.log"
for _ in $(seq 50); do redis-cli -p "$port" PING >/dev/null 2>&1 && break; sleep 0.1; done
echo "{\"host\": \"127.0.0.1\", \"port\": $port}" >plain.json
echo "{\"host\": \"localhost\", \"port\": $tport, \"tls\": true, \"tls_ca\": \"ca.pem\"}" >tls.json
# Every GET hits: the keys are written once, before the first round.
"$RBENCH" run --config plain.json -t set -c 50 -d 256 -n 100000 --keyspace 100000 \
    --key-dist sequential -q --format json >/dev/null

RBENCH=$RBENCH OLD=$OLD ROUNDS=$ROUNDS N1=$N1 N16=$N16 python3 - "$OUT" <<'PY'
import json, os, resource, statistics, subprocess, sys, time

out = sys.argv[1]
rbench, old = os.environ["RBENCH"], os.environ["OLD"]
rounds, n1, n16 = int(os.environ["ROUNDS"]), int(os.environ["N1"]), int(os.environ["N16"])
base = ["run", "-t", "get", "-c", "50", "-d", "256", "--keyspace", "100000", "-q", "--format", "json"]
runs = []  # (label, binary, config, -P, n)
for p, n in ((1, n1), (16, n16)):
    if old:
        runs.append(("plain (before TLS)", old, "plain.json", p, n))
    runs.append(("plain", rbench, "plain.json", p, n))
    runs.append(("TLS", rbench, "tls.json", p, n))
samples = {}
load_before = open("/proc/loadavg").read().split()[:3]
t0 = time.time()
for r in range(rounds):
    for p in (1, 16):
        group = [x for x in runs if x[3] == p]
        k = r % len(group)
        for label, binary, config, _, n in group[k:] + group[:k]:
            before = resource.getrusage(resource.RUSAGE_CHILDREN)
            res = subprocess.run([binary] + base + ["--config", config, "-P", str(p), "-n", str(n)],
                                 capture_output=True, text=True, check=True)
            after = resource.getrusage(resource.RUSAGE_CHILDREN)
            cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
            t = json.loads(res.stdout)["results"]["tests"]["GET"]
            assert t["hits"] == n, (label, t)
            samples.setdefault((label, p), []).append((t["requests_per_second"], cpu / n * 1e6))
load_after = open("/proc/loadavg").read().split()[:3]
med = lambda xs: statistics.median(xs)
rows = []
for p in (1, 16):
    plain_rps = med([s[0] for s in samples[("plain", p)]])
    plain_cpu = med([s[1] for s in samples[("plain", p)]])
    for label in [x[0] for x in runs if x[3] == p]:
        ss = samples[(label, p)]
        rps, cpu = med([s[0] for s in ss]), med([s[1] for s in ss])
        rows.append(f"| GET | {p} | {label} | {rps:.0f} | {rps / plain_rps:.2f} | {cpu:.2f} | {cpu / plain_cpu:.2f} |")
server = subprocess.run(["redis-server", "--version"], capture_output=True, text=True).stdout.split()
version = subprocess.run([rbench, "--version"], capture_output=True, text=True).stdout.strip()
cmd = "bench/rbench-tls.sh" if not old else "OLD=… bench/rbench-tls.sh"
section = f"""<!-- rbench-tls: written by bench/rbench-tls.sh -->
## TLS

Measured by `ROUNDS={rounds} N1={n1} N16={n16} {cmd}` on {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}
({version}, Redis server {server[2] if len(server) > 2 else '?'}; {round(time.time() - t0)} s in all).
One private redis-server on loopback listening on a plain port and a TLS port (rustls on
rbench's side, OpenSSL on the server's, TLS 1.3), the same 100,000 keys (every GET hits);
`rbench run -t get -c 50 -d 256 --keyspace 100000 -P 1 -n {n1}` and `-P 16 -n {n16}` with a
redis.json of `"tls": true, "tls_ca": …` or none; medians of {rounds} rounds, the runs' order
rotating. Client CPU is rbench's user+sys time for the run (connect and handshakes included)
over requests. Load average before / after: {' '.join(load_before)} / {' '.join(load_after)}
(other work shares the 2 cores: read the ratios within a round, not the absolute rates).

| test | -P | run | req/s | vs plain | client CPU µs/req | vs plain |
|---|---:|---|---:|---:|---:|---:|
""" + "\n".join(rows) + """

Every sample (run, -P: req/s, client CPU µs/req):

```
""" + "\n".join(f"{l} -P {p}: " + ", ".join(f"{a:.0f} {b:.2f}" for a, b in ss)
                for (l, p), ss in samples.items()) + """
```
<!-- /rbench-tls -->
"""
text = open(out).read() if os.path.exists(out) else ""
start, end = text.find("<!-- rbench-tls"), text.find("<!-- /rbench-tls -->")
if start >= 0 and end >= 0:
    text = text[:start] + section + text[end + len("<!-- /rbench-tls -->\n"):]
else:
    text = text.rstrip("\n") + "\n\n" + section
open(out, "w").write(text)
print(section)
PY
