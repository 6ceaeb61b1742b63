//! The output of `sacct` as rj-track asks for it: `slurm::parse_sacct`, and the rows' helpers
//! (`covers`, `task_count`) that read the task ranges Slurm printed.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    rj_fuzz::check_job_rows("parse_sacct", data, rj::slurm::parse_sacct);
});
