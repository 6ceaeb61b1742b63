//! Checks shared by the fuzz targets.
//!
//! `RJ_FUZZ_STRICT=1` also checks properties that are known to fail and are being fixed
//! elsewhere (so that the everyday runs keep searching for new findings instead of stopping at
//! the first known one, while a strict run shows whether the fix landed).
use std::sync::OnceLock;

/// Is `RJ_FUZZ_STRICT` set?
pub fn strict() -> bool {
    static S: OnceLock<bool> = OnceLock::new();
    *S.get_or_init(|| std::env::var_os("RJ_FUZZ_STRICT").is_some_and(|v| v != "0"))
}

/// Errors are one line (`NAME: error: …`): a message must not carry a raw newline from the input.
pub fn one_line(what: &str, msg: &str) {
    assert!(
        !msg.contains('\n') && !msg.contains('\r'),
        "{what}: error message is not one line: {msg:?}"
    );
}

/// Slurm job-ID syntax as DESIGN states it: digits, optionally `_` and digits.
pub fn is_job_id_syntax(s: &str) -> bool {
    let digits = |p: &str| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit());
    match s.split_once('_') {
        Some((j, t)) => digits(j) && digits(t),
        None => digits(s),
    }
}

/// The canonical spelling of an ID Slurm prints: no leading zeros, no job 0.
pub fn is_canonical_id(s: &str) -> bool {
    let canon = |p: &str| p == "0" || !p.starts_with('0');
    match s.split_once('_') {
        Some((j, t)) => canon(j) && canon(t) && j != "0",
        None => canon(s) && s != "0",
    }
}

/// The checks shared by the squeue, sacct and scontrol targets: Slurm's failure text is
/// classified without panicking, and every row a parser returns has a numeric base ID, at
/// least one task, and covers its own ID and base.
pub fn check_job_rows(
    what: &str,
    data: &[u8],
    parse: fn(&str) -> Result<Vec<rj::slurm::JobRow>, String>,
) {
    let text = String::from_utf8_lossy(data);
    let _ = rj::slurm::classify_failure(&text);
    match parse(&text) {
        Ok(rows) => {
            for r in &rows {
                assert!(
                    !r.base.is_empty() && r.base.bytes().all(|b| b.is_ascii_digit()),
                    "{r:?}"
                );
                assert!(r.task_count() >= 1);
                assert!(r.covers(&r.id), "{r:?} does not cover its own ID");
                assert!(r.covers(&r.base));
                for t in ["0", "1", "7", "4294967295", "18446744073709551615"] {
                    let _ = r.covers(&format!("{}_{t}", r.base));
                }
            }
        }
        Err(e) => one_line(what, &e),
    }
}
