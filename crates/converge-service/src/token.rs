//! Sync and pagination tokens.
//!
//! A token names a point in the server's one stream: `s{pos}_{eph}` for sync (the event
//! stream position and the ephemeral serial of typing and presence), `t{pos}` for
//! pagination. Both are accepted wherever a position is needed.

use std::fmt;

use converge_core::StreamPos;

use crate::error::Error;

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SyncToken {
    pub pos: StreamPos,
    /// The ephemeral serial (typing, presence) the client has seen.
    pub eph: i64,
}

impl SyncToken {
    pub fn parse(token: &str) -> Result<Self, Error> {
        let invalid = || Error::InvalidParam(format!("{token:?} is not a valid token"));
        if let Some(rest) = token.strip_prefix('s') {
            let (pos, eph) = rest.split_once('_').ok_or_else(invalid)?;
            let pos: i64 = pos.parse().map_err(|_| invalid())?;
            let eph: i64 = eph.parse().map_err(|_| invalid())?;
            if pos < 0 || eph < 0 {
                return Err(invalid());
            }
            Ok(Self {
                pos: StreamPos(pos),
                eph,
            })
        } else if let Some(pos) = token.strip_prefix('t') {
            let pos: i64 = pos.parse().map_err(|_| invalid())?;
            if pos < 0 {
                return Err(invalid());
            }
            Ok(Self {
                pos: StreamPos(pos),
                eph: 0,
            })
        } else {
            Err(invalid())
        }
    }
}

impl fmt::Display for SyncToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "s{}_{}", self.pos.0, self.eph)
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
        };
        assert_eq!(SyncToken::parse(&token.to_string()).unwrap(), token);
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
