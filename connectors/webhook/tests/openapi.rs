//! `openapi.json` against the Rust types it documents.
//!
//! The document is written by hand, so these tests hold it to the code: the `type`s of events and
//! commands are those the Rust enums serialise; every documented object has exactly the fields the
//! type writes, required exactly when serde needs them, nullable exactly when serde takes `null`;
//! every `$ref` resolves; every example parses into its Rust type and is valid against its own
//! schema; the inbound error codes and statuses are those of [`InboundError`]; and the signature
//! example is reproduced by [`WebhookSecret`].
//!
//! Schemas are checked with a small validator for the JSON Schema keywords the document uses; it
//! refuses any other keyword, so a document that starts using one fails here until the validator
//! learns it.

use std::collections::{BTreeMap, BTreeSet};

use mimi_bridge_connector::{
    Accepted, BridgeCommand, CommandKind, ConnectorEvent, Delivery, EventKind, Expiry,
    MediaEncryption, MediaRef, MessageContent, MessageKind, MessageRef, MimiMessageId, MimiRoom,
    MimiUser, TextFormat, UserRef,
};
use mimi_bridge_webhook::signature::{
    DEFAULT_TOLERANCE_SECONDS, HEADER_ID, HEADER_SIGNATURE, HEADER_TIMESTAMP,
};
use mimi_bridge_webhook::{InboundError, SignatureError, Verifier, WebhookSecret};
use serde_json::{Value, json};

const SCHEMAS: &str = "#/components/schemas/";

fn doc() -> Value {
    serde_json::from_str(include_str!("../openapi.json")).expect("openapi.json is JSON")
}

fn schema<'d>(doc: &'d Value, name: &str) -> &'d Value {
    doc.pointer(&format!("/components/schemas/{name}"))
        .unwrap_or_else(|| panic!("no schema {name}"))
}

fn schema_ref(name: &str) -> Value {
    json!({ "$ref": format!("{SCHEMAS}{name}") })
}

/// Parses a JSON value into a Rust type, keeping only whether it worked (and why not).
type Parser = fn(Value) -> Result<(), String>;

macro_rules! parser {
    ($t:ty) => {
        (|v: Value| {
            serde_json::from_value::<$t>(v)
                .map(drop)
                .map_err(|e| e.to_string())
        }) as Parser
    };
}

// ------------------------------------------------------------------------------------------------
// A validator for the subset of JSON Schema 2020-12 the document uses.

fn resolve<'d>(doc: &'d Value, reference: &str) -> &'d Value {
    let pointer = reference
        .strip_prefix('#')
        .unwrap_or_else(|| panic!("$ref {reference} is not local"));
    doc.pointer(pointer)
        .unwrap_or_else(|| panic!("$ref {reference} does not resolve"))
}

/// `pattern`s the document may use, each with what it means. Any other pattern is refused.
fn matches_pattern(pattern: &str, s: &str) -> bool {
    let lower_hex = |s: &str| s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'));
    match pattern {
        "^[0-9a-f]{64}$" => s.len() == 64 && lower_hex(s),
        "^([0-9a-f]{2})+$" => !s.is_empty() && s.len().is_multiple_of(2) && lower_hex(s),
        "^([0-9a-f]{2})*$" => s.len().is_multiple_of(2) && lower_hex(s),
        "^mimi://" => s.starts_with("mimi://"),
        other => panic!("the test validator does not know the pattern {other:?}: teach it"),
    }
}

fn type_matches(name: &str, value: &Value) -> bool {
    match name {
        "object" => value.is_object(),
        "array" => value.is_array(),
        "string" => value.is_string(),
        "boolean" => value.is_boolean(),
        "null" => value.is_null(),
        "integer" => value.is_i64() || value.is_u64(),
        "number" => value.is_number(),
        other => panic!("unknown type {other:?}"),
    }
}

const ANNOTATIONS: &[&str] = &[
    "title",
    "description",
    "examples",
    "default",
    "discriminator",
    "format",
    "contentEncoding",
    "contentMediaType",
];

/// Validates `value` against `schema` (which may be a `$ref`); `Err` says where and why not.
fn validate(doc: &Value, schema: &Value, value: &Value) -> Result<(), String> {
    validate_at(doc, schema, value, "$")
}

fn validate_at(doc: &Value, schema: &Value, value: &Value, at: &str) -> Result<(), String> {
    let Some(schema) = schema.as_object() else {
        match schema {
            Value::Bool(true) => return Ok(()),
            Value::Bool(false) => return Err(format!("{at}: nothing is allowed here")),
            _ => panic!("not a schema: {schema}"),
        }
    };
    for (keyword, arg) in schema {
        match keyword.as_str() {
            "$ref" => validate_at(doc, resolve(doc, arg.as_str().unwrap()), value, at)?,
            "allOf" => {
                for sub in arg.as_array().unwrap() {
                    validate_at(doc, sub, value, at)?;
                }
            }
            "anyOf" => {
                let errors: Vec<String> = arg
                    .as_array()
                    .unwrap()
                    .iter()
                    .filter_map(|sub| validate_at(doc, sub, value, at).err())
                    .collect();
                if errors.len() == arg.as_array().unwrap().len() {
                    return Err(format!("{at}: matches no anyOf branch: {errors:?}"));
                }
            }
            "oneOf" => {
                let results: Vec<Result<(), String>> = arg
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|sub| validate_at(doc, sub, value, at))
                    .collect();
                let matching = results.iter().filter(|r| r.is_ok()).count();
                // with a discriminator, the branch it names says best what is wrong
                let named = schema
                    .get("discriminator")
                    .and_then(|d| d["mapping"].get(value[d["propertyName"].as_str()?].as_str()?));
                if let (0, Some(branch)) = (matching, named) {
                    validate_at(doc, &json!({ "$ref": branch }), value, at)?;
                }
                if matching != 1 {
                    let errors: Vec<&String> =
                        results.iter().filter_map(|r| r.as_ref().err()).collect();
                    return Err(format!(
                        "{at}: matches {matching} oneOf branches, not 1: {errors:?}"
                    ));
                }
            }
            "type" => {
                let ok = match arg {
                    Value::String(t) => type_matches(t, value),
                    Value::Array(ts) => ts.iter().any(|t| type_matches(t.as_str().unwrap(), value)),
                    _ => panic!("bad type {arg}"),
                };
                if !ok {
                    return Err(format!("{at}: {value} is not of type {arg}"));
                }
            }
            "const" => {
                if value != arg {
                    return Err(format!("{at}: {value} is not {arg}"));
                }
            }
            "enum" => {
                if !arg.as_array().unwrap().contains(value) {
                    return Err(format!("{at}: {value} is not one of {arg}"));
                }
            }
            "properties" => {
                if let Some(object) = value.as_object() {
                    for (name, sub) in arg.as_object().unwrap() {
                        if let Some(v) = object.get(name) {
                            validate_at(doc, sub, v, &format!("{at}.{name}"))?;
                        }
                    }
                }
            }
            "required" => {
                if let Some(object) = value.as_object() {
                    for name in arg.as_array().unwrap() {
                        if !object.contains_key(name.as_str().unwrap()) {
                            return Err(format!("{at}: required {name} is missing"));
                        }
                    }
                }
            }
            "additionalProperties" => {
                if let Some(object) = value.as_object() {
                    let declared = schema.get("properties").and_then(Value::as_object);
                    for (name, v) in object {
                        if declared.is_none_or(|d| !d.contains_key(name)) {
                            validate_at(doc, arg, v, &format!("{at}.{name}"))?;
                        }
                    }
                }
            }
            "items" => {
                if let Some(items) = value.as_array() {
                    for (i, v) in items.iter().enumerate() {
                        validate_at(doc, arg, v, &format!("{at}[{i}]"))?;
                    }
                }
            }
            "minItems" => {
                if let Some(items) = value.as_array()
                    && (items.len() as u64) < arg.as_u64().unwrap()
                {
                    return Err(format!("{at}: fewer than {arg} items"));
                }
            }
            "minLength" | "maxLength" => {
                if let Some(s) = value.as_str() {
                    let len = s.chars().count() as u64;
                    let bound = arg.as_u64().unwrap();
                    let ok = if keyword == "minLength" {
                        len >= bound
                    } else {
                        len <= bound
                    };
                    if !ok {
                        return Err(format!("{at}: length {len} breaks {keyword} {bound}"));
                    }
                }
            }
            "pattern" => {
                if let Some(s) = value.as_str()
                    && !matches_pattern(arg.as_str().unwrap(), s)
                {
                    return Err(format!("{at}: {s:?} does not match {arg}"));
                }
            }
            "minimum" | "maximum" => {
                if value.is_number() {
                    let (v, bound) = (number(value), number(arg));
                    let ok = if keyword == "minimum" {
                        v >= bound
                    } else {
                        v <= bound
                    };
                    if !ok {
                        return Err(format!("{at}: {value} breaks {keyword} {arg}"));
                    }
                }
            }
            k if ANNOTATIONS.contains(&k) => {}
            other => panic!("the test validator does not know the keyword {other:?}: teach it"),
        }
    }
    Ok(())
}

fn number(v: &Value) -> i128 {
    v.as_u64()
        .map(i128::from)
        .or_else(|| v.as_i64().map(i128::from))
        .unwrap_or_else(|| panic!("{v} is not an integer"))
}

/// The object schema `value` is an instance of: `schema` itself, or the one `oneOf` branch that
/// `value` matches, with `$ref`s followed.
fn object_schema_for<'d>(doc: &'d Value, schema: &'d Value, value: &Value) -> &'d Value {
    if let Some(r) = schema.get("$ref") {
        return object_schema_for(doc, resolve(doc, r.as_str().unwrap()), value);
    }
    match schema.get("oneOf") {
        None => schema,
        Some(branches) => {
            let matching: Vec<&Value> = branches
                .as_array()
                .unwrap()
                .iter()
                .filter(|b| validate(doc, b, value).is_ok())
                .collect();
            assert_eq!(
                matching.len(),
                1,
                "{value} matches {} branches",
                matching.len()
            );
            object_schema_for(doc, matching[0], value)
        }
    }
}

/// The properties and required names of an object schema, through `$ref` and `allOf`.
#[derive(Default)]
struct Shape {
    properties: BTreeMap<String, Value>,
    required: BTreeSet<String>,
}

fn shape(doc: &Value, schema: &Value) -> Shape {
    fn collect(doc: &Value, schema: &Value, out: &mut Shape) {
        if let Some(r) = schema.get("$ref") {
            collect(doc, resolve(doc, r.as_str().unwrap()), out);
        }
        for sub in schema
            .get("allOf")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            collect(doc, sub, out);
        }
        for (name, sub) in schema
            .get("properties")
            .and_then(Value::as_object)
            .into_iter()
            .flatten()
        {
            out.properties.insert(name.clone(), sub.clone());
        }
        for name in schema
            .get("required")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            out.required.insert(name.as_str().unwrap().to_owned());
        }
    }
    let mut out = Shape::default();
    collect(doc, schema, &mut out);
    out
}

fn keys(v: &Value) -> BTreeSet<String> {
    v.as_object().unwrap().keys().cloned().collect()
}

/// Holds one documented object type to its Rust type, given a sample with every optional field
/// set (`full`): the document lists exactly the fields the type writes; a field is `required`
/// exactly when the type cannot parse without it; leaving a field out, setting it to `null`
/// (when `nulls`: for what the bridge parses) or adding an unknown field is accepted by the
/// schema exactly when it is accepted by the type.
fn check_shape(doc: &Value, schema_name: &str, full: &Value, parse: Parser, nulls: bool) {
    let top = schema_ref(schema_name);
    let what = format!("{schema_name} {full}");
    parse(full.clone()).unwrap_or_else(|e| panic!("{what}: the sample does not parse: {e}"));
    validate(doc, &top, full).unwrap_or_else(|e| panic!("{what}: invalid sample: {e}"));
    let object = object_schema_for(doc, &top, full);
    let shape = shape(doc, object);
    assert_eq!(
        shape.properties.keys().cloned().collect::<BTreeSet<_>>(),
        keys(full),
        "{what}: documented properties vs the fields the Rust type writes"
    );
    let mut required = BTreeSet::new();
    for key in keys(full) {
        let mut without = full.clone();
        without.as_object_mut().unwrap().remove(&key);
        let rust = parse(without.clone());
        if rust.is_err() {
            required.insert(key.clone());
        }
        assert_eq!(
            validate(doc, &top, &without).is_ok(),
            rust.is_ok(),
            "{what}: leaving out `{key}`: schema says {:?}, Rust says {rust:?}",
            validate(doc, &top, &without)
        );
        if nulls {
            let mut null = full.clone();
            null[&key] = Value::Null;
            let rust = parse(null.clone());
            assert_eq!(
                validate(doc, &top, &null).is_ok(),
                rust.is_ok(),
                "{what}: `{key}: null`: schema says {:?}, Rust says {rust:?}",
                validate(doc, &top, &null)
            );
        }
    }
    assert_eq!(
        shape.required, required,
        "{what}: documented required vs needed by serde"
    );
    let mut extra = full.clone();
    extra["x_unknown_field"] = json!(1);
    let rust = parse(extra.clone());
    assert_eq!(
        validate(doc, &top, &extra).is_ok(),
        rust.is_ok(),
        "{what}: an unknown field: schema says {:?}, Rust says {rust:?}",
        validate(doc, &top, &extra)
    );
}

// ------------------------------------------------------------------------------------------------
// Samples of every kind, every optional field set.

fn hex_id(byte: &str) -> MimiMessageId {
    MimiMessageId::new(format!("01{}", byte.repeat(31)))
}

fn media() -> MediaRef {
    MediaRef {
        url: "https://media.example/f/1".into(),
        media_type: "image/png".into(),
        size: Some(48213),
        name: Some("cat.png".into()),
        description: Some("a cat".into()),
        encryption: Some(encryption()),
        sha256: Some("9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08".into()),
    }
}

fn encryption() -> MediaEncryption {
    MediaEncryption {
        aead: 1,
        key: "000102030405060708090a0b0c0d0e0f".into(),
        nonce: "000102030405060708090a0b".into(),
        aad: "0a0b".into(),
    }
}

fn content() -> MessageContent {
    MessageContent {
        kind: MessageKind::Emote,
        body: "waves".into(),
        format: TextFormat::Markdown,
        attachments: vec![media()],
    }
}

fn user() -> MimiUser {
    MimiUser {
        uri: "mimi://b.example/u/bob".into(),
        legacy_id: Some("@mimi_bob:hs.example".into()),
        display_name: Some("Bob".into()),
        role: Some(3),
    }
}

fn room() -> MimiRoom {
    MimiRoom {
        uri: "mimi://a.example/r/general".into(),
        legacy_id: Some("general".into()),
    }
}

fn message_ref() -> MessageRef {
    MessageRef {
        mimi_id: hex_id("aa"),
        legacy_id: Some("m-17".into()),
    }
}

/// The number of [`EventKind`] variants; [`event_index`] numbers them.
const EVENT_KINDS: usize = 16;

/// Fails to compile when a variant is added: then add a sample to [`event_kinds`] too.
fn event_index(kind: &EventKind) -> usize {
    match kind {
        EventKind::RoomCreated { .. } => 0,
        EventKind::UserInvited { .. } => 1,
        EventKind::UserAdded { .. } => 2,
        EventKind::UserJoined => 3,
        EventKind::UserLeft => 4,
        EventKind::UserRemoved { .. } => 5,
        EventKind::UserBanned { .. } => 6,
        EventKind::RoleChanged { .. } => 7,
        EventKind::Message { .. } => 8,
        EventKind::Edit { .. } => 9,
        EventKind::Delete { .. } => 10,
        EventKind::Reaction { .. } => 11,
        EventKind::ReactionRemoved { .. } => 12,
        EventKind::RoomRenamed { .. } => 13,
        EventKind::Typing { .. } => 14,
        EventKind::ReadReceipt { .. } => 15,
    }
}

fn event_kinds() -> Vec<EventKind> {
    vec![
        EventKind::RoomCreated {
            name: Some("Project X".into()),
        },
        EventKind::UserInvited {
            target: UserRef::mimi("mimi://b.example/u/bob"),
        },
        EventKind::UserAdded {
            target: UserRef::legacy("carol"),
        },
        EventKind::UserJoined,
        EventKind::UserLeft,
        EventKind::UserRemoved {
            target: UserRef::legacy("carol"),
            reason: Some("spam".into()),
        },
        EventKind::UserBanned {
            target: UserRef::legacy("mallory"),
            reason: Some("spam".into()),
        },
        EventKind::RoleChanged {
            target: UserRef::legacy("carol"),
            role: 3,
        },
        EventKind::Message {
            message_id: "m-17".into(),
            content: content(),
            reply_to: Some("m-16".into()),
            expires: Some(Expiry::AfterRead { seconds: 3600 }),
        },
        EventKind::Edit {
            message_id: "m-17".into(),
            content: MessageContent::text("hi!"),
        },
        EventKind::Delete {
            message_id: "m-17".into(),
        },
        EventKind::Reaction {
            message_id: "m-17".into(),
            key: "👍".into(),
            reaction_id: Some("r-3".into()),
        },
        EventKind::ReactionRemoved {
            message_id: "m-17".into(),
            key: "👍".into(),
        },
        EventKind::RoomRenamed {
            name: "Project Y".into(),
        },
        EventKind::Typing {
            active: true,
            timeout_ms: Some(5000),
        },
        EventKind::ReadReceipt {
            message_id: "m-17".into(),
        },
    ]
}

fn events() -> Vec<ConnectorEvent> {
    let kinds = event_kinds();
    let covered: BTreeSet<usize> = kinds.iter().map(event_index).collect();
    assert_eq!(
        covered,
        (0..EVENT_KINDS).collect(),
        "one sample of every EventKind"
    );
    kinds
        .into_iter()
        .enumerate()
        // a literal, so a new field fails to compile here until the sample sets it
        .map(|(i, kind)| ConnectorEvent {
            kind,
            event_id: format!("evt-{i}").into(),
            room_id: "general".into(),
            sender: "alice".into(),
            timestamp_ms: Some(1_767_225_600_000),
        })
        .collect()
}

/// The number of [`CommandKind`] variants; [`command_index`] numbers them.
const COMMAND_KINDS: usize = 17;

/// Fails to compile when a variant is added: then add a sample to [`command_kinds`] too.
fn command_index(kind: &CommandKind) -> usize {
    match kind {
        CommandKind::RoomCreated { .. } => 0,
        CommandKind::UserInvited { .. } => 1,
        CommandKind::UserAdded { .. } => 2,
        CommandKind::UserJoined => 3,
        CommandKind::UserLeft => 4,
        CommandKind::UserRemoved { .. } => 5,
        CommandKind::UserBanned { .. } => 6,
        CommandKind::RoleChanged { .. } => 7,
        CommandKind::Message { .. } => 8,
        CommandKind::Edit { .. } => 9,
        CommandKind::Delete { .. } => 10,
        CommandKind::Reaction { .. } => 11,
        CommandKind::ReactionRemoved { .. } => 12,
        CommandKind::RoomRenamed { .. } => 13,
        CommandKind::Typing { .. } => 14,
        CommandKind::ReadReceipt { .. } => 15,
        CommandKind::EventFailed { .. } => 16,
    }
}

fn command_kinds() -> Vec<CommandKind> {
    vec![
        CommandKind::RoomCreated {
            name: Some("Project X".into()),
            participants: vec![user()],
        },
        CommandKind::UserInvited { target: user() },
        CommandKind::UserAdded { target: user() },
        CommandKind::UserJoined,
        CommandKind::UserLeft,
        CommandKind::UserRemoved {
            target: user(),
            reason: Some("spam".into()),
        },
        CommandKind::UserBanned {
            target: user(),
            reason: Some("spam".into()),
        },
        CommandKind::RoleChanged { target: user() },
        CommandKind::Message {
            mimi_message_id: hex_id("01"),
            content: content(),
            reply_to: Some(message_ref()),
            expires: Some(Expiry::At {
                unix_seconds: 1_767_225_600,
            }),
        },
        CommandKind::Edit {
            mimi_message_id: hex_id("02"),
            message: message_ref(),
            content: MessageContent::text("hi!"),
        },
        CommandKind::Delete {
            mimi_message_id: hex_id("03"),
            message: message_ref(),
        },
        CommandKind::Reaction {
            mimi_message_id: hex_id("04"),
            message: message_ref(),
            key: "👍".into(),
        },
        CommandKind::ReactionRemoved {
            mimi_message_id: hex_id("05"),
            message: message_ref(),
            key: "👍".into(),
            reaction: MessageRef {
                mimi_id: hex_id("04"),
                legacy_id: Some("r-3".into()),
            },
        },
        CommandKind::RoomRenamed {
            name: "Project Y".into(),
        },
        CommandKind::Typing {
            active: false,
            timeout_ms: Some(5000),
        },
        CommandKind::ReadReceipt {
            message: message_ref(),
        },
        CommandKind::EventFailed {
            event_id: "evt-42".into(),
            reason: "not allowed to rename the room".into(),
        },
    ]
}

fn commands() -> Vec<BridgeCommand> {
    let kinds = command_kinds();
    let covered: BTreeSet<usize> = kinds.iter().map(command_index).collect();
    assert_eq!(
        covered,
        (0..COMMAND_KINDS).collect(),
        "one sample of every CommandKind"
    );
    kinds
        .into_iter()
        .enumerate()
        .map(|(i, kind)| BridgeCommand {
            kind,
            command_id: format!("c-{i}").into(),
            room: room(),
            sender: user(),
            hub_timestamp_ms: 1_767_225_600_123,
        })
        .collect()
}

fn type_of(v: &Value) -> String {
    v["type"].as_str().expect("a string `type`").to_owned()
}

fn sample_types(samples: &[Value]) -> BTreeSet<String> {
    samples.iter().map(type_of).collect()
}

/// The `type` constants of a `oneOf` schema's branches, checked against its discriminator.
fn documented_types(doc: &Value, name: &str) -> BTreeSet<String> {
    let union = schema(doc, name);
    let branches = union["oneOf"].as_array().expect("a oneOf");
    let mapping = union["discriminator"]["mapping"]
        .as_object()
        .expect("a discriminator mapping");
    assert_eq!(union["discriminator"]["propertyName"], "type");
    let mut types = BTreeSet::new();
    for branch in branches {
        let reference = branch["$ref"].as_str().expect("branches are $refs");
        let target = resolve(doc, reference);
        let t = target["properties"]["type"]["const"]
            .as_str()
            .unwrap_or_else(|| panic!("{reference} has no `type` const"))
            .to_owned();
        assert!(
            target["required"]
                .as_array()
                .unwrap()
                .contains(&json!("type")),
            "{reference} requires `type`"
        );
        assert_eq!(
            mapping.get(&t).and_then(Value::as_str),
            Some(reference),
            "the discriminator maps {t} to {reference}"
        );
        assert!(types.insert(t.clone()), "{t} documented twice");
    }
    assert_eq!(
        mapping.keys().cloned().collect::<BTreeSet<_>>(),
        types,
        "discriminator mapping vs oneOf"
    );
    types
}

// ------------------------------------------------------------------------------------------------
// Examples.

/// Every example of schema `name` in the document, with where it is and, for examples of a
/// `oneOf` branch, the `type` that branch stands for: the schema's own `examples`, its branches'
/// `examples`, and the examples of every media type, parameter or header whose schema is this one
/// (or an array of it).
fn examples_of(doc: &Value, name: &str) -> Vec<(String, Option<String>, Value)> {
    let mut out = Vec::new();
    let mut push_schema_examples = |at: String, s: &Value, t: Option<String>| {
        for (i, ex) in s["examples"].as_array().into_iter().flatten().enumerate() {
            out.push((format!("{at}/examples/{i}"), t.clone(), ex.clone()));
        }
    };
    let own = schema(doc, name);
    push_schema_examples(format!("schemas/{name}"), own, None);
    for branch in own
        .get("oneOf")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        if let Some(r) = branch.get("$ref").and_then(Value::as_str) {
            let target = resolve(doc, r);
            let t = target["properties"]["type"]["const"]
                .as_str()
                .map(str::to_owned);
            push_schema_examples(r.to_owned(), target, t);
        }
    }
    let one = schema_ref(name);
    let many = json!({ "type": "array", "items": one });
    fn walk(
        v: &Value,
        at: &str,
        one: &Value,
        many: &Value,
        out: &mut Vec<(String, Option<String>, Value)>,
    ) {
        match v {
            Value::Object(o) => {
                if let Some(s) = o.get("schema") {
                    let items = |ex: &Value| -> Vec<Value> {
                        if s == many {
                            ex.as_array().cloned().unwrap_or_default()
                        } else {
                            vec![ex.clone()]
                        }
                    };
                    if s == one || s == many {
                        if let Some(ex) = o.get("example") {
                            for item in items(ex) {
                                out.push((format!("{at}/example"), None, item));
                            }
                        }
                        for (k, ex) in o
                            .get("examples")
                            .and_then(Value::as_object)
                            .into_iter()
                            .flatten()
                        {
                            for item in items(&ex["value"]) {
                                out.push((format!("{at}/examples/{k}"), None, item));
                            }
                        }
                    }
                }
                for (k, sub) in o {
                    walk(sub, &format!("{at}/{k}"), one, many, out);
                }
            }
            Value::Array(a) => {
                for (i, sub) in a.iter().enumerate() {
                    walk(sub, &format!("{at}/{i}"), one, many, out);
                }
            }
            _ => {}
        }
    }
    walk(doc, "", &one, &many, &mut out);
    out
}

/// Parses every example of `name` with `parse`, checks each against the `type` of the branch it
/// belongs to, and returns them.
fn parsed_examples(doc: &Value, name: &str, parse: Parser) -> Vec<(String, Value)> {
    let examples = examples_of(doc, name);
    assert!(!examples.is_empty(), "{name} has examples");
    examples
        .into_iter()
        .map(|(at, t, ex)| {
            parse(ex.clone()).unwrap_or_else(|e| panic!("example {at} is no {name}: {e}\n{ex}"));
            validate(doc, &schema_ref(name), &ex)
                .unwrap_or_else(|e| panic!("example {at} is invalid: {e}"));
            if let Some(t) = t {
                assert_eq!(type_of(&ex), t, "example {at} is of its branch's type");
            }
            (at, ex)
        })
        .collect()
}

// ------------------------------------------------------------------------------------------------
// The tests.

#[test]
fn the_document_is_openapi_3_1() {
    let doc = doc();
    let version = doc["openapi"].as_str().expect("an `openapi` string");
    assert!(version.starts_with("3.1."), "openapi {version}");
    assert!(doc["info"]["title"].is_string() && doc["info"]["version"].is_string());
    assert!(doc["paths"]["/webhook/v1/events"]["post"].is_object());
    assert!(doc["paths"]["/webhook/v1/openapi.json"]["get"].is_object());
    assert!(doc["paths"]["/admin/v1/outbox/dead-letters"]["get"].is_object());
    assert!(doc["paths"]["/admin/v1/outbox/dead-letters/{id}/resend"]["post"].is_object());
    assert!(doc["webhooks"]["command"]["post"].is_object());
}

#[test]
fn event_types_are_the_event_kinds() {
    let doc = doc();
    let samples: Vec<Value> = events()
        .iter()
        .map(|e| serde_json::to_value(e).unwrap())
        .collect();
    assert_eq!(
        documented_types(&doc, "ConnectorEvent"),
        sample_types(&samples)
    );
}

#[test]
fn command_types_are_the_command_kinds() {
    let doc = doc();
    let samples: Vec<Value> = commands()
        .iter()
        .map(|c| serde_json::to_value(c).unwrap())
        .collect();
    assert_eq!(
        documented_types(&doc, "BridgeCommand"),
        sample_types(&samples)
    );
}

#[test]
fn every_ref_resolves_and_every_component_is_used() {
    fn refs(v: &Value, out: &mut Vec<String>) {
        match v {
            Value::Object(o) => {
                if let Some(r) = o.get("$ref") {
                    out.push(r.as_str().expect("a string $ref").to_owned());
                }
                o.values().for_each(|sub| refs(sub, out));
            }
            Value::Array(a) => a.iter().for_each(|sub| refs(sub, out)),
            _ => {}
        }
    }
    let doc = doc();
    let mut all = Vec::new();
    refs(&doc, &mut all);
    assert!(!all.is_empty());
    for r in &all {
        assert!(r.starts_with("#/components/"), "{r} points into components");
        let target = doc
            .pointer(&r[1..])
            .unwrap_or_else(|| panic!("{r} does not resolve"));
        assert!(target.is_object(), "{r} is an object");
    }
    let used: BTreeSet<&str> = all.iter().map(String::as_str).collect();
    for section in ["schemas", "parameters", "responses", "headers"] {
        for name in doc["components"][section].as_object().unwrap().keys() {
            let r = format!("#/components/{section}/{name}");
            assert!(used.contains(r.as_str()), "{r} is never used");
        }
    }
}

#[test]
fn event_objects_have_the_fields_of_the_rust_types() {
    let doc = doc();
    for event in events() {
        let full = serde_json::to_value(&event).unwrap();
        check_shape(&doc, "ConnectorEvent", &full, parser!(ConnectorEvent), true);
        event.validate().expect("the samples are valid events");
    }
    for (name, full, parse) in [
        ("UserRef", json!({"legacy_id": "carol"}), parser!(UserRef)),
        (
            "UserRef",
            json!({"uri": "mimi://b.example/u/bob"}),
            parser!(UserRef),
        ),
        (
            "MessageContent",
            serde_json::to_value(content()).unwrap(),
            parser!(MessageContent),
        ),
        (
            "MediaRef",
            serde_json::to_value(media()).unwrap(),
            parser!(MediaRef),
        ),
        (
            "MediaEncryption",
            serde_json::to_value(encryption()).unwrap(),
            parser!(MediaEncryption),
        ),
        (
            "Expiry",
            serde_json::to_value(Expiry::AfterRead { seconds: 60 }).unwrap(),
            parser!(Expiry),
        ),
        (
            "Expiry",
            serde_json::to_value(Expiry::At {
                unix_seconds: 1_767_225_600,
            })
            .unwrap(),
            parser!(Expiry),
        ),
        (
            "Accepted",
            serde_json::to_value(Accepted { duplicate: true }).unwrap(),
            parser!(Accepted),
        ),
        (
            "Delivery",
            serde_json::to_value(Delivery {
                message_id: Some("m-18".into()),
                room_id: Some("general".into()),
            })
            .unwrap(),
            parser!(Delivery),
        ),
    ] {
        check_shape(&doc, name, &full, parse, true);
    }
    // the one-key objects really are written so
    assert_eq!(
        serde_json::to_value(UserRef::legacy("carol")).unwrap(),
        json!({"legacy_id": "carol"})
    );
    assert_eq!(
        serde_json::to_value(UserRef::mimi("mimi://b.example/u/bob")).unwrap(),
        json!({"uri": "mimi://b.example/u/bob"})
    );
}

#[test]
fn command_objects_have_the_fields_of_the_rust_types() {
    let doc = doc();
    for command in commands() {
        let full = serde_json::to_value(&command).unwrap();
        // the bridge writes no `null`s, and the document promises none in commands
        check_shape(&doc, "BridgeCommand", &full, parser!(BridgeCommand), false);
    }
    for (name, full, parse) in [
        (
            "MimiRoom",
            serde_json::to_value(room()).unwrap(),
            parser!(MimiRoom),
        ),
        (
            "MimiUser",
            serde_json::to_value(user()).unwrap(),
            parser!(MimiUser),
        ),
        (
            "MessageRef",
            serde_json::to_value(message_ref()).unwrap(),
            parser!(MessageRef),
        ),
    ] {
        check_shape(&doc, name, &full, parse, false);
    }
}

#[test]
fn what_the_types_write_with_nothing_optional_is_valid() {
    let doc = doc();
    for event in events() {
        let mut bare = event.clone();
        bare.timestamp_ms = None;
        bare.kind = match bare.kind {
            EventKind::RoomCreated { .. } => EventKind::RoomCreated { name: None },
            EventKind::UserRemoved { target, .. } => EventKind::UserRemoved {
                target,
                reason: None,
            },
            EventKind::UserBanned { target, .. } => EventKind::UserBanned {
                target,
                reason: None,
            },
            EventKind::Message { message_id, .. } => EventKind::Message {
                message_id,
                content: MessageContent::text("hi"),
                reply_to: None,
                expires: None,
            },
            EventKind::Reaction {
                message_id, key, ..
            } => EventKind::Reaction {
                message_id,
                key,
                reaction_id: None,
            },
            EventKind::Typing { active, .. } => EventKind::Typing {
                active,
                timeout_ms: None,
            },
            other => other,
        };
        let v = serde_json::to_value(&bare).unwrap();
        validate(&doc, &schema_ref("ConnectorEvent"), &v).unwrap_or_else(|e| panic!("{v}: {e}"));
    }
    for command in commands() {
        let mut bare = command.clone();
        bare.room.legacy_id = None;
        bare.sender = MimiUser::new("mimi://b.example/u/bob");
        bare.kind = match bare.kind {
            CommandKind::RoomCreated { .. } => CommandKind::RoomCreated {
                name: None,
                participants: vec![],
            },
            CommandKind::Message {
                mimi_message_id, ..
            } => CommandKind::Message {
                mimi_message_id,
                content: MessageContent::media(MediaRef::new("https://m.example/1", "image/png")),
                reply_to: None,
                expires: None,
            },
            CommandKind::UserRemoved { target, .. } => CommandKind::UserRemoved {
                target,
                reason: None,
            },
            CommandKind::UserBanned { target, .. } => CommandKind::UserBanned {
                target,
                reason: None,
            },
            CommandKind::Typing { active, .. } => CommandKind::Typing {
                active,
                timeout_ms: None,
            },
            other => other,
        };
        let v = serde_json::to_value(&bare).unwrap();
        validate(&doc, &schema_ref("BridgeCommand"), &v).unwrap_or_else(|e| panic!("{v}: {e}"));
    }
    for answer in [Accepted::NEW, Accepted::DUPLICATE] {
        let v = serde_json::to_value(answer).unwrap();
        validate(&doc, &schema_ref("Accepted"), &v).unwrap();
    }
    let v = serde_json::to_value(Delivery::done()).unwrap();
    validate(&doc, &schema_ref("Delivery"), &v).unwrap();
}

#[test]
fn every_event_example_is_a_valid_connector_event() {
    let doc = doc();
    let examples = parsed_examples(&doc, "ConnectorEvent", parser!(ConnectorEvent));
    for (at, ex) in &examples {
        let event: ConnectorEvent = serde_json::from_value(ex.clone()).unwrap();
        event
            .validate()
            .unwrap_or_else(|e| panic!("example {at} would be refused: {e}"));
    }
    let samples: Vec<Value> = events()
        .iter()
        .map(|e| serde_json::to_value(e).unwrap())
        .collect();
    let covered: BTreeSet<String> = examples.iter().map(|(_, ex)| type_of(ex)).collect();
    assert_eq!(
        covered,
        sample_types(&samples),
        "every event type has an example"
    );
}

#[test]
fn every_command_example_is_a_bridge_command() {
    let doc = doc();
    let mut examples = parsed_examples(&doc, "BridgeCommand", parser!(BridgeCommand));
    // dead letters of kind `connector` carry the command itself
    let mut dead_letters = 0;
    for (at, _, letter) in examples_of(&doc, "DeadLetter") {
        validate(&doc, &schema_ref("DeadLetter"), &letter)
            .unwrap_or_else(|e| panic!("example {at} is invalid: {e}"));
        if letter["kind"] == "connector" {
            let body = letter["body"].clone();
            let command: BridgeCommand = serde_json::from_value(body.clone())
                .unwrap_or_else(|e| panic!("example {at}: the body is no BridgeCommand: {e}"));
            assert_eq!(
                letter["id"],
                json!(command.command_id),
                "{at}: id is the command id"
            );
            examples.push((at, body));
            dead_letters += 1;
        }
    }
    assert!(dead_letters > 0, "a dead letter example carries a command");
    let samples: Vec<Value> = commands()
        .iter()
        .map(|c| serde_json::to_value(c).unwrap())
        .collect();
    let covered: BTreeSet<String> = examples.iter().map(|(_, ex)| type_of(ex)).collect();
    assert_eq!(
        covered,
        sample_types(&samples),
        "every command type has an example"
    );
}

#[test]
fn every_other_example_parses_into_its_type() {
    let doc = doc();
    parsed_examples(&doc, "UserRef", parser!(UserRef));
    parsed_examples(&doc, "MimiRoom", parser!(MimiRoom));
    parsed_examples(&doc, "MimiUser", parser!(MimiUser));
    parsed_examples(&doc, "MessageRef", parser!(MessageRef));
    parsed_examples(&doc, "Expiry", parser!(Expiry));
    parsed_examples(&doc, "MediaEncryption", parser!(MediaEncryption));
    for (at, ex) in parsed_examples(&doc, "MessageContent", parser!(MessageContent)) {
        let content: MessageContent = serde_json::from_value(ex).unwrap();
        content.validate().unwrap_or_else(|e| panic!("{at}: {e}"));
    }
    for (at, ex) in parsed_examples(&doc, "MediaRef", parser!(MediaRef)) {
        let media: MediaRef = serde_json::from_value(ex).unwrap();
        media.validate().unwrap_or_else(|e| panic!("{at}: {e}"));
    }
    parsed_examples(&doc, "Delivery", parser!(Delivery));
    parsed_examples(&doc, "Accepted", parser!(Accepted));
    // the inbound answers are what the Rust values write
    let responses = &doc["paths"]["/webhook/v1/events"]["post"]["responses"];
    assert_eq!(
        responses["202"]["content"]["application/json"]["examples"]["new"]["value"],
        serde_json::to_value(Accepted::NEW).unwrap()
    );
    assert_eq!(
        responses["200"]["content"]["application/json"]["examples"]["retry"]["value"],
        serde_json::to_value(Accepted::DUPLICATE).unwrap()
    );
}

#[test]
fn every_example_is_valid_against_its_schema() {
    fn walk(doc: &Value, v: &Value, at: &str, checked: &mut usize) {
        let Some(o) = v.as_object() else {
            if let Some(a) = v.as_array() {
                for (i, sub) in a.iter().enumerate() {
                    walk(doc, sub, &format!("{at}/{i}"), checked);
                }
            }
            return;
        };
        if let Some(s) = o.get("schema") {
            let mut examples: Vec<Value> = o.get("example").cloned().into_iter().collect();
            for ex in o
                .get("examples")
                .and_then(Value::as_object)
                .into_iter()
                .flatten()
            {
                examples.push(ex.1["value"].clone());
            }
            for ex in examples {
                validate(doc, s, &ex).unwrap_or_else(|e| panic!("an example at {at}: {e}\n{ex}"));
                *checked += 1;
            }
        }
        for (k, sub) in o {
            walk(doc, sub, &format!("{at}/{k}"), checked);
        }
    }
    let doc = doc();
    let mut checked = 0;
    for (name, s) in doc["components"]["schemas"].as_object().unwrap() {
        for ex in s
            .get("examples")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            validate(&doc, s, ex).unwrap_or_else(|e| panic!("an example of {name}: {e}\n{ex}"));
            checked += 1;
        }
    }
    walk(&doc, &doc["paths"], "/paths", &mut checked);
    walk(&doc, &doc["webhooks"], "/webhooks", &mut checked);
    walk(
        &doc,
        &doc["components"]["parameters"],
        "/components/parameters",
        &mut checked,
    );
    walk(
        &doc,
        &doc["components"]["headers"],
        "/components/headers",
        &mut checked,
    );
    walk(
        &doc,
        &doc["components"]["responses"],
        "/components/responses",
        &mut checked,
    );
    assert!(checked > 50, "only {checked} examples found");
}

#[test]
fn the_validator_is_not_vacuous() {
    let doc = doc();
    let event = |v: Value| validate(&doc, &schema_ref("ConnectorEvent"), &v);
    assert!(
        event(
            json!({"type": "message", "event_id": "e", "room_id": "r", "sender": "s",
                         "message_id": "m", "content": {"body": "hi"}})
        )
        .is_ok()
    );
    for bad in [
        json!({"type": "sneeze", "event_id": "e", "room_id": "r", "sender": "s"}),
        json!({"type": "message", "event_id": "e", "room_id": "r", "sender": "s",
               "content": {"body": "hi"}}),
        json!({"type": "message", "event_id": "e", "room_id": "r", "sender": "s",
               "message_id": "m", "content": {"body": ""}}),
        json!({"type": "typing", "event_id": "e", "room_id": "r", "sender": "s", "active": "yes"}),
        json!({"type": "typing", "event_id": "e", "room_id": "r", "sender": "s", "active": true,
               "timeout_ms": 4_294_967_296u64}),
        json!({"type": "user_invited", "event_id": "e", "room_id": "r", "sender": "s",
               "target": {"uri": "https://b.example/u/bob"}}),
        json!({"type": "user_invited", "event_id": "e", "room_id": "r", "sender": "s",
               "target": {"uri": "mimi://b.example/u/bob", "legacy_id": "bob"}}),
        json!({"type": "role_changed", "event_id": "e", "room_id": "r", "sender": "s",
               "target": {"legacy_id": "carol"}}),
        json!({"type": "role_changed", "event_id": "e", "room_id": "r", "sender": "s",
               "target": {"legacy_id": "carol"}, "role": -1}),
        json!({"type": "role_changed", "event_id": "e", "room_id": "r", "sender": "s",
               "target": {"legacy_id": "carol"}, "role": 4_294_967_296u64}),
    ] {
        assert!(event(bad.clone()).is_err(), "{bad} should be invalid");
    }
    let command = commands()
        .iter()
        .map(|c| serde_json::to_value(c).unwrap())
        .find(|c| c["type"] == "message")
        .unwrap();
    let mut bad = command.clone();
    bad["mimi_message_id"] = json!("01…");
    assert!(validate(&doc, &schema_ref("BridgeCommand"), &command).is_ok());
    assert!(validate(&doc, &schema_ref("BridgeCommand"), &bad).is_err());
}

/// Every refusal [`mimi_bridge_webhook::check`] can give. Fails to compile when a variant is
/// added: then list it here and document it.
fn inbound_errors() -> Vec<InboundError> {
    let signature = [
        SignatureError::MissingHeader(HEADER_SIGNATURE),
        SignatureError::MalformedTimestamp("yesterday".into()),
        SignatureError::TimestampOutOfRange {
            seconds: 301,
            tolerance: 300,
        },
        SignatureError::MalformedSignature,
        SignatureError::NoValidSignature,
        SignatureError::MalformedId,
    ];
    let mut errors = Vec::new();
    for e in signature {
        let from_a_call = match &e {
            SignatureError::MissingHeader(_)
            | SignatureError::MalformedTimestamp(_)
            | SignatureError::TimestampOutOfRange { .. }
            | SignatureError::MalformedSignature
            | SignatureError::NoValidSignature
            | SignatureError::MalformedId => true,
            // only parsing a configured secret gives this; a call never does
            SignatureError::InvalidSecret(_) => false,
        };
        assert!(from_a_call);
        errors.push(InboundError::Signature(e));
    }
    errors.push(InboundError::Body("missing field `message_id`".into()));
    for e in &errors {
        match e {
            InboundError::Signature(_) | InboundError::Body(_) => {}
        }
    }
    errors
}

#[test]
fn inbound_refusals_are_documented_with_their_status_and_code() {
    let doc = doc();
    let responses = &doc["paths"]["/webhook/v1/events"]["post"]["responses"];
    let codes_at = |status: &str| -> BTreeSet<String> {
        let media = &responses[status]["content"]["application/json"];
        assert_eq!(
            media["schema"]["allOf"][0],
            schema_ref("Error"),
            "{status} answers an Error"
        );
        let codes: BTreeSet<String> = media["schema"]["properties"]["error"]["enum"]
            .as_array()
            .unwrap_or_else(|| panic!("{status} lists its codes"))
            .iter()
            .map(|c| c.as_str().unwrap().to_owned())
            .collect();
        let exemplified: BTreeSet<String> = media["examples"]
            .as_object()
            .unwrap()
            .values()
            .map(|ex| ex["value"]["error"].as_str().unwrap().to_owned())
            .collect();
        assert_eq!(codes, exemplified, "{status}: an example of each code");
        codes
    };
    let mut by_status: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for e in inbound_errors() {
        by_status
            .entry(e.status().to_string())
            .or_default()
            .insert(e.code().to_owned());
    }
    for (status, codes) in &by_status {
        assert_eq!(
            &codes_at(status),
            codes,
            "the codes documented under {status}"
        );
    }
    // what the daemon adds after the checks
    assert_eq!(
        codes_at("409"),
        BTreeSet::from(["replayed".into(), "webhook_id_reused".into()])
    );
    assert_eq!(
        codes_at("503"),
        BTreeSet::from(["store_unavailable".into()])
    );
    assert!(
        responses.get("422").is_none(),
        "refusals by the room come as event_failed"
    );
}

#[test]
fn the_signature_scheme_is_the_one_implemented() {
    let doc = doc();
    let scheme = &doc["components"]["securitySchemes"]["webhookSignature"];
    assert_eq!(scheme["type"], "apiKey");
    assert_eq!(scheme["in"], "header");
    assert_eq!(scheme["name"], HEADER_SIGNATURE);
    let parameters = &doc["components"]["parameters"];
    assert_eq!(parameters["WebhookId"]["name"], HEADER_ID);
    assert_eq!(parameters["WebhookTimestamp"]["name"], HEADER_TIMESTAMP);
    assert_eq!(parameters["WebhookId"]["schema"]["maxLength"], 256);
    assert_eq!(
        DEFAULT_TOLERANCE_SECONDS,
        5 * 60,
        "the document says 5 minutes"
    );

    let example = &scheme["x-signature-example"];
    let secret: WebhookSecret = example["secret"].as_str().unwrap().parse().unwrap();
    let id = example["webhook-id"].as_str().unwrap();
    let timestamp = example["webhook-timestamp"].as_i64().unwrap();
    let body = example["body"].as_str().unwrap().as_bytes();
    let signature = example["webhook-signature"].as_str().unwrap();
    assert_eq!(secret.sign(id, timestamp, body), signature);
    let description = scheme["description"].as_str().unwrap();
    for part in [example["secret"].as_str().unwrap(), id, signature] {
        assert!(description.contains(part), "the description shows {part}");
    }
    let verified = Verifier::new(vec![secret]).verify(
        Some(id),
        Some(&timestamp.to_string()),
        Some(&format!("v1a,ignored {signature}")),
        body,
        timestamp,
    );
    assert_eq!(verified, Ok(id));

    // both directions are signed
    let signed = json!([{"webhookSignature": []}]);
    assert_eq!(
        doc["paths"]["/webhook/v1/events"]["post"]["security"],
        signed
    );
    assert_eq!(doc["webhooks"]["command"]["post"]["security"], signed);
}

#[test]
fn the_webhook_documents_retries_as_the_sender_does_them() {
    let doc = doc();
    let responses = doc["webhooks"]["command"]["post"]["responses"]
        .as_object()
        .unwrap();
    let documented: BTreeSet<&str> = responses.keys().map(String::as_str).collect();
    assert_eq!(
        documented,
        BTreeSet::from(["2XX", "3XX", "408", "429", "4XX", "5XX"])
    );
    assert_eq!(
        responses["2XX"]["content"]["application/json"]["schema"],
        schema_ref("Delivery")
    );
    let body = &doc["webhooks"]["command"]["post"]["requestBody"]["content"]["application/json"];
    assert_eq!(body["schema"], schema_ref("BridgeCommand"));
    let inbound =
        &doc["paths"]["/webhook/v1/events"]["post"]["requestBody"]["content"]["application/json"];
    assert_eq!(inbound["schema"], schema_ref("ConnectorEvent"));
}
