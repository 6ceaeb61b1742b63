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

use crate::bench::compare::{self, CompareFormat};
use crate::bench::engine::{self, Mode, Op, Workload};
use crate::bench::export::{self, Exporter};
use crate::bench::{self, conn, plot, stats, wrap};
use crate::bench::{BenchConfig, BenchDoc, OpCount, Results, RunFormat, TestResult, Tests};
use crate::cli::{self, ConnArgs};
use crate::config::Config;
use crate::exit::{fail, Kind};

pub const EXAMPLES: &str = "\
  rbench run -t set,get -c 50 -d 256 -P 16 -n 1000000
  rbench run --ratio set:1,get:9 --duration 30s --output mix.json
  rbench run -t get --rate 20000 --duration 1m --format csv
  rbench run -t set --mode batched --batch 100 --keyspace 1000000
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
    /// SET): wrap exits 69, or 77 for NOPERM, and records nothing. Older versions count error
    /// replies as served requests; wrap passes them -e to see the errors, and records no figure
    /// for a test that got any, as it cannot tell how many failed.
    #[command(after_long_help = cli::footer(EXAMPLES))]
    Wrap(WrapArgs),
    /// Drive load with the native engine: raw sockets, HdrHistogram latencies.
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
    /// Bytes in each SET value.
    #[arg(short = 'd', long, default_value_t = 3, value_name = "BYTES")]
    pub value_size: usize,
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
    /// A mix of operations in one test, as OP:WEIGHT pairs (set:1,get:9); replaces --tests.
    #[arg(long, value_name = "MIX", value_parser = parse_mix, conflicts_with = "tests")]
    pub ratio: Option<Mix>,
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
    /// Keys are chosen at random among N.
    #[arg(long, default_value_t = 100_000, value_name = "N",
          value_parser = clap::value_parser!(u64).range(1..=1_000_000_000_000))]
    pub keyspace: u64,
    /// Prefix of every key rbench touches (INCR uses PREFIXcounter:…).
    #[arg(long, default_value = "rbench:", value_name = "PREFIX")]
    pub key_prefix: String,
    /// Event-loop threads (connections are shared among them). One is enough for a server on
    /// the same machine; more for a remote server with many clients.
    #[arg(long, default_value_t = 1, value_name = "N",
          value_parser = clap::value_parser!(u32).range(1..=1024))]
    pub threads: u32,
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
        value_size: s.value_size,
        pipeline: s.pipeline,
        client_cpus: std::thread::available_parallelism().ok().map(|n| n.get()),
        ..Default::default()
    }
}

fn run_wrap(a: WrapArgs) -> anyhow::Result<ExitCode> {
    let cfg = a.conn.load()?;
    let (program, version) = wrap::find_program()?;
    conn::probe(&cfg)?;
    let s = &a.shared;
    let req = wrap::Request {
        tests: s.tests.clone(),
        requests: Some(s.requests.unwrap_or(100_000)),
        clients: Some(s.clients),
        value_size: Some(s.value_size),
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
    let mut config = base_config(&cfg, s, "redis-benchmark", version);
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
    let cfg = a.conn.load()?;
    conn::check_supported(&cfg)?;
    let s = &a.shared;
    if let Some(r) = a.rate {
        if !(r.is_finite() && r > 0.0) {
            return Err(fail(Kind::Usage, "--rate must be a positive number"));
        }
    }
    let requests = match (s.requests, a.duration) {
        (None, None) => Some(100_000),
        (n, _) => n,
    };
    let mode = match a.mode {
        ModeArg::Direct => Mode::Direct,
        ModeArg::Batched => Mode::Batched(a.batch),
    };
    // One test per operation, or one mixed test.
    let tests: Vec<(String, Vec<(Op, u32)>)> = match &a.ratio {
        Some(mix) => vec![("MIXED".into(), mix.0.clone())],
        None => {
            let names = if s.tests.is_empty() {
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
                            "-t {n}: the native engine runs set, get, del, exists and incr \
                             (redis-benchmark's other tests: rbench wrap)"
                        ),
                    )
                })?;
                v.push((op.name().to_string(), vec![(op, 1)]));
            }
            v
        }
    };
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
            value_size: s.value_size,
            keyspace: a.keyspace,
            key_prefix: a.key_prefix.clone(),
            threads: a.threads,
        };
        let mut streams = Vec::with_capacity(s.clients as usize);
        for _ in 0..s.clients {
            let raw = conn::connect(&cfg)?;
            streams.push(conn::into_mio(raw).with_context(|| format!("Redis at {place}"))?);
        }
        let progress = Progress::start(name, requests, a.duration);
        let outcome = engine::run(
            &w,
            streams,
            progress.as_ref().map(|p| p.done.clone()),
            &place,
        );
        if let Some(p) = progress {
            p.stop();
        }
        let o = outcome?;
        if o.requests > 0 && o.successes == 0 {
            // Nothing was measured: a rate of refusals is no figure for the server.
            let first = o.first_error.as_deref().unwrap_or("no reply text");
            return Err(fail(
                bench::reply_kind(first),
                format!("every {name} request to Redis at {place} failed ({first})"),
            ));
        }
        let secs = o.elapsed.as_secs_f64();
        let mut r = TestResult {
            requests_per_second: if secs > 0.0 {
                (o.successes as f64 / secs * 100.0).round() / 100.0
            } else {
                0.0
            },
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
                        op: op.name().into(),
                        count,
                        errors: Some(errors),
                    })
                    .collect()
            } else {
                Vec::new()
            },
            ..Default::default()
        };
        stats::summarize(&o.hist, &mut r);
        if o.errors > 0 {
            cli::warn(&format!(
                "{name}: {} of {} requests failed ({}); the first error: {}",
                o.errors,
                o.requests,
                bench::percent(o.errors, o.requests),
                o.first_error.as_deref().unwrap_or("?")
            ));
        }
        results.push((name.clone(), r));
    }
    let mut config = base_config(&cfg, s, "rbench", cli::VERSION.to_string());
    config.tests = tests.iter().map(|t| t.0.clone()).collect();
    config.requests = requests;
    config.keyspace = Some(a.keyspace);
    config.key_prefix = Some(a.key_prefix.clone());
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
            .map(|(o, w)| format!("{}:{w}", o.name().to_ascii_lowercase()))
            .collect::<Vec<_>>()
            .join(",")
    });
    config.threads = Some(a.threads);
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
    export::Human.write(&doc, &mut human)?;
    doc.raw_output = String::from_utf8_lossy(&human).into_owned();
    emit(&doc, s)?;
    Ok(ExitCode::SUCCESS)
}

/// Write the result: to --output in --format (default json) plus the human table on stdout,
/// or to stdout in --format (default human).
fn emit(doc: &BenchDoc, s: &Shared) -> anyhow::Result<()> {
    let mut stdout = cli::stdout();
    match &s.output {
        Some(path) => {
            let f = s.format.unwrap_or(RunFormat::Json);
            let mut buf = Vec::new();
            export::for_format(f).write(doc, &mut buf)?;
            std::fs::write(path, buf)
                .with_context(|| format!("cannot write {}", path.display()))?;
            if cli::verbosity() >= 0 {
                export::Human.write(doc, &mut stdout)?;
            }
            cli::info(&format!("wrote {}", path.display()));
        }
        None => export::for_format(s.format.unwrap_or(RunFormat::Human)).write(doc, &mut stdout)?,
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
