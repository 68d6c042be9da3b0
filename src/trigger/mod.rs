//! The trigger pipeline: a bus event in, jobs out.
//!
//! [`event`] turns a message (fedmsg or fedora-messaging) into an item on a branch of a
//! repository; [`fetch`] gets that branch's manifest from the server without cloning; [`plan`]
//! matches the manifest's tasks against the event (pure) and yields the jobs; [`run`] is the
//! one code path from event to jobs, which `taskhook plan` runs once and [`listen`] runs for
//! every message it consumes from the bus.

pub mod event;
pub mod fetch;
#[cfg(feature = "listen")]
pub mod listen;
pub mod plan;
pub mod run;
