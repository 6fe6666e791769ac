//! NDJSON import: one article a line, all validated before anything is stored.
//!
//! A file is accepted whole or not at all, so a half-imported file never leaves the store in a
//! state nobody asked for. Every bad line is reported with its number and reason, not only the
//! first, so an editor can fix a file in one pass.

use std::collections::HashMap;
use std::fmt;

use crate::config::Settings;
use crate::model::{Article, ArticleInput};

/// One rejected line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LineError {
    /// 1-based line number.
    pub line: usize,
    /// Why it was rejected (for a bad article, every field problem).
    pub message: String,
}

/// Every problem found in an import; nothing of it was stored.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct ImportError {
    /// The rejected lines, in order.
    pub lines: Vec<LineError>,
}

impl fmt::Display for ImportError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "{} bad line(s); nothing was imported:", self.lines.len())?;
        for l in &self.lines {
            writeln!(f, "  line {}: {}", l.line, l.message)?;
        }
        Ok(())
    }
}

/// Parses and validates NDJSON text. Blank lines are skipped; an id given twice is an error,
/// since which of the two was meant cannot be known.
pub fn parse_ndjson(text: &str, settings: &Settings) -> Result<Vec<Article>, ImportError> {
    let mut articles = Vec::new();
    let mut errors = Vec::new();
    let mut seen: HashMap<String, usize> = HashMap::new();
    for (i, line) in text.lines().enumerate() {
        let number = i + 1;
        if line.trim().is_empty() {
            continue;
        }
        let input: ArticleInput = match serde_json::from_str(line) {
            Ok(input) => input,
            Err(e) => {
                errors.push(LineError {
                    line: number,
                    message: format!("not an article object: {e}"),
                });
                continue;
            }
        };
        match input.validate(&settings.site, &settings.catalog) {
            Ok(article) => {
                if let Some(first) = seen.insert(article.id().to_string(), number) {
                    errors.push(LineError {
                        line: number,
                        message: format!("id: `{}` is already on line {first}", article.id()),
                    });
                } else {
                    articles.push(article);
                }
            }
            Err(e) => errors.push(LineError {
                line: number,
                message: e.to_string(),
            }),
        }
    }
    if errors.is_empty() {
        Ok(articles)
    } else {
        Err(ImportError { lines: errors })
    }
}
