//! The command line: argument parsing, dispatch, output formats and exit codes.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand, ValueEnum};

mod check;
mod checkout;
mod extras;
mod install;
mod listen;
mod manifest;
mod plan;

pub use crate::error::{exit, CmdResult, Failure};
use crate::server::entry::finish;

/// Reads FILE (`-`: stdin) up to `max` bytes; `what` names it when it is larger.
fn read_input(file: &str, max: u64, what: &str) -> Result<Vec<u8>, Failure> {
    use std::io::Read;
    let mut buf = Vec::new();
    let res = if file == "-" {
        std::io::stdin().lock().take(max + 1).read_to_end(&mut buf)
    } else {
        std::fs::File::open(file)
            .map_err(|e| Failure::usage(format!("cannot read {file}: {e}")))?
            .take(max + 1)
            .read_to_end(&mut buf)
    };
    res.map_err(|e| Failure::usage(format!("cannot read {file}: {e}")))?;
    if buf.len() as u64 > max {
        return Err(Failure::invalid(format!(
            "{what} is larger than {max} bytes"
        )));
    }
    Ok(buf)
}

#[derive(Parser, Debug)]
#[command(
    name = "taskhook",
    version,
    about = "Validate Taskotron task formulas at push time and schedule them without cloning",
    long_about = "taskhook checks the `runtask.yml` formulas of a task repository when they are pushed \
to a dist-git server, writes a small schedule manifest per branch into `refs/meta/tasks`, and \
turns message-bus events into jobs by fetching only that manifest.\n\n\
Start with `taskhook demo` to see the whole story on built-in examples.",
    after_help = "Exit codes: 0 success or valid, 1 invalid input or rejected push, 2 usage or internal error."
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Copy, Clone, Debug, PartialEq, Eq, ValueEnum)]
pub enum Format {
    Human,
    Json,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Validate the tasks of a checkout, or of a commit, exactly as the server hook would.
    #[command(
        after_help = "Examples:\n  taskhook check                      # the checkout you are in, as a push would send it\n  \
taskhook check --server             # ... with the settings origin's server publishes\n  \
taskhook check rpmlint/runtask.yml  # one formula\n  \
taskhook check path/to/repo --rev HEAD~1\n  taskhook check /srv/git/tasks.git --rev f40 --format json\n\n\
Files git ignores are left out: a push would not send them.\n\
Exit codes: 0 valid (warnings allowed), 1 errors found, 2 usage or internal error."
    )]
    Check {
        /// A checkout, a git repository (bare or not) with --rev, or one formula file.
        /// Default: the current directory.
        path: Option<PathBuf>,
        /// Check commit REV of the repository at PATH instead of the files on disk.
        #[arg(long, value_name = "REV")]
        rev: Option<String>,
        /// Check with the settings the server publishes (namespaces, limits, policy): REMOTE is
        /// a remote of the checkout (default `origin`) or a URL.
        #[arg(long, value_name = "REMOTE", num_args = 0..=1, default_missing_value = "origin")]
        server: Option<String>,
        #[arg(long, value_enum, default_value_t = Format::Human)]
        format: Format,
    },
    /// Hook entry points, called by the shims that `taskhook install` puts in a repository.
    #[command(
        after_help = "git runs these with the repository as the current directory and the \
ref updates on stdin (pre-receive, post-receive) or as arguments (update). Output goes to stderr, \
which git shows the pusher as `remote:` lines.\n\n\
`taskhook-hook`, the hooks-only binary installed beside `taskhook`, takes exactly these command \
lines (`taskhook-hook hook pre-receive`, ...) and runs the same code; it starts sooner, so \
`taskhook install` points the shims at it when it is there. This page is its manual too."
    )]
    Hook {
        #[arg(value_enum)]
        hook: HookName,
        /// For `update`: `<ref> <old> <new>`, as git passes them.
        args: Vec<String>,
    },
    /// Install the hooks where each repository's layout runs them (idempotent; never replaces a forge's own hooks).
    #[command(after_help = "Examples:\n  taskhook install /srv/git/tasks/*.git\n  \
taskhook install --policy warn /var/lib/forgejo/repositories/rpms/*.git\n  \
taskhook install --bin /usr/local/bin/taskhook /srv/git/pagure/repositories/rpms/*.git\n\n\
Layouts (--layout auto detects them per repository):\n  \
plain    no hook yet, or taskhook's own shim: hooks/<hook>\n  \
d-dir    Forgejo/Gitea, hooks/<hook> runs hooks/<hook>.d/*: hooks/<hook>.d/taskhook\n  \
gitlab   custom_hooks/ (Gitaly): custom_hooks/<hook>.d/taskhook\n  \
pagure   hooks/<hook> is a symlink to pagure's hookrunner: hooks/<hook>.taskhook\n\
With core.hooksPath set (repository, global or system config) install refuses and names the \
path, unless --hooks-path DIR says to install there. A hook taskhook cannot chain into \
(gitolite, a hand-written dispatcher) is left alone and the exact line to add is printed.\n\
The shims call taskhook-hook, the hooks-only binary, from --bin's directory (default: the \
taskhook found on PATH, else the path this was run as), or --bin itself when it is not there; \
symlinks are kept, so swapping a symlink upgrades every repository.\n\
After installing on repositories that already have branches, run `taskhook manifest rebuild`.\n\
Exit codes: 0 installed everywhere, 1 some hooks need the printed manual step, 2 a path is not a bare repository \
or the binary the shims would call is another release.")]
    Install {
        /// Set `taskhook.policy` in each repository's config.
        #[arg(long, value_enum)]
        policy: Option<PolicyArg>,
        /// Also install the `update` hook, which then gives per-ref verdicts (docs/HOOKS.md).
        #[arg(long)]
        update_hook: bool,
        /// Where to install: detected per repository by default.
        #[arg(long, value_enum, default_value_t = LayoutArg::Auto)]
        layout: LayoutArg,
        /// The taskhook binary; the shims call `taskhook-hook` beside it, else it (a symlink stays a symlink).
        #[arg(long, value_name = "PATH")]
        bin: Option<PathBuf>,
        /// Install into this core.hooksPath directory (shared by every repository using it).
        #[arg(long, value_name = "DIR")]
        hooks_path: Option<PathBuf>,
        #[arg(long, value_enum, default_value_t = Format::Human)]
        format: Format,
        /// Bare repositories (a forge's repository directories).
        #[arg(required = true, value_name = "REPO")]
        repos: Vec<PathBuf>,
    },
    /// Remove exactly the files `taskhook install` added, from every layout's place.
    #[command(
        after_help = "Examples:\n  taskhook uninstall /srv/git/tasks/*.git\n\n\
Only files carrying taskhook's shim marker are removed, with the hooks' own taskhook/ \
directory (where pre-receive leaves its verdicts for post-receive, and the manifest ref's spare \
file); the forge's hooks, \
refs/meta/tasks and taskhook.* settings stay."
    )]
    Uninstall {
        /// Also remove taskhook's shims from this core.hooksPath directory.
        #[arg(long, value_name = "DIR")]
        hooks_path: Option<PathBuf>,
        #[arg(long, value_enum, default_value_t = Format::Human)]
        format: Format,
        /// Bare repositories.
        #[arg(required = true, value_name = "REPO")]
        repos: Vec<PathBuf>,
    },
    /// Say whether a push to each repository really runs taskhook, and what to fix.
    #[command(
        after_help = "Examples:\n  taskhook doctor /srv/git/tasks/*.git\n  taskhook doctor --format json /srv/git/tasks.git\n\n\
Checks core.hooksPath at every level, the layout's dispatcher (present, executable, a real \
pagure hookrunner), the shim (executable, its binary present), the taskhook.* settings in force, \
whether refs/meta/tasks exists, and replace refs (refs/replace/*, which would make git serve \
other content under a validated object's id).\n\
Exit codes: 0 every repository runs taskhook, 1 something to fix (listed), 2 usage."
    )]
    Doctor {
        #[arg(long, value_enum, default_value_t = Format::Human)]
        format: Format,
        /// Bare repositories.
        #[arg(required = true, value_name = "REPO")]
        repos: Vec<PathBuf>,
    },
    /// Show, compute or rebuild schedule manifests.
    Manifest {
        #[command(subcommand)]
        command: ManifestCommand,
    },
    /// Turn a message-bus event into jobs, fetching only the branch manifest (no clone).
    #[command(
        after_help = "Examples:\n  taskhook plan --remote 'git://pkgs.example.org/rpms/{name}' \\\n      --event message.json\n  \
taskhook plan --remote git://pkgs.example.org/tasks \\\n      --item-type koji_build --item foo-1.0-1.fc40 --branch f40 --format runtask\n\n\
Prints one JSON object per job (JSON Lines); no jobs prints nothing and exits 0. \
--explain tells on stderr why each task does or does not run.\n\
Exit codes: 0 planned (possibly no jobs), 1 malformed event, unreachable remote or bad manifest, 2 usage."
    )]
    Plan(Box<PlanArgs>),
    /// The trigger as a service: consume the message bus (AMQP), publish or run jobs.
    #[command(
        after_help = "Examples:\n  taskhook listen --config /etc/taskhook/listen.toml\n  \
taskhook listen --config listen.toml --metrics 127.0.0.1:9464\n  taskhook listen --config listen.toml --check\n\n\
The configuration is fedora-messaging's config.toml (amqp_url, [tls], [client_properties], \
[exchanges], [queues], [[bindings]], [qos], [monitoring], passive_declares, publish_priority) \
plus taskhook's settings under [consumer_config]: \
remote, fallback_branch, rawhide_branch, rawhide_release, manifest_ref, timeout, cache_dir, \
cache_max_repos, jobs (amqp, exec or stdout), jobs_exchange, jobs_topic, exec, exec_timeout, max_retries. README.md \
(\"Run the trigger\") has a complete file.\n\n\
A message is acked once all its jobs are delivered; transient failures are retried, then \
dead-lettered (or dropped); malformed messages are logged and acked. Run several listeners on \
one durable queue to scale out. SIGTERM or SIGINT stops consuming, finishes in-flight messages \
and exits 0.\n\
Exit codes: 0 stopped cleanly, 2 bad configuration, or a broker that refuses the topology or \
forbids publishing the jobs."
    )]
    Listen {
        /// The configuration file (fedora-messaging's config.toml format); without --config,
        /// the file FEDORA_MESSAGING_CONF names, as for fedora-messaging.
        #[arg(long, value_name = "FILE", env = "FEDORA_MESSAGING_CONF")]
        config: PathBuf,
        /// Serve Prometheus metrics (and /live, /ready) on ADDR (for example 127.0.0.1:9464);
        /// without it, where the configuration's [monitoring] table says.
        #[arg(long, value_name = "ADDR")]
        metrics: Option<std::net::SocketAddr>,
        /// Validate the configuration and exit.
        #[arg(long)]
        check: bool,
    },
    /// The runner's side: fetch exactly the task a job pins, verified, into a directory.
    #[command(
        after_help = "Examples:\n  taskhook plan --remote git://pkgs.example.org/tasks --event msg.json | head -1 | taskhook checkout --job - --dest /tmp/job\n  \
taskhook checkout --job job.json --exec 'runtask -i \"$TASKHOOK_ITEM\" -t \"$TASKHOOK_ITEM_TYPE\" -a \"$TASKHOOK_ARCH\" runtask.yml'\n\n\
Where the server serves upload-archive (git://, ssh) and the job's branch is still at the \
pinned commit: one archive of that directory. Otherwise a depth-1 fetch of the pinned commit with \
a blob filter into the cache (--cache-dir, shared with plan), reading only the task's files; \
where the server will not serve a commit by id, a depth-1 fetch of the branch (said on stderr).\n\
Nothing is written unless the files hash to the job's tree id, runtask.yml to its \
formula_sha256, and they come from its commit; DIR must not exist or be empty.\n\
--exec runs the command with sh -c in DIR, the job JSON on stdin and TASKHOOK_JOB_ID, \
TASKHOOK_ITEM, TASKHOOK_ITEM_TYPE, TASKHOOK_ARCH, TASKHOOK_TASKNAME, TASKHOOK_FORMULA set.\n\
Exit codes: 0 checked out (and the command succeeded), 1 a bad or tampered job, a mismatch, an \
unreachable remote or a failed command, 2 usage or local errors."
    )]
    Checkout {
        /// The job (one JSON object as `plan` prints it); `-` reads stdin.
        #[arg(long, value_name = "FILE")]
        job: String,
        /// Where to put the task's files (default: ./<job id>).
        #[arg(long, value_name = "DIR")]
        dest: Option<PathBuf>,
        /// Run CMD in DIR once the task is checked out.
        #[arg(long, value_name = "CMD")]
        exec: Option<String>,
        /// The per-repository fetch cache (shared with plan).
        #[arg(long, value_name = "DIR")]
        cache_dir: Option<PathBuf>,
        /// How many repositories the cache keeps: past that, the least recently fetched go.
        #[arg(long, value_name = "N", default_value_t = crate::trigger::fetch::cache::DEFAULT_MAX_REPOS as u64,
              value_parser = clap::value_parser!(u64).range(1..))]
        cache_max_repos: u64,
        /// Seconds allowed for each network step.
        #[arg(long, value_name = "SECONDS", default_value_t = 60)]
        timeout: u64,
        #[arg(long, value_enum, default_value_t = Format::Human)]
        format: Format,
    },
    /// Install the man pages, shell completions and JSON Schemas under a prefix.
    #[command(
        after_help = "Examples:\n  sudo taskhook extras --prefix /usr/local\n  taskhook extras --prefix ~/.local\n\n\
Writes PREFIX/share/man/man1/taskhook*.1 (generated from this binary's own --help), shell \
completions for bash (share/bash-completion/completions/taskhook), zsh \
(share/zsh/site-functions/_taskhook) and fish (share/fish/vendor_completions.d/taskhook.fish), \
and the JSON Schemas (share/taskhook/schema/*.json) that editors can validate formulas with."
    )]
    Extras {
        /// Where to install (files go under PREFIX/share).
        #[arg(long, value_name = "PREFIX")]
        prefix: PathBuf,
    },
    /// The whole story on built-in examples, in a temporary directory, with real git.
    #[command(
        after_help = "Examples:\n  taskhook demo\n  taskhook demo --keep /tmp/taskhook-demo   # keep the repositories to explore\n\n\
It creates a server repository with the hooks, pushes a task with mistakes (rejected), fixes and \
pushes it, serves the repository with git-daemon on 127.0.0.1, fetches the manifest with \
`git archive --remote`, and plans the jobs for a koji build message. Nothing is left running, \
even when interrupted."
    )]
    Demo {
        /// Keep the demo's files in DIR (which must not exist yet) for exploring.
        #[arg(long, value_name = "DIR")]
        keep: Option<PathBuf>,
    },
}

#[derive(Copy, Clone, Debug, PartialEq, Eq, ValueEnum)]
pub enum HookName {
    PreReceive,
    PostReceive,
    Update,
}

#[derive(Copy, Clone, Debug, PartialEq, Eq, ValueEnum)]
pub enum LayoutArg {
    Auto,
    Plain,
    DDir,
    Gitlab,
    Pagure,
}

#[derive(Copy, Clone, Debug, PartialEq, Eq, ValueEnum)]
pub enum PolicyArg {
    Reject,
    Warn,
}

#[derive(Subcommand, Debug)]
pub enum ManifestCommand {
    /// Print the stored manifest: the index, or one branch's manifest.
    #[command(
        after_help = "Examples:\n  taskhook manifest show /srv/git/tasks.git            # index.json\n  \
taskhook manifest show --branch f40 /srv/git/tasks.git\n  taskhook manifest show --branch f40 --format human\n\n\
A note on stderr says when a branch's manifest pins another commit than the branch head \
(stale); `taskhook manifest rebuild` repairs it."
    )]
    Show {
        /// Print this branch's manifest instead of the index.
        #[arg(long)]
        branch: Option<String>,
        #[arg(long, value_enum, default_value_t = Format::Json)]
        format: Format,
        /// The repository (default: the current directory).
        repo: Option<PathBuf>,
    },
    /// Compute a branch manifest for a commit and print it, without storing it.
    #[command(
        after_help = "Examples:\n  taskhook manifest build                     # HEAD of the repository here\n  \
taskhook manifest build --rev f40 /srv/git/tasks.git\n\n\
Prints exactly the bytes post-receive would store for that commit."
    )]
    Build {
        /// The commit to compute the manifest of.
        #[arg(long, value_name = "REV", default_value = "HEAD")]
        rev: String,
        /// The branch name to record (default: the branch REV names, or HEAD's branch).
        #[arg(long)]
        branch: Option<String>,
        /// Print the hooks' state file (`state/<branch>.json`: task count and every finding)
        /// instead of the branch manifest.
        #[arg(long)]
        state: bool,
        /// The repository, bare or not (default: the current directory).
        repo: Option<PathBuf>,
    },
    /// Recompute and store the manifests of every branch (bootstrap or repair).
    #[command(
        after_help = "Examples:\n  taskhook manifest rebuild /srv/git/tasks/*.git\n\n\
Run it after `taskhook install` on repositories that already have branches, after changing \
taskhook.* settings, or to repair a stale manifest. Nothing is trusted from stored manifests; \
manifests of deleted branches are removed. Unchanged results write no commit."
    )]
    Rebuild {
        /// Also rebuild in a repository with a work tree (a clone); by default only bare
        /// repositories, the server's, are written to.
        #[arg(long)]
        non_bare: bool,
        #[arg(long, value_enum, default_value_t = Format::Human)]
        format: Format,
        /// Bare repositories whose manifests to recompute and store.
        #[arg(required = true, value_name = "REPO")]
        repos: Vec<PathBuf>,
    },
}

#[derive(clap::Args, Debug)]
pub struct PlanArgs {
    /// The task repository URL; may hold `{name}` and `{namespace}` (default `rpms`), filled from the event.
    #[arg(long, value_name = "URL")]
    pub remote: String,
    /// A bus message (fedmsg or fedora-messaging JSON); `-` reads stdin.
    #[arg(long, value_name = "FILE", conflicts_with_all = ["item_type", "item"])]
    pub event: Option<String>,
    /// Instead of --event: the item type...
    #[arg(long, value_name = "TYPE", requires_all = ["item", "branch"])]
    pub item_type: Option<String>,
    /// ...the item...
    #[arg(long, value_name = "ITEM")]
    pub item: Option<String>,
    /// ...and the branch (with --event: overrides the branch derived from the event).
    #[arg(long, value_name = "BRANCH")]
    pub branch: Option<String>,
    /// The repository name for `{name}` (default: from the event; for a manual `koji_build`,
    /// the N-V-R's name).
    #[arg(long, value_name = "NAME")]
    pub name: Option<String>,
    /// The dist-git namespace for `{namespace}` (default: from the event, else `rpms`).
    #[arg(long, value_name = "NS")]
    pub namespace: Option<String>,
    /// Use this branch's manifest when the event's branch has none.
    #[arg(long, value_name = "BRANCH")]
    pub fallback_branch: Option<String>,
    /// `json`: one JSON object per job (JSON Lines); `runtask`: the runtask command lines.
    #[arg(long, value_enum, default_value_t = PlanFormat::Json)]
    pub format: PlanFormat,
    /// Explain on stderr why each task does or does not run.
    #[arg(long)]
    pub explain: bool,
    /// The Fedora release rawhide builds as (its `fcNN` maps to --rawhide-branch).
    #[arg(long, value_name = "N")]
    pub rawhide_release: Option<u32>,
    /// The branch rawhide builds and rawhide composes map to.
    #[arg(long, value_name = "BRANCH", default_value = "rawhide")]
    pub rawhide_branch: String,
    /// The manifest ref on the remote.
    #[arg(long, value_name = "REF", default_value = crate::config::DEFAULT_REF)]
    pub manifest_ref: String,
    /// Seconds allowed for each network step.
    #[arg(long, value_name = "SECONDS", default_value_t = 20)]
    pub timeout: u64,
    /// Where depth-1 fetches are cached: for http(s) remotes, and servers that serve no archives.
    #[arg(long, value_name = "DIR")]
    pub cache_dir: Option<PathBuf>,
    /// How many repositories the cache keeps: past that, the least recently fetched go.
    #[arg(long, value_name = "N", default_value_t = crate::trigger::fetch::cache::DEFAULT_MAX_REPOS as u64,
          value_parser = clap::value_parser!(u64).range(1..))]
    pub cache_max_repos: u64,
}

#[derive(Copy, Clone, Debug, PartialEq, Eq, ValueEnum)]
pub enum PlanFormat {
    Json,
    Runtask,
}

pub fn main() -> ExitCode {
    crate::error::trace::start();
    // git runs a hook on every push: its exact argument lists skip building the whole command
    // line parser. Anything else (help, a typo) goes through clap as usual.
    let args: Vec<std::ffi::OsString> = std::env::args_os().skip(1).collect();
    if let Some(result) = crate::server::entry::run_hook(&args) {
        return finish(result);
    }
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            let _ = e.print();
            return ExitCode::from(if e.use_stderr() {
                exit::USAGE
            } else {
                exit::OK
            });
        }
    };
    finish(run(cli))
}

pub fn run(cli: Cli) -> CmdResult {
    match cli.command {
        Command::Check {
            path,
            rev,
            server,
            format,
        } => check::run(path.as_deref(), rev.as_deref(), server.as_deref(), format),
        Command::Hook { hook, args } => match hook {
            HookName::PreReceive => crate::server::hooks::pre_receive(),
            HookName::PostReceive => crate::server::hooks::post_receive(),
            HookName::Update => crate::server::hooks::update(&args),
        },
        Command::Install {
            policy,
            update_hook,
            layout,
            bin,
            hooks_path,
            format,
            repos,
        } => install::run_install(&install::InstallArgs {
            repos: &repos,
            policy: policy.map(|p| match p {
                PolicyArg::Reject => crate::config::Policy::Reject,
                PolicyArg::Warn => crate::config::Policy::Warn,
            }),
            update_hook,
            layout: Some(layout),
            bin: bin.as_deref(),
            hooks_path: hooks_path.as_deref(),
            format,
        }),
        Command::Uninstall {
            hooks_path,
            format,
            repos,
        } => install::run_uninstall(&repos, hooks_path.as_deref(), format),
        Command::Doctor { format, repos } => install::run_doctor(&repos, format),
        Command::Manifest { command } => manifest::run(command),
        Command::Plan(args) => plan::run(*args),
        Command::Listen {
            config,
            metrics,
            check,
        } => listen::run(&config, metrics, check),
        Command::Checkout {
            job,
            dest,
            exec,
            cache_dir,
            cache_max_repos,
            timeout,
            format,
        } => checkout::run(&checkout::Args {
            job: &job,
            dest: dest.as_deref(),
            exec: exec.as_deref(),
            cache_dir: cache_dir.as_deref(),
            cache_max_repos: usize::try_from(cache_max_repos).unwrap_or(usize::MAX),
            timeout,
            format,
        }),
        Command::Extras { prefix } => extras::run(&prefix),
        Command::Demo { keep } => crate::demo::run(keep.as_deref()),
    }
}
