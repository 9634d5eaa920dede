//! Membership changes: join, invite, leave, kick, ban, unban, knock, forget.
//!
//! Spec: <https://spec.matrix.org/v1.12/client-server-api/#room-membership>. Every change is
//! an `m.room.member` event, so the room's auth rules decide; these functions add the
//! checks the endpoints promise beyond them (the target must be in the room to be kicked).

use converge_core::Membership;
use converge_core::auth;
use serde_json::{Value, json};

use super::state::RoomState;
use super::{NewEvent, Rooms};
use crate::error::{Error, Result};

/// The rooms whose members may join `room` without an invite, when its join rule is
/// `restricted` or `knock_restricted` and `user` is neither invited nor joined (who is, gets
/// in without conditions). Entries of other types or without a room ID are ignored, as the
/// spec asks.
fn restricted_allow(room: &RoomState, user: &str) -> Option<Vec<String>> {
    let rules = room.get("m.room.join_rules", "")?;
    let rule = rules.content.get("join_rule")?.as_str()?;
    if !matches!(rule, "restricted" | "knock_restricted")
        || matches!(room.membership(user), Membership::Join | Membership::Invite)
    {
        return None;
    }
    let allowed = rules
        .content
        .get("allow")
        .and_then(Value::as_array)
        .map(|allow| {
            allow
                .iter()
                .filter(|a| a.get("type").and_then(Value::as_str) == Some("m.room_membership"))
                .filter_map(|a| a.get("room_id")?.as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default();
    Some(allowed)
}

impl Rooms {
    /// A user's profile as it goes into their member events.
    pub async fn member_profile(&self, user_id: &str) -> Result<Value> {
        let localpart = user_id
            .strip_prefix('@')
            .and_then(|rest| rest.strip_suffix(&format!(":{}", self.server_name)))
            .unwrap_or_default();
        let mut profile = json!({});
        if let Some(user) = self.store.user(localpart).await? {
            if let Some(name) = user.displayname {
                profile["displayname"] = json!(name);
            }
            if let Some(url) = user.avatar_url {
                profile["avatar_url"] = json!(url);
            }
        }
        Ok(profile)
    }

    async fn set_membership(
        &self,
        room_id: &str,
        sender: &str,
        target: &str,
        membership: &str,
        reason: Option<&str>,
        extra: Value,
    ) -> Result<String> {
        if matches!(membership, "join" | "invite" | "knock")
            && self.store.room_blocked(room_id).await?
        {
            return Err(Error::forbidden(
                "this room was shut down by the server's admins",
            ));
        }
        let mut content = extra;
        content["membership"] = json!(membership);
        if let Some(reason) = reason {
            content["reason"] = json!(reason);
        }
        let (event_id, _) = self
            .send(
                room_id,
                sender,
                NewEvent::state("m.room.member", target, content),
            )
            .await?;
        Ok(event_id)
    }

    /// Joins `user` to a room (by ID).
    pub async fn join(&self, room_id: &str, user: &str, reason: Option<&str>) -> Result<String> {
        let mut profile = self.member_profile(user).await?;
        // Joining again with the same profile changes nothing: no new event.
        let (unchanged, restricted_to) = self
            .snapshot(room_id, |room| {
                let unchanged = room.get("m.room.member", user).is_some_and(|e| {
                    let field = |name: &str| e.content.get(name).cloned();
                    field("membership").as_ref().and_then(|m| m.as_str()) == Some("join")
                        && field("displayname") == profile.get("displayname").cloned()
                        && field("avatar_url") == profile.get("avatar_url").cloned()
                });
                (unchanged, restricted_allow(room, user))
            })
            .await?;
        if unchanged && reason.is_none() {
            return Ok(room_id.to_owned());
        }
        if let Some(allowed) = restricted_to {
            let authoriser = self.authorise_restricted(room_id, user, &allowed).await?;
            profile["join_authorised_via_users_server"] = json!(authoriser);
        }
        self.set_membership(room_id, user, user, "join", reason, profile)
            .await?;
        Ok(room_id.to_owned())
    }

    /// Checks that `user` meets a restricted room's `allow` conditions (joined to one of the
    /// `allowed` rooms) and picks the member who vouches for the join: a local user joined
    /// to the room who may invite, the most powerful first. The auth rules check the pick
    /// again when the join is sent.
    async fn authorise_restricted(
        &self,
        room_id: &str,
        user: &str,
        allowed: &[String],
    ) -> Result<String> {
        let joined = self.joined_rooms(user).await?;
        if !allowed.iter().any(|room| joined.contains(room)) {
            return Err(Error::forbidden(
                "the room is restricted to members of rooms you are not joined to",
            ));
        }
        let local = format!(":{}", self.server_name);
        let authoriser = self
            .snapshot(room_id, |room| {
                let levels = auth::current_power_levels(room.version, room).ok()?;
                room.members(Membership::Join)
                    .filter(|member| member.ends_with(&local))
                    .map(|member| (levels.user_level(member), member))
                    .filter(|(level, _)| *level >= levels.invite())
                    .max_by(|(la, a), (lb, b)| la.cmp(lb).then_with(|| b.cmp(a)))
                    .map(|(_, member)| member.to_owned())
            })
            .await?;
        authoriser.ok_or_else(|| {
            Error::UnableToGrantJoin(
                "nobody in the room may invite, so nobody can authorise the join".into(),
            )
        })
    }

    /// Resolves a room ID or alias to a room ID on this server.
    pub async fn resolve(&self, room_id_or_alias: &str) -> Result<String> {
        if room_id_or_alias.starts_with('#') {
            let mut found = self.store.alias(room_id_or_alias).await?;
            // An alias an application service owns may exist once it is asked.
            if found.is_none() && self.appservices.query_alias(room_id_or_alias).await {
                found = self.store.alias(room_id_or_alias).await?;
            }
            let (room_id, _) =
                found.ok_or_else(|| Error::NotFound("no room has this alias".into()))?;
            Ok(room_id)
        } else {
            Ok(room_id_or_alias.to_owned())
        }
    }

    /// Invites `target`, who must be a user of this server (there is no federation yet).
    pub async fn invite(
        &self,
        room_id: &str,
        sender: &str,
        target: &str,
        reason: Option<&str>,
        is_direct: bool,
    ) -> Result<()> {
        let local = target.ends_with(&format!(":{}", self.server_name));
        let localpart = local.then(|| &target[1..target.len() - self.server_name.len() - 1]);
        let mut exists = false;
        if let Some(localpart) = localpart {
            let mut user = self.store.user(localpart).await?;
            // A user an application service owns may exist once it is asked.
            if user.is_none() && self.appservices.query_user(target).await {
                user = self.store.user(localpart).await?;
            }
            exists = match user {
                Some(user) => !user.deactivated,
                // A bridge makes its users when they are invited (it sees the invite in a
                // transaction), so a user in an appservice's namespaces may be invited first.
                None => self.appservices.claims(target),
            };
        }
        if !exists {
            return Err(Error::forbidden(
                "can only invite existing users of this server",
            ));
        }
        let profile = self.member_profile(target).await?;
        let mut extra = profile;
        if is_direct {
            extra["is_direct"] = json!(true);
        }
        self.set_membership(room_id, sender, target, "invite", reason, extra)
            .await?;
        Ok(())
    }

    /// Announces a user's new profile in every room they are joined to, as a new member
    /// event, so clients show the new name. A room that refuses it is skipped.
    pub async fn update_profile(&self, user: &str) -> Result<()> {
        let profile = self.member_profile(user).await?;
        for row in self.store.user_memberships(user).await? {
            if row.membership != "join" {
                continue;
            }
            let mut content = profile.clone();
            content["membership"] = json!("join");
            if let Err(err) = self
                .send(
                    &row.room_id,
                    user,
                    NewEvent::state("m.room.member", user, content),
                )
                .await
            {
                tracing::warn!(room = %row.room_id, %user, error = %err, "could not announce a profile change");
            }
        }
        Ok(())
    }

    /// Leaves every room the user is in, invited to or knocking on. A room that refuses is
    /// logged and skipped, so one broken room cannot block the rest.
    pub async fn leave_all(&self, user: &str) -> Result<()> {
        for row in self.store.user_memberships(user).await? {
            if matches!(row.membership.as_str(), "join" | "invite" | "knock")
                && let Err(err) = self.leave(&row.room_id, user, None).await
            {
                tracing::warn!(room = %row.room_id, %user, error = %err, "could not leave a room");
            }
        }
        Ok(())
    }

    /// Shuts a room down for a server admin: nobody may join, be invited or knock any more,
    /// it leaves the public directory, and every local member, invitee and knocker leaves.
    /// Returns who left.
    pub async fn shut_down(&self, room_id: &str, admin: &str) -> Result<Vec<String>> {
        if self.store.room(room_id).await?.is_none() {
            return Err(Error::NotFound("no such room".into()));
        }
        self.store
            .block_room(room_id, admin, crate::now_ms())
            .await?;
        self.store.set_room_public(room_id, false).await?;
        let local = format!(":{}", self.server_name);
        let present: Vec<String> = self
            .snapshot(room_id, |room| {
                [Membership::Join, Membership::Invite, Membership::Knock]
                    .into_iter()
                    .flat_map(|m| room.members(m).map(str::to_owned).collect::<Vec<_>>())
                    .filter(|member| member.ends_with(&local))
                    .collect()
            })
            .await?;
        let mut left = Vec::with_capacity(present.len());
        for user in present {
            match self
                .leave(
                    room_id,
                    &user,
                    Some("the server's admins shut this room down"),
                )
                .await
            {
                Ok(()) => left.push(user),
                Err(err) => {
                    tracing::warn!(room = %room_id, %user, error = %err, "could not remove a member from a room being shut down")
                }
            }
        }
        tracing::info!(room = %room_id, %admin, left = left.len(), "room shut down");
        Ok(left)
    }

    /// Leaves a room (or rejects an invite, or withdraws a knock).
    pub async fn leave(&self, room_id: &str, user: &str, reason: Option<&str>) -> Result<()> {
        self.set_membership(room_id, user, user, "leave", reason, json!({}))
            .await?;
        Ok(())
    }

    /// Kicks `target` out of a room: they must be in it, invited or knocking.
    pub async fn kick(
        &self,
        room_id: &str,
        sender: &str,
        target: &str,
        reason: Option<&str>,
    ) -> Result<()> {
        let membership = self
            .snapshot(room_id, |room| room.membership(target))
            .await?;
        if !matches!(
            membership,
            Membership::Join | Membership::Invite | Membership::Knock
        ) {
            return Err(Error::forbidden("the user is not in the room"));
        }
        self.set_membership(room_id, sender, target, "leave", reason, json!({}))
            .await?;
        Ok(())
    }

    /// Bans `target` from a room.
    pub async fn ban(
        &self,
        room_id: &str,
        sender: &str,
        target: &str,
        reason: Option<&str>,
    ) -> Result<()> {
        self.set_membership(room_id, sender, target, "ban", reason, json!({}))
            .await?;
        Ok(())
    }

    /// Lifts a ban: the target's membership becomes `leave`.
    pub async fn unban(
        &self,
        room_id: &str,
        sender: &str,
        target: &str,
        reason: Option<&str>,
    ) -> Result<()> {
        let membership = self
            .snapshot(room_id, |room| room.membership(target))
            .await?;
        if membership != Membership::Ban {
            return Err(Error::forbidden("the user is not banned"));
        }
        self.set_membership(room_id, sender, target, "leave", reason, json!({}))
            .await?;
        Ok(())
    }

    /// Knocks on a room.
    pub async fn knock(&self, room_id: &str, user: &str, reason: Option<&str>) -> Result<()> {
        let profile = self.member_profile(user).await?;
        self.set_membership(room_id, user, user, "knock", reason, profile)
            .await?;
        Ok(())
    }

    /// Forgets a room the user has left.
    pub async fn forget(&self, room_id: &str, user: &str) -> Result<()> {
        let membership = self.snapshot(room_id, |room| room.membership(user)).await?;
        if matches!(
            membership,
            Membership::Join | Membership::Invite | Membership::Knock
        ) {
            return Err(Error::BadRequest(
                "leave the room before forgetting it".into(),
            ));
        }
        self.store.forget_room(user, room_id).await?;
        Ok(())
    }
}
