//! The command line: argument parsing, dispatch, output formats and exit codes.

use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Parser, Subcommand, ValueEnum};

use crate::check::{self, Report};
use crate::config::Config;
use crate::diag;
use crate::git::{CommitTree, Repo};
use crate::worktree::Worktree;

/// Exit codes, in one place. Documented in README.md ("Exit codes").
pub mod exit {
    /// Success: the tree is valid (warnings allowed), the push is accepted, the command worked.
    pub const OK: u8 = 0;
    /// Invalid input: errors in the tasks, a rejected push, a malformed event or manifest,
    /// an unreachable remote.
    pub const INVALID: u8 = 1;
    /// Usage error or internal error (bad arguments, bad configuration, git failures).
    pub const USAGE: u8 = 2;
}

/// An error that ends a command, with the exit code it maps to.
#[derive(Debug)]
pub struct Failure {
    pub code: u8,
    pub message: String,
}

impl Failure {
    pub fn usage(message: impl Into<String>) -> Self {
        Failure {
            code: exit::USAGE,
            message: message.into(),
        }
    }

    pub fn invalid(message: impl Into<String>) -> Self {
        Failure {
            code: exit::INVALID,
            message: message.into(),
        }
    }
}

impl<E: std::error::Error> From<E> for Failure {
    fn from(e: E) -> Self {
        Failure::usage(e.to_string())
    }
}

pub type CmdResult = Result<u8, Failure>;

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
    #[command(after_help = "Examples:\n  taskhook check                 # the checkout you are in\n  taskhook check path/to/repo --rev HEAD~1\n  taskhook check /srv/git/tasks.git --rev f40 --format json\n\n\
Exit codes: 0 valid (warnings allowed), 1 errors found, 2 usage or internal error.")]
    Check {
        /// A checkout, or a git repository (bare or not) with --rev. Default: the current directory.
        path: Option<PathBuf>,
        /// Check commit REV of the repository at PATH instead of the files on disk.
        #[arg(long, value_name = "REV")]
        rev: Option<String>,
        #[arg(long, value_enum, default_value_t = Format::Human)]
        format: Format,
    },
}

pub fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            let _ = e.print();
            return ExitCode::from(if e.use_stderr() { exit::USAGE } else { exit::OK });
        }
    };
    match run(cli) {
        Ok(code) => ExitCode::from(code),
        Err(f) => {
            eprintln!("taskhook: error: {}", f.message);
            ExitCode::from(f.code)
        }
    }
}

pub fn run(cli: Cli) -> CmdResult {
    match cli.command {
        Command::Check { path, rev, format } => cmd_check(path.as_deref(), rev.as_deref(), format),
    }
}

/// Whether `path` is a bare repository (or a `.git` directory).
fn looks_like_git_dir(path: &Path) -> bool {
    path.join("HEAD").is_file() && path.join("objects").is_dir() && path.join("refs").is_dir()
}

fn cmd_check(path: Option<&Path>, rev: Option<&str>, format: Format) -> CmdResult {
    let path = path.unwrap_or(Path::new("."));
    if !path.exists() {
        return Err(Failure::usage(format!("{} does not exist", path.display())));
    }
    let rev = match rev {
        Some(r) => Some(r.to_string()),
        None if looks_like_git_dir(path) => Some("HEAD".to_string()),
        None => None,
    };
    let report = match rev {
        Some(rev) => {
            let repo = Repo::open(path)?;
            let config = Config::load(&repo)?;
            let commit = repo.resolve_commit(&rev)?;
            let tree = repo.commit_tree(commit)?;
            check::check(&CommitTree { repo: &repo, tree }, &config, &check::Cache::new(), None)?
        }
        None => {
            if !path.is_dir() {
                return Err(Failure::usage(format!("{} is not a directory", path.display())));
            }
            let config = match Repo::open(path) {
                Ok(repo) => Config::load(&repo)?,
                Err(_) => Config::default(),
            };
            check::check(&Worktree::new(path), &config, &check::Cache::new(), None)?
        }
    };
    let mut out = std::io::stdout().lock();
    match format {
        Format::Json => {
            let json = report_json(&report);
            let _ = writeln!(out, "{}", serde_json::to_string_pretty(&json).unwrap_or_default());
        }
        Format::Human => {
            let color = std::io::stdout().is_terminal() && std::env::var_os("NO_COLOR").is_none();
            let _ = write!(out, "{}", render_report(&report, color));
        }
    }
    Ok(if report.is_valid() { exit::OK } else { exit::INVALID })
}

/// The human rendering of a verdict: every finding, then one summary line.
pub fn render_report(report: &Report, color: bool) -> String {
    let diags = report.all_diagnostics();
    let mut s = diag::render_human(&diags, &report.sources, color);
    let verdict = if report.is_valid() { "ok" } else { "invalid" };
    s.push_str(&format!("{verdict}: {}\n", diag::summary_line(&diags, report.tasks.len())));
    s
}

/// The JSON rendering of a verdict.
pub fn report_json(report: &Report) -> serde_json::Value {
    let diags = report.all_diagnostics();
    let errors = diags.iter().filter(|d| d.is_error()).count();
    serde_json::json!({
        "valid": errors == 0,
        "errors": errors,
        "warnings": diags.len() - errors,
        "tasks": report.tasks.iter().map(|t| serde_json::json!({
            "path": t.path,
            "formula": t.formula_path,
            "name": t.formula.name,
            "valid": t.is_valid(),
            "run": t.formula.schedule.run,
            "on": t.formula.schedule.on,
            "branches": t.formula.schedule.branches,
            "arches": t.formula.schedule.arches,
        })).collect::<Vec<_>>(),
        "diagnostics": diags,
    })
}
