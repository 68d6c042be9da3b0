//! Finds the tasks of a tree: one task per directory holding a `runtask.yml`, per the storage
//! conventions. Works on any [`Source`] (a checkout on disk or a commit in git), so the local
//! `check` and the server hook walk trees with the same code.

use super::diag::{did_you_mean, Diagnostic};
use super::source::{Blob, Entry, Kind, Source, SourceError};
use crate::config::Bounds;

/// The one formula name libtaskotron accepts.
pub const FORMULA: &str = "runtask.yml";

/// A directory that is a task. `formula` is `None` when `runtask.yml` is not a regular file.
#[derive(Debug, Clone)]
pub struct Found<D, B> {
    pub path: String,
    pub dir: D,
    pub formula: Option<B>,
    pub diagnostics: Vec<Diagnostic>,
}

pub struct Discovery<D, B> {
    pub tasks: Vec<Found<D, B>>,
    /// Findings that belong to no task (misnamed formulas, limits).
    pub diagnostics: Vec<Diagnostic>,
    /// Directories (`""` for the root) left unwalked because they are identical to the
    /// baseline's: their tasks and findings are the baseline's.
    pub reused: Vec<String>,
    /// The baseline's tasks that this walk replaces: those in directories it walked again, and
    /// those under directories that are gone. Every other baseline task is kept as it was.
    pub replaced: Vec<String>,
    /// Set when the baseline's side could not be followed within the bounds; the caller then
    /// checks the whole tree instead.
    pub baseline_lost: bool,
}

/// An earlier tree to compare with, so that identical subtrees are not walked again. The
/// baseline's tasks are found from its tree as this walk finds tasks (a directory holding
/// `runtask.yml`), so a baseline is only usable when it was walked whole, within the same bounds.
pub struct Baseline<D> {
    pub root: D,
    /// Whether the caller needs the paths of the directories taken whole from the baseline
    /// (to carry their findings over). Without it, a large unchanged directory's subdirectories
    /// are passed over without building a path for each.
    pub reused_paths: bool,
}

/// The file path of the formula of task `path`.
pub fn formula_path(task: &str) -> String {
    if task == "." {
        FORMULA.to_string()
    } else {
        format!("{task}/{FORMULA}")
    }
}

/// Whether a path component is safe in URLs, shells and buildbot names.
pub fn valid_component(name: &str) -> bool {
    let mut chars = name.chars();
    chars.next().is_some_and(|c| c.is_ascii_alphanumeric())
        && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '+' | '-'))
}

/// A tree that git itself would refuse to check out, or would check out differently from what
/// was validated: two entries with one name (one `runtask.yml` validated, the other run), or a
/// name git refuses (empty, `.`, `..`, `.git` in any case, with `/`, or not UTF-8). Checked
/// here whatever the server's `receive.fsckObjects` says.
fn bad_entries<D, B>(entries: &[super::source::Entry<D, B>], path: &str) -> Option<Diagnostic> {
    let shown = if path.is_empty() { "." } else { path };
    // Names in strictly increasing byte order are all distinct. git writes trees nearly in that
    // order (a directory sorts as if its name ended in `/`), so the set of names is built only
    // for the other trees.
    let ordered = entries.windows(2).all(|w| w[0].name < w[1].name);
    let mut names = (!ordered).then(|| std::collections::HashSet::with_capacity(entries.len()));
    for e in entries {
        if bad_name(&e.name) {
            return Some(
                Diagnostic::error(
                    "bad-tree-entry",
                    shown.to_string(),
                    format!(
                        "directory `{shown}` has an entry named `{}`, which git refuses to check out",
                        e.name.escape_debug()
                    ),
                )
                .help("the push was made with a tool that writes trees git would not; rewrite the commit with git itself"),
            );
        }
        if names.as_mut().is_some_and(|n| !n.insert(e.name.as_str())) {
            return Some(
                Diagnostic::error(
                    "bad-tree-entry",
                    shown.to_string(),
                    format!(
                        "directory `{shown}` lists `{}` twice: git would check out one of them, maybe not the one validated",
                        e.name.escape_debug()
                    ),
                )
                .help("the push was made with a tool that writes trees git would not; rewrite the commit with git itself"),
            );
        }
    }
    None
}

/// A name git refuses in a tree: empty, `.`, `..`, `.git` in any case, with `/` or NUL, or not
/// UTF-8 (U+FFFD in its text).
///
/// Called for every entry of every directory a push changed (2,000 times for a one-task change
/// in a directory of 2,000 tasks): one pass over the bytes.
fn bad_name(name: &str) -> bool {
    matches!(name, "" | "." | "..")
        || name.eq_ignore_ascii_case(".git")
        || name.bytes().any(|b| b == b'/' || b == 0)
        || (!name.is_ascii() && name.contains('\u{fffd}'))
}

/// Names that look like an attempt at `runtask.yml`.
fn near_miss(name: &str) -> bool {
    if name == FORMULA {
        return false;
    }
    let lower = name.to_lowercase();
    let Some(stem) = lower
        .strip_suffix(".yml")
        .or_else(|| lower.strip_suffix(".yaml"))
    else {
        return false;
    };
    matches!(
        stem,
        "runtask"
            | "task"
            | "run_task"
            | "run-task"
            | "runtasks"
            | "runtest"
            | "run_test"
            | "run-test"
            | "runtests"
            | "formula"
    ) || did_you_mean(stem, &["runtask"]).is_some()
}

/// Whether a near-miss file is a task formula: a YAML mapping with the formula's own top-level
/// keys (`actions`, or libtaskotron's older `task`, beside `name`, `input`...). Another tool's
/// YAML (a Concourse `ci/task.yml`) is none of taskhook's business.
fn looks_like_formula(bytes: &[u8]) -> bool {
    let Ok(root) = crate::validate::yaml::parse(bytes, &crate::config::Limits::default()) else {
        return false;
    };
    let Some(entries) = root.as_map() else {
        return false;
    };
    let has = |k: &str| entries.iter().any(|(key, _)| key.scalar_text() == Some(k));
    (has("actions") || has("task"))
        && [
            "name",
            "desc",
            "maintainer",
            "input",
            "environment",
            "namespace",
        ]
        .iter()
        .any(|k| has(k))
}

pub fn discover<S: Source>(
    source: &S,
    bounds: Bounds,
) -> Result<Discovery<S::Dir, S::Blob>, SourceError> {
    discover_since(source, bounds, None)
}

/// Discovery that skips the subtrees `baseline` already describes.
pub fn discover_since<S: Source>(
    source: &S,
    bounds: Bounds,
    baseline: Option<&Baseline<S::Dir>>,
) -> Result<Discovery<S::Dir, S::Blob>, SourceError> {
    let mut walk = Walk {
        source,
        bounds,
        tasks: Vec::new(),
        diagnostics: Vec::new(),
        stopped_at_depth: Vec::new(),
        over_limit: false,
        entries_seen: 0,
        reused: Vec::new(),
        reused_paths: baseline.is_none_or(|b| b.reused_paths),
        replaced: Vec::new(),
        old_entries_seen: 0,
        baseline_lost: false,
    };
    let old = baseline.map(|b| Old {
        dir: b.root.clone(),
        enclosing: None,
    });
    walk.dir(source.root(), old, String::new(), 0, None)?;
    if !walk.stopped_at_depth.is_empty() {
        let first = walk.stopped_at_depth[0].clone();
        walk.diagnostics.push(
            Diagnostic::warning(
                "depth-limit",
                first.clone(),
                format!(
                    "task discovery stops {} levels deep; {} directories below that were not searched (first: `{first}`)",
                    bounds.max_depth,
                    walk.stopped_at_depth.len()
                ),
            )
            .help("move tasks higher up, or raise `taskhook.maxDepth` on the server"),
        );
    }
    Ok(Discovery {
        tasks: walk.tasks,
        diagnostics: walk.diagnostics,
        reused: walk.reused,
        replaced: walk.replaced,
        baseline_lost: walk.baseline_lost || (baseline.is_some() && walk.over_limit),
    })
}

/// The baseline's directory at the path being walked, and the task that enclosed it there.
struct Old<D> {
    dir: D,
    enclosing: Option<String>,
}

struct Walk<'s, S: Source> {
    source: &'s S,
    bounds: Bounds,
    tasks: Vec<Found<S::Dir, S::Blob>>,
    diagnostics: Vec<Diagnostic>,
    stopped_at_depth: Vec<String>,
    over_limit: bool,
    /// Directory entries listed so far: bounds the walk by the work done, even when a few tree
    /// objects repeat one subtree under many names.
    entries_seen: usize,
    reused: Vec<String>,
    /// Whether `reused` is wanted (see [`Baseline::reused_paths`]).
    reused_paths: bool,
    replaced: Vec<String>,
    /// Baseline entries listed to find the tasks under removed directories.
    old_entries_seen: usize,
    baseline_lost: bool,
}

impl<S: Source> Walk<'_, S> {
    /// One directory: reuse it whole if unchanged, else list it, bound the work, note a task or
    /// near-miss formulas here, and go down into its subdirectories.
    fn dir(
        &mut self,
        dir: S::Dir,
        old: Option<Old<S::Dir>>,
        path: String,
        depth: usize,
        enclosing: Option<&str>,
    ) -> Result<(), SourceError> {
        if self.over_limit {
            return Ok(());
        }
        // A directory identical to the baseline's, under the same enclosing task, is taken from
        // the baseline's manifest without being walked.
        if let Some(o) = &old {
            if self.source.same_tree(&dir, &o.dir) && o.enclosing.as_deref() == enclosing {
                self.reused.push(path);
                return Ok(());
            }
        }
        let task_path = if path.is_empty() {
            ".".to_string()
        } else {
            path.clone()
        };
        if let Some(o) = old.as_ref().filter(|_| depth < self.bounds.max_depth) {
            let name_ok = |name: &str| !bad_name(name);
            if let Some(pair) =
                self.source
                    .list_pair(&dir, &o.dir, self.reused_paths, FORMULA, &name_ok)?
            {
                // Only when the same subdirectories sit under the same enclosing task as
                // before, so that all of them are taken whole, as `descend` would take them.
                let old_enclosing = if pair.old_has_formula {
                    Some(task_path.clone())
                } else {
                    o.enclosing.clone()
                };
                let is_task = pair.changed.iter().any(|e| e.name == FORMULA);
                let new_enclosing = if is_task {
                    Some(task_path.as_str())
                } else {
                    enclosing
                };
                if old_enclosing.as_deref() == new_enclosing {
                    return self.dir_against(
                        dir,
                        pair,
                        old_enclosing,
                        path,
                        task_path,
                        depth,
                        enclosing,
                    );
                }
            }
        }
        let old_dirs = self.old_side(old, &task_path)?;
        let entries = self.source.list(&dir)?;
        if !self.count_entries(entries.len(), &path) {
            return Ok(());
        }
        if let Some(d) = bad_entries(&entries, &path) {
            self.diagnostics.push(d);
        }
        let Some(is_task) =
            self.task_or_near_misses(&dir, &entries, &task_path, &path, enclosing)?
        else {
            return Ok(());
        };
        let enclosing = if is_task {
            Some(task_path.as_str())
        } else {
            enclosing
        };
        self.descend(entries, old_dirs, &path, depth, enclosing)
    }

    /// [`Walk::dir`] for a directory that changed since the baseline, listed against the
    /// baseline's ([`Source::list_pair`]): the same steps in the same order, with the
    /// subdirectories that did not change taken whole without being listed one by one. In a
    /// directory of 2,000 tasks where one changed, that is 2,000 names neither copied nor
    /// compared twice.
    #[allow(clippy::too_many_arguments)]
    fn dir_against(
        &mut self,
        dir: S::Dir,
        pair: super::source::Pair<S::Dir, S::Blob>,
        old_enclosing: Option<String>,
        path: String,
        task_path: String,
        depth: usize,
        enclosing: Option<&str>,
    ) -> Result<(), SourceError> {
        if pair.old_has_formula {
            self.replaced.push(task_path.clone());
        }
        if !self.count_entries(pair.changed.len() + pair.same, &path) {
            return Ok(());
        }
        // `list_pair` gave none of what `bad_entries` reports.
        let Some(is_task) =
            self.task_or_near_misses(&dir, &pair.changed, &task_path, &path, enclosing)?
        else {
            return Ok(());
        };
        let enclosing = if is_task {
            Some(task_path.as_str())
        } else {
            enclosing
        };
        if self.reused_paths {
            for name in pair.same_names.iter().filter(|n| !n.starts_with('.')) {
                self.reused.push(if path.is_empty() {
                    name.clone()
                } else {
                    format!("{path}/{name}")
                });
            }
        }
        let old = OldDirs {
            enclosing: old_enclosing,
            dirs: pair.old_dirs,
        };
        self.descend(pair.changed, old, &path, depth, enclosing)
    }

    /// Whether the directory listed as `entries` is a task (recorded), or else its near-miss
    /// formula names (reported); `None` once over the task limit.
    fn task_or_near_misses(
        &mut self,
        dir: &S::Dir,
        entries: &[Entry<S::Dir, S::Blob>],
        task_path: &str,
        path: &str,
        enclosing: Option<&str>,
    ) -> Result<Option<bool>, SourceError> {
        match entries.iter().find(|e| e.name == FORMULA) {
            Some(entry) => Ok(self
                .task_here(dir, entry, task_path, enclosing)
                .then_some(true)),
            None => {
                self.near_misses(entries, path)?;
                Ok(Some(false))
            }
        }
    }

    /// Lists the baseline's directory at a path this walk enters: a task there is replaced by
    /// whatever this walk finds, and its subdirectories are returned in git's order, with the
    /// task that enclosed them in the baseline.
    fn old_side(
        &mut self,
        old: Option<Old<S::Dir>>,
        task_path: &str,
    ) -> Result<OldDirs<S::Dir>, SourceError> {
        let Some(old) = old else {
            return Ok(OldDirs {
                enclosing: None,
                dirs: Vec::new(),
            });
        };
        let entries = self.source.list(&old.dir)?;
        let enclosing = if entries.iter().any(|e| e.name == FORMULA) {
            self.replaced.push(task_path.to_string());
            Some(task_path.to_string())
        } else {
            old.enclosing
        };
        let dirs = entries
            .into_iter()
            .filter_map(|e| match e.kind {
                Kind::Dir(d) => Some((e.name, d)),
                _ => None,
            })
            .collect();
        Ok(OldDirs { enclosing, dirs })
    }

    /// The baseline's tasks under a directory that is gone from the walked tree: all replaced.
    /// Follows the same rules as the walk (no hidden directories, nothing below the depth
    /// limit), bounded like it; past the bound the baseline is given up.
    fn old_tasks_gone(
        &mut self,
        dir: &S::Dir,
        path: &str,
        depth: usize,
    ) -> Result<(), SourceError> {
        if self.baseline_lost {
            return Ok(());
        }
        let entries = self.source.list(dir)?;
        self.old_entries_seen += entries.len();
        if self.old_entries_seen > self.bounds.max_entries {
            self.baseline_lost = true;
            return Ok(());
        }
        if entries.iter().any(|e| e.name == FORMULA) {
            self.replaced.push(path.to_string());
        }
        if depth >= self.bounds.max_depth {
            return Ok(());
        }
        for e in entries {
            if let Kind::Dir(sub) = e.kind {
                if !e.name.starts_with('.') {
                    self.old_tasks_gone(&sub, &format!("{path}/{}", e.name), depth + 1)?;
                }
            }
        }
        Ok(())
    }

    /// Counts listed entries against the bound; `false` (with the finding) once over it.
    fn count_entries(&mut self, n: usize, path: &str) -> bool {
        self.entries_seen += n;
        if self.entries_seen > self.bounds.max_entries {
            self.over_limit = true;
            self.diagnostics.push(
                Diagnostic::error(
                    "too-many-entries",
                    if path.is_empty() { "." } else { path }.to_string(),
                    format!(
                        "the tree has more than {} directory entries within the searched depth",
                        self.bounds.max_entries
                    ),
                )
                .help("trees that repeat one subtree many times are refused; split the repository"),
            );
            return false;
        }
        true
    }

    /// Records the task in this directory; `false` once over the task limit.
    fn task_here(
        &mut self,
        dir: &S::Dir,
        entry: &Entry<S::Dir, S::Blob>,
        task_path: &str,
        enclosing: Option<&str>,
    ) -> bool {
        let task_path = task_path.to_string();
        let dir = dir.clone();
        let file = formula_path(&task_path);
        let mut diags = Vec::new();
        let formula = match &entry.kind {
            Kind::File(b) => Some(b.clone()),
            other => {
                let what = match other {
                    Kind::Symlink => "a symbolic link",
                    Kind::Submodule => "a submodule",
                    Kind::Dir(_) => "a directory",
                    _ => "not a regular file",
                };
                diags.push(
                    Diagnostic::error(
                        "formula-not-a-file",
                        file.clone(),
                        format!("`{file}` is {what}"),
                    )
                    .help("commit the formula as a regular file in the task directory")
                    .task(task_path.clone()),
                );
                None
            }
        };
        if let Some(parent) = enclosing {
            diags.push(
                Diagnostic::error(
                    "nested-task",
                    file.clone(),
                    format!("task `{task_path}` is inside task `{parent}`; tasks do not nest"),
                )
                .help(format!(
                    "move `{task_path}` out of `{parent}`, or rename one of the two formulas"
                ))
                .task(task_path.clone()),
            );
        }
        if task_path != "." {
            for component in task_path.split('/') {
                if !valid_component(component) {
                    diags.push(
                        Diagnostic::error(
                            "bad-path",
                            file.clone(),
                            format!("directory name `{component}` in task path `{task_path}` is not allowed"),
                        )
                        .help("task directories are named with letters, digits and `._+-`, starting with a letter or digit")
                        .task(task_path.clone()),
                    );
                    break;
                }
            }
        }
        if self.tasks.len() >= self.bounds.max_tasks {
            self.over_limit = true;
            self.diagnostics.push(
                Diagnostic::error(
                    "too-many-tasks",
                    file,
                    format!("more than {} tasks in one tree", self.bounds.max_tasks),
                )
                .help("split the repository, or raise `taskhook.maxTasks` on the server"),
            );
            return false;
        }
        self.tasks.push(Found {
            path: task_path.clone(),
            dir: dir.clone(),
            formula,
            diagnostics: diags,
        });
        true
    }

    /// Near-miss formula names in a directory that is not a task.
    fn near_misses(
        &mut self,
        entries: &[Entry<S::Dir, S::Blob>],
        path: &str,
    ) -> Result<(), SourceError> {
        for e in entries {
            let Kind::File(blob) = &e.kind else { continue };
            if !near_miss(&e.name) {
                continue;
            }
            let looks = match self.source.read(blob, 64 * 1024)? {
                Blob::Bytes(bytes) => looks_like_formula(&bytes),
                Blob::TooLarge(_) => false,
            };
            if !looks {
                continue;
            }
            let (file, target) = if path.is_empty() {
                (e.name.clone(), FORMULA.to_string())
            } else {
                (format!("{path}/{}", e.name), format!("{path}/{FORMULA}"))
            };
            self.diagnostics.push(
                Diagnostic::error(
                    "misnamed-formula",
                    file.clone(),
                    format!(
                        "`{}` looks like a task formula, but the runner only reads `{FORMULA}`",
                        e.name
                    ),
                )
                .help(format!("rename it: git mv {file} {target}")),
            );
        }
        Ok(())
    }

    /// Goes down into the subdirectories, one level below the depth limit only to find tasks
    /// that would never run. Each is paired with the baseline's directory of the same name (both
    /// listings are in git's order, so pairing is one merge, no map). The baseline's
    /// subdirectories left unpaired are gone: their tasks are replaced.
    fn descend(
        &mut self,
        entries: Vec<Entry<S::Dir, S::Blob>>,
        old: OldDirs<S::Dir>,
        path: &str,
        depth: usize,
        enclosing: Option<&str>,
    ) -> Result<(), SourceError> {
        let join = |name: &str| {
            if path.is_empty() {
                name.to_string()
            } else {
                format!("{path}/{name}")
            }
        };
        let mut old_dirs = old.dirs.into_iter().peekable();
        let mut gone: Vec<(String, S::Dir)> = Vec::new();
        for e in entries {
            let Kind::Dir(sub) = e.kind else { continue };
            if e.name.starts_with('.') {
                continue;
            }
            if depth >= self.bounds.max_depth {
                let sub_path = join(&e.name);
                // One look below the limit: a task there would silently never run.
                let below = self.source.list(&sub)?;
                if !self.count_entries(below.len(), &sub_path) {
                    return Ok(());
                }
                if below.iter().any(|b| b.name == FORMULA) {
                    let file = format!("{sub_path}/{FORMULA}");
                    self.diagnostics.push(
                        Diagnostic::error(
                            "too-deep",
                            file,
                            format!(
                                "task `{sub_path}` is {} directory levels deep; discovery stops at {} (`taskhook.maxDepth`), so it would never run",
                                depth + 1,
                                self.bounds.max_depth
                            ),
                        )
                        .help("move the task higher up, or ask the server's admin to raise `taskhook.maxDepth`"),
                    );
                } else {
                    self.stopped_at_depth.push(sub_path);
                }
                continue;
            }
            let mut paired = None;
            while let Some((name, _)) = old_dirs.peek() {
                match git_dir_order(name, &e.name) {
                    std::cmp::Ordering::Less => gone.extend(old_dirs.next()),
                    std::cmp::Ordering::Equal => {
                        paired = old_dirs.next().map(|(_, d)| d);
                        break;
                    }
                    std::cmp::Ordering::Greater => break,
                }
            }
            // The common case in a large directory: the same subtree as before, taken whole
            // (as `dir` would) without building its path unless that is wanted.
            if let Some(d) = &paired {
                if self.source.same_tree(&sub, d) && old.enclosing.as_deref() == enclosing {
                    if self.reused_paths {
                        self.reused.push(join(&e.name));
                    }
                    continue;
                }
            }
            let old_sub = paired.map(|dir| Old {
                dir,
                enclosing: old.enclosing.clone(),
            });
            self.dir(sub, old_sub, join(&e.name), depth + 1, enclosing)?;
            if self.over_limit {
                return Ok(());
            }
        }
        if depth < self.bounds.max_depth {
            gone.extend(old_dirs);
            gone.retain(|(name, _)| !name.starts_with('.'));
            for (name, dir) in gone {
                self.old_tasks_gone(&dir, &join(&name), depth + 1)?;
            }
        }
        Ok(())
    }
}

/// The baseline's subdirectories of a directory the walk entered, in git's order, and the task
/// that enclosed them there.
struct OldDirs<D> {
    enclosing: Option<String>,
    dirs: Vec<(String, D)>,
}

/// git's order of directory entries in a tree: names compared as if followed by `/`.
fn git_dir_order(a: &str, b: &str) -> std::cmp::Ordering {
    let a = a.bytes().chain(std::iter::once(b'/'));
    a.cmp(b.bytes().chain(std::iter::once(b'/')))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_git_refuses_in_a_tree() {
        for bad in [
            "",
            ".",
            "..",
            ".git",
            ".GIT",
            ".Git",
            "a/b",
            "a\0b",
            "x\u{fffd}y",
        ] {
            assert!(bad_name(bad), "{bad:?}");
        }
        for fine in [
            "a",
            "...",
            ".gitignore",
            "git",
            "ünï",
            "tests",
            "runtask.yml",
        ] {
            assert!(!bad_name(fine), "{fine:?}");
        }
    }

    #[test]
    fn component_rules() {
        assert!(valid_component("rpmlint"));
        assert!(valid_component("abi-check_2.0+x"));
        assert!(!valid_component(".hidden"));
        assert!(!valid_component("-dash"));
        assert!(!valid_component("with space"));
        assert!(!valid_component("ünï"));
    }

    #[test]
    fn near_misses() {
        for n in [
            "runtask.yaml",
            "Runtask.yml",
            "RUNTASK.YML",
            "task.yml",
            "runtsak.yml",
        ] {
            assert!(near_miss(n), "{n}");
        }
        for n in ["runtask.yml", "tests.yml", "README.md", "inventory.yml"] {
            assert!(!near_miss(n), "{n}");
        }
    }

    #[test]
    fn a_name_listed_twice_is_found_in_any_order() {
        use super::super::source::{Entry, Kind};
        let entries = |names: &[(&str, bool)]| -> Vec<Entry<(), ()>> {
            names
                .iter()
                .map(|(name, dir)| Entry {
                    name: name.to_string(),
                    kind: if *dir { Kind::Dir(()) } else { Kind::File(()) },
                })
                .collect()
        };
        // git's order: a directory sorts as if its name ended in `/`, so a file and a directory
        // of one name need not be neighbours.
        let twice = entries(&[("a", false), ("a-b", false), ("a", true)]);
        assert!(bad_entries(&twice, "t").is_some_and(|d| d.message.contains("lists `a` twice")));
        let adjacent = entries(&[("runtask.yml", false), ("runtask.yml", false)]);
        assert!(bad_entries(&adjacent, "t").is_some());
        let fine = entries(&[("a", false), ("a-b", false), ("b", true), ("c.yml", false)]);
        assert!(bad_entries(&fine, "t").is_none());
        let fine_unordered = entries(&[("a.txt", false), ("a", true)]);
        assert!(bad_entries(&fine_unordered, "t").is_none());
    }
}

/// The walk over git trees listed against their earlier versions ([`Source::list_pair`]) finds
/// exactly what it finds listing every directory whole.
#[cfg(test)]
mod paired {
    use super::*;
    use crate::git::{EntryKind, ObjectId, Repo};
    use crate::validate::source::{CommitTree, Listing};
    use std::cell::Cell;

    /// A git source that lists directories whole (the walk without `list_pair`), or lists
    /// pairs, counting the directories it lists whole.
    struct Counted<'r> {
        git: CommitTree<'r>,
        pairs: bool,
        whole: Cell<usize>,
    }

    impl Source for Counted<'_> {
        type Dir = ObjectId;
        type Blob = ObjectId;
        fn root(&self) -> ObjectId {
            self.git.root()
        }
        fn list(&self, dir: &ObjectId) -> Result<Listing<Self>, SourceError> {
            self.whole.set(self.whole.get() + 1);
            self.git.list(dir)
        }
        fn read(&self, blob: &ObjectId, limit: usize) -> Result<Blob, SourceError> {
            self.git.read(blob, limit)
        }
        fn tree_id(&self, dir: &ObjectId) -> Option<String> {
            self.git.tree_id(dir)
        }
        fn same_tree(&self, a: &ObjectId, b: &ObjectId) -> bool {
            self.git.same_tree(a, b)
        }
        fn list_pair(
            &self,
            dir: &ObjectId,
            old: &ObjectId,
            same_names: bool,
            formula: &str,
            name_ok: &dyn Fn(&str) -> bool,
        ) -> Result<super::super::source::Paired<Self>, SourceError> {
            if !self.pairs {
                return Ok(None);
            }
            self.git.list_pair(dir, old, same_names, formula, name_ok)
        }
    }

    type Files = Vec<(String, ObjectId)>;

    /// What a walk of `new` against `old` finds, as text, and how many directories it listed
    /// whole.
    fn walk(
        repo: &Repo,
        new: ObjectId,
        old: ObjectId,
        pairs: bool,
        reused_paths: bool,
        bounds: Bounds,
    ) -> (String, usize) {
        let source = Counted {
            git: CommitTree { repo, tree: new },
            pairs,
            whole: Cell::new(0),
        };
        let baseline = Baseline {
            root: old,
            reused_paths,
        };
        let mut found = discover_since(&source, bounds, Some(&baseline)).expect("walk");
        found.reused.sort();
        let tasks: Vec<String> = found
            .tasks
            .iter()
            .map(|t| format!("{} {} {:?} {:?}", t.path, t.dir, t.formula, t.diagnostics))
            .collect();
        let text = format!(
            "{tasks:#?}\n{:#?}\nreused {:?}\nreplaced {:?}\nlost {}",
            found.diagnostics, found.reused, found.replaced, found.baseline_lost
        );
        (text, source.whole.get())
    }

    #[test]
    fn pairs_find_what_whole_listings_find() {
        let dir = tempfile::tempdir().expect("tmp");
        let git_dir = crate::git::tests::bare_repo(dir.path(), "[core]\n\tbare = true\n");
        let repo = Repo::open(&git_dir).expect("open");
        let blob = |text: &str| repo.write_blob(text.as_bytes()).expect("blob");
        let formula = blob("actions: []\n");
        let tree = |files: &Files| repo.write_tree(files).expect("tree");
        let file = |path: &str, id: ObjectId| (path.to_string(), id);
        let mut base: Files = (0..300)
            .map(|i| file(&format!("tests/t{i:03}/runtask.yml"), formula))
            .collect();
        for extra in [
            "tests/python/runtask.yml",
            "tests/python-versions/runtask.yml",
            "tests/python.d/runtask.yml",
            "tests/.hidden/runtask.yml",
            "tests/t001/sub/runtask.yml",
            "tests/group/runtask.yml/x.txt",
            "tests/group/other/runtask.yml",
            "tests/deep/a/b/c/runtask.yml",
            "tests/deep/a/b/c/d/runtask.yml",
            "tests/x",
        ] {
            base.push(file(extra, formula));
        }
        let old = tree(&base);
        let changed = |edit: &dyn Fn(&mut Files)| {
            let mut files = base.clone();
            edit(&mut files);
            tree(&files)
        };
        let set = |path: &'static str, id: ObjectId| {
            move |files: &mut Files| {
                files.retain(|(p, _)| p != path);
                files.push(file(path, id));
            }
        };
        let other = blob("actions: [1]\n");
        let edits = [
            ("one formula", "tests/t150/runtask.yml", other),
            ("git's order", "tests/python-versions/runtask.yml", other),
            (
                "beside a directory named as the formula",
                "tests/group/other/runtask.yml",
                other,
            ),
            ("in a nested task", "tests/t001/sub/runtask.yml", other),
            ("beside a hidden directory", "tests/t002/runtask.yml", other),
            ("deep down", "tests/deep/a/b/c/d/runtask.yml", other),
            ("the parent becomes a task", "tests/runtask.yml", formula),
        ];
        let mut news: Vec<(&str, ObjectId)> = edits
            .into_iter()
            .map(|(what, path, id)| (what, changed(&set(path, id))))
            .collect();
        news.extend([
            (
                "a file becomes a directory",
                changed(&|f| {
                    f.retain(|(p, _)| p != "tests/x");
                    f.push(file("tests/x/runtask.yml", formula));
                }),
            ),
            (
                "gone and added",
                changed(&|f| {
                    f.retain(|(p, _)| {
                        !p.starts_with("tests/t005/") && !p.starts_with("tests/python/")
                    });
                    f.push(file("tests/t999/runtask.yml", formula));
                    f.push(file("tests/t150/runtask.yml", other));
                }),
            ),
        ]);
        // Trees git does not write: one name twice (a file and a directory), out of order.
        let tests = repo.entry_at(old, "tests").expect("read").expect("tests").1;
        let mut entries = repo.tree_entries(tests).expect("list");
        let at = entries
            .iter()
            .position(|(n, ..)| n == b"t007")
            .expect("t007");
        let t007 = entries[at].2;
        let raw = |entries: &[(Vec<u8>, EntryKind, ObjectId)]| {
            let entries: Vec<(&str, &[u8], ObjectId)> = entries
                .iter()
                .map(|(n, k, id)| {
                    let mode = if *k == EntryKind::Tree {
                        "40000"
                    } else {
                        "100644"
                    };
                    (mode, n.as_slice(), *id)
                })
                .collect();
            let tests = repo.write_raw_tree(&entries);
            repo.write_raw_tree(&[("40000", b"tests", tests)])
        };
        // In git's order, a file sorts right before the directory of its name.
        entries.insert(at, (b"t007".to_vec(), EntryKind::Blob, formula));
        news.push(("a file and a directory of one name", raw(&entries)));
        entries.drain(at..at + 2);
        entries.push((b"t007".to_vec(), EntryKind::Tree, t007));
        news.push(("out of order", raw(&entries)));
        let shallow = Bounds {
            max_depth: 3,
            ..Bounds::default()
        };
        for (what, new) in news {
            for reused_paths in [false, true] {
                for bounds in [Bounds::default(), shallow] {
                    let (whole, _) = walk(&repo, new, old, false, reused_paths, bounds);
                    let (paired, _) = walk(&repo, new, old, true, reused_paths, bounds);
                    assert_eq!(
                        paired, whole,
                        "{what} (reused paths: {reused_paths}, {bounds:?})"
                    );
                }
            }
        }
        // The common case lists no directory whole.
        let new = changed(&set("tests/t150/runtask.yml", other));
        assert_eq!(walk(&repo, new, old, false, false, Bounds::default()).1, 6);
        assert_eq!(walk(&repo, new, old, true, false, Bounds::default()).1, 0);
    }
}
