//! From an event to its jobs: pick the branch, fill the remote template, fetch the branch
//! manifest (falling back to another branch's), check it, and plan. `taskhook plan` runs this
//! once per event; every network step is bounded by the timeout in [`Options`].

use std::path::PathBuf;
use std::time::Duration;

use super::event::Event;
use super::fetch::{self, FetchError, Remote};
use super::plan::{self, Job};
use crate::manifest::{self, Branch, MAX_MANIFEST_BYTES};

/// How to find a repository's manifest for an event.
#[derive(Debug, Clone)]
pub struct Options {
    /// The task repository URL; may hold `{name}` and `{namespace}`.
    pub remote: String,
    /// Whose manifest to use when the event's branch has none (or the event names no branch).
    pub fallback_branch: Option<String>,
    pub manifest_ref: String,
    /// Bound on each network step.
    pub timeout: Duration,
    /// Where depth-1 fetches of http(s) remotes are cached.
    pub cache_dir: PathBuf,
    /// How many repositories that cache keeps (see [`fetch::cache`]).
    pub cache_max_repos: usize,
    /// Also say why each task of the manifest runs or not (one line per task).
    pub explain_tasks: bool,
}

/// The jobs for one event, and why.
#[derive(Debug, Default)]
pub struct Outcome {
    pub jobs: Vec<Job>,
    /// One line per decision, for `--explain` and logs.
    pub explain: Vec<String>,
    /// The packages of a message naming several whose repository serves no manifest (or does
    /// not exist), one line each: planned without them, and said as a warning.
    pub skipped: Vec<String>,
}

/// Why an event could not be planned.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// The remote template cannot be filled from this event.
    #[error("{0}")]
    Template(String),
    /// The remote could not be read: may succeed later.
    #[error("{url}: {source}")]
    Fetch { url: String, source: FetchError },
    /// The remote serves a manifest taskhook refuses.
    #[error("{url} {file}: {message}")]
    BadManifest {
        url: String,
        file: String,
        message: String,
    },
}

impl RunError {
    /// Whether trying again later could succeed (the network, not the data, failed).
    pub fn is_transient(&self) -> bool {
        matches!(
            self,
            RunError::Fetch {
                source: FetchError::Unreachable(_)
                    | FetchError::Timeout(..)
                    | FetchError::Spawn(_)
                    | FetchError::Cache(_),
                ..
            }
        )
    }

    /// Whether the remote serves no manifest because there is no repository, or no manifest
    /// ref in it: taskhook is not installed there. Asking again would give the same answer.
    pub fn is_not_served(&self) -> bool {
        matches!(
            self,
            RunError::Fetch {
                source: FetchError::NoManifestRef(_) | FetchError::NoRepository(_),
                ..
            }
        )
    }
}

/// Plans every event of one message (a bodhi update names several packages): the jobs of all,
/// each repository and branch fetched once, each job once.
///
/// A package whose repository serves no manifest (taskhook is not installed there, or there is
/// no such repository) does not take the other packages' jobs with it: it is left out and
/// listed in [`Outcome::skipped`]. Only when no package is planned is that the message's error;
/// any other error (an unreachable server, a manifest taskhook refuses) is, as it is for one.
pub fn jobs_for_events(events: &[Event], opts: &Options) -> Result<Outcome, RunError> {
    let mut out = Outcome::default();
    let mut seen = std::collections::HashSet::new();
    let mut ids = std::collections::HashSet::new();
    let mut not_served = None;
    let mut planned = 0;
    for event in events {
        let key = (
            fetch::expand_remote(
                &opts.remote,
                event.name.as_deref(),
                event.namespace.as_deref(),
            )
            .ok(),
            event.branch.clone(),
        );
        if key.0.is_some() && !seen.insert(key) {
            continue;
        }
        let mut one = match jobs_for_event(event, opts) {
            Ok(one) => one,
            Err(e) if e.is_not_served() && events.len() > 1 => {
                let line = format!(
                    "{} left out of the plan: {e}",
                    event.name.as_deref().unwrap_or(&event.item)
                );
                out.skipped.push(line);
                not_served.get_or_insert(e);
                continue;
            }
            Err(e) => return Err(e),
        };
        planned += 1;
        out.explain.extend(one.explain);
        // One event's jobs are distinct already (a task path and an arch each, both listed
        // once): only jobs of several events need their ids compared.
        if events.len() > 1 {
            one.jobs.retain(|job| ids.insert(job.id.clone()));
        }
        if out.jobs.is_empty() {
            out.jobs = one.jobs;
        } else {
            out.jobs.append(&mut one.jobs);
        }
    }
    match not_served {
        Some(e) if planned == 0 => Err(e),
        _ => Ok(out),
    }
}

/// What `--explain` first says of an event: its item, branch and topic.
pub fn event_line(event: &Event) -> String {
    format!(
        "event: {} {} on branch {} ({})",
        event.item_type,
        event.item,
        event.branch.as_deref().unwrap_or("?"),
        event.topic
    )
}

/// Plans `event` against the manifest its repository serves.
pub fn jobs_for_event(event: &Event, opts: &Options) -> Result<Outcome, RunError> {
    let mut out = Outcome::default();
    out.explain.push(event_line(event));
    let Some(branch) = event
        .branch
        .clone()
        .or_else(|| opts.fallback_branch.clone())
    else {
        out.explain
            .push("no jobs: the event names no branch and there is no fallback branch".into());
        return Ok(out);
    };
    if event.name.is_none() && opts.remote.contains("{name}") && event.item_type == "compose" {
        out.explain.push(
            "no jobs: a compose names no package, and the remote needs `{name}` (plan composes against a repository of generic tasks)"
                .into(),
        );
        return Ok(out);
    }
    let url = fetch::expand_remote(
        &opts.remote,
        event.name.as_deref(),
        event.namespace.as_deref(),
    )
    .map_err(RunError::Template)?;
    fetch::check_url(&url).map_err(RunError::Template)?;
    let Some(fetched) = fetch_manifest(&url, &branch, opts, &mut out.explain)? else {
        out.explain.push(
            "no jobs: no branch manifest to read (use a fallback branch to name another)".into(),
        );
        return Ok(out);
    };
    let (used, manifest) = read_manifest(&url, &branch, &fetched, &mut out.explain)?;
    note_staleness(event, &branch, used, &manifest, &mut out.explain);
    let p = plan::plan(event, &manifest, &url, &branch, opts.explain_tasks);
    crate::error::trace::step("jobs planned");
    out.explain.extend(p.explain);
    out.jobs = p.jobs;
    Ok(out)
}

/// A fetched branch manifest: the branch it is for, its path in the manifest ref, its bytes.
struct Fetched {
    branch: String,
    file: String,
    bytes: Vec<u8>,
}

/// Fetches the manifest of `branch`, else of the fallback branch.
fn fetch_manifest(
    url: &str,
    branch: &str,
    opts: &Options,
    explain: &mut Vec<String>,
) -> Result<Option<Fetched>, RunError> {
    let remote = Remote {
        url,
        manifest_ref: &opts.manifest_ref,
        timeout: opts.timeout,
        max_bytes: MAX_MANIFEST_BYTES,
        cache_dir: &opts.cache_dir,
        cache_max_repos: opts.cache_max_repos,
    };
    let mut candidates = vec![branch.to_string()];
    if let Some(f) = opts.fallback_branch.as_deref().filter(|f| *f != branch) {
        candidates.push(f.to_string());
    }
    for b in candidates {
        let file = manifest::branch_file(&b);
        let mut note = None;
        let fetched = fetch::fetch_file_noting(&remote, &file, &mut note).map_err(|source| {
            RunError::Fetch {
                url: url.to_string(),
                source,
            }
        })?;
        explain.extend(note);
        crate::error::trace::step("manifest fetched");
        match fetched {
            Some(bytes) => {
                return Ok(Some(Fetched {
                    branch: b,
                    file,
                    bytes,
                }))
            }
            None => explain.push(format!("no manifest for branch `{b}` on {url}")),
        }
    }
    Ok(None)
}

/// Parses and checks a fetched manifest (untrusted): `(branch used, manifest)`.
fn read_manifest<'a>(
    url: &str,
    branch: &str,
    fetched: &'a Fetched,
    explain: &mut Vec<String>,
) -> Result<(&'a str, Branch<'a>), RunError> {
    let bad = |message: String| RunError::BadManifest {
        url: url.to_string(),
        file: fetched.file.clone(),
        message,
    };
    let b = fetched.branch.as_str();
    let m = manifest::parse_branch(&fetched.bytes, MAX_MANIFEST_BYTES)
        .map_err(|e| bad(e.to_string()))?;
    crate::error::trace::step("manifest parsed and checked");
    if m.branch != b {
        return Err(bad(format!(
            "the manifest says it is for branch `{}`",
            m.branch
        )));
    }
    if b != branch {
        explain.push(format!("using the fallback branch `{b}`'s manifest"));
    }
    explain.push(format!(
        "manifest: {} at {} ({} tasks)",
        m.branch,
        m.commit,
        m.tasks.len()
    ));
    Ok((b, m))
}

fn note_staleness(
    event: &Event,
    branch: &str,
    used: &str,
    m: &Branch<'_>,
    explain: &mut Vec<String>,
) {
    if let Some(c) = &event.commit {
        if used == branch && c != &m.commit {
            explain.push(format!(
                "note: the event is about commit {c} but the manifest pins {}: the manifest is stale, or the event is older than the last push",
                m.commit
            ));
        }
    }
}
