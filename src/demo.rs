//! `taskhook demo`: the whole story on built-in examples.

use std::path::Path;

use crate::cli::{CmdResult, Failure};

pub fn run(_keep: Option<&Path>) -> CmdResult {
    Err(Failure::usage("demo: not yet"))
}
