//! `rj-launch --record -`: the words of stdin as job IDs (`cmd::launch::parse_ids`).
#![no_main]
use std::collections::HashSet;

use libfuzzer_sys::fuzz_target;
use rj::cmd::launch::parse_ids;
use rj::keys::JobId;
use rj_fuzz::{one_line, strict};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let words: Vec<String> = text.split_whitespace().map(str::to_string).collect();
    match parse_ids(&words) {
        Ok(jobs) => {
            assert!(!jobs.is_empty());
            assert!(jobs.len() <= words.len());
            let mut seen = HashSet::new();
            let mut ids = HashSet::new();
            for j in &jobs {
                assert!(seen.insert(j.id.clone()), "{:?} twice", j.id);
                let id: JobId = j.id.parse().expect("a recorded ID parses");
                if strict() {
                    assert!(ids.insert(id), "two members for one job: {:?}", jobs);
                }
            }
        }
        Err(e) => one_line("parse_ids", &format!("{e:#}")),
    }
});
