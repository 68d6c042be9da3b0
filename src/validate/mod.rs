//! Stage 1 of the push pipeline: a tree in, a verdict out.
//!
//! [`source`] abstracts the tree (a commit in git or a checkout on disk); [`discover`] finds the
//! tasks in it (one per directory holding `runtask.yml`); [`yaml`] reads each formula exactly as
//! the runner's YAML 1.1 loader would, under resource limits; [`formula`] checks it against
//! libtaskotron's format; [`check`] puts it together into a [`check::Report`]. Findings are data
//! ([`diag::Diagnostic`]); [`render`] turns a report into human or JSON output. Nothing here
//! writes anything.

pub mod check;
pub mod diag;
pub mod discover;
pub mod formula;
pub mod render;
pub mod source;
pub mod worktree;
pub mod yaml;
