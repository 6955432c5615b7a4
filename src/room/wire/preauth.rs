//! The preauthorization list component (room-policy-03, "Preauthorized users").

use tls_codec::{TlsDeserialize, TlsSerialize, TlsSize, VLBytes};

use super::WireStruct;
use super::roles::Role;

/// `struct { CredentialType credential_type; opaque id<V>; } ClaimId;`
#[derive(Clone, Debug, PartialEq, Eq, Hash, TlsSerialize, TlsDeserialize, TlsSize)]
pub struct ClaimId {
    /// The MLS CredentialType the claim comes from (X.509, JWT, CWT…).
    pub credential_type: u16,
    /// An X.509 OID, a JWT claim name or a CWT key.
    pub id: VLBytes,
}

/// `struct { ClaimId claim_id; opaque claim_value<V>; } Claim;`
#[derive(Clone, Debug, PartialEq, Eq, Hash, TlsSerialize, TlsDeserialize, TlsSize)]
pub struct Claim {
    pub claim_id: ClaimId,
    pub claim_value: VLBytes,
}

/// `struct { Claim claimset<V>; Role target_role; } PreAuthRoleEntry;`
#[derive(Clone, Debug, PartialEq, Eq, Hash, TlsSerialize, TlsDeserialize, TlsSize)]
pub struct PreAuthRoleEntry {
    pub claimset: Vec<Claim>,
    pub target_role: Role,
}

/// `struct { PreAuthRoleEntry preauthorized_entries<V>; } PreAuthData;` — the first full match wins.
#[derive(Clone, Debug, Default, PartialEq, Eq, TlsSerialize, TlsDeserialize, TlsSize)]
pub struct PreAuthData {
    pub preauthorized_entries: Vec<PreAuthRoleEntry>,
}

impl WireStruct for PreAuthData {
    const NAME: &'static str = "PreAuthData";

    fn check(&self) -> Result<(), String> {
        for (i, e) in self.preauthorized_entries.iter().enumerate() {
            e.target_role
                .check(&format!("preauthorized_entries[{i}].target_role"))?;
            if e.target_role.role_index == 1 {
                return Err(format!(
                    "preauthorized_entries[{i}] targets role 1 (banned)"
                ));
            }
        }
        Ok(())
    }
}
