//! The roles list component (room-policy-03, "Roles"). A `RoleUpdate` replaces the whole list.

use tls_codec::{TlsDeserialize, TlsSerialize, TlsSize, VLBytes};

use super::WireStruct;
use super::primitives::check_utf8;

/// `uint16 CapabilityType;` (IANA "MIMI Role Capabilities").
pub type CapabilityType = u16;

/// `struct { uint32 from_role_index; uint32 target_role_indexes<V>; } SingleSourceRoleChangeTargets;`
#[derive(Clone, Debug, PartialEq, Eq, Hash, TlsSerialize, TlsDeserialize, TlsSize)]
pub struct SingleSourceRoleChangeTargets {
    pub from_role_index: u32,
    pub target_role_indexes: Vec<u32>,
}

/// One role definition.
#[derive(Clone, Debug, PartialEq, Eq, Hash, TlsSerialize, TlsDeserialize, TlsSize)]
pub struct Role {
    pub role_index: u32,
    pub role_name: VLBytes,
    pub role_description: VLBytes,
    pub role_capabilities: Vec<CapabilityType>,
    pub minimum_participants_constraint: u32,
    pub maximum_participants_constraint: Option<u32>,
    pub minimum_active_participants_constraint: u32,
    pub maximum_active_participants_constraint: Option<u32>,
    pub authorized_role_changes: Vec<SingleSourceRoleChangeTargets>,
}

impl Role {
    pub fn name(&self) -> &str {
        std::str::from_utf8(self.role_name.as_slice()).unwrap_or("<not UTF-8>")
    }

    pub(crate) fn check(&self, at: &str) -> Result<(), String> {
        check_utf8(&format!("{at}.role_name"), self.role_name.as_slice())?;
        check_utf8(
            &format!("{at}.role_description"),
            self.role_description.as_slice(),
        )?;
        if let Some(max) = self.maximum_participants_constraint
            && max < self.minimum_participants_constraint
        {
            return Err(format!(
                "{at}: maximum_participants_constraint {max} is below the minimum {}",
                self.minimum_participants_constraint
            ));
        }
        if let Some(max) = self.maximum_active_participants_constraint
            && max < self.minimum_active_participants_constraint
        {
            return Err(format!(
                "{at}: maximum_active_participants_constraint {max} is below the minimum {}",
                self.minimum_active_participants_constraint
            ));
        }
        Ok(())
    }
}

/// `struct { Role roles<V>; } RoleData;`
#[derive(Clone, Debug, Default, PartialEq, Eq, TlsSerialize, TlsDeserialize, TlsSize)]
pub struct RoleData {
    pub roles: Vec<Role>,
}

impl RoleData {
    pub fn role(&self, index: u32) -> Option<&Role> {
        self.roles.iter().find(|r| r.role_index == index)
    }
}

impl WireStruct for RoleData {
    const NAME: &'static str = "RoleData";

    fn check(&self) -> Result<(), String> {
        let mut seen = std::collections::HashSet::new();
        for (i, role) in self.roles.iter().enumerate() {
            role.check(&format!("roles[{i}]"))?;
            if !seen.insert(role.role_index) {
                return Err(format!("roles[{i}] repeats role_index {}", role.role_index));
            }
        }
        Ok(())
    }
}
