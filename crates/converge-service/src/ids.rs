//! Random identifiers and secrets (tokens, device IDs, localparts), and the hash tokens are
//! stored under.

use base64::Engine;
use rand::Rng;
use sha2::{Digest, Sha256};

/// A random string of lowercase letters and digits: valid in localparts, MQTT topics and
/// URLs alike.
pub fn random_id(len: usize) -> String {
    const ALPHABET: &[u8] = b"abcdefghijklmnopqrstuvwxyz0123456789";
    let mut rng = rand::rng();
    (0..len)
        .map(|_| ALPHABET[rng.random_range(0..ALPHABET.len())] as char)
        .collect()
}

/// A device ID as Converge makes them: ten capital letters.
pub fn random_device_id() -> String {
    let mut rng = rand::rng();
    (0..10)
        .map(|_| rng.random_range(b'A'..=b'Z') as char)
        .collect()
}

/// A localpart for a registration that names none.
pub fn random_localpart() -> String {
    format!("u{}", random_id(11))
}

/// A new token: a prefix saying what it is, then 256 random bits in URL-safe base64.
pub fn new_token(prefix: &str) -> String {
    let mut bytes = [0u8; 32];
    rand::rng().fill(&mut bytes);
    format!(
        "{prefix}{}",
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
    )
}

/// SHA-256 of a token, as the store keeps it. Tokens carry 256 random bits, so a fast
/// hash is enough: there is nothing to brute-force.
pub fn hash_token(token: &str) -> Vec<u8> {
    Sha256::digest(token.as_bytes()).to_vec()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identifiers_have_their_shapes() {
        let id = random_id(24);
        assert_eq!(id.len(), 24);
        assert!(
            id.bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
        );
        let device = random_device_id();
        assert_eq!(device.len(), 10);
        assert!(device.bytes().all(|b| b.is_ascii_uppercase()));
        assert!(random_localpart().starts_with('u'));
        let token = new_token("cvga_");
        assert!(token.starts_with("cvga_"));
        assert_eq!(token.len(), 5 + 43);
        assert_ne!(new_token("x"), new_token("x"));
        assert_eq!(hash_token("a"), hash_token("a"));
        assert_eq!(hash_token("a").len(), 32);
    }
}
