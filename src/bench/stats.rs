//! Latency statistics: HdrHistogram (nanoseconds) → the milliseconds a [`TestResult`] reports.
use hdrhistogram::Histogram;

use super::{PercentilePoint, TestResult};

/// Significant digits kept by every histogram (0.1 % relative error).
pub const SIGFIG: u8 = 3;

/// The percentiles stored for plots; enough points to draw the tail.
pub const CURVE: &[f64] = &[
    0.0, 10.0, 25.0, 50.0, 75.0, 90.0, 95.0, 97.5, 99.0, 99.5, 99.9, 99.95, 99.99, 99.999, 100.0,
];

/// A histogram of latencies in nanoseconds that grows as needed.
pub fn new_histogram() -> Histogram<u64> {
    let mut h = Histogram::new(SIGFIG).expect("valid sigfig");
    h.auto(true);
    h
}

fn ms(ns: u64) -> f64 {
    // Three decimals of a millisecond, as redis-benchmark prints.
    (ns as f64 / 1e3).round() / 1e3
}

/// Fill the latency fields of `r` from `h`; an empty histogram leaves them empty.
pub fn summarize(h: &Histogram<u64>, r: &mut TestResult) {
    if h.is_empty() {
        return;
    }
    let q = |p: f64| Some(ms(h.value_at_quantile(p)));
    r.min_latency_ms = Some(ms(h.min()));
    r.avg_latency_ms = Some((h.mean() / 1e3).round() / 1e3);
    r.p50_latency_ms = q(0.50);
    r.p90_latency_ms = q(0.90);
    r.p95_latency_ms = q(0.95);
    r.p99_latency_ms = q(0.99);
    r.p999_latency_ms = q(0.999);
    r.max_latency_ms = Some(ms(h.max()));
    r.latency_percentiles = CURVE
        .iter()
        .map(|&p| PercentilePoint {
            percentile: p,
            latency_ms: match p {
                0.0 => ms(h.min()),
                100.0 => ms(h.max()),
                _ => ms(h.value_at_quantile(p / 100.0)),
            },
        })
        .collect();
}

/// `b / a`, when both exist and `a` is not zero.
pub fn ratio(a: Option<f64>, b: Option<f64>) -> Option<f64> {
    match (a, b) {
        (Some(a), Some(b)) if a != 0.0 => Some(b / a),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uniform_distribution_percentiles() {
        let mut h = new_histogram();
        // 1 µs … 1000 µs, once each.
        for us in 1..=1000u64 {
            h.record(us * 1000).unwrap();
        }
        let mut r = TestResult::default();
        summarize(&h, &mut r);
        let close = |got: Option<f64>, want: f64| {
            let g = got.unwrap();
            assert!((g - want).abs() <= want * 0.002 + 0.001, "{g} vs {want}");
        };
        close(r.min_latency_ms, 0.001);
        close(r.p50_latency_ms, 0.5);
        close(r.p90_latency_ms, 0.9);
        close(r.p99_latency_ms, 0.99);
        close(r.p999_latency_ms, 0.999);
        close(r.max_latency_ms, 1.0);
        close(r.avg_latency_ms, 0.5005);
        let c: Vec<f64> = r.latency_percentiles.iter().map(|p| p.latency_ms).collect();
        assert!(c.windows(2).all(|w| w[0] <= w[1]), "{c:?}");
        assert_eq!(r.latency_percentiles.len(), CURVE.len());
    }

    #[test]
    fn one_outlier_shows_only_in_the_tail() {
        let mut h = new_histogram();
        h.record_n(100_000, 9_999).unwrap();
        h.record(50_000_000).unwrap();
        let mut r = TestResult::default();
        summarize(&h, &mut r);
        assert_eq!(r.p99_latency_ms, Some(0.1));
        assert_eq!(r.p999_latency_ms, Some(0.1));
        assert!((r.max_latency_ms.unwrap() - 50.0).abs() < 0.05);
    }

    #[test]
    fn empty_histogram_leaves_fields_empty() {
        let mut r = TestResult::default();
        summarize(&new_histogram(), &mut r);
        assert_eq!(r.p50_latency_ms, None);
        assert!(r.latency_percentiles.is_empty());
    }

    #[test]
    fn ratio_needs_both_and_a_nonzero_base() {
        assert_eq!(ratio(Some(2.0), Some(3.0)), Some(1.5));
        assert_eq!(ratio(Some(0.0), Some(3.0)), None);
        assert_eq!(ratio(None, Some(3.0)), None);
    }
}
