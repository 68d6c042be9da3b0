//! The bare cache repositories that http(s) fetches go through, one per remote URL, under a
//! cache directory shared by `plan`, `listen`, `check --server` and `checkout`.
//!
//! - **Made whole, or not at all.** A new cache repository is made under a temporary name and
//!   takes its place only once a first fetch into it succeeded: a repository that does not
//!   exist, or serves no manifest, leaves nothing behind (on a bus naming every package built,
//!   most have none). It is made by writing its few files, not by `git init`: no hooks or other
//!   files from a template (`init.templateDir` could name hooks, which a fetch would run), and
//!   always SHA-1, whatever `init.defaultObjectFormat` says.
//! - **Repaired when damaged.** A fetch into a cache repository that fails for a reason that is
//!   not the server's (a damaged pack or config, files removed) is done again into a new one,
//!   which replaces it.
//! - **One fetch at a time.** Fetches into one repository take its [`Lock`] (the kernel's lock
//!   on a file, released when its holder dies) in turn: git's own locks make a second fetch
//!   fail rather than wait.
//! - **Bounded in total.** Once a new repository would make more than `max_repos`, the least
//!   recently fetched ones are removed, down to nine tenths of it. Each fetch is bounded in
//!   what it may add, and a repository grown past twice that is started again (see
//!   `fetch_via_shallow`).
//!
//! Removal renames a repository out of the way first, so a reader never sees it half removed;
//! temporary and renamed-away directories left by a killed process are removed an hour later.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime};

use super::FetchError;

/// How many cache repositories a cache directory keeps by default.
pub const DEFAULT_MAX_REPOS: usize = 1000;

/// What temporary names start with: a repository being made, or one on its way out.
const MAKING: &str = "tmp-";
const LEAVING: &str = "old-";
/// Temporary directories this old were left by a process that was killed.
const LEFT_BEHIND: Duration = Duration::from_secs(3600);

/// The cache repository of `url` (which may not exist yet).
pub fn path_of(cache_dir: &Path, url: &str) -> PathBuf {
    let key = crate::manifest::sha256(url.as_bytes());
    cache_dir.join(&key[..16])
}

/// Whether `dir` is a cache repository in place (made by [`make`], or by an earlier taskhook).
pub fn exists(dir: &Path) -> bool {
    dir.join("HEAD").is_file()
}

/// A new, empty cache repository under a temporary name in `cache_dir`, for [`settle`] or
/// [`discard`].
pub fn make(cache_dir: &Path) -> Result<PathBuf, FetchError> {
    static MADE: AtomicU64 = AtomicU64::new(0);
    let failed = |what: &Path, e: std::io::Error| {
        FetchError::Cache(format!(
            "cannot make a cache repository in {}: {e}",
            what.display()
        ))
    };
    std::fs::create_dir_all(cache_dir).map_err(|e| failed(cache_dir, e))?;
    let nanos = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap_or_default()
        .subsec_nanos();
    let dir = cache_dir.join(format!(
        "{MAKING}{}-{}-{nanos}",
        std::process::id(),
        MADE.fetch_add(1, Ordering::Relaxed)
    ));
    let write = || -> std::io::Result<()> {
        std::fs::create_dir(&dir)?;
        for d in ["objects/pack", "objects/info", "refs/heads", "refs/tags"] {
            std::fs::create_dir_all(dir.join(d))?;
        }
        std::fs::write(
            dir.join("config"),
            "[core]\n\trepositoryformatversion = 0\n\tfilemode = true\n\tbare = true\n",
        )?;
        // HEAD last: a directory with a HEAD file is a repository to `exists`.
        std::fs::write(dir.join("HEAD"), "ref: refs/heads/main\n")
    };
    match write() {
        Ok(()) => Ok(dir),
        Err(e) => {
            discard(&dir);
            Err(failed(&dir, e))
        }
    }
}

/// Whether cache repositories can be made in `cache_dir` (made if missing): a service checks
/// this at start rather than failing every http(s) fetch.
pub fn usable(cache_dir: &Path) -> Result<(), FetchError> {
    make(cache_dir).map(|made| discard(&made))
}

/// Puts `made` (from [`make`]) in place as `dir`; a repository already there is replaced when
/// `replace` (it is damaged) or when it has no HEAD, else kept and `made` discarded (another
/// process made it first). When a repository was added, keeps the cache to `max_repos`.
pub fn settle(made: &Path, dir: &Path, replace: bool, max_repos: usize) {
    let Some(cache_dir) = dir.parent() else {
        discard(made);
        return;
    };
    // A directory there that is not a repository (its HEAD removed) is damaged too.
    if (replace || !exists(dir)) && dir.exists() {
        discard(dir);
    }
    if std::fs::rename(made, dir).is_err() {
        discard(made);
        return;
    }
    if !replace {
        prune(cache_dir, max_repos, Some(dir));
    }
}

/// Removes the cache repository `dir`: renamed out of the way, then removed.
pub fn discard(dir: &Path) {
    let leaving = dir.file_name().and_then(|n| n.to_str()).map(|name| {
        let name = name.strip_prefix(MAKING).unwrap_or(name);
        dir.with_file_name(format!("{LEAVING}{name}-{}", std::process::id()))
    });
    match leaving {
        Some(to) if std::fs::rename(dir, &to).is_ok() => {
            let _ = std::fs::remove_dir_all(&to);
        }
        _ => {
            let _ = std::fs::remove_dir_all(dir);
        }
    }
}

/// When `cache_dir` holds more than `max_repos` cache repositories, removes the least recently
/// fetched ones (never `keep`) down to nine tenths of `max_repos`; and temporary directories a
/// killed process left. Looks at the cache's names only, unless it is over the limit.
pub fn prune(cache_dir: &Path, max_repos: usize, keep: Option<&Path>) {
    let Ok(entries) = std::fs::read_dir(cache_dir) else {
        return;
    };
    let mut repos = Vec::new();
    for e in entries.flatten() {
        let name = e.file_name();
        let Some(name) = name.to_str() else { continue };
        if name.len() == 16 && name.bytes().all(|b| b.is_ascii_hexdigit()) {
            repos.push(e.path());
        } else if name.starts_with(MAKING) || name.starts_with(LEAVING) {
            let old = e
                .metadata()
                .and_then(|m| m.modified())
                .ok()
                .and_then(|t| t.elapsed().ok())
                .is_some_and(|age| age > LEFT_BEHIND);
            if old {
                let _ = std::fs::remove_dir_all(e.path());
            }
        }
    }
    if repos.len() <= max_repos {
        return;
    }
    // Last fetched: git writes FETCH_HEAD on every fetch; a repository never fetched into is
    // as old as its HEAD.
    let used = |dir: &Path| {
        ["FETCH_HEAD", "HEAD"]
            .iter()
            .find_map(|f| {
                std::fs::metadata(dir.join(f))
                    .and_then(|m| m.modified())
                    .ok()
            })
            .unwrap_or(SystemTime::UNIX_EPOCH)
    };
    let mut by_use: Vec<(SystemTime, PathBuf)> = repos
        .into_iter()
        .filter(|p| Some(p.as_path()) != keep)
        .map(|p| (used(&p), p))
        .collect();
    by_use.sort();
    let target = max_repos - max_repos / 10;
    let kept_beside = usize::from(keep.is_some());
    let excess = (by_use.len() + kept_beside).saturating_sub(target);
    for (_, dir) in by_use.into_iter().take(excess) {
        discard(&dir);
    }
}

/// An exclusive lock on a cache repository, held while fetching into it and reading what was
/// fetched: git's own locks make a second fetch into one repository fail (`shallow.lock`
/// exists, or the shallow file changed under it) rather than wait, and a listener plans
/// several messages at once, often of one package. It is the kernel's lock on a file (`flock`),
/// so a process killed while holding it holds it no longer; the file stays.
#[derive(Debug)]
pub struct Lock {
    _held: std::fs::File,
}

/// The lock file in a cache repository; not `*.lock`, which `clear_stale_locks` removes.
const LOCK_FILE: &str = "taskhook.flock";

impl Lock {
    /// Waits for the lock of the cache repository `dir`, at most twice `timeout` (what a holder
    /// may take: its fetch is bounded by `timeout`).
    pub fn acquire(dir: &Path, timeout: Duration) -> Result<Lock, FetchError> {
        let path = dir.join(LOCK_FILE);
        let file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .map_err(|e| FetchError::Cache(format!("cannot lock {}: {e}", path.display())))?;
        let start = std::time::Instant::now();
        loop {
            match file.try_lock() {
                Ok(()) => return Ok(Lock { _held: file }),
                Err(std::fs::TryLockError::WouldBlock) => {
                    if start.elapsed() > timeout * 2 {
                        return Err(FetchError::Timeout(
                            (timeout * 2).as_secs(),
                            format!("{} (held by another fetch)", path.display()),
                        ));
                    }
                    std::thread::sleep(Duration::from_millis(10));
                }
                Err(std::fs::TryLockError::Error(e)) => {
                    return Err(FetchError::Cache(format!(
                        "cannot lock {}: {e}",
                        path.display()
                    )))
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(dir: &Path) -> Vec<String> {
        let mut n: Vec<String> = std::fs::read_dir(dir)
            .expect("dir")
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect();
        n.sort();
        n
    }

    #[test]
    fn a_made_repository_is_one_git_reads_and_has_nothing_from_a_template() {
        let tmp = tempfile::tempdir().expect("tmp");
        let made = make(tmp.path()).expect("made");
        assert!(exists(&made));
        assert_eq!(names(&made), ["HEAD", "config", "objects", "refs"]);
        let repo = crate::git::Repo::open(&made).expect("a repository");
        assert_eq!(repo.ref_target("refs/heads/main").expect("read"), None);
        let dir = path_of(tmp.path(), "https://example.org/x.git");
        settle(&made, &dir, false, DEFAULT_MAX_REPOS);
        assert!(exists(&dir) && !made.exists());
        // Made again by another process meanwhile: the one in place stays.
        std::fs::write(dir.join("FETCH_HEAD"), "first\n").expect("write");
        let again = make(tmp.path()).expect("made");
        settle(&again, &dir, false, DEFAULT_MAX_REPOS);
        assert!(dir.join("FETCH_HEAD").is_file() && !again.exists());
        // Replaced when damaged.
        let fresh = make(tmp.path()).expect("made");
        settle(&fresh, &dir, true, DEFAULT_MAX_REPOS);
        assert!(exists(&dir) && !dir.join("FETCH_HEAD").exists());
        assert_eq!(
            names(tmp.path()),
            [dir.file_name().expect("name").to_string_lossy()]
        );
    }

    #[test]
    fn a_lock_is_waited_for_and_not_held_past_its_holder() {
        let tmp = tempfile::tempdir().expect("tmp");
        let held = Lock::acquire(tmp.path(), Duration::from_secs(5)).expect("lock");
        let waited = std::time::Instant::now();
        let again = Lock::acquire(tmp.path(), Duration::from_millis(100));
        assert!(matches!(again, Err(FetchError::Timeout(..))), "{again:?}");
        assert!(waited.elapsed() >= Duration::from_millis(200));
        drop(held);
        Lock::acquire(tmp.path(), Duration::from_secs(5)).expect("free again");
        // A holder that is killed holds it no longer.
        let mut holder = {
            use std::os::unix::process::CommandExt as _;
            std::process::Command::new("flock")
                .arg("-o")
                .arg(tmp.path().join(LOCK_FILE))
                .args(["sleep", "60"])
                .process_group(0)
                .spawn()
                .expect("flock")
        };
        let start = std::time::Instant::now();
        while Lock::acquire(tmp.path(), Duration::ZERO).is_ok() {
            assert!(start.elapsed() < Duration::from_secs(10), "never held");
            std::thread::sleep(Duration::from_millis(20));
        }
        // The holder and its sleep, as `kill -9` of a listener's process group would.
        crate::trigger::fetch::kill_group(holder.id());
        let _ = holder.wait();
        let taken = std::time::Instant::now();
        Lock::acquire(tmp.path(), Duration::from_secs(5)).expect("taken over");
        assert!(taken.elapsed() < Duration::from_secs(1));
    }

    #[test]
    fn the_least_recently_fetched_repositories_go_first() {
        let tmp = tempfile::tempdir().expect("tmp");
        let now = SystemTime::now();
        let mut dirs = Vec::new();
        for i in 0..12u64 {
            let made = make(tmp.path()).expect("made");
            let dir = path_of(tmp.path(), &format!("https://example.org/{i}.git"));
            std::fs::rename(&made, &dir).expect("rename");
            // Repository i was last fetched i hours ago.
            let fetched = std::fs::File::create(dir.join("FETCH_HEAD")).expect("create");
            fetched
                .set_modified(now - Duration::from_secs(3600 * i))
                .expect("mtime");
            dirs.push(dir);
        }
        let left = tmp.path().join(format!("{MAKING}1-2-3"));
        std::fs::create_dir(&left).expect("mkdir");
        let recent = tmp.path().join(format!("{LEAVING}4-5"));
        std::fs::create_dir(&recent).expect("mkdir");
        std::fs::File::open(&left)
            .and_then(|f| f.set_modified(now - 2 * LEFT_BEHIND))
            .expect("mtime");
        // Within the limit: nothing but what a killed process left an hour ago goes.
        prune(tmp.path(), 12, None);
        assert!(dirs.iter().all(|d| d.exists()) && !left.exists() && recent.exists());
        // Past it: down to nine tenths, the oldest first, never the one just added.
        prune(tmp.path(), 10, Some(&dirs[11]));
        let kept: Vec<bool> = dirs.iter().map(|d| d.exists()).collect();
        let mut want = vec![true; 8];
        want.extend([false, false, false, true]);
        assert_eq!(kept, want);
    }
}
