//! `taskhook checkout`: materialise the task a job pins, verified.

use std::io::Read;
use std::path::{Component, Path, PathBuf};
use std::time::Duration;

use sha2::{Digest, Sha256};

use crate::git::{self, EntryKind, ObjectId};
use crate::trigger::fetch::{self, FetchError};
use crate::trigger::plan::Job;
use crate::validate::discover::valid_component;

/// Bounds on what a checkout writes: a task directory is small.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub max_bytes: usize,
    pub max_files: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_bytes: 256 * 1024 * 1024,
            max_files: 10_000,
        }
    }
}

pub struct Options {
    pub dest: PathBuf,
    pub cache_dir: PathBuf,
    /// How many repositories that cache keeps (see [`fetch::cache`]).
    pub cache_max_repos: usize,
    pub timeout: Duration,
    pub limits: Limits,
}

/// How the files were fetched.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    /// `git archive --remote URL refs/heads/<branch> <path>`: one request, the task only.
    Archive,
    /// A depth-1 fetch of the pinned commit, blobs filtered to the task's.
    Commit,
    /// The server would not serve the commit by id: a depth-1 fetch of the branch.
    Branch,
}

impl Method {
    pub fn as_str(self) -> &'static str {
        match self {
            Method::Archive => "archive",
            Method::Commit => "commit-fetch",
            Method::Branch => "branch-fetch",
        }
    }
}

/// What a checkout did.
#[derive(Debug)]
pub struct Done {
    pub dest: PathBuf,
    pub method: Method,
    pub files: usize,
    pub bytes: usize,
    /// Why a cheaper method was not used, when it was not.
    pub notes: Vec<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum CheckoutError {
    #[error("the job is not usable: {0}")]
    BadJob(String),
    #[error("refusing the task: {0}; nothing was written")]
    Mismatch(String),
    #[error("{url}: {source}")]
    Fetch { url: String, source: FetchError },
    #[error("{0}")]
    Io(String),
    /// The fetch cache could not be read (perhaps damaged).
    #[error("the fetch cache: {0}")]
    Cache(String),
}

/// One file of the task, relative to the task directory.
struct File {
    path: String,
    kind: EntryKind,
    data: Vec<u8>,
}

fn hex40(s: &str) -> bool {
    s.len() == 40
        && s.bytes()
            .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase())
}

/// Checks what a job says before using any of it: ids are ids, the task path is a plain
/// relative path, the formula is the task's, the URL uses a transport taskhook allows.
pub fn check_job(job: &Job) -> Result<(), CheckoutError> {
    let bad = |m: String| Err(CheckoutError::BadJob(m));
    if !hex40(&job.git_commit) {
        return bad(format!(
            "git_commit `{}` is not a commit id",
            job.git_commit
        ));
    }
    if !hex40(&job.tree) {
        return bad(format!("tree `{}` is not a tree id", job.tree));
    }
    if job.formula_sha256.len() != 64 || !job.formula_sha256.bytes().all(|b| b.is_ascii_hexdigit())
    {
        return bad(format!(
            "formula_sha256 `{}` is not a sha256",
            job.formula_sha256
        ));
    }
    if job.task_path != "." && !job.task_path.split('/').all(valid_component) {
        return bad(format!(
            "task_path `{}` is not a plain relative path of [A-Za-z0-9._+-] names",
            job.task_path
        ));
    }
    let expected = if job.task_path == "." {
        "runtask.yml".to_string()
    } else {
        format!("{}/runtask.yml", job.task_path)
    };
    if job.formula != expected {
        return bad(format!("formula `{}` is not {expected}", job.formula));
    }
    if job.git_branch.is_empty()
        || job.git_branch.starts_with('-')
        || job.git_branch.contains("..")
        || job
            .git_branch
            .bytes()
            .any(|b| b.is_ascii_control() || b == b' ' || b == b':')
    {
        return bad(format!(
            "git_branch `{}` is not a branch name",
            job.git_branch
        ));
    }
    fetch::check_url(&job.git_repo).map_err(CheckoutError::BadJob)?;
    Ok(())
}

/// Fetches, verifies and writes the task `job` pins into `opts.dest`.
pub fn checkout(job: &Job, opts: &Options) -> Result<Done, CheckoutError> {
    check_job(job)?;
    prepare_dest(&opts.dest)?;
    let mut notes = Vec::new();
    let (files, method) = fetch_task(job, opts, &mut notes)?;
    let bytes = files.iter().map(|f| f.data.len()).sum();
    write_files(&opts.dest, &files)?;
    Ok(Done {
        dest: opts.dest.clone(),
        method,
        files: files.len(),
        bytes,
        notes,
    })
}

fn prepare_dest(dest: &Path) -> Result<(), CheckoutError> {
    match std::fs::read_dir(dest) {
        Ok(mut entries) => {
            if entries.next().is_some() {
                return Err(CheckoutError::Io(format!(
                    "{} exists and is not empty",
                    dest.display()
                )));
            }
            Ok(())
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(CheckoutError::Io(format!("{}: {e}", dest.display()))),
    }
}

fn fetch_task(
    job: &Job,
    opts: &Options,
    notes: &mut Vec<String>,
) -> Result<(Vec<File>, Method), CheckoutError> {
    let url = job.git_repo.as_str();
    if !fetch::is_http(url) {
        match by_archive(job, opts)? {
            Ok(files) => match verify(job, &files) {
                Ok(()) => return Ok((files, Method::Archive)),
                // `git archive` applies the archived tree's `.gitattributes` (`export-ignore`
                // leaves files out; `export-subst`, `ident` and `eol` rewrite them) and the
                // server's replace refs; a fetch brings the objects themselves.
                Err(CheckoutError::Mismatch(why)) => notes.push(format!(
                    "the archive is not the pinned task ({why}; the repository's .gitattributes, such as `export-ignore`, `export-subst` or `eol`, or a replace ref on the server): fetching the pinned commit instead"
                )),
                Err(e) => return Err(e),
            },
            Err(why) => notes.push(why),
        }
    }
    let (files, method) = match by_fetch(job, opts, notes, false) {
        // A damaged cache repository is replaced by a new one, fetched into once more.
        Err(e) if cache_may_explain(&e) => {
            notes.push(format!("{e}: fetching again into a new cache repository"));
            fetch::cache::discard(&fetch::cache::path_of(&opts.cache_dir, url));
            by_fetch(job, opts, notes, true)?
        }
        done => done?,
    };
    verify(job, &files)?;
    Ok((files, method))
}

/// Whether `by_fetch` may have failed for its cache repository's sake (see
/// [`fetch::the_cache_may_explain`]).
fn cache_may_explain(e: &CheckoutError) -> bool {
    match e {
        CheckoutError::Cache(_) => true,
        CheckoutError::Fetch { source, .. } => fetch::the_cache_may_explain(source),
        _ => false,
    }
}

/// Tries `git archive --remote URL refs/heads/<branch> <path>`: `Ok(Err(why))` when the
/// branch has moved on or the server does not serve archives.
fn by_archive(job: &Job, opts: &Options) -> Result<Result<Vec<File>, String>, CheckoutError> {
    let branch_ref = format!("refs/heads/{}", job.git_branch);
    let mut args = vec!["--format=tar", branch_ref.as_str()];
    if job.task_path != "." {
        args.push(job.task_path.as_str());
    }
    let out = match fetch::archive(
        &job.git_repo,
        &args,
        opts.timeout,
        opts.limits.max_bytes * 2,
    ) {
        Ok(out) => out,
        // git daemon answers a request for a service it does not run (upload-archive is off by
        // default) as it answers one for a repository it does not export: the fetch tells.
        Err(FetchError::Unreachable(m) | FetchError::NoRepository(m)) => {
            return Ok(Err(format!("no archive: {m}")))
        }
        Err(source) => {
            return Err(CheckoutError::Fetch {
                url: job.git_repo.clone(),
                source,
            })
        }
    };
    if !out.ok {
        return Ok(Err(format!(
            "the server serves no archive of {branch_ref}:{} ({})",
            job.task_path,
            fetch::reason(&out.message)
        )));
    }
    let (commit, files) = read_tar(&out.data, &job.task_path, opts.limits)?;
    if commit.as_deref() != Some(job.git_commit.as_str()) {
        return Ok(Err(format!(
            "branch {} is now at {}, not at the pinned commit {}: fetching the pinned commit instead",
            job.git_branch,
            commit.as_deref().map_or("?", crate::error::short),
            crate::error::short(&job.git_commit)
        )));
    }
    Ok(Ok(files))
}

/// Reads a tar from `git archive`: the commit id from its global header, and the files under
/// `prefix` (relative to it). Rejects anything git would not write.
fn read_tar(
    data: &[u8],
    prefix: &str,
    limits: Limits,
) -> Result<(Option<String>, Vec<File>), CheckoutError> {
    let bad = |m: String| CheckoutError::Mismatch(format!("the archive is not usable: {m}"));
    let mut archive = tar::Archive::new(data);
    let mut commit = None;
    let mut files = Vec::new();
    let mut total = 0usize;
    let entries = archive.entries().map_err(|e| bad(e.to_string()))?;
    for entry in entries {
        let mut entry = entry.map_err(|e| bad(e.to_string()))?;
        let kind = entry.header().entry_type();
        if kind == tar::EntryType::XGlobalHeader {
            let mut text = String::new();
            (&mut entry)
                .take(4096)
                .read_to_string(&mut text)
                .map_err(|e| bad(e.to_string()))?;
            // `52 comment=<commit id>\n`: git's pax header names the archived commit.
            commit = text
                .lines()
                .find_map(|l| l.split_once(" comment=").map(|(_, c)| c.trim().to_string()));
            continue;
        }
        let raw = entry.path_bytes().into_owned();
        let name = String::from_utf8(raw).map_err(|_| bad("a path is not UTF-8".into()))?;
        if kind == tar::EntryType::Directory {
            // git archive lists the directories leading to the path, and the path's own.
            continue;
        }
        let rel = if prefix == "." {
            name.as_str()
        } else {
            match name.strip_prefix(prefix).and_then(|r| r.strip_prefix('/')) {
                Some(r) => r,
                None if name.trim_end_matches('/') == prefix => continue,
                None => return Err(bad(format!("`{name}` is outside {prefix}"))),
            }
        };
        let rel = rel.trim_end_matches('/').to_string();
        if kind == tar::EntryType::Directory || rel.is_empty() {
            continue;
        }
        safe_relative(&rel).map_err(bad)?;
        let mode = entry.header().mode().unwrap_or(0o644);
        let (kind, data) = match kind {
            tar::EntryType::Regular => {
                let mut data = Vec::new();
                (&mut entry)
                    .take(limits.max_bytes as u64 + 1)
                    .read_to_end(&mut data)
                    .map_err(|e| bad(e.to_string()))?;
                let k = if mode & 0o111 != 0 {
                    EntryKind::BlobExecutable
                } else {
                    EntryKind::Blob
                };
                (k, data)
            }
            tar::EntryType::Symlink => {
                let target = entry
                    .link_name_bytes()
                    .map(|t| t.into_owned())
                    .unwrap_or_default();
                (EntryKind::Link, target)
            }
            other => return Err(bad(format!("`{name}` is a {other:?}, not a file"))),
        };
        total += data.len();
        if total > limits.max_bytes || files.len() >= limits.max_files {
            return Err(CheckoutError::Mismatch(format!(
                "the task is larger than {} bytes or {} files",
                limits.max_bytes, limits.max_files
            )));
        }
        files.push(File {
            path: rel,
            kind,
            data,
        });
    }
    Ok((commit, files))
}

/// A path from the server: relative, no `..`, no empty or `.git` components.
fn safe_relative(rel: &str) -> Result<(), String> {
    let p = Path::new(rel);
    for c in p.components() {
        match c {
            Component::Normal(n) if n != ".git" => {}
            _ => return Err(format!("`{rel}` is not a plain relative path")),
        }
    }
    Ok(())
}

/// A depth-1 fetch of the pinned commit (blobs filtered where the server allows), falling back to
/// the branch, into the shared per-repository cache; then the task's files read from it. In a
/// cache repository just made (`fresh`), a failed fetch is the server's refusal: it falls back
/// whatever the server said.
fn by_fetch(
    job: &Job,
    opts: &Options,
    notes: &mut Vec<String>,
    fresh: bool,
) -> Result<(Vec<File>, Method), CheckoutError> {
    let url = job.git_repo.as_str();
    let fail = |source: FetchError| CheckoutError::Fetch {
        url: url.to_string(),
        source,
    };
    // A cache repository made just now cannot be what a fetch failed for.
    let fresh = fresh || !fetch::cache::exists(&fetch::cache::path_of(&opts.cache_dir, url));
    let cache = fetch::cache_repo(&opts.cache_dir, url, opts.cache_max_repos).map_err(fail)?;
    // Several tasks of one event may be checked out at once: one fetch into a cache at a time.
    let _lock = fetch::cache::Lock::acquire(&cache, opts.timeout).map_err(fail)?;
    // A fetch killed at its timeout leaves git's locks behind; none that old is live.
    fetch::clear_stale_locks(&cache, opts.timeout);
    let git_in_cache = |args: &[&str], what: &str| {
        // The cache and no other repository (see `git::git_command`), run in it (its path need
        // not be UTF-8); no hook runs there (see `fetch_via_shallow`).
        let mut all = vec![
            "--git-dir=.",
            "-c",
            "core.hooksPath=/dev/null",
            "-c",
            "protocol.version=2",
        ];
        all.extend(args);
        fetch::run_git(&all, Some(&cache), opts.timeout, 64 * 1024, what).map_err(fail)
    };
    promisor_remote(&cache, url)?;
    let repo = git::Repo::open(&cache).map_err(|e| CheckoutError::Cache(e.to_string()))?;
    let commit = ObjectId::from_hex(job.git_commit.as_bytes())
        .map_err(|_| CheckoutError::BadJob("bad commit id".into()))?;
    // A depth-1 fetch of `what`, trees only (`blob:none`) or with every blob (`--no-filter`, for
    // servers that serve no object by id).
    let fetch_ref = |what: &str, filter: &str| {
        git_in_cache(
            &[
                "fetch",
                "--quiet",
                "--no-tags",
                "--depth=1",
                filter,
                "origin",
                what,
            ],
            url,
        )
    };
    let mut method = Method::Commit;
    // A fetch that failed for no reason the server or the network gave may have failed for
    // the cache's sake: said as such, so that `fetch_task` tries a new cache.
    let for_the_cache = |out: &fetch::Output| {
        let said = fetch::reason(&out.stderr);
        (!fresh && !fetch::server_or_network_said(&out.stderr)).then(|| {
            fail(FetchError::Unreachable(format!(
                "git fetch {url} failed: {said}"
            )))
        })
    };
    if !repo.has_object(commit) {
        let out = fetch_ref(&job.git_commit, "--filter=blob:none")?;
        if let Some(e) = (!out.status_ok).then(|| for_the_cache(&out)).flatten() {
            return Err(e);
        }
        if !out.status_ok {
            notes.push(format!(
                "the server does not serve commit {} by id ({}); fetching branch {} instead",
                crate::error::short(&job.git_commit),
                fetch::reason(&out.stderr),
                job.git_branch
            ));
            method = Method::Branch;
            let branch_ref = format!("refs/heads/{}", job.git_branch);
            // A server that serves no commit by id serves no blob by id either: take the
            // branch's whole tree, as a shallow clone would.
            let out = fetch_ref(&branch_ref, "--no-filter")?;
            if !out.status_ok {
                return Err(fail(FetchError::Unreachable(format!(
                    "git fetch {url} {branch_ref} failed: {}",
                    fetch::reason(&out.stderr)
                ))));
            }
        }
    }
    // Objects fetched by git since the repository was opened: open it again.
    let repo = git::Repo::open(&cache).map_err(|e| CheckoutError::Cache(e.to_string()))?;
    if !repo.has_object(commit) {
        return Err(CheckoutError::Mismatch(format!(
            "branch {} has moved on from the pinned commit {} and the server does not serve that commit by id",
            job.git_branch, job.git_commit
        )));
    }
    let root = repo
        .commit_tree(commit)
        .map_err(|e| CheckoutError::Cache(e.to_string()))?;
    let tree = if job.task_path == "." {
        Some(root)
    } else {
        match repo
            .entry_at(root, &job.task_path)
            .map_err(|e| CheckoutError::Cache(e.to_string()))?
        {
            Some((EntryKind::Tree, id)) => Some(id),
            _ => None,
        }
    };
    let Some(tree) = tree else {
        return Err(CheckoutError::Mismatch(format!(
            "commit {} has no {}",
            job.git_commit, job.task_path
        )));
    };
    if tree != job.tree.as_str() {
        return Err(CheckoutError::Mismatch(format!(
            "{} at commit {} is tree {tree}, but the job pins tree {}",
            job.task_path, job.git_commit, job.tree
        )));
    }
    // The blobs of this one tree, fetched in one request where the filter left them out.
    let listing = repo_files(&repo, tree, opts.limits)?;
    let missing: Vec<String> = listing
        .iter()
        .filter(|(_, _, id)| !repo.has_object(*id))
        .map(|(_, _, id)| id.to_string())
        .collect();
    if !missing.is_empty() {
        let mut args = vec![
            "-c",
            "fetch.negotiationAlgorithm=noop",
            "fetch",
            "--quiet",
            "--no-tags",
            "--no-write-fetch-head",
            "--filter=blob:none",
            "origin",
        ];
        args.extend(missing.iter().map(String::as_str));
        let out = git_in_cache(&args, url)?;
        if let Some(e) = (!out.status_ok).then(|| for_the_cache(&out)).flatten() {
            return Err(e);
        }
        if !out.status_ok {
            // Protocol v0 serves no blob by id: take the commit's whole tree instead, by id
            // where the server allows, else through the branch.
            notes.push(format!(
                "the server serves no file by id ({}); fetching the whole tree of the commit",
                fetch::reason(&out.stderr)
            ));
            method = Method::Branch;
            let branch_ref = format!("refs/heads/{}", job.git_branch);
            let mut fetched = false;
            for what in [job.git_commit.as_str(), branch_ref.as_str()] {
                let out = fetch_ref(what, "--no-filter")?;
                if out.status_ok {
                    fetched = true;
                    break;
                }
            }
            if !fetched {
                return Err(fail(FetchError::Unreachable(format!(
                    "git fetch of the task's {} file(s) failed: {}",
                    missing.len(),
                    fetch::reason(&out.stderr)
                ))));
            }
        }
    }
    let repo = git::Repo::open(&cache).map_err(|e| CheckoutError::Cache(e.to_string()))?;
    let mut files = Vec::with_capacity(listing.len());
    let mut total = 0;
    for (path, kind, id) in listing {
        let data = repo
            .read_blob(id)
            .map_err(|e| CheckoutError::Cache(e.to_string()))?;
        total += data.len();
        if total > opts.limits.max_bytes {
            return Err(CheckoutError::Mismatch(format!(
                "the task is larger than {} bytes",
                opts.limits.max_bytes
            )));
        }
        files.push(File { path, kind, data });
    }
    Ok((files, method))
}

/// Makes `url` the cache's promisor remote `origin`, so git fetches with a blob filter there
/// (a partial clone may only filter from its promisor remote). The cache is taskhook's own, so
/// its config file is written whole rather than with one `git config` run per key.
fn promisor_remote(cache: &Path, url: &str) -> Result<(), CheckoutError> {
    let current = git::Repo::open(cache)
        .ok()
        .and_then(|r| r.config("remote.origin.url"));
    if current.as_deref() == Some(url) {
        return Ok(());
    }
    let quoted = url.replace('\\', "\\\\").replace('"', "\\\"");
    let config = format!(
        "[core]\n\trepositoryformatversion = 1\n\tfilemode = true\n\tbare = true\n\
[extensions]\n\tpartialClone = origin\n\
[remote \"origin\"]\n\turl = \"{quoted}\"\n\tpromisor = true\n\tpartialclonefilter = blob:none\n"
    );
    std::fs::write(cache.join("config"), config).map_err(|e| {
        CheckoutError::Io(format!(
            "cannot configure the cache {}: {e}",
            cache.display()
        ))
    })
}

/// Every file below `tree`: (relative path, mode, blob id). Submodules are refused.
fn repo_files(
    repo: &git::Repo,
    tree: ObjectId,
    limits: Limits,
) -> Result<Vec<(String, EntryKind, ObjectId)>, CheckoutError> {
    let mut out = Vec::new();
    let mut stack = vec![(String::new(), tree)];
    while let Some((prefix, t)) = stack.pop() {
        for (name, kind, id) in repo
            .tree_entries(t)
            .map_err(|e| CheckoutError::Cache(e.to_string()))?
        {
            let name = String::from_utf8(name)
                .map_err(|_| CheckoutError::Mismatch("a file name is not UTF-8".into()))?;
            let path = if prefix.is_empty() {
                name
            } else {
                format!("{prefix}/{name}")
            };
            safe_relative(&path).map_err(CheckoutError::Mismatch)?;
            match kind {
                EntryKind::Tree => stack.push((path, id)),
                EntryKind::Commit => {
                    return Err(CheckoutError::Mismatch(format!("`{path}` is a submodule")))
                }
                k => out.push((path, k, id)),
            }
            if out.len() > limits.max_files {
                return Err(CheckoutError::Mismatch(format!(
                    "the task has more than {} files",
                    limits.max_files
                )));
            }
        }
    }
    Ok(out)
}

/// The files hash to the job's tree, and the formula to the job's digest.
fn verify(job: &Job, files: &[File]) -> Result<(), CheckoutError> {
    let listing: Vec<(String, EntryKind, ObjectId)> = files
        .iter()
        .map(|f| (f.path.clone(), f.kind, git::blob_id(&f.data)))
        .collect();
    let tree = git::tree_id_of(&listing).to_string();
    if tree != job.tree {
        return Err(CheckoutError::Mismatch(format!(
            "the fetched {} is tree {tree}, but the job pins tree {}",
            job.task_path, job.tree
        )));
    }
    let formula = files
        .iter()
        .find(|f| f.path == "runtask.yml" && f.kind != EntryKind::Link)
        .ok_or_else(|| CheckoutError::Mismatch(format!("{} has no runtask.yml", job.task_path)))?;
    let digest = crate::config::hex(&Sha256::digest(&formula.data));
    if digest != job.formula_sha256 {
        return Err(CheckoutError::Mismatch(format!(
            "runtask.yml has sha256 {digest}, but the job pins {}",
            job.formula_sha256
        )));
    }
    Ok(())
}

/// Writes the files into a fresh directory next to `dest`, then renames it into place, so a
/// failure leaves nothing behind. Symlinks must point inside the task.
fn write_files(dest: &Path, files: &[File]) -> Result<(), CheckoutError> {
    let io = |what: &Path, e: std::io::Error| CheckoutError::Io(format!("{}: {e}", what.display()));
    let parent = match dest.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    std::fs::create_dir_all(&parent).map_err(|e| io(&parent, e))?;
    let tmp = tempfile::Builder::new()
        .prefix(".taskhook-checkout-")
        .tempdir_in(&parent)
        .map_err(|e| io(&parent, e))?;
    for f in files {
        let path = tmp.path().join(&f.path);
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(|e| io(dir, e))?;
        }
        match f.kind {
            EntryKind::Link => {
                let target = String::from_utf8(f.data.clone()).map_err(|_| {
                    CheckoutError::Mismatch(format!("symlink `{}` is not UTF-8", f.path))
                })?;
                if !link_stays_inside(&f.path, &target) {
                    return Err(CheckoutError::Mismatch(format!(
                        "symlink `{}` points outside the task (`{target}`)",
                        f.path
                    )));
                }
                #[cfg(unix)]
                std::os::unix::fs::symlink(&target, &path).map_err(|e| io(&path, e))?;
            }
            _ => {
                std::fs::write(&path, &f.data).map_err(|e| io(&path, e))?;
                #[cfg(unix)]
                if f.kind == EntryKind::BlobExecutable {
                    use std::os::unix::fs::PermissionsExt;
                    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755))
                        .map_err(|e| io(&path, e))?;
                }
            }
        }
    }
    if dest.exists() {
        std::fs::remove_dir(dest).map_err(|e| io(dest, e))?;
    }
    let kept = tmp.keep();
    std::fs::rename(&kept, dest).map_err(|e| {
        let _ = std::fs::remove_dir_all(&kept);
        io(dest, e)
    })
}

/// Whether a symlink at `path` (relative to the task) with `target` resolves inside the task.
fn link_stays_inside(path: &str, target: &str) -> bool {
    if target.starts_with('/') {
        return false;
    }
    let mut depth: i64 = path.split('/').count() as i64 - 1;
    for part in target.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                depth -= 1;
                if depth < 0 {
                    return false;
                }
            }
            _ => depth += 1,
        }
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn symlinks_stay_inside() {
        assert!(link_stays_inside("a/b", "c"));
        assert!(link_stays_inside("a/b", "../c"));
        assert!(!link_stays_inside("a/b", "../../c"));
        assert!(!link_stays_inside("b", "/etc/passwd"));
        assert!(!link_stays_inside("b", ".."));
    }

    #[test]
    fn paths_from_servers() {
        assert!(safe_relative("a/b.txt").is_ok());
        assert!(safe_relative("../x").is_err());
        assert!(safe_relative("/x").is_err());
        assert!(safe_relative("a/.git/config").is_err());
    }
}
