//! Validates a whole tree: discovery, then every formula. This is the verdict both `taskhook
//! check` and the server hooks give; the hooks only skip subtrees identical to the tree a stored
//! manifest describes (see [`crate::manifest::reuse`]).

use std::time::Instant;

use sha2::{Digest, Sha256};

use super::discover::{self, Baseline};
use super::source::{Blob, Source, SourceError};
use crate::config::{hex, Config};
use crate::validate::diag::{self, Diagnostic, Sources};
use crate::validate::formula::{self, Formula};

/// The verdict on one task.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct TaskReport {
    pub path: String,
    pub formula_path: String,
    /// The git tree id of the task directory (absent for a checkout on disk).
    pub tree: Option<String>,
    pub sha256: Option<String>,
    pub formula: Formula,
    pub diagnostics: Vec<Diagnostic>,
}

impl TaskReport {
    pub fn is_valid(&self) -> bool {
        !self.diagnostics.iter().any(Diagnostic::is_error)
    }
}

/// The verdict on a tree. (Serialized only for post-receive to take over pre-receive's, see
/// `crate::server::handover`.)
#[derive(Debug, Clone, Default, serde::Serialize, serde::Deserialize)]
pub struct Report {
    pub tasks: Vec<TaskReport>,
    /// How many tasks were taken unchanged from a stored manifest (see
    /// [`crate::manifest::reuse`]); their lines are carried over as they were stored.
    pub reused_count: usize,
    /// The findings of those tasks, by task path.
    pub reused_findings: std::collections::BTreeMap<String, Vec<Diagnostic>>,
    /// Directories whose verdicts are to be taken from a baseline, not yet filled in.
    pub reused_prefixes: Vec<String>,
    /// The baseline's tasks this verdict replaces (see [`discover::Discovery::replaced`]).
    pub replaced: Vec<String>,
    /// The baseline could not be followed within the bounds: check the whole tree instead.
    pub baseline_lost: bool,
    /// Findings that belong to no single task.
    pub diagnostics: Vec<Diagnostic>,
    /// Formula texts that have positioned findings, for rendering.
    #[serde(skip)]
    pub sources: Sources,
    /// How many formulas were parsed (the rest were reused).
    pub parsed: usize,
}

impl Report {
    /// Every finding, in display order.
    pub fn all_diagnostics(&self) -> Vec<Diagnostic> {
        let mut all: Vec<Diagnostic> = self
            .diagnostics
            .iter()
            .chain(self.tasks.iter().flat_map(|t| t.diagnostics.iter()))
            .chain(self.reused_findings.values().flatten())
            .cloned()
            .collect();
        diag::sort(&mut all);
        all
    }

    /// How many tasks the tree has, checked or reused.
    pub fn task_count(&self) -> usize {
        self.tasks.len() + self.reused_count
    }

    /// No tasks and no findings: what a branch without tasks gets, an empty manifest.
    pub fn lists_nothing(&self) -> bool {
        self.task_count() == 0
            && self.diagnostics.is_empty()
            && self.tasks.iter().all(|t| t.diagnostics.is_empty())
            && self.reused_findings.values().all(Vec::is_empty)
    }

    pub fn error_count(&self) -> usize {
        self.diagnostics
            .iter()
            .chain(self.tasks.iter().flat_map(|t| t.diagnostics.iter()))
            .chain(self.reused_findings.values().flatten())
            .filter(|d| d.is_error())
            .count()
    }

    pub fn is_valid(&self) -> bool {
        self.error_count() == 0
    }
}

/// Validates every task of `source`; `deadline` bounds the work (a hook must not hang a push).
pub fn check<S: Source>(
    source: &S,
    config: &Config,
    deadline: Option<Instant>,
) -> Result<Report, SourceError> {
    check_since(source, config, None, deadline)
}

/// Like [`check`], leaving the subtrees identical to `baseline` unwalked: their prefixes are in
/// [`Report::reused_prefixes`] for the caller to fill in from the baseline's manifest.
pub fn check_since<S: Source>(
    source: &S,
    config: &Config,
    baseline: Option<&Baseline<S::Dir>>,
    deadline: Option<Instant>,
) -> Result<Report, SourceError> {
    let found = discover::discover_since(source, config.bounds, baseline)?;
    let mut report = Report {
        diagnostics: found.diagnostics,
        reused_prefixes: found.reused,
        replaced: found.replaced,
        baseline_lost: found.baseline_lost,
        ..Report::default()
    };
    // Reading is I/O and stays on this thread; validating is pure and runs on every core.
    let mut pending = Vec::with_capacity(found.tasks.len());
    for task in found.tasks {
        let tree = source.tree_id(&task.dir);
        let content = match &task.formula {
            _ if past(deadline) => Content::Unchecked,
            Some(blob) => match source.read(blob, config.rules.limits.max_bytes)? {
                Blob::Bytes(bytes) => Content::Bytes(bytes),
                Blob::TooLarge(size) => Content::TooLarge(size),
            },
            None => Content::Missing,
        };
        pending.push(Pending {
            task_path: task.path,
            tree,
            diagnostics: task.diagnostics,
            content,
        });
    }
    // Asked only when there is enough to share: finding the core count reads the cgroup files.
    let workers = if pending.len() >= 64 {
        std::thread::available_parallelism()
            .map_or(1, |n| n.get())
            .min(8)
    } else {
        1
    };
    let checked: Vec<Checked> = if workers > 1 {
        let chunk = pending.len().div_ceil(workers);
        std::thread::scope(|scope| {
            let handles: Vec<_> = pending
                .chunks(chunk)
                .map(|part| {
                    scope.spawn(move || {
                        part.iter()
                            .map(|p| validate(p, config, deadline))
                            .collect::<Vec<_>>()
                    })
                })
                .collect();
            handles
                .into_iter()
                .flat_map(|h| h.join().unwrap_or_default())
                .collect()
        })
    } else {
        pending
            .iter()
            .map(|p| validate(p, config, deadline))
            .collect()
    };
    for c in checked {
        report.parsed += usize::from(c.parsed);
        if let Some((file, text)) = c.source {
            report.sources.insert(file, text);
        }
        report.tasks.push(c.report);
    }
    Ok(report)
}

fn past(deadline: Option<Instant>) -> bool {
    deadline.is_some_and(|d| Instant::now() > d)
}

enum Content {
    Bytes(Vec<u8>),
    TooLarge(u64),
    /// `runtask.yml` is not a regular file (discovery reported it).
    Missing,
    /// The time budget ran out before this task.
    Unchecked,
}

struct Pending {
    task_path: String,
    tree: Option<String>,
    diagnostics: Vec<Diagnostic>,
    content: Content,
}

struct Checked {
    report: TaskReport,
    parsed: bool,
    source: Option<(String, String)>,
}

fn validate(p: &Pending, config: &Config, deadline: Option<Instant>) -> Checked {
    let formula_path = discover::formula_path(&p.task_path);
    let mut diagnostics = p.diagnostics.clone();
    let mut sha256 = None;
    let mut formula = None;
    let mut source = None;
    let mut parsed = false;
    let out_of_time = || {
        Diagnostic::error(
            "time-budget",
            formula_path.clone(),
            format!(
                "validation ran out of its time budget ({} ms) before this task",
                config.time_budget.as_millis()
            ),
        )
        .help("the server bounds each hook's time with `taskhook.timeBudget`: push fewer changed tasks at once, or ask the server admin to raise it (`taskhook check` locally has no budget)")
        .task(p.task_path.clone())
    };
    match &p.content {
        Content::Unchecked => diagnostics.push(out_of_time()),
        Content::Bytes(_) if past(deadline) => diagnostics.push(out_of_time()),
        Content::Missing => {}
        Content::TooLarge(size) => diagnostics.push(
            Diagnostic::error(
                "formula-too-large",
                formula_path.clone(),
                format!(
                    "the formula is {size} bytes; the limit is {} bytes",
                    config.rules.limits.max_bytes
                ),
            )
            .help("keep data files beside the formula; the limit is `taskhook.maxFormulaBytes`")
            .task(p.task_path.clone()),
        ),
        Content::Bytes(bytes) => {
            parsed = true;
            sha256 = Some(hex(&Sha256::digest(bytes)));
            let (f, d) = formula::validate(bytes, &formula_path, &p.task_path, &config.rules);
            if d.iter().any(|d| d.line.is_some()) {
                source = Some((
                    formula_path.clone(),
                    String::from_utf8_lossy(bytes).into_owned(),
                ));
            }
            diagnostics.extend(d);
            formula = Some(f);
        }
    }
    diag::sort(&mut diagnostics);
    Checked {
        report: TaskReport {
            path: p.task_path.clone(),
            formula_path,
            tree: p.tree.clone(),
            sha256,
            formula: formula.unwrap_or_else(Formula::empty),
            diagnostics,
        },
        parsed,
        source,
    }
}
