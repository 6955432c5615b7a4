//! Sealing of secret MLS state at rest: ChaCha20-Poly1305 under the configured state key.
//!
//! The associated data binds each sealed value to its row (namespace and storage key), so a
//! value copied into another client's row or another key does not open.

use std::path::Path;

use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{ChaCha20Poly1305, Key, Nonce};
use openmls_rust_crypto::RustCrypto;
use openmls_traits::random::OpenMlsRand;

const NONCE_LEN: usize = 12;

/// The 32-byte key that seals MLS secrets in the store.
#[derive(Clone)]
pub struct StateKey {
    cipher: ChaCha20Poly1305,
}

impl std::fmt::Debug for StateKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("StateKey(..)")
    }
}

#[derive(Debug, thiserror::Error)]
pub enum SealError {
    #[error("sealed value for {context} is too short ({len} bytes)")]
    Truncated { context: String, len: usize },
    #[error(
        "sealed value for {context} does not open with the state key (wrong key or tampered row)"
    )]
    Open { context: String },
    #[error("cannot seal a value: {0}")]
    Seal(String),
    #[error("state key file {path}: {reason}")]
    KeyFile { path: String, reason: String },
}

impl StateKey {
    pub fn from_bytes(bytes: [u8; 32]) -> StateKey {
        StateKey {
            cipher: ChaCha20Poly1305::new(&Key::from(bytes)),
        }
    }

    /// Parses 64 hex digits.
    pub fn from_hex(hex_key: &str) -> Result<StateKey, String> {
        let bytes = hex::decode(hex_key.trim()).map_err(|e| format!("not hex: {e}"))?;
        let bytes: [u8; 32] = bytes
            .try_into()
            .map_err(|v: Vec<u8>| format!("expected 32 bytes (64 hex digits), got {}", v.len()))?;
        Ok(StateKey::from_bytes(bytes))
    }

    /// Reads the key file, or creates it with a fresh random key (mode 0600) when missing.
    pub fn load_or_create(path: &Path) -> Result<StateKey, SealError> {
        let err = |reason: String| SealError::KeyFile {
            path: path.display().to_string(),
            reason,
        };
        match std::fs::read_to_string(path) {
            Ok(text) => StateKey::from_hex(&text).map_err(err),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let bytes: [u8; 32] = RustCrypto::default()
                    .random_array()
                    .map_err(|e| err(format!("no randomness: {e:?}")))?;
                if let Some(parent) = path.parent()
                    && !parent.as_os_str().is_empty()
                {
                    std::fs::create_dir_all(parent).map_err(|e| err(e.to_string()))?;
                }
                write_private(path, &hex::encode(bytes)).map_err(|e| err(e.to_string()))?;
                Ok(StateKey::from_bytes(bytes))
            }
            Err(e) => Err(err(e.to_string())),
        }
    }

    /// nonce || ciphertext || tag.
    pub fn seal(
        &self,
        rand: &RustCrypto,
        aad: &[u8],
        plaintext: &[u8],
    ) -> Result<Vec<u8>, SealError> {
        let nonce: [u8; NONCE_LEN] = rand
            .random_array()
            .map_err(|e| SealError::Seal(format!("no randomness: {e:?}")))?;
        let ct = self
            .cipher
            .encrypt(
                &Nonce::from(nonce),
                Payload {
                    msg: plaintext,
                    aad,
                },
            )
            .map_err(|e| SealError::Seal(e.to_string()))?;
        let mut out = Vec::with_capacity(NONCE_LEN + ct.len());
        out.extend_from_slice(&nonce);
        out.extend_from_slice(&ct);
        Ok(out)
    }

    pub fn open(
        &self,
        aad: &[u8],
        sealed: &[u8],
        context: impl Fn() -> String,
    ) -> Result<Vec<u8>, SealError> {
        if sealed.len() < NONCE_LEN + 16 {
            return Err(SealError::Truncated {
                context: context(),
                len: sealed.len(),
            });
        }
        let (nonce, ct) = sealed.split_at(NONCE_LEN);
        let nonce: [u8; NONCE_LEN] = nonce.try_into().unwrap_or([0; NONCE_LEN]);
        self.cipher
            .decrypt(&Nonce::from(nonce), Payload { msg: ct, aad })
            .map_err(|_| SealError::Open { context: context() })
    }
}

#[cfg(unix)]
fn write_private(path: &Path, text: &str) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)?;
    f.write_all(text.as_bytes())?;
    f.sync_all()
}

#[cfg(not(unix))]
fn write_private(path: &Path, text: &str) -> std::io::Result<()> {
    std::fs::write(path, text)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sealed_values_open_only_with_the_same_key_and_row() {
        let rand = RustCrypto::default();
        let key = StateKey::from_bytes([7; 32]);
        let sealed = key.seal(&rand, b"ns\0k", b"secret").unwrap();
        assert_ne!(&sealed[12..], b"secret");
        assert_eq!(
            key.open(b"ns\0k", &sealed, || "row".into()).unwrap(),
            b"secret"
        );
        assert!(matches!(
            key.open(b"other\0k", &sealed, || "row".into()),
            Err(SealError::Open { .. })
        ));
        let other = StateKey::from_bytes([8; 32]);
        assert!(other.open(b"ns\0k", &sealed, || "row".into()).is_err());
        let mut tampered = sealed.clone();
        tampered[20] ^= 1;
        assert!(key.open(b"ns\0k", &tampered, || "row".into()).is_err());
        assert!(matches!(
            key.open(b"ns\0k", &sealed[..10], || "row".into()),
            Err(SealError::Truncated { .. })
        ));
    }

    #[test]
    fn the_key_file_is_created_once_and_reused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("keys/state.key");
        let a = StateKey::load_or_create(&path).unwrap();
        let b = StateKey::load_or_create(&path).unwrap();
        let rand = RustCrypto::default();
        let sealed = a.seal(&rand, b"", b"x").unwrap();
        assert_eq!(b.open(b"", &sealed, String::new).unwrap(), b"x");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
    }

    #[test]
    fn a_bad_key_file_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state.key");
        std::fs::write(&path, "abcd").unwrap();
        let err = StateKey::load_or_create(&path).unwrap_err().to_string();
        assert!(err.contains("expected 32 bytes"), "{err}");
    }
}
