//! The layering rule, checked: each top-level module uses only modules of
//! lower layers (ARCHITECTURE.md, "Layers"). A `crate::` path in a module's
//! code (comments aside) is a use. Two modules of one layer may not use
//! each other: the proxy and the shim's API know nothing of one another.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

/// Each top-level module and its layer, lowest first.
const LAYERS: &[(&str, u8)] = &[
    ("config", 1),
    ("route", 1),
    ("body", 1),
    ("metrics", 1),
    ("standards", 2),
    ("docker", 3),
    ("lifecycle", 4),
    ("audit", 4),
    ("error", 5),
    ("proxy", 6),
    ("api", 6),
    ("server", 7),
    ("cli", 8),
    ("install", 8),
];

fn layer(module: &str) -> Option<u8> {
    LAYERS.iter().find(|(name, _)| *name == module).map(|(_, layer)| *layer)
}

/// The top-level modules named by `crate::` paths in `code`.
fn crate_uses(code: &str) -> BTreeSet<String> {
    let mut uses = BTreeSet::new();
    for line in code.lines() {
        let line = match line.find("//") {
            Some(comment) => &line[..comment],
            None => line,
        };
        let mut rest = line;
        while let Some(at) = rest.find("crate::") {
            let before = rest[..at].chars().next_back();
            rest = &rest[at + "crate::".len()..];
            if before.is_some_and(|c| c.is_alphanumeric() || c == '_') {
                continue;
            }
            if let Some(group) = rest.strip_prefix('{') {
                // `crate::{a, b::{c, d}}`: the names at the group's first level.
                let mut depth = 1;
                let mut start_of_name = true;
                let mut name = String::new();
                for c in group.chars() {
                    match c {
                        '{' => depth += 1,
                        '}' => depth -= 1,
                        ',' if depth == 1 => start_of_name = true,
                        _ => {}
                    }
                    if depth == 0 {
                        break;
                    }
                    if depth == 1 && start_of_name {
                        if c.is_alphanumeric() || c == '_' {
                            name.push(c);
                        } else if !name.is_empty() {
                            uses.insert(std::mem::take(&mut name));
                            start_of_name = false;
                        }
                    }
                }
                if !name.is_empty() {
                    uses.insert(name);
                }
            } else {
                let name: String = rest.chars().take_while(|c| c.is_alphanumeric() || *c == '_').collect();
                uses.insert(name);
            }
        }
    }
    uses
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

#[test]
fn the_crate_s_uses_are_picked_out_of_its_code() {
    let code = "use crate::config::{A, B};\nuse crate::{body::X, route::{Y, Z}};\n\
                // crate::server in a comment\nlet x = crate::metrics::Metrics::new(); mycrate::nope";
    let uses: Vec<String> = crate_uses(code).into_iter().collect();
    assert_eq!(uses, ["body", "config", "metrics", "route"]);
}

#[test]
fn every_module_uses_only_lower_layers() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    let mut breaks = Vec::new();
    let mut seen = BTreeSet::new();
    for file in files {
        let relative = file.strip_prefix(&src).unwrap();
        let top = relative.components().next().unwrap().as_os_str().to_string_lossy();
        let module = top.trim_end_matches(".rs").to_string();
        if matches!(module.as_str(), "lib" | "main" | "layering" | "fuzz") {
            continue;
        }
        let Some(own) = layer(&module) else {
            breaks.push(format!("{module}: a top-level module missing from LAYERS"));
            continue;
        };
        seen.insert(module.clone());
        let code = std::fs::read_to_string(&file).unwrap();
        for used in crate_uses(&code) {
            let Some(theirs) = layer(&used) else { continue };
            if used != module && theirs >= own {
                breaks.push(format!(
                    "{}: {module} (layer {own}) uses {used} (layer {theirs})",
                    relative.display()
                ));
            }
        }
    }
    assert!(breaks.is_empty(), "layering broken:\n{}", breaks.join("\n"));
    assert_eq!(seen.len(), LAYERS.len(), "LAYERS names a module that is gone: {seen:?}");
}
