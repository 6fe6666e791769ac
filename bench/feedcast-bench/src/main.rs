//! `feedcast-bench`: the pieces of the benchmark that need feedcast's own code. `bench/run`
//! drives them (and wrk, nginx) and prints the results; see `docs/BENCHMARKS.md`.
//!
//! - `config`: a feeds.toml with about 200 categories and a three-level tree of about 3,000
//!   regions.
//! - `articles`: deterministic synthetic articles (NDJSON) for that configuration.
//! - `import`: times importing an NDJSON file into a store, in batches.
//! - `cold`: times building 50-item feeds straight from the store (no cache).
//! - `sweep`: requests many distinct feed URLs from a running server.

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
