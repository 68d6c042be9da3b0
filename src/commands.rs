//! The `manifest` and `plan` commands: glue between the pure steps and their I/O.

use std::collections::HashMap;
use std::io::{IsTerminal, Read, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::cli::{exit, CmdResult, Failure, Format, ManifestCommand, PlanArgs, PlanFormat};
use crate::config::Config;
use crate::event::{self, BranchRules, Event, Parsed};
use crate::fetch::{self, Remote};
use crate::git::ObjectId;
use crate::git::Repo;
use crate::hook::{self, short};
use crate::manifest::{self, MAX_MANIFEST_BYTES};
use crate::plan;
use crate::store::{self, Applied, Stored};

pub fn manifest(command: ManifestCommand) -> CmdResult {
    match command {
        ManifestCommand::Show {
            branch,
            format,
            repo,
        } => show(repo.as_deref(), branch.as_deref(), format),
        ManifestCommand::Build { rev, branch, repo } => {
            build(repo.as_deref(), &rev, branch.as_deref())
        }
        ManifestCommand::Rebuild { repos, format } => rebuild(&repos, format),
    }
}

fn open(repo: Option<&Path>) -> Result<(Repo, Config), Failure> {
    let repo = Repo::open(repo.unwrap_or(Path::new(".")))?;
    let config = Config::load(&repo)?;
    Ok((repo, config))
}

fn show(repo: Option<&Path>, branch: Option<&str>, format: Format) -> CmdResult {
    let (repo, config) = open(repo)?;
    let snap = store::snapshot(&repo, &config)?;
    if snap.commit.is_none() {
        return Err(Failure::invalid(format!(
            "{} does not exist in this repository yet: push through the installed hooks, or run `taskhook manifest rebuild`",
            config.manifest_ref
        )));
    }
    let heads: HashMap<String, String> = repo
        .branches()?
        .into_iter()
        .map(|(b, id)| (b, id.to_string()))
        .collect();
    let stale_note = |b: &str, pinned: &str| -> Option<String> {
        match heads.get(b) {
            Some(head) if head != pinned => Some(format!(
                "taskhook: note: the manifest of `{b}` is stale: it pins {} but the branch is at {}; run `taskhook manifest rebuild`",
                short(pinned),
                short(head)
            )),
            None => Some(format!("taskhook: note: branch `{b}` no longer exists; its manifest is left over")),
            _ => None,
        }
    };
    let mut out = std::io::stdout().lock();
    match branch {
        None => {
            for (b, e) in &snap.index.branches {
                if let Some(n) = stale_note(b, &e.commit) {
                    eprintln!("{n}");
                }
            }
            match format {
                Format::Json => {
                    let _ = out.write_all(&manifest::to_bytes(&snap.index));
                }
                Format::Human => {
                    for (b, e) in &snap.index.branches {
                        let _ = writeln!(out, "{b}\t{}\t{}", short(&e.commit), e.manifest);
                    }
                }
            }
        }
        Some(b) => {
            let m = store::read_branch(&repo, &config, &snap, b)?
                .ok_or_else(|| Failure::invalid(format!("no manifest for branch `{b}`")))?;
            if let Some(n) = stale_note(b, &m.commit) {
                eprintln!("{n}");
            }
            match format {
                Format::Json => {
                    let _ = out.write_all(&manifest::branch_bytes(&m));
                }
                Format::Human => {
                    let _ = writeln!(
                        out,
                        "branch {} at {} (policy {})",
                        m.branch, m.commit, m.policy
                    );
                    for t in &m.tasks {
                        let state = if !t.valid {
                            "INVALID"
                        } else if !t.run {
                            "dormant"
                        } else {
                            "scheduled"
                        };
                        let _ = writeln!(
                            out,
                            "  {:<30} {:<9} on [{}] branches [{}] arches [{}]",
                            t.path,
                            state,
                            t.on.join(", "),
                            t.branches.join(", "),
                            t.arches.join(", ")
                        );
                    }
                }
            }
        }
    }
    Ok(exit::OK)
}

fn build(repo: Option<&Path>, rev: &str, branch: Option<&str>) -> CmdResult {
    let (repo, config) = open(repo)?;
    let commit = repo.resolve_commit(rev)?;
    let name = match branch {
        Some(b) => b.to_string(),
        None => {
            let branches = repo.branches()?;
            if branches.iter().any(|(b, _)| b == rev) {
                rev.to_string()
            } else {
                repo.head_branch().unwrap_or_else(|| "HEAD".to_string())
            }
        }
    };
    let m = hook::branch_manifest(&repo, &config, None, &name, commit, None)?;
    let _ = std::io::stdout().lock().write_all(&m.bytes);
    Ok(exit::OK)
}

fn rebuild(repos: &[PathBuf], format: Format) -> CmdResult {
    let progress = std::io::stderr().is_terminal();
    let mut failed = false;
    for (i, path) in repos.iter().enumerate() {
        let result = rebuild_one(path, progress, (i + 1, repos.len()));
        if let Err(f) = &result {
            failed = true;
            eprintln!("taskhook: {}: {}", path.display(), f.message);
        }
        match (format, result) {
            (Format::Human, Ok(r)) => println!("{}: {}", path.display(), r.describe()),
            (Format::Json, Ok(r)) => println!(
                "{}",
                serde_json::json!({
                    "repo": path.display().to_string(),
                    "branches": r.branches,
                    "commit": r.commit.map(|c| c.to_string()),
                    "changed": r.commit.is_some(),
                })
            ),
            (Format::Json, Err(f)) => println!(
                "{}",
                serde_json::json!({"repo": path.display().to_string(), "error": f.message})
            ),
            (Format::Human, Err(_)) => {}
        }
    }
    Ok(if failed { exit::USAGE } else { exit::OK })
}

/// What a rebuild of one repository did.
struct Rebuilt {
    branches: usize,
    manifest_ref: String,
    /// The new manifest commit, if anything changed.
    commit: Option<ObjectId>,
}

impl Rebuilt {
    fn describe(&self) -> String {
        match self.commit {
            Some(id) => format!(
                "{} branch manifests written ({} at {})",
                self.branches,
                self.manifest_ref,
                short(&id.to_string())
            ),
            None => format!("{} branch manifests already up to date", self.branches),
        }
    }
}

fn rebuild_one(
    path: &Path,
    progress: bool,
    (n, total): (usize, usize),
) -> Result<Rebuilt, Failure> {
    let repo = Repo::open(path)?;
    let config = Config::load(&repo)?;
    let snap = store::snapshot(&repo, &config).ok();
    let branches = repo.branches()?;
    // Branches at the same commit share one verdict; a rebuild trusts nothing stored.
    let mut by_commit: HashMap<ObjectId, crate::check::Report> = HashMap::new();
    let mut changes = Vec::new();
    for (i, (branch, commit)) in branches.iter().enumerate() {
        if progress {
            eprint!(
                "\r\x1b[K[{n}/{total}] {} {}/{}: {branch}",
                path.display(),
                i + 1,
                branches.len()
            );
        }
        if !by_commit.contains_key(commit) {
            by_commit.insert(
                *commit,
                crate::reuse::verdict(&repo, &config, *commit, None, None)?,
            );
        }
        let report = &by_commit[commit];
        let hex = commit.to_string();
        let bytes = manifest::report_bytes(branch, &hex, report, &config);
        changes.push((branch.clone(), Some(Stored { commit: hex, bytes })));
    }
    if let Some(s) = &snap {
        for b in s.index.branches.keys() {
            if !branches.iter().any(|(x, _)| x == b) {
                changes.push((b.clone(), None));
            }
        }
    }
    if progress {
        eprint!("\r\x1b[K");
    }
    let applied = store::apply_repair(&repo, &config, &changes, "taskhook: rebuild")?;
    Ok(Rebuilt {
        branches: branches.len(),
        manifest_ref: config.manifest_ref,
        commit: match applied {
            Applied::Committed(id) => Some(id),
            Applied::Unchanged => None,
        },
    })
}

pub fn plan(args: PlanArgs) -> CmdResult {
    let rules = BranchRules {
        rawhide_release: args.rawhide_release,
        rawhide_branch: args.rawhide_branch.clone(),
    };
    let mut explain = Vec::new();
    let event = match (&args.event, &args.item_type, &args.item) {
        (Some(file), None, None) => {
            let bytes = read_event(file)?;
            match event::parse(&bytes, &rules).map_err(|e| Failure::invalid(e.to_string()))? {
                Parsed::Event(mut e) => {
                    if let Some(b) = &args.branch {
                        e.branch = Some(b.clone());
                    }
                    e
                }
                Parsed::Ignored(why) => {
                    if args.explain {
                        eprintln!("taskhook: no jobs: {why}");
                    }
                    return Ok(exit::OK);
                }
            }
        }
        (None, Some(t), Some(item)) => {
            if !crate::formula::ITEM_TYPES.contains(&t.as_str()) {
                return Err(Failure::usage(format!(
                    "unknown item type `{t}`; item types: {}",
                    crate::formula::ITEM_TYPES.join(", ")
                )));
            }
            Event {
                topic: "(command line)".into(),
                item_type: t.clone(),
                item: item.clone(),
                name: None,
                namespace: None,
                branch: args.branch.clone(),
                commit: None,
            }
        }
        _ => {
            return Err(Failure::usage(
                "give either --event FILE, or --item-type, --item and --branch",
            ))
        }
    };
    explain.push(format!(
        "event: {} {} on branch {} ({})",
        event.item_type,
        event.item,
        event.branch.as_deref().unwrap_or("?"),
        event.topic
    ));
    let Some(branch) = event
        .branch
        .clone()
        .or_else(|| args.fallback_branch.clone())
    else {
        if args.explain {
            eprintln!(
                "taskhook: no jobs: the event names no branch and there is no --fallback-branch"
            );
        }
        return Ok(exit::OK);
    };
    let url = fetch::expand_remote(
        &args.remote,
        event.name.as_deref(),
        event.namespace.as_deref(),
    )
    .map_err(Failure::invalid)?;
    let cache_dir = args
        .cache_dir
        .clone()
        .unwrap_or_else(fetch::default_cache_dir);
    let remote = Remote {
        url: &url,
        manifest_ref: &args.manifest_ref,
        timeout: Duration::from_secs(args.timeout.max(1)),
        max_bytes: MAX_MANIFEST_BYTES,
        cache_dir: &cache_dir,
    };
    let mut candidates = vec![branch.clone()];
    if let Some(f) = &args.fallback_branch {
        if f != &branch {
            candidates.push(f.clone());
        }
    }
    let mut found = None;
    for b in &candidates {
        let file = manifest::branch_file(b);
        match fetch::fetch_file(&remote, &file)
            .map_err(|e| Failure::invalid(format!("{url}: {e}")))?
        {
            Some(bytes) => {
                found = Some((b.clone(), bytes));
                break;
            }
            None => explain.push(format!("no manifest for branch `{b}` on {url}")),
        }
    }
    let Some((used, bytes)) = found else {
        if args.explain {
            for l in &explain {
                eprintln!("taskhook: {l}");
            }
            eprintln!("taskhook: no jobs: no branch manifest to read (use --fallback-branch to name another)");
        }
        return Ok(exit::OK);
    };
    let m = manifest::parse_branch(&bytes, MAX_MANIFEST_BYTES)
        .map_err(|e| Failure::invalid(format!("{url} {}: {e}", manifest::branch_file(&used))))?;
    if m.branch != used {
        return Err(Failure::invalid(format!(
            "{url} {}: the manifest says it is for branch `{}`",
            manifest::branch_file(&used),
            m.branch
        )));
    }
    if used != branch {
        explain.push(format!("using the fallback branch `{used}`'s manifest"));
    }
    explain.push(format!(
        "manifest: {} at {} ({} tasks)",
        m.branch,
        m.commit,
        m.tasks.len()
    ));
    if let Some(c) = &event.commit {
        if used == branch && c != &m.commit {
            explain.push(format!(
                "note: the event is about commit {c} but the manifest pins {}: the manifest is stale, or the event is older than the last push",
                m.commit
            ));
        }
    }
    let p = plan::plan(&event, &m, &url, &branch);
    if args.explain {
        for l in explain.iter().chain(p.explain.iter()) {
            eprintln!("taskhook: {l}");
        }
        eprintln!(
            "taskhook: {} job{}",
            p.jobs.len(),
            if p.jobs.len() == 1 { "" } else { "s" }
        );
    }
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    for job in &p.jobs {
        let line = match args.format {
            PlanFormat::Json => serde_json::to_string(job).unwrap_or_default(),
            PlanFormat::Runtask => job.runtask_line(),
        };
        let _ = writeln!(out, "{line}");
    }
    Ok(exit::OK)
}

fn read_event(file: &str) -> Result<Vec<u8>, Failure> {
    const MAX_EVENT: u64 = 4 * 1024 * 1024;
    let mut buf = Vec::new();
    let res = if file == "-" {
        std::io::stdin()
            .lock()
            .take(MAX_EVENT + 1)
            .read_to_end(&mut buf)
    } else {
        std::fs::File::open(file)
            .map_err(|e| Failure::usage(format!("cannot read {file}: {e}")))?
            .take(MAX_EVENT + 1)
            .read_to_end(&mut buf)
    };
    res.map_err(|e| Failure::usage(format!("cannot read {file}: {e}")))?;
    if buf.len() as u64 > MAX_EVENT {
        return Err(Failure::invalid(format!(
            "the event is larger than {MAX_EVENT} bytes"
        )));
    }
    Ok(buf)
}
