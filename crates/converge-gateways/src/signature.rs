//! Webhook signatures: `X-Converge-Signature: t=<unix seconds>,v1=<hex>`, where the hex is
//! HMAC-SHA256 keyed with the hook's secret over `"<t>.<raw body>"`.
//!
//! The same scheme signs outgoing deliveries and checks incoming POSTs; the check is in
//! constant time and refuses timestamps more than [`MAX_SKEW_SECS`] away.

use hmac::{Hmac, Mac};
use sha2::Sha256;

/// The header carrying the signature.
pub const HEADER: &str = "x-converge-signature";
/// How far a signature's timestamp may be from now.
pub const MAX_SKEW_SECS: i64 = 300;
/// Most `v1=` entries looked at (several allow a secret to be rotated).
const MAX_SIGNATURES: usize = 4;

type HmacSha256 = Hmac<Sha256>;

fn mac(secret: &str, timestamp: i64, body: &[u8]) -> HmacSha256 {
    let mut mac = HmacSha256::new_from_slice(secret.as_bytes()).expect("HMAC takes any key length");
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    mac
}

/// The header value signing `body` at `timestamp`.
pub fn sign(secret: &str, timestamp: i64, body: &[u8]) -> String {
    let digest = mac(secret, timestamp, body).finalize().into_bytes();
    format!("t={timestamp},v1={}", hex::encode(digest))
}

/// Why a signature was refused.
#[derive(Debug, PartialEq, Eq)]
pub enum Refused {
    Malformed,
    Stale,
    Mismatch,
}

impl Refused {
    pub fn message(&self) -> &'static str {
        match self {
            Refused::Malformed => "the signature header must be t=<unix time>,v1=<hex HMAC-SHA256>",
            Refused::Stale => "the signature's timestamp is more than 300 seconds from now",
            Refused::Mismatch => "the signature does not match",
        }
    }
}

/// Checks a header value against `body`; on success returns the signed timestamp and
/// the signature bytes (to detect replays).
pub fn verify(
    secret: &str,
    header: &str,
    body: &[u8],
    now_secs: i64,
) -> Result<(i64, Vec<u8>), Refused> {
    let mut timestamp = None;
    let mut signatures = Vec::new();
    for part in header.split(',') {
        match part.trim().split_once('=') {
            Some(("t", value)) => timestamp = value.parse::<i64>().ok(),
            Some(("v1", value)) => {
                let bytes = hex::decode(value).map_err(|_| Refused::Malformed)?;
                if bytes.len() != 32 || signatures.len() == MAX_SIGNATURES {
                    return Err(Refused::Malformed);
                }
                signatures.push(bytes);
            }
            _ => {}
        }
    }
    let (Some(timestamp), false) = (timestamp, signatures.is_empty()) else {
        return Err(Refused::Malformed);
    };
    if now_secs.abs_diff(timestamp) > MAX_SKEW_SECS as u64 {
        return Err(Refused::Stale);
    }
    // One MAC, compared in constant time with each offered signature.
    let expected = mac(secret, timestamp, body);
    for signature in signatures {
        if expected.clone().verify_slice(&signature).is_ok() {
            return Ok((timestamp, signature));
        }
    }
    Err(Refused::Mismatch)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_signature_verifies_and_any_change_breaks_it() {
        let header = sign("s3cret", 1_700_000_000, b"{\"text\":\"hi\"}");
        assert!(verify("s3cret", &header, b"{\"text\":\"hi\"}", 1_700_000_100).is_ok());
        assert_eq!(
            verify("s3cret", &header, b"{\"text\":\"ho\"}", 1_700_000_100),
            Err(Refused::Mismatch)
        );
        assert_eq!(
            verify("other", &header, b"{\"text\":\"hi\"}", 1_700_000_100),
            Err(Refused::Mismatch)
        );
        assert_eq!(
            verify("s3cret", &header, b"{\"text\":\"hi\"}", 1_700_000_301),
            Err(Refused::Stale)
        );
        // A timestamp rewritten to look fresh no longer matches the MAC.
        let moved = header.replace("t=1700000000", "t=1700000200");
        assert_eq!(
            verify(
                "s3cret",
                &format!("t={},v1={}", i64::MIN, "00".repeat(32)),
                b"",
                1_700_000_000
            ),
            Err(Refused::Stale),
            "no overflow"
        );
        assert_eq!(
            verify("s3cret", &moved, b"{\"text\":\"hi\"}", 1_700_000_200),
            Err(Refused::Mismatch)
        );
    }

    #[test]
    fn malformed_headers_are_refused() {
        // More signatures than are ever looked at.
        let five = format!("t=1{}", format!(",v1={}", "00".repeat(32)).repeat(5));
        for bad in [
            "",
            "t=1",
            "v1=00",
            "t=x,v1=00",
            "t=1,v1=zz",
            "t=1,v1=",
            "t=1,v1=00",
            "garbage",
            &five,
        ] {
            assert_eq!(verify("k", bad, b"", 1), Err(Refused::Malformed), "{bad}");
        }
    }

    #[test]
    fn matches_an_independent_hmac() {
        // HMAC-SHA256("key", "1.body"), computed with Python's hmac module.
        assert_eq!(
            sign("key", 1, b"body"),
            "t=1,v1=91b5374b153842ad05b2c4eab9349b8321b14703165bd3fb8b034dfb8be98ae5"
        );
    }
}
