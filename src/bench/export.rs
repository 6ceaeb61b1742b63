//! One [`BenchDoc`] as JSON, CSV or a human table; the CSV rows go through output.rs's
//! exporters, like every table rj writes.
use std::io::Write;

use serde::Serialize;

use super::{percent, BenchDoc, RunFormat, TestResult};
use crate::output;

/// One benchmark result in `format`: the result document itself as JSON, one [`BenchRow`] per
/// test as CSV, and for people the configuration, the table and what the table cannot say.
pub fn write(doc: &BenchDoc, format: RunFormat, out: &mut dyn Write) -> anyhow::Result<()> {
    match format {
        RunFormat::Json => output::write_json(out, doc),
        RunFormat::Csv => {
            let mut e = output::exporter::<BenchRow>(output::Form::Csv, out)?;
            for (n, r) in &doc.results.tests.0 {
                e.row(&BenchRow::new(n, r))?;
            }
            e.finish()
        }
        RunFormat::Human => human(doc, out),
    }
}

/// One test: a CSV line, and its figures in the human table; empty cells where the engine had
/// no number.
#[derive(Serialize, Default)]
pub struct BenchRow<'a> {
    test: &'a str,
    requests_per_second: f64,
    avg_latency_ms: Option<f64>,
    min_latency_ms: Option<f64>,
    p50_latency_ms: Option<f64>,
    p90_latency_ms: Option<f64>,
    p95_latency_ms: Option<f64>,
    p99_latency_ms: Option<f64>,
    p999_latency_ms: Option<f64>,
    max_latency_ms: Option<f64>,
    requests: Option<u64>,
    successes: Option<u64>,
    errors: Option<u64>,
    error_rate: Option<f64>,
    first_error: Option<&'a str>,
}

impl output::Row for BenchRow<'_> {}

impl<'a> BenchRow<'a> {
    fn new(test: &'a str, r: &'a TestResult) -> BenchRow<'a> {
        BenchRow {
            test,
            requests_per_second: r.requests_per_second,
            avg_latency_ms: r.avg_latency_ms,
            min_latency_ms: r.min_latency_ms,
            p50_latency_ms: r.p50_latency_ms,
            p90_latency_ms: r.p90_latency_ms,
            p95_latency_ms: r.p95_latency_ms,
            p99_latency_ms: r.p99_latency_ms,
            p999_latency_ms: r.p999_latency_ms,
            max_latency_ms: r.max_latency_ms,
            requests: r.requests,
            successes: r.successes,
            errors: r.errors,
            error_rate: r.error_rate,
            first_error: r.first_error.as_deref(),
        }
    }

    /// The human table's headings: the native engine's columns (P90, P99.9, REQUESTS,
    /// ERRORS) only when a test has them, since redis-benchmark reports none of them.
    fn headings(native: bool) -> Vec<String> {
        let mut h = vec!["TEST", "REQ/S", "AVG", "MIN", "P50"];
        if native {
            h.push("P90");
        }
        h.extend(["P95", "P99"]);
        if native {
            h.push("P99.9");
        }
        h.push("MAX(ms)");
        if native {
            h.extend(["REQUESTS", "ERRORS"]);
        }
        h.into_iter().map(String::from).collect()
    }

    /// The cells under [`BenchRow::headings`].
    fn cells(&self, native: bool) -> Vec<String> {
        let mut v = vec![
            self.test.to_string(),
            rps(self.requests_per_second),
            ms(self.avg_latency_ms),
            ms(self.min_latency_ms),
            ms(self.p50_latency_ms),
        ];
        if native {
            v.push(ms(self.p90_latency_ms));
        }
        v.extend([ms(self.p95_latency_ms), ms(self.p99_latency_ms)]);
        if native {
            v.push(ms(self.p999_latency_ms));
        }
        v.push(ms(self.max_latency_ms));
        if native {
            v.push(self.requests.map_or("-".into(), |x| x.to_string()));
            v.push(errors_cell(self.errors, self.requests));
        }
        v
    }
}

/// A number of milliseconds, or `-`.
pub fn ms(v: Option<f64>) -> String {
    v.map_or_else(|| "-".into(), |x| format!("{x:.3}"))
}

pub fn rps(v: f64) -> String {
    format!("{v:.0}")
}

/// The human form: what was run, the table, then a line for each thing the table cannot say.
fn human(doc: &BenchDoc, out: &mut dyn Write) -> anyhow::Result<()> {
    let c = &doc.config;
    let mut what = if c.cluster_masters.is_empty() {
        format!(
            "{} → {}: {} clients, pipeline {}, {}-byte values",
            c.tool, c.server, c.clients, c.pipeline, c.value_size
        )
    } else {
        format!(
            "{} → Redis Cluster of {} ({} masters): {} clients per master, pipeline {}, \
             {}-byte values",
            c.tool,
            c.server,
            c.cluster_masters.len(),
            c.clients,
            c.pipeline,
            c.value_size
        )
    };
    if let Some(m) = &c.mode {
        what.push_str(&format!(", {m}"));
        if let Some(b) = c.batch {
            what.push_str(&format!(" {b}"));
        }
    }
    if let Some(r) = c.rate {
        what.push_str(&format!(", open loop at {r:.0} req/s"));
    }
    writeln!(out, "{what}")?;
    let native = doc
        .results
        .tests
        .0
        .iter()
        .any(|(_, r)| r.requests.is_some());
    let mut table = output::HumanTable::new(&mut *out, BenchRow::headings(native));
    for (n, r) in &doc.results.tests.0 {
        table.push(BenchRow::new(n, r).cells(native));
    }
    table.finish()?;
    for (n, r) in &doc.results.tests.0 {
        if let Some(line) = error_line(n, r) {
            writeln!(out, "{line}")?;
        }
        for line in extra_lines(n, r, c) {
            writeln!(out, "{line}")?;
        }
    }
    Ok(())
}

/// Beside the table: GET hits and misses, bytes/s, the spread of --runs, and a Little's-law
/// check of the latencies.
pub fn extra_lines(name: &str, r: &TestResult, c: &super::BenchConfig) -> Vec<String> {
    let mut v = Vec::new();
    let mut traffic = Vec::new();
    if let (Some(h), Some(m)) = (r.hits, r.misses) {
        traffic.push(format!(
            "GET {h} hits, {m} misses ({} missed)",
            percent(m, h + m)
        ));
    }
    if let Some(b) = r.bytes_per_second {
        traffic.push(format!("{} sent and received", bytes_rate(b)));
    }
    if !traffic.is_empty() {
        v.push(format!("{name}: {}", traffic.join("; ")));
    }
    if let (Some(lo), Some(hi)) = (r.requests_per_second_min, r.requests_per_second_max) {
        v.push(format!(
            "{name}: median of {} runs, {} req/s (min {}, max {})",
            r.runs.len(),
            rps(r.requests_per_second),
            rps(lo),
            rps(hi)
        ));
    }
    if let Some(line) = littles_law(name, r, c) {
        v.push(line);
    }
    v
}

/// Little's law (in flight = throughput × latency) in a closed loop: `clients × pipeline ×
/// batch` operations are always in flight, so the mean latency should be that over the rate.
/// A measured mean well below it means requests waited in the client, not the server, and
/// the client was the bottleneck; None when they agree within 5 % (or the check does not apply).
pub fn littles_law(name: &str, r: &TestResult, c: &super::BenchConfig) -> Option<String> {
    if c.rate.is_some() || r.errors.is_some_and(|e| e > 0) || r.requests_per_second <= 0.0 {
        return None;
    }
    let avg = r.avg_latency_ms?;
    // Against a Cluster, -c connections to each master.
    let conns = c.clients as f64 * c.cluster_masters.len().max(1) as f64;
    let in_flight = conns * c.pipeline.max(1) as f64 * c.batch.unwrap_or(1) as f64;
    let expected = in_flight / r.requests_per_second * 1e3;
    let off = (avg - expected) / expected;
    if off.abs() <= 0.05 {
        return None;
    }
    Some(format!(
        "{name}: Little's law: {in_flight:.0} requests in flight at {} req/s give a mean \
         latency of {expected:.3} ms, but {avg:.3} ms was measured ({:+.0}%){}",
        rps(r.requests_per_second),
        off * 100.0,
        if off < 0.0 {
            "; the requests spent the rest waiting in the client, so the client was the \
             bottleneck"
        } else {
            "; fewer requests were in flight than configured"
        }
    ))
}

fn bytes_rate(b: f64) -> String {
    if b >= 1e6 {
        format!("{:.1} MB/s", b / 1e6)
    } else {
        format!("{:.1} kB/s", b / 1e3)
    }
}

/// What a test's errors mean for its figures, in one line; None when it had none.
pub fn error_line(name: &str, r: &TestResult) -> Option<String> {
    let e = r.first_error.as_deref()?;
    let mut line = match (r.errors, r.requests) {
        (Some(bad), Some(all)) => format!(
            "{name}: {bad} of {all} requests failed ({})",
            percent(bad, all)
        ),
        _ => format!("{name}: some requests failed"),
    };
    if let Some(m) = r.moved.filter(|&m| m > 0) {
        line.push_str(&format!(
            ", {m} of them MOVED or ASK (a Cluster slot moved during the run)"
        ));
    }
    if let Some(ok) = r.successes {
        line.push_str(&format!(
            "; REQ/S and latencies count only the {ok} that succeeded"
        ));
    }
    for o in r.ops.iter().filter(|o| o.errors.is_some_and(|n| n > 0)) {
        line.push_str(&format!(
            "; {} {} of {}",
            o.op,
            o.errors.unwrap_or(0),
            o.count
        ));
    }
    line.push_str(&format!("; the first error: {e}"));
    Some(line)
}

/// An error count with its share of the requests (`504 (50.4%)`), or `0`, or `-`.
pub fn errors_cell(errors: Option<u64>, requests: Option<u64>) -> String {
    match (errors, requests) {
        (Some(0), _) => "0".into(),
        (Some(bad), Some(all)) => format!("{bad} ({})", percent(bad, all)),
        (Some(bad), None) => bad.to_string(),
        (None, _) => "-".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bench::{BenchConfig, Results, Tests};

    fn doc() -> BenchDoc {
        BenchDoc {
            timestamp: "2026-01-01T00:00:00Z".into(),
            config: BenchConfig {
                tool: "rbench".into(),
                server: "127.0.0.1:6379".into(),
                clients: 50,
                pipeline: 1,
                value_size: 256,
                ..Default::default()
            },
            results: Results {
                tests: Tests(vec![(
                    "MSET (10 keys)".into(),
                    TestResult {
                        requests_per_second: 1234.5,
                        p50_latency_ms: Some(0.25),
                        requests: Some(10),
                        errors: Some(0),
                        ..Default::default()
                    },
                )]),
            },
            raw_output: String::new(),
        }
    }

    /// Two tests of every kind of cell: a native one with errors, hits and several runs, and a
    /// wrapped one without counts whose name needs quoting.
    fn golden_doc() -> BenchDoc {
        let mut d = doc();
        d.config.mode = Some("mixed".into());
        d.config.batch = Some(10);
        d.config.rate = Some(5000.0);
        d.results.tests.0 = vec![
            (
                "SET".into(),
                TestResult {
                    requests_per_second: 98765.4,
                    avg_latency_ms: Some(0.5),
                    min_latency_ms: Some(0.01),
                    p50_latency_ms: Some(0.25),
                    p90_latency_ms: Some(0.75),
                    p95_latency_ms: Some(1.0),
                    p99_latency_ms: Some(2.5),
                    p999_latency_ms: Some(9.125),
                    max_latency_ms: Some(12.0),
                    requests: Some(1000),
                    successes: Some(990),
                    errors: Some(10),
                    error_rate: Some(0.01),
                    first_error: Some("ERR \"x\", y".into()),
                    hits: Some(3),
                    misses: Some(1),
                    bytes_per_second: Some(12345.0),
                    requests_per_second_min: Some(90000.0),
                    requests_per_second_max: Some(99999.0),
                    runs: vec![TestResult::default(); 3],
                    ..Default::default()
                },
            ),
            (
                "GET \"a,b\"".into(),
                TestResult {
                    requests_per_second: 20.5,
                    p50_latency_ms: Some(0.1),
                    ..Default::default()
                },
            ),
        ];
        d
    }

    fn golden(format: RunFormat, d: &BenchDoc) -> String {
        let mut out = Vec::new();
        write(d, format, &mut out).unwrap();
        String::from_utf8(out).unwrap()
    }

    /// Every byte of every form, as rbench has written them (kept when the writers move).
    #[test]
    fn golden_forms() {
        let d = golden_doc();
        assert_eq!(
            golden(RunFormat::Csv, &d),
            r#"test,requests_per_second,avg_latency_ms,min_latency_ms,p50_latency_ms,p90_latency_ms,p95_latency_ms,p99_latency_ms,p999_latency_ms,max_latency_ms,requests,successes,errors,error_rate,first_error
SET,98765.4,0.5,0.01,0.25,0.75,1.0,2.5,9.125,12.0,1000,990,10,0.01,"ERR ""x"", y"
"GET ""a,b""",20.5,,,0.1,,,,,,,,,,
"#
        );
        assert_eq!(
            golden(RunFormat::Human, &d),
            r#"rbench → 127.0.0.1:6379: 50 clients, pipeline 1, 256-byte values, mixed 10, open loop at 5000 req/s
TEST       REQ/S  AVG    MIN    P50    P90    P95    P99    P99.9  MAX(ms)  REQUESTS  ERRORS
SET        98765  0.500  0.010  0.250  0.750  1.000  2.500  9.125  12.000   1000      10 (1.0%)
GET "a,b"  20     -      -      0.100  -      -      -      -      -        -         -
SET: 10 of 1000 requests failed (1.0%); REQ/S and latencies count only the 990 that succeeded; the first error: ERR "x", y
SET: GET 3 hits, 1 misses (25.0% missed); 12.3 kB/s sent and received
SET: median of 3 runs, 98765 req/s (min 90000, max 99999)
"#
        );
        assert_eq!(
            golden(RunFormat::Json, &d),
            r#"{
  "timestamp": "2026-01-01T00:00:00Z",
  "config": {
    "tool": "rbench",
    "tool_version": "",
    "server": "127.0.0.1:6379",
    "tests": [],
    "clients": 50,
    "value_size": 256,
    "pipeline": 1,
    "mode": "mixed",
    "batch": 10,
    "rate": 5000.0
  },
  "results": {
    "tests": {
      "SET": {
        "requests_per_second": 98765.4,
        "avg_latency_ms": 0.5,
        "min_latency_ms": 0.01,
        "p50_latency_ms": 0.25,
        "p95_latency_ms": 1.0,
        "p99_latency_ms": 2.5,
        "max_latency_ms": 12.0,
        "p90_latency_ms": 0.75,
        "p999_latency_ms": 9.125,
        "requests": 1000,
        "successes": 990,
        "errors": 10,
        "error_rate": 0.01,
        "first_error": "ERR \"x\", y",
        "hits": 3,
        "misses": 1,
        "bytes_per_second": 12345.0,
        "requests_per_second_min": 90000.0,
        "requests_per_second_max": 99999.0,
        "runs": [
          {
            "requests_per_second": 0.0,
            "avg_latency_ms": null,
            "min_latency_ms": null,
            "p50_latency_ms": null,
            "p95_latency_ms": null,
            "p99_latency_ms": null,
            "max_latency_ms": null
          },
          {
            "requests_per_second": 0.0,
            "avg_latency_ms": null,
            "min_latency_ms": null,
            "p50_latency_ms": null,
            "p95_latency_ms": null,
            "p99_latency_ms": null,
            "max_latency_ms": null
          },
          {
            "requests_per_second": 0.0,
            "avg_latency_ms": null,
            "min_latency_ms": null,
            "p50_latency_ms": null,
            "p95_latency_ms": null,
            "p99_latency_ms": null,
            "max_latency_ms": null
          }
        ]
      },
      "GET \"a,b\"": {
        "requests_per_second": 20.5,
        "avg_latency_ms": null,
        "min_latency_ms": null,
        "p50_latency_ms": 0.1,
        "p95_latency_ms": null,
        "p99_latency_ms": null,
        "max_latency_ms": null
      }
    }
  },
  "raw_output": ""
}
"#
        );
        let mut plain = doc();
        plain.results.tests.0[0].1.requests = None;
        assert_eq!(
            golden(RunFormat::Human, &plain),
            r#"rbench → 127.0.0.1:6379: 50 clients, pipeline 1, 256-byte values
TEST            REQ/S  AVG  MIN  P50    P95  P99  MAX(ms)
MSET (10 keys)  1234   -    -    0.250  -    -    -
"#
        );
        plain.results.tests.0.clear();
        assert_eq!(
            golden(RunFormat::Csv, &plain),
            r#"test,requests_per_second,avg_latency_ms,min_latency_ms,p50_latency_ms,p90_latency_ms,p95_latency_ms,p99_latency_ms,p999_latency_ms,max_latency_ms,requests,successes,errors,error_rate,first_error
"#
        );
        assert_eq!(
            golden(RunFormat::Human, &plain),
            r#"rbench → 127.0.0.1:6379: 50 clients, pipeline 1, 256-byte values
TEST  REQ/S  AVG  MIN  P50  P95  P99  MAX(ms)
"#
        );
    }

    #[test]
    fn csv_header_is_the_row_types_field_names() {
        let d = golden_doc();
        let (n, r) = &d.results.tests.0[0];
        output::assert_headers_are_field_names(&BenchRow::new(n, r));
    }

    #[test]
    fn csv_quotes_names_and_leaves_missing_cells_empty() {
        let mut out = Vec::new();
        write(&doc(), RunFormat::Csv, &mut out).unwrap();
        let s = String::from_utf8(out).unwrap();
        let mut lines = s.lines();
        assert_eq!(
            lines.next().unwrap(),
            output::columns::<BenchRow>().unwrap().join(",")
        );
        assert_eq!(
            lines.next().unwrap(),
            "MSET (10 keys),1234.5,,,0.25,,,,,,10,,0,,"
        );
    }

    #[test]
    fn human_table_has_a_row_per_test() {
        let mut out = Vec::new();
        write(&doc(), RunFormat::Human, &mut out).unwrap();
        let s = String::from_utf8(out).unwrap();
        assert!(s.contains("MSET (10 keys)  1234"), "{s}");
        assert!(s.contains("0.250"), "{s}");
    }

    #[test]
    fn errors_show_their_share_and_the_first_reply() {
        let mut d = doc();
        let r = &mut d.results.tests.0[0].1;
        r.successes = Some(6);
        r.errors = Some(4);
        r.error_rate = Some(0.4);
        r.first_error = Some("READONLY You can't write against a read only replica.".into());
        r.ops = vec![
            crate::bench::OpCount {
                op: "SET".into(),
                count: 4,
                errors: Some(4),
            },
            crate::bench::OpCount {
                op: "GET".into(),
                count: 6,
                errors: Some(0),
            },
        ];
        let mut out = Vec::new();
        write(&d, RunFormat::Human, &mut out).unwrap();
        let s = String::from_utf8(out).unwrap();
        assert!(s.contains("10        4 (40.0%)"), "{s}");
        assert!(
            s.contains(
                "MSET (10 keys): 4 of 10 requests failed (40.0%); REQ/S and latencies count \
                 only the 6 that succeeded; SET 4 of 4; the first error: READONLY"
            ),
            "{s}"
        );
        let mut out = Vec::new();
        write(&d, RunFormat::Csv, &mut out).unwrap();
        let s = String::from_utf8(out).unwrap();
        assert!(
            s.ends_with(",10,6,4,0.4,READONLY You can't write against a read only replica.\n"),
            "{s}"
        );
    }

    #[test]
    fn json_round_trips() {
        let mut out = Vec::new();
        write(&doc(), RunFormat::Json, &mut out).unwrap();
        let back: BenchDoc = serde_json::from_slice(&out).unwrap();
        assert_eq!(back.results.tests, doc().results.tests);
    }

    #[test]
    fn littles_law_speaks_only_when_latency_and_rate_disagree() {
        let c = BenchConfig {
            clients: 50,
            pipeline: 1,
            ..Default::default()
        };
        let mut r = TestResult {
            requests_per_second: 100_000.0,
            avg_latency_ms: Some(0.5),
            ..Default::default()
        };
        // 50 in flight at 100000/s: 0.5 ms. They agree: nothing to say.
        assert_eq!(littles_law("GET", &r, &c), None);
        r.avg_latency_ms = Some(0.3);
        let line = littles_law("GET", &r, &c).unwrap();
        assert!(line.contains("0.500 ms") && line.contains("-40%"), "{line}");
        assert!(line.contains("the client was the bottleneck"), "{line}");
        // The open loop has no fixed number in flight.
        let open = BenchConfig {
            rate: Some(1000.0),
            ..c.clone()
        };
        assert_eq!(littles_law("GET", &r, &open), None);
        let mut out = Vec::new();
        let mut d = doc();
        d.config = c;
        d.results.tests.0[0].1 = r;
        write(&d, RunFormat::Human, &mut out).unwrap();
        assert!(String::from_utf8(out).unwrap().contains("Little's law"));
    }

    #[test]
    fn hits_misses_bytes_and_runs_show_below_the_table() {
        let r = TestResult {
            requests_per_second: 900.0,
            hits: Some(75),
            misses: Some(25),
            bytes_per_second: Some(2_500_000.0),
            requests_per_second_min: Some(800.0),
            requests_per_second_max: Some(1000.0),
            runs: vec![TestResult::default(); 3],
            ..Default::default()
        };
        let lines = extra_lines("GET", &r, &BenchConfig::default());
        assert_eq!(
            lines[0],
            "GET: GET 75 hits, 25 misses (25.0% missed); 2.5 MB/s sent and received"
        );
        assert_eq!(
            lines[1],
            "GET: median of 3 runs, 900 req/s (min 800, max 1000)"
        );
    }
}
