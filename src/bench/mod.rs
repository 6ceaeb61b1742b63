//! rbench: benchmark a Redis server — wrap `redis-benchmark`, drive load natively, compare runs.
//!
//! Both engines produce one [`BenchDoc`], the JSON shape users of the original HPC wrapper parse:
//! `{timestamp, config, results: {tests: {NAME: {requests_per_second, …}}}, raw_output}`.
use std::fmt;

use serde::de::{MapAccess, Visitor};
use serde::ser::SerializeMap;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::exit::{auth_kind, Kind};

pub mod cluster;
pub mod compare;
pub mod conn;
pub mod engine;
pub mod export;
pub mod gen;
pub mod hdr;
pub mod plot;
pub mod resp;
pub mod stats;
pub mod wrap;

/// One benchmark run: what was asked, what came out, and the tool's own text.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct BenchDoc {
    pub timestamp: String,
    #[serde(default)]
    pub config: BenchConfig,
    pub results: Results,
    #[serde(default)]
    pub raw_output: String,
}

/// The settings of a run. Fields the engine does not have are left out of the JSON.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct BenchConfig {
    /// `redis-benchmark` (wrap) or `rbench` (native run).
    pub tool: String,
    pub tool_version: String,
    /// `host:port` or `unix:/path`; never the password.
    pub server: String,
    pub tests: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub requests: Option<u64>,
    pub clients: u32,
    /// The value size, or the mean of `value_sizes`.
    pub value_size: usize,
    /// A size range (`100-1000`) or weighted list (`100:8,1000:2`) when the sizes vary.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub value_sizes: Option<String>,
    /// SET's keys expire after this many seconds.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ttl_s: Option<u64>,
    pub pipeline: u32,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub keyspace: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub key_prefix: Option<String>,
    /// The first key number of the range (`keyspace` keys from it).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub key_min: Option<u64>,
    /// uniform, sequential, gaussian or zipf.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub key_dist: Option<String>,
    /// The `--command` templates, `cmd1`, `cmd2`, … in a ratio.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub commands: Vec<String>,
    /// Runs of each test (`--runs`); a test's figures are its median run's.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub runs: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mode: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub batch: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rate: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub duration_s: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ratio: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub threads: Option<u32>,
    /// The child's command line (wrap); it never holds the password.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub command: Vec<String>,
    /// The Redis Cluster masters the run connected to (`clients` connections each).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub cluster_masters: Vec<String>,
    /// Core count of the client machine, to read throughput numbers against.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client_cpus: Option<usize>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Results {
    pub tests: Tests,
}

/// Test results in the order they ran (a JSON object whose key order is kept).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Tests(pub Vec<(String, TestResult)>);

impl Tests {
    pub fn get(&self, name: &str) -> Option<&TestResult> {
        self.0
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, r)| r)
    }
}

impl Serialize for Tests {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut m = s.serialize_map(Some(self.0.len()))?;
        for (k, v) in &self.0 {
            m.serialize_entry(k, v)?;
        }
        m.end()
    }
}

impl<'de> Deserialize<'de> for Tests {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Tests, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Tests;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("an object of test name → result")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut a: A) -> Result<Tests, A::Error> {
                let mut v = Vec::new();
                while let Some((k, r)) = a.next_entry::<String, TestResult>()? {
                    v.push((k, r));
                }
                Ok(Tests(v))
            }
        }
        d.deserialize_map(V)
    }
}

/// One test's numbers. The first seven fields are always present (null when the tool did not
/// report them, as old redis-benchmark CSV has only rps); the native engine adds the rest.
///
/// The native engine's rate and latencies count only the replies that succeeded: a refusal
/// (READONLY, NOPERM) is answered without doing the work, so counting it would report a server
/// that refuses everything as a fast one. `errors`, `error_rate` and `first_error` say what was
/// refused.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct TestResult {
    pub requests_per_second: f64,
    #[serde(default)]
    pub avg_latency_ms: Option<f64>,
    #[serde(default)]
    pub min_latency_ms: Option<f64>,
    #[serde(default)]
    pub p50_latency_ms: Option<f64>,
    #[serde(default)]
    pub p95_latency_ms: Option<f64>,
    #[serde(default)]
    pub p99_latency_ms: Option<f64>,
    #[serde(default)]
    pub max_latency_ms: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub p90_latency_ms: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub p999_latency_ms: Option<f64>,
    /// Operations issued (= successes + errors).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub requests: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub successes: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub errors: Option<u64>,
    /// errors / requests, from 0 to 1.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error_rate: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub first_error: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub duration_s: Option<f64>,
    /// Operations per kind (a `--ratio` mix).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ops: Vec<OpCount>,
    /// The latency distribution as (percentile, ms) points, for plots.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub latency_percentiles: Vec<PercentilePoint>,
    /// GET keys that had a value, and those that had none (a nil reply).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hits: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub misses: Option<u64>,
    /// Against a Redis Cluster: error replies that were MOVED or ASK redirections (a slot
    /// moved during the run); they are counted in `errors` too.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub moved: Option<u64>,
    /// Bytes sent and received per second, beside the requests.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bytes_per_second: Option<f64>,
    /// The slowest and fastest of `runs` (the figures above are the median run's).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub requests_per_second_min: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub requests_per_second_max: Option<f64>,
    /// Every run of `--runs`, in order.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub runs: Vec<TestResult>,
    /// One sample per second of the run.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub samples: Vec<Sample>,
}

/// What one second of a run did: the operations that completed in it and their latencies.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Sample {
    /// Seconds since the start of the run (0 is the first second).
    pub second: u64,
    pub requests: u64,
    pub avg_latency_ms: Option<f64>,
    pub p50_latency_ms: Option<f64>,
    pub p99_latency_ms: Option<f64>,
    pub max_latency_ms: Option<f64>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OpCount {
    pub op: String,
    pub count: u64,
    /// How many of them got an error reply: in a mix, which operation the server refused.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub errors: Option<u64>,
}

#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct PercentilePoint {
    pub percentile: f64,
    pub latency_ms: f64,
}

/// The exit status for a run the server refused, by the code of its error reply: a refused
/// login or command (NOAUTH, WRONGPASS, NOPERM) is 77, a key of the wrong type is bad data (65),
/// any other refusal (READONLY, OOM, an unknown command) means the service is not available to
/// the benchmark (69).
pub fn reply_kind(reply: &str) -> Kind {
    let code = reply.split_whitespace().next().unwrap_or("");
    if let Some(k) = auth_kind(code) {
        k
    } else if code == "WRONGTYPE" {
        Kind::DataErr
    } else {
        Kind::Unavailable
    }
}

/// A share of requests as a percentage that is never rounded to 0 % or 100 % when it is not
/// exactly that.
pub fn percent(part: u64, whole: u64) -> String {
    if whole == 0 {
        return "-".into();
    }
    let p = part as f64 * 100.0 / whole as f64;
    match format!("{p:.1}%") {
        s if s == "0.0%" && part > 0 => "<0.1%".into(),
        s if s == "100.0%" && part < whole => ">99.9%".into(),
        s => s,
    }
}

impl TestResult {
    /// The latency curve: the recorded points, or those the summary fields give.
    pub fn curve(&self) -> Vec<PercentilePoint> {
        if !self.latency_percentiles.is_empty() {
            return self.latency_percentiles.clone();
        }
        let p = |percentile, v: Option<f64>| {
            v.map(|latency_ms| PercentilePoint {
                percentile,
                latency_ms,
            })
        };
        [
            p(0.0, self.min_latency_ms),
            p(50.0, self.p50_latency_ms),
            p(90.0, self.p90_latency_ms),
            p(95.0, self.p95_latency_ms),
            p(99.0, self.p99_latency_ms),
            p(99.9, self.p999_latency_ms),
            p(100.0, self.max_latency_ms),
        ]
        .into_iter()
        .flatten()
        .collect()
    }
}

/// The `wrap`/`run` output forms.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum RunFormat {
    /// An aligned table for people.
    Human,
    /// The result document: {timestamp, config, results: {tests: …}, raw_output}.
    Json,
    /// One line per test, with a header line.
    Csv,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tests_keep_their_order_through_json() {
        let doc = Results {
            tests: Tests(vec![
                ("SET".into(), TestResult::default()),
                ("GET".into(), TestResult::default()),
                ("MSET (10 keys)".into(), TestResult::default()),
            ]),
        };
        let s = serde_json::to_string(&doc).unwrap();
        assert!(s.find("\"SET\"").unwrap() < s.find("\"GET\"").unwrap());
        let back: Results = serde_json::from_str(&s).unwrap();
        assert_eq!(back.tests, doc.tests);
        // Missing latency fields are null, not absent: the shape stays the same.
        assert!(s.contains("\"p99_latency_ms\":null"), "{s}");
        assert!(!s.contains("p90_latency_ms"), "{s}");
    }

    #[test]
    fn refusals_choose_the_exit_status_by_their_code() {
        for (reply, kind) in [
            (
                "NOPERM this user has no permissions to run the 'set' command",
                Kind::NoPerm,
            ),
            ("NOAUTH Authentication required.", Kind::NoPerm),
            ("WRONGTYPE Operation against a key", Kind::DataErr),
            (
                "READONLY You can't write against a read only replica.",
                Kind::Unavailable,
            ),
            (
                "ERR value is not an integer or out of range",
                Kind::Unavailable,
            ),
            ("", Kind::Unavailable),
        ] {
            assert_eq!(reply_kind(reply), kind, "{reply}");
        }
    }

    #[test]
    fn percentages_never_round_to_none_or_all() {
        assert_eq!(percent(504, 1000), "50.4%");
        assert_eq!(percent(0, 1000), "0.0%");
        assert_eq!(percent(1, 100_000), "<0.1%");
        assert_eq!(percent(99_999, 100_000), ">99.9%");
        assert_eq!(percent(7, 7), "100.0%");
        assert_eq!(percent(0, 0), "-");
    }

    #[test]
    fn older_results_without_error_fields_still_load() {
        let r: TestResult = serde_json::from_str(r#"{"requests_per_second": 5.0}"#).unwrap();
        assert_eq!(r.errors, None);
        assert_eq!(r.error_rate, None);
        let o: OpCount = serde_json::from_str(r#"{"op": "SET", "count": 3}"#).unwrap();
        assert_eq!(o.errors, None);
    }

    #[test]
    fn curve_from_summary_fields() {
        let r = TestResult {
            min_latency_ms: Some(0.1),
            p50_latency_ms: Some(0.3),
            max_latency_ms: Some(2.0),
            ..Default::default()
        };
        let c = r.curve();
        assert_eq!(c.len(), 3);
        assert_eq!(c[2].percentile, 100.0);
    }
}
