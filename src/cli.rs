//! The command line: `serve`, `import`, `check`, `render`, `hub` and `stats`. `--config` and `--database` (and
//! their environment variables) apply to every subcommand.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::{Parser, Subcommand};

pub use crate::logs::LogFormat;
use crate::store::DatabaseUrl;

/// feedcast: syndication feeds (RSS 2.0, Atom 1.0) for a news portal's articles.
#[derive(Debug, Parser)]
#[command(version, about)]
pub struct Cli {
    /// The configuration file.
    #[arg(
        long,
        global = true,
        env = "FEEDCAST_CONFIG",
        default_value = "feeds.toml"
    )]
    pub config: PathBuf,
    /// The article store: sqlite://PATH or postgres://USER@HOST/DB [default: sqlite://data/feedcast.db]
    #[arg(long, global = true, env = "FEEDCAST_DATABASE_URL")]
    pub database: Option<DatabaseUrl>,
    /// Log format: `text` for people, `json` for log pipelines. Levels come from RUST_LOG.
    #[arg(
        long,
        global = true,
        env = "FEEDCAST_LOG_FORMAT",
        default_value = "text"
    )]
    pub log_format: LogFormat,
    /// Log lines waiting to be written, at most (request lines: shared among the worker
    /// threads' buffers): when the log cannot keep up, further lines are dropped (and counted
    /// in /metrics) rather than requests kept waiting.
    #[arg(
        long,
        global = true,
        env = "FEEDCAST_LOG_QUEUE_LINES",
        default_value_t = crate::logs::DEFAULT_QUEUED_LINES,
        value_parser = clap::value_parser!(u32).range(1..=10_000_000)
    )]
    pub log_queue_lines: u32,
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// A subcommand.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Serve the feeds over HTTP.
    Serve {
        /// Address to listen on.
        #[arg(long, env = "FEEDCAST_LISTEN", default_value = "127.0.0.1:8080")]
        listen: SocketAddr,
        /// Fill an empty store with the demo articles first.
        #[arg(long)]
        demo: bool,
    },
    /// Import articles from NDJSON (one article per line; `-` reads standard input). All lines
    /// are checked first; if any is bad, nothing is stored.
    Import {
        /// The NDJSON file, or `-`.
        file: PathBuf,
    },
    /// Check the configuration and say what it declares.
    Check,
    /// Exit 0 if a running feedcast answers `/readyz` (for container health checks).
    Healthcheck {
        /// The address feedcast listens on.
        #[arg(long, env = "FEEDCAST_LISTEN", default_value = "127.0.0.1:8080")]
        listen: SocketAddr,
    },
    /// Write one feed to standard output, e.g. `render category/parks.atom` or
    /// `render 'region/320000.rss?limit=5'`.
    Render {
        /// The feed's path as in its URL, without `/feeds/`.
        path: String,
    },
    /// The WebSub hub's subscriptions.
    Hub {
        /// What to do with them.
        #[command(subcommand)]
        action: HubCommand,
    },
    /// Subscriber statistics: print every feed's subscribers as a table (or JSON, or write
    /// the editors' page), or read a CDN's access log into them.
    Stats {
        /// Print the report as JSON (as `GET /api/stats` answers) instead of a table.
        #[arg(long, conflicts_with = "html")]
        json: bool,
        /// Write the editors' page (as `GET /admin/stats` shows it) to this file instead.
        #[arg(long, value_name = "FILE")]
        html: Option<PathBuf>,
        /// Read an access log instead of printing.
        #[command(subcommand)]
        action: Option<StatsCommand>,
    },
}

/// What `stats` does besides printing.
#[derive(Debug, Clone, PartialEq, Eq, Subcommand)]
pub enum StatsCommand {
    /// Read an access log in the combined log format (a CDN's or a proxy's, with the client
    /// address and User-Agent as the edge saw them; `-` reads standard input) into the counts.
    ImportLog {
        /// The log file, or `-`.
        file: PathBuf,
    },
}

/// What `hub` does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Subcommand)]
pub enum HubCommand {
    /// Print the active subscriptions: topic, callback host, lease end.
    List,
    /// Remove subscriptions whose lease has ended, and requests never verified.
    PurgeExpired,
}
