//! `rj-launch --record -`: the words of stdin as job IDs (`cmd::launch::parse_ids`).
#![no_main]
use std::collections::HashSet;

use libfuzzer_sys::fuzz_target;
use rj::cmd::launch::parse_ids;
use rj::keys::JobId;
use rj_fuzz::one_line;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let words: Vec<&[u8]> = text.split_whitespace().map(str::as_bytes).collect();
    match parse_ids(&words) {
        Ok(jobs) => {
            assert!(!jobs.is_empty());
            assert!(jobs.len() <= words.len());
            let mut seen = HashSet::new();
            for i in 0..jobs.len() {
                let id: JobId = jobs.id(i);
                // One member per Slurm job: the canonical ID, each once.
                assert!(seen.insert(id.to_string()), "{id} twice: {jobs:?}");
                let back: JobId = id.to_string().parse().expect("a recorded ID parses");
                assert_eq!(back.to_string(), id.to_string());
            }
        }
        Err(e) => one_line("parse_ids", &format!("{e:#}")),
    }
});
