//! `rbench compare`: throughput and latency of several results side by side, with ratios
//! against the first file; wrap and run results alike.
use std::io::Write;
use std::path::{Path, PathBuf};

use serde::Serialize;

use super::export::{errors_cell, ms, rps};
use super::stats::ratio;
use super::BenchDoc;
use crate::exit::{fail, Kind};
use crate::output;

/// The forms of the comparison table.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum CompareFormat {
    /// An aligned table for people.
    Human,
    /// A Markdown table, for READMEs and issues.
    Markdown,
    /// One line per test and file, with a header line.
    Csv,
    /// An array of rows.
    Json,
}

/// A result file and the name it is shown under.
pub struct Loaded {
    pub label: String,
    pub doc: BenchDoc,
}

/// What compare needs of a file: only the results. `config` and `raw_output` are whatever the
/// producer wrote (older wrappers used other config fields), so they are not read.
#[derive(serde::Deserialize)]
struct Lenient {
    #[serde(default)]
    timestamp: Option<String>,
    results: super::Results,
}

/// Read result files; labels are the file names (whole paths when two names collide).
pub fn load(paths: &[PathBuf]) -> anyhow::Result<Vec<Loaded>> {
    let mut out = Vec::new();
    for p in paths {
        let text = std::fs::read_to_string(p)
            .map_err(|e| fail(Kind::Usage, format!("cannot read {}: {e}", p.display())))?;
        let l: Lenient = serde_json::from_str(&text).map_err(|e| {
            fail(
                Kind::DataErr,
                format!(
                    "{} is not an rbench result (wrap or run JSON): {e}",
                    p.display()
                ),
            )
        })?;
        out.push(Loaded {
            label: file_name(p),
            doc: BenchDoc {
                timestamp: l.timestamp.unwrap_or_default(),
                config: Default::default(),
                results: l.results,
                raw_output: String::new(),
            },
        });
    }
    let names: Vec<String> = out.iter().map(|l| l.label.clone()).collect();
    for (l, p) in out.iter_mut().zip(paths) {
        if names.iter().filter(|n| **n == l.label).count() > 1 {
            l.label = p.display().to_string();
        }
    }
    Ok(out)
}

fn file_name(p: &Path) -> String {
    p.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| p.display().to_string())
}

/// One test of one file, against the same test of the first file.
#[derive(Debug, Clone, Default, Serialize, serde::Deserialize, PartialEq)]
pub struct Row {
    pub test: String,
    pub file: String,
    pub requests_per_second: f64,
    /// This file's throughput / the first file's (above 1: faster).
    pub rps_ratio: Option<f64>,
    pub avg_latency_ms: Option<f64>,
    pub p50_latency_ms: Option<f64>,
    pub p95_latency_ms: Option<f64>,
    pub p99_latency_ms: Option<f64>,
    pub max_latency_ms: Option<f64>,
    /// This file's p50 / the first file's (below 1: faster).
    pub p50_ratio: Option<f64>,
    pub p99_ratio: Option<f64>,
    /// Requests issued and how many failed, when the file says (a rate measured with errors is
    /// the rate of the successful replies; older files and wrap results have no counts).
    #[serde(default)]
    pub requests: Option<u64>,
    #[serde(default)]
    pub errors: Option<u64>,
    #[serde(default)]
    pub error_rate: Option<f64>,
}

/// The rows, test by test in order of first appearance, files in the order given. `only`
/// keeps the tests named there (case-insensitive).
pub fn rows(files: &[Loaded], only: &[String]) -> Vec<Row> {
    let mut tests: Vec<String> = Vec::new();
    for f in files {
        for (n, _) in &f.doc.results.tests.0 {
            let wanted = only.is_empty() || only.iter().any(|o| o.eq_ignore_ascii_case(n));
            if wanted && !tests.iter().any(|t| t.eq_ignore_ascii_case(n)) {
                tests.push(n.clone());
            }
        }
    }
    let mut out = Vec::new();
    for t in &tests {
        let base = files.first().and_then(|f| f.doc.results.tests.get(t));
        for f in files {
            let Some(r) = f.doc.results.tests.get(t) else {
                continue;
            };
            out.push(Row {
                test: t.clone(),
                file: f.label.clone(),
                requests_per_second: r.requests_per_second,
                rps_ratio: base
                    .and_then(|b| ratio(Some(b.requests_per_second), Some(r.requests_per_second))),
                avg_latency_ms: r.avg_latency_ms,
                p50_latency_ms: r.p50_latency_ms,
                p95_latency_ms: r.p95_latency_ms,
                p99_latency_ms: r.p99_latency_ms,
                max_latency_ms: r.max_latency_ms,
                p50_ratio: base.and_then(|b| ratio(b.p50_latency_ms, r.p50_latency_ms)),
                p99_ratio: base.and_then(|b| ratio(b.p99_latency_ms, r.p99_latency_ms)),
                requests: r.requests,
                errors: r.errors,
                error_rate: r.error_rate,
            });
        }
    }
    out
}

fn x(v: Option<f64>) -> String {
    v.map_or_else(|| "-".into(), |r| format!("{r:.2}x"))
}

/// The comparison in rbench's own units; CSV and JSON keep the numbers as they are.
impl output::Row for Row {
    fn headings() -> anyhow::Result<Vec<String>> {
        Ok([
            "TEST", "FILE", "REQ/S", "VS FIRST", "AVG", "P50", "P95", "P99", "MAX(ms)", "P50 VS",
            "P99 VS", "ERRORS",
        ]
        .map(String::from)
        .to_vec())
    }

    fn cells(&self) -> anyhow::Result<Vec<String>> {
        Ok(vec![
            self.test.clone(),
            self.file.clone(),
            rps(self.requests_per_second),
            x(self.rps_ratio),
            ms(self.avg_latency_ms),
            ms(self.p50_latency_ms),
            ms(self.p95_latency_ms),
            ms(self.p99_latency_ms),
            ms(self.max_latency_ms),
            x(self.p50_ratio),
            x(self.p99_ratio),
            errors_cell(self.errors, self.requests),
        ])
    }

    /// Test and file on the left, the figures on the right.
    fn right_aligned(column: usize) -> bool {
        column >= 2
    }
}

impl From<CompareFormat> for output::Form {
    fn from(f: CompareFormat) -> output::Form {
        match f {
            CompareFormat::Human => output::Form::Human,
            CompareFormat::Markdown => output::Form::Markdown,
            CompareFormat::Csv => output::Form::Csv,
            CompareFormat::Json => output::Form::Json,
        }
    }
}

pub fn write(rows: &[Row], format: CompareFormat, out: &mut dyn Write) -> anyhow::Result<()> {
    output::write_rows(format.into(), out, rows)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bench::{Results, TestResult, Tests};

    fn loaded(label: &str, tests: &[(&str, f64, Option<f64>)]) -> Loaded {
        Loaded {
            label: label.into(),
            doc: BenchDoc {
                timestamp: String::new(),
                config: Default::default(),
                results: Results {
                    tests: Tests(
                        tests
                            .iter()
                            .map(|(n, rps, p50)| {
                                (
                                    n.to_string(),
                                    TestResult {
                                        requests_per_second: *rps,
                                        p50_latency_ms: *p50,
                                        ..Default::default()
                                    },
                                )
                            })
                            .collect(),
                    ),
                },
                raw_output: String::new(),
            },
        }
    }

    #[test]
    fn ratios_are_against_the_first_file() {
        let files = [
            loaded("a.json", &[("SET", 100.0, Some(0.5)), ("GET", 200.0, None)]),
            loaded("b.json", &[("set", 150.0, Some(0.25)), ("INCR", 1.0, None)]),
        ];
        let r = rows(&files, &[]);
        let t: Vec<(&str, &str)> = r
            .iter()
            .map(|r| (r.test.as_str(), r.file.as_str()))
            .collect();
        assert_eq!(
            t,
            [
                ("SET", "a.json"),
                ("SET", "b.json"),
                ("GET", "a.json"),
                ("INCR", "b.json")
            ]
        );
        assert_eq!(r[0].rps_ratio, Some(1.0));
        assert_eq!(r[1].rps_ratio, Some(1.5));
        assert_eq!(r[1].p50_ratio, Some(0.5));
        assert_eq!(r[3].rps_ratio, None, "no INCR in the first file");
        let only = rows(&files, &["get".into()]);
        assert_eq!(only.len(), 1);
    }

    fn golden(rows: &[Row], format: CompareFormat) -> String {
        let mut out = Vec::new();
        write(rows, format, &mut out).unwrap();
        String::from_utf8(out).unwrap()
    }

    /// Every byte of every form, as rbench compare has written them (kept when the writers move).
    #[test]
    fn golden_forms() {
        let mut files = [
            loaded(
                "a|b.json",
                &[("SET", 100.0, Some(0.5)), ("GET", 200.0, None)],
            ),
            loaded(
                "b.json",
                &[("set", 150.5, Some(0.25)), ("I,N\"CR", 1.0, None)],
            ),
        ];
        let r = &mut files[1].doc.results.tests.0[0].1;
        r.avg_latency_ms = Some(1.0);
        r.p95_latency_ms = Some(2.0);
        r.p99_latency_ms = Some(3.0);
        r.max_latency_ms = Some(4.5);
        r.requests = Some(1000);
        r.errors = Some(5);
        r.error_rate = Some(0.005);
        files[0].doc.results.tests.0[0].1.p99_latency_ms = Some(6.0);
        files[0].doc.results.tests.0[0].1.errors = Some(0);
        let rows = rows(&files, &[]);
        assert_eq!(
            golden(&rows, CompareFormat::Human),
            r#"TEST    FILE      REQ/S  VS FIRST  AVG    P50    P95    P99    MAX(ms)  P50 VS  P99 VS  ERRORS
SET     a|b.json  100    1.00x     -      0.500  -      6.000  -        1.00x   1.00x   0
SET     b.json    150    1.50x     1.000  0.250  2.000  3.000  4.500    0.50x   0.50x   5 (0.5%)
GET     a|b.json  200    1.00x     -      -      -      -      -        -       -       -
I,N"CR  b.json    1      -         -      -      -      -      -        -       -       -
"#
        );
        assert_eq!(
            golden(&rows, CompareFormat::Markdown),
            r#"| TEST | FILE | REQ/S | VS FIRST | AVG | P50 | P95 | P99 | MAX(ms) | P50 VS | P99 VS | ERRORS |
| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |
| SET | a\|b.json | 100 | 1.00x | - | 0.500 | - | 6.000 | - | 1.00x | 1.00x | 0 |
| SET | b.json | 150 | 1.50x | 1.000 | 0.250 | 2.000 | 3.000 | 4.500 | 0.50x | 0.50x | 5 (0.5%) |
| GET | a\|b.json | 200 | 1.00x | - | - | - | - | - | - | - | - |
| I,N"CR | b.json | 1 | - | - | - | - | - | - | - | - | - |
"#
        );
        assert_eq!(
            golden(&rows, CompareFormat::Csv),
            r#"test,file,requests_per_second,rps_ratio,avg_latency_ms,p50_latency_ms,p95_latency_ms,p99_latency_ms,max_latency_ms,p50_ratio,p99_ratio,requests,errors,error_rate
SET,a|b.json,100.0,1.0,,0.5,,6.0,,1.0,1.0,,0,
SET,b.json,150.5,1.505,1.0,0.25,2.0,3.0,4.5,0.5,0.5,1000,5,0.005
GET,a|b.json,200.0,1.0,,,,,,,,,,
"I,N""CR",b.json,1.0,,,,,,,,,,,
"#
        );
        assert_eq!(
            golden(&rows, CompareFormat::Json),
            r#"[
  {
    "test": "SET",
    "file": "a|b.json",
    "requests_per_second": 100.0,
    "rps_ratio": 1.0,
    "avg_latency_ms": null,
    "p50_latency_ms": 0.5,
    "p95_latency_ms": null,
    "p99_latency_ms": 6.0,
    "max_latency_ms": null,
    "p50_ratio": 1.0,
    "p99_ratio": 1.0,
    "requests": null,
    "errors": 0,
    "error_rate": null
  },
  {
    "test": "SET",
    "file": "b.json",
    "requests_per_second": 150.5,
    "rps_ratio": 1.505,
    "avg_latency_ms": 1.0,
    "p50_latency_ms": 0.25,
    "p95_latency_ms": 2.0,
    "p99_latency_ms": 3.0,
    "max_latency_ms": 4.5,
    "p50_ratio": 0.5,
    "p99_ratio": 0.5,
    "requests": 1000,
    "errors": 5,
    "error_rate": 0.005
  },
  {
    "test": "GET",
    "file": "a|b.json",
    "requests_per_second": 200.0,
    "rps_ratio": 1.0,
    "avg_latency_ms": null,
    "p50_latency_ms": null,
    "p95_latency_ms": null,
    "p99_latency_ms": null,
    "max_latency_ms": null,
    "p50_ratio": null,
    "p99_ratio": null,
    "requests": null,
    "errors": null,
    "error_rate": null
  },
  {
    "test": "I,N\"CR",
    "file": "b.json",
    "requests_per_second": 1.0,
    "rps_ratio": null,
    "avg_latency_ms": null,
    "p50_latency_ms": null,
    "p95_latency_ms": null,
    "p99_latency_ms": null,
    "max_latency_ms": null,
    "p50_ratio": null,
    "p99_ratio": null,
    "requests": null,
    "errors": null,
    "error_rate": null
  }
]
"#
        );
        assert_eq!(
            golden(&[], CompareFormat::Csv),
            r#"test,file,requests_per_second,rps_ratio,avg_latency_ms,p50_latency_ms,p95_latency_ms,p99_latency_ms,max_latency_ms,p50_ratio,p99_ratio,requests,errors,error_rate
"#
        );
        assert_eq!(
            golden(&[], CompareFormat::Markdown),
            r#"| TEST | FILE | REQ/S | VS FIRST | AVG | P50 | P95 | P99 | MAX(ms) | P50 VS | P99 VS | ERRORS |
| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |
"#
        );
        assert_eq!(
            golden(&[], CompareFormat::Human),
            "TEST  FILE  REQ/S  VS FIRST  AVG  P50  P95  P99  MAX(ms)  P50 VS  P99 VS  ERRORS\n"
        );
        assert_eq!(golden(&[], CompareFormat::Json), "[]\n");
    }

    #[test]
    fn csv_header_is_the_row_types_field_names() {
        let files = [loaded("a.json", &[("SET", 100.0, Some(0.5))])];
        output::assert_headers_are_field_names(&rows(&files, &[])[0]);
    }

    #[test]
    fn markdown_escapes_pipes() {
        let files = [loaded("a|b.json", &[("SET", 100.0, None)])];
        let mut out = Vec::new();
        write(&rows(&files, &[]), CompareFormat::Markdown, &mut out).unwrap();
        let s = String::from_utf8(out).unwrap();
        assert!(s.contains("| SET | a\\|b.json | 100 | 1.00x |"), "{s}");
        assert_eq!(
            s.lines().nth(1).unwrap().matches("---").count(),
            <Row as output::Row>::headings().unwrap().len()
        );
    }
}
