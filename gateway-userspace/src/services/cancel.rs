//! CancelRequest forwarding.
//!
//! Each agent session gets a key minted by sluice (the upstream's own key never reaches the
//! agent); a CancelRequest arrives on a new connection, is looked up here and re-sent upstream
//! with the upstream's key.

use std::{collections::HashMap, sync::Mutex};

#[derive(Clone, Debug)]
pub struct CancelTarget {
    pub upstream: String,
    pub pid: i32,
    pub secret: i32,
    /// Woken on cancel: a statement held for approval is cancelled in the gateway.
    pub held: std::sync::Arc<tokio::sync::Notify>,
}

#[derive(Default)]
pub struct CancelRegistry {
    map: Mutex<HashMap<(i32, i32), CancelTarget>>,
}

fn random_i32() -> i32 {
    i32::from_ne_bytes(crate::util::random_bytes())
}

impl CancelRegistry {
    /// Mints a fresh key for a session and remembers where it leads.
    pub fn register(&self, target: CancelTarget) -> (i32, i32) {
        let mut map = self.map.lock().unwrap_or_else(|p| p.into_inner());
        loop {
            // A positive pid, like a real backend's; the secret is what authenticates the cancel.
            let key = (random_i32() & 0x7fff_ffff, random_i32());
            if let std::collections::hash_map::Entry::Vacant(e) = map.entry(key) {
                e.insert(target);
                return key;
            }
        }
    }

    pub fn unregister(&self, key: (i32, i32)) {
        self.map
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&key);
    }

    pub fn lookup(&self, key: (i32, i32)) -> Option<CancelTarget> {
        self.map
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(&key)
            .cloned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_unique_and_unregister() {
        let r = CancelRegistry::default();
        let t = CancelTarget {
            upstream: "10.0.0.5:5432".into(),
            pid: 42,
            secret: 7,
            held: Default::default(),
        };
        let a = r.register(t.clone());
        let b = r.register(t.clone());
        assert_ne!(a, b);
        assert!(a.0 > 0);
        let found = r.lookup(a).expect("registered");
        assert_eq!(
            (found.upstream.as_str(), found.pid, found.secret),
            ("10.0.0.5:5432", 42, 7)
        );
        assert!(std::sync::Arc::ptr_eq(&found.held, &t.held));
        r.unregister(a);
        assert!(r.lookup(a).is_none());
        assert!(
            r.lookup((a.0, a.1.wrapping_add(1))).is_none(),
            "a wrong secret finds nothing"
        );
    }
}
