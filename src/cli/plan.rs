//! `taskhook plan`: one event in (a bus message or a manual item), jobs out on stdout.

use std::io::Write;
use std::time::Duration;

use super::{PlanArgs, PlanFormat};
use crate::error::{exit, CmdResult, Failure};
use crate::trigger::event::{self, BranchRules, Event, Parsed};
use crate::trigger::fetch;
use crate::trigger::run::{self, Options};
use crate::validate::formula::ITEM_TYPES;

/// The largest event read from a file or stdin.
const MAX_EVENT: u64 = event::MAX_MESSAGE_BYTES as u64;

pub fn run(args: PlanArgs) -> CmdResult {
    let events = events_from_args(&args)?;
    if events.is_empty() {
        return Ok(exit::OK);
    }
    let opts = Options {
        remote: args.remote.clone(),
        fallback_branch: args.fallback_branch.clone(),
        manifest_ref: args.manifest_ref.clone(),
        timeout: Duration::from_secs(args.timeout.max(1)),
        cache_dir: args
            .cache_dir
            .clone()
            .unwrap_or_else(fetch::default_cache_dir),
        cache_max_repos: usize::try_from(args.cache_max_repos).unwrap_or(usize::MAX),
        explain_tasks: args.explain,
    };
    let outcome = match run::jobs_for_events(&events, &opts) {
        Ok(outcome) => outcome,
        Err(e) => {
            // What was being planned, before why it could not be.
            if args.explain {
                for event in &events {
                    eprintln!("taskhook: {}", run::event_line(event));
                }
            }
            return Err(Failure::invalid(e.to_string()));
        }
    };
    for line in &outcome.skipped {
        eprintln!("taskhook: warning: {line}");
    }
    if args.explain {
        for line in &outcome.explain {
            eprintln!("taskhook: {line}");
        }
        let n = outcome.jobs.len();
        eprintln!("taskhook: {n} job{}", if n == 1 { "" } else { "s" });
    }
    // Jobs are about 450 bytes each and an event can have thousands: write in large pieces.
    let mut out = std::io::stdout().lock();
    let mut buf = Vec::with_capacity(64 * 1024);
    for job in &outcome.jobs {
        match args.format {
            PlanFormat::Json => job.write_json_line(&mut buf),
            PlanFormat::Runtask => {
                buf.extend_from_slice(job.runtask_line().as_bytes());
                buf.push(b'\n');
            }
        }
        if buf.len() >= 60 * 1024 {
            let _ = out.write_all(&buf);
            buf.clear();
        }
    }
    let _ = out.write_all(&buf);
    let _ = out.flush();
    crate::error::trace::step("jobs written");
    // The process ends next: freeing thousands of jobs one string at a time would only delay it.
    std::mem::forget(outcome);
    Ok(exit::OK)
}

/// The events the arguments describe; none for a message that schedules nothing (explained).
fn events_from_args(args: &PlanArgs) -> Result<Vec<Event>, Failure> {
    match (&args.event, &args.item_type, &args.item) {
        (Some(file), None, None) => {
            let rules = BranchRules {
                rawhide_release: args.rawhide_release,
                rawhide_branch: args.rawhide_branch.clone(),
            };
            let bytes = read_event(file)?;
            match event::parse(&bytes, &rules).map_err(|e| Failure::invalid(e.to_string()))? {
                Parsed::Events(mut events) => {
                    for e in &mut events {
                        if let Some(b) = &args.branch {
                            e.branch = Some(b.clone());
                        }
                        if let Some(n) = &args.name {
                            e.name = Some(n.clone());
                        }
                        if let Some(ns) = &args.namespace {
                            e.namespace = Some(ns.clone());
                        }
                    }
                    Ok(events)
                }
                Parsed::Ignored(why) => {
                    if args.explain {
                        eprintln!("taskhook: no jobs: {why}");
                    }
                    Ok(Vec::new())
                }
            }
        }
        (None, Some(t), Some(item)) => {
            if !ITEM_TYPES.contains(&t.as_str()) {
                return Err(Failure::usage(format!(
                    "unknown item type `{t}`; item types: {}",
                    ITEM_TYPES.join(", ")
                )));
            }
            // A koji build names its package: `{name}` comes from the N-V-R unless given.
            let name = args.name.clone().or_else(|| {
                (t == "koji_build")
                    .then(|| event::name_of_nvr(item).map(str::to_string))
                    .flatten()
            });
            Ok(vec![Event {
                topic: "the command line".into(),
                item_type: t.clone(),
                item: item.clone(),
                name,
                namespace: args.namespace.clone(),
                branch: args.branch.clone(),
                commit: None,
            }])
        }
        _ => Err(Failure::usage(
            "give either --event FILE, or --item-type, --item and --branch",
        )),
    }
}

fn read_event(file: &str) -> Result<Vec<u8>, Failure> {
    super::read_input(file, MAX_EVENT, "the event")
}
