//! Inbound: the provider's signed JSON calls, checked before anything is done with them.
//!
//! [`check`] verifies the Standard Webhooks signature (several allowed during a rotation), the
//! timestamp window (5 minutes either way) and the JSON shape of the [`ConnectorEvent`]. The
//! daemon then refuses a replayed `webhook-id` (or answers a retried one as before) from its
//! store, so every call is processed once.

use mimi_bridge_connector::ConnectorEvent;

use crate::signature::{HEADER_ID, HEADER_SIGNATURE, HEADER_TIMESTAMP, SignatureError, Verifier};

/// Why an inbound call is refused, with the HTTP status and a stable code for the JSON body.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InboundError {
    #[error(transparent)]
    Signature(#[from] SignatureError),
    #[error("the body is not a valid event: {0}")]
    Body(String),
}

impl InboundError {
    /// 400 for what the caller wrote wrong, 401 for what fails authentication.
    pub fn status(&self) -> u16 {
        match self {
            InboundError::Signature(SignatureError::MissingHeader(_))
            | InboundError::Signature(SignatureError::MalformedTimestamp(_))
            | InboundError::Signature(SignatureError::MalformedId)
            | InboundError::Body(_) => 400,
            InboundError::Signature(_) => 401,
        }
    }

    /// A machine-readable code for the JSON error body.
    pub fn code(&self) -> &'static str {
        match self {
            InboundError::Signature(SignatureError::MissingHeader(_)) => "missing_header",
            InboundError::Signature(SignatureError::MalformedTimestamp(_)) => "malformed_timestamp",
            InboundError::Signature(SignatureError::TimestampOutOfRange { .. }) => {
                "timestamp_out_of_range"
            }
            InboundError::Signature(SignatureError::MalformedSignature) => "malformed_signature",
            InboundError::Signature(SignatureError::NoValidSignature) => "invalid_signature",
            InboundError::Signature(SignatureError::MalformedId) => "malformed_webhook_id",
            InboundError::Signature(SignatureError::InvalidSecret(_)) => "invalid_secret",
            InboundError::Body(_) => "invalid_event",
        }
    }
}

/// A call that passed the checks: its webhook id (for de-duplication) and its event.
#[derive(Debug, Clone, PartialEq)]
pub struct CheckedCall {
    pub webhook_id: String,
    pub event: ConnectorEvent,
}

/// Checks a call given a header lookup (case-insensitive names), its body and the time now
/// (UNIX seconds).
pub fn check<'h>(
    verifier: &Verifier,
    header: impl Fn(&str) -> Option<&'h str>,
    body: &[u8],
    now: i64,
) -> Result<CheckedCall, InboundError> {
    let id = verifier.verify(
        header(HEADER_ID),
        header(HEADER_TIMESTAMP),
        header(HEADER_SIGNATURE),
        body,
        now,
    )?;
    let event: ConnectorEvent =
        serde_json::from_slice(body).map_err(|e| InboundError::Body(e.to_string()))?;
    event
        .validate()
        .map_err(|e| InboundError::Body(e.to_string()))?;
    Ok(CheckedCall {
        webhook_id: id.to_string(),
        event,
    })
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;
    use crate::signature::WebhookSecret;

    const BODY: &str = r#"{"type": "message", "event_id": "evt-1", "room_id": "general", "sender": "alice",
        "message_id": "m-17", "content": {"kind": "text", "body": "Hello", "format": "plain"}}"#;

    fn secret() -> WebhookSecret {
        WebhookSecret::from_bytes(vec![3; 32]).unwrap()
    }

    fn headers(id: &str, ts: i64, body: &[u8]) -> HashMap<&'static str, String> {
        HashMap::from([
            (HEADER_ID, id.to_string()),
            (HEADER_TIMESTAMP, ts.to_string()),
            (HEADER_SIGNATURE, secret().sign(id, ts, body)),
        ])
    }

    fn run(
        h: &HashMap<&'static str, String>,
        body: &[u8],
        now: i64,
    ) -> Result<CheckedCall, InboundError> {
        check(
            &Verifier::new(vec![secret()]),
            |n| h.get(n).map(String::as_str),
            body,
            now,
        )
    }

    #[test]
    fn a_signed_event_is_accepted() {
        let h = headers("msg_1", 1000, BODY.as_bytes());
        let call = run(&h, BODY.as_bytes(), 1000).unwrap();
        assert_eq!(call.webhook_id, "msg_1");
        assert_eq!(call.event.event_id.as_str(), "evt-1");
    }

    #[test]
    fn each_refusal_has_its_status_and_code() {
        let body = BODY.as_bytes();
        let h = headers("msg_1", 1000, body);
        let tampered = BODY.replace("Hello", "Hallo");
        let cases: Vec<(Result<CheckedCall, InboundError>, u16, &str)> = vec![
            (run(&h, tampered.as_bytes(), 1000), 401, "invalid_signature"),
            (run(&h, body, 1000 + 301), 401, "timestamp_out_of_range"),
            (
                {
                    let mut m = h.clone();
                    m.remove(HEADER_SIGNATURE);
                    run(&m, body, 1000)
                },
                400,
                "missing_header",
            ),
            (
                {
                    let bad = br#"{"type": "message"}"#;
                    run(&headers("msg_2", 1000, bad), bad, 1000)
                },
                400,
                "invalid_event",
            ),
        ];
        for (result, status, code) in cases {
            let err = result.unwrap_err();
            assert_eq!((err.status(), err.code()), (status, code), "{err}");
        }
    }
}
