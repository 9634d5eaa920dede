//! Sync and pagination tokens.
//!
//! A token names a point in the server's one stream: `s{pos}_{eph}_{td}` for sync (the
//! event stream position, the ephemeral serial of typing and presence, and how far the
//! device's to-device messages were delivered), `t{pos}` for pagination. Both are accepted
//! wherever a position is needed; an older `s{pos}_{eph}` means to-device up to `pos`.

use std::fmt;

use converge_core::StreamPos;

use crate::error::Error;

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SyncToken {
    pub pos: StreamPos,
    /// The ephemeral serial (typing, presence) the client has seen.
    pub eph: i64,
    /// The to-device messages up to here were delivered (they may lag `pos` when a sync
    /// had more than it could carry).
    pub to_device: StreamPos,
}

impl SyncToken {
    pub fn parse(token: &str) -> Result<Self, Error> {
        let invalid = || Error::InvalidParam(format!("{token:?} is not a valid token"));
        if let Some(rest) = token.strip_prefix('s') {
            let mut parts = rest.split('_');
            let mut number = || -> Result<Option<i64>, Error> {
                match parts.next() {
                    None => Ok(None),
                    Some(part) => match part.parse::<i64>() {
                        Ok(n) if n >= 0 => Ok(Some(n)),
                        _ => Err(invalid()),
                    },
                }
            };
            let pos = number()?.ok_or_else(invalid)?;
            let eph = number()?.ok_or_else(invalid)?;
            let to_device = number()?.unwrap_or(pos);
            if number()?.is_some() || to_device > pos {
                return Err(invalid());
            }
            Ok(Self {
                pos: StreamPos(pos),
                eph,
                to_device: StreamPos(to_device),
            })
        } else if let Some(pos) = token.strip_prefix('t') {
            let pos: i64 = pos.parse().map_err(|_| invalid())?;
            if pos < 0 {
                return Err(invalid());
            }
            Ok(Self {
                pos: StreamPos(pos),
                eph: 0,
                to_device: StreamPos(pos),
            })
        } else {
            Err(invalid())
        }
    }
}

impl fmt::Display for SyncToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "s{}_{}_{}", self.pos.0, self.eph, self.to_device.0)
    }
}

/// A pagination token for the point just after `pos`.
pub fn page_token(pos: StreamPos) -> String {
    format!("t{}", pos.0.max(0))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_round_trip_and_garbage_is_refused() {
        let token = SyncToken {
            pos: StreamPos(42),
            eph: 7,
            to_device: StreamPos(40),
        };
        assert_eq!(SyncToken::parse(&token.to_string()).unwrap(), token);
        let old = SyncToken::parse("s42_7").unwrap();
        assert_eq!(
            old.to_device,
            StreamPos(42),
            "older tokens delivered to-device too"
        );
        assert!(
            SyncToken::parse("s42_7_43").is_err(),
            "to-device never ahead"
        );
        assert!(SyncToken::parse("s42_7_1_1").is_err());
        assert_eq!(SyncToken::parse("t9").unwrap().pos, StreamPos(9));
        for bad in [
            "",
            "s",
            "s1",
            "s1_",
            "s_1",
            "sx_1",
            "s-1_0",
            "t-3",
            "tabc",
            "42",
            "s1_2_3",
            "s99999999999999999999_0",
        ] {
            assert!(SyncToken::parse(bad).is_err(), "{bad}");
        }
    }
}
