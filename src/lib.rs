//! taskhook: validate Taskotron task formulas when they are pushed to a dist-git server, publish a
//! schedule manifest per branch in `refs/meta/tasks`, and turn message-bus events into jobs by
//! fetching only that manifest.
//!
//! The pipeline, one module per step:
//! [`yaml`] parse → [`formula`] validate → [`discover`] / [`check`] a tree → [`manifest`] build →
//! [`store`] in git; and [`event`] parse → [`fetch`] the manifest → [`plan`] jobs.

pub mod check;
pub mod cli;
pub mod config;
pub mod diag;
pub mod discover;
pub mod formula;
pub mod git;
pub mod worktree;
pub mod yaml;
