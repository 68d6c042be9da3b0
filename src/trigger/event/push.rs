//! Pushes to a repository: dist-git's own hook (`git.receive`, fedora-messaging-git-hook-messages),
//! Pagure's (`pagure.git.receive`, pagure-messages) and Forgejo's push webhook as relayed by
//! webhook-to-fedora-messaging (`forgejo.push`).
//!
//! A push to dist-git is a `dist_git_commit` of `<namespace>/<name>#<commit>`; a push anywhere
//! else (pagure.io, a Forgejo project outside the dist-git namespaces) is a `git_commit`.

use serde_json::Value;

use super::{one, str_at, EventError, Message, Parsed};

/// The namespaces of Fedora's dist-git.
const DIST_GIT_NAMESPACES: &[&str] = &["rpms", "tests", "modules", "container", "flatpaks"];

/// `git.receive`: fedora-messaging-git-hook, which only dist-git runs.
pub fn distgit_hook(m: &Message) -> Result<Parsed, EventError> {
    let c = m.body.get("commit").ok_or_else(|| m.missing("commit"))?;
    let field = |k: &str| str_at(c, &[k]).ok_or_else(|| m.missing(&format!("commit.{k}")));
    let repo = field("repo")?;
    let rev = field("rev")?;
    let namespace = str_at(c, &["namespace"]).unwrap_or("rpms");
    let mut e = m.event("dist_git_commit", format!("{namespace}/{repo}#{rev}"));
    e.name = Some(repo.to_string());
    e.namespace = Some(namespace.to_string());
    e.branch = str_at(c, &["branch"]).map(branch_of_ref);
    e.commit = Some(rev.to_string());
    one(e)
}

/// `pagure.git.receive`: from Fedora's bus it is dist-git (src.fedoraproject.org); from
/// pagure.io's own bus (`io.pagure.*`) a plain git repository; without a bus's prefix, dist-git
/// where the namespace is one of dist-git's.
pub fn pagure(m: &Message) -> Result<Parsed, EventError> {
    let repo = m.required(&["repo", "name"])?;
    let end = m.required(&["end_commit"])?;
    let namespace = str_at(m.body, &["repo", "namespace"]).filter(|ns| !ns.is_empty());
    let dist_git_namespace = namespace.is_some_and(|ns| DIST_GIT_NAMESPACES.contains(&ns));
    let item_type =
        if m.is_from_fedora() || (m.is_unprefixed("pagure.git.receive") && dist_git_namespace) {
            "dist_git_commit"
        } else {
            "git_commit"
        };
    let full = match namespace {
        Some(ns) => format!("{ns}/{repo}"),
        None => repo.to_string(),
    };
    let mut e = m.event(item_type, format!("{full}#{end}"));
    e.name = Some(repo.to_string());
    e.namespace = namespace.map(str::to_string);
    e.branch = str_at(m.body, &["branch"]).map(branch_of_ref);
    e.commit = Some(end.to_string());
    one(e)
}

/// `forgejo.push`: the webhook body sits in `body.body`, its HTTP headers in `body.headers`.
pub fn forgejo(m: &Message) -> Result<Parsed, EventError> {
    let hook = webhook_body(m)?;
    let field = |path: &[&str]| {
        str_at(hook, path).ok_or_else(|| m.missing(&format!("body.{}", path.join("."))))
    };
    let git_ref = field(&["ref"])?;
    let Some(branch) = git_ref.strip_prefix("refs/heads/") else {
        return Ok(Parsed::Ignored(format!(
            "the push is to `{git_ref}`, not to a branch"
        )));
    };
    let after = field(&["after"])?;
    if after.bytes().all(|b| b == b'0') {
        return Ok(Parsed::Ignored(format!(
            "the push deletes branch `{branch}`"
        )));
    }
    let (namespace, name) = forgejo_repo(m, hook)?;
    let item_type = if DIST_GIT_NAMESPACES.contains(&namespace) {
        "dist_git_commit"
    } else {
        "git_commit"
    };
    let mut e = m.event(item_type, format!("{namespace}/{name}#{after}"));
    e.name = Some(name.to_string());
    e.namespace = Some(namespace.to_string());
    e.branch = Some(branch.to_string());
    e.commit = Some(after.to_string());
    one(e)
}

/// The webhook payload of a message relayed by webhook-to-fedora-messaging.
pub(super) fn webhook_body<'a>(m: &Message<'a>) -> Result<&'a Value, EventError> {
    m.body
        .get("body")
        .filter(|b| b.is_object())
        .ok_or_else(|| m.missing("body (the webhook payload)"))
}

/// `(owner, name)` of the repository a Forgejo webhook is about.
pub(super) fn forgejo_repo<'a>(
    m: &Message,
    hook: &'a Value,
) -> Result<(&'a str, &'a str), EventError> {
    let full = str_at(hook, &["repository", "full_name"])
        .ok_or_else(|| m.missing("body.repository.full_name"))?;
    full.split_once('/')
        .filter(|(owner, name)| !owner.is_empty() && !name.is_empty() && !name.contains('/'))
        .ok_or_else(|| {
            EventError::Shape(format!(
                "`{}` message: repository `{full}` is not <owner>/<name>",
                m.topic
            ))
        })
}

fn branch_of_ref(r: &str) -> String {
    r.strip_prefix("refs/heads/").unwrap_or(r).to_string()
}

#[cfg(test)]
mod tests {
    use super::super::testing::*;

    #[test]
    fn dist_git_hook() {
        let e = events(&corpus("distgit__git_receive_schema-fixture.json"));
        assert_eq!(
            summary(&e[0]),
            (
                "dist_git_commit".into(),
                "dummyns/dummyrepo#3aa6642b0990d1f6a0e0ce7373c8ad37d2f980ce".into(),
                "dummyns/dummyrepo".into(),
                "main".into(),
                "3aa6642b0990d1f6a0e0ce7373c8ad37d2f980ce".into()
            )
        );
        let e = events(&corpus("fedmsg__scm__TestSCMWithNamespace.json"));
        assert_eq!(e[0].item_type, "dist_git_commit");
    }

    #[test]
    fn pagure_push_from_dist_git_and_from_pagure_io() {
        let e = events(&corpus("pagure__git_receive_rpms-packit_TRIMMED.json"));
        assert_eq!(
            summary(&e[0]),
            (
                "dist_git_commit".into(),
                "rpms/packit#ad0c308af91da45cf40b253cd82f07f63ea9cbbf".into(),
                "rpms/packit".into(),
                "f36".into(),
                "ad0c308af91da45cf40b253cd82f07f63ea9cbbf".into()
            )
        );
        let e = events(&corpus("fedmsg__pagure__TestGitCommit.json"));
        assert_eq!(e[0].item_type, "git_commit");
        assert_eq!(e[0].branch.as_deref(), Some("master"));
    }

    #[test]
    fn forgejo_push_outside_and_inside_dist_git() {
        let e = events(&corpus("forgejo__push_forge-infra-docs.json"));
        assert_eq!(
            summary(&e[0]),
            (
                "git_commit".into(),
                "infra/docs#139828ad0b8fd3c5d172ccc0fc695a6d7a98f4c5".into(),
                "infra/docs".into(),
                "main".into(),
                "139828ad0b8fd3c5d172ccc0fc695a6d7a98f4c5".into()
            )
        );
        let msg = |git_ref: &str, after: &str| {
            format!(
                r#"{{"topic": "org.fedoraproject.prod.forgejo.push", "body": {{"headers": {{"x-forgejo-event": "push"}},
                  "body": {{"ref": "{git_ref}", "after": "{after}", "repository": {{"full_name": "rpms/bash"}}}}}}}}"#
            )
        };
        let e = event(&msg("refs/heads/f41", "abc123"));
        assert_eq!(
            (e.item_type.as_str(), e.item.as_str(), e.branch.as_deref()),
            ("dist_git_commit", "rpms/bash#abc123", Some("f41"))
        );
        assert_eq!(
            ignored(msg("refs/tags/v1", "abc123").as_bytes()),
            "the push is to `refs/tags/v1`, not to a branch"
        );
        assert_eq!(
            ignored(msg("refs/heads/f41", &"0".repeat(40)).as_bytes()),
            "the push deletes branch `f41`"
        );
    }
}
