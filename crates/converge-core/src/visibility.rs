//! History visibility: whether a user may see an event, judged at that event from the
//! room's `m.room.history_visibility` and the user's membership as they were then.
//!
//! Spec: <https://spec.matrix.org/v1.16/client-server-api/#history-visibility>. An event is
//! visible to a user if
//! 1. the history visibility was `world_readable`, or
//! 2. the user's membership was `join`, or
//! 3. the history visibility was `shared` and the user joined at some point after the event,
//!    or
//! 4. the history visibility was `invited` and the user's membership was `invite`.
//!
//! "Was" means the state before the event; a history-visibility event itself is visible if
//! the setting before or after it allows, and for a user's own membership event the more
//! joined of their membership before and after it counts (so a user sees their own join,
//! and the kick or leave that ended their membership).

use crate::auth::Membership;

/// A room's `history_visibility`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HistoryVisibility {
    WorldReadable,
    Shared,
    Invited,
    Joined,
}

impl HistoryVisibility {
    /// The setting a content value names; anything unknown (or none) is `shared`, the
    /// spec's default.
    pub fn parse(value: Option<&str>) -> Self {
        match value {
            Some("world_readable") => Self::WorldReadable,
            Some("invited") => Self::Invited,
            Some("joined") => Self::Joined,
            _ => Self::Shared,
        }
    }
}

/// How a room's history visibility and one user's membership changed over the stream:
/// enough to judge every event of the room for that user.
#[derive(Clone, Debug, Default)]
pub struct VisibilityHistory {
    /// `(position, setting)` of each history-visibility event, oldest first.
    settings: Vec<(i64, HistoryVisibility)>,
    /// `(position, membership)` of each of the user's membership events, oldest first.
    memberships: Vec<(i64, Membership)>,
}

impl VisibilityHistory {
    /// From the changes in any order.
    pub fn new(
        mut settings: Vec<(i64, HistoryVisibility)>,
        mut memberships: Vec<(i64, Membership)>,
    ) -> Self {
        settings.sort_by_key(|(pos, _)| *pos);
        memberships.sort_by_key(|(pos, _)| *pos);
        Self {
            settings,
            memberships,
        }
    }

    /// The setting in force before the event at `pos`.
    fn setting_before(&self, pos: i64) -> HistoryVisibility {
        self.settings
            .iter()
            .rev()
            .find(|(at, _)| *at < pos)
            .map_or(HistoryVisibility::Shared, |(_, s)| *s)
    }

    /// The user's membership at the event at `pos` (their own membership event included).
    fn membership_at(&self, pos: i64) -> Membership {
        self.memberships
            .iter()
            .rev()
            .find(|(at, _)| *at <= pos)
            .map_or(Membership::Leave, |(_, m)| *m)
    }

    fn joined_after(&self, pos: i64) -> bool {
        self.memberships
            .iter()
            .any(|(at, m)| *at > pos && *m == Membership::Join)
    }

    /// The membership before the event at `pos`.
    fn membership_before(&self, pos: i64) -> Membership {
        self.memberships
            .iter()
            .rev()
            .find(|(at, _)| *at < pos)
            .map_or(Membership::Leave, |(_, m)| *m)
    }

    fn allows(&self, setting: HistoryVisibility, pos: i64, own_membership: bool) -> bool {
        let mut membership = self.membership_at(pos);
        if own_membership {
            let before = self.membership_before(pos);
            if before == Membership::Join
                || (before == Membership::Invite && membership != Membership::Join)
            {
                membership = before;
            }
        }
        setting == HistoryVisibility::WorldReadable
            || membership == Membership::Join
            || (setting == HistoryVisibility::Shared && self.joined_after(pos))
            || (setting == HistoryVisibility::Invited && membership == Membership::Invite)
    }

    /// Whether the user may see the event at `pos`. `sets` is the setting the event itself
    /// sets when it is a history-visibility event; `own_membership` says it is one of the
    /// user's own membership events.
    pub fn visible(&self, pos: i64, sets: Option<HistoryVisibility>, own_membership: bool) -> bool {
        self.allows(self.setting_before(pos), pos, own_membership)
            || sets.is_some_and(|after| self.allows(after, pos, own_membership))
    }
}

#[cfg(test)]
mod tests {
    use super::HistoryVisibility::*;
    use super::*;
    use crate::auth::Membership::{Ban, Invite, Join, Leave};

    /// A room whose setting is `setting` from position 1, where the user is invited at 10,
    /// joins at 20 and leaves at 30.
    fn room(setting: HistoryVisibility) -> VisibilityHistory {
        VisibilityHistory::new(
            vec![(1, setting)],
            vec![(10, Invite), (20, Join), (30, Leave)],
        )
    }

    #[test]
    fn each_setting_judged_at_each_event() {
        // (setting, event position, visible)
        let cases = [
            (WorldReadable, 5, true),
            (WorldReadable, 35, true),
            (Shared, 5, true),
            (Shared, 15, true),
            (Shared, 25, true),
            (Shared, 35, false),
            (Invited, 5, false),
            (Invited, 10, true),
            (Invited, 15, true),
            (Invited, 25, true),
            (Invited, 35, false),
            (Joined, 5, false),
            (Joined, 15, false),
            (Joined, 20, true),
            (Joined, 25, true),
            (Joined, 30, false),
            (Joined, 35, false),
        ];
        for (setting, pos, visible) in cases {
            assert_eq!(
                room(setting).visible(pos, None, false),
                visible,
                "{setting:?} at {pos}"
            );
        }
    }

    #[test]
    fn the_setting_in_force_is_the_one_before_the_event() {
        // Joined-only until 50, shared from then: the user joined at 60.
        let history = VisibilityHistory::new(vec![(1, Joined), (50, Shared)], vec![(60, Join)]);
        assert!(
            !history.visible(40, None, false),
            "joined-only, before the join"
        );
        assert!(
            history.visible(55, None, false),
            "shared, and the user joined later"
        );
        // The change itself is visible if the setting before or after it allows.
        assert!(history.visible(50, Some(Shared), false));
        assert!(!history.visible(50, Some(Joined), false));
    }

    #[test]
    fn a_user_who_never_joined_sees_only_world_readable_history() {
        let history = VisibilityHistory::new(vec![(1, Shared), (5, WorldReadable)], vec![]);
        assert!(!history.visible(3, None, false));
        assert!(history.visible(7, None, false));
        let banned = VisibilityHistory::new(vec![(1, Shared)], vec![(2, Join), (4, Ban)]);
        assert!(banned.visible(3, None, false));
        assert!(!banned.visible(6, None, false), "after a ban, nothing new");
    }

    #[test]
    fn own_membership_events_count_the_more_joined_side() {
        let history = room(Joined);
        assert!(history.visible(20, None, true), "the user's own join");
        assert!(
            history.visible(30, None, true),
            "the leave that ended the membership"
        );
        assert!(
            !history.visible(30, None, false),
            "as anybody else's event it is not"
        );
        assert!(
            !history.visible(10, None, true),
            "an invite under joined-only history"
        );
        assert!(
            room(Invited).visible(10, None, true),
            "an invite under invited history"
        );
    }

    #[test]
    fn unknown_settings_are_shared() {
        assert_eq!(HistoryVisibility::parse(None), Shared);
        assert_eq!(HistoryVisibility::parse(Some("martian")), Shared);
        assert_eq!(HistoryVisibility::parse(Some("joined")), Joined);
    }
}
