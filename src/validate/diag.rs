//! Diagnostics as data (code, severity, place, message, help) and their two renderings.
//!
//! Every check in taskhook produces [`Diagnostic`]s; nothing prints while checking. Rendering is a
//! separate step: compiler-style text with the source line and a caret, or JSON. The codes are
//! stable and documented in `docs/CONVENTIONS.md`.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use serde::{Deserialize, Serialize};

pub use crate::suggest::did_you_mean;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Error,
    Warning,
}

impl Severity {
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Error => "error",
            Severity::Warning => "warning",
        }
    }
}

/// One finding. `file` is relative to the repository root; `line`/`column` are 1-based and
/// absent when the finding is about a file or directory as a whole. Fields are in alphabetical
/// order so that serialized keys come out sorted (see `manifest::to_bytes`).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Diagnostic {
    pub code: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub column: Option<u32>,
    pub file: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub help: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub line: Option<u32>,
    pub message: String,
    pub severity: Severity,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub task: Option<String>,
}

impl Diagnostic {
    pub fn error(code: &str, file: impl Into<String>, message: impl Into<String>) -> Self {
        Self::new(Severity::Error, code, file, message)
    }

    pub fn warning(code: &str, file: impl Into<String>, message: impl Into<String>) -> Self {
        Self::new(Severity::Warning, code, file, message)
    }

    fn new(
        severity: Severity,
        code: &str,
        file: impl Into<String>,
        message: impl Into<String>,
    ) -> Self {
        Diagnostic {
            file: file.into(),
            line: None,
            column: None,
            severity,
            code: code.to_string(),
            message: message.into(),
            help: None,
            task: None,
        }
    }

    pub fn at(mut self, line: u32, column: u32) -> Self {
        self.line = Some(line);
        self.column = Some(column);
        self
    }

    pub fn help(mut self, help: impl Into<String>) -> Self {
        self.help = Some(help.into());
        self
    }

    pub fn task(mut self, task: impl Into<String>) -> Self {
        self.task = Some(task.into());
        self
    }

    pub fn is_error(&self) -> bool {
        self.severity == Severity::Error
    }

    /// `file:line:column`, or as much of it as is known.
    pub fn location(&self) -> String {
        match (self.line, self.column) {
            (Some(l), Some(c)) => format!("{}:{}:{}", self.file, l, c),
            (Some(l), None) => format!("{}:{}", self.file, l),
            _ => self.file.clone(),
        }
    }
}

/// Sorts diagnostics into the order they are shown: by file, then position, then code.
pub fn sort(diags: &mut [Diagnostic]) {
    diags.sort_by(|a, b| {
        (&a.file, a.line, a.column, &a.code, &a.message)
            .cmp(&(&b.file, b.line, b.column, &b.code, &b.message))
    });
}

/// Source texts by file, so rendering can show the offending line.
pub type Sources = BTreeMap<String, String>;

/// Renders diagnostics for people: one block per finding, compiler style.
pub fn render_human(diags: &[Diagnostic], sources: &Sources, color: bool) -> String {
    let mut out = String::new();
    for d in diags {
        let (on, off) = if color {
            match d.severity {
                Severity::Error => ("\x1b[1;31m", "\x1b[0m"),
                Severity::Warning => ("\x1b[1;33m", "\x1b[0m"),
            }
        } else {
            ("", "")
        };
        let _ = writeln!(
            out,
            "{}: {on}{}[{}]{off}: {}",
            one_line(&d.location()),
            d.severity.as_str(),
            d.code,
            one_line(&d.message)
        );
        if let (Some(line), Some(column), Some(src)) = (d.line, d.column, sources.get(&d.file)) {
            if let Some(text) = src.lines().nth(line.saturating_sub(1) as usize) {
                let number = line.to_string();
                let pad = " ".repeat(number.len());
                let shown: String = text.chars().take(160).collect();
                let shown = one_line(&shown.replace('\t', " "));
                let caret_at = (column.saturating_sub(1) as usize).min(shown.chars().count());
                let _ = writeln!(out, " {number} | {shown}");
                let _ = writeln!(out, " {pad} | {}^", " ".repeat(caret_at));
            }
        }
        if let Some(help) = &d.help {
            let _ = writeln!(out, "  help: {}", one_line(help));
        }
    }
    out
}

/// Text from a pusher (a directory name, a formula's line) on one line, control characters
/// escaped: a newline in a file name must not forge `remote:` lines on the pusher's terminal,
/// nor an escape sequence repaint it.
pub fn one_line(s: &str) -> String {
    if !s.chars().any(char::is_control) {
        return s.to_string();
    }
    s.chars()
        .map(|c| {
            if c.is_control() {
                c.escape_default().to_string()
            } else {
                c.to_string()
            }
        })
        .collect()
}

/// The last line of a human report: how many errors and warnings.
pub fn summary_line(diags: &[Diagnostic], tasks: usize) -> String {
    let errors = diags.iter().filter(|d| d.is_error()).count();
    let warnings = diags.len() - errors;
    let plural = |n: usize, word: &str| {
        if n == 1 {
            format!("{n} {word}")
        } else {
            format!("{n} {word}s")
        }
    };
    format!(
        "{}, {}, {}",
        plural(tasks, "task"),
        plural(errors, "error"),
        plural(warnings, "warning")
    )
}

/// A help line: "did you mean `x`?" when a candidate is close to `word`, else `otherwise()`.
pub fn suggest(word: &str, candidates: &[&str], otherwise: impl FnOnce() -> String) -> String {
    match did_you_mean(word, candidates) {
        Some(m) => format!("did you mean `{m}`?"),
        None => otherwise(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn suggestions() {
        assert_eq!(
            did_you_mean("koji_bulid", &["koji_build", "koji_tag"]),
            Some("koji_build")
        );
        assert_eq!(did_you_mean("shel", &["shell", "python"]), Some("shell"));
        assert_eq!(did_you_mean("zzzzzz", &["shell", "python"]), None);
    }

    #[test]
    fn caret_points_at_column() {
        let d = Diagnostic::error("x", "t/runtask.yml", "bad").at(2, 3);
        let mut s = Sources::new();
        s.insert("t/runtask.yml".into(), "a: 1\nb: 2\n".into());
        let out = render_human(&[d], &s, false);
        assert_eq!(
            out,
            "t/runtask.yml:2:3: error[x]: bad\n 2 | b: 2\n   |   ^\n"
        );
    }
}
