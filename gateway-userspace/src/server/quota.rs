//! Connection quotas: the gateway's, each target's and each process's, so one agent holding
//! idle connections cannot lock every other agent (or target) out.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
};

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::config::Config;

pub struct Quotas {
    global: Arc<Semaphore>,
    global_limit: usize,
    targets: HashMap<String, Arc<TargetQuota>>,
}

struct TargetQuota {
    total: Arc<Semaphore>,
    limit: usize,
    per_process: usize,
    by_pid: Mutex<HashMap<u32, usize>>,
}

/// Held for a connection's life.
pub struct Permit {
    _global: OwnedSemaphorePermit,
    _target: OwnedSemaphorePermit,
    process: (Arc<TargetQuota>, u32),
}

impl Drop for Permit {
    fn drop(&mut self) {
        let (quota, pid) = &self.process;
        let mut by_pid = quota.by_pid.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(n) = by_pid.get_mut(pid) {
            *n -= 1;
            if *n == 0 {
                by_pid.remove(pid);
            }
        }
    }
}

/// Which limit refused a connection.
#[derive(Debug, PartialEq, Eq)]
pub enum Exceeded {
    Gateway(usize),
    Target(usize),
    Process(usize),
}

impl std::fmt::Display for Exceeded {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Exceeded::Gateway(n) => write!(f, "the gateway's {n} connections (max_connections)"),
            Exceeded::Target(n) => write!(
                f,
                "the target's {n} connections (targets[].max_connections)"
            ),
            Exceeded::Process(n) => write!(
                f,
                "the process's {n} connections (targets[].max_connections_per_process)"
            ),
        }
    }
}

impl Quotas {
    pub fn new(config: &Config) -> Quotas {
        Quotas {
            global: Arc::new(Semaphore::new(config.max_connections)),
            global_limit: config.max_connections,
            targets: config
                .targets
                .iter()
                .map(|t| {
                    (
                        t.name.clone(),
                        Arc::new(TargetQuota {
                            total: Arc::new(Semaphore::new(t.max_connections)),
                            limit: t.max_connections,
                            per_process: t.max_connections_per_process,
                            by_pid: Mutex::new(HashMap::new()),
                        }),
                    )
                })
                .collect(),
        }
    }

    /// A slot for a connection of `pid` in `target`, or the limit it would exceed.
    pub fn admit(&self, target: &str, pid: u32) -> Result<Permit, Exceeded> {
        let quota = self
            .targets
            .get(target)
            .cloned()
            .ok_or(Exceeded::Target(0))?;
        let global = self
            .global
            .clone()
            .try_acquire_owned()
            .map_err(|_| Exceeded::Gateway(self.global_limit))?;
        let target_permit = quota
            .total
            .clone()
            .try_acquire_owned()
            .map_err(|_| Exceeded::Target(quota.limit))?;
        {
            let mut by_pid = quota.by_pid.lock().unwrap_or_else(|p| p.into_inner());
            let n = by_pid.entry(pid).or_insert(0);
            if *n >= quota.per_process {
                return Err(Exceeded::Process(quota.per_process));
            }
            *n += 1;
        }
        Ok(Permit {
            _global: global,
            _target: target_permit,
            process: (quota, pid),
        })
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;

    #[test]
    fn each_limit_holds_and_slots_come_back() {
        let config = Config::parse(
            "max_connections: 5\ntargets:\n  - { name: a, egress: deny, max_connections: 3, max_connections_per_process: 2 }\n  - { name: b, egress: deny }\n",
            Path::new("p.yaml"),
        )
        .unwrap();
        let q = Quotas::new(&config);
        let p1 = q.admit("a", 10).unwrap();
        let p2 = q.admit("a", 10).unwrap();
        assert_eq!(q.admit("a", 10).err(), Some(Exceeded::Process(2)));
        let p3 = q.admit("a", 11).unwrap();
        assert_eq!(q.admit("a", 12).err(), Some(Exceeded::Target(3)));
        // Target b is unaffected by a's agents, until the gateway itself is full.
        let b1 = q.admit("b", 20).unwrap();
        let b2 = q.admit("b", 21).unwrap();
        assert_eq!(q.admit("b", 22).err(), Some(Exceeded::Gateway(5)));
        drop((p1, b1));
        let again = q.admit("a", 10).unwrap();
        drop((p2, p3, b2, again));
        assert!(q.targets["a"].by_pid.lock().unwrap().is_empty());
    }
}
