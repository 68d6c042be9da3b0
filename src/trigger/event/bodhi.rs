//! Bodhi updates (bodhi-messages): an update requested for testing or stable, an update whose
//! builds are all built and signed (`update.status.testing.koji-build-group.build.complete`),
//! and an edited update are a `bodhi_update` of the update's alias, one event per package of
//! the update (each package has its own dist-git repository).

use serde_json::Value;

use super::branches::{branch_for_dist_tag, branch_for_release_name, branch_for_target, dist_tag};
use super::{str_at, EventError, Message, Parsed};

/// Which `bodhi.update.*` topics bring an update to test, by what follows `bodhi.update.`.
fn schedules(kind: &str) -> bool {
    matches!(kind, "request.testing" | "request.stable" | "edit")
        || (kind.starts_with("status.") && kind.ends_with(".build.complete"))
}

/// The dist-git namespace of an update's content type.
fn namespace(content_type: Option<&str>) -> &'static str {
    match content_type {
        Some("container") => "container",
        Some("flatpak") => "flatpaks",
        Some("module") => "modules",
        _ => "rpms",
    }
}

pub fn update(m: &Message) -> Result<Parsed, EventError> {
    let kind = m.topic.split("bodhi.update.").nth(1).unwrap_or("");
    if !schedules(kind) {
        return Ok(Parsed::Ignored(format!(
            "bodhi `update.{kind}` does not bring an update to test (request.testing, request.stable, edit and status.….build.complete do)"
        )));
    }
    let update = m.body.get("update").ok_or_else(|| m.missing("update"))?;
    let alias = str_at(update, &["alias"])
        .or_else(|| str_at(update, &["updateid"]))
        .ok_or_else(|| m.missing("update.alias"))?;
    let release_branch = release_branch(m, update);
    let ns = namespace(str_at(update, &["content_type"]));
    let mut events = Vec::new();
    for nvr in build_nvrs(m.body, update) {
        let Some(name) = super::name_of_nvr(nvr) else {
            continue;
        };
        if events
            .iter()
            .any(|e: &super::Event| e.name.as_deref() == Some(name))
        {
            continue;
        }
        let mut e = m.event("bodhi_update", alias.to_string());
        e.name = Some(name.to_string());
        e.namespace = Some(ns.to_string());
        e.branch = release_branch.clone().or_else(|| {
            let release = nvr.rsplit('-').next()?;
            branch_for_dist_tag(dist_tag(release)?, m.rules)
        });
        events.push(e);
    }
    if events.is_empty() {
        return Err(m.missing("update.builds[].nvr"));
    }
    Ok(Parsed::Events(events))
}

/// The branch the update's release builds from: `release.branch`, else its `dist_tag` (a koji
/// tag such as `f41`), else its name (`F41`, `EPEL-9`).
fn release_branch(m: &Message, update: &Value) -> Option<String> {
    let release = update.get("release")?;
    if let Some(b) = str_at(release, &["branch"]).filter(|b| !b.is_empty()) {
        return Some(if b == "eln" {
            m.rules.rawhide_branch.clone()
        } else {
            b.to_string()
        });
    }
    str_at(release, &["dist_tag"])
        .and_then(|t| branch_for_target(t, m.rules))
        .or_else(|| str_at(release, &["name"]).and_then(|n| branch_for_release_name(n, m.rules)))
}

/// The N-V-Rs of an update: `update.builds[].nvr`, else the build group artifact's
/// `artifact.builds[].nvr` (or `component`).
fn build_nvrs<'a>(body: &'a Value, update: &'a Value) -> Vec<&'a str> {
    let list = |v: Option<&'a Value>, keys: &[&str]| -> Vec<&'a str> {
        v.and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(|b| keys.iter().find_map(|k| str_at(b, &[k])))
            .collect()
    };
    let from_update = list(update.get("builds"), &["nvr"]);
    if !from_update.is_empty() {
        return from_update;
    }
    list(
        body.get("artifact").and_then(|a| a.get("builds")),
        &["nvr", "component"],
    )
}

#[cfg(test)]
mod tests {
    use super::super::testing::*;

    #[test]
    fn build_group_complete_gives_one_event_per_package() {
        let e = events(&corpus(
            "bodhi__update_status_testing_build_complete_schema-v3.json",
        ));
        let got: Vec<_> = e.iter().map(summary).collect();
        assert_eq!(
            got,
            vec![
                (
                    "bodhi_update".into(),
                    "FEDORA-2019-d64d0caab3".into(),
                    "rpms/libselinux".into(),
                    "f29".into(),
                    String::new()
                ),
                (
                    "bodhi_update".into(),
                    "FEDORA-2019-d64d0caab3".into(),
                    "rpms/libsepol".into(),
                    "f29".into(),
                    String::new()
                ),
            ]
        );
    }

    #[test]
    fn request_testing_with_release_name_only() {
        let e = events(&corpus("bodhi__update_request_testing_golang-semver.json"));
        assert_eq!(
            summary(&e[0]),
            (
                "bodhi_update".into(),
                "FEDORA-2019-f1ca3c00e5".into(),
                "rpms/golang-github-Masterminds-semver".into(),
                "f29".into(),
                String::new()
            )
        );
    }

    #[test]
    fn release_branch_wins_and_eln_is_rawhide() {
        let e = event(
            r#"{"topic": "org.fedoraproject.prod.bodhi.update.request.testing",
                "body": {"update": {"alias": "FEDORA-2026-abc123",
                  "release": {"branch": "f41", "name": "F41"},
                  "builds": [{"nvr": "python-requests-2.32.3-1.fc41"}]}}}"#,
        );
        assert_eq!(
            (e.branch.as_deref(), e.name.as_deref()),
            (Some("f41"), Some("python-requests"))
        );
        let e = event(
            r#"{"topic": "org.fedoraproject.prod.bodhi.update.edit",
                "body": {"update": {"alias": "FEDORA-2026-e1n", "release": {"branch": "eln", "name": "ELN"},
                  "builds": [{"nvr": "bash-5.2-1.eln130"}]}}}"#,
        );
        assert_eq!(e.branch.as_deref(), Some("rawhide"));
        let e = event(
            r#"{"topic": "org.fedoraproject.prod.bodhi.update.request.stable",
                "body": {"update": {"alias": "FEDORA-EPEL-2026-1", "release": {"dist_tag": "epel9", "name": "EPEL-9"},
                  "builds": [{"nvr": "foo-1-1.el9"}]}}}"#,
        );
        assert_eq!(e.branch.as_deref(), Some("epel9"));
    }

    #[test]
    fn comments_are_ignored() {
        let why = ignored(
            br#"{"topic": "org.fedoraproject.prod.bodhi.update.comment", "body": {"comment": {}}}"#,
        );
        assert!(
            why.starts_with("bodhi `update.comment` does not bring"),
            "{why}"
        );
    }
}
