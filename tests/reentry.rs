//! Users leaving and coming back, through the webhook connector: provider A's bridge hosts a
//! room of alice (A) and bob (B, a ghost on A's side); B's bridge is a follower whose only
//! member in the room is bob's proxy client. Each scenario runs in a room of its own, between
//! two fresh bridges, and is followed by a probe message from every remaining participant that
//! must reach every other participant exactly once. The commands each receiver got are then
//! checked as a whole: nothing missing, nothing twice, no echo.

mod common;
#[path = "common/webhook.rs"]
mod webhook;

use std::time::Duration;

use mimi_bridge_connector::{BridgeCommand, CommandKind, EventKind, UserRef};
use webhook::{
    Provider, Setup, describe, dev_certs, event, free_port, kind_of, logs, messages_saying,
    participants, text,
};

const ROOM: &str = "mimi://a.example/r/general";
const LEGACY_ROOM: &str = "general";
const ALICE: &str = "mimi://a.example/u/alice";
const BOB: &str = "mimi://b.example/u/bob";

/// Time for a stray duplicate or a late command to show before the final checks.
const SETTLE: Duration = Duration::from_millis(1500);

/// Two bridges: A hosts (consent asked of its users), B grants consent for its users.
struct Pair {
    a: Provider,
    b: Provider,
    _dir: tempfile::TempDir,
}

impl Pair {
    async fn start() -> Pair {
        let dir = tempfile::tempdir().unwrap();
        let certs = dev_certs(dir.path(), &["a.example", "b.example"]);
        let (pa, pb) = (free_port(), free_port());
        let a = Provider::start(Setup {
            dir: dir.path(),
            certs: &certs,
            domain: "a.example",
            mimi_port: pa,
            peers: &[("b.example", pb)],
            consent: "ask",
            fail_first: 0,
        })
        .await;
        let b = Provider::start(Setup {
            dir: dir.path(),
            certs: &certs,
            domain: "b.example",
            mimi_port: pb,
            peers: &[("a.example", pa)],
            consent: "grant",
            fail_first: 0,
        })
        .await;
        Pair { a, b, _dir: dir }
    }

    fn all(&self) -> [&Provider; 2] {
        [&self.a, &self.b]
    }

    /// Alice creates the room and invites bob; the first probes go both ways. Returns B's
    /// legacy id of the room.
    async fn room_with_bob(&self) -> String {
        self.a
            .submit(event(
                "a-create",
                LEGACY_ROOM,
                "alice",
                EventKind::RoomCreated {
                    name: Some("General".into()),
                },
            ))
            .await;
        self.a
            .submit(event(
                "a-invite",
                LEGACY_ROOM,
                "alice",
                EventKind::UserInvited {
                    target: UserRef::mimi(BOB),
                },
            ))
            .await;
        let got = self
            .b
            .wait_until("the room at B", &self.all(), |c| !c.is_empty())
            .await;
        let CommandKind::RoomCreated { participants, .. } = &got[0].kind else {
            panic!("expected room_created first at B:{}", describe(&got));
        };
        let mut users: Vec<_> = participants.iter().map(|p| p.uri.as_str()).collect();
        users.sort();
        assert_eq!(users, [ALICE, BOB]);
        self.probe("setup", None, true).await
    }

    /// Alice says something; if bob is in the room (`bob_in`), it must reach B, and bob answers
    /// in the legacy room it arrived in, which must reach A. Returns B's legacy room of the
    /// probe (or `b_room` when bob is not in the room).
    async fn probe(&self, label: &str, b_room: Option<&str>, bob_in: bool) -> String {
        let from_alice = format!("probe {label} from alice");
        self.a
            .submit(event(
                &format!("a-probe-{label}"),
                LEGACY_ROOM,
                "alice",
                text(&format!("a-m-{label}"), &from_alice),
            ))
            .await;
        if !bob_in {
            return b_room.unwrap_or_default().to_string();
        }
        let got = self
            .b
            .wait_until(
                &format!("alice's probe `{from_alice}` at B"),
                &self.all(),
                |c| !messages_saying(c, &from_alice).is_empty(),
            )
            .await;
        let arrived = messages_saying(&got, &from_alice)[0];
        assert_eq!(arrived.sender.uri.as_str(), ALICE);
        assert_eq!(arrived.room.uri.as_str(), ROOM);
        let legacy = arrived
            .room
            .legacy_id
            .as_ref()
            .unwrap_or_else(|| panic!("alice's probe names no legacy room at B:{}", describe(&got)))
            .as_str()
            .to_string();
        if let Some(b_room) = b_room {
            assert_eq!(
                legacy,
                b_room,
                "the probe arrived in another legacy room at B:{}",
                describe(&got)
            );
        }
        let from_bob = format!("probe {label} from bob");
        self.b
            .submit(event(
                &format!("b-probe-{label}"),
                &legacy,
                "bob",
                text(&format!("b-m-{label}"), &from_bob),
            ))
            .await;
        self.a
            .wait_until(
                &format!("bob's probe `{from_bob}` at A"),
                &self.all(),
                |c| !messages_saying(c, &from_bob).is_empty(),
            )
            .await;
        legacy
    }

    /// After [`SETTLE`]: each probe of `labels` arrived exactly once on the other side (bob's
    /// only where `bob_answered`) and never on its sender's side.
    async fn check_probes(&self, labels: &[(&str, bool)]) {
        tokio::time::sleep(SETTLE).await;
        let (at_a, at_b) = (self.a.commands(), self.b.commands());
        for (label, bob_in) in labels {
            let from_alice = format!("probe {label} from alice");
            let from_bob = format!("probe {label} from bob");
            let expected = usize::from(*bob_in);
            assert_eq!(
                messages_saying(&at_b, &from_alice).len(),
                expected,
                "`{from_alice}` at B:{}",
                describe(&at_b)
            );
            assert_eq!(
                messages_saying(&at_b, &from_bob).len(),
                0,
                "echo at B:{}",
                describe(&at_b)
            );
            assert_eq!(
                messages_saying(&at_a, &from_bob).len(),
                expected,
                "`{from_bob}` at A:{}",
                describe(&at_a)
            );
            assert_eq!(
                messages_saying(&at_a, &from_alice).len(),
                0,
                "echo at A:{}",
                describe(&at_a)
            );
        }
    }

    /// Waits until A's bridge shows `users` as the room's participants.
    async fn participants_at_a(&self, users: &[&str], what: &str) {
        self.a
            .wait_view(ROOM, what, &self.all(), |s, v| {
                s == 200 && participants(v) == users
            })
            .await;
    }

    /// Waits until B's bridge shows the room again, at A's epoch, with both participants (B
    /// joined bob back from the Welcome).
    async fn bob_back_at_b(&self, what: &str) {
        let on_a = self
            .a
            .wait_view(ROOM, &format!("{what} (A)"), &self.all(), |s, v| {
                s == 200 && participants(v) == [ALICE, BOB]
            })
            .await;
        let on_b = self
            .b
            .wait_view(ROOM, &format!("{what} (B)"), &self.all(), |s, v| {
                s == 200 && v["epoch"] == on_a["epoch"]
            })
            .await;
        assert_eq!(participants(&on_b), [ALICE, BOB], "{on_b}");
        assert_eq!(on_a["epoch_authenticator"], on_b["epoch_authenticator"]);
    }
}

fn kinds(commands: &[BridgeCommand]) -> Vec<String> {
    commands.iter().map(kind_of).collect()
}

/// The commands B's provider got from `from` on that tell it bob is in the room again: exactly
/// one, either a new `room_created` listing bob, or `user_added` / `user_invited` of bob in the
/// legacy room it had. Which one is the connector-level contract is not settled; both tell the
/// legacy side what happened, nothing (bob's legacy side still believing he is out) does not.
fn assert_rejoin_announced(got: &[BridgeCommand], from: usize, b_room: &str, all: &[&Provider]) {
    let until = got
        .iter()
        .skip(from)
        .position(|c| matches!(c.kind, CommandKind::Message { .. }))
        .map(|i| from + i)
        .unwrap_or(got.len());
    let rejoin = &got[from..until];
    let ok = match rejoin {
        [one] => match &one.kind {
            CommandKind::RoomCreated { participants, .. } => {
                participants.iter().any(|p| p.uri.as_str() == BOB) && one.room.uri.as_str() == ROOM
            }
            CommandKind::UserAdded { target } | CommandKind::UserInvited { target } => {
                target.uri.as_str() == BOB
                    && one.room.legacy_id.as_ref().map(|l| l.as_str()) == Some(b_room)
            }
            _ => false,
        },
        _ => false,
    };
    assert!(
        ok,
        "B's provider was not told (exactly once) that bob is back; it got:{}\n{}",
        describe(rejoin),
        logs(all)
    );
}

/// a) Alice kicks bob, then invites him again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_kicked_user_can_be_invited_again() {
    let p = Pair::start().await;
    let b_room = p.room_with_bob().await;

    p.a.submit(event(
        "a-kick",
        LEGACY_ROOM,
        "alice",
        EventKind::UserRemoved {
            target: UserRef::mimi(BOB),
            reason: None,
        },
    ))
    .await;
    let got =
        p.b.wait_until("bob's removal at B", &p.all(), |c| {
            c.iter()
                .any(|c| matches!(c.kind, CommandKind::UserRemoved { .. }))
        })
        .await;
    let removal = got.last().unwrap();
    let CommandKind::UserRemoved { target, .. } = &removal.kind else {
        panic!("expected user_removed last:{}", describe(&got));
    };
    assert_eq!(target.uri.as_str(), BOB);
    assert_eq!(removal.sender.uri.as_str(), ALICE);
    assert_eq!(
        removal.room.legacy_id.as_ref().map(|l| l.as_str()),
        Some(b_room.as_str())
    );
    p.participants_at_a(&[ALICE], "bob off the participant list at A")
        .await;
    let before_rejoin = p.b.commands().len();

    p.a.submit(event(
        "a-reinvite",
        LEGACY_ROOM,
        "alice",
        EventKind::UserInvited {
            target: UserRef::mimi(BOB),
        },
    ))
    .await;
    p.bob_back_at_b("bob re-invited after the kick").await;
    let b_room_now = p.probe("after-kick", None, true).await;

    p.check_probes(&[("setup", true), ("after-kick", true)])
        .await;
    let (at_a, at_b) = (p.a.commands(), p.b.commands());
    assert_eq!(kinds(&at_a), ["message", "message"], "{}", describe(&at_a));
    assert_rejoin_announced(&at_b, before_rejoin, &b_room, &p.all());
    assert_eq!(
        kinds(&at_b),
        [
            "room_created",
            "message",
            "user_removed",
            &kind_of(&at_b[3]),
            "message"
        ],
        "{}",
        describe(&at_b)
    );
    assert!(
        b_room_now == b_room || matches!(at_b[3].kind, CommandKind::RoomCreated { .. }),
        "the probe arrived in legacy room {b_room_now}, not {b_room}, without a new room_created"
    );
}

/// b) Bob leaves; alice invites him again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_user_who_left_can_be_invited_again() {
    let p = Pair::start().await;
    let b_room = p.room_with_bob().await;

    p.b.submit(event("b-leave", &b_room, "bob", EventKind::UserLeft))
        .await;
    let got =
        p.a.wait_until("bob's leaving at A", &p.all(), |c| {
            c.iter().any(|c| matches!(c.kind, CommandKind::UserLeft))
        })
        .await;
    assert_eq!(got.last().unwrap().sender.uri.as_str(), BOB);
    p.participants_at_a(&[ALICE], "bob off the participant list at A")
        .await;
    let before_rejoin = p.b.commands().len();

    p.a.submit(event(
        "a-reinvite",
        LEGACY_ROOM,
        "alice",
        EventKind::UserInvited {
            target: UserRef::mimi(BOB),
        },
    ))
    .await;
    p.bob_back_at_b("bob re-invited after leaving").await;
    p.probe("after-leave", None, true).await;

    p.check_probes(&[("setup", true), ("after-leave", true)])
        .await;
    let (at_a, at_b) = (p.a.commands(), p.b.commands());
    assert_eq!(
        kinds(&at_a),
        ["message", "user_left", "message"],
        "{}",
        describe(&at_a)
    );
    assert_rejoin_announced(&at_b, before_rejoin, &b_room, &p.all());
    assert_eq!(
        kinds(&at_b),
        ["room_created", "message", &kind_of(&at_b[2]), "message"],
        "{}",
        describe(&at_b)
    );
}

/// c) Bob's provider reports his leaving twice. The first leave is carried out (A is told);
/// the second, submitted once the first is applied, finds bob out of the room: it must come
/// back to B's provider as `event_failed` with a reason, once, and not be retried forever.
/// Alice is then the only participant: her probe must reach no one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_leave_of_the_same_user_is_reported_failed() {
    let p = Pair::start().await;
    let b_room = p.room_with_bob().await;

    p.b.submit(event("b-leave-1", &b_room, "bob", EventKind::UserLeft))
        .await;
    p.a.wait_until("bob's leaving at A", &p.all(), |c| {
        c.iter().any(|c| matches!(c.kind, CommandKind::UserLeft))
    })
    .await;
    p.participants_at_a(&[ALICE], "bob off the participant list at A")
        .await;

    p.b.submit(event("b-leave-2", &b_room, "bob", EventKind::UserLeft))
        .await;
    let got =
        p.b.wait_until("event_failed for the second leave at B", &p.all(), |c| {
            c.iter()
                .any(|c| matches!(c.kind, CommandKind::EventFailed { .. }))
        })
        .await;
    let failure = got.last().unwrap();
    let CommandKind::EventFailed { event_id, reason } = &failure.kind else {
        panic!("expected event_failed last:{}", describe(&got));
    };
    assert_eq!(event_id.as_str(), "b-leave-2");
    assert!(!reason.trim().is_empty(), "a reason is given");
    assert_eq!(
        failure.room.legacy_id.as_ref().map(|l| l.as_str()),
        Some(b_room.as_str())
    );

    p.probe("alone", Some(&b_room), false).await;
    p.check_probes(&[("setup", true), ("alone", false)]).await;
    let (at_a, at_b) = (p.a.commands(), p.b.commands());
    assert_eq!(
        kinds(&at_a),
        ["message", "user_left"],
        "{}",
        describe(&at_a)
    );
    assert_eq!(
        kinds(&at_b),
        ["room_created", "message", "event_failed"],
        "{}",
        describe(&at_b)
    );
    // Alice's probe was carried (not stuck behind anything): the room's participants at A are
    // unchanged and A reported no failure for it.
    p.participants_at_a(&[ALICE], "the room at A after alice's probe")
        .await;
}

/// d) Alice removes carol of B, who is not in the room: `event_failed` with a reason, to A.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn removing_a_non_participant_is_reported_failed() {
    let p = Pair::start().await;
    let b_room = p.room_with_bob().await;

    p.a.submit(event(
        "a-remove-carol",
        LEGACY_ROOM,
        "alice",
        EventKind::UserRemoved {
            target: UserRef::mimi("mimi://b.example/u/carol"),
            reason: None,
        },
    ))
    .await;
    let got =
        p.a.wait_until("event_failed for the removal at A", &p.all(), |c| {
            c.iter()
                .any(|c| matches!(c.kind, CommandKind::EventFailed { .. }))
        })
        .await;
    let CommandKind::EventFailed { event_id, reason } = &got.last().unwrap().kind else {
        panic!("expected event_failed last:{}", describe(&got));
    };
    assert_eq!(event_id.as_str(), "a-remove-carol");
    assert!(!reason.trim().is_empty(), "a reason is given");

    p.probe("after-bad-removal", Some(&b_room), true).await;
    p.check_probes(&[("setup", true), ("after-bad-removal", true)])
        .await;
    let (at_a, at_b) = (p.a.commands(), p.b.commands());
    assert_eq!(
        kinds(&at_a),
        ["message", "event_failed", "message"],
        "{}",
        describe(&at_a)
    );
    assert_eq!(
        kinds(&at_b),
        ["room_created", "message", "message"],
        "{}",
        describe(&at_b)
    );
    p.participants_at_a(&[ALICE, BOB], "the room at A").await;
}

/// e) Alice invites bob, who is in the room already. Applied as a no-op or reported with
/// `event_failed` (the connector contract does not say which; both are accepted), but never
/// stuck: alice's next message, queued right behind it, and bob's answer must flow. B's
/// provider hears of no membership change.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn inviting_a_participant_does_not_jam_the_room() {
    let p = Pair::start().await;
    let b_room = p.room_with_bob().await;

    p.a.submit(event(
        "a-invite-again",
        LEGACY_ROOM,
        "alice",
        EventKind::UserInvited {
            target: UserRef::mimi(BOB),
        },
    ))
    .await;
    p.probe("after-second-invite", Some(&b_room), true).await;
    p.check_probes(&[("setup", true), ("after-second-invite", true)])
        .await;
    let (at_a, at_b) = (p.a.commands(), p.b.commands());
    let kinds_a = kinds(&at_a);
    assert!(
        kinds_a == ["message", "message"] || kinds_a == ["message", "event_failed", "message"],
        "{}",
        describe(&at_a)
    );
    if let Some(CommandKind::EventFailed { event_id, reason }) =
        at_a.get(1).map(|c| &c.kind).filter(|_| at_a.len() == 3)
    {
        assert_eq!(event_id.as_str(), "a-invite-again");
        assert!(!reason.trim().is_empty(), "a reason is given");
    }
    assert_eq!(
        kinds(&at_b),
        ["room_created", "message", "message"],
        "{}",
        describe(&at_b)
    );
    p.participants_at_a(&[ALICE, BOB], "the room at A").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_banned_user_comes_back_once_the_ban_is_lifted() {
    let p = Pair::start().await;
    let b_room = p.room_with_bob().await;

    p.a.submit(event(
        "a-ban",
        LEGACY_ROOM,
        "alice",
        EventKind::UserBanned {
            target: UserRef::mimi(BOB),
            reason: None,
        },
    ))
    .await;
    p.b.wait_until("bob's ban at B", &p.all(), |c| {
        c.iter()
            .any(|c| matches!(c.kind, CommandKind::UserBanned { .. }))
    })
    .await;

    // inviting a banned user is refused, in words
    p.a.submit(event(
        "a-invite-banned",
        LEGACY_ROOM,
        "alice",
        EventKind::UserInvited {
            target: UserRef::mimi(BOB),
        },
    ))
    .await;
    let got =
        p.a.wait_until("event_failed for inviting a banned user", &p.all(), |c| {
            c.iter()
                .any(|c| matches!(c.kind, CommandKind::EventFailed { .. }))
        })
        .await;
    let CommandKind::EventFailed { event_id, reason } = &got.last().unwrap().kind else {
        panic!("expected event_failed last:{}", describe(&got));
    };
    assert_eq!(event_id.as_str(), "a-invite-banned");
    assert!(reason.contains("banned"), "{reason}");

    // lifting the ban (a removal of the banned user) and inviting again brings bob back
    p.a.submit(event(
        "a-unban",
        LEGACY_ROOM,
        "alice",
        EventKind::UserRemoved {
            target: UserRef::mimi(BOB),
            reason: None,
        },
    ))
    .await;
    p.participants_at_a(&[ALICE], "the ban lifted at A").await;
    let before_rejoin = p.b.commands().len();
    p.a.submit(event(
        "a-reinvite",
        LEGACY_ROOM,
        "alice",
        EventKind::UserInvited {
            target: UserRef::mimi(BOB),
        },
    ))
    .await;
    p.bob_back_at_b("bob invited again after the ban was lifted")
        .await;
    p.probe("after-unban", None, true).await;
    p.check_probes(&[("setup", true), ("after-unban", true)])
        .await;
    assert_rejoin_announced(&p.b.commands(), before_rejoin, &b_room, &p.all());
    p.participants_at_a(&[ALICE, BOB], "bob back at A").await;
}
