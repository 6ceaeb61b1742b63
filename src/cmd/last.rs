//! rj-last: the key/values written by the most recent job of a tag (or a named one).
use std::io::Write;
use std::process::ExitCode;

use clap::Parser;
use serde::Serialize;

use crate::cli::{self, ConnArgs, TagArg};
use crate::exit::{fail, Kind};
use crate::keys::{JobId, Set};
use crate::output::{self, Format};

pub const EXAMPLES: &str = "\
  rj-last --tag exp1
  rj-last --job 4238610 --format json | jq '.keys[].value'
";

/// Show the keys `TAG-<jobid>:*` of the last job (largest job ID in TAG_ALL) or of --job.
///
/// Keys are found with SCAN (never KEYS) and printed sorted; values of any Redis type are shown.
#[derive(Debug, Parser)]
#[command(name = "rj-last", version = cli::VERSION, after_long_help = cli::footer(EXAMPLES))]
pub struct Args {
    #[command(flatten)]
    pub conn: ConnArgs,
    #[command(flatten)]
    pub tag: TagArg,
    /// This job instead of the last one.
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

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let (_cfg, keys, mut store) = super::open(&args.conn, &args.tag)?;
    let job = match &args.job {
        Some(j) => {
            j.parse::<JobId>().map_err(|e| fail(Kind::Usage, e))?;
            j.clone()
        }
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
    let mut names = store.scan(&keys.job_data_pattern(&job))?;
    names.sort();
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
                keys.job_data_pattern(&job)
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
}
