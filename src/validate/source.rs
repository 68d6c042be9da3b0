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
                kind: match kind {
                    EntryKind::Tree => Kind::Dir(id),
                    EntryKind::Blob | EntryKind::BlobExecutable => Kind::File(id),
                    EntryKind::Link => Kind::Symlink,
                    EntryKind::Commit => Kind::Submodule,
                },
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
}
