//! The benchmark command at tiny sizes, so it cannot rot: every stage runs (data generation,
//! import into each store, cold builds, wrk against feedcast and nginx, the memory sweep) and
//! prints its figures. The figures themselves are not asserted: speed is measured, not tested.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::path::Path;
use std::process::Command;

#[test]
fn the_benchmark_runs_end_to_end_at_tiny_sizes() {
    let tools = ["wrk", "nginx"];
    if !tools
        .iter()
        .all(|t| common::available("sh", &["-c", &format!("command -v {t}")]))
    {
        return;
    }
    let bin_dir = Path::new(env!("CARGO_BIN_EXE_feedcast")).parent().unwrap();
    let out = Command::new(concat!(env!("CARGO_MANIFEST_DIR"), "/bench/run"))
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
        "hot     plain",
        "hot     gzip",
        "hot     304",
        "memory  sweep",
        "memory  admin POST of 1 MiB, every line bad: HTTP 422",
        "memory  admin POST of 1 MiB, every line valid: HTTP 200",
        "bench: done",
    ] {
        assert!(stdout.contains(stage), "no `{stage}` line:\n{stdout}");
    }
}
