//! The private key a volume asks for: algorithm, size and PEM encoding (upstream's defaults:
//! RSA 2048, PKCS#1), and whether a renewal keeps it.

use super::reader::{Reader, parse_go_int};
use super::spec::{KeyAlgorithm, KeyEncoding, KeySpec};
use super::table::{Part, key};

pub(super) fn read(reader: &mut Reader<'_>) -> KeySpec {
    let reader = reader.part(Part::Key);
    let algorithm_raw = reader.get(key::KEY_ALGORITHM);
    let algorithm = match algorithm_raw.map(str::to_ascii_lowercase).as_deref() {
        None | Some("rsa") => KeyAlgorithm::Rsa,
        Some("ecdsa") => KeyAlgorithm::Ecdsa,
        Some("ed25519") => KeyAlgorithm::Ed25519,
        Some(_) => {
            reader.problem(
                key::KEY_ALGORITHM,
                algorithm_raw,
                "must be one of RSA, ECDSA, Ed25519",
            );
            KeyAlgorithm::Rsa
        }
    };
    let size_raw = reader.get(key::KEY_SIZE);
    let size = match (algorithm, size_raw) {
        (KeyAlgorithm::Rsa, None) => 2048,
        (KeyAlgorithm::Ecdsa, None) => 256,
        (KeyAlgorithm::Ed25519, None) => 0,
        (KeyAlgorithm::Ed25519, Some(raw)) => {
            reader.problem(key::KEY_SIZE, Some(raw), "must not be set for Ed25519 keys");
            0
        }
        // Go's `strconv.Atoi`: `+2048` is 2048, `" 2048"` is not a number.
        (algorithm, Some(raw)) => match parse_go_int(raw).map(u32::try_from) {
            Ok(Ok(bits)) if algorithm == KeyAlgorithm::Rsa && (2048..=8192).contains(&bits) => bits,
            Ok(Ok(bits)) if algorithm == KeyAlgorithm::Ecdsa && [256, 384, 521].contains(&bits) => {
                bits
            }
            _ if algorithm == KeyAlgorithm::Rsa => {
                reader.problem(
                    key::KEY_SIZE,
                    Some(raw),
                    "must be between 2048 and 8192 for RSA",
                );
                2048
            }
            _ => {
                reader.problem(
                    key::KEY_SIZE,
                    Some(raw),
                    "must be 256, 384 or 521 for ECDSA",
                );
                256
            }
        },
    };
    let encoding_raw = reader.get(key::KEY_ENCODING);
    let encoding = match encoding_raw.map(str::to_ascii_uppercase).as_deref() {
        None if algorithm == KeyAlgorithm::Rsa => KeyEncoding::Pkcs1,
        None => KeyEncoding::Pkcs8,
        Some("PKCS1") if algorithm == KeyAlgorithm::Rsa => KeyEncoding::Pkcs1,
        Some("PKCS1") => {
            reader.problem(
                key::KEY_ENCODING,
                encoding_raw,
                format!("PKCS1 is only valid for RSA keys, not {algorithm}; use PKCS8"),
            );
            KeyEncoding::Pkcs8
        }
        Some("PKCS8") => KeyEncoding::Pkcs8,
        Some(_) => {
            reader.problem(key::KEY_ENCODING, encoding_raw, "must be PKCS1 or PKCS8");
            KeyEncoding::Pkcs8
        }
    };
    KeySpec {
        algorithm,
        size,
        encoding,
    }
}

/// `reuse-private-key`: renewals keep the key instead of making a new one.
pub(super) fn reuse(reader: &mut Reader<'_>) -> bool {
    reader.part(Part::Key).boolean(key::REUSE_PRIVATE_KEY)
}
