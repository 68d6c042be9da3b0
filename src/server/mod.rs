//! The git server side: the hook entry points git runs on a push, and installing them where each
//! server layout runs hooks.
//!
//! [`hooks`] reads git's ref updates, asks [`crate::validate`] for a verdict (pre-receive, update)
//! and stores manifests through [`crate::manifest::store`] (post-receive), which takes over
//! pre-receive's verdicts through [`handover`]; [`install`] puts the shims in place, and
//! [`entry`] is where both binaries (`taskhook`, and `taskhook-hook`, which only runs the hooks)
//! start a hook.

pub mod entry;
pub mod handover;
pub mod hooks;
pub mod install;
