//! The module graph has no cycles: no module of the crate uses a module that uses it back,
//! and no two submodules of one module use each other. Read from the sources (code lines only:
//! doc links may point anywhere), so a new cycle fails the tests.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

/// Modules and the modules their code names, keyed `top` or `top::sub`.
type Graph = BTreeMap<String, BTreeSet<String>>;

/// Identifiers following `prefix` in `code` (`prefix{a, b::c}` gives `a` and `b`).
fn names_after<'a>(code: &'a str, prefix: &str) -> Vec<&'a str> {
    let mut names = Vec::new();
    for (at, _) in code.match_indices(prefix) {
        let rest = &code[at + prefix.len()..];
        let list = match rest.strip_prefix('{') {
            Some(inner) => &inner[..inner.find('}').unwrap_or(inner.len())],
            None => rest,
        };
        for part in list.split(',') {
            let name: &str = part
                .trim_start()
                .split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                .next()
                .unwrap_or("");
            if !name.is_empty() {
                names.push(name);
            }
            if !rest.starts_with('{') {
                break;
            }
        }
    }
    names
}

fn code_of(path: &Path) -> String {
    std::fs::read_to_string(path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .lines()
        .filter(|l| !l.trim_start().starts_with("//"))
        .collect::<Vec<_>>()
        .join("\n")
}

/// Every `.rs` file under `dir`, with the module it belongs to (`top` or `top::sub`; the files
/// of a deeper module belong to its `top::sub`).
fn files(src: &Path) -> Vec<(String, std::path::PathBuf)> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(src).unwrap().flatten() {
        let path = entry.path();
        let name = path.file_stem().unwrap().to_string_lossy().into_owned();
        if path.is_dir() {
            for sub in std::fs::read_dir(&path).unwrap().flatten() {
                let sub_path = sub.path();
                let sub_name = sub_path.file_stem().unwrap().to_string_lossy().into_owned();
                if sub_path.is_dir() {
                    // A deeper module counts as one submodule: its files, its parts.
                    for file in std::fs::read_dir(&sub_path).unwrap().flatten() {
                        out.push((format!("{name}::{sub_name}"), file.path()));
                    }
                    continue;
                }
                let module = if sub_name == "mod" {
                    name.clone()
                } else {
                    format!("{name}::{sub_name}")
                };
                out.push((module, sub_path));
            }
        } else if name != "lib" {
            out.push((name, path));
        }
    }
    out
}

fn graph(src: &Path) -> Graph {
    let files = files(src);
    let modules: BTreeSet<String> = files.iter().map(|(m, _)| m.clone()).collect();
    let mut graph = Graph::new();
    for (module, path) in &files {
        let code = code_of(path);
        let top = module.split("::").next().unwrap().to_owned();
        let edges = graph.entry(module.clone()).or_default();
        for (at, _) in code.match_indices("crate::") {
            let path: Vec<&str> = code[at + "crate::".len()..]
                .split(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == ':'))
                .next()
                .unwrap_or("")
                .split("::")
                .collect();
            let target = match path.as_slice() {
                [a, b, ..] if modules.contains(&format!("{a}::{b}")) => format!("{a}::{b}"),
                [a, ..] => (*a).to_owned(),
                [] => continue,
            };
            if modules.contains(&target) && target != *module {
                edges.insert(target);
            }
        }
        if module.contains("::") {
            for name in names_after(&code, "super::") {
                let sibling = format!("{top}::{name}");
                if modules.contains(&sibling) && sibling != *module {
                    edges.insert(sibling);
                }
            }
        }
    }
    graph
}

/// A path `from → … → from` if there is one.
fn cycle_through(graph: &Graph, from: &str) -> Option<Vec<String>> {
    fn walk(
        graph: &Graph,
        at: &str,
        goal: &str,
        path: &mut Vec<String>,
        seen: &mut BTreeSet<String>,
    ) -> bool {
        for next in graph.get(at).into_iter().flatten() {
            if next == goal {
                path.push(next.clone());
                return true;
            }
            if seen.insert(next.clone()) {
                path.push(next.clone());
                if walk(graph, next, goal, path, seen) {
                    return true;
                }
                path.pop();
            }
        }
        false
    }
    let mut path = vec![from.to_owned()];
    walk(graph, from, from, &mut path, &mut BTreeSet::new()).then_some(path)
}

/// Top-level modules depend on each other without cycles; submodules of one module depend on
/// their siblings without cycles (a parent naming its own children, `mod` and `pub use`, is
/// structure, not a dependency).
fn cycles(graph: &Graph) -> Vec<Vec<String>> {
    let parent = |m: &str| m.split("::").next().unwrap().to_owned();
    // Top level: fold submodules into their parent, dropping edges inside one module.
    let mut top = Graph::new();
    for (from, to) in graph {
        let entry = top.entry(parent(from)).or_default();
        entry.extend(to.iter().map(|t| parent(t)).filter(|t| *t != parent(from)));
    }
    // Siblings: only edges between two submodules of the same module.
    let mut siblings = Graph::new();
    for (from, to) in graph.iter().filter(|(m, _)| m.contains("::")) {
        siblings.entry(from.clone()).or_default().extend(
            to.iter()
                .filter(|t| t.contains("::") && parent(t) == parent(from))
                .cloned(),
        );
    }
    let mut found = Vec::new();
    for g in [&top, &siblings] {
        for module in g.keys() {
            if let Some(c) = cycle_through(g, module) {
                found.push(c);
            }
        }
    }
    found
}

#[test]
fn no_module_uses_a_module_that_uses_it_back() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let graph = graph(&src);
    assert!(graph.contains_key("projection::read") && graph.contains_key("sync"));
    assert!(
        graph["migrate::bulk"].contains("projection"),
        "the reader sees crate:: paths: {:?}",
        graph["migrate::bulk"]
    );
    let found = cycles(&graph);
    assert!(found.is_empty(), "module cycles: {found:?}");
}

#[test]
fn the_cycle_finder_finds_a_cycle() {
    let mut graph = Graph::new();
    graph.insert("a".into(), ["b".to_owned()].into());
    graph.insert("b".into(), ["c".to_owned()].into());
    graph.insert("c".into(), ["a".to_owned()].into());
    graph.insert("d::x".into(), ["d::y".to_owned()].into());
    graph.insert("d::y".into(), ["d::x".to_owned(), "d".to_owned()].into());
    graph.insert("d".into(), ["d::x".to_owned()].into());
    let found = cycles(&graph);
    assert!(
        found.contains(&vec!["a".into(), "b".into(), "c".into(), "a".into()]),
        "{found:?}"
    );
    assert!(
        found.contains(&vec!["d::x".into(), "d::y".into(), "d::x".into()]),
        "{found:?}"
    );
    assert_eq!(names_after("use super::{a, b::c};", "super::"), ["a", "b"]);
}
