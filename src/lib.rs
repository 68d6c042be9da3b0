//! taskhook: validate Taskotron task formulas when they are pushed to a dist-git server, publish a
//! schedule manifest per branch in `refs/meta/tasks`, and turn message-bus events into jobs by
//! fetching only that manifest.
//!
//! The pipeline, one module per step:
//! [`yaml`] parse → [`formula`] validate → [`discover`] / [`check`] a tree → [`manifest`] build →
//! [`store`] in git; and [`event`] parse → [`fetch`] the manifest → [`plan`] jobs.

pub mod check;
pub mod cli;
pub mod commands;
pub mod config;
pub mod demo;
pub mod diag;
pub mod discover;
pub mod event;
pub mod fetch;
pub mod formula;
pub mod git;
pub mod hook;
pub mod install;
pub mod manifest;
pub mod plan;
pub mod reuse;
pub mod store;
pub mod upload_archive;
pub mod worktree;
pub mod yaml;
