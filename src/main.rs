//! The `feedcast` binary: parses the command line, sets up logging, loads the configuration
//! and hands over to the library.

use std::io::{BufRead, Write};
use std::sync::Arc;

use anyhow::{Context, Result, bail};
use clap::Parser;
use feedcast::app::App;
use feedcast::cli::{Cli, Command, HubCommand, StatsCommand};
use feedcast::config::{AdminToken, Settings};
use feedcast::feed::{FeedId, FeedKey, Format};
use feedcast::import::ImportFailure;
use feedcast::store::Store;
use tokio::net::TcpListener;

/// Prints a line of the startup banner. A server must not die because whoever started it
/// stopped reading its standard output, so write errors are ignored.
macro_rules! say {
    ($($arg:tt)*) => {{
        let _ = writeln!(std::io::stdout(), $($arg)*);
    }};
}

/// How long shutdown waits for background work (WebSub notifications).
const CLOSE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

/// jemalloc rather than glibc's malloc: measured with bench/run, a 304 spent ~8% of its time in
/// glibc's malloc and free (0.9x nginx, 1.0x with jemalloc). mimalloc was as fast but held more
/// than twice the memory after a sweep of cold feeds.
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

#[tokio::main]
async fn main() -> Result<()> {
    let cli = Cli::parse();
    // Held to the end of main: dropping it writes out the lines still queued.
    let _log = feedcast::logs::install(cli.log_format, cli.log_queue_lines);
    if let Command::Healthcheck { listen } = cli.command {
        return healthcheck(listen).await;
    }

    let settings = Settings::from_file(&cli.config)?;
    if let Command::Check = cli.command {
        return check(&settings, &cli);
    }
    let database = cli.database.clone().unwrap_or_default();
    let store = Store::open(&database, &settings.catalog)
        .await
        .with_context(|| format!("opening the article store at {database}"))?;
    // The admin token comes from the environment only: a flag would show in `ps`. Only `serve`
    // uses it, so only `serve` refuses one too short to be safe.
    let admin_token = match std::env::var("FEEDCAST_ADMIN_TOKEN") {
        Ok(token) if matches!(cli.command, Command::Serve { .. }) => AdminToken::new(&token)?,
        _ => None,
    };
    let app = Arc::new(App::new(settings, store).with_admin_token(admin_token));

    let outcome = match cli.command {
        Command::Serve { listen, demo } => serve(app.clone(), listen, demo).await,
        Command::Import { file } => import(&app, &file).await,
        Command::Render { path } => render(&app, &path).await,
        Command::Hub { action } => hub(&app, action).await,
        Command::Stats { json, html, action } => stats(&app, json, html, action).await,
        Command::Check | Command::Healthcheck { .. } => Ok(()),
    };
    // Queued WebSub notifications get a bounded time to go out before the store closes.
    if tokio::time::timeout(CLOSE_TIMEOUT, app.close())
        .await
        .is_err()
    {
        tracing::warn!("gave up waiting for pending WebSub notifications");
        app.store.close().await;
    }
    outcome
}

fn check(settings: &Settings, cli: &Cli) -> Result<()> {
    let c = &settings.catalog;
    let depth = c
        .regions()
        .iter()
        .map(|r| r.lineage.len())
        .max()
        .unwrap_or(0);
    println!("{}: ok", cli.config.display());
    println!(
        "  site: {} <{}>, {}, {}",
        settings.site.title, settings.site.link, settings.site.language, settings.site.time_zone
    );
    println!(
        "  {} categories, {} regions ({} levels), {} custom feeds",
        c.categories().len(),
        c.regions().len(),
        depth,
        c.feeds().len()
    );
    println!(
        "  {} feeds in {} formats; {} items by default, at most {}",
        FeedId::all(c).len(),
        Format::FEEDS.len(),
        settings.limits.default_items,
        settings.limits.max_items
    );
    println!(
        "  {} former names answered with 301, {} feeds gone (410)",
        c.former_count(),
        c.gone_count()
    );
    Ok(())
}

async fn import(app: &App, file: &std::path::Path) -> Result<()> {
    // Streamed, so a file of millions of articles never sits in memory whole.
    let (name, reader) = open_input(file)?;
    match app.import_ndjson(reader).await {
        Ok(imported) => {
            println!("imported {} articles from {name}", imported.articles);
            Ok(())
        }
        Err(ImportFailure::Store(e)) => {
            Err(e).with_context(|| format!("storing the articles of {name}"))
        }
        Err(e) => bail!("{name}: {e}"),
    }
}

async fn hub(app: &App, action: HubCommand) -> Result<()> {
    match action {
        HubCommand::List => {
            let subscriptions = app
                .store
                .active_subscriptions()
                .await
                .context("listing the hub's subscriptions")?;
            for s in &subscriptions {
                let until = s.expires().map(|t| t.to_rfc3339()).unwrap_or_default();
                println!("{}\t{}\t{until}", s.topic, s.callback_host);
            }
            println!("{} active subscriptions", subscriptions.len());
        }
        HubCommand::PurgeExpired => {
            let removed = app
                .store
                .purge_expired_subscriptions()
                .await
                .context("purging lapsed subscriptions")?;
            println!("removed {removed} lapsed subscriptions and unverified requests");
        }
    }
    Ok(())
}

async fn stats(
    app: &App,
    json: bool,
    html: Option<std::path::PathBuf>,
    action: Option<StatsCommand>,
) -> Result<()> {
    if let Some(StatsCommand::ImportLog { file }) = action {
        if !app.settings.stats.enabled {
            bail!(
                "subscriber statistics are off ([stats] enabled = false): nothing to import into"
            );
        }
        let (name, reader) = open_input(&file)?;
        let done = app
            .import_log(reader)
            .await
            .with_context(|| format!("reading {name} into the statistics"))?;
        for (line, why) in &done.problems {
            eprintln!("{name}:{line}: {why}");
        }
        if done.unreadable > done.problems.len() as u64 {
            eprintln!(
                "{name}: {} more unreadable lines",
                done.unreadable - done.problems.len() as u64
            );
        }
        println!(
            "{name}: {} lines, {} polls counted, {} other requests, {} unreadable",
            done.lines, done.polls, done.other, done.unreadable
        );
        return Ok(());
    }
    let report = app
        .stats_report()
        .await
        .context("reading the subscriber statistics")?;
    if let Some(path) = html {
        std::fs::write(&path, feedcast::stats::html(&report, 20))
            .with_context(|| format!("writing {}", path.display()))?;
        println!("wrote {}", path.display());
    } else if json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print!("{}", feedcast::stats::table(&report));
    }
    Ok(())
}

/// A file to read, or standard input for `-`, with its name for messages.
fn open_input(file: &std::path::Path) -> Result<(String, Box<dyn BufRead + Send>)> {
    if file.as_os_str() == "-" {
        return Ok((
            "standard input".to_owned(),
            Box::new(std::io::BufReader::new(std::io::stdin())),
        ));
    }
    let opened =
        std::fs::File::open(file).with_context(|| format!("reading {}", file.display()))?;
    Ok((
        file.display().to_string(),
        Box::new(std::io::BufReader::new(opened)),
    ))
}

async fn render(app: &App, path: &str) -> Result<()> {
    let (path, query) = match path.split_once('?') {
        Some((p, q)) => (p, Some(q)),
        None => (path, None),
    };
    let key = FeedKey::parse(path.trim_start_matches('/'), query, &app.settings)?;
    let rendered = app.build(&key).await?;
    std::io::stdout().write_all(&rendered.body)?;
    Ok(())
}

async fn serve(app: Arc<App>, listen: std::net::SocketAddr, demo: bool) -> Result<()> {
    if demo {
        let added = app.load_demo_if_empty().await?;
        if added > 0 {
            tracing::info!(
                articles = added,
                "demo articles loaded into the empty store"
            );
        }
    }
    let listener = TcpListener::bind(listen)
        .await
        .with_context(|| format!("listening on {listen}"))?;
    let addr = listener.local_addr()?;
    let settings = &app.settings;
    say!("feedcast listening on http://{addr}/");
    let samples = [
        settings
            .catalog
            .categories()
            .first()
            .map(|c| FeedId::Category(c.slug.clone())),
        settings
            .catalog
            .regions()
            .first()
            .map(|r| FeedId::Region(r.code.clone())),
        settings
            .catalog
            .regions()
            .iter()
            .find(|r| r.lineage.len() >= 3)
            .map(|r| FeedId::Region(r.code.clone())),
        settings
            .catalog
            .feeds()
            .first()
            .map(|f| FeedId::Custom(f.slug.clone())),
    ];
    for feed in samples.into_iter().flatten() {
        for format in Format::FEEDS {
            let key = FeedKey::latest(feed.clone(), format, settings);
            say!("  http://{addr}{}", key.url_path());
        }
    }
    say!("  http://{addr}/feeds.opml (every feed, for a reader to import)");
    match app.admin_token() {
        Some(_) => say!(
            "  admin API on: http://{addr}/api/articles (bearer token from FEEDCAST_ADMIN_TOKEN)"
        ),
        None => say!("  admin API off: set FEEDCAST_ADMIN_TOKEN to turn it on"),
    }
    say!(
        "  (self links in the feeds use site.base_url = {})",
        settings.site.base_url
    );
    feedcast::http::serve(listener, app.clone(), shutdown_signal()).await?;
    tracing::info!("stopped");
    Ok(())
}

/// Asks a running feedcast whether it is ready; an unspecified listen address (0.0.0.0) is
/// asked on loopback.
async fn healthcheck(listen: std::net::SocketAddr) -> Result<()> {
    let mut addr = listen;
    if addr.ip().is_unspecified() {
        addr.set_ip(std::net::Ipv4Addr::LOCALHOST.into());
    }
    let client = reqwest::Client::builder()
        .timeout(std::time::Duration::from_secs(5))
        .build()?;
    let response = client
        .get(format!("http://{addr}/readyz"))
        .send()
        .await
        .with_context(|| format!("asking http://{addr}/readyz"))?;
    if !response.status().is_success() {
        bail!("not ready: {}", response.status());
    }
    Ok(())
}

/// Completes on SIGINT or SIGTERM.
async fn shutdown_signal() {
    let interrupt = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(s) => s,
                Err(_) => return interrupt.await.unwrap_or(()),
            };
        tokio::select! {
            _ = interrupt => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    let _ = interrupt.await;
}
