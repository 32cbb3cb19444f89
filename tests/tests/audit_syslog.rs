//! The audit syslog sink against a real rsyslogd (its own instance: own config, own ports on
//! 127.0.0.1, own files in a temporary directory; no /dev/log, no system configuration).
//! The sink tests need no root, only `cargo xtask setup` (the rsyslog package); the gateway test
//! needs root like every gateway test. All fail if rsyslogd is missing.

use std::{
    net::{TcpListener, TcpStream, UdpSocket},
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use sluice::services::audit::{
    chain::{GENESIS, Record, record_hash},
    syslog::{DATAGRAM_MAX, SyslogSettings, SyslogSink, SyslogStats},
};

/// A running rsyslogd; killed and its directory removed on drop, panics included.
struct Rsyslogd {
    child: Child,
    dir: PathBuf,
    udp_port: u16,
    tcp_port: u16,
}

impl Drop for Rsyslogd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn rsyslogd_path() -> PathBuf {
    // Not always on a non-root PATH.
    let candidates = std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).collect::<Vec<_>>())
        .unwrap_or_default()
        .into_iter()
        .chain(["/usr/sbin".into(), "/sbin".into()])
        .map(|d| d.join("rsyslogd"));
    for p in candidates {
        if p.is_file() {
            return p;
        }
    }
    panic!("rsyslogd not found: install rsyslog (`cargo xtask setup` / scripts/setup.sh)");
}

fn free_udp_port() -> u16 {
    let udp = UdpSocket::bind("127.0.0.1:0").unwrap();
    udp.local_addr().unwrap().port()
}

fn free_tcp_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

impl Rsyslogd {
    /// `tag` keeps concurrent tests' directories apart.
    fn start(tag: &str) -> Rsyslogd {
        let bin = rsyslogd_path();
        let dir = std::env::temp_dir().join(format!("sluice-rsyslog-{}-{tag}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let (udp_port, tcp_port) = (free_udp_port(), free_tcp_port());
        // A config given with -f loads only the modules it names: no imuxsock (/dev/log), no
        // imklog. workDirectory keeps its state files out of /var/lib/rsyslog.
        let conf = format!(
            r#"global(workDirectory="{dir}")
module(load="imudp")
module(load="imtcp")
input(type="imudp" address="127.0.0.1" port="{udp_port}")
input(type="imtcp" address="127.0.0.1" port="{tcp_port}")
*.* action(type="omfile" file="{dir}/out.log" template="RSYSLOG_SyslogProtocol23Format")
"#,
            dir = dir.display()
        );
        let conf_path = dir.join("rsyslog.conf");
        std::fs::write(&conf_path, conf).unwrap();
        let check = Command::new(&bin)
            .args(["-N1", "-f"])
            .arg(&conf_path)
            .output()
            .unwrap();
        assert!(
            check.status.success(),
            "rsyslogd -N1 rejected the config: {}",
            String::from_utf8_lossy(&check.stderr)
        );
        let child = Command::new(&bin)
            .arg("-n")
            .arg("-f")
            .arg(&conf_path)
            .arg("-i")
            .arg(dir.join("pid"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let mut d = Rsyslogd {
            child,
            dir,
            udp_port,
            tcp_port,
        };
        d.wait_ready();
        d
    }

    fn out(&self) -> PathBuf {
        self.dir.join("out.log")
    }

    /// Until both inputs deliver to the file: a TCP connect, then UDP probes until one shows up.
    fn wait_ready(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(10);
        while TcpStream::connect(("127.0.0.1", self.tcp_port)).is_err() {
            if let Some(status) = self.child.try_wait().unwrap() {
                panic!("rsyslogd exited: {status}");
            }
            assert!(
                Instant::now() < deadline,
                "rsyslogd's TCP input never listened"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        let probe = UdpSocket::bind("127.0.0.1:0").unwrap();
        let msg = "<134>1 - - probe - - - ready";
        loop {
            probe
                .send_to(msg.as_bytes(), ("127.0.0.1", self.udp_port))
                .unwrap();
            std::thread::sleep(Duration::from_millis(100));
            if read(&self.out()).contains("ready") {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "rsyslogd's UDP input never delivered"
            );
        }
    }
}

/// Lossy: a message cut inside a UTF-8 character must show up as such, not as an empty file.
fn read(p: &Path) -> String {
    std::fs::read(p)
        .map(|b| String::from_utf8_lossy(&b).into_owned())
        .unwrap_or_default()
}

/// A chain of `n` records on `node`, as the audit writer produces them, with their hashes.
fn chain(node: &str, n: u64) -> Vec<(Record, [u8; 32])> {
    let mut prev = GENESIS;
    (1..=n)
        .map(|seq| {
            let (kind, session, body) = match seq % 4 {
                1 => (
                    "session_start",
                    Some(format!("{node}-s{seq}")),
                    r#"{"protocol":"postgres","resource":"db \"prod\" [eu]"}"#.to_string(),
                ),
                2 => (
                    "command",
                    Some(format!("{node}-s")),
                    format!(
                        r#"{{"n":{seq},"text":"SELECT 'café ✓', $1 -- \\ ]","action":"allow"}}"#
                    ),
                ),
                3 => (
                    "command",
                    Some(format!("{node}-s")),
                    format!(r#"{{"n":{seq},"text":"DROP TABLE t","action":"deny"}}"#),
                ),
                _ => (
                    "session_end",
                    None,
                    r#"{"commands":2,"error":null}"#.to_string(),
                ),
            };
            let r = Record {
                seq,
                node: node.into(),
                time: format!("2026-05-01T12:00:{:02}.{:03}Z", seq % 60, seq),
                kind: kind.into(),
                session,
                body,
            };
            let h = record_hash(&prev, &r);
            prev = h;
            (r, h)
        })
        .collect()
}

fn hex(h: &[u8; 32]) -> String {
    h.iter().map(|b| format!("{b:02x}")).collect()
}

/// One line as RSYSLOG_SyslogProtocol23Format writes it:
/// `<PRI>1 TIMESTAMP HOSTNAME APP-NAME PROCID MSGID STRUCTURED-DATA MSG`.
#[derive(Debug)]
struct Line<'a> {
    pri: u8,
    timestamp: &'a str,
    hostname: &'a str,
    app: &'a str,
    msgid: &'a str,
    sd: &'a str,
    msg: &'a str,
}

fn parse_line(line: &str) -> Line<'_> {
    let rest = line.strip_prefix('<').unwrap();
    let (pri, rest) = rest.split_once(">1 ").unwrap();
    let f: Vec<&str> = rest.splitn(6, ' ').collect();
    let sd_and_msg = f[5];
    // The SD element ends at the first `]` not escaped with a backslash.
    let bytes = sd_and_msg.as_bytes();
    let mut i = 0;
    let end = loop {
        match bytes[i] {
            b'\\' => i += 2,
            b']' => break i + 1,
            _ => i += 1,
        }
    };
    Line {
        pri: pri.parse().unwrap(),
        timestamp: f[0],
        hostname: f[1],
        app: f[2],
        msgid: f[4],
        sd: &sd_and_msg[..end],
        msg: sd_and_msg[end..].strip_prefix(' ').unwrap(),
    }
}

/// `name`'s value in an SD element, unescaped.
fn sd_param(sd: &str, name: &str) -> Option<String> {
    let start = sd.find(&format!(" {name}=\""))? + name.len() + 3;
    let mut v = String::new();
    let mut chars = sd[start..].chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => v.push(chars.next().unwrap()),
            '"' => return Some(v),
            c => v.push(c),
        }
    }
    None
}

/// Waits until `count` lines from `node` are in the file; returns them by seq.
fn wait_for(d: &Rsyslogd, node: &str, count: usize) -> Vec<String> {
    let deadline = Instant::now() + Duration::from_secs(15);
    let needle = format!(" node=\"{node}\"");
    loop {
        let text = read(&d.out());
        let lines: Vec<String> = text
            .lines()
            .filter(|l| l.contains(&needle))
            .map(str::to_string)
            .collect();
        if lines.len() >= count {
            return lines;
        }
        assert!(
            Instant::now() < deadline,
            "{} of {count} records from {node} reached rsyslog:\n{text}",
            lines.len()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn check(lines: &[String], records: &[(Record, [u8; 32])]) {
    assert_eq!(lines.len(), records.len(), "{lines:#?}");
    let mut prev = GENESIS;
    for (line, (r, h)) in lines.iter().zip(records) {
        let l = parse_line(line);
        assert_eq!(sd_param(l.sd, "seq"), Some(r.seq.to_string()), "{line}");
        assert!(l.sd.starts_with("[sluice@32473 "), "{line}");
        assert_eq!(sd_param(l.sd, "node").as_deref(), Some(r.node.as_str()));
        assert_eq!(sd_param(l.sd, "session"), r.session, "{line}");
        assert_eq!(sd_param(l.sd, "hash"), Some(hex(h)), "{line}");
        assert_eq!(l.msg, r.body, "{line}");
        assert_eq!(l.msgid, r.kind);
        assert_eq!((l.hostname, l.app), ("sluice-test-host", "sluice"));
        let deny = r.body.contains(r#""action":"deny""#);
        assert_eq!(l.pri, if deny { 16 * 8 + 4 } else { 16 * 8 + 6 }, "{line}");
        // rsyslog re-renders the timestamp; the instant (to the millisecond) must survive.
        let ts = l.timestamp.replace("+00:00", "Z");
        assert_eq!(ts, r.time, "{line}");
        // What rsyslog wrote is enough for a SIEM to verify the chain.
        let received = Record {
            seq: sd_param(l.sd, "seq").unwrap().parse().unwrap(),
            node: sd_param(l.sd, "node").unwrap(),
            time: ts,
            kind: l.msgid.to_string(),
            session: sd_param(l.sd, "session"),
            body: l.msg.to_string(),
        };
        prev = record_hash(&prev, &received);
        assert_eq!(hex(&prev), hex(h), "chain hash recomputed from {line}");
    }
}

fn settings(target: String) -> SyslogSettings {
    SyslogSettings {
        hostname: Some("sluice-test-host".into()),
        ..SyslogSettings::new(target.parse().unwrap())
    }
}

#[test]
fn records_reach_rsyslog_over_udp_and_tcp() {
    let d = Rsyslogd::start("udp-tcp");
    const N: u64 = 40;

    let udp = SyslogSink::start(settings(format!("udp://127.0.0.1:{}", d.udp_port)));
    let tcp = SyslogSink::start(settings(format!("tcp://127.0.0.1:{}", d.tcp_port)));
    let via_udp = chain("node-udp", N);
    let via_tcp = chain("node-tcp", N);
    for ((ru, hu), (rt, ht)) in via_udp.iter().zip(&via_tcp) {
        udp.send(ru, hu);
        tcp.send(rt, ht);
        // Loopback UDP drops nothing at this pace; a burst could overflow rsyslog's socket buffer.
        std::thread::sleep(Duration::from_millis(2));
    }
    let done = SyslogStats {
        sent: N,
        dropped: 0,
        failed: 0,
    };
    assert_eq!(udp.shutdown(), done);
    assert_eq!(tcp.shutdown(), done);

    check(&wait_for(&d, "node-udp", N as usize), &via_udp);
    check(&wait_for(&d, "node-tcp", N as usize), &via_tcp);
}

#[test]
fn oversized_udp_records_arrive_truncated_and_marked() {
    let d = Rsyslogd::start("big");
    let sink = SyslogSink::start(settings(format!("udp://127.0.0.1:{}", d.udp_port)));
    let body = format!(r#"{{"rows":"{}"}}"#, "é".repeat(6000));
    let r = Record {
        seq: 1,
        node: "node-big".into(),
        time: "2026-05-01T12:00:00Z".into(),
        kind: "result".into(),
        session: Some("s".into()),
        body: body.clone(),
    };
    sink.send(&r, &GENESIS);
    assert_eq!(sink.shutdown().sent, 1);
    let lines = wait_for(&d, "node-big", 1);
    let l = parse_line(&lines[0]);
    assert_eq!(sd_param(l.sd, "truncated"), Some(body.len().to_string()));
    // The sink, not rsyslog, cut the body: at the last character boundary that fits the datagram.
    let header = format!(
        "<134>1 2026-05-01T12:00:00Z sluice-test-host sluice {} result [sluice@32473 \
         node=\"node-big\" seq=\"1\" session=\"s\" hash=\"{}\" truncated=\"{}\"] ",
        std::process::id(),
        hex(&GENESIS),
        body.len()
    );
    let mut keep = DATAGRAM_MAX - header.len();
    while !body.is_char_boundary(keep) {
        keep -= 1;
    }
    assert_eq!(l.msg, &body[..keep]);
}

#[test]
fn a_gateway_streams_its_audit_records_and_checkpoints_to_rsyslog() {
    use sluice_tests::{
        Gateway, PG_SCRAM, PgServer, Policy, TestCgroup, TestNet, inject, pg_resource, psql_in,
        require_root,
    };
    require_root();
    let d = Rsyslogd::start("gateway");
    let net = TestNet::new();
    let pg = PgServer::start(&net);
    let cg = TestCgroup::new();
    let mut policy = Policy::new(Some(&cg), "deny");
    policy.raw_resources = pg_resource("orders-db", &pg, &inject(PG_SCRAM));
    policy.extra = format!(
        "{}audit:\n  node: gw-node\n  syslog: {{ target: \"tcp://127.0.0.1:{}\" }}\n",
        sluice_tests::DEFAULT_ALLOW,
        d.tcp_port
    );
    let mut gw = Gateway::start(&policy);
    let out = psql_in(
        &cg.dir,
        &pg.conninfo(PG_SCRAM.0, "wrong"),
        &["SELECT 1", "DROP TABLE customers"],
    );
    assert!(out.stderr.contains("blocked"), "{}", out.stderr);
    // A clean stop commits everything and signs a final checkpoint.
    gw.stop();

    let export = gw.sluice(&["audit", "export"]);
    assert!(export.status.success());
    let records: Vec<serde_json::Value> = String::from_utf8(export.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert!(records.len() >= 5, "{records:?}");
    // Every record, then the checkpoint over the last one.
    let lines = wait_for(&d, "gw-node", records.len() + 1);
    for r in &records {
        let seq = r["seq"].to_string();
        let line = lines
            .iter()
            .map(|l| parse_line(l))
            .find(|l| l.msgid != "checkpoint" && sd_param(l.sd, "seq").as_deref() == Some(&seq))
            .unwrap_or_else(|| panic!("record {seq} missing from rsyslog"));
        assert_eq!(sd_param(line.sd, "hash").as_deref(), r["hash"].as_str());
        assert_eq!(line.msgid, r["kind"].as_str().unwrap());
        let body: serde_json::Value = serde_json::from_str(line.msg).unwrap();
        assert_eq!(body, r["body"]);
        if r["kind"] == "command" && r["body"]["action"] == "deny" {
            assert_eq!(line.pri, 16 * 8 + 4, "refusals are warnings");
        }
    }
    let last = records.last().unwrap();
    let checkpoint = lines
        .iter()
        .map(|l| parse_line(l))
        .find(|l| l.msgid == "checkpoint")
        .expect("the signed checkpoint reached rsyslog");
    assert_eq!(
        sd_param(checkpoint.sd, "seq"),
        Some(last["seq"].to_string())
    );
    assert_eq!(
        sd_param(checkpoint.sd, "hash").as_deref(),
        last["hash"].as_str()
    );
    assert!(
        checkpoint.msg.contains("\"signature\":\""),
        "{}",
        checkpoint.msg
    );
}
