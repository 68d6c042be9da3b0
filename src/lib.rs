//! taskhook validates Taskotron task formulas when they are pushed to a dist-git server, keeps a
//! schedule manifest per branch in `refs/meta/tasks`, and turns message-bus events into jobs by
//! fetching only that manifest.
//!
//! # Two pipelines
//!
//! ```text
//! push:    git ref updates ─► server::hooks ─► validate (source → discover → yaml → formula → check)
//!                                          └─► manifest (model, reuse) ─► manifest::store (refs/meta/tasks)
//!
//! trigger: bus message ─► trigger::event ─► trigger::fetch (one file, no clone) ─► trigger::plan ─► jobs
//! ```
//!
//! The stages, lowest first; a module imports only from stages below its own:
//!
//! 1. [`error`]: exit codes and the error every command ends with; [`suggest`]: did-you-mean.
//! 2. [`git`]: the one module that talks to gitoxide.
//! 3. [`config`]: `taskhook.*` settings from git config.
//! 4. [`validate`]: a tree in, a verdict (findings as data) out.
//! 5. [`manifest`]: a verdict in, a schedule manifest out; stored with compare-and-swap.
//! 6. [`server`] (hooks, install) and [`trigger`] (event, fetch, plan, listen).
//! 7. [`runner`]: a job in, exactly the task it pins out, verified (`taskhook checkout`).
//! 8. [`demo`] and [`cli`]: the quick start; argument parsing, dispatch, output.
//!
//! Below them all, for unit tests only, `testing`: what tests across the stages share.
//!
//! `docs/ARCHITECTURE.md` says where new work goes.

#[cfg(feature = "listen")]
pub mod cli;
pub mod config;
pub mod demo;
pub mod error;
pub mod git;
pub mod manifest;
pub mod runner;
pub mod server;
pub mod suggest;
pub mod trigger;
pub mod validate;

/// What unit tests across the modules share.
#[cfg(test)]
pub(crate) mod testing {
    /// A small deterministic random source for tests that generate many cases: each call
    /// gives a number below `n` (xorshift, from `seed`).
    pub fn random(mut seed: u64) -> impl FnMut(usize) -> usize {
        move |n| {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            (seed % n as u64) as usize
        }
    }
}
