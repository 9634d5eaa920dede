//! The gateway registry: one line per gateway. Adding a gateway is a folder beside this
//! file and a line here.

use crate::Component;

/// Every gateway this server knows, in start order.
pub static ALL: &[&Component] = &[&crate::webhooks::COMPONENT, &crate::mqtt::COMPONENT];
