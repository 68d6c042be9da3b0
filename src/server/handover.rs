//! The verdicts pre-receive hands to post-receive for the same push, and the large trees one
//! push hands to the next.
//!
//! Both hooks need the verdict on each pushed branch: pre-receive to accept or refuse the push,
//! post-receive to write the branch's manifest. A verdict is a pure function of the branch, its
//! new commit, the stored manifest it starts from, and the rules (the config's fingerprint,
//! which includes taskhook's version). So pre-receive, once it accepts a push, leaves each
//! verdict it gave in `$GIT_DIR/taskhook/handover/`, under a key that is a digest of all of
//! those (the stored manifest named by the manifest ref's commit), together with what it read
//! of that manifest: its tree, and the blob of the branch file its verdict was computed
//! against. post-receive reads the manifest ref, computes the same key and takes the verdict
//! instead of walking the pushed tree again; it reads `index.json` from that tree itself (the
//! index lists every branch: handed over with each pushed branch's verdict, it was written and
//! read once per pushed branch). A key for other inputs is simply not found: a manifest ref
//! that moved in between (another push wrote it), a verdict cut short by the time budget
//! (never handed over), a file that is missing, damaged or too large. post-receive then reads and computes everything itself, as it always can.
//!
//! Beside the verdict go the large trees pre-receive read in the pushed commit (a directory of
//! 2,000 tasks is a 72 KB tree, stored compressed): the next push to the branch compares its
//! trees with those, and takes each one's data from here, once it hashes to the tree's id,
//! instead of inflating it again (`Repo::offer_trees`).
//!
//! Each branch has one file, `slot-<digest of its name>`, overwritten in place by every push
//! to it rather than made anew and removed: on the file systems measured, a file made and
//! removed per push cost more than the bytes written to it. A header line gives the lengths of
//! the two parts and the verdict's SHA-256, so a reader never takes a verdict from a file cut
//! short, left longer by an earlier push, or written by two pushes at once; trees are checked
//! against their ids.
//!
//! Nothing here can fail a push: files that cannot be written or read are skipped. Once in
//! sixteen pushes (picked by the keys it writes), files of branches not pushed for a week
//! are removed, and any other file (of an earlier layout) older than ten minutes.

use std::io::{BufRead as _, Read as _, Seek as _, Write as _};
use std::path::PathBuf;
use std::time::{Duration, SystemTime};

use crate::config::Config;
use crate::git::{ObjectId, Repo};
use crate::manifest::store::Snapshot;
use crate::validate::check::Report;

/// Where handed-over verdicts wait, in the repository's git directory.
const DIR: &str = "taskhook/handover";
/// What the first line of a slot starts with: the layout's name and version.
const MAGIC: &str = "taskhook handover 4";
/// Files other than slots are left over from an earlier layout, or from pushes that did not
/// complete, once this old.
const STALE: Duration = Duration::from_secs(600);
/// A slot is a branch's; once this old, the branch has not been pushed to for a while.
const STALE_SLOT: Duration = Duration::from_secs(7 * 24 * 3600);
/// Larger verdicts (tens of thousands of findings) are not handed over.
const MAX_BYTES: usize = 32 << 20;

/// A verdict as post-receive takes it over.
#[derive(serde::Deserialize)]
pub struct Handed {
    key: String,
    /// The manifest's tree, as pre-receive read it at the commit the key names.
    tree: Option<String>,
    /// The stored branch file the verdict was computed against (its lines are carried over).
    prior_blob: Option<String>,
    pub report: Report,
}

impl Handed {
    /// The tree of the stored manifest pre-receive read, at `commit` (the manifest ref's
    /// commit, which the key names; `None` before the first manifest): the same tree
    /// post-receive would read. `None` when what was handed over does not fit (a tree without a
    /// commit, or the other way round): a manifest written from it could lose other branches'
    /// files.
    pub fn manifest_tree(&self, commit: Option<ObjectId>) -> Option<Option<ObjectId>> {
        let tree = match self.tree.as_deref() {
            Some(hex) => Some(id(hex)?),
            None => None,
        };
        (tree.is_some() == commit.is_some()).then_some(tree)
    }

    /// The stored branch file the verdict was computed against, if there was one.
    pub fn prior_blob(&self) -> Option<ObjectId> {
        self.prior_blob.as_deref().and_then(id)
    }

    /// Whether `other` was read from the same stored manifest.
    pub fn same_snapshot(&self, other: &Handed) -> bool {
        self.tree == other.tree
    }
}

#[derive(serde::Serialize)]
struct Handing<'a> {
    key: &'a str,
    tree: Option<String>,
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

/// What pre-receive leaves for one branch: its slot's name and content, in pieces written as
/// they are (copying the trees into one buffer first touched as many fresh pages again).
#[derive(Debug)]
pub struct Slot {
    name: String,
    key: String,
    /// The header line, then the verdict.
    header: Vec<u8>,
    verdict: Vec<u8>,
    /// The trees, each with its `<id> <length>` line; empty when they are not handed over.
    trees: Vec<(Vec<u8>, Vec<u8>)>,
}

impl Slot {
    /// The slot's content, piece by piece, in order.
    fn pieces(&self) -> impl Iterator<Item = &[u8]> {
        [&self.header[..], &self.verdict[..]].into_iter().chain(
            self.trees
                .iter()
                .flat_map(|(line, data)| [&line[..], &data[..]]),
        )
    }
}

/// A verdict on `branch` ready to hand over with `trees` (the large trees its walk read in the
/// pushed commit, see [`Repo::take_read_trees`]), or `None` when it must not be (cut short by
/// the time budget), is too large, or is not worth it: a tree without tasks or findings (most
/// dist-git repositories) costs post-receive next to nothing, and leaves no file behind this
/// way. `snap` is the stored manifest the verdict started from, `prior_blob` finds the branch
/// file in it that the verdict was computed against.
pub fn prepare(
    branch: &str,
    key: &str,
    report: &Report,
    snap: &Snapshot,
    prior_blob: impl FnOnce() -> Option<ObjectId>,
    trees: Vec<(ObjectId, Vec<u8>)>,
) -> Option<Slot> {
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
        prior_blob: prior_blob().map(|b| b.to_string()),
        report,
    };
    let verdict = serde_json::to_vec(&handing).ok()?;
    if verdict.len() > MAX_BYTES {
        return None;
    }
    let mut listed: Vec<(Vec<u8>, Vec<u8>)> = trees
        .into_iter()
        .map(|(id, data)| (format!("{id} {}\n", data.len()).into_bytes(), data))
        .collect();
    let mut listed_len: usize = listed
        .iter()
        .map(|(line, data)| line.len() + data.len())
        .sum();
    if listed_len > crate::git::MAX_CARRIED_BYTES * 2 {
        listed.clear();
        listed_len = 0;
    }
    let header = format!(
        "{MAGIC} {} {} {}\n",
        verdict.len(),
        listed_len,
        crate::manifest::sha256(&verdict)
    )
    .into_bytes();
    Some(Slot {
        name: slot_name(branch),
        key: key.to_string(),
        header,
        verdict,
        trees: listed,
    })
}

/// The file of `branch`'s slot: named by a digest, as a branch name may hold anything.
fn slot_name(branch: &str) -> String {
    format!("slot-{}", &crate::manifest::sha256(branch.as_bytes())[..16])
}

/// Leaves prepared verdicts for post-receive (pre-receive, once it accepts the push), each
/// written over its branch's slot in place: no file is made (but the first time) or removed.
/// Two pushes to one branch that write its slot at once leave bytes of both, which no reader
/// takes (the header's digest); post-receive then computes the verdict itself.
pub fn give(repo: &Repo, prepared: &[Slot]) {
    give_in(&dir(repo), prepared);
}

fn give_in(dir: &std::path::Path, prepared: &[Slot]) {
    if prepared.is_empty() {
        return;
    }
    for slot in prepared {
        let path = dir.join(&slot.name);
        let open = || {
            std::fs::OpenOptions::new()
                .write(true)
                .create(true)
                .truncate(false)
                .open(&path)
        };
        let file = open().or_else(|e| match e.kind() {
            std::io::ErrorKind::NotFound => {
                std::fs::create_dir_all(dir)?;
                open()
            }
            // Another pusher's slot in a shared repository, written before the hooks honoured
            // core.sharedRepository: replaced by one this pusher's group can write.
            std::io::ErrorKind::PermissionDenied => {
                std::fs::remove_file(&path)?;
                open()
            }
            _ => Err(e),
        });
        if file.and_then(|mut f| write_pieces(&mut f, slot)).is_err() {
            return;
        }
    }
    // Looked through by one push in sixteen: the keys are digests, and one starting with `0`
    // picks that push.
    if prepared.iter().any(|slot| slot.key.starts_with('0')) {
        remove_stale(dir);
    }
}

/// Writes `slot`'s pieces in as few calls as the file takes.
fn write_pieces(file: &mut std::fs::File, slot: &Slot) -> std::io::Result<()> {
    let mut slices: Vec<std::io::IoSlice<'_>> = slot.pieces().map(std::io::IoSlice::new).collect();
    let mut left = &mut slices[..];
    std::io::IoSlice::advance_slices(&mut left, 0);
    while !left.is_empty() {
        match file.write_vectored(left) {
            Ok(0) => return Err(std::io::ErrorKind::WriteZero.into()),
            Ok(n) => std::io::IoSlice::advance_slices(&mut left, n),
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// A slot's header: where the verdict starts, its length, the trees' length, its SHA-256.
struct Header {
    start: u64,
    verdict: usize,
    trees: usize,
    sha256: String,
}

/// Opens `branch`'s slot and reads its header; `None` when there is none, or it is not one.
fn open_slot(
    dir: &std::path::Path,
    branch: &str,
) -> Option<(std::io::BufReader<std::fs::File>, Header)> {
    let file = std::fs::File::open(dir.join(slot_name(branch))).ok()?;
    let mut reader = std::io::BufReader::new(file);
    let mut line = Vec::new();
    (&mut reader).take(256).read_until(b'\n', &mut line).ok()?;
    let text = std::str::from_utf8(line.strip_suffix(b"\n")?).ok()?;
    let mut fields = text.strip_prefix(MAGIC)?.strip_prefix(' ')?.split(' ');
    let mut number = || fields.next()?.parse::<usize>().ok();
    let (verdict, trees) = (number()?, number()?);
    let sha256 = fields.next()?.to_string();
    if fields.next().is_some() || verdict > MAX_BYTES || trees > crate::git::MAX_CARRIED_BYTES * 2 {
        return None;
    }
    let start = line.len() as u64;
    Some((
        reader,
        Header {
            start,
            verdict,
            trees,
            sha256,
        },
    ))
}

/// The verdict pre-receive left under `key` in `branch`'s slot; `None` when there is none to
/// trust. The slot stays: the next push reads its trees, and overwrites it.
pub fn take(repo: &Repo, branch: &str, key: &str) -> Option<Handed> {
    take_in(&dir(repo), branch, key)
}

fn take_in(dir: &std::path::Path, branch: &str, key: &str) -> Option<Handed> {
    let (mut reader, header) = open_slot(dir, branch)?;
    let mut bytes = vec![0; header.verdict];
    reader.read_exact(&mut bytes).ok()?;
    if crate::manifest::sha256(&bytes) != header.sha256 {
        return None;
    }
    let handed: Handed = serde_json::from_slice(&bytes).ok()?;
    (handed.key == key).then_some(handed)
}

/// The trees the last push to `branch` handed over, as written: each is checked against its
/// id where it is used. Empty when there are none, or the slot cannot be read.
pub fn trees(repo: &Repo, branch: &str) -> Vec<(ObjectId, Vec<u8>)> {
    trees_in(&dir(repo), branch)
}

fn trees_in(dir: &std::path::Path, branch: &str) -> Vec<(ObjectId, Vec<u8>)> {
    let Some((mut reader, header)) = open_slot(dir, branch) else {
        return Vec::new();
    };
    let at = header.start + header.verdict as u64;
    if reader.seek(std::io::SeekFrom::Start(at)).is_err() {
        return Vec::new();
    }
    let mut part = reader.take(header.trees as u64);
    let mut trees = Vec::new();
    let mut line = Vec::new();
    // Each tree: `<id> <length>` on a line, then its data.
    loop {
        line.clear();
        if (&mut part).take(64).read_until(b'\n', &mut line).is_err() || line.is_empty() {
            break;
        }
        let Some((tree, len)) = std::str::from_utf8(&line)
            .ok()
            .and_then(|l| l.strip_suffix('\n')?.split_once(' '))
            .and_then(|(hex, len)| Some((id(hex)?, len.parse::<usize>().ok()?)))
        else {
            break;
        };
        if len > header.trees {
            break;
        }
        let mut data = vec![0; len];
        if part.read_exact(&mut data).is_err() {
            break;
        }
        trees.push((tree, data));
    }
    trees
}

fn dir(repo: &Repo) -> PathBuf {
    repo.git_dir().join(DIR)
}

/// Removes the handover directory of the repository at `git_dir` (and `taskhook/`, once
/// empty): for `taskhook uninstall`. The removed directory, if there was one.
pub fn remove_all(git_dir: &std::path::Path) -> std::io::Result<Option<PathBuf>> {
    let dir = git_dir.join(DIR);
    let removed = if dir.exists() {
        std::fs::remove_dir_all(&dir)?;
        Some(dir.clone())
    } else {
        None
    };
    if let Some(parent) = dir.parent() {
        // Left in place if anything else is in it.
        let _ = std::fs::remove_dir(parent);
    }
    Ok(removed)
}

fn remove_stale(dir: &std::path::Path) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    let now = SystemTime::now();
    for entry in entries.flatten() {
        let stale = if entry.file_name().to_string_lossy().starts_with("slot-") {
            STALE_SLOT
        } else {
            STALE
        };
        let old = entry
            .metadata()
            .and_then(|m| m.modified())
            .is_ok_and(|t| now.duration_since(t).is_ok_and(|age| age > stale));
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
            index: crate::manifest::Index::default(),
        }
    }

    /// The verdict in `slot`, as post-receive takes it (by its key, `k` in these tests).
    fn handed(slot: &Slot) -> Handed {
        let dir = tempfile::tempdir().expect("tmp");
        give_in(dir.path(), std::slice::from_ref(slot));
        take_in(dir.path(), "main", &slot.key).expect("taken")
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
        let slot = prepare("main", "k", &report, &snap, || Some(blob), Vec::new());
        let back = handed(&slot.expect("handed over"));
        assert_eq!(back.prior_blob(), Some(blob));
        let other = handed(
            &prepare("main", "k", &report, &empty(), || None, Vec::new()).expect("handed over"),
        );
        assert!(back.same_snapshot(&back) && !back.same_snapshot(&other));
        assert_eq!(back.manifest_tree(Some(blob)), Some(Some(tree)));
        // A tree needs a commit, and a commit a tree.
        assert_eq!(back.manifest_tree(None), None);
        assert_eq!(other.prior_blob(), None);
        assert_eq!(other.manifest_tree(Some(blob)), None);
        assert_eq!(other.manifest_tree(None), Some(None));
        // A damaged tree id is no tree at all.
        let damaged = serde_json::to_string(&Handing {
            key: "k",
            tree: Some("not-hex".into()),
            prior_blob: None,
            report: &report,
        })
        .expect("json");
        let damaged: Handed = serde_json::from_str(&damaged).expect("parses");
        assert_eq!(damaged.manifest_tree(Some(blob)), None);
    }

    #[test]
    fn a_verdict_cut_short_by_the_time_budget_is_not_handed_over() {
        let mut report = Report {
            reused_count: 3,
            ..Report::default()
        };
        let slot = prepare("main", "k", &report, &empty(), || None, Vec::new());
        assert_eq!(handed(&slot.expect("handed over")).key, "k");
        report.reused_findings.insert(
            "t".into(),
            vec![Diagnostic::error(
                "time-budget",
                "t/runtask.yml",
                "not checked",
            )],
        );
        assert!(prepare("main", "k", &report, &empty(), || None, Vec::new()).is_none());
    }

    #[test]
    fn a_tree_without_tasks_is_not_handed_over() {
        let nothing = prepare(
            "main",
            "k",
            &Report::default(),
            &empty(),
            || None,
            Vec::new(),
        );
        assert!(nothing.is_none());
    }

    /// A branch's slot is written over in place, push after push: a reader takes the verdict
    /// under its key (again and again: it stays for the next push to read the trees), never
    /// one whose bytes are not the ones its header names, and takes the trees as listed, up
    /// to where the list is damaged.
    #[test]
    fn a_slot_is_written_over_and_read_back_only_as_written() {
        let dir = tempfile::tempdir().expect("tmp");
        let report = Report {
            reused_count: 3,
            ..Report::default()
        };
        let id = |c: u8| ObjectId::from_hex(&[c; 40]).expect("id");
        let big = vec![
            (id(b'1'), vec![7u8; 70_000]),
            (id(b'2'), b"tree\n".to_vec()),
        ];
        let long = prepare("main", "first", &report, &empty(), || None, big.clone());
        give_in(dir.path(), &[long.expect("slot")]);
        assert_eq!(trees_in(dir.path(), "main"), big);
        assert_eq!(trees_in(dir.path(), "other"), Vec::new());
        // A shorter slot written over it: the longer one's tail stays in the file, unread.
        let small = vec![(id(b'3'), b"small".to_vec())];
        let short = prepare("main", "second", &report, &empty(), || None, small.clone());
        give_in(dir.path(), &[short.expect("slot")]);
        let path = dir.path().join(slot_name("main"));
        assert!(std::fs::metadata(&path).expect("slot").len() > 70_000);
        assert_eq!(trees_in(dir.path(), "main"), small);
        assert!(
            take_in(dir.path(), "main", "first").is_none(),
            "another key"
        );
        for _ in 0..2 {
            assert_eq!(
                take_in(dir.path(), "main", "second").expect("taken").key,
                "second"
            );
        }
        assert!(
            take_in(dir.path(), "other", "second").is_none(),
            "another branch"
        );
        // One byte of the verdict changed (as by two pushes writing at once): not taken.
        let mut bytes = std::fs::read(&path).expect("read");
        let at = bytes.iter().position(|&b| b == b'{').expect("the verdict");
        bytes[at + 2] ^= 1;
        std::fs::write(&path, &bytes).expect("write");
        assert!(take_in(dir.path(), "main", "second").is_none());
        // A header of another layout, or cut short: nothing at all.
        for header in ["taskhook handover 3 1 1 00\n{", "taskhook handover 4 12"] {
            std::fs::write(&path, header).expect("write");
            assert!(take_in(dir.path(), "main", "second").is_none(), "{header}");
            assert!(trees_in(dir.path(), "main").is_empty(), "{header}");
        }
        // Trees listed up to a damaged line: those before it.
        let two = vec![(id(b'4'), b"a".to_vec()), (id(b'5'), b"b".to_vec())];
        let slot = prepare("main", "third", &report, &empty(), || None, two.clone());
        give_in(dir.path(), &[slot.expect("slot")]);
        let bytes = std::fs::read(&path).expect("read");
        let damaged = String::from_utf8(bytes)
            .expect("utf-8")
            .replace(&format!("{} 1", id(b'5')), "not an id 1");
        std::fs::write(&path, damaged).expect("write");
        assert_eq!(trees_in(dir.path(), "main"), two[..1]);
    }

    #[test]
    fn a_slot_of_more_pieces_than_one_write_takes_is_written_whole() {
        // Linux takes at most 1,024 slices per `writev`: 2 + 2 * 700 pieces need two calls.
        let trees: Vec<(Vec<u8>, Vec<u8>)> = (0..700)
            .map(|i| {
                (
                    format!("tree {i}\n").into_bytes(),
                    vec![b'a' + (i % 26) as u8; 3],
                )
            })
            .collect();
        let slot = Slot {
            name: "main".into(),
            key: "k".into(),
            header: b"header\n".to_vec(),
            verdict: b"{}".to_vec(),
            trees,
        };
        let dir = tempfile::tempdir().expect("tmp");
        let path = dir.path().join("slot");
        let mut file = std::fs::File::create(&path).expect("create");
        write_pieces(&mut file, &slot).expect("written");
        drop(file);
        let whole: Vec<u8> = slot.pieces().flatten().copied().collect();
        assert_eq!(std::fs::read(&path).expect("read"), whole);
    }
}
