//! The native load engine: raw non-blocking sockets, one epoll loop per thread, RESP written into
//! reused buffers, latencies into an HdrHistogram; closed loop, or open loop at a fixed rate with
//! coordinated-omission correction.
use std::collections::VecDeque;
use std::io::{self, Read, Write};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use mio::{Events, Interest, Poll, Token};

use hdrhistogram::serialization::{Deserializer, Serializer, V2Serializer};

use super::gen::{KeyDist, Keys, Piece, Rng, Sizes, Template};
use super::resp;
use super::stats;
use crate::exit::{fail, Kind};
use crate::store::IO_TIMEOUT;

/// The operations the engine drives: the built-in ones, and `--command` templates by number.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Op {
    Set,
    Get,
    Del,
    Exists,
    Incr,
    /// The `--command` template of this index.
    Custom(u16),
}

impl Op {
    pub const ALL: [Op; 5] = [Op::Set, Op::Get, Op::Del, Op::Exists, Op::Incr];

    pub fn name(self) -> &'static str {
        match self {
            Op::Set => "SET",
            Op::Get => "GET",
            Op::Del => "DEL",
            Op::Exists => "EXISTS",
            Op::Incr => "INCR",
            Op::Custom(_) => "COMMAND",
        }
    }

    pub fn parse(s: &str) -> Option<Op> {
        Op::ALL
            .into_iter()
            .find(|o| o.name().eq_ignore_ascii_case(s.trim()))
    }

    /// The multi-key command that carries a batch of this operation, if Redis has one.
    fn batch_command(self) -> Option<&'static [u8]> {
        match self {
            Op::Set => Some(b"MSET"),
            Op::Get => Some(b"MGET"),
            Op::Del => Some(b"DEL"),
            Op::Exists => Some(b"EXISTS"),
            Op::Incr | Op::Custom(_) => None,
        }
    }
}

/// Parse `set:1,get:9` (or `set=1,get=9`) into weights; `cmd1`, `cmd2`, … name the `--command`
/// templates in the order given.
pub fn parse_ratio(s: &str) -> Result<Vec<(Op, u32)>, String> {
    let mut out: Vec<(Op, u32)> = Vec::new();
    for part in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let (name, w) = part
            .split_once([':', '='])
            .ok_or_else(|| format!("{part:?}: expected OP:WEIGHT, as in set:1,get:9"))?;
        let custom = name
            .trim()
            .to_ascii_lowercase()
            .strip_prefix("cmd")
            .and_then(|n| n.parse::<u16>().ok())
            .filter(|&n| n >= 1)
            .map(|n| Op::Custom(n - 1));
        let op = custom.or_else(|| Op::parse(name)).ok_or_else(|| {
            format!(
                "{name:?}: unknown operation; one of set, get, del, exists, incr, or cmd1, cmd2, \
                 … for the --command templates"
            )
        })?;
        let w: u32 = w
            .trim()
            .parse()
            .map_err(|_| format!("{part:?}: the weight must be a whole number"))?;
        if w > 0 {
            match out.iter_mut().find(|(o, _)| *o == op) {
                Some(e) => e.1 += w,
                None => out.push((op, w)),
            }
        }
    }
    if out.is_empty() {
        return Err("the ratio needs at least one operation with a weight above 0".into());
    }
    Ok(out)
}

/// One command per round trip, or N operations per round trip in multi-key commands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Direct,
    Batched(u32),
}

/// What to run.
#[derive(Debug, Clone)]
pub struct Workload {
    pub mix: Vec<(Op, u32)>,
    pub requests: Option<u64>,
    pub duration: Option<Duration>,
    pub clients: u32,
    pub pipeline: u32,
    pub mode: Mode,
    /// Operations per second, open loop.
    pub rate: Option<f64>,
    pub sizes: Sizes,
    /// SET's keys expire after this many seconds.
    pub ttl: Option<u64>,
    /// Keys are numbered from `key_min`, `keyspace` of them.
    pub key_min: u64,
    pub keyspace: u64,
    pub key_dist: KeyDist,
    pub key_prefix: String,
    pub threads: u32,
    /// The `--command` templates, `Op::Custom(i)` in the mix.
    pub commands: Vec<Template>,
    /// Against a Redis Cluster: the master (index) of each slot. Each connection serves one
    /// master and sends it only keys of its slots.
    pub cluster: Option<Arc<Vec<u16>>>,
}

impl Workload {
    fn kinds(&self) -> usize {
        Op::ALL.len() + self.commands.len()
    }
}

/// What came back.
#[derive(Debug)]
pub struct Outcome {
    pub requests: u64,
    pub successes: u64,
    pub errors: u64,
    pub first_error: Option<String>,
    pub elapsed: Duration,
    /// Latency of each operation that succeeded, in nanoseconds; with --rate, from its intended
    /// start. Error replies are left out: a refusal costs the server almost nothing.
    pub hist: Histogram<u64>,
    /// Per operation: how many were issued and how many of them got an error reply.
    pub ops: Vec<(Op, u64, u64)>,
    /// GET (and MGET) keys that had a value, and those that had none (a nil reply).
    pub hits: u64,
    pub misses: u64,
    /// Error replies that were MOVED or ASK redirections (a Cluster's slot moved).
    pub moved: u64,
    /// Times a TLS connection's buffer was all taken but records of it waited for room in the
    /// socket, and were sent when it had some (`flush`).
    pub tls_held: u64,
    /// Bytes written to and read from the server.
    pub bytes_sent: u64,
    pub bytes_received: u64,
    /// Per second of the run (from its start), each thread's latency histogram of that second,
    /// V2-serialized: [`Outcome::second`] merges them.
    pub seconds: Vec<Vec<Vec<u8>>>,
}

impl Outcome {
    /// The latencies of the operations that completed in second `i` of the run.
    pub fn second(&self, i: usize) -> Histogram<u64> {
        let mut h = stats::new_histogram();
        let mut de = Deserializer::new();
        for bytes in self.seconds.get(i).into_iter().flatten() {
            let part: Histogram<u64> = de
                .deserialize(&mut &bytes[..])
                .expect("the engine's own serialization");
            h.add(&part).expect("histograms auto-resize");
        }
        h
    }
}

/// A non-blocking connection.
pub enum Stream {
    Tcp(mio::net::TcpStream),
    Unix(mio::net::UnixStream),
    /// Boxed: the plain variants stay small, and a plain run matches them first.
    Tls(Box<super::conn::TlsStream>),
}

impl Stream {
    #[inline]
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Stream::Tcp(s) => s.read(buf),
            Stream::Unix(s) => s.read(buf),
            Stream::Tls(s) => s.read(buf),
        }
    }

    #[inline]
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Stream::Tcp(s) => s.write(buf),
            Stream::Unix(s) => s.write(buf),
            Stream::Tls(s) => s.write(buf),
        }
    }

    fn register(&mut self, poll: &Poll, t: Token, i: Interest, again: bool) -> io::Result<()> {
        let r = poll.registry();
        match (self, again) {
            (Stream::Tcp(s), false) => r.register(s, t, i),
            (Stream::Tcp(s), true) => r.reregister(s, t, i),
            (Stream::Unix(s), false) => r.register(s, t, i),
            (Stream::Unix(s), true) => r.reregister(s, t, i),
            (Stream::Tls(s), false) => r.register(&mut s.sock, t, i),
            (Stream::Tls(s), true) => r.reregister(&mut s.sock, t, i),
        }
    }
}

/// Width of the key number, as redis-benchmark's `-r` keys (`key:000000012345`).
const KEY_DIGITS: usize = super::cluster::KEY_DIGITS;
const READ_CHUNK: usize = 64 * 1024;

/// Builds commands into a connection's write buffer.
struct Encoder {
    /// Per built-in op: the full direct command with a placeholder key number, and where the
    /// number is.
    direct: Vec<(Vec<u8>, usize)>,
    /// Per built-in op: `$len\r\n<prefix>000…\r\n`, the key as one bulk string, and where the
    /// number is.
    key_bulk: Vec<(Vec<u8>, usize)>,
    /// `<prefix>000…`, for `__key__`.
    key_text: Vec<u8>,
    /// Bytes of values, as long as the longest size.
    value: Vec<u8>,
    sizes: Sizes,
    /// SET's `EX seconds` arguments, with --ttl.
    ttl_args: Option<Vec<u8>>,
    /// SET is the template as it is (one size, no TTL).
    set_fixed: bool,
    templates: Vec<Template>,
    scratch: Vec<u8>,
    mix: Vec<(Op, u64)>,
    total_weight: u64,
    /// One key walk per Cluster master (one in all without a Cluster), so that a sequential
    /// walk of each master's keys covers them all.
    keys: Vec<Keys>,
    rng: Rng,
    /// The master of each slot (a Cluster), the master the unit being written goes to, and
    /// the key texts whose slot is computed: the plain key and INCR's counter key.
    owner: Option<Arc<Vec<u16>>>,
    node: u16,
    slot_keys: [(Vec<u8>, usize); 2],
}

fn op_index(op: Op) -> usize {
    match op {
        Op::Set => 0,
        Op::Get => 1,
        Op::Del => 2,
        Op::Exists => 3,
        Op::Incr => 4,
        Op::Custom(i) => Op::ALL.len() + i as usize,
    }
}

impl Encoder {
    fn new(w: &Workload, seed: u64, thread: u64) -> Encoder {
        let fixed = match w.sizes {
            Sizes::Fixed(n) => n,
            _ => 0,
        };
        let value = vec![b'x'; w.sizes.max().max(fixed)];
        let mut direct = Vec::new();
        let mut key_bulk = Vec::new();
        for op in Op::ALL {
            let mut key = w.key_prefix.as_bytes().to_vec();
            if op == Op::Incr {
                // Counters live apart from the SET values, as redis-benchmark's `counter:` keys.
                key.extend_from_slice(b"counter:");
            }
            let digits_at = key.len();
            key.extend(std::iter::repeat_n(b'0', KEY_DIGITS));
            let mut cmd = Vec::new();
            let args: Vec<&[u8]> = match op {
                Op::Set => vec![b"SET", &key, &value[..fixed]],
                Op::Get => vec![b"GET", &key],
                Op::Del => vec![b"DEL", &key],
                Op::Exists => vec![b"EXISTS", &key],
                Op::Incr => vec![b"INCR", &key],
                Op::Custom(_) => unreachable!("not a built-in"),
            };
            resp::encode(&mut cmd, &args);
            let pos = find(&cmd, &key).expect("key in command") + digits_at;
            direct.push((cmd, pos));
            let mut kb = Vec::new();
            resp::bulk(&mut kb, &key);
            let pos = find(&kb, &key).expect("key in bulk") + digits_at;
            key_bulk.push((kb, pos));
        }
        let mut key_text = w.key_prefix.as_bytes().to_vec();
        key_text.extend(std::iter::repeat_n(b'0', KEY_DIGITS));
        let ttl_args = w.ttl.map(|t| {
            let mut v = Vec::new();
            resp::bulk(&mut v, b"EX");
            resp::bulk(&mut v, t.to_string().as_bytes());
            v
        });
        let mix: Vec<(Op, u64)> = w.mix.iter().map(|&(o, n)| (o, n as u64)).collect();
        // Several threads walking a sequential range start apart, so together they cover it.
        let threads = w.threads.max(1) as u64;
        let start = w.keyspace.max(1) / threads * thread;
        let nodes = w.cluster.as_ref().map_or(1, |o| {
            o.iter()
                .filter(|&&m| m != super::cluster::UNSERVED)
                .max()
                .map_or(0, |&m| m as usize)
                + 1
        });
        let slot_key = |extra: &[u8]| {
            let mut k = w.key_prefix.as_bytes().to_vec();
            k.extend_from_slice(extra);
            let at = k.len();
            k.extend(std::iter::repeat_n(b'0', KEY_DIGITS));
            (k, at)
        };
        Encoder {
            direct,
            key_bulk,
            key_text,
            value,
            set_fixed: matches!(w.sizes, Sizes::Fixed(_)) && w.ttl.is_none(),
            sizes: w.sizes.clone(),
            ttl_args,
            templates: w.commands.clone(),
            scratch: Vec::new(),
            total_weight: mix.iter().map(|m| m.1).sum(),
            mix,
            keys: (0..nodes)
                .map(|_| Keys::new(w.key_dist, w.key_min, w.keyspace, start))
                .collect(),
            rng: Rng(seed | 1),
            owner: w.cluster.clone(),
            node: 0,
            slot_keys: [slot_key(b""), slot_key(b"counter:")],
        }
    }

    #[inline]
    fn pick(&mut self) -> Op {
        if self.mix.len() == 1 {
            return self.mix[0].0;
        }
        let mut r = self.rng.next_u64() % self.total_weight;
        for &(op, w) in &self.mix {
            if r < w {
                return op;
            }
            r -= w;
        }
        self.mix[0].0
    }

    /// A key number for `op`; against a Cluster, one of a slot the current master owns,
    /// drawn from the key distribution restricted to those slots. The draws are bounded: a key
    /// no draw placed (a master owning almost none of the range) goes as drawn, and its MOVED
    /// reply is counted.
    #[inline]
    fn key(&mut self, op: Op) -> u64 {
        let Some(owner) = &self.owner else {
            return self.keys[0].next(&mut self.rng);
        };
        let node = self.node;
        let keys = &mut self.keys[node as usize];
        let (text, at) = &mut self.slot_keys[usize::from(op == Op::Incr)];
        let mut k = 0;
        for _ in 0..10_000 {
            k = keys.next(&mut self.rng);
            resp::write_digits(&mut text[*at..*at + KEY_DIGITS], k);
            if owner[super::cluster::key_slot(text) as usize] == node {
                break;
            }
        }
        k
    }

    #[inline]
    fn value_bulk(&mut self, out: &mut Vec<u8>) {
        let n = self.sizes.pick(&mut self.rng);
        resp::header(out, b'$', n);
        out.extend_from_slice(&self.value[..n]);
        out.extend_from_slice(b"\r\n");
    }

    #[inline]
    fn key_into(&mut self, out: &mut Vec<u8>, op: Op) {
        let key = self.key(op);
        let (tpl, pos) = &self.key_bulk[op_index(op)];
        let start = out.len();
        out.extend_from_slice(tpl);
        resp::write_digits(&mut out[start + pos..start + pos + KEY_DIGITS], key);
    }

    /// One command of one operation.
    #[inline]
    fn direct(&mut self, out: &mut Vec<u8>) -> Op {
        let op = self.pick();
        self.one(out, op);
        op
    }

    #[inline]
    fn one(&mut self, out: &mut Vec<u8>, op: Op) {
        match op {
            Op::Custom(i) => self.custom(out, i as usize),
            Op::Set if !self.set_fixed => {
                let ttl = self.ttl_args.is_some();
                resp::header(out, b'*', if ttl { 5 } else { 3 });
                resp::bulk(out, b"SET");
                self.key_into(out, Op::Set);
                self.value_bulk(out);
                if let Some(t) = &self.ttl_args {
                    out.extend_from_slice(t);
                }
            }
            _ => {
                let key = self.key(op);
                let (tpl, pos) = &self.direct[op_index(op)];
                let start = out.len();
                out.extend_from_slice(tpl);
                resp::write_digits(&mut out[start + pos..start + pos + KEY_DIGITS], key);
            }
        }
    }

    /// A `--command` template with one key and one value size for all its placeholders.
    fn custom(&mut self, out: &mut Vec<u8>, i: usize) {
        let key = if self.templates[i].uses_key() {
            self.key(Op::Custom(i as u16))
        } else {
            0
        };
        let digits_at = self.key_text.len() - KEY_DIGITS;
        resp::write_digits(&mut self.key_text[digits_at..], key);
        let size = self.sizes.pick(&mut self.rng);
        let t = &self.templates[i];
        resp::header(out, b'*', t.args.len());
        for arg in &t.args {
            self.scratch.clear();
            for p in arg {
                match p {
                    Piece::Text(b) => self.scratch.extend_from_slice(b),
                    Piece::Key => self.scratch.extend_from_slice(&self.key_text),
                    Piece::Data => self.scratch.extend_from_slice(&self.value[..size]),
                }
            }
            resp::bulk(out, &self.scratch);
        }
    }

    /// `n` operations as multi-key commands (INCR, a SET with a TTL and `--command` templates as
    /// single commands); returns, per command, how many operations it carries.
    fn batch(&mut self, out: &mut Vec<u8>, n: u32, cmds: &mut Vec<(Op, u32)>, tally: &mut [u64]) {
        let kinds = Op::ALL.len() + self.templates.len();
        let mut per = vec![0u32; kinds];
        for _ in 0..n {
            per[op_index(self.pick())] += 1;
        }
        let all = Op::ALL
            .into_iter()
            .chain((0..self.templates.len()).map(|i| Op::Custom(i as u16)));
        for op in all {
            let k = per[op_index(op)];
            if k == 0 {
                continue;
            }
            tally[op_index(op)] += k as u64;
            let multi = match op {
                // MSET has no expiry: keys with a TTL go one SET each.
                Op::Set if self.ttl_args.is_some() => None,
                o => o.batch_command(),
            };
            match multi {
                Some(name) => {
                    let args = if op == Op::Set { 2 * k } else { k };
                    resp::header(out, b'*', 1 + args as usize);
                    resp::bulk(out, name);
                    for _ in 0..k {
                        self.key_into(out, op);
                        if op == Op::Set {
                            self.value_bulk(out);
                        }
                    }
                    cmds.push((op, k));
                }
                None => {
                    for _ in 0..k {
                        self.one(out, op);
                        cmds.push((op, 1));
                    }
                }
            }
        }
    }
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

/// A command waiting for its reply.
struct Pending {
    ops: u32,
    start: Instant,
    last_of_unit: bool,
    op: Op,
}

struct Conn {
    stream: Stream,
    wbuf: Vec<u8>,
    wpos: usize,
    rbuf: Vec<u8>,
    rpos: usize,
    rend: usize,
    inflight: VecDeque<Pending>,
    units: u32,
    want_write: bool,
    /// The Cluster master this connection serves (0 without a Cluster).
    node: u16,
    /// Times its buffer was all taken with TLS records left waiting for room.
    tls_held: u64,
}

/// Per-thread counters.
struct Tally {
    successes: u64,
    errors: u64,
    first_error: Option<String>,
    ops: Vec<u64>,
    op_errors: Vec<u64>,
    hits: u64,
    misses: u64,
    moved: u64,
    tls_held: u64,
    sent: u64,
    received: u64,
    /// The whole run's latencies, but for the current second's.
    hist: Histogram<u64>,
    /// The current second's latencies: every reply is recorded once, here.
    cur: Histogram<u64>,
    cur_index: usize,
    cur_end: Instant,
    epoch: Instant,
    /// Finished seconds, serialized: (second of the run, histogram).
    seconds: Vec<(usize, Vec<u8>)>,
    done: u64,
}

impl Tally {
    fn new(kinds: usize, epoch: Instant) -> Tally {
        Tally {
            successes: 0,
            errors: 0,
            first_error: None,
            ops: vec![0; kinds],
            op_errors: vec![0; kinds],
            hits: 0,
            misses: 0,
            moved: 0,
            tls_held: 0,
            sent: 0,
            received: 0,
            hist: stats::new_histogram(),
            cur: stats::new_histogram(),
            cur_index: 0,
            cur_end: epoch + Duration::from_secs(1),
            epoch,
            seconds: Vec::new(),
            done: 0,
        }
    }

    /// The histogram of the second `now` falls in.
    #[inline]
    fn second(&mut self, now: Instant) -> &mut Histogram<u64> {
        if now >= self.cur_end {
            self.roll(now);
        }
        &mut self.cur
    }

    /// Close the current second: it joins the run's total and is kept serialized (a histogram
    /// per second of a long run would not fit in memory; a serialized one takes a few hundred
    /// bytes).
    fn roll(&mut self, now: Instant) {
        if !self.cur.is_empty() {
            self.hist.add(&self.cur).expect("histograms auto-resize");
            let mut bytes = Vec::new();
            V2Serializer::new()
                .serialize(&self.cur, &mut bytes)
                .expect("serializing into memory");
            self.seconds.push((self.cur_index, bytes));
            self.cur.reset();
        }
        let i = now.saturating_duration_since(self.epoch).as_secs();
        self.cur_index = i as usize;
        self.cur_end = self.epoch + Duration::from_secs(i + 1);
    }
}

/// Per-thread share of the work.
struct Share {
    ops: Option<u64>,
    rate: Option<f64>,
}

/// Run the workload over already-connected streams, each with the Cluster master it serves
/// (0 without a Cluster).
pub fn run(
    w: &Workload,
    conns: Vec<(Stream, u16)>,
    progress: Option<Arc<AtomicU64>>,
    place: &str,
) -> anyhow::Result<Outcome> {
    let threads = (w.threads.max(1) as usize).min(conns.len().max(1));
    let mut groups: Vec<Vec<(Stream, u16)>> = (0..threads).map(|_| Vec::new()).collect();
    for (i, c) in conns.into_iter().enumerate() {
        groups[i % threads].push(c);
    }
    let per_thread_ops = |t: usize| {
        w.requests.map(|n| {
            let base = n / threads as u64;
            base + u64::from((t as u64) < n % threads as u64)
        })
    };
    // One clock for every thread's per-second samples.
    let epoch = Instant::now();
    let results: Vec<anyhow::Result<(Tally, Instant, Instant)>> = std::thread::scope(|s| {
        let handles: Vec<_> = groups
            .into_iter()
            .enumerate()
            .map(|(t, group)| {
                let share = Share {
                    ops: per_thread_ops(t),
                    rate: w.rate.map(|r| r / threads as f64),
                };
                let progress = progress.clone();
                s.spawn(move || worker(w, group, share, t as u64, epoch, progress, place))
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("engine thread panicked"))
            .collect()
    });
    let mut hist = stats::new_histogram();
    let (mut successes, mut errors, mut first_error) = (0, 0, None);
    let (mut ops, mut op_errors) = (vec![0u64; w.kinds()], vec![0u64; w.kinds()]);
    let (mut hits, mut misses, mut sent, mut received) = (0, 0, 0, 0);
    let (mut moved, mut tls_held) = (0, 0);
    let mut seconds: Vec<Vec<Vec<u8>>> = Vec::new();
    let (mut start, mut end): (Option<Instant>, Option<Instant>) = (None, None);
    for r in results {
        let (t, s, e) = r?;
        hist.add(&t.hist).expect("histograms auto-resize");
        hits += t.hits;
        misses += t.misses;
        moved += t.moved;
        tls_held += t.tls_held;
        sent += t.sent;
        received += t.received;
        for (i, bytes) in t.seconds {
            if seconds.len() <= i {
                seconds.resize_with(i + 1, Vec::new);
            }
            seconds[i].push(bytes);
        }
        successes += t.successes;
        errors += t.errors;
        if first_error.is_none() {
            first_error = t.first_error;
        }
        for (a, b) in ops.iter_mut().zip(t.ops) {
            *a += b;
        }
        for (a, b) in op_errors.iter_mut().zip(t.op_errors) {
            *a += b;
        }
        start = Some(start.map_or(s, |x: Instant| x.min(s)));
        end = Some(end.map_or(e, |x: Instant| x.max(e)));
    }
    let elapsed = match (start, end) {
        (Some(s), Some(e)) => e.duration_since(s),
        _ => Duration::ZERO,
    };
    Ok(Outcome {
        requests: successes + errors,
        successes,
        errors,
        first_error,
        elapsed,
        hist,
        ops: Op::ALL
            .into_iter()
            .chain((0..w.commands.len()).map(|i| Op::Custom(i as u16)))
            .filter(|&op| ops[op_index(op)] > 0)
            .map(|op| (op, ops[op_index(op)], op_errors[op_index(op)]))
            .collect(),
        hits,
        misses,
        moved,
        tls_held,
        bytes_sent: sent,
        bytes_received: received,
        seconds,
    })
}

fn worker(
    w: &Workload,
    streams: Vec<(Stream, u16)>,
    share: Share,
    seed: u64,
    epoch: Instant,
    progress: Option<Arc<AtomicU64>>,
    place: &str,
) -> anyhow::Result<(Tally, Instant, Instant)> {
    let lost = |e: io::Error| {
        fail(
            Kind::Unavailable,
            format!("connection to Redis at {place} failed during the run: {e}"),
        )
    };
    let mut poll = Poll::new().map_err(lost)?;
    let mut conns: Vec<Conn> = Vec::with_capacity(streams.len());
    for (i, (mut s, node)) in streams.into_iter().enumerate() {
        s.register(&poll, Token(i), Interest::READABLE, false)
            .map_err(lost)?;
        conns.push(Conn {
            stream: s,
            wbuf: Vec::with_capacity(16 * 1024),
            wpos: 0,
            rbuf: vec![0; READ_CHUNK],
            rpos: 0,
            rend: 0,
            inflight: VecDeque::with_capacity(w.pipeline as usize * 4),
            units: 0,
            want_write: false,
            node,
            tls_held: 0,
        });
    }
    let mut enc = Encoder::new(
        w,
        0x9E37_79B9_7F4A_7C15 ^ (seed.wrapping_add(1) << 17),
        seed,
    );
    let mut tally = Tally::new(w.kinds(), epoch);
    let unit_ops = match w.mode {
        Mode::Direct => 1u64,
        Mode::Batched(n) => n.max(1) as u64,
    };
    let pipeline = w.pipeline.max(1);
    let mut remaining = share.ops.unwrap_or(u64::MAX);
    // Open loop: unit k is due at t0 + k·interval (computed, not summed, so rounding never
    // drifts the rate); units due but not yet sent wait in the backlog. The timer is set after
    // t0, so that it never ticks before a cell has begun.
    let interval = share.rate.map(|r| unit_ops as f64 / r.max(1e-9));
    let mut timer = match interval {
        Some(_) => Some(Timer::new(&poll).map_err(lost)?),
        None => None,
    };
    let t0 = Instant::now();
    let deadline = w.duration.map(|d| t0 + d);
    let mut events = Events::with_capacity(1024);
    let mut cmds: Vec<(Op, u32)> = Vec::with_capacity(64);
    let mut reported = 0u64;
    let mut last_reply = t0;
    // Since when requests have been outstanding without a byte of reply: a stopped or blocked
    // server must end the run (69), not hang it, whatever --duration says.
    let mut quiet_since = t0;
    let mut sched = interval
        .map(|iv| Schedule::new(t0, iv, window_for(iv, conns.len() as u64 * pipeline as u64)));
    if let (Some(t), Some(sc)) = (&mut timer, &sched) {
        t.tick_every(sc.window).map_err(lost)?;
    }
    let mut backlog: VecDeque<(Instant, u64)> = VecDeque::new();

    // Send one unit (a command, or a batch) on connection `c`, started at `start`.
    let issue = |c: &mut Conn,
                 enc: &mut Encoder,
                 tally: &mut Tally,
                 cmds: &mut Vec<(Op, u32)>,
                 remaining: &mut u64,
                 start: Instant| {
        let n = unit_ops.min(*remaining);
        *remaining -= n;
        enc.node = c.node;
        let before = c.wbuf.len();
        match w.mode {
            Mode::Direct => {
                let op = enc.direct(&mut c.wbuf);
                tally.ops[op_index(op)] += 1;
                c.inflight.push_back(Pending {
                    ops: 1,
                    start,
                    last_of_unit: true,
                    op,
                });
            }
            Mode::Batched(_) => {
                cmds.clear();
                enc.batch(&mut c.wbuf, n as u32, cmds, &mut tally.ops);
                let last = cmds.len().saturating_sub(1);
                for (i, &(op, k)) in cmds.iter().enumerate() {
                    c.inflight.push_back(Pending {
                        ops: k,
                        start,
                        last_of_unit: i == last,
                        op,
                    });
                }
            }
        }
        c.units += 1;
        tally.sent += (c.wbuf.len() - before) as u64;
    };

    // Closed loop: every connection starts with a full pipeline.
    if interval.is_none() {
        let now = Instant::now();
        for c in conns.iter_mut() {
            for _ in 0..pipeline {
                if remaining == 0 || deadline.is_some_and(|d| now >= d) {
                    break;
                }
                issue(c, &mut enc, &mut tally, &mut cmds, &mut remaining, now);
            }
        }
        for (i, c) in conns.iter_mut().enumerate() {
            flush(c, &poll, i).map_err(lost)?;
        }
    }

    let mut free_cursor = 0usize;
    loop {
        let busy = conns.iter().any(|c| c.units > 0);
        let schedule_open = |next_due: Instant, remaining: u64| {
            remaining > 0 && deadline.is_none_or(|d| next_due < d)
        };
        if let Some(sc) = &mut sched {
            // Queue every unit of the window cell that holds `now` (cells are fixed, counted
            // from t0): the wake-up at the cell's start sends them all, and the wake-ups for
            // replies later in the cell send nothing, so each cell is one burst (ARCHITECTURE.md
            // §4, rbench).
            let now = Instant::now();
            sc.take_due(now, |due| {
                if !schedule_open(due, remaining) {
                    return false;
                }
                let n = unit_ops.min(remaining);
                backlog.push_back((due, n));
                remaining -= n;
                true
            });
            // Hand them to connections with room in their pipeline.
            if !backlog.is_empty() {
                let n = conns.len();
                for k in 0..n {
                    if backlog.is_empty() {
                        break;
                    }
                    let i = (free_cursor + k) % n;
                    let c = &mut conns[i];
                    let mut sent = false;
                    while c.units < pipeline {
                        let Some((due, mut one)) = backlog.pop_front() else {
                            break;
                        };
                        // Latency counts from the intended start, or from the send when the
                        // window sent it early: never from a moment before the request left.
                        // The budget was taken when the unit was scheduled.
                        issue(c, &mut enc, &mut tally, &mut cmds, &mut one, due.min(now));
                        sent = true;
                    }
                    if sent {
                        flush(c, &poll, i).map_err(lost)?;
                    }
                }
                free_cursor = (free_cursor + 1) % n.max(1);
            }
            let busy = conns.iter().any(|c| c.units > 0);
            if !busy && backlog.is_empty() && !schedule_open(sc.due, remaining) {
                break;
            }
        } else if !busy {
            break;
        }

        let mut timeout: Option<Duration> = None;
        if let (Some(t), Some(sc)) = (&mut timer, &sched) {
            // The timer ticks at every cell's start until the last unit is queued; units queued
            // but not sent wait for a reply to free a connection, which wakes us too.
            if t.ticking && !schedule_open(sc.due, remaining) {
                t.stop().map_err(lost)?;
            }
        }
        let now = Instant::now();
        let outstanding: u64 = conns.iter().map(|c| c.inflight.len() as u64).sum();
        if outstanding == 0 {
            quiet_since = now;
        } else {
            let silent = now.saturating_duration_since(quiet_since);
            if silent >= IO_TIMEOUT {
                return Err(fail(
                    Kind::Unavailable,
                    format!(
                        "Redis at {place} sent no reply for {} s with {outstanding} requests \
                         outstanding; is the server stopped or blocked (SIGSTOP, DEBUG SLEEP, a \
                         long script)?",
                        IO_TIMEOUT.as_secs()
                    ),
                ));
            }
            let left = IO_TIMEOUT - silent;
            timeout = Some(timeout.map_or(left, |t: Duration| t.min(left)));
        }
        match poll.poll(&mut events, timeout) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(lost(e)),
        }
        for ev in events.iter() {
            let i = ev.token().0;
            if i == TIMER {
                if let Some(t) = &mut timer {
                    t.clear();
                }
                continue;
            }
            let c = &mut conns[i];
            if ev.is_writable() && c.want_write {
                flush(c, &poll, i).map_err(lost)?;
            }
            if !(ev.is_readable() || ev.is_read_closed() || ev.is_error()) {
                continue;
            }
            let got = fill(c).map_err(lost)?;
            let now = Instant::now();
            if got > 0 {
                quiet_since = now;
                tally.received += got as u64;
            }
            last_reply = now;
            drain_replies(c, now, &mut tally).map_err(|e| {
                fail(
                    Kind::Unavailable,
                    format!("Redis at {place} sent a reply rbench cannot read: {e}"),
                )
            })?;
            if interval.is_none() && c.units == 0 {
                for _ in 0..pipeline {
                    if remaining == 0 || deadline.is_some_and(|d| now >= d) {
                        break;
                    }
                    issue(c, &mut enc, &mut tally, &mut cmds, &mut remaining, now);
                }
            }
            if c.wpos < c.wbuf.len() {
                flush(c, &poll, i).map_err(lost)?;
            }
        }
        if let Some(p) = &progress {
            if tally.done != reported {
                p.fetch_add(tally.done - reported, Ordering::Relaxed);
                reported = tally.done;
            }
        }
    }
    tally.roll(Instant::now());
    tally.tls_held = conns.iter().map(|c| c.tls_held).sum();
    Ok((tally, t0, last_reply))
}

const TIMER: usize = usize::MAX;

/// The open loop's timetable: when the next unit is due, and the fixed cells of time (one
/// window wide, counted from t0) whose units one wake-up sends together.
struct Schedule {
    t0: Instant,
    /// Seconds between units.
    interval: f64,
    /// Units scheduled so far; the next one is due at t0 + k·interval.
    k: u64,
    due: Instant,
    window: Duration,
}

impl Schedule {
    fn new(t0: Instant, interval: f64, window: Duration) -> Schedule {
        Schedule {
            t0,
            interval,
            k: 0,
            due: t0,
            window: window.max(Duration::from_nanos(1)),
        }
    }

    #[inline]
    fn advance(&mut self) {
        self.k += 1;
        self.due = self.t0 + Duration::from_secs_f64(self.k as f64 * self.interval);
    }

    /// Take, in order, every unit due before the end of `now`'s cell, as long as `take` wants
    /// it (the run may have no units left).
    #[inline]
    fn take_due(&mut self, now: Instant, mut take: impl FnMut(Instant) -> bool) {
        let horizon = self.cell_end(now);
        while self.due < horizon && take(self.due) {
            self.advance();
        }
    }

    /// The end of the cell that holds `now`: a wake-up at `now` sends the units due before it.
    /// A moving horizon (`now` + window) would instead send a few units of the next cell on
    /// every wake-up for a reply, and keep the sends spread over many small wake-ups.
    #[inline]
    fn cell_end(&self, now: Instant) -> Instant {
        let w = self.window.as_nanos();
        let since = now.saturating_duration_since(self.t0).as_nanos();
        self.t0 + Duration::from_nanos(((since / w + 1) * w) as u64)
    }
}

/// Bounds of the window of units one wake-up sends. Each wake-up costs the client a context
/// switch, and the closed loop pays it once per handful of replies, because its connections
/// answer in groups; an open loop that wakes for every few units pays it several times as often
/// (perf stat of context switches and epoll_wait calls per request, beside the closed loop's).
/// A window of about [`UNITS_PER_WAKE`] units brings that count down to the closed loop's; it
/// is at least [`WINDOW_MIN`] and at most [`WINDOW_MAX`]: a unit is sent at most that much
/// ahead of its moment (its latency then counts from the send), and the load arrives in bursts
/// of a window's units, as a closed loop's does.
const WINDOW_MIN: Duration = Duration::from_micros(250);
const WINDOW_MAX: Duration = Duration::from_millis(1);
const UNITS_PER_WAKE: f64 = 16.0;

/// The window for units `interval` seconds apart over connections with room for `slots` units
/// in flight: about [`UNITS_PER_WAKE`] units, never more than a quarter of the slots (a burst
/// must not fill the connections, or units wait behind it), and never less than one interval
/// (a cell without a unit would be a wake-up for nothing).
fn window_for(interval: f64, slots: u64) -> Duration {
    let units = UNITS_PER_WAKE.min((slots as f64 / 4.0).max(1.0));
    let w = Duration::from_secs_f64((units * interval).max(0.0)).clamp(WINDOW_MIN, WINDOW_MAX);
    w.max(Duration::from_secs_f64(interval.max(0.0)))
}

/// A monotonic timer in the poll set that ticks at the start of every window cell: set once
/// per run, because setting a timer that becomes the CPU's next expiry is dear in a VM (about
/// 12 µs), and a periodic one needs no setting per cell.
struct Timer {
    fd: nix::sys::timerfd::TimerFd,
    ticking: bool,
    /// How often it was set or stopped, for the tests.
    sets: u64,
}

impl Timer {
    fn new(poll: &Poll) -> io::Result<Timer> {
        use nix::sys::timerfd::{ClockId, TimerFd, TimerFlags};
        use std::os::fd::{AsFd, AsRawFd};
        let fd = TimerFd::new(
            ClockId::CLOCK_MONOTONIC,
            TimerFlags::TFD_NONBLOCK | TimerFlags::TFD_CLOEXEC,
        )?;
        let raw = fd.as_fd().as_raw_fd();
        poll.registry().register(
            &mut mio::unix::SourceFd(&raw),
            Token(TIMER),
            Interest::READABLE,
        )?;
        Ok(Timer {
            fd,
            ticking: false,
            sets: 0,
        })
    }

    /// Tick every `period`, the first time one period from now.
    fn tick_every(&mut self, period: Duration) -> io::Result<()> {
        use nix::sys::time::TimeSpec;
        use nix::sys::timerfd::{Expiration, TimerSetTimeFlags};
        let p = TimeSpec::from_duration(period.max(Duration::from_nanos(1)));
        self.fd
            .set(Expiration::Interval(p), TimerSetTimeFlags::empty())?;
        self.ticking = true;
        self.sets += 1;
        Ok(())
    }

    fn stop(&mut self) -> io::Result<()> {
        self.fd.unset()?;
        self.ticking = false;
        self.sets += 1;
        Ok(())
    }

    /// Read the expiry count, so that the next tick is an edge for the edge-triggered poll;
    /// EAGAIN when there was none.
    fn clear(&mut self) {
        let _ = self.fd.wait();
    }
}

/// Read what the socket has; says how many bytes came. A short read means the socket is
/// drained, so edge-triggered polling will report the next bytes; only a full buffer is read
/// again.
#[inline]
fn fill(c: &mut Conn) -> io::Result<usize> {
    let mut got = 0;
    loop {
        if c.rpos == c.rend {
            c.rpos = 0;
            c.rend = 0;
        } else if c.rend == c.rbuf.len() {
            if c.rpos > 0 {
                c.rbuf.copy_within(c.rpos..c.rend, 0);
                c.rend -= c.rpos;
                c.rpos = 0;
            } else {
                let n = c.rbuf.len() * 2;
                c.rbuf.resize(n, 0);
            }
        }
        let room = c.rbuf.len() - c.rend;
        match c.stream.read(&mut c.rbuf[c.rend..]) {
            Ok(0) => {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "the server closed the connection",
                ))
            }
            Ok(n) => {
                c.rend += n;
                got += n;
                if n < room {
                    return Ok(got);
                }
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(got),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
}

#[inline]
fn drain_replies(c: &mut Conn, now: Instant, t: &mut Tally) -> Result<(), resp::ProtocolError> {
    while c.rpos < c.rend {
        let Some(s) = resp::scan(&c.rbuf[c.rpos..c.rend])? else {
            break;
        };
        let Some(p) = c.inflight.pop_front() else {
            return Err(resp::ProtocolError("a reply nobody asked for".into()));
        };
        if s.error {
            let reply = &c.rbuf[c.rpos..c.rpos + s.len];
            if reply.starts_with(b"-MOVED ") || reply.starts_with(b"-ASK ") {
                t.moved += p.ops as u64;
            }
            t.errors += p.ops as u64;
            t.op_errors[op_index(p.op)] += p.ops as u64;
            if t.first_error.is_none() {
                t.first_error = Some(resp::text(&c.rbuf[c.rpos..c.rpos + s.len]));
            }
        } else {
            t.successes += p.ops as u64;
            if p.op == Op::Get {
                let missed = (s.nils as u64).min(p.ops as u64);
                t.misses += missed;
                t.hits += p.ops as u64 - missed;
            }
            let ns = now.saturating_duration_since(p.start).as_nanos() as u64;
            let _ = t.second(now).record_n(ns, p.ops as u64);
        }
        t.done += p.ops as u64;
        c.rpos += s.len;
        if p.last_of_unit {
            c.units -= 1;
        }
    }
    Ok(())
}

/// Write the pending bytes; ask for writability only while the socket is full.
#[inline]
fn flush(c: &mut Conn, poll: &Poll, i: usize) -> io::Result<()> {
    while c.wpos < c.wbuf.len() {
        match c.stream.write(&c.wbuf[c.wpos..]) {
            Ok(n) => c.wpos += n,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return wait_writable(c, poll, i),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    // TLS took every byte but may hold records the socket had no room for: they are sent
    // before the buffer counts as written. The one test a plain stream pays.
    if let Stream::Tls(t) = &mut c.stream {
        match t.push() {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                c.tls_held += 1;
                return wait_writable(c, poll, i);
            }
            Err(e) => return Err(e),
        }
    }
    c.wbuf.clear();
    c.wpos = 0;
    if c.want_write {
        c.want_write = false;
        c.stream
            .register(poll, Token(i), Interest::READABLE, true)?;
    }
    Ok(())
}

#[cold]
fn wait_writable(c: &mut Conn, poll: &Poll, i: usize) -> io::Result<()> {
    if !c.want_write {
        c.want_write = true;
        c.stream.register(
            poll,
            Token(i),
            Interest::READABLE | Interest::WRITABLE,
            true,
        )?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn workload(mix: Vec<(Op, u32)>) -> Workload {
        Workload {
            mix,
            requests: Some(10),
            duration: None,
            clients: 1,
            pipeline: 1,
            mode: Mode::Direct,
            rate: None,
            sizes: Sizes::Fixed(4),
            ttl: None,
            key_min: 0,
            keyspace: 1,
            key_dist: KeyDist::Uniform,
            key_prefix: "p:".into(),
            threads: 1,
            commands: Vec::new(),
            cluster: None,
        }
    }

    #[test]
    fn ratio_parses_and_merges() {
        assert_eq!(
            parse_ratio("set:1, GET=9,set:1").unwrap(),
            vec![(Op::Set, 2), (Op::Get, 9)]
        );
        assert!(parse_ratio("set").is_err());
        assert!(parse_ratio("foo:1").is_err());
        assert!(parse_ratio("set:0").is_err());
        assert!(parse_ratio("set:x").is_err());
    }

    #[test]
    fn direct_commands_carry_the_key_number() {
        let mut e = Encoder::new(&workload(vec![(Op::Set, 1)]), 1, 0);
        let mut out = Vec::new();
        e.direct(&mut out);
        assert_eq!(
            out,
            b"*3\r\n$3\r\nSET\r\n$14\r\np:000000000000\r\n$4\r\nxxxx\r\n".to_vec()
        );
        let mut e = Encoder::new(&workload(vec![(Op::Incr, 1)]), 1, 0);
        out.clear();
        e.direct(&mut out);
        assert_eq!(
            out,
            b"*2\r\n$4\r\nINCR\r\n$22\r\np:counter:000000000000\r\n".to_vec()
        );
    }

    #[test]
    fn keys_stay_in_the_keyspace() {
        let mut w = workload(vec![(Op::Get, 1)]);
        w.keyspace = 7;
        let mut e = Encoder::new(&w, 42, 0);
        let mut seen = std::collections::BTreeSet::new();
        for _ in 0..500 {
            let mut out = Vec::new();
            e.direct(&mut out);
            let s = String::from_utf8(out).unwrap();
            let k = s.split("\r\n").nth(4).unwrap().to_string();
            seen.insert(k);
        }
        assert_eq!(seen.len(), 7, "{seen:?}");
        assert!(seen.contains("p:000000000006"));
    }

    #[test]
    fn batches_group_operations_into_multi_key_commands() {
        let mut e = Encoder::new(&workload(vec![(Op::Set, 1), (Op::Incr, 1)]), 3, 0);
        let mut out = Vec::new();
        let mut cmds = Vec::new();
        let mut tally = [0u64; 5];
        e.batch(&mut out, 20, &mut cmds, &mut tally);
        let total: u32 = cmds.iter().map(|c| c.1).sum();
        assert_eq!(total, 20);
        assert_eq!(tally[op_index(Op::Set)] + tally[op_index(Op::Incr)], 20);
        // One MSET, then one INCR per increment.
        assert_eq!(cmds.iter().filter(|c| c.0 == Op::Set).count(), 1);
        let s = String::from_utf8(out).unwrap();
        assert!(s.contains("$4\r\nMSET\r\n"), "{s}");
        assert_eq!(s.matches("INCR").count() as u64, tally[op_index(Op::Incr)]);
        // Every reply count matches: parse our own output as replies would be counted.
        let mut pos = 0;
        let bytes = s.as_bytes();
        let mut n = 0;
        while let Some(r) = resp::scan(&bytes[pos..]).unwrap() {
            pos += r.len;
            n += 1;
        }
        assert_eq!(pos, bytes.len());
        assert_eq!(n, cmds.len());
    }

    #[test]
    fn mix_follows_the_weights() {
        let mut e = Encoder::new(&workload(vec![(Op::Set, 1), (Op::Get, 3)]), 9, 0);
        let mut sets = 0;
        for _ in 0..40_000 {
            if e.pick() == Op::Set {
                sets += 1;
            }
        }
        assert!((9_000..11_000).contains(&sets), "{sets}");
    }

    #[test]
    fn open_loop_schedule_does_not_drift_and_groups_units_by_window() {
        let t0 = Instant::now();
        // 1/60000 s is no whole number of nanoseconds: a summed interval would drift.
        let mut sc = Schedule::new(t0, 1.0 / 60_000.0, Duration::from_micros(250));
        let mut cells = std::collections::BTreeSet::new();
        for _ in 0..600_000 {
            let end = sc.cell_end(sc.due);
            assert!(end - sc.window <= sc.due && sc.due < end);
            cells.insert(end);
            sc.advance();
        }
        assert_eq!(sc.due.duration_since(t0), Duration::from_secs(10));
        // Ten seconds of 250 µs cells: one burst per cell, not one per unit.
        assert_eq!(cells.len(), 40_000);
    }

    /// The units one wake-up at each of `wakes` (µs after t0) takes, one every 10 µs in cells
    /// of 250 µs.
    fn taken_at(wakes: &[u64]) -> Vec<usize> {
        let t0 = Instant::now();
        let mut sc = Schedule::new(t0, 10e-6, Duration::from_micros(250));
        wakes
            .iter()
            .map(|&us| {
                let mut n = 0;
                sc.take_due(t0 + Duration::from_micros(us), |_| {
                    n += 1;
                    true
                });
                n
            })
            .collect()
    }

    #[test]
    fn a_wake_up_sends_its_cell_and_wake_ups_for_replies_send_nothing_more() {
        // The tick at t0 sends the first cell; replies at 40, 120 and 200 µs take nothing (a
        // horizon of now + window would send 4, 8 and 8 units of the next cell there, one small
        // burst per reply); the tick at 250 µs sends the second cell whole.
        assert_eq!(taken_at(&[0, 40, 120, 200, 250, 251]), [25, 0, 0, 0, 25, 0]);
        // A wake-up late by more than a cell sends everything due by the end of its cell.
        assert_eq!(taken_at(&[0, 610]), [25, 50]);
        // `take` refusing (no units left) stops the schedule where it is.
        let t0 = Instant::now();
        let mut sc = Schedule::new(t0, 10e-6, Duration::from_micros(250));
        let mut left = 3;
        sc.take_due(t0, |_| {
            left -= 1;
            left >= 0
        });
        assert_eq!(sc.k, 3);
    }

    #[test]
    fn the_window_holds_a_burst_of_units_within_its_bounds() {
        let us = |d: Duration| d.as_micros();
        // 50 connections of one slot: bursts of a quarter of them (12.5 units).
        assert_eq!(us(window_for(1.0 / 47_000.0, 50)), 265);
        // Fast: never below the minimum, though it holds more units then.
        assert_eq!(us(window_for(1.0 / 200_000.0, 50)), 250);
        // Slow: never above the maximum, so a unit is never sent more than 1 ms early ...
        assert_eq!(us(window_for(1.0 / 10_000.0, 1000)), 1000);
        // ... and never shorter than one interval, so no cell is empty.
        assert_eq!(us(window_for(0.01, 50)), 10_000);
        // Many slots: 16 units.
        assert_eq!(us(window_for(1.0 / 32_000.0, 1000)), 500);
    }

    #[test]
    fn the_timer_is_set_once_and_ticks_every_cell() {
        let mut poll = Poll::new().unwrap();
        let mut events = Events::with_capacity(8);
        let mut t = Timer::new(&poll).unwrap();
        let start = Instant::now();
        t.tick_every(Duration::from_millis(2)).unwrap();
        let mut ticks = 0;
        while ticks < 5 {
            poll.poll(&mut events, Some(Duration::from_secs(2)))
                .unwrap();
            assert!(
                !events.is_empty(),
                "the timer stopped ticking after {ticks}"
            );
            for ev in events.iter() {
                assert_eq!(ev.token(), Token(TIMER));
                ticks += 1;
                t.clear();
            }
        }
        // Five ticks, never early, for one setting.
        assert!(start.elapsed() >= Duration::from_millis(10));
        assert_eq!(t.sets, 1);
        t.stop().unwrap();
        assert!(!t.ticking);
        poll.poll(&mut events, Some(Duration::from_millis(5)))
            .unwrap();
        assert!(events.is_empty(), "a stopped timer ticked");
    }
}
