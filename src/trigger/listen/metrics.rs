//! What `taskhook listen` counts, and the Prometheus text endpoint (`--metrics ADDR`) that
//! serves it.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct OutcomeLabel {
    pub outcome: String,
}

/// The listener's counters. Cheap to clone; every clone counts into the same metrics.
#[derive(Clone)]
pub struct Metrics {
    /// Messages handled, by outcome (`delivered`, `no-jobs`, `ignored`, `malformed`,
    /// `retried-out`, `rejected`).
    pub events: Family<OutcomeLabel, Counter>,
    /// Jobs delivered (published and confirmed, executed, or printed).
    pub jobs: Counter,
    /// Failed attempts (fetch or delivery), each retry counted.
    pub failures: Counter,
    /// Seconds spent fetching and planning one message.
    pub fetch_seconds: Histogram,
    /// Broker connections established (1 + reconnections).
    pub connections: Counter,
    /// Whether the listener is connected and consuming now (fedora-messaging's `/ready`).
    pub consuming: Arc<AtomicBool>,
    registry: Arc<Registry>,
}

impl Default for Metrics {
    fn default() -> Self {
        let events = Family::<OutcomeLabel, Counter>::default();
        let jobs = Counter::default();
        let failures = Counter::default();
        let fetch_seconds = Histogram::new(exponential_buckets(0.001, 2.0, 16));
        let connections = Counter::default();
        let mut registry = Registry::with_prefix("taskhook_listen");
        registry.register("events", "Bus messages handled, by outcome", events.clone());
        registry.register("jobs", "Jobs delivered", jobs.clone());
        registry.register(
            "failures",
            "Failed attempts to plan or deliver (each retry counts)",
            failures.clone(),
        );
        registry.register(
            "fetch_seconds",
            "Time to fetch the manifest and plan one message",
            fetch_seconds.clone(),
        );
        registry.register(
            "connections",
            "Broker connections established",
            connections.clone(),
        );
        Metrics {
            events,
            jobs,
            failures,
            fetch_seconds,
            connections,
            consuming: Arc::default(),
            registry: Arc::new(registry),
        }
    }
}

impl Metrics {
    pub fn event(&self, outcome: &str) {
        self.events
            .get_or_create(&OutcomeLabel {
                outcome: outcome.to_string(),
            })
            .inc();
    }

    /// Messages handled with these outcomes (without making a series for one never seen).
    fn handled(&self, outcomes: &[&str]) -> u64 {
        outcomes
            .iter()
            .filter_map(|o| {
                self.events
                    .get(&OutcomeLabel {
                        outcome: (*o).to_string(),
                    })
                    .map(|c| c.get())
            })
            .sum()
    }

    /// fedora-messaging's `/ready` answer: whether the listener consumes, and its statistics
    /// in fedora-messaging's shape.
    pub fn ready(&self) -> String {
        let processed = self.handled(&["delivered", "no-jobs"]);
        let dropped = self.handled(&["ignored", "malformed"]);
        let rejected = self.handled(&["rejected"]);
        let failed = self.handled(&["retried-out"]);
        format!(
            "{{\"consuming\": {}, \"published\": {}, \"consumed\": {{\"received\": {}, \
             \"processed\": {processed}, \"dropped\": {dropped}, \"rejected\": {rejected}, \
             \"failed\": {failed}}}}}\n",
            self.consuming.load(Ordering::Relaxed),
            self.jobs.get(),
            processed + dropped + rejected + failed,
        )
    }

    /// The Prometheus text exposition of every metric.
    pub fn render(&self) -> String {
        let mut out = String::new();
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }
}

/// Serves [`Metrics::render`] over HTTP on `listener` until the task is dropped: `GET /live`
/// and `GET /ready` answer as fedora-messaging's monitoring server does (JSON, for the health
/// checks of a container platform), any other request gets the metrics (Prometheus scrapes
/// `GET /metrics`).
pub async fn serve(listener: TcpListener, metrics: Metrics) {
    loop {
        let Ok((mut stream, _)) = listener.accept().await else {
            // Out of descriptors, say: wait a moment rather than spin.
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
            continue;
        };
        let metrics = metrics.clone();
        tokio::spawn(async move {
            // Read (and ignore) the request head; a scrape is one small GET.
            let mut buf = [0u8; 2048];
            let read =
                tokio::time::timeout(std::time::Duration::from_secs(5), stream.read(&mut buf))
                    .await;
            let Ok(Ok(n @ 1..)) = read else { return };
            let path = std::str::from_utf8(&buf[..n])
                .ok()
                .and_then(|head| head.split_whitespace().nth(1))
                .unwrap_or("/");
            let (body, kind) = match path {
                "/live" => ("{\"status\": \"OK\"}\n".to_string(), "application/json"),
                "/ready" => (metrics.ready(), "application/json"),
                _ => (
                    metrics.render(),
                    "application/openmetrics-text; version=1.0.0; charset=utf-8",
                ),
            };
            let head = format!(
                "HTTP/1.1 200 OK\r\nContent-Type: {kind}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                body.len()
            );
            let _ = stream.write_all(head.as_bytes()).await;
            let _ = stream.write_all(body.as_bytes()).await;
            let _ = stream.shutdown().await;
        });
    }
}
