//! The verdicts pre-receive hands to post-receive for the same push.
//!
//! Both hooks need the verdict on each pushed branch: pre-receive to accept or refuse the push,
//! post-receive to write the branch's manifest. A verdict is a pure function of the branch, its
//! new commit, the stored manifest it starts from, and the rules (the config's fingerprint,
//! which includes taskhook's version). So pre-receive, once it accepts a push, leaves each
//! verdict it gave in `$GIT_DIR/taskhook/handover/`, named by a digest of all of those (the
//! stored manifest named by the manifest ref's commit), together with what it read of that
//! manifest: its tree and `index.json`, and the blob of the branch file its verdict was
//! computed against. post-receive reads the manifest ref, computes the same name and takes the
//! file instead of reading the manifest and walking the tree again. A name for other inputs is
//! simply not found: a manifest ref that moved in between (another push wrote it), a verdict
//! cut short by the time budget (never handed over), a file that is missing, damaged or too
//! large. post-receive then reads and computes everything itself, as it always can.
//!
//! Nothing here can fail a push: files that cannot be written or read are skipped. Files a
//! push leaves behind (one refused by a later hook, say) are removed once older than ten
//! minutes, by one push in sixteen (picked by the names it writes).

use std::io::Read as _;
use std::path::PathBuf;
use std::time::{Duration, SystemTime};

use crate::config::Config;
use crate::git::{ObjectId, Repo};
use crate::manifest::store::Snapshot;
use crate::manifest::Index;
use crate::validate::check::Report;

/// Where handed-over verdicts wait, in the repository's git directory.
const DIR: &str = "taskhook/handover";
/// Older files are left over from pushes that did not complete.
const STALE: Duration = Duration::from_secs(600);
/// Larger verdicts (tens of thousands of findings) are not handed over.
const MAX_BYTES: usize = 32 << 20;

/// A verdict as post-receive takes it over.
#[derive(serde::Deserialize)]
pub struct Handed {
    key: String,
    /// The manifest's tree and index, as pre-receive read them at the commit the key names.
    tree: Option<String>,
    index: Index,
    /// The stored branch file the verdict was computed against (its lines are carried over).
    prior_blob: Option<String>,
    pub report: Report,
}

impl Handed {
    /// The stored manifest pre-receive read, at `commit` (the manifest ref's commit, which the
    /// key names): the same objects post-receive would read. `None` when what was handed over
    /// does not fit (a tree without a commit, or the other way round): a manifest written from
    /// it could lose other branches' files.
    pub fn snapshot(&self, commit: Option<ObjectId>) -> Option<Snapshot> {
        let tree = match self.tree.as_deref() {
            Some(hex) => Some(id(hex)?),
            None => None,
        };
        (tree.is_some() == commit.is_some()).then(|| Snapshot {
            commit,
            tree,
            index: self.index.clone(),
        })
    }

    /// The stored branch file the verdict was computed against, if there was one.
    pub fn prior_blob(&self) -> Option<ObjectId> {
        self.prior_blob.as_deref().and_then(id)
    }

    /// Whether `other` was read from the same stored manifest.
    pub fn same_snapshot(&self, other: &Handed) -> bool {
        self.tree == other.tree && self.index == other.index
    }
}

#[derive(serde::Serialize)]
struct Handing<'a> {
    key: &'a str,
    tree: Option<String>,
    index: &'a Index,
    prior_blob: Option<String>,
    report: &'a Report,
}

fn id(hex: &str) -> Option<ObjectId> {
    ObjectId::from_hex(hex.as_bytes()).ok()
}

/// The name of the verdict on `branch` at `commit`, starting from the stored manifest at
/// `manifest` (the manifest ref's commit; `None` before the first), under `config`.
pub fn key(
    config: &Config,
    branch: &str,
    commit: &ObjectId,
    manifest: Option<&ObjectId>,
) -> String {
    use sha2::{Digest, Sha256};
    let text = format!(
        "taskhook handover 2\0{}\0{branch}\0{commit}\0{}",
        config.fingerprint(),
        manifest.map(ObjectId::to_string).unwrap_or_default()
    );
    crate::config::hex(&Sha256::digest(text.as_bytes()))
}

/// A verdict ready to hand over, or `None` when it must not be (cut short by the time budget),
/// is too large, or is not worth it: a tree without tasks or findings (most dist-git
/// repositories) costs post-receive next to nothing, and leaves no file behind this way.
/// `snap` is the stored manifest the verdict started from, `prior_blob` finds the branch file
/// in it that the verdict was computed against.
pub fn prepare(
    key: &str,
    report: &Report,
    snap: &Snapshot,
    prior_blob: impl FnOnce() -> Option<ObjectId>,
) -> Option<(String, Vec<u8>)> {
    if report.task_count() == 0 && report.diagnostics.is_empty() {
        return None;
    }
    let cut_short = report
        .diagnostics
        .iter()
        .chain(report.tasks.iter().flat_map(|t| t.diagnostics.iter()))
        .chain(report.reused_findings.values().flatten())
        .any(|d| d.code == "time-budget");
    if cut_short {
        return None;
    }
    let handing = Handing {
        key,
        tree: snap.tree.map(|t| t.to_string()),
        index: &snap.index,
        prior_blob: prior_blob().map(|b| b.to_string()),
        report,
    };
    let bytes = serde_json::to_vec(&handing).ok()?;
    (bytes.len() <= MAX_BYTES).then(|| (key.to_string(), bytes))
}

/// Leaves prepared verdicts for post-receive (pre-receive, once it accepts the push). Each is
/// written straight to its name: a reader that catches one half written finds JSON that does
/// not parse. Two pushes that write the same name push one commit to one branch from one
/// stored manifest, so they write the same verdict (the baseline of a new branch, the default
/// branch's, could differ if `HEAD` moved in between: each file still holds a verdict and the
/// branch file it was computed against, which is all post-receive takes together).
pub fn give(repo: &Repo, prepared: &[(String, Vec<u8>)]) {
    if prepared.is_empty() {
        return;
    }
    let dir = dir(repo);
    for (key, bytes) in prepared {
        let path = dir.join(format!("{key}.json"));
        let written = std::fs::write(&path, bytes).or_else(|e| {
            if e.kind() != std::io::ErrorKind::NotFound {
                return Err(e);
            }
            std::fs::create_dir_all(&dir)?;
            std::fs::write(&path, bytes)
        });
        if written.is_err() {
            return;
        }
    }
    // Normally empty (post-receive removes what it takes), so looked through by one push in
    // sixteen: the names are digests, and one starting with `0` picks that push.
    if prepared.iter().any(|(key, _)| key.starts_with('0')) {
        remove_stale(&dir);
    }
}

/// The verdict pre-receive left under `key`, removing it; `None` when there is none to trust.
pub fn take(repo: &Repo, key: &str) -> Option<Handed> {
    let path = dir(repo).join(format!("{key}.json"));
    let file = std::fs::File::open(&path).ok()?;
    let mut bytes = Vec::new();
    let read = file
        .take(MAX_BYTES as u64 + 1)
        .read_to_end(&mut bytes)
        .is_ok();
    let _ = std::fs::remove_file(&path);
    if !read || bytes.len() > MAX_BYTES {
        return None;
    }
    let handed: Handed = serde_json::from_slice(&bytes).ok()?;
    (handed.key == key).then_some(handed)
}

fn dir(repo: &Repo) -> PathBuf {
    repo.git_dir().join(DIR)
}

/// Removes the handover directory of the repository at `git_dir` (and `taskhook/`, once
/// empty): for `taskhook uninstall`. The removed directory, if there was one.
pub fn remove_all(git_dir: &std::path::Path) -> std::io::Result<Option<PathBuf>> {
    let dir = git_dir.join(DIR);
    if !dir.exists() {
        return Ok(None);
    }
    std::fs::remove_dir_all(&dir)?;
    if let Some(parent) = dir.parent() {
        // Left in place if anything else is in it.
        let _ = std::fs::remove_dir(parent);
    }
    Ok(Some(dir))
}

fn remove_stale(dir: &std::path::Path) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    let now = SystemTime::now();
    for entry in entries.flatten() {
        let old = entry
            .metadata()
            .and_then(|m| m.modified())
            .is_ok_and(|t| now.duration_since(t).is_ok_and(|age| age > STALE));
        if old {
            let _ = std::fs::remove_file(entry.path());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::validate::diag::Diagnostic;

    #[test]
    fn the_name_changes_with_every_input_of_the_verdict() {
        let config = Config::default();
        let a = ObjectId::from_hex(b"1111111111111111111111111111111111111111").expect("id");
        let b = ObjectId::from_hex(b"2222222222222222222222222222222222222222").expect("id");
        let base = key(&config, "main", &a, None);
        assert_eq!(base, key(&config, "main", &a, None));
        assert_ne!(base, key(&config, "main", &b, None));
        assert_ne!(base, key(&config, "rawhide", &a, None));
        assert_ne!(base, key(&config, "main", &a, Some(&b)));
        assert_ne!(
            key(&config, "main", &a, Some(&a)),
            key(&config, "main", &a, Some(&b))
        );
        let mut other = config.clone();
        other.rules.limits.max_bytes += 1;
        assert_ne!(base, key(&other, "main", &a, None));
    }

    fn empty() -> Snapshot {
        Snapshot {
            commit: None,
            tree: None,
            index: Index::default(),
        }
    }

    #[test]
    fn the_stored_manifest_read_is_handed_over_with_the_verdict() {
        let report = Report {
            reused_count: 3,
            ..Report::default()
        };
        let tree = ObjectId::from_hex(b"3333333333333333333333333333333333333333").expect("id");
        let blob = ObjectId::from_hex(b"4444444444444444444444444444444444444444").expect("id");
        let mut snap = empty();
        snap.tree = Some(tree);
        snap.index.schema = 4;
        let (_, bytes) = prepare("k", &report, &snap, || Some(blob)).expect("handed over");
        let back: Handed = serde_json::from_slice(&bytes).expect("parses");
        assert_eq!(back.prior_blob(), Some(blob));
        let taken = back.snapshot(Some(blob)).expect("a snapshot");
        assert_eq!(
            (taken.commit, taken.tree, taken.index),
            (Some(blob), Some(tree), snap.index.clone())
        );
        // A tree needs a commit, and a commit a tree.
        assert!(back.snapshot(None).is_none());
        let (_, other) = prepare("k", &report, &empty(), || None).expect("handed over");
        let other: Handed = serde_json::from_slice(&other).expect("parses");
        assert!(back.same_snapshot(&back) && !back.same_snapshot(&other));
        assert_eq!(other.prior_blob(), None);
        assert!(other.snapshot(Some(blob)).is_none());
        assert!(other.snapshot(None).is_some());
        // A damaged tree id is no snapshot at all.
        let damaged = String::from_utf8(bytes)
            .expect("utf-8")
            .replace(&tree.to_string(), "not-hex");
        let damaged: Handed = serde_json::from_slice(damaged.as_bytes()).expect("parses");
        assert!(damaged.snapshot(Some(blob)).is_none());
    }

    #[test]
    fn a_verdict_cut_short_by_the_time_budget_is_not_handed_over() {
        let mut report = Report {
            reused_count: 3,
            ..Report::default()
        };
        let (name, bytes) = prepare("k", &report, &empty(), || None).expect("handed over");
        assert_eq!(name, "k");
        let back: Handed = serde_json::from_slice(&bytes).expect("parses");
        assert_eq!(back.key, "k");
        report.reused_findings.insert(
            "t".into(),
            vec![Diagnostic::error(
                "time-budget",
                "t/runtask.yml",
                "not checked",
            )],
        );
        assert!(prepare("k", &report, &empty(), || None).is_none());
    }

    #[test]
    fn a_tree_without_tasks_is_not_handed_over() {
        assert!(prepare("k", &Report::default(), &empty(), || None).is_none());
    }
}
