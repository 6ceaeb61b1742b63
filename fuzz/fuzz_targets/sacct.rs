//! The output of `sacct` as rj-track asks for it: `slurm::parse_sacct`, and the rows' helpers
//! (`covers`, `task_count`) that read the task ranges Slurm printed.
#![no_main]
use libfuzzer_sys::fuzz_target;
use rj::slurm::{classify_failure, parse_sacct};
use rj_fuzz::one_line;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let _ = classify_failure(&text);
    match parse_sacct(&text) {
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
        Err(e) => one_line("parse_sacct", &e),
    }
});
