//! What the connector needs to know about its homeserver, and the registration it generates.

use ruma::api::appservice::{Namespace, Namespaces, Registration, RegistrationInit};

use crate::ghost::GhostNames;

/// The connector's settings (the daemon's `[matrix]` section).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MatrixSettings {
    /// The client-server API base URL of the homeserver, e.g. `http://127.0.0.1:8008`.
    pub homeserver_url: String,
    /// The homeserver's server name (the part after `:` in user ids).
    pub server_name: String,
    /// The appservice id in the registration.
    pub appservice_id: String,
    /// The URL the homeserver reaches this bridge at (its HTTP listener).
    pub appservice_url: String,
    /// The token the bridge uses towards the homeserver.
    pub as_token: String,
    /// The token the homeserver uses towards the bridge.
    pub hs_token: String,
    /// The bridge bot's localpart.
    pub bot_localpart: String,
    /// The prefix of ghost localparts and portal aliases.
    pub prefix: String,
}

impl MatrixSettings {
    pub fn ghost_names(&self) -> GhostNames {
        GhostNames::new(&self.prefix, &self.server_name)
    }

    pub fn bot_user_id(&self) -> String {
        format!("@{}:{}", self.bot_localpart, self.server_name)
    }

    /// The appservice registration for the homeserver: exclusive namespaces for the ghosts and
    /// the portal aliases, the bot as sender, no rate limits.
    pub fn registration(&self) -> Registration {
        let names = self.ghost_names();
        let mut namespaces = Namespaces::new();
        namespaces.users = vec![Namespace::new(true, names.namespace_regex('@'))];
        namespaces.aliases = vec![Namespace::new(true, names.namespace_regex('#'))];
        RegistrationInit {
            id: self.appservice_id.clone(),
            url: Some(self.appservice_url.clone()),
            as_token: self.as_token.clone(),
            hs_token: self.hs_token.clone(),
            sender_localpart: self.bot_localpart.clone(),
            namespaces,
            rate_limited: Some(false),
            protocols: None,
        }
        .into()
    }

    /// The registration as a file for the homeserver (JSON, which YAML readers take as it is).
    pub fn registration_file(&self) -> String {
        serde_json::to_string_pretty(&self.registration()).unwrap_or_default() + "\n"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_registration_claims_the_ghost_and_alias_namespaces() {
        let s = MatrixSettings {
            homeserver_url: "http://127.0.0.1:8008".into(),
            server_name: "hs.example".into(),
            appservice_id: "mimi-bridge".into(),
            appservice_url: "http://127.0.0.1:8448".into(),
            as_token: "a".repeat(32),
            hs_token: "h".repeat(32),
            bot_localpart: "mimibot".into(),
            prefix: "mimi_".into(),
        };
        let json: serde_json::Value = serde_json::from_str(&s.registration_file()).unwrap();
        assert_eq!(json["id"], "mimi-bridge");
        assert_eq!(json["url"], "http://127.0.0.1:8448");
        assert_eq!(json["sender_localpart"], "mimibot");
        assert_eq!(json["rate_limited"], false);
        assert_eq!(
            json["namespaces"]["users"][0]["regex"],
            "@mimi_.*:hs\\.example"
        );
        assert_eq!(json["namespaces"]["users"][0]["exclusive"], true);
        assert_eq!(
            json["namespaces"]["aliases"][0]["regex"],
            "#mimi_.*:hs\\.example"
        );
    }
}
