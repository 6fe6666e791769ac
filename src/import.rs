//! Batches of articles in: NDJSON (one article a line) or a JSON array, each article validated
//! before anything of its batch is stored.
//!
//! A batch is accepted whole or not at all, so a half-imported file never leaves the store in
//! a state nobody asked for. A file of any length is streamed ([`NdjsonStream`]): its batches are
//! validated as they are read and written in one transaction that is committed only if no line
//! was bad. Every problem is reported with its line (or array item) and field,
//! not only the first, so an editor can fix a file in one pass. The CLI's `import` and the admin
//! API both come through here.

use std::collections::HashMap;
use std::fmt;

use crate::config::Settings;
use crate::model::{Article, ArticleInput};

/// One problem with one article of a batch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// 1-based line (NDJSON) or item (JSON array) number.
    pub position: usize,
    /// The field at fault, when one is.
    pub field: Option<&'static str>,
    /// What is wrong.
    pub message: String,
}

/// Every problem found in a batch; nothing of it was stored.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct ImportError {
    /// What positions count: `line` or `item`.
    pub unit: &'static str,
    /// The problems, in order.
    pub problems: Vec<Problem>,
}

impl fmt::Display for ImportError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut positions: Vec<usize> = self.problems.iter().map(|p| p.position).collect();
        positions.dedup();
        writeln!(
            f,
            "{} bad {}(s); nothing was imported:",
            positions.len(),
            self.unit
        )?;
        for p in &self.problems {
            match p.field {
                Some(field) => {
                    writeln!(f, "  {} {}: {field}: {}", self.unit, p.position, p.message)?
                }
                None => writeln!(f, "  {} {}: {}", self.unit, p.position, p.message)?,
            }
        }
        Ok(())
    }
}

/// Below this many articles a batch is checked on one thread; above, on every core, since
/// sanitizing HTML is most of an import's cost.
const PARALLEL_FROM: usize = 256;

/// Parses (with `parse`) and validates every item, on all cores for a large batch, then
/// reports in order. An id given twice is an error, since which of the two was meant cannot be
/// known.
fn validate_all<T: Sync>(
    unit: &'static str,
    items: &[(usize, T)],
    parse: impl Fn(&T) -> Result<ArticleInput, String> + Sync,
    settings: &Settings,
    seen: &mut HashMap<String, usize>,
) -> Result<Vec<Article>, ImportError> {
    let check = |items: &[(usize, T)]| -> Vec<(usize, Result<Article, Vec<Problem>>)> {
        items
            .iter()
            .map(|(position, item)| {
                let position = *position;
                let checked = parse(item)
                    .map_err(|message| {
                        vec![Problem {
                            position,
                            field: None,
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
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
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
    let mut problems = Vec::new();
    for (position, result) in checked {
        match result {
            Ok(article) => match seen.insert(article.id().to_string(), position) {
                Some(first) => problems.push(Problem {
                    position,
                    field: Some("id"),
                    message: format!("`{}` is already at {unit} {first}", article.id()),
                }),
                None => articles.push(article),
            },
            Err(found) => problems.extend(found),
        }
    }
    if problems.is_empty() {
        Ok(articles)
    } else {
        Err(ImportError { unit, problems })
    }
}

fn not_an_article(e: serde_json::Error) -> String {
    format!("not an article object: {e}")
}

/// Parses and validates NDJSON text; blank lines are skipped. The same reading as a streamed
/// import ([`NdjsonStream`]), collected.
pub fn parse_ndjson(text: &str, settings: &Settings) -> Result<Vec<Article>, ImportError> {
    let mut articles = Vec::new();
    let mut problems = Vec::new();
    for batch in NdjsonStream::new(text.as_bytes(), settings) {
        match batch {
            Ok(batch) => articles.extend(batch),
            Err(StreamError::Invalid(bad)) => problems.extend(bad.problems),
            // Text in memory reads without error; said as a problem rather than assumed.
            Err(StreamError::Read(e)) => problems.push(Problem {
                position: e.line,
                field: None,
                message: e.source.to_string(),
            }),
        }
    }
    if problems.is_empty() {
        Ok(articles)
    } else {
        Err(ImportError {
            unit: "line",
            problems,
        })
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
                    Ok(line) => serde_json::from_str(line).map_err(not_an_article),
                    Err(e) => Err(format!("not UTF-8 text: {}", e.utf8_error())),
                },
                self.settings,
                &mut self.seen,
            )
            .map_err(StreamError::Invalid),
        )
    }
}

/// Parses and validates a JSON array of articles.
pub fn parse_json_array(text: &str, settings: &Settings) -> Result<Vec<Article>, ImportError> {
    let items: Vec<serde_json::Value> = serde_json::from_str(text).map_err(|e| ImportError {
        unit: "item",
        problems: vec![Problem {
            position: 0,
            field: None,
            message: format!("not a JSON array of articles: {e}"),
        }],
    })?;
    let items: Vec<(usize, serde_json::Value)> = items
        .into_iter()
        .enumerate()
        .map(|(i, v)| (i + 1, v))
        .collect();
    validate_all(
        "item",
        &items,
        |v| serde_json::from_value(v.clone()).map_err(not_an_article),
        settings,
        &mut HashMap::new(),
    )
}

/// Parses and validates one article; `id`, if given, fills a missing id or must match.
pub fn parse_one(text: &str, id: &str, settings: &Settings) -> Result<Article, ImportError> {
    let input = serde_json::from_str::<ArticleInput>(text)
        .map_err(not_an_article)
        .and_then(|mut input: ArticleInput| match input.id.as_deref() {
            None => {
                input.id = Some(id.to_owned());
                Ok(input)
            }
            Some(given) if given == id => Ok(input),
            Some(given) => Err(format!(
                "id: `{given}` in the body does not match `{id}` in the URL"
            )),
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
    use std::path::Path;

    use super::*;

    fn settings() -> Settings {
        Settings::parse(include_str!("../feeds.toml"), Path::new("feeds.toml")).unwrap()
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
