//! The wall clock as the tools write it: record timestamps, unix seconds, and a nonce from the
//! clock that tells two processes apart. Below `cli` and `cmd`, so both use it without a circle.
use std::time::{SystemTime, UNIX_EPOCH};

/// Seconds since the epoch as RFC 3339 UTC, the form every timestamp in a job hash takes.
pub fn now_rfc3339() -> String {
    humantime::format_rfc3339_seconds(SystemTime::now()).to_string()
}

/// Whole seconds since the epoch (0 for a clock set before it).
pub fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// The nanoseconds of the current second: with the host and the PID, an owner string no other
/// process has, even after a PID is reused (the tracker lease owner `host:pid:nonce`).
pub fn nonce() -> u32 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc3339_is_utc_to_the_second() {
        let t = now_rfc3339();
        assert_eq!(t.len(), "2026-01-02T03:04:05Z".len(), "{t}");
        assert!(t.ends_with('Z'), "{t}");
        let back = humantime::parse_rfc3339(&t).unwrap();
        let secs = back.duration_since(UNIX_EPOCH).unwrap().as_secs();
        assert!(now_secs().abs_diff(secs) <= 2, "{t}");
    }
}
