//! Koji: a build that completed (`buildsys.build.state.change`) and a build tagged into a tag
//! (`buildsys.tag`). Schemas: koji-fedoramessaging-messages, and fedmsg's before it.

use serde_json::Value;

use super::branches::{branch_for_dist_tag, branch_for_target, dist_tag};
use super::{one, str_at, EventError, Message, Parsed};

/// Koji's build states (`koji.BUILD_STATES`).
fn state_name(state: i64) -> &'static str {
    match state {
        0 => "BUILDING",
        1 => "COMPLETE",
        2 => "DELETED",
        3 => "FAILED",
        4 => "CANCELED",
        _ => "unknown",
    }
}

/// A source URL as koji records it, `git+https://host/<namespace>/<name>.git#<commit>`:
/// `(namespace, name, commit)`. Forks (`/forks/<user>/rpms/foo.git`) keep their last two parts.
fn parse_scm_url(url: &str) -> Option<(&str, &str, &str)> {
    let rest = url.strip_prefix("git+")?;
    let (location, commit) = rest.split_once('#')?;
    let (_scheme, host_path) = location.split_once("://")?;
    let (_host, path) = host_path.split_once('/')?;
    let path = path.split('?').next()?.trim_end_matches('/');
    let mut parts = path.rsplit('/');
    let name = parts.next()?.trim_end_matches(".git");
    let namespace = parts.next()?;
    let commit = commit.split(['?', '&']).next()?;
    let hex = |s: &str| s.len() >= 7 && s.bytes().all(|b| b.is_ascii_hexdigit());
    (!name.is_empty() && !namespace.is_empty() && !namespace.contains(':') && hex(commit))
        .then_some((namespace, name, commit))
}

/// `buildsys.build.state.change`: a completed build of the primary koji instance is a
/// `koji_build` of its N-V-R.
pub fn build_state_change(m: &Message) -> Result<Parsed, EventError> {
    let state = m
        .body
        .get("new")
        .and_then(Value::as_i64)
        .ok_or_else(|| m.missing("new"))?;
    if state != 1 {
        return Ok(Parsed::Ignored(format!(
            "koji build state is {} ({state}), not COMPLETE (1)",
            state_name(state)
        )));
    }
    let instance = str_at(m.body, &["instance"]).unwrap_or("primary");
    if instance != "primary" {
        return Ok(Parsed::Ignored(format!(
            "koji instance `{instance}` is not the primary instance"
        )));
    }
    let name = m.required(&["name"])?;
    let version = m.required(&["version"])?;
    let release = m.required(&["release"])?;
    let mut e = m.event("koji_build", format!("{name}-{version}-{release}"));
    e.name = Some(name.to_string());
    // `request` is koji's build request: [source, target, options].
    let request = m.body.get("request").and_then(Value::as_array);
    let source = request.and_then(|r| r.first()).and_then(Value::as_str);
    if let Some((namespace, repo, commit)) = source.and_then(parse_scm_url) {
        e.namespace = Some(namespace.to_string());
        e.name = Some(repo.to_string());
        e.commit = Some(commit.to_string());
    }
    let target = request.and_then(|r| r.get(1)).and_then(Value::as_str);
    e.branch = target
        .and_then(|t| branch_for_target(t, m.rules))
        .or_else(|| dist_tag(release).and_then(|t| branch_for_dist_tag(t, m.rules)));
    one(e)
}

/// `buildsys.tag`: a build tagged into a tag is a `koji_tag` of the tag, for the package's repo.
pub fn tag(m: &Message) -> Result<Parsed, EventError> {
    let tag = m.required(&["tag"])?;
    let instance = str_at(m.body, &["instance"]).unwrap_or("primary");
    if instance != "primary" {
        return Ok(Parsed::Ignored(format!(
            "koji instance `{instance}` is not the primary instance"
        )));
    }
    let mut e = m.event("koji_tag", tag.to_string());
    e.name = str_at(m.body, &["name"]).map(str::to_string);
    e.branch = branch_for_target(tag, m.rules).or_else(|| {
        str_at(m.body, &["release"])
            .and_then(dist_tag)
            .and_then(|t| branch_for_dist_tag(t, m.rules))
    });
    one(e)
}

#[cfg(test)]
mod tests {
    use super::super::testing::*;
    use super::*;

    #[test]
    fn completed_build_takes_repo_commit_and_branch_from_the_request() {
        let e = events(&corpus("koji__build_state_change_complete_chromium.json"));
        assert_eq!(e.len(), 1);
        assert_eq!(
            summary(&e[0]),
            (
                "koji_build".into(),
                "chromium-80.0.3987.132-1.fc33".into(),
                "rpms/chromium".into(),
                "rawhide".into(),
                "5f8f367e482fe8e30711aea49bf2ecfd163d278f".into()
            )
        );
    }

    #[test]
    fn build_without_request_uses_the_dist_tag() {
        let e = events(&corpus("fedora-messaging__koji_build_complete.json"));
        assert_eq!(summary(&e[0]).3, "epel7");
        assert_eq!(e[0].name.as_deref(), Some("ansible"));
        let e = events(&corpus(
            "fedmsg__buildsys__TestKojiBuildStateChangeComplete.json",
        ));
        assert_eq!(e[0].item_type, "koji_build");
    }

    #[test]
    fn targets_side_tags_and_eln() {
        let msg = |target: &str, release: &str| {
            format!(
                r#"{{"topic": "org.fedoraproject.prod.buildsys.build.state.change",
                    "body": {{"new": 1, "instance": "primary", "name": "foo", "version": "1",
                      "release": "{release}",
                      "request": ["git+https://src.fedoraproject.org/forks/me/rpms/foo.git#0123456789abcdef0123456789abcdef01234567", "{target}", {{}}]}}}}"#
            )
        };
        let branch = |t: &str, r: &str| event(&msg(t, r)).branch.unwrap_or_default();
        assert_eq!(branch("f40-candidate", "1.fc40"), "f40");
        assert_eq!(branch("f40-build-side-98765", "1.fc40"), "f40");
        assert_eq!(branch("eln", "1.eln130"), "rawhide");
        assert_eq!(branch("epel9-candidate", "1.el9"), "epel9");
        // A target that names no branch falls back to the dist tag.
        assert_eq!(branch("trusted-artifacts", "1.fc39"), "f39");
        let e = event(&msg("f40-candidate", "1.fc40"));
        assert_eq!(summary(&e).2, "rpms/foo");
    }

    #[test]
    fn failed_and_secondary_builds_are_ignored() {
        let why = ignored(&corpus(
            "fedmsg__buildsys__TestKojiBuildStateChangeFail.json",
        ));
        assert_eq!(why, "koji build state is FAILED (3), not COMPLETE (1)");
        let why = ignored(
            br#"{"topic": "x.buildsys.build.state.change", "body": {"new": 1, "instance": "s390"}}"#,
        );
        assert_eq!(why, "koji instance `s390` is not the primary instance");
    }

    #[test]
    fn tags() {
        let e = events(&corpus("koji__tag_http-parser_f31-updates-pending.json"));
        assert_eq!(
            summary(&e[0]),
            (
                "koji_tag".into(),
                "f31-updates-pending".into(),
                "-/http-parser".into(),
                "f31".into(),
                String::new()
            )
        );
        let e = events(&corpus("fedmsg__buildsys__TestKojiBuildTag.json"));
        assert_eq!(summary(&e[0]).3, "f18");
    }

    #[test]
    fn scm_urls() {
        assert_eq!(
            parse_scm_url("git+https://src.fedoraproject.org/rpms/chromium.git#5f8f367e"),
            Some(("rpms", "chromium", "5f8f367e"))
        );
        assert_eq!(
            parse_scm_url("cli-build/1580000000.1.ABCD/foo.src.rpm"),
            None
        );
        assert_eq!(parse_scm_url("git+https://host/x.git#master"), None);
        assert_eq!(parse_scm_url("git+https://host/x.git#abcdef0"), None);
    }
}
