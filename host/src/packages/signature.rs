//! Ed25519 signatures over a package's manifest. The manifest holds the
//! SHA-256 of every other file, so one signature vouches for all of them.
//! Admins trust publishers by key in the config (`[host.trusted_publishers]`);
//! checking fails closed: unsigned, unknown publisher, a key other than the
//! trusted one, and a signature that does not match are each refused.

use std::collections::BTreeMap;

use ed25519_dalek::{Signer, SigningKey, Verifier, VerifyingKey};
use serde::{Deserialize, Serialize};

/// The signature's file name inside a package.
pub const SIGNATURE_FILE: &str = "synchost-package.sig";

const PUBLIC_PREFIX: &str = "ed25519:";
const SECRET_PREFIX: &str = "ed25519-secret:";

/// A package's signature file.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct SignatureFile {
    pub publisher: String,
    /// The public key that made it: `ed25519:HEX`.
    pub key: String,
    /// The signature over the manifest's bytes (hex).
    pub signature: String,
}

/// A publisher's signing key file, as `synchost package keygen` writes it.
#[derive(Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct SecretKeyFile {
    pub publisher: String,
    /// `ed25519-secret:HEX`
    pub secret: String,
}

/// Why a signature is not accepted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SignatureError {
    #[error("the package is not signed")]
    Unsigned,
    #[error("its signature file is unreadable: {0}")]
    Unreadable(String),
    #[error("it is signed as publisher `{signed}`, but its manifest names publisher `{named}`")]
    OtherPublisher { signed: String, named: String },
    #[error("publisher `{0}` is not in [host.trusted_publishers]")]
    UnknownPublisher(String),
    #[error("it is signed with key {found}, not with the key trusted for publisher `{publisher}` ({trusted})")]
    WrongKey { publisher: String, found: String, trusted: String },
    #[error("its signature does not match its manifest: the manifest was changed after signing, or the signature is forged")]
    BadSignature,
}

impl SignatureError {
    /// What to do about it.
    pub fn fix(&self) -> String {
        match self {
            SignatureError::Unsigned => "ask the publisher for a signed package; to install it anyway, pass --allow-unsigned".into(),
            SignatureError::Unreadable(_) | SignatureError::OtherPublisher { .. } | SignatureError::BadSignature => {
                "do not install it: get the package again from its publisher".into()
            }
            SignatureError::UnknownPublisher(publisher) => format!(
                "if you trust `{publisher}`, add their public key to the config: [host.trusted_publishers] {publisher} = \"ed25519:...\""
            ),
            SignatureError::WrongKey { publisher, .. } => {
                format!("do not install it unless `{publisher}` tells you their key changed; then update [host.trusted_publishers] {publisher}")
            }
        }
    }
}

fn key_bytes<const N: usize>(text: &str, prefix: &str) -> Result<[u8; N], String> {
    let hex_text = text.strip_prefix(prefix).ok_or_else(|| format!("`{text}` does not start with `{prefix}`"))?;
    let bytes = hex::decode(hex_text).map_err(|e| format!("`{text}` is not hex: {e}"))?;
    bytes.try_into().map_err(|_| format!("`{text}` is not a {N}-byte key"))
}

/// A public key from its text form `ed25519:HEX`.
pub fn public_key(text: &str) -> Result<VerifyingKey, String> {
    VerifyingKey::from_bytes(&key_bytes::<32>(text, PUBLIC_PREFIX)?).map_err(|e| format!("`{text}` is not an Ed25519 public key: {e}"))
}

fn public_text(key: &VerifyingKey) -> String {
    format!("{PUBLIC_PREFIX}{}", hex::encode(key.as_bytes()))
}

/// A new key pair for `publisher`: the secret key file's text and the public key's text.
pub fn keygen(publisher: &str) -> (String, String) {
    let seed: [u8; 32] = rand::random();
    let key = SigningKey::from_bytes(&seed);
    let file = SecretKeyFile { publisher: publisher.to_owned(), secret: format!("{SECRET_PREFIX}{}", hex::encode(seed)) };
    let text = format!(
        "# The package signing key of publisher `{publisher}`. Keep it secret: whoever has it can sign packages as `{publisher}`.\n{}",
        toml::to_string(&file).expect("a key file serializes")
    );
    (text, public_text(&key.verifying_key()))
}

/// Signs a manifest's bytes with a secret key file's text.
pub fn sign(secret_key_file: &str, manifest: &[u8]) -> Result<SignatureFile, String> {
    let file: SecretKeyFile = toml::from_str(secret_key_file).map_err(|e| format!("not a synchost signing key file: {e}"))?;
    let key = SigningKey::from_bytes(&key_bytes::<32>(&file.secret, SECRET_PREFIX)?);
    Ok(SignatureFile {
        publisher: file.publisher,
        key: public_text(&key.verifying_key()),
        signature: hex::encode(key.sign(manifest).to_bytes()),
    })
}

/// Checks a package's signature (the file's bytes, if any) over its
/// manifest, against the publisher the manifest names and the trust list.
pub fn verify(signature: Option<&[u8]>, manifest: &[u8], publisher: &str, trusted: &BTreeMap<String, String>) -> Result<String, SignatureError> {
    let bytes = signature.ok_or(SignatureError::Unsigned)?;
    let text = std::str::from_utf8(bytes).map_err(|e| SignatureError::Unreadable(e.to_string()))?;
    let file: SignatureFile = toml::from_str(text).map_err(|e| SignatureError::Unreadable(e.message().to_owned()))?;
    if file.publisher != publisher {
        return Err(SignatureError::OtherPublisher { signed: file.publisher, named: publisher.to_owned() });
    }
    let trusted_key = trusted.get(publisher).ok_or_else(|| SignatureError::UnknownPublisher(publisher.to_owned()))?;
    if !trusted_key.eq_ignore_ascii_case(&file.key) {
        return Err(SignatureError::WrongKey { publisher: publisher.to_owned(), found: file.key, trusted: trusted_key.clone() });
    }
    let key = public_key(&file.key).map_err(SignatureError::Unreadable)?;
    let signature: [u8; 64] = hex::decode(&file.signature).ok().and_then(|b| b.try_into().ok()).ok_or(SignatureError::BadSignature)?;
    key.verify(manifest, &ed25519_dalek::Signature::from_bytes(&signature)).map_err(|_| SignatureError::BadSignature)?;
    Ok(file.key)
}

/// The signature file's text.
pub fn render(signature: &SignatureFile) -> String {
    toml::to_string(signature).expect("a signature serializes")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_signature_holds_for_its_manifest_and_publisher_only() {
        let (secret, public) = keygen("acme");
        let manifest = b"[package]\nname = \"acme-tickets\"\n";
        let signature = render(&sign(&secret, manifest).unwrap());
        let trusted = BTreeMap::from([("acme".to_owned(), public.clone())]);
        assert_eq!(verify(Some(signature.as_bytes()), manifest, "acme", &trusted), Ok(public.clone()));

        assert_eq!(verify(Some(signature.as_bytes()), b"[package]\nname = \"evil\"\n", "acme", &trusted), Err(SignatureError::BadSignature));
        assert_eq!(verify(None, manifest, "acme", &trusted), Err(SignatureError::Unsigned));
        assert_eq!(verify(Some(signature.as_bytes()), manifest, "acme", &BTreeMap::new()), Err(SignatureError::UnknownPublisher("acme".into())));
        let (_, other) = keygen("acme");
        let elsewhere = BTreeMap::from([("acme".to_owned(), other)]);
        assert!(matches!(verify(Some(signature.as_bytes()), manifest, "acme", &elsewhere), Err(SignatureError::WrongKey { .. })));
        assert!(matches!(verify(Some(signature.as_bytes()), manifest, "globex", &trusted), Err(SignatureError::OtherPublisher { .. })));
    }
}
