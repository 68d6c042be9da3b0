//! The trees validation walks: the [`Source`] trait, with one implementation for a commit in git
//! ([`CommitTree`]) and one for a checkout on disk ([`super::worktree::Worktree`]), so the local
//! `check` and the server hooks walk trees with the same code.

use crate::git::{EntryKind, ObjectId, Repo};

/// What a directory entry is.
#[derive(Debug, Clone)]
pub enum Kind<D, B> {
    Dir(D),
    File(B),
    Symlink,
    Submodule,
    Other,
}

#[derive(Debug, Clone)]
pub struct Entry<D, B> {
    pub name: String,
    pub kind: Kind<D, B>,
}

/// A blob read under a size limit.
pub enum Blob {
    Bytes(Vec<u8>),
    TooLarge(u64),
}

#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct SourceError(pub String);

/// The entries of one directory of a [`Source`].
pub type Listing<S> = Vec<Entry<<S as Source>::Dir, <S as Source>::Blob>>;

/// A directory of a [`Source`] listed against an earlier version, where it can be.
pub type Paired<S> = Option<Pair<<S as Source>::Dir, <S as Source>::Blob>>;

/// A directory listed against an earlier version of it ([`Source::list_pair`]).
pub struct Pair<D, B> {
    /// The directory's entries in order, but for the subdirectories that are in the earlier
    /// version under the same name as the same tree.
    pub changed: Vec<Entry<D, B>>,
    /// The earlier version's subdirectories in order, but for those same ones.
    pub old_dirs: Vec<(String, D)>,
    /// How many subdirectories are the same, and their names (when asked for).
    pub same: usize,
    pub same_names: Vec<String>,
    /// Whether the earlier version has an entry named as the formula.
    pub old_has_formula: bool,
}

/// A tree of directories and files: the working tree of a checkout, or a git commit.
pub trait Source {
    type Dir: Clone;
    type Blob: Clone;
    fn root(&self) -> Self::Dir;
    fn list(&self, dir: &Self::Dir) -> Result<Listing<Self>, SourceError>;
    /// Reads a blob unless it is larger than `limit` bytes.
    fn read(&self, blob: &Self::Blob, limit: usize) -> Result<Blob, SourceError>;
    /// The git tree id of a directory, where there is one.
    fn tree_id(&self, dir: &Self::Dir) -> Option<String>;
    /// Whether two directories are the same git tree (never for a checkout on disk).
    fn same_tree(&self, _a: &Self::Dir, _b: &Self::Dir) -> bool {
        false
    }
    /// `dir` listed against `old`, an earlier version of it, where the source can do that
    /// without listing the unchanged subdirectories one by one (git trees, see
    /// [`Repo::tree_pair`]). Entries named `formula` are always listed; `None` when the source
    /// cannot do this, or when the listing holds a name `name_ok` refuses or one name twice:
    /// the caller then lists both whole, and reports those.
    fn list_pair(
        &self,
        _dir: &Self::Dir,
        _old: &Self::Dir,
        _same_names: bool,
        _formula: &str,
        _name_ok: &dyn Fn(&str) -> bool,
    ) -> Result<Paired<Self>, SourceError> {
        Ok(None)
    }
}

/// What a git tree entry of `kind` is, for discovery.
fn entry_kind(kind: EntryKind, id: ObjectId) -> Kind<ObjectId, ObjectId> {
    match kind {
        EntryKind::Tree => Kind::Dir(id),
        EntryKind::Blob | EntryKind::BlobExecutable => Kind::File(id),
        EntryKind::Link => Kind::Symlink,
        EntryKind::Commit => Kind::Submodule,
    }
}

/// A commit's tree as a [`Source`] for discovery.
pub struct CommitTree<'r> {
    pub repo: &'r Repo,
    pub tree: ObjectId,
}

impl Source for CommitTree<'_> {
    type Dir = ObjectId;
    type Blob = ObjectId;

    fn root(&self) -> ObjectId {
        self.tree
    }

    fn list(&self, dir: &ObjectId) -> Result<Listing<Self>, SourceError> {
        self.repo
            .tree_listing(*dir, |name, kind, id| Entry {
                name,
                kind: entry_kind(kind, id),
            })
            .map_err(|e| SourceError(e.to_string()))
    }

    fn read(&self, blob: &ObjectId, limit: usize) -> Result<Blob, SourceError> {
        let size = self
            .repo
            .object_size(*blob)
            .map_err(|e| SourceError(e.to_string()))?;
        if size > limit as u64 {
            return Ok(Blob::TooLarge(size));
        }
        let bytes = self
            .repo
            .read_blob(*blob)
            .map_err(|e| SourceError(e.to_string()))?;
        Ok(Blob::Bytes(bytes))
    }

    fn tree_id(&self, dir: &ObjectId) -> Option<String> {
        Some(dir.to_string())
    }

    fn same_tree(&self, a: &ObjectId, b: &ObjectId) -> bool {
        a == b
    }

    fn list_pair(
        &self,
        dir: &ObjectId,
        old: &ObjectId,
        same_names: bool,
        formula: &str,
        name_ok: &dyn Fn(&str) -> bool,
    ) -> Result<Paired<Self>, SourceError> {
        let pair = self
            .repo
            .tree_pair(*dir, *old, formula, same_names, name_ok)
            .map_err(|e| SourceError(e.to_string()))?;
        Ok(pair.map(|p| Pair {
            changed: p
                .changed
                .into_iter()
                .map(|(name, kind, id)| Entry {
                    name,
                    kind: entry_kind(kind, id),
                })
                .collect(),
            old_dirs: p.old_dirs,
            same: p.same,
            same_names: p.same_names,
            old_has_formula: p.old_has_keep,
        }))
    }
}
