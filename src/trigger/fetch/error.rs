//! What can go wrong fetching from a remote.

#[derive(Debug, thiserror::Error)]
pub enum FetchError {
    #[error("the remote has no {0}: is taskhook installed on that repository? (`taskhook manifest rebuild` bootstraps it)")]
    NoManifestRef(String),
    /// The server says no repository is served at that address (git daemon cannot tell a
    /// missing repository from one it does not export).
    #[error("no repository is served there: {0}")]
    NoRepository(String),
    #[error("{0}")]
    Unreachable(String),
    #[error("timed out after {0} s talking to {1}")]
    Timeout(u64, String),
    #[error("the remote sent more than {0} bytes; refusing it")]
    TooLarge(usize),
    #[error("cannot read what the remote sent: {0}")]
    Corrupt(String),
    #[error("cannot run git: {0}")]
    Spawn(String),
    /// The cache for http(s) fetches cannot be used (a directory that cannot be written).
    #[error("{0}")]
    Cache(String),
}
