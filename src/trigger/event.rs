//! Reads Fedora message-bus messages (fedmsg `{topic, msg}` and fedora-messaging
//! `{topic, body}` envelopes) into the one thing the trigger needs: an item of an item type, on a
//! branch of a repository. Pure.

use serde_json::Value;

/// An event that can schedule jobs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    pub topic: String,
    pub item_type: String,
    pub item: String,
    /// The repository name for the `{name}` placeholder of the remote URL.
    pub name: Option<String>,
    /// The dist-git namespace (`rpms`, `modules`...) for `{namespace}`.
    pub namespace: Option<String>,
    pub branch: Option<String>,
    /// The commit the event is about, when it names one.
    pub commit: Option<String>,
}

/// What a message means for the trigger.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Parsed {
    Event(Event),
    /// A well-formed message that schedules nothing, and why.
    Ignored(String),
}

/// How dist tags map to branches.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BranchRules {
    /// The Fedora release number rawhide currently builds as (`fc42` → rawhide), if known.
    pub rawhide_release: Option<u32>,
    pub rawhide_branch: String,
}

impl Default for BranchRules {
    fn default() -> Self {
        BranchRules {
            rawhide_release: None,
            rawhide_branch: "rawhide".to_string(),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum EventError {
    #[error("the event is not JSON: {0}")]
    NotJson(String),
    #[error("the event is not a bus message: {0}")]
    Shape(String),
}

/// The branch a dist tag (`fc40`, `el9`, `el6`) builds for.
pub fn branch_for_dist_tag(tag: &str, rules: &BranchRules) -> Option<String> {
    if let Some(n) = tag.strip_prefix("fc").and_then(|n| n.parse::<u32>().ok()) {
        if rules.rawhide_release == Some(n) {
            return Some(rules.rawhide_branch.clone());
        }
        return Some(format!("f{n}"));
    }
    let el = tag.strip_prefix("el")?;
    let major = el.split('_').next()?.parse::<u32>().ok()?;
    Some(if major <= 6 {
        format!("el{major}")
    } else {
        format!("epel{major}")
    })
}

/// The dist tag in a release string (`1.fc40` → `fc40`, `3.el8_2` → `el8_2`).
pub fn dist_tag(release: &str) -> Option<&str> {
    release.split('.').rev().find(|part| {
        let rest = part
            .strip_prefix("fc")
            .or_else(|| part.strip_prefix("el"))
            .unwrap_or("");
        !rest.is_empty()
            && rest
                .split('_')
                .all(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
    })
}

fn str_at<'a>(v: &'a Value, path: &[&str]) -> Option<&'a str> {
    let mut cur = v;
    for p in path {
        cur = cur.get(p)?;
    }
    cur.as_str()
}

/// Parses a bus message.
pub fn parse(bytes: &[u8], rules: &BranchRules) -> Result<Parsed, EventError> {
    let v: Value = serde_json::from_slice(bytes).map_err(|e| EventError::NotJson(e.to_string()))?;
    let topic = v
        .get("topic")
        .and_then(Value::as_str)
        .ok_or_else(|| EventError::Shape("no `topic`".into()))?
        .to_string();
    let body = v
        .get("body")
        .or_else(|| v.get("msg"))
        .filter(|b| b.is_object())
        .ok_or_else(|| {
            EventError::Shape("no `msg` (fedmsg) or `body` (fedora-messaging) object".into())
        })?;
    let event = |item_type: &str, item: String| Event {
        topic: topic.clone(),
        item_type: item_type.to_string(),
        item,
        name: None,
        namespace: None,
        branch: None,
        commit: None,
    };
    let missing = |what: &str| EventError::Shape(format!("`{topic}` message without `{what}`"));

    if topic.ends_with(".buildsys.build.state.change") {
        let state = body
            .get("new")
            .and_then(Value::as_i64)
            .ok_or_else(|| missing("new"))?;
        if state != 1 {
            let name = match state {
                0 => "BUILDING",
                2 => "DELETED",
                3 => "FAILED",
                4 => "CANCELED",
                _ => "unknown",
            };
            return Ok(Parsed::Ignored(format!(
                "koji build state is {name} ({state}), not COMPLETE (1)"
            )));
        }
        let instance = body
            .get("instance")
            .and_then(Value::as_str)
            .unwrap_or("primary");
        if instance != "primary" {
            return Ok(Parsed::Ignored(format!(
                "koji instance `{instance}` is not the primary instance"
            )));
        }
        let name = str_at(body, &["name"]).ok_or_else(|| missing("name"))?;
        let version = str_at(body, &["version"]).ok_or_else(|| missing("version"))?;
        let release = str_at(body, &["release"]).ok_or_else(|| missing("release"))?;
        let mut e = event("koji_build", format!("{name}-{version}-{release}"));
        e.name = Some(name.to_string());
        e.branch = dist_tag(release).and_then(|t| branch_for_dist_tag(t, rules));
        return Ok(Parsed::Event(e));
    }
    if topic.ends_with(".buildsys.tag") {
        let tag = str_at(body, &["tag"]).ok_or_else(|| missing("tag"))?;
        let mut e = event("koji_tag", tag.to_string());
        e.name = str_at(body, &["name"]).map(str::to_string);
        e.branch = branch_for_koji_tag(tag, rules).or_else(|| {
            str_at(body, &["release"])
                .and_then(dist_tag)
                .and_then(|t| branch_for_dist_tag(t, rules))
        });
        return Ok(Parsed::Event(e));
    }
    if topic.ends_with(".git.receive") && !topic.contains(".pagure.") {
        let c = body.get("commit").ok_or_else(|| missing("commit"))?;
        let repo = str_at(c, &["repo"]).ok_or_else(|| missing("commit.repo"))?;
        let rev = str_at(c, &["rev"]).ok_or_else(|| missing("commit.rev"))?;
        let namespace = str_at(c, &["namespace"]).unwrap_or("rpms");
        let mut e = event("dist_git_commit", format!("{namespace}/{repo}#{rev}"));
        e.name = Some(repo.to_string());
        e.namespace = Some(namespace.to_string());
        e.branch = str_at(c, &["branch"]).map(str::to_string);
        e.commit = Some(rev.to_string());
        return Ok(Parsed::Event(e));
    }
    if topic.ends_with("pagure.git.receive") {
        let repo = str_at(body, &["repo", "name"]).ok_or_else(|| missing("repo.name"))?;
        let end = str_at(body, &["end_commit"]).ok_or_else(|| missing("end_commit"))?;
        let namespace = str_at(body, &["repo", "namespace"]);
        let full = match namespace {
            Some(ns) => format!("{ns}/{repo}"),
            None => repo.to_string(),
        };
        let mut e = event("git_commit", format!("{full}#{end}"));
        e.name = Some(repo.to_string());
        e.namespace = namespace.map(str::to_string);
        e.branch = str_at(body, &["branch"])
            .map(|b| b.strip_prefix("refs/heads/").unwrap_or(b).to_string());
        e.commit = Some(end.to_string());
        return Ok(Parsed::Event(e));
    }
    if topic.ends_with(".pull-request.new") || topic.ends_with(".pull-request.updated") {
        let pr = body
            .get("pullrequest")
            .ok_or_else(|| missing("pullrequest"))?;
        let id = pr
            .get("id")
            .and_then(Value::as_i64)
            .ok_or_else(|| missing("pullrequest.id"))?;
        let repo =
            str_at(pr, &["project", "name"]).ok_or_else(|| missing("pullrequest.project.name"))?;
        let namespace = str_at(pr, &["project", "namespace"]);
        let full = match namespace {
            Some(ns) => format!("{ns}/{repo}"),
            None => repo.to_string(),
        };
        let mut e = event("pull_request", format!("{full}#PR-{id}"));
        e.name = Some(repo.to_string());
        e.namespace = namespace.map(str::to_string);
        e.branch = str_at(pr, &["branch"]).map(str::to_string);
        e.commit = str_at(pr, &["commit_stop"]).map(str::to_string);
        return Ok(Parsed::Event(e));
    }
    if topic.ends_with(".pungi.compose.status.change") {
        let status = str_at(body, &["status"]).ok_or_else(|| missing("status"))?;
        if status != "FINISHED" && status != "FINISHED_INCOMPLETE" {
            return Ok(Parsed::Ignored(format!(
                "compose status is {status}, not FINISHED"
            )));
        }
        let id = str_at(body, &["compose_id"]).ok_or_else(|| missing("compose_id"))?;
        let mut e = event("compose", id.to_string());
        let location = str_at(body, &["location"]).unwrap_or("");
        e.branch = if location.contains("/rawhide/") {
            Some(rules.rawhide_branch.clone())
        } else {
            id.split('-')
                .nth(1)
                .filter(|n| n.bytes().all(|b| b.is_ascii_digit()) && !n.is_empty())
                .map(|n| format!("f{n}"))
        };
        return Ok(Parsed::Event(e));
    }
    if topic.contains(".bodhi.update.") {
        let update = body.get("update").ok_or_else(|| missing("update"))?;
        let alias = str_at(update, &["alias"])
            .or_else(|| str_at(update, &["updateid"]))
            .ok_or_else(|| missing("update.alias"))?;
        let mut e = event("bodhi_update", alias.to_string());
        e.branch = str_at(update, &["release", "branch"]).map(str::to_string);
        e.name = update
            .get("builds")
            .and_then(Value::as_array)
            .and_then(|b| b.first())
            .and_then(|b| str_at(b, &["nvr"]))
            .map(|nvr| nvr.rsplitn(3, '-').last().unwrap_or(nvr).to_string());
        return Ok(Parsed::Event(e));
    }
    if topic.ends_with(".mbs.module.state.change") {
        let state = str_at(body, &["state_name"]).unwrap_or("");
        if state != "ready" {
            return Ok(Parsed::Ignored(format!(
                "module build state is `{state}`, not `ready`"
            )));
        }
        let name = str_at(body, &["name"]).ok_or_else(|| missing("name"))?;
        let stream = str_at(body, &["stream"]).ok_or_else(|| missing("stream"))?;
        let version = match body.get("version") {
            Some(Value::String(s)) => s.clone(),
            Some(Value::Number(n)) => n.to_string(),
            _ => return Err(missing("version")),
        };
        let mut e = event("module_build", format!("{name}-{stream}-{version}"));
        e.name = Some(name.to_string());
        e.namespace = Some("modules".to_string());
        e.branch = Some(stream.to_string());
        return Ok(Parsed::Event(e));
    }
    Ok(Parsed::Ignored(format!(
        "topic `{topic}` is not an event taskhook schedules on"
    )))
}

/// The branch of a koji tag such as `f40-updates-testing-pending` or `epel9-testing`.
fn branch_for_koji_tag(tag: &str, rules: &BranchRules) -> Option<String> {
    let head = tag.split('-').next()?;
    if head == "rawhide" {
        return Some(rules.rawhide_branch.clone());
    }
    let is_numbered = |prefix: &str| {
        head.strip_prefix(prefix)
            .is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
    };
    if is_numbered("f") {
        let n: u32 = head[1..].parse().ok()?;
        if rules.rawhide_release == Some(n) {
            return Some(rules.rawhide_branch.clone());
        }
        return Some(head.to_string());
    }
    if is_numbered("epel") || is_numbered("el") {
        return Some(head.to_string());
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dist_tags_map_to_branches() {
        let r = BranchRules {
            rawhide_release: Some(42),
            rawhide_branch: "rawhide".into(),
        };
        assert_eq!(branch_for_dist_tag("fc40", &r).as_deref(), Some("f40"));
        assert_eq!(branch_for_dist_tag("fc42", &r).as_deref(), Some("rawhide"));
        assert_eq!(branch_for_dist_tag("el7", &r).as_deref(), Some("epel7"));
        assert_eq!(branch_for_dist_tag("el8_2", &r).as_deref(), Some("epel8"));
        assert_eq!(branch_for_dist_tag("el6", &r).as_deref(), Some("el6"));
        assert_eq!(branch_for_dist_tag("el5", &r).as_deref(), Some("el5"));
        assert_eq!(dist_tag("1.fc22"), Some("fc22"));
        assert_eq!(dist_tag("0.3.rc1.el8_2"), Some("el8_2"));
        assert_eq!(dist_tag("1"), None);
    }
}

#[cfg(test)]
mod should_events {
    use super::*;

    fn parsed(json: &str) -> Event {
        match parse(json.as_bytes(), &BranchRules::default()).expect("valid") {
            Parsed::Event(e) => e,
            Parsed::Ignored(why) => panic!("ignored: {why}"),
        }
    }

    #[test]
    fn bodhi_update() {
        let e = parsed(
            r#"{"topic": "org.fedoraproject.prod.bodhi.update.request.testing",
                "body": {"update": {"alias": "FEDORA-2026-abc123",
                  "release": {"branch": "f41"},
                  "builds": [{"nvr": "python-requests-2.32.3-1.fc41"}]}}}"#,
        );
        assert_eq!(
            (e.item_type.as_str(), e.item.as_str()),
            ("bodhi_update", "FEDORA-2026-abc123")
        );
        assert_eq!(e.branch.as_deref(), Some("f41"));
        assert_eq!(e.name.as_deref(), Some("python-requests"));
    }

    #[test]
    fn pagure_pull_request() {
        let e = parsed(
            r#"{"topic": "io.pagure.prod.pagure.pull-request.new",
                "msg": {"pullrequest": {"id": 7, "branch": "rawhide", "commit_stop": "abc",
                  "project": {"name": "foo", "namespace": "rpms"}}}}"#,
        );
        assert_eq!(
            (e.item_type.as_str(), e.item.as_str()),
            ("pull_request", "rpms/foo#PR-7")
        );
        assert_eq!(e.branch.as_deref(), Some("rawhide"));
    }

    #[test]
    fn ready_module_build() {
        let e = parsed(
            r#"{"topic": "org.fedoraproject.prod.mbs.module.state.change",
                "msg": {"name": "nodejs", "stream": "20", "version": 4120231025, "state_name": "ready"}}"#,
        );
        assert_eq!(
            (e.item_type.as_str(), e.item.as_str()),
            ("module_build", "nodejs-20-4120231025")
        );
        assert_eq!(e.namespace.as_deref(), Some("modules"));
    }

    #[test]
    fn malformed_messages_are_errors_not_panics() {
        for bad in [
            "",
            "[]",
            r#"{"topic": 3}"#,
            r#"{"topic": "x.buildsys.build.state.change", "msg": {"new": 1}}"#,
            r#"{"topic": "x.buildsys.build.state.change", "msg": []}"#,
            r#"{"topic": "x.git.receive", "body": {"commit": {"repo": 5}}}"#,
        ] {
            assert!(
                parse(bad.as_bytes(), &BranchRules::default()).is_err(),
                "{bad}"
            );
        }
    }
}
