//! Bearer tokens (stored as SHA-256 hashes) and who may see and do what.
//!
//! Roles: `admin` may do everything; a `tenant_admin` of tenant T acts on jobs in
//! T's subtree and manages tokens, quotas and budgets strictly below T; a `user` of
//! tenant T sees and acts on jobs in T's subtree; a `node` token (an agent's) sees
//! no tenant and may only connect to the agent link.

use std::collections::HashMap;
use std::sync::RwLock;

use allot_api::Role;
use sha2::{Digest, Sha256};

use crate::error::{ApiError, ErrorKind};
use crate::store::{Store, TokenRow};

/// Who is asking.
#[derive(Clone, Debug, PartialEq)]
pub struct Principal {
    pub token_id: u64,
    pub role: Role,
    /// The tenant a tenant admin or user belongs to (none for admin).
    pub tenant: Option<String>,
    pub user: String,
}

/// Whether tenant path `path` lies in the subtree rooted at `root`.
pub fn in_subtree(path: &str, root: &str) -> bool {
    path == root || (path.len() > root.len() && path.starts_with(root) && path.as_bytes()[root.len()] == b'/')
}

impl Principal {
    pub fn is_admin(&self) -> bool {
        self.role == Role::Admin
    }

    /// The subtree this principal sees (`None`: everything).
    pub fn scope(&self) -> Option<&str> {
        if self.is_admin() { None } else { Some(self.tenant.as_deref().unwrap_or("\u{0}no-tenant")) }
    }

    /// May see and act on jobs of `tenant`.
    pub fn can_access_tenant(&self, tenant: &str) -> bool {
        match self.scope() {
            None => true,
            Some(root) => in_subtree(tenant, root),
        }
    }

    /// May change quotas, budgets and tokens of `tenant`: admins anywhere, tenant
    /// admins strictly below their tenant.
    pub fn can_manage_tenant(&self, tenant: &str) -> bool {
        match (self.role, &self.tenant) {
            (Role::Admin, _) => true,
            (Role::TenantAdmin, Some(root)) => tenant != root && in_subtree(tenant, root),
            _ => false,
        }
    }

    pub fn require_admin(&self) -> Result<(), ApiError> {
        if self.is_admin() { Ok(()) } else { Err(ApiError::forbidden("admin only")) }
    }

    pub fn require_manager(&self) -> Result<(), ApiError> {
        match self.role {
            Role::Admin | Role::TenantAdmin => Ok(()),
            Role::User | Role::Node => Err(ApiError::forbidden("admins and tenant admins only")),
        }
    }
}

/// A fresh secret: `allot_` and 64 hex digits (32 random bytes).
pub fn new_secret() -> Result<String, ApiError> {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes).map_err(|e| ApiError::new(ErrorKind::Internal, format!("no randomness: {e}")))?;
    Ok(format!("allot_{}", hex::encode(bytes)))
}

/// Hex SHA-256 of a secret, as stored.
pub fn hash_secret(secret: &str) -> String {
    hex::encode(Sha256::digest(secret.as_bytes()))
}

pub fn principal_of(row: &TokenRow) -> Option<Principal> {
    if row.revoked {
        return None;
    }
    Some(Principal { token_id: row.id, role: Role::parse(&row.role)?, tenant: row.tenant.clone(), user: row.user.clone() })
}

/// Token hash to principal, filled on first use; revocation removes the entry.
#[derive(Default)]
pub struct TokenCache {
    map: RwLock<HashMap<String, Principal>>,
}

impl TokenCache {
    /// The principal behind an `Authorization` header value.
    pub async fn authenticate(&self, store: &dyn Store, header: Option<&str>) -> Result<Principal, ApiError> {
        let unauthorized = |m: &str| ApiError::new(ErrorKind::Unauthorized, m);
        let header = header.ok_or_else(|| unauthorized("missing bearer token"))?;
        let secret = header.strip_prefix("Bearer ").ok_or_else(|| unauthorized("authorization must be `Bearer TOKEN`"))?.trim();
        let hash = hash_secret(secret);
        if let Some(p) = self.map.read().unwrap_or_else(|e| e.into_inner()).get(&hash) {
            return Ok(p.clone());
        }
        let row = store.token_by_hash(&hash).await?;
        let p = row.as_ref().and_then(principal_of).ok_or_else(|| unauthorized("unknown or revoked token"))?;
        self.map.write().unwrap_or_else(|e| e.into_inner()).insert(hash, p.clone());
        Ok(p)
    }

    pub fn forget_token(&self, token_id: u64) {
        self.map.write().unwrap_or_else(|e| e.into_inner()).retain(|_, p| p.token_id != token_id);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subtrees_are_by_whole_segments() {
        assert!(in_subtree("a", "a"));
        assert!(in_subtree("a/b", "a"));
        assert!(!in_subtree("ab", "a"));
        assert!(!in_subtree("a", "a/b"));
    }

    #[test]
    fn tenant_admins_manage_strictly_below() {
        let p = Principal { token_id: 1, role: Role::TenantAdmin, tenant: Some("a".into()), user: "x".into() };
        assert!(p.can_manage_tenant("a/b"));
        assert!(!p.can_manage_tenant("a"));
        assert!(!p.can_manage_tenant("b"));
        let u = Principal { role: Role::User, ..p.clone() };
        assert!(!u.can_manage_tenant("a/b"));
        assert!(u.can_access_tenant("a/b") && !u.can_access_tenant("b"));
    }

    #[test]
    fn secrets_hash_stably_and_differ() {
        let a = new_secret().unwrap();
        let b = new_secret().unwrap();
        assert_ne!(a, b);
        assert_eq!(hash_secret(&a), hash_secret(&a));
        assert_eq!(hash_secret(&a).len(), 64);
    }
}
