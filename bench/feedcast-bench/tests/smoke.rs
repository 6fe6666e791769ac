//! The benchmark command at tiny sizes, so it cannot rot: every stage runs (data generation,
//! import into each store, cold builds, wrk against feedcast and nginx, the memory sweep) and
//! prints its figures. The figures themselves are not asserted: speed is measured, not tested.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;
use std::process::Command;

/// Whether a tool the benchmark drives is installed. Outside CI a missing one skips the test
/// with a message; in CI (`CI` set) it fails it, since `.ci/run` installs every one.
fn available(program: &str, args: &[&str]) -> bool {
    let ok = Command::new(program)
        .args(args)
        .output()
        .is_ok_and(|o| o.status.success());
    if !ok {
        assert!(
            std::env::var_os("CI").is_none(),
            "{program} {args:?} is required in CI: .ci/run installs it"
        );
        eprintln!("SKIPPED: {program} {args:?} is not available here");
    }
    ok
}

#[test]
fn the_benchmark_runs_end_to_end_at_tiny_sizes() {
    let tools = ["wrk", "nginx"];
    if !tools
        .iter()
        .all(|t| available("sh", &["-c", &format!("command -v {t}")]))
        || !available(
            "test",
            &[
                "-f",
                "/usr/lib/nginx/modules/ngx_http_brotli_static_module.so",
            ],
        )
    {
        return;
    }
    // The service's binary stands beside this crate's in the workspace's target folder: `cargo
    // test` at the root builds both.
    let bin_dir = Path::new(env!("CARGO_BIN_EXE_feedcast-bench"))
        .parent()
        .unwrap();
    assert!(
        bin_dir.join("feedcast").exists(),
        "no feedcast binary in {}: run `cargo test` at the workspace root",
        bin_dir.display()
    );
    let out = Command::new(concat!(env!("CARGO_MANIFEST_DIR"), "/../run"))
        .arg("--smoke")
        .env("BIN_DIR", bin_dir)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "bench/run --smoke failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for stage in [
        "import  sqlite",
        "cold    sqlite",
        "hot     big logs off identity",
        "hot     big logs off brotli",
        "hot     demo logs on gzip",
        "hot     demo logs on 304",
        "memory  sweep",
        "memory  admin POST of 1 MiB, every line bad: HTTP 422",
        "memory  admin POST of 1 MiB, every line valid: HTTP 200",
        "hub     sqlite: hub subscribers=200",
        "bench: done",
    ] {
        assert!(stdout.contains(stage), "no `{stage}` line:\n{stdout}");
    }
}
