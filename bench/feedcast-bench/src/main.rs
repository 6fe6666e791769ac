//! `feedcast-bench`: the pieces of the benchmark that need feedcast's own code. `bench/run`
//! drives them (and wrk, nginx) and prints the results; see `docs/BENCHMARKS.md`.
//!
//! - `config`: a feeds.toml with about 200 categories and a three-level tree of about 3,000
//!   regions.
//! - `articles`: deterministic synthetic articles (NDJSON) for that configuration.
//! - `import`: times importing an NDJSON file into a store, in batches.
//! - `cold`: times building 50-item feeds straight from the store (no cache).
//! - `sweep`: requests many distinct feed URLs from a running server.
//! - `hub`: the hub's fan-out: one write to a feed with thousands of push subscribers, served by
//!   subscriber servers on 127.0.0.2 and up that check every signature.

use std::io::{BufRead, BufWriter, Write};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use clap::{Parser, Subcommand};
use feedcast::app::App;
use feedcast::config::Settings;
use feedcast::feed::{FeedId, FeedKey, Format};
use feedcast::store::{DatabaseUrl, Store};

#[derive(Parser)]
#[command(about = "Benchmark helpers for feedcast (driven by bench/run)")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Writes the benchmark's feeds.toml to stdout.
    Config {
        /// Where feedcast is reached (self links).
        #[arg(long, default_value = "http://127.0.0.1:18080/")]
        base_url: String,
        /// Cache budget in bytes.
        #[arg(long, default_value_t = 64 * 1024 * 1024)]
        cache_bytes: u64,
    },
    /// Writes `count` synthetic articles as NDJSON to stdout.
    Articles {
        #[arg(long)]
        count: u64,
        #[arg(long, default_value_t = 20_261_125)]
        seed: u64,
    },
    /// Imports the first `count` lines of an NDJSON file, in batches, and prints articles/s.
    Import {
        #[arg(long)]
        config: PathBuf,
        #[arg(long)]
        database: DatabaseUrl,
        #[arg(long)]
        file: PathBuf,
        #[arg(long)]
        count: u64,
    },
    /// Builds 50-item feeds from the store repeatedly and prints p50/p99 per feed.
    Cold {
        #[arg(long)]
        config: PathBuf,
        #[arg(long)]
        database: DatabaseUrl,
        #[arg(long, default_value_t = 200)]
        rounds: usize,
    },
    /// Subscribes `subscribers` callbacks (spread over `hosts` addresses, 127.0.0.2 and up) to a
    /// 20-item feed through the hub, then times one write until every signed delivery is
    /// acknowledged, and the p99 of `writes` further writes meanwhile.
    Hub {
        #[arg(long)]
        database: DatabaseUrl,
        #[arg(long, default_value_t = 10_000)]
        subscribers: usize,
        #[arg(long, default_value_t = 100)]
        hosts: usize,
        #[arg(long, default_value_t = 100)]
        writes: usize,
    },
    /// Requests `count` distinct feed URLs from a running server, 8 at a time.
    Sweep {
        #[arg(long)]
        config: PathBuf,
        #[arg(long)]
        base: String,
        #[arg(long)]
        count: usize,
    },
}

/// splitmix64: a tiny, well-known deterministic generator; the data must not change between
/// runs or machines.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }

    fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len() as u64) as usize]
    }
}

const PROVINCES: u64 = 31;
const CITIES: u64 = 10;
const COUNTIES: u64 = 9;
const CATEGORIES: u64 = 200;
/// Builds of each feed before `cold` starts timing, and for at least how long (see there).
const WARM_UP: usize = 20;
const WARM_UP_FOR: Duration = Duration::from_secs(3);

const WORDS: &[&str] = &[
    "氢能",
    "燃料电池",
    "电解槽",
    "储氢",
    "加氢站",
    "新材料",
    "石墨烯",
    "碳纤维",
    "特种合金",
    "高新区",
    "经开区",
    "产业园",
    "营商环境",
    "放管服",
    "集成电路",
    "生物医药",
    "智能制造",
    "数字经济",
    "绿色低碳",
    "科技创新",
    "项目签约",
    "开工建设",
    "投产",
    "研发中心",
    "重点实验室",
    "人才引进",
    "招商引资",
    "产业链",
];
const PUNCT: &[&str] = &["，", "。", "；", "、"];

fn sentence(rng: &mut Rng, chars: usize) -> String {
    let mut s = String::new();
    while s.chars().count() < chars {
        s.push_str(rng.pick::<&str>(WORDS));
        if rng.below(4) == 0 {
            s.push_str(rng.pick::<&str>(PUNCT));
        }
    }
    s.chars().take(chars).collect()
}

fn county_code(p: u64, c: u64, k: u64) -> String {
    format!("{}", (11 + p) * 10_000 + (c + 1) * 100 + k + 1)
}

fn config(base_url: &str, cache_bytes: u64) -> String {
    let mut out = format!(
        "[site]\ntitle = \"科创产业网\"\nlink = \"https://www.kechuang.example.cn/\"\nbase_url = \"{base_url}\"\n\
         language = \"zh-CN\"\ntime_zone = \"Asia/Shanghai\"\nid_prefix = \"tag:kechuang.example.cn,2021:\"\n\n\
         [limits]\ndefault_items = 50\nmax_items = 100\n\n[cache]\nmax_bytes = {cache_bytes}\n\n"
    );
    for c in 1..=CATEGORIES {
        out.push_str(&format!(
            "[[categories]]\nslug = \"c{c:03}\"\nname = \"栏目{c:03}\"\n\n"
        ));
    }
    for p in 0..PROVINCES {
        let province = (11 + p) * 10_000;
        out.push_str(&format!(
            "[[regions]]\ncode = \"{province}\"\nname = \"省{p:02}\"\n\n"
        ));
        for c in 0..CITIES {
            let city = province + (c + 1) * 100;
            out.push_str(&format!(
                "[[regions]]\ncode = \"{city}\"\nname = \"市{p:02}{c:02}\"\nparent = \"{province}\"\n\n"
            ));
            for k in 0..COUNTIES {
                out.push_str(&format!(
                    "[[regions]]\ncode = \"{}\"\nname = \"县{p:02}{c:02}{k}\"\nparent = \"{city}\"\n\n",
                    county_code(p, c, k)
                ));
            }
        }
    }
    out
}

fn article(rng: &mut Rng, n: u64) -> serde_json::Value {
    let title_chars = 15 + rng.below(26) as usize;
    let title = sentence(rng, title_chars);
    let summary_chars = 90 + rng.below(21) as usize;
    let summary = sentence(rng, summary_chars);
    let mut body = String::new();
    let target = 2_000 + rng.below(6_000) as usize;
    while body.len() < target {
        body.push_str("<p>");
        let chars = 60 + rng.below(120) as usize;
        body.push_str(&sentence(rng, chars));
        body.push_str("</p>");
    }
    // Five years of articles, in order, a few minutes apart on average.
    let published = 1_600_000_000 + n as i64 * 150 + rng.below(120) as i64;
    let published = chrono::DateTime::from_timestamp(published, 0)
        .unwrap_or_default()
        .to_rfc3339();
    let mut categories = vec![format!("c{:03}", 1 + rng.below(CATEGORIES))];
    if rng.below(2) == 0 {
        categories.push(format!("c{:03}", 1 + rng.below(CATEGORIES)));
    }
    let (p, c, k) = (rng.below(PROVINCES), rng.below(CITIES), rng.below(COUNTIES));
    // One county in a hundred articles is the busy county the cold benchmark reads, so that its
    // feed has 50 items at 10k articles as at 1M (spread evenly, a county has about three).
    let region = match rng.below(100) {
        0 => county_code(0, 0, 0),
        1..=10 => format!("{}", (11 + p) * 10_000),
        11..=20 => format!("{}", (11 + p) * 10_000 + (c + 1) * 100),
        _ => county_code(p, c, k),
    };
    let mut a = serde_json::json!({
        "id": format!("g{n:08}"),
        "title": title,
        "summary": summary,
        "content_html": body,
        "url": format!("https://www.kechuang.example.cn/news/g{n:08}.html"),
        "published_at": published,
        "categories": categories,
        "region": region,
    });
    if rng.below(5) == 0 {
        a["source"] = serde_json::json!({
            "name": format!("{}日报", sentence(rng, 2)),
            "url": format!("https://media.example.com/{n}.html"),
        });
    }
    a
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

/// A subscriber server's state: deliveries whose signature checked, and those that did not.
#[derive(Default)]
struct Received {
    verified: std::sync::atomic::AtomicUsize,
    signed: std::sync::atomic::AtomicUsize,
    bad: std::sync::atomic::AtomicUsize,
    changed: tokio::sync::Notify,
}

/// The secret of subscriber `n` (its callback path).
fn secret_of(path: &str) -> String {
    format!("secret-{path}")
}

/// One subscriber server on `ip`: echoes challenges, checks each delivery's X-Hub-Signature.
async fn subscriber_server(ip: std::net::Ipv4Addr, received: Arc<Received>) -> Result<String> {
    use hmac::Mac;
    let (on_get, on_post) = (received.clone(), received);
    let app = axum::Router::new().route(
        "/{n}",
        axum::routing::get(move |uri: axum::http::Uri| {
            let challenge = url::form_urlencoded::parse(uri.query().unwrap_or_default().as_bytes())
                .find(|(k, _)| k == "hub.challenge")
                .map(|(_, v)| v.into_owned())
                .unwrap_or_default();
            on_get
                .verified
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            on_get.changed.notify_one();
            async move { challenge }
        })
        .post(
            move |axum::extract::Path(n): axum::extract::Path<String>,
                  headers: axum::http::HeaderMap,
                  body: axum::body::Bytes| {
                // HMAC takes a key of any length; were it refused, the delivery counts as bad.
                let want: String =
                    hmac::Hmac::<sha2::Sha256>::new_from_slice(secret_of(&n).as_bytes())
                        .map(|mut mac| {
                            mac.update(&body);
                            mac.finalize()
                                .into_bytes()
                                .iter()
                                .map(|b| format!("{b:02x}"))
                                .collect()
                        })
                        .unwrap_or_default();
                let got = headers
                    .get("x-hub-signature")
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or_default();
                let counter = if got == format!("sha256={want}") {
                    &on_post.signed
                } else {
                    &on_post.bad
                };
                counter.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                on_post.changed.notify_one();
                async { "ok" }
            },
        ),
    );
    let listener = tokio::net::TcpListener::bind((ip, 0)).await?;
    let base = format!("http://{}", listener.local_addr()?);
    tokio::spawn(async move { axum::serve(listener, app).await });
    Ok(base)
}

/// Waits until `done` holds, woken by the subscriber servers.
async fn until(received: &Received, within: Duration, done: impl Fn() -> bool) -> Result<()> {
    let deadline = Instant::now() + within;
    while !done() {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            bail!("not done within {within:?}");
        }
        let _ = tokio::time::timeout(
            left.min(Duration::from_millis(100)),
            received.changed.notified(),
        )
        .await;
    }
    Ok(())
}

async fn hub_bench(
    database: &DatabaseUrl,
    subscribers: usize,
    hosts: usize,
    writes: usize,
) -> Result<()> {
    use std::sync::atomic::Ordering::Relaxed;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let base = format!("http://{}/", listener.local_addr()?);
    let text = format!(
        "{}[hub]\nallow_private_callbacks = true\nmax_pending = {n}\nmax_pending_per_host = {n}\n\
         max_subscriptions_per_host = {n}\n",
        config(&base, 64 * 1024 * 1024),
        n = subscribers + 1,
    );
    let settings = Settings::parse(&text, std::path::Path::new("feeds.toml"))?;
    let store = Store::open(database, &settings.catalog).await?;
    let app = Arc::new(App::new(settings, store));
    let served = app.clone();
    tokio::spawn(
        async move { feedcast::http::serve(listener, served, std::future::pending()).await },
    );
    // A 20-item feed of about 2 KB articles.
    let article = |n: usize| {
        format!(
            "{{\"id\":\"hub-{n}\",\"title\":\"推送{n}\",\"content_html\":\"<p>{}</p>\",\
             \"url\":\"https://www.kechuang.example.cn/news/hub-{n}.html\",\
             \"published_at\":\"2026-01-01T00:{:02}:{:02}+08:00\",\"categories\":[\"c001\"]}}",
            "氢能".repeat(300),
            (n / 60) % 60,
            n % 60
        )
    };
    let feed_articles: Vec<String> = (0..20).map(article).collect();
    app.write(&feedcast::import::parse_ndjson(
        &feed_articles.join("\n"),
        &app.settings,
    )?)
    .await?;

    let received = Arc::new(Received::default());
    let mut bases = Vec::new();
    for h in 0..hosts {
        let ip = std::net::Ipv4Addr::new(127, 0, 0, u8::try_from(2 + h)?);
        bases.push(subscriber_server(ip, received.clone()).await?);
    }
    let topic = format!("{base}feeds/category/c001.atom?limit=20");
    let client = reqwest::Client::new();
    let started = Instant::now();
    let mut requests = Vec::new();
    for n in 0..subscribers {
        let callback = format!("{}/{n}", bases[n % hosts]);
        let form = [
            ("hub.mode", "subscribe".to_owned()),
            ("hub.topic", topic.clone()),
            ("hub.callback", callback),
            ("hub.secret", secret_of(&n.to_string())),
        ];
        let request = client.post(format!("{base}websub")).form(&form).send();
        requests.push(tokio::spawn(request));
        if requests.len() == 64 || n + 1 == subscribers {
            for r in std::mem::take(&mut requests) {
                let answer = r.await??;
                if answer.status() != 202 {
                    bail!(
                        "a subscription request was refused: {}",
                        answer.text().await?
                    );
                }
            }
        }
    }
    until(&received, Duration::from_secs(600), || {
        received.verified.load(Relaxed) >= subscribers
    })
    .await?;
    while app.store.active_subscriptions().await?.len() < subscribers {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let subscribed = started.elapsed();

    // One write: every subscriber gets the new document.
    let written = Instant::now();
    app.write(&feedcast::import::parse_ndjson(
        &article(20),
        &app.settings,
    )?)
    .await?;
    let write_time = written.elapsed();
    until(&received, Duration::from_secs(600), || {
        received.signed.load(Relaxed) + received.bad.load(Relaxed) >= subscribers
    })
    .await?;
    let all = written.elapsed();
    let rate = subscribers as f64 / all.as_secs_f64();

    // More writes while deliveries go on: the write never waits for them.
    let mut latencies = Vec::with_capacity(writes);
    for n in 0..writes {
        let one = feedcast::import::parse_ndjson(&article(21 + n), &app.settings)?;
        let t = Instant::now();
        app.write(&one).await?;
        latencies.push(t.elapsed());
    }
    latencies.sort_unstable();
    let p99 = percentile(&latencies, 0.99);
    println!(
        "hub subscribers={subscribers} hosts={hosts} subscribe_s={:.1} deliveries_s={:.2} \
         deliveries_per_s={rate:.0} bad_signatures={} first_write_ms={:.1} write_p99_ms={:.1}",
        subscribed.as_secs_f64(),
        all.as_secs_f64(),
        received.bad.load(Relaxed),
        write_time.as_secs_f64() * 1000.0,
        p99.as_secs_f64() * 1000.0
    );
    app.close().await;
    Ok(())
}

async fn open(config: &std::path::Path, database: &DatabaseUrl) -> Result<App> {
    let settings = Settings::from_file(config)?;
    let store = Store::open(database, &settings.catalog).await?;
    Ok(App::new(settings, store))
}

/// The length in bytes of the first `count` lines of `file`.
fn prefix_of_lines(file: &std::path::Path, count: u64) -> Result<u64> {
    let mut reader = std::io::BufReader::new(std::fs::File::open(file)?);
    let (mut length, mut line) = (0, Vec::new());
    for _ in 0..count {
        line.clear();
        match reader.read_until(b'\n', &mut line)? {
            0 => bail!("{} has fewer than {count} lines", file.display()),
            n => length += n as u64,
        }
    }
    Ok(length)
}

/// jemalloc rather than glibc's malloc: measured with bench/run, a 304 spent ~8% of its time in
/// glibc's malloc and free (0.9x nginx, 1.0x with jemalloc). mimalloc was as fast but held more
/// than twice the memory after a sweep of cold feeds.
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

#[tokio::main]
async fn main() -> Result<()> {
    // feedcast's own logs, on standard error, as RUST_LOG says (off by default).
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_env("RUST_LOG"))
        .with_writer(std::io::stderr)
        .init();
    match Cli::parse().command {
        Command::Config {
            base_url,
            cache_bytes,
        } => print!("{}", config(&base_url, cache_bytes)),
        Command::Articles { count, seed } => {
            let mut rng = Rng(seed);
            let mut out = BufWriter::new(std::io::stdout().lock());
            for n in 0..count {
                writeln!(out, "{}", article(&mut rng, n))?;
            }
            out.flush()?;
        }
        Command::Import {
            config,
            database,
            file,
            count,
        } => {
            let app = open(&config, &database).await?;
            // The first `count` lines, through the same streamed import as `feedcast import`.
            let length = prefix_of_lines(&file, count)?;
            let reader =
                std::io::BufReader::new(std::io::Read::take(std::fs::File::open(&file)?, length));
            let started = Instant::now();
            let imported = app.import_ndjson(reader).await?;
            let secs = started.elapsed().as_secs_f64();
            if imported.articles as u64 != count {
                bail!("the file has {} articles, not {count}", imported.articles);
            }
            // Validating and writing overlap: their sum exceeds the wall time.
            println!(
                "import {count} {:.0} articles/s ({secs:.1} s; busy validating {:.1} s, writing {:.1} s)",
                count as f64 / secs,
                imported.validating.as_secs_f64(),
                imported.writing.as_secs_f64()
            );
            app.close().await;
        }
        Command::Cold {
            config,
            database,
            rounds,
        } => {
            let app = open(&config, &database).await?;
            let s = app.settings.clone();
            let feeds = [
                (
                    "category",
                    FeedId::Category(s.catalog.categories()[0].slug.clone()),
                ),
                (
                    "county",
                    FeedId::Region(feedcast::model::RegionCode::parse(&county_code(0, 0, 0))?),
                ),
                (
                    "province",
                    FeedId::Region(s.catalog.regions()[0].code.clone()),
                ),
            ];
            for (name, feed) in feeds {
                let key = FeedKey::latest(feed, Format::Rss, &s);
                // Untimed first: each of the pool's connections prepares a statement the first
                // time it runs it, once in its life, and the store's start-up upkeep (pruning
                // the change log, refiling regions) runs for a second or two beside the first
                // builds. Both had been most of the first feed's p99 on PostgreSQL (5.7-6.7 ms
                // where the other two feeds, measured after, had 2.2-2.7).
                let warm = Instant::now();
                let mut built = 0;
                while built < WARM_UP || warm.elapsed() < WARM_UP_FOR {
                    app.build(&key).await?;
                    built += 1;
                }
                let mut times = Vec::with_capacity(rounds);
                let mut items = 0;
                for _ in 0..rounds {
                    let started = Instant::now();
                    let built = app.build(&key).await?;
                    times.push(started.elapsed());
                    items = String::from_utf8_lossy(&built.body)
                        .matches("<item>")
                        .count();
                }
                times.sort();
                println!(
                    "cold {name} items={items} p50_us={} p99_us={}",
                    percentile(&times, 0.50).as_micros(),
                    percentile(&times, 0.99).as_micros()
                );
            }
            app.close().await;
        }
        Command::Hub {
            database,
            subscribers,
            hosts,
            writes,
        } => hub_bench(&database, subscribers, hosts.clamp(1, 250), writes).await?,
        Command::Sweep {
            config,
            base,
            count,
        } => {
            let settings = Settings::from_file(&config)?;
            let mut paths = Vec::new();
            for feed in FeedId::all(&settings.catalog).into_iter().rev() {
                for format in [Format::Rss, Format::Atom, Format::Json, Format::Html] {
                    paths.push(FeedKey::latest(feed.clone(), format, &settings).url_path());
                }
            }
            if paths.len() < count {
                bail!("only {} distinct feed URLs", paths.len());
            }
            paths.truncate(count);
            let client = reqwest::Client::new();
            let paths = Arc::new(paths);
            let next = Arc::new(std::sync::atomic::AtomicUsize::new(0));
            let mut workers = tokio::task::JoinSet::new();
            for _ in 0..8 {
                let (client, paths, next, base) =
                    (client.clone(), paths.clone(), next.clone(), base.clone());
                workers.spawn(async move {
                    let mut bytes = 0usize;
                    loop {
                        let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                        let Some(path) = paths.get(i) else { break };
                        let r = client.get(format!("{base}{path}")).send().await?;
                        bytes += r.bytes().await?.len();
                    }
                    Ok::<usize, reqwest::Error>(bytes)
                });
            }
            let mut total = 0;
            while let Some(done) = workers.join_next().await {
                total += done.context("sweep worker")??;
            }
            println!("sweep urls={count} bytes={total}");
        }
    }
    Ok(())
}
