//! rj-last: the key/values written by the most recent job of a tag (or a named one).
use std::io::Write;
use std::process::ExitCode;

use clap::Parser;
use serde::Serialize;

use crate::cli::{self, ConnArgs, TagArg};
use crate::exit::{fail, Kind};
use crate::keys::{escape_glob, JobId, Keys, Set};
use crate::output::{self, Format};

pub const EXAMPLES: &str = "\
  rj-last --tag exp1
  rj-last --job 4238610 --format json | jq '.keys[].value'
";

/// Show the keys `TAG-<jobid>:*` of the last job (largest job ID in TAG_ALL) or of --job, and
/// those of its array tasks, `TAG-<jobid>_<task>:*`.
///
/// Keys are found with SCAN (never KEYS) and printed sorted: the job's own keys first, then each
/// array task's in numeric task order (task 2 before task 10). An array task ID (--job 4238610_3)
/// shows only that task's keys. Values of any Redis type are shown.
#[derive(Debug, Parser)]
#[command(name = "rj-last", version = cli::VERSION, after_long_help = cli::footer(EXAMPLES))]
pub struct Args {
    #[command(flatten)]
    pub conn: ConnArgs,
    #[command(flatten)]
    pub tag: TagArg,
    /// This job instead of the last one: 4238610, or 4238610_3 for one array task.
    #[arg(long, value_name = "ID")]
    pub job: Option<String>,
    /// Output form; `human` and `plain` are the original `Key:`/`Value:`/`---` lines.
    #[arg(long, value_enum, default_value_t = Format::Human)]
    pub format: Format,
}

#[derive(Debug, Serialize)]
struct KeyValue {
    key: String,
    #[serde(rename = "type")]
    kind: String,
    value: serde_json::Value,
}

#[derive(Debug, Serialize)]
struct FlatRow<'a> {
    key: &'a str,
    #[serde(rename = "type")]
    kind: &'a str,
    value: String,
}

#[derive(Debug, Serialize)]
struct LastDoc<'a> {
    tag: &'a str,
    job_id: &'a str,
    keys: Vec<KeyValue>,
}

/// Strings as themselves, everything else as compact JSON.
fn flat(v: &serde_json::Value) -> String {
    match v {
        serde_json::Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// Whether `job` is an array parent (or plain job) whose tasks' keys are shown with its own.
fn has_tasks(job: &str) -> bool {
    !job.contains('_')
}

/// The patterns of the keys shown for `job`, as users read them in messages.
fn patterns(keys: &Keys, job: &str) -> Vec<String> {
    let mut out = vec![keys.job_data_pattern(job)];
    if has_tasks(job) {
        out.push(format!(
            "{}-{}_*:*",
            escape_glob(keys.tag().as_str()),
            escape_glob(job)
        ));
    }
    out
}

/// One SCAN MATCH pattern covering [`patterns`]: `T-<id>[:_]*` walks the keyspace once instead of
/// twice. It can still match keys that are not this job's (`T-<id>_x-5:…` of tag `T-<id>_x`),
/// which [`job_keys`] drops.
fn scan_pattern(keys: &Keys, job: &str) -> String {
    if has_tasks(job) {
        format!(
            "{}-{}[:_]*",
            escape_glob(keys.tag().as_str()),
            escape_glob(job)
        )
    } else {
        keys.job_data_pattern(job)
    }
}

/// The keys of `job` (and of its array tasks) among `found`, ordered by job ID (the job's own keys,
/// then its tasks numerically: `_2` before `_10`), then by key.
fn job_keys(keys: &Keys, job: &str, found: Vec<String>) -> Vec<String> {
    let mut mine: Vec<(JobId, String)> = found
        .into_iter()
        .filter_map(|k| {
            let id = keys.data_key_job(&k)?;
            let ours = id == job || (has_tasks(job) && id.strip_prefix(job)?.starts_with('_'));
            let id = id.parse::<JobId>().ok()?;
            ours.then_some((id, k))
        })
        .collect();
    mine.sort();
    mine.into_iter().map(|(_, k)| k).collect()
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let (_cfg, keys, mut store) = super::open(&args.conn, &args.tag)?;
    let job = match &args.job {
        // As rj-launch stored it: `--job 0012` is job 12.
        Some(j) => JobId::canonical(j).map_err(|e| fail(Kind::Usage, e))?,
        None => {
            let all = keys.set(Set::All);
            let ids = store.members(&all)?;
            // members() sorts numerically with non-IDs last: the last valid ID is the answer.
            ids.into_iter()
                .rfind(|id| id.parse::<JobId>().is_ok())
                .ok_or_else(|| {
                    fail(
                        Kind::NotFound,
                        format!("no jobs recorded under tag {} ({all} is empty)", keys.tag()),
                    )
                })?
        }
    };
    cli::info(&format!("job {job} of tag {}", keys.tag()));
    let names = job_keys(&keys, &job, store.scan(&scan_pattern(&keys, &job))?);
    let mut kvs = Vec::with_capacity(names.len());
    for k in names {
        let (kind, value) = store.read_value(&k)?;
        if kind == "none" {
            continue; // expired between SCAN and read
        }
        kvs.push(KeyValue {
            key: k,
            kind,
            value,
        });
    }
    let empty = kvs.is_empty();
    let mut out = std::io::stdout().lock();
    match args.format {
        Format::Human | Format::Plain => {
            for kv in &kvs {
                writeln!(out, "Key:  {}", kv.key)?;
                writeln!(out, "Value: {}", flat(&kv.value))?;
                writeln!(out, "---")?;
            }
        }
        Format::Json => output::write_json(
            &mut out,
            &LastDoc {
                tag: keys.tag().as_str(),
                job_id: &job,
                keys: kvs,
            },
        )?,
        Format::Csv | Format::Tsv => {
            let rows: Vec<FlatRow> = kvs
                .iter()
                .map(|kv| FlatRow {
                    key: &kv.key,
                    kind: &kv.kind,
                    value: if args.format == Format::Tsv {
                        output::tsv_clean(&flat(&kv.value))
                    } else {
                        flat(&kv.value)
                    },
                })
                .collect();
            output::write_delimited(&mut out, &rows, args.format, &["key", "type", "value"])?
        }
    }
    if empty {
        return Err(fail(
            Kind::NotFound,
            format!(
                "job {job} of tag {} has no keys ({} matched nothing)",
                keys.tag(),
                patterns(&keys, &job).join(" and ")
            ),
        ));
    }
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flat_shows_strings_as_text_and_structures_as_compact_json() {
        assert_eq!(flat(&serde_json::json!("a \"b\"")), "a \"b\"");
        assert_eq!(flat(&serde_json::json!({"k": "v"})), r#"{"k":"v"}"#);
        assert_eq!(flat(&serde_json::json!([["m", 1.5]])), r#"[["m",1.5]]"#);
    }

    fn keys(tag: &str) -> Keys {
        Keys::new(crate::keys::Tag::new(tag).unwrap())
    }

    #[test]
    fn patterns_name_the_tasks_of_a_parent_only() {
        let k = keys("a.b");
        assert_eq!(patterns(&k, "12"), ["a.b-12:*", "a.b-12_*:*"]);
        assert_eq!(scan_pattern(&k, "12"), "a.b-12[:_]*");
        assert_eq!(patterns(&k, "12_3"), ["a.b-12_3:*"]);
        assert_eq!(scan_pattern(&k, "12_3"), "a.b-12_3:*");
    }

    #[test]
    fn job_keys_keep_this_job_and_its_tasks_in_numeric_order() {
        let k = keys("arr");
        let found = [
            "arr-12_10:a",
            "arr-12_2:b",
            "arr-12_2:a",
            "arr-12:z",
            "arr-12_9-5:x", // tag arr-12_9, job 5
            "arr-12_3_4:x", // not a job ID
            "arr-123:x",    // another job
            "arr-12_:x",    // not a job ID
            "arr-2-12:x",   // tag arr-2
        ]
        .map(String::from)
        .to_vec();
        assert_eq!(
            job_keys(&k, "12", found.clone()),
            ["arr-12:z", "arr-12_2:a", "arr-12_2:b", "arr-12_10:a"]
        );
        assert_eq!(job_keys(&k, "12_2", found), ["arr-12_2:a", "arr-12_2:b"]);
    }
}
