//! The layers only point down: every `crate::` path in `src/` names a module listed before
//! its own in the "Layout" section of `src/lib.rs` (or a constant of the crate root). An
//! acyclic graph could still point up; this holds the order the Layout promises.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};

const SRC: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/src");

/// The modules of the Layout section, lowest first.
fn layers() -> Vec<String> {
    let lib = std::fs::read_to_string(Path::new(SRC).join("lib.rs")).expect("src/lib.rs");
    let layout = lib
        .split("//! # Layout")
        .nth(1)
        .expect("a Layout section in src/lib.rs");
    layout
        .lines()
        .skip(1)
        .take_while(|l| l.starts_with("//!"))
        .filter_map(|l| l.strip_prefix("//! - [`"))
        .filter_map(|l| l.split_once('`').map(|(name, _)| name.to_owned()))
        .collect()
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).expect("a readable src/") {
        let path = entry.expect("a directory entry").path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// The first identifier of `text`.
fn ident(text: &str) -> &str {
    let text = text.trim_start();
    let end = text
        .find(|c: char| !(c.is_alphanumeric() || c == '_'))
        .unwrap_or(text.len());
    &text[..end]
}

/// The `crate::name` paths of a line: the first segment after each `crate::`, and each first
/// segment of a group (`crate::{a, b::c}`).
fn crate_paths(line: &str) -> Vec<&str> {
    line.match_indices("crate::")
        .filter(|(i, _)| {
            // `crate::` itself, not the end of another word (`my_crate::`).
            !line[..*i]
                .chars()
                .next_back()
                .is_some_and(|c| c.is_alphanumeric() || c == '_')
        })
        .flat_map(|(i, m)| {
            let rest = &line[i + m.len()..];
            match rest.strip_prefix('{') {
                Some(group) => group
                    .split('}')
                    .next()
                    .unwrap_or_default()
                    .split(',')
                    .map(ident)
                    .collect(),
                None => vec![ident(rest)],
            }
        })
        .filter(|name| !name.is_empty() && *name != "self")
        .collect()
}

#[test]
fn every_module_names_only_modules_below_it() {
    let layers = layers();
    assert!(
        layers.len() >= 10,
        "the Layout lists the modules: {layers:?}"
    );
    let rank = |name: &str| layers.iter().position(|l| l == name);
    let mut files = Vec::new();
    rust_files(Path::new(SRC), &mut files);
    let mut wrong = Vec::new();
    for file in &files {
        let relative = file.strip_prefix(SRC).unwrap_or(file);
        let first = relative
            .components()
            .next()
            .and_then(|c| c.as_os_str().to_str())
            .unwrap_or_default();
        // The binaries stand above the library; the crate root holds the module list.
        if matches!(first, "main.rs" | "bin" | "lib.rs") {
            continue;
        }
        let own = first.trim_end_matches(".rs");
        let Some(own_rank) = rank(own) else {
            wrong.push(format!(
                "src/{}: module `{own}` is not in the Layout of src/lib.rs",
                relative.display()
            ));
            continue;
        };
        let text = std::fs::read_to_string(file).expect("a readable source file");
        for (n, line) in text.lines().enumerate() {
            for name in crate_paths(line) {
                // Constants and types of the crate root (GENERATOR, DEMO_ARTICLES) are for all.
                if name.chars().next().is_some_and(char::is_uppercase) {
                    continue;
                }
                match rank(name) {
                    Some(r) if r <= own_rank => {}
                    Some(_) => wrong.push(format!(
                        "src/{}:{}: `{own}` names `crate::{name}`, which stands above it",
                        relative.display(),
                        n + 1
                    )),
                    None => wrong.push(format!(
                        "src/{}:{}: `crate::{name}` is not a module of the Layout",
                        relative.display(),
                        n + 1
                    )),
                }
            }
        }
    }
    assert!(
        wrong.is_empty(),
        "layers pointing up:\n{}",
        wrong.join("\n")
    );
}

#[test]
fn the_layer_check_sees_what_it_must() {
    assert_eq!(crate_paths("use crate::store::{Store, Window};"), ["store"]);
    assert_eq!(
        crate_paths("/// see [`crate::import::stored`] and crate::GENERATOR"),
        ["import", "GENERATOR"]
    );
    assert!(crate_paths("use my_crate::x;").is_empty());
    assert_eq!(
        crate_paths("use crate::{store::Store, model, GENERATOR};"),
        ["store", "model", "GENERATOR"]
    );
}
