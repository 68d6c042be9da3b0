//! Stage 2 of the push pipeline: a verdict in, a schedule manifest out, stored in git.
//!
//! [`model`] is the manifest format (the per-branch file and `index.json`: encoding, parsing,
//! limits, schema version) and builds a manifest from a verdict; [`reuse`] lets the hooks skip
//! subtrees a stored manifest already describes; [`store`] reads and writes `refs/meta/tasks`
//! with a compare-and-swap ref update.

pub mod model;
pub mod reuse;
pub mod store;

pub use model::*;
