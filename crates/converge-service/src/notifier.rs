//! Wake-ups for long-polling syncs.
//!
//! Writers say which users have something new; each waiting sync holds its user's
//! [`Notify`]. The interface is a trait so that a multi-node notifier (PostgreSQL
//! LISTEN/NOTIFY or NATS) can replace the in-process one without touching sync.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use tokio::sync::Notify;

pub trait Notifier: Send + Sync {
    /// Wakes every sync waiting for any of `users`.
    fn notify(&self, users: &mut dyn Iterator<Item = &str>);
    /// The handle a sync for `user` waits on.
    fn subscribe(&self, user: &str) -> Arc<Notify>;
}

/// The single-process notifier.
#[derive(Default)]
pub struct LocalNotifier {
    waiters: Mutex<HashMap<String, Arc<Notify>>>,
}

impl Notifier for LocalNotifier {
    fn notify(&self, users: &mut dyn Iterator<Item = &str>) {
        let waiters = self.waiters.lock().unwrap_or_else(|e| e.into_inner());
        for user in users {
            if let Some(notify) = waiters.get(user) {
                notify.notify_waiters();
            }
        }
    }

    fn subscribe(&self, user: &str) -> Arc<Notify> {
        let mut waiters = self.waiters.lock().unwrap_or_else(|e| e.into_inner());
        if waiters.len() > 10_000 {
            // Drop handles no sync holds any more.
            waiters.retain(|_, notify| Arc::strong_count(notify) > 1);
        }
        waiters.entry(user.to_owned()).or_default().clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[tokio::test]
    async fn only_the_named_users_wake() {
        let notifier = LocalNotifier::default();
        let alice = notifier.subscribe("@alice:x");
        let bob = notifier.subscribe("@bob:x");
        let alice_waits = alice.notified();
        let bob_waits = bob.notified();
        tokio::pin!(alice_waits, bob_waits);
        alice_waits.as_mut().enable();
        bob_waits.as_mut().enable();
        notifier.notify(&mut ["@alice:x"].into_iter());
        tokio::time::timeout(Duration::from_secs(1), alice_waits)
            .await
            .expect("alice woke");
        assert!(
            tokio::time::timeout(Duration::from_millis(50), bob_waits)
                .await
                .is_err(),
            "bob slept on"
        );
    }
}
