//! Reuses a stored manifest's verdicts for the subtrees a push did not change, so a hook's work
//! follows the size of the change, not of the repository: identical subtrees are not walked,
//! their formulas not parsed, and their manifest lines are carried over byte for byte.

use std::collections::HashSet;
use std::time::Instant;

use crate::config::Config;
use crate::git::{GitError, ObjectId, Repo};
use crate::manifest::store::Snapshot;
use crate::manifest::{self, State};
use crate::validate::check::{self, Report};
use crate::validate::discover::Baseline;
use crate::validate::source::{CommitTree, SourceError};

/// A stored branch manifest usable as a baseline, known from its small state file: the branch
/// file itself is read only when a new one is written ([`Prior::branch_bytes`]).
pub struct Prior {
    /// The commit the manifest describes.
    commit: ObjectId,
    /// Its root tree, read when a verdict is computed against it: post-receive, given the
    /// verdict by pre-receive, never needs it (and then often opens no pack at all).
    tree: std::cell::OnceCell<Option<ObjectId>>,
    state: State,
    /// The manifest tree and the branch file's path in it.
    snapshot_tree: ObjectId,
    manifest: String,
}

impl Prior {
    /// Reads a stored state; `None` when it cannot serve as a baseline (made with other rules,
    /// or with findings that depend on the whole tree, or missing: schema 2 kept none).
    fn read(
        repo: &Repo,
        snapshot_tree: ObjectId,
        manifest: &str,
        commit: &str,
        config: &Config,
    ) -> Option<Prior> {
        let bytes = repo
            .read_path(snapshot_tree, &manifest::state_file_of(manifest))
            .ok()??;
        let state = manifest::parse_state(&bytes)?;
        if state.schema != manifest::SCHEMA_VERSION
            || state.validator != config.fingerprint()
            || state.named_commit.as_deref().is_some_and(|c| c != commit)
        {
            return None;
        }
        // These summarize the whole tree (or describe a tree the walk reads differently from
        // git), so no part of it can be taken on its own.
        if state.problems.iter().any(|p| {
            matches!(
                p.code.as_str(),
                "depth-limit"
                    | "too-many-tasks"
                    | "too-many-entries"
                    | "time-budget"
                    | "bad-tree-entry"
            )
        }) {
            return None;
        }
        // A task the time budget left unchecked must be checked next time, not carried over.
        if state
            .findings
            .values()
            .flatten()
            .any(|d| d.code == "time-budget")
        {
            return None;
        }
        let commit = ObjectId::from_hex(commit.as_bytes()).ok()?;
        Some(Prior {
            commit,
            tree: std::cell::OnceCell::new(),
            state,
            snapshot_tree,
            manifest: manifest.to_string(),
        })
    }

    /// The root tree of the commit the manifest describes; `None` when that commit cannot be
    /// read (then it serves as no baseline).
    pub fn tree(&self, repo: &Repo) -> Option<ObjectId> {
        *self.tree.get_or_init(|| repo.commit_tree(self.commit).ok())
    }

    /// The blob of the stored branch file this baseline describes (for carrying its lines
    /// over): read it with [`crate::git::ObjectDirs::read_previous`], on another thread while
    /// the tree is walked.
    pub fn branch_blob(&self, repo: &Repo) -> Option<ObjectId> {
        repo.path_id(self.snapshot_tree, &self.manifest).ok()?
    }

    /// Fills in the count and findings of the tasks the walk kept, and the findings of the
    /// directories it reused.
    fn fill(&self, report: &mut Report) {
        let replaced: HashSet<&str> = report.replaced.iter().map(String::as_str).collect();
        report.reused_count = self.state.tasks.saturating_sub(replaced.len());
        for (task, findings) in &self.state.findings {
            if !replaced.contains(task.as_str()) {
                report
                    .reused_findings
                    .insert(task.clone(), findings.clone());
            }
        }
        let prefixes = std::mem::take(&mut report.reused_prefixes);
        if prefixes.is_empty() || self.state.problems.is_empty() {
            return;
        }
        let prefixes: HashSet<String> = prefixes.into_iter().collect();
        // A finding is reused when its file is in a reused directory, or below one.
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
        for d in &self.state.problems {
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
    let entry = snap.index.branches.get(&source)?;
    Prior::read(repo, snap.tree?, &entry.manifest, &entry.commit, config)
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
    if let Some((p, root)) = prior.and_then(|p| Some((p, p.tree(repo)?))) {
        let baseline = Baseline {
            root,
            // Only findings are carried over by path.
            reused_paths: !p.state.problems.is_empty(),
        };
        let mut report =
            check::check_since(&source, config, Some(&baseline), deadline).map_err(failed)?;
        if !report.baseline_lost {
            p.fill(&mut report);
            if report.task_count() <= config.bounds.max_tasks {
                return Ok(report);
            }
        }
    }
    check::check(&source, config, deadline).map_err(failed)
}
