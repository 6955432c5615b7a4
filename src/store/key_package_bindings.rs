//! Table `key_package_bindings`: key material that passed through this daemon, by KeyPackageRef:
//! which provider served it and for which user. The hub admits another provider's client into a
//! room only with a KeyPackage served for that client's user by that user's provider.

use sqlx::{AnyExecutor, Row};

use super::{StoreError, now_ms};

/// Who a KeyPackage was served for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Binding {
    /// The provider that answered the key material request.
    pub served_by: String,
    /// The user the key material was requested for.
    pub user_uri: String,
}

/// Records a binding; the first one recorded for a reference stays.
pub async fn record<'e>(
    db: impl AnyExecutor<'e>,
    kp_ref: &[u8],
    binding: &Binding,
) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO key_package_bindings (kp_ref, served_by, user_uri, recorded_at_ms) \
         VALUES ($1, $2, $3, $4) ON CONFLICT (kp_ref) DO NOTHING",
    )
    .bind(kp_ref)
    .bind(&binding.served_by)
    .bind(&binding.user_uri)
    .bind(now_ms())
    .execute(db)
    .await?;
    Ok(())
}

pub async fn get<'e>(
    db: impl AnyExecutor<'e>,
    kp_ref: &[u8],
) -> Result<Option<Binding>, StoreError> {
    let row = sqlx::query("SELECT served_by, user_uri FROM key_package_bindings WHERE kp_ref = $1")
        .bind(kp_ref)
        .fetch_optional(db)
        .await?;
    row.map(|r| {
        Ok(Binding {
            served_by: r.try_get("served_by")?,
            user_uri: r.try_get("user_uri")?,
        })
    })
    .transpose()
    .map_err(|e: sqlx::Error| e.into())
}
