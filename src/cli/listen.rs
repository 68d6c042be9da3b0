//! `taskhook listen`: runs the bus service until SIGTERM or SIGINT.

use std::net::SocketAddr;
use std::path::Path;

use crate::error::{exit, CmdResult, Failure};
use crate::trigger::listen::config::ListenConfig;
use crate::trigger::listen::{self, metrics};

pub fn run(config: &Path, metrics_addr: Option<SocketAddr>, check: bool) -> CmdResult {
    let (config, warnings) =
        ListenConfig::load(config).map_err(|e| Failure::usage(e.to_string()))?;
    for w in &warnings {
        eprintln!("taskhook listen: warning: {w}");
    }
    // http(s) remotes are fetched through the cache: a directory the service cannot write (an
    // unset cache_dir under a user whose home is read-only) would fail every message. Other
    // remotes need it only where the server serves no archives: said, not refused.
    let dir = config
        .cache_dir
        .clone()
        .unwrap_or_else(crate::trigger::fetch::default_cache_dir);
    if let Err(e) = crate::trigger::fetch::cache::usable(&dir) {
        if crate::trigger::fetch::is_http(&config.remote) {
            return Err(Failure::usage(format!(
                "consumer_config.cache_dir: {e} (http(s) remotes are fetched through this cache; set cache_dir to a directory the service can write)"
            )));
        }
        eprintln!(
            "taskhook listen: warning: consumer_config.cache_dir: {e} (a server that serves no archives, such as git daemon without upload-archive, is fetched from through this cache; set cache_dir to a directory the service can write)"
        );
    }
    if check {
        crate::outln!("configuration ok");
        return Ok(exit::OK);
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("taskhook-listen")
        .build()
        .map_err(|e| Failure::usage(format!("cannot start the async runtime: {e}")))?;
    runtime.block_on(async move {
        let metrics = metrics::Metrics::default();
        // --metrics, else fedora-messaging's [monitoring] address and port.
        let serve = match (metrics_addr, config.monitoring) {
            (Some(addr), _) => Some((addr, "--metrics")),
            (None, Some(addr)) => Some((addr, "monitoring")),
            (None, None) => None,
        };
        if let Some((addr, from)) = serve {
            let listener = tokio::net::TcpListener::bind(addr)
                .await
                .map_err(|e| Failure::usage(format!("{from} {addr}: {e}")))?;
            eprintln!(
                "taskhook listen: metrics on http://{}/metrics",
                listener.local_addr().map_or(addr, |a| a)
            );
            tokio::spawn(metrics::serve(listener, metrics.clone()));
        }
        listen::run(config, metrics, shutdown_signal())
            .await
            .map_err(|e| Failure::usage(e.to_string()))
    })?;
    Ok(exit::OK)
}

/// Completes on the first SIGTERM or SIGINT.
async fn shutdown_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    let (Ok(mut term), Ok(mut int)) = (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) else {
        // Without signal handlers the service still runs; it stops when killed.
        std::future::pending::<()>().await;
        return;
    };
    tokio::select! {
        _ = term.recv() => eprintln!("taskhook listen: SIGTERM: finishing in-flight messages"),
        _ = int.recv() => eprintln!("taskhook listen: SIGINT: finishing in-flight messages"),
    }
}
