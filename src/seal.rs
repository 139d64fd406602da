//! What a leaked dump must not show: session ids (`hashIds`) and session contents
//! (`encryption`). One `Seal` per store, shared by the napi layer (which seals values on their
//! way in and opens them on their way out) and the session operations (which open a value they
//! read themselves, and move a plain key to its hashed name).
//!
//! - A hashed id is `base64url(SHA-256(id))`, 43 characters: the key cannot be replayed as a
//!   cookie.
//! - A sealed value is `fs1$<keyId>$<base64url(nonce ‖ AES-256-GCM ciphertext ‖ tag)>`, with a
//!   fresh random 96-bit nonce per write and the Redis key as associated data, so a value copied
//!   under another key fails to open. The key id in the envelope lets old keys still open what
//!   they wrote while new writes use `current`.

use aes_gcm::aead::{Aead, AeadCore, KeyInit, OsRng, Payload};
use aes_gcm::{Aes256Gcm, Key, Nonce};
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine as _;
use rand_chacha::rand_core::SeedableRng;
use rand_chacha::ChaCha20Rng;
use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::command::{Command, Reply};
use crate::error::{ErrorKind, StoreError, StoreResult};
use crate::request::Request;

const ENVELOPE: &str = "fs1$";
const NONCE_LEN: usize = 12;

/// `hashIds`: off, on, or on while still reading (and moving) keys written before it was on.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum HashIds {
    #[default]
    Off,
    On,
    Migrate,
}

struct Cipher {
    /// `(id, cipher)`, in the order given; `current` indexes it.
    keys: Vec<(String, Aes256Gcm)>,
    current: usize,
    accept_plaintext: bool,
    /// Nonces: ChaCha20 seeded from the OS once, not a system call per write.
    nonces: std::sync::Mutex<ChaCha20Rng>,
}

#[derive(Default)]
pub struct Seal {
    pub hash_ids: HashIds,
    cipher: Option<Cipher>,
}

impl std::fmt::Debug for Seal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the keys.
        f.debug_struct("Seal")
            .field("hash_ids", &self.hash_ids)
            .field(
                "key_ids",
                &self
                    .cipher
                    .as_ref()
                    .map(|c| c.keys.iter().map(|(id, _)| id.as_str()).collect::<Vec<_>>()),
            )
            .finish()
    }
}

fn bad(message: impl Into<String>) -> StoreError {
    StoreError::bad_argument(message)
}

fn bad_data(key: &str, why: &str) -> StoreError {
    StoreError::new(
        ErrorKind::BadData,
        format!("the value stored at {key:?} {why}"),
    )
}

/// A 32-byte key given as base64 (standard or url-safe) or as 64 hex digits.
fn key_bytes(id: &str, v: &Value) -> StoreResult<[u8; 32]> {
    let text = v.as_str().ok_or_else(|| {
        bad(format!(
            "encryption.keys.{id} must be 32 bytes (a Buffer, base64 or hex string)"
        ))
    })?;
    let decoded = if text.len() == 64 && text.bytes().all(|b| b.is_ascii_hexdigit()) {
        (0..32)
            .map(|i| u8::from_str_radix(&text[2 * i..2 * i + 2], 16))
            .collect::<Result<Vec<u8>, _>>()
            .ok()
    } else {
        STANDARD
            .decode(text)
            .or_else(|_| URL_SAFE_NO_PAD.decode(text.trim_end_matches('=')))
            .ok()
    };
    let bytes = decoded.ok_or_else(|| {
        bad(format!(
            "encryption.keys.{id} is neither base64 nor 64 hex digits"
        ))
    })?;
    bytes.try_into().map_err(|b: Vec<u8>| {
        bad(format!(
            "encryption.keys.{id} must be exactly 32 bytes for AES-256-GCM, got {}",
            b.len()
        ))
    })
}

fn valid_key_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= 64
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.'))
}

impl Seal {
    /// From the store options' `hashIds` (`true`, `false` or `"migrate"`) and `encryption`
    /// (`{keys: {id: key}, current, acceptPlaintext}`).
    pub fn from_options(hash_ids: Option<&Value>, encryption: Option<&Value>) -> StoreResult<Seal> {
        let hash_ids = match hash_ids {
            None | Some(Value::Null) | Some(Value::Bool(false)) => HashIds::Off,
            Some(Value::Bool(true)) => HashIds::On,
            Some(Value::String(s)) if s == "migrate" => HashIds::Migrate,
            Some(other) => {
                return Err(bad(format!(
                    "hashIds must be true, false or \"migrate\", got {other}"
                )))
            }
        };
        let cipher = match encryption {
            None | Some(Value::Null) | Some(Value::Bool(false)) => None,
            Some(Value::Object(o)) => {
                let keys = match o.get("keys") {
                    Some(Value::Object(keys)) if !keys.is_empty() => keys,
                    _ => {
                        return Err(bad(
                            "encryption.keys must be an object of key id to 32-byte key",
                        ))
                    }
                };
                let mut parsed = Vec::with_capacity(keys.len());
                for (id, v) in keys {
                    if !valid_key_id(id) {
                        return Err(bad(format!(
                            "encryption key id {id:?} must be 1-64 letters, digits, '_', '-' or '.'"
                        )));
                    }
                    let bytes = key_bytes(id, v)?;
                    parsed.push((
                        id.clone(),
                        Aes256Gcm::new(Key::<Aes256Gcm>::from_slice(&bytes)),
                    ));
                }
                let current_id = match o.get("current") {
                    Some(Value::String(s)) => s.clone(),
                    None | Some(Value::Null) if parsed.len() == 1 => parsed[0].0.clone(),
                    _ => {
                        return Err(bad(
                            "encryption.current must name the key new values are written with",
                        ))
                    }
                };
                let current = parsed
                    .iter()
                    .position(|(id, _)| *id == current_id)
                    .ok_or_else(|| {
                        bad(format!(
                            "encryption.current is {current_id:?}, which is not in encryption.keys"
                        ))
                    })?;
                let accept_plaintext = match o.get("acceptPlaintext") {
                    None | Some(Value::Null) => false,
                    Some(Value::Bool(b)) => *b,
                    Some(other) => {
                        return Err(bad(format!(
                            "encryption.acceptPlaintext must be a boolean, got {other}"
                        )))
                    }
                };
                Some(Cipher {
                    keys: parsed,
                    current,
                    accept_plaintext,
                    nonces: std::sync::Mutex::new(ChaCha20Rng::from_rng(OsRng).map_err(|e| {
                        StoreError::new(
                            ErrorKind::BadArgument,
                            format!("no randomness from the system for nonces: {e}"),
                        )
                    })?),
                })
            }
            Some(other) => {
                return Err(bad(format!(
                    "encryption must be {{keys, current}}, got {other}"
                )))
            }
        };
        Ok(Seal { hash_ids, cipher })
    }

    pub fn encrypts(&self) -> bool {
        self.cipher.is_some()
    }

    /// The id as it appears in keys and indexes: hashed when `hashIds` is on.
    pub fn id<'a>(&self, id: &'a str) -> std::borrow::Cow<'a, str> {
        match self.hash_ids {
            HashIds::Off => std::borrow::Cow::Borrowed(id),
            HashIds::On | HashIds::Migrate => std::borrow::Cow::Owned(hash_id(id)),
        }
    }

    /// `plain` as stored at `key`: an envelope under the current key, or `plain` itself when
    /// encryption is off.
    pub fn close(&self, key: &str, plain: String) -> String {
        let Some(c) = &self.cipher else { return plain };
        let (id, cipher) = &c.keys[c.current];
        let nonce = {
            let mut rng = c.nonces.lock().unwrap_or_else(|p| p.into_inner());
            Aes256Gcm::generate_nonce(&mut *rng)
        };
        let sealed = cipher
            .encrypt(
                &nonce,
                Payload {
                    msg: plain.as_bytes(),
                    aad: key.as_bytes(),
                },
            )
            .expect("AES-GCM encryption of an in-memory buffer cannot fail");
        let mut body = Vec::with_capacity(NONCE_LEN + sealed.len());
        body.extend_from_slice(&nonce);
        body.extend_from_slice(&sealed);
        let mut out = String::with_capacity(ENVELOPE.len() + id.len() + 1 + body.len() * 4 / 3 + 4);
        out.push_str(ENVELOPE);
        out.push_str(id);
        out.push('$');
        URL_SAFE_NO_PAD.encode_string(&body, &mut out);
        out
    }

    /// The plain value of `stored`, read at `key`. `ERR_BAD_DATA` when it was tampered with,
    /// moved from another key, sealed with a key this store does not have, or is plain while
    /// plain values are not accepted.
    pub fn open(&self, key: &str, stored: String) -> StoreResult<String> {
        match &self.cipher {
            None => Ok(stored),
            Some(c) if c.accept_plaintext && !stored.starts_with(ENVELOPE) => Ok(stored),
            Some(_) => self.open_str(key, &stored),
        }
    }

    /// `open` of a borrowed value: copied only when it is returned as it is.
    pub fn open_str(&self, key: &str, stored: &str) -> StoreResult<String> {
        let Some(c) = &self.cipher else {
            return Ok(stored.to_string());
        };
        let Some(rest) = stored.strip_prefix(ENVELOPE) else {
            if c.accept_plaintext {
                return Ok(stored.to_string());
            }
            return Err(bad_data(
                key,
                "is not encrypted (set encryption.acceptPlaintext to read values written before encryption was on)",
            ));
        };
        let (id, body) = rest
            .split_once('$')
            .ok_or_else(|| bad_data(key, "is a damaged envelope"))?;
        let (_, cipher) = c.keys.iter().find(|(k, _)| k == id).ok_or_else(|| {
            bad_data(
                key,
                &format!("was encrypted with key {id:?}, which is not in encryption.keys"),
            )
        })?;
        let body = URL_SAFE_NO_PAD
            .decode(body)
            .map_err(|_| bad_data(key, "is a damaged envelope"))?;
        if body.len() < NONCE_LEN + 16 {
            return Err(bad_data(key, "is a damaged envelope"));
        }
        let (nonce, sealed) = body.split_at(NONCE_LEN);
        let plain = cipher
            .decrypt(
                Nonce::from_slice(nonce),
                Payload {
                    msg: sealed,
                    aad: key.as_bytes(),
                },
            )
            .map_err(|_| {
                bad_data(
                    key,
                    &format!("does not open with key {id:?}: it was altered, or written under another key"),
                )
            })?;
        String::from_utf8(plain).map_err(|_| bad_data(key, "opens to bytes that are not UTF-8"))
    }

    /// The request with the session id that ends its key (after `prefix_len` bytes) hashed,
    /// in the key and where the id is also an index member. With `hashIds: 'migrate'`, a
    /// destroy also deletes the plain key. An `Adopt` moves the plain key to the hashed one.
    pub fn hash_request(&self, request: Request, prefix_len: usize) -> StoreResult<Request> {
        if self.hash_ids == HashIds::Off {
            return match request {
                Request::Adopt { .. } => Err(bad("adopting a plain key needs hashIds: 'migrate'")),
                other => Ok(other),
            };
        }
        let hashed = |key: &str| -> StoreResult<(String, String)> {
            let id = key
                .get(prefix_len..)
                .ok_or_else(|| bad("the session id mark is past the key"))?;
            let h = hash_id(id);
            Ok((format!("{}{h}", &key[..prefix_len]), h))
        };
        Ok(match request {
            Request::Adopt { from, .. } => Request::Adopt {
                to: hashed(&from)?.0,
                from,
            },
            Request::Destroy { mut keys } if keys.len() == 1 => {
                let plain = keys.pop().expect("one key");
                let (key, _) = hashed(&plain)?;
                if self.hash_ids == HashIds::Migrate {
                    Request::Destroy {
                        keys: vec![key, plain],
                    }
                } else {
                    Request::Destroy { keys: vec![key] }
                }
            }
            Request::IndexedSet {
                key,
                value,
                at,
                index_key,
                member,
            } => {
                let id = key.get(prefix_len..).unwrap_or_default().to_string();
                let (key, h) = hashed(&key)?;
                Request::IndexedSet {
                    key,
                    value,
                    at,
                    index_key,
                    member: if member == id { h } else { member },
                }
            }
            Request::IndexedDelete {
                key,
                member,
                index_prefix,
                field,
            } => {
                let id = key.get(prefix_len..).unwrap_or_default().to_string();
                let (key, h) = hashed(&key)?;
                Request::IndexedDelete {
                    key,
                    member: if member == id { h } else { member },
                    index_prefix,
                    field,
                }
            }
            Request::Get { key } => Request::Get {
                key: hashed(&key)?.0,
            },
            Request::Set { key, value, ttl_ms } => Request::Set {
                key: hashed(&key)?.0,
                value,
                ttl_ms,
            },
            Request::SetUntil { key, value, at } => Request::SetUntil {
                key: hashed(&key)?.0,
                value,
                at,
            },
            Request::ReplaceUntil { key, value, at } => Request::ReplaceUntil {
                key: hashed(&key)?.0,
                value,
                at,
            },
            Request::Touch { key, ttl } => Request::Touch {
                key: hashed(&key)?.0,
                ttl,
            },
            Request::Exists { key } => Request::Exists {
                key: hashed(&key)?.0,
            },
            other => {
                return Err(bad(format!(
                    "a session id mark on a call that takes none: {other:?}"
                )))
            }
        })
    }

    /// What opening a command's reply needs: the key (or keys) its values were sealed under.
    pub fn opener(&self, command: &Command) -> Option<Opener> {
        self.cipher.as_ref()?;
        match command {
            Command::Get(key) | Command::GetDel(key) => Some(Opener::Key(key.clone())),
            Command::MGet(keys) => Some(Opener::Keys(keys.clone())),
            _ => None,
        }
    }

    /// `reply` with the values in it opened; a value that does not open becomes the error.
    pub fn open_reply(&self, opener: &Opener, reply: Reply) -> Reply {
        match (opener, reply) {
            (Opener::Key(key), Reply::Text(v)) => match self.open(key, v) {
                Ok(plain) => Reply::Text(plain),
                Err(e) => Reply::Error(e),
            },
            (Opener::Keys(keys), Reply::List(values)) => {
                let mut out = Vec::with_capacity(values.len());
                for (key, v) in keys.iter().zip(values) {
                    match v.map(|v| self.open(key, v)).transpose() {
                        Ok(v) => out.push(v),
                        Err(e) => return Reply::Error(e),
                    }
                }
                Reply::List(out)
            }
            (_, other) => other,
        }
    }

    /// `open_reply` for a reply to `command`, when the command carries its keys still.
    pub fn open_reply_to(&self, command: &Command, reply: Reply) -> Reply {
        match self.opener(command) {
            Some(opener) => self.open_reply(&opener, reply),
            None => reply,
        }
    }

    /// Seals the value a write carries, under the key it is written to.
    pub fn close_request(&self, request: Request) -> Request {
        if self.cipher.is_none() {
            return request;
        }
        match request {
            Request::Set { key, value, ttl_ms } => {
                let value = self.close(&key, value);
                Request::Set { key, value, ttl_ms }
            }
            Request::SetUntil { key, value, at } => {
                let value = self.close(&key, value);
                Request::SetUntil { key, value, at }
            }
            Request::ReplaceUntil { key, value, at } => {
                let value = self.close(&key, value);
                Request::ReplaceUntil { key, value, at }
            }
            Request::IndexedSet {
                key,
                value,
                at,
                index_key,
                member,
            } => {
                let value = self.close(&key, value);
                Request::IndexedSet {
                    key,
                    value,
                    at,
                    index_key,
                    member,
                }
            }
            other => other,
        }
    }
}

/// The keys a read's values were sealed under.
#[derive(Clone, Debug)]
pub enum Opener {
    Key(String),
    Keys(Vec<String>),
}

pub fn hash_id(id: &str) -> String {
    URL_SAFE_NO_PAD.encode(Sha256::digest(id.as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn seal(enc: Value) -> Seal {
        Seal::from_options(None, Some(&enc)).expect("valid")
    }

    const K1: &str = "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY="; // 32 bytes, base64
    const K2: &str = "6b6579326b6579326b6579326b6579326b6579326b6579326b6579326b657932"; // hex

    #[test]
    fn hashed_ids_are_sha256_base64url() {
        // SHA-256("abc") is ba7816bf…15ad.
        assert_eq!(
            hash_id("abc"),
            "ungWv48Bz-pBQUDeXa4iI7ADYaOWF3qctBD_YfIAFa0"
        );
        let s = Seal::from_options(Some(&json!(true)), None).unwrap();
        assert_eq!(s.id("abc").len(), 43);
        assert_eq!(Seal::default().id("abc"), "abc");
    }

    #[test]
    fn values_round_trip_and_bind_the_key() {
        let s = seal(json!({"keys": {"k1": K1}}));
        let sealed = s.close("sess:a", "{\"n\":1}".into());
        assert!(sealed.starts_with("fs1$k1$"));
        assert!(!sealed.contains("\"n\""));
        assert_eq!(s.open("sess:a", sealed.clone()).unwrap(), "{\"n\":1}");
        let moved = s.open("sess:b", sealed).unwrap_err();
        assert_eq!(moved.kind, ErrorKind::BadData);
        // Two writes of one value differ (fresh nonce).
        assert_ne!(s.close("k", "v".into()), s.close("k", "v".into()));
    }

    #[test]
    fn rotation_reads_old_keys_and_writes_current() {
        let old = seal(json!({"keys": {"k1": K1}}));
        let written = old.close("sess:a", "old".into());
        let rotated = seal(json!({"keys": {"k1": K1, "k2": K2}, "current": "k2"}));
        assert_eq!(rotated.open("sess:a", written).unwrap(), "old");
        let fresh = rotated.close("sess:a", "new".into());
        assert!(fresh.starts_with("fs1$k2$"));
        let err = old.open("sess:a", fresh).unwrap_err();
        assert!(err.message.contains("\"k2\""), "{}", err.message);
    }

    #[test]
    fn tampering_and_plaintext_are_bad_data() {
        let s = seal(json!({"keys": {"k1": K1}}));
        let sealed = s.close("sess:a", "{\"admin\":false}".into());
        let mut bytes = sealed.into_bytes();
        let last = bytes.len() - 5;
        bytes[last] = if bytes[last] == b'A' { b'B' } else { b'A' };
        let tampered = String::from_utf8(bytes).unwrap();
        assert_eq!(
            s.open("sess:a", tampered).unwrap_err().kind,
            ErrorKind::BadData
        );
        assert_eq!(
            s.open("sess:a", "fs1$k1$".into()).unwrap_err().kind,
            ErrorKind::BadData
        );
        assert_eq!(
            s.open("sess:a", "fs1$k1".into()).unwrap_err().kind,
            ErrorKind::BadData
        );
        assert_eq!(
            s.open("sess:a", "{}".into()).unwrap_err().kind,
            ErrorKind::BadData
        );
        let lenient = seal(json!({"keys": {"k1": K1}, "acceptPlaintext": true}));
        assert_eq!(lenient.open("sess:a", "{}".into()).unwrap(), "{}");
    }

    #[test]
    fn bad_options_are_refused() {
        for enc in [
            json!({"keys": {}}),
            json!({"keys": {"k1": "c2hvcnQ="}}),
            json!({"keys": {"k1": 5}}),
            json!({"keys": {"a$b": K1}}),
            json!({"keys": {"k1": K1, "k2": K2}}),
            json!({"keys": {"k1": K1}, "current": "k9"}),
            json!({"keys": {"k1": K1}, "acceptPlaintext": "yes"}),
            json!("secret"),
        ] {
            let err = Seal::from_options(None, Some(&enc)).unwrap_err();
            assert_eq!(err.kind, ErrorKind::BadArgument, "{enc}");
        }
        assert!(Seal::from_options(Some(&json!("yes")), None).is_err());
        assert_eq!(
            Seal::from_options(Some(&json!("migrate")), None)
                .unwrap()
                .hash_ids,
            HashIds::Migrate
        );
    }
}
