//! Keeps manifests in the manifest ref (`refs/meta/tasks`): reads them, and writes new commits
//! whose parent is the previous manifest commit, moving the ref with compare-and-swap and
//! retrying when a concurrent push won the race.

use std::collections::BTreeMap;
use std::time::Duration;

use crate::config::Config;
use crate::git::{GitError, ObjectId, Repo};
use crate::manifest::{self, Branch, Index, IndexEntry, MAX_MANIFEST_BYTES};
use crate::validate::check::Report;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error(transparent)]
    Git(#[from] GitError),
    #[error("{file} in {reference}: {source}")]
    Read {
        file: String,
        reference: String,
        source: manifest::ReadError,
    },
    #[error("{0} kept moving; gave up after {1} attempts")]
    Contended(String, usize),
    /// Written, the file would be larger than readers (`plan`, the hooks) accept: it would
    /// freeze the ref instead of updating it.
    #[error("{file} would be {size} bytes; readers accept at most {limit}: lower taskhook.maxTasks, or delete branches")]
    TooLarge {
        file: String,
        size: usize,
        limit: usize,
    },
}

/// The writer keeps to the limit the readers apply.
fn within_limit(file: &str, bytes: &[u8]) -> Result<(), StoreError> {
    if bytes.len() > MAX_MANIFEST_BYTES {
        return Err(StoreError::TooLarge {
            file: file.to_string(),
            size: bytes.len(),
            limit: MAX_MANIFEST_BYTES,
        });
    }
    Ok(())
}

/// The manifest ref as it is now.
pub struct Snapshot {
    pub commit: Option<ObjectId>,
    pub tree: Option<ObjectId>,
    pub index: Index,
}

pub fn snapshot(repo: &Repo, config: &Config) -> Result<Snapshot, StoreError> {
    let Some(commit) = repo.ref_target(&config.manifest_ref)? else {
        return snapshot_at(repo, config, None, None);
    };
    let tree = repo.commit_tree(commit)?;
    snapshot_at(repo, config, Some(commit), Some(tree))
}

/// The manifest at `commit`, whose tree is `tree` (both `None` before the first manifest).
pub fn snapshot_at(
    repo: &Repo,
    config: &Config,
    commit: Option<ObjectId>,
    tree: Option<ObjectId>,
) -> Result<Snapshot, StoreError> {
    let (Some(commit), Some(tree)) = (commit, tree) else {
        return Ok(Snapshot {
            commit: None,
            tree: None,
            index: Index {
                schema: manifest::SCHEMA_VERSION,
                branches: BTreeMap::new(),
                settings: None,
            },
        });
    };
    let index = match repo.read_path(tree, "index.json")? {
        Some(bytes) => manifest::parse_index(&bytes, MAX_MANIFEST_BYTES).map_err(|source| {
            StoreError::Read {
                file: "index.json".into(),
                reference: config.manifest_ref.clone(),
                source,
            }
        })?,
        None => Index {
            schema: manifest::SCHEMA_VERSION,
            branches: BTreeMap::new(),
            settings: None,
        },
    };
    Ok(Snapshot {
        commit: Some(commit),
        tree: Some(tree),
        index,
    })
}

/// Reads the stored manifest of `branch`, if there is one.
pub fn read_branch(
    repo: &Repo,
    config: &Config,
    snap: &Snapshot,
    branch: &str,
) -> Result<Option<Branch<'static>>, StoreError> {
    let (Some(tree), Some(entry)) = (snap.tree, snap.index.branches.get(branch)) else {
        return Ok(None);
    };
    let Some(bytes) = repo.read_path(tree, &entry.manifest)? else {
        return Ok(None);
    };
    manifest::parse_branch(&bytes, MAX_MANIFEST_BYTES)
        .map(|b| Some(b.into_owned()))
        .map_err(|source| StoreError::Read {
            file: entry.manifest.clone(),
            reference: config.manifest_ref.clone(),
            source,
        })
}

/// A branch manifest ready to store: the commit it pins, its bytes and the hooks' state.
pub struct Stored {
    pub commit: String,
    pub bytes: Vec<u8>,
    pub state: Vec<u8>,
    /// No tasks and no findings: a stored manifest that is empty too is kept as it is, so
    /// pushes to a repository without tasks write nothing.
    pub empty: bool,
}

impl Stored {
    /// The manifest of `branch` at `commit` for a verdict. A verdict that reuses a baseline's
    /// tasks takes their lines from `base`, the baseline's stored bytes; `None` when those do
    /// not hold what the verdict expects (the caller then checks the whole tree).
    pub fn from_report(
        branch: &str,
        commit: ObjectId,
        report: &Report,
        config: &Config,
        base: Option<&[u8]>,
    ) -> Option<Stored> {
        let hex = commit.to_string();
        Some(Stored {
            bytes: manifest::report_bytes(branch, &hex, report, config, base)?,
            state: manifest::to_bytes(&manifest::report_state(report, config)),
            commit: hex,
            empty: report.lists_nothing(),
        })
    }
}

impl Stored {
    /// [`Stored::from_report`] with the baseline's bytes as a buffer to make the new file out
    /// of: `stored[from..]` (see [`manifest::report_bytes_in`]).
    pub fn from_report_in(
        branch: &str,
        commit: ObjectId,
        report: &Report,
        config: &Config,
        stored: Vec<u8>,
        from: usize,
    ) -> Option<Stored> {
        let hex = commit.to_string();
        Some(Stored {
            bytes: manifest::report_bytes_in(branch, &hex, report, config, stored, from)?,
            state: manifest::to_bytes(&manifest::report_state(report, config)),
            commit: hex,
            empty: report.lists_nothing(),
        })
    }
}

/// A change to one branch's manifest: a new manifest, or `None` to remove it.
pub type Change = (String, Option<Stored>);

/// What [`apply`] did.
#[derive(Debug, PartialEq, Eq)]
pub enum Applied {
    /// A new manifest commit, and the pushed branches it leaves out for `taskhook.maxBranches`
    /// (each named in a warning and in the commit's message).
    Committed(ObjectId, Vec<String>),
    /// The stored manifests already said exactly this, leaving out the same branches (named in
    /// a warning).
    Unchanged(Vec<String>),
}

/// Writes `changes` on top of whatever the manifest ref holds, retrying on lost races.
pub fn apply(
    repo: &Repo,
    config: &Config,
    changes: &[Change],
    message: &str,
) -> Result<Applied, StoreError> {
    apply_with(repo, config, changes, message, snapshot, None)
}

/// Like [`apply`], starting from `snap`, a snapshot the caller read earlier (post-receive reads
/// one to find each branch's baseline): if the ref has moved since, the compare-and-swap fails
/// and the next attempt reads it anew.
pub fn apply_on(
    repo: &Repo,
    config: &Config,
    snap: Snapshot,
    changes: &[Change],
    message: &str,
) -> Result<Applied, StoreError> {
    apply_with(repo, config, changes, message, snapshot, Some(snap))
}

/// Like [`apply`] for a rebuild, which recomputes every branch: an unreadable `index.json`
/// (damaged by hand, say) is replaced rather than refused, keeping the ref's history.
pub fn apply_repair(
    repo: &Repo,
    config: &Config,
    changes: &[Change],
    message: &str,
) -> Result<Applied, StoreError> {
    apply_with(
        repo,
        config,
        changes,
        message,
        |repo, config| match snapshot(repo, config) {
            Err(StoreError::Read { .. }) => Ok(Snapshot {
                commit: repo.ref_target(&config.manifest_ref)?,
                tree: None,
                index: Index {
                    schema: manifest::SCHEMA_VERSION,
                    branches: BTreeMap::new(),
                    settings: None,
                },
            }),
            other => other,
        },
        None,
    )
}

fn apply_with(
    repo: &Repo,
    config: &Config,
    changes: &[Change],
    message: &str,
    read: impl Fn(&Repo, &Config) -> Result<Snapshot, StoreError>,
    first: Option<Snapshot>,
) -> Result<Applied, StoreError> {
    // A large branch file is written on threads of this scope (`Repo::write_blob_later`).
    std::thread::scope(|s| attempts(s, repo, config, changes, message, read, first))
}

/// [`apply_with`], with `s` for the threads that write large branch files.
fn attempts<'scope, 'env>(
    s: &'scope std::thread::Scope<'scope, 'env>,
    repo: &Repo,
    config: &Config,
    changes: &'env [Change],
    message: &str,
    read: impl Fn(&Repo, &Config) -> Result<Snapshot, StoreError>,
    mut first: Option<Snapshot>,
) -> Result<Applied, StoreError> {
    const ATTEMPTS: usize = 200;
    // A held lock is waited for until it counts as stale (then compare_and_swap removes it), so
    // a lock left by a killed process delays a push by at most `taskhook.staleLockSeconds`.
    let lock_deadline = std::time::Instant::now() + config.stale_lock + Duration::from_secs(2);
    let mut said_waiting = false;
    // Each branch file's blob id and sha256, kept from the first attempt: a retry after a lost
    // race writes the same bytes, so neither is computed (nor the file written) again.
    let mut written: Vec<Option<(ObjectId, String)>> = vec![None; changes.len()];
    // Branches left out for taskhook.maxBranches in the latest attempt.
    let mut refused: Vec<String> = Vec::new();
    let tell = |refused: &[String]| {
        const SHOWN: usize = 5;
        for branch in refused.iter().take(SHOWN) {
            eprintln!(
                "taskhook: warning: {} is not in the schedule manifest: it lists {} branches with tasks, as many as taskhook.maxBranches allows; delete branches with tasks that are no longer needed, or ask the server admin to raise taskhook.maxBranches",
                branch.escape_debug(),
                config.max_branches
            );
        }
        if refused.len() > SHOWN {
            eprintln!(
                "taskhook: warning: and {} more branches are not in the schedule manifest, for the same reason (the manifest commit's message names them)",
                refused.len() - SHOWN
            );
        }
    };
    // Large branch files still being written: in place before the ref names them.
    let mut pending = Vec::new();
    for attempt in 0..ATTEMPTS {
        // Large branch files whose id is still being computed: the change's index, the branch
        // file, its index in `pending`, and its sha256.
        let mut hashing: Vec<(usize, String, usize, String)> = Vec::new();
        let snap = match first.take() {
            Some(snap) => snap,
            None => read(repo, config)?,
        };
        let mut files: BTreeMap<String, ObjectId> = match snap.tree {
            Some(tree) => list_branch_files(repo, &snap.index, tree)?,
            None => BTreeMap::new(),
        };
        let mut index = snap.index.clone();
        index.schema = manifest::SCHEMA_VERSION;
        index.settings = Some(manifest::Settings::of(config));
        // Checked on every attempt: a branch that moved on (or came back) since its manifest was
        // computed is left to the hook of the push that moved it, so an older push finishing
        // late never overwrites a newer manifest.
        let current = still_current(repo, changes);
        // taskhook.maxBranches, which pre-receive (or update) enforced on each push alone: a
        // branch that concurrent pushes, or the update hook's one verdict per ref, would take
        // past it is left out of the manifest, and the pusher is told.
        let mut room = branch_room(repo, config, &index, &files, changes, &current);
        refused.clear();
        for (i, (branch, new)) in changes.iter().enumerate().filter(|(i, _)| current[*i]) {
            if new.as_ref().is_some_and(|m| m.empty)
                && stored_is_empty(repo, &index, &files, branch, new.as_ref())
            {
                continue;
            }
            let left_out = match (room.as_mut(), new) {
                (Some((counted, listed)), Some(m)) if !m.empty && !counted.contains(branch) => {
                    let full = *listed >= config.max_branches;
                    *listed += usize::from(!full);
                    full
                }
                _ => false,
            };
            // A branch left out loses what the manifest had for it (an empty manifest, which
            // no longer says what the branch holds): it is then a branch without a manifest,
            // as a new one left out is.
            if let Some(old) = index.branches.remove(branch) {
                files.remove(&manifest::state_file_of(&old.manifest));
                files.remove(&old.manifest);
            }
            if left_out {
                refused.push(branch.clone());
                continue;
            }
            if let Some(m) = new {
                let bytes = &m.bytes;
                let file = manifest::branch_file(branch);
                let state = manifest::state_file_of(&file);
                within_limit(&file, bytes)?;
                within_limit(&state, &m.state)?;
                let (id, sha256, state_id) = match &written[i] {
                    Some((id, sha256)) => (Some(*id), sha256.clone(), repo.write_blob(&m.state)?),
                    // A large file's id is computed on another thread while this one computes
                    // the index's digest of it, writes the state file, `index.json` and the
                    // file itself, and then (once the id is known) the trees and the commit;
                    // the file is moved into place before the ref update.
                    None if bytes.len() >= crate::git::PARALLEL_HASH_BYTES => {
                        pending.push(repo.write_blob_later(s, bytes));
                        let sha256 = manifest::sha256(bytes);
                        let state_id = repo.write_blob(&m.state)?;
                        hashing.push((i, file.clone(), pending.len() - 1, sha256.clone()));
                        (None, sha256, state_id)
                    }
                    None => {
                        let (id, state_id) =
                            repo.write_blob_and(bytes, || repo.write_blob(&m.state));
                        let (id, sha256) = (id?, manifest::sha256(bytes));
                        written[i] = Some((id, sha256.clone()));
                        (Some(id), sha256, state_id?)
                    }
                };
                if let Some(id) = id {
                    files.insert(file.clone(), id);
                }
                files.insert(state, state_id);
                index.branches.insert(
                    branch.clone(),
                    IndexEntry {
                        commit: m.commit.clone(),
                        manifest: file,
                        sha256,
                    },
                );
            }
        }
        let index_bytes = manifest::to_bytes(&index);
        within_limit("index.json", &index_bytes)?;
        let index_id = repo.write_blob(&index_bytes)?;
        for (i, file, p, sha256) in hashing {
            let id = pending[p].id()?;
            written[i] = Some((id, sha256));
            files.insert(file, id);
        }
        crate::error::trace::step("branch file hashed");
        let mut all: Vec<(String, ObjectId)> = files.into_iter().collect();
        all.push(("index.json".to_string(), index_id));
        let tree = repo.write_tree(&all)?;
        if Some(tree) == snap.tree {
            for blob in pending.drain(..) {
                blob.finish()?;
            }
            tell(&refused);
            return Ok(Applied::Unchanged(refused));
        }
        let commit = if refused.is_empty() {
            repo.write_commit(tree, snap.commit, message)?
        } else {
            let message = format!(
                "{}\nleft out for taskhook.maxBranches: {}\n",
                message.trim_end(),
                refused.join(", ")
            );
            repo.write_commit(tree, snap.commit, &message)?
        };
        crate::error::trace::step("index, trees and commit written");
        for blob in pending.drain(..) {
            blob.finish()?;
        }
        match repo.compare_and_swap(
            &config.manifest_ref,
            snap.commit,
            commit,
            message,
            config.stale_lock,
        ) {
            Ok(()) => {
                tell(&refused);
                return Ok(Applied::Committed(commit, refused));
            }
            Err(GitError::Race { .. }) => {
                // Someone else moved the ref: start over from what they wrote.
                std::thread::sleep(Duration::from_millis(5 + (attempt as u64 * 7) % 40));
            }
            Err(e) => {
                let locked = matches!(e, GitError::Locked(_));
                if (locked || repo.ref_locked(&config.manifest_ref))
                    && std::time::Instant::now() < lock_deadline
                {
                    if !said_waiting {
                        // The pusher sees this as a `remote:` line; it explains a pause.
                        let (lock, removed) = repo.ref_lock(&config.manifest_ref);
                        if removed {
                            eprintln!(
                                "taskhook: waiting for {lock}: another push is writing manifests, or a killed one left it (it is removed once older than taskhook.staleLockSeconds, {} s)",
                                config.stale_lock.as_secs()
                            );
                        } else {
                            eprintln!(
                                "taskhook: waiting for {lock}: git holds it while it writes any ref of this repository; if it stays, a killed git left it and the server admin can remove it when no git runs there",
                            );
                        }
                        said_waiting = true;
                    }
                    std::thread::sleep(Duration::from_millis(50));
                    continue;
                }
                return Err(e.into());
            }
        }
    }
    Err(StoreError::Contended(config.manifest_ref.clone(), ATTEMPTS))
}

/// Whether the stored manifest of `branch` is empty (no tasks, no findings) and made with the
/// same policy and rules as `new`.
fn stored_is_empty(
    repo: &Repo,
    index: &Index,
    files: &BTreeMap<String, ObjectId>,
    branch: &str,
    new: Option<&Stored>,
) -> bool {
    let (Some(entry), Some(new)) = (index.branches.get(branch), new) else {
        return false;
    };
    let Some(id) = files.get(&entry.manifest) else {
        return false;
    };
    let Ok(bytes) = repo.read_blob(*id) else {
        return false;
    };
    // An empty manifest differs from another empty one of the same rules only in its commit.
    let mut same = new.bytes.clone();
    if let Ok(text) = std::str::from_utf8(&new.bytes) {
        same = text.replace(&new.commit, &entry.commit).into_bytes();
    }
    bytes == same
}

/// Whether each branch is still where its change expects: at the manifest's commit, or gone
/// (a branch whose head cannot be read counts as gone). The heads are read at once.
fn still_current(repo: &Repo, changes: &[Change]) -> Vec<bool> {
    let names: Vec<String> = changes
        .iter()
        .map(|(branch, _)| format!("refs/heads/{branch}"))
        .collect();
    let heads = repo.ref_targets(&names).unwrap_or_default();
    changes
        .iter()
        .zip(&names)
        .map(|((_, new), name)| {
            let head = heads.get(name).copied().flatten();
            match new {
                Some(m) => head.is_some() && head == ObjectId::from_hex(m.commit.as_bytes()).ok(),
                None => head.is_none(),
            }
        })
        .collect()
}

/// The branches `index` lists with tasks or findings, as their state files say (the id of each
/// from `state_id`); a state file that cannot be read counts as one with tasks.
fn listed_with_tasks(
    repo: &Repo,
    index: &Index,
    state_id: &impl Fn(&str) -> Option<ObjectId>,
) -> std::collections::BTreeSet<String> {
    index
        .branches
        .iter()
        .filter(|(_, entry)| has_tasks(repo, entry, state_id))
        .map(|(branch, _)| branch.clone())
        .collect()
}

/// Whether a listed branch has tasks or findings, as its state file says; a state file that
/// cannot be read counts as one with tasks.
fn has_tasks(
    repo: &Repo,
    entry: &IndexEntry,
    state_id: &impl Fn(&str) -> Option<ObjectId>,
) -> bool {
    let state = state_id(&manifest::state_file_of(&entry.manifest))
        .and_then(|id| repo.read_blob(id).ok())
        .and_then(|bytes| manifest::parse_state(&bytes));
    state.is_none_or(|s| s.tasks > 0 || !s.findings.is_empty() || !s.problems.is_empty())
}

/// The branches `index` lists with tasks, and how many of them stay once `without()` (branches
/// deleted or left without tasks) are gone; `None` while even every listed branch and every new
/// one in `with_tasks` together keep to `limit` (the usual case, at no cost), or while none of
/// `with_tasks` would be added (one read of each's state).
fn room<'a>(
    repo: &Repo,
    limit: usize,
    index: &Index,
    with_tasks: &[&str],
    without: impl FnOnce() -> Vec<&'a str>,
    state_id: impl Fn(&str) -> Option<ObjectId>,
) -> Option<(std::collections::BTreeSet<String>, usize)> {
    let new = with_tasks
        .iter()
        .filter(|b| !index.branches.contains_key(**b))
        .count();
    if index.branches.len() + new <= limit {
        return None;
    }
    let adds = with_tasks.iter().any(|b| {
        index
            .branches
            .get(*b)
            .is_none_or(|entry| !has_tasks(repo, entry, &state_id))
    });
    if !adds {
        return None;
    }
    let counted = listed_with_tasks(repo, index, &state_id);
    let gone = without().iter().filter(|b| counted.contains(**b)).count();
    let kept = counted.len() - gone;
    Some((counted, kept))
}

/// [`room`] for the changes an attempt writes: those still current delete or empty theirs.
fn branch_room(
    repo: &Repo,
    config: &Config,
    index: &Index,
    files: &BTreeMap<String, ObjectId>,
    changes: &[Change],
    current: &[bool],
) -> Option<(std::collections::BTreeSet<String>, usize)> {
    let has = |m: &Option<Stored>| m.as_ref().is_some_and(|m| !m.empty);
    let with_tasks: Vec<&str> = changes
        .iter()
        .filter(|(_, m)| has(m))
        .map(|(b, _)| b.as_str())
        .collect();
    let without = || {
        changes
            .iter()
            .zip(current)
            .filter(|(c, current)| !has(&c.1) && **current)
            .map(|((b, _), _)| b.as_str())
            .collect()
    };
    room(
        repo,
        config.max_branches,
        index,
        &with_tasks,
        without,
        |file| files.get(file).copied(),
    )
}

/// A push that would take the manifest past `taskhook.maxBranches` branches with tasks.
#[derive(Debug, PartialEq, Eq)]
pub struct OverBranchLimit {
    /// How many branches with tasks the manifest would list.
    pub would_list: usize,
    pub limit: usize,
    /// The pushed branches that would be added to them.
    pub added: Vec<String>,
}

impl std::fmt::Display for OverBranchLimit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "this push would give the schedule manifest {} branches with tasks, more than taskhook.maxBranches ({}) allows: {}; delete branches with tasks that are no longer needed, or ask the server admin to raise taskhook.maxBranches",
            self.would_list,
            self.limit,
            some_names(&self.added),
        )
    }
}

/// `names` for one line: all of them up to five, else the first five and how many more.
pub fn some_names<S: AsRef<str>>(names: &[S]) -> String {
    const SHOWN: usize = 5;
    let shown: Vec<&str> = names.iter().take(SHOWN).map(AsRef::as_ref).collect();
    match names.len() - shown.len() {
        0 => shown.join(", "),
        more => format!("{} and {more} more", shown.join(", ")),
    }
}

/// Whether the push keeps to `taskhook.maxBranches`: `with_tasks` are the pushed branches whose
/// new manifest lists tasks or findings, `without` those deleted or left without any. Costs
/// nothing while the manifest lists fewer branches than the limit (with or without tasks), and
/// a read of the pushed branches' states while none of them would be added; else one small read
/// per listed branch.
pub fn over_branch_limit(
    repo: &Repo,
    config: &Config,
    snap: &Snapshot,
    with_tasks: &[&str],
    without: &[&str],
) -> Option<OverBranchLimit> {
    let limit = config.max_branches;
    // Every listed branch's state file, found on first use in one pass over `state/` (a tree
    // that cannot be read leaves them all unknown, which counts them as with tasks).
    let states: std::cell::OnceCell<BTreeMap<String, ObjectId>> = std::cell::OnceCell::new();
    let state_id = |file: &str| {
        // No manifest yet (a first push of many branches): nothing is listed.
        let tree = snap.tree?;
        let states = states.get_or_init(|| {
            let files: Vec<String> = snap
                .index
                .branches
                .values()
                .map(|entry| manifest::state_file_of(&entry.manifest))
                .collect();
            repo.path_ids(tree, files.iter().map(String::as_str))
                .map(|ids| ids.into_iter().map(|(f, id)| (f.to_string(), id)).collect())
                .unwrap_or_default()
        });
        states.get(file).copied()
    };
    let (counted, kept) = room(
        repo,
        limit,
        &snap.index,
        with_tasks,
        || without.to_vec(),
        state_id,
    )?;
    let added: Vec<String> = with_tasks
        .iter()
        .filter(|b| !counted.contains(**b))
        .map(|b| b.to_string())
        .collect();
    (kept + added.len() > limit).then_some(OverBranchLimit {
        would_list: kept + added.len(),
        limit,
        added,
    })
}

/// The blob id of each branch file named in the index, and of its state file: each directory
/// read once, whatever the number of branches.
fn list_branch_files(
    repo: &Repo,
    index: &Index,
    tree: ObjectId,
) -> Result<BTreeMap<String, ObjectId>, StoreError> {
    let files: Vec<String> = index
        .branches
        .values()
        .flat_map(|entry| {
            [
                entry.manifest.clone(),
                manifest::state_file_of(&entry.manifest),
            ]
        })
        .collect();
    let ids = repo.path_ids(tree, files.iter().map(String::as_str))?;
    Ok(ids.into_iter().map(|(f, id)| (f.to_string(), id)).collect())
}

#[cfg(test)]
mod limit_tests {
    use super::*;

    #[test]
    fn the_branch_limit_names_at_most_five_branches() {
        let over = OverBranchLimit {
            would_list: 1007,
            limit: 1000,
            added: (1..=7).map(|i| format!("f{i}")).collect(),
        };
        assert!(
            over.to_string().starts_with(
                "this push would give the schedule manifest 1007 branches with tasks, more than taskhook.maxBranches (1000) allows: f1, f2, f3, f4, f5 and 2 more;"
            ),
            "{over}"
        );
    }

    /// A manifest of 300 branches, a few of them in subdirectories: every branch file and state
    /// file is found (one missing, one a directory), and each tree is read once, not once per
    /// file: `branches/` and `state/` are too large for the small-object cache, so looking the
    /// files up one by one read each of them 300 times (600 reads), and a push to a
    /// repository of 1,000 branches spent 150-190 ms here.
    #[test]
    fn listing_the_branch_files_reads_each_directory_once() {
        let dir = tempfile::tempdir().expect("tmp");
        let git_dir = crate::git::tests::bare_repo(dir.path(), "[core]\n\tbare = true\n");
        let repo = Repo::open(&git_dir).expect("open");
        let mut index = Index::default();
        let mut files = Vec::new();
        let mut expected = BTreeMap::new();
        for i in 0..300 {
            let branch = match i {
                0..=2 => format!("epel/{i}"),
                3 => "a/b/c".to_string(),
                _ => format!("f{i}"),
            };
            let file = manifest::branch_file(&branch);
            let blob = repo.write_blob(branch.as_bytes()).expect("blob");
            let state = repo.write_blob(format!("s{i}").as_bytes()).expect("blob");
            if i != 7 {
                files.push((file.clone(), blob));
                expected.insert(file.clone(), blob);
            }
            if i == 9 {
                // A directory where the state file should be: not a file.
                files.push((format!("{}/x", manifest::state_file_of(&file)), state));
            } else {
                files.push((manifest::state_file_of(&file), state));
                expected.insert(manifest::state_file_of(&file), state);
            }
            index.branches.insert(
                branch,
                IndexEntry {
                    commit: "0".repeat(40),
                    manifest: file,
                    sha256: String::new(),
                },
            );
        }
        let tree = repo.write_tree(&files).expect("tree");
        let repo = Repo::open(&git_dir).expect("open again");
        let listed = list_branch_files(&repo, &index, tree).expect("list");
        assert_eq!(listed, expected);
        // The root, `branches/`, `state/`, and their `epel/`, `a/` and `a/b/`.
        assert!(
            repo.objects_read() <= 9,
            "{} objects read",
            repo.objects_read()
        );
        for (file, id) in &listed {
            assert_eq!(repo.path_id(tree, file).expect("path"), Some(*id), "{file}");
        }
    }

    #[test]
    fn five_names_are_shown_and_the_rest_counted() {
        let names = |n: usize| (1..=n).map(|i| format!("f{i}")).collect::<Vec<_>>();
        assert_eq!(some_names::<String>(&[]), "");
        assert_eq!(some_names(&names(1)), "f1");
        assert_eq!(some_names(&names(5)), "f1, f2, f3, f4, f5");
        assert_eq!(some_names(&names(6)), "f1, f2, f3, f4, f5 and 1 more");
        assert_eq!(some_names(&["a", "b"]), "a, b");
    }

    #[test]
    fn the_writer_refuses_what_readers_would_refuse() {
        assert!(within_limit("index.json", &vec![b' '; MAX_MANIFEST_BYTES]).is_ok());
        let err = within_limit("index.json", &vec![b' '; MAX_MANIFEST_BYTES + 1])
            .expect_err("over")
            .to_string();
        assert!(
            err.starts_with("index.json would be 16777217 bytes; readers accept at most 16777216"),
            "{err}"
        );
    }
}
