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

    /// Appends the job as one line of JSON, the bytes `serde_json::to_writer` and a newline
    /// give (fields in the struct's order, the same escapes), without going through serde:
    /// `plan` writes thousands of them per event.
    pub fn write_json_line(&self, out: &mut Vec<u8>) {
        let fields: [(&str, &str); 12] = [
            ("id", &self.id),
            ("taskname", &self.taskname),
            ("item", &self.item),
            ("item_type", &self.item_type),
            ("arch", &self.arch),
            ("git_repo", &self.git_repo),
            ("git_branch", &self.git_branch),
            ("git_commit", &self.git_commit),
            ("task_path", &self.task_path),
            ("formula", &self.formula),
            ("formula_sha256", &self.formula_sha256),
            ("tree", &self.tree),
        ];
        let mut sep = b'{';
        for (key, value) in fields {
            out.push(sep);
            sep = b',';
            out.push(b'"');
            out.extend_from_slice(key.as_bytes());
            out.extend_from_slice(b"\":");
            json_string(value, out);
        }
        out.extend_from_slice(b"}\n");
    }
}

/// Appends `s` as a JSON string, escaped as serde_json escapes: `"`, `\\`, and control
/// characters below U+0020 (`\b \f \n \r \t` by name, the others as `\u00xx`).
fn json_string(s: &str, out: &mut Vec<u8>) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    out.push(b'"');
    let bytes = s.as_bytes();
    // Most values need no escape: one pass without branches says so (and vectorizes).
    let plain = bytes
        .iter()
        .fold(true, |ok, &b| ok & (b >= 0x20) & (b != b'"') & (b != b'\\'));
    if plain {
        out.extend_from_slice(bytes);
        out.push(b'"');
        return;
    }
    let mut start = 0;
    for (i, &b) in bytes.iter().enumerate() {
        let named = match b {
            b'"' => b'"',
            b'\\' => b'\\',
            0x08 => b'b',
            0x0c => b'f',
            b'\n' => b'n',
            b'\r' => b'r',
            b'\t' => b't',
            0..=0x1f => b'u',
            _ => continue,
        };
        out.extend_from_slice(&bytes[start..i]);
        out.extend_from_slice(&[b'\\', named]);
        if named == b'u' {
            out.extend_from_slice(&[
                b'0',
                b'0',
                HEX[usize::from(b >> 4)],
                HEX[usize::from(b & 0xf)],
            ]);
        }
        start = i + 1;
    }
    out.extend_from_slice(&bytes[start..]);
    out.push(b'"');
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
    job_id_after(&id_prefix(item_type, item, repo, commit), task_path, arch)
}

/// The hash of the fields every job of one event and manifest shares, for [`job_id_after`].
fn id_prefix(item_type: &str, item: &str, repo: &str, commit: &str) -> Sha256 {
    let mut h = Sha256::new();
    for field in [item_type, item, repo, commit] {
        h.update(field.as_bytes());
        h.update([0]);
    }
    h
}

/// [`job_id`] from the hash of its first four fields ([`id_prefix`]).
fn job_id_after(prefix: &Sha256, task_path: &str, arch: &str) -> String {
    let mut h = prefix.clone();
    for field in [task_path, arch] {
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
    let prefix = id_prefix(&event.item_type, &event.item, repo_url, &manifest.commit);
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
                for (i, arch) in task.arches.iter().enumerate() {
                    // A served manifest is untrusted: an arch listed twice is one job.
                    if task.arches[..i].contains(arch) {
                        continue;
                    }
                    p.jobs.push(Job {
                        id: job_id_after(&prefix, &task.path, arch),
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

    /// Every character class serde_json escapes (and some it does not), in every field.
    #[test]
    fn json_lines_are_what_serde_json_writes() {
        let mut awkward: String = (0u8..0x80).map(char::from).collect();
        awkward.push_str("é ☃ \u{2028} \u{85} 𝄞 \\\"");
        let plain = "foo-1.0-1.fc40";
        for (i, text) in [awkward.as_str(), plain, ""].into_iter().enumerate() {
            let mut values: Vec<String> = (0..12).map(|f| format!("{f}{text}")).collect();
            values[i] = text.to_string();
            let job = Job {
                id: values[0].clone(),
                taskname: values[1].clone(),
                item: values[2].clone(),
                item_type: values[3].clone(),
                arch: values[4].clone(),
                git_repo: values[5].clone(),
                git_branch: values[6].clone(),
                git_commit: values[7].clone(),
                task_path: values[8].clone(),
                formula: values[9].clone(),
                formula_sha256: values[10].clone(),
                tree: values[11].clone(),
            };
            let mut ours = Vec::new();
            job.write_json_line(&mut ours);
            let mut theirs = serde_json::to_vec(&job).expect("serializable");
            theirs.push(b'\n');
            assert_eq!(
                String::from_utf8(ours).expect("UTF-8"),
                String::from_utf8(theirs).expect("UTF-8")
            );
        }
    }

    /// A served manifest is untrusted: a task listing an arch twice still gives one job per
    /// arch (callers no longer compare the ids of one event's jobs).
    #[test]
    fn an_arch_listed_twice_is_one_job() {
        let text = format!(
            r#"{{"branch":"master","columns":["path","name","namespace","valid","run","item_types","branches","arches","formula_sha256","tree","maintainer","desc","diagnostics"],"commit":"{c}","policy":"reject","schema":4,"tasks":[["t","t","dist",true,true,["koji_build"],[],["x86_64","aarch64","x86_64"],"{d}","{c}","m","d"]],"validator":"v"}}"#,
            c = "a".repeat(40),
            d = "b".repeat(64)
        );
        let manifest = crate::manifest::parse_branch(text.as_bytes(), 1 << 20).expect("manifest");
        let event = Event {
            topic: "t".into(),
            item_type: "koji_build".into(),
            item: "foo-1-1.fc40".into(),
            name: None,
            namespace: None,
            branch: Some("master".into()),
            commit: None,
        };
        let p = plan(&event, &manifest, "git://h/r", "master", false);
        let arches: Vec<&str> = p.jobs.iter().map(|j| j.arch.as_str()).collect();
        assert_eq!(arches, ["x86_64", "aarch64"]);
    }

    #[test]
    fn job_ids_from_a_shared_prefix_are_the_ids_of_all_fields() {
        let prefix = id_prefix("koji_build", "foo-1-1.fc40", "git://h/r", "ab12");
        assert_eq!(
            job_id_after(&prefix, "tests/a", "x86_64"),
            job_id(
                "koji_build",
                "foo-1-1.fc40",
                "git://h/r",
                "ab12",
                "tests/a",
                "x86_64"
            )
        );
        // Ids never change between releases (consumers deduplicate on them): this one is the
        // SHA-256 of the six fields, each ended by a NUL, as Python's hashlib computes it.
        assert_eq!(
            job_id_after(&prefix, "tests/a", "x86_64"),
            "626d7ecf-b467-8f57-b152-7c6143045439"
        );
    }
}
