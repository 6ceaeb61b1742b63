//! rbench: benchmark the Redis server of redis.json — wrap redis-benchmark, run the native
//! engine, compare results.
use std::io::{IsTerminal, Write};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use clap::{Parser, Subcommand};

use crate::bench::cluster::{self, SlotMap, UNSERVED};
use crate::bench::compare::{self, CompareFormat};
use crate::bench::engine::{self, Mode, Op, Outcome, Workload};
use crate::bench::export;
use crate::bench::gen::{self, KeyDist, Sizes, Template};
use crate::bench::{self, conn, hdr, plot, stats, wrap};
use crate::bench::{BenchConfig, BenchDoc, OpCount, Results, RunFormat, Sample, TestResult, Tests};
use crate::cli::{self, ConnArgs};
use crate::config::{Addr, Config};
use crate::exit::{fail, Kind};

pub const EXAMPLES: &str = "\
  rbench run -t set,get -c 50 -d 256 -P 16 -n 1000000
  rbench run --ratio set:1,get:9 --duration 30s --output mix.json
  rbench run -t get --rate 20000 --duration 1m --format csv
  rbench run -t set --mode batched --batch 100 --keyspace 1000000
  rbench run -t set,get --key-dist sequential --key-min 1 --key-max 100000 -d 100-1000
  rbench run --command 'HSET h:__key__ f __data__' --ratio get:4,cmd1:1 --runs 3
  rbench run -t get --key-dist zipf --duration 30s --hdr-out get-latency
  rbench run --cluster -t set,get -c 20 --url redis://node1:7000
  rbench wrap -t set,get -n 100000 -c 50 -d 256 --output rb.json
  rbench compare rb.json native.json --format markdown --plot latency.svg
";

/// Benchmark a Redis server: wrap redis-benchmark, drive load natively, compare results.
#[derive(Debug, Parser)]
#[command(
    name = "rbench",
    version = cli::VERSION,
    after_long_help = cli::footer(EXAMPLES),
    subcommand_required = true,
    arg_required_else_help = true
)]
pub struct Args {
    #[command(subcommand)]
    pub command: Sub,
}

#[derive(Debug, Subcommand)]
pub enum Sub {
    /// Run the system's redis-benchmark (--csv) against the server and record its results.
    ///
    /// The password goes to redis-benchmark only through REDISCLI_AUTH, never on its command
    /// line. redis-benchmark 7.0 does not read that variable: against a server with a password
    /// wrap exits 77 and says so; use `rbench run`, which authenticates itself.
    ///
    /// redis-benchmark from Redis 7 stops at the first error reply (a read-only replica refusing
    /// SET): wrap exits 69, or 77 for NOPERM, and records nothing. Older versions (and a
    /// program without --version, as they are) count error replies as served requests; wrap
    /// passes them -e to see the errors, and records no figure for a test that got any, as it
    /// cannot tell how many failed.
    ///
    /// With TLS wrap passes --tls only: redis-benchmark trusts OpenSSL's roots, not tls_ca,
    /// and sends no client certificate (give it --cacert, --cert, --key after --), or use
    /// `rbench run`, which reads them from redis.json.
    #[command(after_long_help = cli::footer(EXAMPLES))]
    Wrap(WrapArgs),
    /// Drive load with the native engine: raw sockets, HdrHistogram latencies.
    ///
    /// A TLS server (rediss://, "tls": true) is spoken to with rustls: trusted by redis.json's
    /// tls_ca (else the system's roots), with the client certificate tls_cert and tls_key for a
    /// server with tls-auth-clients yes. A certificate refused either way is exit 69 with what
    /// to set, at the first connection.
    ///
    /// REQ/S and the latencies count only the replies that succeeded. Error replies are counted
    /// apart (errors, error_rate and first_error in JSON and CSV, per operation in a --ratio
    /// mix) and shown after the table. A test in which every request failed (a read-only
    /// replica refusing SET) ends the run with nothing written: exit 77 for NOPERM or NOAUTH,
    /// 65 for WRONGTYPE, 69 for any other refusal.
    #[command(after_long_help = cli::footer(EXAMPLES))]
    Run(RunArgs),
    /// Compare result files: throughput and latency with ratios against the first file.
    #[command(after_long_help = cli::footer(EXAMPLES))]
    Compare(CompareArgs),
}

/// The options `wrap` and `run` share, with redis-benchmark's letters.
#[derive(Debug, Clone, clap::Args)]
pub struct Shared {
    /// Tests to run, comma-separated (run: set, get, del, exists, incr; default set,get.
    /// wrap: redis-benchmark's names; default all of its tests).
    #[arg(short = 't', long, value_delimiter = ',', value_name = "TESTS")]
    pub tests: Vec<String>,
    /// Requests per test (default 100000; run: unlimited with --duration).
    #[arg(short = 'n', long, value_name = "N",
          value_parser = clap::value_parser!(u64).range(1..))]
    pub requests: Option<u64>,
    /// Parallel connections.
    #[arg(short = 'c', long, default_value_t = 50, value_name = "N",
          value_parser = clap::value_parser!(u32).range(1..=100_000))]
    pub clients: u32,
    /// Bytes in each SET value (run: also a range, 100-1000, or a weighted list, 100:8,1000:2).
    #[arg(short = 'd', long, default_value = "3", value_name = "BYTES",
          value_parser = gen::parse_sizes)]
    pub value_size: Sizes,
    /// Requests (run: units of --mode) in flight per connection.
    #[arg(short = 'P', long, default_value_t = 1, value_name = "N",
          value_parser = clap::value_parser!(u32).range(1..=100_000))]
    pub pipeline: u32,
    /// Output form (default: human, or json with --output).
    #[arg(long, value_enum)]
    pub format: Option<RunFormat>,
    /// Write the result to FILE (the human table still goes to stdout unless -q).
    #[arg(short = 'o', long, value_name = "FILE")]
    pub output: Option<PathBuf>,
}

#[derive(Debug, clap::Args)]
pub struct WrapArgs {
    #[command(flatten)]
    pub conn: ConnArgs,
    /// The benchmark program to run (default: redis-benchmark, or valkey-benchmark when only
    /// that one is on PATH).
    #[arg(long, value_name = "PATH")]
    pub program: Option<PathBuf>,
    #[command(flatten)]
    pub shared: Shared,
    /// Random keys out of N (redis-benchmark -r).
    #[arg(long, value_name = "N")]
    pub keyspace: Option<u64>,
    /// Kill redis-benchmark and fail (exit 69) when it runs longer than this (it waits for ever
    /// on a stopped or blocked server).
    #[arg(long, value_name = "TIME", default_value = "10m",
          value_parser = crate::cli::parse_duration)]
    pub timeout: Duration,
    /// More redis-benchmark options, after `--` (never a password: it would show in `ps`).
    #[arg(last = true, value_name = "REDIS-BENCHMARK ARGS")]
    pub extra: Vec<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ModeArg {
    /// One command per operation.
    Direct,
    /// --batch operations per round trip, in multi-key commands (MSET, MGET, DEL, EXISTS).
    Batched,
}

#[derive(Debug, clap::Args)]
pub struct RunArgs {
    #[command(flatten)]
    pub conn: ConnArgs,
    #[command(flatten)]
    pub shared: Shared,
    /// A mix of operations in one test, as OP:WEIGHT pairs (set:1,get:9; cmd1, cmd2, … are the
    /// --command templates); replaces --tests.
    #[arg(long, value_name = "MIX", value_parser = parse_mix, conflicts_with = "tests")]
    pub ratio: Option<Mix>,
    /// An arbitrary command, as 'SET __key__ __data__': __key__ is a key of the key range,
    /// __data__ a value of -d bytes. Repeatable; alone each is a test of its own, in --ratio
    /// they are cmd1, cmd2, …
    #[arg(long = "command", value_name = "TEMPLATE", value_parser = gen::parse_template)]
    pub commands: Vec<Template>,
    /// Run each test this long (30s, 2m); with --requests, whichever ends first.
    #[arg(long, value_name = "TIME", value_parser = crate::cli::parse_duration)]
    pub duration: Option<Duration>,
    /// direct: one command per operation; batched: --batch operations per round trip.
    #[arg(long, value_enum, default_value_t = ModeArg::Direct)]
    pub mode: ModeArg,
    /// Operations per round trip in --mode batched.
    #[arg(long, default_value_t = 10, value_name = "N",
          value_parser = clap::value_parser!(u32).range(1..=1_000_000))]
    pub batch: u32,
    /// Open loop: start R operations per second whatever the latency; latencies count from
    /// each operation's intended start (coordinated-omission correction).
    #[arg(long, value_name = "R")]
    pub rate: Option<f64>,
    /// Keys are chosen among N (default 100000), numbered from --key-min.
    #[arg(long, value_name = "N", conflicts_with = "key_max",
          value_parser = clap::value_parser!(u64).range(1..=1_000_000_000_000))]
    pub keyspace: Option<u64>,
    /// The first key number of the range.
    #[arg(long, default_value_t = 0, value_name = "N",
          value_parser = clap::value_parser!(u64).range(0..=999_999_999_999))]
    pub key_min: u64,
    /// The last key number of the range (instead of --keyspace).
    #[arg(long, value_name = "N",
          value_parser = clap::value_parser!(u64).range(0..=999_999_999_999))]
    pub key_max: Option<u64>,
    /// How keys are chosen among the range.
    #[arg(long, value_enum, default_value_t = KeyDistArg::Uniform)]
    pub key_dist: KeyDistArg,
    /// --key-dist gaussian: the standard deviation, in keys (default: a sixth of the range).
    #[arg(long, value_name = "KEYS")]
    pub key_stddev: Option<f64>,
    /// --key-dist zipf: the exponent s (key k weighs 1/(k+1)^s).
    #[arg(long, default_value_t = 1.0, value_name = "S")]
    pub zipf_exponent: f64,
    /// SET's keys expire after this many seconds (SET … EX).
    #[arg(long, value_name = "SECONDS",
          value_parser = clap::value_parser!(u64).range(1..))]
    pub ttl: Option<u64>,
    /// Run each test N times; its figures are the median run's (by REQ/S), with the min and max
    /// beside them and every run in the JSON.
    #[arg(long, default_value_t = 1, value_name = "N",
          value_parser = clap::value_parser!(u32).range(1..=1000))]
    pub runs: u32,
    /// Write each test's latencies as an HdrHistogram interval log (PREFIX_TEST.hlog, one
    /// histogram a second) and percentile distribution (PREFIX_TEST.hgrm), in milliseconds.
    #[arg(long, value_name = "PREFIX")]
    pub hdr_out: Option<PathBuf>,
    /// Prefix of every key rbench touches (INCR uses PREFIXcounter:…).
    #[arg(long, default_value = "rbench:", value_name = "PREFIX")]
    pub key_prefix: String,
    /// Event-loop threads (connections are shared among them). One is enough for a server on
    /// the same machine; more for a remote server with many clients.
    #[arg(long, default_value_t = 1, value_name = "N",
          value_parser = clap::value_parser!(u32).range(1..=1024))]
    pub threads: u32,
    /// The server is a Redis Cluster node: take the slot map from its CLUSTER SLOTS, open -c
    /// connections to every master, and send each key to the master of its slot (MOVED replies
    /// count as errors). Implied when INFO says cluster_enabled:1; given, a server that is no
    /// Cluster node is an error.
    #[arg(long)]
    pub cluster: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum KeyDistArg {
    /// Every key equally likely.
    Uniform,
    /// One key after the other, wrapping around: a SET run fills the range.
    Sequential,
    /// Normal around the middle of the range (--key-stddev).
    Gaussian,
    /// Zipf: few keys take most requests (--zipf-exponent).
    Zipf,
}

/// A `--ratio` mix of operations and weights.
#[derive(Debug, Clone)]
pub struct Mix(pub Vec<(Op, u32)>);

fn parse_mix(s: &str) -> Result<Mix, String> {
    engine::parse_ratio(s).map(Mix)
}

#[derive(Debug, clap::Args)]
pub struct CompareArgs {
    /// Result files of `rbench wrap` or `rbench run` (JSON); ratios are against the first.
    #[arg(required = true, value_name = "FILE.json")]
    pub files: Vec<PathBuf>,
    /// Only these tests (comma-separated).
    #[arg(short = 't', long, value_delimiter = ',', value_name = "TESTS")]
    pub tests: Vec<String>,
    #[arg(long, value_enum, default_value_t = CompareFormat::Human)]
    pub format: CompareFormat,
    /// Draw the latency percentile curves, one per file and test, into FILE.svg or FILE.png.
    #[arg(long, value_name = "FILE")]
    pub plot: Option<PathBuf>,
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    match args.command {
        Sub::Wrap(a) => run_wrap(a),
        Sub::Run(a) => run_native(a),
        Sub::Compare(a) => run_compare(a),
    }
}

fn base_config(cfg: &Config, s: &Shared, tool: &str, version: String) -> BenchConfig {
    BenchConfig {
        tool: tool.into(),
        tool_version: version,
        server: cfg.target.to_string(),
        tests: s.tests.clone(),
        requests: s.requests,
        clients: s.clients,
        value_size: s.value_size.mean(),
        value_sizes: (!matches!(s.value_size, Sizes::Fixed(_))).then(|| s.value_size.to_string()),
        pipeline: s.pipeline,
        client_cpus: std::thread::available_parallelism().ok().map(|n| n.get()),
        ..Default::default()
    }
}

/// The configuration to benchmark: with sentinels, the master they name now (said on stderr).
fn load_config(conn: &ConnArgs) -> anyhow::Result<Config> {
    let (cfg, said) = crate::store::at_master(conn.load()?)?;
    if let Some(s) = said {
        cli::note(&format!("{s}: benchmarking it"));
    }
    Ok(cfg)
}

fn run_wrap(a: WrapArgs) -> anyhow::Result<ExitCode> {
    let cfg = load_config(&a.conn)?;
    let s = &a.shared;
    let Sizes::Fixed(value_size) = s.value_size else {
        return Err(fail(
            Kind::Usage,
            format!(
                "-d {}: redis-benchmark writes values of one size; sizes that vary need \
                 `rbench run`",
                s.value_size
            ),
        ));
    };
    let (program, version) = wrap::find_program(a.program.as_deref())?;
    conn::probe(&cfg)?;
    let req = wrap::Request {
        tests: s.tests.clone(),
        requests: Some(s.requests.unwrap_or(100_000)),
        clients: Some(s.clients),
        value_size: Some(value_size),
        pipeline: Some(s.pipeline),
        keyspace: a.keyspace,
        show_errors: wrap::counts_errors(&version),
        extra: a.extra.clone(),
    };
    let argv = wrap::command_args(&cfg, &req);
    cli::info(&format!("running {} {}", program.display(), argv.join(" ")));
    let ran = wrap::run_child(&program, &argv, &cfg, a.timeout)?;
    let tests = wrap::parse_output(&ran.stdout).map_err(|e| {
        fail(
            Kind::DataErr,
            format!("cannot parse the output of {}: {e}", program.display()),
        )
    })?;
    if let Some((name, e)) = tests
        .0
        .iter()
        .find_map(|(n, r)| r.first_error.as_deref().map(|e| (n, e)))
    {
        // This redis-benchmark counted the refusals as served requests: its rate is not one.
        return Err(fail(
            bench::reply_kind(e),
            format!(
                "redis-benchmark's {name} requests to Redis at {} got error replies ({e}); {} \
                 counts them as served requests, so rbench records no figure",
                cfg.place(),
                if version.is_empty() {
                    "this version"
                } else {
                    &version
                },
            ),
        ));
    }
    let tool = program
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "redis-benchmark".into());
    let mut config = base_config(&cfg, s, &tool, version);
    config.requests = req.requests;
    config.keyspace = a.keyspace;
    config.command = std::iter::once(program.display().to_string())
        .chain(argv)
        .collect();
    let doc = BenchDoc {
        timestamp: super::now_rfc3339(),
        config,
        results: Results { tests },
        raw_output: ran.stdout,
    };
    emit(&doc, s)?;
    Ok(ExitCode::SUCCESS)
}

fn run_native(a: RunArgs) -> anyhow::Result<ExitCode> {
    let cfg = load_config(&a.conn)?;
    // The TLS files are read once, before any connection, for every client of every run.
    let dialer = conn::Dialer::new(&cfg)?;
    let s = &a.shared;
    if let Some(r) = a.rate {
        if !(r.is_finite() && r > 0.0) {
            return Err(fail(Kind::Usage, "--rate must be a positive number"));
        }
    }
    let keyspace = match a.key_max {
        Some(max) if max < a.key_min => {
            return Err(fail(
                Kind::Usage,
                format!("--key-max {max} is below --key-min {}", a.key_min),
            ))
        }
        Some(max) => max - a.key_min + 1,
        None => a.keyspace.unwrap_or(100_000),
    };
    if a.key_min.saturating_add(keyspace) > 1_000_000_000_000 {
        return Err(fail(
            Kind::Usage,
            "the key range ends past key number 999999999999 (12 digits)",
        ));
    }
    let key_dist = match a.key_dist {
        KeyDistArg::Uniform => KeyDist::Uniform,
        KeyDistArg::Sequential => KeyDist::Sequential,
        KeyDistArg::Gaussian => {
            if a.key_stddev.is_some_and(|d| !(d.is_finite() && d > 0.0)) {
                return Err(fail(Kind::Usage, "--key-stddev must be a positive number"));
            }
            KeyDist::Gaussian {
                stddev: a.key_stddev,
            }
        }
        KeyDistArg::Zipf => {
            if !(a.zipf_exponent.is_finite() && a.zipf_exponent > 0.0) {
                return Err(fail(
                    Kind::Usage,
                    "--zipf-exponent must be a positive number",
                ));
            }
            KeyDist::Zipf {
                exponent: a.zipf_exponent,
            }
        }
    };
    let requests = match (s.requests, a.duration) {
        (None, None) => Some(100_000),
        (n, _) => n,
    };
    let mode = match a.mode {
        ModeArg::Direct => Mode::Direct,
        ModeArg::Batched => Mode::Batched(a.batch),
    };
    let op_name = |op: Op| match op {
        Op::Custom(i) => a.commands[i as usize].text.clone(),
        o => o.name().to_string(),
    };
    // One test per operation and per --command, or one mixed test.
    let tests: Vec<(String, Vec<(Op, u32)>)> = match &a.ratio {
        Some(mix) => {
            if let Some((Op::Custom(i), _)) = mix
                .0
                .iter()
                .find(|(o, _)| matches!(o, Op::Custom(i) if *i as usize >= a.commands.len()))
            {
                return Err(fail(
                    Kind::Usage,
                    format!(
                        "--ratio cmd{}: there are {} --command templates",
                        i + 1,
                        a.commands.len()
                    ),
                ));
            }
            vec![("MIXED".into(), mix.0.clone())]
        }
        None => {
            let names = if s.tests.is_empty() && a.commands.is_empty() {
                vec!["set".to_string(), "get".to_string()]
            } else {
                s.tests.clone()
            };
            let mut v = Vec::new();
            for n in names.iter().map(|n| n.trim()).filter(|n| !n.is_empty()) {
                let op = Op::parse(n).ok_or_else(|| {
                    fail(
                        Kind::Usage,
                        format!(
                            "-t {n}: the native engine runs set, get, del, exists and incr, \
                             and any command with --command (redis-benchmark's other tests: \
                             rbench wrap)"
                        ),
                    )
                })?;
                v.push((op.name().to_string(), vec![(op, 1)]));
            }
            for (i, t) in a.commands.iter().enumerate() {
                let mut name = t.name();
                if v.iter().any(|(n, _)| *n == name) {
                    name = format!("{name} (cmd{})", i + 1);
                }
                v.push((name, vec![(Op::Custom(i as u16), 1)]));
            }
            v
        }
    };
    let incr = tests
        .iter()
        .any(|(_, m)| m.iter().any(|(o, _)| *o == Op::Incr));
    let plan = cluster_plan(&cfg, &dialer, &a, incr, keyspace)?;
    if plan.is_some() && mode != Mode::Direct {
        return Err(fail(
            Kind::Usage,
            "against a Redis Cluster rbench runs --mode direct: the keys of one multi-key \
             command would fall in several slots (CROSSSLOT)",
        ));
    }
    let place = cfg.place();
    let mut results = Vec::new();
    for (name, mix) in &tests {
        let w = Workload {
            mix: mix.clone(),
            requests,
            duration: a.duration,
            clients: s.clients,
            pipeline: s.pipeline,
            mode,
            rate: a.rate,
            sizes: s.value_size.clone(),
            ttl: a.ttl,
            key_min: a.key_min,
            keyspace,
            key_dist,
            key_prefix: a.key_prefix.clone(),
            threads: a.threads,
            commands: a.commands.clone(),
            cluster: plan.as_ref().map(|p| p.owner.clone()),
        };
        let mut runs = Vec::with_capacity(a.runs as usize);
        for run in 1..=a.runs {
            let label = if a.runs > 1 {
                format!("{name} run {run}/{}", a.runs)
            } else {
                name.clone()
            };
            let o = run_once(
                &cfg,
                &dialer,
                plan.as_ref(),
                &w,
                &label,
                requests,
                a.duration,
            )?;
            if o.requests > 0 && o.successes == 0 {
                // Nothing was measured: a rate of refusals is no figure for the server.
                let first = o.first_error.as_deref().unwrap_or("no reply text");
                return Err(fail(
                    bench::reply_kind(first),
                    format!("every {name} request to Redis at {place} failed ({first})"),
                ));
            }
            if o.tls_held > 0 {
                cli::info(&format!(
                    "{label}: {} times a connection's requests were all taken by TLS with \
                     records left waiting for room in the socket (sent once it had some)",
                    o.tls_held
                ));
            }
            let mut r = result_of(&o, mix, &op_name);
            if plan.is_some() {
                r.moved = Some(o.moved);
            }
            if o.errors > 0 {
                let moved = if o.moved > 0 {
                    format!(
                        ", {} of them MOVED or ASK (a slot moved during the run: run again)",
                        o.moved
                    )
                } else {
                    String::new()
                };
                cli::warn(&format!(
                    "{label}: {} of {} requests failed ({}{moved}); the first error: {}",
                    o.errors,
                    o.requests,
                    bench::percent(o.errors, o.requests),
                    o.first_error.as_deref().unwrap_or("?")
                ));
            }
            if let Some(prefix) = &a.hdr_out {
                let suffix = (a.runs > 1).then(|| format!("_run{run}"));
                hdr::write_files(prefix, name, suffix.as_deref(), &o)?;
            }
            runs.push(r);
        }
        results.push((name.clone(), median_of(runs)));
    }
    let mut config = base_config(&cfg, s, "rbench", cli::VERSION.to_string());
    config.tests = tests.iter().map(|t| t.0.clone()).collect();
    config.requests = requests;
    config.keyspace = Some(keyspace);
    config.key_prefix = Some(a.key_prefix.clone());
    config.key_min = (a.key_min > 0).then_some(a.key_min);
    config.key_dist = Some(key_dist.name().into());
    config.ttl_s = a.ttl;
    config.commands = a.commands.iter().map(|t| t.text.clone()).collect();
    config.runs = (a.runs > 1).then_some(a.runs);
    config.mode = Some(
        match a.mode {
            ModeArg::Direct => "direct",
            ModeArg::Batched => "batched",
        }
        .into(),
    );
    config.batch = (a.mode == ModeArg::Batched).then_some(a.batch);
    config.rate = a.rate;
    config.duration_s = a.duration.map(|d| d.as_secs_f64());
    config.ratio = a.ratio.as_ref().map(|m| {
        m.0.iter()
            .map(|(o, w)| match o {
                Op::Custom(i) => format!("cmd{}:{w}", i + 1),
                o => format!("{}:{w}", o.name().to_ascii_lowercase()),
            })
            .collect::<Vec<_>>()
            .join(",")
    });
    config.threads = Some(a.threads);
    if let Some(p) = &plan {
        config.cluster_masters = p.nodes.iter().map(|(c, _)| c.target.to_string()).collect();
    }
    let mut doc = BenchDoc {
        timestamp: super::now_rfc3339(),
        config,
        results: Results {
            tests: Tests(results),
        },
        raw_output: String::new(),
    };
    // The native engine's own text is its human table, so raw_output is never empty.
    let mut human = Vec::new();
    export::write(&doc, RunFormat::Human, &mut human)?;
    doc.raw_output = String::from_utf8_lossy(&human).into_owned();
    emit(&doc, s)?;
    Ok(ExitCode::SUCCESS)
}

/// A run against a Redis Cluster: the masters that get connections, each with its own
/// configuration and dialer, and the index among them of each slot's master.
struct ClusterPlan {
    nodes: Vec<(Config, conn::Dialer)>,
    owner: Arc<Vec<u16>>,
}

/// Ask the configured node whether it is part of a Redis Cluster (`--cluster`, or
/// `cluster_enabled:1` in `INFO cluster`) and, if so, for its slot map. Masters that own none
/// of the run's keys get no connections (a hash tag in --key-prefix puts every key in one
/// slot).
fn cluster_plan(
    cfg: &Config,
    dialer: &conn::Dialer,
    a: &RunArgs,
    incr: bool,
    keyspace: u64,
) -> anyhow::Result<Option<ClusterPlan>> {
    let place = cfg.place();
    let mut raw = dialer.connect(cfg)?;
    if !a.cluster {
        let info = conn::call(&mut raw, cfg, &[b"INFO", b"cluster"])?;
        // A server that refuses INFO (an ACL without it) is taken for a standalone one.
        if info.first() == Some(&b'-') || !cluster::cluster_enabled(&String::from_utf8_lossy(&info))
        {
            return Ok(None);
        }
    }
    let reply = conn::call(&mut raw, cfg, &[b"CLUSTER", b"SLOTS"])?;
    let (host, tls) = match &cfg.target.addr {
        Addr::Tcp { host, tls, .. } => (host.clone(), *tls),
        Addr::Unix(_) => ("127.0.0.1".to_string(), false),
    };
    let map: SlotMap = match cluster::parse_slots(&reply, &host) {
        Ok(m) => m,
        Err(e) if reply.first() == Some(&b'-') => {
            return Err(fail(
                Kind::Usage,
                format!(
                    "--cluster: Redis at {place} is no Redis Cluster node (CLUSTER SLOTS: {e}); \
                     run without --cluster"
                ),
            ))
        }
        Err(e) => {
            return Err(fail(
                Kind::Unavailable,
                format!(
                "Redis at {place} answered CLUSTER SLOTS with something rbench cannot read: {e}"
            ),
            ))
        }
    };
    let unserved = map.unserved();
    if !unserved.is_empty() {
        return Err(fail(
            Kind::Unavailable,
            format!(
                "the Redis Cluster of {place} serves no slots {}: is cluster_state ok?",
                unserved.join(",")
            ),
        ));
    }
    let prefix = a.key_prefix.as_bytes();
    let counter = [prefix, b"counter:"].concat();
    let mut kinds: Vec<&[u8]> = vec![prefix];
    if incr {
        kinds.push(&counter);
    }
    let hits = cluster::keys_per_master(&map, &kinds, a.key_min, keyspace);
    let mut index = vec![UNSERVED; map.masters.len()];
    let mut nodes = Vec::new();
    for (i, (h, port)) in map.masters.iter().enumerate() {
        let mut c = cfg.clone();
        c.target.addr = Addr::Tcp {
            host: h.clone(),
            port: *port,
            tls,
        };
        c.target.sentinel = None;
        if hits[i] == 0 {
            cli::note(&format!(
                "the Redis Cluster master {} owns none of the keys of the run; it \
                 gets no connections",
                c.target
            ));
            continue;
        }
        index[i] = nodes.len() as u16;
        let d = conn::Dialer::new(&c)?;
        nodes.push((c, d));
    }
    let owner: Vec<u16> = map
        .owner
        .iter()
        .map(|&m| {
            if m == UNSERVED {
                UNSERVED
            } else {
                index[m as usize]
            }
        })
        .collect();
    if !a.cluster {
        cli::note(&format!(
            "Redis at {place} is a Redis Cluster node (cluster_enabled:1): running \
             against its {} masters",
            map.masters.len()
        ));
    }
    Ok(Some(ClusterPlan {
        nodes,
        owner: Arc::new(owner),
    }))
}

/// Connect the clients (against a Cluster, -c to each master) and run the workload once.
fn run_once(
    cfg: &Config,
    dialer: &conn::Dialer,
    plan: Option<&ClusterPlan>,
    w: &Workload,
    label: &str,
    requests: Option<u64>,
    duration: Option<Duration>,
) -> anyhow::Result<Outcome> {
    let place = match plan {
        Some(p) => format!(
            "{} (a Redis Cluster, {} masters)",
            cfg.place(),
            p.nodes.len()
        ),
        None => cfg.place(),
    };
    let targets: Vec<(&Config, &conn::Dialer)> = match plan {
        Some(p) => p.nodes.iter().map(|(c, d)| (c, d)).collect(),
        None => vec![(cfg, dialer)],
    };
    let mut streams = Vec::with_capacity(w.clients as usize * targets.len());
    for (node, (c, d)) in targets.iter().enumerate() {
        for _ in 0..w.clients {
            let raw = d.connect(c)?;
            let s = conn::into_mio(raw).with_context(|| format!("Redis at {}", c.place()))?;
            streams.push((s, node as u16));
        }
    }
    let progress = Progress::start(label, requests, duration);
    let outcome = engine::run(
        w,
        streams,
        progress.as_ref().map(|p| p.done.clone()),
        &place,
    );
    if let Some(p) = progress {
        p.stop();
    }
    outcome
}

/// A run's figures.
fn result_of(o: &Outcome, mix: &[(Op, u32)], op_name: &dyn Fn(Op) -> String) -> TestResult {
    let secs = o.elapsed.as_secs_f64();
    let per_sec = |x: f64| {
        if secs > 0.0 {
            (x / secs * 100.0).round() / 100.0
        } else {
            0.0
        }
    };
    let gets = mix.iter().any(|(op, _)| *op == Op::Get);
    let mut r = TestResult {
        requests_per_second: per_sec(o.successes as f64),
        requests: Some(o.requests),
        successes: Some(o.successes),
        errors: Some(o.errors),
        error_rate: (o.requests > 0)
            .then(|| (o.errors as f64 / o.requests as f64 * 1e6).round() / 1e6),
        first_error: o.first_error.clone(),
        duration_s: Some((secs * 1e6).round() / 1e6),
        ops: if mix.len() > 1 {
            o.ops
                .iter()
                .map(|&(op, count, errors)| OpCount {
                    op: op_name(op),
                    count,
                    errors: Some(errors),
                })
                .collect()
        } else {
            Vec::new()
        },
        hits: gets.then_some(o.hits),
        misses: gets.then_some(o.misses),
        bytes_per_second: Some(per_sec((o.bytes_sent + o.bytes_received) as f64)),
        ..Default::default()
    };
    stats::summarize(&o.hist, &mut r);
    r.samples = (0..o.seconds.len())
        .map(|i| {
            let h = o.second(i);
            let mut s = TestResult::default();
            stats::summarize(&h, &mut s);
            Sample {
                second: i as u64,
                requests: h.len(),
                avg_latency_ms: s.avg_latency_ms,
                p50_latency_ms: s.p50_latency_ms,
                p99_latency_ms: s.p99_latency_ms,
                max_latency_ms: s.max_latency_ms,
            }
        })
        .collect();
    r
}

/// The median run (by requests/s; of an even number, the slower of the middle two), with the
/// slowest and fastest rates beside it and every run kept.
fn median_of(mut runs: Vec<TestResult>) -> TestResult {
    if runs.len() == 1 {
        return runs.pop().expect("one run");
    }
    let mut order: Vec<usize> = (0..runs.len()).collect();
    order.sort_by(|&x, &y| {
        runs[x]
            .requests_per_second
            .total_cmp(&runs[y].requests_per_second)
    });
    let mut m = runs[order[(runs.len() - 1) / 2]].clone();
    m.requests_per_second_min = Some(runs[order[0]].requests_per_second);
    m.requests_per_second_max = Some(runs[order[runs.len() - 1]].requests_per_second);
    m.runs = runs;
    m
}

/// Write the result: to --output in --format (default json) plus the human table on stdout,
/// or to stdout in --format (default human).
fn emit(doc: &BenchDoc, s: &Shared) -> anyhow::Result<()> {
    let mut stdout = cli::stdout();
    match &s.output {
        Some(path) => {
            let f = s.format.unwrap_or(RunFormat::Json);
            let mut buf = Vec::new();
            export::write(doc, f, &mut buf)?;
            std::fs::write(path, buf)
                .with_context(|| format!("cannot write {}", path.display()))?;
            if cli::verbosity() >= 0 {
                export::write(doc, RunFormat::Human, &mut stdout)?;
            }
            cli::info(&format!("wrote {}", path.display()));
        }
        None => export::write(doc, s.format.unwrap_or(RunFormat::Human), &mut stdout)?,
    }
    stdout.flush()?;
    Ok(())
}

fn run_compare(a: CompareArgs) -> anyhow::Result<ExitCode> {
    let files = compare::load(&a.files)?;
    let rows = compare::rows(&files, &a.tests);
    if rows.is_empty() {
        return Err(fail(
            Kind::NotFound,
            "no test results to compare (check --tests)",
        ));
    }
    if let Some(p) = &a.plot {
        plot::draw(p, &plot::curves(&files, &a.tests))?;
    }
    let mut out = cli::stdout();
    compare::write(&rows, a.format, &mut out)?;
    Ok(ExitCode::SUCCESS)
}

/// A progress line on stderr, only on a terminal and not under -q.
struct Progress {
    done: Arc<AtomicU64>,
    stop: Arc<AtomicBool>,
    handle: std::thread::JoinHandle<()>,
}

impl Progress {
    fn start(name: &str, total: Option<u64>, duration: Option<Duration>) -> Option<Progress> {
        if cli::verbosity() < 0 || !std::io::stderr().is_terminal() {
            return None;
        }
        let done = Arc::new(AtomicU64::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let (d, st, name) = (done.clone(), stop.clone(), name.to_string());
        let handle = std::thread::spawn(move || {
            let t0 = Instant::now();
            while !st.load(Ordering::Relaxed) {
                std::thread::sleep(Duration::from_millis(250));
                let n = d.load(Ordering::Relaxed);
                let secs = t0.elapsed().as_secs_f64();
                let of = match (total, duration) {
                    (Some(t), _) => format!("{n}/{t} requests"),
                    (None, Some(dur)) => {
                        format!("{n} requests, {secs:.0}/{:.0} s", dur.as_secs_f64())
                    }
                    _ => format!("{n} requests"),
                };
                let mut e = std::io::stderr().lock();
                let _ = write!(
                    e,
                    "\r{name}: {of}, {:.0} req/s\x1b[K",
                    n as f64 / secs.max(1e-9)
                );
                let _ = e.flush();
            }
            let _ = write!(std::io::stderr().lock(), "\r\x1b[K");
        });
        Some(Progress { done, stop, handle })
    }

    fn stop(self) {
        self.stop.store(true, Ordering::Relaxed);
        let _ = self.handle.join();
    }
}
