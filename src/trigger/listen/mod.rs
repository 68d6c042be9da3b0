//! `taskhook listen`: the trigger as a service on the message bus.
//!
//! It consumes an AMQP 0-9-1 broker (RabbitMQ, the engine Fedora's bus runs on), turns each
//! message into jobs with the same code path as `taskhook plan` ([`crate::trigger::run`]), and
//! delivers them to the configured sink ([`sink`]). The delivery rules, in [`handle`]:
//!
//! - a message is acked only after all its jobs are delivered (publisher confirms, or the
//!   `exec` command succeeded);
//! - a malformed or unknown message is logged, counted and acked: never a crash or a poison loop;
//! - a transient failure (remote unreachable, broker hiccup) is retried with backoff up to
//!   `max_retries`, then rejected without requeue: to the queue's dead-letter exchange if it
//!   has one, else dropped, with a log line either way;
//! - a publish the broker forbids (ACCESS_REFUSED) goes no better on another attempt: the
//!   message goes back to the queue and the service stops, naming what to change;
//! - a lost connection is re-established with capped exponential backoff and the topology
//!   declared again; unacked messages go back to the queue for this or another listener.
//!
//! The async runtime lives here only: the hooks and one-shot commands never start it. [`run`]
//! takes its shutdown signal as an argument; on shutdown it stops consuming, lets in-flight
//! messages finish (a message waiting to retry goes back to the queue), and returns.

pub mod config;
pub mod metrics;
pub mod sink;

use std::future::Future;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_lite::StreamExt;
use lapin::message::Delivery;
use lapin::options::{
    BasicCancelOptions, BasicConsumeOptions, BasicQosOptions, BasicRejectOptions,
    ExchangeDeclareOptions, QueueBindOptions, QueueDeclareOptions,
};
use lapin::protocol::{AMQPErrorKind, AMQPSoftError};
use lapin::tcp::{OwnedIdentity, OwnedTLSConfig};
use lapin::types::{AMQPValue, FieldTable, LongString, ShortString};
use lapin::{Channel, Connection, ConnectionProperties, ExchangeKind};
use tokio::sync::{mpsc, watch};
use tokio::task::JoinSet;

use self::config::{Jobs, ListenConfig};
use self::metrics::Metrics;
use self::sink::{DeliverError, Sink};
use super::event::{self, BranchRules, Parsed};
use super::run::{self, Options};

/// The longest wait between two connection attempts, and between two retries of a message.
const MAX_BACKOFF: Duration = Duration::from_secs(30);
/// How long in-flight messages get to finish after a shutdown request.
const DRAIN: Duration = Duration::from_secs(10);
/// How long connecting, declaring and starting to consume may take before the attempt counts
/// as lost.
const SETUP: Duration = Duration::from_secs(20);
/// How long looking up the broker's host and opening the TCP connection to it may take. Its
/// own deadline, inside [`SETUP`]: a connect that hangs (SYNs to an address that drops them)
/// runs on lapin's thread, which giving up on the attempt does not reach; without one it ends
/// only when the kernel gives up, about two minutes later.
const CONNECT: Duration = Duration::from_secs(10);

/// Why the service could not run at all.
#[derive(Debug, thiserror::Error)]
pub enum ListenError {
    #[error("cannot read the client certificate or CA: {0}")]
    Tls(String),
    #[error("amqp_url: {0}")]
    Url(String),
    #[error("the broker refused the configured topology: {0}")]
    Topology(String),
    #[error(
        "the broker does not let this user publish the jobs: {0} (give it write permission on \
         consumer_config.jobs_exchange, and on the topics under jobs_topic where the broker \
         checks topics, or name an exchange and topic it may publish to; the message went back \
         to the queue)"
    )]
    Forbidden(String),
}

/// What every message handler shares.
struct Context {
    config: ListenConfig,
    options: Options,
    rules: BranchRules,
    metrics: Metrics,
    /// Why the listener must stop (the broker forbids publishing its jobs), once a message's
    /// handler finds it; the session then ends and the service exits.
    forbidden: watch::Sender<Option<String>>,
}

/// Runs the service until `shutdown` completes. Returns `Ok` after a clean shutdown.
pub async fn run(
    config: ListenConfig,
    metrics: Metrics,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), ListenError> {
    let tls = tls_config(&config)?;
    let options = Options {
        remote: config.remote.clone(),
        fallback_branch: config.fallback_branch.clone(),
        manifest_ref: config.manifest_ref.clone(),
        timeout: config.timeout,
        cache_dir: config
            .cache_dir
            .clone()
            .unwrap_or_else(super::fetch::default_cache_dir),
        cache_max_repos: config.cache_max_repos,
        explain_tasks: false,
    };
    let rules = BranchRules {
        rawhide_release: config.rawhide_release,
        rawhide_branch: config.rawhide_branch.clone(),
    };
    let ctx = Arc::new(Context {
        config,
        options,
        rules,
        metrics,
        forbidden: watch::Sender::new(None),
    });
    let (stop_tx, stop_rx) = watch::channel(false);
    tokio::spawn({
        let shutdown = Box::pin(shutdown);
        async move {
            shutdown.await;
            let _ = stop_tx.send(true);
        }
    });
    eprintln!("{}", startup_line(&ctx.config, &ctx.options));
    let result = reconnecting(&ctx, tls, stop_rx).await;
    if result.is_ok() {
        eprintln!("taskhook listen: stopped");
    }
    result
}

/// Runs sessions until a shutdown, reconnecting with capped exponential backoff.
async fn reconnecting(
    ctx: &Arc<Context>,
    tls: OwnedTLSConfig,
    stop_rx: watch::Receiver<bool>,
) -> Result<(), ListenError> {
    let mut backoff = Duration::from_secs(1);
    loop {
        let started = Instant::now();
        match session(ctx, tls.clone(), stop_rx.clone()).await {
            Ok(()) => return Ok(()),
            Err(SessionError::Fatal(e)) => return Err(e),
            Err(SessionError::Lost(e)) => {
                if started.elapsed() > Duration::from_secs(60) {
                    backoff = Duration::from_secs(1);
                }
                let hint = connection_hint(&ctx.config, &e)
                    .map(|h| format!("; {h}"))
                    .unwrap_or_default();
                eprintln!(
                    "taskhook listen: broker connection lost or refused ({e}){hint}; reconnecting in {} s",
                    backoff.as_secs()
                );
            }
        }
        let mut stop = stop_rx.clone();
        tokio::select! {
            _ = tokio::time::sleep(backoff) => {}
            _ = stop.wait_for(|s| *s) => return Ok(()),
        }
        backoff = (backoff * 2).min(MAX_BACKOFF);
    }
}

/// What to check when a connection fails in a way the configuration can cause: the error
/// itself comes from the TLS or AMQP layer and names neither the setting nor the fix.
fn connection_hint(c: &ListenConfig, error: &str) -> Option<String> {
    let tls = c.amqp_url.starts_with("amqps://");
    let has = |needle: &str| error.contains(needle);
    let hint = if has("CertificateRequired") {
        "the broker asks for a client certificate: set tls.certfile and tls.keyfile (PEM files)"
            .to_string()
    } else if has("alert: HandshakeFailure") && c.tls.certfile.is_none() {
        // What a broker speaking TLS 1.2 says for want of a client certificate, among others.
        "the TLS handshake failed: if the broker requires a client certificate (as Fedora's \
         does), set tls.certfile and tls.keyfile"
            .to_string()
    } else if has("UnknownIssuer") || has("BadSignature") {
        match &c.tls.ca_cert {
            Some(ca) => format!(
                "the broker's certificate is not signed by the CA in tls.ca_cert ({}): set it \
                 to the CA certificate that signed the broker's",
                ca.display()
            ),
            None => "the broker's certificate is not signed by a CA this system trusts: set \
                     tls.ca_cert to the CA certificate that signed it"
                .to_string(),
        }
    } else if has("alert: UnknownCA")
        || has("alert: BadCertificate")
        || has("alert: CertificateUnknown")
        || has("alert: AccessDenied")
    {
        "the broker refused the client certificate in tls.certfile: is it signed by a CA the \
         broker trusts, and is tls.keyfile its key?"
            .to_string()
    } else if tls && has("InvalidContentType") {
        "the port does not speak TLS: use the broker's TLS port (5671 by default) with \
         amqps://, or amqp:// for a plain port"
            .to_string()
    } else if !tls && has("failed to parse") {
        "the broker did not answer in AMQP: if the port is a TLS listener (5671 by default), \
         the URL must start with amqps://"
            .to_string()
    } else if has("acknowledgement") && has("timed out") {
        // RabbitMQ's consumer_timeout: a message held unacked (a long `exec` job) past it.
        "a message was held unacknowledged past the broker's consumer timeout (RabbitMQ's \
         consumer_timeout, 30 minutes by default), so the broker closed the channel and \
         delivers the message again: keep jobs shorter than that (consumer_config.exec_timeout), \
         or raise consumer_timeout on the broker"
            .to_string()
    } else if has("ACCESS_REFUSED") {
        match &c.tls.certfile {
            Some(_) => "the broker refused the login: with a client certificate the user is the \
                        one the certificate names (RabbitMQ: rabbitmq_auth_mechanism_ssl and \
                        ssl_cert_login_from), and it must exist on the broker"
                .to_string(),
            None => {
                "the broker refused the login: check the user and password in amqp_url".to_string()
            }
        }
    } else {
        return None;
    };
    Some(hint)
}

/// The line that says what the listener consumes and where jobs go.
fn startup_line(c: &ListenConfig, o: &Options) -> String {
    let bindings: Vec<String> = c
        .bindings
        .iter()
        .map(|b| {
            format!(
                "{} <- {} [{}]",
                shown_queue(&b.queue),
                b.exchange,
                b.routing_keys.join(", ")
            )
        })
        .collect();
    let jobs = match &c.jobs {
        Jobs::Amqp {
            exchange,
            topic,
            priority,
        } => format!(
            "published to exchange `{exchange}` as `{topic}.<item_type>`{}",
            priority.map_or(String::new(), |p| format!(" with priority {p}"))
        ),
        Jobs::Exec { argv, timeout } => format!(
            "run as `{}` (job JSON on stdin{})",
            argv.join(" "),
            timeout.map_or(String::new(), |t| format!(
                "; killed after {} s",
                t.as_secs()
            ))
        ),
        Jobs::Stdout => "printed on stdout (JSON Lines)".to_string(),
    };
    let cache = if super::fetch::is_http(&c.remote) {
        format!(
            " (through the cache {}, at most {} repositories)",
            o.cache_dir.display(),
            o.cache_max_repos
        )
    } else {
        String::new()
    };
    format!(
        "taskhook listen: broker {}; consuming {}{}; prefetch {}; manifests from {}{cache}; jobs {jobs}",
        redact(&c.amqp_url),
        if bindings.is_empty() {
            c.queues
                .iter()
                .map(|q| shown_queue(&q.name))
                .collect::<Vec<_>>()
                .join(", ")
        } else {
            bindings.join("; ")
        },
        if c.passive_declares {
            " (queues and exchanges must exist: passive_declares)"
        } else {
            ""
        },
        c.prefetch_count,
        c.remote,
    )
}

/// A configured queue's name for the log: one without a name is named by the broker.
fn shown_queue(name: &str) -> String {
    if name.is_empty() {
        "(a queue the broker names)".to_string()
    } else {
        name.to_string()
    }
}

/// The URL without its password, for logs.
fn redact(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_string();
    };
    match rest.split_once('@') {
        Some((userinfo, host)) => {
            let user = userinfo.split(':').next().unwrap_or("");
            format!("{scheme}://{user}:***@{host}")
        }
        None => url.to_string(),
    }
}

fn tls_config(c: &ListenConfig) -> Result<OwnedTLSConfig, ListenError> {
    let read = |p: &std::path::Path| {
        std::fs::read(p).map_err(|e| ListenError::Tls(format!("{}: {e}", p.display())))
    };
    let identity = match (&c.tls.certfile, &c.tls.keyfile) {
        (Some(cert), Some(key)) => Some(OwnedIdentity::PKCS8 {
            pem: read(cert)?,
            key: read(key)?,
        }),
        _ => None,
    };
    let cert_chain = match &c.tls.ca_cert {
        Some(ca) => Some(
            String::from_utf8(read(ca)?)
                .map_err(|_| ListenError::Tls(format!("{}: not PEM text", ca.display())))?,
        ),
        None => None,
    };
    Ok(OwnedTLSConfig {
        identity,
        cert_chain,
    })
}

enum SessionError {
    /// The connection failed or went away: reconnect.
    Lost(String),
    /// Retrying cannot help.
    Fatal(ListenError),
}

impl From<lapin::Error> for SessionError {
    fn from(e: lapin::Error) -> Self {
        SessionError::Lost(e.to_string())
    }
}

/// One connection's life: connect, declare, consume until the connection fails (`Err`) or a
/// shutdown is requested (`Ok`, after draining).
async fn session(
    ctx: &Arc<Context>,
    tls: OwnedTLSConfig,
    mut stop: watch::Receiver<bool>,
) -> Result<(), SessionError> {
    if *stop.borrow() {
        return Ok(());
    }
    // A broker that accepts the connection but never finishes a step (one caught starting or
    // stopping) would hold the listener here for good: the whole set-up has a deadline, and
    // missing it is a lost connection like any other.
    let socket = Socket::default();
    let setup = async {
        let conn = Arc::new(connect(&ctx.config, tls, &socket).await?);
        ctx.metrics.connections.inc();
        let consume = conn.create_channel().await?;
        consume
            .basic_qos(ctx.config.prefetch_count, BasicQosOptions::default())
            .await?;
        let queues = declare(&consume, &ctx.config).await?;
        let sink = Arc::new(Sink::open(&ctx.config.jobs, &conn).await?);
        let mut consumers = Vec::new();
        for q in &queues {
            let tag = format!("taskhook-{}-{q}", std::process::id());
            let consumer = consume
                .basic_consume(
                    q.as_str().into(),
                    tag.as_str().into(),
                    BasicConsumeOptions::default(),
                    FieldTable::default(),
                )
                .await?;
            consumers.push((tag, consumer));
        }
        Ok::<_, SessionError>((conn, consume, sink, consumers, queues))
    };
    let (conn, consume, sink, consumers, queues) =
        tokio::time::timeout(SETUP, setup).await.map_err(|_| {
            // lapin's connection lives on its own thread, which waits for the broker as long as
            // the socket stays open: shut the socket, and the thread ends.
            socket.shut();
            SessionError::Lost(format!(
                "the broker did not finish connecting and setting up within {} s",
                SETUP.as_secs()
            ))
        })??;
    // Set up: the socket is the connection's alone from here.
    drop(socket);
    // Every queue's consumer feeds one channel, so one loop sees all deliveries.
    let (tx, mut rx) = mpsc::channel::<Result<Delivery, lapin::Error>>(1);
    let mut tags = Vec::new();
    let mut forwarders = JoinSet::new();
    for (tag, mut consumer) in consumers {
        tags.push(tag);
        let tx = tx.clone();
        forwarders.spawn(async move {
            while let Some(d) = consumer.next().await {
                if tx.send(d).await.is_err() {
                    break;
                }
            }
        });
    }
    drop(tx);
    eprintln!(
        "taskhook listen: connected; consuming {}",
        queues.join(", ")
    );
    ctx.metrics.consuming.store(true, Ordering::Relaxed);
    let mut inflight = JoinSet::new();
    let for_handlers = stop.clone();
    let mut forbidden = ctx.forbidden.subscribe();
    let outcome = loop {
        tokio::select! {
            _ = stop.wait_for(|s| *s) => break Ok(()),
            d = rx.recv() => match d {
                Some(Ok(delivery)) => {
                    let (ctx, sink, stop) = (ctx.clone(), sink.clone(), for_handlers.clone());
                    inflight.spawn(async move { handle(&ctx, &sink, delivery, stop).await });
                }
                Some(Err(e)) => break Err(e.into()),
                None => break Err(SessionError::Lost("the broker cancelled the consumer".into())),
            },
            Some(_) = inflight.join_next(), if !inflight.is_empty() => {}
            why = forbidden.wait_for(Option::is_some) => {
                let why = why.map(|w| w.clone().unwrap_or_default()).unwrap_or_default();
                // What is unacked goes back to the queue as the connection closes.
                let _ = conn.close(200, "taskhook listen: forbidden to publish jobs".into()).await;
                break Err(SessionError::Fatal(ListenError::Forbidden(why)));
            }
        }
    };
    ctx.metrics.consuming.store(false, Ordering::Relaxed);
    if outcome.is_ok() {
        // Stop the broker sending more, then let what we hold finish.
        for tag in &tags {
            let _ = consume
                .basic_cancel(tag.as_str().into(), BasicCancelOptions::default())
                .await;
        }
        let drained = tokio::time::timeout(DRAIN, async {
            while inflight.join_next().await.is_some() {}
        })
        .await;
        if drained.is_err() {
            eprintln!(
                "taskhook listen: {} message(s) still in flight after {} s; they go back to the queue",
                inflight.len(),
                DRAIN.as_secs()
            );
        }
        let _ = conn
            .close(200, "taskhook listen shutting down".into())
            .await;
    }
    outcome
}

/// The socket of a connection being made, kept (a duplicate of its descriptor) so that an
/// attempt given up on can be shut down: lapin offers no way to abandon a connection before
/// its handshake ends, and its thread would wait on a silent broker for good.
#[derive(Default, Clone)]
struct Socket(Arc<std::sync::Mutex<Option<std::os::fd::OwnedFd>>>);

impl Socket {
    fn keep(&self, stream: &tokio::net::TcpStream) {
        use std::os::fd::AsFd;
        if let (Ok(fd), Ok(mut slot)) = (stream.as_fd().try_clone_to_owned(), self.0.lock()) {
            *slot = Some(fd);
        }
    }

    /// Shuts the socket down both ways (so that whoever reads it sees its end) and lets go.
    fn shut(&self) {
        let fd = self.0.lock().ok().and_then(|mut slot| slot.take());
        if let Some(fd) = fd {
            let _ = std::net::TcpStream::from(fd).shutdown(std::net::Shutdown::Both);
        }
    }
}

async fn connect(
    c: &ListenConfig,
    tls: OwnedTLSConfig,
    socket: &Socket,
) -> Result<Connection, SessionError> {
    let mut uri: lapin::uri::AMQPUri = c
        .amqp_url
        .parse()
        .map_err(|e: String| SessionError::Fatal(ListenError::Url(e)))?;
    if c.tls.certfile.is_some() && uri.query.auth_mechanism.is_none() {
        // A client certificate is the identity (RabbitMQ's EXTERNAL mechanism), as
        // fedora-messaging does.
        uri.query.auth_mechanism = Some(lapin::uri::SASLMechanism::External);
    }
    let mut props = ConnectionProperties::default();
    for (k, v) in &c.client_properties {
        props =
            props.with_client_property(ShortString::from(k.as_str()), LongString::from(v.as_str()));
    }
    let runtime = lapin::runtime::default_runtime()?;
    // What `Connection::connect_uri_with_config` does, keeping the socket (see `Socket`).
    let socket = socket.clone();
    let open = async move |uri: lapin::uri::AMQPUri, runtime: async_rs::TokioRuntime| {
        let addrs = runtime.to_socket_addrs((uri.authority.host.clone(), uri.authority.port));
        let connecting = lapin::tcp::AsyncTcpStream::connect(&runtime, addrs);
        let stream = tokio::time::timeout(CONNECT, connecting)
            .await
            .map_err(|_| {
                std::io::Error::new(
                    std::io::ErrorKind::TimedOut,
                    format!(
                        "connecting to {}:{} (the name's lookup and the TCP connection) took more than {} s",
                        uri.authority.host,
                        uri.authority.port,
                        CONNECT.as_secs()
                    ),
                )
            })??;
        if let lapin::tcp::AsyncTcpStream::Plain(plain) = &stream {
            socket.keep(plain.get_ref());
        }
        Ok(match uri.scheme {
            lapin::uri::AMQPScheme::AMQP => stream,
            lapin::uri::AMQPScheme::AMQPS => {
                stream.into_tls(&uri.authority.host, tls.as_ref()).await?
            }
        })
    };
    Ok(Connection::connector(uri, runtime, open, props).await?)
}

/// Declares the configured exchanges, queues and bindings (again after every reconnection);
/// with `passive_declares`, as fedora-messaging does, only checks that the exchanges and queues
/// exist, and declares the bindings. Returns the queues' names as the broker has them (it
/// names a queue configured without a name, and its bindings go to that one).
async fn declare(ch: &Channel, c: &ListenConfig) -> Result<Vec<String>, SessionError> {
    let passive = c.passive_declares;
    let refused = |what: String, e: lapin::Error, binding: bool| match e.kind() {
        // An exclusive queue still held by a connection the broker has not yet seen die (as
        // after a lost connection), or by another listener: retried, it is free once that one
        // is gone.
        lapin::ErrorKind::ProtocolError(amqp)
            if matches!(
                amqp.kind(),
                AMQPErrorKind::Soft(AMQPSoftError::RESOURCELOCKED)
            ) =>
        {
            SessionError::Lost(format!(
                "{what}: {e} (it is exclusive, and another connection holds it: an earlier one \
                 of this listener the broker still counts as open, or another listener; or it \
                 exists as a queue that is not exclusive: then set exclusive = false)"
            ))
        }
        lapin::ErrorKind::ProtocolError(amqp) => SessionError::Fatal(ListenError::Topology(
            format!("{what}: {e}{}", declare_hint(amqp.kind(), passive, binding)),
        )),
        _ => SessionError::Lost(e.to_string()),
    };
    for x in c.exchanges.iter().filter(|x| !x.name.starts_with("amq.")) {
        let kind = match x.kind.as_str() {
            "direct" => ExchangeKind::Direct,
            "fanout" => ExchangeKind::Fanout,
            "headers" => ExchangeKind::Headers,
            _ => ExchangeKind::Topic,
        };
        ch.exchange_declare(
            x.name.as_str().into(),
            kind,
            ExchangeDeclareOptions {
                passive,
                durable: x.durable,
                auto_delete: x.auto_delete,
                ..ExchangeDeclareOptions::default()
            },
            field_table(&x.arguments),
        )
        .await
        .map_err(|e| refused(format!("exchange `{}`", x.name), e, false))?;
    }
    // The exchange jobs go to, checked to exist (a passive declare needs no permission), so
    // that a name the broker does not have stops the service at start rather than failing
    // every message's jobs. The default exchange ("") always exists and cannot be declared.
    if let Jobs::Amqp { exchange, .. } = &c.jobs {
        if !exchange.is_empty() && !c.exchanges.iter().any(|x| x.name == *exchange) {
            ch.exchange_declare(
                exchange.as_str().into(),
                ExchangeKind::Topic,
                ExchangeDeclareOptions {
                    passive: true,
                    ..ExchangeDeclareOptions::default()
                },
                FieldTable::default(),
            )
            .await
            .map_err(|e| match e.kind() {
                lapin::ErrorKind::ProtocolError(_) => {
                    SessionError::Fatal(ListenError::Topology(format!(
                        "consumer_config.jobs_exchange `{exchange}`: {e} (the broker has no such \
                         exchange: name one it has, or add an [exchanges.\"{exchange}\"] table \
                         to declare it)"
                    )))
                }
                _ => SessionError::Lost(e.to_string()),
            })?;
        }
    }
    let mut names = Vec::with_capacity(c.queues.len());
    for q in &c.queues {
        let declared = ch
            .queue_declare(
                q.name.as_str().into(),
                QueueDeclareOptions {
                    passive,
                    durable: q.durable,
                    exclusive: q.exclusive,
                    auto_delete: q.auto_delete,
                    ..QueueDeclareOptions::default()
                },
                field_table(&q.arguments),
            )
            .await
            .map_err(|e| refused(format!("queue `{}`", q.name), e, false))?;
        names.push(declared.name().to_string());
    }
    for b in &c.bindings {
        let queue = c
            .queues
            .iter()
            .position(|q| q.name == b.queue)
            .map_or(b.queue.as_str(), |i| names[i].as_str());
        for key in &b.routing_keys {
            ch.queue_bind(
                queue.into(),
                b.exchange.as_str().into(),
                key.as_str().into(),
                QueueBindOptions::default(),
                FieldTable::default(),
            )
            .await
            .map_err(|e| {
                refused(
                    format!("binding `{}` to `{}` ({key})", b.queue, b.exchange),
                    e,
                    true,
                )
            })?;
        }
    }
    Ok(names)
}

/// What to change when the broker refuses a declaration (`binding`: a binding's), for the
/// refusals a setting explains.
fn declare_hint(kind: &AMQPErrorKind, passive: bool, binding: bool) -> &'static str {
    match kind {
        AMQPErrorKind::Soft(AMQPSoftError::ACCESSREFUSED) if binding => {
            " (binding needs the user's permission to write to the queue and read from the \
             exchange; fedora-messaging declares bindings even with passive_declares = true)"
        }
        AMQPErrorKind::Soft(AMQPSoftError::NOTFOUND) if passive => {
            " (with passive_declares = true it is not created: create it on the broker, or set \
             passive_declares = false)"
        }
        AMQPErrorKind::Soft(AMQPSoftError::ACCESSREFUSED) if !passive => {
            " (if the broker's administrators create the queues and exchanges, set \
             passive_declares = true to use them as they are)"
        }
        AMQPErrorKind::Soft(AMQPSoftError::PRECONDITIONFAILED) => {
            " (it exists with other settings: make durable, auto_delete, exclusive and arguments \
             match it)"
        }
        _ => "",
    }
}

/// TOML arguments (`x-dead-letter-exchange`, `x-message-ttl`, ...) as AMQP field values: a
/// list goes as a field array and a table as a field table, as fedora-messaging (pika) sends a
/// Python list and dict; a date or time goes as its TOML text.
fn field_table(args: &toml::Table) -> FieldTable {
    let mut t = FieldTable::default();
    for (k, v) in args {
        t.insert(k.as_str().into(), field_value(v));
    }
    t
}

fn field_value(v: &toml::Value) -> AMQPValue {
    match v {
        toml::Value::String(s) => AMQPValue::LongString(s.as_str().into()),
        toml::Value::Integer(n) => AMQPValue::LongLongInt(*n),
        toml::Value::Float(f) => AMQPValue::Double(*f),
        toml::Value::Boolean(b) => AMQPValue::Boolean(*b),
        toml::Value::Array(items) => {
            AMQPValue::FieldArray(items.iter().map(field_value).collect::<Vec<_>>().into())
        }
        toml::Value::Table(table) => AMQPValue::FieldTable(field_table(table)),
        toml::Value::Datetime(d) => AMQPValue::LongString(d.to_string().as_str().into()),
    }
}

/// How one message ended.
enum Outcome {
    /// Jobs delivered (maybe none), message acked.
    Acked {
        outcome: &'static str,
        jobs: usize,
        note: String,
    },
    /// Rejected without requeue: dead-lettered if the queue has a dead-letter exchange.
    Rejected { outcome: &'static str, note: String },
    /// Given back to the queue (shutdown during a retry wait).
    Requeued,
    /// Given back to the queue, and the listener stops: its jobs cannot be delivered by anyone
    /// until the broker's permissions or the configuration change.
    Stop { note: String },
}

/// Handles one delivery by the rules in the module documentation, and logs one line for it.
async fn handle(ctx: &Context, sink: &Sink, d: Delivery, stop: watch::Receiver<bool>) {
    let start = Instant::now();
    let topic = d.routing_key.as_str().to_string();
    let id = d
        .properties
        .message_id()
        .as_ref()
        .map_or_else(|| "-".to_string(), |s| s.as_str().to_string());
    let outcome = decide(ctx, sink, &topic, &d.data, stop).await;
    let ms = start.elapsed().as_millis();
    let redelivered = if d.redelivered { " redelivered" } else { "" };
    let (line, settle) = match outcome {
        Outcome::Acked {
            outcome,
            jobs,
            note,
        } => {
            ctx.metrics.event(outcome);
            (
                format!(
                    "topic={topic} id={id} jobs={jobs} ms={ms} outcome={outcome}{redelivered}{}",
                    sep(&note)
                ),
                d.acker.ack(Default::default()).await,
            )
        }
        Outcome::Rejected { outcome, note } => {
            ctx.metrics.event(outcome);
            (
                format!(
                    "topic={topic} id={id} jobs=0 ms={ms} outcome={outcome}{redelivered}{}",
                    sep(&note)
                ),
                d.acker.reject(BasicRejectOptions { requeue: false }).await,
            )
        }
        Outcome::Requeued => (
            format!("topic={topic} id={id} jobs=0 ms={ms} outcome=requeued (shutting down)"),
            d.acker.reject(BasicRejectOptions { requeue: true }).await,
        ),
        Outcome::Stop { note } => {
            let settle = d.acker.reject(BasicRejectOptions { requeue: true }).await;
            ctx.forbidden.send_if_modified(|why| {
                let first = why.is_none();
                why.get_or_insert_with(|| note.clone());
                first
            });
            (
                format!("topic={topic} id={id} jobs=0 ms={ms} outcome=requeued (stopping: {note})"),
                settle,
            )
        }
    };
    match settle {
        Ok(_) => eprintln!("taskhook listen: {line}"),
        Err(e) => eprintln!(
            "taskhook listen: {line} (but the broker did not take the acknowledgement: {e}; the message will be redelivered)"
        ),
    }
}

fn sep(note: &str) -> String {
    if note.is_empty() {
        String::new()
    } else {
        format!(": {note}")
    }
}

/// What to do with a message: parse, plan with retries, deliver.
async fn decide(
    ctx: &Context,
    sink: &Sink,
    topic: &str,
    data: &[u8],
    mut stop: watch::Receiver<bool>,
) -> Outcome {
    // Parsed JSON takes several times its size in memory: a larger body is not read.
    if data.len() > event::MAX_MESSAGE_BYTES {
        return Outcome::Acked {
            outcome: "malformed",
            jobs: 0,
            note: format!(
                "the body is {} bytes, more than the {} a message may have",
                data.len(),
                event::MAX_MESSAGE_BYTES
            ),
        };
    }
    let body: serde_json::Value = match serde_json::from_slice(data) {
        Ok(v) => v,
        Err(e) => {
            return Outcome::Acked {
                outcome: "malformed",
                jobs: 0,
                note: format!("the body is not JSON: {e}"),
            }
        }
    };
    let events = match event::parse_message(topic, &body, &ctx.rules) {
        Ok(Parsed::Events(events)) => events,
        Ok(Parsed::Ignored(why)) => {
            return Outcome::Acked {
                outcome: "ignored",
                jobs: 0,
                note: why,
            }
        }
        Err(e) => {
            return Outcome::Acked {
                outcome: "malformed",
                jobs: 0,
                note: e.to_string(),
            }
        }
    };
    let mut attempt = 0;
    loop {
        let result = attempt_once(ctx, sink, events.clone()).await;
        let transient = match result {
            Ok((0, note)) => {
                return Outcome::Acked {
                    outcome: "no-jobs",
                    jobs: 0,
                    note,
                }
            }
            Ok((n, note)) => {
                ctx.metrics.jobs.inc_by(n as u64);
                return Outcome::Acked {
                    outcome: "delivered",
                    jobs: n,
                    note,
                };
            }
            Err(Attempt::NoManifest(e)) => {
                return Outcome::Acked {
                    outcome: "no-jobs",
                    jobs: 0,
                    note: e,
                }
            }
            Err(Attempt::Permanent(e)) => {
                return Outcome::Rejected {
                    outcome: "rejected",
                    note: e,
                }
            }
            Err(Attempt::Forbidden(e)) => return Outcome::Stop { note: e },
            Err(Attempt::Transient(e)) => e,
        };
        ctx.metrics.failures.inc();
        if attempt >= ctx.config.max_retries {
            return Outcome::Rejected {
                outcome: "retried-out",
                note: format!("gave up after {} attempt(s): {transient}", attempt + 1),
            };
        }
        let wait = (Duration::from_millis(500) * 2u32.saturating_pow(attempt)).min(MAX_BACKOFF);
        eprintln!(
            "taskhook listen: topic={topic} attempt {} failed ({transient}); retrying in {} ms",
            attempt + 1,
            wait.as_millis()
        );
        tokio::select! {
            _ = tokio::time::sleep(wait) => {}
            _ = stop.wait_for(|s| *s) => return Outcome::Requeued,
        }
        attempt += 1;
    }
}

enum Attempt {
    Transient(String),
    Permanent(String),
    /// The broker forbids publishing the jobs: the listener stops.
    Forbidden(String),
    /// The repository serves no manifest (taskhook is not installed there), or there is no
    /// such repository.
    NoManifest(String),
}

/// Plans (on a blocking thread: fetching is synchronous I/O) and delivers; the number of jobs,
/// and the packages left out of a message naming several (see [`run::jobs_for_events`]).
async fn attempt_once(
    ctx: &Context,
    sink: &Sink,
    events: Vec<event::Event>,
) -> Result<(usize, String), Attempt> {
    let options = ctx.options.clone();
    let started = Instant::now();
    let planned = tokio::task::spawn_blocking(move || run::jobs_for_events(&events, &options))
        .await
        .map_err(|e| Attempt::Transient(format!("planning stopped: {e}")))?;
    ctx.metrics
        .fetch_seconds
        .observe(started.elapsed().as_secs_f64());
    let outcome = match planned {
        Ok(o) => o,
        Err(e) if e.is_not_served() => return Err(Attempt::NoManifest(e.to_string())),
        Err(e) if e.is_transient() => return Err(Attempt::Transient(e.to_string())),
        Err(e) => return Err(Attempt::Permanent(e.to_string())),
    };
    sink.deliver(&outcome.jobs).await.map_err(|e| match e {
        DeliverError::Failed(e) => Attempt::Transient(e),
        DeliverError::Forbidden(e) => Attempt::Forbidden(e),
    })?;
    Ok((outcome.jobs.len(), outcome.skipped.join("; ")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use lapin::types::FieldArray;

    #[test]
    fn queue_arguments_keep_their_types_in_lists_and_tables() {
        let args: toml::Table = toml::from_str(
            "x-message-ttl = 60000\nx-dead-letter-exchange = \"dlx\"\nratio = 0.5\n\
             lazy = true\nnames = [\"a\", 2]\nnested = { depth = 1, on = [false] }\n\
             when = 1979-05-27T07:32:00Z\n",
        )
        .expect("valid TOML");
        let t = field_table(&args);
        let get = |k: &str| t.inner().get(k).cloned().expect(k);
        assert_eq!(get("x-message-ttl"), AMQPValue::LongLongInt(60000));
        assert_eq!(
            get("x-dead-letter-exchange"),
            AMQPValue::LongString("dlx".into())
        );
        assert_eq!(get("ratio"), AMQPValue::Double(0.5));
        assert_eq!(get("lazy"), AMQPValue::Boolean(true));
        let names: FieldArray =
            vec![AMQPValue::LongString("a".into()), AMQPValue::LongLongInt(2)].into();
        assert_eq!(get("names"), AMQPValue::FieldArray(names));
        let mut nested = FieldTable::default();
        nested.insert("depth".into(), AMQPValue::LongLongInt(1));
        nested.insert(
            "on".into(),
            AMQPValue::FieldArray(vec![AMQPValue::Boolean(false)].into()),
        );
        assert_eq!(get("nested"), AMQPValue::FieldTable(nested));
        assert_eq!(
            get("when"),
            AMQPValue::LongString("1979-05-27T07:32:00Z".into())
        );
    }

    #[test]
    fn a_refused_declaration_names_the_setting_that_explains_it() {
        use AMQPSoftError::{ACCESSREFUSED, NOTFOUND, PRECONDITIONFAILED};
        let hint = |e, passive, binding| declare_hint(&AMQPErrorKind::Soft(e), passive, binding);
        assert!(hint(ACCESSREFUSED, false, false).contains("set passive_declares = true"));
        assert!(hint(ACCESSREFUSED, true, true).contains("write to the queue"));
        assert!(hint(ACCESSREFUSED, false, true).contains("write to the queue"));
        assert_eq!(hint(ACCESSREFUSED, true, false), "");
        assert!(hint(NOTFOUND, true, false).contains("create it on the broker"));
        assert_eq!(hint(NOTFOUND, false, true), "");
        assert!(hint(PRECONDITIONFAILED, false, false).contains("exists with other settings"));
    }

    #[test]
    fn a_refused_login_is_explained_by_how_the_listener_logs_in() {
        let text = "amqp_url = \"amqps://broker.example:5671/%2F\"\n\
                    [queues.q]\n\
                    [consumer_config]\nremote = \"git://git.example/{name}.git\"\n";
        let (mut c, _) = ListenConfig::parse(text, "c.toml").expect("valid");
        let refused = "protocol error: AMQP soft error: ACCESS-REFUSED: ACCESS_REFUSED - Login \
                       was refused using authentication mechanism EXTERNAL.";
        let hint = connection_hint(&c, refused).expect("a hint");
        assert!(hint.contains("user and password in amqp_url"), "{hint}");
        c.tls.certfile = Some("/etc/pki/taskhook.pem".into());
        let hint = connection_hint(&c, refused).expect("a hint");
        assert!(hint.contains("the one the certificate names"), "{hint}");
        // A message held past RabbitMQ's consumer_timeout, in RabbitMQ 3.10's words.
        let timed_out =
            "protocol error: AMQP soft error: PRECONDITION-FAILED: PRECONDITION_FAILED \
                         - delivery acknowledgement on channel 1 timed out. Timeout value used: \
                         1800000 ms. This timeout value can be configured, see consumers doc \
                         guide to learn more";
        let hint = connection_hint(&c, timed_out).expect("a hint");
        assert!(hint.contains("consumer_config.exec_timeout"), "{hint}");
        // Errors the configuration does not explain get no hint.
        assert_eq!(
            connection_hint(&c, "IO error: Connection reset by peer"),
            None
        );
    }

    #[test]
    fn the_startup_line_names_the_cache_of_an_http_remote() {
        let text = "amqp_url = \"amqp://u:secret@broker.example/%2F\"\n\
                    [queues.q]\n\
                    [consumer_config]\nremote = \"https://src.example/{name}.git\"\n\
                    cache_dir = \"/var/cache/taskhook\"\ncache_max_repos = 50\n";
        let (c, _) = ListenConfig::parse(text, "c.toml").expect("valid");
        let o = Options {
            remote: c.remote.clone(),
            fallback_branch: None,
            manifest_ref: c.manifest_ref.clone(),
            timeout: c.timeout,
            cache_dir: c.cache_dir.clone().expect("cache_dir"),
            cache_max_repos: c.cache_max_repos,
            explain_tasks: false,
        };
        let line = startup_line(&c, &o);
        assert!(
            line.contains(
                "manifests from https://src.example/{name}.git (through the cache \
                 /var/cache/taskhook, at most 50 repositories)"
            ),
            "{line}"
        );
        assert!(!line.contains("secret"), "{line}");
    }

    #[test]
    fn passwords_stay_out_of_logs() {
        assert_eq!(
            redact("amqp://guest:secret@h:5672/%2F"),
            "amqp://guest:***@h:5672/%2F"
        );
        assert_eq!(redact("amqps://h/%2Fpubsub"), "amqps://h/%2Fpubsub");
    }
}
