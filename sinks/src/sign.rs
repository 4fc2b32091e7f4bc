//! Signed kill-switch commands (design §4, §7).
//!
//! A command stops a tenant's workflows, so the workflow engine must tell a real one
//! from a forged one. The signature is Ed25519 over the RFC 8785 canonical JSON of
//! the record without `signature` (so `key_id` is signed too), in standard base64.
//! Verification recipe, for any language: parse the record, remove `signature`,
//! canonicalise (RFC 8785), verify the Ed25519 signature with the public key whose
//! id is `key_id`.

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use ed25519_dalek::{Signature, Signer as _, SigningKey, Verifier as _, VerifyingKey};
use sha2::{Digest, Sha256};
use warden_schemas::jcs;
use warden_schemas::KillSwitch;

/// Why a key or a signature was refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SignError {
    /// The key text is not base64 of 32 bytes.
    #[error("the key is not base64 of a 32-byte Ed25519 key")]
    BadKey,
    /// The record has no `signature`.
    #[error("unsigned command")]
    Unsigned,
    /// `key_id` names another key.
    #[error("signed by key {0}, not this one (is the key given the `.pub` file of the signing key? a private seed is also 32 bytes)")]
    WrongKey(String),
    /// The signature does not match the content.
    #[error("signature does not match the command")]
    Mismatch,
    /// Not a JSON object.
    #[error("not a kill-switch record: {0}")]
    NotARecord(String),
}

/// The id of a public key: the first 8 bytes of its SHA-256, hex.
pub fn key_id(public: &VerifyingKey) -> String {
    hex::encode(&Sha256::digest(public.as_bytes())[..8])
}

fn decode_key(text: &str) -> Result<[u8; 32], SignError> {
    let bytes = STANDARD.decode(text.trim()).map_err(|_| SignError::BadKey)?;
    bytes.try_into().map_err(|_| SignError::BadKey)
}

/// Signs kill-switch commands with the key from `WARDEN_SIGNING_KEY`.
pub struct Signer {
    key: SigningKey,
    key_id: String,
}

impl std::fmt::Debug for Signer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Signer").field("key_id", &self.key_id).finish_non_exhaustive()
    }
}

impl Signer {
    /// A signer from a base64 32-byte seed.
    pub fn from_base64_seed(seed: &str) -> Result<Signer, SignError> {
        let key = SigningKey::from_bytes(&decode_key(seed)?);
        let key_id = key_id(&key.verifying_key());
        Ok(Signer { key, key_id })
    }

    /// This signer's key id.
    pub fn key_id(&self) -> &str {
        &self.key_id
    }

    /// The public key, base64.
    pub fn public_base64(&self) -> String {
        STANDARD.encode(self.key.verifying_key().as_bytes())
    }

    /// Sets `key_id` and `signature` on `cmd`. Ed25519 is deterministic, so a replay
    /// signs a command identically.
    pub fn sign(&self, cmd: &mut KillSwitch) {
        cmd.key_id = Some(self.key_id.clone());
        cmd.signature = None;
        let value = serde_json::to_value(&*cmd).unwrap_or(serde_json::Value::Null);
        let mut text = String::new();
        jcs::write_serde(&value, &mut text);
        cmd.signature = Some(STANDARD.encode(self.key.sign(text.as_bytes()).to_bytes()));
    }
}

/// Checks kill-switch records against one public key.
pub struct Verifier {
    key: VerifyingKey,
    key_id: String,
}

impl Verifier {
    /// A verifier from a base64 public key.
    pub fn from_base64(public: &str) -> Result<Verifier, SignError> {
        let key = VerifyingKey::from_bytes(&decode_key(public)?).map_err(|_| SignError::BadKey)?;
        Ok(Verifier { key_id: key_id(&key), key })
    }

    /// Verifies one record given as parsed JSON.
    pub fn verify_value(&self, record: &serde_json::Value) -> Result<(), SignError> {
        let mut obj = record.as_object().cloned().ok_or_else(|| SignError::NotARecord("not an object".into()))?;
        let sig = obj.remove("signature").ok_or(SignError::Unsigned)?;
        let sig = sig.as_str().ok_or(SignError::Mismatch)?;
        match obj.get("key_id").and_then(|k| k.as_str()) {
            Some(id) if id == self.key_id => {}
            Some(id) => return Err(SignError::WrongKey(id.to_string())),
            None => return Err(SignError::Mismatch),
        }
        let bytes: [u8; 64] = STANDARD.decode(sig).ok().and_then(|b| b.try_into().ok()).ok_or(SignError::Mismatch)?;
        let mut text = String::new();
        jcs::write_serde(&serde_json::Value::Object(obj), &mut text);
        self.key.verify(text.as_bytes(), &Signature::from_bytes(&bytes)).map_err(|_| SignError::Mismatch)
    }
}

/// A new key pair: (base64 seed, base64 public key), from the OS's randomness.
pub fn generate() -> Result<(String, String), getrandom::Error> {
    let mut seed = [0u8; 32];
    getrandom::getrandom(&mut seed)?;
    let key = SigningKey::from_bytes(&seed);
    Ok((STANDARD.encode(seed), STANDARD.encode(key.verifying_key().as_bytes())))
}

#[cfg(test)]
mod tests {
    use super::*;
    use warden_schemas::{Action, Subject};

    fn command() -> KillSwitch {
        KillSwitch {
            schema: "warden.killswitch.v1".into(),
            command_id: "0".repeat(32),
            action: Action::DisableWorkflow,
            target: Subject { kind: "workflow".into(), id: "wf-42".into() },
            tenant: Some("t-9".into()),
            detector: "loop".into(),
            rule: "workflow_runs".into(),
            reason: "r".into(),
            issued_at: 1_767_225_600_000,
            ttl_ms: 3_600_000,
            expires_at: 1_767_229_200_000,
            key_id: None,
            signature: None,
        }
    }

    #[test]
    fn signed_commands_verify_and_tampered_ones_do_not() {
        let (seed, public) = generate().unwrap();
        let signer = Signer::from_base64_seed(&seed).unwrap();
        let verifier = Verifier::from_base64(&public).unwrap();
        let mut cmd = command();
        signer.sign(&mut cmd);
        let value = serde_json::to_value(&cmd).unwrap();
        assert_eq!(verifier.verify_value(&value), Ok(()));
        let mut tampered = value.clone();
        tampered["target"]["id"] = "wf-1".into();
        assert_eq!(verifier.verify_value(&tampered), Err(SignError::Mismatch));
        let mut unsigned = value.clone();
        unsigned.as_object_mut().unwrap().remove("signature");
        assert_eq!(verifier.verify_value(&unsigned), Err(SignError::Unsigned));
        let (_, other) = generate().unwrap();
        assert!(matches!(Verifier::from_base64(&other).unwrap().verify_value(&value), Err(SignError::WrongKey(_))));
    }

    #[test]
    fn signing_is_deterministic() {
        let (seed, _) = generate().unwrap();
        let signer = Signer::from_base64_seed(&seed).unwrap();
        let (mut a, mut b) = (command(), command());
        signer.sign(&mut a);
        signer.sign(&mut b);
        assert_eq!(a.signature, b.signature);
    }
}
