//! Where the hooks go. Real git servers own their hooks, so `install` detects each repository's
//! layout and puts a small shim where that layout chains hooks, never replacing the forge's own
//! files and never reporting success for a place git will not run:
//!
//! | layout | recognised by | taskhook's file |
//! | --- | --- | --- |
//! | plain git | no hook, or a taskhook shim | `hooks/<hook>` |
//! | Forgejo / Gitea | `hooks/<hook>.d/`, or the generated dispatcher `hooks/<hook>` | `hooks/<hook>.d/taskhook` |
//! | GitLab (Gitaly) | `custom_hooks/` | `custom_hooks/<hook>.d/taskhook` |
//! | Pagure | `hooks/<hook>` is a symlink to pagure's `hookrunner`, or a chain that runs it | `hooks/<hook>.taskhook` |
//! | `core.hooksPath` | git config at any level | nothing, unless `--hooks-path` (then `<path>/<hook>`) |
//! | a hook in git's config (2.54 and later) that runs taskhook's | `git hook list` | nothing: git runs taskhook already |
//! | anything else | a hook taskhook did not write | nothing: the lines to add are printed |
//!
//! Every shim is the same short script that `exec`s the binary by the path the admin gave.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::error::Failure;

/// The marker line every shim carries; `uninstall` removes only files that have it.
pub const MARKER: &str = "# taskhook-shim:";

const SHIMS: &[(&str, &str)] = &[
    ("pre-receive", include_str!("../../hooks/pre-receive")),
    ("post-receive", include_str!("../../hooks/post-receive")),
    ("update", include_str!("../../hooks/update")),
];

/// The hooks taskhook can install.
pub const ALL_HOOKS: &[&str] = &["pre-receive", "post-receive", "update"];

/// How a repository runs its hooks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Layout {
    Plain,
    /// Forgejo and Gitea: a generated `hooks/<hook>` runs every executable in `hooks/<hook>.d/`.
    DDir,
    /// GitLab's Gitaly runs `custom_hooks/<hook>.d/*`.
    Gitlab,
    /// Pagure's hookrunner runs legacy `hooks/<hook>.<name>` files after its plugins.
    Pagure,
    /// `core.hooksPath` replaces `$GIT_DIR/hooks`; shims go into that directory.
    HooksPath(PathBuf),
    /// Something taskhook does not chain into (gitolite, a hand-written dispatcher): why.
    Other(String),
}

impl Layout {
    pub fn name(&self) -> &'static str {
        match self {
            Layout::Plain => "plain",
            Layout::DDir => "d-dir",
            Layout::Gitlab => "gitlab",
            Layout::Pagure => "pagure",
            Layout::HooksPath(_) => "hooks-path",
            Layout::Other(_) => "other",
        }
    }

    /// Where taskhook's file for `hook` goes in repository `repo` under this layout.
    pub fn shim_path(&self, repo: &Path, hook: &str) -> Option<PathBuf> {
        match self {
            Layout::Plain => Some(repo.join("hooks").join(hook)),
            Layout::DDir => Some(
                repo.join("hooks")
                    .join(format!("{hook}.d"))
                    .join("taskhook"),
            ),
            Layout::Gitlab => Some(
                repo.join("custom_hooks")
                    .join(format!("{hook}.d"))
                    .join("taskhook"),
            ),
            Layout::Pagure => Some(repo.join("hooks").join(format!("{hook}.taskhook"))),
            Layout::HooksPath(dir) => Some(dir.join(hook)),
            Layout::Other(_) => None,
        }
    }
}

/// Every place any layout may have put taskhook's file for `hook` (for uninstall and doctor).
pub fn candidate_paths(repo: &Path, hook: &str) -> Vec<PathBuf> {
    [Layout::Plain, Layout::DDir, Layout::Gitlab, Layout::Pagure]
        .iter()
        .filter_map(|l| l.shim_path(repo, hook))
        .collect()
}

/// Whether `repo` is a bare repository (forges keep bare repositories).
pub fn is_bare_repo(repo: &Path) -> bool {
    repo.join("HEAD").is_file() && repo.join("objects").is_dir() && repo.join("refs").is_dir()
}

/// `core.hooksPath` as git sees it for `repo` (repository, global or system config), with the
/// file that sets it.
pub fn hooks_path(repo: &Path) -> Option<(PathBuf, String)> {
    // Not the repository a git running taskhook names in the environment; named as the git
    // directory, so that git reads its config when another user owns it (an admin installing
    // as root): found by searching, git ignores such a repository's config
    // (`safe.directory`), and a hooksPath set there would go unseen.
    let out = crate::git::git_command()
        .arg("--git-dir")
        .arg(repo)
        .args(["config", "--show-origin", "--get", "core.hooksPath"])
        .output()
        .ok()?;
    if !out.status.success() {
        return None;
    }
    let text = String::from_utf8_lossy(&out.stdout);
    let (origin, value) = text.trim_end().split_once('\t')?;
    let path = PathBuf::from(value);
    // A relative hooksPath is relative to where hooks run: the repository for a bare one.
    let path = if path.is_absolute() {
        path
    } else {
        repo.join(path)
    };
    Some((path, origin.trim_start_matches("file:").to_string()))
}

/// A hook git runs from its configuration: git 2.54 and later run `hook.<name>.command` (with
/// a shell) for each `hook.<name>.event`, before the hooks directory's own hook, which still
/// runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigHook {
    /// The `<name>` of `hook.<name>.*`.
    pub name: String,
    /// Its `hook.<name>.command`: the last one set wins, as in git.
    pub command: Option<String>,
    /// The switch that makes git skip it, if one does.
    pub disabled: Option<Disabled>,
}

/// The setting that makes git skip a configured hook.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Disabled {
    /// `hook.<name>.enabled = false`.
    Hook,
    /// `hook.<event>.enabled = false` (git 2.55): every configured hook of that event.
    Event,
}

impl Disabled {
    /// The setting, for the hook `name` of `event`.
    pub fn setting(self, name: &str, event: &str) -> String {
        match self {
            Disabled::Hook => format!("hook.{name}.enabled"),
            Disabled::Event => format!("hook.{event}.enabled"),
        }
    }
}

impl ConfigHook {
    /// The taskhook binary this hook's command starts and the hook it asks that binary to run,
    /// when it starts one: `/usr/bin/taskhook-hook hook pre-receive`, possibly after variable
    /// assignments, or a taskhook shim (as `install --hooks-path DIR` writes them), the binary
    /// it calls and the hook it stands for.
    pub fn taskhook(&self) -> Option<(PathBuf, String)> {
        let command = self.command.as_deref()?;
        taskhook_in_command(command).or_else(|| {
            let words = shell_words(command);
            let program = Path::new(words.iter().find(|w| !w.contains('='))?);
            let bin = shim_binary(program)?;
            let (hook, _) = read_shim(program).ok()?;
            Some((bin, hook))
        })
    }

    /// Whether this hook, enabled, has taskhook run `hook`.
    pub fn runs_taskhook(&self, hook: &str) -> bool {
        self.disabled.is_none() && self.taskhook().is_some_and(|(_, asked)| asked == hook)
    }
}

/// The file a hook command's program name starts: itself when it has a `/`, else the first
/// executable of that name on `PATH` (a configured hook runs with git's).
pub fn command_program(name: &Path) -> Option<PathBuf> {
    if name.components().count() > 1 {
        Some(name.to_path_buf())
    } else {
        find_on_path(&name.to_string_lossy())
    }
}

/// The taskhook binary and hook named by a hook command, when it names one.
fn taskhook_in_command(command: &str) -> Option<(PathBuf, String)> {
    let words = shell_words(command);
    words.windows(3).find_map(|w| {
        let name = Path::new(&w[0]).file_name()?;
        ((name == "taskhook" || name == HOOK_BINARY) && w[1] == "hook")
            .then(|| (PathBuf::from(&w[0]), w[2].clone()))
    })
}

/// A shell command's words as `sh` splits them (quotes and backslashes taken off), none when
/// a quote is left open; this only finds the program a hook's command names.
fn shell_words(command: &str) -> Vec<String> {
    shlex::split(command).unwrap_or_default()
}

/// What git's configuration does to a hook, as `git hook list` says.
#[derive(Debug)]
pub enum ConfigHooks {
    /// The git on `PATH` runs no hooks from its configuration (before 2.54 it has no `git hook
    /// list`: then asked once per process).
    Unsupported,
    /// The hooks it runs from its configuration, in order (the hooks directory's own runs after
    /// them).
    Listed(Vec<ConfigHook>),
    /// git refuses to list them, and so to run the hook: what it said (a `hook.<name>.event`
    /// without its `command` stops every push).
    Refused(String),
}

impl ConfigHooks {
    /// The configured hooks, none where git runs none or refuses.
    pub fn listed(self) -> Vec<ConfigHook> {
        match self {
            ConfigHooks::Listed(hooks) => hooks,
            _ => Vec::new(),
        }
    }
}

/// The hooks git's configuration gives `hook` in `repo`, as `git hook list` names them.
pub fn config_hooks(repo: &Path, hook: &str) -> ConfigHooks {
    use std::sync::atomic::{AtomicBool, Ordering};
    static NONE_HERE: AtomicBool = AtomicBool::new(false);
    if NONE_HERE.load(Ordering::Relaxed) {
        return ConfigHooks::Unsupported;
    }
    let out = crate::git::git_command()
        .arg("--git-dir")
        .arg(repo)
        .args(["hook", "list", "-z", hook])
        .env("LC_ALL", "C")
        .env("LANGUAGE", "C")
        .stdin(std::process::Stdio::null())
        .output();
    let out = match out {
        Ok(out) => out,
        Err(e) => return ConfigHooks::Refused(format!("cannot run git: {e}")),
    };
    let listed = match out.status.code() {
        Some(0) => parse_hook_list(&out.stdout),
        // "warning: no hooks found for event '...'"
        Some(1) if out.stdout.is_empty() => Vec::new(),
        // git before 2.54: "unknown subcommand: `list'", and its usage.
        Some(129) => {
            NONE_HERE.store(true, Ordering::Relaxed);
            return ConfigHooks::Unsupported;
        }
        _ => {
            let said = String::from_utf8_lossy(&out.stderr);
            let said = said.lines().find(|l| !l.trim().is_empty()).unwrap_or("");
            return ConfigHooks::Refused(said.trim().to_string());
        }
    };
    if listed.is_empty() {
        return ConfigHooks::Listed(Vec::new());
    }
    let config = hook_config(repo);
    ConfigHooks::Listed(
        listed
            .into_iter()
            .map(|(name, disabled)| ConfigHook {
                command: config.commands.get(&name).cloned(),
                name,
                disabled,
            })
            .collect(),
    )
}

/// `git hook list -z`'s entries: each configured hook's name and the switch that makes git
/// skip it. The hooks directory's own ("hook from hookdir") is left out.
fn parse_hook_list(stdout: &[u8]) -> Vec<(String, Option<Disabled>)> {
    String::from_utf8_lossy(stdout)
        .split('\0')
        .filter(|e| !e.is_empty() && *e != "hook from hookdir")
        .map(|e| {
            if let Some(name) = e.strip_prefix("disabled\t") {
                (name.to_string(), Some(Disabled::Hook))
            } else if let Some(name) = e.strip_prefix("event-disabled\t") {
                (name.to_string(), Some(Disabled::Event))
            } else {
                (e.to_string(), None)
            }
        })
        .collect()
}

/// What `repo`'s configuration says of hooks: every `hook.<name>.*` entry, in the order git
/// reads them.
fn hook_config(repo: &Path) -> HookConfig {
    let out = crate::git::git_command()
        .arg("--git-dir")
        .arg(repo)
        .args(["config", "-z", "--get-regexp", r"^hook\."])
        .stdin(std::process::Stdio::null())
        .output();
    let text = out
        .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
        .unwrap_or_default();
    HookConfig::parse(&text)
}

/// `hook.<name>.*` entries, read as git 2.54 reads them.
#[derive(Debug, Default)]
struct HookConfig {
    /// Each name's command: the last one set.
    commands: std::collections::BTreeMap<String, String>,
    /// The names each event runs, in order (an empty `event` value clears a name's events).
    events: std::collections::BTreeMap<String, Vec<String>>,
    /// The names set `enabled = false`.
    disabled: std::collections::BTreeSet<String>,
}

impl HookConfig {
    /// From `git config -z --get-regexp`'s `key\nvalue\0` entries.
    fn parse(text: &str) -> HookConfig {
        let mut c = HookConfig::default();
        for entry in text.split('\0') {
            let Some((key, value)) = entry.split_once('\n') else {
                continue;
            };
            let Some((name, subkey)) = key.strip_prefix("hook.").and_then(|k| k.rsplit_once('.'))
            else {
                continue;
            };
            match subkey {
                "command" => {
                    c.commands.insert(name.to_string(), value.to_string());
                }
                // An empty value clears the name's events; another moves the name to the end
                // of that event's list.
                "event" if value.is_empty() => {
                    for names in c.events.values_mut() {
                        names.retain(|n| n != name);
                    }
                }
                "event" => {
                    let names = c.events.entry(value.to_string()).or_default();
                    names.retain(|n| n != name);
                    names.push(name.to_string());
                }
                "enabled" => match value.to_ascii_lowercase().as_str() {
                    "false" | "no" | "off" | "0" => {
                        c.disabled.insert(name.to_string());
                    }
                    "true" | "yes" | "on" | "1" => {
                        c.disabled.remove(name);
                    }
                    _ => {}
                },
                _ => {}
            }
        }
        c
    }

    /// The hooks this configuration gives `event`, in order.
    fn hooks_for(&self, event: &str) -> Vec<ConfigHook> {
        self.events
            .get(event)
            .into_iter()
            .flatten()
            .map(|name| ConfigHook {
                name: name.clone(),
                command: self.commands.get(name).cloned(),
                disabled: self.disabled.contains(name).then_some(Disabled::Hook),
            })
            .collect()
    }
}

/// The hooks `repo`'s configuration names for `hook` although the git on `PATH` runs none from
/// its configuration (it is older than 2.54): what an admin set up for a newer git.
pub fn ignored_config_hooks(repo: &Path, hook: &str) -> Vec<ConfigHook> {
    hook_config(repo).hooks_for(hook)
}

fn is_shim(path: &Path) -> bool {
    fs::read_to_string(path).is_ok_and(|t| t.lines().any(|l| l.starts_with(MARKER)))
}

/// Whether `hooks/<hook>` is a dispatcher that runs `hooks/<hook>.d/*` (Forgejo's and Gitea's
/// generated script, or one written like it).
fn is_d_dispatcher(path: &Path, hook: &str) -> bool {
    fs::read_to_string(path).is_ok_and(|t| {
        t.contains("AUTO GENERATED BY GITEA")
            || t.contains("${hookname}.d")
            || t.contains(&format!("{hook}.d/"))
    })
}

/// Whether `hooks/<hook>` is a symlink to pagure's hookrunner.
fn is_pagure_runner(path: &Path) -> bool {
    fs::read_link(path).is_ok_and(|target| target.file_name().is_some_and(|n| n == "hookrunner"))
}

/// How `hooks/<hook>` (at `path`) hands the push to pagure's hookrunner, which then runs the
/// legacy `hooks/<hook>.<name>` files, when it is not a symlink to it: through links
/// (`pagure/hooks/files/post-receive` is one to `hookrunner`), or as a script that runs
/// pagure's `hooks/files/<hook>` or `hookrunner` among others. Fedora's dist-git has the second:
/// its `hooks/post-receive` is `/usr/share/git-core/post-receive-chained`, which feeds the push
/// to pagure's post-receive and to its own hooks with `pee`. A line of the script that is a
/// comment does not count; nor does a script larger than 64 KiB.
pub fn pagure_runner_via(path: &Path, hook: &str) -> Option<String> {
    let real = fs::canonicalize(path).ok()?;
    if real.file_name().is_some_and(|n| n == "hookrunner") {
        return Some(format!("links to {}", real.display()));
    }
    let meta = fs::metadata(&real).ok()?;
    if !meta.is_file() || meta.len() > 64 * 1024 {
        return None;
    }
    let text = fs::read_to_string(&real).ok()?;
    let names = [
        format!("pagure/hooks/files/{hook}"),
        "pagure/hooks/files/hookrunner".to_string(),
    ];
    text.lines()
        .map(str::trim_start)
        .filter(|l| !l.starts_with('#'))
        .any(|l| names.iter().any(|n| l.contains(n.as_str())))
        .then(|| format!("is {}, which runs pagure's {hook}", real.display()))
}

/// Detects how `repo` runs `hook` (ignoring `core.hooksPath`, which the caller checks).
pub fn detect(repo: &Path, hook: &str) -> Layout {
    if repo.join("custom_hooks").is_dir() {
        return Layout::Gitlab;
    }
    let path = repo.join("hooks").join(hook);
    if is_pagure_runner(&path) || pagure_runner_via(&path, hook).is_some() {
        return Layout::Pagure;
    }
    if repo.join("hooks").join(format!("{hook}.d")).is_dir() || is_d_dispatcher(&path, hook) {
        return Layout::DDir;
    }
    match fs::symlink_metadata(&path) {
        Err(_) => Layout::Plain,
        Ok(_) if is_shim(&path) => Layout::Plain,
        Ok(m) if m.file_type().is_symlink() => Layout::Other(format!(
            "hooks/{hook} is a symlink to {} (gitolite, or another hook manager)",
            fs::read_link(&path).map_or_else(|_| "?".into(), |t| t.display().to_string())
        )),
        Ok(_) => Layout::Other(format!(
            "hooks/{hook} is a hook taskhook did not write and that runs no hooks/{hook}.d/"
        )),
    }
}

/// What happened to one hook file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Installed(PathBuf),
    Updated(PathBuf),
    Unchanged(PathBuf),
    /// Nothing installed; the text says why and what to do.
    Manual(String),
}

/// The shim text for `hook`, calling the binary at `exe`.
pub fn shim(hook: &str, exe: &Path) -> Option<String> {
    let quote = |s: &str| s.replace('\'', r"'\''");
    static SYSTEM: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    let system =
        SYSTEM.get_or_init(|| system_config_path().unwrap_or_else(|| "/etc/gitconfig".to_string()));
    SHIMS
        .iter()
        .find(|(name, _)| *name == hook)
        .map(|(_, text)| {
            text.replace("@SHEBANG@", &shebang(exe))
                .replace("@TASKHOOK@", &quote(&exe.display().to_string()))
                .replace("@SYSTEMCONFIG_RAW@", system)
                .replace("@SYSTEMCONFIG@", &quote(system))
        })
}

/// What a shim's `#!` line runs: the binary itself (`EXE hook-shim`, so no shell starts on each
/// push) when the kernel can run it that way, else `/bin/sh`, which runs the shim's last lines.
/// The binary's path must then be absolute, free of white space, and short enough that the
/// whole line fits the 127 bytes older kernels read of it (Linux before 5.1, as on RHEL 8).
fn shebang(exe: &Path) -> String {
    let fits = exe.to_str().filter(|p| {
        p.starts_with('/')
            && !p.chars().any(|c| c.is_whitespace() || c.is_control())
            && format!("#!{p} {SHIM_ARG}").len() <= 127
    });
    match fits {
        Some(p) => format!("{p} {SHIM_ARG}"),
        None => "/bin/sh".to_string(),
    }
}

/// The argument a shim's `#!` line passes: the kernel then adds the shim's path and git's
/// arguments, which `taskhook hook-shim` reads as `read_shim` says.
pub const SHIM_ARG: &str = "hook-shim";

/// The longest shim `read_shim` reads.
const MAX_SHIM_BYTES: u64 = 16 * 1024;

/// The hook a shim at `path` stands for and the system git config it names, read from its
/// marker and `# system-config:` lines, for a shim the kernel started the binary from.
pub fn read_shim(path: &Path) -> Result<(String, Option<String>), String> {
    use std::io::Read;
    // Room for a whole shim (about 900 bytes), so it is read in one call and not in the small
    // growing reads `read_to_string` makes into an empty string: every push runs this twice.
    let mut text = String::with_capacity(4096);
    fs::File::open(path)
        .and_then(|f| f.take(MAX_SHIM_BYTES).read_to_string(&mut text))
        .map_err(|e| format!("cannot read the hook shim {}: {e}", path.display()))?;
    let value = |prefix: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(prefix))
            .map(|v| v.trim().to_string())
            .filter(|v| !v.is_empty())
    };
    let hook = value(MARKER).ok_or_else(|| {
        format!(
            "{} is not a taskhook shim (no `{MARKER}` line); reinstall with `taskhook install`",
            path.display()
        )
    })?;
    Ok((hook, value(SYSTEM_CONFIG_LINE)))
}

/// The shim line naming the system git config found at install time.
const SYSTEM_CONFIG_LINE: &str = "# system-config:";

/// Where the git on `PATH` keeps its system config (`git config --system` writes there; a git
/// built with another prefix keeps it elsewhere than `/etc/gitconfig`). Asked once, at install
/// time, so the hooks need not start git to learn it.
pub fn system_config_path() -> Option<String> {
    let out = crate::git::git_command()
        .args(["config", "--system", "--edit"])
        .env("GIT_EDITOR", "echo")
        .env_remove("GIT_CONFIG_SYSTEM")
        .env_remove("GIT_CONFIG_NOSYSTEM")
        .stdin(std::process::Stdio::null())
        .output()
        .ok()?;
    let path = String::from_utf8_lossy(&out.stdout).trim().to_string();
    (out.status.success() && path.starts_with('/') && !path.contains('\n')).then_some(path)
}

/// The lines to add to an existing hook that taskhook cannot chain into by itself.
pub fn manual_lines(hook: &str, exe: &Path) -> String {
    let exe = exe.display();
    match hook {
        "update" => format!("\"{exe}\" hook update \"$1\" \"$2\" \"$3\" || exit 1"),
        _ => format!(
            "printf '%s\\n' \"$input\" | \"{exe}\" hook {hook} || exit 1   # after input=$(cat)"
        ),
    }
}

/// Installs `hook`'s shim into `repo` by `layout`.
pub fn install_hook(
    repo: &Path,
    layout: &Layout,
    hook: &str,
    exe: &Path,
) -> Result<Outcome, Failure> {
    let text = shim(hook, exe).ok_or_else(|| Failure::usage(format!("unknown hook {hook}")))?;
    let Some(path) = layout.shim_path(repo, hook) else {
        let why = match layout {
            Layout::Other(why) => why.clone(),
            _ => String::new(),
        };
        return Ok(Outcome::Manual(format!(
            "{why}; add this line to it: {}",
            manual_lines(hook, exe)
        )));
    };
    let outcome = match fs::read_to_string(&path) {
        Ok(existing) if existing == text => Outcome::Unchanged(path.clone()),
        Ok(existing) if existing.lines().any(|l| l.starts_with(MARKER)) => {
            write_hook(&path, &text)?;
            Outcome::Updated(path.clone())
        }
        Ok(_) => Outcome::Manual(format!(
            "{} is a file taskhook did not write; add this line to it: {}",
            path.display(),
            manual_lines(hook, exe)
        )),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            if let Some(dir) = path.parent() {
                fs::create_dir_all(dir)
                    .map_err(|e| Failure::usage(format!("cannot create {}: {e}", dir.display())))?;
            }
            write_hook(&path, &text)?;
            Outcome::Installed(path.clone())
        }
        Err(e) => {
            return Err(Failure::usage(format!(
                "cannot read {}: {e}",
                path.display()
            )))
        }
    };
    Ok(outcome)
}

fn write_hook(path: &Path, text: &str) -> Result<(), Failure> {
    let tmp = path.with_extension("taskhook-new");
    let io = |e: std::io::Error| Failure::usage(format!("cannot write {}: {e}", path.display()));
    {
        let mut f = fs::File::create(&tmp).map_err(io)?;
        f.write_all(text.as_bytes()).map_err(io)?;
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        fs::set_permissions(&tmp, fs::Permissions::from_mode(0o755)).map_err(io)?;
    }
    fs::rename(&tmp, path).map_err(io)
}

/// Removes taskhook's files for `hook` from every place a layout may have put them (and from
/// `hooks_dir`, a `core.hooksPath` directory, when given): the paths removed.
pub fn uninstall_hook(
    repo: &Path,
    hook: &str,
    hooks_dir: Option<&Path>,
) -> Result<Vec<PathBuf>, Failure> {
    let mut places = candidate_paths(repo, hook);
    if let Some(dir) = hooks_dir {
        places.push(dir.join(hook));
    }
    let mut removed = Vec::new();
    for p in places {
        if is_shim(&p) {
            fs::remove_file(&p)
                .map_err(|e| Failure::usage(format!("cannot remove {}: {e}", p.display())))?;
            removed.push(p);
        }
    }
    Ok(removed)
}

/// Sets `taskhook.<key>` in the repository's own config file with git itself.
pub fn set_config(repo: &Path, key: &str, value: &str) -> Result<(), Failure> {
    let status = Command::new("git")
        .arg("config")
        .arg("--file")
        .arg(repo.join("config"))
        .arg(format!("taskhook.{key}"))
        .arg(value)
        .status()
        .map_err(|e| Failure::usage(format!("cannot run git config: {e}")))?;
    if !status.success() {
        return Err(Failure::usage(format!(
            "git config failed for {}",
            repo.display()
        )));
    }
    Ok(())
}

/// The binary the shims call: `--bin` if given, else `taskhook` on `PATH`, else the path this
/// command was run as. Made absolute, but symlinks are kept, so upgrading by swapping a symlink
/// keeps every repository working.
pub fn binary_path(given: Option<&Path>) -> Result<PathBuf, Failure> {
    let cwd = std::env::current_dir()
        .map_err(|e| Failure::usage(format!("cannot read the current directory: {e}")))?;
    let chosen = match given {
        Some(p) => p.to_path_buf(),
        None => match find_on_path("taskhook") {
            Some(p) => p,
            None => std::env::args_os()
                .next()
                .map(PathBuf::from)
                .filter(|p| p.components().count() > 1)
                .or_else(|| std::env::current_exe().ok())
                .ok_or_else(|| {
                    Failure::usage("cannot tell where the taskhook binary is: give --bin PATH")
                })?,
        },
    };
    let abs = absolute(&cwd, &chosen);
    if !is_executable(&abs) {
        return Err(Failure::usage(format!(
            "{} is not an executable file (--bin names the taskhook binary the hooks call)",
            abs.display()
        )));
    }
    Ok(abs)
}

/// The binary that only runs the hooks (`src/bin/taskhook-hook.rs`, [`crate::server::entry`]).
pub const HOOK_BINARY: &str = "taskhook-hook";

/// What the shims call, given the `taskhook` binary `exe`: [`HOOK_BINARY`] in the same
/// directory when it is there (the same hooks in a smaller binary that starts sooner), else
/// `exe` itself, which runs them too. The directory is that of the path as given, not of a
/// symlink's target: an admin who links both binaries into one directory upgrades both by
/// swapping the links.
pub fn hook_binary(exe: &Path) -> PathBuf {
    exe.parent()
        .map(|dir| dir.join(HOOK_BINARY))
        .filter(|p| is_executable(p))
        .unwrap_or_else(|| exe.to_path_buf())
}

/// `path` made absolute against `cwd` without touching the file system (no symlink resolution).
fn absolute(cwd: &Path, path: &Path) -> PathBuf {
    let joined = if path.is_absolute() {
        path.to_path_buf()
    } else {
        cwd.join(path)
    };
    let mut out = PathBuf::new();
    for c in joined.components() {
        match c {
            std::path::Component::CurDir => {}
            std::path::Component::ParentDir => {
                out.pop();
            }
            other => out.push(other),
        }
    }
    out
}

fn find_on_path(name: &str) -> Option<PathBuf> {
    std::env::split_paths(&std::env::var_os("PATH")?)
        .filter(|d| d.is_absolute())
        .map(|d| d.join(name))
        .find(|p| is_executable(p))
}

pub fn is_executable(p: &Path) -> bool {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        fs::metadata(p).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
    }
    #[cfg(not(unix))]
    {
        p.is_file()
    }
}

/// The binary a shim calls, read back from the shim.
pub fn shim_binary(path: &Path) -> Option<PathBuf> {
    let text = fs::read_to_string(path).ok()?;
    let line = text.lines().find(|l| l.starts_with("exec '"))?;
    let rest = &line["exec '".len()..];
    let end = rest.find("' hook ")?;
    Some(PathBuf::from(rest[..end].replace(r"'\''", "'")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hooks_from_gits_configuration_are_read_as_git_lists_them() {
        assert_eq!(
            parse_hook_list(
                b"taskhook-pre\0disabled\told\0event-disabled\tx.y\0hook from hookdir\0"
            ),
            vec![
                ("taskhook-pre".to_string(), None),
                ("old".to_string(), Some(Disabled::Hook)),
                ("x.y".to_string(), Some(Disabled::Event)),
            ]
        );
        assert!(parse_hook_list(b"hook from hookdir\0").is_empty());
        let config = HookConfig::parse(
            "hook.taskhook-pre.command\n/usr/bin/taskhook-hook hook pre-receive\0\
             hook.taskhook-pre.event\npre-receive\0\
             hook.a.b.command\nsh -c ':'\0hook.a.b.command\nlater\0\
             hook.a.b.event\npre-receive\0hook.a.b.event\npost-receive\0\
             hook.old.event\npre-receive\0hook.old.event\n\0\
             hook.off.event\npre-receive\0hook.off.enabled\nfalse\0\
             hook.back.event\npre-receive\0hook.back.enabled\nno\0hook.back.enabled\ntrue\0\
             hook.pre-receive.jobs\n2\0",
        );
        let hook = |name: &str, command: Option<&str>, disabled: bool| ConfigHook {
            name: name.into(),
            command: command.map(Into::into),
            disabled: disabled.then_some(Disabled::Hook),
        };
        assert_eq!(
            config.hooks_for("pre-receive"),
            vec![
                hook(
                    "taskhook-pre",
                    Some("/usr/bin/taskhook-hook hook pre-receive"),
                    false
                ),
                hook("a.b", Some("later"), false),
                hook("off", None, true),
                hook("back", None, false),
            ]
        );
        assert_eq!(
            config.hooks_for("post-receive"),
            vec![hook("a.b", Some("later"), false)]
        );
        for (command, found) in [
            (
                "/usr/local/bin/taskhook hook pre-receive",
                Some(("/usr/local/bin/taskhook", "pre-receive")),
            ),
            (
                "GIT_CONFIG_SYSTEM=/etc/gitconfig '/opt/t/taskhook-hook' hook post-receive",
                Some(("/opt/t/taskhook-hook", "post-receive")),
            ),
            (
                "taskhook-hook hook update \"$@\"",
                Some(("taskhook-hook", "update")),
            ),
            (
                "'/srv/git tools/taskhook-hook' hook pre-receive",
                Some(("/srv/git tools/taskhook-hook", "pre-receive")),
            ),
            (
                "env X=\"a b\" \"/srv/git \\\"tools\\\"/taskhook\" hook post-receive",
                Some(("/srv/git \"tools\"/taskhook", "post-receive")),
            ),
            (
                "/srv/git\\ tools/taskhook hook update",
                Some(("/srv/git tools/taskhook", "update")),
            ),
            ("/usr/bin/taskhook check", None),
            ("/usr/bin/other-hook hook pre-receive", None),
            ("", None),
        ] {
            assert_eq!(
                taskhook_in_command(command),
                found.map(|(b, h)| (PathBuf::from(b), h.to_string())),
                "{command}"
            );
        }
    }

    /// A configured hook whose command is a shim (`install --hooks-path DIR` writes them) runs
    /// the binary the shim calls, for the hook the shim stands for.
    #[test]
    fn a_configured_hook_may_run_a_shim() {
        let dir = tempfile::tempdir().expect("tmp");
        let p = dir.path().join("post-receive");
        let text = shim("post-receive", Path::new("/opt/t/taskhook-hook")).expect("shim");
        fs::write(&p, text).expect("write");
        let configured = |command: String| ConfigHook {
            name: "t".into(),
            command: Some(command),
            disabled: None,
        };
        let spaced = dir.path().join("git hooks");
        fs::create_dir(&spaced).expect("mkdir");
        let q = spaced.join("post-receive");
        fs::copy(&p, &q).expect("copy");
        for command in [
            p.display().to_string(),
            format!("X=1 '{}'", p.display()),
            format!("'{}'", q.display()),
            format!("X='a b' \"{}\"", q.display()),
        ] {
            assert_eq!(
                configured(command.clone()).taskhook(),
                Some((PathBuf::from("/opt/t/taskhook-hook"), "post-receive".into())),
                "{command}"
            );
        }
        fs::write(&p, "#!/bin/sh\nexit 0\n").expect("write");
        assert_eq!(configured(p.display().to_string()).taskhook(), None);
    }

    #[test]
    fn shims_name_the_binary_they_call() {
        let text = shim("pre-receive", Path::new("/opt/it's/taskhook")).expect("shim");
        let dir = tempfile::tempdir().expect("tmp");
        let p = dir.path().join("pre-receive");
        fs::write(&p, &text).expect("write");
        assert_eq!(shim_binary(&p), Some(PathBuf::from("/opt/it's/taskhook")));
        assert!(
            text.starts_with("#!/opt/it's/taskhook hook-shim\n"),
            "{text}"
        );
        // A path with white space cannot go on the `#!` line: a shell runs the shim.
        let text = shim("pre-receive", Path::new("/opt/my tools/taskhook")).expect("shim");
        assert!(text.starts_with("#!/bin/sh\n"), "{text}");
        fs::write(&p, text).expect("write");
        assert_eq!(
            shim_binary(&p),
            Some(PathBuf::from("/opt/my tools/taskhook"))
        );
    }

    #[test]
    fn shims_start_the_binary_directly_where_the_kernel_can() {
        let text = shim("update", Path::new("/usr/bin/taskhook")).expect("shim");
        assert!(
            text.starts_with("#!/usr/bin/taskhook hook-shim\n"),
            "{text}"
        );
        let dir = tempfile::tempdir().expect("tmp");
        let p = dir.path().join("update");
        fs::write(&p, &text).expect("write");
        let (hook, system) = read_shim(&p).expect("read");
        assert_eq!(hook, "update");
        assert!(system.is_some_and(|s| s.starts_with('/')));
        let long = format!("/{}/taskhook", "d".repeat(120));
        let text = shim("update", Path::new(&long)).expect("shim");
        assert!(text.starts_with("#!/bin/sh\n"));
        fs::write(&p, "#!/bin/sh\necho hello\n").expect("write");
        assert!(read_shim(&p)
            .expect_err("no marker")
            .contains("not a taskhook shim"));
    }

    #[test]
    fn the_hooks_binary_is_taken_from_beside_the_one_given() {
        let dir = tempfile::tempdir().expect("tmp");
        let exe = dir.path().join("taskhook");
        fs::write(&exe, "").expect("write");
        assert_eq!(hook_binary(&exe), exe, "alone: the binary itself");
        let hooks = dir.path().join(HOOK_BINARY);
        fs::write(&hooks, "").expect("write");
        assert_eq!(hook_binary(&exe), exe, "not executable: not taken");
        use std::os::unix::fs::PermissionsExt;
        fs::set_permissions(&hooks, fs::Permissions::from_mode(0o755)).expect("chmod");
        assert_eq!(hook_binary(&exe), hooks);
        // Beside the path as given: a symlink elsewhere does not follow its target.
        let other = tempfile::tempdir().expect("tmp");
        let link = other.path().join("taskhook");
        std::os::unix::fs::symlink(&exe, &link).expect("symlink");
        assert_eq!(hook_binary(&link), link);
    }

    #[test]
    fn absolute_keeps_symlinks_and_drops_dots() {
        assert_eq!(
            absolute(Path::new("/srv"), Path::new("./bin/../bin/taskhook")),
            PathBuf::from("/srv/bin/taskhook")
        );
    }
}
