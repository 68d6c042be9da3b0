//! Reuses a stored manifest's verdicts for the subtrees a push did not change, so a hook's work
//! follows the size of the change, not of the repository: identical subtrees are not walked,
//! their formulas not parsed, and their manifest lines are carried over byte for byte.

use std::collections::HashSet;
use std::time::Instant;

use serde::Deserialize;

use crate::config::Config;
use crate::git::{GitError, ObjectId, Repo};
use crate::manifest;
use crate::manifest::store::{self, Snapshot};
use crate::validate::check::RawTask;
use crate::validate::check::{self, Report};
use crate::validate::diag::Diagnostic;
use crate::validate::discover::Baseline;
use crate::validate::source::{CommitTree, SourceError};

/// A stored branch manifest usable as a baseline.
pub struct Prior {
    /// The root tree of the commit the manifest describes.
    pub tree: ObjectId,
    tasks: Vec<RawTask>,
    problems: Vec<Diagnostic>,
    paths: HashSet<String>,
}

impl Prior {
    /// Reads a stored manifest; `None` when it cannot serve as a baseline (made with other
    /// rules, or with findings that depend on the whole tree, or not in the expected layout).
    pub fn from_bytes(repo: &Repo, bytes: &[u8], config: &Config) -> Option<Prior> {
        #[derive(Deserialize)]
        struct Header {
            commit: String,
            validator: String,
            #[serde(default)]
            problems: Vec<Diagnostic>,
        }
        let header: Header = serde_json::from_str(&manifest::header_json(bytes)?).ok()?;
        if header.validator != config.fingerprint() {
            return None;
        }
        // These summarize the whole tree, so no part of it can be taken on its own.
        if header.problems.iter().any(|p| {
            matches!(
                p.code.as_str(),
                "depth-limit" | "too-many-tasks" | "too-many-entries" | "time-budget"
            )
        }) {
            return None;
        }
        let tasks: Vec<RawTask> = manifest::task_lines(bytes)?
            .into_iter()
            .map(manifest::parse_task_line)
            .collect::<Option<_>>()?;
        // A task the time budget left unchecked must be checked next time, not carried over.
        if tasks
            .iter()
            .any(|t| t.diagnostics.iter().any(|d| d.code == "time-budget"))
        {
            return None;
        }
        let commit = ObjectId::from_hex(header.commit.as_bytes()).ok()?;
        let tree = repo.commit_tree(commit).ok()?;
        let paths = tasks.iter().map(|t| t.path.clone()).collect();
        Some(Prior {
            tree,
            tasks,
            problems: header.problems,
            paths,
        })
    }

    /// The task that enclosed directory `path` in the baseline, if any.
    fn enclosing(&self, path: &str) -> Option<&str> {
        if path.is_empty() {
            return None;
        }
        let mut p = path;
        while let Some(i) = p.rfind('/') {
            p = &p[..i];
            if let Some(t) = self.paths.get(p) {
                return Some(t);
            }
        }
        self.paths.get(".").map(String::as_str)
    }

    /// A subtree may take the baseline's verdicts when it sat under the same enclosing task.
    fn reusable(&self, path: &str, enclosing: Option<&str>) -> bool {
        self.enclosing(path) == enclosing
    }

    /// Fills in the tasks and findings of the directories the walk reused.
    fn fill(&self, report: &mut Report) {
        let prefixes = std::mem::take(&mut report.reused_prefixes);
        if prefixes.is_empty() {
            return;
        }
        let prefixes: HashSet<String> = prefixes.into_iter().collect();
        // A path is reused when it, or one of its parent directories, is a reused prefix.
        let covered = |path: &str| {
            if prefixes.contains("") || prefixes.contains(path) {
                return true;
            }
            let mut p = path;
            while let Some(i) = p.rfind('/') {
                p = &p[..i];
                if prefixes.contains(p) {
                    return true;
                }
            }
            false
        };
        for t in &self.tasks {
            // The root task `.` is the directory "", which only the root prefix holds.
            if (t.path == "." && prefixes.contains("")) || (t.path != "." && covered(&t.path)) {
                report.reused.push(t.clone());
            }
        }
        for d in &self.problems {
            if covered(&d.file) {
                report.diagnostics.push(d.clone());
            }
        }
    }
}

/// The stored manifest to compare a push of `branch` to `new` with: the branch's own, else
/// one of a branch already at `new`, else the default branch's.
pub fn prior_for(
    repo: &Repo,
    config: &Config,
    snap: &Snapshot,
    branch: &str,
    new: &str,
) -> Option<Prior> {
    let source = if snap.index.branches.contains_key(branch) {
        branch.to_string()
    } else if let Some((other, _)) = snap.index.branches.iter().find(|(_, e)| e.commit == new) {
        other.clone()
    } else {
        repo.head_branch()?
    };
    let bytes = store::read_branch_bytes(repo, snap, &source).ok()??;
    Prior::from_bytes(repo, &bytes, config)
}

/// Validates the tree of `commit`, taking unchanged subtrees' verdicts from `prior`. The result
/// is the verdict a full check gives; when reuse cannot guarantee that (too many tasks), it
/// falls back to a full check.
pub fn verdict(
    repo: &Repo,
    config: &Config,
    commit: ObjectId,
    prior: Option<&Prior>,
    deadline: Option<Instant>,
) -> Result<Report, GitError> {
    let tree = repo.commit_tree(commit)?;
    let source = CommitTree { repo, tree };
    let failed = |e: SourceError| GitError::Other {
        context: format!("cannot read commit {commit}"),
        message: e.to_string(),
    };
    if let Some(p) = prior {
        let reusable = |path: &str, enclosing: Option<&str>| p.reusable(path, enclosing);
        let baseline = Baseline {
            root: p.tree,
            reusable: &reusable,
        };
        let mut report =
            check::check_since(&source, config, Some(&baseline), deadline).map_err(failed)?;
        p.fill(&mut report);
        if report.task_count() <= config.bounds.max_tasks {
            return Ok(report);
        }
    }
    check::check(&source, config, deadline).map_err(failed)
}
