//! The one module that talks to gix: opening repositories (including git's push quarantine),
//! reading commits, trees and blobs, writing the manifest's objects, and moving a ref with
//! compare-and-swap.

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use gix::bstr::ByteSlice;
pub use gix::objs::tree::EntryKind;
use gix::refs::transaction::{Change, LogChange, PreviousValue, RefEdit, RefLog};
use gix::refs::Target;
pub use gix::ObjectId;

#[derive(Debug, thiserror::Error)]
pub enum GitError {
    #[error("cannot open git repository {path}: {message}")]
    Open { path: PathBuf, message: String },
    #[error("unknown revision `{0}`")]
    UnknownRevision(String),
    #[error("HEAD points at {0}, which does not exist (an empty repository, or its default branch was deleted or renamed): name a branch with --rev")]
    UnbornHead(String),
    #[error("`{0}` is not a commit")]
    NotACommit(String),
    #[error("ref {name} moved while updating it (expected {expected})")]
    Race { name: String, expected: String },
    #[error("{context}: {message}")]
    Other { context: String, message: String },
}

fn other(context: impl Into<String>, e: impl std::fmt::Display) -> GitError {
    GitError::Other {
        context: context.into(),
        message: e.to_string(),
    }
}

/// An open repository. Inside a pre-receive hook it also sees the quarantined (pushed) objects.
pub struct Repo {
    pub repo: gix::Repository,
    _quarantine_view: Option<tempfile::TempDir>,
}

impl Repo {
    /// Opens the repository at `path` (a bare repo, a `.git` dir or a work tree).
    pub fn open(path: &Path) -> Result<Repo, GitError> {
        // Otherwise ask the git binary where its system-wide config lives: a git built with
        // another prefix keeps it elsewhere than /etc/gitconfig, and `git config --system
        // taskhook.policy ...` must be honoured wherever it wrote.
        // The hooks' shims name the system config (`GIT_CONFIG_SYSTEM`, found at install time),
        // and with it, or with `GIT_CONFIG_NOSYSTEM`, git need not be asked: no process start.
        let told = std::env::var_os("GIT_CONFIG_SYSTEM").is_some()
            || std::env::var_os("GIT_CONFIG_NOSYSTEM").is_some();
        let mut trust: gix::sec::trust::Mapping<gix::open::Options> = Default::default();
        trust.full.permissions.config.git_binary = !told;
        trust.reduced.permissions.config.git_binary = !told;
        let repo = gix::ThreadSafeRepository::discover_opts(path, Default::default(), trust)
            .map(gix::Repository::from)
            .map_err(|e| GitError::Open {
                path: path.to_path_buf(),
                message: e.to_string(),
            })?;
        Ok(Repo {
            repo,
            _quarantine_view: None,
        })
    }

    /// Opens the repository a hook runs in. git runs hooks in the repository with `GIT_DIR` set;
    /// during pre-receive the pushed objects are in a quarantine directory that gix does not
    /// look at by itself, so we read through a private object directory whose alternates are the
    /// quarantine and the main store. Nothing is ever written to the quarantine.
    pub fn open_for_hook() -> Result<Repo, GitError> {
        let dir = std::env::var_os("GIT_DIR")
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from("."));
        let mut repo = Repo::open(&dir)?;
        if let Some(quarantine) = std::env::var_os("GIT_QUARANTINE_PATH") {
            let view = tempfile::Builder::new()
                .prefix("taskhook-objects-")
                .tempdir()
                .map_err(|e| other("cannot create a temporary object view", e))?;
            let info = view.path().join("info");
            std::fs::create_dir_all(&info).map_err(|e| other("cannot create object view", e))?;
            let mut alternates = Vec::new();
            alternates.push(PathBuf::from(&quarantine));
            if let Some(alt) = std::env::var_os("GIT_ALTERNATE_OBJECT_DIRECTORIES") {
                alternates.extend(std::env::split_paths(&alt));
            }
            alternates.push(repo.repo.common_dir().join("objects"));
            let mut file = std::fs::File::create(info.join("alternates"))
                .map_err(|e| other("cannot create object view", e))?;
            for a in &alternates {
                let abs = if a.is_absolute() {
                    a.clone()
                } else {
                    std::env::current_dir()
                        .map_err(|e| other("cannot resolve the quarantine path", e))?
                        .join(a)
                };
                writeln!(file, "{}", abs.display())
                    .map_err(|e| other("cannot create object view", e))?;
            }
            drop(file);
            let kind = repo.repo.object_hash();
            let handle = gix::odb::at(view.path(), kind)
                .map_err(|e| other("cannot open the quarantined objects", e))?;
            repo.repo.objects = gix::OdbHandle::new(handle, kind);
            repo._quarantine_view = Some(view);
        }
        Ok(repo)
    }

    pub fn git_dir(&self) -> &Path {
        self.repo.git_dir()
    }

    pub fn is_bare(&self) -> bool {
        self.repo.is_bare()
    }

    /// A git config value (repository, then global and system files, as git reads them).
    pub fn config(&self, key: &str) -> Option<String> {
        self.repo
            .config_snapshot()
            .string(key)
            .map(|v| v.to_str_lossy().into_owned())
    }

    /// Resolves a commit: a full or abbreviated hex id, `HEAD`, a branch, a tag, or a full ref.
    pub fn resolve_commit(&self, rev: &str) -> Result<ObjectId, GitError> {
        let id = self.resolve(rev)?;
        self.peel_to_commit(id, rev)
    }

    fn resolve(&self, rev: &str) -> Result<ObjectId, GitError> {
        if let Ok(id) = ObjectId::from_hex(rev.as_bytes()) {
            return Ok(id);
        }
        let candidates = [
            rev.to_string(),
            format!("refs/heads/{rev}"),
            format!("refs/tags/{rev}"),
            format!("refs/remotes/{rev}"),
        ];
        for name in candidates {
            if let Ok(Some(mut r)) = self.repo.try_find_reference(name.as_str()) {
                if let Ok(id) = r.peel_to_id() {
                    return Ok(id.detach());
                }
            }
        }
        if rev.len() >= 4 && rev.len() < 40 && rev.bytes().all(|b| b.is_ascii_hexdigit()) {
            if let Ok(prefix) = gix::hash::Prefix::from_hex(rev) {
                if let Ok(Some(Ok(id))) = self.repo.objects.lookup_prefix(prefix, None) {
                    return Ok(id);
                }
            }
        }
        if rev == "HEAD" {
            if let Ok(Some(name)) = self.repo.head_name() {
                return Err(GitError::UnbornHead(
                    name.as_bstr().to_str_lossy().into_owned(),
                ));
            }
        }
        Err(GitError::UnknownRevision(rev.to_string()))
    }

    /// The names of the keys set in config section `section` (every file git reads), as written.
    pub fn config_keys(&self, section: &str) -> Vec<String> {
        let snapshot = self.repo.config_snapshot();
        let mut out = Vec::new();
        if let Some(sections) = snapshot.sections_by_name(section) {
            for s in sections {
                for name in s.value_names() {
                    out.push(name);
                }
            }
        }
        out
    }

    fn peel_to_commit(&self, mut id: ObjectId, rev: &str) -> Result<ObjectId, GitError> {
        for _ in 0..16 {
            let object = self
                .repo
                .find_object(id)
                .map_err(|_| GitError::UnknownRevision(rev.to_string()))?;
            match object.kind {
                gix::objs::Kind::Commit => return Ok(id),
                gix::objs::Kind::Tag => {
                    let tag = object.into_tag();
                    id = tag
                        .target_id()
                        .map_err(|e| other(format!("cannot read tag {rev}"), e))?
                        .detach();
                }
                _ => break,
            }
        }
        Err(GitError::NotACommit(rev.to_string()))
    }

    /// The root tree of a commit.
    pub fn commit_tree(&self, commit: ObjectId) -> Result<ObjectId, GitError> {
        let c = self
            .repo
            .find_commit(commit)
            .map_err(|e| other(format!("cannot read commit {commit}"), e))?;
        c.tree_id()
            .map(|t| t.detach())
            .map_err(|e| other(format!("cannot read commit {commit}"), e))
    }

    /// Where a ref points, if it exists.
    pub fn ref_target(&self, name: &str) -> Result<Option<ObjectId>, GitError> {
        match self.repo.try_find_reference(name) {
            Ok(Some(r)) => Ok(r.target().try_id().map(|id| id.to_owned())),
            Ok(None) => Ok(None),
            Err(e) => Err(other(format!("cannot read ref {name}"), e)),
        }
    }

    /// Every branch (`refs/heads/*`) with the commit it points to, sorted by name.
    /// Every ref's full name.
    pub fn ref_names(&self) -> Result<Vec<String>, GitError> {
        let platform = self
            .repo
            .references()
            .map_err(|e| other("cannot list refs", e))?;
        let mut out = Vec::new();
        for r in platform.all().map_err(|e| other("cannot list refs", e))? {
            let r = r.map_err(|e| other("cannot list refs", e))?;
            out.push(r.name().as_bstr().to_str_lossy().into_owned());
        }
        Ok(out)
    }

    /// Remote-tracking branches (`origin/f41`), for a clone's view of the server's branches.
    pub fn remote_branches(&self) -> Result<Vec<(String, ObjectId)>, GitError> {
        self.branch_refs(true)
    }

    /// Local branches, by short name, with the commits they point at.
    pub fn branches(&self) -> Result<Vec<(String, ObjectId)>, GitError> {
        self.branch_refs(false)
    }

    fn branch_refs(&self, remote: bool) -> Result<Vec<(String, ObjectId)>, GitError> {
        let platform = self
            .repo
            .references()
            .map_err(|e| other("cannot list refs", e))?;
        let (refs, prefix) = if remote {
            (platform.remote_branches(), "refs/remotes/")
        } else {
            (platform.local_branches(), "refs/heads/")
        };
        let mut out = Vec::new();
        for r in refs.map_err(|e| other("cannot list branches", e))? {
            let mut r = r.map_err(|e| other("cannot list branches", e))?;
            let name = r.name().as_bstr().to_str_lossy().into_owned();
            if let Ok(id) = r.peel_to_id() {
                let short = name.strip_prefix(prefix).unwrap_or(&name).to_string();
                out.push((short, id.detach()));
            }
        }
        out.sort();
        Ok(out)
    }

    /// The branch `HEAD` points to (`master`, `main`, `rawhide`...), if any.
    pub fn head_branch(&self) -> Option<String> {
        let name = self.repo.head_name().ok()??;
        name.as_bstr()
            .to_str_lossy()
            .strip_prefix("refs/heads/")
            .map(str::to_string)
    }

    /// Reads the file at `path` in `tree`, if it exists and is a blob.
    pub fn read_path(&self, tree: ObjectId, path: &str) -> Result<Option<Vec<u8>>, GitError> {
        let Some(id) = self.path_id(tree, path)? else {
            return Ok(None);
        };
        let blob = self
            .repo
            .find_blob(id)
            .map_err(|e| other(format!("cannot read {path}"), e))?;
        Ok(Some(blob.data.to_vec()))
    }

    /// The blob id of the file at `path` in `tree`, if it exists and is a blob.
    pub fn path_id(&self, tree: ObjectId, path: &str) -> Result<Option<ObjectId>, GitError> {
        Ok(match self.entry_at(tree, path)? {
            Some((EntryKind::Blob | EntryKind::BlobExecutable, id)) => Some(id),
            _ => None,
        })
    }

    /// The mode and id of whatever `path` names below `tree` (a blob, a tree, a link...).
    pub fn entry_at(
        &self,
        tree: ObjectId,
        path: &str,
    ) -> Result<Option<(EntryKind, ObjectId)>, GitError> {
        let mut current = (EntryKind::Tree, tree);
        for part in path.split('/') {
            if current.0 != EntryKind::Tree {
                return Ok(None);
            }
            let entries = self.tree_entries(current.1)?;
            let Some(found) = entries
                .into_iter()
                .find(|(name, _, _)| name.as_slice() == part.as_bytes())
                .map(|(_, k, id)| (k, id))
            else {
                return Ok(None);
            };
            current = found;
        }
        Ok(Some(current))
    }

    /// The entries of a tree as stored: names as bytes, duplicates and all.
    pub fn tree_entries(
        &self,
        tree: ObjectId,
    ) -> Result<Vec<(Vec<u8>, EntryKind, ObjectId)>, GitError> {
        let t = self
            .repo
            .find_tree(tree)
            .map_err(|e| other(format!("cannot read tree {tree}"), e))?;
        let decoded = t
            .decode()
            .map_err(|e| other(format!("cannot decode tree {tree}"), e))?;
        Ok(decoded
            .entries
            .iter()
            .map(|e| (e.filename.to_vec(), e.mode.kind(), e.oid.to_owned()))
            .collect())
    }

    /// The entries of a tree with names as text (a name that is not UTF-8 gets U+FFFD), in
    /// stored order, duplicates and all: what discovery walks.
    pub fn tree_listing(
        &self,
        tree: ObjectId,
    ) -> Result<Vec<(String, EntryKind, ObjectId)>, GitError> {
        let t = self
            .repo
            .find_tree(tree)
            .map_err(|e| other(format!("cannot read tree {tree}"), e))?;
        let mut out = Vec::new();
        for e in gix::objs::TreeRefIter::from_bytes(&t.data, tree.kind()) {
            let e = e.map_err(|e| other(format!("cannot decode tree {tree}"), e))?;
            let name = match std::str::from_utf8(e.filename) {
                Ok(name) => name.to_string(),
                Err(_) => String::from_utf8_lossy(e.filename).into_owned(),
            };
            out.push((name, e.mode.kind(), e.oid.to_owned()));
        }
        Ok(out)
    }

    /// Whether the object store has `id` (without fetching anything).
    pub fn has_object(&self, id: ObjectId) -> bool {
        self.repo.has_object(id)
    }

    /// The content of a blob.
    pub fn read_blob(&self, id: ObjectId) -> Result<Vec<u8>, GitError> {
        self.repo
            .find_blob(id)
            .map(|b| b.data.to_vec())
            .map_err(|e| other(format!("cannot read blob {id}"), e))
    }

    /// The size of an object without reading it.
    pub fn object_size(&self, id: ObjectId) -> Result<u64, GitError> {
        self.repo
            .find_header(id)
            .map(|h| h.size())
            .map_err(|e| other(format!("cannot read object {id}"), e))
    }

    pub fn write_blob(&self, bytes: &[u8]) -> Result<ObjectId, GitError> {
        self.repo
            .write_blob(bytes)
            .map(|id| id.detach())
            .map_err(|e| other("cannot write blob", e))
    }

    /// Writes a tree of blobs given by slash-separated paths; returns the root tree id.
    pub fn write_tree(&self, files: &[(String, ObjectId)]) -> Result<ObjectId, GitError> {
        #[derive(Default)]
        struct Dir {
            files: Vec<(String, ObjectId)>,
            dirs: std::collections::BTreeMap<String, Dir>,
        }
        let mut root = Dir::default();
        for (path, id) in files {
            let mut d = &mut root;
            let mut parts: Vec<&str> = path.split('/').collect();
            let name = parts.pop().unwrap_or_default();
            for p in parts {
                d = d.dirs.entry(p.to_string()).or_default();
            }
            d.files.push((name.to_string(), *id));
        }
        fn write(repo: &gix::Repository, d: &Dir) -> Result<ObjectId, GitError> {
            let mut entries = Vec::new();
            for (name, id) in &d.files {
                entries.push(gix::objs::tree::Entry {
                    mode: EntryKind::Blob.into(),
                    filename: name.as_str().into(),
                    oid: *id,
                });
            }
            for (name, sub) in &d.dirs {
                entries.push(gix::objs::tree::Entry {
                    mode: EntryKind::Tree.into(),
                    filename: name.as_str().into(),
                    oid: write(repo, sub)?,
                });
            }
            entries.sort();
            let tree = gix::objs::Tree { entries };
            repo.write_object(&tree)
                .map(|id| id.detach())
                .map_err(|e| other("cannot write tree", e))
        }
        write(&self.repo, &root)
    }

    /// Writes a commit authored by taskhook itself (no user identity needed).
    pub fn write_commit(
        &self,
        tree: ObjectId,
        parent: Option<ObjectId>,
        message: &str,
    ) -> Result<ObjectId, GitError> {
        let seconds = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .unwrap_or(Duration::ZERO)
            .as_secs() as i64;
        let signature = gix::actor::Signature {
            name: "taskhook".into(),
            email: "taskhook@localhost".into(),
            time: gix::date::Time { seconds, offset: 0 },
        };
        let commit = gix::objs::Commit {
            tree,
            parents: parent.into_iter().collect(),
            author: signature.clone(),
            committer: signature,
            encoding: None,
            message: message.into(),
            extra_headers: Vec::new(),
        };
        self.repo
            .write_object(&commit)
            .map(|id| id.detach())
            .map_err(|e| other("cannot write commit", e))
    }

    /// Moves `name` from `expected` (None: must not exist) to `new`. Fails with
    /// [`GitError::Race`] when someone else moved it first. A lock file older than
    /// `stale_lock` is taken to be left over from a killed process and removed.
    pub fn compare_and_swap(
        &self,
        name: &str,
        expected: Option<ObjectId>,
        new: ObjectId,
        message: &str,
        stale_lock: Duration,
    ) -> Result<(), GitError> {
        let edit = || -> Result<RefEdit, GitError> {
            Ok(RefEdit {
                change: Change::Update {
                    log: LogChange {
                        mode: RefLog::AndReference,
                        force_create_reflog: false,
                        message: message.into(),
                    },
                    expected: match expected {
                        Some(id) => PreviousValue::MustExistAndMatch(Target::Object(id)),
                        None => PreviousValue::MustNotExist,
                    },
                    new: Target::Object(new),
                },
                name: name
                    .try_into()
                    .map_err(|e| other(format!("bad ref name {name}"), e))?,
                deref: false,
            })
        };
        let committer = gix::actor::Signature {
            name: "taskhook".into(),
            email: "taskhook@localhost".into(),
            time: gix::date::Time::now_utc(),
        };
        let mut time_buf = Default::default();
        let first = self
            .repo
            .edit_references_as(Some(edit()?), Some(committer.to_ref(&mut time_buf)));
        match first {
            Ok(_) => Ok(()),
            Err(e) => {
                // A lock left by a killed process: the ref's own, or packed-refs' (which gix
                // takes to update a packed ref), once older than `stale_lock`.
                let lock = self.git_dir().join(format!("{name}.lock"));
                let packed = self.repo.common_dir().join("packed-refs.lock");
                let stale: Vec<&Path> = [lock.as_path(), packed.as_path()]
                    .into_iter()
                    .filter(|l| is_stale(l, stale_lock))
                    .collect();
                if !stale.is_empty() {
                    for l in stale {
                        let _ = std::fs::remove_file(l);
                    }
                    let mut time_buf = Default::default();
                    return self
                        .repo
                        .edit_references_as(Some(edit()?), Some(committer.to_ref(&mut time_buf)))
                        .map(|_| ())
                        .map_err(|e| self.classify_ref_error(name, expected, e));
                }
                Err(self.classify_ref_error(name, expected, e))
            }
        }
    }

    /// Whether a lock file for ref `name`, or for packed-refs, exists (someone is, or was,
    /// writing it).
    pub fn ref_locked(&self, name: &str) -> bool {
        self.git_dir().join(format!("{name}.lock")).exists()
            || self.repo.common_dir().join("packed-refs.lock").exists()
    }

    fn classify_ref_error(
        &self,
        name: &str,
        expected: Option<ObjectId>,
        e: impl std::fmt::Display,
    ) -> GitError {
        let now = self.ref_target(name).ok().flatten();
        if now != expected {
            GitError::Race {
                name: name.to_string(),
                expected: expected.map_or("nothing".into(), |id| id.to_string()),
            }
        } else {
            other(format!("cannot update {name}"), e)
        }
    }
}

fn is_stale(lock: &Path, age: Duration) -> bool {
    std::fs::metadata(lock)
        .and_then(|m| m.modified())
        .ok()
        .and_then(|t| SystemTime::now().duration_since(t).ok())
        .is_some_and(|elapsed| elapsed >= age)
}

/// The id git gives a blob holding `data`.
pub fn blob_id(data: &[u8]) -> ObjectId {
    gix::objs::compute_hash(gix::hash::Kind::Sha1, gix::objs::Kind::Blob, data)
        .unwrap_or_else(|_| ObjectId::null(gix::hash::Kind::Sha1))
}

/// The id git gives the tree holding `files` (paths relative to it, `/`-separated, with their
/// mode and blob id), computed without writing anything.
pub fn tree_id_of(files: &[(String, EntryKind, ObjectId)]) -> ObjectId {
    use gix::objs::WriteTo as _;
    #[derive(Default)]
    struct Dir {
        files: Vec<(String, EntryKind, ObjectId)>,
        dirs: std::collections::BTreeMap<String, Dir>,
    }
    let mut root = Dir::default();
    for (path, kind, id) in files {
        let mut d = &mut root;
        let mut parts: Vec<&str> = path.split('/').collect();
        let name = parts.pop().unwrap_or_default();
        for p in parts {
            d = d.dirs.entry(p.to_string()).or_default();
        }
        d.files.push((name.to_string(), *kind, *id));
    }
    fn hash(d: &Dir) -> ObjectId {
        let mut entries: Vec<gix::objs::tree::Entry> = d
            .files
            .iter()
            .map(|(name, kind, id)| gix::objs::tree::Entry {
                mode: (*kind).into(),
                filename: name.as_str().into(),
                oid: *id,
            })
            .collect();
        for (name, sub) in &d.dirs {
            entries.push(gix::objs::tree::Entry {
                mode: EntryKind::Tree.into(),
                filename: name.as_str().into(),
                oid: hash(sub),
            });
        }
        entries.sort();
        let mut buf = Vec::new();
        let _ = gix::objs::Tree { entries }.write_to(&mut buf);
        gix::objs::compute_hash(gix::hash::Kind::Sha1, gix::objs::Kind::Tree, &buf)
            .unwrap_or_else(|_| ObjectId::null(gix::hash::Kind::Sha1))
    }
    hash(&root)
}
