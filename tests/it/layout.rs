//! The module graph, derived from the sources: every `crate::…` path from one top-level module
//! of `src/` into another is an edge. There must be no cycle, and every edge must point down
//! the stages (README "How the code is laid out"): a stage uses only the stages before it.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

/// The stages, lowest first: leaves, then the config, the network, discovery, probing, what a
/// round means, the history and metrics, the outputs (alerts, vantages), the scheduler that
/// runs it all, the web app, the command line, and what the tests reach inside for.
const STAGES: &[&str] = &[
    "text",
    "numbers",
    "timestamp",
    "error",
    "status",
    "server_name",
    "signing",
    "i18n",
    "config",
    "net",
    "discovery",
    "probe",
    "report",
    "services",
    "history",
    "metrics",
    "sources",
    "maintenance",
    "alert",
    "monthly",
    "vantage",
    "scheduler",
    "commands",
    "web",
    "cli",
    "testing",
];

/// The top-level modules (files and folders of `src/`, without `lib` and `main`).
fn modules(src: &Path) -> BTreeSet<String> {
    std::fs::read_dir(src)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter_map(|p| {
            let name = p.file_stem()?.to_str()?.to_owned();
            (p.is_dir() || p.extension().is_some_and(|e| e == "rs")).then_some(name)
        })
        .filter(|n| n != "lib" && n != "main")
        .collect()
}

/// A file's code without its tests (`#[cfg(test)] mod tests` closes each file here) and
/// without comments.
fn code(text: &str) -> String {
    let text = match text.find("#[cfg(test)]\nmod tests") {
        Some(i) => &text[..i],
        None => text,
    };
    text.lines()
        .map(|l| match l.find("//") {
            // A `//` inside a string ("https://…") is not a comment.
            Some(i) if l[..i].matches('"').count() % 2 == 0 => &l[..i],
            _ => l,
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// The top-level modules a piece of code names: `crate::a::…` and every head of
/// `crate::{a::…, b, c::{…}}`.
fn named(code: &str) -> BTreeSet<String> {
    let ident = |s: &str| -> String {
        s.chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
            .collect()
    };
    let mut out = BTreeSet::new();
    let mut rest = code;
    while let Some(i) = rest.find("crate::") {
        rest = &rest[i + "crate::".len()..];
        if let Some(group) = rest.strip_prefix('{') {
            // Heads at depth 1: after the opening brace and after each comma at that depth.
            let mut depth = 1;
            let mut head = true;
            for (j, c) in group.char_indices() {
                match c {
                    '{' => depth += 1,
                    '}' => {
                        depth -= 1;
                        if depth == 0 {
                            break;
                        }
                    }
                    ',' if depth == 1 => head = true,
                    c if head && (c.is_ascii_alphabetic() || c == '_') => {
                        out.insert(ident(&group[j..]));
                        head = false;
                    }
                    _ => {}
                }
            }
        } else {
            out.insert(ident(rest));
        }
    }
    out
}

/// Every edge `from → to` between top-level modules, with a file that makes it.
fn edges(src: &Path, modules: &BTreeSet<String>) -> BTreeMap<(String, String), String> {
    let mut out = BTreeMap::new();
    let mut stack = vec![src.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                stack.push(path);
                continue;
            }
            if path.extension().is_none_or(|e| e != "rs") {
                continue;
            }
            let rel = path.strip_prefix(src).unwrap();
            let first = rel
                .components()
                .next()
                .unwrap()
                .as_os_str()
                .to_str()
                .unwrap();
            let from = first.trim_end_matches(".rs").to_owned();
            if !modules.contains(&from) {
                continue;
            }
            let text = std::fs::read_to_string(&path).unwrap();
            for to in named(&code(&text)) {
                if to != from && modules.contains(&to) {
                    out.entry((from.clone(), to))
                        .or_insert_with(|| rel.display().to_string());
                }
            }
        }
    }
    out
}

/// A cycle of the graph, if it has one.
fn cycle(edges: &BTreeMap<(String, String), String>) -> Option<Vec<String>> {
    let mut next: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    for (from, to) in edges.keys() {
        next.entry(from).or_default().push(to);
    }
    // 0: not seen, 1: on the path, 2: done.
    fn visit<'a>(
        node: &'a str,
        next: &BTreeMap<&'a str, Vec<&'a str>>,
        state: &mut BTreeMap<&'a str, u8>,
        path: &mut Vec<&'a str>,
    ) -> Option<Vec<String>> {
        state.insert(node, 1);
        path.push(node);
        for &to in next.get(node).into_iter().flatten() {
            match state.get(to).copied().unwrap_or(0) {
                1 => {
                    let start = path.iter().position(|n| *n == to).unwrap();
                    let mut c: Vec<String> = path[start..].iter().map(|s| s.to_string()).collect();
                    c.push(to.to_owned());
                    return Some(c);
                }
                0 => {
                    if let Some(c) = visit(to, next, state, path) {
                        return Some(c);
                    }
                }
                _ => {}
            }
        }
        path.pop();
        state.insert(node, 2);
        None
    }
    let mut state = BTreeMap::new();
    let nodes: Vec<&str> = next.keys().copied().collect();
    for node in nodes {
        if state.get(node).copied().unwrap_or(0) == 0
            && let Some(c) = visit(node, &next, &mut state, &mut Vec::new())
        {
            return Some(c);
        }
    }
    None
}

#[test]
fn the_module_graph_has_no_cycle_and_every_edge_points_down_the_stages() {
    let src = Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/src"));
    let modules = modules(src);
    let unplaced: Vec<&String> = modules
        .iter()
        .filter(|m| !STAGES.contains(&m.as_str()))
        .collect();
    assert!(
        unplaced.is_empty(),
        "place these modules in STAGES (tests/it/layout.rs) and the README: {unplaced:?}"
    );
    let edges = edges(src, &modules);
    // The graph is what the code says: a few edges every reader relies on are found.
    for (from, to) in [
        ("scheduler", "alert"),
        ("web", "scheduler"),
        ("discovery", "net"),
    ] {
        assert!(
            edges.contains_key(&(from.to_owned(), to.to_owned())),
            "{from} → {to} not found: the reader of the sources is broken"
        );
    }
    if let Some(c) = cycle(&edges) {
        panic!("import cycle: {}", c.join(" → "));
    }
    let rank = |m: &str| STAGES.iter().position(|s| *s == m).unwrap();
    let up: Vec<String> = edges
        .iter()
        .filter(|((from, to), _)| rank(to) > rank(from))
        .map(|((from, to), file)| format!("{from} → {to} (src/{file})"))
        .collect();
    assert!(
        up.is_empty(),
        "edges pointing up the stages:\n{}",
        up.join("\n")
    );
}

#[test]
fn the_reader_finds_grouped_and_nested_paths_and_skips_comments_and_tests() {
    let code = code(
        "use crate::a::B;\nuse crate::{c::D, e, f::{g, h}};\n// crate::commented\n\
         let u = \"https://x\"; crate::i::j();\n#[cfg(test)]\nmod tests { use crate::tested; }",
    );
    let found: Vec<String> = named(&code).into_iter().collect();
    assert_eq!(found, ["a", "c", "e", "f", "i"]);
    let mut edges = BTreeMap::new();
    for (a, b) in [("x", "y"), ("y", "z"), ("z", "x")] {
        edges.insert((a.to_owned(), b.to_owned()), String::new());
    }
    assert_eq!(cycle(&edges).unwrap(), ["x", "y", "z", "x"]);
    edges.remove(&("z".to_owned(), "x".to_owned()));
    assert_eq!(cycle(&edges), None);
}
