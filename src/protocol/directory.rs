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

/// The directory document. `proxyDownload` is optional: this daemon serves no assets yet.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Directory {
    pub key_material: String,
    pub update: String,
    pub notify: String,
    pub submit_message: String,
    pub group_info: String,
    pub request_consent: String,
    pub update_consent: String,
    pub identifier_query: String,
    pub report_abuse: String,
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
}

impl Directory {
    /// This daemon's directory: every endpoint under `<base>/mimi/v1/`.
    pub fn for_base(base: &str) -> Directory {
        let base = base.trim_end_matches('/');
        let t = |e: Endpoint| format!("{base}/mimi/v1/{}/{}", e.name(), e.placeholder());
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

    pub fn template(&self, endpoint: Endpoint) -> &str {
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
    }

    /// Checks a directory fetched from a peer: every template is an https URL on the peer's
    /// own host and carries its placeholder exactly once.
    pub fn check(&self, peer: &ProviderId) -> Result<(), DirectoryError> {
        for endpoint in Endpoint::ALL {
            let template = self.template(endpoint);
            let bad = |reason| DirectoryError::BadTemplate {
                endpoint: endpoint.name(),
                template: template.to_string(),
                reason,
            };
            let Some(rest) = template.strip_prefix("https://") else {
                return Err(bad("not an https URL"));
            };
            let host = rest.split(['/', ':']).next().unwrap_or("");
            if !host.eq_ignore_ascii_case(peer.domain()) {
                return Err(bad("not on the provider's own host"));
            }
            if template.matches(endpoint.placeholder()).count() != 1 {
                return Err(bad("does not carry its placeholder exactly once"));
            }
        }
        Ok(())
    }

    /// The URL of an endpoint, with its path parameter percent-encoded into the placeholder.
    pub fn url(&self, endpoint: Endpoint, param: &str) -> String {
        let encoded =
            percent_encoding::utf8_percent_encode(param, percent_encoding::NON_ALPHANUMERIC)
                .to_string();
        self.template(endpoint)
            .replace(endpoint.placeholder(), &encoded)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn b() -> ProviderId {
        ProviderId::new("b.example").unwrap()
    }

    #[test]
    fn our_directory_is_valid_and_serializes_with_the_draft_keys() {
        let d = Directory::for_base("https://b.example:9449/");
        d.check(&b()).unwrap();
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
    fn urls_percent_encode_the_parameter() {
        let d = Directory::for_base("https://b.example");
        assert_eq!(
            d.url(Endpoint::Notify, "mimi://a.example/r/club house"),
            "https://b.example/mimi/v1/notify/mimi%3A%2F%2Fa%2Eexample%2Fr%2Fclub%20house"
        );
    }

    #[test]
    fn a_peer_directory_pointing_elsewhere_is_refused() {
        let mut d = Directory::for_base("https://b.example");
        d.notify = "https://evil.example/notify/{roomId}".into();
        assert!(d.check(&b()).unwrap_err().to_string().contains("own host"));
        let mut d = Directory::for_base("https://b.example");
        d.update = "http://b.example/update/{roomId}".into();
        assert!(d.check(&b()).unwrap_err().to_string().contains("https"));
        let mut d = Directory::for_base("https://b.example");
        d.group_info = "https://b.example/groupInfo".into();
        assert!(
            d.check(&b())
                .unwrap_err()
                .to_string()
                .contains("placeholder")
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
        let d: Directory = serde_json::from_str(sample).unwrap();
        d.check(&ProviderId::new("mimi.example.com").unwrap())
            .unwrap();
        assert!(d.proxy_download.is_some());
    }
}
