//! What the kernel side refused (or reported in monitoring mode): logged with the process that
//! tried it, audited, and sent as an alert.
//!
//! A hostile agent can make refusals as fast as it can make system calls; identical events (same
//! kind, process and subject) within a second are folded into one line with a count, so the log,
//! the audit log and the webhook stay bounded while the first of each is always recorded.

use std::{
    collections::HashMap,
    sync::Arc,
    time::{Duration, Instant},
};

use gateway_common::{AF_INET, AF_INET6, Event, event};
use serde::Serialize;
use tracing::{error, warn};

use crate::{
    conn::{comm_to_string, record_destination},
    services::{Services, alerts::Alert, audit::record::kind},
};

/// Folding window for identical events.
const FOLD: Duration = Duration::from_secs(1);
/// Distinct events remembered for folding; beyond it the oldest window is forgotten.
const FOLD_ENTRIES: usize = 4096;

/// An event as logged and audited.
#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
pub struct ContainmentRecord {
    /// `egress_denied`, `udp_denied`, `socket_denied`, ...
    pub event: &'static str,
    pub target: String,
    /// What was refused, in words (a destination, a socket kind, a file, a capability...).
    pub subject: String,
    pub pid: u32,
    pub tid: u32,
    pub uid: u32,
    pub gid: u32,
    pub cgroup_id: u64,
    pub comm: String,
    pub exe: String,
    /// Whether the operation was refused (false: monitoring mode, let through and reported).
    pub refused: bool,
}

/// The event's name and what it was about.
pub fn describe(ev: &Event) -> (&'static str, String) {
    let dst = || record_destination(ev.family, &ev.addr, ev.port).to_string();
    match ev.kind {
        event::EGRESS_DENIED if ev.detail == 1 => {
            ("egress_denied", format!("{} (sluice's own port)", dst()))
        }
        event::EGRESS_DENIED => ("egress_denied", dst()),
        event::UDP_DENIED => ("udp_denied", format!("udp {}", dst())),
        event::SOCKET_DENIED => (
            "socket_denied",
            format!(
                "socket(family {}, type {}, protocol {})",
                family_name(ev.arg),
                ev.arg2 >> 32,
                ev.arg2 & 0xffff_ffff
            ),
        ),
        event::BIND_DENIED => ("bind_denied", dst()),
        event::INBOUND_DROPPED => (
            "inbound_dropped",
            format!(
                "{} from {} (socket uid {})",
                match ev.arg {
                    6 => "connection request",
                    17 => "datagram",
                    _ => "packet",
                },
                record_destination(ev.family, &ev.addr, 0).ip(),
                ev.uid
            ),
        ),
        event::SYSCTL_DENIED => {
            let end = ev
                .addr
                .iter()
                .position(|b| *b == 0)
                .unwrap_or(ev.addr.len());
            (
                "sysctl_denied",
                format!(
                    "write to sysctl {}",
                    String::from_utf8_lossy(&ev.addr[..end])
                ),
            )
        }
        event::DEVICE_DENIED => (
            "device_denied",
            format!(
                "{} device {}:{}{}",
                if ev.detail == 1 { "block" } else { "character" },
                ev.arg >> 32,
                ev.arg & 0xffff_ffff,
                if ev.arg2 & 1 != 0 { " (mknod)" } else { "" }
            ),
        ),
        event::RESOURCE_PORT_UNLISTED => ("resource_port_unlisted", dst()),
        _ => ("containment_event", format!("kind {}", ev.kind)),
    }
}

fn family_name(f: u64) -> String {
    match f {
        x if x == u64::from(AF_INET) => "inet".into(),
        x if x == u64::from(AF_INET6) => "inet6".into(),
        other => other.to_string(),
    }
}

/// Decodes the bytes of a kernel-side [`Event`].
pub fn decode(bytes: &[u8]) -> Option<Event> {
    if bytes.len() < std::mem::size_of::<Event>() {
        return None;
    }
    let u16_at = |o: usize| u16::from_ne_bytes([bytes[o], bytes[o + 1]]);
    let u32_at = |o: usize| u32::from_ne_bytes(bytes[o..o + 4].try_into().expect("4 bytes"));
    let u64_at = |o: usize| u64::from_ne_bytes(bytes[o..o + 8].try_into().expect("8 bytes"));
    Some(Event {
        kind: u16_at(0),
        detail: u16_at(2),
        family: u16_at(4),
        port: u16_at(6),
        addr: bytes[8..24].try_into().expect("16 bytes"),
        pid: u32_at(24),
        tid: u32_at(28),
        uid: u32_at(32),
        gid: u32_at(36),
        cgroup_id: u64_at(40),
        comm: bytes[48..64].try_into().expect("16 bytes"),
        arg: u64_at(64),
        arg2: u64_at(72),
    })
}

/// Folds repeats of the same event.
#[derive(Default)]
struct Folder {
    seen: HashMap<(u16, u32, String), (Instant, u64)>,
}

impl Folder {
    /// `Some(folded)` when the event opens a new window (with how many repeats the previous
    /// window of the same key folded), `None` while it repeats within the window.
    fn admit(&mut self, key: (u16, u32, String), now: Instant) -> Option<u64> {
        if self.seen.len() >= FOLD_ENTRIES {
            self.seen
                .retain(|_, (at, _)| now.duration_since(*at) < FOLD);
            if self.seen.len() >= FOLD_ENTRIES {
                self.seen.clear();
            }
        }
        match self.seen.get_mut(&key) {
            Some((at, repeats)) if now.duration_since(*at) < FOLD => {
                *repeats += 1;
                None
            }
            Some((at, repeats)) => {
                let folded = *repeats;
                *at = now;
                *repeats = 0;
                Some(folded)
            }
            None => {
                self.seen.insert(key, (now, 0));
                Some(0)
            }
        }
    }
}

/// Logs, audits and alerts on every event of a target's ring buffer until it closes.
pub async fn report(
    target: String,
    events: aya::maps::RingBuf<aya::maps::MapData>,
    services: Arc<Services>,
) {
    let mut fd = match crate::ebpf::watch_readable(events) {
        Ok(fd) => fd,
        Err(e) => {
            error!(error = %e, "cannot watch the containment event ring buffer");
            return;
        }
    };
    let mut folder = Folder::default();
    loop {
        let Ok(mut guard) = fd.readable_mut().await else {
            return;
        };
        let rb = guard.get_inner_mut();
        while let Some(item) = rb.next() {
            let Some(ev) = decode(&item) else { continue };
            let (name, subject) = describe(&ev);
            let Some(folded) = folder.admit((ev.kind, ev.pid, subject.clone()), Instant::now())
            else {
                continue;
            };
            let exe = std::fs::read_link(format!("/proc/{}/exe", ev.pid))
                .map(|p| p.display().to_string())
                .unwrap_or_default();
            let rec = ContainmentRecord {
                event: name,
                target: target.clone(),
                subject,
                pid: ev.pid,
                tid: ev.tid,
                uid: ev.uid,
                gid: ev.gid,
                cgroup_id: ev.cgroup_id,
                comm: comm_to_string(&ev.comm),
                exe,
                refused: ev.kind != event::RESOURCE_PORT_UNLISTED,
            };
            emit(&rec, &ev, folded, &services);
        }
        guard.clear_ready();
    }
}

fn emit(rec: &ContainmentRecord, ev: &Event, folded: u64, services: &Services) {
    let dst = matches!(
        ev.kind,
        event::EGRESS_DENIED
            | event::UDP_DENIED
            | event::BIND_DENIED
            | event::RESOURCE_PORT_UNLISTED
    )
    .then(|| record_destination(ev.family, &ev.addr, ev.port).to_string())
    .unwrap_or_default();
    let message = if rec.refused {
        "refused by containment"
    } else {
        "monitoring mode: a listed resource's port on an address the policy does not list"
    };
    warn!(event = rec.event, cgroup_target = %rec.target, subject = %rec.subject, dst = %dst,
          pid = rec.pid, tid = rec.tid, uid = rec.uid, gid = rec.gid, cgroup_id = rec.cgroup_id,
          comm = %rec.comm, exe = %rec.exe, refused = rec.refused, repeats_folded = folded,
          "{message}");
    services.audit.record(kind::CONTAINMENT, None, rec);
    if let Some(url) = &services.policy().alerts.webhook {
        services.alerts.send(
            url,
            Alert {
                kind: "sluice.containment",
                time: crate::util::now_rfc3339(),
                action: if rec.refused { "deny" } else { "alert" }.into(),
                rule: rec.event.into(),
                reason: rec.subject.clone(),
                resource: String::new(),
                target: rec.target.clone(),
                conn_id: 0,
                pid: rec.pid,
                uid: rec.uid,
                exe: (!rec.exe.is_empty()).then(|| rec.exe.clone()),
                command: String::new(),
            },
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Event {
        Event {
            kind: event::UDP_DENIED,
            detail: 0,
            family: AF_INET,
            port: 53,
            addr: [1, 2, 3, 4, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0],
            pid: 42,
            tid: 43,
            uid: 1000,
            gid: 1001,
            cgroup_id: 0x1122_3344_5566_7788,
            comm: *b"dig\0\0\0\0\0\0\0\0\0\0\0\0\0",
            arg: 1,
            arg2: 0xdead_beef,
        }
    }

    #[test]
    fn events_decode_from_their_kernel_layout() {
        let ev = sample();
        // The same bytes the kernel writes: the struct's in-memory representation.
        let mut v = Vec::new();
        for x in [ev.kind, ev.detail, ev.family, ev.port] {
            v.extend(x.to_ne_bytes());
        }
        v.extend(ev.addr);
        for x in [ev.pid, ev.tid, ev.uid, ev.gid] {
            v.extend(x.to_ne_bytes());
        }
        v.extend(ev.cgroup_id.to_ne_bytes());
        v.extend(ev.comm);
        v.extend(ev.arg.to_ne_bytes());
        v.extend(ev.arg2.to_ne_bytes());
        assert_eq!(v.len(), std::mem::size_of::<Event>());
        assert_eq!(decode(&v), Some(ev));
        assert_eq!(decode(&v[..10]), None);
        assert_eq!(describe(&ev), ("udp_denied", "udp 1.2.3.4:53".into()));
    }

    #[test]
    fn repeats_within_a_second_are_folded_and_counted() {
        let mut f = Folder::default();
        let t0 = Instant::now();
        let key = || (event::UDP_DENIED, 42, "udp 1.2.3.4:53".to_string());
        assert_eq!(f.admit(key(), t0), Some(0));
        for i in 1..=5 {
            assert_eq!(f.admit(key(), t0 + Duration::from_millis(i * 100)), None);
        }
        // Another process or subject is its own event.
        assert_eq!(
            f.admit((event::UDP_DENIED, 7, "udp 1.2.3.4:53".into()), t0),
            Some(0)
        );
        assert_eq!(f.admit(key(), t0 + Duration::from_millis(1500)), Some(5));
    }
}
