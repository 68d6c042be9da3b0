//! Pungi: a compose that finished (`pungi.compose.status.change`, `FINISHED` or
//! `FINISHED_INCOMPLETE`) is a `compose` of its id. A compose names no package, so it plans
//! only against a remote without `{name}` (a repository of generic tasks).

use super::{one, str_at, EventError, Message, Parsed};

pub fn status_change(m: &Message) -> Result<Parsed, EventError> {
    let status = m.required(&["status"])?;
    if status != "FINISHED" && status != "FINISHED_INCOMPLETE" {
        return Ok(Parsed::Ignored(format!(
            "compose status is {status}, not FINISHED"
        )));
    }
    let id = m.required(&["compose_id"])?;
    let mut e = m.event("compose", id.to_string());
    let location = str_at(m.body, &["location"]).unwrap_or("");
    // `Fedora-Rawhide-20180426.n.0`, `Fedora-40-20240101.0`, `Fedora-ELN-20240101.1`.
    let release = id.split('-').nth(1).unwrap_or("");
    e.branch = if location.contains("/rawhide/")
        || release.eq_ignore_ascii_case("rawhide")
        || release.eq_ignore_ascii_case("eln")
    {
        Some(m.rules.rawhide_branch.clone())
    } else {
        release.parse::<u32>().ok().map(|n| format!("f{n}"))
    };
    one(e)
}

#[cfg(test)]
mod tests {
    use super::super::testing::*;

    #[test]
    fn finished_composes() {
        let e = events(&corpus(
            "pungi__compose_status_change_finished_incomplete_rawhide.json",
        ));
        assert_eq!(
            summary(&e[0]),
            (
                "compose".into(),
                "Fedora-Rawhide-20180426.n.0".into(),
                "-/-".into(),
                "rawhide".into(),
                String::new()
            )
        );
        let e = events(&corpus("fedmsg__compose2__TestPungiKojiComplete.json"));
        assert_eq!(e[0].branch.as_deref(), Some("rawhide"));
        let e = event(
            r#"{"topic": "org.fedoraproject.prod.pungi.compose.status.change",
                "body": {"status": "FINISHED", "compose_id": "Fedora-41-20241020.0", "location": "https://x/compose/41/"}}"#,
        );
        assert_eq!(e.branch.as_deref(), Some("f41"));
        assert_eq!(
            ignored(
                br#"{"topic": "x.pungi.compose.status.change", "body": {"status": "STARTED"}}"#
            ),
            "compose status is STARTED, not FINISHED"
        );
    }
}
