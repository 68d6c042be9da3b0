//! The server hooks. `pre-receive` (and `update`, per ref) validate pushed branches and only
//! read; `post-receive` writes the manifests of the branches that moved. Output goes to stderr,
//! which git shows the pusher as `remote:` lines.

use std::io::Write;
use std::time::Instant;

use crate::config::{Config, Policy, VerdictHook};
use crate::error::{exit, short, trace, CmdResult, Failure};
use crate::git::{ObjectId, Repo};
use crate::manifest::reuse::{self, Prior};
use crate::manifest::store::{self, Applied, Stored};
use crate::server::handover;
use crate::validate::check::Report;
use crate::validate::render::render_report_at_most;

/// One line of git's hook input: `<old> <new> <ref>`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RefUpdate {
    pub old: String,
    pub new: String,
    pub name: String,
}

impl RefUpdate {
    pub fn is_delete(&self) -> bool {
        is_zero(&self.new)
    }

    pub fn branch(&self) -> Option<&str> {
        self.name.strip_prefix("refs/heads/")
    }
}

fn is_zero(id: &str) -> bool {
    id.bytes().all(|b| b == b'0')
}

/// Parses git's hook input; a malformed line is an error, never ignored.
pub fn parse_updates(input: &str) -> Result<Vec<RefUpdate>, Failure> {
    let mut out = Vec::new();
    for line in input.lines().filter(|l| !l.trim().is_empty()) {
        let parts: Vec<&str> = line.split_whitespace().collect();
        match parts.as_slice() {
            [old, new, name] => out.push(RefUpdate {
                old: old.to_string(),
                new: new.to_string(),
                name: name.to_string(),
            }),
            _ => {
                return Err(Failure::usage(format!(
                    "unexpected hook input line: {line:?}"
                )))
            }
        }
    }
    Ok(out)
}

/// git's hook input as text. A ref name that is not UTF-8 (git allows it) becomes U+FFFD here;
/// such a branch is refused by [`validate_updates`], and other refs are ignored anyway.
fn read_stdin() -> Result<String, Failure> {
    use std::io::Read as _;
    let mut bytes = Vec::new();
    std::io::stdin()
        .lock()
        .read_to_end(&mut bytes)
        .map_err(|e| Failure::usage(format!("cannot read hook input: {e}")))?;
    Ok(String::from_utf8_lossy(&bytes).into_owned())
}

/// The server's settings for a hook. A bad setting rejects pushes, so the pusher is told it is
/// the server's configuration, not their push; unknown keys are warned about.
fn server_config(repo: &Repo, out: &mut impl Write) -> Result<Config, Failure> {
    for w in Config::unknown_keys(repo) {
        let _ = writeln!(out, "taskhook: warning: server configuration: {w}");
    }
    Config::load(repo).map_err(|e| {
        Failure::usage(format!(
            "the server's taskhook configuration is invalid ({e}); this is not a problem with your push: contact the server admin"
        ))
    })
}

/// Reads the formula texts a rendering needs that the verdict did not load (findings of reused
/// tasks), from the pushed tree.
fn load_sources(repo: &Repo, commit: ObjectId, report: &mut Report) {
    let wanted: Vec<String> = report
        .all_diagnostics()
        .into_iter()
        .filter(|d| d.line.is_some() && !report.sources.contains_key(&d.file))
        .map(|d| d.file)
        .collect();
    let Ok(tree) = repo.commit_tree(commit) else {
        return;
    };
    for file in wanted {
        if let Ok(Some(bytes)) = repo.read_path(tree, &file) {
            report
                .sources
                .insert(file, String::from_utf8_lossy(&bytes).into_owned());
        }
    }
}

/// The most findings a push lists for the pusher, over all its branches (each formula has at
/// most [`crate::validate::formula::MAX_FINDINGS`]): past them, each branch's report counts
/// what it leaves out, and its summary line still counts every finding. A push of hundreds of
/// broken formulas would otherwise print tens of thousands of lines.
const MAX_LISTED: usize = 200;

/// Where the hooks' messages go: stderr, which git relays to the pusher as `remote:` lines,
/// waking itself and the client for every write. stderr is unbuffered, so a formatted line
/// would go out in pieces (ten writes for pre-receive's summary line); this writes whole lines.
/// stderr is locked for each line only: a hook holding the lock while it works would block
/// any of its threads that writes to stderr (`TASKHOOK_TRACE`, a warning) for good.
fn pusher_output() -> std::io::LineWriter<std::io::Stderr> {
    std::io::LineWriter::new(std::io::stderr())
}

/// `taskhook hook pre-receive`: validate every pushed branch; read only.
pub fn pre_receive() -> CmdResult {
    let input = read_stdin()?;
    let updates = parse_updates(&input)?;
    trace::step("pre-receive: input read");
    let repo = Repo::open_for_hook()?;
    trace::step("repository opened");
    let mut err = pusher_output();
    let config = server_config(&repo, &mut err)?;
    trace::step("configuration read");
    // With the update hook giving per-ref verdicts, pre-receive only guards the manifest ref.
    let branches = config.verdict_hook == VerdictHook::PreReceive;
    let verdict = validate_updates(
        &repo,
        &config,
        &updates.iter().collect::<Vec<_>>(),
        branches,
        &mut err,
    )?;
    Ok(verdict)
}

/// `taskhook hook update <ref> <old> <new>`: the same verdict for one ref.
pub fn update(args: &[String]) -> CmdResult {
    let [name, old, new] = args else {
        return Err(Failure::usage("the update hook takes <ref> <old> <new>"));
    };
    let u = RefUpdate {
        old: old.clone(),
        new: new.clone(),
        name: name.clone(),
    };
    let repo = Repo::open_for_hook()?;
    let mut err = pusher_output();
    let config = server_config(&repo, &mut err)?;
    validate_updates(&repo, &config, &[&u], true, &mut err)
}

fn validate_updates(
    repo: &Repo,
    config: &Config,
    updates: &[&RefUpdate],
    check_branches: bool,
    out: &mut impl Write,
) -> CmdResult {
    let deadline = Instant::now() + config.time_budget;
    let mut rejected = false;
    for u in updates
        .iter()
        .filter(|u| collides(&u.name, &config.manifest_ref))
    {
        let _ = writeln!(
            out,
            "taskhook: {} is written by the server's post-receive hook only; pushes to it, or to refs in its way ({}/..., its parent directories), are rejected",
            u.name.escape_debug(),
            config.manifest_ref
        );
        rejected = true;
    }
    for u in updates
        .iter()
        .filter(|u| !u.is_delete() && replaces(&u.name))
    {
        let _ = writeln!(
            out,
            "taskhook: {}: replace refs are not accepted: git would serve the replacement (to `git archive`, to clones that honour them) in place of the object the hooks validated, a formula or a manifest; a server admin can create one on the server if it is really needed",
            u.name.escape_debug()
        );
        rejected = true;
    }
    for u in updates
        .iter()
        .filter(|u| u.branch().is_some() && u.name.contains('\u{fffd}'))
    {
        let _ = writeln!(
            out,
            "taskhook: {}: branch names must be UTF-8 (a manifest is stored under the branch's name); rename the branch",
            u.name.escape_debug()
        );
        rejected = true;
    }
    let branches: Vec<&RefUpdate> = updates
        .iter()
        .copied()
        .filter(|u| {
            check_branches && u.branch().is_some() && !u.is_delete() && !u.name.contains('\u{fffd}')
        })
        .collect();
    if branches.is_empty() {
        return Ok(if rejected { exit::INVALID } else { exit::OK });
    }
    let snap = store::snapshot(repo, config).ok();
    trace::step("manifest index read");
    let mut errors_total = 0;
    let mut budget_ran_out = false;
    // Findings the pusher is shown, over all the pushed branches.
    let mut room = MAX_LISTED;
    // The verdicts post-receive may take over, once the push is accepted.
    let mut handing = Vec::new();
    // For taskhook.maxBranches: the pushed branches with tasks (or findings), and the others.
    let mut with_tasks = Vec::new();
    let mut without: Vec<&str> = updates
        .iter()
        .filter(|u| u.is_delete())
        .filter_map(|u| u.branch())
        .collect();
    for u in &branches {
        let commit = ObjectId::from_hex(u.new.as_bytes())
            .map_err(|_| Failure::usage(format!("bad object id {} for {}", u.new, u.name)))?;
        let branch = u.branch().unwrap_or_default();
        let prior = snap
            .as_ref()
            .and_then(|s| reuse::prior_for(repo, config, s, branch, &u.new));
        if prior.is_some() {
            // The large trees the last push to the branch read: most are this one's baseline.
            repo.offer_trees(handover::trees(repo, branch));
        }
        trace::step("baseline state read");
        let mut report = reuse::verdict(repo, config, commit, prior.as_ref(), Some(deadline))?;
        trace::step("verdict");
        let trees = repo.take_read_trees();
        if let Some(snap) = &snap {
            let key = handover::key(config, branch, &commit, snap.commit.as_ref());
            let blob = || prior.as_ref().and_then(|p| p.branch_blob(repo));
            handing.extend(handover::prepare(branch, &key, &report, snap, blob, trees));
        }
        let diags = report.all_diagnostics();
        if report.lists_nothing() {
            without.push(branch);
        } else {
            with_tasks.push(branch);
        }
        errors_total += diags.iter().filter(|d| d.is_error()).count();
        budget_ran_out |= diags.iter().any(|d| d.code == "time-budget");
        if diags.is_empty() {
            let n = report.task_count();
            if n == 0 {
                // Most dist-git repositories have no tasks: their pushes get no taskhook noise.
                continue;
            }
            let _ = writeln!(
                out,
                "taskhook: {}: {n} task{} ok ({} checked, {} unchanged)",
                u.name,
                if n == 1 { "" } else { "s" },
                report.parsed,
                n - report.parsed
            );
            continue;
        }
        load_sources(repo, commit, &mut report);
        let _ = writeln!(out, "taskhook: {} at {}:", u.name, short(&u.new));
        let (text, listed) = render_report_at_most(&report, false, room);
        room -= listed;
        let _ = write!(out, "{text}");
    }
    let over = snap
        .as_ref()
        .and_then(|snap| store::over_branch_limit(repo, config, snap, &with_tasks, &without));
    if let Some(over) = over {
        // The server's capacity, not a verdict on formulas: refused under either policy.
        let _ = writeln!(out, "taskhook: push rejected: {over}");
        rejected = true;
    }
    if errors_total > 0 {
        match config.policy {
            Policy::Reject => {
                let _ = writeln!(
                    out,
                    "taskhook: push rejected: {errors_total} error{} in task formulas (policy `reject`)",
                    if errors_total == 1 { "" } else { "s" }
                );
                if budget_ran_out {
                    let _ = writeln!(
                        out,
                        "taskhook: the server's time budget (`taskhook.timeBudget`, {} ms) ran out before every task was checked; push fewer changed tasks at once, or ask the server admin to raise it",
                        config.time_budget.as_millis()
                    );
                } else {
                    let _ = writeln!(
                        out,
                        "taskhook: to see the same verdict before pushing, run `taskhook check` in your checkout"
                    );
                }
                rejected = true;
            }
            Policy::Warn => {
                let _ = writeln!(
                    out,
                    "taskhook: accepted with {errors_total} error{} (policy `warn`): invalid tasks are listed in the manifest and never scheduled",
                    if errors_total == 1 { "" } else { "s" }
                );
            }
        }
    }
    if !rejected {
        handover::give(repo, &handing);
        trace::step("verdicts handed over");
    }
    Ok(if rejected { exit::INVALID } else { exit::OK })
}

/// Computes the stored manifest of `branch` at `commit`, reusing what `prior` knows.
pub fn branch_manifest(
    repo: &Repo,
    config: &Config,
    prior: Option<&Prior>,
    branch: &str,
    commit: ObjectId,
    handed: Option<handover::Handed>,
    deadline: Option<Instant>,
) -> Result<Stored, Failure> {
    // A handed-over verdict was computed against the branch file pre-receive names.
    let stored = match &handed {
        Some(h) => h.prior_blob(),
        None => prior.and_then(|p| p.branch_blob(repo)),
    }
    .map(|id| (repo.object_dirs(), id));
    let read = |(dirs, id): (crate::git::ObjectDirs, ObjectId)| {
        dirs.read_previous(id, crate::manifest::MAX_MANIFEST_BYTES as u64)
    };
    let (report, previous) = match handed {
        // pre-receive's verdict on this very commit and baseline (see `handover`).
        Some(handed) => (
            Ok(handed.report),
            stored.and_then(|s| read(s).ok().flatten()),
        ),
        // The stored branch file (hundreds of KB for thousands of tasks) is read on another
        // thread while this one walks the tree.
        None => std::thread::scope(|s| {
            let reading = stored.map(|stored| s.spawn(move || read(stored)));
            let report = reuse::verdict(repo, config, commit, prior, deadline);
            trace::step("verdict");
            let previous = reading
                .and_then(|r| r.join().ok())
                .and_then(|r| r.ok().flatten());
            (report, previous)
        }),
    };
    let report = report?;
    let reuses = report.reused_count > 0 || !report.replaced.is_empty();
    trace::step("baseline branch file read");
    // The new file is made out of the stored one's buffer, edited where the push changed it.
    let made = match previous.filter(|_| reuses) {
        Some(previous) => {
            let (stored, from) = previous.into_buffer();
            Stored::from_report_in(branch, commit, &report, config, stored, from)
        }
        None => Stored::from_report(branch, commit, &report, config, None),
    };
    let stored = match made {
        Some(m) => m,
        None => {
            // The stored branch file does not hold the lines its state promised (edited by
            // hand, or written by another version): check the whole tree, and say so.
            eprintln!(
                "taskhook: warning: the stored manifest of {} did not match its state file; checked every task",
                branch.escape_debug()
            );
            let report = reuse::verdict(repo, config, commit, None, deadline)?;
            Stored::from_report(branch, commit, &report, config, None).ok_or_else(|| {
                Failure::usage(format!("cannot assemble the manifest of {branch}"))
            })?
        }
    };
    Ok(stored)
}

/// `taskhook hook post-receive`: write the manifests of the branches that moved.
pub fn post_receive() -> CmdResult {
    let input = read_stdin()?;
    let updates = parse_updates(&input)?;
    let mut err = pusher_output();
    match write_manifests(&updates) {
        Ok(Some(line)) => {
            let _ = writeln!(err, "{line}");
            Ok(exit::OK)
        }
        Ok(None) => Ok(exit::OK),
        Err(f) => {
            let _ = writeln!(
                err,
                "taskhook: warning: the schedule manifest was not updated: {}\ntaskhook: the previous manifest is intact; the next push or `taskhook manifest rebuild` repairs it",
                f.message
            );
            if let Some(hint) = refs_in_the_way() {
                let _ = writeln!(err, "taskhook: {hint}");
            }
            Ok(exit::USAGE)
        }
    }
}

fn write_manifests(updates: &[RefUpdate]) -> Result<Option<String>, Failure> {
    let branches: Vec<&RefUpdate> = updates
        .iter()
        .filter(|u| u.branch().is_some() && !u.name.contains('\u{fffd}'))
        .collect();
    if branches.is_empty() {
        return Ok(None);
    }
    trace::step("post-receive: input read");
    let repo = Repo::open_for_hook()?;
    trace::step("repository opened");
    let config = server_config(&repo, &mut std::io::sink())?;
    trace::step("configuration read");
    // pre-receive gave the verdict within the time budget; post-receive records it without a
    // budget of its own, so a slower moment here never turns a task pre-receive accepted into
    // an unchecked one. Its work stays bounded by the walk's and the YAML reader's limits.
    let deadline: Option<Instant> = None;
    // The verdicts pre-receive handed over, for the stored manifest the ref names now.
    let manifest = repo.ref_target(&config.manifest_ref).ok();
    let mut pushed = Vec::new();
    for u in &branches {
        let branch = u.branch().unwrap_or_default().to_string();
        if u.is_delete() {
            pushed.push((branch, None));
            continue;
        }
        let commit = ObjectId::from_hex(u.new.as_bytes())
            .map_err(|_| Failure::usage(format!("bad object id {} for {}", u.new, u.name)))?;
        let handed = manifest.as_ref().and_then(|m| {
            handover::take(
                &repo,
                &branch,
                &handover::key(&config, &branch, &commit, m.as_ref()),
            )
        });
        pushed.push((branch, Some((u, commit, handed))));
    }
    if pushed
        .iter()
        .any(|(_, p)| p.as_ref().is_some_and(|p| p.2.is_some()))
    {
        trace::step("verdict taken over from pre-receive");
    }
    // The stored manifest as pre-receive read it, when every pushed branch's verdict came from
    // the same one; else read again.
    let mut handed = pushed
        .iter()
        .filter_map(|(_, p)| p.as_ref().map(|p| p.2.as_ref()));
    let handed_tree = match (handed.next(), manifest) {
        (Some(Some(first)), Some(commit))
            if handed.all(|h| h.is_some_and(|h| h.same_snapshot(first))) =>
        {
            first.manifest_tree(commit).map(|tree| (commit, tree))
        }
        _ => None,
    };
    let snap = match handed_tree {
        Some((commit, tree)) => store::snapshot_at(&repo, &config, commit, tree)?,
        None => store::snapshot(&repo, &config)?,
    };
    trace::step("manifest index read");
    let mut changes = Vec::new();
    for (branch, p) in pushed {
        let Some((u, commit, handed)) = p else {
            changes.push((branch, None));
            continue;
        };
        let prior = match handed {
            Some(_) => None,
            None => {
                let prior = reuse::prior_for(&repo, &config, &snap, &branch, &u.new);
                trace::step("baseline state read");
                prior
            }
        };
        let m = branch_manifest(
            &repo,
            &config,
            prior.as_ref(),
            &branch,
            commit,
            handed,
            deadline,
        )?;
        trace::step("branch manifest assembled");
        changes.push((branch, Some(m)));
    }
    let names: Vec<&str> = changes.iter().map(|(b, _)| b.as_str()).collect();
    let message = audit_message(&names, &branches);
    // Repositories without tasks get no noise: nothing is said about empty manifests.
    let anything = changes
        .iter()
        .any(|(_, m)| m.as_ref().is_none_or(|m| !m.empty));
    let r = store::apply_on(&repo, &config, snap, &changes, &message)?;
    trace::step("manifest written");
    Ok(match r {
        Applied::Committed(..) if !anything => None,
        Applied::Committed(_, left_out) if left_out.len() == names.len() => None,
        Applied::Committed(id, left_out) => Some(format!(
            "taskhook: schedule manifest updated for {} ({} at {})",
            store::some_names(
                &names
                    .iter()
                    .filter(|n| !left_out.iter().any(|l| l == *n))
                    .collect::<Vec<_>>()
            ),
            config.manifest_ref,
            short(&id.to_string())
        )),
        Applied::Unchanged(_) => None,
    })
}

/// Refs that stand where the manifest ref must go (created before taskhook guarded them), and
/// the command that removes them.
fn refs_in_the_way() -> Option<String> {
    let repo = Repo::open_for_hook().ok()?;
    let config = Config::load(&repo).ok()?;
    let names: Vec<String> = repo
        .ref_names()
        .ok()?
        .into_iter()
        .filter(|n| n != &config.manifest_ref && collides(n, &config.manifest_ref))
        .collect();
    (!names.is_empty()).then(|| {
        format!(
            "these refs are in the way of {}; the server admin can delete them: {}",
            config.manifest_ref,
            names
                .iter()
                .map(|n| format!("git update-ref -d {n}"))
                .collect::<Vec<_>>()
                .join("; ")
        )
    })
}

/// Whether ref `name` is the manifest ref, or would stand in its way in the ref namespace
/// (`refs/meta/tasks/x` below it, `refs/meta` above it).
pub fn collides(name: &str, manifest_ref: &str) -> bool {
    name == manifest_ref
        || name.starts_with(&format!("{manifest_ref}/"))
        || manifest_ref.starts_with(&format!("{name}/"))
}

/// Whether ref `name` is a replace ref: one under `refs/replace/`, or under the base
/// `GIT_REPLACE_REF_BASE` names for the git serving this repository. git reads an object through
/// its replacement wherever replacements are on (they are by default): `upload-archive` serves
/// the replacement's content under the original's id, so a pushed replace ref could change the
/// formula a runner gets, or the manifest the trigger reads, without a pushed branch changing.
pub fn replaces(name: &str) -> bool {
    let under = |base: &str| {
        let base = base.trim_end_matches('/');
        !base.is_empty()
            && name
                .strip_prefix(base)
                .is_some_and(|rest| rest.starts_with('/'))
    };
    under("refs/replace")
        || std::env::var("GIT_REPLACE_REF_BASE")
            .ok()
            .is_some_and(|base| under(&base))
}

/// Who pushed, as the forge says: GitLab, Gitea/Forgejo, gitolite, Apache/http, else the
/// system user the hook runs as.
pub fn pusher() -> (String, &'static str) {
    for var in ["GL_USERNAME", "GITEA_PUSHER_NAME", "GL_USER", "REMOTE_USER"] {
        if let Some(v) = std::env::var(var).ok().filter(|v| !v.trim().is_empty()) {
            return (clean_line(&v), var);
        }
    }
    let user = std::env::var("USER")
        .or_else(|_| std::env::var("LOGNAME"))
        .unwrap_or_else(|_| "unknown".to_string());
    (clean_line(&user), "system user")
}

/// One line of text: control characters (a newline in a forged name) become `?`.
fn clean_line(s: &str) -> String {
    s.chars()
        .map(|c| if c.is_control() { '?' } else { c })
        .collect()
}

/// The manifest commit's message: the branches, who pushed, and each ref's move.
fn audit_message(names: &[&str], updates: &[&RefUpdate]) -> String {
    let (who, source) = pusher();
    let mut m = format!(
        "taskhook: update {}\n\npushed by {who} ({source})\n",
        store::some_names(names)
    );
    for u in updates {
        let what = if is_zero(&u.old) {
            " (created)"
        } else if u.is_delete() {
            " (deleted)"
        } else {
            ""
        };
        m.push_str(&format!(
            "{}: {}..{}{what}\n",
            clean_line(&u.name),
            short(&u.old),
            short(&u.new)
        ));
    }
    m
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replace_refs_are_told_from_others() {
        assert!(replaces("refs/replace/0123abcd"));
        assert!(replaces("refs/replace/x/y"));
        for other in [
            "refs/replacements/x",
            "refs/heads/refs/replace/x",
            "refs/replace",
        ] {
            assert!(!replaces(other), "{other}");
        }
    }

    #[test]
    fn parses_hook_input() {
        let u = parse_updates(&format!(
            "{} {} refs/heads/f40\n",
            "0".repeat(40),
            "a".repeat(40)
        ))
        .expect("valid");
        assert_eq!(u[0].branch(), Some("f40"));
        assert!(!u[0].is_delete());
        assert!(parse_updates("garbage\n").is_err());
    }
}
