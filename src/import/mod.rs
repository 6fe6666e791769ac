//! Batches of articles in: NDJSON (one article a line) or a JSON array, each article validated
//! before anything of its batch is stored.
//!
//! A batch is accepted whole or not at all, so a half-imported file never leaves the store in
//! a state nobody asked for. A file of any length is streamed ([`NdjsonStream`]): its batches are
//! validated as they are read and written in one transaction that is committed only if no line
//! was bad. Every problem is found and counted, with its line (or array item) and field, so an
//! editor can fix a file in one pass; the first [`MAX_LISTED_PROBLEMS`] are kept and reported,
//! so that no input, however bad, costs more memory than that. The CLI's `import` and the admin
//! API both come through here.
//!
//! An article is a JSON object; anything else in its place (an array, a string) is refused as
//! not one. A byte-order mark at the start of a file or body is skipped.

use std::collections::HashMap;
use std::fmt;

mod intake;
mod pipeline;

use serde_json::value::RawValue;

use crate::config::Settings;
use crate::model::Article;

pub use intake::{
    ArticleErrors, ArticleInput, FieldError, JsonObject, SourceInput, parse_date, stored,
};
pub use pipeline::{ImportFailure, Imported, import_ndjson};

/// Problems an [`ImportError`] lists; the rest are only counted. A file of a million bad lines
/// would otherwise be answered with hundreds of megabytes of problems.
pub const MAX_LISTED_PROBLEMS: usize = 100;

/// One problem with one article of a batch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// 1-based line (NDJSON) or item (JSON array) number; 0 for the body as a whole.
    pub position: usize,
    /// The field at fault, when one is.
    pub field: Option<&'static str>,
    /// What is wrong.
    pub message: String,
}

/// Every problem found in a batch, the first [`MAX_LISTED_PROBLEMS`] of them listed; nothing
/// of it was stored.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct ImportError {
    /// What positions count: `line` or `item`.
    pub unit: &'static str,
    /// The first problems, in order.
    pub problems: Vec<Problem>,
    /// How many problems there are in all, listed or not.
    pub problem_count: usize,
    /// How many lines or items have a problem.
    pub bad_count: usize,
    /// The position of the last problem counted, to count bad positions once each.
    last_position: Option<usize>,
}

impl ImportError {
    /// No problem yet, counting positions as `unit`s.
    pub fn new(unit: &'static str) -> Self {
        ImportError {
            unit,
            problems: Vec::new(),
            problem_count: 0,
            bad_count: 0,
            last_position: None,
        }
    }

    /// Counts a problem, and lists it while fewer than [`MAX_LISTED_PROBLEMS`] are. Problems
    /// come in the order of their positions.
    pub fn add(&mut self, problem: Problem) {
        self.problem_count += 1;
        if self.last_position != Some(problem.position) {
            self.bad_count += 1;
            self.last_position = Some(problem.position);
        }
        if self.problems.len() < MAX_LISTED_PROBLEMS {
            self.problems.push(problem);
        }
    }

    /// Takes in the problems of a later part of the same input.
    pub fn absorb(&mut self, later: ImportError) {
        let room = MAX_LISTED_PROBLEMS.saturating_sub(self.problems.len());
        self.problems.extend(later.problems.into_iter().take(room));
        self.problem_count += later.problem_count;
        self.bad_count += later.bad_count;
        self.last_position = later.last_position.or(self.last_position);
    }

    /// Whether any problem was found.
    pub fn is_empty(&self) -> bool {
        self.problem_count == 0
    }
}

impl fmt::Display for ImportError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "{} bad {}(s); nothing was imported:",
            self.bad_count, self.unit
        )?;
        for p in &self.problems {
            match p.field {
                Some(field) => {
                    writeln!(f, "  {} {}: {field}: {}", self.unit, p.position, p.message)?
                }
                None => writeln!(f, "  {} {}: {}", self.unit, p.position, p.message)?,
            }
        }
        let unlisted = self.problem_count - self.problems.len();
        if unlisted > 0 {
            writeln!(
                f,
                "  … and {unlisted} more problems ({} in all)",
                self.problem_count
            )?;
        }
        Ok(())
    }
}

/// Below this many articles a batch is checked on one thread; above, on every core, since
/// sanitizing HTML is most of an import's cost.
const PARALLEL_FROM: usize = 256;

/// Why a text is not an article's JSON, and in which field.
type ParseProblem = (Option<&'static str>, String);

/// The import format's fields, as problems name them.
const FIELDS: [&str; 15] = [
    "id",
    "title",
    "summary",
    "content_html",
    "url",
    "published_at",
    "updated_at",
    "author",
    "source.name",
    "source.url",
    "source",
    "categories",
    "region",
    "image",
    "language",
];

/// The field a serde path (`title`, `source.url`, `categories[2]`) is in, if it is one.
fn field_of(path: &str) -> Option<&'static str> {
    let path = path.split('[').next().unwrap_or_default();
    let known = |name: &str| FIELDS.iter().copied().find(|f| *f == name);
    known(path).or_else(|| known(path.split('.').next().unwrap_or_default()))
}

/// serde_json's message without its ` at line L column C`, which the caller states its own way.
fn bare_message(e: &serde_json::Error) -> String {
    let text = e.to_string();
    let suffix = format!(" at line {} column {}", e.line(), e.column());
    text.strip_suffix(&suffix).unwrap_or(&text).to_owned()
}

/// What text an article's JSON was read from, for saying where in it an error is.
#[derive(Debug, Clone, Copy)]
enum Text {
    /// A line of NDJSON: the line is the problem's position, so the column says where.
    Line,
    /// An item of a JSON array.
    Item,
    /// A whole body (a PUT).
    Body,
}

/// Where in a text an error is.
fn location(e: &serde_json::Error, text: Text) -> String {
    match text {
        Text::Line => format!("column {}", e.column()),
        Text::Item => format!("column {} of the item", e.column()),
        Text::Body => format!("line {} column {}", e.line(), e.column()),
    }
}

/// The words for a JSON error in an article: not JSON (and where), not an object, or a field
/// of the wrong type.
fn json_problem(e: &serde_json::Error, text: Text) -> String {
    use serde_json::error::Category;
    let message = bare_message(e);
    match e.classify() {
        Category::Syntax | Category::Eof | Category::Io => {
            format!("not valid JSON: {message} at {}", location(e, text))
        }
        Category::Data if message.ends_with(JsonObject::<()>::EXPECTED) => {
            "not a JSON object".to_owned()
        }
        Category::Data => message,
    }
}

/// Reads one article's JSON (an object), naming the field a problem is in when it is in one.
fn read_article(json: &str, text: Text) -> Result<ArticleInput, ParseProblem> {
    let mut de = serde_json::Deserializer::from_str(json);
    let input: JsonObject<ArticleInput> =
        serde_path_to_error::deserialize(&mut de).map_err(|e| {
            let field = field_of(&e.path().to_string());
            let message = json_problem(e.inner(), text);
            (field, message)
        })?;
    de.end().map_err(|e| (None, json_problem(&e, text)))?;
    Ok(input.0)
}

/// Parses (with `parse`) and validates every item, on all cores for a large batch, then
/// reports in order. An id given twice is an error, since which of the two was meant cannot be
/// known.
fn validate_all<T: Sync>(
    unit: &'static str,
    items: &[(usize, T)],
    parse: impl Fn(&T) -> Result<ArticleInput, ParseProblem> + Sync,
    settings: &Settings,
    seen: &mut HashMap<String, usize>,
) -> Result<Vec<Article>, ImportError> {
    let check = |items: &[(usize, T)]| -> Vec<(usize, Result<Article, Vec<Problem>>)> {
        items
            .iter()
            .map(|(position, item)| {
                let position = *position;
                let checked = parse(item)
                    .map_err(|(field, message)| {
                        vec![Problem {
                            position,
                            field,
                            message,
                        }]
                    })
                    .and_then(|input| {
                        input.validate(settings).map_err(|e| {
                            e.0.into_iter()
                                .map(|fe| Problem {
                                    position,
                                    field: Some(fe.field),
                                    message: fe.message,
                                })
                                .collect()
                        })
                    });
                (position, checked)
            })
            .collect()
    };
    let threads = crate::shard::cores();
    let checked: Vec<(usize, Result<Article, Vec<Problem>>)> =
        if items.len() < PARALLEL_FROM || threads == 1 {
            check(items)
        } else {
            let chunk = items.len().div_ceil(threads);
            std::thread::scope(|scope| {
                let workers: Vec<_> = items
                    .chunks(chunk)
                    .map(|part| (part, scope.spawn(|| check(part))))
                    .collect();
                workers
                    .into_iter()
                    .flat_map(|(part, worker)| {
                        // A checker that panicked (a bug) must not make its articles vanish
                        // from an import that then succeeds: they are reported instead.
                        worker.join().unwrap_or_else(|_| {
                            part.iter()
                                .map(|(position, _)| {
                                    let problem = Problem {
                                        position: *position,
                                        field: None,
                                        message: "could not be checked (internal error)".into(),
                                    };
                                    (*position, Err(vec![problem]))
                                })
                                .collect()
                        })
                    })
                    .collect()
            })
        };

    let mut articles = Vec::with_capacity(checked.len());
    let mut problems = ImportError::new(unit);
    for (position, result) in checked {
        match result {
            Ok(article) => match seen.insert(article.id().to_string(), position) {
                Some(first) => problems.add(Problem {
                    position,
                    field: Some("id"),
                    message: format!("`{}` is already at {unit} {first}", article.id()),
                }),
                None => articles.push(article),
            },
            Err(found) => found.into_iter().for_each(|p| problems.add(p)),
        }
    }
    if problems.is_empty() {
        Ok(articles)
    } else {
        Err(problems)
    }
}

/// A text without the byte-order mark some editors put at its start.
fn without_bom(text: &str) -> &str {
    text.strip_prefix('\u{FEFF}').unwrap_or(text)
}

/// Parses and validates NDJSON text; blank lines are skipped. The same reading as a streamed
/// import ([`NdjsonStream`]), collected.
pub fn parse_ndjson(text: &str, settings: &Settings) -> Result<Vec<Article>, ImportError> {
    let mut articles = Vec::new();
    let mut problems = ImportError::new("line");
    for batch in NdjsonStream::new(text.as_bytes(), settings) {
        match batch {
            Ok(batch) if problems.is_empty() => articles.extend(batch),
            // Nothing will be stored: no need to keep what is good.
            Ok(_) => {}
            Err(StreamError::Invalid(bad)) => {
                articles = Vec::new();
                problems.absorb(bad);
            }
            // Text in memory reads without error; said as a problem rather than assumed.
            Err(StreamError::Read(e)) => problems.add(Problem {
                position: e.line,
                field: None,
                message: e.source.to_string(),
            }),
        }
    }
    if problems.is_empty() {
        Ok(articles)
    } else {
        Err(problems)
    }
}

/// Lines an [`NdjsonStream`] validates at a time: enough to keep every core busy, few enough
/// that a batch in flight holds a few megabytes.
const STREAM_BATCH: usize = 2_000;

/// A stream that could not be read (as opposed to one holding bad articles).
#[derive(Debug, thiserror::Error)]
#[error("cannot read line {line}: {source}")]
pub struct ReadError {
    /// The 1-based line being read.
    pub line: usize,
    /// Why.
    pub source: std::io::Error,
}

/// Why a batch of a stream yielded no articles.
#[derive(Debug, thiserror::Error)]
pub enum StreamError {
    /// The stream could not be read; nothing after this is known.
    #[error(transparent)]
    Read(#[from] ReadError),
    /// Articles of this batch are bad; the stream goes on, so that every problem is found.
    #[error(transparent)]
    Invalid(#[from] ImportError),
}

/// NDJSON read from a stream of any length and validated a batch at a time, so a file of
/// millions of articles is never held in memory whole. Ids are remembered across batches: an
/// id given twice in the stream is a problem wherever the two lines are.
pub struct NdjsonStream<'s, R> {
    reader: R,
    settings: &'s Settings,
    lines_read: usize,
    seen: HashMap<String, usize>,
    ended: bool,
}

impl<'s, R: std::io::BufRead> NdjsonStream<'s, R> {
    /// Reads articles from `reader`.
    pub fn new(reader: R, settings: &'s Settings) -> Self {
        NdjsonStream {
            reader,
            settings,
            lines_read: 0,
            seen: HashMap::new(),
            ended: false,
        }
    }
}

/// UTF-8's byte-order mark.
const BOM: &[u8] = "\u{FEFF}".as_bytes();

impl<R: std::io::BufRead> Iterator for NdjsonStream<'_, R> {
    type Item = Result<Vec<Article>, StreamError>;

    fn next(&mut self) -> Option<Self::Item> {
        let mut lines: Vec<(usize, Result<String, std::string::FromUtf8Error>)> =
            Vec::with_capacity(STREAM_BATCH);
        while !self.ended && lines.len() < STREAM_BATCH {
            // Bytes, not a String: a line that is not UTF-8 is that line's problem, not a
            // reason to stop reading.
            let mut line = Vec::new();
            match self.reader.read_until(b'\n', &mut line) {
                Ok(0) => self.ended = true,
                Ok(_) => {
                    self.lines_read += 1;
                    if self.lines_read == 1 && line.starts_with(BOM) {
                        line.drain(..BOM.len());
                    }
                    // Checked once here, so the JSON parser need not check it again.
                    let text = String::from_utf8(line);
                    // Blank as `parse_ndjson` sees it (any Unicode white space).
                    if !text.as_ref().is_ok_and(|t| t.trim().is_empty()) {
                        lines.push((self.lines_read, text));
                    }
                }
                Err(source) => {
                    self.ended = true;
                    let line = self.lines_read + 1;
                    return Some(Err(ReadError { line, source }.into()));
                }
            }
        }
        if lines.is_empty() {
            return None;
        }
        Some(
            validate_all(
                "line",
                &lines,
                |line| match line {
                    Ok(line) => read_article(line, Text::Line),
                    Err(e) => Err((None, format!("not UTF-8 text: {}", e.utf8_error()))),
                },
                self.settings,
                &mut self.seen,
            )
            .map_err(StreamError::Invalid),
        )
    }
}

/// A JSON array of articles being read: its items are validated a batch at a time as the
/// parser reaches them, so neither the items nor their problems pile up whatever the body.
struct ArrayReader<'s> {
    settings: &'s Settings,
    articles: Vec<Article>,
    problems: ImportError,
    seen: HashMap<String, usize>,
    /// Items read so far: an error the parser meets is in the next one.
    items_read: usize,
}

impl ArrayReader<'_> {
    fn check(&mut self, part: &[(usize, &RawValue)]) {
        match validate_all(
            "item",
            part,
            |raw| read_article(raw.get(), Text::Item),
            self.settings,
            &mut self.seen,
        ) {
            Ok(found) if self.problems.is_empty() => self.articles.extend(found),
            // Nothing will be stored: no need to keep what is good.
            Ok(_) => {}
            Err(bad) => {
                self.articles = Vec::new();
                self.problems.absorb(bad);
            }
        }
    }
}

impl<'de> serde::de::Visitor<'de> for &mut ArrayReader<'_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON array of articles")
    }

    fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        let mut part: Vec<(usize, &'de RawValue)> = Vec::with_capacity(STREAM_BATCH);
        while let Some(raw) = seq.next_element::<&'de RawValue>()? {
            self.items_read += 1;
            part.push((self.items_read, raw));
            if part.len() == STREAM_BATCH {
                self.check(&part);
                part.clear();
            }
        }
        self.check(&part);
        Ok(())
    }
}

/// Parses and validates a JSON array of articles.
pub fn parse_json_array(text: &str, settings: &Settings) -> Result<Vec<Article>, ImportError> {
    use serde::Deserializer as _;
    let text = without_bom(text);
    let mut reader = ArrayReader {
        settings,
        articles: Vec::new(),
        problems: ImportError::new("item"),
        seen: HashMap::new(),
        items_read: 0,
    };
    let mut de = serde_json::Deserializer::from_str(text);
    let read = de.deserialize_seq(&mut reader).and_then(|()| de.end());
    if let Err(e) = read {
        use serde_json::error::Category;
        let problem = match e.classify() {
            Category::Data if reader.items_read == 0 => Problem {
                position: 0,
                field: None,
                message: "not a JSON array of articles".to_owned(),
            },
            _ => Problem {
                position: reader.items_read + 1,
                field: None,
                message: json_problem(&e, Text::Body),
            },
        };
        reader.problems.add(problem);
    }
    if reader.problems.is_empty() {
        Ok(reader.articles)
    } else {
        Err(reader.problems)
    }
}

/// Parses and validates one article; `id`, if given, fills a missing id or must match.
pub fn parse_one(text: &str, id: &str, settings: &Settings) -> Result<Article, ImportError> {
    let input = read_article(without_bom(text), Text::Body).and_then(|mut input| {
        match input.id.as_deref() {
            None => {
                input.id = Some(id.to_owned());
                Ok(input)
            }
            Some(given) if given == id => Ok(input),
            Some(given) => Err((
                Some("id"),
                format!("`{given}` in the body does not match `{id}` in the URL"),
            )),
        }
    });
    validate_all(
        "item",
        &[(1, input)],
        |input| input.clone(),
        settings,
        &mut HashMap::new(),
    )
    .map(|mut articles| articles.remove(0))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings() -> Settings {
        Settings::test_fixture()
    }

    const GOOD: &str = r#"{"id":"a1","title":"标题","url":"https://x.example.cn/a1","published_at":"2024-05-18","categories":["parks"]}"#;

    #[test]
    fn errors_list_every_problem_by_line_and_field() {
        let text = format!(
            "{GOOD}\n\n{}\n{}\n{GOOD}\n",
            r#"{"id":"a2","title":"","url":"/relative","published_at":"明天","categories":["nope"],"region":"000"}"#,
            r#"{"id":"a3","colour":"red"}"#
        );
        let err = parse_ndjson(&text, &settings()).unwrap_err();
        let found: Vec<(usize, Option<&str>)> =
            err.problems.iter().map(|p| (p.position, p.field)).collect();
        assert_eq!(
            found,
            [
                (3, Some("url")),
                (3, Some("title")),
                (3, Some("published_at")),
                (3, Some("categories")),
                (3, Some("region")),
                (4, None),
                (5, Some("id")),
            ]
        );
        assert!(err.to_string().starts_with("3 bad line(s)"), "{err}");
        assert!(err.problems[5].message.contains("unknown field `colour`"));
    }

    #[test]
    fn can_take_a_json_array_or_one_article() {
        let s = settings();
        let articles = parse_json_array(&format!("[{GOOD}]"), &s).unwrap();
        assert_eq!(articles[0].id().as_str(), "a1");
        let err = parse_json_array("{\"id\":1}", &s).unwrap_err();
        assert!(err.problems[0].message.contains("not a JSON array"));
        let one = parse_one(&GOOD.replace("\"id\":\"a1\",", ""), "b7", &s).unwrap();
        assert_eq!(one.id().as_str(), "b7");
        let err = parse_one(GOOD, "b7", &s).unwrap_err();
        assert!(err.problems[0].message.contains("does not match"), "{err}");
    }

    #[test]
    fn an_array_in_place_of_an_article_is_not_an_article() {
        let s = settings();
        let positional = r#"["a9","标题","","","https://x.example.cn/a9","2024-05-18"]"#;
        let err = parse_ndjson(&format!("{GOOD}\n{positional}\n"), &s).unwrap_err();
        assert_eq!(err.problems.len(), 1, "{err}");
        assert_eq!(
            (err.problems[0].position, err.problems[0].message.as_str()),
            (2, "not a JSON object")
        );
        let err = parse_one(positional, "a9", &s).unwrap_err();
        assert_eq!(err.problems[0].message, "not a JSON object");
        let err = parse_json_array(&format!("[{GOOD}, {positional}]"), &s).unwrap_err();
        assert_eq!(
            (err.problems[0].position, err.problems[0].message.as_str()),
            (2, "not a JSON object")
        );
        let source = GOOD.replace("}", r#","source":["江阴日报","https://jyrb.example.cn/"]}"#);
        let err = parse_ndjson(&source, &s).unwrap_err();
        assert_eq!(err.problems[0].field, Some("source"), "{err}");
        assert_eq!(err.problems[0].message, "not a JSON object");
        // An array of article objects is a batch, as it always was.
        assert_eq!(parse_json_array(&format!("[{GOOD}]"), &s).unwrap().len(), 1);
    }

    #[test]
    fn a_byte_order_mark_at_the_start_is_skipped() {
        let s = settings();
        let bom = '\u{FEFF}';
        assert_eq!(
            parse_ndjson(&format!("{bom}{GOOD}\n"), &s).unwrap().len(),
            1
        );
        assert_eq!(
            parse_json_array(&format!("{bom}[{GOOD}]"), &s)
                .unwrap()
                .len(),
            1
        );
        assert_eq!(
            parse_one(&format!("{bom}{GOOD}"), "a1", &s)
                .unwrap()
                .id()
                .as_str(),
            "a1"
        );
        // Only at the start: elsewhere it is a character like any other.
        let err = parse_ndjson(&format!("{GOOD}\n{bom}{}\n", line(2)), &s).unwrap_err();
        assert_eq!(err.problems[0].position, 2);
    }

    #[test]
    fn text_that_is_not_json_is_refused_naming_the_field_and_where() {
        let s = settings();
        let surrogate = GOOD.replace("标题", "\\ud800");
        let err = parse_ndjson(&format!("{GOOD}\n{surrogate}\n"), &s).unwrap_err();
        let p = &err.problems[0];
        assert_eq!((p.position, p.field), (2, Some("title")), "{err}");
        assert!(p.message.starts_with("not valid JSON: "), "{err}");
        assert!(p.message.contains(" at column "), "{err}");
        let control = GOOD.replace("标题", "标\u{1}题");
        let err = parse_ndjson(&control, &s).unwrap_err();
        assert_eq!(err.problems[0].field, Some("title"), "{err}");
        assert!(
            err.problems[0].message.contains("control character"),
            "{err}"
        );
        let cut = &GOOD[..40];
        let err = parse_ndjson(cut, &s).unwrap_err();
        assert!(
            err.problems[0].message.starts_with("not valid JSON: "),
            "{err}"
        );
        let err = parse_json_array(&format!("[{GOOD},\n{control}]"), &s).unwrap_err();
        let p = &err.problems[0];
        assert_eq!(p.position, 2, "{err}");
        assert!(p.message.starts_with("not valid JSON: "), "{err}");
        assert!(p.message.contains(" at line 2 column "), "{err}");
        // A lone surrogate passes the array's first reading and is found in its item.
        let err = parse_json_array(&format!("[{GOOD},\n{surrogate}]"), &s).unwrap_err();
        let p = &err.problems[0];
        assert_eq!((p.position, p.field), (2, Some("title")), "{err}");
        assert!(p.message.contains(" of the item"), "{err}");
        let err = parse_one(&GOOD.replace("\"a1\"", "\"a2\""), "a1", &s).unwrap_err();
        assert_eq!(err.problems[0].field, Some("id"), "{err}");
    }

    #[test]
    fn problems_are_counted_in_full_and_listed_up_to_the_bound() {
        let s = settings();
        // Each `{}` lacks id, title, url and published_at: four problems a line.
        let text = "{}\n".repeat(5_000);
        let err = parse_ndjson(&text, &s).unwrap_err();
        assert_eq!(err.problems.len(), MAX_LISTED_PROBLEMS);
        assert_eq!(err.problem_count, 20_000);
        assert_eq!(err.bad_count, 5_000);
        assert_eq!(err.problems[99].position, 25);
        let shown = err.to_string();
        assert!(shown.starts_with("5000 bad line(s)"), "{shown}");
        assert!(
            shown.ends_with("… and 19900 more problems (20000 in all)\n"),
            "{shown}"
        );
        let array = format!("[{}]", vec!["{}"; 5_000].join(","));
        let err = parse_json_array(&array, &s).unwrap_err();
        assert_eq!((err.problems.len(), err.problem_count), (100, 20_000));
    }

    fn line(n: usize) -> String {
        GOOD.replace("\"a1\"", &format!("\"s{n}\""))
    }

    #[test]
    fn a_stream_numbers_lines_across_batches_and_skips_blank_ones() {
        // 2,500 lines span two batches; blank lines (ASCII or not), CRLF endings and a last
        // line without a newline are all taken as `parse_ndjson` takes them.
        let mut text = String::new();
        for n in 1..=2_500 {
            match n {
                7 => text.push_str("   \n"),
                8 => text.push_str("\u{3000}\r\n"),
                2_400 => text.push_str("{\"id\":\"bad\"}\n"),
                2_500 => text.push_str(&line(n)),
                _ => text.push_str(&format!("{}\r\n", line(n))),
            }
        }
        let s = settings();
        let batches: Vec<_> = NdjsonStream::new(text.as_bytes(), &s).collect();
        assert_eq!(batches.len(), 2);
        let first = batches[0].as_ref().unwrap();
        assert_eq!(
            first.len(),
            2_000,
            "a batch is 2,000 lines that are not blank"
        );
        let Err(StreamError::Invalid(bad)) = &batches[1] else {
            panic!("the second batch holds line 2,400")
        };
        assert!(!bad.problems.is_empty());
        assert!(bad.problems.iter().all(|p| p.position == 2_400), "{bad}");

        let whole = parse_ndjson(&text.replace("{\"id\":\"bad\"}", ""), &s).unwrap();
        let streamed: usize =
            NdjsonStream::new(text.replace("{\"id\":\"bad\"}", "").as_bytes(), &s)
                .map(|b| b.unwrap().len())
                .sum();
        assert_eq!(streamed, whole.len());
        assert_eq!(whole.len(), 2_497);
        assert_eq!(NdjsonStream::new(&b" \n\n"[..], &s).count(), 0);
    }

    #[test]
    fn a_stream_reports_an_unreadable_line_and_stops() {
        struct Broken;
        impl std::io::Read for Broken {
            fn read(&mut self, _: &mut [u8]) -> std::io::Result<usize> {
                Err(std::io::Error::other("disk on fire"))
            }
        }
        let s = settings();
        let text = format!("{}\n", line(1));
        let reader = std::io::BufReader::new(std::io::Read::chain(text.as_bytes(), Broken));
        let batches: Vec<_> = NdjsonStream::new(reader, &s).collect();
        assert_eq!(batches.len(), 1);
        let Err(StreamError::Read(e)) = &batches[0] else {
            panic!("a read error, not a batch")
        };
        assert_eq!(e.line, 2);
        assert!(e.to_string().contains("disk on fire"), "{e}");
    }
}
