//! The `manifest` and `plan` commands: glue between the pure steps and their I/O.

use std::collections::HashMap;
use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};

use super::{Format, ManifestCommand};
use crate::config::Config;
use crate::error::{exit, short, CmdResult, Failure};
use crate::git::{ObjectId, Repo};
use crate::manifest::store::{self, Applied, Stored};
use crate::manifest::{self, reuse};
use crate::server::hooks;

pub fn run(command: ManifestCommand) -> CmdResult {
    match command {
        ManifestCommand::Show {
            branch,
            format,
            repo,
        } => show(repo.as_deref(), branch.as_deref(), format),
        ManifestCommand::Build {
            rev,
            branch,
            state,
            repo,
        } => build(repo.as_deref(), &rev, branch.as_deref(), state),
        ManifestCommand::Rebuild {
            repos,
            format,
            non_bare,
        } => rebuild(&repos, format, non_bare),
    }
}

fn open(repo: Option<&Path>) -> Result<(Repo, Config), Failure> {
    let repo = Repo::open(repo.unwrap_or(Path::new(".")))?;
    let config = Config::load(&repo)?;
    Ok((repo, config))
}

fn show(repo: Option<&Path>, branch: Option<&str>, format: Format) -> CmdResult {
    let (repo, config) = open(repo)?;
    let snap = store::snapshot(&repo, &config)?;
    if snap.commit.is_none() {
        return Err(Failure::invalid(format!(
            "{} does not exist in this repository yet: push through the installed hooks, or run `taskhook manifest rebuild`",
            config.manifest_ref
        )));
    }
    let mut heads: HashMap<String, String> = repo
        .branches()?
        .into_iter()
        .map(|(b, id)| (b, id.to_string()))
        .collect();
    // In a clone the server's branches are remote-tracking ones (`origin/f41`).
    if !repo.is_bare() {
        for (name, id) in repo.remote_branches()? {
            if let Some((_, b)) = name.split_once('/') {
                heads.entry(b.to_string()).or_insert_with(|| id.to_string());
            }
        }
    }
    // An empty manifest (no tasks, no findings) keeps the commit it was first written for:
    // pushes to a repository without tasks write nothing, so it is never stale.
    let is_empty = |b: &str| {
        store::read_branch(&repo, &config, &snap, b)
            .ok()
            .flatten()
            .is_some_and(|m| m.tasks.is_empty() && m.problems.is_empty())
    };
    let stale_note = |b: &str, pinned: &str| -> Option<String> {
        match heads.get(b) {
            Some(head) if head != pinned && !is_empty(b) => Some(format!(
                "taskhook: note: the manifest of `{b}` is stale: it pins {} but the branch is at {}; run `taskhook manifest rebuild`",
                short(pinned),
                short(head)
            )),
            None => Some(format!("taskhook: note: branch `{b}` no longer exists; its manifest is left over")),
            _ => None,
        }
    };
    let mut out = std::io::stdout().lock();
    match branch {
        None => {
            for (b, e) in &snap.index.branches {
                if let Some(n) = stale_note(b, &e.commit) {
                    eprintln!("{n}");
                }
            }
            match format {
                Format::Json => {
                    let _ = out.write_all(&manifest::to_bytes(&snap.index));
                }
                Format::Human => {
                    for (b, e) in &snap.index.branches {
                        let _ = writeln!(out, "{b}\t{}\t{}", short(&e.commit), e.manifest);
                    }
                }
            }
        }
        Some(b) => {
            let m = store::read_branch(&repo, &config, &snap, b)?
                .ok_or_else(|| Failure::invalid(format!("no manifest for branch `{b}`")))?;
            if let Some(n) = stale_note(b, &m.commit) {
                eprintln!("{n}");
            }
            match format {
                Format::Json => {
                    let _ = out.write_all(&manifest::branch_bytes(&m));
                }
                Format::Human => {
                    let _ = writeln!(
                        out,
                        "branch {} at {} (policy {})",
                        m.branch, m.commit, m.policy
                    );
                    for t in &m.tasks {
                        let state = if !t.valid {
                            "INVALID"
                        } else if !t.run {
                            "dormant"
                        } else {
                            "scheduled"
                        };
                        let list = |l: &[std::borrow::Cow<str>], none: &str| {
                            if l.is_empty() {
                                none.to_string()
                            } else {
                                l.join(", ")
                            }
                        };
                        let _ = writeln!(
                            out,
                            "  {:<30} {:<9} item types: {}; branches: {}; arches: {}",
                            t.path,
                            state,
                            list(&t.item_types, "none"),
                            list(&t.branches, "all"),
                            t.arches.join(", ")
                        );
                        for d in t.diagnostics.iter().filter(|d| d.is_error()) {
                            let _ =
                                writeln!(out, "      {}: {} [{}]", d.location(), d.message, d.code);
                        }
                    }
                }
            }
        }
    }
    Ok(exit::OK)
}

fn build(repo: Option<&Path>, rev: &str, branch: Option<&str>, state: bool) -> CmdResult {
    let (repo, config) = open(repo)?;
    let commit = repo.resolve_commit(rev)?;
    let name = match branch {
        Some(b) => b.to_string(),
        None => {
            let branches = repo.branches()?;
            if branches.iter().any(|(b, _)| b == rev) {
                rev.to_string()
            } else {
                repo.head_branch().unwrap_or_else(|| "HEAD".to_string())
            }
        }
    };
    let m = hooks::branch_manifest(&repo, &config, None, &name, commit, None, None)?;
    let _ = std::io::stdout()
        .lock()
        .write_all(if state { &m.state } else { &m.bytes });
    Ok(exit::OK)
}

fn rebuild(repos: &[PathBuf], format: Format, non_bare: bool) -> CmdResult {
    let progress = std::io::stderr().is_terminal();
    let mut failed = false;
    for (i, path) in repos.iter().enumerate() {
        let result =
            target(path, non_bare).and_then(|()| rebuild_one(path, progress, (i + 1, repos.len())));
        if let Err(f) = &result {
            failed = true;
            eprintln!("taskhook: {}: {}", path.display(), f.message);
        }
        match (format, result) {
            (Format::Human, Ok(r)) => crate::outln!("{}: {}", path.display(), r.describe()),
            (Format::Json, Ok(r)) => crate::outln!(
                "{}",
                serde_json::json!({
                    "repo": path.display().to_string(),
                    "branches": r.branches,
                    "commit": r.commit.map(|c| c.to_string()),
                    "changed": r.commit.is_some(),
                })
            ),
            (Format::Json, Err(f)) => crate::outln!(
                "{}",
                serde_json::json!({"repo": path.display().to_string(), "error": f.message})
            ),
            (Format::Human, Err(_)) => {}
        }
    }
    Ok(if failed { exit::USAGE } else { exit::OK })
}

/// Only the repository named, never one found by walking up from it: a bare repository, or
/// with `--non-bare` a work tree's root.
fn target(path: &Path, non_bare: bool) -> Result<(), Failure> {
    if crate::server::install::is_bare_repo(path) {
        return Ok(());
    }
    if path.join(".git").exists() {
        return if non_bare {
            Ok(())
        } else {
            Err(Failure::usage(
                "a repository with a work tree (a clone): manifests belong on the server's bare repository; give --non-bare to write one here anyway",
            ))
        };
    }
    Err(Failure::usage("not a git repository"))
}

/// What a rebuild of one repository did.
struct Rebuilt {
    branches: usize,
    manifest_ref: String,
    /// The new manifest commit, if anything changed.
    commit: Option<ObjectId>,
    /// The branches left out for `taskhook.maxBranches`.
    left_out: Vec<String>,
}

impl Rebuilt {
    fn describe(&self) -> String {
        let listed = self.branches.saturating_sub(self.left_out.len());
        let s = if listed == 1 { "" } else { "s" };
        let mut text = match self.commit {
            Some(id) => format!(
                "{listed} branch manifest{s} written ({} at {})",
                self.manifest_ref,
                short(&id.to_string())
            ),
            None => format!("{listed} branch manifest{s} already up to date"),
        };
        if !self.left_out.is_empty() {
            text.push_str(&format!(
                "; left out for taskhook.maxBranches: {}",
                store::some_names(&self.left_out)
            ));
        }
        text
    }
}

fn rebuild_one(
    path: &Path,
    progress: bool,
    (n, total): (usize, usize),
) -> Result<Rebuilt, Failure> {
    let repo = Repo::open(path)?;
    #[cfg(unix)]
    if let Some(owner) = repo.foreign_owner() {
        eprintln!(
            "taskhook: warning: {}: its objects belong to uid {owner}, not to this process's: the objects and ref written now will be this user's, and a push as uid {owner} may then fail to write beside them; run `manifest rebuild` as the repository's owner (sudo -u <owner>), or share the repository with a group (core.sharedRepository)",
            path.display()
        );
    }
    let config = Config::load(&repo)?;
    let snap = store::snapshot(&repo, &config).ok();
    let branches = repo.branches()?;
    // Branches at the same commit share one verdict; a rebuild trusts nothing stored.
    let mut by_commit: HashMap<ObjectId, crate::validate::check::Report> = HashMap::new();
    let mut changes = Vec::new();
    for (i, (branch, commit)) in branches.iter().enumerate() {
        if progress {
            eprint!(
                "\r\x1b[K[{n}/{total}] {} {}/{}: {branch}",
                path.display(),
                i + 1,
                branches.len()
            );
        }
        if !by_commit.contains_key(commit) {
            by_commit.insert(
                *commit,
                reuse::verdict(&repo, &config, *commit, None, None)?,
            );
        }
        let m = Stored::from_report(branch, *commit, &by_commit[commit], &config, None)
            .ok_or_else(|| Failure::usage(format!("cannot assemble the manifest of {branch}")))?;
        changes.push((branch.clone(), Some(m)));
    }
    if let Some(s) = &snap {
        for b in s.index.branches.keys() {
            if !branches.iter().any(|(x, _)| x == b) {
                changes.push((b.clone(), None));
            }
        }
    }
    if progress {
        eprint!("\r\x1b[K");
    }
    let applied = store::apply_repair(&repo, &config, &changes, "taskhook: rebuild")?;
    let (commit, left_out) = match applied {
        Applied::Committed(id, left_out) => (Some(id), left_out),
        Applied::Unchanged(left_out) => (None, left_out),
    };
    Ok(Rebuilt {
        branches: branches.len(),
        manifest_ref: config.manifest_ref,
        commit,
        left_out,
    })
}
