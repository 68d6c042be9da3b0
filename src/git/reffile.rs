//! Writing a loose ref's file without freeing a block: the ref's previous file is kept as a
//! spare and written over by the next update.
//!
//! git replaces a ref by renaming `<ref>.lock` over it, which frees the old file's block. On a
//! file system mounted with `discard` and without a journal the rename then waits for the disk
//! (about half a millisecond per update on the VMs the benchmarks run on); with a journal the
//! freeing costs much less. Here the lock file is instead the spare (an earlier file of the
//! ref, taken with `renameat2(RENAME_NOREPLACE)`, so it excludes other writers exactly as
//! creating the lock does), written over in place, and exchanged with the ref
//! (`RENAME_EXCHANGE`): readers see the old file or the new one, never a mix, and the old one
//! becomes the spare. Wherever a step does not apply (not Linux, a file system without these
//! renames, no spare, a spare that is not a plain file of one name) it is git's way instead.
//!
//! What this gives up: after a crash, a file system that does not order data before renames
//! may show the ref at an earlier value it had (written over in place, the new bytes may not
//! have reached the disk). git by default syncs neither loose objects nor refs, so the same
//! crash can already leave a ref naming an object whose file is empty; an earlier manifest
//! commit is whole, and the next push writes over it.

use std::fs::File;
use std::path::Path;

/// Where a repository keeps the spare, under its common git directory. Only kept when
/// `taskhook/` exists (the hooks make it), so commands run elsewhere leave nothing behind.
pub const SPARE: &str = "taskhook/spare-ref";

/// Takes the lock `lock`: the spare moved there when there is one, else a new file. `None`
/// when someone else holds the lock (or it cannot be made).
pub fn take_lock(lock: &Path, spare: &Path) -> Option<File> {
    #[cfg(target_os = "linux")]
    {
        use rustix::fs::{renameat_with, RenameFlags, CWD};
        use rustix::io::Errno;
        let taken = if is_file(spare) {
            renameat_with(CWD, spare, CWD, lock, RenameFlags::NOREPLACE)
        } else {
            // Whatever is there instead (a symbolic link, say) makes room for a plain spare.
            let _ = std::fs::remove_file(spare);
            Err(Errno::NOENT)
        };
        match taken {
            Ok(()) => match open_spare(lock) {
                Some(file) => return Some(file),
                // Not something to write over (another name, another owner...): removed,
                // and a new lock made below.
                None => {
                    let _ = std::fs::remove_file(lock);
                }
            },
            Err(Errno::EXIST) => return None,
            // No spare (or no such rename here): a new lock file.
            Err(_) => {}
        }
    }
    #[cfg(not(target_os = "linux"))]
    let _ = spare;
    std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(lock)
        .ok()
}

/// The spare, now at `lock`, opened for writing when it is a plain file with no other name
/// (written over, another name would change too); a symbolic link is not followed.
#[cfg(target_os = "linux")]
fn open_spare(lock: &Path) -> Option<File> {
    use rustix::fs::{Mode, OFlags};
    use std::os::unix::fs::MetadataExt as _;
    let flags = OFlags::WRONLY | OFlags::NOFOLLOW | OFlags::CLOEXEC;
    let file = File::from(rustix::fs::open(lock, flags, Mode::empty()).ok()?);
    let meta = file.metadata().ok()?;
    (meta.is_file() && meta.nlink() == 1).then_some(file)
}

/// Writes `bytes` as the whole content of the lock file (written over from its start).
pub fn write(file: &File, bytes: &[u8]) -> std::io::Result<()> {
    #[cfg(unix)]
    std::os::unix::fs::FileExt::write_all_at(file, bytes, 0)?;
    #[cfg(not(unix))]
    std::io::Write::write_all(&mut &*file, bytes)?;
    // A spare longer than the value (a symbolic ref's file, say) is cut to it.
    if file.metadata()?.len() != bytes.len() as u64 {
        file.set_len(bytes.len() as u64)?;
    }
    Ok(())
}

/// Gives up the lock without changing the ref: the lock file goes back to being the spare
/// when it can, else it is removed.
pub fn release(lock: &Path, spare: &Path) {
    if !keep_as_spare(lock, spare) {
        let _ = std::fs::remove_file(lock);
    }
}

/// Puts the locked file in place of the ref at `path`. The ref's previous file becomes the
/// spare where the ref had a loose file and `spare`'s directory exists; else this is git's
/// rename.
pub fn commit(lock: &Path, path: &Path, spare: &Path) -> std::io::Result<()> {
    // Only a plain file is traded: an exchange would also move a directory (refs below the
    // ref's name, which git's rename refuses to replace) or a symbolic link out of the way.
    #[cfg(target_os = "linux")]
    if spare.parent().is_some_and(Path::is_dir) && is_file(path) {
        use rustix::fs::{renameat_with, RenameFlags, CWD};
        if renameat_with(CWD, lock, CWD, path, RenameFlags::EXCHANGE).is_ok() {
            if is_file(lock) {
                // `lock` now holds the ref's previous value.
                release(lock, spare);
                return Ok(());
            }
            // Something else was put there meanwhile: traded back, and git's rename says.
            renameat_with(CWD, lock, CWD, path, RenameFlags::EXCHANGE)?;
        }
    }
    #[cfg(not(target_os = "linux"))]
    let _ = spare;
    std::fs::rename(lock, path)
}

/// Whether `path` is a plain file (a symbolic link is not followed).
#[cfg(target_os = "linux")]
fn is_file(path: &Path) -> bool {
    std::fs::symlink_metadata(path).is_ok_and(|m| m.is_file())
}

/// Moves `lock`, a plain file, to `spare` unless a spare is there already.
fn keep_as_spare(lock: &Path, spare: &Path) -> bool {
    #[cfg(target_os = "linux")]
    {
        use rustix::fs::{renameat_with, RenameFlags, CWD};
        spare.parent().is_some_and(Path::is_dir)
            && is_file(lock)
            && renameat_with(CWD, lock, CWD, spare, RenameFlags::NOREPLACE).is_ok()
    }
    #[cfg(not(target_os = "linux"))]
    {
        let _ = (lock, spare);
        false
    }
}
