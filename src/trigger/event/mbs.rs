//! The module build service: a module build that is ready (`mbs.module.state.change`,
//! `state_name` `ready` or state 5) is a `module_build` of N-S-V, for `modules/<name>` on the
//! branch named like the stream.

use serde_json::Value;

use super::{one, str_at, EventError, Message, Parsed};

/// MBS's state number for `ready`.
const READY: i64 = 5;

pub fn state_change(m: &Message) -> Result<Parsed, EventError> {
    let state = str_at(m.body, &["state_name"])
        .map(str::to_string)
        .or_else(|| {
            m.body.get("state").and_then(Value::as_i64).map(|n| {
                if n == READY {
                    "ready".into()
                } else {
                    n.to_string()
                }
            })
        })
        .unwrap_or_default();
    if state != "ready" {
        return Ok(Parsed::Ignored(format!(
            "module build state is `{state}`, not `ready`"
        )));
    }
    let name = m.required(&["name"])?;
    let stream = m.required(&["stream"])?;
    let version = match m.body.get("version") {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Number(n)) => n.to_string(),
        _ => return Err(m.missing("version")),
    };
    let mut e = m.event("module_build", format!("{name}-{stream}-{version}"));
    e.name = Some(name.to_string());
    e.namespace = Some("modules".to_string());
    e.branch = Some(stream.to_string());
    one(e)
}

#[cfg(test)]
mod tests {
    use super::super::testing::*;

    #[test]
    fn ready_modules_only() {
        let why = ignored(&corpus("mbs__module_state_change_testmodule-stg.json"));
        assert_eq!(why, "module build state is `wait`, not `ready`");
        let e = event(
            r#"{"topic": "org.fedoraproject.prod.mbs.module.state.change",
                "msg": {"name": "nodejs", "stream": "20", "version": 4120231025, "state_name": "ready"}}"#,
        );
        assert_eq!(
            summary(&e),
            (
                "module_build".into(),
                "nodejs-20-4120231025".into(),
                "modules/nodejs".into(),
                "20".into(),
                String::new()
            )
        );
        let e = event(
            r#"{"topic": "org.fedoraproject.prod.mbs.module.state.change",
                "body": {"name": "nodejs", "stream": "20", "version": "1", "state": 5}}"#,
        );
        assert_eq!(e.item, "nodejs-20-1");
    }
}
