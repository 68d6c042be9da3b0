//! `taskhook check`: the server's verdict on a checkout or a commit, before pushing.

use std::io::{IsTerminal, Write};
use std::path::Path;

use super::Format;
use crate::config::Config;
use crate::error::{exit, CmdResult, Failure};
use crate::git::Repo;
use crate::validate::check;
use crate::validate::render::{render_report, report_json};
use crate::validate::source::CommitTree;
use crate::validate::worktree::Worktree;

/// Whether `path` is a bare repository (or a `.git` directory).
fn looks_like_git_dir(path: &Path) -> bool {
    path.join("HEAD").is_file() && path.join("objects").is_dir() && path.join("refs").is_dir()
}

pub fn run(path: Option<&Path>, rev: Option<&str>, format: Format) -> CmdResult {
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
            let config = load_config(&repo)?;
            let commit = repo.resolve_commit(&rev)?;
            let tree = repo.commit_tree(commit)?;
            check::check(&CommitTree { repo: &repo, tree }, &config, None)?
        }
        None => {
            if !path.is_dir() {
                return Err(Failure::usage(format!(
                    "{} is not a directory",
                    path.display()
                )));
            }
            let config = match Repo::open(path) {
                Ok(repo) => load_config(&repo)?,
                Err(_) => Config::default(),
            };
            check::check(&Worktree::new(path), &config, None)?
        }
    };
    let mut out = std::io::stdout().lock();
    match format {
        Format::Json => {
            let json = report_json(&report);
            let _ = writeln!(
                out,
                "{}",
                serde_json::to_string_pretty(&json).unwrap_or_default()
            );
        }
        Format::Human => {
            let color = std::io::stdout().is_terminal() && std::env::var_os("NO_COLOR").is_none();
            let _ = write!(out, "{}", render_report(&report, color));
        }
    }
    Ok(if report.is_valid() {
        exit::OK
    } else {
        exit::INVALID
    })
}

/// The repository's settings, with a warning for each `taskhook.*` key taskhook does not know.
fn load_config(repo: &Repo) -> Result<Config, Failure> {
    for w in Config::unknown_keys(repo) {
        eprintln!("taskhook: warning: {w}");
    }
    Ok(Config::load(repo)?)
}
