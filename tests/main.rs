//! The one integration-test crate: real redis-server per test, real Slurm testbed.
mod acl;
mod cleanup;
mod clusters;
mod compat;
mod config;
mod ecosystem;
mod examples;
mod last;
mod launch;
mod metrics;
mod put;
mod rbench;
mod status;
mod store;
mod tls;
mod track;
mod util;
