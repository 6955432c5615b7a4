//! Discovery (protocol-06 §5.1): `GET /.well-known/mimi-protocol-directory` returns a JSON
//! object of URL templates, one per endpoint.

use serde::{Deserialize, Serialize};

use crate::uri::ProviderId;

/// The endpoints of the directory, with the placeholder each template carries.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Endpoint {
    KeyMaterial,
    Update,
    Notify,
    SubmitMessage,
    GroupInfo,
    RequestConsent,
    UpdateConsent,
    IdentifierQuery,
    ReportAbuse,
}

impl Endpoint {
    pub const ALL: [Endpoint; 9] = [
        Endpoint::KeyMaterial,
        Endpoint::Update,
        Endpoint::Notify,
        Endpoint::SubmitMessage,
        Endpoint::GroupInfo,
        Endpoint::RequestConsent,
        Endpoint::UpdateConsent,
        Endpoint::IdentifierQuery,
        Endpoint::ReportAbuse,
    ];

    /// The directory key and the path this daemon serves it at (after `/mimi/v1`).
    pub fn name(self) -> &'static str {
        match self {
            Endpoint::KeyMaterial => "keyMaterial",
            Endpoint::Update => "update",
            Endpoint::Notify => "notify",
            Endpoint::SubmitMessage => "submitMessage",
            Endpoint::GroupInfo => "groupInfo",
            Endpoint::RequestConsent => "requestConsent",
            Endpoint::UpdateConsent => "updateConsent",
            Endpoint::IdentifierQuery => "identifierQuery",
            Endpoint::ReportAbuse => "reportAbuse",
        }
    }

    /// The template placeholder. The consent endpoints take domains, as the section text of
    /// protocol-06 §5.7 says (its directory example names users there).
    pub fn placeholder(self) -> &'static str {
        match self {
            Endpoint::KeyMaterial => "{targetUser}",
            Endpoint::RequestConsent => "{targetDomain}",
            Endpoint::UpdateConsent => "{requesterDomain}",
            Endpoint::IdentifierQuery => "{domain}",
            _ => "{roomId}",
        }
    }
}

/// A peer's directory document, read leniently: every key is optional (a missing endpoint
/// fails only the calls to it, with an error naming it), keys this daemon does not know are
/// ignored, and a template may name its placeholder as it likes (`{roomId}`, `{room}`, …) or
/// have none (the parameter is then added as the last path segment). This daemon's own
/// directory has every key with the placeholders of protocol-06 §5.1.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Directory {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key_material: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub update: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub notify: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub submit_message: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group_info: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_consent: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub update_consent: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub identifier_query: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub report_abuse: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub proxy_download: Option<String>,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum DirectoryError {
    #[error("directory entry {endpoint} is `{template}`: {reason}")]
    BadTemplate {
        endpoint: &'static str,
        template: String,
        reason: &'static str,
    },
    #[error("the directory has no {endpoint} entry: this provider does not offer it")]
    Missing { endpoint: &'static str },
}

/// What is percent-encoded in a path parameter: everything but RFC 3986's unreserved
/// characters (so `a.example` stays `a.example`, as peers expect).
const PATH_PARAMETER: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

impl Directory {
    /// This daemon's directory: every endpoint under `<base>/mimi/v1/`.
    pub fn for_base(base: &str) -> Directory {
        let base = base.trim_end_matches('/');
        let t = |e: Endpoint| Some(format!("{base}/mimi/v1/{}/{}", e.name(), e.placeholder()));
        Directory {
            key_material: t(Endpoint::KeyMaterial),
            update: t(Endpoint::Update),
            notify: t(Endpoint::Notify),
            submit_message: t(Endpoint::SubmitMessage),
            group_info: t(Endpoint::GroupInfo),
            request_consent: t(Endpoint::RequestConsent),
            update_consent: t(Endpoint::UpdateConsent),
            identifier_query: t(Endpoint::IdentifierQuery),
            report_abuse: t(Endpoint::ReportAbuse),
            proxy_download: None,
        }
    }

    pub fn template(&self, endpoint: Endpoint) -> Option<&str> {
        match endpoint {
            Endpoint::KeyMaterial => &self.key_material,
            Endpoint::Update => &self.update,
            Endpoint::Notify => &self.notify,
            Endpoint::SubmitMessage => &self.submit_message,
            Endpoint::GroupInfo => &self.group_info,
            Endpoint::RequestConsent => &self.request_consent,
            Endpoint::UpdateConsent => &self.update_consent,
            Endpoint::IdentifierQuery => &self.identifier_query,
            Endpoint::ReportAbuse => &self.report_abuse,
        }
        .as_deref()
    }

    /// Checks the entries of a directory fetched from a peer: each template present is an
    /// https URL on the peer's own host (any port) with at most one placeholder. An entry
    /// that fails is dropped (calls to it fail, naming why); the others stay usable.
    /// Returns what was dropped.
    pub fn check(&mut self, peer: &ProviderId) -> Vec<DirectoryError> {
        let mut dropped = Vec::new();
        for endpoint in Endpoint::ALL {
            let Some(template) = self.template(endpoint) else {
                continue;
            };
            if let Err(e) = check_template(endpoint, template, peer) {
                dropped.push(e);
                self.clear(endpoint);
            }
        }
        dropped
    }

    fn clear(&mut self, endpoint: Endpoint) {
        let entry = match endpoint {
            Endpoint::KeyMaterial => &mut self.key_material,
            Endpoint::Update => &mut self.update,
            Endpoint::Notify => &mut self.notify,
            Endpoint::SubmitMessage => &mut self.submit_message,
            Endpoint::GroupInfo => &mut self.group_info,
            Endpoint::RequestConsent => &mut self.request_consent,
            Endpoint::UpdateConsent => &mut self.update_consent,
            Endpoint::IdentifierQuery => &mut self.identifier_query,
            Endpoint::ReportAbuse => &mut self.report_abuse,
        };
        *entry = None;
    }

    /// The URL of an endpoint, with its path parameter percent-encoded into the placeholder
    /// (whatever its name), or added as the last path segment when the template has none.
    pub fn url(&self, endpoint: Endpoint, param: &str) -> Result<String, DirectoryError> {
        let template = self.template(endpoint).ok_or(DirectoryError::Missing {
            endpoint: endpoint.name(),
        })?;
        let encoded = percent_encoding::utf8_percent_encode(param, PATH_PARAMETER).to_string();
        Ok(match placeholder(template) {
            Some((start, end)) => format!("{}{encoded}{}", &template[..start], &template[end..]),
            None => format!("{}/{encoded}", template.trim_end_matches('/')),
        })
    }
}

/// Where the template's placeholder (`{…}`) is, if it has one.
fn placeholder(template: &str) -> Option<(usize, usize)> {
    let start = template.find('{')?;
    let end = start + template[start..].find('}')? + 1;
    Some((start, end))
}

fn check_template(
    endpoint: Endpoint,
    template: &str,
    peer: &ProviderId,
) -> Result<(), DirectoryError> {
    let bad = |reason| DirectoryError::BadTemplate {
        endpoint: endpoint.name(),
        template: template.to_string(),
        reason,
    };
    let Some(rest) = template.strip_prefix("https://") else {
        return Err(bad("not an https URL"));
    };
    let host = rest.split(['/', ':', '?']).next().unwrap_or("");
    if !host.eq_ignore_ascii_case(peer.domain()) {
        return Err(bad("not on the provider's own host"));
    }
    if template.matches('{').count() > 1 {
        return Err(bad("carries more than one placeholder"));
    }
    if template.contains('{') && placeholder(template).is_none() {
        return Err(bad("has an unclosed placeholder"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn b() -> ProviderId {
        ProviderId::new("b.example").unwrap()
    }

    #[test]
    fn our_directory_is_valid_and_serializes_with_the_draft_keys() {
        let mut d = Directory::for_base("https://b.example:9449/");
        assert!(d.check(&b()).is_empty());
        let json = serde_json::to_value(&d).unwrap();
        assert_eq!(
            json["keyMaterial"],
            "https://b.example:9449/mimi/v1/keyMaterial/{targetUser}"
        );
        assert_eq!(
            json["submitMessage"],
            "https://b.example:9449/mimi/v1/submitMessage/{roomId}"
        );
        assert!(json.get("proxyDownload").is_none());
        let back: Directory = serde_json::from_value(json).unwrap();
        assert_eq!(back, d);
    }

    #[test]
    fn urls_percent_encode_the_parameter_but_not_unreserved_characters() {
        let d = Directory::for_base("https://b.example");
        assert_eq!(
            d.url(Endpoint::Notify, "mimi://a.example/r/club house")
                .unwrap(),
            "https://b.example/mimi/v1/notify/mimi%3A%2F%2Fa.example%2Fr%2Fclub%20house"
        );
        assert_eq!(
            d.url(Endpoint::RequestConsent, "a-b_c~d.example").unwrap(),
            "https://b.example/mimi/v1/requestConsent/a-b_c~d.example"
        );
    }

    #[test]
    fn a_peer_directory_entry_pointing_elsewhere_is_dropped_alone() {
        let mut d = Directory::for_base("https://b.example");
        d.notify = Some("https://evil.example/notify/{roomId}".into());
        d.update = Some("http://b.example/update/{roomId}".into());
        d.group_info = Some("https://b.example/groupInfo/{a}/{b}".into());
        let dropped = d.check(&b());
        assert_eq!(dropped.len(), 3, "{dropped:?}");
        let text: Vec<String> = dropped.iter().map(ToString::to_string).collect();
        assert!(text[0].contains("https"), "{text:?}");
        assert!(text[1].contains("own host"), "{text:?}");
        assert!(text[2].contains("more than one placeholder"), "{text:?}");
        assert_eq!(
            d.url(Endpoint::Notify, "x").unwrap_err(),
            DirectoryError::Missing { endpoint: "notify" }
        );
        // the rest still works
        assert!(d.url(Endpoint::SubmitMessage, "x").is_ok());
    }

    #[test]
    fn a_directory_with_missing_keys_other_placeholders_and_unknown_keys_is_read() {
        let sample = r#"{
          "keyMaterial": "https://b.example:8443/v1/keyMaterial/{user}",
          "update": "https://b.example/v1/update",
          "somethingNew": "https://b.example/v1/new/{x}"
        }"#;
        let mut d: Directory = serde_json::from_str(sample).unwrap();
        assert!(d.check(&b()).is_empty());
        assert_eq!(
            d.url(Endpoint::KeyMaterial, "mimi://b.example/u/bob")
                .unwrap(),
            "https://b.example:8443/v1/keyMaterial/mimi%3A%2F%2Fb.example%2Fu%2Fbob"
        );
        assert_eq!(
            d.url(Endpoint::Update, "r").unwrap(),
            "https://b.example/v1/update/r"
        );
        let missing = d.url(Endpoint::GroupInfo, "r").unwrap_err();
        assert_eq!(
            missing.to_string(),
            "the directory has no groupInfo entry: this provider does not offer it"
        );
    }

    #[test]
    fn the_drafts_sample_parses_apart_from_its_typos() {
        // protocol-06 §5.1, with its missing `/` and `:` fixed.
        let sample = r#"{
          "keyMaterial": "https://mimi.example.com/v1/keyMaterial/{targetUser}",
          "update": "https://mimi.example.com/v1/update/{roomId}",
          "notify": "https://mimi.example.com/v1/notify/{roomId}",
          "submitMessage": "https://mimi.example.com/v1/submitMessage/{roomId}",
          "groupInfo": "https://mimi.example.com/v1/groupInfo/{roomId}",
          "requestConsent": "https://mimi.example.com/v1/requestConsent/{targetDomain}",
          "updateConsent": "https://mimi.example.com/v1/updateConsent/{requesterDomain}",
          "identifierQuery": "https://mimi.example.com/v1/identifierQuery/{domain}",
          "reportAbuse": "https://mimi.example.com/v1/reportAbuse/{roomId}",
          "proxyDownload": "https://mimi.example.com/v1/proxyDownload/{downloadUrl}"
        }"#;
        let mut d: Directory = serde_json::from_str(sample).unwrap();
        assert!(
            d.check(&ProviderId::new("mimi.example.com").unwrap())
                .is_empty()
        );
        assert!(d.proxy_download.is_some());
    }
}
