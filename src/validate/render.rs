//! Renders a verdict: human text (every finding with its source line and a caret, then one
//! summary line) or the JSON object `taskhook check --format json` prints.

use super::check::Report;
use super::diag::{self, Diagnostic};

/// The human rendering of a verdict: every finding, then one summary line. Tasks the time
/// budget left unchecked are summarised in one finding rather than listed one by one.
pub fn render_report(report: &Report, color: bool) -> String {
    render_report_at_most(report, color, usize::MAX).0
}

/// [`render_report`] with at most `most` findings, then a line counting those left out; and
/// how many it listed.
pub fn render_report_at_most(report: &Report, color: bool, most: usize) -> (String, usize) {
    let diags = report.all_diagnostics();
    let mut shown: Vec<Diagnostic> = Vec::with_capacity(diags.len());
    let unchecked: Vec<&Diagnostic> = diags.iter().filter(|d| d.code == "time-budget").collect();
    for d in &diags {
        if d.code != "time-budget" {
            shown.push(d.clone());
        }
    }
    if let Some(first) = unchecked.first() {
        let mut d = (*first).clone();
        if unchecked.len() > 1 {
            d.message = format!(
                "{} tasks were not checked: {} (first: `{}`)",
                unchecked.len(),
                first.message.replace(" before this task", ""),
                first.file
            );
        }
        shown.push(d);
    }
    let left_out = shown.len().saturating_sub(most);
    shown.truncate(most);
    let mut s = diag::render_human(&shown, &report.sources, color);
    if left_out > 0 {
        s.push_str(&format!(
            "... {left_out} more finding{} not listed here; `taskhook check` in your checkout lists them all\n",
            if left_out == 1 { "" } else { "s" }
        ));
    }
    let verdict = if diags.iter().any(Diagnostic::is_error) {
        "invalid"
    } else {
        "ok"
    };
    s.push_str(&format!(
        "{verdict}: {}\n",
        diag::summary_line(&diags, report.task_count())
    ));
    (s, shown.len())
}

/// The JSON rendering of a verdict.
pub fn report_json(report: &Report) -> serde_json::Value {
    let diags = report.all_diagnostics();
    let errors = diags.iter().filter(|d| d.is_error()).count();
    serde_json::json!({
        "valid": errors == 0,
        "errors": errors,
        "warnings": diags.len() - errors,
        "tasks": report.tasks.iter().map(|t| serde_json::json!({
            "path": t.path,
            "formula": t.formula_path,
            "name": t.formula.name,
            "valid": t.is_valid(),
            "run": t.formula.schedule.run,
            "item_types": t.formula.schedule.item_types,
            "branches": t.formula.schedule.branches,
            "arches": t.formula.schedule.arches,
        })).collect::<Vec<_>>(),
        "diagnostics": diags,
    })
}
