//! The schedule manifest: what each branch's tasks are and when they run. Pure data and its
//! deterministic JSON bytes (sorted keys, no timestamps); storing it is [`crate::manifest::store`]'s job.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::config::{hex, Config};
use crate::validate::check::{RawTask, Report, TaskReport};
use crate::validate::diag::Diagnostic;

/// Bumped when the layout changes incompatibly; readers refuse versions they do not know.
/// Version 2 renamed the tasks' `on` to `item_types`; readers still accept version 1 (its `on`
/// is read as `item_types`), and `manifest rebuild` rewrites it as version 2.
pub const SCHEMA_VERSION: u32 = 2;

/// The oldest version readers accept.
pub const OLDEST_SCHEMA_VERSION: u32 = 1;

/// One task as scheduled on one branch.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Task {
    pub arches: Vec<String>,
    pub branches: Vec<String>,
    pub desc: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub diagnostics: Vec<Diagnostic>,
    pub formula: String,
    pub formula_sha256: Option<String>,
    /// The item types that trigger the task (`on` in schema version 1).
    #[serde(alias = "on")]
    pub item_types: Vec<String>,
    pub maintainer: Option<String>,
    pub name: Option<String>,
    pub namespace: Option<String>,
    pub path: String,
    pub run: bool,
    pub tree: Option<String>,
    pub valid: bool,
}

/// `branches/<branch>.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Branch {
    pub branch: String,
    pub commit: String,
    pub policy: String,
    /// Findings that belong to no single task (misnamed formulas, limits).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub problems: Vec<Diagnostic>,
    pub schema: u32,
    pub tasks: Vec<Task>,
    /// Fingerprint of the rules that produced this manifest (see `Config::fingerprint`).
    pub validator: String,
}

/// One branch's line in `index.json`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IndexEntry {
    pub commit: String,
    pub manifest: String,
    pub sha256: String,
}

/// `index.json`: every branch that has a manifest, and the settings the server validates with.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct Index {
    pub branches: BTreeMap<String, IndexEntry>,
    pub schema: u32,
    /// The `taskhook.*` values that change verdicts, so `taskhook check --server` gives a
    /// maintainer the server's exact verdict (absent in schema version 1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub settings: Option<Settings>,
}

/// The settings a verdict depends on, as the server has them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Settings {
    pub max_aliases: usize,
    pub max_depth: usize,
    pub max_formula_bytes: usize,
    pub max_tasks: usize,
    pub max_yaml_depth: usize,
    pub max_yaml_nodes: usize,
    pub namespaces: Vec<String>,
    pub policy: String,
}

impl Settings {
    pub fn of(c: &Config) -> Settings {
        Settings {
            max_aliases: c.rules.limits.max_aliases,
            max_depth: c.bounds.max_depth,
            max_formula_bytes: c.rules.limits.max_bytes,
            max_tasks: c.bounds.max_tasks,
            max_yaml_depth: c.rules.limits.max_depth,
            max_yaml_nodes: c.rules.limits.max_nodes,
            namespaces: c.rules.namespaces.clone(),
            policy: c.policy.as_str().to_string(),
        }
    }

    /// `config` with these settings in place of its verdict-changing values.
    pub fn apply(&self, config: &mut Config) {
        config.rules.limits.max_aliases = self.max_aliases;
        config.bounds.max_depth = self.max_depth;
        config.rules.limits.max_bytes = self.max_formula_bytes;
        config.bounds.max_tasks = self.max_tasks;
        config.rules.limits.max_depth = self.max_yaml_depth.min(256);
        config.rules.limits.max_nodes = self.max_yaml_nodes;
        config.rules.namespaces = self.namespaces.clone();
        if let Some(p) = crate::config::Policy::parse(&self.policy) {
            config.policy = p;
        }
    }
}

/// Where a branch's manifest lives in the manifest tree: `/` in a branch name is a directory.
/// Directory names are escaped so that none ends in `.json` (`%` → `%25`, a final `.json` →
/// `%2Ejson`), while every file name does: branches `a` and `a.json/x` get `branches/a.json` and
/// `branches/a%2Ejson/x.json`, and the tree never has a file and a directory of one name.
pub fn branch_file(branch: &str) -> String {
    let mut parts: Vec<String> = branch.split('/').map(str::to_string).collect();
    let last = parts.pop().unwrap_or_default();
    let dirs: Vec<String> = parts
        .into_iter()
        .map(|d| {
            let d = d.replace('%', "%25");
            match d.strip_suffix(".json") {
                Some(stem) => format!("{stem}%2Ejson"),
                None => d,
            }
        })
        .collect();
    if dirs.is_empty() {
        format!("branches/{last}.json")
    } else {
        format!("branches/{}/{last}.json", dirs.join("/"))
    }
}

/// Deterministic bytes: keys sorted, two-space indent, trailing newline. Keys are sorted because
/// every struct here declares its fields in alphabetical order and maps are `BTreeMap`s (a test
/// holds us to it), which spares building an intermediate `serde_json::Value`.
pub fn to_bytes<T: Serialize>(value: &T) -> Vec<u8> {
    let mut bytes = serde_json::to_vec_pretty(value).unwrap_or_default();
    bytes.push(b'\n');
    bytes
}

/// The bytes of a branch manifest: like [`to_bytes`], except that each task (and each problem)
/// is one compact line. That keeps the file small for the trigger to fetch and parse, and makes
/// `git log -p refs/meta/tasks` show one changed line per changed task.
pub fn branch_bytes(b: &Branch) -> Vec<u8> {
    assemble(
        &b.branch,
        &b.commit,
        &b.policy,
        &b.problems,
        b.tasks.iter().map(json),
        &b.validator,
    )
}

fn json<T: Serialize>(v: &T) -> String {
    serde_json::to_string(v).unwrap_or_default()
}

fn assemble(
    branch: &str,
    commit: &str,
    policy: &str,
    problems: &[Diagnostic],
    tasks: impl Iterator<Item = String>,
    validator: &str,
) -> Vec<u8> {
    fn list(out: &mut String, key: &str, items: impl Iterator<Item = String>) {
        out.push_str(&format!("  \"{key}\": ["));
        let mut empty = true;
        for item in items {
            out.push_str(if empty { "\n    " } else { ",\n    " });
            out.push_str(&item);
            empty = false;
        }
        out.push_str(if empty { "],\n" } else { "\n  ],\n" });
    }
    let mut out = String::with_capacity(1024);
    out.push_str("{\n");
    out.push_str(&format!("  \"branch\": {},\n", json(&branch)));
    out.push_str(&format!("  \"commit\": {},\n", json(&commit)));
    out.push_str(&format!("  \"policy\": {},\n", json(&policy)));
    if !problems.is_empty() {
        list(&mut out, "problems", problems.iter().map(json));
    }
    out.push_str(&format!("  \"schema\": {SCHEMA_VERSION},\n"));
    list(&mut out, "tasks", tasks);
    out.push_str(&format!("  \"validator\": {}\n}}\n", json(&validator)));
    out.into_bytes()
}

pub fn sha256(bytes: &[u8]) -> String {
    hex(&Sha256::digest(bytes))
}

/// The stored bytes of the branch manifest for a verdict. Checked tasks are written anew; reused
/// tasks are copied as the lines they were stored as, which are the same bytes.
pub fn report_bytes(branch: &str, commit: &str, report: &Report, config: &Config) -> Vec<u8> {
    let mut lines: Vec<(&str, String)> = report
        .tasks
        .iter()
        .map(|t| (t.path.as_str(), json(&task_entry(t))))
        .chain(
            report
                .reused
                .iter()
                .map(|r| (r.path.as_str(), r.line.clone())),
        )
        .collect();
    lines.sort_by(|a, b| a.0.cmp(b.0));
    let mut problems = report.diagnostics.clone();
    crate::validate::diag::sort(&mut problems);
    assemble(
        branch,
        commit,
        config.policy.as_str(),
        &problems,
        lines.into_iter().map(|(_, l)| l.to_string()),
        &config.fingerprint(),
    )
}

fn task_entry(t: &TaskReport) -> Task {
    let f = &t.formula;
    Task {
        arches: f.schedule.arches.clone(),
        branches: f.schedule.branches.clone(),
        desc: f.desc.clone(),
        diagnostics: t.diagnostics.clone(),
        formula: t.formula_path.clone(),
        formula_sha256: t.sha256.clone(),
        maintainer: f.maintainer.clone(),
        name: f.name.clone(),
        namespace: f.namespace.clone(),
        item_types: f.schedule.item_types.clone(),
        path: t.path.clone(),
        run: f.schedule.run,
        tree: t.tree.clone(),
        valid: t.is_valid(),
    }
}

/// Reads a task line of a stored manifest into a [`RawTask`], so an unchanged task is carried
/// into the next manifest without being parsed and written again.
pub fn parse_task_line(line: &str) -> Option<RawTask> {
    let (path, valid, has_diagnostics) = probe_fast(line).or_else(|| probe_slow(line))?;
    let diagnostics = if has_diagnostics {
        serde_json::from_str::<Task>(line).ok()?.diagnostics
    } else {
        Vec::new()
    };
    Some(RawTask {
        path,
        valid,
        diagnostics,
        line: line.to_string(),
    })
}

/// The lines [`branch_bytes`] writes have their keys in a known order and no unescaped quote
/// inside strings, so the top-level `"path":"`, `"diagnostics":[` and the final `"valid":...}`
/// can be found without tokenizing the whole line.
fn probe_fast(line: &str) -> Option<(String, bool, bool)> {
    let valid = if line.ends_with(",\"valid\":true}") {
        true
    } else if line.ends_with(",\"valid\":false}") {
        false
    } else {
        return None;
    };
    let at = line.find("\"path\":\"")? + "\"path\":".len();
    let path: String = serde_json::Deserializer::from_str(&line[at..])
        .into_iter::<String>()
        .next()?
        .ok()?;
    Some((path, valid, line.contains("\"diagnostics\":[")))
}

fn probe_slow(line: &str) -> Option<(String, bool, bool)> {
    #[derive(Deserialize)]
    struct Probe<'a> {
        #[serde(borrow)]
        path: std::borrow::Cow<'a, str>,
        valid: bool,
        #[serde(default)]
        diagnostics: Option<serde::de::IgnoredAny>,
    }
    let p: Probe = serde_json::from_str(line).ok()?;
    Some((p.path.into_owned(), p.valid, p.diagnostics.is_some()))
}

/// A stored branch manifest without its task lines (which may be many): the bytes before and
/// after the task list, joined into a smaller JSON document with `"tasks": []`.
pub fn header_json(bytes: &[u8]) -> Option<String> {
    let text = std::str::from_utf8(bytes).ok()?;
    let key = "\n  \"tasks\": [";
    let start = text.find(key)?;
    let rest = &text[start + key.len()..];
    let tail = if let Some(after) = rest.strip_prefix("],") {
        after
    } else {
        &rest[rest.find("\n  ],")? + "\n  ],".len()..]
    };
    Some(format!("{}{key}],{tail}", &text[..start]))
}

/// Splits a stored branch manifest into its task lines. `None` when the bytes are not in the
/// layout [`branch_bytes`] writes.
pub fn task_lines(bytes: &[u8]) -> Option<Vec<&str>> {
    let text = std::str::from_utf8(bytes).ok()?;
    let start = text.find("\n  \"tasks\": [")? + "\n  \"tasks\": [".len();
    let rest = &text[start..];
    if rest.starts_with("],") {
        return Some(Vec::new());
    }
    let end = rest.find("\n  ],\n")?;
    rest[..end]
        .split('\n')
        .filter(|l| !l.is_empty())
        .map(|l| {
            let l = l.strip_prefix("    ")?;
            Some(l.strip_suffix(',').unwrap_or(l))
        })
        .collect()
}

/// Why a manifest read from somewhere (git, the network) was refused.
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    #[error("the manifest is {0} bytes, over the {1}-byte limit")]
    TooLarge(usize, usize),
    #[error("the manifest is not valid JSON of the expected shape: {0}")]
    Malformed(String),
    #[error("the manifest has schema version {0}; this taskhook reads version {SCHEMA_VERSION}")]
    Version(u32),
    #[error("the manifest is inconsistent: {0}")]
    Inconsistent(String),
}

/// The most a manifest file may weigh before it is refused unread.
pub const MAX_MANIFEST_BYTES: usize = 16 * 1024 * 1024;

/// Parses and checks an untrusted branch manifest.
pub fn parse_branch(bytes: &[u8], limit: usize) -> Result<Branch, ReadError> {
    if bytes.len() > limit {
        return Err(ReadError::TooLarge(bytes.len(), limit));
    }
    #[derive(Deserialize)]
    struct Probe {
        schema: u32,
    }
    let b: Branch = match serde_json::from_slice(bytes) {
        Ok(b) => b,
        Err(e) => {
            // Another schema version deserves its own message rather than a shape error.
            return Err(match serde_json::from_slice::<Probe>(bytes) {
                Ok(p) if !(OLDEST_SCHEMA_VERSION..=SCHEMA_VERSION).contains(&p.schema) => {
                    ReadError::Version(p.schema)
                }
                _ => ReadError::Malformed(e.to_string()),
            });
        }
    };
    if !(OLDEST_SCHEMA_VERSION..=SCHEMA_VERSION).contains(&b.schema) {
        return Err(ReadError::Version(b.schema));
    }
    if !is_hex_id(&b.commit) {
        return Err(ReadError::Inconsistent(format!(
            "`{}` is not a commit id",
            b.commit
        )));
    }
    // A served manifest is untrusted: every path is a plain task path whose formula is its
    // own `runtask.yml`, every digest and id has its shape, and no task is listed twice.
    let mut seen = std::collections::HashSet::new();
    for t in &b.tasks {
        let formula = if t.path == "." {
            "runtask.yml".to_string()
        } else {
            format!("{}/runtask.yml", t.path)
        };
        let plain_path = t.path == "."
            || t.path
                .split('/')
                .all(crate::validate::discover::valid_component);
        if !plain_path
            || t.formula != formula
            || t.formula_sha256
                .as_deref()
                .is_some_and(|s| s.len() != 64 || !s.bytes().all(|c| c.is_ascii_hexdigit()))
            || t.tree.as_deref().is_some_and(|s| !is_hex_id(s))
            || t.arches
                .iter()
                .chain(&t.item_types)
                .any(|s| s.is_empty() || s.bytes().any(|c| c.is_ascii_control()))
        {
            return Err(ReadError::Inconsistent(format!(
                "task entry `{}` is malformed",
                t.path.escape_debug()
            )));
        }
        if !seen.insert(t.path.as_str()) {
            return Err(ReadError::Inconsistent(format!(
                "task `{}` is listed twice",
                t.path.escape_debug()
            )));
        }
    }
    Ok(b)
}

/// Parses and checks an untrusted index.
pub fn parse_index(bytes: &[u8], limit: usize) -> Result<Index, ReadError> {
    if bytes.len() > limit {
        return Err(ReadError::TooLarge(bytes.len(), limit));
    }
    let v: serde_json::Value =
        serde_json::from_slice(bytes).map_err(|e| ReadError::Malformed(e.to_string()))?;
    let schema = v
        .get("schema")
        .and_then(serde_json::Value::as_u64)
        .unwrap_or(0) as u32;
    if !(OLDEST_SCHEMA_VERSION..=SCHEMA_VERSION).contains(&schema) {
        return Err(ReadError::Version(schema));
    }
    serde_json::from_value(v).map_err(|e| ReadError::Malformed(e.to_string()))
}

fn is_hex_id(s: &str) -> bool {
    (s.len() == 40 || s.len() == 64) && s.bytes().all(|c| c.is_ascii_hexdigit())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bytes_are_deterministic_and_sorted() {
        let mut index = Index {
            schema: 1,
            settings: None,
            branches: BTreeMap::new(),
        };
        index.branches.insert(
            "master".into(),
            IndexEntry {
                commit: "a".repeat(40),
                manifest: branch_file("master"),
                sha256: "b".repeat(64),
            },
        );
        let text = String::from_utf8(to_bytes(&index)).expect("utf8");
        assert!(text.find("\"branches\"") < text.find("\"schema\""));
        assert_eq!(to_bytes(&index), to_bytes(&index.clone()));
    }

    #[test]
    fn struct_order_gives_sorted_keys() {
        let d = Diagnostic::error("code", "f", "m")
            .at(1, 2)
            .help("h")
            .task("t");
        let task = Task {
            arches: vec![],
            branches: vec![],
            desc: None,
            diagnostics: vec![d.clone()],
            formula: "f".into(),
            formula_sha256: None,
            maintainer: None,
            name: None,
            namespace: None,
            item_types: vec![],
            path: "p".into(),
            run: true,
            tree: None,
            valid: false,
        };
        let branch = Branch {
            branch: "b".into(),
            commit: "c".into(),
            policy: "reject".into(),
            problems: vec![d],
            schema: SCHEMA_VERSION,
            tasks: vec![task],
            validator: "v".into(),
        };
        let via_value = {
            let v = serde_json::to_value(&branch).expect("value");
            let mut b = serde_json::to_vec_pretty(&v).expect("bytes");
            b.push(b'\n');
            b
        };
        assert_eq!(to_bytes(&branch), via_value);
        let reparsed: serde_json::Value =
            serde_json::from_slice(&branch_bytes(&branch)).expect("valid json");
        assert_eq!(reparsed, serde_json::to_value(&branch).expect("value"));
        let text = String::from_utf8(branch_bytes(&branch)).expect("utf8");
        assert!(
            text.contains("\n    {\"arches\":[],\"branches\":[],"),
            "{text}"
        );
    }

    #[test]
    fn rejects_other_schema_versions() {
        let e = parse_branch(br#"{"schema": 7}"#, 1000).expect_err("version");
        assert!(matches!(e, ReadError::Version(7)));
        let e = parse_branch(b"x".repeat(2000).as_slice(), 1000).expect_err("size");
        assert!(matches!(e, ReadError::TooLarge(2000, 1000)));
    }
}
