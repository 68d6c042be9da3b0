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
    pub path: String,
    pub name: Option<String>,
    pub formula: String,
    pub formula_sha256: Option<String>,
    pub tree: Option<String>,
    pub valid: bool,
    pub run: bool,
    pub on: Vec<String>,
    pub branches: Vec<String>,
    pub arches: Vec<String>,
    pub desc: Option<String>,
    pub maintainer: Option<String>,
    pub namespace: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub diagnostics: Vec<Diagnostic>,
}

/// `branches/<branch>.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Branch {
    pub schema: u32,
    pub branch: String,
    pub commit: String,
    pub policy: String,
    /// Fingerprint of the rules that produced this manifest (see `Config::fingerprint`).
    pub validator: String,
    pub tasks: Vec<Task>,
    /// Findings that belong to no single task (misnamed formulas, limits).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub problems: Vec<Diagnostic>,
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
    pub schema: u32,
    pub branches: BTreeMap<String, IndexEntry>,
}

/// Where a branch's manifest lives in the manifest tree: `/` in a branch name is a directory.
pub fn branch_file(branch: &str) -> String {
    format!("branches/{branch}.json")
}

/// Deterministic bytes: keys sorted (serde_json's default map is ordered), two-space indent,
/// trailing newline.
pub fn to_bytes<T: Serialize>(value: &T) -> Vec<u8> {
    let v = serde_json::to_value(value).unwrap_or(serde_json::Value::Null);
    let mut bytes = serde_json::to_vec_pretty(&v).unwrap_or_default();
    bytes.push(b'\n');
    bytes
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
    pub fn to_report(&self) -> TaskReport {
        TaskReport {
            path: self.path.clone(),
            formula_path: self.formula.clone(),
            tree: self.tree.clone(),
            sha256: self.formula_sha256.clone(),
            formula: Formula {
                name: self.name.clone(),
                desc: self.desc.clone(),
                maintainer: self.maintainer.clone(),
                namespace: self.namespace.clone(),
                schedule: Schedule {
                    run: self.run,
                    on: self.on.clone(),
                    branches: self.branches.clone(),
                    arches: self.arches.clone(),
                },
            },
            diagnostics: self.diagnostics.clone(),
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
    let probe: Probe =
        serde_json::from_slice(bytes).map_err(|e| ReadError::Malformed(e.to_string()))?;
    if probe.schema != SCHEMA_VERSION {
        return Err(ReadError::Version(probe.schema));
    }
    let b: Branch =
        serde_json::from_slice(bytes).map_err(|e| ReadError::Malformed(e.to_string()))?;
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
    fn rejects_other_schema_versions() {
        let e = parse_branch(br#"{"schema": 7}"#, 1000).expect_err("version");
        assert!(matches!(e, ReadError::Version(7)));
        let e = parse_branch(b"x".repeat(2000).as_slice(), 1000).expect_err("size");
        assert!(matches!(e, ReadError::TooLarge(2000, 1000)));
    }
}
