//! The schedule manifest: what each branch's tasks are and when they run. Pure data and its
//! deterministic JSON bytes (sorted keys, no timestamps); storing it is [`crate::store`]'s job.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::check::{Report, TaskReport};
use crate::config::{hex, Config};
use crate::diag::Diagnostic;
use crate::formula::{Formula, Schedule};

/// Bumped when the layout changes incompatibly; readers refuse versions they do not know.
pub const SCHEMA_VERSION: u32 = 1;

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
    pub maintainer: Option<String>,
    pub name: Option<String>,
    pub namespace: Option<String>,
    pub on: Vec<String>,
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

/// `index.json`: every branch that has a manifest.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct Index {
    pub branches: BTreeMap<String, IndexEntry>,
    pub schema: u32,
}

/// Where a branch's manifest lives in the manifest tree: `/` in a branch name is a directory.
pub fn branch_file(branch: &str) -> String {
    format!("branches/{branch}.json")
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
    fn json<T: Serialize>(v: &T) -> String {
        serde_json::to_string(v).unwrap_or_default()
    }
    fn list<T: Serialize>(out: &mut String, key: &str, items: &[T]) {
        out.push_str(&format!("  \"{key}\": ["));
        for (i, item) in items.iter().enumerate() {
            out.push_str(if i == 0 { "\n    " } else { ",\n    " });
            out.push_str(&json(item));
        }
        out.push_str(if items.is_empty() { "],\n" } else { "\n  ],\n" });
    }
    let mut out = String::with_capacity(256 + b.tasks.len() * 512);
    out.push_str("{\n");
    out.push_str(&format!("  \"branch\": {},\n", json(&b.branch)));
    out.push_str(&format!("  \"commit\": {},\n", json(&b.commit)));
    out.push_str(&format!("  \"policy\": {},\n", json(&b.policy)));
    if !b.problems.is_empty() {
        list(&mut out, "problems", &b.problems);
    }
    out.push_str(&format!("  \"schema\": {},\n", b.schema));
    list(&mut out, "tasks", &b.tasks);
    out.push_str(&format!("  \"validator\": {}\n}}\n", json(&b.validator)));
    out.into_bytes()
}

pub fn sha256(bytes: &[u8]) -> String {
    hex(&Sha256::digest(bytes))
}

/// Builds a branch manifest from the verdict on its head commit.
pub fn build(branch: &str, commit: &str, report: &Report, config: &Config) -> Branch {
    let mut tasks: Vec<Task> = report.tasks.iter().map(task_entry).collect();
    tasks.sort_by(|a, b| a.path.cmp(&b.path));
    Branch {
        schema: SCHEMA_VERSION,
        branch: branch.to_string(),
        commit: commit.to_string(),
        policy: config.policy.as_str().to_string(),
        validator: config.fingerprint(),
        tasks,
        problems: report.diagnostics.clone(),
    }
}

fn task_entry(t: &TaskReport) -> Task {
    let f = &t.formula;
    Task {
        path: t.path.clone(),
        name: f.name.clone(),
        formula: t.formula_path.clone(),
        formula_sha256: t.sha256.clone(),
        tree: t.tree.clone(),
        valid: t.is_valid(),
        run: f.schedule.run,
        on: f.schedule.on.clone(),
        branches: f.schedule.branches.clone(),
        arches: f.schedule.arches.clone(),
        desc: f.desc.clone(),
        maintainer: f.maintainer.clone(),
        namespace: f.namespace.clone(),
        diagnostics: t.diagnostics.clone(),
    }
}

impl Task {
    /// The verdict this entry records, for reuse when the task's tree is unchanged.
    pub fn into_report(self) -> TaskReport {
        TaskReport {
            path: self.path,
            formula_path: self.formula,
            tree: self.tree,
            sha256: self.formula_sha256,
            formula: Formula {
                name: self.name,
                desc: self.desc,
                maintainer: self.maintainer,
                namespace: self.namespace,
                schedule: Schedule {
                    run: self.run,
                    on: self.on,
                    branches: self.branches,
                    arches: self.arches,
                },
            },
            diagnostics: self.diagnostics,
        }
    }
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
                Ok(p) if p.schema != SCHEMA_VERSION => ReadError::Version(p.schema),
                _ => ReadError::Malformed(e.to_string()),
            });
        }
    };
    if b.schema != SCHEMA_VERSION {
        return Err(ReadError::Version(b.schema));
    }
    if !is_hex_id(&b.commit) {
        return Err(ReadError::Inconsistent(format!(
            "`{}` is not a commit id",
            b.commit
        )));
    }
    for t in &b.tasks {
        if t.path.is_empty()
            || t.path.starts_with('/')
            || t.path.split('/').any(|c| c == "..")
            || t.formula_sha256
                .as_deref()
                .is_some_and(|s| s.len() != 64 || !s.bytes().all(|c| c.is_ascii_hexdigit()))
        {
            return Err(ReadError::Inconsistent(format!(
                "task entry `{}` is malformed",
                t.path
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
    if schema != SCHEMA_VERSION {
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
            on: vec![],
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
            schema: 1,
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
