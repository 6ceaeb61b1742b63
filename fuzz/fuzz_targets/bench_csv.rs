//! What redis-benchmark prints (`--csv` of any version, `-q`): `bench::wrap::parse_output`.
#![no_main]
use libfuzzer_sys::fuzz_target;
use rj::bench::wrap::parse_output;
use rj_fuzz::one_line;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    match parse_output(text) {
        Ok(tests) => {
            assert!(!tests.0.is_empty());
            for (i, (name, r)) in tests.0.iter().enumerate() {
                assert!(
                    !tests.0[..i].iter().any(|(n, _)| n == name),
                    "test {name:?} twice"
                );
                let all = [
                    Some(r.requests_per_second),
                    r.avg_latency_ms,
                    r.min_latency_ms,
                    r.p50_latency_ms,
                    r.p95_latency_ms,
                    r.p99_latency_ms,
                    r.max_latency_ms,
                ];
                for x in all.into_iter().flatten() {
                    assert!(
                        x.is_finite() && x >= 0.0,
                        "accepted {x} as a measurement of {name:?}"
                    );
                }
            }
        }
        Err(e) => one_line("parse_output", &e.to_string()),
    }
});
