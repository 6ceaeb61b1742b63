//! Renderers for the data on stdout (human tables, plain lines, JSON, CSV, TSV), and the text
//! shown for Redis bytes that are not UTF-8.
use std::io::Write;

use serde::Serialize;

/// The forms data can take on stdout.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// Aligned text for people.
    Human,
    /// One value per line, for xargs and `while read`.
    Plain,
    /// One JSON document.
    Json,
    /// Comma-separated, with a header line.
    Csv,
    /// Tab-separated, with a header line.
    Tsv,
}

pub fn write_json<T: Serialize + ?Sized>(out: &mut dyn Write, value: &T) -> anyhow::Result<()> {
    serde_json::to_writer_pretty(&mut *out, value)?;
    out.write_all(b"\n")?;
    Ok(())
}

/// CSV or TSV rows with a header taken from the row type's field names.
pub fn write_delimited<T: Serialize>(
    out: &mut dyn Write,
    rows: &[T],
    format: Format,
    header_if_empty: &[&str],
) -> anyhow::Result<()> {
    let mut w = delimited_writer(out, format);
    if rows.is_empty() {
        w.write_record(header_if_empty)?;
    }
    for r in rows {
        w.serialize(r)?;
    }
    w.flush()?;
    Ok(())
}

/// A CSV or TSV writer: `serialize` writes a header from the first row's field names, while
/// rows given to `write_record` carry their own;
/// CSV quotes what it must, TSV never does (see [`tsv_clean`]).
pub fn delimited_writer<W: Write>(out: W, format: Format) -> csv::Writer<W> {
    let delim = if format == Format::Tsv { b'\t' } else { b',' };
    csv::WriterBuilder::new()
        .delimiter(delim)
        .quote_style(if format == Format::Tsv {
            csv::QuoteStyle::Never
        } else {
            csv::QuoteStyle::Necessary
        })
        .from_writer(out)
}

/// TSV cannot quote: tabs and newlines inside a field become spaces.
pub fn tsv_clean(s: &str) -> String {
    s.replace(['\t', '\n', '\r'], " ")
}

/// Redis bytes as text, with U+FFFD for what is not UTF-8: shown, never a failure.
pub fn lossy(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// The longest start of `b` that is UTF-8. In a data key `T-<id>:<name>` the tag, the ID and the
/// first `:` are ASCII, so this prefix always holds them whatever bytes the name has.
pub fn utf8_prefix(b: &[u8]) -> &str {
    match std::str::from_utf8(b) {
        Ok(s) => s,
        // valid_up_to() is a char boundary by definition, so the slice is UTF-8.
        Err(e) => std::str::from_utf8(&b[..e.valid_up_to()]).unwrap_or_default(),
    }
}

/// An aligned text table; the last column is not padded.
pub fn write_table(
    out: &mut dyn Write,
    header: &[&str],
    rows: &[Vec<String>],
) -> anyhow::Result<()> {
    let mut width: Vec<usize> = header.iter().map(|h| h.len()).collect();
    for r in rows {
        for (i, c) in r.iter().enumerate() {
            width[i] = width[i].max(c.chars().count());
        }
    }
    let line = |out: &mut dyn Write, cells: &[&str]| -> std::io::Result<()> {
        let mut s = String::new();
        for (i, c) in cells.iter().enumerate() {
            if i + 1 == cells.len() {
                s.push_str(c);
            } else {
                s.push_str(&format!("{c:<w$}  ", w = width[i]));
            }
        }
        writeln!(out, "{}", s.trim_end())
    };
    line(out, header)?;
    for r in rows {
        let cells: Vec<&str> = r.iter().map(String::as_str).collect();
        line(out, &cells)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Serialize)]
    struct Row {
        set: String,
        job_id: String,
    }

    #[test]
    fn csv_quotes_and_tsv_does_not() {
        let rows = vec![Row {
            set: "A,B".into(),
            job_id: "1".into(),
        }];
        let mut out = Vec::new();
        write_delimited(&mut out, &rows, Format::Csv, &[]).unwrap();
        assert_eq!(String::from_utf8(out).unwrap(), "set,job_id\n\"A,B\",1\n");
        let mut out = Vec::new();
        write_delimited(&mut out, &rows, Format::Tsv, &[]).unwrap();
        assert_eq!(String::from_utf8(out).unwrap(), "set\tjob_id\nA,B\t1\n");
    }

    #[test]
    fn tsv_clean_keeps_one_field_on_one_line() {
        assert_eq!(tsv_clean("a\tb\nc\r\nd"), "a b c  d");
        assert_eq!(tsv_clean("plain, text"), "plain, text");
    }

    #[test]
    fn bytes_become_text_without_failing() {
        assert_eq!(lossy(b"T-7:bad\xffname"), "T-7:bad\u{fffd}name");
        assert_eq!(utf8_prefix(b"T-7:bad\xffname"), "T-7:bad");
        assert_eq!(utf8_prefix("T-7:caf\u{e9}".as_bytes()), "T-7:caf\u{e9}");
        // A multi-byte character cut short is not half kept.
        assert_eq!(utf8_prefix(b"T-7:x\xc3"), "T-7:x");
        assert_eq!(utf8_prefix(b"\xff"), "");
    }

    #[test]
    fn empty_rows_still_have_header() {
        let mut out = Vec::new();
        write_delimited::<Row>(&mut out, &[], Format::Csv, &["set", "job_id"]).unwrap();
        assert_eq!(String::from_utf8(out).unwrap(), "set,job_id\n");
    }

    #[test]
    fn table_aligns() {
        let mut out = Vec::new();
        write_table(
            &mut out,
            &["A", "B"],
            &[
                vec!["long".into(), "x".into()],
                vec!["s".into(), "y".into()],
            ],
        )
        .unwrap();
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "A     B\nlong  x\ns     y\n"
        );
    }
}
