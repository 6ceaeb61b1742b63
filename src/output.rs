//! Renderers for the data on stdout (human tables, plain lines, JSON, CSV, TSV, Markdown): one
//! mechanism over `Serialize` row types ([`Row`], [`Exporter`]), and the text shown for Redis
//! bytes that are not UTF-8.
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

/// A CSV or TSV writer: `serialize` writes a header from the first row's field names, while
/// rows given to `write_record` carry their own;
/// CSV quotes what it must, TSV never does (see [`tsv_clean`]).
fn delimited_writer<W: Write>(out: W, tsv: bool) -> csv::Writer<W> {
    csv::WriterBuilder::new()
        .delimiter(if tsv { b'\t' } else { b',' })
        .quote_style(if tsv {
            csv::QuoteStyle::Never
        } else {
            csv::QuoteStyle::Necessary
        })
        .from_writer(out)
}

/// Strings as themselves, everything else as compact JSON: a Redis value in one cell.
pub fn flat(v: &serde_json::Value) -> String {
    match v {
        serde_json::Value::String(s) => s.clone(),
        other => other.to_string(),
    }
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

/// The forms a list of rows can take: rj's `--format`, Markdown (for READMEs and issues), and
/// JSON Lines (one compact object per row, for a listing too long for one document).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Form {
    Human,
    Markdown,
    Plain,
    Json,
    JsonLines,
    Csv,
    Tsv,
}

impl From<Format> for Form {
    fn from(f: Format) -> Form {
        match f {
            Format::Human => Form::Human,
            Format::Plain => Form::Plain,
            Format::Json => Form::Json,
            Format::Csv => Form::Csv,
            Format::Tsv => Form::Tsv,
        }
    }
}

/// A row type, written once: its `Serialize` is the schema of the data forms (JSON keys, CSV
/// and TSV columns, in field order), and what it shows people in a table is derived from that
/// unless the type says otherwise. `Default` stands for "no row", from which the header of an
/// empty CSV is taken. A row for CSV and TSV must be flat (no lists or maps) and must not skip
/// a field in some rows only (`skip_serializing_if`), or its lines would not match the header.
pub trait Row: Serialize + Default {
    /// The headings of the human and Markdown tables; the serialized field names by default.
    fn headings() -> anyhow::Result<Vec<String>> {
        columns::<Self>()
    }

    /// The cells under those headings; the serialized values by default.
    fn cells(&self) -> anyhow::Result<Vec<String>> {
        fields(self)
    }

    /// Whether a column holds figures, right-aligned in Markdown.
    fn right_aligned(_column: usize) -> bool {
        false
    }

    /// The one value of the plain form (a line for `xargs`); the first cell by default.
    fn plain(&self) -> anyhow::Result<String> {
        Ok(self.cells()?.into_iter().next().unwrap_or_default())
    }
}

/// The column names of a row type: the serialized field names, in order, as CSV writes them in
/// its header (taken from what the csv crate writes for `R::default()`, so they cannot differ).
pub fn columns<R: Serialize + Default>() -> anyhow::Result<Vec<String>> {
    let mut w = csv::Writer::from_writer(Vec::new());
    w.serialize(R::default())?;
    let bytes = w
        .into_inner()
        .map_err(|e| anyhow::anyhow!("{}", e.error()))?;
    let mut r = csv::Reader::from_reader(bytes.as_slice());
    Ok(r.headers()?.iter().map(String::from).collect())
}

/// A row's serialized values as text, one per column (CSV's cells before quoting).
pub fn fields<R: Serialize>(row: &R) -> anyhow::Result<Vec<String>> {
    let mut w = csv::WriterBuilder::new()
        .has_headers(false)
        .from_writer(Vec::new());
    w.serialize(row)?;
    let bytes = w
        .into_inner()
        .map_err(|e| anyhow::anyhow!("{}", e.error()))?;
    let mut r = csv::ReaderBuilder::new()
        .has_headers(false)
        .from_reader(bytes.as_slice());
    let rec = r.records().next().transpose()?.unwrap_or_default();
    Ok(rec.iter().map(String::from).collect())
}

/// Writes rows in one form as they come (hyperfine's `Exporter`, row by row): nothing waits
/// for the last row except the aligned human table, whose widths depend on every row.
pub trait Exporter<R: ?Sized> {
    fn row(&mut self, row: &R) -> anyhow::Result<()>;
    /// After the last row: the closing bracket, the header of an empty table, the human table.
    fn finish(self: Box<Self>) -> anyhow::Result<()>;
}

/// The exporter of `form` for rows of type `R`, writing to `out`.
pub fn exporter<'a, R: Row + 'a>(
    form: Form,
    out: &'a mut dyn Write,
) -> anyhow::Result<Box<dyn Exporter<R> + 'a>> {
    Ok(match form {
        Form::Human => Box::new(HumanRows {
            table: HumanTable::new(out, R::headings()?),
        }),
        Form::Markdown => Box::new(MarkupRows::<R, Markdown> {
            out,
            markup: Markdown,
            started: false,
            _row: std::marker::PhantomData,
        }),
        Form::Plain => Box::new(PlainRows { out }),
        Form::Json => Box::new(JsonRows { out, rows: 0 }),
        Form::JsonLines => Box::new(JsonLines { out }),
        Form::Csv | Form::Tsv => Box::new(DelimitedRows {
            w: delimited_writer(out, form == Form::Tsv),
            tsv: form == Form::Tsv,
            rows: 0,
            _row: std::marker::PhantomData,
        }),
    })
}

/// Every row of `rows` in one form.
pub fn write_rows<'r, R: Row + 'r>(
    form: Form,
    out: &mut dyn Write,
    rows: impl IntoIterator<Item = &'r R>,
) -> anyhow::Result<()> {
    let mut e = exporter::<R>(form, out)?;
    for r in rows {
        e.row(r)?;
    }
    e.finish()
}

/// A JSON array of the rows, byte for byte what `write_json` writes for a `Vec` of them.
struct JsonRows<'a> {
    out: &'a mut dyn Write,
    rows: u64,
}

impl<R: Serialize + ?Sized> Exporter<R> for JsonRows<'_> {
    fn row(&mut self, row: &R) -> anyhow::Result<()> {
        let one = serde_json::to_vec_pretty(row)?;
        self.out
            .write_all(if self.rows == 0 { b"[\n  " } else { b",\n  " })?;
        // JSON text holds no raw newline inside a string, so every newline is the pretty
        // printer's and the row is indented one level by indenting each line.
        for (i, line) in one.split(|b| *b == b'\n').enumerate() {
            if i > 0 {
                self.out.write_all(b"\n  ")?;
            }
            self.out.write_all(line)?;
        }
        self.rows += 1;
        Ok(())
    }

    fn finish(self: Box<Self>) -> anyhow::Result<()> {
        self.out
            .write_all(if self.rows == 0 { b"[]\n" } else { b"\n]\n" })?;
        self.out.flush()?;
        Ok(())
    }
}

/// One compact JSON object per line.
struct JsonLines<'a> {
    out: &'a mut dyn Write,
}

impl<R: Serialize + ?Sized> Exporter<R> for JsonLines<'_> {
    fn row(&mut self, row: &R) -> anyhow::Result<()> {
        serde_json::to_writer(&mut *self.out, row)?;
        self.out.write_all(b"\n")?;
        Ok(())
    }

    fn finish(self: Box<Self>) -> anyhow::Result<()> {
        self.out.flush()?;
        Ok(())
    }
}

/// CSV or TSV with a header of the row type's column names, also when there is no row.
struct DelimitedRows<'a, R> {
    w: csv::Writer<&'a mut dyn Write>,
    tsv: bool,
    rows: u64,
    _row: std::marker::PhantomData<fn(&R)>,
}

impl<R: Row> Exporter<R> for DelimitedRows<'_, R> {
    fn row(&mut self, row: &R) -> anyhow::Result<()> {
        if self.tsv {
            // TSV cannot quote: the row's cells are cleaned of tabs and newlines one by one.
            if self.rows == 0 {
                self.w.write_record(columns::<R>()?)?;
            }
            let cells: Vec<String> = fields(row)?.iter().map(|c| tsv_clean(c)).collect();
            self.w.write_record(cells)?;
        } else {
            self.w.serialize(row)?;
        }
        self.rows += 1;
        Ok(())
    }

    fn finish(mut self: Box<Self>) -> anyhow::Result<()> {
        if self.rows == 0 {
            self.w.write_record(columns::<R>()?)?;
        }
        self.w.flush()?;
        Ok(())
    }
}

/// One value per line.
struct PlainRows<'a> {
    out: &'a mut dyn Write,
}

impl<R: Row> Exporter<R> for PlainRows<'_> {
    fn row(&mut self, row: &R) -> anyhow::Result<()> {
        writeln!(self.out, "{}", row.plain()?)?;
        Ok(())
    }

    fn finish(self: Box<Self>) -> anyhow::Result<()> {
        self.out.flush()?;
        Ok(())
    }
}

/// The aligned table for people, over a row type's headings and cells.
struct HumanRows<'a> {
    table: HumanTable<'a>,
}

impl<R: Row> Exporter<R> for HumanRows<'_> {
    fn row(&mut self, row: &R) -> anyhow::Result<()> {
        self.table.push(row.cells()?);
        Ok(())
    }

    fn finish(self: Box<Self>) -> anyhow::Result<()> {
        self.table.finish()
    }
}

/// An aligned text table whose headings are known only at run time (a column shown only when
/// some row has it): rows are kept until `finish`, since every width depends on every row.
pub struct HumanTable<'a> {
    out: &'a mut dyn Write,
    headings: Vec<String>,
    rows: Vec<Vec<String>>,
}

impl<'a> HumanTable<'a> {
    pub fn new(out: &'a mut dyn Write, headings: Vec<String>) -> HumanTable<'a> {
        HumanTable {
            out,
            headings,
            rows: Vec::new(),
        }
    }

    pub fn push(&mut self, cells: Vec<String>) {
        self.rows.push(cells);
    }

    pub fn finish(self) -> anyhow::Result<()> {
        let h: Vec<&str> = self.headings.iter().map(String::as_str).collect();
        write_table(self.out, &h, &self.rows)?;
        self.out.flush()?;
        Ok(())
    }
}

/// An aligned text table; the last column is not padded.
fn write_table(out: &mut dyn Write, header: &[&str], rows: &[Vec<String>]) -> anyhow::Result<()> {
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
                // Padded by hand: format!'s width is limited to u16, and a cell (a job name)
                // may be longer than that.
                s.push_str(c);
                let pad = width[i].saturating_sub(c.chars().count()) + 2;
                s.extend(std::iter::repeat_n(' ', pad));
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

/// One row of a table whose columns are known only once every row is (a column per key name):
/// a value or nothing under each heading.
pub type Cells<'v> = [Option<&'v serde_json::Value>];

/// The exporter of `form` for rows of [`Cells`] under `headings`: the same forms as
/// [`exporter`]'s. A JSON row is an object of the headings, a missing cell `null` and a value
/// as it is; the other forms show a value [`flat`], a missing cell empty (`-` for people).
pub fn records<'a>(
    form: Form,
    out: &'a mut dyn Write,
    headings: Vec<String>,
) -> anyhow::Result<Box<dyn for<'v> Exporter<Cells<'v>> + 'a>> {
    Ok(match form {
        Form::Json | Form::JsonLines => Box::new(RecordObjects {
            json: if form == Form::Json {
                Box::new(JsonRows { out, rows: 0 })
            } else {
                Box::new(JsonLines { out })
            },
            headings,
        }),
        _ => Box::new(RecordTexts::new(form, out, &headings)?),
    })
}

/// A [`Cells`] row as a JSON object of its headings.
struct Object<'r, 'v> {
    headings: &'r [String],
    cells: &'r Cells<'v>,
}

impl Serialize for Object<'_, '_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let mut m = s.serialize_map(Some(self.headings.len()))?;
        for (h, c) in self.headings.iter().zip(self.cells) {
            m.serialize_entry(h, c)?;
        }
        m.end()
    }
}

struct RecordObjects<'a> {
    json: Box<dyn for<'r, 'v> Exporter<Object<'r, 'v>> + 'a>,
    headings: Vec<String>,
}

impl<'v> Exporter<Cells<'v>> for RecordObjects<'_> {
    fn row(&mut self, cells: &Cells<'v>) -> anyhow::Result<()> {
        self.json.row(&Object {
            headings: &self.headings,
            cells,
        })
    }

    fn finish(self: Box<Self>) -> anyhow::Result<()> {
        self.json.finish()
    }
}

/// The text forms of [`Cells`] rows: the same tables as the [`Row`] exporters', over headings
/// given at run time.
enum RecordTexts<'a> {
    Human(HumanTable<'a>),
    Markdown(&'a mut dyn Write),
    Plain(&'a mut dyn Write),
    Delimited(Box<csv::Writer<&'a mut dyn Write>>, bool),
}

impl<'a> RecordTexts<'a> {
    fn new(form: Form, out: &'a mut dyn Write, headings: &[String]) -> anyhow::Result<Self> {
        Ok(match form {
            Form::Human => RecordTexts::Human(HumanTable::new(out, headings.to_vec())),
            Form::Markdown => {
                let right = vec![false; headings.len()];
                out.write_all(Markdown.header(headings, &right).as_bytes())?;
                RecordTexts::Markdown(out)
            }
            Form::Csv | Form::Tsv => {
                let tsv = form == Form::Tsv;
                let mut w = delimited_writer(out, tsv);
                w.write_record(headings.iter().map(|h| cell(h, tsv)))?;
                RecordTexts::Delimited(Box::new(w), tsv)
            }
            Form::Plain | Form::Json | Form::JsonLines => RecordTexts::Plain(out),
        })
    }
}

/// A field as written: TSV cannot quote, so tabs and newlines become spaces there.
fn cell(s: &str, tsv: bool) -> String {
    if tsv {
        tsv_clean(s)
    } else {
        s.to_string()
    }
}

impl<'v> Exporter<Cells<'v>> for RecordTexts<'_> {
    fn row(&mut self, cells: &Cells<'v>) -> anyhow::Result<()> {
        let text = cells.iter().map(|c| c.map(flat).unwrap_or_default());
        match self {
            RecordTexts::Human(t) => {
                // People see `-` for a cell with nothing in it.
                let dash = |s: String| if s.is_empty() { "-".to_string() } else { s };
                t.push(text.map(dash).collect());
            }
            RecordTexts::Markdown(out) => {
                let c: Vec<String> = text.collect();
                out.write_all(Markdown.row(&c).as_bytes())?;
            }
            RecordTexts::Plain(out) => writeln!(out, "{}", text.take(1).collect::<String>())?,
            RecordTexts::Delimited(w, tsv) => {
                let tsv = *tsv;
                w.write_record(text.map(|c| cell(&c, tsv)))?
            }
        }
        Ok(())
    }

    fn finish(self: Box<Self>) -> anyhow::Result<()> {
        match *self {
            RecordTexts::Human(t) => t.finish(),
            RecordTexts::Markdown(out) | RecordTexts::Plain(out) => Ok(out.flush()?),
            RecordTexts::Delimited(mut w, _) => Ok(w.flush()?),
        }
    }
}

/// The syntax of a markup table (hyperfine's `MarkupExporter`): a table is a header, a divider
/// that also says how each column is aligned, and one line per row, each written as it comes.
pub trait Markup {
    fn row(&self, cells: &[String]) -> String;
    fn divider(&self, right_aligned: &[bool]) -> String;
    fn header(&self, headings: &[String], right_aligned: &[bool]) -> String {
        self.row(headings) + &self.divider(right_aligned)
    }
    fn footer(&self) -> String {
        String::new()
    }
}

/// GitHub-flavoured Markdown.
pub struct Markdown;

impl Markup for Markdown {
    fn row(&self, cells: &[String]) -> String {
        // A `|` ends a cell and a newline the row: escaped and joined, the cell stays one.
        let c: Vec<String> = cells
            .iter()
            .map(|c| c.replace('|', "\\|").replace(['\n', '\r'], " "))
            .collect();
        format!("| {} |\n", c.join(" | "))
    }

    fn divider(&self, right_aligned: &[bool]) -> String {
        let d: Vec<&str> = right_aligned
            .iter()
            .map(|r| if *r { "---:" } else { "---" })
            .collect();
        format!("| {} |\n", d.join(" | "))
    }
}

/// A markup table over a row type, its header written before the first row (or alone at the
/// end when there is none).
struct MarkupRows<'a, R, M> {
    out: &'a mut dyn Write,
    markup: M,
    started: bool,
    _row: std::marker::PhantomData<fn(&R)>,
}

impl<R: Row, M: Markup> MarkupRows<'_, R, M> {
    fn start(&mut self) -> anyhow::Result<()> {
        if !self.started {
            let h = R::headings()?;
            let right: Vec<bool> = (0..h.len()).map(R::right_aligned).collect();
            self.out
                .write_all(self.markup.header(&h, &right).as_bytes())?;
            self.started = true;
        }
        Ok(())
    }
}

impl<R: Row, M: Markup> Exporter<R> for MarkupRows<'_, R, M> {
    fn row(&mut self, row: &R) -> anyhow::Result<()> {
        self.start()?;
        self.out
            .write_all(self.markup.row(&row.cells()?).as_bytes())?;
        Ok(())
    }

    fn finish(mut self: Box<Self>) -> anyhow::Result<()> {
        self.start()?;
        self.out.write_all(self.markup.footer().as_bytes())?;
        self.out.flush()?;
        Ok(())
    }
}

/// The top-level field names of `value` as serde writes them, in their order (serde_json's
/// map sorts its keys, so they are read from the JSON text).
#[cfg(test)]
pub fn serialized_field_names<T: Serialize>(value: &T) -> Vec<String> {
    struct Names(Vec<String>);
    impl<'de> serde::Deserialize<'de> for Names {
        fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Names, D::Error> {
            struct V;
            impl<'de> serde::de::Visitor<'de> for V {
                type Value = Names;
                fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                    f.write_str("an object")
                }
                fn visit_map<A: serde::de::MapAccess<'de>>(
                    self,
                    mut m: A,
                ) -> Result<Names, A::Error> {
                    let mut names = Vec::new();
                    while let Some(k) = m.next_key::<String>()? {
                        m.next_value::<serde::de::IgnoredAny>()?;
                        names.push(k);
                    }
                    Ok(Names(names))
                }
            }
            d.deserialize_map(V)
        }
    }
    let text = serde_json::to_string(value).expect("a row serializes");
    serde_json::from_str::<Names>(&text)
        .expect("a row is an object")
        .0
}

/// That the CSV and TSV headers of a row type (with rows and without) are its serialized field
/// names, in order: the test every row type gets.
#[cfg(test)]
pub fn assert_headers_are_field_names<R: Row>(sample: &R) {
    let names = serialized_field_names(&R::default());
    assert_eq!(serialized_field_names(sample), names);
    assert_eq!(columns::<R>().unwrap(), names);
    for (form, sep) in [(Form::Csv, ","), (Form::Tsv, "\t")] {
        for rows in [&[][..], std::slice::from_ref(sample)] {
            let mut out = Vec::new();
            write_rows(form, &mut out, rows).unwrap();
            let text = String::from_utf8(out).unwrap();
            assert_eq!(
                text.lines().next(),
                Some(names.join(sep).as_str()),
                "{form:?}"
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Serialize, Default)]
    struct Row2 {
        set: String,
        job_id: String,
    }

    /// A row of every kind of cell the data forms meet.
    #[derive(Serialize, Default, serde::Deserialize, Debug, PartialEq)]
    struct Mixed {
        test: String,
        requests_per_second: f64,
        p50_latency_ms: Option<f64>,
        requests: Option<u64>,
        ok: bool,
    }

    impl Row for Mixed {
        fn right_aligned(column: usize) -> bool {
            column > 0
        }
    }

    impl Row for Row2 {}

    fn mixed() -> Vec<Mixed> {
        vec![
            Mixed {
                test: "SET | GET".into(),
                requests_per_second: 1234.5,
                p50_latency_ms: Some(0.25),
                requests: None,
                ok: true,
            },
            Mixed {
                test: "a,\"b\"\tc".into(),
                ..Default::default()
            },
        ]
    }

    fn each(form: Form, rows: &[Mixed]) -> String {
        let mut out = Vec::new();
        write_rows(form, &mut out, rows).unwrap();
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn headers_are_the_serialized_field_names() {
        let names = |v: serde_json::Value| -> Vec<String> {
            // serde_json's map is sorted by key: the order is checked on the CSV line below.
            let mut k: Vec<String> = v.as_object().unwrap().keys().cloned().collect();
            k.sort();
            k
        };
        let mut cols = columns::<Mixed>().unwrap();
        let csv = each(Form::Csv, &mixed());
        assert_eq!(csv.lines().next().unwrap(), cols.join(","));
        assert_eq!(
            cols,
            [
                "test",
                "requests_per_second",
                "p50_latency_ms",
                "requests",
                "ok"
            ]
        );
        cols.sort();
        assert_eq!(cols, names(serde_json::to_value(Mixed::default()).unwrap()));
        assert_headers_are_field_names(&mixed()[0]);
        assert_headers_are_field_names(&Row2::default());
        assert_eq!(columns::<Row2>().unwrap(), ["set", "job_id"]);
        // An empty table has the same header.
        assert_eq!(
            each(Form::Csv, &[]),
            columns::<Mixed>().unwrap().join(",") + "\n"
        );
        assert_eq!(
            each(Form::Tsv, &[]),
            columns::<Mixed>().unwrap().join("\t") + "\n"
        );
    }

    #[test]
    fn every_form_of_the_same_rows() {
        let rows = mixed();
        assert_eq!(
            each(Form::Csv, &rows),
            "test,requests_per_second,p50_latency_ms,requests,ok\n\
             SET | GET,1234.5,0.25,,true\n\
             \"a,\"\"b\"\"\tc\",0.0,,,false\n"
        );
        let back: Vec<Mixed> = csv::Reader::from_reader(each(Form::Csv, &rows).as_bytes())
            .deserialize()
            .map(Result::unwrap)
            .collect();
        assert_eq!(back, rows);
        assert_eq!(
            each(Form::Tsv, &rows),
            "test\trequests_per_second\tp50_latency_ms\trequests\tok\n\
             SET | GET\t1234.5\t0.25\t\ttrue\n\
             a,\"b\" c\t0.0\t\t\tfalse\n"
        );
        assert_eq!(
            each(Form::Markdown, &rows),
            "| test | requests_per_second | p50_latency_ms | requests | ok |\n\
             | --- | ---: | ---: | ---: | ---: |\n\
             | SET \\| GET | 1234.5 | 0.25 |  | true |\n\
             | a,\"b\"\tc | 0.0 |  |  | false |\n"
        );
        assert_eq!(each(Form::Plain, &rows), "SET | GET\na,\"b\"\tc\n");
        let human = each(Form::Human, &rows);
        assert!(
            human.starts_with("test       requests_per_second  p50_latency_ms  requests  ok\n"),
            "{human}"
        );
    }

    #[test]
    fn streamed_json_is_the_document_of_all_rows() {
        for n in [0, 1, 2] {
            let rows = &mixed()[..n];
            let mut whole = Vec::new();
            write_json(&mut whole, rows).unwrap();
            assert_eq!(
                each(Form::Json, rows),
                String::from_utf8(whole).unwrap(),
                "{n}"
            );
        }
    }

    /// Before the end, what came is written already, up to a bounded buffer: the exporters of
    /// the data forms hold no rows, so a listing of a million jobs stays in bounded memory.
    #[test]
    fn rows_are_written_as_they_come() {
        struct Spy(std::rc::Rc<std::cell::RefCell<Vec<u8>>>);
        impl Write for Spy {
            fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
                self.0.borrow_mut().extend_from_slice(b);
                Ok(b.len())
            }
            fn flush(&mut self) -> std::io::Result<()> {
                Ok(())
            }
        }
        let row = &mixed()[0];
        for form in [
            Form::Json,
            Form::Csv,
            Form::Tsv,
            Form::Markdown,
            Form::Plain,
        ] {
            let seen = std::rc::Rc::new(std::cell::RefCell::new(Vec::new()));
            let mut spy = Spy(seen.clone());
            let mut e = exporter::<Mixed>(form, &mut spy).unwrap();
            for _ in 0..3_000 {
                e.row(row).unwrap();
            }
            let lines = seen.borrow().iter().filter(|b| **b == b'\n').count();
            assert!(lines > 2_500, "{form:?}: {lines} lines before the end");
            e.finish().unwrap();
        }
    }

    #[test]
    fn csv_quotes_and_tsv_does_not() {
        let rows = vec![Row2 {
            set: "A,B".into(),
            job_id: "1".into(),
        }];
        let mut out = Vec::new();
        write_rows(Form::Csv, &mut out, &rows).unwrap();
        assert_eq!(String::from_utf8(out).unwrap(), "set,job_id\n\"A,B\",1\n");
        let mut out = Vec::new();
        write_rows(Form::Tsv, &mut out, &rows).unwrap();
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
        write_rows::<Row2>(Form::Csv, &mut out, &[]).unwrap();
        assert_eq!(String::from_utf8(out).unwrap(), "set,job_id\n");
    }

    #[test]
    fn table_aligns() {
        let mut out = Vec::new();
        let mut t = HumanTable::new(&mut out, vec!["A".into(), "B".into()]);
        t.push(vec!["long".into(), "x".into()]);
        t.push(vec!["s".into(), "y".into()]);
        t.finish().unwrap();
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "A     B\nlong  x\ns     y\n"
        );
    }
}
