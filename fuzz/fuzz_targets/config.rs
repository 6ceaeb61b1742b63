//! redis.json as rj reads it: `config::parse` on the text and `config::load` on the file's bytes.
#![no_main]
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use rj::config::{self, Request, Target};
use rj_fuzz::{one_line, strict};

/// Debug must show exactly what it shows without the password, with the password as `***`.
fn password_hidden(t: &Target) {
    let mut bare = t.clone();
    bare.password = None;
    let shown = format!("{t:?}").replace("password: Some(\"***\")", "password: None");
    assert_eq!(
        shown,
        format!("{bare:?}"),
        "Debug of Target shows its password"
    );
    let _ = t.to_string();
}

fn file() -> &'static PathBuf {
    static F: OnceLock<PathBuf> = OnceLock::new();
    F.get_or_init(|| {
        let d = std::env::temp_dir().join(format!("rj-fuzz-config-{}", std::process::id()));
        std::fs::create_dir_all(&d).unwrap();
        d.join("redis.json")
    })
}

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        match config::parse(text, Path::new("redis.json")) {
            Ok(raw) => {
                let _ = format!("{raw:?}");
                if let Some(u) = &raw.url {
                    let _ = config::parse_url(u);
                }
                if strict() {
                    assert!(
                        serde_json::from_str::<serde_json::Value>(text).is_ok(),
                        "accepted a redis.json that is not one JSON value: {text:?}"
                    );
                    assert_ne!(raw.port, Some(0), "accepted port 0");
                }
            }
            Err(e) => {
                let msg = format!("{e:#}");
                one_line("config::parse", &msg);
                if strict() && text.starts_with('\u{feff}') {
                    assert!(
                        msg.contains("BOM") || msg.contains("byte-order mark"),
                        "{msg}"
                    );
                }
            }
        }
    }
    let p = file();
    std::fs::write(p, data).unwrap();
    let req = Request {
        config: Some(p.clone()),
        url: None,
    };
    match config::load(&req, &HashMap::new()) {
        Ok(c) => {
            password_hidden(&c.target);
            if strict() {
                assert!(!c.target.to_string().starts_with("[["), "{}", c.target);
            }
        }
        Err(e) => one_line("config::load", &format!("{e:#}")),
    }
});
