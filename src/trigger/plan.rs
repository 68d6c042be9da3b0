//! Turns an event and a branch manifest into jobs, each pinned to the exact commit and formula
//! digest that was validated, and explains every decision. Pure.

use serde::Serialize;
use sha2::{Digest, Sha256};

use crate::manifest::{Branch, Task};
use crate::trigger::event::Event;

/// One job for the runner. `taskname` to `git_branch` are what buildbot's trigger passed; the
/// rest pin the job to what the server validated and scheduled, and name it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct Job {
    /// Deterministic: the same event and task always give the same id (see [`job_id`]), so a
    /// redelivered event yields jobs downstream can deduplicate.
    pub id: String,
    pub taskname: String,
    pub item: String,
    pub item_type: String,
    pub arch: String,
    pub git_repo: String,
    pub git_branch: String,
    pub git_commit: String,
    pub task_path: String,
    pub formula: String,
    pub formula_sha256: String,
    /// The git tree id of the task directory at `git_commit`.
    pub tree: String,
}

impl Job {
    /// The libtaskotron command line for this job.
    /// A value that starts with `-` is attached to its option (`--item=-x`), so the runner never
    /// reads it as an option of its own.
    pub fn runtask_line(&self) -> String {
        let opt = |short: &str, long: &str, v: &str| {
            if v.starts_with('-') {
                shell_quote(&format!("--{long}={v}"))
            } else {
                format!("-{short} {}", shell_quote(v))
            }
        };
        let formula = if self.formula.starts_with('-') {
            format!("./{}", self.formula)
        } else {
            self.formula.clone()
        };
        format!(
            "runtask {} {} {} {}",
            opt("i", "item", &self.item),
            opt("t", "type", &self.item_type),
            opt("a", "arch", &self.arch),
            shell_quote(&formula)
        )
    }
}

/// The id of the job that runs `task_path` on `arch` for `item_type` `item` from commit `commit`
/// of `repo`: a UUID (RFC 9562 version 8) made of the SHA-256 of those fields.
pub fn job_id(
    item_type: &str,
    item: &str,
    repo: &str,
    commit: &str,
    task_path: &str,
    arch: &str,
) -> String {
    let mut h = Sha256::new();
    for field in [item_type, item, repo, commit, task_path, arch] {
        h.update(field.as_bytes());
        h.update([0]);
    }
    let d = h.finalize();
    let mut b = [0u8; 16];
    b.copy_from_slice(&d[..16]);
    b[6] = (b[6] & 0x0f) | 0x80;
    b[8] = (b[8] & 0x3f) | 0x80;
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut id = String::with_capacity(36);
    for (i, x) in b.iter().enumerate() {
        if matches!(i, 4 | 6 | 8 | 10) {
            id.push('-');
        }
        id.push(HEX[usize::from(x >> 4)] as char);
        id.push(HEX[usize::from(x & 0xf)] as char);
    }
    id
}

fn shell_quote(s: &str) -> String {
    if !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_./:+@#=,".contains(&b))
    {
        s.to_string()
    } else {
        format!("'{}'", s.replace('\'', r"'\''"))
    }
}

/// Jobs and the reasons behind them.
#[derive(Debug, Default)]
pub struct Plan {
    pub jobs: Vec<Job>,
    pub explain: Vec<String>,
}

/// Decides which tasks of `manifest` run for `event`. `repo_url` is the task repo's URL;
/// `event_branch` is the branch the event is about (a fallback manifest may be for another).
/// With `explain`, one line per task says why it runs or not.
pub fn plan(
    event: &Event,
    manifest: &Branch<'_>,
    repo_url: &str,
    event_branch: &str,
    explain: bool,
) -> Plan {
    let mut p = Plan::default();
    for task in &manifest.tasks {
        let label: &str = task.name.as_deref().unwrap_or(&task.path);
        match skip_reason(task, event, event_branch) {
            Some(why) => {
                if explain {
                    p.explain
                        .push(format!("  {} ({label}): skipped: {why}", task.path));
                }
            }
            None => {
                if explain {
                    p.explain.push(format!(
                        "  {} ({label}): runs for {} on {}",
                        task.path,
                        event.item_type,
                        task.arches.join(", ")
                    ));
                }
                for arch in &task.arches {
                    p.jobs.push(Job {
                        id: job_id(
                            &event.item_type,
                            &event.item,
                            repo_url,
                            &manifest.commit,
                            &task.path,
                            arch,
                        ),
                        taskname: label.to_string(),
                        item: event.item.clone(),
                        item_type: event.item_type.clone(),
                        arch: arch.to_string(),
                        git_repo: repo_url.to_string(),
                        git_branch: manifest.branch.clone(),
                        git_commit: manifest.commit.clone(),
                        task_path: task.path.to_string(),
                        formula: task.formula.to_string(),
                        formula_sha256: task
                            .formula_sha256
                            .as_deref()
                            .unwrap_or_default()
                            .to_string(),
                        tree: task.tree.as_deref().unwrap_or_default().to_string(),
                    });
                }
            }
        }
    }
    if manifest.tasks.is_empty() {
        p.explain.push("  the manifest lists no tasks".to_string());
    }
    p
}

fn skip_reason(task: &Task<'_>, event: &Event, branch: &str) -> Option<String> {
    if !task.valid {
        let errors = task.diagnostics.iter().filter(|d| d.is_error()).count();
        return Some(format!(
            "invalid ({errors} error{}; accepted under policy `warn`)",
            if errors == 1 { "" } else { "s" }
        ));
    }
    if !task.run {
        return Some("`scheduling.run` is false".to_string());
    }
    if !task.item_types.iter().any(|t| t == &event.item_type) {
        return Some(if task.item_types.is_empty() {
            "triggered by no item type".to_string()
        } else {
            format!(
                "triggered by {}, not {}",
                task.item_types.join(", "),
                event.item_type
            )
        });
    }
    if !task.branches.is_empty() && !task.branches.iter().any(|g| glob_match(g, branch)) {
        return Some(format!(
            "branch `{branch}` matches none of {}",
            task.branches.join(", ")
        ));
    }
    if task.formula_sha256.is_none() {
        return Some("the manifest has no formula digest for it".to_string());
    }
    if task.tree.is_none() {
        return Some("the manifest has no tree id for it".to_string());
    }
    None
}

/// Shell-style glob: `*`, `?` and `[...]` (with `!` or `^` to negate).
pub fn glob_match(pattern: &str, text: &str) -> bool {
    let p: Vec<char> = pattern.chars().collect();
    let t: Vec<char> = text.chars().collect();
    let (mut pi, mut ti) = (0, 0);
    let (mut star, mut mark) = (None, 0);
    while ti < t.len() {
        if pi < p.len() {
            match p[pi] {
                '*' => {
                    star = Some(pi);
                    mark = ti;
                    pi += 1;
                    continue;
                }
                '?' => {
                    pi += 1;
                    ti += 1;
                    continue;
                }
                '[' => {
                    if let Some((matched, next)) = class(&p, pi, t[ti]) {
                        if matched {
                            pi = next;
                            ti += 1;
                            continue;
                        }
                    } else if t[ti] == '[' {
                        pi += 1;
                        ti += 1;
                        continue;
                    }
                }
                c if c == t[ti] => {
                    pi += 1;
                    ti += 1;
                    continue;
                }
                _ => {}
            }
        }
        match star {
            Some(s) => {
                pi = s + 1;
                mark += 1;
                ti = mark;
            }
            None => return false,
        }
    }
    p[pi..].iter().all(|&c| c == '*')
}

/// Matches `c` against the class starting at `p[start] == '['`; returns (matched, index after).
fn class(p: &[char], start: usize, c: char) -> Option<(bool, usize)> {
    let mut i = start + 1;
    let negate = matches!(p.get(i), Some('!') | Some('^'));
    if negate {
        i += 1;
    }
    let mut matched = false;
    let mut first = true;
    while i < p.len() && (first || p[i] != ']') {
        first = false;
        if i + 2 < p.len() && p[i + 1] == '-' && p[i + 2] != ']' {
            matched |= p[i] <= c && c <= p[i + 2];
            i += 3;
        } else {
            matched |= p[i] == c;
            i += 1;
        }
    }
    if i >= p.len() {
        return None;
    }
    Some((matched != negate, i + 1))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn globs() {
        assert!(glob_match("f*", "f40"));
        assert!(!glob_match("f*", "epel9"));
        assert!(glob_match("rawhide", "rawhide"));
        assert!(glob_match("f[34]?", "f40"));
        assert!(!glob_match("f[!4]?", "f40"));
        assert!(glob_match("epel?", "epel9"));
        assert!(glob_match("*", ""));
    }
}
