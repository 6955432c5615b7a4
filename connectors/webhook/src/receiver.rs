//! A small receiver for the bridge's commands: the provider's end of [`WebhookSender`].
//!
//! It is what a provider with nothing yet needs to see the bridge work (the
//! `mimi-bridge webhook-receiver` subcommand serves one and prints each command), and what tests
//! deliver to. It checks the Standard Webhooks signature, parses the [`BridgeCommand`], drops
//! redeliveries by `webhook-id` (answering them as the first time), records each new command and
//! answers with a [`Delivery`] naming made-up legacy ids: `room-<n>` for a created room, `msg-<n>`
//! for a message or reaction.
//!
//! ```text
//! POST /  (or /commands)
//!   200 {"message_id": "msg-1"} | {"room_id": "room-1"} | {}
//!   400 {"error": "missing_header" | "malformed_timestamp" | "malformed_webhook_id" | "invalid_command", "message": …}
//!   401 {"error": "invalid_signature" | "timestamp_out_of_range" | "malformed_signature", "message": …}
//!   500 {"error": "induced_failure", "message": …}   (the first `fail_first` valid calls)
//! ```
//!
//! [`WebhookSender`]: crate::WebhookSender

use std::collections::HashMap;
use std::io::Write as _;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use axum::Json;
use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use mimi_bridge_connector::{BridgeCommand, CommandKind, Delivery};
use tokio::sync::Notify;

use crate::inbound::InboundError;
use crate::signature::{HEADER_ID, HEADER_SIGNATURE, HEADER_TIMESTAMP, Verifier, WebhookSecret};

/// How a [`Receiver`] is set up.
#[derive(Clone, Debug, Default)]
pub struct ReceiverOptions {
    /// The secrets a signature may be made with (several while one is rotated).
    pub secrets: Vec<WebhookSecret>,
    /// Answer 500 to this many calls (signed, well-formed ones, duplicates included) before
    /// accepting any, to exercise the sender's retries.
    pub fail_first: usize,
}

/// Receives the bridge's signed commands and remembers them. Cheap to clone: clones share the
/// same record.
#[derive(Clone, Debug)]
pub struct Receiver {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    verifier: Verifier,
    fail_first: usize,
    state: Mutex<Record>,
    changed: Notify,
}

#[derive(Debug, Default)]
struct Record {
    /// Every POST, whatever became of it.
    attempts: usize,
    /// Signed, well-formed calls answered 500 so far.
    induced_failures: usize,
    /// The answer given to each webhook id, for redeliveries.
    answered: HashMap<String, Delivery>,
    /// New commands, in arrival order, with when each arrived.
    commands: Vec<BridgeCommand>,
    arrivals: Vec<Instant>,
    rooms: usize,
    messages: usize,
}

impl Receiver {
    pub fn new(options: ReceiverOptions) -> Receiver {
        Receiver {
            inner: Arc::new(Inner {
                verifier: Verifier::new(options.secrets),
                fail_first: options.fail_first,
                state: Mutex::new(Record::default()),
                changed: Notify::new(),
            }),
        }
    }

    /// The HTTP routes: `POST /` and `POST /commands`, the same handler.
    pub fn router(&self) -> Router {
        self.router_printing(false)
    }

    fn router_printing(&self, print: bool) -> Router {
        Router::new()
            .route("/", post(receive))
            .route("/commands", post(receive))
            .with_state(Handler {
                receiver: self.clone(),
                print,
            })
    }

    /// The commands accepted so far, in arrival order, each once (redeliveries are not repeated).
    pub fn commands(&self) -> Vec<BridgeCommand> {
        self.record().commands.clone()
    }

    /// The commands accepted after the first `from`, with when each arrived (for measuring
    /// latency).
    pub fn commands_since(&self, from: usize) -> Vec<(Instant, BridgeCommand)> {
        let record = self.record();
        record
            .arrivals
            .iter()
            .copied()
            .zip(record.commands.iter().cloned())
            .skip(from)
            .collect()
    }

    /// Waits until at least `count` commands were accepted after the first `from` and returns
    /// them with their arrival times (`Ok`), or after `timeout` those there are (`Err`).
    pub async fn wait_for_since(
        &self,
        from: usize,
        count: usize,
        timeout: Duration,
    ) -> Result<Vec<(Instant, BridgeCommand)>, Vec<(Instant, BridgeCommand)>> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let changed = self.inner.changed.notified();
            tokio::pin!(changed);
            changed.as_mut().enable();
            if self.record().commands.len() >= from + count {
                return Ok(self.commands_since(from));
            }
            if tokio::time::timeout_at(deadline, changed).await.is_err() {
                let got = self.commands_since(from);
                return if got.len() >= count {
                    Ok(got)
                } else {
                    Err(got)
                };
            }
        }
    }

    /// Every POST received so far: accepted, refused, induced failures and duplicates.
    pub fn attempts(&self) -> usize {
        self.record().attempts
    }

    /// Waits until at least `count` commands were accepted and returns all of them (`Ok`), or
    /// after `timeout` returns those there are (`Err`).
    pub async fn wait_for(
        &self,
        count: usize,
        timeout: Duration,
    ) -> Result<Vec<BridgeCommand>, Vec<BridgeCommand>> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let changed = self.inner.changed.notified();
            tokio::pin!(changed);
            // Registered before looking, so a command recorded in between still wakes us.
            changed.as_mut().enable();
            let commands = self.commands();
            if commands.len() >= count {
                return Ok(commands);
            }
            if tokio::time::timeout_at(deadline, changed).await.is_err() {
                let commands = self.commands();
                return if commands.len() >= count {
                    Ok(commands)
                } else {
                    Err(commands)
                };
            }
        }
    }

    fn record(&self) -> MutexGuard<'_, Record> {
        // A panic while holding the lock leaves the record consistent enough for a test tool.
        self.inner
            .state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn handle(&self, headers: &HeaderMap, body: &[u8], print: bool) -> Response {
        let mut record = self.record();
        record.attempts += 1;
        let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
        let webhook_id = match self.inner.verifier.verify(
            header(HEADER_ID),
            header(HEADER_TIMESTAMP),
            header(HEADER_SIGNATURE),
            body,
            unix_now(),
        ) {
            Ok(id) => id.to_string(),
            Err(e) => {
                let e = InboundError::from(e);
                let status = StatusCode::from_u16(e.status()).unwrap_or(StatusCode::UNAUTHORIZED);
                return refusal(status, e.code(), &e.to_string());
            }
        };
        let command: BridgeCommand = match serde_json::from_slice(body) {
            Ok(command) => command,
            Err(e) => {
                return refusal(
                    StatusCode::BAD_REQUEST,
                    "invalid_command",
                    &format!("the body is not a valid command: {e}"),
                );
            }
        };
        if record.induced_failures < self.inner.fail_first {
            record.induced_failures += 1;
            let n = record.induced_failures;
            return refusal(
                StatusCode::INTERNAL_SERVER_ERROR,
                "induced_failure",
                &format!(
                    "failing on purpose ({n} of {}); try again",
                    self.inner.fail_first
                ),
            );
        }
        if let Some(delivery) = record.answered.get(&webhook_id) {
            return (StatusCode::OK, Json(delivery.clone())).into_response();
        }
        let delivery = match &command.kind {
            CommandKind::RoomCreated { .. } => {
                record.rooms += 1;
                Delivery::room(format!("room-{}", record.rooms))
            }
            CommandKind::Message { .. } | CommandKind::Reaction { .. } => {
                record.messages += 1;
                Delivery::message(format!("msg-{}", record.messages))
            }
            _ => Delivery::done(),
        };
        if print {
            // Still under the lock, so lines come out in the order commands were recorded.
            if let Ok(line) = serde_json::to_string(&command) {
                let mut out = std::io::stdout().lock();
                let _ = writeln!(out, "{line}");
                let _ = out.flush();
            }
        }
        record.answered.insert(webhook_id, delivery.clone());
        record.commands.push(command);
        record.arrivals.push(Instant::now());
        drop(record);
        self.inner.changed.notify_waiters();
        (StatusCode::OK, Json(delivery)).into_response()
    }
}

/// Serves `receiver` on `listener` until the listener fails. With `print`, each new command is
/// written to stdout as one line of JSON, in arrival order.
pub async fn serve(
    listener: tokio::net::TcpListener,
    receiver: Receiver,
    print: bool,
) -> std::io::Result<()> {
    axum::serve(listener, receiver.router_printing(print)).await
}

#[derive(Clone)]
struct Handler {
    receiver: Receiver,
    print: bool,
}

async fn receive(State(handler): State<Handler>, headers: HeaderMap, body: Bytes) -> Response {
    handler.receiver.handle(&headers, &body, handler.print)
}

fn refusal(status: StatusCode, code: &str, message: &str) -> Response {
    (
        status,
        Json(serde_json::json!({"error": code, "message": message})),
    )
        .into_response()
}

fn unix_now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}
