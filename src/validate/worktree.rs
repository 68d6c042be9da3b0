//! A checkout on disk as a [`Source`], read the way git would store it: symbolic links are not
//! followed and a nested repository (a submodule) is not entered.

use std::fs;
use std::io::Read;
use std::path::{Path, PathBuf};

use super::source::{Blob, Entry, Kind, Source, SourceError};

pub struct Worktree {
    root: PathBuf,
    /// Paths below the root that git ignores (directories end with `/`): a push would not
    /// send them, so they are not checked.
    ignored: std::collections::HashSet<String>,
}

impl Worktree {
    pub fn new(root: impl Into<PathBuf>) -> Self {
        Worktree {
            root: root.into(),
            ignored: Default::default(),
        }
    }

    /// A checkout whose git-ignored paths (relative to the root, directories with a trailing
    /// `/`, as `git ls-files --others --ignored --directory` lists them) are left out.
    pub fn ignoring(root: impl Into<PathBuf>, ignored: std::collections::HashSet<String>) -> Self {
        Worktree {
            root: root.into(),
            ignored,
        }
    }

    fn is_ignored(&self, path: &Path, is_dir: bool) -> bool {
        if self.ignored.is_empty() {
            return false;
        }
        let Ok(rel) = path.strip_prefix(&self.root) else {
            return false;
        };
        let mut rel = rel.to_string_lossy().into_owned();
        if is_dir {
            rel.push('/');
        }
        self.ignored.contains(&rel)
    }
}

fn err(path: &Path, e: std::io::Error) -> SourceError {
    SourceError(format!("cannot read {}: {e}", path.display()))
}

impl Source for Worktree {
    type Dir = PathBuf;
    type Blob = PathBuf;

    fn root(&self) -> PathBuf {
        self.root.clone()
    }

    fn list(&self, dir: &PathBuf) -> Result<Vec<Entry<PathBuf, PathBuf>>, SourceError> {
        let mut out = Vec::new();
        for item in fs::read_dir(dir).map_err(|e| err(dir, e))? {
            let item = item.map_err(|e| err(dir, e))?;
            let path = item.path();
            let meta = fs::symlink_metadata(&path).map_err(|e| err(&path, e))?;
            let name = item.file_name().to_string_lossy().into_owned();
            let ft = meta.file_type();
            // The repository itself, and what git ignores, are never part of a push.
            if item.file_name() == ".git" || self.is_ignored(&path, ft.is_dir()) {
                continue;
            }
            let kind = if ft.is_symlink() {
                Kind::Symlink
            } else if ft.is_dir() {
                if path.join(".git").exists() {
                    Kind::Submodule
                } else {
                    Kind::Dir(path)
                }
            } else if ft.is_file() {
                Kind::File(path)
            } else {
                Kind::Other
            };
            out.push(Entry { name, kind });
        }
        // Git orders tree entries by name; so do we, so output never depends on the file system.
        out.sort_by(|a, b| a.name.as_bytes().cmp(b.name.as_bytes()));
        Ok(out)
    }

    fn read(&self, blob: &PathBuf, limit: usize) -> Result<Blob, SourceError> {
        let file = fs::File::open(blob).map_err(|e| err(blob, e))?;
        let size = file.metadata().map_err(|e| err(blob, e))?.len();
        if size > limit as u64 {
            return Ok(Blob::TooLarge(size));
        }
        let mut bytes = Vec::with_capacity(size as usize);
        file.take(limit as u64 + 1)
            .read_to_end(&mut bytes)
            .map_err(|e| err(blob, e))?;
        if bytes.len() > limit {
            return Ok(Blob::TooLarge(bytes.len() as u64));
        }
        Ok(Blob::Bytes(bytes))
    }

    fn tree_id(&self, _dir: &PathBuf) -> Option<String> {
        None
    }
}
