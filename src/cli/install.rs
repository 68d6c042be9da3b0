//! `taskhook install`, `uninstall` and `doctor`: put the shims where each repository's layout
//! runs hooks, take them out again, and say whether a push really runs taskhook.

use std::path::{Path, PathBuf};

use super::{Format, LayoutArg};
use crate::config::{Config, Policy};
use crate::error::{exit, CmdResult, Failure};
use crate::git::Repo;
use crate::server::install::{
    self, binary_path, detect, hook_binary, hooks_path, install_hook, is_bare_repo, is_executable,
    shim_binary, uninstall_hook, ConfigHooks, Layout, Outcome,
};

/// What `install` was asked to do.
pub struct InstallArgs<'a> {
    pub repos: &'a [PathBuf],
    pub policy: Option<Policy>,
    pub update_hook: bool,
    pub layout: Option<LayoutArg>,
    pub bin: Option<&'a Path>,
    pub hooks_path: Option<&'a Path>,
    pub format: Format,
}

fn hooks(update: bool) -> Vec<&'static str> {
    let mut h = vec!["pre-receive", "post-receive"];
    if update {
        h.push("update");
    }
    h
}

/// Prints one result line (human) or object (JSON).
fn report(format: Format, repo: &Path, fields: serde_json::Value, human: String) {
    match format {
        Format::Human => crate::outln!("{}: {human}", repo.display()),
        Format::Json => {
            let mut v = fields;
            v["repo"] = serde_json::Value::String(repo.display().to_string());
            crate::outln!("{v}");
        }
    }
}

/// The layout to install into for `repo`'s `hook`, or why there is none.
fn layout_for(repo: &Path, hook: &str, args: &InstallArgs) -> Result<Layout, String> {
    if let Some(dir) = args.hooks_path {
        return Ok(Layout::HooksPath(dir.to_path_buf()));
    }
    if let Some((path, origin)) = hooks_path(repo) {
        return Err(format!(
            "core.hooksPath is set to {} (in {origin}): git runs the hooks there, not in this repository. \
That directory is shared by every repository that uses it; to install there anyway, run \
`taskhook install --hooks-path {} ...`, or unset core.hooksPath",
            path.display(),
            path.display()
        ));
    }
    Ok(match args.layout {
        Some(LayoutArg::Plain) => Layout::Plain,
        Some(LayoutArg::DDir) => Layout::DDir,
        Some(LayoutArg::Gitlab) => Layout::Gitlab,
        Some(LayoutArg::Pagure) => Layout::Pagure,
        Some(LayoutArg::Auto) | None => detect(repo, hook),
    })
}

pub fn run_install(args: &InstallArgs) -> CmdResult {
    // The shims call `taskhook-hook` when it sits beside the binary (it starts sooner); what
    // they call must be this release, or pushes would be judged by another one's rules.
    let exe = hook_binary(&binary_path(args.bin)?);
    same_version(&exe).map_err(|why| {
        Failure::usage(format!(
            "the hooks would run {}, {why}: put the binaries of one build side by side (or \
             name another with --bin), then install again",
            exe.display()
        ))
    })?;
    let mut manual = false;
    let mut failed = false;
    for repo in args.repos {
        if !is_bare_repo(repo) {
            failed = true;
            eprintln!(
                "taskhook: {}: not a bare git repository (no HEAD, objects/ and refs/); install goes on a server's repositories",
                repo.display()
            );
            continue;
        }
        // A repository the hooks cannot open (SHA-256 objects, a config git itself rejects)
        // would have every push rejected: nothing is installed there.
        if let Err(e) = crate::git::Repo::open(repo) {
            failed = true;
            eprintln!(
                "taskhook: {}: NOT installed: {e}; the hooks would reject every push to it",
                repo.display()
            );
            continue;
        }
        for hook in hooks(args.update_hook) {
            // git 2.54 and later run hooks from their configuration too: where one runs taskhook
            // already, a shim would have it run twice on each push.
            let configured = match install::config_hooks(repo, hook) {
                ConfigHooks::Refused(said) => {
                    eprintln!(
                        "taskhook: warning: {}: {hook}: git refuses to list the hooks it runs ({said}), so a push stops before any runs: fix git's hook configuration",
                        repo.display()
                    );
                    Vec::new()
                }
                other => other.listed(),
            };
            if let Some(h) = configured.iter().find(|h| h.runs_taskhook(hook)) {
                report(
                    args.format,
                    repo,
                    serde_json::json!({"hook": hook, "state": "configured", "config_hook": h.name, "command": h.command}),
                    format!(
                        "{hook}: run by git from its configuration (hook.{}.command); no shim added, which would run taskhook a second time",
                        h.name
                    ),
                );
                continue;
            }
            let layout = match layout_for(repo, hook, args) {
                Ok(l) => l,
                Err(why) => {
                    manual = true;
                    report(
                        args.format,
                        repo,
                        serde_json::json!({"hook": hook, "state": "not-installed", "why": why}),
                        format!("{hook}: NOT installed: {why}"),
                    );
                    continue;
                }
            };
            let outcome = install_hook(repo, &layout, hook, &exe)?;
            let place = |verb: &str, p: &Path| {
                format!(
                    "{verb} ({}, layout {}, runs {})",
                    p.display(),
                    layout.name(),
                    exe.display()
                )
            };
            let (state, path, human) = match &outcome {
                Outcome::Installed(p) => ("installed", Some(p), place("installed", p)),
                Outcome::Updated(p) => ("updated", Some(p), place("updated", p)),
                Outcome::Unchanged(p) => ("unchanged", Some(p), place("already installed", p)),
                Outcome::Manual(why) => {
                    manual = true;
                    ("not-installed", None, format!("NOT installed: {why}"))
                }
            };
            report(
                args.format,
                repo,
                serde_json::json!({
                    "hook": hook,
                    "layout": layout.name(),
                    "state": state,
                    "path": path.map(|p| p.display().to_string()),
                    "binary": path.map(|_| exe.display().to_string()),
                    "why": match &outcome { Outcome::Manual(w) => Some(w.clone()), _ => None },
                }),
                format!("{hook}: {human}"),
            );
        }
        if let Some(p) = args.policy {
            install::set_config(repo, "policy", p.as_str())?;
        }
        // With the update hook installed, it gives the per-ref verdicts and pre-receive only
        // guards the manifest ref (docs/HOOKS.md, "Which hook gives the verdict").
        install::set_config(
            repo,
            "verdictHook",
            if args.update_hook {
                "update"
            } else {
                "pre-receive"
            },
        )?;
    }
    if failed {
        return Ok(exit::USAGE);
    }
    if manual {
        eprintln!(
            "taskhook: some hooks were not installed; see above for the line to add to each, and docs/HOOKS.md"
        );
        return Ok(exit::INVALID);
    }
    Ok(exit::OK)
}

pub fn run_uninstall(repos: &[PathBuf], hooks_dir: Option<&Path>, format: Format) -> CmdResult {
    let mut failed = false;
    for repo in repos {
        if !is_bare_repo(repo) {
            failed = true;
            eprintln!("taskhook: {}: not a bare git repository", repo.display());
            continue;
        }
        let mut removed = Vec::new();
        for hook in install::ALL_HOOKS {
            removed.extend(uninstall_hook(repo, hook, hooks_dir)?);
        }
        // The manifest ref's spare file (src/git/reffile.rs), then the verdicts pre-receive
        // hands to post-receive (normally none are waiting) and the directory of both.
        let spare = repo.join(crate::git::SPARE_REF);
        match std::fs::remove_file(&spare) {
            Ok(()) => removed.push(spare),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => {
                failed = true;
                eprintln!(
                    "taskhook: {}: cannot remove {}: {e}",
                    repo.display(),
                    spare.display()
                );
            }
        }
        match crate::server::handover::remove_all(repo) {
            Ok(dir) => removed.extend(dir),
            Err(e) => {
                failed = true;
                eprintln!(
                    "taskhook: {}: cannot remove taskhook/handover: {e}",
                    repo.display()
                );
            }
        }
        let shown: Vec<String> = removed.iter().map(|p| p.display().to_string()).collect();
        report(
            format,
            repo,
            serde_json::json!({"removed": shown}),
            if shown.is_empty() {
                "nothing of taskhook's to remove".to_string()
            } else {
                format!("removed {}", shown.join(", "))
            },
        );
    }
    Ok(if failed { exit::USAGE } else { exit::OK })
}

/// One finding of `doctor`.
struct Finding {
    ok: bool,
    text: String,
}

pub fn run_doctor(repos: &[PathBuf], format: Format) -> CmdResult {
    let mut all_ok = true;
    for repo in repos {
        let findings = diagnose(repo);
        let ok = findings.iter().all(|f| f.ok);
        all_ok &= ok;
        match format {
            Format::Human => {
                crate::outln!(
                    "{}: {}",
                    repo.display(),
                    if ok {
                        "ok: a push runs taskhook's pre-receive and post-receive"
                    } else {
                        "PROBLEMS: a push may not run taskhook"
                    }
                );
                for f in &findings {
                    crate::outln!("  {} {}", if f.ok { "ok " } else { "FIX" }, f.text);
                }
            }
            Format::Json => crate::outln!(
                "{}",
                serde_json::json!({
                    "repo": repo.display().to_string(),
                    "ok": ok,
                    "findings": findings.iter().map(|f| serde_json::json!({"ok": f.ok, "text": f.text})).collect::<Vec<_>>(),
                })
            ),
        }
    }
    Ok(if all_ok { exit::OK } else { exit::INVALID })
}

fn diagnose(repo: &Path) -> Vec<Finding> {
    let mut out = Vec::new();
    let mut say = |ok: bool, text: String| out.push(Finding { ok, text });
    if !is_bare_repo(repo) {
        say(
            false,
            "not a bare git repository (no HEAD, objects/ and refs/)".into(),
        );
        return out;
    }
    let hooks_dir = hooks_path(repo);
    if let Some((path, origin)) = &hooks_dir {
        say(
            true,
            format!(
                "core.hooksPath is {} (set in {origin}): git runs hooks from there",
                path.display()
            ),
        );
    }
    for hook in ["pre-receive", "post-receive"] {
        let traditional = hook_runs(repo, hook, hooks_dir.as_ref().map(|(p, _)| p.as_path()));
        for (ok, text) in with_config_hooks(repo, hook, traditional) {
            say(ok, text);
        }
    }
    // The optional update hook: only report it when installed.
    let update = install::candidate_paths(repo, "update")
        .into_iter()
        .find(|p| p.is_file() && shim_binary(p).is_some());
    if let Some(p) = update {
        say(true, format!("update: {} (per-ref verdicts)", p.display()));
    }
    match Repo::open(repo)
        .map_err(|e| e.to_string())
        .and_then(|r| Config::load(&r).map(|c| (r, c)).map_err(|e| e.to_string()))
    {
        Ok((r, c)) => {
            say(
                true,
                format!(
                    "config: policy {}, namespaces {}, manifest ref {}, time budget {} ms",
                    c.policy.as_str(),
                    c.rules.namespaces.join(","),
                    c.manifest_ref,
                    c.time_budget.as_millis()
                ),
            );
            if r.refs_by_git() {
                say(
                    true,
                    "refs: in a reftable, which the hooks read and move by running git (a push took 15 ms more than into a files repository where measured: docs/HOOKS.md)".into(),
                );
            }
            let replacing: Vec<String> = r
                .ref_names()
                .unwrap_or_default()
                .into_iter()
                .filter(|n| crate::server::hooks::replaces(n))
                .collect();
            if !replacing.is_empty() {
                say(
                    false,
                    format!(
                        "{} replace ref{} ({}): git serves the replacement in place of the object the hooks validated (to `git archive`, to the trigger's manifest fetch); unless one is really meant, delete {}: {}",
                        replacing.len(),
                        if replacing.len() == 1 { "" } else { "s" },
                        replacing.iter().take(3).cloned().collect::<Vec<_>>().join(", "),
                        if replacing.len() == 1 { "it" } else { "them" },
                        replacing
                            .iter()
                            .take(3)
                            .map(|n| format!("git update-ref -d {n}"))
                            .collect::<Vec<_>>()
                            .join("; ")
                    ),
                );
            }
            let has_manifest = r.ref_target(&c.manifest_ref).ok().flatten().is_some();
            let has_branches = r.branches().map(|b| !b.is_empty()).unwrap_or(false);
            if has_branches && !has_manifest {
                say(
                    false,
                    format!(
                        "{} does not exist yet but the repository has branches: run `taskhook manifest rebuild {}`",
                        c.manifest_ref,
                        repo.display()
                    ),
                );
            }
        }
        Err(e) => say(
            false,
            format!("config: {e} (every push would be rejected until this is fixed)"),
        ),
    }
    out
}

/// The findings for `hook`: `hook_runs`' on the hooks directory, with those on the hooks git
/// runs from its configuration (git 2.54 and later run them before the hooks directory's own,
/// which still runs): taskhook run from there is installed as well as by a shim, and run from
/// both it runs twice on each push.
fn with_config_hooks(repo: &Path, hook: &str, traditional: (bool, String)) -> Vec<(bool, String)> {
    let (runs, text) = traditional;
    let configured = match install::config_hooks(repo, hook) {
        ConfigHooks::Listed(hooks) => hooks,
        ConfigHooks::Refused(said) => {
            return vec![
                (runs, text),
                (
                    false,
                    format!("{hook}: git refuses to list the hooks it runs ({said}), so a push stops before any runs: fix git's hook configuration"),
                ),
            ];
        }
        ConfigHooks::Unsupported => {
            // This git runs no hooks from its configuration; one set up for a newer git is
            // named.
            let mut out = vec![(runs, text)];
            for h in install::ignored_config_hooks(repo, hook)
                .iter()
                .filter(|h| h.runs_taskhook(hook))
            {
                out.push((
                    runs,
                    format!(
                        "{hook}: hook.{}.command runs taskhook, but this git runs no hooks from its configuration (git 2.54 and later do){}",
                        h.name,
                        if runs {
                            ": once git is upgraded taskhook would run twice on each push, so remove one of the two"
                        } else {
                            ""
                        }
                    ),
                ));
            }
            return out;
        }
    };
    let mut out = Vec::new();
    let mut ours = Vec::new();
    for h in &configured {
        let Some((bin, asked)) = h.taskhook() else {
            continue;
        };
        let command = h.command.as_deref().unwrap_or_default();
        if let Some(switch) = h.disabled {
            if !runs {
                out.push((
                    false,
                    format!(
                        "{hook}: hook.{}.command (`{command}`) would run taskhook, but git skips it: {} is false (set it to true, or remove it)",
                        h.name,
                        switch.setting(&h.name, hook)
                    ),
                ));
            }
        } else if asked != hook {
            out.push((
                false,
                format!(
                    "{hook}: git runs hook.{}.command (`{command}`) for {hook}, and it asks taskhook for its {asked} hook: make it `{} hook {hook}`",
                    h.name,
                    bin.display()
                ),
            ));
        } else {
            ours.push((h, bin));
        }
    }
    for (h, bin) in &ours {
        let program = install::command_program(bin);
        out.push(match program.as_deref().filter(|p| is_executable(p)) {
            Some(p) => match same_version(p) {
                Ok(()) => (
                    true,
                    format!(
                        "{hook}: git runs hook.{}.command from its configuration, which runs {}",
                        h.name,
                        p.display()
                    ),
                ),
                Err(why) => (
                    false,
                    format!(
                        "{hook}: git runs hook.{}.command from its configuration, which runs {}, {why}: make it name this release's binary",
                        h.name,
                        p.display()
                    ),
                ),
            },
            None => (
                false,
                format!(
                    "{hook}: git runs hook.{}.command from its configuration, but {} is not an executable file{}",
                    h.name,
                    bin.display(),
                    if program.is_none() { " on PATH" } else { "" }
                ),
            ),
        });
    }
    let times = ours.len() + usize::from(runs);
    if ours.is_empty() || runs {
        out.insert(0, (runs, text));
    }
    if times > 1 {
        let mut places: Vec<String> = ours
            .iter()
            .map(|(h, _)| format!("hook.{}.command", h.name))
            .collect();
        if runs {
            places.push("the hooks directory's hook".into());
        }
        out.push((
            false,
            format!(
                "{hook}: taskhook runs {} on each push ({}): keep one (`taskhook uninstall {}` removes the shims, `git config --unset-all hook.NAME.event` a configured hook)",
                if times == 2 { "twice".to_string() } else { format!("{times} times") },
                places.join(", "),
                repo.display()
            ),
        ));
    }
    out
}

/// Whether `bin` (what a shim calls: `taskhook` or `taskhook-hook`) is this release: its
/// `--version` line must end in this binary's version. A hooks binary left behind when
/// `taskhook` was upgraded would otherwise judge pushes by the old rules unnoticed. Each
/// binary is asked once per `doctor` run, and given [`VERSION_WAIT`] to answer.
fn same_version(bin: &Path) -> Result<(), String> {
    use std::collections::HashMap;
    use std::sync::{Mutex, OnceLock};
    static ASKED: OnceLock<Mutex<HashMap<PathBuf, Result<(), String>>>> = OnceLock::new();
    let asked = ASKED.get_or_init(Default::default);
    if let Some(known) = asked.lock().ok().and_then(|m| m.get(bin).cloned()) {
        return known;
    }
    let answer = ask_version(bin);
    if let Ok(mut m) = asked.lock() {
        m.insert(bin.to_path_buf(), answer.clone());
    }
    answer
}

/// How long `doctor` waits for a binary's `--version`.
const VERSION_WAIT: std::time::Duration = std::time::Duration::from_secs(5);

fn ask_version(bin: &Path) -> Result<(), String> {
    use std::io::Read as _;
    use std::process::{Command, Stdio};
    let ours = env!("CARGO_PKG_VERSION");
    let mut child = Command::new(bin)
        .arg("--version")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| format!("which does not start ({e})"))?;
    let deadline = std::time::Instant::now() + VERSION_WAIT;
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break status,
            Ok(None) if std::time::Instant::now() < deadline => {
                std::thread::sleep(std::time::Duration::from_millis(5))
            }
            _ => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(format!(
                    "which did not answer `--version` within {} s",
                    VERSION_WAIT.as_secs()
                ));
            }
        }
    };
    // A version line is short; whatever a foreign binary printed beyond that is not read.
    let mut printed = Vec::new();
    if let Some(out) = child.stdout.take() {
        let _ = out.take(256).read_to_end(&mut printed);
    }
    let line = String::from_utf8_lossy(&printed);
    let line = line.trim();
    match line.rsplit_once(' ') {
        Some((name, version)) if status.success() && name.starts_with("taskhook") => {
            if version == ours {
                Ok(())
            } else {
                Err(format!(
                    "which is version {version}, not {ours} like this taskhook"
                ))
            }
        }
        _ => Err(format!(
            "whose `--version` says {line:?}, not `taskhook {ours}` or `taskhook-hook {ours}`"
        )),
    }
}

/// Whether git (through the repository's layout) runs taskhook's `hook`, and how we know.
fn hook_runs(repo: &Path, hook: &str, hooks_dir: Option<&Path>) -> (bool, String) {
    let hook_file = match hooks_dir {
        Some(dir) => dir.join(hook),
        None => repo.join("hooks").join(hook),
    };
    let via = |shim: &Path| -> (bool, String) {
        if !is_executable(shim) {
            return (
                false,
                format!("{hook}: {} is not executable: chmod +x it", shim.display()),
            );
        }
        match shim_binary(shim) {
            Some(bin) if is_executable(&bin) => match same_version(&bin) {
                Ok(()) if hook_binary(&bin) != bin => (
                    true,
                    format!(
                        "{hook}: {} runs {}; `taskhook install` again would have it call {} beside it, in which each hook starts sooner",
                        shim.display(),
                        bin.display(),
                        install::HOOK_BINARY
                    ),
                ),
                Ok(()) => (true, format!("{hook}: {} runs {}", shim.display(), bin.display())),
                Err(why) => (
                    false,
                    format!(
                        "{hook}: {} runs {}, {why}: install both binaries of one release side by side and run `taskhook install` again",
                        shim.display(),
                        bin.display()
                    ),
                ),
            },
            Some(bin) => (
                false,
                format!(
                    "{hook}: {} calls {}, which is not an executable file: reinstall with `taskhook install --bin PATH`",
                    shim.display(),
                    bin.display()
                ),
            ),
            None => (false, format!("{hook}: {} is not a taskhook shim", shim.display())),
        }
    };
    if let Some(dir) = hooks_dir {
        return if shim_binary(&hook_file).is_some() {
            via(&hook_file)
        } else {
            (
                false,
                format!(
                    "{hook}: core.hooksPath is {}, which has no taskhook {hook}: git never runs the repository's own hooks; run `taskhook install --hooks-path {} {}`",
                    dir.display(),
                    dir.display(),
                    repo.display()
                ),
            )
        };
    }
    if shim_binary(&hook_file).is_some() {
        return via(&hook_file);
    }
    let gitlab = Layout::Gitlab.shim_path(repo, hook).unwrap_or_default();
    if repo.join("custom_hooks").is_dir() || gitlab.exists() {
        return if gitlab.exists() {
            let (ok, text) = via(&gitlab);
            (ok, format!("{text} (GitLab runs custom_hooks/{hook}.d/*)"))
        } else {
            (false, format!("{hook}: custom_hooks/ exists but has no {hook}.d/taskhook: run `taskhook install {}`", repo.display()))
        };
    }
    let d = Layout::DDir.shim_path(repo, hook).unwrap_or_default();
    if d.exists() {
        if !is_executable(&hook_file) {
            return (
                false,
                format!(
                    "{hook}: {} exists but hooks/{hook}, the dispatcher that runs hooks/{hook}.d/*, is missing or not executable (Forgejo/Gitea: resynchronize the hooks in the admin panel)",
                    d.display()
                ),
            );
        }
        return via(&d);
    }
    let pagure = Layout::Pagure.shim_path(repo, hook).unwrap_or_default();
    if pagure.exists() {
        let runner = std::fs::read_link(&hook_file).ok();
        return match runner {
            Some(t) if t.file_name().is_some_and(|n| n == "hookrunner") => {
                let target = if t.is_absolute() { t.clone() } else { repo.join("hooks").join(&t) };
                if target.exists() {
                    via(&pagure)
                } else {
                    (false, format!("{hook}: hooks/{hook} points at {}, which does not exist", t.display()))
                }
            }
            _ => match install::pagure_runner_via(&hook_file, hook) {
                Some(how) if is_executable(&hook_file) => {
                    let (ok, text) = via(&pagure);
                    (ok, format!("{text} (hooks/{hook} {how}, whose hookrunner runs it)"))
                }
                _ => (
                    false,
                    format!(
                        "{hook}: {} exists but hooks/{hook} is not pagure's hookrunner, nor runs it, so nothing runs it",
                        pagure.display()
                    ),
                ),
            },
        };
    }
    (
        false,
        format!(
            "{hook}: taskhook is not installed ({}): run `taskhook install {}`",
            match detect(repo, hook) {
                Layout::Other(why) => why,
                l => format!("layout {}", l.name()),
            },
            repo.display()
        ),
    )
}
