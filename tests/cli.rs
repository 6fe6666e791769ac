//! The `feedcast` binary as a user runs it: check, import, render, serve.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Command, Output, Stdio};

const BIN: &str = env!("CARGO_BIN_EXE_feedcast");
const CONFIG: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/feeds.toml");

fn feedcast(db: &Path, args: &[&str]) -> Output {
    Command::new(BIN)
        .args(["--config", CONFIG, "--database"])
        .arg(format!("sqlite://{}", db.display()))
        .args(args)
        .env_remove("FEEDCAST_DATABASE_URL")
        .output()
        .unwrap()
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

const GOOD: &str = r#"{"id":"a1","title":"江阴高新区氢能产业园开工","content_html":"<p>开工。</p>","url":"https://www.kechuang.example.cn/news/a1.html","published_at":"2024-05-18T09:30:00+08:00","categories":["parks"],"region":"320281"}
{"id":"a2","title":"苏州新材料产业基地投产","content_html":"<p>投产。</p>","url":"https://www.kechuang.example.cn/news/a2.html","published_at":"2024-05-19","categories":["materials"],"region":"320500"}
"#;

#[test]
fn check_says_what_the_config_declares() {
    let dir = tempfile::tempdir().unwrap();
    let out = feedcast(&dir.path().join("x.db"), &["check"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    assert!(
        text.contains("5 categories, 12 regions (3 levels), 2 custom feeds"),
        "{text}"
    );
}

#[test]
fn check_names_file_line_and_problem_of_a_bad_config() {
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("bad.toml");
    let text = std::fs::read_to_string(CONFIG)
        .unwrap()
        .replace("parent = \"320200\"", "parent = \"329999\"");
    std::fs::write(&bad, &text).unwrap();
    let line = text.lines().position(|l| l.contains("329999")).unwrap() + 1;
    let out = Command::new(BIN)
        .args(["--config"])
        .arg(&bad)
        .arg("check")
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = stderr(&out);
    assert!(err.contains(&format!("bad.toml:{line}:")), "{err}");
    assert!(err.contains("parent `329999`"), "{err}");
}

/// Writes the fixture with `replace` applied, runs `check` on it, and returns (success, line of
/// `needle`'s last occurrence, what was printed).
fn check_with(replace: &[(&str, &str)], needle: &str) -> (bool, usize, String) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("renamed.toml");
    let mut text = std::fs::read_to_string(CONFIG).unwrap();
    for (from, to) in replace {
        assert!(text.contains(from), "{from}");
        text = text.replacen(from, to, 1);
    }
    std::fs::write(&path, &text).unwrap();
    let line = 1 + text[..text.rfind(needle).unwrap()].matches('\n').count();
    let out = Command::new(BIN)
        .arg("--config")
        .arg(&path)
        .arg("check")
        .output()
        .unwrap();
    let printed = stdout(&out) + &stderr(&out);
    (out.status.success(), line, printed)
}

#[test]
fn check_refuses_a_former_or_gone_name_that_is_live_or_listed_twice() {
    let parks = "slug = \"parks\"\nname = \"园区\"";
    let hydrogen = "slug = \"hydrogen\"\nname = \"氢能科技\"";
    for (replace, needle, says) in [
        (
            vec![(
                hydrogen,
                "slug = \"hydrogen\"\nname = \"氢能科技\"\nformerly = [\"parks\"]",
            )],
            "formerly",
            "`parks` is a live category",
        ),
        (
            vec![
                (
                    parks,
                    "slug = \"parks\"\nname = \"园区\"\nformerly = [\"old\"]",
                ),
                (
                    hydrogen,
                    "slug = \"hydrogen\"\nname = \"氢能科技\"\nformerly = [\"old\"]",
                ),
            ],
            "formerly",
            "listed twice",
        ),
        (
            vec![(
                "# Custom feeds:",
                "[[gone]]\npath = \"industry\"\n# Custom feeds:",
            )],
            "path = \"industry\"",
            "gone.path `industry` is a live feed",
        ),
        (
            vec![(
                "# Custom feeds:",
                "[[gone]]\npath = \"category/x\"\n[[gone]]\npath = \"category/x\"\n# Custom feeds:",
            )],
            "path = \"category/x\"",
            "listed twice in [[gone]]",
        ),
    ] {
        let (ok, line, printed) = check_with(&replace, needle);
        assert!(!ok, "{printed}");
        assert!(
            printed.contains(&format!("renamed.toml:{line}:")),
            "{printed}"
        );
        assert!(printed.contains(says), "{printed}");
    }
    // Declared rightly, both are counted.
    let (ok, _, printed) = check_with(
        &[
            (
                hydrogen,
                "slug = \"hydrogen\"\nname = \"氢能科技\"\nformerly = [\"h2\"]",
            ),
            (
                "# Custom feeds:",
                "[[gone]]\npath = \"category/events\"\n# Custom feeds:",
            ),
        ],
        "h2",
    );
    assert!(ok, "{printed}");
    assert!(
        printed.contains("1 former names answered with 301, 1 feeds gone (410)"),
        "{printed}"
    );
}

#[test]
fn a_bad_line_stores_nothing_from_its_file() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("x.db");
    let file = dir.path().join("articles.ndjson");
    let bad = GOOD.to_owned()
        + r#"{"id":"a3","title":"坏的","url":"https://x.example.cn/3","published_at":"明天","categories":["nope"]}"#
        + "\n";
    std::fs::write(&file, bad).unwrap();
    let out = feedcast(&db, &["import", file.to_str().unwrap()]);
    assert!(!out.status.success());
    let err = stderr(&out);
    assert!(err.contains("line 3: published_at"), "{err}");
    assert!(err.contains("unknown category `nope`"), "{err}");
    assert!(err.contains("nothing was imported"), "{err}");

    let feed = feedcast(&db, &["render", "region/320000.rss"]);
    assert!(feed.status.success(), "{}", stderr(&feed));
    let channel = rss::Channel::read_from(&feed.stdout[..]).unwrap();
    assert!(
        channel.items().is_empty(),
        "the good lines were not stored either"
    );
}

#[test]
fn import_then_render_any_feed() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("x.db");
    let mut child = Command::new(BIN)
        .args(["--config", CONFIG, "--database"])
        .arg(format!("sqlite://{}", db.display()))
        .args(["import", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(GOOD.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stdout(&out).contains("imported 2 articles"));

    let feed = feedcast(&db, &["render", "region/320000.atom?limit=1"]);
    assert!(feed.status.success(), "{}", stderr(&feed));
    let atom = atom_syndication::Feed::read_from(&feed.stdout[..]).unwrap();
    assert_eq!(atom.entries().len(), 1);
    assert_eq!(atom.entries()[0].title().as_str(), "苏州新材料产业基地投产");

    let missing = feedcast(&db, &["render", "category/nope.rss"]);
    assert!(!missing.status.success());
    assert!(stderr(&missing).contains("no category `nope`"));
}

/// Starts `serve --demo` on `listen` with a store in `dir`; its address, as its first line of
/// output says, and the two lines after it.
fn serve_demo(dir: &Path, listen: &str) -> (std::process::Child, String, Vec<String>) {
    let mut child = Command::new(BIN)
        .args(["--config", CONFIG, "--database"])
        .arg(format!("sqlite://{}", dir.join("demo.db").display()))
        .args(["serve", "--demo", "--listen", listen])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let first = lines.next().unwrap().unwrap();
    let addr = first
        .strip_prefix("feedcast listening on http://")
        .and_then(|a| a.strip_suffix('/'))
        .unwrap_or_else(|| panic!("unexpected first line {first}"))
        .to_owned();
    let printed: Vec<String> = lines.by_ref().take(2).map(Result::unwrap).collect();
    (child, addr, printed)
}

/// The body of a GET of `url`.
fn get(url: &str) -> String {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async { reqwest::get(url).await.unwrap().text().await.unwrap() })
}

/// Stops a server as an operator would; it must exit cleanly.
fn sigterm(mut child: std::process::Child) {
    let killed = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    let status = child.wait().unwrap();
    assert!(status.success(), "exits cleanly on SIGTERM: {status}");
}

#[test]
fn serve_demo_answers_and_stops_on_sigterm() {
    let dir = tempfile::tempdir().unwrap();
    let (child, addr, printed) = serve_demo(dir.path(), "127.0.0.1:0");
    assert!(printed[0].contains("/feeds/category/"), "{printed:?}");

    let body = get(&format!("http://{addr}/feeds/region/320000.rss"));
    let channel = rss::Channel::read_from(body.as_bytes()).unwrap();
    assert!(!channel.items().is_empty(), "the demo articles are served");
    sigterm(child);
}

/// A server process, killed if the test ends without stopping it (a failed assertion).
struct Running(Option<std::process::Child>);

impl Drop for Running {
    fn drop(&mut self) {
        if let Some(child) = &mut self.0 {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// Each core's edge accepts on its own copy of one listening socket, not on a port shared
/// with SO_REUSEPORT: a second server started on a port in use fails and says which, rather
/// than taking half of the first one's connections.
#[test]
fn a_second_server_on_a_port_in_use_fails_and_the_first_serves_on() {
    let dir = tempfile::tempdir().unwrap();
    let (child, addr, _) = serve_demo(dir.path(), "127.0.0.1:0");
    let mut first = Running(Some(child));
    let other = tempfile::tempdir().unwrap();
    let mut second = Command::new(BIN)
        .args(["--config", CONFIG, "--database"])
        .arg(format!("sqlite://{}", other.path().join("x.db").display()))
        .args(["serve", "--listen", &addr])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Waited for on a thread of its own: a second server that did bind would serve forever.
    let (exited, exit) = std::sync::mpsc::channel();
    let pid = second.id();
    std::thread::spawn(move || {
        let mut said = String::new();
        let _ = std::io::Read::read_to_string(&mut second.stderr.take().unwrap(), &mut said);
        let _ = exited.send((second.wait().unwrap(), said));
    });
    let Ok((status, said)) = exit.recv_timeout(std::time::Duration::from_secs(60)) else {
        let _ = Command::new("kill").arg(pid.to_string()).status();
        panic!("a second server on {addr} started serving");
    };
    assert!(!status.success());
    assert!(said.contains(&format!("listening on {addr}")), "{said}");
    assert!(said.contains("in use"), "{said}");
    // Every connection still reaches the first: each new one is a new accept.
    for _ in 0..20 {
        let body = get(&format!("http://{addr}/feeds/region/320000.rss"));
        assert!(body.contains("<rss"), "{body}");
    }
    sigterm(first.0.take().unwrap());
}

/// Articles `from..to`, one NDJSON line each, all valid.
fn many(from: usize, to: usize) -> Vec<u8> {
    let mut text = String::new();
    for n in from..to {
        text += &format!(
            r#"{{"id":"m{n}","title":"第{n}条","url":"https://www.kechuang.example.cn/news/m{n}.html","published_at":"2024-05-18T09:30:00+08:00","categories":["parks"],"region":"320281"}}"#
        );
        text.push('\n');
    }
    text.into_bytes()
}

#[test]
fn a_file_longer_than_a_batch_is_stored_whole_or_not_at_all() {
    // The import streams a file in batches of 2,000 lines; all-or-none holds across them, and
    // so does the rule that an id may appear once.
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("x.db");
    let file = dir.path().join("articles.ndjson");
    std::fs::write(&file, many(0, 4_500)).unwrap();
    let out = feedcast(&db, &["import", file.to_str().unwrap()]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stdout(&out).contains("imported 4500 articles"),
        "{}",
        stdout(&out)
    );
    let parks = || {
        let out = feedcast(&db, &["render", "category/parks.atom?limit=3"]).stdout;
        let atom = atom_syndication::Feed::read_from(&out[..]).unwrap();
        let ids: Vec<String> = atom.entries().iter().map(|e| e.id().to_owned()).collect();
        ids
    };
    let before = parks();
    assert_eq!(before.len(), 3);

    // Newer articles, but line 4,501 repeats an id and line 4,502 is not UTF-8.
    let mut bad = String::from_utf8(many(10_000, 14_500))
        .unwrap()
        .replace("09:30:00", "10:30:00")
        .into_bytes();
    bad.extend_from_slice(&many(10_007, 10_008)); // the id of line 8 again
    bad.extend_from_slice(b"{\"id\":\"x\xff\"}\n");
    std::fs::write(&file, &bad).unwrap();
    let out = feedcast(&db, &["import", file.to_str().unwrap()]);
    assert!(!out.status.success());
    let err = stderr(&out);
    assert!(
        err.contains("line 4501: id: `m10007` is already at line 8"),
        "{err}"
    );
    assert!(err.contains("line 4502: not UTF-8"), "{err}");
    assert_eq!(
        parks(),
        before,
        "nothing of the failed file's first batches was kept"
    );
}

#[test]
fn import_lists_the_first_hundred_problems_and_counts_the_rest() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("bad.ndjson");
    // Each `{}` lacks four required fields.
    std::fs::write(&file, "{}\n".repeat(300)).unwrap();
    let out = feedcast(
        &dir.path().join("x.db"),
        &["import", file.to_str().unwrap()],
    );
    assert!(!out.status.success());
    let err = stderr(&out);
    assert!(
        err.contains("300 bad line(s); nothing was imported"),
        "{err}"
    );
    assert_eq!(err.matches("  line ").count(), 100, "{err}");
    assert!(
        err.contains("… and 1100 more problems (1200 in all)"),
        "{err}"
    );
}

#[test]
fn serve_refuses_an_admin_token_under_32_bytes() {
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new(BIN)
        .args(["--config", CONFIG, "--database"])
        .arg(format!("sqlite://{}", dir.path().join("x.db").display()))
        .args(["serve", "--listen", "127.0.0.1:0"])
        .env("FEEDCAST_ADMIN_TOKEN", "change-me")
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = stderr(&out);
    assert!(
        err.contains("FEEDCAST_ADMIN_TOKEN") && err.contains("at least 32"),
        "{err}"
    );
}

#[test]
fn check_refuses_an_icon_that_is_not_an_image_it_can_serve() {
    let dir = tempfile::tempdir().unwrap();
    let base = std::fs::read_to_string(CONFIG).unwrap();
    // A path relative to the configuration file, naming an SVG; then one naming nothing.
    std::fs::write(
        dir.path().join("logo.svg"),
        "<svg xmlns=\"http://www.w3.org/2000/svg\"/>",
    )
    .unwrap();
    for (icon, says) in [
        ("logo.svg", "not a PNG, GIF, JPEG, WebP or ICO image"),
        ("missing.png", "cannot open it"),
    ] {
        let config = dir.path().join("feeds.toml");
        let text = base.replacen("[site]\n", &format!("[site]\nicon = \"{icon}\"\n"), 1);
        std::fs::write(&config, &text).unwrap();
        let out = Command::new(BIN)
            .arg("--config")
            .arg(&config)
            .arg("check")
            .output()
            .unwrap();
        assert!(!out.status.success(), "{icon}");
        let err = stderr(&out);
        let line = text.lines().position(|l| l.starts_with("icon =")).unwrap() + 1;
        assert!(
            err.contains(&format!("feeds.toml:{line}:")),
            "{icon}: {err}"
        );
        assert!(
            err.contains("site.icon") && err.contains(says),
            "{icon}: {err}"
        );
    }
}

/// A log queue of no lines, of more than ten million, or of no number is refused before
/// anything starts, naming the flag (and the variable, which goes through the same check).
#[test]
fn a_log_queue_outside_its_bounds_is_refused_naming_the_flag() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("x.db");
    for bad in ["0", "10000001", "-5", "many", "99999999999999999999"] {
        let flag = format!("--log-queue-lines={bad}");
        let out = feedcast(&db, &[&flag, "check"]);
        assert!(!out.status.success(), "{bad} was accepted");
        let err = stderr(&out);
        assert!(err.contains("--log-queue-lines"), "{bad}: {err}");
        let out = Command::new(BIN)
            .args(["--config", CONFIG, "check"])
            .env("FEEDCAST_LOG_QUEUE_LINES", bad)
            .output()
            .unwrap();
        assert!(
            !out.status.success(),
            "FEEDCAST_LOG_QUEUE_LINES={bad} was accepted"
        );
    }
    // The bounds themselves are taken.
    for good in ["1", "10000000"] {
        let out = feedcast(&db, &["--log-queue-lines", good, "check"]);
        assert!(out.status.success(), "{good}: {}", stderr(&out));
    }
    assert!(!db.exists(), "check opens no store");
}
