//! Proxy clients: the MLS identities the bridge holds for legacy users, and their key packages.
//!
//! A proxy client's credential is its MIMI client URI (`mimi://<provider>/d/<user>/<device>`);
//! its signature private key is sealed at rest. Each client keeps a pool of single-use key
//! packages plus one last-resort package, ready for the keyMaterial flow.

use openmls::prelude::tls_codec::{Deserialize as _, Serialize as _};
use openmls::prelude::*;
use openmls_basic_credential::SignatureKeyPair;
use sqlx::AnyConnection;

use super::error::{MlsError, OpenmlsResult};
use super::group_config::{CIPHERSUITE, leaf_capabilities};
use super::sealing::StateKey;
use super::storage::WorkingSet;
use crate::store::key_packages::{self, KeyPackageRecord};
use crate::store::proxy_clients::{self, ProxyClientRecord};
use crate::uri::{ClientUri, UserUri};

/// A loaded proxy client: what it signs with and how it shows in the group.
pub struct ClientIdentity {
    pub client: ClientUri,
    pub user: UserUri,
    pub signer: SignatureKeyPair,
    pub credential: CredentialWithKey,
}

fn aad(client: &ClientUri) -> Vec<u8> {
    format!("proxy-client signature key\0{client}").into_bytes()
}

/// The credential of a client URI.
pub fn credential_for(client: &ClientUri, public: &[u8]) -> CredentialWithKey {
    CredentialWithKey {
        credential: BasicCredential::new(client.as_str().as_bytes().to_vec()).into(),
        signature_key: public.to_vec().into(),
    }
}

/// The client URI a leaf's credential names, or why it names none.
pub fn client_of(credential: &Credential) -> Result<ClientUri, MlsError> {
    let basic = BasicCredential::try_from(credential.clone()).map_err(|e| MlsError::Malformed {
        what: "credential",
        reason: format!("not a basic credential: {e:?}"),
    })?;
    ClientUri::from_bytes(basic.identity()).map_err(|e| MlsError::Malformed {
        what: "credential",
        reason: format!("identity is not a MIMI client URI: {e}"),
    })
}

/// The user a client belongs to. MIMI client URIs of the form `/d/<user>/<device>` name it;
/// the bridge issues only that form.
pub fn user_of(client: &ClientUri) -> Result<UserUri, MlsError> {
    client.user_hint().ok_or_else(|| MlsError::Malformed {
        what: "client URI",
        reason: format!("{client} does not name its user (expected /d/<user>/<device>)"),
    })
}

/// Creates a proxy client with its key package pool, inside the caller's transaction.
/// Returns false (and changes nothing) when the client already exists.
pub async fn create(
    tx: &mut AnyConnection,
    key: &StateKey,
    client: &ClientUri,
    pool_size: usize,
    leaf: &Extensions<LeafNode>,
) -> Result<bool, MlsError> {
    let user = user_of(client)?;
    if proxy_clients::get(&mut *tx, client.as_str())
        .await?
        .is_some()
    {
        return Ok(false);
    }
    let signer = SignatureKeyPair::new(CIPHERSUITE.signature_algorithm())
        .during("signature key generation")?;
    let ws = WorkingSet::empty(client.as_str());
    let keypair = signer
        .tls_serialize_detached()
        .during("signature key encoding")?;
    let sealed = key.seal(ws.provider().crypto(), &aad(client), &keypair)?;
    proxy_clients::insert(
        &mut *tx,
        &ProxyClientRecord {
            client_uri: client.to_string(),
            user_uri: user.to_string(),
            signature_public: signer.public().to_vec(),
            signature_private: sealed,
            created_at_ms: 0,
        },
    )
    .await?;
    let identity = ClientIdentity {
        credential: credential_for(client, signer.public()),
        client: client.clone(),
        user,
        signer,
    };
    let mut ws = ws;
    generate_key_packages(tx, &mut ws, &identity, pool_size, true, leaf).await?;
    ws.flush(tx, key).await?;
    Ok(true)
}

/// Loads a proxy client's identity.
pub async fn load(
    conn: &mut AnyConnection,
    key: &StateKey,
    client: &ClientUri,
) -> Result<ClientIdentity, MlsError> {
    let record = proxy_clients::get(&mut *conn, client.as_str())
        .await?
        .ok_or_else(|| MlsError::UnknownClient(client.to_string()))?;
    let keypair = key.open(&aad(client), &record.signature_private, || {
        format!("signature key of {client}")
    })?;
    let signer = SignatureKeyPair::tls_deserialize_exact(&keypair)
        .map_err(|e| MlsError::Corrupt(format!("signature key of {client}: {e}")))?;
    let user = UserUri::from_bytes(record.user_uri.as_bytes()).map_err(|e| {
        MlsError::Corrupt(format!(
            "proxy client {client} has an invalid user URI: {e}"
        ))
    })?;
    Ok(ClientIdentity {
        credential: credential_for(client, &record.signature_public),
        client: client.clone(),
        user,
        signer,
    })
}

/// Builds `count` single-use key packages (and a last-resort one when asked) into the client's
/// working set and publishes them in `key_packages`.
pub async fn generate_key_packages(
    tx: &mut AnyConnection,
    ws: &mut WorkingSet,
    identity: &ClientIdentity,
    count: usize,
    with_last_resort: bool,
    leaf: &Extensions<LeafNode>,
) -> Result<(), MlsError> {
    let mut plans = vec![false; count];
    if with_last_resort {
        plans.push(true);
    }
    for last_resort in plans {
        let mut builder = KeyPackage::builder()
            .leaf_node_capabilities(leaf_capabilities())
            .leaf_node_extensions(leaf.clone());
        if last_resort {
            builder = builder.mark_as_last_resort();
        }
        let bundle = builder
            .build(
                CIPHERSUITE,
                ws.provider(),
                &identity.signer,
                identity.credential.clone(),
            )
            .during("key package generation")?;
        let kp = bundle.key_package();
        let kp_ref = kp
            .hash_ref(ws.provider().crypto())
            .during("key package reference")?;
        key_packages::insert(
            &mut *tx,
            &KeyPackageRecord {
                kp_ref: kp_ref.as_slice().to_vec(),
                client_uri: identity.client.to_string(),
                key_package: kp.tls_serialize_detached().during("key package encoding")?,
                last_resort,
            },
        )
        .await?;
    }
    Ok(())
}

/// Hands out one key package of a client for use in a room (single use; the last-resort one
/// only when the pool is empty), and refills the pool to `pool_size` in the same transaction.
pub async fn take_key_package(
    tx: &mut AnyConnection,
    key: &StateKey,
    client: &ClientUri,
    pool_size: usize,
    leaf: &Extensions<LeafNode>,
) -> Result<Vec<u8>, MlsError> {
    let kp = key_packages::take(&mut *tx, client.as_str())
        .await?
        .ok_or_else(|| MlsError::NoKeyPackage {
            client: client.to_string(),
        })?;
    let (left, _) = key_packages::available(&mut *tx, client.as_str()).await?;
    let missing = pool_size.saturating_sub(left as usize);
    if missing > pool_size / 2 {
        let identity = load(&mut *tx, key, client).await?;
        let mut ws = WorkingSet::load(&mut *tx, client.as_str(), key).await?;
        generate_key_packages(tx, &mut ws, &identity, missing, false, leaf).await?;
        ws.flush(tx, key).await?;
    }
    Ok(kp.key_package)
}
