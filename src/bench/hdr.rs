//! `--hdr-out`: a test's latencies in HdrHistogram's own file forms, for its tools
//! (HistogramLogProcessor, the online plotter): an interval log with one histogram per second
//! (`.hlog`) and the whole run's percentile distribution (`.hgrm`), values in milliseconds.
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use anyhow::Context;
use hdrhistogram::serialization::interval_log::IntervalLogWriterBuilder;
use hdrhistogram::serialization::V2DeflateSerializer;
use hdrhistogram::Histogram;

use super::engine::Outcome;

/// Nanoseconds (what the engine records) per millisecond (what the files show).
const NS_PER_MS: f64 = 1e6;

/// `PREFIX_TEST[SUFFIX].hlog` and `.hgrm`; the test's name is made safe for a file name.
pub fn paths(prefix: &Path, test: &str, suffix: Option<&str>) -> (PathBuf, PathBuf) {
    let safe: String = test
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
        .collect();
    let base = format!(
        "{}_{}{}",
        prefix.display(),
        safe.trim_matches('_'),
        suffix.unwrap_or("")
    );
    (
        PathBuf::from(format!("{base}.hlog")),
        PathBuf::from(format!("{base}.hgrm")),
    )
}

pub fn write_files(
    prefix: &Path,
    test: &str,
    suffix: Option<&str>,
    o: &Outcome,
) -> anyhow::Result<()> {
    let (hlog, hgrm) = paths(prefix, test, suffix);
    let start = SystemTime::now()
        .checked_sub(o.elapsed)
        .unwrap_or(SystemTime::UNIX_EPOCH);
    std::fs::write(&hlog, interval_log(o, start)?)
        .with_context(|| format!("cannot write {}", hlog.display()))?;
    std::fs::write(&hgrm, percentiles(&o.hist))
        .with_context(|| format!("cannot write {}", hgrm.display()))?;
    crate::cli::info(&format!("wrote {} and {}", hlog.display(), hgrm.display()));
    Ok(())
}

/// The interval log: headers, the legend, then one base64 V2-deflate histogram per second.
pub fn interval_log(o: &Outcome, start: SystemTime) -> anyhow::Result<Vec<u8>> {
    let mut out = Vec::new();
    let mut ser = V2DeflateSerializer::new();
    IntervalLogWriterBuilder::new()
        .add_comment("[Logged with rbench]")
        .add_comment("[Histogram log format version 1.3]")
        .with_start_time(start)
        .with_base_time(start)
        .with_max_value_divisor(NS_PER_MS)
        .begin_log_with(&mut out, &mut ser)?;
    out.extend_from_slice(
        b"\"StartTimestamp\",\"Interval_Length\",\"Interval_Max\",\"Interval_Compressed_Histogram\"\n",
    );
    let mut body = Vec::new();
    {
        let mut w = IntervalLogWriterBuilder::new()
            .with_max_value_divisor(NS_PER_MS)
            .begin_log_with(&mut body, &mut ser)?;
        for i in 0..o.seconds.len() {
            let h = o.second(i);
            if h.is_empty() {
                continue;
            }
            w.write_histogram(
                &h,
                Duration::from_secs(i as u64),
                Duration::from_secs(1),
                None,
            )
            .map_err(|e| anyhow::anyhow!("cannot encode a latency histogram: {e:?}"))?;
        }
    }
    // The second writer repeats the divisor comment; the histograms follow it.
    let skip = match body.starts_with(b"#") {
        true => body.iter().position(|&b| b == b'\n').map_or(0, |p| p + 1),
        false => 0,
    };
    out.extend_from_slice(&body[skip..]);
    Ok(out)
}

/// HdrHistogram's percentile distribution text (its `outputPercentileDistribution`), in ms.
pub fn percentiles(h: &Histogram<u64>) -> String {
    let mut s = String::new();
    let _ = writeln!(
        s,
        "{:>12} {:>14} {:>10} {:>14}\n",
        "Value", "Percentile", "TotalCount", "1/(1-Percentile)"
    );
    if !h.is_empty() {
        for v in h.iter_quantiles(5) {
            let value = h.highest_equivalent(v.value_iterated_to()) as f64 / NS_PER_MS;
            let q = v.quantile_iterated_to();
            let total = h.count_between(0, v.value_iterated_to());
            if q < 1.0 {
                let _ = writeln!(
                    s,
                    "{value:12.3} {q:2.12} {total:10} {:14.2}",
                    1.0 / (1.0 - q)
                );
            } else {
                let _ = writeln!(s, "{value:12.3} {q:2.12} {total:10}");
            }
        }
    }
    let (mean, sd, max) = if h.is_empty() {
        (0.0, 0.0, 0.0)
    } else {
        (
            h.mean() / NS_PER_MS,
            h.stdev() / NS_PER_MS,
            h.max() as f64 / NS_PER_MS,
        )
    };
    let _ = writeln!(s, "#[Mean    = {mean:12.3}, StdDeviation   = {sd:12.3}]");
    let _ = writeln!(
        s,
        "#[Max     = {max:12.3}, Total count    = {:12}]",
        h.len()
    );
    let _ = writeln!(
        s,
        "#[Buckets = {:12}, SubBuckets     = {:12}]",
        h.buckets(),
        h.distinct_values()
    );
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentile_file_has_the_hdrhistogram_layout() {
        let mut h = crate::bench::stats::new_histogram();
        for us in 1..=1000u64 {
            h.record(us * 1000).unwrap();
        }
        let s = percentiles(&h);
        let lines: Vec<&str> = s.lines().collect();
        assert!(lines[0].contains("Value") && lines[0].contains("1/(1-Percentile)"));
        assert_eq!(lines[1], "");
        // Rows: value (ms), percentile, count so far; the last is the maximum at 1.0.
        let rows: Vec<Vec<&str>> = lines[2..]
            .iter()
            .take_while(|l| !l.starts_with('#'))
            .map(|l| l.split_whitespace().collect())
            .collect();
        assert!(rows.len() > 20);
        let last = rows.last().unwrap();
        assert_eq!(last[1], "1.000000000000");
        assert_eq!(last[2], "1000");
        let max: f64 = last[0].parse().unwrap();
        assert!((max - 1.0).abs() < 0.002, "{max}");
        assert!(s.contains("Total count    =         1000]"), "{s}");
        let (log, grm) = paths(Path::new("/tmp/x"), "MSET (10 keys)", Some("_run2"));
        assert_eq!(log, PathBuf::from("/tmp/x_MSET__10_keys_run2.hlog"));
        assert_eq!(grm, PathBuf::from("/tmp/x_MSET__10_keys_run2.hgrm"));
    }
}
