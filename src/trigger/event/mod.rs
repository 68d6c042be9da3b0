//! Reads Fedora message-bus messages into what the trigger needs: an item of an item type, on a
//! branch of a repository. Pure.
//!
//! Both envelopes are accepted: fedmsg (`{topic, msg}`) and fedora-messaging (`{topic, body}`,
//! with or without `headers` and `id`). The topic picks one parser from [`FAMILIES`], one per
//! message family; each reads today's schema and the fedmsg-era one where they differ. A message
//! no family claims, or one in a state that schedules nothing, is [`Parsed::Ignored`] with the
//! reason; a message a family claims but cannot read is an [`EventError`].

mod bodhi;
mod branches;
mod compose;
mod koji;
mod mbs;
mod pull_request;
mod push;

use serde_json::Value;

pub use branches::{branch_for_dist_tag, branch_for_target, dist_tag, name_of_nvr, BranchRules};

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
    /// One event per repository the message concerns (a bodhi update names several packages).
    Events(Vec<Event>),
    /// A well-formed message that schedules nothing, and why.
    Ignored(String),
}

#[derive(Debug, thiserror::Error)]
pub enum EventError {
    #[error("the event is not JSON: {0}")]
    NotJson(String),
    #[error("the event is not a bus message: {0}")]
    Shape(String),
}

/// One message being read: its topic, its body, and the branch rules in force.
pub(crate) struct Message<'a> {
    pub topic: &'a str,
    pub body: &'a Value,
    pub rules: &'a BranchRules,
}

impl Message<'_> {
    /// An event of this message, to be filled in by a family parser.
    fn event(&self, item_type: &str, item: String) -> Event {
        Event {
            topic: self.topic.to_string(),
            item_type: item_type.to_string(),
            item,
            name: None,
            namespace: None,
            branch: None,
            commit: None,
        }
    }

    /// The error for a field the family needs and the message lacks.
    fn missing(&self, what: &str) -> EventError {
        EventError::Shape(format!("`{}` message without `{what}`", self.topic))
    }

    /// A required string at `path` in the body.
    fn required(&self, path: &[&str]) -> Result<&str, EventError> {
        str_at(self.body, path).ok_or_else(|| self.missing(&path.join(".")))
    }

    /// Whether the message comes from Fedora's own bus (`org.fedoraproject.{prod,stg}.…`).
    fn is_from_fedora(&self) -> bool {
        self.topic.starts_with("org.fedoraproject.")
    }

    /// Whether the topic is the schema's own, without a bus's prefix (`pagure.git.receive`).
    fn is_unprefixed(&self, topic: &str) -> bool {
        self.topic == topic
    }
}

/// How a family recognises its topics.
enum Topic {
    /// The topic ends with this (after the bus's `org.fedoraproject.prod` prefix).
    Suffix(&'static str),
    /// The topic contains this (families with many sub-topics).
    Contains(&'static str),
}

type Family = fn(&Message) -> Result<Parsed, EventError>;

/// Every message family taskhook schedules on, first match wins.
const FAMILIES: &[(Topic, Family)] = &[
    (
        Topic::Suffix(".buildsys.build.state.change"),
        koji::build_state_change,
    ),
    (Topic::Suffix(".buildsys.tag"), koji::tag),
    (Topic::Suffix(".pagure.git.receive"), push::pagure),
    (Topic::Suffix(".git.receive"), push::distgit_hook),
    (Topic::Suffix(".forgejo.push"), push::forgejo),
    (
        Topic::Suffix(".pagure.pull-request.new"),
        pull_request::pagure,
    ),
    (
        Topic::Suffix(".pagure.pull-request.updated"),
        pull_request::pagure,
    ),
    (
        Topic::Suffix(".pagure.pull-request.rebased"),
        pull_request::pagure,
    ),
    (
        Topic::Suffix(".forgejo.pull_request"),
        pull_request::forgejo,
    ),
    (
        Topic::Suffix(".pungi.compose.status.change"),
        compose::status_change,
    ),
    (Topic::Contains(".bodhi.update."), bodhi::update),
    (Topic::Suffix(".mbs.module.state.change"), mbs::state_change),
];

/// Parses a bus message.
/// The largest message taskhook reads (`plan --event`, a body `listen` consumes): Fedora's
/// largest (a bodhi update of many builds) are tens of kilobytes.
pub const MAX_MESSAGE_BYTES: usize = 4 * 1024 * 1024;

pub fn parse(bytes: &[u8], rules: &BranchRules) -> Result<Parsed, EventError> {
    let v: Value = serde_json::from_slice(bytes).map_err(|e| EventError::NotJson(e.to_string()))?;
    let topic = v
        .get("topic")
        .and_then(Value::as_str)
        .ok_or_else(|| EventError::Shape("no `topic`".into()))?;
    let body = v
        .get("body")
        .or_else(|| v.get("msg"))
        .filter(|b| b.is_object())
        .ok_or_else(|| {
            EventError::Shape("no `msg` (fedmsg) or `body` (fedora-messaging) object".into())
        })?;
    parse_message(topic, body, rules)
}

/// Parses a message whose topic and body arrived separately (an AMQP delivery: the routing key
/// and the JSON body).
pub fn parse_message(topic: &str, body: &Value, rules: &BranchRules) -> Result<Parsed, EventError> {
    if !body.is_object() {
        return Err(EventError::Shape(
            "the message body is not a JSON object".into(),
        ));
    }
    let message = Message { topic, body, rules };
    for (pattern, family) in FAMILIES {
        let claimed = match pattern {
            // Also without the bus's prefix (`buildsys.tag`): how a fedora-messaging publisher
            // without a `topic_prefix` sends the schemas' topics.
            Topic::Suffix(s) => topic.ends_with(s) || topic == &s[1..],
            Topic::Contains(s) => topic.contains(s) || topic.starts_with(&s[1..]),
        };
        if claimed {
            return family(&message);
        }
    }
    Ok(Parsed::Ignored(format!(
        "topic `{topic}` is not an event taskhook schedules on"
    )))
}

/// The string at `path` in a JSON value.
fn str_at<'a>(v: &'a Value, path: &[&str]) -> Option<&'a str> {
    let mut cur = v;
    for p in path {
        cur = cur.get(p)?;
    }
    cur.as_str()
}

/// One event, the common case.
fn one(e: Event) -> Result<Parsed, EventError> {
    Ok(Parsed::Events(vec![e]))
}

/// Helpers for the family tests: the corpus messages, parsed.
#[cfg(test)]
pub(crate) mod testing {
    use super::*;

    pub fn corpus(file: &str) -> Vec<u8> {
        let dir =
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/corpus/messages");
        std::fs::read(dir.join(file))
            .or_else(|_| std::fs::read(dir.join("modern").join(file)))
            .expect("corpus message")
    }

    pub fn events(bytes: &[u8]) -> Vec<Event> {
        match parse(bytes, &BranchRules::default()).expect("valid") {
            Parsed::Events(e) => e,
            Parsed::Ignored(why) => panic!("ignored: {why}"),
        }
    }

    pub fn event(json: &str) -> Event {
        let mut e = events(json.as_bytes());
        assert_eq!(e.len(), 1, "{e:?}");
        e.remove(0)
    }

    pub fn ignored(bytes: &[u8]) -> String {
        match parse(bytes, &BranchRules::default()).expect("valid") {
            Parsed::Ignored(why) => why,
            Parsed::Events(e) => panic!("not ignored: {e:?}"),
        }
    }

    /// `(item_type, item, namespace/name, branch, commit)` of an event, for compact assertions.
    pub fn summary(e: &Event) -> (String, String, String, String, String) {
        (
            e.item_type.clone(),
            e.item.clone(),
            format!(
                "{}/{}",
                e.namespace.as_deref().unwrap_or("-"),
                e.name.as_deref().unwrap_or("-")
            ),
            e.branch.clone().unwrap_or_default(),
            e.commit.clone().unwrap_or_default(),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::testing::*;
    use super::*;

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

    #[test]
    fn topics_without_the_bus_prefix_are_the_same_events() {
        let dir =
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/corpus/messages");
        let mut seen = 0;
        for entry in std::fs::read_dir(&dir)
            .expect("corpus")
            .chain(std::fs::read_dir(dir.join("modern")).expect("corpus"))
        {
            let path = entry.expect("entry").path();
            if path.extension().is_none_or(|e| e != "json") {
                continue;
            }
            let bytes = std::fs::read(&path).expect("read");
            let Ok(mut v) = serde_json::from_slice::<Value>(&bytes) else {
                continue;
            };
            let Some(topic) = v["topic"].as_str().map(str::to_string) else {
                continue;
            };
            // The schema's topic: the bus's prefix (org.fedoraproject.prod., io.pagure.stg., ...)
            // taken off.
            let Some(bare) = topic
                .splitn(4, '.')
                .nth(3)
                .filter(|_| topic.starts_with("org.") || topic.starts_with("io."))
            else {
                continue;
            };
            v["topic"] = Value::String(bare.to_string());
            let stripped = serde_json::to_vec(&v).expect("json");
            let rules = BranchRules::default();
            match (parse(&bytes, &rules), parse(&stripped, &rules)) {
                (Ok(Parsed::Events(a)), Ok(Parsed::Events(b))) => {
                    let (a, b): (Vec<_>, Vec<_>) = (
                        a.iter().map(summary).collect(),
                        b.iter().map(summary).collect(),
                    );
                    assert_eq!(a, b, "{}", path.display());
                    seen += 1;
                }
                (Ok(Parsed::Ignored(_)), Ok(Parsed::Ignored(_))) | (Err(_), Err(_)) => {}
                (a, b) => panic!("{}: {a:?} against {b:?}", path.display()),
            }
        }
        assert!(seen >= 8, "only {seen} corpus messages gave events");
    }

    #[test]
    fn unknown_topics_are_ignored_with_a_reason() {
        let why = ignored(br#"{"topic": "org.fedoraproject.prod.fas.user.create", "body": {}}"#);
        assert_eq!(
            why,
            "topic `org.fedoraproject.prod.fas.user.create` is not an event taskhook schedules on"
        );
        let why = ignored(&corpus(
            "koji__untag_python-twisted_epel8-signing-pending.json",
        ));
        assert!(why.contains("buildsys.untag"), "{why}");
    }
}
