//! The house plan, checked: every file of `src/` imports only from layers below its own (see
//! ARCHITECTURE.md), and no files of one module import each other in a circle.
//!
//! The check reads the source text: every `crate::…` and `super::…` path outside comments and
//! test modules is resolved to the longest module it names. A child may use its own parent's
//! items (`super::Type` from `queue/sql.rs`), which is not counted as a cycle; siblings and
//! everything else are.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// Top-level modules by layer, lowest first. A module may import from lower layers only.
const LAYERS: &[(&str, &[&str])] = &[
    ("model", &["model"]),
    ("notifications", &["events"]),
    (
        "seams",
        &[
            "storage", "convert", "outbound", "secrets", "metrics", "client",
        ],
    ),
    ("database", &["queue"]),
    ("work", &["jobs", "sweeper"]),
    ("pages", &["pages", "board"]),
    ("http", &["api"]),
    ("process", &["settings", "telemetry", "shutdown"]),
    ("wiring", &["app"]),
    ("entry", &["cli", "main", "lib"]),
];

fn layer_of(module: &str) -> usize {
    let top = module.split("::").next().unwrap_or(module);
    LAYERS
        .iter()
        .position(|(_, members)| members.contains(&top))
        .unwrap_or_else(|| {
            panic!("module {top} has no layer: add it to LAYERS here and to ARCHITECTURE.md")
        })
}

fn src() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("src")
}

/// `src/queue/sql.rs` → `queue::sql`; `src/queue/mod.rs` → `queue`.
fn module_of(file: &Path) -> String {
    let rel = file.strip_prefix(src()).unwrap().with_extension("");
    let parts: Vec<String> = rel
        .components()
        .map(|c| c.as_os_str().to_string_lossy().into_owned())
        .filter(|p| p != "mod")
        .collect();
    parts.join("::")
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap().flatten() {
        let path = entry.path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// The source without comments, string literals and `#[cfg(test)]` modules.
fn code_of(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let bytes = text.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        let rest = &text[i..];
        if rest.starts_with("//") {
            i += rest.find('\n').unwrap_or(rest.len());
        } else if rest.starts_with("/*") {
            i += rest.find("*/").map_or(rest.len(), |e| e + 2);
        } else if let Some(raw) = rest.strip_prefix("r#\"") {
            i += 3 + raw.find("\"#").map_or(raw.len(), |e| e + 2);
        } else if rest.starts_with('"') {
            let mut j = 1;
            while j < rest.len() && rest.as_bytes()[j] != b'"' {
                j += if rest.as_bytes()[j] == b'\\' { 2 } else { 1 };
            }
            i += j + 1;
        } else if rest.starts_with("#[cfg(test)]") {
            // Skip the item that follows: up to its matching closing brace (or `;`).
            let mut depth = 0usize;
            let mut j = 0;
            for (k, b) in rest.bytes().enumerate() {
                match b {
                    b'{' => depth += 1,
                    b'}' => {
                        depth -= 1;
                        if depth == 0 {
                            j = k + 1;
                            break;
                        }
                    }
                    b';' if depth == 0 && k > "#[cfg(test)]".len() => {
                        j = k + 1;
                        break;
                    }
                    _ => {}
                }
            }
            i += j.max(1);
        } else {
            let c = rest.chars().next().unwrap();
            out.push(c);
            i += c.len_utf8();
        }
    }
    out
}

/// Paths after `crate::`/`$crate::`/`super::` in `code`, expanded over `{a, b::c}` groups,
/// as module paths relative to the crate root.
fn referenced_paths(code: &str, module: &str) -> Vec<String> {
    let ident = |c: char| c.is_ascii_alphanumeric() || c == '_';
    let mut paths = Vec::new();
    let mut i = 0;
    let chars: Vec<char> = code.chars().collect();
    while i < chars.len() {
        let start_ok = i == 0 || !(ident(chars[i - 1]) || chars[i - 1] == ':');
        let word: String = chars[i..].iter().take_while(|c| ident(**c)).collect();
        if !start_ok || (word != "crate" && word != "super") {
            i += word.len().max(1);
            continue;
        }
        // The base this path starts from.
        let mut base: Vec<String> = if word == "crate" {
            Vec::new()
        } else {
            // `super` of `jobs/runner.rs` is `jobs`; of `jobs/mod.rs`, the crate root.
            let mut m: Vec<String> = module.split("::").map(String::from).collect();
            m.pop();
            m
        };
        i += word.len();
        let mut segments: Vec<String> = Vec::new();
        loop {
            if chars.get(i) == Some(&':') && chars.get(i + 1) == Some(&':') {
                i += 2;
            } else {
                break;
            }
            if chars.get(i) == Some(&'{') {
                let close = (i..chars.len())
                    .find(|&k| chars[k] == '}')
                    .unwrap_or(chars.len());
                let group: String = chars[i + 1..close].iter().collect();
                for item in group.split(',') {
                    let item = item.trim().split(' ').next().unwrap_or("");
                    if !item.is_empty() {
                        let mut p = base.clone();
                        p.extend(segments.iter().cloned());
                        p.extend(item.split("::").map(String::from));
                        paths.push(p.join("::"));
                    }
                }
                i = close;
                segments.clear();
                break;
            }
            let seg: String = chars[i..].iter().take_while(|c| ident(**c)).collect();
            if seg.is_empty() {
                break;
            }
            i += seg.len();
            if seg == "super" && segments.is_empty() {
                base.pop();
            } else {
                segments.push(seg);
            }
        }
        if !segments.is_empty() {
            let mut p = base.clone();
            p.extend(segments);
            paths.push(p.join("::"));
        }
    }
    paths
}

struct Graph {
    /// file module → modules it references (resolved to existing modules).
    edges: BTreeMap<String, BTreeSet<String>>,
}

fn graph() -> Graph {
    let mut files = Vec::new();
    rust_files(&src(), &mut files);
    let modules: BTreeSet<String> = files.iter().map(|f| module_of(f)).collect();
    let resolve = |path: &str| -> Option<String> {
        let parts: Vec<&str> = path.split("::").collect();
        (1..=parts.len())
            .rev()
            .map(|n| parts[..n].join("::"))
            .find(|m| modules.contains(m))
    };
    let mut edges = BTreeMap::new();
    for file in &files {
        let module = module_of(file);
        let code = code_of(&std::fs::read_to_string(file).unwrap());
        let targets: BTreeSet<String> = referenced_paths(&code, &module)
            .iter()
            .filter_map(|p| resolve(p))
            .filter(|t| *t != module)
            .collect();
        edges.insert(module, targets);
    }
    Graph { edges }
}

fn top(module: &str) -> &str {
    module.split("::").next().unwrap_or(module)
}

/// `child` is `parent` itself or below it.
fn within(child: &str, parent: &str) -> bool {
    child == parent || child.starts_with(&format!("{parent}::"))
}

#[test]
fn no_module_imports_from_a_layer_above_its_own() {
    let graph = graph();
    let mut upward = Vec::new();
    for module in graph.edges.keys() {
        layer_of(module);
    }
    for (from, targets) in &graph.edges {
        for to in targets {
            if top(from) != top(to) && layer_of(to) >= layer_of(from) && top(from) != "lib" {
                upward.push(format!(
                    "{from} ({}) -> {to} ({})",
                    LAYERS[layer_of(from)].0,
                    LAYERS[layer_of(to)].0
                ));
            }
        }
    }
    let arrows: usize = graph.edges.values().map(BTreeSet::len).sum();
    eprintln!("{arrows} import arrows between files of src/");
    assert!(upward.is_empty(), "imports against the layers: {upward:#?}");
}

#[test]
fn the_files_of_a_module_do_not_import_each_other_in_a_circle() {
    let graph = graph();
    // A child using its own ancestor's items is not an edge of the check.
    let edges: BTreeMap<&str, Vec<&str>> = graph
        .edges
        .iter()
        .map(|(from, targets)| {
            let kept = targets
                .iter()
                .filter(|to| !within(from, to))
                .map(String::as_str)
                .collect();
            (from.as_str(), kept)
        })
        .collect();
    let mut done = BTreeSet::new();
    for start in edges.keys() {
        let mut path = Vec::new();
        if let Some(cycle) = find_cycle(start, &edges, &mut path, &mut done) {
            panic!("import cycle: {}", cycle.join(" -> "));
        }
    }
}

fn find_cycle<'a>(
    at: &'a str,
    edges: &BTreeMap<&'a str, Vec<&'a str>>,
    path: &mut Vec<&'a str>,
    done: &mut BTreeSet<&'a str>,
) -> Option<Vec<String>> {
    if let Some(pos) = path.iter().position(|p| *p == at) {
        let mut cycle: Vec<String> = path[pos..].iter().map(|s| s.to_string()).collect();
        cycle.push(at.to_string());
        return Some(cycle);
    }
    if done.contains(at) {
        return None;
    }
    path.push(at);
    for next in edges.get(at).into_iter().flatten() {
        if let Some(cycle) = find_cycle(next, edges, path, done) {
            return Some(cycle);
        }
    }
    path.pop();
    done.insert(at);
    None
}

#[test]
fn the_check_sees_imports() {
    let code = code_of(
        "use crate::queue::{Queue, sql::GET};\n// crate::api::x\nfn f() { super::Thing; let s = \"crate::pages\"; }\n#[cfg(test)]\nmod tests { use crate::app; }",
    );
    let paths = referenced_paths(&code, "jobs::runner");
    assert_eq!(paths, ["queue::Queue", "queue::sql::GET", "jobs::Thing"]);
    let graph = graph();
    assert!(
        graph.edges.values().map(BTreeSet::len).sum::<usize>() > 20,
        "the graph of src/ has edges"
    );
}
