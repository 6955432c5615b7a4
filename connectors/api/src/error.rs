//! Errors in both directions, each saying whether trying again can help.

use std::time::Duration;

use crate::Feature;

/// Why a connector could not carry out a [`BridgeCommand`](crate::BridgeCommand).
///
/// The variant tells the core what to do next:
///
/// | variant | retryable | what the core does |
/// |---|---|---|
/// | [`Transient`](Self::Transient) | yes | delivers the same command (same [`CommandId`](crate::CommandId)) again after `retry_after`, or after its own backoff |
/// | [`NotRunning`](Self::NotRunning) | yes | retries once the connector has been started again |
/// | [`Permanent`](Self::Permanent) | no | gives up on this command and reports it to the MIMI sender |
/// | [`Refused`](Self::Refused) | no | gives up and tells the MIMI sender the legacy network did not allow it |
/// | [`Unsupported`](Self::Unsupported) | no | gives up and tells the MIMI sender the feature is not bridged |
///
/// A command is retried until it succeeds or fails with a non-retryable error, so a connector
/// must never answer `Transient` for something that cannot succeed later.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ConnectorError {
    /// A failure that may go away: the legacy network timed out, was unreachable, answered 5xx, or
    /// rate-limited us. The command may or may not have taken effect; the connector must make a
    /// redelivery with the same [`CommandId`](crate::CommandId) harmless.
    #[error("transient failure: {reason}")]
    Transient {
        /// What went wrong, for logs.
        reason: String,
        /// How long to wait before trying again, when the legacy network said so (e.g. HTTP
        /// `Retry-After`, Matrix `retry_after_ms`). `None` lets the core choose its backoff.
        retry_after: Option<Duration>,
    },
    /// The command can never succeed as given: the target message or room no longer exists on
    /// the legacy network, the content is too large, the legacy network rejected it as
    /// malformed.
    #[error("permanent failure: {reason}")]
    Permanent {
        /// What went wrong; may be shown to the MIMI sender.
        reason: String,
    },
    /// The legacy network does not allow this action for this user (not a member, no permission,
    /// blocked). Not retryable.
    #[error("refused by the legacy network: {reason}")]
    Refused {
        /// What the legacy network said; may be shown to the MIMI sender.
        reason: String,
    },
    /// The connector cannot carry this kind of command at all. Normally the core does not send
    /// such commands (see [`Capabilities::check`](crate::Capabilities::check)), but a connector
    /// may also find out late, e.g. when a legacy room does not allow reactions.
    #[error("not supported by this connector: {feature}")]
    Unsupported {
        /// The feature that is missing.
        feature: Feature,
    },
    /// The connector has not been started, or has been stopped. Retryable.
    #[error("the connector is not running")]
    NotRunning,
}

impl ConnectorError {
    /// A [`Transient`](Self::Transient) error with no retry hint.
    pub fn transient(reason: impl Into<String>) -> Self {
        ConnectorError::Transient {
            reason: reason.into(),
            retry_after: None,
        }
    }

    /// A [`Transient`](Self::Transient) error asking to wait `retry_after` before trying again.
    pub fn transient_after(reason: impl Into<String>, retry_after: Duration) -> Self {
        ConnectorError::Transient {
            reason: reason.into(),
            retry_after: Some(retry_after),
        }
    }

    /// A [`Permanent`](Self::Permanent) error.
    pub fn permanent(reason: impl Into<String>) -> Self {
        ConnectorError::Permanent {
            reason: reason.into(),
        }
    }

    /// A [`Refused`](Self::Refused) error.
    pub fn refused(reason: impl Into<String>) -> Self {
        ConnectorError::Refused {
            reason: reason.into(),
        }
    }

    /// Whether delivering the same command again can succeed.
    pub fn is_retryable(&self) -> bool {
        matches!(
            self,
            ConnectorError::Transient { .. } | ConnectorError::NotRunning
        )
    }

    /// The wait the connector asked for before a retry, if any.
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            ConnectorError::Transient { retry_after, .. } => *retry_after,
            _ => None,
        }
    }
}

/// Why the core did not accept a [`ConnectorEvent`](crate::ConnectorEvent) from
/// [`EventSink::submit`](crate::EventSink::submit).
///
/// Nothing was persisted. On a retryable error submit the same event (same
/// [`LegacyEventId`](crate::LegacyEventId)) again later, or make the legacy network redeliver it
/// (answer its webhook or transaction with an error); on a non-retryable one, drop it and, where
/// the legacy network can show it, tell the sender it was not bridged.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum SinkError {
    /// The event is malformed or makes no sense: an empty id, empty content, a room this
    /// connector never created or joined, a sender who is not a user of this connector, a relation
    /// to a message the core does not know, or an event id reused for a different event. Not
    /// retryable.
    #[error("invalid event: {reason}")]
    Invalid {
        /// What is wrong with it.
        reason: String,
    },
    /// The core cannot take events right now (its store is unreachable, it is overloaded).
    /// Retryable.
    #[error("the bridge cannot take events right now: {reason}")]
    Unavailable {
        /// What is wrong, for logs.
        reason: String,
        /// How long to wait before trying again, if the core knows.
        retry_after: Option<Duration>,
    },
    /// The core is shutting down and takes no more events. Retryable after a restart: have the
    /// legacy network redeliver the event rather than dropping it.
    #[error("the bridge is shutting down")]
    Closed,
}

impl SinkError {
    /// An [`Invalid`](Self::Invalid) error.
    pub fn invalid(reason: impl Into<String>) -> Self {
        SinkError::Invalid {
            reason: reason.into(),
        }
    }

    /// Whether submitting the same event again can succeed.
    pub fn is_retryable(&self) -> bool {
        !matches!(self, SinkError::Invalid { .. })
    }

    /// The wait the core asked for before a retry, if any.
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            SinkError::Unavailable { retry_after, .. } => *retry_after,
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn connector_errors_say_whether_a_retry_helps() {
        let wait = Duration::from_secs(3);
        assert!(ConnectorError::transient("timeout").is_retryable());
        assert!(ConnectorError::transient_after("429", wait).is_retryable());
        assert!(ConnectorError::NotRunning.is_retryable());
        assert!(!ConnectorError::permanent("gone").is_retryable());
        assert!(!ConnectorError::refused("not a member").is_retryable());
        let unsupported = ConnectorError::Unsupported {
            feature: Feature::Reactions,
        };
        assert!(!unsupported.is_retryable());
        assert_eq!(
            ConnectorError::transient_after("429", wait).retry_after(),
            Some(wait)
        );
        assert_eq!(ConnectorError::transient("x").retry_after(), None);
        assert_eq!(ConnectorError::permanent("x").retry_after(), None);
        assert_eq!(
            unsupported.to_string(),
            "not supported by this connector: reactions"
        );
    }

    #[test]
    fn sink_errors_say_whether_a_retry_helps() {
        let unavailable = SinkError::Unavailable {
            reason: "store down".into(),
            retry_after: Some(Duration::from_millis(500)),
        };
        assert!(unavailable.is_retryable());
        assert_eq!(unavailable.retry_after(), Some(Duration::from_millis(500)));
        assert!(SinkError::Closed.is_retryable());
        assert!(!SinkError::invalid("unknown room").is_retryable());
        assert_eq!(SinkError::invalid("x").retry_after(), None);
    }
}
