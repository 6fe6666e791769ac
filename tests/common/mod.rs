//! Test harness: a real feedcast on a loopback port over a real store, SQLite in a temporary
//! folder or PostgreSQL in a schema of its own that is dropped afterwards.

#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use feedcast::app::App;
use feedcast::config::Settings;
use feedcast::import::ArticleInput;
use feedcast::model::Article;
use feedcast::store::{DatabaseUrl, Store};
use tokio::sync::oneshot;

/// The PostgreSQL the tests use, if set.
pub const POSTGRES_ENV: &str = "FEEDCAST_TEST_POSTGRES_URL";

/// The PostgreSQL the tests use when [`POSTGRES_ENV`] is not set, if it answers.
pub const DEFAULT_POSTGRES: &str = "postgres://postgres@127.0.0.1:5432/test";

/// Says something on standard error past the test harness's capture (which takes only what
/// `eprintln!` prints), so it shows even when every test passes.
pub fn say(line: &str) {
    use std::io::Write;
    let _ = writeln!(std::io::stderr(), "{line}");
}

/// The PostgreSQL the tests run on: [`POSTGRES_ENV`] if set, else [`DEFAULT_POSTGRES`] if it
/// accepts a connection within a second; or why there is none. Decided once per test binary,
/// and said once.
pub async fn postgres_url() -> Result<String, String> {
    static URL: tokio::sync::OnceCell<Result<String, String>> = tokio::sync::OnceCell::const_new();
    URL.get_or_init(|| async {
        if let Ok(url) = std::env::var(POSTGRES_ENV) {
            say(&format!("PostgreSQL tests use {url} (from {POSTGRES_ENV})"));
            return Ok(url);
        }
        let connect = sqlx::postgres::PgPoolOptions::new()
            .max_connections(1)
            .connect(DEFAULT_POSTGRES);
        match tokio::time::timeout(std::time::Duration::from_secs(1), connect).await {
            Ok(Ok(pool)) => {
                pool.close().await;
                say(&format!(
                    "PostgreSQL tests use {DEFAULT_POSTGRES} (it answered; {POSTGRES_ENV} is not set)"
                ));
                Ok(DEFAULT_POSTGRES.to_owned())
            }
            Ok(Err(e)) => Err(format!("{DEFAULT_POSTGRES} refused: {e}; set {POSTGRES_ENV}")),
            Err(_) => Err(format!("{DEFAULT_POSTGRES} did not answer within 1 s; set {POSTGRES_ENV}")),
        }
    })
    .await
    .clone()
}

/// The tests' own configuration (`tests/fixtures/feeds.toml`), apart from the example.
pub fn settings() -> Settings {
    Settings::parse(
        include_str!("../fixtures/feeds.toml"),
        Path::new("feeds.toml"),
    )
    .unwrap()
}

/// The tests' configuration with some of its text replaced (each replaced text must occur).
pub fn settings_with(replace: &[(&str, &str)]) -> Settings {
    let mut text = include_str!("../fixtures/feeds.toml").to_owned();
    for (from, to) in replace {
        assert!(text.contains(from), "{from}");
        text = text.replace(from, to);
    }
    Settings::parse(&text, Path::new("feeds.toml")).unwrap()
}

/// Whether a real client the tests drive is installed (`program args` succeeds). Outside CI a
/// missing one skips the test with a message; in CI (`CI` set) it fails it, since `.ci/run`
/// installs every one.
pub fn available(program: &str, args: &[&str]) -> bool {
    let ok = std::process::Command::new(program)
        .args(args)
        .output()
        .is_ok_and(|o| o.status.success());
    if !ok {
        assert!(
            std::env::var_os("CI").is_none(),
            "{program} {args:?} is required in CI: .ci/run installs it"
        );
        say(&format!(
            "SKIPPED: {program} {args:?} is not available here"
        ));
    }
    ok
}

/// Runs a Python script that prints JSON (the feedparser checks) and returns what it printed.
pub async fn python_json(script: &'static str, args: Vec<String>) -> serde_json::Value {
    let out = tokio::task::spawn_blocking(move || {
        std::process::Command::new("python3")
            .args(["-c", script])
            .args(&args)
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

/// Which backend a test runs on.
#[derive(Debug, Clone, Copy)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// A store that cleans up after itself: a temporary folder, or a PostgreSQL schema.
pub struct TestDb {
    pub url: DatabaseUrl,
    _dir: Option<tempfile::TempDir>,
    schema: Option<(String, String)>,
}

impl TestDb {
    /// A fresh store, or `None` (with a message) when PostgreSQL is not configured.
    pub async fn new(backend: Backend) -> Option<TestDb> {
        match backend {
            Backend::Sqlite => {
                let dir = tempfile::tempdir().unwrap();
                let url = DatabaseUrl::Sqlite(dir.path().join("feedcast.db"));
                Some(TestDb {
                    url,
                    _dir: Some(dir),
                    schema: None,
                })
            }
            Backend::Postgres => {
                let base = match postgres_url().await {
                    Ok(base) => base,
                    Err(why) => {
                        assert!(
                            std::env::var_os("CI").is_none(),
                            "PostgreSQL is required in CI (.ci/run starts it): {why}"
                        );
                        say(&format!("SKIPPED: PostgreSQL part of this test: {why}"));
                        return None;
                    }
                };
                static COUNTER: AtomicUsize = AtomicUsize::new(0);
                let schema = format!(
                    "feedcast_test_{}_{}_{}",
                    std::process::id(),
                    COUNTER.fetch_add(1, Ordering::SeqCst),
                    chrono::Utc::now().timestamp_micros()
                );
                let admin = sqlx::PgPool::connect(&base)
                    .await
                    .expect("connect to PostgreSQL");
                sqlx::query(&format!("CREATE SCHEMA {schema}"))
                    .execute(&admin)
                    .await
                    .unwrap();
                admin.close().await;
                let sep = if base.contains('?') { '&' } else { '?' };
                let url = format!("{base}{sep}options=-c%20search_path%3D{schema}");
                Some(TestDb {
                    url: DatabaseUrl::Postgres(url),
                    _dir: None,
                    schema: Some((base, schema)),
                })
            }
        }
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        if let Some((base, schema)) = self.schema.take() {
            // Drop may run inside a runtime; clean up on a thread with a runtime of its own.
            std::thread::spawn(move || {
                let rt = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .unwrap();
                rt.block_on(async {
                    if let Ok(pool) = sqlx::PgPool::connect(&base).await {
                        let _ = sqlx::query(&format!("DROP SCHEMA {schema} CASCADE"))
                            .execute(&pool)
                            .await;
                        pool.close().await;
                    }
                });
            })
            .join()
            .ok();
        }
    }
}

/// A running feedcast on 127.0.0.1 with its own store.
pub struct Server {
    pub app: Arc<App>,
    pub base: String,
    pub client: reqwest::Client,
    stop: Option<oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<()>>,
    /// The database this server owns (and cleans up), if it owns one.
    pub db: Option<TestDb>,
}

impl Server {
    pub async fn start(backend: Backend) -> Option<Server> {
        Server::start_with(backend, settings()).await
    }

    /// Starts on a given store with given settings (e.g. with WebSub hubs).
    pub async fn start_on(db: TestDb, settings: Settings) -> Server {
        let mut server = Server::start_at(&db.url, settings, None).await;
        server.db = Some(db);
        server
    }

    /// Starts on a store another server owns (a second replica), optionally with an admin token.
    pub async fn start_at(url: &DatabaseUrl, settings: Settings, token: Option<&str>) -> Server {
        let store = Store::open(url, &settings.catalog).await.unwrap();
        Server::serve(settings, store, token).await
    }

    pub async fn start_with(backend: Backend, settings: Settings) -> Option<Server> {
        let db = TestDb::new(backend).await?;
        Some(Server::start_on(db, settings).await)
    }

    /// Starts on a store the test opened itself (to set it up in a way of its own).
    pub async fn serve(settings: Settings, store: Store, token: Option<&str>) -> Server {
        let token = token.and_then(|t| feedcast::config::AdminToken::new(t).unwrap());
        let app = Arc::new(App::new(settings, store).with_admin_token(token));
        // On PostgreSQL, start once the instance hears the database's changes.
        let mut heard = app.heard();
        tokio::time::timeout(std::time::Duration::from_secs(10), async {
            while !app.is_listening() {
                heard.changed().await.unwrap();
            }
        })
        .await
        .expect("listening for store changes");
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn({
            let app = app.clone();
            async move {
                feedcast::http::serve(listener, app, async {
                    let _ = stopped.await;
                })
                .await
                .unwrap();
            }
        });
        Server {
            app,
            base,
            client: reqwest::Client::new(),
            stop: Some(stop),
            task: Some(task),
            db: None,
        }
    }

    pub async fn get(&self, path: &str) -> reqwest::Response {
        self.client
            .get(format!("{}{path}", self.base))
            .send()
            .await
            .unwrap()
    }

    /// A HEAD of `path` with `headers`.
    pub async fn head(&self, path: &str, headers: &[(&str, &str)]) -> reqwest::Response {
        let mut request = self.client.head(format!("{}{path}", self.base));
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        request.send().await.unwrap()
    }

    /// Waits until the server has applied `count` store changes in all, failing the test,
    /// naming `what`, if that takes longer than `within`.
    pub async fn hears(&self, count: u64, within: std::time::Duration, what: &str) {
        let mut heard = self.app.heard();
        tokio::time::timeout(within, heard.wait_for(|n| *n >= count))
            .await
            .unwrap_or_else(|_| panic!("{what}: not heard within {within:?}"))
            .unwrap();
    }

    /// GET expecting 200; returns the body.
    pub async fn text(&self, path: &str) -> String {
        let r = self.get(path).await;
        assert_eq!(r.status(), 200, "GET {path}");
        r.text().await.unwrap()
    }

    /// Stops the server and closes its store; an owned database stays until the result is
    /// dropped.
    pub async fn stop(mut self) -> Option<TestDb> {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(task) = self.task.take() {
            task.await.unwrap();
        }
        self.app.close().await;
        self.db
    }
}

/// The admin token the tests use: 32 bytes, the least `serve` accepts.
pub const TOKEN: &str = "feedcast-test-token-0123456789ab";

/// A server with the admin API on (token [`TOKEN`]) over a fresh store.
pub async fn admin_server(backend: Backend, settings: Settings) -> Option<Server> {
    let db = TestDb::new(backend).await?;
    let url = db.url.clone();
    let mut server = Server::start_at(&url, settings, Some(TOKEN)).await;
    server.db = Some(db);
    Some(server)
}

/// An admin request; returns the status and the JSON answer (`Null` for a non-JSON body).
pub async fn call(
    server: &Server,
    method: &str,
    path: &str,
    token: Option<&str>,
    body: &str,
) -> (u16, serde_json::Value) {
    let method = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
    let mut request = server
        .client
        .request(method, format!("{}{path}", server.base))
        .body(body.to_owned());
    if let Some(token) = token {
        request = request.header("authorization", format!("Bearer {token}"));
    }
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    let is_json = response
        .headers()
        .get("content-type")
        .is_some_and(|v| v == "application/json");
    let text = response.text().await.unwrap();
    (
        status,
        if is_json {
            serde_json::from_str(&text).unwrap()
        } else {
            serde_json::Value::Null
        },
    )
}

/// A response read off a raw connection: status, headers (names lowercased) and body.
pub struct RawResponse {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl RawResponse {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
}

/// Reads one HTTP/1.1 response (with a `Content-Length` body, or none) from a raw connection,
/// failing the test if none comes within 10 s.
pub async fn read_response(stream: &mut tokio::net::TcpStream) -> RawResponse {
    use tokio::io::AsyncReadExt;
    let read = async {
        let mut buf = Vec::new();
        let head_end = loop {
            if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                break i + 4;
            }
            let mut chunk = [0u8; 4096];
            let n = stream.read(&mut chunk).await.unwrap();
            assert!(n > 0, "connection closed before a response: {buf:?}");
            buf.extend_from_slice(&chunk[..n]);
        };
        let head = String::from_utf8_lossy(&buf[..head_end]).into_owned();
        let mut lines = head.split("\r\n");
        let status = lines
            .next()
            .unwrap()
            .split(' ')
            .nth(1)
            .unwrap()
            .parse()
            .unwrap();
        let headers: Vec<(String, String)> = lines
            .filter_map(|l| l.split_once(':'))
            .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_owned()))
            .collect();
        let length: usize = headers
            .iter()
            .find(|(n, _)| n == "content-length")
            .map_or(0, |(_, v)| v.parse().unwrap());
        let mut body = buf[head_end..].to_vec();
        while body.len() < length {
            let mut chunk = [0u8; 4096];
            let n = stream.read(&mut chunk).await.unwrap();
            assert!(n > 0, "connection closed in the body");
            body.extend_from_slice(&chunk[..n]);
        }
        RawResponse {
            status,
            headers,
            body,
        }
    };
    tokio::time::timeout(std::time::Duration::from_secs(10), read)
        .await
        .expect("a response within 10 s")
}

/// Validates an article given as JSON against the tests' configuration.
pub fn article(json: serde_json::Value) -> Article {
    let s = settings();
    let input: ArticleInput = serde_json::from_value(json).unwrap();
    input.validate(&s).unwrap()
}

/// A TCP proxy in front of a server (PostgreSQL), which a test can break and restore to play
/// a store outage without touching the shared server.
pub struct Proxy {
    pub addr: std::net::SocketAddr,
    state: Arc<std::sync::Mutex<ProxyState>>,
}

#[derive(Default)]
struct ProxyState {
    broken: bool,
    /// Accept, but never forward: a store that hangs.
    stalled: bool,
    connections: Vec<tokio::task::AbortHandle>,
    /// The local ports of the connections made to the target: the target's `client_port`s.
    ports: Vec<u16>,
}

impl Proxy {
    /// A proxy in front of the test PostgreSQL, and `db`'s URL rewritten to go through it.
    pub async fn in_front_of(db: &TestDb) -> (Proxy, DatabaseUrl) {
        let DatabaseUrl::Postgres(direct) = &db.url else {
            panic!("a proxy stands in front of PostgreSQL only")
        };
        let parsed = url::Url::parse(&postgres_url().await.unwrap()).unwrap();
        let target = format!(
            "{}:{}",
            parsed.host_str().unwrap(),
            parsed.port().unwrap_or(5432)
        );
        let addr = tokio::net::lookup_host(&target)
            .await
            .unwrap()
            .next()
            .unwrap();
        let proxy = Proxy::start(addr).await;
        let proxied = DatabaseUrl::Postgres(direct.replacen(&target, &proxy.addr.to_string(), 1));
        (proxy, proxied)
    }

    pub async fn start(target: std::net::SocketAddr) -> Proxy {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let state = Arc::new(std::sync::Mutex::new(ProxyState::default()));
        let shared = state.clone();
        tokio::spawn(async move {
            while let Ok((mut inbound, _)) = listener.accept().await {
                if shared.lock().unwrap().broken {
                    drop(inbound);
                    continue;
                }
                let stalled = shared.lock().unwrap().stalled;
                let ports = shared.clone();
                let task = tokio::spawn(async move {
                    if stalled {
                        // Hold the connection open and silent.
                        std::future::pending::<()>().await;
                    }
                    if let Ok(mut outbound) = tokio::net::TcpStream::connect(target).await {
                        if let Ok(local) = outbound.local_addr() {
                            ports.lock().unwrap().ports.push(local.port());
                        }
                        let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                    }
                    drop(inbound);
                });
                shared.lock().unwrap().connections.push(task.abort_handle());
            }
        });
        Proxy { addr, state }
    }

    /// Cuts every connection and refuses new ones.
    pub fn break_(&self) {
        let mut state = self.state.lock().unwrap();
        state.broken = true;
        for c in state.connections.drain(..) {
            c.abort();
        }
    }

    /// Accepts connections again.
    pub fn restore(&self) {
        let mut state = self.state.lock().unwrap();
        state.broken = false;
        state.stalled = false;
    }

    /// New connections are accepted but never answered; those open go on working.
    pub fn hold_new(&self) {
        self.state.lock().unwrap().stalled = true;
    }

    /// The `client_port`s the target sees for the connections made through the proxy.
    pub fn ports(&self) -> Vec<u16> {
        self.state.lock().unwrap().ports.clone()
    }

    /// Cuts every connection; new ones are accepted but never answered.
    pub fn stall(&self) {
        let mut state = self.state.lock().unwrap();
        state.stalled = true;
        for c in state.connections.drain(..) {
            c.abort();
        }
    }
}

/// Starts the real binary's `serve` as a process of its own (a replica a test can kill), on
/// `database` with the configuration file `config` and the admin API on ([`TOKEN`]); returns
/// the process and its base URL, once it listens.
pub fn spawn_replica(config: &Path, database: &DatabaseUrl) -> (std::process::Child, String) {
    use std::io::BufRead;
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_feedcast"))
        .arg("--config")
        .arg(config)
        .arg("--database")
        .arg(database.to_string())
        .args(["serve", "--listen", "127.0.0.1:0"])
        .env("FEEDCAST_ADMIN_TOKEN", TOKEN)
        .env("RUST_LOG", "warn")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let first = std::io::BufReader::new(child.stdout.take().unwrap())
        .lines()
        .next()
        .unwrap()
        .unwrap();
    let base = first
        .trim_start_matches("feedcast listening on ")
        .trim_end_matches('/')
        .to_owned();
    (child, base)
}

/// The DOM Chromium builds for `url`, as headless Chromium serializes it.
pub async fn chromium_dom(url: String) -> String {
    tokio::task::spawn_blocking(move || {
        let profile = tempfile::tempdir().unwrap();
        let out = std::process::Command::new("chromium")
            .args([
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-dev-shm-usage",
                "--no-first-run",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--disable-quic",
            ])
            .arg(format!("--user-data-dir={}", profile.path().display()))
            .arg("--dump-dom")
            .arg(&url)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "chromium failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    })
    .await
    .unwrap()
}
