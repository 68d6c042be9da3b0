//! Pull requests: Pagure's (`pagure.pull-request.new`, `.updated`, `.rebased`) and Forgejo's
//! webhook as relayed by webhook-to-fedora-messaging (`forgejo.pull_request`, actions `opened`,
//! `synchronized`, `reopened`). A pull request is a `pull_request` of
//! `<namespace>/<name>#PR-<number>`, for the target repository and branch, pinned to the head.

use serde_json::Value;

use super::push::{forgejo_repo, webhook_body};
use super::{one, str_at, EventError, Message, Parsed};

/// The Forgejo actions that bring new code to test.
const FORGEJO_ACTIONS: &[&str] = &["opened", "synchronized", "reopened"];

pub fn pagure(m: &Message) -> Result<Parsed, EventError> {
    let pr = m
        .body
        .get("pullrequest")
        .ok_or_else(|| m.missing("pullrequest"))?;
    if let Some(status) = str_at(pr, &["status"]).filter(|s| *s != "Open") {
        return Ok(Parsed::Ignored(format!(
            "the pull request is {status}, not Open"
        )));
    }
    let id = pr
        .get("id")
        .and_then(Value::as_i64)
        .ok_or_else(|| m.missing("pullrequest.id"))?;
    let repo =
        str_at(pr, &["project", "name"]).ok_or_else(|| m.missing("pullrequest.project.name"))?;
    let namespace = str_at(pr, &["project", "namespace"]).filter(|ns| !ns.is_empty());
    let full = match namespace {
        Some(ns) => format!("{ns}/{repo}"),
        None => repo.to_string(),
    };
    let mut e = m.event("pull_request", format!("{full}#PR-{id}"));
    e.name = Some(repo.to_string());
    e.namespace = namespace.map(str::to_string);
    e.branch = str_at(pr, &["branch"]).map(str::to_string);
    e.commit = str_at(pr, &["commit_stop"]).map(str::to_string);
    one(e)
}

pub fn forgejo(m: &Message) -> Result<Parsed, EventError> {
    let hook = webhook_body(m)?;
    let action = str_at(hook, &["action"]).ok_or_else(|| m.missing("body.action"))?;
    if !FORGEJO_ACTIONS.contains(&action) {
        return Ok(Parsed::Ignored(format!(
            "pull request action `{action}` is none of {}",
            FORGEJO_ACTIONS.join(", ")
        )));
    }
    let number = hook
        .get("number")
        .or_else(|| hook.get("pull_request").and_then(|p| p.get("number")))
        .and_then(Value::as_i64)
        .ok_or_else(|| m.missing("body.number"))?;
    let (namespace, name) = forgejo_repo(m, hook)?;
    let mut e = m.event("pull_request", format!("{namespace}/{name}#PR-{number}"));
    e.name = Some(name.to_string());
    e.namespace = Some(namespace.to_string());
    e.branch = str_at(hook, &["pull_request", "base", "ref"]).map(str::to_string);
    e.commit = str_at(hook, &["pull_request", "head", "sha"]).map(str::to_string);
    one(e)
}

#[cfg(test)]
mod tests {
    use super::super::testing::*;

    #[test]
    fn pagure_pull_request_on_dist_git() {
        let e = events(&corpus("pagure__pull_request_new_rpms-optee_os.json"));
        assert_eq!(
            summary(&e[0]),
            (
                "pull_request".into(),
                "rpms/optee_os#PR-2".into(),
                "rpms/optee_os".into(),
                "rawhide".into(),
                "889f07af35d27bbcaf9c535c17a63b974aa42ee3".into()
            )
        );
        let e = event(
            r#"{"topic": "io.pagure.prod.pagure.pull-request.new",
                "msg": {"pullrequest": {"id": 7, "branch": "rawhide", "commit_stop": "abc",
                  "project": {"name": "foo", "namespace": "rpms"}}}}"#,
        );
        assert_eq!(e.item, "rpms/foo#PR-7");
    }

    #[test]
    fn forgejo_pull_request() {
        let msg = |action: &str| {
            format!(
                r#"{{"topic": "org.fedoraproject.prod.forgejo.pull_request",
                  "body": {{"headers": {{"x-forgejo-event": "pull_request"}},
                    "body": {{"action": "{action}", "number": 12,
                      "pull_request": {{"number": 12, "base": {{"ref": "f41", "sha": "1111"}}, "head": {{"ref": "fix", "sha": "2222"}}}},
                      "repository": {{"full_name": "rpms/bash"}}}}}}}}"#
            )
        };
        for action in ["opened", "synchronized", "reopened"] {
            assert_eq!(
                summary(&event(&msg(action))),
                (
                    "pull_request".into(),
                    "rpms/bash#PR-12".into(),
                    "rpms/bash".into(),
                    "f41".into(),
                    "2222".into()
                )
            );
        }
        let why = ignored(msg("closed").as_bytes());
        assert_eq!(
            why,
            "pull request action `closed` is none of opened, synchronized, reopened"
        );
    }
}
