//! `taskhook check`: the server's verdict on a checkout or a commit, before pushing.

use std::collections::HashSet;
use std::io::{IsTerminal, Read, Write};
use std::path::Path;

use sha2::{Digest, Sha256};

use super::Format;
use crate::config::Config;
use crate::error::{exit, CmdResult, Failure};
use crate::git::Repo;
use crate::manifest::{Settings, MAX_MANIFEST_BYTES};
use crate::trigger::fetch;
use crate::validate::check::{self, Report, TaskReport};
use crate::validate::formula;
use crate::validate::render::{render_report, report_json};
use crate::validate::source::CommitTree;
use crate::validate::worktree::Worktree;

/// Whether `path` is a bare repository (or a `.git` directory).
fn looks_like_git_dir(path: &Path) -> bool {
    path.join("HEAD").is_file() && path.join("objects").is_dir() && path.join("refs").is_dir()
}

pub fn run(
    path: Option<&Path>,
    rev: Option<&str>,
    server: Option<&str>,
    format: Format,
) -> CmdResult {
    let path = path.unwrap_or(Path::new("."));
    if !path.exists() {
        return Err(Failure::usage(format!("{} does not exist", path.display())));
    }
    let server_settings = match server {
        Some(remote) => Some(fetch_server_settings(path, remote)?),
        None => None,
    };
    let with_server = |mut config: Config| {
        if let Some(settings) = &server_settings {
            settings.apply(&mut config);
        }
        config
    };
    let rev = match rev {
        Some(r) => Some(r.to_string()),
        None if looks_like_git_dir(path) => Some("HEAD".to_string()),
        None => None,
    };
    let report = match rev {
        Some(rev) => {
            let repo = Repo::open(path)?;
            let config = with_server(load_config(&repo)?);
            let commit = repo.resolve_commit(&rev)?;
            let tree = repo.commit_tree(commit)?;
            check::check(&CommitTree { repo: &repo, tree }, &config, None)?
        }
        None if path.is_file() => {
            let config = match path.parent().map(Repo::open) {
                Some(Ok(repo)) => load_config(&repo)?,
                _ => Config::default(),
            };
            one_formula(path, &with_server(config))?
        }
        None => {
            let (config, ignored) = match Repo::open(path) {
                Ok(repo) => (load_config(&repo)?, ignored_paths(path)),
                Err(_) => (Config::default(), Default::default()),
            };
            check::check(
                &Worktree::ignoring(path, ignored),
                &with_server(config),
                None,
            )?
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

/// `taskhook check FILE`: one formula on its own, as the task `.`.
fn one_formula(path: &Path, config: &Config) -> Result<Report, Failure> {
    let limit = config.rules.limits.max_bytes;
    let mut bytes = Vec::new();
    std::fs::File::open(path)
        .and_then(|f| f.take(limit as u64 + 1).read_to_end(&mut bytes))
        .map_err(|e| Failure::usage(format!("cannot read {}: {e}", path.display())))?;
    let file = path.display().to_string();
    let (formula, diagnostics) = formula::validate(&bytes, &file, ".", &config.rules);
    let mut report = Report::default();
    report
        .sources
        .insert(file.clone(), String::from_utf8_lossy(&bytes).into_owned());
    report.parsed = 1;
    report.tasks.push(TaskReport {
        path: ".".to_string(),
        formula_path: file,
        tree: None,
        sha256: Some(crate::config::hex(&Sha256::digest(&bytes))),
        formula,
        diagnostics,
    });
    Ok(report)
}

/// What git ignores in the checkout at `root` (a push would not send it), relative to `root`.
fn ignored_paths(root: &Path) -> HashSet<String> {
    let out = std::process::Command::new("git")
        .arg("-C")
        .arg(root)
        .args([
            "ls-files",
            "-z",
            "--others",
            "--ignored",
            "--exclude-standard",
            "--directory",
        ])
        .output();
    match out {
        Ok(o) if o.status.success() => o
            .stdout
            .split(|b| *b == 0)
            .filter(|p| !p.is_empty())
            .map(|p| String::from_utf8_lossy(p).into_owned())
            .collect(),
        _ => HashSet::new(),
    }
}

/// The settings the server publishes in its `index.json`, fetched as `plan` fetches a
/// manifest. `remote` is a remote's name in the checkout at `path`, or a URL.
fn fetch_server_settings(path: &Path, remote: &str) -> Result<Settings, Failure> {
    let dir = if path.is_file() {
        path.parent().unwrap_or(Path::new("."))
    } else {
        path
    };
    let url = match std::process::Command::new("git")
        .arg("-C")
        .arg(dir)
        .args(["remote", "get-url", remote])
        .output()
    {
        Ok(o) if o.status.success() => String::from_utf8_lossy(&o.stdout).trim().to_string(),
        _ => remote.to_string(),
    };
    fetch::check_url(&url).map_err(Failure::usage)?;
    let cache_dir = fetch::default_cache_dir();
    let r = fetch::Remote {
        url: &url,
        manifest_ref: crate::config::DEFAULT_REF,
        timeout: std::time::Duration::from_secs(20),
        max_bytes: MAX_MANIFEST_BYTES,
        cache_dir: &cache_dir,
        cache_max_repos: fetch::cache::DEFAULT_MAX_REPOS,
    };
    let bytes = fetch::fetch_file(&r, "index.json")
        .map_err(|e| Failure::invalid(format!("{url}: {e}")))?
        .ok_or_else(|| {
            Failure::invalid(format!("{url} serves no index.json in its manifest ref"))
        })?;
    let index = crate::manifest::parse_index(&bytes, MAX_MANIFEST_BYTES)
        .map_err(|e| Failure::invalid(format!("{url} index.json: {e}")))?;
    let settings = index.settings.ok_or_else(|| {
        Failure::invalid(format!(
            "{url} publishes no settings yet (its manifests predate them): the server's admin can run `taskhook manifest rebuild`"
        ))
    })?;
    eprintln!(
        "taskhook: using {url}'s settings: policy {}, namespaces {}, formulas up to {} bytes",
        settings.policy,
        settings.namespaces.join(","),
        settings.max_formula_bytes
    );
    Ok(settings)
}
