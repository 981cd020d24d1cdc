//! The message format (D1-D3): a data-change message or an acknowledgement,
//! self-describing and versioned: a first line naming the format and its
//! version, the message as gzip-compressed JSON, and an HMAC-SHA256 over
//! everything before it, made with the replica's shared secret. A file that
//! was changed, cut short, or made for another replica (another secret) is
//! refused before anything in it is read.

use std::io::{Read, Write};

use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use sha2::Sha256;

use super::ReplicaKind;

/// The first line of every message file.
pub const MAGIC: &[u8] = b"SYNCHOST-REPLICA-MESSAGE 1\n";

/// The most a message may hold once uncompressed.
const MAX_JSON: u64 = 512 * 1024 * 1024;

const MAC_LEN: usize = 32;

/// Data changes, or an acknowledgement only.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum MessageKind {
    Data,
    Ack,
}

/// What the sender of a message has received of the other side's messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Received {
    /// The last message imported.
    pub message: u64,
    /// The last change of the other side applied.
    pub change: u64,
}

/// One change of a record, as the sender's pipelines wrote it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MessageChange {
    /// The sender's change number (each side numbers its own).
    pub number: u64,
    pub entity: String,
    /// The key both hosts know the record by.
    pub key: String,
    pub delete: bool,
    /// The fields set: name to value (as the replica connector keeps them).
    pub fields: serde_json::Map<String, serde_json::Value>,
    /// The last change of the receiver the sender had applied when it made
    /// this one: a field the receiver changed later is concurrent with it.
    /// Absent in messages of hosts that did not say.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seen: Option<u64>,
}

/// One message.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Message {
    pub replica: String,
    pub replica_kind: ReplicaKind,
    pub sender: String,
    pub receiver: String,
    /// The sender's message number (each side numbers its own, from 1).
    pub number: u64,
    pub kind: MessageKind,
    /// The sender gives the sending role to the receiver (D4).
    pub swap: bool,
    /// The range of the sender's changes this message holds: `first..=last`
    /// (`last = first - 1` when it holds none).
    pub first_change: u64,
    pub last_change: u64,
    /// What the sender has received of the receiver's messages: an
    /// acknowledgement, in an ack and with data alike (D3, D7).
    pub received: Option<Received>,
    pub created_at: String,
    pub changes: Vec<MessageChange>,
}

/// Why a file is not a message this replica imports.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum MessageError {
    #[error("it is not a synchost replica message (its first line is not `SYNCHOST-REPLICA-MESSAGE 1`)")]
    NotAMessage,
    #[error("it is cut short ({0} bytes)")]
    Truncated(usize),
    #[error("its check does not match: the file was changed or cut short after it was made, or it was made with another secret (another replica's)")]
    Tampered,
    #[error("it cannot be read although its check matches: {0}")]
    Corrupt(String),
}

type HmacSha256 = Hmac<Sha256>;

fn mac(secret: &str) -> HmacSha256 {
    HmacSha256::new_from_slice(secret.as_bytes()).expect("HMAC takes keys of any length")
}

/// The bytes of a message file.
pub fn encode(message: &Message, secret: &str) -> Vec<u8> {
    let json = serde_json::to_vec(message).expect("a message serializes");
    let mut bytes = MAGIC.to_vec();
    let mut gzip = flate2::write::GzEncoder::new(&mut bytes, flate2::Compression::default());
    gzip.write_all(&json).expect("writing to memory");
    gzip.finish().expect("writing to memory");
    let mut check = mac(secret);
    check.update(&bytes);
    bytes.extend_from_slice(&check.finalize().into_bytes());
    bytes
}

/// The message in a file, if it is whole and made with `secret`.
pub fn decode(bytes: &[u8], secret: &str) -> Result<Message, MessageError> {
    if !bytes.starts_with(MAGIC) {
        return Err(if MAGIC.starts_with(bytes) && !bytes.is_empty() { MessageError::Truncated(bytes.len()) } else { MessageError::NotAMessage });
    }
    if bytes.len() < MAGIC.len() + MAC_LEN {
        return Err(MessageError::Truncated(bytes.len()));
    }
    let (body, tag) = bytes.split_at(bytes.len() - MAC_LEN);
    let mut check = mac(secret);
    check.update(body);
    check.verify_slice(tag).map_err(|_| MessageError::Tampered)?;
    let mut json = Vec::new();
    flate2::read::GzDecoder::new(&body[MAGIC.len()..])
        .take(MAX_JSON)
        .read_to_end(&mut json)
        .map_err(|e| MessageError::Corrupt(e.to_string()))?;
    serde_json::from_slice(&json).map_err(|e| MessageError::Corrupt(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn message() -> Message {
        let mut fields = serde_json::Map::new();
        fields.insert("name".into(), serde_json::json!({ "text": "Ada" }));
        Message {
            replica: "office".into(),
            replica_kind: ReplicaKind::TwoWay,
            sender: "hq".into(),
            receiver: "branch".into(),
            number: 3,
            kind: MessageKind::Data,
            swap: false,
            first_change: 1,
            last_change: 1,
            received: Some(Received { message: 2, change: 7 }),
            created_at: "2026-12-02T10:00:00Z".into(),
            changes: vec![MessageChange { number: 1, entity: "contacts".into(), key: "hq:p/1".into(), delete: false, fields, seen: Some(3) }],
        }
    }

    #[test]
    fn a_message_comes_back_as_it_was_made() {
        let bytes = encode(&message(), "s3cret");
        assert!(bytes.starts_with(MAGIC));
        assert_eq!(decode(&bytes, "s3cret").unwrap(), message());
    }

    #[test]
    fn a_changed_cut_or_foreign_file_is_refused() {
        let bytes = encode(&message(), "s3cret");
        assert_eq!(decode(&bytes, "another"), Err(MessageError::Tampered), "another replica's secret");
        let mut changed = bytes.clone();
        let middle = changed.len() / 2;
        changed[middle] ^= 1;
        assert_eq!(decode(&changed, "s3cret"), Err(MessageError::Tampered));
        assert_eq!(decode(&bytes[..bytes.len() - 5], "s3cret"), Err(MessageError::Tampered), "cut short");
        assert_eq!(decode(&bytes[..10], "s3cret"), Err(MessageError::Truncated(10)));
        assert_eq!(decode(b"PK\x03\x04 a zip file", "s3cret"), Err(MessageError::NotAMessage));
        assert_eq!(decode(b"", "s3cret"), Err(MessageError::NotAMessage));
    }
}
