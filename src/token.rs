//! Session tokens for `ferrisession/sessions`: `<id>.<secret>`, both drawn from the OS CSPRNG,
//! of which only a SHA-256 hash of the secret is ever stored. Checking a secret compares hashes
//! in constant time, and a stored hash that does not decode costs the same compare.

use aes_gcm::aead::rand_core::RngCore;
use aes_gcm::aead::OsRng;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::error::{ErrorKind, StoreError, StoreResult};

/// Random bytes in an id and in a secret: 160 bits each (27 base64url characters).
pub const RANDOM_BYTES: usize = 20;
/// The length of an id and of a secret in a token.
pub const TEXT_LEN: usize = 27;

/// A new token's parts: the id (also the key), the secret (only ever in the token) and the
/// secret's hash (what is stored).
pub struct Minted {
    pub id: String,
    pub secret: String,
    pub secret_hash: String,
}

fn random_text() -> StoreResult<String> {
    let mut bytes = [0u8; RANDOM_BYTES];
    OsRng.try_fill_bytes(&mut bytes).map_err(|e| {
        StoreError::new(
            ErrorKind::Internal,
            format!("the OS random source failed: {e}"),
        )
    })?;
    Ok(URL_SAFE_NO_PAD.encode(bytes))
}

pub fn mint() -> StoreResult<Minted> {
    let id = random_text()?;
    let secret = random_text()?;
    let secret_hash = hash_secret(&secret);
    Ok(Minted {
        id,
        secret,
        secret_hash,
    })
}

/// `base64url(SHA-256(secret))`.
pub fn hash_secret(secret: &str) -> String {
    URL_SAFE_NO_PAD.encode(Sha256::digest(secret.as_bytes()))
}

/// Whether `secret` hashes to `stored_hash`. Always one SHA-256 and one constant-time compare
/// of 32 bytes, whatever the inputs, so timing does not tell a wrong secret from a wrong id or
/// a damaged record.
pub fn secret_matches(secret: &str, stored_hash: &str) -> bool {
    let computed: [u8; 32] = Sha256::digest(secret.as_bytes()).into();
    let mut stored = [0u8; 32];
    let decoded = URL_SAFE_NO_PAD
        .decode_slice(stored_hash.as_bytes(), &mut stored)
        .is_ok_and(|n| n == 32);
    let equal: bool = computed.ct_eq(&stored).into();
    equal & decoded
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn minted_tokens_are_random_and_only_their_hash_matches() {
        let a = mint().unwrap();
        let b = mint().unwrap();
        assert_eq!(a.id.len(), TEXT_LEN);
        assert_eq!(a.secret.len(), TEXT_LEN);
        assert_ne!(a.id, b.id);
        assert_ne!(a.secret, b.secret);
        assert!(!a.secret_hash.contains(&a.secret));
        assert!(secret_matches(&a.secret, &a.secret_hash));
        assert!(!secret_matches(&b.secret, &a.secret_hash));
        assert!(!secret_matches(&a.secret, "not base64url!"));
        assert!(!secret_matches(&a.secret, ""));
        // A hash of the right length but the wrong bytes.
        assert!(!secret_matches(&a.secret, &hash_secret("other")));
    }
}
