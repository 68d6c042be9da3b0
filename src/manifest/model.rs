//! The schedule manifest: what each branch's tasks are and when they run. Pure data and its
//! deterministic JSON bytes (sorted keys, no timestamps); storing it is [`crate::manifest::store`]'s job.

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::fmt;

use serde::de::{self, SeqAccess, Visitor};
use serde::ser::SerializeTuple;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use sha2::{Digest, Sha256};

use crate::config::{hex, Config};
use crate::validate::check::{Report, TaskReport};
use crate::validate::diag::Diagnostic;
use crate::validate::discover::FORMULA;

/// Bumped when the layout changes incompatibly; readers refuse versions they do not know.
/// Version 2 renamed the tasks' `on` to `item_types`; readers still accept version 1 (its `on`
/// is read as `item_types`). Version 3 added the hooks' `state/` files beside `branches/`
/// (branch files are unchanged; without a state file a hook checks the whole tree once).
/// Version 4 writes each task as a row, an array of its values in the order of [`COLUMNS`]
/// (which the file names in `columns`), instead of an object that names every key again, and
/// no longer writes a task's `formula`, which is always its `runtask.yml`: the same tasks in
/// 40% fewer bytes, which the hooks hash and write and the trigger fetches and parses on every
/// push and event. `manifest rebuild` rewrites older manifests as version 4, and so does the
/// first push to a branch (the hooks do not reuse an older version's state).
pub const SCHEMA_VERSION: u32 = 4;

/// The oldest version readers accept.
pub const OLDEST_SCHEMA_VERSION: u32 = 1;

/// A version 4 task row's values, in order. `diagnostics` is written only for a task that has
/// some (a row of 12 values otherwise).
pub const COLUMNS: [&str; 13] = [
    "path",
    "name",
    "namespace",
    "valid",
    "run",
    "item_types",
    "branches",
    "arches",
    "formula_sha256",
    "tree",
    "maintainer",
    "desc",
    "diagnostics",
];

/// One task as scheduled on one branch. Its text borrows from the manifest's bytes where the
/// JSON string has no escapes (a trigger reads thousands of them per event); `into_owned`
/// detaches it. Serialized, it is a version 4 row ([`COLUMNS`]); read, it is a row or, from
/// versions 1 to 3, an object.
#[derive(Debug, Clone, PartialEq)]
pub struct Task<'a> {
    pub arches: Vec<Cow<'a, str>>,
    pub branches: Vec<Cow<'a, str>>,
    pub desc: Option<Cow<'a, str>>,
    pub diagnostics: Vec<Diagnostic>,
    /// The formula's path: `<path>/runtask.yml` (`runtask.yml` for a task at the root). Written
    /// only by versions 1 to 3, which readers hold to the same rule.
    pub formula: Cow<'a, str>,
    pub formula_sha256: Option<Cow<'a, str>>,
    /// The item types that trigger the task (`on` in schema version 1).
    pub item_types: Vec<Cow<'a, str>>,
    pub maintainer: Option<Cow<'a, str>>,
    pub name: Option<Cow<'a, str>>,
    pub namespace: Option<Cow<'a, str>>,
    pub path: Cow<'a, str>,
    pub run: bool,
    pub tree: Option<Cow<'a, str>>,
    pub valid: bool,
}

/// The formula path of the task at `path`.
pub fn formula_of(path: &str) -> String {
    if path == "." {
        FORMULA.to_string()
    } else {
        format!("{path}/{FORMULA}")
    }
}

/// Whether `formula` is the formula path of the task at `path` ([`formula_of`], without
/// making it).
fn is_formula_of(formula: &str, path: &str) -> bool {
    if path == "." {
        formula == FORMULA
    } else {
        formula
            .strip_suffix(FORMULA)
            .and_then(|f| f.strip_suffix('/'))
            == Some(path)
    }
}

impl Serialize for Task<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let with_diagnostics = !self.diagnostics.is_empty();
        let mut row = s.serialize_tuple(12 + usize::from(with_diagnostics))?;
        row.serialize_element(&self.path)?;
        row.serialize_element(&self.name)?;
        row.serialize_element(&self.namespace)?;
        row.serialize_element(&self.valid)?;
        row.serialize_element(&self.run)?;
        row.serialize_element(&self.item_types)?;
        row.serialize_element(&self.branches)?;
        row.serialize_element(&self.arches)?;
        row.serialize_element(&self.formula_sha256)?;
        row.serialize_element(&self.tree)?;
        row.serialize_element(&self.maintainer)?;
        row.serialize_element(&self.desc)?;
        if with_diagnostics {
            row.serialize_element(&self.diagnostics)?;
        }
        row.end()
    }
}

/// A task's stored values: read from an object with every key (versions 1 to 3), or from a row
/// (version 4, the formula path derived).
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Fields<'a> {
    #[serde(borrow, deserialize_with = "borrowed_list")]
    arches: Vec<Cow<'a, str>>,
    #[serde(borrow, deserialize_with = "borrowed_list")]
    branches: Vec<Cow<'a, str>>,
    #[serde(borrow, default, deserialize_with = "borrowed_opt")]
    desc: Option<Cow<'a, str>>,
    #[serde(default)]
    diagnostics: Vec<Diagnostic>,
    #[serde(borrow)]
    formula: Cow<'a, str>,
    #[serde(borrow, default, deserialize_with = "borrowed_opt")]
    formula_sha256: Option<Cow<'a, str>>,
    #[serde(alias = "on", borrow, deserialize_with = "borrowed_list")]
    item_types: Vec<Cow<'a, str>>,
    #[serde(borrow, default, deserialize_with = "borrowed_opt")]
    maintainer: Option<Cow<'a, str>>,
    #[serde(borrow, default, deserialize_with = "borrowed_opt")]
    name: Option<Cow<'a, str>>,
    #[serde(borrow, default, deserialize_with = "borrowed_opt")]
    namespace: Option<Cow<'a, str>>,
    #[serde(borrow)]
    path: Cow<'a, str>,
    run: bool,
    #[serde(borrow, default, deserialize_with = "borrowed_opt")]
    tree: Option<Cow<'a, str>>,
    valid: bool,
}

impl<'a> From<Fields<'a>> for Task<'a> {
    fn from(f: Fields<'a>) -> Task<'a> {
        Task {
            arches: f.arches,
            branches: f.branches,
            desc: f.desc,
            diagnostics: f.diagnostics,
            formula: f.formula,
            formula_sha256: f.formula_sha256,
            item_types: f.item_types,
            maintainer: f.maintainer,
            name: f.name,
            namespace: f.namespace,
            path: f.path,
            run: f.run,
            tree: f.tree,
            valid: f.valid,
        }
    }
}

/// A string that borrows from the input where it has no escapes. serde borrows a `Cow<str>`
/// field by itself, but not one inside an `Option` or a `Vec`: these helpers do.
#[derive(Deserialize)]
struct Text<'a>(#[serde(borrow)] Cow<'a, str>);

fn borrowed_opt<'de: 'a, 'a, D: Deserializer<'de>>(d: D) -> Result<Option<Cow<'a, str>>, D::Error> {
    Ok(Option::<Text<'a>>::deserialize(d)?.map(|t| t.0))
}

fn borrowed_list<'de: 'a, 'a, D: Deserializer<'de>>(d: D) -> Result<Vec<Cow<'a, str>>, D::Error> {
    Ok(texts(Vec::<Text<'a>>::deserialize(d)?))
}

fn texts(v: Vec<Text<'_>>) -> Vec<Cow<'_, str>> {
    v.into_iter().map(|t| t.0).collect()
}

/// How a file's tasks were stored: as rows (version 4) or as objects (versions 1 to 3).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Form {
    Rows,
    Objects,
}

/// One stored task, in either form.
struct Entry<'a>(Task<'a>, Form);

impl<'de: 'a, 'a> Deserialize<'de> for Entry<'a> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V<'a>(std::marker::PhantomData<&'a ()>);
        impl<'de: 'a, 'a> Visitor<'de> for V<'a> {
            type Value = Entry<'a>;

            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a task: an array of 12 or 13 values (or an object, before version 4)")
            }

            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Entry<'a>, A::Error> {
                fn next<'de, T: Deserialize<'de>, A: SeqAccess<'de>>(
                    seq: &mut A,
                    i: usize,
                ) -> Result<T, A::Error> {
                    seq.next_element()?.ok_or_else(|| {
                        de::Error::invalid_length(i, &"a task row of 12 or 13 values")
                    })
                }
                let opt = |t: Option<Text<'a>>| t.map(|t| t.0);
                let path: Text<'a> = next(&mut seq, 0)?;
                let name = opt(next(&mut seq, 1)?);
                let namespace = opt(next(&mut seq, 2)?);
                let valid = next(&mut seq, 3)?;
                let run = next(&mut seq, 4)?;
                let item_types = texts(next(&mut seq, 5)?);
                let branches = texts(next(&mut seq, 6)?);
                let arches = texts(next(&mut seq, 7)?);
                let formula_sha256 = opt(next(&mut seq, 8)?);
                let tree = opt(next(&mut seq, 9)?);
                let maintainer = opt(next(&mut seq, 10)?);
                let desc = opt(next(&mut seq, 11)?);
                // Written only for a task that has some: an empty list is not a row this
                // writer makes, nor one the schema allows.
                let diagnostics = match seq.next_element::<Vec<Diagnostic>>()? {
                    Some(d) if d.is_empty() => {
                        return Err(de::Error::invalid_length(
                            0,
                            &"at least one diagnostic in a row's 13th value",
                        ))
                    }
                    d => d.unwrap_or_default(),
                };
                if seq.next_element::<de::IgnoredAny>()?.is_some() {
                    return Err(de::Error::invalid_length(
                        14,
                        &"a task row of 12 or 13 values",
                    ));
                }
                let fields = Fields {
                    arches,
                    branches,
                    desc,
                    diagnostics,
                    formula: Cow::Owned(formula_of(&path.0)),
                    formula_sha256,
                    item_types,
                    maintainer,
                    name,
                    namespace,
                    path: path.0,
                    run,
                    tree,
                    valid,
                };
                Ok(Entry(fields.into(), Form::Rows))
            }

            fn visit_map<A: de::MapAccess<'de>>(self, map: A) -> Result<Entry<'a>, A::Error> {
                let fields = Fields::deserialize(de::value::MapAccessDeserializer::new(map))?;
                Ok(Entry(fields.into(), Form::Objects))
            }
        }
        d.deserialize_any(V(std::marker::PhantomData))
    }
}

thread_local! {
    /// How many tasks [`parse_branch`] expects the file it reads to list (one per line, as
    /// written), so that the list is made once at its size instead of grown and copied.
    static ROWS_HINT: std::cell::Cell<usize> = const { std::cell::Cell::new(0) };
}

/// The most tasks a list is made room for before its rows are read (a hint from untrusted
/// bytes only sizes the first allocation; more rows still grow it).
const MAX_ROWS_HINT: usize = 100_000;

/// A stored task list, and the one form its tasks share (`None` when it is empty).
struct Listed<'a>(Vec<Task<'a>>, Option<Form>);

impl<'de: 'a, 'a> Deserialize<'de> for Listed<'a> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V<'a>(std::marker::PhantomData<&'a ()>);
        impl<'de: 'a, 'a> Visitor<'de> for V<'a> {
            type Value = Listed<'a>;

            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a list of tasks")
            }

            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Listed<'a>, A::Error> {
                let hint = seq.size_hint().unwrap_or_else(|| ROWS_HINT.get());
                let mut tasks = Vec::with_capacity(hint.min(MAX_ROWS_HINT));
                let mut form = None;
                while let Some(Entry(task, f)) = seq.next_element()? {
                    if form.is_some_and(|known| known != f) {
                        return Err(de::Error::custom(
                            "tasks stored both as rows and as objects",
                        ));
                    }
                    form = Some(f);
                    tasks.push(task);
                }
                Ok(Listed(tasks, form))
            }
        }
        d.deserialize_seq(V(std::marker::PhantomData))
    }
}

fn owned(s: Cow<'_, str>) -> Cow<'static, str> {
    Cow::Owned(s.into_owned())
}

fn owned_list(v: Vec<Cow<'_, str>>) -> Vec<Cow<'static, str>> {
    v.into_iter().map(owned).collect()
}

impl Task<'_> {
    /// The same task, owning its text.
    pub fn into_owned(self) -> Task<'static> {
        Task {
            arches: owned_list(self.arches),
            branches: owned_list(self.branches),
            desc: self.desc.map(owned),
            diagnostics: self.diagnostics,
            formula: owned(self.formula),
            formula_sha256: self.formula_sha256.map(owned),
            item_types: owned_list(self.item_types),
            maintainer: self.maintainer.map(owned),
            name: self.name.map(owned),
            namespace: self.namespace.map(owned),
            path: owned(self.path),
            run: self.run,
            tree: self.tree.map(owned),
            valid: self.valid,
        }
    }
}

/// `state/<branch>.json`: what the hooks keep beside a branch manifest so that the next push is
/// checked against it without reading the branch file: the task count and every finding. Only
/// the hooks read it; the trigger never fetches it. It describes the commit the branch's entry
/// in `index.json` names, and does not name it itself: a push that changes no finding and no
/// task count leaves the file as it was, so post-receive writes neither it nor the `state/`
/// tree again.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct State {
    /// The commit the file describes, which state files written by earlier builds named:
    /// read only to refuse such a file when it disagrees with the index; never written.
    #[serde(default, skip_serializing, rename = "commit")]
    pub named_commit: Option<String>,
    /// Each task's findings, by task path (tasks without findings are not listed).
    pub findings: BTreeMap<String, Vec<Diagnostic>>,
    /// Findings that belong to no single task, as in the branch file.
    pub problems: Vec<Diagnostic>,
    pub schema: u32,
    pub tasks: usize,
    pub validator: String,
}

/// `branches/<branch>.json`; its tasks may borrow from the bytes it was read from. Written by
/// [`branch_bytes`] (and the hooks' [`report_bytes`]), read by [`parse_branch`].
#[derive(Debug, Clone, PartialEq)]
pub struct Branch<'a> {
    pub branch: String,
    pub commit: String,
    pub policy: String,
    /// Findings that belong to no single task (misnamed formulas, limits).
    pub problems: Vec<Diagnostic>,
    pub schema: u32,
    pub tasks: Vec<Task<'a>>,
    /// Fingerprint of the rules that produced this manifest (see `Config::fingerprint`).
    pub validator: String,
}

/// A branch file as stored, of any version readers accept.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct StoredBranch<'a> {
    branch: String,
    /// Version 4 and later: the names of a task row's values ([`COLUMNS`]).
    #[serde(default)]
    columns: Option<Vec<String>>,
    commit: String,
    policy: String,
    #[serde(default)]
    problems: Vec<Diagnostic>,
    schema: u32,
    #[serde(borrow)]
    tasks: Listed<'a>,
    validator: String,
}

impl Branch<'_> {
    /// The same manifest, owning its text.
    pub fn into_owned(self) -> Branch<'static> {
        Branch {
            branch: self.branch,
            commit: self.commit,
            policy: self.policy,
            problems: self.problems,
            schema: self.schema,
            tasks: self.tasks.into_iter().map(Task::into_owned).collect(),
            validator: self.validator,
        }
    }
}

/// One branch's line in `index.json`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IndexEntry {
    pub commit: String,
    pub manifest: String,
    pub sha256: String,
}

/// `index.json`: every branch that has a manifest, and the settings the server validates with.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct Index {
    pub branches: BTreeMap<String, IndexEntry>,
    pub schema: u32,
    /// The `taskhook.*` values that change verdicts, so `taskhook check --server` gives a
    /// maintainer the server's exact verdict (absent in schema version 1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub settings: Option<Settings>,
}

/// The settings a verdict depends on, as the server has them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Settings {
    pub max_aliases: usize,
    pub max_depth: usize,
    pub max_formula_bytes: usize,
    pub max_tasks: usize,
    pub max_yaml_depth: usize,
    pub max_yaml_nodes: usize,
    pub namespaces: Vec<String>,
    pub policy: String,
}

impl Settings {
    pub fn of(c: &Config) -> Settings {
        Settings {
            max_aliases: c.rules.limits.max_aliases,
            max_depth: c.bounds.max_depth,
            max_formula_bytes: c.rules.limits.max_bytes,
            max_tasks: c.bounds.max_tasks,
            max_yaml_depth: c.rules.limits.max_depth,
            max_yaml_nodes: c.rules.limits.max_nodes,
            namespaces: c.rules.namespaces.clone(),
            policy: c.policy.as_str().to_string(),
        }
    }

    /// `config` with these settings in place of its verdict-changing values.
    pub fn apply(&self, config: &mut Config) {
        config.rules.limits.max_aliases = self.max_aliases;
        config.bounds.max_depth = self.max_depth;
        config.rules.limits.max_bytes = self.max_formula_bytes;
        config.bounds.max_tasks = self.max_tasks;
        config.rules.limits.max_depth = self.max_yaml_depth.min(256);
        config.rules.limits.max_nodes = self.max_yaml_nodes;
        config.rules.namespaces = self.namespaces.clone();
        if let Some(p) = crate::config::Policy::parse(&self.policy) {
            config.policy = p;
        }
    }
}

/// Where a branch's manifest lives in the manifest tree: `/` in a branch name is a directory.
/// Directory names are escaped so that none ends in `.json` (`%` → `%25`, a final `.json` →
/// `%2Ejson`), while every file name does: branches `a` and `a.json/x` get `branches/a.json` and
/// `branches/a%2Ejson/x.json`, and the tree never has a file and a directory of one name.
pub fn branch_file(branch: &str) -> String {
    let mut parts: Vec<String> = branch.split('/').map(str::to_string).collect();
    let last = parts.pop().unwrap_or_default();
    let dirs: Vec<String> = parts
        .into_iter()
        .map(|d| {
            let d = d.replace('%', "%25");
            match d.strip_suffix(".json") {
                Some(stem) => format!("{stem}%2Ejson"),
                None => d,
            }
        })
        .collect();
    if dirs.is_empty() {
        format!("branches/{last}.json")
    } else {
        format!("branches/{}/{last}.json", dirs.join("/"))
    }
}

/// Where the hooks keep `branch`'s [`State`]: `state/` in place of `branches/`.
pub fn state_file(branch: &str) -> String {
    state_file_of(&branch_file(branch))
}

/// The state file beside branch file `manifest` (a path under `branches/`).
pub fn state_file_of(manifest: &str) -> String {
    let rest = manifest.strip_prefix("branches/").unwrap_or(manifest);
    format!("state/{rest}")
}

/// Deterministic bytes: keys sorted, two-space indent, trailing newline. Keys are sorted because
/// every struct here declares its fields in alphabetical order and maps are `BTreeMap`s (a test
/// holds us to it), which spares building an intermediate `serde_json::Value`.
pub fn to_bytes<T: Serialize>(value: &T) -> Vec<u8> {
    let mut bytes = serde_json::to_vec_pretty(value).unwrap_or_default();
    bytes.push(b'\n');
    bytes
}

/// The bytes of a branch manifest: like [`to_bytes`], except that each task (a row, see
/// [`COLUMNS`]) and each problem is one compact line. That keeps the file small for the trigger
/// to fetch and parse, and makes `git log -p refs/meta/tasks` show one changed line per changed
/// task, its path first.
pub fn branch_bytes(b: &Branch) -> Vec<u8> {
    assemble(
        &b.branch,
        &b.commit,
        &b.policy,
        &b.problems,
        b.tasks.iter().map(json),
        &b.validator,
        0,
    )
}

fn json<T: Serialize>(v: &T) -> String {
    serde_json::to_string(v).unwrap_or_default()
}

fn assemble<L: AsRef<[u8]>>(
    branch: &str,
    commit: &str,
    policy: &str,
    problems: &[Diagnostic],
    tasks: impl Iterator<Item = L>,
    validator: &str,
    capacity: usize,
) -> Vec<u8> {
    let mut out = Vec::with_capacity(capacity + 1024);
    head(&mut out, branch, commit, policy, problems);
    let mut empty = true;
    for item in tasks {
        out.extend_from_slice(if empty { TASK_FIRST } else { TASK_NEXT });
        out.extend_from_slice(item.as_ref());
        empty = false;
    }
    if empty {
        out.extend_from_slice(b"],\n");
    } else {
        out.extend_from_slice(TASKS_END);
    }
    tail(&mut out, validator);
    out
}

/// What comes before a branch file's first task line, after one, and between two.
const TASK_FIRST: &[u8] = b"\n    ";
const TASK_NEXT: &[u8] = b",\n    ";
const TASKS_END: &[u8] = b"\n  ],\n";

/// A branch file up to its task list's opening bracket.
fn head(out: &mut Vec<u8>, branch: &str, commit: &str, policy: &str, problems: &[Diagnostic]) {
    out.extend_from_slice(b"{\n");
    out.extend_from_slice(format!("  \"branch\": {},\n", json(&branch)).as_bytes());
    out.extend_from_slice(format!("  \"columns\": {},\n", json(&COLUMNS)).as_bytes());
    out.extend_from_slice(format!("  \"commit\": {},\n", json(&commit)).as_bytes());
    out.extend_from_slice(format!("  \"policy\": {},\n", json(&policy)).as_bytes());
    if !problems.is_empty() {
        out.extend_from_slice(b"  \"problems\": [");
        for (i, p) in problems.iter().enumerate() {
            out.extend_from_slice(if i == 0 { TASK_FIRST } else { TASK_NEXT });
            out.extend_from_slice(json(p).as_bytes());
        }
        out.extend_from_slice(TASKS_END);
    }
    out.extend_from_slice(format!("  \"schema\": {SCHEMA_VERSION},\n").as_bytes());
    out.extend_from_slice(b"  \"tasks\": [");
}

/// A branch file after its task list.
fn tail(out: &mut Vec<u8>, validator: &str) {
    out.extend_from_slice(format!("  \"validator\": {}\n}}\n", json(&validator)).as_bytes());
}

pub fn sha256(bytes: &[u8]) -> String {
    hex(&Sha256::digest(bytes))
}

/// The stored bytes of the branch manifest for a verdict. Checked tasks are written anew; the
/// reused ones are copied from `base` (the baseline's stored bytes) as the lines they were
/// stored as, which are the same bytes. `None` when `base` does not hold exactly the tasks the
/// verdict expects to reuse: the caller then checks the whole tree.
pub fn report_bytes(
    branch: &str,
    commit: &str,
    report: &Report,
    config: &Config,
    base: Option<&[u8]>,
) -> Option<Vec<u8>> {
    let checked = checked_lines(report)?;
    let mut problems = report.diagnostics.clone();
    crate::validate::diag::sort(&mut problems);
    let assembled = |lines: &mut dyn Iterator<Item = &[u8]>, capacity: usize| {
        assemble(
            branch,
            commit,
            config.policy.as_str(),
            &problems,
            lines,
            &config.fingerprint(),
            capacity,
        )
    };
    if report.reused_count == 0 && report.replaced.is_empty() {
        let mut lines = checked.iter().map(|(_, l)| l.as_bytes());
        return Some(assembled(&mut lines, 0));
    }
    let base = base?;
    let old = StoredLines::of(base)?;
    let edit = old.splice(&report.replaced, &checked)?;
    if old.len() - edit.removed.len() != report.reused_count {
        return None;
    }
    let mut lines = edit.lines(&old, &checked);
    Some(assembled(&mut lines, base.len()))
}

/// The lines of the tasks a verdict checked, by path; `None` when two share a path.
fn checked_lines(report: &Report) -> Option<Vec<(&str, String)>> {
    let mut checked: Vec<(&str, String)> = report
        .tasks
        .iter()
        .map(|t| (t.path.as_str(), json(&task_entry(t))))
        .collect();
    checked.sort_by(|a, b| a.0.cmp(b.0));
    if checked.windows(2).any(|w| w[0].0 == w[1].0) {
        return None;
    }
    Some(checked)
}

/// [`report_bytes`] with the baseline's stored bytes given as a buffer the caller no longer
/// needs, `stored[from..]`: the new file is made by editing that buffer where the push changed
/// it (the header, the lines of the tasks checked anew, the closing lines) rather than by
/// copying every line into a new one, which for a file of megabytes is most of the cost. The
/// result is byte for byte what [`report_bytes`] gives; when the stored bytes are not exactly
/// in the layout this writer makes, that is what runs.
pub fn report_bytes_in(
    branch: &str,
    commit: &str,
    report: &Report,
    config: &Config,
    mut stored: Vec<u8>,
    from: usize,
) -> Option<Vec<u8>> {
    /// More edits than this, and copying is as cheap as moving the tail once per edit.
    const MAX_EDITS: usize = 16;
    let copied = |stored: &[u8]| report_bytes(branch, commit, report, config, Some(stored));
    if from > stored.len() || (report.reused_count == 0 && report.replaced.is_empty()) {
        return copied(stored.get(from..)?);
    }
    let checked = checked_lines(report)?;
    // Each edit: a range of `stored` and what replaces it, in file order.
    let edits: Vec<(std::ops::Range<usize>, Vec<u8>)> = {
        let content = &stored[from..];
        let old = StoredLines::of(content)?;
        let edit = old.splice(&report.replaced, &checked)?;
        if old.len() - edit.removed.len() != report.reused_count {
            return None;
        }
        let n = old.len();
        let at = |i: usize| old.lines[i];
        // The layout this writer makes, around and between the lines: else copy.
        let canonical = n > 0
            && content[..at(0).0].ends_with(b"  \"tasks\": [\n    ")
            && (1..n).all(|i| &content[at(i - 1).1..at(i).0] == TASK_NEXT)
            && content[at(n - 1).1..].starts_with(TASKS_END);
        if !canonical {
            return copied(content);
        }
        // A stored line is changed when it is removed or checked lines are placed before it
        // (after the last one: placed after every stored line).
        let mut gone = vec![false; n];
        for &i in &edit.removed {
            gone[i] = true;
        }
        let mut changed = gone.clone();
        for &i in &edit.at {
            changed[i.min(n - 1)] = true;
        }
        let runs = changed.windows(2).filter(|w| w[1] && !w[0]).count()
            + usize::from(changed.first() == Some(&true));
        let everything_removed = checked.is_empty() && edit.removed.len() == n;
        if runs > MAX_EDITS || everything_removed {
            return copied(content);
        }
        let mut problems = report.diagnostics.clone();
        crate::validate::diag::sort(&mut problems);
        let mut header = Vec::with_capacity(512);
        head(
            &mut header,
            branch,
            commit,
            config.policy.as_str(),
            &problems,
        );
        header.extend_from_slice(TASK_FIRST);
        let mut edits = vec![(0..from + at(0).0, header)];
        // Checked lines in order, each with the stored line it goes before.
        let mut placed = checked.iter().zip(&edit.at).peekable();
        let mut i = 0;
        while i < n {
            if !changed[i] {
                i += 1;
                continue;
            }
            // A run of changed lines, replaced by its new lines in order.
            let first = i;
            let mut lines: Vec<&[u8]> = Vec::new();
            while i < n && changed[i] {
                while let Some(((_, line), _)) = placed.next_if(|(_, &at)| at == i) {
                    lines.push(line.as_bytes());
                }
                if !gone[i] {
                    lines.push(old.line(i));
                }
                i += 1;
            }
            if i == n {
                lines.extend(placed.by_ref().map(|((_, line), _)| line.as_bytes()));
            }
            let last = i - 1;
            let mut range = at(first).0..at(last).1;
            if lines.is_empty() {
                // The run's lines are all gone: so is one separator beside them.
                if first > 0 {
                    range.start = at(first - 1).1;
                } else {
                    range.end = at(last + 1).0;
                }
            }
            edits.push((from + range.start..from + range.end, lines.join(TASK_NEXT)));
        }
        let mut footer = TASKS_END.to_vec();
        tail(&mut footer, &config.fingerprint());
        edits.push((from + at(n - 1).1..stored.len(), footer));
        edits
    };
    // From the end, so that every range still points where it did.
    for (range, bytes) in edits.into_iter().rev() {
        stored.splice(range, bytes);
    }
    Some(stored)
}

/// The task lines of a stored branch manifest, found without reading them: a hook carries
/// unchanged lines into the next manifest by locating only the few it replaces, by binary
/// search (lines are stored in path order).
struct StoredLines<'a> {
    bytes: &'a [u8],
    /// Each line's byte range, without the indent and the separating comma.
    lines: Vec<(usize, usize)>,
}

/// Where the lines of a new manifest differ from the stored one.
struct Edit {
    /// Indices of the stored lines left out, ascending.
    removed: Vec<usize>,
    /// For each checked line (in path order), the stored line index it goes before.
    at: Vec<usize>,
}

impl<'a> StoredLines<'a> {
    fn of(bytes: &'a [u8]) -> Option<StoredLines<'a>> {
        const OPEN: &[u8] = b"\n  \"tasks\": [";
        const CLOSE: &[u8] = b"\n  ],\n  \"validator\": ";
        let start = find(bytes, OPEN)? + OPEN.len();
        if bytes[start..].starts_with(b"],") {
            return Some(StoredLines {
                bytes,
                lines: Vec::new(),
            });
        }
        // The validator line closes the file: search for it from the end.
        let tail_from = bytes.len().saturating_sub(256).max(start);
        let end = tail_from + rfind(&bytes[tail_from..], CLOSE)?;
        let mut lines = Vec::new();
        let mut at = start;
        for nl in memchr::memchr_iter(b'\n', &bytes[start..end]) {
            let line_end = start + nl;
            if line_end > at {
                lines.push(Self::trim(bytes, at, line_end)?);
            }
            at = line_end + 1;
        }
        if end > at {
            lines.push(Self::trim(bytes, at, end)?);
        }
        Some(StoredLines { bytes, lines })
    }

    fn trim(bytes: &[u8], from: usize, to: usize) -> Option<(usize, usize)> {
        let line = &bytes[from..to];
        let line = line.strip_prefix(b"    ")?;
        let len = line.len() - usize::from(line.ends_with(b","));
        Some((to - line.len(), to - line.len() + len))
    }

    fn len(&self) -> usize {
        self.lines.len()
    }

    fn line(&self, i: usize) -> &'a [u8] {
        let (from, to) = self.lines[i];
        &self.bytes[from..to]
    }

    fn path(&self, i: usize) -> Option<std::borrow::Cow<'a, str>> {
        line_path(std::str::from_utf8(self.line(i)).ok()?)
    }

    /// The index of the line for `path`, or where it would go.
    fn search(&self, path: &str) -> Option<Result<usize, usize>> {
        let (mut lo, mut hi) = (0, self.lines.len());
        while lo < hi {
            let mid = lo + (hi - lo) / 2;
            match self.path(mid)?.as_ref().cmp(path) {
                std::cmp::Ordering::Less => lo = mid + 1,
                std::cmp::Ordering::Greater => hi = mid,
                std::cmp::Ordering::Equal => return Some(Ok(mid)),
            }
        }
        Some(Err(lo))
    }

    /// Removes the lines of `replaced` tasks (each must be stored) and places `checked` ones (in
    /// path order; none may be stored unless replaced).
    fn splice(&self, replaced: &[String], checked: &[(&str, String)]) -> Option<Edit> {
        let mut removed = Vec::with_capacity(replaced.len());
        for path in replaced {
            removed.push(self.search(path)?.ok()?);
        }
        removed.sort_unstable();
        removed.dedup();
        if removed.len() != replaced.len() {
            return None;
        }
        let mut at = Vec::with_capacity(checked.len());
        for (path, _) in checked {
            at.push(match self.search(path)? {
                Ok(i) if removed.binary_search(&i).is_ok() => i,
                Ok(_) => return None,
                Err(i) => i,
            });
        }
        if at.windows(2).any(|w| w[0] > w[1]) {
            return None;
        }
        Some(Edit { removed, at })
    }
}

impl Edit {
    /// The new manifest's task lines, in path order.
    fn lines<'s>(
        &'s self,
        old: &'s StoredLines,
        checked: &'s [(&str, String)],
    ) -> impl Iterator<Item = &'s [u8]> + 's {
        let mut next_checked = 0;
        let mut next_removed = 0;
        let mut out: Vec<&[u8]> = Vec::with_capacity(old.len() + checked.len());
        for i in 0..=old.len() {
            while next_checked < checked.len() && self.at[next_checked] == i {
                out.push(checked[next_checked].1.as_bytes());
                next_checked += 1;
            }
            if i == old.len() {
                break;
            }
            if self.removed.get(next_removed) == Some(&i) {
                next_removed += 1;
                continue;
            }
            out.push(old.line(i));
        }
        out.into_iter()
    }
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    memchr::memmem::find(haystack, needle)
}

fn rfind(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    memchr::memmem::rfind(haystack, needle)
}

/// The hooks' [`State`] for a verdict.
pub fn report_state(report: &Report, config: &Config) -> State {
    let mut findings = report.reused_findings.clone();
    for t in &report.tasks {
        if !t.diagnostics.is_empty() {
            findings.insert(t.path.clone(), t.diagnostics.clone());
        }
    }
    let mut problems = report.diagnostics.clone();
    crate::validate::diag::sort(&mut problems);
    State {
        named_commit: None,
        findings,
        problems,
        schema: SCHEMA_VERSION,
        tasks: report.task_count(),
        validator: config.fingerprint(),
    }
}

fn task_entry(t: &TaskReport) -> Task<'_> {
    let f = &t.formula;
    fn list(v: &[String]) -> Vec<Cow<'_, str>> {
        v.iter().map(|s| Cow::Borrowed(s.as_str())).collect()
    }
    Task {
        arches: list(&f.schedule.arches),
        branches: list(&f.schedule.branches),
        desc: f.desc.as_deref().map(Cow::Borrowed),
        diagnostics: t.diagnostics.clone(),
        formula: Cow::Borrowed(&t.formula_path),
        formula_sha256: t.sha256.as_deref().map(Cow::Borrowed),
        maintainer: f.maintainer.as_deref().map(Cow::Borrowed),
        name: f.name.as_deref().map(Cow::Borrowed),
        namespace: f.namespace.as_deref().map(Cow::Borrowed),
        item_types: list(&f.schedule.item_types),
        path: Cow::Borrowed(&t.path),
        run: f.schedule.run,
        tree: t.tree.as_deref().map(Cow::Borrowed),
        valid: t.is_valid(),
    }
}

/// The `path` of a task line as stored: a row's first value. Only the first string is read,
/// and tokenized only when it has escapes. `None` for anything else, such as a line of a
/// version 3 file (an object), which the hooks then do not carry over.
pub fn line_path(line: &str) -> Option<std::borrow::Cow<'_, str>> {
    let rest = line.strip_prefix("[\"")?;
    let end = rest.find('"')?;
    if !rest[..end].contains('\\') {
        return Some(rest[..end].into());
    }
    serde_json::Deserializer::from_str(&line[1..])
        .into_iter::<String>()
        .next()?
        .ok()
        .map(Into::into)
}

/// Splits a stored branch manifest into its task lines (as the hooks find them when they carry
/// lines over). `None` when the bytes are not in the layout [`branch_bytes`] writes.
pub fn task_lines(bytes: &[u8]) -> Option<Vec<&str>> {
    let stored = StoredLines::of(bytes)?;
    (0..stored.len())
        .map(|i| std::str::from_utf8(stored.line(i)).ok())
        .collect()
}

/// Why a manifest read from somewhere (git, the network) was refused.
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    #[error("the manifest is {0} bytes, over the {1}-byte limit")]
    TooLarge(usize, usize),
    #[error("the manifest is not valid JSON of the expected shape: {0}")]
    Malformed(String),
    #[error("the manifest has schema version {0}; this taskhook reads version {SCHEMA_VERSION}")]
    Version(u32),
    #[error("the manifest is inconsistent: {0}")]
    Inconsistent(String),
}

/// The most a manifest file may weigh before it is refused unread.
pub const MAX_MANIFEST_BYTES: usize = 16 * 1024 * 1024;

/// Parses and checks an untrusted branch manifest.
pub fn parse_branch(bytes: &[u8], limit: usize) -> Result<Branch<'_>, ReadError> {
    if bytes.len() > limit {
        return Err(ReadError::TooLarge(bytes.len(), limit));
    }
    #[derive(Deserialize)]
    struct Probe {
        schema: u32,
    }
    // Every row has at least 40 bytes (`["x",null,...]`), and the writer puts one per line.
    let lines = bytes.iter().filter(|&&b| b == b'\n').count();
    ROWS_HINT.set(lines.min(bytes.len() / 40));
    // Valid UTF-8 as a whole is checked once, much faster than string by string; a file that
    // is not gets serde_json's own message, which says where.
    let parsed = match std::str::from_utf8(bytes) {
        Ok(text) => serde_json::from_str(text),
        Err(_) => serde_json::from_slice(bytes),
    };
    ROWS_HINT.set(0);
    let stored: StoredBranch = match parsed {
        Ok(b) => b,
        Err(e) => {
            // Another schema version deserves its own message rather than a shape error.
            return Err(match serde_json::from_slice::<Probe>(bytes) {
                Ok(p) if !(OLDEST_SCHEMA_VERSION..=SCHEMA_VERSION).contains(&p.schema) => {
                    ReadError::Version(p.schema)
                }
                _ => ReadError::Malformed(e.to_string()),
            });
        }
    };
    if !(OLDEST_SCHEMA_VERSION..=SCHEMA_VERSION).contains(&stored.schema) {
        return Err(ReadError::Version(stored.schema));
    }
    // Version 4 names its columns and stores rows; older versions store objects.
    let rows = stored.schema >= 4;
    let columns_ok = match &stored.columns {
        Some(c) => rows && c.iter().map(String::as_str).eq(COLUMNS),
        None => !rows,
    };
    if !columns_ok {
        return Err(ReadError::Inconsistent(format!(
            "schema version {} expects {}",
            stored.schema,
            if rows {
                format!("`columns` to be {}", json(&COLUMNS))
            } else {
                "no `columns`".to_string()
            }
        )));
    }
    let form = if rows { Form::Rows } else { Form::Objects };
    if stored.tasks.1.is_some_and(|f| f != form) {
        return Err(ReadError::Inconsistent(format!(
            "schema version {} stores tasks as {}",
            stored.schema,
            if rows { "rows (arrays)" } else { "objects" }
        )));
    }
    let b = Branch {
        branch: stored.branch,
        commit: stored.commit,
        policy: stored.policy,
        problems: stored.problems,
        schema: stored.schema,
        tasks: stored.tasks.0,
        validator: stored.validator,
    };
    if !is_hex_id(&b.commit) {
        return Err(ReadError::Inconsistent(format!(
            "`{}` is not a commit id",
            b.commit
        )));
    }
    // A served manifest is untrusted: every path is a plain task path whose formula is its
    // own `runtask.yml`, every digest and id has its shape, and no task is listed twice.
    let mut seen = std::collections::HashSet::with_capacity(b.tasks.len());
    for t in &b.tasks {
        let own_formula = is_formula_of(&t.formula, &t.path);
        let plain_path = t.path == "."
            || t.path
                .split('/')
                .all(crate::validate::discover::valid_component);
        if !plain_path
            || !own_formula
            || t.formula_sha256
                .as_deref()
                .is_some_and(|s| s.len() != 64 || !s.bytes().all(|c| c.is_ascii_hexdigit()))
            || t.tree.as_deref().is_some_and(|s| !is_hex_id(s))
            || t.arches
                .iter()
                .chain(&t.item_types)
                .any(|s| s.is_empty() || s.bytes().any(|c| c.is_ascii_control()))
        {
            return Err(ReadError::Inconsistent(format!(
                "task entry `{}` is malformed",
                t.path.escape_debug()
            )));
        }
        if !seen.insert(&*t.path) {
            return Err(ReadError::Inconsistent(format!(
                "task `{}` is listed twice",
                t.path.escape_debug()
            )));
        }
    }
    Ok(b)
}

/// Parses a stored [`State`] (written by the hooks, read by the hooks only).
pub fn parse_state(bytes: &[u8]) -> Option<State> {
    if bytes.len() > MAX_MANIFEST_BYTES {
        return None;
    }
    serde_json::from_slice(bytes).ok()
}

/// Parses and checks an untrusted index.
pub fn parse_index(bytes: &[u8], limit: usize) -> Result<Index, ReadError> {
    if bytes.len() > limit {
        return Err(ReadError::TooLarge(bytes.len(), limit));
    }
    // Read straight into the index: the index lists every branch, and building a generic
    // value first and the index from it cost about 1 ms more at 1,000 branches
    // (docs/BENCHMARKS.md, twenty-seventh round). What that refuses is read again as below, so
    // that another version's index is reported as such; so is anything but an object (serde
    // reads a struct from an array too, where no schema is found below).
    let object = bytes.trim_ascii_start().first() == Some(&b'{');
    if let Some(index) = object
        .then(|| serde_json::from_slice::<Index>(bytes).ok())
        .flatten()
    {
        if !(OLDEST_SCHEMA_VERSION..=SCHEMA_VERSION).contains(&index.schema) {
            return Err(ReadError::Version(index.schema));
        }
        return Ok(index);
    }
    parse_index_as_value(bytes)
}

/// [`parse_index`] through a generic JSON value: its schema version first, then the rest.
fn parse_index_as_value(bytes: &[u8]) -> Result<Index, ReadError> {
    let v: serde_json::Value =
        serde_json::from_slice(bytes).map_err(|e| ReadError::Malformed(e.to_string()))?;
    let schema = v
        .get("schema")
        .and_then(serde_json::Value::as_u64)
        .unwrap_or(0) as u32;
    if !(OLDEST_SCHEMA_VERSION..=SCHEMA_VERSION).contains(&schema) {
        return Err(ReadError::Version(schema));
    }
    serde_json::from_value(v).map_err(|e| ReadError::Malformed(e.to_string()))
}

fn is_hex_id(s: &str) -> bool {
    (s.len() == 40 || s.len() == 64) && s.bytes().all(|c| c.is_ascii_hexdigit())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn task(path: &str, version: u32) -> crate::validate::check::TaskReport {
        crate::validate::check::TaskReport {
            path: path.to_string(),
            formula_path: format!("{path}/runtask.yml"),
            tree: Some(format!("{version:040x}")),
            sha256: Some(format!("{version:064x}")),
            formula: crate::validate::formula::Formula {
                desc: Some(format!("version {version}")),
                ..crate::validate::formula::Formula::empty()
            },
            diagnostics: Vec::new(),
        }
    }

    /// Editing the stored file in place gives exactly the file copying its lines gives, for
    /// random pushes: tasks changed, added, removed, at the ends and in between, in runs.
    #[test]
    fn editing_in_place_gives_what_copying_gives() {
        let config = Config::default();
        let mut next = crate::testing::random(0x9e37_79b9_7f4a_7c15);
        let mut paths: Vec<String> = (0..40).map(|i| format!("t{:03}", i * 2)).collect();
        let full = Report {
            tasks: paths.iter().map(|p| task(p, 0)).collect(),
            ..Report::default()
        };
        let mut base = report_bytes("main", &"1".repeat(40), &full, &config, None).expect("base");
        let mut in_place = 0;
        for round in 0..300 {
            // Replace, remove and add a few tasks; now and then every one of them.
            let mut replaced = Vec::new();
            let mut tasks: Vec<crate::validate::check::TaskReport> = Vec::new();
            let edits = if round % 50 == 49 {
                paths.len()
            } else {
                1 + next(4)
            };
            for _ in 0..edits {
                match next(3) {
                    0 if !paths.is_empty() => {
                        let i = next(paths.len());
                        if !tasks.iter().any(|t| t.path == paths[i]) {
                            replaced.push(paths.remove(i));
                        }
                    }
                    1 if !paths.is_empty() => {
                        let p = paths[next(paths.len())].clone();
                        // A stored task, not one this round added or already replaced.
                        if !tasks.iter().any(|t| t.path == p) {
                            replaced.push(p.clone());
                            tasks.push(task(&p, round + 1));
                        }
                    }
                    _ => {
                        let p = format!("t{:03}", next(100));
                        if !paths.contains(&p) && !tasks.iter().any(|t| t.path == p) {
                            paths.push(p.clone());
                            tasks.push(task(&p, round + 1));
                        }
                    }
                }
            }
            paths.sort();
            let report = Report {
                reused_count: paths.len() - tasks.len(),
                tasks,
                replaced,
                ..Report::default()
            };
            let commit = format!("{round:040}");
            let copied = report_bytes("main", &commit, &report, &config, Some(&base));
            let mut buffer = format!("blob {}\0", base.len()).into_bytes();
            let from = buffer.len();
            // Room to grow, so that a file edited in place stays in this very buffer.
            buffer.reserve(base.len() + 64 * 1024);
            buffer.extend_from_slice(&base);
            let given = buffer.as_ptr();
            let edited = report_bytes_in("main", &commit, &report, &config, buffer, from);
            assert_eq!(
                copied.as_deref().map(String::from_utf8_lossy),
                edited.as_deref().map(String::from_utf8_lossy),
                "round {round}"
            );
            in_place += usize::from(edited.is_some_and(|e| e.as_ptr() == given));
            base = copied.expect("a manifest");
            assert_eq!(task_lines(&base).map(|l| l.len()), Some(paths.len()));
        }
        // Nearly every round edits the stored buffer itself (the rest empty the list or touch
        // more than 16 runs of lines, and are copied).
        assert!(in_place > 250, "{in_place} of 300 rounds edited in place");
        // A stored file in another layout (a blank line between two tasks) is copied, and
        // comes out in this writer's layout.
        let odd = String::from_utf8(base.clone())
            .expect("text")
            .replacen(",\n    [", ",\n\n    [", 1)
            .into_bytes();
        let report = Report {
            reused_count: paths.len(),
            ..Report::default()
        };
        let from_odd = report_bytes_in("main", &"2".repeat(40), &report, &config, odd, 0);
        let from_base = report_bytes("main", &"2".repeat(40), &report, &config, Some(&base));
        assert_eq!(from_odd, from_base);
    }

    #[test]
    fn bytes_are_deterministic_and_sorted() {
        let mut index = Index {
            schema: 1,
            settings: None,
            branches: BTreeMap::new(),
        };
        index.branches.insert(
            "master".into(),
            IndexEntry {
                commit: "a".repeat(40),
                manifest: branch_file("master"),
                sha256: "b".repeat(64),
            },
        );
        let text = String::from_utf8(to_bytes(&index)).expect("utf8");
        assert!(text.find("\"branches\"") < text.find("\"schema\""));
        assert_eq!(to_bytes(&index), to_bytes(&index.clone()));
    }

    fn sample() -> Branch<'static> {
        let d = Diagnostic::error("code", "p/runtask.yml", "m")
            .at(1, 2)
            .help("h")
            .task("p");
        let task = |path: &str, diagnostics: Vec<Diagnostic>| Task {
            arches: vec!["x86_64".into()],
            branches: vec!["f4*".into()],
            desc: Some("d \"quoted\"".into()),
            diagnostics,
            formula: formula_of(path).into(),
            formula_sha256: None,
            maintainer: Some("m".into()),
            name: None,
            namespace: Some("dist".into()),
            item_types: vec!["koji_build".into()],
            path: path.to_string().into(),
            run: true,
            tree: Some("a".repeat(40).into()),
            valid: path != "p",
        };
        Branch {
            branch: "b".into(),
            commit: "c".repeat(40),
            policy: "reject".into(),
            problems: vec![d.clone()],
            schema: SCHEMA_VERSION,
            tasks: vec![task(".", vec![]), task("p", vec![d])],
            validator: "v".into(),
        }
    }

    /// The whole file is checked as UTF-8 at once; one that is not still says where it breaks.
    #[test]
    fn a_branch_file_that_is_not_utf8_is_refused_with_its_place() {
        let bytes = branch_bytes(&sample());
        assert_eq!(
            parse_branch(&bytes, MAX_MANIFEST_BYTES).ok(),
            Some(sample())
        );
        let text = String::from_utf8(bytes).expect("utf8");
        let at = text.find("\"p\"").expect("task p") + 1;
        let mut bad = text.into_bytes();
        bad[at] = 0xff;
        match parse_branch(&bad, MAX_MANIFEST_BYTES) {
            Err(ReadError::Malformed(m)) => assert!(m.contains("line"), "{m}"),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn keys_are_sorted_and_rows_follow_the_columns() {
        let branch = sample();
        let text = String::from_utf8(branch_bytes(&branch)).expect("utf8");
        let keys = [
            "branch",
            "columns",
            "commit",
            "policy",
            "problems",
            "schema",
            "tasks",
            "validator",
        ];
        let at: Vec<usize> = keys
            .iter()
            .map(|k| text.find(&format!("\n  \"{k}\": ")).expect(k))
            .collect();
        assert!(at.windows(2).all(|w| w[0] < w[1]), "{text}");
        // Each row has its values in the order of `columns`; diagnostics only when there are some.
        let v: serde_json::Value = serde_json::from_str(&text).expect("json");
        assert_eq!(v["columns"], serde_json::json!(COLUMNS));
        assert_eq!(v["tasks"][0].as_array().map(Vec::len), Some(12));
        assert_eq!(v["tasks"][1].as_array().map(Vec::len), Some(13));
        let row: BTreeMap<&str, &serde_json::Value> = COLUMNS
            .iter()
            .copied()
            .zip(v["tasks"][1].as_array().expect("row"))
            .collect();
        let expected = serde_json::json!({
            "path": "p",
            "name": null,
            "namespace": "dist",
            "valid": false,
            "run": true,
            "item_types": ["koji_build"],
            "branches": ["f4*"],
            "arches": ["x86_64"],
            "formula_sha256": null,
            "tree": "a".repeat(40),
            "maintainer": "m",
            "desc": "d \"quoted\"",
            "diagnostics": [branch.problems[0]],
        });
        assert_eq!(serde_json::json!(row), expected);
        assert!(
            text.contains("\n    [\"p\",null,\"dist\",false,true,[\"koji_build\"],"),
            "{text}"
        );
        // Read back, it is the same manifest, the formula paths included.
        assert_eq!(
            parse_branch(text.as_bytes(), 1 << 20).expect("valid"),
            branch
        );
    }

    #[test]
    fn rows_borrow_plain_text_and_decode_escaped_text() {
        let bytes = format!(
            r#"{{"branch":"main","columns":{},"commit":"{}","policy":"reject","schema":4,"tasks":[
["t","t",null,true,true,["koji_build"],[],["noarch"],null,null,null,"caf\u00e9 \"quoted\""]
],"validator":"v"}}"#,
            json(&COLUMNS),
            "0".repeat(40)
        );
        let b = parse_branch(bytes.as_bytes(), 1 << 20).expect("valid");
        let t = &b.tasks[0];
        assert!(matches!(t.path, Cow::Borrowed("t")));
        assert!(matches!(t.name, Some(Cow::Borrowed("t"))));
        assert!(matches!(t.arches[0], Cow::Borrowed("noarch")));
        assert_eq!(t.desc.as_deref(), Some("caf\u{e9} \"quoted\""));
        assert_eq!(t.formula, "t/runtask.yml");
        assert_eq!(b.clone().into_owned(), b);
    }

    #[test]
    fn reads_version_3_objects_and_writes_them_as_rows() {
        let bytes = br#"{"branch":"main","commit":"0123456789012345678901234567890123456789","policy":"reject","schema":3,"tasks":[
{"arches":["noarch"],"branches":[],"desc":"caf\u00e9 \"quoted\"","formula":"t/runtask.yml","formula_sha256":null,"item_types":["koji_build"],"maintainer":null,"name":"t","namespace":null,"path":"t","run":true,"tree":null,"valid":true}
],"validator":"v"}"#;
        let b = parse_branch(bytes, 1 << 20).expect("valid");
        let t = &b.tasks[0];
        assert!(matches!(t.path, Cow::Borrowed("t")));
        assert!(matches!(t.name, Some(Cow::Borrowed("t"))));
        assert_eq!(t.desc.as_deref(), Some("caf\u{e9} \"quoted\""));
        let owned = b.clone().into_owned();
        assert_eq!(owned, b);
        // Written again, it is version 4, and reads back as the same tasks.
        let again = branch_bytes(&owned);
        let reread = parse_branch(&again, 1 << 20).expect("valid");
        assert_eq!(reread.schema, SCHEMA_VERSION);
        assert_eq!(reread.tasks, b.tasks);
        let lines = task_lines(&again).expect("lines");
        assert_eq!(line_path(lines[0]).as_deref(), Some("t"));
        // A stored formula path must be the task's own `runtask.yml`.
        let text = std::str::from_utf8(bytes).expect("utf8");
        for other in [
            "u/runtask.yml",
            "xt/runtask.yml",
            "t/runtask.yaml",
            "truntask.yml",
        ] {
            let moved = text.replace("\"t/runtask.yml\"", &format!("\"{other}\""));
            assert!(
                matches!(
                    parse_branch(moved.as_bytes(), 1 << 20),
                    Err(ReadError::Inconsistent(_))
                ),
                "{other}"
            );
        }
        assert!(is_formula_of("runtask.yml", "."));
        assert!(!is_formula_of("./runtask.yml", "."));
        // A version 3 line is not a row: the hooks do not carry it over.
        assert_eq!(line_path(r#"{"arches":[],"path":"t"}"#), None);
    }

    #[test]
    fn rows_and_versions_must_agree() {
        let good = String::from_utf8(branch_bytes(&sample())).expect("utf8");
        fn parsed(text: &str) -> Result<(), ReadError> {
            parse_branch(text.as_bytes(), 1 << 20).map(|_| ())
        }
        let inconsistent = |text: &str| matches!(parsed(text), Err(ReadError::Inconsistent(_)));
        let malformed = |text: &str| matches!(parsed(text), Err(ReadError::Malformed(_)));
        assert!(parsed(&good).is_ok());
        // Version 4 without its columns, or with others; an older version with them.
        let no_columns: String = good
            .lines()
            .filter(|l| !l.starts_with("  \"columns\""))
            .map(|l| format!("{l}\n"))
            .collect();
        assert!(inconsistent(&no_columns));
        let swapped = good.replacen("\"name\",\"namespace\"", "\"namespace\",\"name\"", 1);
        assert!(inconsistent(&swapped));
        assert!(inconsistent(
            &good.replace("\"schema\": 4", "\"schema\": 3")
        ));
        // Rows under an older version, an object among version 4's rows.
        assert!(inconsistent(
            &no_columns.replace("\"schema\": 4", "\"schema\": 3")
        ));
        let object = r#"{"arches":[],"branches":[],"formula":"t/runtask.yml","item_types":[],"path":"t","run":true,"valid":true}"#;
        let first_row = good.find("\n    [").expect("row") + 5;
        let row_end = first_row + good[first_row..].find(",\n").expect("end");
        let mixed = format!("{}{object}{}", &good[..first_row], &good[row_end..]);
        assert!(malformed(&mixed), "{mixed}");
        // Rows of 11 or 14 values.
        let desc = "\"d \\\"quoted\\\"\"]";
        assert!(good.contains(desc), "{good}");
        assert!(malformed(&good.replacen(&format!(",{desc}"), "]", 1)));
        assert!(malformed(&good.replacen(desc, "\"d\",[],1]", 1)));
        // A 13th value that is an empty list: the writer leaves it out, the schema refuses it.
        assert!(malformed(&good.replacen(desc, "\"d\",[]]", 1)));
    }

    #[test]
    fn a_task_listed_twice_is_refused_in_any_order() {
        let mut b = sample();
        let mut other = b.tasks[0].clone();
        other.path = "zz/last".into();
        other.formula = "zz/last/runtask.yml".into();
        b.tasks.push(other);
        let text = String::from_utf8(branch_bytes(&b)).expect("utf8");
        assert!(parse_branch(text.as_bytes(), 1 << 20).is_ok(), "{text}");
        let rows: Vec<&str> = text.lines().filter(|l| l.starts_with("    [")).collect();
        assert!(rows.len() >= 2, "{text}");
        let first = rows[0].trim_end_matches(',');
        // The first task again, right after itself (sorted order) and at the end (unsorted).
        let next_to_it = text.replacen(rows[0], &format!("{first},\n{}", rows[0]), 1);
        let last = rows[rows.len() - 1];
        let at_the_end = text.replacen(last, &format!("{last},\n{first}"), 1);
        for twice in [next_to_it, at_the_end] {
            let e = parse_branch(twice.as_bytes(), 1 << 20).expect_err("listed twice");
            assert!(e.to_string().contains("is listed twice"), "{e}\n{twice}");
        }
    }

    /// An index is read straight into its type, and read again through a generic value only
    /// when that fails: the answer (the index, or which error) is the one the generic reading
    /// alone gives.
    #[test]
    fn an_index_reads_as_through_a_generic_value() {
        let entry = r#"{"commit": "c", "manifest": "branches/main.json", "sha256": "s"}"#;
        let cases = [
            format!(r#"{{"branches": {{"main": {entry}}}, "schema": 4}}"#),
            format!(r#"{{"branches": {{"main": {entry}, "main": {entry}}}, "schema": 3}}"#),
            r#"{"branches": {}, "schema": 4, "schema": 2}"#.to_string(),
            format!(r#"{{"branches": {{"main": {entry}}}, "schema": 99, "new": 1}}"#),
            r#"{"branches": {}, "schema": 4, "unknown": true}"#.to_string(),
            r#"{"branches": {}, "schema": 4.0}"#.to_string(),
            r#"{"branches": {}, "schema": 4294967297}"#.to_string(),
            r#"{"branches": {}, "schema": -4}"#.to_string(),
            r#"{"branches": {}}"#.to_string(),
            r#"{"branches": [], "schema": 4}"#.to_string(),
            r#"[{}, 4]"#.to_string(),
            r#" [{}, 4]"#.to_string(),
            r#"{"branches": {"main": ["c", "branches/main.json", "s"]}, "schema": 4}"#.to_string(),
            r#"{"branches": {}, "schema": 4} x"#.to_string(),
            "not json".to_string(),
            String::new(),
        ];
        for case in cases {
            assert_eq!(
                format!("{:?}", parse_index(case.as_bytes(), 1 << 20)),
                format!("{:?}", parse_index_as_value(case.as_bytes())),
                "{case}"
            );
        }
    }

    #[test]
    fn rejects_other_schema_versions() {
        let e = parse_branch(br#"{"schema": 7}"#, 1000).expect_err("version");
        assert!(matches!(e, ReadError::Version(7)));
        let e = parse_branch(b"x".repeat(2000).as_slice(), 1000).expect_err("size");
        assert!(matches!(e, ReadError::TooLarge(2000, 1000)));
    }
}
