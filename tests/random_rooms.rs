//! A randomized test across three bridges (a.example, b.example, c.example), each a daemon with
//! the webhook connector and a signed receiver in this process, each knowing the other two as
//! MIMI peers and granting consent for its users. Each provider has two users, and hosts the
//! rooms its own users create.
//!
//! Every round, a deterministic PRNG (splitmix64, seeded from `MIMI_RANDOM_SEED`) picks an action
//! by a user of a provider in one of a few rooms: create a room, invite, remove, leave, ban,
//! change a role, send, edit, delete, react. A model of each room (who is a participant, with
//! which role; who is banned; which messages exist and where each provider knows them by which
//! legacy id) says what should become of it:
//!
//! - *applied*: the corresponding command arrives at every other provider with a participant in
//!   the room (the sender's own provider is never echoed), and nothing else;
//! - *refused*: an `event_failed` command with a non-empty reason reaches the sender's provider,
//!   and no effect reaches anyone;
//! - for a few cases where either outcome is acceptable (see [`Expect`]), whichever happened,
//!   and the model follows it.
//!
//! Invariants, checked every round (all the waits of a round end within 20 s of its start):
//!
//! 1. every submitted event ended applied or reported, never neither, never both, and as the
//!    model says; every command any provider received is explained by exactly one event (no
//!    duplicate, no effect of a refused event, nothing sent to a provider not in the room);
//! 2. a probe message from every remaining participant reaches every other participant's
//!    provider exactly once (and never its own).
//!
//! Beside them, a state check: the hub's (and every follower's with an active participant) view
//! of the room holds the model's participants and roles, and one client for each active
//! participant; and the legacy side of every provider with a participant, as told by the
//! commands it received and by its own users' changes, knows who is in the room. (A provider
//! that comes back into a room is told what changed while it was away; such catch-up commands
//! are accepted when they bring its legacy side closer to the room's participant list.) After
//! the run, every room is probed once more, and the daemons' logs are checked: no identical
//! WARN line (timestamps aside) may repeat over more than 30 s.
//!
//! `MIMI_RANDOM_SEED` (decimal or 0x-hex; default [`CI_SEED`]) and `MIMI_RANDOM_ROUNDS`
//! (default [`DEFAULT_ROUNDS`]) choose the run; `MIMI_RANDOM_AVOID` (see [`avoiding`]) keeps a
//! run from generating an action that meets a known open bug. Every failure names the seed, the round, the
//! action, the invariant, the actions played so far, and the tail of each bridge's log.

mod common;
#[path = "common/webhook.rs"]
mod webhook;

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::time::{Duration, Instant};

use mimi_bridge_connector::{
    BridgeCommand, CommandKind, ConnectorEvent, EventKind, MessageContent, UserRef,
};
use serde_json::Value;
use webhook::{Provider, Setup, describe, dev_certs, event, free_port, text};

/// The seed CI runs with.
const CI_SEED: u64 = 0x6d69_6d69_0000_2026;
const DEFAULT_ROUNDS: usize = 60;
/// No new rounds start after this long (the run stays within about three minutes).
const BUDGET: Duration = Duration::from_secs(150);
/// How long the waits of one round last at most, together.
const WAIT: Duration = Duration::from_secs(20);
/// Time for stray duplicates and late commands to show before the final checks.
const SETTLE: Duration = Duration::from_millis(2000);
const MAX_ROOMS: usize = 3;

const DOMAINS: [&str; 3] = ["a.example", "b.example", "c.example"];
const NAMES: [[&str; 2]; 3] = [["alice", "amy"], ["bob", "bea"], ["carol", "cid"]];
const KEYS: [&str; 4] = ["👍", "🎉", "❤", "😂"];

const BANNED: u32 = 1;
const MEMBER: u32 = 2;
const ADMIN: u32 = 3;

// ---------------------------------------------------------------------------------- the PRNG

/// splitmix64: small, fast, and the same sequence everywhere.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform in `0..n` (n > 0).
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }

    /// True with probability `percent` / 100.
    fn chance(&mut self, percent: usize) -> bool {
        self.below(100) < percent
    }

    fn pick<T: Copy>(&mut self, items: &[T]) -> T {
        items[self.below(items.len())]
    }

    /// An index chosen by weight.
    fn weighted(&mut self, weights: &[usize]) -> usize {
        let total: usize = weights.iter().sum();
        let mut x = self.below(total);
        for (i, w) in weights.iter().enumerate() {
            if x < *w {
                return i;
            }
            x -= w;
        }
        weights.len() - 1
    }
}

fn env_seed() -> u64 {
    match std::env::var("MIMI_RANDOM_SEED") {
        Ok(s) if !s.trim().is_empty() => {
            let s = s.trim();
            let parsed = match s.strip_prefix("0x").or_else(|| s.strip_prefix("0X")) {
                Some(hex) => u64::from_str_radix(&hex.replace('_', ""), 16),
                None => s.replace('_', "").parse(),
            };
            parsed.unwrap_or_else(|e| panic!("MIMI_RANDOM_SEED={s} is not a u64: {e}"))
        }
        _ => CI_SEED,
    }
}

/// Whether `MIMI_RANDOM_AVOID` (a comma-separated list) names `what`: actions that meet a known,
/// open product bug are then not generated, so that a run can get past it to what lies behind.
/// Only the choice of actions changes; what is checked does not. Known: `last-admin-leave` (the
/// last group admin of a room leaving).
fn avoiding(what: &str) -> bool {
    std::env::var("MIMI_RANDOM_AVOID").is_ok_and(|list| list.split(',').any(|w| w.trim() == what))
}

fn env_rounds() -> usize {
    std::env::var("MIMI_RANDOM_ROUNDS")
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(DEFAULT_ROUNDS)
}

// ---------------------------------------------------------------------------------- the model

/// A user: provider index and user index within it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
struct User {
    p: usize,
    i: usize,
}

impl User {
    fn all() -> Vec<User> {
        (0..3)
            .flat_map(|p| (0..2).map(move |i| User { p, i }))
            .collect()
    }

    fn name(self) -> &'static str {
        NAMES[self.p][self.i]
    }

    fn uri(self) -> String {
        format!("mimi://{}/u/{}", DOMAINS[self.p], self.name())
    }

    /// How an event of provider `from` names this user: by legacy id when it is one of
    /// `from`'s own users, by URI otherwise.
    fn reference(self, from: usize) -> UserRef {
        if self.p == from {
            UserRef::legacy(self.name())
        } else {
            UserRef::mimi(self.uri())
        }
    }
}

impl std::fmt::Display for User {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}@{}", self.name(), &DOMAINS[self.p][..1])
    }
}

#[derive(Clone, Debug)]
struct RoomModel {
    uri: String,
    host: usize,
    /// The legacy id the creator's provider gave the room.
    host_legacy: String,
    /// Participants and their roles; banned users stay, with role 1.
    roles: BTreeMap<User, u32>,
}

impl RoomModel {
    fn role(&self, u: User) -> u32 {
        self.roles.get(&u).copied().unwrap_or(0)
    }

    fn active(&self, u: User) -> bool {
        self.role(u) >= MEMBER
    }

    fn active_users(&self) -> Vec<User> {
        self.roles
            .iter()
            .filter(|(_, r)| **r >= MEMBER)
            .map(|(u, _)| *u)
            .collect()
    }

    /// Providers with at least one active (not banned) participant.
    fn active_providers(&self) -> BTreeSet<usize> {
        self.active_users().iter().map(|u| u.p).collect()
    }

    fn admins(&self) -> usize {
        self.roles.values().filter(|r| **r == ADMIN).count()
    }

    fn short(&self) -> String {
        self.uri.trim_start_matches("mimi://").to_string()
    }
}

#[derive(Clone, Debug)]
struct MsgModel {
    room: usize,
    sender: User,
    body: String,
    /// The legacy id its sender's provider gave it.
    own_id: String,
    deleted: bool,
    /// (reacting user, key) already used on it.
    reactions: HashSet<(User, &'static str)>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Invite,
    Remove,
    Leave,
    Ban,
    Role,
    Message,
    Edit,
    Delete,
    React,
}

#[derive(Clone, Debug)]
enum Action {
    Create {
        actor: User,
        legacy: String,
    },
    Invite {
        actor: User,
        room: usize,
        target: User,
    },
    Remove {
        actor: User,
        room: usize,
        target: User,
    },
    Ban {
        actor: User,
        room: usize,
        target: User,
    },
    Role {
        actor: User,
        room: usize,
        target: User,
        role: u32,
    },
    Leave {
        actor: User,
        room: usize,
    },
    Message {
        actor: User,
        room: usize,
    },
    /// `msg` None: a legacy message id nobody ever used.
    Edit {
        actor: User,
        room: usize,
        msg: Option<usize>,
    },
    Delete {
        actor: User,
        room: usize,
        msg: Option<usize>,
    },
    React {
        actor: User,
        room: usize,
        msg: Option<usize>,
        key: &'static str,
    },
}

impl Action {
    fn actor(&self) -> User {
        match self {
            Action::Create { actor, .. }
            | Action::Invite { actor, .. }
            | Action::Remove { actor, .. }
            | Action::Ban { actor, .. }
            | Action::Role { actor, .. }
            | Action::Leave { actor, .. }
            | Action::Message { actor, .. }
            | Action::Edit { actor, .. }
            | Action::Delete { actor, .. }
            | Action::React { actor, .. } => *actor,
        }
    }

    fn room(&self) -> Option<usize> {
        match self {
            Action::Create { .. } => None,
            Action::Invite { room, .. }
            | Action::Remove { room, .. }
            | Action::Ban { room, .. }
            | Action::Role { room, .. }
            | Action::Leave { room, .. }
            | Action::Message { room, .. }
            | Action::Edit { room, .. }
            | Action::Delete { room, .. }
            | Action::React { room, .. } => Some(*room),
        }
    }
}

/// What the model expects of an event.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Expect {
    Applied,
    Refused,
    /// Asking for what already is (inviting a participant, banning the banned, setting the role
    /// a user has): carrying it out as a no-op (nothing shown anywhere) and reporting it are
    /// both right; the connector contract does not say which. A visible effect is not.
    NoopOrRefused,
    /// Either outcome is defensible, and the model follows what happened:
    /// - banning a user who is not a participant: the room policy allows a ban from role 0
    ///   (a pre-emptive ban), the bridge today refuses to remove a non-participant;
    /// - the last group admin leaving: the policy's minimum of one group admin refuses it, but a
    ///   legacy network cannot keep a user from leaving, so letting it through is defensible.
    Either,
}

/// The visible effect of an event at the other providers: the command each must get.
#[derive(Clone, Debug)]
enum Effect {
    /// No other provider is told (a new room has only its creator).
    Created,
    Added(String),
    Left,
    Removed(String),
    Banned(String),
    Role(String, u32),
    Message(String),
    Edit(String),
    /// The message deleted (model index), if a real one.
    Delete(Option<usize>),
    Reaction(Option<usize>, String),
}

#[derive(Clone, Debug, PartialEq)]
enum Outcome {
    Pending,
    Applied,
    /// The reason given.
    Reported(String),
    /// Nothing visible and nothing reported (so far): for [`Expect::NoopOrRefused`].
    Noop,
}

/// An event submitted to a bridge, and what became of it.
#[derive(Clone, Debug)]
struct Sent {
    event_id: String,
    provider: usize,
    round: usize,
    what: String,
    room: Option<usize>,
    actor: User,
    expect: Expect,
    effect: Effect,
    /// The providers that must show the effect when it is applied.
    receivers: Vec<usize>,
    /// For membership changes with no one to tell: the room's roles once it is applied.
    after: Option<BTreeMap<User, u32>>,
    /// For an invitation: the target's provider, when none of its users is in the room yet
    /// (it hears of the room anew, or again: see [`Test::effect_matches`]).
    joining: Option<usize>,
    probe: bool,
    outcome: Outcome,
}

impl Sent {
    fn invariant(&self) -> &'static str {
        if self.probe {
            "invariant 2 (a probe from every participant reaches every other participant's provider exactly once)"
        } else {
            "invariant 1 (every event ends applied or reported: never neither, never both, as the model says)"
        }
    }
}

/// A membership change a provider's legacy side made itself: it gets no command for it.
#[derive(Clone, Debug)]
struct OwnChange {
    provider: usize,
    room: usize,
    /// How many commands the provider had received when the change was carried out.
    at: usize,
    user: String,
    /// The new role; None: off the list (or banned).
    role: Option<u32>,
}

/// What one provider's legacy side knows of a room's participants: users (not banned) and
/// their roles (None: not told).
type LegacyView = BTreeMap<String, Option<u32>>;

// ---------------------------------------------------------------------------------- the test

struct Test {
    seed: u64,
    rng: Rng,
    providers: Vec<Provider>,
    /// Every log line of each bridge read so far (the daemon's channel is drained here).
    log_lines: Vec<Vec<String>>,
    rooms: Vec<RoomModel>,
    msgs: Vec<MsgModel>,
    sent: Vec<Sent>,
    /// Per provider, the indexes of the commands explained by an event.
    consumed: Vec<HashSet<usize>>,
    /// Membership changes each provider's own users made (never echoed to it), and where they
    /// fall among the commands it received.
    own: Vec<OwnChange>,
    round: usize,
    /// When the current round (or final check) started; all its waits end [`WAIT`] after it.
    round_start: Instant,
    action: String,
    history: Vec<String>,
    counter: usize,
    _dir: tempfile::TempDir,
}

impl Test {
    async fn start(seed: u64) -> Test {
        let dir = tempfile::tempdir().unwrap();
        let certs = dev_certs(dir.path(), &DOMAINS);
        let ports = [free_port(), free_port(), free_port()];
        let mut providers = Vec::new();
        for p in 0..3 {
            let peers: Vec<(&str, u16)> = (0..3)
                .filter(|q| *q != p)
                .map(|q| (DOMAINS[q], ports[q]))
                .collect();
            providers.push(
                Provider::start(Setup {
                    dir: dir.path(),
                    certs: &certs,
                    domain: DOMAINS[p],
                    mimi_port: ports[p],
                    peers: &peers,
                    consent: "grant",
                    fail_first: 0,
                })
                .await,
            );
        }
        let log_lines = providers.iter().map(|p| p.bridge.startup.clone()).collect();
        Test {
            seed,
            rng: Rng(seed),
            providers,
            log_lines,
            rooms: Vec::new(),
            msgs: Vec::new(),
            sent: Vec::new(),
            consumed: vec![HashSet::new(); 3],
            own: Vec::new(),
            round: 0,
            round_start: Instant::now(),
            action: "start".into(),
            history: Vec::new(),
            counter: 0,
            _dir: dir,
        }
    }

    fn next_id(&mut self) -> usize {
        self.counter += 1;
        self.counter
    }

    fn commands(&self) -> Vec<Vec<BridgeCommand>> {
        self.providers.iter().map(|p| p.commands()).collect()
    }

    fn drain_logs(&mut self) {
        for (p, provider) in self.providers.iter().enumerate() {
            self.log_lines[p].extend(provider.bridge.log());
        }
    }

    /// Panics with everything needed to reproduce and understand the failure.
    fn fail(&mut self, invariant: &str, detail: &str) -> ! {
        self.drain_logs();
        let seed = self.seed;
        let mut out = format!(
            "\n===== random_rooms FAILED: seed {seed} ({seed:#x}), round {}, action: {}\n\
             ===== invariant: {invariant}\n{detail}\n\n\
             ----- actions so far (rerun with MIMI_RANDOM_SEED={seed}) -----\n{}\n",
            self.round,
            self.action,
            self.history.join("\n"),
        );
        for room in &self.rooms {
            out.push_str(&format!(
                "model of {}: {}\n",
                room.uri,
                roles_text(&room.roles)
            ));
        }
        let all = self.commands();
        for (p, commands) in all.iter().enumerate() {
            let skip = commands.len().saturating_sub(40);
            out.push_str(&format!(
                "----- commands at {} (last {} of {}) -----{}\n",
                DOMAINS[p],
                commands.len() - skip,
                commands.len(),
                describe(&commands[skip..])
            ));
        }
        for (p, lines) in self.log_lines.iter().enumerate() {
            let skip = lines.len().saturating_sub(120);
            out.push_str(&format!(
                "----- bridge {} (last {} of {} log lines) -----\n{}\n",
                DOMAINS[p],
                lines.len() - skip,
                lines.len(),
                lines[skip..]
                    .iter()
                    .map(|l| strip_ansi(l))
                    .collect::<Vec<_>>()
                    .join("\n")
            ));
        }
        out.push_str(&format!(
            "===== (seed {seed}, round {}, {invariant})",
            self.round
        ));
        panic!("{out}");
    }

    // ------------------------------------------------------------------ legacy ids

    /// The legacy id provider `p` knows room `r` by, if it has one: the creator's for the host;
    /// for the others `room-<n>`, the name their receiver gave the n-th `room_created`, or the
    /// `legacy_id` later commands carry.
    fn room_legacy_at(&self, all: &[Vec<BridgeCommand>], p: usize, r: usize) -> Option<String> {
        let room = &self.rooms[r];
        let mut last = (room.host == p).then(|| room.host_legacy.clone());
        let mut created = 0;
        for c in &all[p] {
            if matches!(c.kind, CommandKind::RoomCreated { .. }) {
                created += 1;
                if c.room.uri.as_str() == room.uri {
                    last = Some(format!("room-{created}"));
                }
            } else if c.room.uri.as_str() == room.uri
                && let Some(legacy) = &c.room.legacy_id
            {
                last = Some(legacy.as_str().to_string());
            }
        }
        last
    }

    /// The legacy id provider `p` knows message `m` by, if any: its own for its users' messages,
    /// `msg-<n>` for the n-th message or reaction its receiver got.
    fn msg_legacy_at(&self, all: &[Vec<BridgeCommand>], p: usize, m: usize) -> Option<String> {
        let msg = &self.msgs[m];
        if msg.sender.p == p {
            return Some(msg.own_id.clone());
        }
        let mut n = 0;
        for c in &all[p] {
            match &c.kind {
                CommandKind::Message { content, .. } => {
                    n += 1;
                    if content.body == msg.body {
                        return Some(format!("msg-{n}"));
                    }
                }
                CommandKind::Reaction { .. } => n += 1,
                _ => {}
            }
        }
        None
    }

    /// The MIMI id of message `m`, once some provider received it.
    fn mimi_id(&self, all: &[Vec<BridgeCommand>], m: usize) -> Option<String> {
        all.iter().flatten().find_map(|c| match &c.kind {
            CommandKind::Message {
                content,
                mimi_message_id,
                ..
            } if content.body == self.msgs[m].body => Some(mimi_message_id.as_str().to_string()),
            _ => None,
        })
    }

    // ------------------------------------------------------------------ choosing

    fn choose(&mut self) -> Action {
        let users = User::all();
        if self.rooms.is_empty() || (self.rooms.len() < MAX_ROOMS && self.rng.chance(8)) {
            let actor = self.rng.pick(&users);
            let n = self.rooms.len() + 1;
            return Action::Create {
                actor,
                legacy: format!("lobby{n}"),
            };
        }
        let room = self.rng.below(self.rooms.len());
        let model = self.rooms[room].clone();
        let active = model.active_users();
        let actor = if !active.is_empty() && self.rng.chance(70) {
            self.rng.pick(&active)
        } else {
            self.rng.pick(&users)
        };
        let others: Vec<User> = users.iter().copied().filter(|u| *u != actor).collect();
        let kinds = [
            (Kind::Invite, if active.len() <= 2 { 40 } else { 16 }),
            (Kind::Remove, 8),
            (Kind::Leave, 7),
            (Kind::Ban, 7),
            (Kind::Role, 9),
            (Kind::Message, 15),
            (Kind::Edit, 8),
            (Kind::Delete, 6),
            (Kind::React, 10),
        ];
        let kind = kinds[self
            .rng
            .weighted(&kinds.iter().map(|(_, w)| *w).collect::<Vec<_>>())]
        .0;
        let prefer = |rng: &mut Rng, pool: Vec<User>, percent: usize| -> User {
            if !pool.is_empty() && rng.chance(percent) {
                rng.pick(&pool)
            } else {
                rng.pick(&others)
            }
        };
        let own_msgs: Vec<usize> = (0..self.msgs.len())
            .filter(|m| {
                let msg = &self.msgs[*m];
                msg.room == room && msg.sender == actor && !msg.deleted
            })
            .collect();
        match kind {
            Kind::Invite => {
                let outside: Vec<User> = others
                    .iter()
                    .copied()
                    .filter(|u| model.role(*u) == 0)
                    .collect();
                let target = prefer(&mut self.rng, outside, 75);
                Action::Invite {
                    actor,
                    room,
                    target,
                }
            }
            Kind::Remove | Kind::Ban => {
                let listed: Vec<User> = others
                    .iter()
                    .copied()
                    .filter(|u| model.role(*u) != 0)
                    .collect();
                let target = prefer(&mut self.rng, listed, 80);
                if kind == Kind::Remove {
                    Action::Remove {
                        actor,
                        room,
                        target,
                    }
                } else {
                    Action::Ban {
                        actor,
                        room,
                        target,
                    }
                }
            }
            Kind::Role => {
                // Not the banned: changing their role is an unban without their clients,
                // which no legacy network does.
                let listed: Vec<User> = others
                    .iter()
                    .copied()
                    .filter(|u| model.active(*u))
                    .collect();
                let mut target = prefer(&mut self.rng, listed.clone(), 85);
                if model.role(target) == BANNED {
                    target = match listed.first() {
                        Some(u) => *u,
                        None => return Action::Message { actor, room },
                    };
                }
                // mostly a change; now and then the role it has, or one a group admin may
                // not give
                let role = match self.rng.below(100) {
                    0..10 => model.role(target).max(MEMBER),
                    10..20 => 4,
                    _ if model.role(target) == ADMIN => MEMBER,
                    _ => ADMIN,
                };
                Action::Role {
                    actor,
                    room,
                    target,
                    role,
                }
            }
            // While a known bug is open, a run can be kept from meeting it again (the checks
            // stay the same): see `MIMI_RANDOM_AVOID`.
            Kind::Leave
                if avoiding("last-admin-leave")
                    && model.role(actor) == ADMIN
                    && model.admins() == 1 =>
            {
                Action::Message { actor, room }
            }
            Kind::Leave => Action::Leave { actor, room },
            Kind::Message => Action::Message { actor, room },
            Kind::Edit | Kind::Delete => {
                // One's own messages (a legacy network lets no one else edit them); now and
                // then one that never existed.
                let msg = if own_msgs.is_empty() || self.rng.chance(10) {
                    None
                } else {
                    Some(self.rng.pick(&own_msgs))
                };
                if msg.is_none() && self.rng.chance(50) {
                    return Action::Message { actor, room };
                }
                if kind == Kind::Edit {
                    Action::Edit { actor, room, msg }
                } else {
                    Action::Delete { actor, room, msg }
                }
            }
            Kind::React => {
                let all = self.commands();
                let mut choices = Vec::new();
                for m in 0..self.msgs.len() {
                    let msg = &self.msgs[m];
                    if msg.room != room
                        || msg.deleted
                        || self.msg_legacy_at(&all, actor.p, m).is_none()
                    {
                        continue;
                    }
                    for key in KEYS {
                        if !msg.reactions.contains(&(actor, key)) {
                            choices.push((m, key));
                        }
                    }
                }
                if choices.is_empty() {
                    return Action::Message { actor, room };
                }
                let (m, key) = self.rng.pick(&choices);
                Action::React {
                    actor,
                    room,
                    msg: Some(m),
                    key,
                }
            }
        }
    }

    // ------------------------------------------------------------------ playing

    /// What the model expects of `action`, who must see its effect, and the effect.
    fn expectation(&self, action: &Action) -> (Expect, Effect, Vec<usize>) {
        let actor = action.actor();
        let Some(r) = action.room() else {
            return (Expect::Applied, Effect::Created, vec![]);
        };
        let room = &self.rooms[r];
        let before = room.active_providers();
        let others = |set: BTreeSet<usize>| -> Vec<usize> {
            set.into_iter().filter(|p| *p != actor.p).collect()
        };
        let acting = room.active(actor);
        let actor_role = room.role(actor);
        match action {
            Action::Create { .. } => unreachable!(),
            Action::Invite { target, .. } => {
                let mut after = room.clone();
                after.roles.insert(*target, MEMBER);
                let expect = if !acting || room.role(*target) == BANNED {
                    Expect::Refused
                } else if room.active(*target) {
                    Expect::NoopOrRefused
                } else {
                    Expect::Applied
                };
                (
                    expect,
                    Effect::Added(target.uri()),
                    others(after.active_providers()),
                )
            }
            Action::Remove { target, .. } => {
                let mut after = room.clone();
                after.roles.remove(target);
                let expect = match room.role(*target) {
                    _ if !acting => Expect::Refused,
                    0 => Expect::Refused,
                    // lifting a ban (1 -> 0) and removing an admin are for admins
                    BANNED | ADMIN if actor_role != ADMIN => Expect::Refused,
                    _ => Expect::Applied,
                };
                let mut receivers = before.clone();
                receivers.extend(after.active_providers());
                (expect, Effect::Removed(target.uri()), others(receivers))
            }
            Action::Ban { target, .. } => {
                let expect = match room.role(*target) {
                    _ if !acting || actor_role != ADMIN => Expect::Refused,
                    0 => Expect::Either,
                    BANNED => Expect::NoopOrRefused,
                    _ => Expect::Applied,
                };
                (expect, Effect::Banned(target.uri()), others(before))
            }
            Action::Role { target, role, .. } => {
                let expect = if room.role(*target) == *role {
                    // the role it has, whoever asks (the bridge answers this before it looks
                    // at who asks: a no-op even for a non-participant)
                    Expect::NoopOrRefused
                } else if !acting || room.role(*target) < MEMBER {
                    Expect::Refused
                } else if actor_role != ADMIN || *role == 4 {
                    // an ordinary user may change no role; a group admin may not make a
                    // super admin (its authorized role changes stop at 3)
                    Expect::Refused
                } else {
                    // the actor is an admin too, so demoting one leaves at least one
                    Expect::Applied
                };
                (expect, Effect::Role(target.uri(), *role), others(before))
            }
            Action::Leave { .. } => {
                let mut after = room.clone();
                after.roles.remove(&actor);
                let expect = if !acting {
                    Expect::Refused
                } else if actor_role == ADMIN && room.admins() == 1 {
                    Expect::Either
                } else {
                    Expect::Applied
                };
                (expect, Effect::Left, others(after.active_providers()))
            }
            Action::Message { .. } => (
                if acting {
                    Expect::Applied
                } else {
                    Expect::Refused
                },
                Effect::Message(String::new()),
                others(before),
            ),
            Action::Edit { msg, .. } => (
                if acting && msg.is_some() {
                    Expect::Applied
                } else {
                    Expect::Refused
                },
                Effect::Edit(String::new()),
                others(before),
            ),
            Action::Delete { msg, .. } => (
                if acting && msg.is_some() {
                    Expect::Applied
                } else {
                    Expect::Refused
                },
                Effect::Delete(*msg),
                others(before),
            ),
            Action::React { msg, key, .. } => (
                if acting && msg.is_some() {
                    Expect::Applied
                } else {
                    Expect::Refused
                },
                Effect::Reaction(*msg, key.to_string()),
                others(before),
            ),
        }
    }

    fn describe_action(&self, action: &Action) -> String {
        let room = |r: &usize| self.rooms[*r].short();
        match action {
            Action::Create { actor, legacy } => format!("{actor} creates room `{legacy}`"),
            Action::Invite {
                actor,
                room: r,
                target,
            } => format!("{actor} invites {target} to {}", room(r)),
            Action::Remove {
                actor,
                room: r,
                target,
            } => format!("{actor} removes {target} from {}", room(r)),
            Action::Ban {
                actor,
                room: r,
                target,
            } => format!("{actor} bans {target} from {}", room(r)),
            Action::Role {
                actor,
                room: r,
                target,
                role,
            } => format!("{actor} gives {target} role {role} in {}", room(r)),
            Action::Leave { actor, room: r } => format!("{actor} leaves {}", room(r)),
            Action::Message { actor, room: r } => format!("{actor} says something in {}", room(r)),
            Action::Edit {
                actor,
                room: r,
                msg,
            } => match msg {
                Some(m) => format!("{actor} edits `{}` in {}", self.msgs[*m].body, room(r)),
                None => format!("{actor} edits a message that never was, in {}", room(r)),
            },
            Action::Delete {
                actor,
                room: r,
                msg,
            } => match msg {
                Some(m) => format!("{actor} deletes `{}` in {}", self.msgs[*m].body, room(r)),
                None => format!("{actor} deletes a message that never was, in {}", room(r)),
            },
            Action::React {
                actor,
                room: r,
                msg,
                key,
            } => match msg {
                Some(m) => format!(
                    "{actor} reacts {key} to `{}` in {}",
                    self.msgs[*m].body,
                    room(r)
                ),
                None => format!("{actor} reacts to a message that never was, in {}", room(r)),
            },
        }
    }

    /// Submits `kind` by `actor` in room `r` (or as a new room); returns the event id.
    async fn submit(&mut self, actor: User, legacy_room: &str, kind: EventKind) -> String {
        let id = format!("{}-e{}", &DOMAINS[actor.p][..1], self.next_id());
        let ev: ConnectorEvent = event(&id, legacy_room, actor.name(), kind);
        match self.providers[actor.p].client.submit(&ev).await {
            Ok(answer) if (answer.status, answer.duplicate) == (202, false) => {}
            Ok(answer) => self.fail(
                "submission",
                &format!("event {id} was answered {answer:?}, not 202 new"),
            ),
            Err(e) => self.fail("submission", &format!("event {id} was refused: {e}")),
        }
        id
    }

    /// The legacy room `actor`'s provider submits events of room `r` in: the one it has, or,
    /// when it never had one, a legacy room that is bridged to nothing.
    fn legacy_for(&self, all: &[Vec<BridgeCommand>], actor: User, r: usize) -> String {
        self.room_legacy_at(all, actor.p, r)
            .unwrap_or_else(|| format!("unbridged-{r}"))
    }

    async fn play(&mut self, action: Action) {
        self.round_start = Instant::now();
        let what = self.describe_action(&action);
        self.action = what.clone();
        let actor = action.actor();
        let (expect, mut effect, receivers) = self.expectation(&action);
        let all = self.commands();
        let mut after = None;
        let mut new_msg = None;
        let (legacy_room, kind) = match &action {
            Action::Create { legacy, .. } => (
                legacy.clone(),
                EventKind::RoomCreated {
                    name: Some(format!("Room {legacy}")),
                },
            ),
            Action::Invite { room, target, .. } => (
                self.legacy_for(&all, actor, *room),
                EventKind::UserInvited {
                    target: target.reference(actor.p),
                },
            ),
            Action::Remove { room, target, .. } => {
                let mut roles = self.rooms[*room].roles.clone();
                roles.remove(target);
                after = Some(roles);
                (
                    self.legacy_for(&all, actor, *room),
                    EventKind::UserRemoved {
                        target: target.reference(actor.p),
                        reason: None,
                    },
                )
            }
            Action::Ban { room, target, .. } => {
                let mut roles = self.rooms[*room].roles.clone();
                roles.insert(*target, BANNED);
                after = Some(roles);
                (
                    self.legacy_for(&all, actor, *room),
                    EventKind::UserBanned {
                        target: target.reference(actor.p),
                        reason: None,
                    },
                )
            }
            Action::Role {
                room, target, role, ..
            } => (
                self.legacy_for(&all, actor, *room),
                EventKind::RoleChanged {
                    target: target.reference(actor.p),
                    role: *role,
                },
            ),
            Action::Leave { room, .. } => {
                let mut roles = self.rooms[*room].roles.clone();
                roles.remove(&actor);
                after = Some(roles);
                (self.legacy_for(&all, actor, *room), EventKind::UserLeft)
            }
            Action::Message { room, .. } => {
                let n = self.next_id();
                let body = format!("message #{n} from {actor} (round {})", self.round);
                let own_id = format!("m-{n}");
                effect = Effect::Message(body.clone());
                new_msg = Some(MsgModel {
                    room: *room,
                    sender: actor,
                    body: body.clone(),
                    own_id: own_id.clone(),
                    deleted: false,
                    reactions: HashSet::new(),
                });
                (self.legacy_for(&all, actor, *room), text(&own_id, &body))
            }
            Action::Edit { room, msg, .. } => {
                let n = self.next_id();
                let body = format!("edit #{n} by {actor} (round {})", self.round);
                effect = Effect::Edit(body.clone());
                let target = match msg {
                    Some(m) => self.msgs[*m].own_id.clone(),
                    None => format!("never-{n}"),
                };
                (
                    self.legacy_for(&all, actor, *room),
                    EventKind::Edit {
                        message_id: target.into(),
                        content: MessageContent::text(body),
                    },
                )
            }
            Action::Delete { room, msg, .. } => {
                let n = self.next_id();
                let target = match msg {
                    Some(m) => self.msgs[*m].own_id.clone(),
                    None => format!("never-{n}"),
                };
                (
                    self.legacy_for(&all, actor, *room),
                    EventKind::Delete {
                        message_id: target.into(),
                    },
                )
            }
            Action::React { room, msg, key, .. } => {
                let n = self.next_id();
                let target = match msg {
                    Some(m) => self
                        .msg_legacy_at(&all, actor.p, *m)
                        .unwrap_or_else(|| format!("never-{n}")),
                    None => format!("never-{n}"),
                };
                (
                    self.legacy_for(&all, actor, *room),
                    EventKind::Reaction {
                        message_id: target.into(),
                        key: key.to_string(),
                        reaction_id: None,
                    },
                )
            }
        };
        if matches!(expect, Expect::Either) && receivers.is_empty() && after.is_none() {
            unreachable!("an `Either` without receivers is decided by the room view");
        }
        let joining = match &action {
            Action::Invite { room, target, .. }
                if target.p != actor.p
                    && !self.rooms[*room].active_providers().contains(&target.p) =>
            {
                Some(target.p)
            }
            _ => None,
        };
        let event_id = self.submit(actor, &legacy_room, kind).await;
        let index = self.sent.len();
        self.sent.push(Sent {
            event_id: event_id.clone(),
            provider: actor.p,
            round: self.round,
            what: what.clone(),
            room: action.room(),
            actor,
            expect,
            effect,
            receivers: receivers.clone(),
            after: if receivers.is_empty() { after } else { None },
            joining,
            probe: false,
            outcome: Outcome::Pending,
        });
        if let Action::Create { legacy, .. } = &action {
            self.rooms.push(RoomModel {
                uri: format!("mimi://{}/r/{legacy}", DOMAINS[actor.p]),
                host: actor.p,
                host_legacy: legacy.clone(),
                roles: BTreeMap::new(),
            });
        }
        self.await_outcomes(&[index]).await;
        let outcome = self.sent[index].outcome.clone();
        self.history.push(format!(
            "  round {:>2}: {event_id} {what} [in `{legacy_room}`] -> expected {expect:?}, {}",
            self.round,
            outcome_text(&outcome)
        ));
        if outcome == Outcome::Applied {
            self.apply(&action, new_msg);
            self.record_own_change(&action);
        } else if let Action::Create { .. } = &action {
            self.fail(
                "invariant 1 (outcome vs model)",
                "creating a room with a fresh legacy id was not applied",
            );
        }
        let room = match action.room() {
            Some(r) => r,
            None => self.rooms.len() - 1,
        };
        self.check_state(room).await;
        self.probe(room).await;
        self.check_accounts();
    }

    /// The change an applied action made on its own provider's legacy side.
    fn record_own_change(&mut self, action: &Action) {
        let actor = action.actor();
        let (room, user, role) = match action {
            Action::Create { .. } => (self.rooms.len() - 1, actor, Some(ADMIN)),
            Action::Invite { room, target, .. } => (*room, *target, Some(MEMBER)),
            Action::Remove { room, target, .. } | Action::Ban { room, target, .. } => {
                (*room, *target, None)
            }
            Action::Role {
                room, target, role, ..
            } => (*room, *target, Some(*role)),
            Action::Leave { room, .. } => (*room, actor, None),
            _ => return,
        };
        let at = self.providers[actor.p].commands().len();
        self.own.push(OwnChange {
            provider: actor.p,
            room,
            at,
            user: user.uri(),
            role,
        });
    }

    /// What provider `q`'s legacy side knows of room `r`'s participants, from the commands it
    /// received and its own users' changes, in order; and which of those commands changed it.
    fn legacy_view(
        &self,
        all: &[Vec<BridgeCommand>],
        q: usize,
        r: usize,
    ) -> (LegacyView, HashSet<usize>) {
        let uri = &self.rooms[r].uri;
        let mut view = LegacyView::new();
        let mut effective = HashSet::new();
        let apply_own = |view: &mut LegacyView, o: &OwnChange| match o.role {
            Some(role) if role != BANNED => {
                view.insert(o.user.clone(), Some(role));
            }
            _ => {
                view.remove(&o.user);
            }
        };
        let mut own = self
            .own
            .iter()
            .filter(|o| o.provider == q && o.room == r)
            .peekable();
        for (i, c) in all[q].iter().enumerate() {
            while let Some(o) = own.next_if(|o| o.at <= i) {
                apply_own(&mut view, o);
            }
            if c.room.uri.as_str() != uri {
                continue;
            }
            let changed = match &c.kind {
                CommandKind::RoomCreated { participants, .. } => {
                    let new: LegacyView = participants
                        .iter()
                        .filter(|p| p.role != Some(BANNED))
                        .map(|p| (p.uri.as_str().to_string(), p.role))
                        .collect();
                    let changed = new != view;
                    view = new;
                    changed
                }
                CommandKind::UserAdded { target } | CommandKind::UserInvited { target } => view
                    .insert(target.uri.as_str().to_string(), target.role)
                    .is_none(),
                CommandKind::UserLeft => view.remove(c.sender.uri.as_str()).is_some(),
                CommandKind::UserRemoved { target, .. } => {
                    view.remove(target.uri.as_str()).is_some()
                }
                // A ban the legacy side did not see happen (its provider was out of the room)
                // is news too: the user is kept out.
                CommandKind::UserBanned { target, .. } => {
                    view.remove(target.uri.as_str()).is_some()
                        || roles_by_uri(&self.rooms[r].roles).get(target.uri.as_str())
                            == Some(&BANNED)
                }
                CommandKind::RoleChanged { target } if target.role == Some(BANNED) => {
                    view.remove(target.uri.as_str()).is_some()
                }
                CommandKind::RoleChanged { target } => {
                    let key = target.uri.as_str().to_string();
                    view.contains_key(&key) && view.insert(key, target.role) != Some(target.role)
                }
                _ => continue,
            };
            if changed {
                effective.insert(i);
            }
        }
        for o in own {
            apply_own(&mut view, o);
        }
        (view, effective)
    }

    /// The model after an applied action.
    fn apply(&mut self, action: &Action, new_msg: Option<MsgModel>) {
        let actor = action.actor();
        match action {
            Action::Create { .. } => {
                let r = self.rooms.len() - 1;
                self.rooms[r].roles.insert(actor, ADMIN);
            }
            Action::Invite { room, target, .. } => {
                self.rooms[*room].roles.insert(*target, MEMBER);
            }
            Action::Remove { room, target, .. } => {
                self.rooms[*room].roles.remove(target);
            }
            Action::Ban { room, target, .. } => {
                self.rooms[*room].roles.insert(*target, BANNED);
            }
            Action::Role {
                room, target, role, ..
            } => {
                self.rooms[*room].roles.insert(*target, *role);
            }
            Action::Leave { room, .. } => {
                self.rooms[*room].roles.remove(&actor);
            }
            Action::Message { .. } => self.msgs.extend(new_msg),
            Action::Edit { .. } => {}
            Action::Delete { msg, .. } => {
                if let Some(m) = msg {
                    self.msgs[*m].deleted = true;
                }
            }
            Action::React { msg, key, .. } => {
                if let Some(m) = msg {
                    self.msgs[*m].reactions.insert((actor, key));
                }
            }
        }
    }

    // ------------------------------------------------------------------ outcomes

    /// Whether command `c`, received by provider `q`, shows the effect of `s`.
    fn effect_matches(
        &self,
        all: &[Vec<BridgeCommand>],
        s: &Sent,
        q: usize,
        c: &BridgeCommand,
        room_uri: &str,
    ) -> bool {
        if c.room.uri.as_str() != room_uri {
            return false;
        }
        let by_actor = c.sender.uri.as_str() == s.actor.uri();
        // A provider that comes back into a room learns what changed while it was away from
        // the room's state, not from the commits (a Welcome has no committer): the change is
        // then the room's hub's.
        let by_hub = s.joining == Some(q)
            && s.room.is_some_and(|r| {
                c.sender.uri.as_str() == format!("mimi://{}", DOMAINS[self.rooms[r].host])
            });
        let mimi_ok = |m: &Option<usize>, r: &mimi_bridge_connector::MessageRef| match m {
            Some(m) => self
                .mimi_id(all, *m)
                .is_none_or(|id| id == r.mimi_id.as_str()),
            None => true,
        };
        match (&s.effect, &c.kind) {
            (Effect::Added(t), CommandKind::UserAdded { target })
            | (Effect::Added(t), CommandKind::UserInvited { target }) => {
                (by_actor || by_hub) && target.uri.as_str() == t
            }
            // a provider that had no one in the room hears of it as a new room
            (Effect::Added(t), CommandKind::RoomCreated { participants, .. }) => {
                participants.iter().any(|p| p.uri.as_str() == t)
            }
            (Effect::Left, CommandKind::UserLeft) => by_actor,
            (Effect::Removed(t), CommandKind::UserRemoved { target, .. }) => {
                by_actor && target.uri.as_str() == t
            }
            (Effect::Banned(t), CommandKind::UserBanned { target, .. }) => {
                by_actor && target.uri.as_str() == t
            }
            (Effect::Role(t, role), CommandKind::RoleChanged { target }) => {
                by_actor && target.uri.as_str() == t && target.role == Some(*role)
            }
            (Effect::Message(body), CommandKind::Message { content, .. }) => {
                by_actor && content.body == *body
            }
            (Effect::Edit(body), CommandKind::Edit { content, .. }) => {
                by_actor && content.body == *body
            }
            (Effect::Delete(m), CommandKind::Delete { message, .. }) => {
                by_actor && mimi_ok(m, message)
            }
            (
                Effect::Reaction(m, key),
                CommandKind::Reaction {
                    message, key: k, ..
                },
            ) => by_actor && k == key && mimi_ok(m, message),
            _ => false,
        }
    }

    /// For each receiver, the first unexplained command showing the effect of `s`.
    fn find_effect(&self, all: &[Vec<BridgeCommand>], s: &Sent) -> Vec<(usize, Option<usize>)> {
        let Some(r) = s.room else {
            return vec![];
        };
        let uri = &self.rooms[r].uri;
        s.receivers
            .iter()
            .map(|q| {
                let found = all[*q].iter().enumerate().position(|(i, c)| {
                    !self.consumed[*q].contains(&i) && self.effect_matches(all, s, *q, c, uri)
                });
                (*q, found)
            })
            .collect()
    }

    /// The `event_failed` commands for `s` at its provider: (index, reason).
    fn find_failures(&self, all: &[Vec<BridgeCommand>], s: &Sent) -> Vec<(usize, String)> {
        all[s.provider]
            .iter()
            .enumerate()
            .filter_map(|(i, c)| match &c.kind {
                CommandKind::EventFailed { event_id, reason }
                    if event_id.as_str() == s.event_id =>
                {
                    Some((i, reason.clone()))
                }
                _ => None,
            })
            .collect()
    }

    /// Each bridge's view of room `r` (participants and member clients), for a failure message.
    async fn views_text(&self, r: usize) -> String {
        let room = &self.rooms[r];
        let mut out = String::new();
        for (p, provider) in self.providers.iter().enumerate() {
            let (status, view) = provider.room_view(&room.uri).await;
            out.push_str(&format!(
                "view of {} at {}{}: {status} epoch {} participants {:?} member users {:?} pending proposals {}\n",
                room.uri,
                DOMAINS[p],
                if p == room.host { " (hub)" } else { "" },
                view["epoch"],
                view_roles(&view),
                view_members(&view),
                view["pending_proposals"],
            ));
        }
        out
    }

    /// Whether the room's hub shows the roles `after`.
    async fn hub_shows(&self, r: usize, after: &BTreeMap<User, u32>) -> bool {
        let room = &self.rooms[r];
        let (status, view) = self.providers[room.host].room_view(&room.uri).await;
        status == 200 && view_roles(&view) == roles_by_uri(after)
    }

    /// Waits (until [`WAIT`] into the round) until each of `events` is decided, as its
    /// [`Expect`] allows.
    async fn await_outcomes(&mut self, events: &[usize]) {
        let deadline = self.round_start + WAIT;
        loop {
            let all = self.commands();
            let mut pending = Vec::new();
            for &e in events {
                if self.sent[e].outcome != Outcome::Pending {
                    continue;
                }
                let s = self.sent[e].clone();
                let failures = self.find_failures(&all, &s);
                let found = self.find_effect(&all, &s);
                let visible: Vec<usize> = found
                    .iter()
                    .filter(|(_, i)| i.is_some())
                    .map(|(q, _)| *q)
                    .collect();
                let missing: Vec<usize> = found
                    .iter()
                    .filter(|(_, i)| i.is_none())
                    .map(|(q, _)| *q)
                    .collect();
                if let Some((i, reason)) = failures.first() {
                    if s.expect == Expect::Applied {
                        self.fail(
                            s.invariant(),
                            &format!(
                                "{} ({}) was expected to be applied, but {} reported it failed: {reason}",
                                s.event_id, s.what, DOMAINS[s.provider]
                            ),
                        );
                    }
                    if !visible.is_empty() {
                        self.fail(
                            s.invariant(),
                            &format!(
                                "{} ({}) was both reported failed ({reason}) and applied: its effect reached {}",
                                s.event_id,
                                s.what,
                                names(&visible)
                            ),
                        );
                    }
                    if reason.trim().is_empty() {
                        self.fail(
                            s.invariant(),
                            &format!(
                                "{} ({}) was reported failed without a reason",
                                s.event_id, s.what
                            ),
                        );
                    }
                    self.consumed[s.provider].insert(*i);
                    self.sent[e].outcome = Outcome::Reported(reason.clone());
                    continue;
                }
                match s.expect {
                    Expect::Refused | Expect::NoopOrRefused if !visible.is_empty() => self.fail(
                        s.invariant(),
                        &format!(
                            "{} ({}) was expected to be {}, but its effect reached {}",
                            s.event_id,
                            s.what,
                            if s.expect == Expect::Refused {
                                "refused"
                            } else {
                                "a no-op or refused"
                            },
                            names(&visible)
                        ),
                    ),
                    Expect::NoopOrRefused => {
                        // Nothing tells a no-op from "not yet": the probes that follow (in the
                        // same legacy room when the actor is a participant) and the accounts
                        // checked after them catch a late report or a late effect.
                        self.sent[e].outcome = Outcome::Noop;
                        continue;
                    }
                    Expect::Applied | Expect::Either if missing.is_empty() => {
                        let decided = match (&s.after, s.room) {
                            (Some(after), Some(r)) if s.expect == Expect::Either => {
                                self.hub_shows(r, after).await
                            }
                            _ => true,
                        };
                        if decided {
                            for (q, i) in found {
                                self.consumed[q].insert(i.expect("found"));
                            }
                            self.sent[e].outcome = Outcome::Applied;
                            continue;
                        }
                    }
                    _ => {}
                }
                pending.push((e, missing));
            }
            if pending.is_empty() {
                return;
            }
            if Instant::now() > deadline {
                let text = pending
                    .iter()
                    .map(|(e, missing)| {
                        let s = &self.sent[*e];
                        format!(
                            "{} ({}), expected {:?}: no event_failed at {}{}",
                            s.event_id,
                            s.what,
                            s.expect,
                            DOMAINS[s.provider],
                            if missing.is_empty() {
                                String::new()
                            } else {
                                format!(", and no {:?} at {}", s.effect, names(missing))
                            }
                        )
                    })
                    .collect::<Vec<_>>()
                    .join("\n");
                let invariant = self.sent[pending[0].0].invariant();
                let views = match self.sent[pending[0].0].room {
                    Some(r) => self.views_text(r).await,
                    None => String::new(),
                };
                self.fail(
                    invariant,
                    &format!(
                        "{:.1} s into the round, neither applied nor reported:\n{text}\n{views}",
                        self.round_start.elapsed().as_secs_f64()
                    ),
                );
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    // ------------------------------------------------------------------ checks

    /// State check: the hub's view of room `r`, and the view of every provider with an active
    /// participant, hold the model's participants and roles, and exactly one client per active
    /// participant.
    async fn check_state(&mut self, r: usize) {
        let room = self.rooms[r].clone();
        let want_roles = roles_by_uri(&room.roles);
        let mut want_members: Vec<String> = room.active_users().iter().map(|u| u.uri()).collect();
        want_members.sort();
        let mut on: Vec<usize> = vec![room.host];
        on.extend(
            room.active_providers()
                .into_iter()
                .filter(|p| *p != room.host),
        );
        let deadline = self.round_start + WAIT;
        for p in on {
            loop {
                let (status, view) = self.providers[p].room_view(&room.uri).await;
                let roles = view_roles(&view);
                let members = view_members(&view);
                if status == 200 && roles == want_roles && members == want_members {
                    break;
                }
                if Instant::now() > deadline {
                    self.fail(
                        "state check (each bridge's view of the room holds the model's participants, roles and clients)",
                        &format!(
                            "{} at {}, {:.1} s into the round: status {status}\n  participants {roles:?}\n  \
                             model        {want_roles:?}\n  member users {members:?}\n  \
                             model        {want_members:?}\n  view: {view}",
                            room.uri,
                            DOMAINS[p],
                            self.round_start.elapsed().as_secs_f64()
                        ),
                    );
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
        // Each provider with a participant in the room: its legacy side, told by the commands
        // it received and by its own users' changes, knows who is in the room.
        let want: BTreeSet<String> = room.active_users().iter().map(|u| u.uri()).collect();
        for p in room.active_providers() {
            loop {
                let all = self.commands();
                let (view, _) = self.legacy_view(&all, p, r);
                let users: BTreeSet<String> = view.keys().cloned().collect();
                if users == want {
                    break;
                }
                if Instant::now() > deadline {
                    self.fail(
                        "state check (each provider in the room is told who is in it)",
                        &format!(
                            "the legacy side of {} (from the commands it received and its own \
                             users' changes) knows {} with {users:?}, but its participants are \
                             {want:?}",
                            DOMAINS[p], room.uri
                        ),
                    );
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }

    /// Invariant 2: every active participant of room `r` says something; each must reach every
    /// other provider with an active participant exactly once.
    async fn probe(&mut self, r: usize) {
        let all = self.commands();
        let room = self.rooms[r].clone();
        let providers = room.active_providers();
        let mut events = Vec::new();
        for u in room.active_users() {
            let n = self.next_id();
            let body = format!(
                "probe #{n} from {u} in {} (round {})",
                room.short(),
                self.round
            );
            let own_id = format!("m-{n}");
            let legacy = match self.room_legacy_at(&all, u.p, r) {
                Some(l) => l,
                None => self.fail(
                    "invariant 2 (probes)",
                    &format!(
                        "{u} is a participant of {}, but {} was never given a legacy room for it",
                        room.uri, DOMAINS[u.p]
                    ),
                ),
            };
            let event_id = self.submit(u, &legacy, text(&own_id, &body)).await;
            self.msgs.push(MsgModel {
                room: r,
                sender: u,
                body: body.clone(),
                own_id,
                deleted: false,
                reactions: HashSet::new(),
            });
            events.push(self.sent.len());
            self.sent.push(Sent {
                event_id,
                provider: u.p,
                round: self.round,
                what: format!("probe `{body}`"),
                room: Some(r),
                actor: u,
                expect: Expect::Applied,
                effect: Effect::Message(body),
                receivers: providers.iter().copied().filter(|p| *p != u.p).collect(),
                after: None,
                joining: None,
                probe: true,
                outcome: Outcome::Pending,
            });
        }
        self.await_outcomes(&events).await;
    }

    /// The accounts: every command each provider received is explained by exactly one event,
    /// and every event's outcome is still what it was decided to be (no late report of an
    /// applied event, no second report).
    fn check_accounts(&mut self) {
        let all = self.commands();
        let by_id: HashMap<String, usize> = self
            .sent
            .iter()
            .enumerate()
            .map(|(i, s)| (s.event_id.clone(), i))
            .collect();
        for q in 0..3 {
            for (i, c) in all[q].iter().enumerate() {
                if self.consumed[q].contains(&i) {
                    continue;
                }
                if let CommandKind::EventFailed { event_id, reason } = &c.kind {
                    let Some(&e) = by_id.get(event_id.as_str()) else {
                        self.fail(
                            "invariant 1 (outcome vs model)",
                            &format!(
                                "{} got event_failed for {event_id}, which it never submitted: {reason}",
                                DOMAINS[q]
                            ),
                        );
                    };
                    let s = self.sent[e].clone();
                    match &s.outcome {
                        Outcome::Noop if s.provider == q && !reason.trim().is_empty() => {
                            // reported after all: also acceptable
                            self.consumed[q].insert(i);
                            self.sent[e].outcome = Outcome::Reported(reason.clone());
                            if let Some(line) = self
                                .history
                                .iter_mut()
                                .find(|l| l.contains(&format!(" {} ", s.event_id)))
                            {
                                line.push_str(&format!(" (then reported: {reason})"));
                            }
                            continue;
                        }
                        Outcome::Applied => self.fail(
                            s.invariant(),
                            &format!(
                                "{} ({}, round {}) was applied, and later also reported failed at {}: {reason}",
                                s.event_id, s.what, s.round, DOMAINS[q]
                            ),
                        ),
                        other => self.fail(
                            s.invariant(),
                            &format!(
                                "{} ({}, round {}, {}) got another event_failed at {}: {reason}",
                                s.event_id,
                                s.what,
                                s.round,
                                outcome_text(other),
                                DOMAINS[q]
                            ),
                        ),
                    }
                }
                // A provider coming back into a room is told what changed while it was away:
                // accepted when it brings its legacy side's participant list closer to the
                // room's (the state check then holds the two equal).
                let catch_up = matches!(
                    c.kind,
                    CommandKind::UserAdded { .. }
                        | CommandKind::UserInvited { .. }
                        | CommandKind::UserLeft
                        | CommandKind::UserRemoved { .. }
                        | CommandKind::UserBanned { .. }
                        | CommandKind::RoleChanged { .. }
                ) && self
                    .rooms
                    .iter()
                    .position(|room| room.uri == c.room.uri.as_str())
                    .is_some_and(|r| self.legacy_view(&all, q, r).1.contains(&i));
                if catch_up {
                    self.consumed[q].insert(i);
                    self.history.push(format!(
                        "             (catch-up at {}:{})",
                        DOMAINS[q],
                        describe(std::slice::from_ref(c)).trim_start()
                    ));
                    continue;
                }
                // An effect no event explains: whose does it look like?
                let lookalike = self.sent.iter().rev().find(|s| {
                    s.room
                        .is_some_and(|r| self.effect_matches(&all, s, q, c, &self.rooms[r].uri))
                });
                let detail = match lookalike {
                    Some(s) => format!(
                        "it looks like the effect of {} ({}, round {}), which was {}{}",
                        s.event_id,
                        s.what,
                        s.round,
                        outcome_text(&s.outcome),
                        if s.outcome == Outcome::Applied {
                            if s.receivers.contains(&q) {
                                " and shown there already: a duplicate"
                            } else {
                                ", but not to be shown there (no participant of that provider may see it)"
                            }
                        } else {
                            ": the effect of an event that was not applied"
                        }
                    ),
                    None => "no event of the run explains it".into(),
                };
                let invariant = match lookalike {
                    Some(s) => s.invariant(),
                    None => Sent::invariant_unexplained(),
                };
                self.fail(
                    invariant,
                    &format!(
                        "{} received a command no event explains:{}\n{detail}",
                        DOMAINS[q],
                        describe(std::slice::from_ref(c))
                    ),
                );
            }
        }
    }

    /// After the rounds: every room is probed, stray commands get time to show, the accounts
    /// are checked once more, and so are the logs.
    async fn finish(&mut self) {
        for r in 0..self.rooms.len() {
            self.action = format!("final probes in {}", self.rooms[r].short());
            self.round_start = Instant::now();
            self.check_state(r).await;
            self.probe(r).await;
        }
        tokio::time::sleep(SETTLE).await;
        self.check_accounts();
        self.action = "log check".into();
        self.drain_logs();
        let mut problems = Vec::new();
        for (p, lines) in self.log_lines.iter().enumerate() {
            for (line, span, count) in repeated_warnings(lines, Duration::from_secs(30)) {
                problems.push(format!(
                    "{}: {count} times over {:.0} s: {line}",
                    DOMAINS[p],
                    span.as_secs_f64()
                ));
            }
        }
        if !problems.is_empty() {
            self.fail(
                "log check (no identical WARN line repeats over more than 30 s)",
                &problems.join("\n"),
            );
        }
    }
}

impl Sent {
    fn invariant_unexplained() -> &'static str {
        "invariant 1 (every command is the effect of exactly one applied event)"
    }
}

fn outcome_text(o: &Outcome) -> String {
    match o {
        Outcome::Pending => "pending".into(),
        Outcome::Applied => "applied".into(),
        Outcome::Reported(reason) => format!("reported: {reason}"),
        Outcome::Noop => "a no-op (nothing shown, nothing reported)".into(),
    }
}

fn names(providers: &[usize]) -> String {
    providers
        .iter()
        .map(|p| DOMAINS[*p])
        .collect::<Vec<_>>()
        .join(", ")
}

fn roles_by_uri(roles: &BTreeMap<User, u32>) -> BTreeMap<String, u32> {
    roles.iter().map(|(u, r)| (u.uri(), *r)).collect()
}

fn roles_text(roles: &BTreeMap<User, u32>) -> String {
    if roles.is_empty() {
        return "no participants".into();
    }
    roles
        .iter()
        .map(|(u, r)| format!("{u}:{r}"))
        .collect::<Vec<_>>()
        .join(" ")
}

/// The participants of a room view and their roles.
fn view_roles(view: &Value) -> BTreeMap<String, u32> {
    view["participants"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|p| Some((p["user"].as_str()?.to_string(), p["role"].as_u64()? as u32)))
                .collect()
        })
        .unwrap_or_default()
}

/// The users of a room view's members (one entry per client), sorted.
fn view_members(view: &Value) -> Vec<String> {
    let mut users: Vec<String> = view["members"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|m| m["user"].as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default();
    users.sort();
    users
}

// ---------------------------------------------------------------------------------- logs

fn strip_ansi(line: &str) -> String {
    let mut out = String::with_capacity(line.len());
    let mut chars = line.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' && chars.peek() == Some(&'[') {
            chars.next();
            for c in chars.by_ref() {
                if c.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// Seconds since 1970 of an RFC 3339 UTC timestamp as tracing writes it
/// (`2026-12-02T01:30:17.123456Z`).
fn parse_timestamp(ts: &str) -> Option<f64> {
    let (date, time) = ts.trim_end_matches('Z').split_once('T')?;
    let mut d = date.split('-').map(|x| x.parse::<i64>());
    let (y, m, day) = (d.next()?.ok()?, d.next()?.ok()?, d.next()?.ok()?);
    let mut t = time.split(':');
    let (h, min, s) = (
        t.next()?.parse::<f64>().ok()?,
        t.next()?.parse::<f64>().ok()?,
        t.next()?.parse::<f64>().ok()?,
    );
    // days from civil (Howard Hinnant's algorithm)
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    Some(days as f64 * 86_400.0 + h * 3600.0 + min * 60.0 + s)
}

/// The WARN lines (timestamp removed) that occur at least twice over more than `span`:
/// (line, first to last, count).
fn repeated_warnings(lines: &[String], span: Duration) -> Vec<(String, Duration, usize)> {
    let mut seen: BTreeMap<String, (f64, f64, usize)> = BTreeMap::new();
    for line in lines {
        let clean = strip_ansi(line);
        let Some((ts, rest)) = clean.trim_start().split_once(char::is_whitespace) else {
            continue;
        };
        let rest = rest.trim_start();
        if !rest.starts_with("WARN") {
            continue;
        }
        let Some(at) = parse_timestamp(ts) else {
            continue;
        };
        let entry = seen.entry(rest.to_string()).or_insert((at, at, 0));
        entry.0 = entry.0.min(at);
        entry.1 = entry.1.max(at);
        entry.2 += 1;
    }
    seen.into_iter()
        .filter(|(_, (first, last, count))| *count > 1 && last - first > span.as_secs_f64())
        .map(|(line, (first, last, count))| (line, Duration::from_secs_f64(last - first), count))
        .collect()
}

// ---------------------------------------------------------------------------------- the test

#[test]
fn the_prng_and_the_log_check_work() {
    let mut a = Rng(7);
    let mut b = Rng(7);
    let xs: Vec<u64> = (0..5).map(|_| a.next()).collect();
    assert_eq!(xs, (0..5).map(|_| b.next()).collect::<Vec<_>>());
    assert_ne!(xs[0], xs[1]);
    assert!((0..1000).all(|_| a.below(3) < 3));
    let t0 = parse_timestamp("2026-12-02T01:30:17.5Z").unwrap();
    let t1 = parse_timestamp("2026-12-02T01:31:00.0Z").unwrap();
    assert!((t1 - t0 - 42.5).abs() < 1e-6);
    assert_eq!(parse_timestamp("1970-01-02T00:00:00Z").unwrap(), 86_400.0);
    let warn = |ts: &str, text: &str| {
        format!("\u{1b}[2m{ts}\u{1b}[0m \u{1b}[33m WARN\u{1b}[0m mimi_bridge: {text}")
    };
    let lines = vec![
        warn("2026-12-02T01:30:00.000000Z", "stuck"),
        warn("2026-12-02T01:30:10.000000Z", "once"),
        warn("2026-12-02T01:30:20.000000Z", "twice quickly"),
        warn("2026-12-02T01:30:25.000000Z", "twice quickly"),
        warn("2026-12-02T01:30:40.000000Z", "stuck"),
    ];
    let found = repeated_warnings(&lines, Duration::from_secs(30));
    assert_eq!(found.len(), 1, "{found:?}");
    assert!(found[0].0.ends_with("stuck") && found[0].2 == 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn random_actions_in_rooms_of_three_bridges() {
    let seed = env_seed();
    let rounds = env_rounds();
    eprintln!(
        "random_rooms: seed {seed} ({seed:#x}), {rounds} rounds; rerun with MIMI_RANDOM_SEED={seed}"
    );
    let started = Instant::now();
    let mut t = Test::start(seed).await;
    for round in 1..=rounds {
        if started.elapsed() > BUDGET {
            eprintln!(
                "random_rooms: seed {seed}: time budget used after {} rounds; stopping there",
                round - 1
            );
            break;
        }
        t.round = round;
        let action = t.choose();
        let at = Instant::now();
        t.play(action).await;
        eprintln!(
            "random_rooms: seed {seed} {} ({:.1} s)",
            t.history
                .last()
                .map(String::as_str)
                .unwrap_or_default()
                .trim(),
            at.elapsed().as_secs_f64()
        );
    }
    t.round += 1;
    t.finish().await;
    t.drain_logs();
    // Clients that fell further behind than the room log keeps rejoined by external commit.
    let rejoins: usize = t
        .log_lines
        .iter()
        .map(|lines| {
            lines
                .iter()
                .filter(|l| l.contains("too far behind the room rejoins"))
                .count()
        })
        .sum();
    eprintln!(
        "random_rooms: seed {seed}: {} rounds, {} events, {rejoins} rejoins of clients left behind, all invariants held ({:.1} s)",
        t.round - 1,
        t.sent.len(),
        started.elapsed().as_secs_f64()
    );
}
