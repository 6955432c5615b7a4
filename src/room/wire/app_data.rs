//! `AppDataDictionary` and `AppDataUpdate` (draft-ietf-mls-extensions, §4.6–4.7, 16-bit ComponentID).

use tls_codec::{TlsDeserialize, TlsSerialize, TlsSize, VLBytes};

use super::WireStruct;

/// `uint16 ComponentID;` (16 bits since mls-extensions PR #75).
pub type ComponentId = u16;

/// `struct { ComponentID component_id; opaque data<V>; } ComponentData;`
#[derive(Clone, Debug, PartialEq, Eq, Hash, TlsSerialize, TlsDeserialize, TlsSize)]
pub struct ComponentData {
    pub component_id: ComponentId,
    pub data: VLBytes,
}

/// `struct { ComponentData component_data<V>; } AppDataDictionary;` — sorted by id, ids unique.
#[derive(Clone, Debug, Default, PartialEq, Eq, TlsSerialize, TlsDeserialize, TlsSize)]
pub struct AppDataDictionary {
    pub component_data: Vec<ComponentData>,
}

impl AppDataDictionary {
    pub fn get(&self, id: ComponentId) -> Option<&[u8]> {
        self.component_data
            .binary_search_by_key(&id, |c| c.component_id)
            .ok()
            .map(|i| self.component_data[i].data.as_slice())
    }

    /// Inserts or replaces a component, keeping the dictionary sorted.
    pub fn set(&mut self, id: ComponentId, data: Vec<u8>) {
        match self
            .component_data
            .binary_search_by_key(&id, |c| c.component_id)
        {
            Ok(i) => self.component_data[i].data = data.into(),
            Err(i) => self.component_data.insert(
                i,
                ComponentData {
                    component_id: id,
                    data: data.into(),
                },
            ),
        }
    }

    pub fn remove(&mut self, id: ComponentId) -> bool {
        match self
            .component_data
            .binary_search_by_key(&id, |c| c.component_id)
        {
            Ok(i) => {
                self.component_data.remove(i);
                true
            }
            Err(_) => false,
        }
    }
}

impl WireStruct for AppDataDictionary {
    const NAME: &'static str = "AppDataDictionary";

    fn check(&self) -> Result<(), String> {
        for pair in self.component_data.windows(2) {
            if pair[0].component_id >= pair[1].component_id {
                return Err(format!(
                    "component ids must be strictly increasing, found {:#06x} before {:#06x}",
                    pair[0].component_id, pair[1].component_id
                ));
            }
        }
        Ok(())
    }
}

/// `enum { invalid(0), update(1), remove(2), (255) } AppDataUpdateOperation;` with its `select`.
#[derive(Clone, Debug, PartialEq, Eq, TlsSerialize, TlsDeserialize, TlsSize)]
#[repr(u8)]
pub enum AppDataUpdateOperation {
    #[tls_codec(discriminant = 1)]
    Update(VLBytes),
    #[tls_codec(discriminant = 2)]
    Remove,
}

/// `struct { ComponentID component_id; AppDataUpdateOperation op; select (op) {...} } AppDataUpdate;`
#[derive(Clone, Debug, PartialEq, Eq, TlsSerialize, TlsDeserialize, TlsSize)]
pub struct AppDataUpdate {
    pub component_id: ComponentId,
    pub op: AppDataUpdateOperation,
}

impl AppDataUpdate {
    pub fn update(component_id: ComponentId, data: Vec<u8>) -> Self {
        AppDataUpdate {
            component_id,
            op: AppDataUpdateOperation::Update(data.into()),
        }
    }

    pub fn remove(component_id: ComponentId) -> Self {
        AppDataUpdate {
            component_id,
            op: AppDataUpdateOperation::Remove,
        }
    }
}

impl WireStruct for AppDataUpdate {
    const NAME: &'static str = "AppDataUpdate";
}
