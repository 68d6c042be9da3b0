//! Where `listen` delivers jobs: the broker (as fedora-messaging messages, with publisher
//! confirms), a command per job, or stdout. `deliver` returns only when every job of the
//! message is delivered, so the message can be acked.

use std::io::Write;
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use lapin::options::{BasicPublishOptions, ConfirmSelectOptions};
use lapin::types::{AMQPValue, FieldTable, ShortString};
use lapin::{BasicProperties, Channel, Connection};
use tokio::io::AsyncWriteExt;

use super::config::Jobs;
use crate::trigger::plan::Job;

/// fedora-messaging's base schema: consumers without taskhook's schema package read the job
/// as a plain `fedora_messaging.message.Message` with the job object as its body.
pub const SCHEMA: &str = "base.message";
/// fedora-messaging's INFO severity.
const SEVERITY_INFO: i32 = 20;

pub enum Sink {
    Amqp {
        publisher: Publisher,
        exchange: String,
        topic: String,
        priority: Option<u8>,
    },
    Exec {
        argv: Vec<String>,
        timeout: Option<Duration>,
    },
    Stdout,
}

/// The channel jobs are published on, in confirm mode. A publish the broker refuses (an
/// exchange it does not have, a user it does not let write) closes the channel, and every
/// publish after it would fail for that alone: the next publish opens another on the same
/// connection.
pub struct Publisher {
    conn: Arc<Connection>,
    channel: Mutex<Channel>,
}

impl Publisher {
    async fn open(conn: &Connection) -> Result<Channel, lapin::Error> {
        let channel = conn.create_channel().await?;
        channel
            .confirm_select(ConfirmSelectOptions::default())
            .await?;
        Ok(channel)
    }

    /// The channel to publish on: the one open, or a new one in place of one the broker
    /// closed.
    async fn channel(&self) -> Result<Channel, String> {
        let current = self.current();
        if current.status().connected() {
            return Ok(current);
        }
        let fresh = Self::open(&self.conn)
            .await
            .map_err(|e| format!("cannot open a channel to publish jobs on: {e}"))?;
        // Another message's publish may have opened one first: then use that, close this one.
        let first = {
            let mut slot = self.channel.lock().unwrap_or_else(|e| e.into_inner());
            if slot.status().connected() {
                Some(slot.clone())
            } else {
                *slot = fresh.clone();
                None
            }
        };
        match first {
            Some(open) => {
                let _ = fresh.close(200, "not needed".into()).await;
                Ok(open)
            }
            None => {
                eprintln!(
                    "taskhook listen: opened a new channel to publish jobs on (the broker closed the last)"
                );
                Ok(fresh)
            }
        }
    }

    fn current(&self) -> Channel {
        self.channel
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }
}

impl Sink {
    /// Opens the sink `jobs` names; an AMQP sink gets its own channel in confirm mode.
    pub async fn open(jobs: &Jobs, conn: &Arc<Connection>) -> Result<Sink, lapin::Error> {
        Ok(match jobs {
            Jobs::Amqp {
                exchange,
                topic,
                priority,
            } => {
                let publisher = Publisher {
                    channel: Mutex::new(Publisher::open(conn).await?),
                    conn: conn.clone(),
                };
                Sink::Amqp {
                    publisher,
                    exchange: exchange.clone(),
                    topic: topic.clone(),
                    priority: *priority,
                }
            }
            Jobs::Exec { argv, timeout } => Sink::Exec {
                argv: argv.clone(),
                timeout: *timeout,
            },
            Jobs::Stdout => Sink::Stdout,
        })
    }

    /// Delivers every job, or says why not.
    pub async fn deliver(&self, jobs: &[Job]) -> Result<(), DeliverError> {
        match self {
            Sink::Amqp {
                publisher,
                exchange,
                topic,
                priority,
            } => publish(publisher, exchange, topic, *priority, jobs).await,
            Sink::Exec { argv, timeout } => {
                for job in jobs {
                    exec(argv, *timeout, job)
                        .await
                        .map_err(DeliverError::Failed)?;
                }
                Ok(())
            }
            Sink::Stdout => {
                let failed = |e: std::io::Error| {
                    DeliverError::Failed(format!("cannot write to stdout: {e}"))
                };
                let mut out = std::io::stdout().lock();
                for job in jobs {
                    let line = serde_json::to_string(job).unwrap_or_default();
                    writeln!(out, "{line}").map_err(failed)?;
                }
                out.flush().map_err(failed)
            }
        }
    }
}

/// Why jobs were not delivered.
#[derive(Debug)]
pub enum DeliverError {
    /// Worth another attempt.
    Failed(String),
    /// The broker does not let this user publish there (ACCESS_REFUSED: no write permission
    /// on the exchange, or a topic it may not use): no attempt will do better.
    Forbidden(String),
}

impl DeliverError {
    /// `what` failed with `e`: forbidden when the broker refused access.
    fn of(what: String, e: lapin::Error) -> DeliverError {
        use lapin::protocol::{AMQPErrorKind, AMQPSoftError};
        let forbidden = matches!(e.kind(), lapin::ErrorKind::ProtocolError(amqp)
            if matches!(amqp.kind(), AMQPErrorKind::Soft(AMQPSoftError::ACCESSREFUSED)));
        let text = format!("{what}: {e}");
        if forbidden {
            DeliverError::Forbidden(text)
        } else {
            DeliverError::Failed(text)
        }
    }
}

/// The AMQP properties of a job message, as fedora-messaging's own publisher sets them (the
/// priority from `publish_priority`, mirrored in the headers, 0 there when unset).
pub fn properties(job: &Job, priority: Option<u8>) -> BasicProperties {
    let mut headers = FieldTable::default();
    headers.insert(
        "fedora_messaging_schema".into(),
        AMQPValue::LongString(SCHEMA.into()),
    );
    headers.insert(
        "fedora_messaging_severity".into(),
        AMQPValue::LongInt(SEVERITY_INFO),
    );
    headers.insert(
        "sent-at".into(),
        AMQPValue::LongString(now_iso8601().as_str().into()),
    );
    headers.insert(
        "priority".into(),
        AMQPValue::LongInt(priority.map_or(0, i32::from)),
    );
    let properties = BasicProperties::default()
        .with_content_type(ShortString::from("application/json"))
        .with_content_encoding(ShortString::from("utf-8"))
        .with_delivery_mode(2)
        .with_message_id(ShortString::from(job.id.as_str()))
        .with_headers(headers);
    match priority {
        Some(p) => properties.with_priority(p),
        None => properties,
    }
}

async fn publish(
    publisher: &Publisher,
    exchange: &str,
    topic: &str,
    priority: Option<u8>,
    jobs: &[Job],
) -> Result<(), DeliverError> {
    let channel = publisher.channel().await.map_err(DeliverError::Failed)?;
    let mut confirms = Vec::with_capacity(jobs.len());
    for job in jobs {
        let body = serde_json::to_vec(job).map_err(|e| DeliverError::Failed(e.to_string()))?;
        let routing_key = format!("{topic}.{}", job.item_type);
        let confirm = channel
            .basic_publish(
                exchange.into(),
                routing_key.as_str().into(),
                BasicPublishOptions::default(),
                &body,
                properties(job, priority),
            )
            .await
            .map_err(|e| DeliverError::of(format!("cannot publish job {}", job.id), e))?;
        confirms.push((job, confirm));
    }
    for (job, confirm) in confirms {
        let c = confirm
            .await
            .map_err(|e| DeliverError::of(format!("no confirmation for job {}", job.id), e))?;
        if !c.is_ack() {
            return Err(DeliverError::Failed(format!(
                "the broker refused job {}",
                job.id
            )));
        }
    }
    Ok(())
}

async fn exec(argv: &[String], timeout: Option<Duration>, job: &Job) -> Result<(), String> {
    let (program, args) = argv.split_first().ok_or("no command to run")?;
    let mut child = tokio::process::Command::new(program)
        .args(args)
        .stdin(Stdio::piped())
        .kill_on_drop(true)
        // Its own process group, so that what it started ends with it at the timeout.
        .process_group(0)
        .spawn()
        .map_err(|e| format!("cannot run `{program}`: {e}"))?;
    // Until the command has exited, its whole group is killed when this ends: at the timeout,
    // or when the listener stops with the job still running.
    let mut group = Group(child.id());
    let body = serde_json::to_vec(job).map_err(|e| e.to_string())?;
    let run = async {
        if let Some(mut stdin) = child.stdin.take() {
            // A command that does not read its stdin is still judged by its exit status.
            let _ = stdin.write_all(&body).await;
        }
        child.wait().await
    };
    let waited = match timeout {
        Some(limit) => match tokio::time::timeout(limit, run).await {
            Ok(waited) => waited,
            Err(_) => {
                return Err(format!(
                    "`{program}` for job {} ran past exec_timeout ({} s) and was killed",
                    job.id,
                    limit.as_secs()
                ));
            }
        },
        None => run.await,
    };
    // Exited: what it left running in the background is its own business.
    group.0 = None;
    let status = waited.map_err(|e| format!("`{program}` for job {}: {e}", job.id))?;
    if status.success() {
        Ok(())
    } else {
        Err(format!(
            "`{program}` for job {} exited with {status}",
            job.id
        ))
    }
}

/// The process group of a running `exec` command, killed on drop unless taken out.
struct Group(Option<u32>);

impl Drop for Group {
    fn drop(&mut self) {
        if let Some(pgid) = self.0 {
            crate::trigger::fetch::kill_group(pgid);
        }
    }
}

/// The current UTC time as fedora-messaging writes `sent-at`: `2026-11-28T09:40:27+00:00`.
pub fn now_iso8601() -> String {
    let secs = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    iso8601(secs)
}

fn iso8601(secs: u64) -> String {
    let days = (secs / 86_400) as i64;
    let rem = secs % 86_400;
    // Howard Hinnant's civil-from-days.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}+00:00",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sent_at_is_iso8601_utc() {
        assert_eq!(iso8601(0), "1970-01-01T00:00:00+00:00");
        assert_eq!(iso8601(951_782_400), "2000-02-29T00:00:00+00:00");
        assert_eq!(iso8601(1_795_772_427), "2026-11-27T09:40:27+00:00");
    }
}
