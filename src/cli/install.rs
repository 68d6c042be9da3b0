//! `taskhook install`: put the hook shims into repositories and say what happened.

use std::path::PathBuf;

use super::Format;
use crate::config::Policy;
use crate::error::{exit, CmdResult, Failure};
use crate::server::install::{install_into, set_policy, Outcome};

/// `taskhook install [--policy P] [--update-hook] REPO...`
pub fn run(
    repos: &[PathBuf],
    policy: Option<Policy>,
    with_update: bool,
    format: Format,
) -> CmdResult {
    let exe = std::env::current_exe()
        .and_then(|p| p.canonicalize())
        .map_err(|e| Failure::usage(format!("cannot locate the taskhook binary: {e}")))?;
    let mut hooks = vec!["pre-receive", "post-receive"];
    if with_update {
        hooks.push("update");
    }
    let mut foreign = false;
    for repo in repos {
        let results = install_into(repo, &hooks, &exe)?;
        if let Some(p) = policy {
            set_policy(repo, p)?;
        }
        for (hook, outcome) in results {
            foreign |= outcome == Outcome::Foreign;
            let (state, what) = match outcome {
                Outcome::Installed => ("installed", "installed"),
                Outcome::Updated => ("updated", "updated"),
                Outcome::Unchanged => ("unchanged", "already installed"),
                Outcome::Foreign => (
                    "foreign",
                    "NOT installed: a hook that taskhook did not install is in the way",
                ),
            };
            match format {
                Format::Human => println!("{}: {hook}: {what}", repo.display()),
                Format::Json => println!(
                    "{}",
                    serde_json::json!({"repo": repo.display().to_string(), "hook": hook, "state": state})
                ),
            }
        }
    }
    if foreign {
        eprintln!(
            "taskhook: existing hooks were left alone. Call taskhook from them instead:\n  \
             pre-receive:  taskhook hook pre-receive  (same stdin; exit status 1 means reject)\n  \
             post-receive: taskhook hook post-receive (same stdin)\n\
             See docs/HOOKS.md for pagure, gitolite and fedora-messaging-git-hook."
        );
        return Ok(exit::INVALID);
    }
    Ok(exit::OK)
}
