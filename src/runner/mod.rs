//! The runner's side: a job in (as `plan` and `listen` emit it), exactly the task it pins out,
//! verified before anything is written.
//!
//! [`checkout`] fetches the task directory with the least transfer the server allows (an
//! archive of `branch:path` where upload-archive is served and the branch is still at the
//! pinned commit, else a depth-1, blob-filtered fetch of the commit into a per-repository cache,
//! else a shallow fetch of the branch), checks the tree id, the formula digest and the commit
//! against the job, and only then moves the files into place.

pub mod checkout;
