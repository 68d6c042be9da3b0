//! The directives of libtaskotron 0.4 and the checks on their parameters: which parameters each
//! takes, which it needs, and the values the runner would reject.

use super::{is_variable, Validator};
use crate::validate::diag::suggest;
use crate::validate::yaml::{Node, Scalar, Value};

/// A directive's parameters: (name, required). `open` directives accept any extra parameter.
struct DirectiveSpec {
    name: &'static str,
    params: &'static [&'static str],
    required: &'static [&'static str],
    open: bool,
}

const DIRECTIVES: &[DirectiveSpec] = &[
    DirectiveSpec {
        name: "koji",
        params: &[
            "action",
            "koji_build",
            "koji_tag",
            "arch",
            "arch_exclude",
            "src",
            "debuginfo",
            "build_log",
            "target_dir",
        ],
        required: &["action", "arch"],
        open: false,
    },
    DirectiveSpec {
        name: "bodhi",
        params: &["action", "update_id", "arch", "src", "target_dir"],
        required: &["action", "update_id", "arch"],
        open: false,
    },
    DirectiveSpec {
        name: "distgit",
        params: &[
            "package",
            "nvr",
            "gitref",
            "namespace",
            "path",
            "localpath",
            "target_dir",
            "baseurl",
            "ignore_missing",
        ],
        required: &["path"],
        open: false,
    },
    DirectiveSpec {
        name: "resultsdb",
        params: &["results", "file"],
        required: &[],
        open: false,
    },
    DirectiveSpec {
        name: "create_report",
        params: &["results", "file", "template", "path"],
        required: &[],
        open: false,
    },
    DirectiveSpec {
        name: "createrepo",
        params: &["repodir"],
        required: &["repodir"],
        open: false,
    },
    DirectiveSpec {
        name: "dummy",
        params: &["result", "msg"],
        required: &["result"],
        open: false,
    },
    DirectiveSpec {
        name: "exitcode",
        params: &["result_worst", "result_last"],
        required: &[],
        open: false,
    },
    DirectiveSpec {
        name: "xunit",
        params: &["xunit_file", "aggregation"],
        required: &["xunit_file"],
        open: false,
    },
    DirectiveSpec {
        name: "yumrepoinfo",
        params: &["koji_tag", "arch"],
        required: &["koji_tag"],
        open: false,
    },
    DirectiveSpec {
        name: "python",
        params: &["file", "callable"],
        required: &["file", "callable"],
        open: true,
    },
    DirectiveSpec {
        name: "shell",
        params: &[],
        required: &[],
        open: false,
    },
];

/// Directive names, for suggestions.
pub fn directive_names() -> Vec<&'static str> {
    DIRECTIVES.iter().map(|d| d.name).collect()
}

impl Validator<'_> {
    pub(super) fn directive(&mut self, name: &str, key: &Node, params: &Node, label: &str) {
        let Some(spec) = DIRECTIVES.iter().find(|d| d.name == name) else {
            return;
        };
        if name == "shell" {
            self.shell(key, params, label);
            return;
        }
        let Some(entries) = params.as_map() else {
            let expected = format!("a mapping of parameters ({})", spec.params.join(", "));
            self.error(
                "wrong-type",
                Some(if params.is_null() { key } else { params }),
                format!(
                    "`{name}` takes a mapping of parameters, not {}",
                    params.type_name()
                ),
            )
            .help = Some(format!("write {expected}"));
            return;
        };
        for (k, _) in entries {
            let p = k.key_name();
            let p: &str = &p;
            if !spec.open && !spec.params.contains(&p) {
                let help = suggest(p, spec.params, || {
                    format!("`{name}` takes: {}", spec.params.join(", "))
                });
                self.error(
                    "unknown-parameter",
                    Some(k),
                    format!("`{name}` has no parameter `{p}`"),
                )
                .help = Some(help);
            }
        }
        for req in spec.required {
            if params.get(req).is_none() {
                self.error(
                    "missing-parameter",
                    Some(key),
                    format!("`{name}` needs the parameter `{req}`{label}"),
                )
                .help = Some(format!("add `{req}: ...` under `{name}:`"));
            }
        }
        for (k, v) in entries {
            let p = k.key_name();
            let p: &str = &p;
            match p {
                "src" | "debuginfo" | "build_log" | "ignore_missing" => {
                    self.boolean_param(name, p, v)
                }
                "path" | "localpath" => {
                    if v.as_seq().is_none() && !is_variable(v) {
                        self.wrong_type(v, &format!("{name}.{p}"), "a list of paths");
                    }
                }
                "arch" | "arch_exclude" => {
                    let ok = v.as_str().is_some()
                        || v.as_seq()
                            .is_some_and(|s| s.iter().all(|i| i.as_str().is_some()));
                    if !ok {
                        self.wrong_type(
                            v,
                            &format!("{name}.{p}"),
                            "an architecture or a list of them",
                        );
                    }
                }
                _ if spec.open => {}
                _ => {
                    if v.as_map().is_some() || v.as_seq().is_some() {
                        self.wrong_type(v, &format!("{name}.{p}"), "a single value");
                    }
                }
            }
        }
        match name {
            "koji" => self.koji(key, params),
            "bodhi" => {
                if let Some(a) = params.get("action") {
                    if a.as_str() != Some("download") && !is_variable(a) {
                        self.error(
                            "bad-parameter",
                            Some(a),
                            format!(
                                "`bodhi` action `{}` does not exist",
                                a.scalar_text().unwrap_or("")
                            ),
                        )
                        .help = Some("the only bodhi action is `download`".into());
                    }
                }
            }
            "distgit" => {
                if params.get("package").is_none() && params.get("nvr").is_none() {
                    self.error(
                        "missing-parameter",
                        Some(key),
                        format!("`distgit` needs `package` or `nvr`{label}"),
                    )
                    .help = Some("add `package: ...` or `nvr: ${koji_build}`".into());
                }
                if let (Some(p), Some(l)) = (
                    params.get("path").and_then(Node::as_seq),
                    params.get("localpath").and_then(Node::as_seq),
                ) {
                    if p.len() != l.len() {
                        self.error(
                            "bad-parameter",
                            params.get("localpath"),
                            format!(
                                "`localpath` has {} entries but `path` has {}",
                                l.len(),
                                p.len()
                            ),
                        )
                        .help = Some("give one local path per downloaded path".into());
                    }
                }
            }
            "resultsdb" | "create_report" => {
                self.exactly_one(name, key, params, &["results", "file"], label)
            }
            "exitcode" => {
                self.exactly_one(name, key, params, &["result_worst", "result_last"], label)
            }
            _ => {}
        }
    }

    fn exactly_one(
        &mut self,
        name: &str,
        key: &Node,
        params: &Node,
        choices: &[&str],
        label: &str,
    ) {
        let given: Vec<&&str> = choices.iter().filter(|c| params.get(c).is_some()).collect();
        match given.len() {
            1 => {}
            0 => {
                self.error(
                    "missing-parameter",
                    Some(key),
                    format!("`{name}` needs `{}` or `{}`{label}", choices[0], choices[1]),
                )
                .help = Some(format!("add `{}: ...`", choices[0]));
            }
            _ => {
                self.error(
                    "bad-parameter",
                    params.get(choices[1]),
                    format!(
                        "`{name}` takes `{}` or `{}`, not both",
                        choices[0], choices[1]
                    ),
                )
                .help = Some(format!("remove `{}`", choices[1]));
            }
        }
    }

    fn boolean_param(&mut self, directive: &str, param: &str, v: &Node) {
        if is_variable(v) {
            return;
        }
        if !matches!(
            v.value,
            Value::Scalar {
                read: Scalar::Bool(_),
                ..
            }
        ) {
            self.wrong_type(v, &format!("{directive}.{param}"), "true or false");
        }
    }

    fn koji(&mut self, key: &Node, params: &Node) {
        const ACTIONS: &[&str] = &["download", "download_tag", "download_latest_stable"];
        let Some(a) = params.get("action") else {
            return;
        };
        if is_variable(a) {
            return;
        }
        let Some(action) = a.as_str() else {
            self.wrong_type(
                a,
                "koji.action",
                "one of download, download_tag, download_latest_stable",
            );
            return;
        };
        if !ACTIONS.contains(&action) {
            let help = suggest(action, ACTIONS, || {
                format!("koji actions: {}", ACTIONS.join(", "))
            });
            self.error(
                "bad-parameter",
                Some(a),
                format!("`koji` action `{action}` does not exist"),
            )
            .help = Some(help);
            return;
        }
        let needed = if action == "download_tag" {
            "koji_tag"
        } else {
            "koji_build"
        };
        if params.get(needed).is_none() {
            self.error(
                "missing-parameter",
                Some(key),
                format!("`koji` action `{action}` needs `{needed}`"),
            )
            .help = Some(format!("add `{needed}: ${{{needed}}}`"));
        }
    }

    fn shell(&mut self, key: &Node, params: &Node, label: &str) {
        let Some(commands) = params.as_seq() else {
            let help = if params.as_str().is_some() {
                "the runner iterates over the string and runs each character as a command; write a list: `shell:` then `- <command>`"
            } else {
                "write a list of commands: `shell:` then `- <command>`"
            };
            self.error(
                "shell-not-list",
                Some(key),
                format!(
                    "`shell` takes a list of commands, not {}{label}",
                    params.type_name()
                ),
            )
            .help = Some(help.into());
            return;
        };
        for cmd in commands {
            self.shell_command(cmd, true);
        }
    }

    fn shell_command(&mut self, cmd: &Node, allow_ignorereturn: bool) {
        match &cmd.value {
            Value::Scalar {
                read: Scalar::Str, ..
            } => {}
            Value::Seq(argv) => {
                for arg in argv {
                    if arg.as_map().is_some() || arg.as_seq().is_some() {
                        self.wrong_type(arg, "a shell argument", "a string");
                    }
                }
            }
            Value::Map(entries) if allow_ignorereturn => {
                for (k, v) in entries {
                    if k.scalar_text() == Some("ignorereturn") {
                        match v.as_seq() {
                            Some(inner) => {
                                for c in inner {
                                    self.shell_command(c, false);
                                }
                            }
                            None => self.shell_command(v, false),
                        }
                    } else {
                        let name = k.key_name();
                        let name: &str = &name;
                        self.error(
                            "bad-shell-command",
                            Some(k),
                            format!("unknown shell option `{name}`"),
                        )
                        .help =
                            Some("the only option is `ignorereturn:` followed by commands".into());
                    }
                }
            }
            _ => {
                self.error(
                    "bad-shell-command",
                    Some(cmd),
                    format!(
                        "a shell command must be a string or a list of arguments, not {}",
                        cmd.type_name()
                    ),
                )
                .help = Some("quote the command".into());
            }
        }
    }
}
