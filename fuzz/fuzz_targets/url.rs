//! Redis URLs (`--url`, `REDIS_URL`, redis.json's "url"): `config::parse_url`.
#![no_main]
use libfuzzer_sys::fuzz_target;
use rj::config::{self, Addr};
use rj_fuzz::{one_line, strict};

fuzz_target!(|data: &[u8]| {
    let Ok(url) = std::str::from_utf8(data) else {
        return;
    };
    match config::parse_url(url) {
        Ok(t) => {
            let mut bare = t.clone();
            bare.password = None;
            let shown = format!("{t:?}").replace("password: Some(\"***\")", "password: None");
            assert_eq!(
                shown,
                format!("{bare:?}"),
                "Debug of Target shows its password"
            );
            let _ = t.to_string();
            assert!(t.db >= 0, "accepted a negative database {}: {url:?}", t.db);
            if strict() {
                if let Addr::Tcp { host, port, .. } = &t.addr {
                    assert!(!host.is_empty(), "accepted a URL without a host: {url:?}");
                    assert_ne!(*port, 0, "accepted port 0: {url:?}");
                }
            }
        }
        Err(e) => {
            let msg = format!("{e:#}");
            one_line("parse_url", &msg);
            // The URL may hold a password: no error repeats any of it.
            assert!(
                msg.starts_with("not a valid Redis URL (expected ")
                    || msg == "the database number in the Redis URL is negative",
                "error depends on the URL: {msg}"
            );
        }
    }
});
