//! The webhook connector's signatures against the Standard Webhooks reference implementation
//! (the `standardwebhooks` package from PyPI, installed by `tests/run.sh`): what it signs we
//! accept, what we sign it accepts, and neither accepts a tampered body.

mod synapse;

use std::process::Command;

use mimi_bridge_webhook::{Verifier, WebhookSecret, sign_all};
use serde_json::Value;

/// Runs a Python snippet with the reference implementation; its stdout as JSON.
fn reference(script: &str, args: &[&str]) -> Value {
    let python = synapse::Synapse::venv().join("bin/python");
    let out = Command::new(python)
        .arg("-c")
        .arg(script)
        .args(args)
        .output()
        .expect("run python");
    assert!(
        out.status.success(),
        "the reference implementation failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("JSON from the reference implementation")
}

const SIGN: &str = r#"
import sys, json, datetime
from standardwebhooks import Webhook
secret, msg_id, ts, body = sys.argv[1:5]
wh = Webhook(secret)
sig = wh.sign(msg_id, datetime.datetime.fromtimestamp(int(ts), tz=datetime.timezone.utc), body)
print(json.dumps({"signature": sig}))
"#;

const VERIFY: &str = r#"
import sys, json
from standardwebhooks import Webhook
secret, msg_id, ts, signature, body = sys.argv[1:6]
try:
    Webhook(secret).verify(body, {"webhook-id": msg_id, "webhook-timestamp": ts, "webhook-signature": signature})
    print(json.dumps({"valid": True}))
except Exception as e:
    print(json.dumps({"valid": False, "error": str(e)}))
"#;

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

#[test]
fn signatures_agree_with_the_reference_implementation_both_ways() {
    let secret = WebhookSecret::from_bytes((0u8..32).collect()).unwrap();
    let other = WebhookSecret::from_bytes(vec![9; 32]).unwrap();
    let body = r#"{"type":"message","event_id":"e-1","room_id":"general","sender":"alice","message_id":"m-1","content":{"body":"héllo ✓"}}"#;
    let ts = now();
    let ts_s = ts.to_string();

    // theirs → ours
    let theirs = reference(SIGN, &[&secret.encoded(), "msg_ref_1", &ts_s, body]);
    let signature = theirs["signature"].as_str().unwrap();
    assert_eq!(signature, secret.sign("msg_ref_1", ts, body.as_bytes()));
    let verifier = Verifier::new(vec![secret.clone()]);
    assert!(
        verifier
            .verify(
                Some("msg_ref_1"),
                Some(&ts_s),
                Some(signature),
                body.as_bytes(),
                ts
            )
            .is_ok()
    );

    // ours (two signatures, as during a rotation) → theirs
    let ours = sign_all(
        &[other.clone(), secret.clone()],
        "msg_ours_1",
        ts,
        body.as_bytes(),
    );
    let answer = reference(
        VERIFY,
        &[&secret.encoded(), "msg_ours_1", &ts_s, &ours, body],
    );
    assert_eq!(answer["valid"], true, "{answer}");

    // a tampered body, or a secret they do not share, fails in both
    let tampered = body.replace("héllo", "hello");
    let answer = reference(
        VERIFY,
        &[&secret.encoded(), "msg_ours_1", &ts_s, &ours, &tampered],
    );
    assert_eq!(answer["valid"], false, "{answer}");
    let only_other = other.sign("msg_ours_2", ts, body.as_bytes());
    let answer = reference(
        VERIFY,
        &[&secret.encoded(), "msg_ours_2", &ts_s, &only_other, body],
    );
    assert_eq!(answer["valid"], false, "{answer}");
    assert!(
        verifier
            .verify(
                Some("msg_ref_1"),
                Some(&ts_s),
                Some(signature),
                tampered.as_bytes(),
                ts
            )
            .is_err()
    );
}
