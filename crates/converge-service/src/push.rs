//! Push rules and notifications: each user's rules (the spec's server defaults plus their
//! own, kept as the account data `m.push_rules` so syncs carry every change), compiled once
//! and cached; the evaluation of every new event for every member, which decides what
//! counts as a notification; the unread counts and `/notifications` built on that.
//!
//! Spec: <https://spec.matrix.org/v1.16/client-server-api/#push-notifications>.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};

use converge_core::push::{
    CompiledRules, EventPlan, FlattenedEvent, PushContext, insert_legacy_mention_rules,
    validate_new_rule,
};
use converge_core::{PowerLevels, StreamPos};
use converge_store::{EventNotifications, Notification, Store, WriteOp};
use ruma::push::{Action, AnyPushRuleRef, NewPushRule, PushCondition, RuleKind, Ruleset};
use ruma::{OwnedUserId, UserId};
use serde_json::{Value, json};

use crate::accounts::Reserved;
use crate::caller::Caller;
use crate::error::{Error, Result};
use crate::notifier::Notifier;

/// The account data type that holds a user's rules.
pub const PUSH_RULES: &str = "m.push_rules";
/// Compiled rule sets kept at most; past it the cache starts over.
const MAX_CACHED: usize = 100_000;
/// Most user-defined rules a user may have.
const MAX_USER_RULES: usize = 500;
/// The longest page of `/notifications`.
const MAX_NOTIFICATIONS_PAGE: u32 = 100;

/// A member an event may notify, with what the room knows of them.
pub struct Recipient<'a> {
    pub user_id: &'a str,
    pub display_name: Option<&'a str>,
}

/// Unread notification counts, for the room and per thread when asked.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct UnreadCounts {
    pub notifications: u64,
    pub highlights: u64,
    /// Per thread root (not the main timeline), when the client asked for thread counts.
    pub threads: BTreeMap<String, (u64, u64)>,
}

pub struct PushRules {
    store: Store,
    notifier: Arc<dyn Notifier>,
    /// The gateways' users have no client to notify.
    reserved: Arc<Reserved>,
    cache: Mutex<HashMap<String, Arc<CompiledRules>>>,
    /// The server defaults, compiled once for everyone who never changed their rules (the
    /// compiled rules stand for "the recipient" where a ruleset names its owner).
    defaults: Arc<CompiledRules>,
}

impl PushRules {
    pub fn new(store: Store, notifier: Arc<dyn Notifier>, reserved: Arc<Reserved>) -> Self {
        let anyone =
            OwnedUserId::try_from("@push-defaults:converge.invalid").expect("a valid user ID");
        Self {
            store,
            notifier,
            reserved,
            cache: Mutex::default(),
            defaults: Arc::new(CompiledRules::new(&Self::server_default(&anyone), &anyone)),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Arc<CompiledRules>>> {
        self.cache.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The spec's server-default rules for a user (with the legacy mention rules v1.16 still
    /// lists).
    pub fn server_default(user: &UserId) -> Ruleset {
        let mut ruleset = Ruleset::server_default(user);
        insert_legacy_mention_rules(&mut ruleset, user);
        ruleset
    }

    /// A user's rules: their stored rules, with any server-default rule they do not have
    /// yet (a newer server's), or the server defaults.
    pub async fn ruleset(&self, user: &UserId) -> Result<Ruleset> {
        Ok(self
            .stored(user)
            .await?
            .unwrap_or_else(|| Self::server_default(user)))
    }

    /// A user's stored rules, completed with any server-default rule they do not have yet;
    /// `None` for a user who never changed theirs.
    async fn stored(&self, user: &UserId) -> Result<Option<Ruleset>> {
        let stored = self
            .store
            .account_data(user.as_str(), None, PUSH_RULES)
            .await?
            .and_then(|json| serde_json::from_str::<Value>(&json).ok())
            .and_then(|value| serde_json::from_value::<Ruleset>(value["global"].clone()).ok());
        let Some(mut ruleset) = stored else {
            return Ok(None);
        };
        let defaults = Self::server_default(user);
        for rule in defaults.override_ {
            if ruleset.override_.get(rule.rule_id.as_str()).is_none() {
                ruleset.override_.insert(rule);
            }
        }
        for rule in defaults.content {
            if ruleset.content.get(rule.rule_id.as_str()).is_none() {
                ruleset.content.insert(rule);
            }
        }
        for rule in defaults.underride {
            if ruleset.underride.get(rule.rule_id.as_str()).is_none() {
                ruleset.underride.insert(rule);
            }
        }
        Ok(Some(ruleset))
    }

    /// The `m.push_rules` account data for a user who never changed their rules.
    pub fn default_account_data(user: &UserId) -> Value {
        json!({ "global": Self::server_default(user) })
    }

    /// Stores a user's changed rules (through the ordered writer, so their syncs see the
    /// change as account data) and drops the compiled copy.
    async fn save(&self, user: &UserId, ruleset: &Ruleset) -> Result<()> {
        let content = json!({ "global": ruleset }).to_string();
        self.store
            .append(WriteOp::AccountData {
                user_id: user.to_string(),
                room_id: None,
                data_type: PUSH_RULES.to_owned(),
                content,
            })
            .await?;
        self.lock().remove(user.as_str());
        self.notifier.notify(&mut std::iter::once(user.as_str()));
        Ok(())
    }

    /// `GET /pushrules/` and `GET /pushrules/global/`.
    pub async fn all(&self, caller: &Caller) -> Result<Ruleset> {
        self.ruleset(&caller.user_id).await
    }

    /// `GET /pushrules/global/{kind}/{ruleId}`.
    pub async fn rule(&self, caller: &Caller, kind: RuleKind, rule_id: &str) -> Result<Value> {
        let ruleset = self.ruleset(&caller.user_id).await?;
        let rule = ruleset.get(kind, rule_id).ok_or_else(not_found)?;
        Ok(rule_json(rule))
    }

    /// `PUT /pushrules/global/{kind}/{ruleId}`: adds or replaces a user-defined rule,
    /// placed before or after another user-defined rule of its kind if asked.
    pub async fn put(
        &self,
        caller: &Caller,
        rule: NewPushRule,
        before: Option<&str>,
        after: Option<&str>,
    ) -> Result<()> {
        validate_new_rule(&rule).map_err(|e| Error::InvalidParam(e.reason().to_owned()))?;
        if let NewPushRule::Override(r) | NewPushRule::Underride(r) = &rule
            && let Some(unknown) = r.conditions.iter().find(|c| !known_condition(c))
        {
            return Err(Error::InvalidParam(format!(
                "unknown push rule condition kind {:?}",
                serde_json::to_value(unknown)
                    .ok()
                    .and_then(|v| v["kind"].as_str().map(str::to_owned))
                    .unwrap_or_default()
            )));
        }
        let mut ruleset = self.ruleset(&caller.user_id).await?;
        let user_rules = ruleset.iter().filter(|r| !r.is_server_default()).count();
        if user_rules >= MAX_USER_RULES && ruleset.get(rule.kind(), rule.rule_id()).is_none() {
            return Err(Error::LimitExceeded {
                retry_after_ms: 60_000,
            });
        }
        ruleset.insert(rule, after, before).map_err(|e| {
            use ruma::push::InsertPushRuleError as E;
            match e {
                E::UnknownRuleId => {
                    Error::NotFound("no such rule to place the new one against".into())
                }
                E::BeforeHigherThanAfter => {
                    Error::BadRequest("`before` is ranked above `after`".into())
                }
                E::RelativeToServerDefaultRule => Error::BadRequest(
                    "a rule cannot be placed relative to a server-default rule".into(),
                ),
                E::ServerDefaultRuleId => Error::BadRequest(
                    "rule IDs starting with '.' are reserved for the server".into(),
                ),
                other => Error::InvalidParam(other.to_string()),
            }
        })?;
        self.save(&caller.user_id, &ruleset).await
    }

    /// `DELETE /pushrules/global/{kind}/{ruleId}`.
    pub async fn delete(&self, caller: &Caller, kind: RuleKind, rule_id: &str) -> Result<()> {
        let mut ruleset = self.ruleset(&caller.user_id).await?;
        ruleset.remove(kind, rule_id).map_err(|e| match e {
            ruma::push::RemovePushRuleError::ServerDefault => {
                Error::BadRequest("server-default rules cannot be deleted".into())
            }
            _ => not_found(),
        })?;
        self.save(&caller.user_id, &ruleset).await
    }

    /// `GET /pushrules/global/{kind}/{ruleId}/enabled`.
    pub async fn enabled(&self, caller: &Caller, kind: RuleKind, rule_id: &str) -> Result<bool> {
        let ruleset = self.ruleset(&caller.user_id).await?;
        Ok(ruleset.get(kind, rule_id).ok_or_else(not_found)?.enabled())
    }

    /// `PUT /pushrules/global/{kind}/{ruleId}/enabled`.
    pub async fn set_enabled(
        &self,
        caller: &Caller,
        kind: RuleKind,
        rule_id: &str,
        enabled: bool,
    ) -> Result<()> {
        let mut ruleset = self.ruleset(&caller.user_id).await?;
        ruleset
            .set_enabled(kind, rule_id, enabled)
            .map_err(|_| not_found())?;
        self.save(&caller.user_id, &ruleset).await
    }

    /// `GET /pushrules/global/{kind}/{ruleId}/actions`.
    pub async fn actions(
        &self,
        caller: &Caller,
        kind: RuleKind,
        rule_id: &str,
    ) -> Result<Vec<Action>> {
        let ruleset = self.ruleset(&caller.user_id).await?;
        Ok(ruleset
            .get(kind, rule_id)
            .ok_or_else(not_found)?
            .actions()
            .to_vec())
    }

    /// `PUT /pushrules/global/{kind}/{ruleId}/actions`.
    pub async fn set_actions(
        &self,
        caller: &Caller,
        kind: RuleKind,
        rule_id: &str,
        actions: Vec<Action>,
    ) -> Result<()> {
        converge_core::push::validate_actions(&actions)
            .map_err(|e| Error::InvalidParam(e.reason().to_owned()))?;
        let mut ruleset = self.ruleset(&caller.user_id).await?;
        ruleset
            .set_actions(kind, rule_id, actions)
            .map_err(|_| not_found())?;
        self.save(&caller.user_id, &ruleset).await
    }

    /// The compiled rules of a user, from the cache or compiled now: the shared server
    /// defaults for a user who never changed theirs.
    async fn compiled(&self, user: &str) -> Result<Arc<CompiledRules>> {
        if let Some(rules) = self.lock().get(user) {
            return Ok(rules.clone());
        }
        let user_id = OwnedUserId::try_from(user).map_err(Error::internal)?;
        let compiled = match self.stored(&user_id).await? {
            None => self.defaults.clone(),
            Some(ruleset) => {
                let compiled = Arc::new(CompiledRules::new(&ruleset, &user_id));
                for (rule, why) in compiled.skipped() {
                    tracing::debug!(user, rule, why, "push rule never matches");
                }
                compiled
            }
        };
        let mut cache = self.lock();
        if cache.len() >= MAX_CACHED {
            cache.clear();
        }
        cache.insert(user.to_owned(), compiled.clone());
        Ok(compiled)
    }

    /// What a new event means for each of `recipients` (the room's joined members, and an
    /// invitee for their invite): the notifications to store with it, as the outcome most
    /// members share and the recipients whose rules decided otherwise. `event` is the client
    /// form with `room_id`.
    pub async fn evaluate(
        &self,
        event: &Value,
        recipients: &[Recipient<'_>],
        invitee: Option<&str>,
        power_levels: &PowerLevels,
        member_count: u64,
    ) -> Result<EventNotifications> {
        let sender = event["sender"].as_str().unwrap_or_default();
        let flattened = FlattenedEvent::new(event);
        let context = PushContext::new(power_levels, sender, member_count);
        let thread_id = match &event["content"]["m.relates_to"] {
            relation if relation["rel_type"] == "m.thread" => {
                relation["event_id"].as_str().unwrap_or("main").to_owned()
            }
            _ => "main".to_owned(),
        };
        // The distinct notifications (highlight, actions) decided, and each recipient's
        // (`None`: no notification), as an index into them: there are few distinct ones.
        let mut notified: Vec<(&Recipient<'_>, Arc<CompiledRules>)> =
            Vec::with_capacity(recipients.len());
        for recipient in recipients {
            if recipient.user_id == sender || self.reserved.is_virtual(recipient.user_id) {
                continue;
            }
            notified.push((recipient, self.compiled(recipient.user_id).await?));
        }
        // One plan per distinct compiled ruleset: most members share the server defaults.
        let mut plans: HashMap<*const CompiledRules, EventPlan<'_>> = HashMap::new();
        for (_, rules) in &notified {
            plans
                .entry(Arc::as_ptr(rules))
                .or_insert_with(|| rules.plan(&flattened, &context));
        }
        let mut distinct: Vec<Notification> = Vec::new();
        let mut outcomes: Vec<(&str, Option<usize>)> = Vec::with_capacity(notified.len());
        for (recipient, rules) in &notified {
            let outcome = plans[&Arc::as_ptr(rules)].outcome(
                &flattened,
                &context.with_display_name(recipient.display_name),
                recipient.user_id,
            );
            let decided = outcome.notify.then(|| {
                let same = |n: &Notification| {
                    n.highlight == outcome.highlight && n.actions == outcome.actions_json
                };
                distinct.iter().position(same).unwrap_or_else(|| {
                    distinct.push(Notification {
                        highlight: outcome.highlight,
                        actions: outcome.actions_json.to_owned(),
                    });
                    distinct.len() - 1
                })
            });
            outcomes.push((recipient.user_id, decided));
        }
        // The members' outcome is the most common one among the joined members.
        let mut tally = vec![0usize; distinct.len() + 1];
        for (user, outcome) in &outcomes {
            if Some(*user) != invitee {
                tally[outcome.map_or(distinct.len(), |i| i)] += 1;
            }
        }
        // On a tie, no notification wins (the last index), so silence is the default.
        let most = (0..tally.len())
            .max_by_key(|&i| tally[i])
            .unwrap_or(distinct.len());
        let members = (most < distinct.len()).then_some(most);
        let exceptions = outcomes
            .iter()
            .filter(|(user, outcome)| {
                if Some(*user) == invitee {
                    outcome.is_some()
                } else {
                    *outcome != members
                }
            })
            .map(|(user, outcome)| ((*user).to_owned(), outcome.map(|i| distinct[i].clone())))
            .collect();
        Ok(EventNotifications {
            thread_id,
            members: members.map(|i| distinct[i].clone()),
            exceptions,
        })
    }

    /// A user's unread notifications in a room: those after their read receipts and after
    /// they joined (`joined_at`; what notified them before, such as their invite, is not
    /// the room's). Without `by_thread`, any receipt counts for the whole room; with it, the
    /// main timeline and each thread count after their own receipt (or an unthreaded one,
    /// if later).
    pub async fn unread(
        &self,
        user: &str,
        room_id: &str,
        joined_at: StreamPos,
        by_thread: bool,
    ) -> Result<UnreadCounts> {
        let receipts = self.store.read_positions(room_id, user).await?;
        let unthreaded = receipts
            .iter()
            .filter(|(thread, _)| thread.is_empty())
            .map(|(_, pos)| *pos)
            .max()
            .unwrap_or_default()
            .max(joined_at);
        let mut counts = UnreadCounts::default();
        if !by_thread {
            let after = receipts
                .iter()
                .map(|(_, pos)| *pos)
                .max()
                .unwrap_or_default()
                .max(joined_at);
            for thread in self.store.notification_counts(user, room_id, after).await? {
                counts.notifications += thread.notifications;
                counts.highlights += thread.highlights;
            }
            return Ok(counts);
        }
        let own: HashMap<&str, StreamPos> = receipts
            .iter()
            .filter(|(thread, _)| !thread.is_empty())
            .map(|(thread, pos)| (thread.as_str(), *pos))
            .collect();
        for thread in self
            .store
            .notification_counts(user, room_id, unthreaded)
            .await?
        {
            let (mut n, mut h) = (thread.notifications, thread.highlights);
            if let Some(&read) = own
                .get(thread.thread_id.as_str())
                .filter(|p| **p > unthreaded)
            {
                // This thread was read further than the unthreaded receipt says.
                let later = self.store.notification_counts(user, room_id, read).await?;
                let mine = later.into_iter().find(|t| t.thread_id == thread.thread_id);
                (n, h) = mine.map_or((0, 0), |t| (t.notifications, t.highlights));
            }
            if thread.thread_id == "main" {
                counts.notifications += n;
                counts.highlights += h;
            } else if n > 0 {
                counts.threads.insert(thread.thread_id, (n, h));
            }
        }
        Ok(counts)
    }

    /// `GET /notifications`: the caller's notifications, newest first, with whether each
    /// is read; `from` is the token of the previous page.
    pub async fn notifications(
        &self,
        caller: &Caller,
        from: Option<&str>,
        limit: Option<u32>,
        only_highlight: bool,
        events: &crate::timeline::Timeline,
    ) -> Result<Value> {
        let user = caller.user_id.as_str();
        let before = match from {
            Some(token) => StreamPos(
                token
                    .parse::<i64>()
                    .map_err(|_| Error::InvalidParam("invalid from token".into()))?,
            ),
            None => StreamPos(i64::MAX),
        };
        let limit = limit.unwrap_or(20).clamp(1, MAX_NOTIFICATIONS_PAGE);
        let rows = self
            .store
            .notifications(user, before, limit, only_highlight)
            .await?;
        let mut read_at: HashMap<String, StreamPos> = HashMap::new();
        let mut out = Vec::with_capacity(rows.len());
        for row in &rows {
            let Some(event) = events
                .visible_event(caller, &row.room_id, &row.event_id)
                .await?
            else {
                continue;
            };
            if !read_at.contains_key(&row.room_id) {
                let pos = self
                    .store
                    .read_positions(&row.room_id, user)
                    .await?
                    .into_iter()
                    .map(|(_, pos)| pos)
                    .max()
                    .unwrap_or_default();
                read_at.insert(row.room_id.clone(), pos);
            }
            out.push(json!({
                "actions": serde_json::from_str::<Value>(&row.actions).unwrap_or(json!([])),
                "event": event,
                "read": row.stream_pos <= read_at[&row.room_id],
                "room_id": row.room_id,
                "ts": row.ts,
            }));
        }
        let mut response = json!({ "notifications": out });
        if rows.len() == limit as usize
            && let Some(last) = rows.last()
        {
            response["next_token"] = json!(last.stream_pos.0.to_string());
        }
        Ok(response)
    }
}

fn not_found() -> Error {
    Error::NotFound("no such push rule".into())
}

/// Whether the server knows a condition kind (unknown ones are refused when a rule is put,
/// though a stored rule with one would never match).
fn known_condition(condition: &PushCondition) -> bool {
    #[allow(deprecated)]
    !matches!(condition, PushCondition::_Custom(_))
}

/// A rule as the API shows it.
fn rule_json(rule: AnyPushRuleRef<'_>) -> Value {
    let value = match rule {
        AnyPushRuleRef::Override(r) | AnyPushRuleRef::Underride(r) => serde_json::to_value(r),
        AnyPushRuleRef::Content(r) => serde_json::to_value(r),
        AnyPushRuleRef::Room(r) => serde_json::to_value(r),
        AnyPushRuleRef::Sender(r) => serde_json::to_value(r),
        _ => Ok(Value::Null),
    };
    value.unwrap_or(Value::Null)
}
