//! The openmls storage of one proxy client, over the project's store.
//!
//! openmls writes through a synchronous `StorageProvider` and keys it by group id only, so two
//! clients in one group cannot share it. Each proxy client therefore gets a namespace, and each
//! operation runs on a [`WorkingSet`]: openmls' `MemoryStorage` holding that namespace, loaded
//! from the store. After the MLS step, [`WorkingSet::flush`] writes exactly the rows that changed
//! inside the caller's database transaction — together with whatever else the operation
//! produces (outbox rows, room log, room state). If the step or the transaction fails, the
//! working set is dropped and the store still holds the state before the operation, so the
//! operation can be retried.
//!
//! Secrets are sealed under the state key. Ratchet trees are public and large (about 1 KiB per
//! member), so they are stored once in `mls_blobs`, addressed by hash, and shared by every
//! local client at the same epoch.

use std::collections::HashMap;

use openmls_memory_storage::MemoryStorage;
use openmls_rust_crypto::RustCrypto;
use openmls_traits::OpenMlsProvider;
use sqlx::AnyConnection;

use super::error::MlsError;
use super::sealing::StateKey;
use crate::store::{mls_blobs, mls_kv};

/// Storage keys that start with this label hold a public ratchet tree.
const TREE_LABEL: &[u8] = b"Tree";

/// Message secrets change with every message sent or received: kept uncompressed so the
/// message path pays no compression.
const MESSAGE_SECRETS_LABEL: &[u8] = b"MessageSecrets";

/// Values at least this long (other than message secrets) are deflated before sealing:
/// openmls writes JSON with byte strings as number arrays, which shrinks about threefold,
/// and most of a dormant proxy client's state (its key packages) is written once.
const COMPRESS_FROM: usize = 256;

/// Sealed plaintexts start with a format byte.
const RAW: u8 = 0;
const DEFLATE: u8 = 1;

/// Largest value a sealed row may inflate to.
const MAX_VALUE: usize = 256 << 20;

fn pack(key: &[u8], value: &[u8]) -> Vec<u8> {
    if value.len() >= COMPRESS_FROM && !key.starts_with(MESSAGE_SECRETS_LABEL) {
        let mut out = vec![DEFLATE];
        out.extend_from_slice(&miniz_oxide::deflate::compress_to_vec(value, 1));
        out
    } else {
        let mut out = Vec::with_capacity(value.len() + 1);
        out.push(RAW);
        out.extend_from_slice(value);
        out
    }
}

fn unpack(namespace: &str, key: &[u8], packed: Vec<u8>) -> Result<Vec<u8>, MlsError> {
    let corrupt = |what: String| {
        MlsError::Corrupt(format!(
            "client {namespace}, key {}: {what}",
            describe_key(key)
        ))
    };
    match packed.split_first() {
        Some((&RAW, rest)) => Ok(rest.to_vec()),
        Some((&DEFLATE, rest)) => {
            miniz_oxide::inflate::decompress_to_vec_with_limit(rest, MAX_VALUE)
                .map_err(|e| corrupt(format!("does not inflate: {e:?}")))
        }
        Some((other, _)) => Err(corrupt(format!("unknown value format {other}"))),
        None => Err(corrupt("empty value".into())),
    }
}

/// An `OpenMlsProvider` whose storage is one client's working set.
#[derive(Default)]
pub struct ProxyProvider {
    crypto: RustCrypto,
    storage: MemoryStorage,
}

impl OpenMlsProvider for ProxyProvider {
    type CryptoProvider = RustCrypto;
    type RandProvider = RustCrypto;
    type StorageProvider = MemoryStorage;

    fn storage(&self) -> &Self::StorageProvider {
        &self.storage
    }

    fn crypto(&self) -> &Self::CryptoProvider {
        &self.crypto
    }

    fn rand(&self) -> &Self::RandProvider {
        &self.crypto
    }
}

/// One client's openmls storage, with what the store holds for it.
pub struct WorkingSet {
    namespace: String,
    provider: ProxyProvider,
    /// The values as the store holds them (after the last successful flush).
    persisted: HashMap<Vec<u8>, Vec<u8>>,
}

impl WorkingSet {
    /// A namespace with nothing stored yet.
    pub fn empty(namespace: impl Into<String>) -> WorkingSet {
        WorkingSet {
            namespace: namespace.into(),
            provider: ProxyProvider::default(),
            persisted: HashMap::new(),
        }
    }

    /// Loads a namespace from the store.
    pub async fn load(
        conn: &mut AnyConnection,
        namespace: &str,
        key: &StateKey,
    ) -> Result<WorkingSet, MlsError> {
        let rows = mls_kv::load(conn, namespace).await?;
        let mut values = HashMap::with_capacity(rows.len());
        for row in rows {
            let value = match (row.sealed, row.public) {
                (Some(sealed), _) => {
                    let packed = key.open(&aad(namespace, &row.key), &sealed, || {
                        format!("client {namespace}, key {}", describe_key(&row.key))
                    })?;
                    unpack(namespace, &row.key, packed)?
                }
                (None, Some(public)) => public,
                (None, None) => {
                    return Err(MlsError::Corrupt(format!(
                        "client {namespace}: row {} references a missing blob",
                        describe_key(&row.key)
                    )));
                }
            };
            values.insert(row.key, value);
        }
        let ws = WorkingSet {
            namespace: namespace.to_string(),
            provider: ProxyProvider::default(),
            persisted: values.clone(),
        };
        *ws.provider.storage.values.write().map_err(poisoned)? = values;
        Ok(ws)
    }

    /// Forgets every value (they are deleted from the store at the next flush).
    pub fn clear(&self) -> Result<(), MlsError> {
        self.provider
            .storage
            .values
            .write()
            .map_err(poisoned)?
            .clear();
        Ok(())
    }

    pub fn namespace(&self) -> &str {
        &self.namespace
    }

    pub fn provider(&self) -> &ProxyProvider {
        &self.provider
    }

    /// Whether openmls changed anything since the last flush.
    pub fn is_dirty(&self) -> Result<bool, MlsError> {
        let values = self.provider.storage.values.read().map_err(poisoned)?;
        Ok(values.len() != self.persisted.len()
            || values.iter().any(|(k, v)| self.persisted.get(k) != Some(v)))
    }

    /// Writes the changed rows inside the caller's transaction. Call
    /// [`WorkingSet::mark_persisted`] once that transaction has committed.
    pub async fn flush(
        &self,
        tx: &mut AnyConnection,
        key: &StateKey,
    ) -> Result<FlushStats, MlsError> {
        let (changed, deleted) = {
            let values = self.provider.storage.values.read().map_err(poisoned)?;
            let changed: Vec<(Vec<u8>, Vec<u8>)> = values
                .iter()
                .filter(|(k, v)| self.persisted.get(*k) != Some(*v))
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect();
            let deleted: Vec<Vec<u8>> = self
                .persisted
                .keys()
                .filter(|k| !values.contains_key(*k))
                .cloned()
                .collect();
            (changed, deleted)
        };
        let mut stats = FlushStats::default();
        let mut released = Vec::new();
        for (k, v) in &changed {
            let old = if k.starts_with(TREE_LABEL) {
                let hash = mls_blobs::put(tx, v).await?;
                mls_kv::put(tx, &self.namespace, k, mls_kv::KvValue::Blob(&hash)).await?
            } else {
                let sealed =
                    key.seal(&self.provider.crypto, &aad(&self.namespace, k), &pack(k, v))?;
                mls_kv::put(tx, &self.namespace, k, mls_kv::KvValue::Sealed(&sealed)).await?
            };
            released.extend(old);
            stats.written += 1;
            stats.bytes += v.len();
        }
        for k in &deleted {
            released.extend(mls_kv::delete(tx, &self.namespace, k).await?);
            stats.deleted += 1;
        }
        for hash in released {
            mls_blobs::delete_if_unreferenced(tx, &hash).await?;
        }
        Ok(stats)
    }

    /// Records that the store now holds the working set as it is.
    pub fn mark_persisted(&mut self) -> Result<(), MlsError> {
        self.persisted = self
            .provider
            .storage
            .values
            .read()
            .map_err(poisoned)?
            .clone();
        Ok(())
    }

    /// Total size of the values held, for measurements.
    pub fn value_bytes(&self) -> usize {
        self.persisted.values().map(Vec::len).sum()
    }
}

/// What a flush wrote.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct FlushStats {
    pub written: usize,
    pub deleted: usize,
    pub bytes: usize,
}

fn aad(namespace: &str, key: &[u8]) -> Vec<u8> {
    let mut aad = Vec::with_capacity(namespace.len() + 1 + key.len());
    aad.extend_from_slice(namespace.as_bytes());
    aad.push(0);
    aad.extend_from_slice(key);
    aad
}

/// The label part of a storage key, for error messages.
fn describe_key(key: &[u8]) -> String {
    let label: String = key
        .iter()
        .take_while(|b| b.is_ascii_alphabetic())
        .map(|b| *b as char)
        .collect();
    if label.is_empty() {
        hex::encode(&key[..key.len().min(8)])
    } else {
        label
    }
}

fn poisoned<T>(_: T) -> MlsError {
    MlsError::Corrupt("a working set lock was poisoned by a panic".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_pack_and_unpack() {
        let json: Vec<u8> =
            format!("{:?}", (0..400).map(|i| i % 251).collect::<Vec<u32>>()).into_bytes();
        let packed = pack(b"KeyPackage\x01", &json);
        assert_eq!(packed[0], DEFLATE);
        assert!(
            packed.len() * 2 < json.len(),
            "deflated: {} of {}",
            packed.len(),
            json.len()
        );
        assert_eq!(unpack("ns", b"KeyPackage", packed).unwrap(), json);

        let secrets = pack(b"MessageSecrets\x01", &json);
        assert_eq!(secrets[0], RAW, "message secrets stay raw");
        assert_eq!(unpack("ns", b"MessageSecrets", secrets).unwrap(), json);
        let small = pack(b"GroupState", b"{}");
        assert_eq!(small, b"\x00{}");
    }

    #[test]
    fn bad_packed_values_are_corrupt_not_panics() {
        assert!(unpack("ns", b"k", vec![]).is_err());
        assert!(unpack("ns", b"k", vec![9, 1, 2]).is_err());
        assert!(unpack("ns", b"k", vec![DEFLATE, 0xff, 0xff]).is_err());
    }
}
