//! Validates one `runtask.yml` (libtaskotron 0.4 format plus taskhook's `scheduling:` section)
//! and extracts what the schedule manifest needs. Pure: bytes in, facts and diagnostics out.

use std::collections::BTreeSet;

use crate::config::Rules;
use crate::validate::diag::{did_you_mean, suggest, Diagnostic};
use crate::validate::yaml::{self, Node, Scalar, Value};

mod directives;
pub use directives::directive_names;

/// The item types a trigger can produce, as libtaskotron names them.
pub const ITEM_TYPES: &[&str] = &[
    "koji_build",
    "koji_tag",
    "bodhi_update",
    "compose",
    "dist_git_commit",
    "docker_image",
    "git_commit",
    "module_build",
    "pull_request",
];

/// Variables the runner defines for every task.
pub const BUILTINS: &[&str] = &[
    "workdir",
    "artifactsdir",
    "checkname",
    "jobid",
    "uuid",
    "taskdir",
];

/// Architectures the Fedora infrastructure builds for, for the `scheduling.arches` warning.
pub const KNOWN_ARCHES: &[&str] = &[
    "noarch", "x86_64", "i386", "i686", "aarch64", "armhfp", "armv7hl", "ppc64", "ppc64le", "s390x",
];

const TOP_KEYS: &[&str] = &[
    "name",
    "desc",
    "maintainer",
    "namespace",
    "input",
    "environment",
    "actions",
    "scheduling",
];

const SCHEDULING_KEYS: &[&str] = &["run", "item_types", "branches", "arches"];

/// When and where a task runs, after defaults are applied.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Schedule {
    pub run: bool,
    pub item_types: Vec<String>,
    pub branches: Vec<String>,
    pub arches: Vec<String>,
}

/// What the manifest records about a formula. Fields are best effort when the formula is invalid.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Formula {
    pub name: Option<String>,
    pub desc: Option<String>,
    pub maintainer: Option<String>,
    pub namespace: Option<String>,
    pub schedule: Schedule,
}

/// The most findings one formula gets; past them, one more says how many were left out. A
/// formula at the size limit can hold thousands of mistakes (6,000 unknown keys), each a line
/// for the pusher and an entry in the manifest: the pusher needs the first ones, and a server
/// checking thousands of such formulas in one push must not hold and print them all.
pub const MAX_FINDINGS: usize = 50;

/// Validates formula `bytes` stored at `file` (repo-relative) for task `task`.
pub fn validate(bytes: &[u8], file: &str, task: &str, rules: &Rules) -> (Formula, Vec<Diagnostic>) {
    let mut v = Validator {
        file,
        task,
        diags: Vec::new(),
        input_args: Vec::new(),
    };
    let formula = match yaml::parse(bytes, &rules.limits) {
        Ok(root) => v.formula(&root, rules),
        Err(e) => {
            v.yaml_error(&e);
            Formula::empty()
        }
    };
    (formula, at_most(v.diags, file, task))
}

/// `diags` cut to [`MAX_FINDINGS`], the last of them saying how many more there were (an
/// error if any of those was one, so the verdict stays what it was).
fn at_most(mut diags: Vec<Diagnostic>, file: &str, task: &str) -> Vec<Diagnostic> {
    if diags.len() <= MAX_FINDINGS {
        return diags;
    }
    let left_out = diags.split_off(MAX_FINDINGS - 1);
    let errors = left_out.iter().filter(|d| d.is_error()).count();
    let warnings = left_out.len() - errors;
    let counted = |n: usize, what: &str| match n {
        0 => None,
        1 => Some(format!("1 more {what}")),
        n => Some(format!("{n} more {what}s")),
    };
    let what: Vec<String> = [counted(errors, "error"), counted(warnings, "warning")]
        .into_iter()
        .flatten()
        .collect();
    let message = format!(
        "{} in this formula from here on are not listed (at most {MAX_FINDINGS} findings a formula)",
        what.join(" and ")
    );
    let mut more = if errors > 0 {
        Diagnostic::error("too-many-findings", file, message)
    } else {
        Diagnostic::warning("too-many-findings", file, message)
    };
    // Where the first finding left out is, so that it is listed after those kept.
    if let Some((line, column)) = left_out
        .iter()
        .find_map(|d| Some((d.line?, d.column.unwrap_or(1))))
    {
        more = more.at(line, column);
    }
    diags.push(
        more.help("fix the findings listed, then check again to see the rest")
            .task(task),
    );
    diags
}

impl Formula {
    pub fn empty() -> Self {
        Formula {
            name: None,
            desc: None,
            maintainer: None,
            namespace: None,
            schedule: Schedule {
                run: true,
                item_types: Vec::new(),
                branches: Vec::new(),
                arches: vec!["noarch".into()],
            },
        }
    }
}

struct Validator<'a> {
    file: &'a str,
    task: &'a str,
    diags: Vec<Diagnostic>,
    /// `input.args` as written, for suggestions.
    input_args: Vec<String>,
}

impl Validator<'_> {
    fn error(
        &mut self,
        code: &str,
        node: Option<&Node>,
        message: impl Into<String>,
    ) -> &mut Diagnostic {
        self.push(Diagnostic::error(code, self.file, message), node)
    }

    fn warning(
        &mut self,
        code: &str,
        node: Option<&Node>,
        message: impl Into<String>,
    ) -> &mut Diagnostic {
        self.push(Diagnostic::warning(code, self.file, message), node)
    }

    /// Whether the next finding is one the formula's list keeps ([`MAX_FINDINGS`]): advice
    /// that costs a search is worked out only for those.
    fn listed(&self) -> bool {
        self.diags.len() < MAX_FINDINGS - 1
    }

    fn push(&mut self, mut d: Diagnostic, node: Option<&Node>) -> &mut Diagnostic {
        if let Some(n) = node {
            d = d.at(n.pos.line, n.pos.column);
        }
        d = d.task(self.task);
        self.diags.push(d);
        self.diags.last_mut().expect("just pushed")
    }

    fn yaml_error(&mut self, e: &yaml::Error) {
        use yaml::ErrorKind as K;
        let (code, help) = match e.kind {
            K::TooLarge => (
                "formula-too-large",
                "keep data files beside the formula; the limit is `taskhook.maxFormulaBytes`".to_string(),
            ),
            K::NotUtf8 => ("not-utf8", "save the file as UTF-8".to_string()),
            K::Empty => (
                "empty-formula",
                "a formula needs at least `name`, `desc`, `maintainer` and `actions`".to_string(),
            ),
            K::Syntax => (
                "yaml-syntax",
                "indent with spaces only, and quote values that contain `{`, `[`, `: ` or ` #`".to_string(),
            ),
            K::TooDeep => (
                "yaml-limit",
                "formulas this deep are not plausible; the limit is `taskhook.maxYamlDepth`".to_string(),
            ),
            K::TooManyNodes | K::TooManyAliases => (
                "yaml-limit",
                "anchors and aliases must not multiply the document; write the values out".to_string(),
            ),
            K::DuplicateKey => (
                "duplicate-key",
                match e.first {
                    Some(p) => format!(
                        "the key is first defined at line {}, column {}; the runner would silently keep only the last one",
                        p.line, p.column
                    ),
                    None => "the runner would silently keep only the last one; remove one".to_string(),
                },
            ),
            K::MultipleDocuments => (
                "yaml-syntax",
                "remove the `---` separator and everything after the first document".to_string(),
            ),
            K::UnsupportedTag => ("yaml-tag", "remove the tag".to_string()),
            K::Character => (
                "yaml-character",
                "delete it; inside a double-quoted string, an escape such as \"\\u2028\" says the same unambiguously".to_string(),
            ),
            K::Directive => ("yaml-directive", "remove the directive line".to_string()),
            K::Merge => (
                "yaml-merge",
                "merge a mapping (`<<: *base`) or a list of mappings (`<<: [*a, *b]`)".to_string(),
            ),
        };
        let help = e.help.clone().unwrap_or(help);
        let d = Diagnostic::error(code, self.file, e.message.clone())
            .at(e.pos.line, e.pos.column)
            .help(help)
            .task(self.task);
        self.diags.push(d);
        for more in &e.more {
            self.yaml_error(more);
        }
    }

    fn formula(&mut self, root: &Node, rules: &Rules) -> Formula {
        let mut f = Formula::empty();
        let Some(entries) = root.as_map() else {
            self.error(
                "not-a-mapping",
                Some(root),
                format!("a formula must be a mapping, not {}", root.type_name()),
            )
            .help = Some("start with `name: ...`, `desc: ...`, `maintainer: ...`".into());
            return f;
        };
        self.bool_keys(root, "");
        for (key, _) in entries {
            let k = key.key_name();
            let k: &str = &k;
            if TOP_KEYS.contains(&k) {
                continue;
            }
            if k == "task" {
                self.error(
                    "legacy-task-key",
                    Some(key),
                    "`task:` is the 2014 name of the action list",
                )
                .help = Some("rename `task:` to `actions:` (libtaskotron 0.4 format)".into());
            } else {
                let help = suggest(k, TOP_KEYS, || {
                    format!("allowed keys: {}", TOP_KEYS.join(", "))
                });
                self.error(
                    "unknown-key",
                    Some(key),
                    format!("unknown key `{k}` in the formula"),
                )
                .help = Some(help);
            }
        }
        f.name = self.required_string(root, "name");
        f.desc = self.required_string(root, "desc");
        f.maintainer = self.required_string(root, "maintainer");
        if let Some(ns) = root.get("namespace") {
            match ns.as_str() {
                Some(s) if rules.namespaces.iter().any(|n| n == s) => f.namespace = Some(s.into()),
                Some(s) => {
                    let allowed: Vec<&str> = rules.namespaces.iter().map(String::as_str).collect();
                    let help = suggest(s, &allowed, || {
                        format!("allowed namespaces: {}", allowed.join(", "))
                    });
                    self.error(
                        "bad-namespace",
                        Some(ns),
                        format!("namespace `{s}` is not allowed on this server"),
                    )
                    .help = Some(help);
                    f.namespace = Some(s.into());
                }
                None => {
                    self.wrong_type(ns, "namespace", "a string");
                }
            }
        }
        let args = self.input(root);
        self.input_args = args.clone();
        self.environment(root);
        self.actions(root, &args);
        f.schedule = self.scheduling(root, &args);
        f
    }

    fn wrong_type(&mut self, node: &Node, what: &str, expected: &str) {
        let help = match &node.value {
            Value::Scalar {
                text,
                plain: true,
                read,
            } if !matches!(read, Scalar::Str) && expected == "a string" => {
                format!(
                    "the runner reads `{text}` as {}; quote it: \"{text}\"",
                    node.type_name()
                )
            }
            _ => format!("write {expected} here"),
        };
        self.error(
            "wrong-type",
            Some(node),
            format!("`{what}` must be {expected}, not {}", node.type_name()),
        )
        .help = Some(help);
    }

    fn required_string(&mut self, root: &Node, key: &str) -> Option<String> {
        match root.get(key) {
            None => {
                self.error("missing-field", None, format!("the formula has no `{key}`"))
                    .help = Some(format!(
                    "add a top-level `{key}:` line (required by libtaskotron)"
                ));
                None
            }
            Some(n) => match n.as_str() {
                Some(s) if !s.trim().is_empty() => Some(s.to_string()),
                Some(_) => {
                    self.error("missing-field", Some(n), format!("`{key}` is empty"))
                        .help = Some(format!("give `{key}` a value"));
                    None
                }
                None => {
                    self.wrong_type(n, key, "a string");
                    None
                }
            },
        }
    }

    /// Checks `input.args`; returns the declared argument names.
    fn input(&mut self, root: &Node) -> Vec<String> {
        let mut args = Vec::new();
        let Some(input) = root.get("input") else {
            return args;
        };
        if input.is_null() {
            return args;
        }
        let Some(entries) = input.as_map() else {
            self.wrong_type(input, "input", "a mapping with `args`");
            return args;
        };
        for (k, _) in entries {
            if k.scalar_text() != Some("args") {
                let name = k.key_name();
                let name: &str = &name;
                let help = suggest(name, &["args"], || "`input` takes only `args`".into());
                self.error(
                    "unknown-key",
                    Some(k),
                    format!("unknown key `{name}` in `input`"),
                )
                .help = Some(help);
            }
        }
        let Some(list) = input.get("args") else {
            return args;
        };
        let Some(items) = list.as_seq() else {
            if !list.is_null() {
                self.wrong_type(list, "input.args", "a list of item types");
            }
            return args;
        };
        let mut allowed: Vec<&str> = ITEM_TYPES.to_vec();
        allowed.push("arch");
        let mut seen = std::collections::HashSet::new();
        for item in items {
            let Some(s) = item.as_str() else {
                self.wrong_type(item, "input.args entry", "a string");
                continue;
            };
            if !seen.insert(s) {
                self.warning(
                    "duplicate-arg",
                    Some(item),
                    format!("`{s}` is listed twice in `input.args`"),
                )
                .help = Some("remove the repeated entry".into());
                continue;
            }
            if !allowed.contains(&s) {
                let help = if self.listed() {
                    suggest(s, &allowed, || {
                        format!("item types: {}; or `arch`", ITEM_TYPES.join(", "))
                    })
                } else {
                    String::new()
                };
                self.error(
                    "unknown-input-arg",
                    Some(item),
                    format!("`{s}` is not an item type the trigger can pass"),
                )
                .help = Some(help);
            }
            args.push(s.to_string());
        }
        args
    }

    fn environment(&mut self, root: &Node) {
        let Some(env) = root.get("environment") else {
            return;
        };
        if env.is_null() {
            return;
        }
        let Some(entries) = env.as_map() else {
            self.wrong_type(env, "environment", "a mapping with `rpm`");
            return;
        };
        for (k, v) in entries {
            let name = k.key_name();
            let name: &str = &name;
            if name != "rpm" {
                let help = suggest(name, &["rpm"], || "`environment` takes only `rpm`".into());
                self.error(
                    "unknown-key",
                    Some(k),
                    format!("unknown key `{name}` in `environment`"),
                )
                .help = Some(help);
                continue;
            }
            if v.is_null() {
                continue;
            }
            match v.as_seq() {
                Some(items) => {
                    for item in items {
                        if item.as_str().is_none() {
                            self.wrong_type(item, "environment.rpm entry", "a package name");
                        }
                    }
                }
                None => self.wrong_type(v, "environment.rpm", "a list of package names"),
            }
        }
    }

    fn actions(&mut self, root: &Node, args: &[String]) {
        let Some(actions) = root.get("actions") else {
            if root.get("task").is_none() {
                self.error("missing-field", None, "the formula has no `actions`")
                    .help = Some("add `actions:` with at least one `- name: ...` step".into());
            }
            return;
        };
        let Some(items) = actions.as_seq() else {
            self.wrong_type(actions, "actions", "a list of actions");
            return;
        };
        if items.is_empty() {
            self.error("empty-actions", Some(actions), "`actions` is empty")
                .help = Some("a task needs at least one action".into());
            return;
        }
        let mut defined: BTreeSet<String> = args.iter().cloned().collect();
        defined.extend(BUILTINS.iter().map(|s| s.to_string()));
        for action in items {
            self.action(action, &mut defined);
        }
    }

    fn action(&mut self, action: &Node, defined: &mut BTreeSet<String>) {
        let Some(entries) = action.as_map() else {
            self.wrong_type(
                action,
                "an action",
                "a mapping with `name` and one directive",
            );
            return;
        };
        let label = action
            .get("name")
            .and_then(Node::as_str)
            .map(|s| format!(" in action `{s}`"))
            .unwrap_or_default();
        match action.get("name") {
            None => {
                self.error("missing-field", Some(action), "this action has no `name`")
                    .help = Some("add `name: <what this step does>`".into());
            }
            Some(n) if n.as_str().is_none() => self.wrong_type(n, "name", "a string"),
            _ => {}
        }
        let names = directive_names();
        let mut directives: Vec<(&Node, &Node)> = Vec::new();
        for (k, v) in entries {
            let key = k.key_name();
            let key: &str = &key;
            if key == "name" || key == "export" {
                continue;
            }
            if names.contains(&key) {
                directives.push((k, v));
            } else {
                let help = did_you_mean(key, &names)
                    .or_else(|| did_you_mean(key, &["name", "export"]))
                    .map(|s| format!("did you mean `{s}`?"))
                    .unwrap_or_else(|| format!("directives: {}", names.join(", ")));
                self.error(
                    "unknown-directive",
                    Some(k),
                    format!("unknown directive `{key}`{label}"),
                )
                .help = Some(help);
            }
        }
        match directives.len() {
            0 if !entries.iter().any(|(k, _)| {
                let key = k.key_name();
                let key: &str = &key;
                key != "name" && key != "export"
            }) =>
            {
                self.error(
                    "missing-directive",
                    Some(action),
                    format!("no directive{label}"),
                )
                .help = Some(format!("add one of: {}", names.join(", ")));
            }
            0 | 1 => {}
            _ => {
                let listed: Vec<&str> = directives
                    .iter()
                    .filter_map(|(k, _)| k.scalar_text())
                    .collect();
                self.error(
                    "many-directives",
                    Some(directives[1].0),
                    format!("more than one directive{label}: {}", listed.join(", ")),
                )
                .help = Some("split this into one action per directive".into());
            }
        }
        for (k, v) in &directives {
            let name = k.key_name();
            let name: &str = &name;
            self.directive(name, k, v, &label);
            self.variables(v, defined, &label);
        }
        if let Some(export) = action.get("export") {
            match export.as_str() {
                Some(s) if is_identifier(s) => {
                    defined.insert(s.to_string());
                }
                Some(s) => {
                    self.error(
                        "bad-export",
                        Some(export),
                        format!("`{s}` is not a valid variable name"),
                    )
                    .help = Some("use letters, digits and `_`, not starting with a digit".into());
                }
                None => self.wrong_type(export, "export", "a variable name"),
            }
        }
    }

    /// Reports every `$var` / `${var}` / `${var.attr}` not defined before this action.
    fn variables(&mut self, node: &Node, defined: &BTreeSet<String>, label: &str) {
        match &node.value {
            Value::Scalar { text, plain, .. } => {
                for (offset, name) in variable_refs(text) {
                    if defined.contains(name) {
                        continue;
                    }
                    let mut d = Diagnostic::error(
                        "undefined-variable",
                        self.file,
                        format!("`${name}` is not defined{label}"),
                    )
                    .task(self.task);
                    let column = if *plain && !text.contains('\n') {
                        node.pos.column + text[..offset].chars().count() as u32
                    } else {
                        node.pos.column
                    };
                    d = d.at(node.pos.line, column);
                    if !self.listed() {
                        // Left out of the list: its advice, which searches every variable
                        // and argument, would be read by no one.
                        self.diags.push(d);
                        continue;
                    }
                    let candidates: Vec<&str> = defined.iter().map(String::as_str).collect();
                    let is_arg_name = ITEM_TYPES.contains(&name) || name == "arch";
                    // A correct item type whose `input.args` entry is misspelled: point at the
                    // entry, not away from the correct name.
                    let misspelled_arg = self
                        .input_args
                        .iter()
                        .filter(|a| !ITEM_TYPES.contains(&a.as_str()) && a.as_str() != "arch")
                        .find(|a| did_you_mean(a, &[name]).is_some())
                        .cloned();
                    d.help = Some(match (is_arg_name, misspelled_arg, did_you_mean(name, &candidates)) {
                        (true, Some(a), _) => format!(
                            "`{name}` is an item type: list it in `input.args` (which has `{a}`: did you mean `{name}` there?)"
                        ),
                        (true, None, _) => format!("`{name}` is an item type: list it in `input.args`"),
                        (false, _, Some(m)) => format!("did you mean `${{{m}}}`?"),
                        (false, _, None) => format!(
                            "variables come from `input.args`, the runner ({}) or an earlier action's `export`",
                            BUILTINS.join(", ")
                        ),
                    });
                    self.diags.push(d);
                }
            }
            Value::Seq(items) => {
                for i in items {
                    self.variables(i, defined, label);
                }
            }
            Value::Map(entries) => {
                for (_, v) in entries {
                    self.variables(v, defined, label);
                }
            }
        }
    }

    fn scheduling(&mut self, root: &Node, args: &[String]) -> Schedule {
        let item_args: Vec<String> = args
            .iter()
            .filter(|a| ITEM_TYPES.contains(&a.as_str()))
            .cloned()
            .collect();
        let mut s = Schedule {
            run: true,
            item_types: item_args.clone(),
            branches: Vec::new(),
            arches: vec!["noarch".into()],
        };
        if let Some(sched) = root.get("scheduling") {
            if let Some(entries) = sched.as_map() {
                for (k, v) in entries {
                    let key = k.key_name();
                    let key: &str = &key;
                    if is_bool_key(k) {
                        // Reported by `bool_keys`, with the rename to `item_types` as its fix.
                        continue;
                    }
                    match key {
                        "run" => {
                            if self.unambiguous(v, true) {
                                match v.value {
                                    Value::Scalar {
                                        read: Scalar::Bool(b),
                                        ..
                                    } => s.run = b,
                                    _ => self.wrong_type(v, "scheduling.run", "true or false"),
                                }
                            }
                        }
                        "item_types" => {
                            if let Some(list) =
                                self.string_list(v, "scheduling.item_types", "item types")
                            {
                                for (node, t) in &list {
                                    if !ITEM_TYPES.contains(&t.as_str()) {
                                        let help = suggest(t, ITEM_TYPES, || {
                                            format!("item types: {}", ITEM_TYPES.join(", "))
                                        });
                                        self.error(
                                            "unknown-item-type",
                                            Some(node),
                                            format!("`{t}` is not an item type"),
                                        )
                                        .help = Some(help);
                                    } else if !args.contains(t) {
                                        self.warning("trigger-not-input", Some(node), format!("the task is triggered by `{t}` but does not list it in `input.args`"))
                                            .help = Some(format!("add `{t}` to `input.args` so the runner passes the item"));
                                    }
                                }
                                s.item_types = list.into_iter().map(|(_, t)| t).collect();
                            }
                        }
                        "branches" => {
                            if let Some(list) =
                                self.string_list(v, "scheduling.branches", "branch names or globs")
                            {
                                s.branches = list.into_iter().map(|(_, t)| t).collect();
                            }
                        }
                        "arches" => {
                            if let Some(list) =
                                self.string_list(v, "scheduling.arches", "architectures")
                            {
                                for (node, a) in &list {
                                    if !KNOWN_ARCHES.contains(&a.as_str()) {
                                        let help = suggest(a, KNOWN_ARCHES, || {
                                            format!("known: {}", KNOWN_ARCHES.join(", "))
                                        });
                                        self.warning(
                                            "unknown-arch",
                                            Some(node),
                                            format!(
                                                "`{a}` is not an architecture Fedora builds for"
                                            ),
                                        )
                                        .help = Some(help);
                                    }
                                }
                                if list.is_empty() {
                                    self.error("wrong-type", Some(v), "`scheduling.arches` is empty; no job would ever be created")
                                        .help = Some("list at least one architecture, or remove the key for [noarch]".into());
                                } else {
                                    s.arches = list.into_iter().map(|(_, t)| t).collect();
                                }
                            }
                        }
                        _ => {
                            let help = suggest(key, SCHEDULING_KEYS, || {
                                format!("allowed keys: {}", SCHEDULING_KEYS.join(", "))
                            });
                            self.error(
                                "unknown-key",
                                Some(k),
                                format!("unknown key `{key}` in `scheduling`"),
                            )
                            .help = Some(help);
                        }
                    }
                }
            } else if !sched.is_null() {
                self.wrong_type(sched, "scheduling", "a mapping");
            }
        }
        let unknown_args = args
            .iter()
            .any(|a| a != "arch" && !ITEM_TYPES.contains(&a.as_str()));
        if s.run && s.item_types.is_empty() && !unknown_args {
            let node = root.get("scheduling").or_else(|| root.get("input"));
            self.warning("never-triggered", node, "no event can trigger this task: it names no item type")
                .help = Some(format!(
                    "add an item type to `input.args` ({}), or set `scheduling: {{run: false}}` to keep it dormant on purpose",
                    ITEM_TYPES.join(", ")
                ));
        }
        s
    }

    /// Reports every key the runner's YAML 1.1 reader loads as a boolean (`on`, `yes`, `off`...):
    /// PyYAML turns `on:` into the key `True`, so such a key never means what it says.
    fn bool_keys(&mut self, node: &Node, path: &str) {
        match &node.value {
            Value::Map(entries) => {
                for (k, v) in entries {
                    let name = k.key_name();
                    let here = if path.is_empty() {
                        name.to_string()
                    } else {
                        format!("{path}.{name}")
                    };
                    if is_bool_key(k) {
                        let help = if path == "scheduling" && name.eq_ignore_ascii_case("on") {
                            "rename it to `item_types` (the key was `on` in taskhook's first version)".to_string()
                        } else {
                            format!("quote it (`\"{name}\":`) if you mean the word")
                        };
                        let b = matches!(
                            k.value,
                            Value::Scalar {
                                read: Scalar::Bool(true),
                                ..
                            }
                        );
                        self.error(
                            "yaml-bool-key",
                            Some(k),
                            format!(
                                "the key `{name}` is the boolean {} to the runner's YAML 1.1 reader (PyYAML), not the word `{name}`",
                                if b { "True" } else { "False" }
                            ),
                        )
                        .help = Some(help);
                    }
                    self.bool_keys(v, &here);
                }
            }
            Value::Seq(items) => {
                for i in items {
                    self.bool_keys(i, path);
                }
            }
            Value::Scalar { .. } => {}
        }
    }

    /// In `scheduling`, a plain scalar that YAML 1.1 and 1.2 read differently is an error. Where
    /// a boolean is wanted (`run`) the fix is to write it plainly; elsewhere, to quote it.
    fn unambiguous(&mut self, node: &Node, wants_bool: bool) -> bool {
        if let Value::Scalar {
            text,
            plain: true,
            read,
        } = &node.value
        {
            if let Some(other) = yaml::yaml12_reading(text) {
                let help = match read {
                    Scalar::Bool(b) if wants_bool => format!("write {b}"),
                    _ => format!("quote it (\"{text}\") if you mean the string"),
                };
                self.error(
                    "ambiguous-yaml",
                    Some(node),
                    format!(
                        "`{text}` is {} to the runner's YAML 1.1 reader but {other} to YAML 1.2 readers",
                        yaml::describe_yaml11(read, text)
                    ),
                )
                .help = Some(help);
                return false;
            }
        }
        true
    }

    fn string_list(
        &mut self,
        node: &Node,
        what: &str,
        expected: &str,
    ) -> Option<Vec<(Node, String)>> {
        let Some(items) = node.as_seq() else {
            let help = match node.scalar_text() {
                Some(t) if !node.is_null() => format!("write a list: [{t}]"),
                _ => format!("write a list of {expected}"),
            };
            self.error(
                "wrong-type",
                Some(node),
                format!(
                    "`{what}` must be a list of {expected}, not {}",
                    node.type_name()
                ),
            )
            .help = Some(help);
            return None;
        };
        let mut out = Vec::new();
        let mut ok = true;
        for item in items {
            if !self.unambiguous(item, false) {
                ok = false;
                continue;
            }
            match item.as_str() {
                Some(s) => out.push((item.clone(), s.to_string())),
                None => {
                    ok = false;
                    self.wrong_type(item, &format!("{what} entry"), "a string");
                }
            }
        }
        ok.then_some(out)
    }
}

/// A plain key that YAML 1.1 resolves to a boolean.
fn is_bool_key(k: &Node) -> bool {
    matches!(
        k.value,
        Value::Scalar {
            read: Scalar::Bool(_),
            plain: true,
            ..
        }
    )
}

fn is_identifier(s: &str) -> bool {
    let mut chars = s.chars();
    chars
        .next()
        .is_some_and(|c| c == '_' || c.is_ascii_alphabetic())
        && chars.all(|c| c == '_' || c.is_ascii_alphanumeric())
}

fn is_variable(node: &Node) -> bool {
    node.as_str().is_some_and(|s| !variable_refs(s).is_empty())
}

/// The variables a string refers to, with the byte offset of each `$`. `$$` is a literal dollar.
pub fn variable_refs(text: &str) -> Vec<(usize, &str)> {
    let bytes = text.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] != b'$' {
            i += 1;
            continue;
        }
        if bytes.get(i + 1) == Some(&b'$') {
            i += 2;
            continue;
        }
        let braced = bytes.get(i + 1) == Some(&b'{');
        let start = i + 1 + usize::from(braced);
        let mut end = start;
        while end < bytes.len() && (bytes[end] == b'_' || bytes[end].is_ascii_alphanumeric()) {
            end += 1;
        }
        if end > start && !bytes[start].is_ascii_digit() {
            out.push((i, &text[start..end]));
        }
        i = end.max(i + 1);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn variable_references() {
        let refs: Vec<&str> = variable_refs("a $x ${y} ${c.name} $$z $1")
            .into_iter()
            .map(|(_, n)| n)
            .collect();
        assert_eq!(refs, vec!["x", "y", "c"]);
    }

    const HEAD: &str =
        "name: t\ndesc: d\nmaintainer: m\nactions:\n  - name: run\n    shell: [ls]\n";

    /// A formula of thousands of mistakes gets the first ones and a count of the rest, on the
    /// line of the first one left out; the verdict stays an error.
    #[test]
    fn findings_past_the_most_a_formula_gets_are_counted() {
        let mut text = format!("{HEAD}environment:\n");
        for i in 0..60 {
            text.push_str(&format!("  k{i}: 1\n"));
        }
        let (_, diags) = validate(text.as_bytes(), "t/runtask.yml", "t", &Rules::default());
        assert_eq!(diags.len(), MAX_FINDINGS);
        let last = diags.last().expect("a last finding");
        assert_eq!(
            (last.code.as_str(), last.is_error()),
            ("too-many-findings", true)
        );
        assert_eq!(
            last.message,
            "11 more errors and 1 more warning in this formula from here on are not listed (at most \
             50 findings a formula)"
        );
        // `k49` is the first key left out, on line 8 + 49.
        assert_eq!((last.line, last.column), (Some(57), Some(3)));
        assert!(diags[..MAX_FINDINGS - 1]
            .iter()
            .all(|d| d.code == "unknown-key"));
    }

    /// Findings left out are still counted, though their advice (a search of every variable
    /// and argument) is worked out only for those listed.
    #[test]
    fn undefined_variables_past_the_most_are_counted() {
        let refs = "${koji_tag}".repeat(60);
        let text = format!(
            "name: t\ndesc: d\nmaintainer: m\ninput:\n  args: [koji_tga]\nactions:\n  - name: run\n    shell: ['{refs}']\n"
        );
        let (_, diags) = validate(text.as_bytes(), "t/runtask.yml", "t", &Rules::default());
        assert_eq!(diags.len(), MAX_FINDINGS);
        let listed = diags.iter().filter(|d| d.code == "undefined-variable");
        assert!(listed.clone().all(|d| d
            .help
            .as_deref()
            .is_some_and(|h| h.contains("did you mean `koji_tag`"))));
        let last = diags.last().expect("a last finding");
        assert_eq!(last.code, "too-many-findings");
        let shown = listed.count()
            + diags
                .iter()
                .filter(|d| d.code == "unknown-input-arg")
                .count();
        assert_eq!(shown, MAX_FINDINGS - 1);
        assert!(
            last.message.starts_with("12 more errors "),
            "{}",
            last.message
        );
    }

    /// Only warnings left out: the count is a warning, and the formula stays valid.
    #[test]
    fn warnings_past_the_most_keep_a_formula_valid() {
        let args = vec!["koji_build"; 60].join(", ");
        let text = format!("{HEAD}input:\n  args: [{args}]\n");
        let (_, diags) = validate(text.as_bytes(), "t/runtask.yml", "t", &Rules::default());
        assert_eq!(diags.len(), MAX_FINDINGS);
        assert!(diags.iter().all(|d| !d.is_error()), "{diags:?}");
        let last = diags.last().expect("a last finding");
        assert_eq!(last.code, "too-many-findings");
        assert!(
            last.message.starts_with("10 more warnings "),
            "{}",
            last.message
        );
    }
}
