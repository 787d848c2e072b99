//! Document passwords at rest: sealed with XChaCha20-Poly1305 under the service's
//! `SECRET_KEY` before they reach the database, opened only by the worker that converts the
//! document, and wiped from the row when the job ends (and from memory after use).
//!
//! The sealed text is bound to its job (the job id is the associated data), so a sealed
//! password copied onto another job's row does not open.

use std::str::FromStr;

use base64::Engine;
use chacha20poly1305::aead::{Aead, AeadCore, KeyInit, OsRng, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use uuid::Uuid;
use zeroize::Zeroizing;

use crate::model::Sealed;

const VERSION: &str = "v1:";
const NONCE_LEN: usize = 24;

/// The key that seals document passwords: 32 bytes, given as base64 or hex.
#[derive(Clone)]
pub struct SecretKey(Zeroizing<[u8; 32]>);

impl std::fmt::Debug for SecretKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SecretKey(…)")
    }
}

/// A sealed password that does not open: another key, another job, or altered text.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("the sealed password does not open with this SECRET_KEY")]
pub struct CannotOpen;

impl FromStr for SecretKey {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        let text = text.trim();
        // 64 characters is hex; anything else is read as base64.
        let bytes = match text.len() {
            64 => hex::decode(text).ok(),
            _ => base64::engine::general_purpose::STANDARD.decode(text).ok(),
        }
        .ok_or("not base64 or hex")?;
        let key: [u8; 32] = bytes.try_into().map_err(|b: Vec<u8>| {
            format!("{} bytes; it must be 32 (openssl rand -base64 32)", b.len())
        })?;
        Ok(SecretKey(Zeroizing::new(key)))
    }
}

impl SecretKey {
    /// A key of this process alone (passwords then do not survive a restart).
    pub fn random() -> Self {
        let key = XChaCha20Poly1305::generate_key(&mut OsRng);
        SecretKey(Zeroizing::new(key.into()))
    }

    fn cipher(&self) -> XChaCha20Poly1305 {
        XChaCha20Poly1305::new((&*self.0).into())
    }

    /// Seals `plain` for job `job`.
    pub fn seal(&self, job: Uuid, plain: &str) -> Sealed {
        let nonce = XChaCha20Poly1305::generate_nonce(&mut OsRng);
        let payload = Payload {
            msg: plain.as_bytes(),
            aad: job.as_bytes(),
        };
        let mut out = nonce.to_vec();
        out.extend(
            self.cipher()
                .encrypt(&nonce, payload)
                .expect("sealing cannot fail"),
        );
        Sealed::new(format!(
            "{VERSION}{}",
            base64::engine::general_purpose::STANDARD.encode(out)
        ))
    }

    /// Opens what [`Self::seal`] sealed for job `job`.
    pub fn open(&self, job: Uuid, sealed: &Sealed) -> Result<Zeroizing<String>, CannotOpen> {
        let encoded = sealed.as_str().strip_prefix(VERSION).ok_or(CannotOpen)?;
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(encoded)
            .map_err(|_| CannotOpen)?;
        if bytes.len() < NONCE_LEN {
            return Err(CannotOpen);
        }
        let (nonce, ciphertext) = bytes.split_at(NONCE_LEN);
        let payload = Payload {
            msg: ciphertext,
            aad: job.as_bytes(),
        };
        let plain = self
            .cipher()
            .decrypt(XNonce::from_slice(nonce), payload)
            .map_err(|_| CannotOpen)?;
        String::from_utf8(plain)
            .map(Zeroizing::new)
            .map_err(|_| CannotOpen)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sealed_password_opens_only_for_its_job_and_key() {
        let key = SecretKey::random();
        let job = Uuid::new_v4();
        let sealed = key.seal(job, "s3cret pässword");
        assert!(!sealed.as_str().contains("s3cret"));
        assert_eq!(key.open(job, &sealed).unwrap().as_str(), "s3cret pässword");
        assert_eq!(key.open(Uuid::new_v4(), &sealed), Err(CannotOpen));
        assert_eq!(SecretKey::random().open(job, &sealed), Err(CannotOpen));
        assert_ne!(key.seal(job, "x").as_str(), key.seal(job, "x").as_str());
    }

    #[test]
    fn keys_parse_from_base64_or_hex_and_never_print() {
        let hex_key = "00".repeat(32);
        assert!(hex_key.parse::<SecretKey>().is_ok());
        let b64 = base64::engine::general_purpose::STANDARD.encode([7u8; 32]);
        let key: SecretKey = b64.parse().unwrap();
        assert_eq!(format!("{key:?}"), "SecretKey(…)");
        assert!("c2hvcnQ=".parse::<SecretKey>().unwrap_err().contains("32"));
    }
}
