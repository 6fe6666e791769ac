//! The streamed import of a file of any length into the store: read and validated a batch at a
//! time on a thread of its own, written in one transaction committed only if no line was bad.

use std::sync::Arc;
use std::time::{Duration, Instant};

use super::{ImportError, NdjsonStream, ReadError, StreamError};
use crate::config::Settings;
use crate::model::{Article, Bucket};
use crate::store::{Store, StoreError};

/// Validated batches an import may hold ready while the store writes one.
const IMPORT_BATCHES_AHEAD: usize = 2;

/// An import turns bulk once it has written this many articles
/// ([`Writer::go_bulk`](crate::store::Writer::go_bulk)), and is tidied up after
/// ([`Store::after_bulk_write`]); an admin POST, at most a few thousand, never is.
const BULK_ARTICLES: usize = 10_000;

/// What the import's reading thread hands over.
enum Validated {
    /// The next batch, and how long reading and validating it took.
    Batch(Result<Vec<Article>, StreamError>, Duration),
    /// The input is exhausted.
    End,
}

/// What an import stored, and where its time went.
#[derive(Debug, Clone, Copy)]
pub struct Imported {
    /// Articles stored.
    pub articles: usize,
    /// Time spent reading and validating (overlapping the writing).
    pub validating: Duration,
    /// Time spent writing and committing.
    pub writing: Duration,
}

/// Why an import stored nothing.
#[derive(Debug, thiserror::Error)]
pub enum ImportFailure {
    /// Lines are bad; every problem is listed.
    #[error(transparent)]
    Invalid(ImportError),
    /// The input could not be read.
    #[error(transparent)]
    Read(#[from] ReadError),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The reading and validating thread could not start or died.
    #[error("the import's validating thread failed")]
    Validator,
}

/// Imports NDJSON of any length from `reader` into `store` in one transaction: every article
/// or, if any line is bad, none (and every problem is counted, the first listed). Reading and
/// validating the next batch (on all cores) overlaps with writing the last, so the slower of
/// the two sets the pace. Returns what was stored and every bucket whose feeds changed.
pub async fn import_ndjson<R>(
    store: &Store,
    settings: &Arc<Settings>,
    reader: R,
) -> Result<(Imported, Vec<Bucket>), ImportFailure>
where
    R: std::io::BufRead + Send + 'static,
{
    let (batches, mut received) = tokio::sync::mpsc::channel(IMPORT_BATCHES_AHEAD);
    let reading = settings.clone();
    // A thread of its own rather than Tokio's blocking pool: if the import fails early, a
    // reader still waiting on a slow pipe must not hold up the runtime's shutdown. It stops
    // at its next batch once nobody receives.
    std::thread::Builder::new()
        .name("feedcast-import".into())
        .spawn(move || {
            let mut stream = NdjsonStream::new(reader, &reading);
            loop {
                let started = Instant::now();
                let batch = match stream.next() {
                    Some(batch) => Validated::Batch(batch, started.elapsed()),
                    None => Validated::End,
                };
                let end = matches!(batch, Validated::End);
                if batches.blocking_send(batch).is_err() || end {
                    break;
                }
            }
        })
        .map_err(|_| ImportFailure::Validator)?;
    // Begun at the first good batch and rolled back (dropped) at the first bad one: a
    // file that will not be stored holds no write lock while the rest of it is checked.
    let mut writer = None;
    let (mut articles, mut validating, mut writing) = (0, Duration::ZERO, Duration::ZERO);
    let mut problems = ImportError::new("line");
    loop {
        let (batch, took) = match received.recv().await {
            Some(Validated::Batch(batch, took)) => (batch, took),
            Some(Validated::End) => break,
            // The thread died without saying it was done.
            None => return Err(ImportFailure::Validator),
        };
        validating += took;
        match batch {
            Ok(batch) if problems.is_empty() => {
                let started = Instant::now();
                let w = match writer.as_mut() {
                    Some(w) => w,
                    None => writer.insert(store.begin_write().await?),
                };
                if articles >= BULK_ARTICLES {
                    w.go_bulk().await?;
                }
                w.write(&batch, &settings.catalog).await?;
                writing += started.elapsed();
                articles += batch.len();
            }
            Ok(_) => {}
            Err(StreamError::Invalid(bad)) => {
                writer = None;
                problems.absorb(bad);
            }
            Err(StreamError::Read(e)) => return Err(e.into()),
        }
    }
    if !problems.is_empty() {
        return Err(ImportFailure::Invalid(problems));
    }
    let mut buckets = Vec::new();
    if let Some(writer) = writer {
        let started = Instant::now();
        buckets = writer.commit().await?;
        if articles >= BULK_ARTICLES {
            store.after_bulk_write().await;
        }
        writing += started.elapsed();
    }
    Ok((
        Imported {
            articles,
            validating,
            writing,
        },
        buckets,
    ))
}
