//! The one module that talks to git's on-disk formats (through gitoxide's crates): opening
//! repositories (including git's push quarantine), reading their configuration, commits, trees
//! and blobs, writing the manifest's objects, and moving a ref with compare-and-swap.
//!
//! It uses gitoxide's object, ref, config and discovery crates directly rather than the `gix`
//! facade: the hooks need little of it, and the build and every hook start pay for what is
//! compiled and initialized.

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use bstr::ByteSlice;
pub use gix_hash::ObjectId;
use gix_lock::acquire::Fail;
pub use gix_object::tree::EntryKind;
use gix_object::{Find as _, FindHeader as _};
use gix_ref::file::ReferenceExt as _;
use gix_ref::transaction::{Change, LogChange, PreviousValue, RefEdit, RefLog};
use gix_ref::Target;

mod reffile;
pub mod stored;
pub use reffile::SPARE as SPARE_REF;
pub use stored::Previous;

const HASH: gix_hash::Kind = gix_hash::Kind::Sha1;

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
    /// Another writer held the lock the update needs (a reftable's, which every ref takes).
    #[error("{0}")]
    Locked(String),
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
    git_dir: PathBuf,
    common_dir: PathBuf,
    bare: bool,
    objects: Objects,
    refs: gix_ref::file::Store,
    /// The refs are in a backend gitoxide does not read (reftable, `extensions.refStorage`):
    /// they are read and moved by running git ([`Repo::git_refs`]).
    refs_by_git: bool,
    config: gix_config::File,
    /// How long to wait for a ref's lock and for packed-refs' lock.
    lock_timeouts: (Fail, Fail),
    /// Large trees carried from one push to the next ([`Repo::tree_pair`]).
    trees: std::cell::RefCell<CarriedTrees>,
}

/// Trees of at least this many bytes that [`Repo::tree_pair`] reads as the newer side are kept
/// for the next push (`server::handover`), which reads them as its older side: inflating a
/// 72 KB tree (a directory of 2,000 tasks) took 0.31 ms in pre-receive, checking its id 0.09.
/// Smaller trees inflate in about the time their id takes to check.
pub const CARRIED_TREE_BYTES: usize = 16 * 1024;
/// At most this many bytes of trees are kept per process.
pub const MAX_CARRIED_BYTES: usize = 8 << 20;

/// The trees [`Repo::tree_pair`] takes from an earlier push and those it keeps for the next.
#[derive(Default)]
struct CarriedTrees {
    /// Offered by an earlier push: each is used once, and only if it hashes to its id.
    offered: Vec<(ObjectId, Vec<u8>)>,
    /// Read as the newer side of a pair, to offer to the next push.
    read: Vec<(ObjectId, Vec<u8>)>,
}

/// A tree listed against an earlier version of it ([`Repo::tree_pair`]).
#[derive(Debug, Default, PartialEq)]
pub struct TreePair {
    /// The new tree's entries in order, but for the subtrees found in the old tree under the
    /// same name with the same id: name, kind, id.
    pub changed: Vec<(String, EntryKind, ObjectId)>,
    /// The old tree's subtrees in order, but for those same ones.
    pub old_dirs: Vec<(String, ObjectId)>,
    /// How many subtrees are the same in both, and their names (when asked for).
    pub same: usize,
    pub same_names: Vec<String>,
    /// Whether the old tree has an entry of the name given as `keep`.
    pub old_has_keep: bool,
}

/// The entries of tree `id`, whose data is `data`, decoded one by one.
fn tree_entries(
    data: &[u8],
    id: ObjectId,
) -> impl Iterator<Item = Result<gix_object::tree::EntryRef<'_>, GitError>> {
    gix_object::TreeRefIter::from_bytes(data, HASH)
        .map(move |e| e.map_err(|e| other(format!("cannot decode tree {id}"), e)))
}

/// git's order of tree entries: by name, a subtree's name compared as if it ended in `/`.
/// Entries of one name and kind compare equal.
fn git_order(a: (&[u8], bool), b: (&[u8], bool)) -> std::cmp::Ordering {
    let common = a.0.len().min(b.0.len());
    match a.0[..common].cmp(&b.0[..common]) {
        std::cmp::Ordering::Equal => {}
        unequal => return unequal,
    }
    let next = |(name, tree): (&[u8], bool)| match name.get(common) {
        Some(&c) => c,
        None if tree => b'/',
        None => 0,
    };
    next(a).cmp(&next(b))
}

/// Blobs at least this large are hashed on another thread while their loose file is written
/// (below it, starting a thread costs about as much as hashing). A thread starts running
/// 0.2-0.4 ms after it is made on the 2-core VMs measured, and still, at 2,000 tasks (a 442 KB
/// branch file), post-receive took 0.4-0.55 ms less with the two hashes on two threads than
/// with one thread doing it all (docs/BENCHMARKS.md, eleventh round). The file is written by
/// the thread that asked, not a third one: made last, a third thread waited for a core while
/// the id, the longest piece, did not start (twenty-first round).
pub const PARALLEL_HASH_BYTES: usize = 256 * 1024;

/// A large blob being written by [`Repo::write_blob_later`].
pub struct PendingBlob<'scope> {
    objects: Option<PathBuf>,
    bytes: &'scope [u8],
    hashing: Option<std::thread::ScopedJoinHandle<'scope, ObjectId>>,
    id: Option<ObjectId>,
    written: Option<std::io::Result<tempfile::NamedTempFile>>,
}

impl PendingBlob<'_> {
    /// Writes the blob's file on this thread, unless it is written already.
    fn write(&mut self) {
        if self.written.is_none() {
            let header =
                gix_object::encode::loose_header(gix_object::Kind::Blob, self.bytes.len() as u64);
            let bytes = self.bytes;
            self.written = Some(write_loose_file(self.objects.as_deref(), |f| {
                stored::write(f, &header, bytes)
            }));
        }
    }

    /// The blob's id, once computed; first, while the other thread computes it, the blob's
    /// file is written on this one (unless it is written already).
    pub fn id(&mut self) -> Result<ObjectId, GitError> {
        self.write();
        if let Some(hashing) = self.hashing.take() {
            self.id = hashing.join().ok();
        }
        self.id
            .ok_or_else(|| other("cannot write blob", "hashing it failed"))
    }

    /// Moves the blob's file to where its id says.
    pub fn finish(mut self) -> Result<ObjectId, GitError> {
        let id = self.id().ok();
        let written = self
            .written
            .take()
            .unwrap_or_else(|| Err(std::io::Error::other("writing it failed")));
        persist_blob(self.objects.as_deref(), id, written)
    }
}

/// A repository's object directories in lookup order, to read from another thread.
#[derive(Debug, Clone)]
pub struct ObjectDirs(Vec<PathBuf>);

impl ObjectDirs {
    /// Blob `id`, the stored version of a file about to be written anew: read from its loose
    /// file, where a large blob is stored uncompressed, else from a pack. `None` when it is
    /// larger than `max` bytes.
    pub fn read_previous(&self, id: ObjectId, max: u64) -> Result<Option<Previous>, GitError> {
        let hex = id.to_string();
        for dir in &self.0 {
            let path = dir.join(&hex[..2]).join(&hex[2..]);
            let Ok(meta) = std::fs::metadata(&path) else {
                continue;
            };
            // zlib never stores more than about `max` and a little; a larger file is left to
            // the object store to refuse.
            if meta.len() > max.saturating_add(max / 1024 + 1024) {
                break;
            }
            let Ok(file) = std::fs::read(&path) else {
                break;
            };
            if let Ok(p) = Previous::read(file, max) {
                return Ok(Some(p));
            }
            // Too large, or not as expected: the object store says which.
            break;
        }
        Ok(self.read_blob(id, max)?.map(Previous::content))
    }

    /// The content of blob `id`, unless it is larger than `max` bytes (`None`).
    fn read_blob(&self, id: ObjectId, max: u64) -> Result<Option<Vec<u8>>, GitError> {
        for dir in &self.0 {
            let store = open_objects(dir)
                .map_err(|e| other(format!("cannot open {}", dir.display()), e))?;
            match store.try_header(&id) {
                Ok(Some(header)) if header.kind != gix_object::Kind::Blob => {
                    return Err(other(
                        format!("cannot read blob {id}"),
                        format!("it is a {}", header.kind),
                    ))
                }
                Ok(Some(header)) if header.size > max => return Ok(None),
                Ok(Some(_)) => {}
                Ok(None) => continue,
                Err(e) => return Err(other(format!("cannot read blob {id}"), e)),
            }
            let mut buf = Vec::new();
            return match store.try_find(&id, &mut buf) {
                Ok(Some(_)) => Ok(Some(buf)),
                Ok(None) => Err(other(format!("cannot read blob {id}"), "it vanished")),
                Err(e) => Err(other(format!("cannot read blob {id}"), e)),
            };
        }
        Err(other(format!("cannot read blob {id}"), "no such blob"))
    }
}

/// The object stores a repository reads: during pre-receive the push's quarantine first, then
/// the main store, the only one written to.
struct Objects {
    quarantine: Vec<Store>,
    main: Store,
    /// The directories of `quarantine` and `main`, in the same order.
    dirs: Vec<PathBuf>,
    /// Small trees and commits already read. A hook looks up the manifest ref's few trees
    /// several times (each path it reads starts at the root), and each loose read is a file
    /// opened, mapped and inflated; an object never changes, so a copy is always right.
    small: std::cell::RefCell<Vec<(ObjectId, gix_object::Kind, Vec<u8>)>>,
    /// Larger trees read again and again, kept from their third read on: the manifest's
    /// `branches/` and `state/` hold a file per branch, and a push of many branches looks a
    /// file up in them for each. A tree read once or twice (a pushed directory of tasks) is not
    /// copied: `seen` counts the reads of trees too large for `small`.
    large: std::cell::RefCell<Vec<(ObjectId, Vec<u8>)>>,
    seen: std::cell::RefCell<Vec<(ObjectId, u8)>>,
    /// The zlib state loose objects are read with ([`Objects::read_loose`]).
    inflater: std::cell::RefCell<Option<flate2::Decompress>>,
    /// Objects read from the stores (not from `small`), for tests that bound a lookup's reads.
    #[cfg(test)]
    reads: std::cell::Cell<usize>,
}

/// An object directory's store (its packs and alternates, through gitoxide), opened when first
/// needed. Objects in loose files are read without it, and right after a push a hook finds
/// most of what it reads there (the pushed objects, the manifest's): then it never lists the
/// pack directory or reads the alternates, about 0.08 ms per directory.
struct Store {
    dir: PathBuf,
    /// A quarantine, which nothing repacks while a hook runs.
    quarantine: bool,
    handle: std::cell::OnceCell<std::io::Result<gix_odb::Handle>>,
    /// For a quarantine: whether it holds more than loose files (a pack index, or alternates
    /// of its own), looked at once.
    beyond_loose: std::cell::OnceCell<bool>,
}

impl Store {
    fn new(dir: PathBuf, quarantine: bool) -> Store {
        Store {
            dir,
            quarantine,
            handle: Default::default(),
            beyond_loose: Default::default(),
        }
    }

    /// Whether the store may have an object that is not a loose file in its directory. A push
    /// of fewer objects than `transfer.unpackLimit` (100) leaves its quarantine with loose files
    /// only: the loose reads have looked there already, and opening the store for a lookup
    /// that then misses it (every object read from the main store's packs) took 22 of
    /// pre-receive's system calls (docs/BENCHMARKS.md, twentieth round).
    fn beyond_loose(&self) -> bool {
        !self.quarantine
            || *self.beyond_loose.get_or_init(|| {
                if self.dir.join("info").join("alternates").exists() {
                    return true;
                }
                match std::fs::read_dir(self.dir.join("pack")) {
                    Ok(entries) => entries
                        .flatten()
                        .any(|e| e.file_name().as_encoded_bytes().ends_with(b".idx")),
                    Err(e) => e.kind() != std::io::ErrorKind::NotFound,
                }
            })
    }

    fn get(&self) -> gix_error::Result<&gix_odb::Handle> {
        let opened = self.handle.get_or_init(|| {
            let mut handle = open_objects(&self.dir)?;
            if self.quarantine {
                // Most lookups miss the quarantine (they are for objects already in the main
                // store); nothing repacks it while the hook runs, so a miss need not re-read
                // its pack directory and alternates as gitoxide does by default.
                handle.refresh_never();
            }
            Ok(handle)
        });
        opened.as_ref().map_err(|e| {
            gix_error::Error::from_error(std::io::Error::new(
                e.kind(),
                format!("cannot open {}: {e}", self.dir.display()),
            ))
        })
    }

    /// Whether looking `id` up in the store can find it: where the store holds loose files only,
    /// only when there is one for `id` (which the loose readers found damaged, or not as they
    /// expect: the store then reads it and says what is wrong).
    fn may_hold(&self, id: &gix_hash::oid) -> bool {
        self.beyond_loose() || loose_path(&self.dir, id.to_owned()).is_file()
    }

    /// Whether the store has `id`; a store that cannot be opened has nothing.
    fn has(&self, id: &gix_hash::oid) -> bool {
        self.may_hold(id) && self.get().is_ok_and(|h| gix_object::Exists::exists(h, id))
    }
}

/// What `Objects::small` keeps: objects of at most this many bytes, at most this many of them.
const SMALL_OBJECT_BYTES: usize = 4096;
const SMALL_OBJECTS: usize = 64;
/// What `Objects::large` keeps: trees of at most this many bytes (the manifest's directories of
/// 10,000 branches), at most this many of them, and how many larger trees `seen` counts.
const LARGE_TREE_BYTES: usize = 1 << 20;
const LARGE_TREES: usize = 8;
const SEEN_TREES: usize = 256;

impl Objects {
    /// Counts a read of the large tree `id` (its `data`), and keeps it once read a third time.
    fn count_read(&self, id: &gix_hash::oid, data: &[u8]) {
        let mut seen = self.seen.borrow_mut();
        let Some((_, reads)) = seen.iter_mut().find(|(k, _)| k.as_ref() == id) else {
            if seen.len() < SEEN_TREES {
                seen.push((id.to_owned(), 1));
            }
            return;
        };
        if *reads < 2 {
            *reads += 1;
            return;
        }
        let mut large = self.large.borrow_mut();
        if large.len() < LARGE_TREES {
            large.push((id.to_owned(), data.to_vec()));
        }
    }

    fn all(&self) -> impl Iterator<Item = &Store> {
        self.quarantine.iter().chain(std::iter::once(&self.main))
    }

    fn exists(&self, id: &gix_hash::oid) -> bool {
        let id = id.to_owned();
        self.dirs.iter().any(|dir| loose_path(dir, id).is_file()) || self.all().any(|s| s.has(&id))
    }

    /// The header of object `id` from a loose file in one of `dirs`; `None` when there is no
    /// such file or it is not what this reader expects (the stores then say).
    fn loose_header(&self, id: &gix_hash::oid) -> Option<gix_object::Header> {
        use std::io::Read as _;
        let id = id.to_owned();
        let file = self
            .dirs
            .iter()
            .find_map(|dir| std::fs::File::open(loose_path(dir, id)).ok())?;
        let mut start = Vec::with_capacity(256);
        file.take(256).read_to_end(&mut start).ok()?;
        let mut inflater = self.inflater.borrow_mut();
        let inflater = inflater.get_or_insert_with(|| flate2::Decompress::new(true));
        let (kind, size) = stored::read_header(&start, inflater).ok()?;
        Some(gix_object::Header {
            kind,
            size: size as u64,
        })
    }

    /// Object `id` read from a loose file in one of `dirs` (the quarantine's first), with one
    /// zlib state for the whole process; `None` when there is no such file, or it is not what
    /// this reader expects (the object store then reads it, from a pack or an alternate, and
    /// says what is wrong with a damaged file).
    fn read_loose(&self, id: &gix_hash::oid, buffer: &mut Vec<u8>) -> Option<gix_object::Kind> {
        let id = id.to_owned();
        let file = self
            .dirs
            .iter()
            .find_map(|dir| std::fs::read(loose_path(dir, id)).ok())?;
        let mut inflater = self.inflater.borrow_mut();
        let inflater = inflater.get_or_insert_with(|| flate2::Decompress::new(true));
        stored::read_object(file, inflater, buffer).ok()
    }

    fn lookup_prefix(&self, prefix: gix_hash::Prefix) -> Option<ObjectId> {
        self.all()
            .filter_map(|s| s.get().ok())
            .find_map(|s| match s.lookup_prefix(prefix, None) {
                Ok(Some(Ok(id))) => Some(id),
                _ => None,
            })
    }
}

impl gix_object::Find for Objects {
    fn try_find<'a>(
        &self,
        id: &gix_hash::oid,
        buffer: &'a mut Vec<u8>,
    ) -> gix_error::Result<Option<gix_object::Data<'a>>> {
        use gix_object::Kind;
        let hit = self
            .small
            .borrow()
            .iter()
            .find(|(k, ..)| k.as_ref() == id)
            .map(|(_, kind, data)| {
                buffer.clear();
                buffer.extend_from_slice(data);
                *kind
            });
        if let Some(kind) = hit {
            return Ok(Some(gix_object::Data::new(buffer, kind, HASH)));
        }
        let large = self.large.borrow();
        if let Some((_, data)) = large.iter().find(|(k, _)| k.as_ref() == id) {
            buffer.clear();
            buffer.extend_from_slice(data);
            return Ok(Some(gix_object::Data::new(buffer, Kind::Tree, HASH)));
        }
        drop(large);
        #[cfg(test)]
        self.reads.set(self.reads.get() + 1);
        let found = match self.read_loose(id, buffer) {
            Some(kind) => Some(gix_object::Data::new(buffer, kind, HASH)),
            None => match self.quarantine.iter().find(|s| s.has(id)) {
                Some(store) => store.get()?.try_find(id, buffer)?,
                None => self.main.get()?.try_find(id, buffer)?,
            },
        };
        if let Some(object) = &found {
            let mut small = self.small.borrow_mut();
            if matches!(object.kind, Kind::Tree | Kind::Commit)
                && object.data.len() <= SMALL_OBJECT_BYTES
            {
                if small.len() < SMALL_OBJECTS {
                    small.push((id.to_owned(), object.kind, object.data.to_vec()));
                }
            } else if object.kind == Kind::Tree && object.data.len() <= LARGE_TREE_BYTES {
                self.count_read(id, object.data);
            }
        }
        Ok(found)
    }
}

impl gix_object::FindHeader for Objects {
    fn try_header(&self, id: &gix_hash::oid) -> gix_error::Result<Option<gix_object::Header>> {
        if let Some(header) = self.loose_header(id) {
            return Ok(Some(header));
        }
        for store in self.all().filter(|s| s.may_hold(id)) {
            if let Some(header) = store.get()?.try_header(id)? {
                return Ok(Some(header));
            }
        }
        Ok(None)
    }
}

impl Repo {
    /// Opens the repository at `path` (a bare repo, a `.git` dir or a work tree, or a
    /// directory inside one).
    pub fn open(path: &Path) -> Result<Repo, GitError> {
        let failed = |message: String| GitError::Open {
            path: path.to_path_buf(),
            message,
        };
        // Searched from the absolute path: given a relative one, gitoxide spells a bare
        // repository found above the working directory (`..`, `../srv.git`) as `../.git`.
        let start = absolute(path).map_err(|e| failed(e.to_string()))?;
        let (found, _trust) = gix_discover::upwards(&start).map_err(|e| failed(e.to_string()))?;
        let (git_dir, work_tree) = found.into_repository_and_work_tree_directories();
        let git_dir = absolute(&git_dir).map_err(|e| failed(e.to_string()))?;
        Repo::at(git_dir, path, Some(work_tree.is_none()))
    }

    /// Opens the git directory `git_dir` as found (see [`Repo::open`]); `bare` is whether
    /// discovery found it without a work tree, `None` when it was not searched for: then
    /// `core.bare` says, and discovery runs only if that is not set.
    fn at(git_dir: PathBuf, path: &Path, bare: Option<bool>) -> Result<Repo, GitError> {
        let failed = |message: String| GitError::Open {
            path: path.to_path_buf(),
            message,
        };
        let common_dir = match std::fs::read_to_string(git_dir.join("commondir")) {
            Ok(text) => git_dir.join(text.trim_end_matches(['\n', '\r'])),
            Err(_) => git_dir.clone(),
        };
        let config = read_config(&git_dir, &common_dir).map_err(failed)?;
        if let Some(format) = config.string("extensions.objectFormat") {
            if !format.eq_ignore_ascii_case(b"sha1") {
                return Err(failed(format!(
                    "object format `{format}` is not supported (only sha1)"
                )));
            }
        }
        let refs_by_git = config
            .string("extensions.refStorage")
            .is_some_and(|v| !v.eq_ignore_ascii_case(b"files"));
        #[cfg(unix)]
        use_shared_perm(shared_perm(&config));
        let bare = match (config.boolean("core.bare"), bare) {
            (Ok(Some(bare)), _) => bare,
            (_, Some(bare)) => bare,
            (_, None) => return Repo::open(path),
        };
        let write_reflog = match config.string("core.logAllRefUpdates") {
            Some(v) if v.eq_ignore_ascii_case(b"always") => gix_ref::store::WriteReflog::Always,
            Some(_) => match config.boolean("core.logAllRefUpdates") {
                Ok(Some(false)) => gix_ref::store::WriteReflog::Disable,
                _ => gix_ref::store::WriteReflog::Normal,
            },
            None if bare => gix_ref::store::WriteReflog::Disable,
            None => gix_ref::store::WriteReflog::Normal,
        };
        let ref_options = gix_ref::store::init::Options {
            write_reflog,
            ..Default::default()
        };
        let refs = if common_dir == git_dir {
            gix_ref::file::Store::at_opts(git_dir.clone(), HASH, ref_options)
        } else {
            gix_ref::file::Store::for_linked_worktree_opts(
                git_dir.clone(),
                common_dir.clone(),
                HASH,
                ref_options,
            )
        };
        let main = common_dir.join("objects");
        if !main.is_dir() {
            return Err(failed(format!(
                "cannot open its objects: {} is not a directory",
                main.display()
            )));
        }
        let objects = Objects {
            quarantine: Vec::new(),
            main: Store::new(main.clone(), false),
            dirs: vec![main],
            small: Default::default(),
            large: Default::default(),
            seen: Default::default(),
            inflater: Default::default(),
            #[cfg(test)]
            reads: Default::default(),
        };
        let lock_timeouts = (
            lock_timeout(&config, "core.filesRefLockTimeout", 100),
            lock_timeout(&config, "core.packedRefsTimeout", 1000),
        );
        Ok(Repo {
            git_dir,
            common_dir,
            bare,
            objects,
            refs,
            refs_by_git,
            config,
            lock_timeouts,
            trees: Default::default(),
        })
    }

    /// Opens the repository a hook runs in. git runs hooks in the repository with `GIT_DIR` set;
    /// during pre-receive the pushed objects are in a quarantine directory
    /// (`GIT_QUARANTINE_PATH`, also in `GIT_OBJECT_DIRECTORY`) that gitoxide does not look at by
    /// itself, with the main store in `GIT_ALTERNATE_OBJECT_DIRECTORIES`: objects are then
    /// looked up in the quarantine first, then in the main store. Nothing is ever written to the
    /// quarantine (pre-receive only reads).
    pub fn open_for_hook() -> Result<Repo, GitError> {
        let dir = std::env::var_os("GIT_DIR")
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from("."));
        // git gives hooks the repository's git directory: taken as it is, as git itself takes
        // `GIT_DIR`, without searching upwards from it (a fifth of a millisecond per hook).
        let mut repo = match absolute(&dir) {
            Ok(git_dir) if git_dir.join("HEAD").is_file() => Repo::at(git_dir, &dir, None)?,
            _ => Repo::open(&dir)?,
        };
        if let Some(quarantine) = std::env::var_os("GIT_QUARANTINE_PATH") {
            let mut dirs = vec![PathBuf::from(quarantine)];
            if let Some(alt) = std::env::var_os("GIT_ALTERNATE_OBJECT_DIRECTORIES") {
                dirs.extend(std::env::split_paths(&alt));
            }
            let main = repo.common_dir.join("objects");
            for dir in dirs {
                let dir =
                    absolute(&dir).map_err(|e| other("cannot resolve the quarantine path", e))?;
                if dir == main || !dir.is_dir() {
                    continue;
                }
                repo.objects.quarantine.push(Store::new(dir.clone(), true));
                let at = repo.objects.dirs.len() - 1;
                repo.objects.dirs.insert(at, dir);
            }
        }
        Ok(repo)
    }

    /// The owner of this repository's objects when it is another user than this process's and
    /// the repository is not shared with a group (`core.sharedRepository`): what this process
    /// writes there then belongs to it, and the owner's pushes cannot write beside it.
    #[cfg(unix)]
    pub fn foreign_owner(&self) -> Option<u32> {
        use std::os::unix::fs::MetadataExt as _;
        let owner = std::fs::metadata(self.common_dir.join("objects"))
            .ok()?
            .uid();
        let me = rustix::process::geteuid().as_raw();
        (owner != me && shared_perm(&self.config) == SharedPerm::Umask).then_some(owner)
    }

    /// How many objects this repository has read from its stores (tests only).
    #[cfg(test)]
    pub(crate) fn objects_read(&self) -> usize {
        self.objects.reads.get()
    }

    pub fn git_dir(&self) -> &Path {
        &self.git_dir
    }

    pub fn is_bare(&self) -> bool {
        self.bare
    }

    /// A git config value (repository, then global and system files, as git reads them).
    pub fn config(&self, key: &str) -> Option<String> {
        self.config
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
        if self.refs_by_git {
            return self.resolve_by_git(rev);
        }
        let candidates = [
            rev.to_string(),
            format!("refs/heads/{rev}"),
            format!("refs/tags/{rev}"),
            format!("refs/remotes/{rev}"),
        ];
        for name in candidates {
            if let Ok(Some(mut r)) = self.refs.try_find(name.as_str()) {
                if let Ok(id) = r.peel_to_id(&self.refs, &self.objects) {
                    return Ok(id);
                }
            }
        }
        if rev.len() >= 4 && rev.len() < 40 && rev.bytes().all(|b| b.is_ascii_hexdigit()) {
            if let Ok(prefix) = gix_hash::Prefix::from_hex(rev) {
                if let Some(id) = self.objects.lookup_prefix(prefix) {
                    return Ok(id);
                }
            }
        }
        if rev == "HEAD" {
            if let Some(name) = self.head_target() {
                return Err(GitError::UnbornHead(name));
            }
        }
        Err(GitError::UnknownRevision(rev.to_string()))
    }

    /// The names of the keys set in config section `section` (every file git reads), as written.
    pub fn config_keys(&self, section: &str) -> Vec<String> {
        let mut out = Vec::new();
        if let Some(sections) = self.config.sections_by_name(section) {
            for s in sections {
                for name in s.value_names() {
                    out.push(name);
                }
            }
        }
        out
    }

    fn peel_to_commit(&self, mut id: ObjectId, rev: &str) -> Result<ObjectId, GitError> {
        let mut buf = Vec::new();
        for _ in 0..16 {
            let object = self
                .objects
                .try_find(&id, &mut buf)
                .ok()
                .flatten()
                .ok_or_else(|| GitError::UnknownRevision(rev.to_string()))?;
            match object.kind {
                gix_object::Kind::Commit => return Ok(id),
                gix_object::Kind::Tag => {
                    id = gix_object::TagRefIter::from_bytes(object.data, HASH)
                        .target_id()
                        .map_err(|e| other(format!("cannot read tag {rev}"), e))?;
                }
                _ => break,
            }
        }
        Err(GitError::NotACommit(rev.to_string()))
    }

    /// The object `id`, which must be a `kind`, read into `buf`.
    fn find<'b>(
        &self,
        id: ObjectId,
        kind: gix_object::Kind,
        buf: &'b mut Vec<u8>,
    ) -> Result<&'b [u8], GitError> {
        match self.objects.try_find(&id, buf) {
            Ok(Some(object)) if object.kind == kind => Ok(object.data),
            Ok(Some(object)) => Err(other(
                format!("cannot read {kind} {id}"),
                format!("it is a {}", object.kind),
            )),
            Ok(None) => Err(other(
                format!("cannot read {kind} {id}"),
                "it does not exist",
            )),
            Err(e) => Err(other(format!("cannot read {kind} {id}"), e)),
        }
    }

    /// The root tree of a commit.
    pub fn commit_tree(&self, commit: ObjectId) -> Result<ObjectId, GitError> {
        let mut buf = Vec::new();
        let data = self.find(commit, gix_object::Kind::Commit, &mut buf)?;
        gix_object::CommitRefIter::from_bytes(data, HASH)
            .tree_id()
            .map_err(|e| other(format!("cannot read commit {commit}"), e))
    }

    /// Where a ref points, if it exists.
    pub fn ref_target(&self, name: &str) -> Result<Option<ObjectId>, GitError> {
        if self.refs_by_git {
            let found = self
                .git_refs(Some(name))?
                .into_iter()
                .find(|r| r.name == name);
            return Ok(found.and_then(|r| (!r.symbolic).then_some(r.id)));
        }
        match self.refs.try_find(name) {
            Ok(Some(r)) => Ok(r.target.try_id().map(|id| id.to_owned())),
            Ok(None) => Ok(None),
            Err(e) => Err(other(format!("cannot read ref {name}"), e)),
        }
    }

    /// [`Repo::ref_target`] of each of `names`, read at once: where git reads the refs (a
    /// reftable), one git for all of them instead of one each.
    pub fn ref_targets(
        &self,
        names: &[String],
    ) -> Result<std::collections::HashMap<String, Option<ObjectId>>, GitError> {
        if !self.refs_by_git || names.len() < 2 {
            return names
                .iter()
                .map(|n| Ok((n.clone(), self.ref_target(n)?)))
                .collect();
        }
        let mut out: std::collections::HashMap<String, Option<ObjectId>> =
            names.iter().map(|n| (n.clone(), None)).collect();
        let patterns: Vec<&str> = names.iter().map(String::as_str).collect();
        // A pattern also matches the refs below it (`refs/heads/a` finds `refs/heads/a/b`):
        // only the names asked for are kept.
        for r in self.git_refs_among(&patterns)? {
            if let Some(slot) = out.get_mut(&r.name) {
                *slot = (!r.symbolic).then_some(r.id);
            }
        }
        Ok(out)
    }

    /// Every ref's full name.
    pub fn ref_names(&self) -> Result<Vec<String>, GitError> {
        if self.refs_by_git {
            return Ok(self.git_refs(None)?.into_iter().map(|r| r.name).collect());
        }
        let platform = self.refs.iter().map_err(|e| other("cannot list refs", e))?;
        let mut out = Vec::new();
        for r in platform.all().map_err(|e| other("cannot list refs", e))? {
            let r = r.map_err(|e| other("cannot list refs", e))?;
            out.push(r.name.as_bstr().to_str_lossy().into_owned());
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
        let prefix = if remote {
            "refs/remotes/"
        } else {
            "refs/heads/"
        };
        if self.refs_by_git {
            let mut out = Vec::new();
            for r in self.git_refs(Some(prefix))? {
                let Some(short) = r.name.strip_prefix(prefix) else {
                    continue;
                };
                if remote && r.symbolic {
                    continue;
                }
                out.push((short.to_string(), r.peeled.unwrap_or(r.id)));
            }
            out.sort();
            return Ok(out);
        }
        let platform = self.refs.iter().map_err(|e| other("cannot list refs", e))?;
        let mut out = Vec::new();
        for r in platform
            .all()
            .map_err(|e| other("cannot list branches", e))?
        {
            let mut r = r.map_err(|e| other("cannot list branches", e))?;
            let name = r.name.as_bstr().to_str_lossy().into_owned();
            let Some(short) = name.strip_prefix(prefix) else {
                continue;
            };
            // `refs/remotes/origin/HEAD` names a branch rather than being one.
            if remote && matches!(r.target, Target::Symbolic(_)) {
                continue;
            }
            if let Ok(id) = r.peel_to_id(&self.refs, &self.objects) {
                out.push((short.to_string(), id));
            }
        }
        out.sort();
        Ok(out)
    }

    /// The full ref name `HEAD` points to, if `HEAD` is symbolic.
    fn head_target(&self) -> Option<String> {
        if self.refs_by_git {
            let out = self
                .git_on_refs()
                .args(["symbolic-ref", "--quiet", "HEAD"])
                .output()
                .ok()?;
            let name = String::from_utf8(out.stdout).ok()?;
            return (out.status.success()).then(|| name.trim_end().to_string());
        }
        let head = self.refs.find_loose("HEAD").ok()?;
        match head.target {
            Target::Symbolic(name) => Some(name.as_bstr().to_str_lossy().into_owned()),
            Target::Object(_) => None,
        }
    }

    /// The branch `HEAD` points to (`master`, `main`, `rawhide`...), if any.
    pub fn head_branch(&self) -> Option<String> {
        self.head_target()?
            .strip_prefix("refs/heads/")
            .map(str::to_string)
    }

    /// Reads the file at `path` in `tree`, if it exists and is a blob.
    pub fn read_path(&self, tree: ObjectId, path: &str) -> Result<Option<Vec<u8>>, GitError> {
        let Some(id) = self.path_id(tree, path)? else {
            return Ok(None);
        };
        let mut buf = Vec::new();
        self.find(id, gix_object::Kind::Blob, &mut buf)
            .map_err(|e| other(format!("cannot read {path}"), e))?;
        Ok(Some(buf))
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

    /// The blob id of each of `paths` below `tree` that names a blob, as [`Repo::path_id`]
    /// finds it, reading each tree on the way once. Looked up one by one, the files of one
    /// directory would read and decode that directory once per file: the manifest's `branches/`
    /// and `state/` hold a file per branch, so listing them so grew with the square of the
    /// branches (docs/BENCHMARKS.md, twenty-seventh round).
    pub fn path_ids<'p>(
        &self,
        tree: ObjectId,
        paths: impl IntoIterator<Item = &'p str>,
    ) -> Result<std::collections::BTreeMap<&'p str, ObjectId>, GitError> {
        let mut found = std::collections::BTreeMap::new();
        let wanted: Vec<(&str, &str)> = paths.into_iter().map(|p| (p, p)).collect();
        self.ids_below(tree, wanted, &mut found)?;
        Ok(found)
    }

    /// [`Repo::path_ids`] in `tree`, for `wanted` (each the rest of a path below `tree`, and the
    /// whole path).
    fn ids_below<'p>(
        &self,
        tree: ObjectId,
        wanted: Vec<(&'p str, &'p str)>,
        found: &mut std::collections::BTreeMap<&'p str, ObjectId>,
    ) -> Result<(), GitError> {
        let entries = self.tree_entries(tree)?;
        // The first entry of each name, the one `entry_at` takes.
        let mut first: std::collections::HashMap<&[u8], (EntryKind, ObjectId)> =
            std::collections::HashMap::with_capacity(entries.len());
        for (name, kind, id) in &entries {
            first.entry(name.as_slice()).or_insert((*kind, *id));
        }
        let mut below: std::collections::BTreeMap<&str, Vec<(&str, &str)>> = Default::default();
        for (rest, path) in wanted {
            match rest.split_once('/') {
                Some((dir, rest)) => below.entry(dir).or_default().push((rest, path)),
                None => {
                    if let Some((EntryKind::Blob | EntryKind::BlobExecutable, id)) =
                        first.get(rest.as_bytes())
                    {
                        found.insert(path, *id);
                    }
                }
            }
        }
        for (dir, wanted) in below {
            if let Some((EntryKind::Tree, id)) = first.get(dir.as_bytes()) {
                self.ids_below(*id, wanted, found)?;
            }
        }
        Ok(())
    }

    /// The entries of a tree as stored: names as bytes, duplicates and all.
    pub fn tree_entries(
        &self,
        tree: ObjectId,
    ) -> Result<Vec<(Vec<u8>, EntryKind, ObjectId)>, GitError> {
        let mut buf = Vec::new();
        let data = self.find(tree, gix_object::Kind::Tree, &mut buf)?;
        gix_object::TreeRefIter::from_bytes(data, HASH)
            .map(|e| {
                e.map(|e| (e.filename.to_vec(), e.mode.kind(), e.oid.to_owned()))
                    .map_err(|e| other(format!("cannot decode tree {tree}"), e))
            })
            .collect()
    }

    /// Tree `new` listed against `old`, an earlier version of it, in one pass over both and
    /// without a name allocated for the subtrees that did not change: see [`TreePair`]. `None`
    /// when the pair is not as git writes trees, so that the caller lists both whole instead
    /// and says what is wrong: either tree out of git's order (or listing an entry twice), a
    /// name that is not UTF-8, a name of `new` that `name_ok` refuses, or in `new` a file and a
    /// directory of one name. Entries named `keep` are never counted as unchanged.
    pub fn tree_pair(
        &self,
        new: ObjectId,
        old: ObjectId,
        keep: &str,
        same_names: bool,
        name_ok: impl Fn(&str) -> bool,
    ) -> Result<Option<TreePair>, GitError> {
        let (mut new_buf, mut old_buf) = (Vec::new(), Vec::new());
        let new_data = self.find(new, gix_object::Kind::Tree, &mut new_buf)?;
        let old_data: &[u8] = match self.offered_tree(old) {
            Some(data) => {
                old_buf = data;
                &old_buf
            }
            None => self.find(old, gix_object::Kind::Tree, &mut old_buf)?,
        };
        let pair = pair_entries(new, new_data, old, old_data, keep, same_names, name_ok)?;
        // The tree's data starts its buffer (as every reader here leaves it): where it is, the
        // buffer itself is kept, not a copy.
        let (at, len) = (new_data.as_ptr() as usize, new_data.len());
        if pair.is_some() && len >= CARRIED_TREE_BYTES && new_buf.as_ptr() as usize == at {
            new_buf.truncate(len);
            let mut carried = self.trees.borrow_mut();
            let kept: usize = carried.read.iter().map(|(_, data)| data.len()).sum();
            if kept + len <= MAX_CARRIED_BYTES {
                carried.read.push((new, new_buf));
            }
        }
        Ok(pair)
    }

    /// Offers trees an earlier push read ([`Repo::take_read_trees`]) to [`Repo::tree_pair`],
    /// which takes one as the older side of a pair in place of reading it, once, if its data
    /// hashes to its id (so data damaged or made up is never used).
    pub fn offer_trees(&self, trees: Vec<(ObjectId, Vec<u8>)>) {
        self.trees.borrow_mut().offered = trees;
    }

    /// The large trees [`Repo::tree_pair`] read as the newer side since the last call, for the
    /// next push to offer.
    pub fn take_read_trees(&self) -> Vec<(ObjectId, Vec<u8>)> {
        std::mem::take(&mut self.trees.borrow_mut().read)
    }

    /// The data of tree `id` if it was offered and hashes to `id`.
    fn offered_tree(&self, id: ObjectId) -> Option<Vec<u8>> {
        let mut carried = self.trees.borrow_mut();
        let at = carried.offered.iter().position(|(k, _)| *k == id)?;
        let (_, data) = carried.offered.swap_remove(at);
        let hashed = gix_object::compute_hash(HASH, gix_object::Kind::Tree, &data).ok()?;
        let taken = hashed == id;
        crate::error::trace::step(if taken {
            "earlier tree taken over"
        } else {
            "earlier tree refused"
        });
        taken.then_some(data)
    }
}

/// [`Repo::tree_pair`]'s walk over the entries of `new` (`new_data`) and `old` (`old_data`).
///
/// Where the two trees hold the same bytes at the start, and again at the end, their entries
/// there pair one with one: the old side of those is not decoded nor compared, only the new
/// side checked as everywhere else. A push that changes one task of 2,000 leaves all but one
/// entry of their directory in those two runs.
fn pair_entries(
    new: ObjectId,
    new_data: &[u8],
    old: ObjectId,
    old_data: &[u8],
    keep: &str,
    same_names: bool,
    name_ok: impl Fn(&str) -> bool,
) -> Result<Option<TreePair>, GitError> {
    let prefix = common_prefix(new_data, old_data);
    let suffix = common_suffix(&new_data[prefix..], &old_data[prefix..]);
    let mut pair = TreePair::default();
    let mut files = std::collections::HashSet::new();
    let mut last_new: Option<(&[u8], bool)> = None;
    let mut last_old: Option<(&[u8], bool)> = None;
    // The old entries from `old_pos` on, decoded once the new side has left the common start;
    // `old_pos` is where the next old entry not taken yet starts.
    let mut olds = None;
    let mut old_pos = 0;
    // Where the next new entry starts; whether the two positions are known (every entry found
    // where its data says), and whether the rest of both trees is the same bytes.
    let mut new_pos = 0;
    let mut known = skip_equal_runs();
    let mut same_rest = false;
    // Takes the next old entry, checking its order unless `known_in_order`; `false` when
    // out of order.
    fn old_entry<'a>(
        e: &gix_object::tree::EntryRef<'a>,
        last: &mut Option<(&'a [u8], bool)>,
        keep: &str,
        pair: &mut TreePair,
        known_in_order: bool,
    ) -> bool {
        let key = (e.filename.as_bytes(), e.mode.is_tree());
        if !known_in_order && last.is_some_and(|last| git_order(last, key).is_ge()) {
            return false;
        }
        *last = Some(key);
        if e.filename.as_bytes() == keep.as_bytes() {
            pair.old_has_keep = true;
        }
        true
    }
    for e in tree_entries(new_data, new) {
        let e = e?;
        let start = new_pos;
        match entry_end(new_data, &e) {
            Some(end) => new_pos = end,
            None => known = false,
        }
        let key = (e.filename.as_bytes(), e.mode.is_tree());
        if last_new.is_some_and(|last| git_order(last, key).is_ge()) {
            return Ok(None);
        }
        last_new = Some(key);
        let Ok(name) = std::str::from_utf8(e.filename) else {
            return Ok(None);
        };
        if !name_ok(name) {
            return Ok(None);
        }
        if !e.mode.is_tree() {
            files.insert(e.filename.as_bytes());
        } else if !files.is_empty() && files.contains(e.filename.as_bytes()) {
            return Ok(None);
        }
        // From here to the end both trees hold the same bytes, the old side taken up to here.
        same_rest = same_rest
            || (known
                && olds.is_some()
                && new_data.len() - start <= suffix
                && old_data.len() - old_pos == new_data.len() - start);
        if same_rest || (known && olds.is_none() && new_pos <= prefix) {
            // The old tree has this very entry here, which the loop below would take alone
            // (equal, so known to be in order): what it would find, without decoding it.
            if name == keep {
                pair.old_has_keep = true;
            }
            last_old = Some(key);
            if e.mode.is_tree() && name != keep {
                pair.same += 1;
                if same_names {
                    pair.same_names.push(name.to_string());
                }
            } else {
                if e.mode.is_tree() {
                    pair.old_dirs.push((name.to_string(), e.oid.to_owned()));
                }
                pair.changed
                    .push((name.to_string(), e.mode.kind(), e.oid.to_owned()));
            }
            // Past the common start, `old_pos` is not used again.
            old_pos = new_pos;
            continue;
        }
        let olds = olds.get_or_insert_with(|| {
            tree_entries(old_data.get(old_pos..).unwrap_or_default(), old).peekable()
        });
        // The old entries up to this one's place: those before it are gone from `new`
        // (or are of another kind now); one at it is its earlier version.
        let mut same = false;
        let mut taken = 0;
        loop {
            // Each old entry is compared with this one once.
            let at = match olds.peek() {
                None => break,
                Some(Ok(o)) => git_order((o.filename.as_bytes(), o.mode.is_tree()), key),
                // Taken, to say what is wrong.
                Some(Err(_)) => std::cmp::Ordering::Less,
            };
            if at.is_gt() {
                break;
            }
            let Some(o) = olds.next() else {
                break;
            };
            let o = o?;
            #[cfg(test)]
            OLD_ENTRIES_DECODED.with(|n| n.set(n.get() + 1));
            match entry_end(old_data, &o) {
                Some(end) => old_pos = end,
                None => known = false,
            }
            // The old entries taken before this new one each sort at or before an earlier
            // new one, so strictly before this one: the first old entry equal to it comes
            // after them in order, without comparing it with the last of them.
            let known_in_order = at.is_eq() && taken == 0;
            taken += 1;
            if !old_entry(&o, &mut last_old, keep, &mut pair, known_in_order) {
                return Ok(None);
            }
            if at.is_eq() && o.mode.is_tree() && o.oid == e.oid && name != keep {
                same = true;
            } else if o.mode.is_tree() {
                let Ok(old_name) = std::str::from_utf8(o.filename) else {
                    return Ok(None);
                };
                pair.old_dirs.push((old_name.to_string(), o.oid.to_owned()));
            }
        }
        if same {
            pair.same += 1;
            if same_names {
                pair.same_names.push(name.to_string());
            }
        } else {
            pair.changed
                .push((name.to_string(), e.mode.kind(), e.oid.to_owned()));
        }
    }
    if same_rest {
        return Ok(Some(pair));
    }
    let olds = olds.unwrap_or_else(|| {
        tree_entries(old_data.get(old_pos..).unwrap_or_default(), old).peekable()
    });
    for o in olds {
        let o = o?;
        #[cfg(test)]
        OLD_ENTRIES_DECODED.with(|n| n.set(n.get() + 1));
        if !old_entry(&o, &mut last_old, keep, &mut pair, false) {
            return Ok(None);
        }
        if o.mode.is_tree() {
            let Ok(old_name) = std::str::from_utf8(o.filename) else {
                return Ok(None);
            };
            pair.old_dirs.push((old_name.to_string(), o.oid.to_owned()));
        }
    }
    Ok(Some(pair))
}

#[cfg(test)]
thread_local! {
    /// How many old entries [`pair_entries`] decoded on this thread, for tests.
    static OLD_ENTRIES_DECODED: std::cell::Cell<usize> = const { std::cell::Cell::new(0) };
    /// Whether [`pair_entries`] skips the equal runs on this thread: tests compare it with
    /// itself pairing every entry.
    static SKIP_EQUAL_RUNS: std::cell::Cell<bool> = const { std::cell::Cell::new(true) };
}

/// Whether [`pair_entries`] pairs the runs of equal bytes without decoding their old side
/// (always, but where a test turns it off).
fn skip_equal_runs() -> bool {
    #[cfg(test)]
    return SKIP_EQUAL_RUNS.with(|s| s.get());
    #[cfg(not(test))]
    true
}

/// Tree data of exactly these entries (mode, name, id bytes), in this order, as no git tool
/// would write them: for tests of trees git refuses.
#[cfg(test)]
fn raw_tree_data<'a>(entries: impl Iterator<Item = (&'a str, &'a [u8], &'a [u8])>) -> Vec<u8> {
    let mut bytes = Vec::new();
    for (mode, name, id) in entries {
        bytes.extend_from_slice(mode.as_bytes());
        bytes.push(b' ');
        bytes.extend_from_slice(name);
        bytes.push(0);
        bytes.extend_from_slice(id);
    }
    bytes
}

/// Where entry `e` of the tree whose data is `data` ends (after its name, the NUL and the id),
/// if that is within `data`, as it is for every entry decoded from it.
fn entry_end(data: &[u8], e: &gix_object::tree::EntryRef<'_>) -> Option<usize> {
    let name_at = (e.filename.as_ptr() as usize).checked_sub(data.as_ptr() as usize)?;
    let end = name_at.checked_add(e.filename.len() + 1 + HASH.len_in_bytes())?;
    (end <= data.len()).then_some(end)
}

/// How many bytes `a` and `b` share at their start.
fn common_prefix(a: &[u8], b: &[u8]) -> usize {
    // Eight bytes at a time, without memcmp: musl's (the static hook binary's C library)
    // compares a byte at a time.
    let n = a.len().min(b.len());
    let (a, b) = (&a[..n], &b[..n]);
    let mut i = 0;
    for (x, y) in a.chunks_exact(8).zip(b.chunks_exact(8)) {
        let differ = word(x) ^ word(y);
        if differ != 0 {
            return i + (differ.trailing_zeros() / 8) as usize;
        }
        i += 8;
    }
    while i < n && a[i] == b[i] {
        i += 1;
    }
    i
}

/// How many bytes `a` and `b` share at their end.
fn common_suffix(a: &[u8], b: &[u8]) -> usize {
    let n = a.len().min(b.len());
    let (a, b) = (&a[a.len() - n..], &b[b.len() - n..]);
    let mut i = 0;
    for (x, y) in a.rchunks_exact(8).zip(b.rchunks_exact(8)) {
        let differ = word(x) ^ word(y);
        if differ != 0 {
            return i + (differ.leading_zeros() / 8) as usize;
        }
        i += 8;
    }
    while i < n && a[n - i - 1] == b[n - i - 1] {
        i += 1;
    }
    i
}

/// Eight bytes as a little-endian word: byte `k` in bits `8k..8k+8`.
fn word(bytes: &[u8]) -> u64 {
    let mut w = [0u8; 8];
    w.copy_from_slice(bytes);
    u64::from_le_bytes(w)
}

impl Repo {
    /// The entries of a tree with names as text (a name that is not UTF-8 gets U+FFFD), in
    /// stored order, duplicates and all: what discovery walks, each made into a `T` by `entry`
    /// as it is decoded (one pass, one allocation for the list).
    pub fn tree_listing<T>(
        &self,
        tree: ObjectId,
        mut entry: impl FnMut(String, EntryKind, ObjectId) -> T,
    ) -> Result<Vec<T>, GitError> {
        let mut buf = Vec::new();
        let data = self.find(tree, gix_object::Kind::Tree, &mut buf)?;
        // An entry takes at least 28 bytes (mode, space, a one-byte name, NUL, 20-byte id).
        let mut out = Vec::with_capacity(data.len() / 28 + 1);
        for e in gix_object::TreeRefIter::from_bytes(data, HASH) {
            let e = e.map_err(|e| other(format!("cannot decode tree {tree}"), e))?;
            let name = match std::str::from_utf8(e.filename) {
                Ok(name) => name.to_string(),
                Err(_) => String::from_utf8_lossy(e.filename).into_owned(),
            };
            out.push(entry(name, e.mode.kind(), e.oid.to_owned()));
        }
        Ok(out)
    }

    /// Whether the object store has `id` (without fetching anything).
    pub fn has_object(&self, id: ObjectId) -> bool {
        self.objects.exists(&id)
    }

    /// The content of a blob.
    pub fn read_blob(&self, id: ObjectId) -> Result<Vec<u8>, GitError> {
        let mut buf = Vec::new();
        self.find(id, gix_object::Kind::Blob, &mut buf)?;
        Ok(buf)
    }

    /// The size of an object without reading it.
    pub fn object_size(&self, id: ObjectId) -> Result<u64, GitError> {
        match self.objects.try_header(&id) {
            Ok(Some(header)) => Ok(header.size),
            Ok(None) => Err(other(
                format!("cannot read object {id}"),
                "it does not exist",
            )),
            Err(e) => Err(other(format!("cannot read object {id}"), e)),
        }
    }

    /// Writes a blob as a loose object, stored uncompressed (src/git/stored.rs) like every
    /// object taskhook writes; from 256 KB on (a branch manifest of about 1,200 tasks), it is
    /// hashed on another thread while its file is written.
    pub fn write_blob(&self, bytes: &[u8]) -> Result<ObjectId, GitError> {
        self.write_blob_and(bytes, || ()).0
    }

    /// [`Repo::write_blob`], running `also` on this thread first: while a large blob's id is
    /// computed on another thread ([`Repo::write_blob_later`]), before this one writes its
    /// file.
    pub fn write_blob_and<T>(
        &self,
        bytes: &[u8],
        also: impl FnOnce() -> T,
    ) -> (Result<ObjectId, GitError>, T) {
        if bytes.len() < PARALLEL_HASH_BYTES {
            let id = self.write_object(gix_object::Kind::Blob, bytes);
            return (id, also());
        }
        std::thread::scope(|s| {
            let blob = self.write_blob_later(s, bytes);
            let also = also();
            (blob.finish(), also)
        })
    }

    /// Starts writing a large blob: its id is computed on a thread of `s` while the caller goes
    /// on (computing the blob's SHA-256, say). [`PendingBlob::id`] writes the loose file on the
    /// calling thread, then waits for the id; [`PendingBlob::finish`] moves the file into
    /// place: call it before another process can see anything that names the blob.
    pub fn write_blob_later<'scope>(
        &self,
        s: &'scope std::thread::Scope<'scope, '_>,
        bytes: &'scope [u8],
    ) -> PendingBlob<'scope> {
        let hashing = s.spawn(move || blob_id(bytes));
        PendingBlob {
            objects: self.objects.dirs.last().cloned(),
            bytes,
            hashing: Some(hashing),
            id: None,
            written: None,
        }
    }

    /// Writes a tree object of exactly these entries (mode, name, id), in this order, as no git
    /// tool would: for tests of trees git refuses.
    #[cfg(test)]
    pub fn write_raw_tree(&self, entries: &[(&str, &[u8], ObjectId)]) -> ObjectId {
        let bytes = raw_tree_data(entries.iter().map(|(m, n, id)| (*m, *n, id.as_bytes())));
        self.write_object(gix_object::Kind::Tree, &bytes)
            .expect("tree written")
    }

    /// Writes an object of `kind` whose encoded form is `bytes` as a loose object in zlib's
    /// stored blocks, unless it is there already. Not compressing costs no disk space at these
    /// sizes (a loose file takes a whole file system block either way; `git gc` compresses
    /// what it packs), and it spares setting up a compressor, which is most of what writing a
    /// small object with zlib costs: about 270 KB of zlib state allocated and cleared.
    fn write_object(&self, kind: gix_object::Kind, bytes: &[u8]) -> Result<ObjectId, GitError> {
        let failed = |e: &dyn std::fmt::Display| other(format!("cannot write {kind}"), e);
        let id = gix_object::compute_hash(HASH, kind, bytes).map_err(|e| failed(&e))?;
        let objects = self.objects.dirs.last().map(PathBuf::as_path);
        if objects.is_some_and(|o| loose_path(o, id).exists()) {
            return Ok(id);
        }
        let header = gix_object::encode::loose_header(kind, bytes.len() as u64);
        let file = stored::encode(&header, bytes);
        let written = write_loose_file(objects, |f| std::io::Write::write_all(f, &file))
            .map_err(|e| failed(&e))?;
        persist_loose(objects, id, written).map_err(|e| failed(&e))?;
        Ok(id)
    }

    /// The object directories, for reading objects on another thread (a `Repo` stays on the
    /// thread that opened it).
    pub fn object_dirs(&self) -> ObjectDirs {
        ObjectDirs(self.objects.dirs.clone())
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
        fn write(repo: &Repo, d: &Dir) -> Result<ObjectId, GitError> {
            let mut entries = Vec::new();
            for (name, id) in &d.files {
                entries.push(gix_object::tree::Entry {
                    mode: EntryKind::Blob.into(),
                    filename: name.as_str().into(),
                    oid: *id,
                });
            }
            for (name, sub) in &d.dirs {
                entries.push(gix_object::tree::Entry {
                    mode: EntryKind::Tree.into(),
                    filename: name.as_str().into(),
                    oid: write(repo, sub)?,
                });
            }
            entries.sort();
            let tree = gix_object::Tree { entries };
            repo.write_encoded(&tree)
        }
        write(self, &root)
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
        let signature = gix_actor::Signature {
            name: "taskhook".into(),
            email: "taskhook@localhost".into(),
            time: gix_date::Time { seconds, offset: 0 },
        };
        let commit = gix_object::Commit {
            tree,
            parents: parent.into_iter().collect(),
            author: signature.clone(),
            committer: signature,
            encoding: None,
            message: message.into(),
            extra_headers: Vec::new(),
        };
        self.write_encoded(&commit)
    }

    /// Writes a tree or commit (see [`Repo::write_object`]).
    fn write_encoded(&self, object: &dyn gix_object::WriteTo) -> Result<ObjectId, GitError> {
        let mut bytes = Vec::with_capacity(object.size() as usize);
        object
            .write_to(&mut bytes)
            .map_err(|e| other(format!("cannot write {}", object.kind()), e))?;
        self.write_object(object.kind(), &bytes)
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
        if self.refs_by_git {
            return self.swap_by_git(name, expected, new, message);
        }
        if self.swap_loose_ref(name, expected, new) {
            return Ok(());
        }
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
        let committer = gix_actor::Signature {
            name: "taskhook".into(),
            email: "taskhook@localhost".into(),
            time: gix_date::Time::now_utc(),
        };
        let (ref_lock, packed_lock) = self.lock_timeouts;
        let apply = |edit: RefEdit| {
            let mut time_buf = Default::default();
            self.refs
                .transaction()
                .prepare(Some(edit), ref_lock, packed_lock)
                .and_then(|t| t.commit(Some(committer.to_ref(&mut time_buf))))
        };
        let first = apply(edit()?);
        match first {
            Ok(_) => Ok(()),
            Err(e) => {
                // A lock left by a killed process: the ref's own, or packed-refs' (which gix
                // takes to update a packed ref), once older than `stale_lock`.
                let lock = lock_path(&self.loose_ref_path(name));
                let packed = self.common_dir.join("packed-refs.lock");
                let stale: Vec<&Path> = [lock.as_path(), packed.as_path()]
                    .into_iter()
                    .filter(|l| is_stale(l, stale_lock))
                    .collect();
                if !stale.is_empty() {
                    for l in stale {
                        let _ = std::fs::remove_file(l);
                    }
                    return apply(edit()?)
                        .map(|_| ())
                        .map_err(|e| self.classify_ref_error(name, expected, e));
                }
                Err(self.classify_ref_error(name, expected, e))
            }
        }
    }

    /// [`Repo::compare_and_swap`] as git itself updates a loose ref: take `<name>.lock`, read
    /// the ref under it (its loose file, else packed-refs), write the new value to the lock
    /// and put it in place of the ref; the lock is the ref's previous file, kept as a spare,
    /// where it can be (`reffile`: no block freed, so no wait for the disk). gitoxide's
    /// transaction also takes and removes
    /// `packed-refs.lock` to read an expected value: two file operations more on every
    /// manifest write, and a wait whenever `git pack-refs` holds that lock.
    ///
    /// `false`, with nothing changed and no lock left, wherever this does not apply: the ref's
    /// lock held by someone else, a reflog to write, a value other than expected, a symbolic
    /// ref, a directory missing or something in the way. gitoxide's transaction then does
    /// the update, waits and errors as before.
    fn swap_loose_ref(&self, name: &str, expected: Option<ObjectId>, new: ObjectId) -> bool {
        let files_backend = self
            .config
            .string("extensions.refStorage")
            .is_none_or(|v| v.eq_ignore_ascii_case(b"files"));
        let path = self.loose_ref_path(name);
        if !files_backend
            || !name.starts_with("refs/")
            || self.refs.write_reflog == gix_ref::store::WriteReflog::Always
            || self.ref_dir(name).join("logs").join(name).exists()
        {
            return false;
        }
        let lock = lock_path(&path);
        let spare = self.common_dir.join(reffile::SPARE);
        let Some(file) = reffile::take_lock(&lock, &spare) else {
            return false;
        };
        let done = (|| {
            let current = self.refs.try_find(name).ok()?;
            let current = match current {
                Some(r) => Some(r.target.try_id()?.to_owned()),
                None => None,
            };
            (current == expected).then_some(())?;
            reffile::write(&file, format!("{new}\n").as_bytes()).ok()?;
            drop(file);
            reffile::commit(&lock, &path, &spare).ok()
        })();
        if done.is_none() {
            reffile::release(&lock, &spare);
        }
        done.is_some()
    }

    /// Whether a lock file for ref `name`, or for packed-refs, exists (someone is, or was,
    /// writing it).
    pub fn ref_locked(&self, name: &str) -> bool {
        if self.refs_by_git {
            return self.common_dir.join(REFTABLE_LOCK).exists();
        }
        lock_path(&self.loose_ref_path(name)).exists()
            || self.common_dir.join("packed-refs.lock").exists()
    }

    /// Whether this repository's refs are in a backend gitoxide does not read (a reftable), so
    /// that they are read and moved by running git.
    pub fn refs_by_git(&self) -> bool {
        self.refs_by_git
    }

    /// The lock file, relative to the git directory, that a writer of ref `name` holds, and
    /// whether taskhook removes it once stale (`refs/meta/tasks.lock`: yes; a reftable's lock,
    /// which git's every ref update takes: no).
    pub fn ref_lock(&self, name: &str) -> (String, bool) {
        if self.refs_by_git {
            (REFTABLE_LOCK.to_string(), false)
        } else {
            (format!("{name}.lock"), true)
        }
    }

    /// git, run on this repository's refs where gitoxide cannot read them: without the
    /// caller's repository variables (a hook's `GIT_DIR`, its quarantine) and without hooks
    /// (git runs `reference-transaction` on an update; the files backend's updates run none).
    fn git_on_refs(&self) -> std::process::Command {
        let mut cmd = git_command();
        // Its messages in English, where one is read ("cannot lock references").
        cmd.env("LC_ALL", "C")
            .arg("--git-dir")
            .arg(&self.git_dir)
            .args(["-c", "core.hooksPath=/dev/null"])
            .stdin(std::process::Stdio::null());
        cmd
    }

    /// The refs git lists under `pattern` (a full name, or a prefix ending in `/`), or all.
    fn git_refs(&self, pattern: Option<&str>) -> Result<Vec<GitRef>, GitError> {
        self.git_refs_among(pattern.as_slice())
    }

    /// [`Repo::git_refs`] for several patterns at once (none: every ref).
    fn git_refs_among(&self, patterns: &[&str]) -> Result<Vec<GitRef>, GitError> {
        let mut cmd = self.git_on_refs();
        cmd.args([
            "for-each-ref",
            "--format=%(refname)%00%(objectname)%00%(*objectname)%00%(symref)",
        ]);
        if !patterns.is_empty() {
            cmd.arg("--").args(patterns);
        }
        let out = run_git(&mut cmd).map_err(|e| other("cannot list refs", e))?;
        let mut refs = Vec::new();
        for line in out.split(|&b| b == b'\n') {
            let mut fields = line.split(|&b| b == 0);
            let (Some(name), Some(id), Some(peeled), Some(symref)) =
                (fields.next(), fields.next(), fields.next(), fields.next())
            else {
                continue;
            };
            // A symbolic ref whose target does not exist has no object id.
            let (Ok(name), Ok(id)) = (std::str::from_utf8(name), ObjectId::from_hex(id)) else {
                continue;
            };
            refs.push(GitRef {
                name: name.to_string(),
                id,
                peeled: ObjectId::from_hex(peeled).ok(),
                symbolic: !symref.is_empty(),
            });
        }
        Ok(refs)
    }

    /// [`Repo::resolve`] by `git rev-parse`, for refs gitoxide cannot read.
    fn resolve_by_git(&self, rev: &str) -> Result<ObjectId, GitError> {
        let mut cmd = self.git_on_refs();
        cmd.args(["rev-parse", "--verify", "--quiet", "--end-of-options", rev]);
        let found = run_git(&mut cmd)
            .ok()
            .and_then(|out| ObjectId::from_hex(out.trim_ascii_end()).ok());
        match found {
            Some(id) => Ok(id),
            None => match self.head_target() {
                Some(name) if rev == "HEAD" => Err(GitError::UnbornHead(name)),
                _ => Err(GitError::UnknownRevision(rev.to_string())),
            },
        }
    }

    /// [`Repo::compare_and_swap`] by `git update-ref`, for refs gitoxide cannot write. The
    /// reftable's lock is never removed: it guards every ref of the repository, and git's own
    /// compaction of the tables may hold it for as long as that takes.
    fn swap_by_git(
        &self,
        name: &str,
        expected: Option<ObjectId>,
        new: ObjectId,
        message: &str,
    ) -> Result<(), GitError> {
        let old = expected.unwrap_or_else(|| ObjectId::null(HASH));
        let mut cmd = self.git_on_refs();
        cmd.env("GIT_COMMITTER_NAME", "taskhook")
            .env("GIT_COMMITTER_EMAIL", "taskhook@localhost")
            .args(["update-ref", "-m", message, "--", name])
            .arg(new.to_string())
            .arg(old.to_string());
        run_git(&mut cmd).map(|_| ()).map_err(|e| {
            match self.classify_ref_error(name, expected, &e) {
                GitError::Other { context, message } if e.contains("cannot lock references") => {
                    GitError::Locked(format!("{context}: {message}"))
                }
                other => other,
            }
        })
    }

    /// The directory that holds ref `name`'s loose file and reflog, as git and gitoxide keep
    /// them: in a linked worktree, `HEAD`-like refs and those under `refs/worktree/`,
    /// `refs/bisect/` and `refs/rewritten/` in its own git directory, every other ref in the
    /// common one.
    fn ref_dir(&self, name: &str) -> &Path {
        let per_worktree = !name.starts_with("refs/")
            || ["refs/worktree/", "refs/bisect/", "refs/rewritten/"]
                .iter()
                .any(|p| name.starts_with(p));
        if per_worktree {
            &self.git_dir
        } else {
            &self.common_dir
        }
    }

    fn loose_ref_path(&self, name: &str) -> PathBuf {
        self.ref_dir(name).join(name)
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

/// A ref as `git for-each-ref` lists it.
struct GitRef {
    name: String,
    /// What it points at (a symbolic ref: what its target points at).
    id: ObjectId,
    /// What an annotated tag it points at points at.
    peeled: Option<ObjectId>,
    symbolic: bool,
}

/// The lock every writer of a reftable's refs takes.
const REFTABLE_LOCK: &str = "reftable/tables.list.lock";

/// Runs `cmd` (git): its standard output if it succeeded, else what git said.
fn run_git(cmd: &mut std::process::Command) -> Result<Vec<u8>, String> {
    let out = cmd.output().map_err(|e| format!("cannot run git: {e}"))?;
    if out.status.success() {
        return Ok(out.stdout);
    }
    let said = String::from_utf8_lossy(&out.stderr);
    match said.trim() {
        "" => Err(format!("git failed ({})", out.status)),
        said => Err(said.to_string()),
    }
}

/// The lock file git takes to change `path`: `<path>.lock`.
fn lock_path(path: &Path) -> PathBuf {
    let mut p = path.as_os_str().to_owned();
    p.push(".lock");
    PathBuf::from(p)
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
    gix_object::compute_hash(HASH, gix_object::Kind::Blob, data)
        .unwrap_or_else(|_| ObjectId::null(HASH))
}

/// The id git gives the tree holding `files` (paths relative to it, `/`-separated, with their
/// mode and blob id), computed without writing anything.
pub fn tree_id_of(files: &[(String, EntryKind, ObjectId)]) -> ObjectId {
    use gix_object::WriteTo as _;
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
        let mut entries: Vec<gix_object::tree::Entry> = d
            .files
            .iter()
            .map(|(name, kind, id)| gix_object::tree::Entry {
                mode: (*kind).into(),
                filename: name.as_str().into(),
                oid: *id,
            })
            .collect();
        for (name, sub) in &d.dirs {
            entries.push(gix_object::tree::Entry {
                mode: EntryKind::Tree.into(),
                filename: name.as_str().into(),
                oid: hash(sub),
            });
        }
        entries.sort();
        let mut buf = Vec::new();
        let _ = gix_object::Tree { entries }.write_to(&mut buf);
        gix_object::compute_hash(HASH, gix_object::Kind::Tree, &buf)
            .unwrap_or_else(|_| ObjectId::null(HASH))
    }
    hash(&root)
}

/// `path` made absolute against the current directory, `.` components dropped (git runs hooks
/// with `GIT_DIR=.`, and names the main object store without one), without touching the file
/// system.
fn absolute(path: &Path) -> std::io::Result<PathBuf> {
    let path = if path.is_absolute() {
        path.to_path_buf()
    } else {
        std::env::current_dir()?.join(path)
    };
    Ok(path.components().collect())
}

/// The object database at `objects` (its packs, loose objects and alternates), for reading:
/// taskhook writes its objects itself ([`Repo::write_object`]).
fn open_objects(objects: &Path) -> std::io::Result<gix_odb::Handle> {
    gix_odb::at_opts(
        objects,
        HASH,
        None,
        gix_odb::store::init::Options::default(),
    )
}

/// The system git config a hook shim names (found at install time), used when neither
/// `GIT_CONFIG_SYSTEM` nor `GIT_CONFIG_NOSYSTEM` is set.
static SYSTEM_CONFIG: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();

/// Reads the system git config from `path` in this process, as `GIT_CONFIG_SYSTEM=path` would
/// (which, like `GIT_CONFIG_NOSYSTEM`, still wins when set). Set once, by a hook's shim.
pub fn use_system_config(path: PathBuf) {
    let _ = SYSTEM_CONFIG.set(path);
}

/// The configuration git uses in the repository at `git_dir`: the installation's and the
/// system's file, the user's global files, the repository's own (and a linked worktree's, with
/// `extensions.worktreeConfig`), then the `GIT_CONFIG_COUNT` overrides, following includes as
/// git does.
/// git's `core.sharedRepository` as `git_config_perm` reads it: the permission bits git adds
/// to what it creates in the repository, or the mode it gives it.
#[derive(Debug, Clone, Copy, PartialEq)]
enum SharedPerm {
    /// Unset, `umask`, `false`, `0`: as the umask says.
    Umask,
    /// `group` (`true`, `1`): 0660; `all` (`world`, `everybody`, `2`): 0664.
    Add(u32),
    /// An octal mode (`0640`), the owner's read and write in it.
    Exact(u32),
}

fn shared_perm(config: &gix_config::File) -> SharedPerm {
    let Some(value) = config.string("core.sharedRepository") else {
        return SharedPerm::Umask;
    };
    match value.to_str_lossy().as_ref() {
        "umask" => SharedPerm::Umask,
        "group" => SharedPerm::Add(0o660),
        "all" | "world" | "everybody" => SharedPerm::Add(0o664),
        v if !v.is_empty() && v.bytes().all(|b| (b'0'..=b'7').contains(&b)) => {
            match u32::from_str_radix(v, 8) {
                Ok(1) => SharedPerm::Add(0o660),
                Ok(2) => SharedPerm::Add(0o664),
                // git refuses a mode without the owner's read and write; so does it nothing.
                Ok(mode) if mode & 0o600 == 0o600 => SharedPerm::Exact(mode & 0o666),
                _ => SharedPerm::Umask,
            }
        }
        _ => match config.boolean("core.sharedRepository") {
            Ok(Some(true)) => SharedPerm::Add(0o660),
            _ => SharedPerm::Umask,
        },
    }
}

/// The umask under which what this process creates gets the mode git gives what it creates
/// under `perm` (`adjust_shared_perm`), from the process's own umask `original`: the bits `perm`
/// adds let through, and for directories the execute bits of its read bits. A new directory
/// takes git's set-group-ID bit from the repository's, where `git init --shared` put it.
fn shared_umask(perm: SharedPerm, original: u32) -> u32 {
    let allow = |bits: u32| bits | ((bits & 0o444) >> 2);
    match perm {
        SharedPerm::Umask => original,
        SharedPerm::Add(bits) => original & !allow(bits),
        SharedPerm::Exact(mode) => 0o777 & !allow(mode),
    }
}

/// Sets the process's umask for the repository just opened ([`shared_umask`]): objects, the
/// manifest ref and the hooks' own files are then writable by the group every pusher of a
/// shared repository is in (dist-git makes its repositories with `git init --shared`), as git's
/// are. Without `core.sharedRepository`, and no shared repository opened before, nothing is
/// asked of the kernel.
#[cfg(unix)]
fn use_shared_perm(perm: SharedPerm) {
    use rustix::fs::Mode;
    use rustix::process::umask;
    static ORIGINAL: std::sync::OnceLock<u32> = std::sync::OnceLock::new();
    if perm == SharedPerm::Umask && ORIGINAL.get().is_none() {
        return;
    }
    let original = *ORIGINAL.get_or_init(|| {
        let was = umask(Mode::from_raw_mode(0o022));
        umask(was);
        was.as_raw_mode()
    });
    umask(Mode::from_raw_mode(shared_umask(perm, original)));
}

/// An error with what caused it, each cause once (gitoxide's top-level config error says only
/// "Could not initialize configuration from a path"; its causes say what and on which line).
/// A cause of one word (`Validation`, an error's kind) adds nothing and is left out.
fn with_causes(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut cause = e.source();
    while let Some(c) = cause {
        let said = c.to_string();
        if said.trim().contains(' ') && !text.contains(&said) {
            text.push_str(": ");
            text.push_str(&said);
        }
        cause = c.source();
    }
    // A quoted excerpt of the file may hold its line break: one line of message.
    text.replace('\n', "\\n").replace('\r', "\\r")
}

fn read_config(git_dir: &Path, common_dir: &Path) -> Result<gix_config::File, String> {
    use gix_config::file::{includes, Metadata};
    use gix_config::Source;
    // Where the installed git keeps its own config is only known by asking it (a process
    // start), so that is done only when nothing names the system file: the hooks' shims name
    // it (found at install time; `use_system_config`, or `GIT_CONFIG_SYSTEM` when a shell runs
    // the shim) and `GIT_CONFIG_NOSYSTEM` turns it off.
    let from_env = std::env::var_os("GIT_CONFIG_SYSTEM").is_some()
        || std::env::var_os("GIT_CONFIG_NOSYSTEM").is_some();
    let recorded = SYSTEM_CONFIG.get().filter(|_| !from_env);
    let told = from_env || recorded.is_some();
    // `HOME` as git reads it, from the environment only: where it is unset git reads no
    // per-user file, and neither do the hooks (gitoxide would ask the user database instead,
    // which a static hook binary answers from /etc/passwd alone).
    let mut var = |name: &str| match recorded {
        Some(path) if name == "GIT_CONFIG_SYSTEM" => Some(path.clone().into_os_string()),
        _ => std::env::var_os(name),
    };
    let mut sources = Vec::new();
    if !told {
        sources.push(Source::GitInstallation);
    }
    sources.extend([Source::System, Source::Git, Source::User]);
    let meta = |path: Option<PathBuf>, source: Source| Metadata {
        path,
        source,
        level: 0,
        trust: gix_sec::Trust::Full,
    };
    let mut files: Vec<Metadata> = sources
        .into_iter()
        .map(|source| meta(source.storage_location(&mut var), source))
        .collect();
    files.push(meta(Some(common_dir.join("config")), Source::Local));
    let home = std::env::var_os("HOME").map(PathBuf::from);
    let mut include = includes::Options::follow(
        gix_config::path::interpolate::Context {
            home_dir: home.as_deref(),
            ..Default::default()
        },
        includes::conditional::Context {
            git_dir: Some(git_dir),
            branch_name: None,
        },
    );
    // git skips an included file that does not exist.
    include.err_on_missing_config_path = false;
    let options = gix_config::file::init::Options {
        includes: include,
        ..Default::default()
    };
    let mut buf = Vec::new();
    let mut config =
        gix_config::File::from_paths_metadata_buf(&mut files.into_iter(), &mut buf, false, options)
            .map_err(|e| format!("cannot read its configuration: {}", with_causes(&e)))?
            .unwrap_or_default();
    if git_dir != common_dir
        && matches!(config.boolean("extensions.worktreeConfig"), Ok(Some(true)))
    {
        let worktree = [meta(
            Some(git_dir.join("config.worktree")),
            Source::Worktree,
        )];
        if let Some(file) = gix_config::File::from_paths_metadata_buf(
            &mut worktree.into_iter(),
            &mut buf,
            false,
            options,
        )
        .map_err(|e| {
            format!(
                "cannot read its worktree configuration: {}",
                with_causes(&e)
            )
        })? {
            config
                .append(file)
                .map_err(|e| format!("cannot read its worktree configuration: {e}"))?;
        }
    }
    let environment = gix_config::File::from_environment_overrides()
        .map_err(|e| format!("cannot read GIT_CONFIG_COUNT overrides: {e}"))?;
    config
        .append(environment)
        .map_err(|e| format!("cannot read GIT_CONFIG_COUNT overrides: {e}"))?;
    Ok(config)
}

/// A loose object's file as git writes one: a read-only temporary file in the object
/// directory, filled by `write` before the object's id is known; [`persist_loose`] then renames
/// it to `objects/xx/yyyy…`.
fn write_loose_file(
    objects: Option<&Path>,
    write: impl FnOnce(&mut std::fs::File) -> std::io::Result<()>,
) -> std::io::Result<tempfile::NamedTempFile> {
    let objects = objects.ok_or_else(|| std::io::Error::other("no object directory"))?;
    let mut builder = tempfile::Builder::new();
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        builder.permissions(std::fs::Permissions::from_mode(0o444));
    }
    let mut file = builder.tempfile_in(objects)?;
    write(file.as_file_mut())?;
    Ok(file)
}

/// The end of [`PendingBlob::finish`]: the written file moved to where its id says.
fn persist_blob(
    objects: Option<&Path>,
    id: Option<ObjectId>,
    written: std::io::Result<tempfile::NamedTempFile>,
) -> Result<ObjectId, GitError> {
    let id = id.ok_or_else(|| other("cannot write blob", "hashing it failed"))?;
    let written = written.map_err(|e| other("cannot write blob", e))?;
    crate::error::trace::step("large blob stored");
    // Already there (the same manifest written before): the temporary file is dropped.
    if !objects.is_some_and(|o| loose_path(o, id).exists()) {
        persist_loose(objects, id, written)
            .map_err(|e| other(format!("cannot write blob {id}"), e))?;
    }
    Ok(id)
}

/// Moves a loose object's file written by [`write_loose_file`] to where object `id` belongs
/// (callers check first whether the object is there already).
fn persist_loose(
    objects: Option<&Path>,
    id: ObjectId,
    file: tempfile::NamedTempFile,
) -> std::io::Result<()> {
    let objects = objects.ok_or_else(|| std::io::Error::other("no object directory"))?;
    let path = loose_path(objects, id);
    // As git does: the rename first, the fan-out directory made only when it is missing.
    let file = match file.persist(&path) {
        Ok(_) => return Ok(()),
        Err(e) if e.error.kind() == std::io::ErrorKind::NotFound => e.file,
        Err(e) => return Err(e.error),
    };
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    file.persist(&path).map_err(|e| e.error)?;
    Ok(())
}

/// Where the loose object `id` is in the object directory `objects`.
fn loose_path(objects: &Path, id: ObjectId) -> PathBuf {
    let hex = id.to_string();
    objects.join(&hex[..2]).join(&hex[2..])
}

/// How long to wait for a lock, from a config key in milliseconds (negative: forever, as git).
fn lock_timeout(config: &gix_config::File, key: &str, default_ms: u64) -> Fail {
    match config.integer(key).ok().flatten() {
        Some(0) => Fail::Immediately,
        Some(ms) if ms < 0 => Fail::AfterDurationWithBackoff(Duration::MAX),
        Some(ms) => Fail::AfterDurationWithBackoff(Duration::from_millis(ms as u64)),
        None => Fail::AfterDurationWithBackoff(Duration::from_millis(default_ms)),
    }
}

/// `git`, without the variables that point it at a repository (`GIT_DIR`, `GIT_OBJECT_DIRECTORY`
/// and the rest of `git rev-parse --local-env-vars`, and a hook's quarantine): set by a git
/// that runs taskhook (a hook, an alias, `rebase --exec`), they would make a fetch into a cache
/// repository, or a look at a repository's config, use that repository instead. Settings
/// passed in the environment (`GIT_CONFIG_PARAMETERS`, `GIT_CONFIG_COUNT`) are kept, as git
/// keeps them for a submodule.
pub fn git_command() -> std::process::Command {
    let mut cmd = std::process::Command::new("git");
    for var in [
        "GIT_ALTERNATE_OBJECT_DIRECTORIES",
        "GIT_CONFIG",
        "GIT_OBJECT_DIRECTORY",
        "GIT_DIR",
        "GIT_WORK_TREE",
        "GIT_IMPLICIT_WORK_TREE",
        "GIT_GRAFT_FILE",
        "GIT_INDEX_FILE",
        "GIT_NO_REPLACE_OBJECTS",
        "GIT_REPLACE_REF_BASE",
        "GIT_PREFIX",
        "GIT_SHALLOW_FILE",
        "GIT_COMMON_DIR",
        "GIT_QUARANTINE_PATH",
        "GIT_NAMESPACE",
    ] {
        cmd.env_remove(var);
    }
    cmd
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    fn loose_file(git_dir: &Path, id: ObjectId) -> PathBuf {
        loose_path(&git_dir.join("objects"), id)
    }

    /// `git`, whatever git environment and config the caller has: no `GIT_*` variable, no
    /// system or global config.
    fn hermetic_git() -> std::process::Command {
        let mut cmd = std::process::Command::new("git");
        for (k, _) in std::env::vars_os() {
            if k.to_string_lossy().starts_with("GIT_") {
                cmd.env_remove(k);
            }
        }
        cmd.env("GIT_CONFIG_NOSYSTEM", "1")
            .env("GIT_CONFIG_GLOBAL", "/dev/null");
        cmd
    }

    /// A bare repository made by hand in `dir` (`r.git`), with `config` as its config file.
    pub(crate) fn bare_repo(dir: &Path, config: &str) -> PathBuf {
        let git_dir = dir.join("r.git");
        for d in ["objects", "refs/heads"] {
            std::fs::create_dir_all(git_dir.join(d)).expect("mkdir");
        }
        std::fs::write(git_dir.join("HEAD"), "ref: refs/heads/main\n").expect("HEAD");
        std::fs::write(git_dir.join("config"), config).expect("config");
        git_dir
    }

    #[test]
    fn shared_repository_values_are_read_as_git_reads_them() {
        let perm = |value: &str| {
            let text = format!("[core]\n\tsharedRepository = {value}\n");
            shared_perm(&gix_config::File::try_from(text.as_str()).expect("config"))
        };
        for (value, want) in [
            ("group", SharedPerm::Add(0o660)),
            ("true", SharedPerm::Add(0o660)),
            ("1", SharedPerm::Add(0o660)),
            ("all", SharedPerm::Add(0o664)),
            ("everybody", SharedPerm::Add(0o664)),
            ("2", SharedPerm::Add(0o664)),
            ("umask", SharedPerm::Umask),
            ("false", SharedPerm::Umask),
            ("0", SharedPerm::Umask),
            ("0640", SharedPerm::Exact(0o640)),
            ("0770", SharedPerm::Exact(0o660)),
            ("0440", SharedPerm::Umask),
        ] {
            assert_eq!(perm(value), want, "{value}");
        }
        // What git makes of a directory (0777) and a loose object (0444) under umask 022.
        let made = |perm, mode: u32| mode & !shared_umask(perm, 0o022);
        assert_eq!(made(SharedPerm::Add(0o660), 0o777), 0o775);
        assert_eq!(made(SharedPerm::Add(0o660), 0o666), 0o664);
        assert_eq!(made(SharedPerm::Add(0o660), 0o444), 0o444);
        assert_eq!(made(SharedPerm::Exact(0o640), 0o777), 0o750);
        assert_eq!(made(SharedPerm::Exact(0o640), 0o666), 0o640);
        assert_eq!(made(SharedPerm::Umask, 0o777), 0o755);
    }

    #[test]
    fn a_config_git_cannot_parse_is_reported_with_its_line_on_one_line() {
        let dir = tempfile::tempdir().expect("tempdir");
        let git_dir = bare_repo(dir.path(), "[core]\n\tbare = true\n[x\n");
        let e = Repo::open(&git_dir)
            .err()
            .expect("a config git cannot parse is refused");
        let text = e.to_string();
        assert!(text.contains("unexpected token on line 3"), "{text}");
        assert!(!text.contains('\n'), "{text}");
    }

    #[test]
    fn git_orders_a_directory_as_if_its_name_ended_in_a_slash() {
        use std::cmp::Ordering::*;
        assert_eq!(git_order((b"a", false), (b"a", true)), Less);
        assert_eq!(git_order((b"a-b", false), (b"a", true)), Less);
        assert_eq!(git_order((b"a", false), (b"a-b", false)), Less);
        assert_eq!(git_order((b"a", true), (b"a0", true)), Less);
        assert_eq!(git_order((b"ab", true), (b"ab", true)), Equal);
        assert_eq!(git_order((b"b", false), (b"a", true)), Greater);
    }

    /// A tree listed against its earlier version: the unchanged subtrees are counted, not
    /// listed; trees git would not write are left to a full listing.
    #[test]
    fn trees_are_paired_with_their_earlier_version() {
        let dir = tempfile::tempdir().expect("tmp");
        let git_dir = bare_repo(dir.path(), "[core]\n\tbare = true\n");
        let repo = Repo::open(&git_dir).expect("open");
        let blob = repo.write_blob(b"x").expect("blob");
        let sub = |name: &str| {
            repo.write_tree(&[(format!("{name}/runtask.yml"), blob)])
                .expect("tree")
        };
        let (a, b, c, d) = (sub("a"), sub("b"), sub("c"), sub("d"));
        let t = |entries: &[(&str, &str, ObjectId)]| {
            let entries: Vec<(&str, &[u8], ObjectId)> = entries
                .iter()
                .map(|(m, n, id)| (*m, n.as_bytes(), *id))
                .collect();
            repo.write_raw_tree(&entries)
        };
        let old = t(&[
            ("40000", "gone", a),
            ("40000", "python-versions", b),
            ("40000", "python", a),
            ("100644", "runtask.yml", blob),
            ("40000", "same", c),
        ]);
        // git's order: `python-versions` before `python`, a directory sorting as `python/`.
        let new = t(&[
            ("100644", "notes", blob),
            ("40000", "python-versions", b),
            ("40000", "python", d),
            ("40000", "same", c),
            ("40000", "zadded", a),
        ]);
        let ok = |_: &str| true;
        let pair = repo
            .tree_pair(new, old, "runtask.yml", true, ok)
            .expect("read")
            .expect("paired");
        let names: Vec<&str> = pair.changed.iter().map(|(n, ..)| n.as_str()).collect();
        assert_eq!(names, ["notes", "python", "zadded"]);
        assert_eq!(pair.same, 2);
        assert_eq!(pair.same_names, ["python-versions", "same"]);
        let old_dirs: Vec<&str> = pair.old_dirs.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(old_dirs, ["gone", "python"]);
        assert!(pair.old_has_keep);
        // The kept name is always listed, even as an unchanged directory.
        let kept_old = t(&[("40000", "runtask.yml", c), ("40000", "x", a)]);
        let kept_new = t(&[("40000", "runtask.yml", c), ("40000", "x", b)]);
        let pair = repo
            .tree_pair(kept_new, kept_old, "runtask.yml", false, ok)
            .expect("read")
            .expect("paired");
        assert_eq!(pair.changed.len(), 2);
        assert!(pair.same_names.is_empty() && pair.same == 0 && pair.old_has_keep);
        // Not as git writes trees: each is left to a full listing.
        let refused = |new: ObjectId| {
            repo.tree_pair(new, old, "runtask.yml", false, |n: &str| n != "bad")
                .expect("read")
                .is_none()
        };
        assert!(
            refused(t(&[("40000", "b", a), ("40000", "a", a)])),
            "out of order"
        );
        assert!(refused(t(&[("40000", "a", a), ("40000", "a", b)])), "twice");
        assert!(
            refused(t(&[
                ("100644", "a", blob),
                ("100644", "a-b", blob),
                ("40000", "a", a)
            ])),
            "a file and a directory of one name"
        );
        assert!(refused(t(&[("40000", "bad", a)])), "a name refused");
        let latin1 = repo.write_raw_tree(&[("40000", b"caf\xe9", a)]);
        assert!(refused(latin1), "not UTF-8");
        let fine = t(&[("40000", "python", d)]);
        assert!(!refused(fine));
        // The old tree out of order, or listing an entry twice, where the new one has the
        // same entries in order.
        let in_order = t(&[("40000", "a", a), ("40000", "b", b), ("40000", "c", c)]);
        for old in [
            t(&[("40000", "b", b), ("40000", "a", a), ("40000", "c", c)]),
            t(&[("40000", "a", a), ("40000", "c", c), ("40000", "b", b)]),
            t(&[("40000", "a", a), ("40000", "a", a), ("40000", "c", c)]),
        ] {
            let pair = repo.tree_pair(in_order, old, "runtask.yml", false, ok);
            assert!(pair.expect("read").is_none());
        }
        let pair = repo.tree_pair(in_order, in_order, "runtask.yml", false, ok);
        assert_eq!(pair.expect("read").expect("paired").same, 3);
    }

    /// Raw tree data from (mode, name, id byte) entries, in the order given.
    fn raw_tree(entries: &[(&str, Vec<u8>, u8)]) -> Vec<u8> {
        let ids: Vec<[u8; 20]> = entries.iter().map(|(.., id)| [*id; 20]).collect();
        raw_tree_data(
            entries
                .iter()
                .zip(&ids)
                .map(|((m, n, _), id)| (*m, n.as_slice(), id.as_slice())),
        )
    }

    /// Trees of a few hundred kinds, in git's order or not, with names git refuses, the kept
    /// name, files and directories of one name, changed ids, entries added and removed, and
    /// damaged data at either end: the pairing with its equal runs skipped gives what pairing
    /// every entry (as before it skipped them) gives.
    #[test]
    fn pairing_skips_equal_runs_without_changing_what_it_finds() {
        let mut next = crate::testing::random(0x9e37_79b9_7f4a_7c15);
        let names: [&[u8]; 12] = [
            b"a",
            b"a-b",
            b"a.b",
            b"ab",
            b"b",
            b"bad",
            b"runtask.yml",
            b"t1",
            b"t2",
            b"t3",
            b"caf\xe9",
            b"z",
        ];
        let modes = ["40000", "100644", "100755", "120000", "160000"];
        let ok = |n: &str| n != "bad";
        let (new_id, old_id) = (ObjectId::null(HASH), ObjectId::empty_tree(HASH));
        let mut checked = 0;
        for round in 0..4000 {
            let len = 1 + next(if round % 4 == 0 { 40 } else { 8 });
            let mut old: Vec<(&str, Vec<u8>, u8)> = (0..len)
                .map(|i| {
                    let kinds = if next(4) == 0 { 5 } else { 2 };
                    let mode = modes[next(kinds)];
                    let name = if next(3) == 0 {
                        names[next(names.len())].to_vec()
                    } else {
                        format!("task{i:03}").into_bytes()
                    };
                    (mode, name, next(3) as u8)
                })
                .collect();
            if next(4) != 0 {
                old.sort_by(|a, b| git_order((&a.1, a.0 == "40000"), (&b.1, b.0 == "40000")));
            }
            let mut new = old.clone();
            for _ in 0..1 + next(3) {
                if new.is_empty() {
                    break;
                }
                let at = next(new.len());
                match next(6) {
                    0 => {
                        new.remove(at);
                    }
                    1 => new.insert(at, ("40000", names[next(names.len())].to_vec(), 7)),
                    2 => {
                        let other = next(new.len());
                        new.swap(at, other);
                    }
                    3 => new[at].0 = modes[next(modes.len())],
                    _ => new[at].2 = 9,
                }
            }
            let (mut new_data, mut old_data) = (raw_tree(&new), raw_tree(&old));
            match next(12) {
                0 => new_data.truncate(new_data.len().saturating_sub(1 + next(30))),
                1 => old_data.truncate(old_data.len().saturating_sub(1 + next(30))),
                2 => new_data.extend_from_slice(b"100644 x"),
                _ => {}
            }
            for same_names in [false, true] {
                let pairing = |skip: bool| {
                    SKIP_EQUAL_RUNS.with(|s| s.set(skip));
                    let pair = pair_entries(
                        new_id,
                        &new_data,
                        old_id,
                        &old_data,
                        "runtask.yml",
                        same_names,
                        ok,
                    );
                    SKIP_EQUAL_RUNS.with(|s| s.set(true));
                    pair
                };
                let (got, want) = (pairing(true), pairing(false));
                let damaged = |data: &[u8]| tree_entries(data, new_id).any(|e| e.is_err());
                if damaged(&new_data) || damaged(&old_data) {
                    // Which of the two trees' faults is met first depends on how far each
                    // is read: either way the pair is refused (the caller then lists both
                    // whole, and says what is wrong) or fails, and is never paired.
                    assert!(!matches!(got, Ok(Some(_))), "{new:?}\n{old:?}");
                    assert!(!matches!(want, Ok(Some(_))), "{new:?}\n{old:?}");
                } else {
                    checked += usize::from(matches!(want, Ok(Some(_))));
                    assert_eq!(got.ok(), want.ok(), "{new:?}\n{old:?}");
                }
            }
        }
        assert!(checked > 1000, "most pairs are paired: {checked}");
    }

    /// One changed entry of 2,000: the old side of the others is never decoded.
    #[test]
    fn pairing_decodes_only_the_old_entries_between_the_equal_runs() {
        let tasks = |changed: usize| {
            let entries: Vec<(&str, Vec<u8>, u8)> = (0..2000)
                .map(|i| {
                    let id = if i == changed { 2 } else { 1 };
                    ("40000", format!("task{i:05}").into_bytes(), id)
                })
                .collect();
            raw_tree(&entries)
        };
        let (old, new) = (tasks(usize::MAX), tasks(1234));
        let id = ObjectId::null(HASH);
        let decoded = || OLD_ENTRIES_DECODED.with(|n| n.get());
        let before = decoded();
        let pair = pair_entries(id, &new, id, &old, "runtask.yml", false, |_: &str| true)
            .expect("decoded")
            .expect("paired");
        assert_eq!(
            (pair.same, pair.changed.len(), pair.old_dirs.len()),
            (1999, 1, 1)
        );
        assert!(
            decoded() - before <= 2,
            "{} old entries decoded",
            decoded() - before
        );
    }

    /// A large tree read as the newer side of a pair is kept; offered to another process, it
    /// is taken there as the older side of a pair in place of being read, once it hashes to
    /// its id, and never otherwise.
    #[test]
    fn large_trees_are_carried_to_the_next_push_only_as_what_they_are() {
        let dir = tempfile::tempdir().expect("tmp");
        let git_dir = bare_repo(dir.path(), "[core]\n\tbare = true\n");
        let repo = Repo::open(&git_dir).expect("open");
        let blob = repo.write_blob(b"x").expect("blob");
        let sub = |name: &str| {
            repo.write_tree(&[(format!("{name}/runtask.yml"), blob)])
                .expect("tree")
        };
        let (a, b) = (sub("a"), sub("b"));
        // 700 task directories: a tree of 22 KB, `changed` of them pointing at `b`.
        let tasks = |repo: &Repo, changed: usize| {
            let names: Vec<String> = (0..700).map(|i| format!("t{i:04}")).collect();
            let entries: Vec<(&str, &[u8], ObjectId)> = names
                .iter()
                .enumerate()
                .map(|(i, n)| ("40000", n.as_bytes(), if i < changed { b } else { a }))
                .collect();
            repo.write_raw_tree(&entries)
        };
        let (old, new, newer) = (tasks(&repo, 0), tasks(&repo, 1), tasks(&repo, 2));
        let ok = |_: &str| true;
        let pair = |repo: &Repo, new: ObjectId, old: ObjectId| {
            repo.tree_pair(new, old, "runtask.yml", false, ok)
                .map(|p| p.expect("paired").changed.len())
        };
        assert_eq!(pair(&repo, new, old).expect("read"), 1);
        let carried = repo.take_read_trees();
        assert_eq!(carried.len(), 1);
        assert_eq!(carried[0].0, new);
        assert!(carried[0].1.len() >= CARRIED_TREE_BYTES);
        assert!(repo.take_read_trees().is_empty(), "taken once");
        // Small trees are not kept.
        let small = |repo: &Repo, id| repo.write_raw_tree(&[("40000", b"t".as_slice(), id)]);
        pair(&repo, small(&repo, b), small(&repo, a)).expect("read");
        assert!(repo.take_read_trees().is_empty());
        // The next push: `new` is gone from disk, so it can only come from what is offered.
        std::fs::remove_file(loose_file(&git_dir, new)).expect("rm");
        let next = Repo::open(&git_dir).expect("open");
        assert!(pair(&next, newer, new).is_err(), "nothing offered");
        let mut damaged = carried[0].1.clone();
        damaged[10] ^= 1;
        next.offer_trees(vec![(new, damaged)]);
        assert!(pair(&next, newer, new).is_err(), "damaged data was used");
        next.offer_trees(carried);
        assert_eq!(pair(&next, newer, new).expect("taken over"), 1);
        assert!(
            pair(&next, newer, new).is_err(),
            "an offered tree is used once"
        );
    }

    /// The shared start and end of two byte strings, word by word, against a byte-by-byte
    /// count: every length up to three words, a difference at every place.
    #[test]
    fn shared_starts_and_ends_are_counted_to_the_byte() {
        let naive_prefix = |a: &[u8], b: &[u8]| a.iter().zip(b).take_while(|(x, y)| x == y).count();
        let naive_suffix = |a: &[u8], b: &[u8]| {
            a.iter()
                .rev()
                .zip(b.iter().rev())
                .take_while(|(x, y)| x == y)
                .count()
        };
        for len in 0..=24usize {
            let a: Vec<u8> = (0..len as u8).map(|i| i.wrapping_mul(37)).collect();
            for other_len in [len.saturating_sub(3), len, len + 5] {
                let mut b: Vec<u8> = (0..other_len as u8).map(|i| i.wrapping_mul(37)).collect();
                let check = |a: &[u8], b: &[u8]| {
                    assert_eq!(common_prefix(a, b), naive_prefix(a, b), "{a:?} {b:?}");
                    assert_eq!(common_suffix(a, b), naive_suffix(a, b), "{a:?} {b:?}");
                };
                check(&a, &b);
                for at in 0..b.len() {
                    b[at] ^= 0x80;
                    check(&a, &b);
                    b[at] ^= 0x80;
                }
            }
        }
    }

    /// The object stores are opened only when an object is not in a loose file: a hook that
    /// finds everything loose never lists the pack directory.
    #[test]
    fn object_stores_are_opened_when_a_loose_file_is_not_enough() {
        let dir = tempfile::tempdir().expect("tmp");
        let git_dir = bare_repo(dir.path(), "[core]\n\tbare = true\n");
        let repo = Repo::open(&git_dir).expect("open");
        let blob = repo.write_blob(b"hello\n").expect("blob");
        assert_eq!(repo.object_size(blob).expect("size"), 6);
        assert!(repo.has_object(blob));
        assert!(
            repo.objects.main.handle.get().is_none(),
            "opened for a loose object"
        );
        let missing = ObjectId::from_hex(&[b'5'; 40]).expect("id");
        assert!(!repo.has_object(missing));
        assert!(repo.objects.main.handle.get().is_some());
        // Packed, the blob is read through the store.
        let packed = hermetic_git()
            .args(["repack", "-adq"])
            .current_dir(&git_dir)
            .status()
            .expect("git repack");
        assert!(packed.success());
        let again = Repo::open(&git_dir).expect("open");
        assert_eq!(again.object_size(blob).expect("size"), 6);
        assert_eq!(again.read_blob(blob).expect("blob"), b"hello\n");
    }

    /// A push's quarantine that holds loose files only is never opened as a store: an object
    /// read from the main store's pack is looked for there without it. One with a pack is.
    #[test]
    fn a_quarantine_of_loose_files_is_not_opened_as_a_store() {
        let dir = tempfile::tempdir().expect("tmp");
        let git_dir = bare_repo(dir.path(), "[core]\n\tbare = true\n");
        // `id` packed into `objects` (a pack and its index), its loose file removed.
        let pack = |objects: &Path, id: ObjectId| {
            use std::io::Write as _;
            let mut child = hermetic_git()
                .args(["pack-objects", "-q"])
                .arg(objects.join("pack").join("pack"))
                .current_dir(objects)
                .env("GIT_OBJECT_DIRECTORY", objects)
                .stdin(std::process::Stdio::piped())
                .stdout(std::process::Stdio::null())
                .spawn()
                .expect("git pack-objects");
            let mut stdin = child.stdin.take().expect("stdin");
            writeln!(stdin, "{id}").expect("write");
            drop(stdin);
            assert!(child.wait().expect("wait").success());
            std::fs::remove_file(loose_path(objects, id)).expect("rm loose");
        };
        let objects = git_dir.join("objects");
        let packed = Repo::open(&git_dir)
            .expect("open")
            .write_blob(b"packed\n")
            .expect("blob");
        pack(&objects, packed);
        // A quarantine as git makes one for a small push: loose objects, an empty pack
        // directory.
        let quarantine = objects.join("tmp_objdir-incoming-test");
        std::fs::create_dir_all(quarantine.join("pack")).expect("mkdir");
        let with_quarantine = || {
            let mut repo = Repo::open(&git_dir).expect("open");
            repo.objects
                .quarantine
                .push(Store::new(quarantine.clone(), true));
            repo.objects.dirs.insert(0, quarantine.clone());
            repo
        };
        let repo = with_quarantine();
        assert_eq!(repo.read_blob(packed).expect("packed"), b"packed\n");
        assert_eq!(repo.object_size(packed).expect("size"), 7);
        assert!(repo.has_object(packed));
        assert!(!repo.has_object(ObjectId::from_hex(&[b'5'; 40]).expect("id")));
        assert!(
            repo.objects.quarantine[0].handle.get().is_none(),
            "the quarantine was opened as a store"
        );
        assert!(repo.objects.main.handle.get().is_some());
        // A damaged loose file in the quarantine goes to the store, which says what is wrong.
        let damaged = ObjectId::from_hex(&[b'6'; 40]).expect("id");
        let path = loose_path(&quarantine, damaged);
        std::fs::create_dir_all(path.parent().expect("fan-out")).expect("mkdir");
        std::fs::write(&path, b"not zlib").expect("write");
        let repo = with_quarantine();
        let err = repo.read_blob(damaged).expect_err("damaged");
        assert!(repo.objects.quarantine[0].handle.get().is_some(), "{err}");
        std::fs::remove_file(&path).expect("rm");
        // A quarantine with a pack (a push of many objects) is read through the store.
        let in_pack = with_quarantine()
            .write_blob(b"in the quarantine's pack\n")
            .expect("blob");
        std::fs::rename(loose_path(&objects, in_pack), {
            let to = loose_path(&quarantine, in_pack);
            std::fs::create_dir_all(to.parent().expect("fan-out")).expect("mkdir");
            to
        })
        .expect("into the quarantine");
        pack(&quarantine, in_pack);
        let repo = with_quarantine();
        assert_eq!(
            repo.read_blob(in_pack).expect("from the quarantine's pack"),
            b"in the quarantine's pack\n"
        );
        assert!(repo.objects.quarantine[0].handle.get().is_some());
    }

    /// `path_ids` finds what `path_id` finds, one path at a time, in trees as git would not
    /// write them too: a name listed twice (the first entry counts), a file where a directory
    /// is looked for, a link, empty path components.
    #[test]
    fn many_paths_are_found_as_one_path_is() {
        let dir = tempfile::tempdir().expect("tmp");
        let git_dir = bare_repo(dir.path(), "[core]\n\tbare = true\n");
        let repo = Repo::open(&git_dir).expect("open");
        let blob = repo.write_blob(b"a\n").expect("blob");
        let other = repo.write_blob(b"b\n").expect("blob");
        let sub = repo.write_raw_tree(&[("100644", b"y", blob), ("100755", b"z", other)]);
        let root = repo.write_raw_tree(&[
            ("100644", b"f", blob),
            ("100644", b"f", other),
            ("120000", b"l", blob),
            ("40000", b"x", sub),
            ("100644", b"x", other),
            ("100644", b"y", other),
            ("40000", b"y", sub),
        ]);
        let paths = [
            "f", "l", "x", "x/y", "x/z", "x/none", "y", "y/y", "f/y", "", "/f", "x//y", "x/y/",
            "none/y",
        ];
        let found = repo.path_ids(root, paths).expect("ids");
        for path in paths {
            assert_eq!(
                found.get(path).copied(),
                repo.path_id(root, path).expect("id"),
                "{path:?}"
            );
        }
        assert_eq!(found.len(), 4, "{found:?}");
    }

    /// Small trees are read from disk once per process; blobs are read each time.
    #[test]
    fn small_trees_are_read_once() {
        let dir = tempfile::tempdir().expect("tmp");
        let git_dir = bare_repo(dir.path(), "[core]\n\tbare = true\n");
        let repo = Repo::open(&git_dir).expect("open");
        let blob = repo.write_blob(b"hello\n").expect("blob");
        let tree = repo
            .write_tree(&[("a/b.txt".to_string(), blob)])
            .expect("tree");
        let first = repo.tree_entries(tree).expect("read");
        assert_eq!(repo.read_blob(blob).expect("blob"), b"hello\n");
        std::fs::remove_file(loose_file(&git_dir, tree)).expect("rm tree");
        std::fs::remove_file(loose_file(&git_dir, blob)).expect("rm blob");
        assert_eq!(repo.tree_entries(tree).expect("read again"), first);
        assert!(repo.read_blob(blob).is_err());
        // Another process (a new Repo) reads from disk.
        assert!(Repo::open(&git_dir)
            .expect("open")
            .tree_entries(tree)
            .is_err());
    }

    /// A tree too large for the small-object cache is kept once read a third time, and read
    /// from the store every time before that.
    #[test]
    fn large_trees_read_again_and_again_are_kept() {
        let dir = tempfile::tempdir().expect("tmp");
        let git_dir = bare_repo(dir.path(), "[core]\n\tbare = true\n");
        let repo = Repo::open(&git_dir).expect("open");
        let blob = repo.write_blob(b"hello\n").expect("blob");
        let files: Vec<(String, ObjectId)> = (0..400)
            .map(|i| (format!("branch-{i}.json"), blob))
            .collect();
        let tree = repo.write_tree(&files).expect("tree");
        let repo = Repo::open(&git_dir).expect("open again");
        let first = repo.tree_entries(tree).expect("read");
        assert!(first.len() == 400 && repo.objects_read() == 1);
        repo.tree_entries(tree).expect("read");
        assert_eq!(repo.objects_read(), 2, "read twice: not kept");
        repo.tree_entries(tree).expect("read");
        assert_eq!(repo.objects_read(), 3);
        std::fs::remove_file(loose_file(&git_dir, tree)).expect("rm tree");
        for _ in 0..3 {
            assert_eq!(repo.tree_entries(tree).expect("kept"), first);
        }
        assert_eq!(repo.objects_read(), 3);
    }

    /// In a linked worktree, refs/meta/tasks lives in the common directory, as every ref outside
    /// `refs/worktree/`, `refs/bisect/` and `refs/rewritten/` does: that is where its lock is
    /// looked for, reported and, once stale, removed.
    #[test]
    fn a_linked_worktree_finds_the_lock_of_a_shared_ref_in_the_common_directory() {
        let dir = tempfile::tempdir().expect("tmp");
        let git = |args: &[&str]| {
            let ok = hermetic_git()
                .args(["-c", "user.name=t", "-c", "user.email=t@example.org"])
                .args(args)
                .current_dir(dir.path())
                .output()
                .expect("git");
            assert!(
                ok.status.success(),
                "{}",
                String::from_utf8_lossy(&ok.stderr)
            );
        };
        git(&["init", "-q", "main"]);
        git(&["-C", "main", "commit", "-q", "--allow-empty", "-m", "c"]);
        git(&["-C", "main", "worktree", "add", "-q", "../wt"]);
        let repo = Repo::open(&dir.path().join("wt")).expect("open");
        assert_ne!(repo.git_dir, repo.common_dir);
        let name = "refs/meta/tasks";
        let a = repo.write_blob(b"a").expect("blob");
        let lock = repo.common_dir.join("refs/meta/tasks.lock");
        std::fs::create_dir_all(lock.parent().expect("parent")).expect("mkdir");
        std::fs::write(&lock, "").expect("a lock left behind");
        assert!(repo.ref_locked(name));
        repo.compare_and_swap(name, None, a, "m", Duration::ZERO)
            .expect("the stale lock is removed");
        assert!(!lock.exists());
        assert_eq!(repo.ref_target(name).expect("read"), Some(a));
        assert!(repo.common_dir.join(name).is_file());
        assert!(!repo.ref_locked(name));
    }

    /// What taskhook writes is stored uncompressed, read back by git as any loose object, and
    /// what git writes (compressed) is read by taskhook's own loose reader.
    #[test]
    fn loose_objects_are_shared_with_git_both_ways() {
        let dir = tempfile::tempdir().expect("tmp");
        let git_dir = dir.path().join("r.git");
        let git = |args: &[&str], input: Option<&[u8]>| {
            let mut cmd = hermetic_git();
            cmd.arg("--git-dir").arg(&git_dir).args(args);
            cmd.stdin(std::process::Stdio::piped());
            cmd.stdout(std::process::Stdio::piped());
            let mut child = cmd.spawn().expect("git");
            if let Some(input) = input {
                std::io::Write::write_all(&mut child.stdin.take().expect("stdin"), input)
                    .expect("input");
            }
            drop(child.stdin.take());
            let out = child.wait_with_output().expect("git ran");
            assert!(out.status.success(), "git {args:?}");
            String::from_utf8(out.stdout).expect("utf-8")
        };
        git(&["init", "-q", "--bare"], None);
        let repo = Repo::open(&git_dir).expect("open");
        let blob = repo.write_blob(b"hello\n").expect("blob");
        let tree = repo
            .write_tree(&[("a/b.txt".to_string(), blob)])
            .expect("tree");
        let commit = repo.write_commit(tree, None, "m\n").expect("commit");
        let file = std::fs::read(loose_file(&git_dir, commit)).expect("loose file");
        assert_eq!(file[..3], [0x78, 0x01, 0x01], "one final stored block");
        assert_eq!(
            git(&["cat-file", "-p", &format!("{commit}:a/b.txt")], None),
            "hello\n"
        );
        git(&["fsck", "--strict", "--no-dangling"], None);

        let theirs = git(&["hash-object", "-w", "--stdin"], Some(b"from git\n"));
        let theirs = ObjectId::from_hex(theirs.trim().as_bytes()).expect("id");
        let file = std::fs::read(loose_file(&git_dir, theirs)).expect("git's loose file");
        let mut out = Vec::new();
        let kind = stored::read_object(file, &mut flate2::Decompress::new(true), &mut out)
            .expect("read by taskhook's reader");
        assert_eq!(
            (kind, &out[..]),
            (gix_object::Kind::Blob, &b"from git\n"[..])
        );
        assert_eq!(
            Repo::open(&git_dir)
                .expect("open")
                .read_blob(theirs)
                .expect("read"),
            b"from git\n"
        );
    }

    /// A git directory taken as given (as hooks get it) is opened as discovery would open it,
    /// with discovery run only when `core.bare` does not say.
    #[test]
    fn a_git_dir_taken_as_given_is_what_discovery_finds() {
        let dir = tempfile::tempdir().expect("tmp");
        let git_dir = bare_repo(dir.path(), "");
        for (config, bare) in [
            ("[core]\n\tbare = true\n", true),
            ("[core]\n\tbare = false\n", false),
            // Unset: discovery decides (no work tree around a directory named like this).
            ("[core]\n", true),
        ] {
            std::fs::write(git_dir.join("config"), config).expect("config");
            let given = Repo::at(git_dir.clone(), &git_dir, None).expect("open");
            let found = Repo::open(&git_dir).expect("open");
            assert_eq!(
                (given.is_bare(), given.git_dir()),
                (bare, git_dir.as_path()),
                "{config:?}"
            );
            assert_eq!(
                (found.is_bare(), found.git_dir()),
                (bare, git_dir.as_path()),
                "{config:?}"
            );
        }
    }

    /// The manifest ref is moved as git moves a loose ref, under its own lock only: a held
    /// `packed-refs.lock` (`git pack-refs` at work) does not stop it. A wrong expected value is
    /// a race, and a reflog to keep or a ref in the way go to gitoxide's transaction, as before.
    #[test]
    fn refs_are_swapped_under_their_own_lock() {
        let dir = tempfile::tempdir().expect("tmp");
        let git_dir = bare_repo(dir.path(), "[core]\n\tbare = true\n");
        let repo = Repo::open(&git_dir).expect("open");
        let a = repo.write_blob(b"a").expect("blob");
        let b = repo.write_blob(b"b").expect("blob");
        let name = "refs/meta/tasks";
        let swap = |repo: &Repo, expected, new| {
            repo.compare_and_swap(name, expected, new, "m", Duration::from_secs(600))
        };
        // The first write creates refs/meta (gitoxide's transaction), then a packed value.
        swap(&repo, None, a).expect("create");
        std::fs::remove_file(git_dir.join(name)).expect("unpack");
        std::fs::write(
            git_dir.join("packed-refs"),
            format!("# pack-refs with: peeled fully-peeled sorted \n{a} {name}\n"),
        )
        .expect("packed-refs");
        assert_eq!(repo.ref_target(name).expect("read"), Some(a));
        std::fs::write(git_dir.join("packed-refs.lock"), "").expect("held lock");
        swap(&repo, Some(a), b).expect("packed-refs.lock is not needed");
        assert_eq!(
            std::fs::read_to_string(git_dir.join(name)).expect("loose"),
            format!("{b}\n")
        );
        assert!(!git_dir.join(format!("{name}.lock")).exists());

        // Expecting what is no longer there: a race, the ref as it was, no lock left.
        std::fs::remove_file(git_dir.join("packed-refs.lock")).expect("release");
        assert!(matches!(
            swap(&repo, Some(a), a),
            Err(GitError::Race { .. })
        ));
        assert!(matches!(swap(&repo, None, a), Err(GitError::Race { .. })));
        assert_eq!(repo.ref_target(name).expect("read"), Some(b));
        assert!(!git_dir.join(format!("{name}.lock")).exists());

        // With every ref update logged, gitoxide's transaction writes the reflog too.
        let logged = tempfile::tempdir().expect("tmp");
        let git_dir = bare_repo(
            logged.path(),
            "[core]\n\tbare = true\n\tlogAllRefUpdates = always\n",
        );
        let repo = Repo::open(&git_dir).expect("open");
        let a = repo.write_blob(b"a").expect("blob");
        let b = repo.write_blob(b"b").expect("blob");
        swap(&repo, None, a).expect("create");
        swap(&repo, Some(a), b).expect("update");
        let log = std::fs::read_to_string(git_dir.join("logs").join(name)).expect("reflog");
        assert_eq!(log.lines().count(), 2, "{log}");
    }

    /// Where `taskhook/` exists, the ref's previous file is kept and written over by the next
    /// update: the ref and the spare trade files, and no file is made or removed. A spare that
    /// is a symbolic link or has a second name is not written through; a held lock keeps the
    /// spare where it is. Without `taskhook/` nothing is kept.
    #[cfg(target_os = "linux")]
    #[test]
    fn the_refs_previous_file_is_written_over_by_the_next_update() {
        use std::os::unix::fs::MetadataExt as _;
        let dir = tempfile::tempdir().expect("tmp");
        let git_dir = bare_repo(dir.path(), "[core]\n\tbare = true\n");
        let repo = Repo::open(&git_dir).expect("open");
        let ids: Vec<ObjectId> = (0..6)
            .map(|i| repo.write_blob(format!("{i}").as_bytes()).expect("blob"))
            .collect();
        let name = "refs/meta/tasks";
        let (path, spare) = (git_dir.join(name), git_dir.join(SPARE_REF));
        let lock = lock_path(&path);
        let swap_named = |repo: &Repo, name: &str, expected, new| {
            repo.compare_and_swap(name, expected, new, "m", Duration::from_secs(600))
        };
        let swap = |expected, new| swap_named(&repo, name, expected, new);
        let is_plain_file = |p: &Path| std::fs::symlink_metadata(p).is_ok_and(|m| m.is_file());
        let inode = |p: &Path| std::fs::symlink_metadata(p).expect("file").ino();
        let read = |p: &Path| std::fs::read_to_string(p).expect("read");

        swap(None, ids[0]).expect("create");
        swap(Some(ids[0]), ids[1]).expect("update");
        assert!(!spare.exists(), "no taskhook/ directory, no spare");

        std::fs::create_dir(git_dir.join("taskhook")).expect("mkdir");
        swap(Some(ids[1]), ids[2]).expect("update");
        assert_eq!(
            read(&spare),
            format!("{}\n", ids[1]),
            "the previous file kept"
        );
        let (was_ref, was_spare) = (inode(&path), inode(&spare));
        swap(Some(ids[2]), ids[3]).expect("update");
        assert_eq!(
            (inode(&path), inode(&spare)),
            (was_spare, was_ref),
            "files traded"
        );
        assert_eq!(read(&path), format!("{}\n", ids[3]));
        assert_eq!(repo.ref_target(name).expect("read"), Some(ids[3]));
        assert!(!lock.exists());

        // A race leaves the spare where it was, and the ref as it was.
        assert!(matches!(
            swap(Some(ids[0]), ids[4]),
            Err(GitError::Race { .. })
        ));
        assert_eq!((inode(&path), inode(&spare)), (was_spare, was_ref));
        assert_eq!(repo.ref_target(name).expect("read"), Some(ids[3]));

        // A held lock: the spare stays, and the update waits for the lock (here: fails).
        std::fs::write(&lock, "").expect("held lock");
        let mut impatient = Repo::open(&git_dir).expect("open");
        impatient.lock_timeouts = (Fail::Immediately, Fail::Immediately);
        assert!(impatient
            .compare_and_swap(name, Some(ids[3]), ids[4], "m", Duration::from_secs(600))
            .is_err());
        assert_eq!(inode(&spare), was_ref);
        std::fs::remove_file(&lock).expect("release");

        // A spare with a second name, then one that is a symbolic link: neither written
        // through; the update makes a lock file of its own.
        let other = dir.path().join("other");
        std::fs::hard_link(&spare, &other).expect("second name");
        let before = read(&other);
        swap(Some(ids[3]), ids[4]).expect("update");
        assert_eq!(read(&other), before, "the other name is untouched");
        assert_eq!(read(&path), format!("{}\n", ids[4]));
        std::fs::remove_file(&spare).expect("rm");
        std::fs::write(&other, "precious\n").expect("target");
        std::os::unix::fs::symlink(&other, &spare).expect("symlink");
        swap(Some(ids[4]), ids[5]).expect("update");
        assert_eq!(read(&other), "precious\n", "the link's target is untouched");
        assert!(!std::fs::symlink_metadata(&path).expect("ref").is_symlink());
        assert_eq!(repo.ref_target(name).expect("read"), Some(ids[5]));
        assert_eq!(read(&spare), format!("{}\n", ids[4]), "a plain spare again");
        assert!(!lock.exists());

        // Refs below the ref's name (a directory where its file would be): not traded away,
        // the update fails as git's rename does, and they stay.
        let moved = "refs/meta/moved";
        swap_named(&repo, moved, None, ids[0]).expect("create");
        std::fs::remove_file(git_dir.join(moved)).expect("rm");
        std::fs::create_dir_all(git_dir.join(moved)).expect("mkdir");
        std::fs::write(git_dir.join(moved).join("x"), format!("{}\n", ids[1])).expect("x");
        assert!(swap_named(&repo, moved, None, ids[2]).is_err());
        assert_eq!(
            repo.ref_target(&format!("{moved}/x")).expect("read"),
            Some(ids[1])
        );
        assert!(is_plain_file(&spare));
        assert!(!lock_path(&git_dir.join(moved)).exists());

        // git reads the ref and takes its lock as before.
        let out = hermetic_git()
            .arg("--git-dir")
            .arg(&git_dir)
            .args(["update-ref", name, &ids[0].to_string(), &ids[5].to_string()])
            .output()
            .expect("git");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert_eq!(repo.ref_target(name).expect("read"), Some(ids[0]));
    }
}
