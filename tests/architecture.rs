//! The crate's shape, checked: stages import only from stages below them, and no two modules
//! import each other (directly or through others). The stage order is the one `src/lib.rs` and
//! `docs/ARCHITECTURE.md` describe.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// Top-level modules, lowest stage first. Modules of one stage may not import each other.
/// `testing` (in `src/lib.rs`, unit tests only) imports nothing and serves every stage's tests.
const STAGES: &[&[&str]] = &[
    &["testing"],
    &["error", "suggest"],
    &["git"],
    &["config"],
    &["validate"],
    &["manifest"],
    &["server", "trigger"],
    &["runner"],
    &["demo"],
    &["cli"],
];

fn stage_of(top: &str) -> Option<usize> {
    STAGES.iter().position(|s| s.contains(&top))
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for e in std::fs::read_dir(dir).expect("read src") {
        let p = e.expect("entry").path();
        if p.is_dir() {
            rust_files(&p, out);
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push(p);
        }
    }
}

/// `src/validate/check.rs` → `["validate", "check"]`; `mod.rs` names its folder.
fn module_path(src: &Path, file: &Path) -> Vec<String> {
    let rel = file.strip_prefix(src).expect("under src");
    let mut parts: Vec<String> = rel
        .iter()
        .map(|c| c.to_string_lossy().trim_end_matches(".rs").to_string())
        .collect();
    if parts
        .last()
        .is_some_and(|l| l == "mod" || l == "lib" || l == "main")
    {
        parts.pop();
    }
    parts
}

/// The modules a file names: `crate::a::b...` and `super::x` (resolved), down to two levels.
fn references(module: &[String], text: &str) -> BTreeSet<Vec<String>> {
    let mut out = BTreeSet::new();
    let code: String = text
        .lines()
        .filter(|l| !l.trim_start().starts_with("//"))
        .collect::<Vec<_>>()
        .join("\n");
    // The module path at the start of `s`: identifiers joined by `::`, lowercase (modules, not
    // types), at most three; a macro (`crate::outln!`) names no module.
    let ident = |s: &str| -> Vec<String> {
        let mut out = Vec::new();
        let mut rest = s;
        while out.len() < 3 {
            let name: String = rest
                .chars()
                .take_while(|c| c.is_alphanumeric() || *c == '_')
                .collect();
            if name.is_empty()
                || !name
                    .chars()
                    .all(|c| c.is_lowercase() || c == '_' || c.is_ascii_digit())
            {
                break;
            }
            let after = &rest[name.len()..];
            if after.starts_with('!') {
                break;
            }
            out.push(name);
            match after.strip_prefix("::") {
                Some(r) => rest = r,
                None => break,
            }
        }
        out
    };
    for (i, _) in code.match_indices("crate::") {
        let path = ident(&code[i + "crate::".len()..]);
        if !path.is_empty() {
            out.insert(path);
        }
    }
    for (i, _) in code.match_indices("super::") {
        // A file's own `mod tests` uses `super::*`: that is the file itself.
        let rest = &code[i + "super::".len()..];
        if rest.starts_with('*') || rest.starts_with('{') {
            continue;
        }
        let mut base: Vec<String> = module.to_vec();
        base.pop();
        base.extend(ident(rest));
        base.truncate(3);
        out.insert(base);
    }
    out
}

#[test]
fn stages_import_only_downwards_and_modules_form_no_cycle() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    let mut graph: BTreeMap<Vec<String>, BTreeSet<Vec<String>>> = BTreeMap::new();
    let mut problems = Vec::new();
    for file in &files {
        let module = module_path(&src, file);
        if module.is_empty() || module[0] == "bin" {
            continue; // lib.rs, main.rs and the binaries in bin/ may name every stage
        }
        let text = std::fs::read_to_string(file).expect("read");
        let Some(own) = stage_of(&module[0]) else {
            problems.push(format!(
                "{}: `{}` is in no stage",
                file.display(),
                module[0]
            ));
            continue;
        };
        let key: Vec<String> = module.iter().take(3).cloned().collect();
        for r in references(&module, &text) {
            if r[0] != module[0] {
                match stage_of(&r[0]) {
                    Some(s) if s < own => {}
                    _ => problems.push(format!(
                        "{}: `{}` imports `{}`, which is not below it",
                        file.display(),
                        module.join("::"),
                        r.join("::")
                    )),
                }
            }
            if r != key && !key.starts_with(&r) && !r.starts_with(&key) {
                graph.entry(key.clone()).or_default().insert(r);
            }
        }
    }
    // Cycles between modules (down to the third level: `trigger::fetch::error` ↔ `trigger::fetch::upload_archive`).
    fn reach(
        g: &BTreeMap<Vec<String>, BTreeSet<Vec<String>>>,
        from: &Vec<String>,
        target: &Vec<String>,
        seen: &mut BTreeSet<Vec<String>>,
    ) -> bool {
        for next in g.get(from).into_iter().flatten() {
            if next == target {
                return true;
            }
            if seen.insert(next.clone()) && reach(g, next, target, seen) {
                return true;
            }
        }
        false
    }
    for m in graph.keys() {
        if reach(&graph, m, m, &mut BTreeSet::new()) {
            problems.push(format!("`{}` is part of an import cycle", m.join("::")));
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

/// `taskhook-hook` starts the hooks and nothing else: naming the command line (and with it the
/// parser, the bus service and its runtime) would link all of that back in.
#[test]
fn the_hooks_binary_uses_only_what_the_hooks_need() {
    let file = Path::new(env!("CARGO_MANIFEST_DIR")).join("src/bin/taskhook-hook.rs");
    let text = std::fs::read_to_string(&file).expect("read");
    let mut used = BTreeSet::new();
    for (i, _) in text.match_indices("taskhook::") {
        let name: String = text[i + "taskhook::".len()..]
            .chars()
            .take_while(|c| c.is_alphanumeric() || *c == '_')
            .collect();
        used.insert(name);
    }
    let allowed: BTreeSet<String> = ["error", "server"].map(String::from).into();
    assert!(
        used.is_subset(&allowed),
        "taskhook-hook uses {used:?}; only {allowed:?} keep it lean"
    );
}

/// lapin reaches TLS through tcp-stream, whose `rustls` feature pulls in a PKCS#12 parser and
/// about forty crates under it (X.509, CMS, ASN.1, big integers, legacy ciphers): a sixth of the
/// release build's CPU time, for a format taskhook never reads (its client identity is PEM).
/// The patched copy in vendor/tcp-stream leaves them out; this fails if a lapin update or a
/// feature brings them back, or if the patch stops applying.
#[test]
fn the_bus_service_builds_no_pkcs12_parser() {
    let lock = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("Cargo.lock"))
        .expect("read Cargo.lock");
    let packages: Vec<&str> = lock.split("[[package]]").skip(1).collect();
    let named = |name: &str| {
        packages
            .iter()
            .find(|p| p.contains(&format!("\nname = \"{name}\"\n")))
            .copied()
    };
    for unwanted in ["p12-keystore", "x509-parser", "cms"] {
        assert!(
            named(unwanted).is_none(),
            "Cargo.lock has {unwanted}: see vendor/tcp-stream/TASKHOOK.md"
        );
    }
    let tcp_stream = named("tcp-stream").expect("lapin's transport is in Cargo.lock");
    assert!(
        !tcp_stream.contains("source = "),
        "tcp-stream comes from a registry, not vendor/tcp-stream (the patch no longer applies?):\n{tcp_stream}"
    );
}
