//! Standard Webhooks 1.0 signatures (<https://www.standardwebhooks.com>), both ways.
//!
//! A message is signed as `HMAC-SHA256(secret, "{webhook-id}.{webhook-timestamp}.{body}")`,
//! sent as `webhook-signature: v1,<base64>`; several space-separated signatures may be present
//! (one per secret while a secret is being rotated), and one valid signature is enough.
//! Secrets are written `whsec_<base64>`.

use std::fmt;
use std::str::FromStr;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use hmac::{Hmac, Mac};
use sha2::Sha256;
use subtle::ConstantTimeEq;

/// The header names, lower-case as HTTP/2 sends them.
pub const HEADER_ID: &str = "webhook-id";
pub const HEADER_TIMESTAMP: &str = "webhook-timestamp";
pub const HEADER_SIGNATURE: &str = "webhook-signature";

/// How far a timestamp may be from now, either way.
pub const DEFAULT_TOLERANCE_SECONDS: i64 = 5 * 60;

const PREFIX: &str = "whsec_";

/// A shared signing secret.
#[derive(Clone, PartialEq, Eq)]
pub struct WebhookSecret {
    key: Vec<u8>,
}

impl fmt::Debug for WebhookSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("WebhookSecret(..)")
    }
}

impl WebhookSecret {
    /// A secret from its raw key bytes (at least 24 bytes, as the specification advises).
    pub fn from_bytes(key: Vec<u8>) -> Result<WebhookSecret, SignatureError> {
        if key.len() < 24 {
            return Err(SignatureError::InvalidSecret(format!(
                "a secret needs at least 24 bytes, this one has {}",
                key.len()
            )));
        }
        Ok(WebhookSecret { key })
    }

    /// The `whsec_<base64>` form.
    pub fn encoded(&self) -> String {
        format!("{PREFIX}{}", STANDARD.encode(&self.key))
    }

    /// `v1,<base64 HMAC-SHA256>` of a message.
    pub fn sign(&self, id: &str, timestamp: i64, body: &[u8]) -> String {
        format!("v1,{}", STANDARD.encode(self.mac(id, timestamp, body)))
    }

    fn mac(&self, id: &str, timestamp: i64, body: &[u8]) -> Vec<u8> {
        // HMAC takes keys of any length.
        let mut mac =
            <Hmac<Sha256> as Mac>::new_from_slice(&self.key).expect("HMAC accepts any key length");
        mac.update(id.as_bytes());
        mac.update(b".");
        mac.update(timestamp.to_string().as_bytes());
        mac.update(b".");
        mac.update(body);
        mac.finalize().into_bytes().to_vec()
    }
}

impl FromStr for WebhookSecret {
    type Err = SignatureError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let b64 = s
            .trim()
            .strip_prefix(PREFIX)
            .ok_or_else(|| SignatureError::InvalidSecret("a secret starts with `whsec_`".into()))?;
        let key = STANDARD.decode(b64).map_err(|e| {
            SignatureError::InvalidSecret(format!("the part after `whsec_` is not base64: {e}"))
        })?;
        WebhookSecret::from_bytes(key)
    }
}

/// Signs with every secret (several during a rotation): the `webhook-signature` value.
pub fn sign_all(secrets: &[WebhookSecret], id: &str, timestamp: i64, body: &[u8]) -> String {
    secrets
        .iter()
        .map(|s| s.sign(id, timestamp, body))
        .collect::<Vec<_>>()
        .join(" ")
}

/// Why a request's signature is refused. The messages are safe to return to the caller.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SignatureError {
    #[error("missing header `{0}`")]
    MissingHeader(&'static str),
    #[error("`webhook-timestamp` is not a number of seconds: `{0}`")]
    MalformedTimestamp(String),
    #[error("`webhook-timestamp` is {seconds} s away from now; at most {tolerance} s are accepted")]
    TimestampOutOfRange { seconds: i64, tolerance: i64 },
    #[error("`webhook-signature` holds no `v1,<base64>` signature")]
    MalformedSignature,
    #[error("no signature in `webhook-signature` matches the body with a known secret")]
    NoValidSignature,
    #[error("`webhook-id` is empty or longer than 256 bytes")]
    MalformedId,
    #[error("invalid secret: {0}")]
    InvalidSecret(String),
}

/// Checks signed requests against the current secrets.
#[derive(Clone, Debug)]
pub struct Verifier {
    secrets: Vec<WebhookSecret>,
    tolerance_seconds: i64,
}

impl Verifier {
    pub fn new(secrets: Vec<WebhookSecret>) -> Verifier {
        Verifier {
            secrets,
            tolerance_seconds: DEFAULT_TOLERANCE_SECONDS,
        }
    }

    pub fn with_tolerance(mut self, seconds: i64) -> Verifier {
        self.tolerance_seconds = seconds;
        self
    }

    /// Verifies a request given its three header values (None when absent) and body, at
    /// `now` (UNIX seconds). Returns the webhook id, for de-duplication.
    pub fn verify<'a>(
        &self,
        id: Option<&'a str>,
        timestamp: Option<&str>,
        signature: Option<&str>,
        body: &[u8],
        now: i64,
    ) -> Result<&'a str, SignatureError> {
        let id = id.ok_or(SignatureError::MissingHeader(HEADER_ID))?;
        let timestamp = timestamp.ok_or(SignatureError::MissingHeader(HEADER_TIMESTAMP))?;
        let signature = signature.ok_or(SignatureError::MissingHeader(HEADER_SIGNATURE))?;
        if id.is_empty() || id.len() > 256 {
            return Err(SignatureError::MalformedId);
        }
        let ts: i64 = timestamp.trim().parse().map_err(|_| {
            SignatureError::MalformedTimestamp(timestamp.chars().take(32).collect())
        })?;
        let skew = now.saturating_sub(ts);
        if skew.abs() > self.tolerance_seconds {
            return Err(SignatureError::TimestampOutOfRange {
                seconds: skew,
                tolerance: self.tolerance_seconds,
            });
        }
        let candidates: Vec<Vec<u8>> = signature
            .split_whitespace()
            .filter_map(|s| s.strip_prefix("v1,"))
            .filter_map(|b64| STANDARD.decode(b64).ok())
            .collect();
        if candidates.is_empty() {
            return Err(SignatureError::MalformedSignature);
        }
        for secret in &self.secrets {
            let expected = secret.mac(id, ts, body);
            if candidates
                .iter()
                .any(|c| c.as_slice().ct_eq(&expected).into())
            {
                return Ok(id);
            }
        }
        Err(SignatureError::NoValidSignature)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The example of the Standard Webhooks specification.
    const SPEC_SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
    const SPEC_ID: &str = "msg_p5jXN8AQM9LWM0D4loKWxJek";
    const SPEC_TS: i64 = 1614265330;
    const SPEC_BODY: &[u8] = br#"{"test": 2432232314}"#;
    const SPEC_SIGNATURE: &str = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=";

    fn secret() -> WebhookSecret {
        SPEC_SECRET.parse().unwrap()
    }

    #[test]
    fn the_specifications_example_signature_is_reproduced() {
        assert_eq!(secret().sign(SPEC_ID, SPEC_TS, SPEC_BODY), SPEC_SIGNATURE);
        assert_eq!(secret().encoded(), SPEC_SECRET);
    }

    #[test]
    fn a_valid_signature_verifies() {
        let v = Verifier::new(vec![secret()]);
        let id = v
            .verify(
                Some(SPEC_ID),
                Some("1614265330"),
                Some(SPEC_SIGNATURE),
                SPEC_BODY,
                SPEC_TS + 10,
            )
            .unwrap();
        assert_eq!(id, SPEC_ID);
    }

    #[test]
    fn one_valid_signature_among_several_is_enough() {
        let v = Verifier::new(vec![secret()]);
        let header = format!("v1,AAAA v2,whatever {SPEC_SIGNATURE} v1,not-base64!");
        assert!(
            v.verify(
                Some(SPEC_ID),
                Some("1614265330"),
                Some(&header),
                SPEC_BODY,
                SPEC_TS
            )
            .is_ok()
        );
        // and a rotation: the receiver knows old and new secrets, the sender signs with both
        let new = WebhookSecret::from_bytes(vec![9; 32]).unwrap();
        let both = sign_all(&[new.clone(), secret()], SPEC_ID, SPEC_TS, SPEC_BODY);
        assert_eq!(both.split(' ').count(), 2);
        let only_new = Verifier::new(vec![new]);
        assert!(
            only_new
                .verify(
                    Some(SPEC_ID),
                    Some("1614265330"),
                    Some(&both),
                    SPEC_BODY,
                    SPEC_TS
                )
                .is_ok()
        );
    }

    #[test]
    fn a_tampered_body_is_refused() {
        let v = Verifier::new(vec![secret()]);
        let err = v
            .verify(
                Some(SPEC_ID),
                Some("1614265330"),
                Some(SPEC_SIGNATURE),
                br#"{"test": 2432232315}"#,
                SPEC_TS,
            )
            .unwrap_err();
        assert_eq!(err, SignatureError::NoValidSignature);
        // the id and timestamp are signed too
        let err = v
            .verify(
                Some("msg_other"),
                Some("1614265330"),
                Some(SPEC_SIGNATURE),
                SPEC_BODY,
                SPEC_TS,
            )
            .unwrap_err();
        assert_eq!(err, SignatureError::NoValidSignature);
    }

    #[test]
    fn a_wrong_secret_is_refused() {
        let v = Verifier::new(vec![WebhookSecret::from_bytes(vec![1; 32]).unwrap()]);
        let err = v
            .verify(
                Some(SPEC_ID),
                Some("1614265330"),
                Some(SPEC_SIGNATURE),
                SPEC_BODY,
                SPEC_TS,
            )
            .unwrap_err();
        assert_eq!(err, SignatureError::NoValidSignature);
    }

    #[test]
    fn old_and_future_timestamps_are_refused() {
        let v = Verifier::new(vec![secret()]);
        let err = v
            .verify(
                Some(SPEC_ID),
                Some("1614265330"),
                Some(SPEC_SIGNATURE),
                SPEC_BODY,
                SPEC_TS + 301,
            )
            .unwrap_err();
        assert!(
            matches!(
                err,
                SignatureError::TimestampOutOfRange { seconds: 301, .. }
            ),
            "{err}"
        );
        let err = v
            .verify(
                Some(SPEC_ID),
                Some("1614265330"),
                Some(SPEC_SIGNATURE),
                SPEC_BODY,
                SPEC_TS - 301,
            )
            .unwrap_err();
        assert!(
            matches!(
                err,
                SignatureError::TimestampOutOfRange { seconds: -301, .. }
            ),
            "{err}"
        );
        let err = v
            .verify(
                Some(SPEC_ID),
                Some("yesterday"),
                Some(SPEC_SIGNATURE),
                SPEC_BODY,
                SPEC_TS,
            )
            .unwrap_err();
        assert!(matches!(err, SignatureError::MalformedTimestamp(_)));
    }

    #[test]
    fn missing_headers_are_named() {
        let v = Verifier::new(vec![secret()]);
        for (id, ts, sig, missing) in [
            (None, Some("1"), Some("v1,x"), HEADER_ID),
            (Some("a"), None, Some("v1,x"), HEADER_TIMESTAMP),
            (Some("a"), Some("1"), None, HEADER_SIGNATURE),
        ] {
            assert_eq!(
                v.verify(id, ts, sig, b"", 1).unwrap_err(),
                SignatureError::MissingHeader(missing)
            );
        }
        assert_eq!(
            v.verify(Some("a"), Some("1"), Some("v2,abc"), b"", 1)
                .unwrap_err(),
            SignatureError::MalformedSignature
        );
        assert_eq!(
            v.verify(Some(""), Some("1"), Some("v1,x"), b"", 1)
                .unwrap_err(),
            SignatureError::MalformedId
        );
    }

    #[test]
    fn secrets_are_checked() {
        assert!(
            "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
                .parse::<WebhookSecret>()
                .is_err(),
            "prefix"
        );
        assert!("whsec_!!!".parse::<WebhookSecret>().is_err(), "base64");
        assert!("whsec_AAAA".parse::<WebhookSecret>().is_err(), "too short");
        assert_eq!(
            format!("{:?}", secret()),
            "WebhookSecret(..)",
            "never printed"
        );
    }

    proptest::proptest! {
        #[test]
        fn signatures_verify_for_any_body_and_fail_for_any_change(
            body in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..256),
            flip in proptest::prelude::any::<usize>(),
        ) {
            let s = secret();
            let v = Verifier::new(vec![s.clone()]);
            let sig = s.sign("msg_1", 1000, &body);
            proptest::prop_assert!(v.verify(Some("msg_1"), Some("1000"), Some(&sig), &body, 1000).is_ok());
            if !body.is_empty() {
                let mut changed = body.clone();
                let i = flip % changed.len();
                changed[i] ^= 0x01;
                proptest::prop_assert_eq!(
                    v.verify(Some("msg_1"), Some("1000"), Some(&sig), &changed, 1000).unwrap_err(),
                    SignatureError::NoValidSignature
                );
            }
        }
    }
}
