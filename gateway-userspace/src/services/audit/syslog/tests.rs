use std::{
    io::Read,
    net::{TcpListener, UdpSocket},
    os::unix::net::UnixDatagram,
    sync::mpsc,
    thread,
    time::{Duration, Instant},
};

use super::{format::*, sink::*, *};

fn record(seq: u64, kind: &str, session: Option<&str>, body: &str) -> Record {
    Record {
        seq,
        node: "gw-1".into(),
        time: "2026-05-01T12:34:56.789Z".into(),
        kind: kind.into(),
        session: session.map(str::to_string),
        body: body.into(),
    }
}

fn settings(target: &str) -> SyslogSettings {
    SyslogSettings {
        hostname: Some("host.example".into()),
        ..SyslogSettings::new(target.parse().unwrap())
    }
}

const HASH: [u8; 32] = [0xab; 32];

#[test]
fn whole_message() {
    let r = record(7, "command", Some("s-1"), r#"{"n":1,"action":"allow"}"#);
    let msg = format_rfc5424(&settings("udp://127.0.0.1:514"), &r, &HASH);
    let pid = std::process::id();
    assert_eq!(
        msg,
        format!(
            "<134>1 2026-05-01T12:34:56.789Z host.example sluice {pid} command \
             [sluice@32473 node=\"gw-1\" seq=\"7\" session=\"s-1\" hash=\"{}\"] \
             {{\"n\":1,\"action\":\"allow\"}}",
            "ab".repeat(32)
        )
    );
}

#[test]
fn pri_is_facility_and_severity() {
    let allow = record(1, "command", None, r#"{"action":"allow"}"#);
    let deny = record(1, "command", None, r#"{"n":3,"action":"deny","rule":"r"}"#);
    // "deny" elsewhere than the top-level action changes nothing.
    let nested = record(1, "result", None, r#"{"x":{"action":"deny"},"t":"action"}"#);
    let pri = |facility, r: &Record| {
        let s = SyslogSettings {
            facility,
            ..settings("udp://h:1")
        };
        let m = format_rfc5424(&s, r, &HASH);
        m[1..m.find('>').unwrap()].parse::<u8>().unwrap()
    };
    assert_eq!(pri(Facility::Local0, &allow), 16 * 8 + 6);
    assert_eq!(pri(Facility::Local0, &deny), 16 * 8 + 4);
    assert_eq!(pri(Facility::Local7, &deny), 23 * 8 + 4);
    assert_eq!(pri(Facility::Kern, &allow), 6);
    assert_eq!(pri(Facility::Auth, &nested), 4 * 8 + 6);
    assert_eq!(
        severity(&record(1, "command", None, "not json")),
        Severity::Informational
    );
}

#[test]
fn sd_values_are_escaped() {
    let mut r = record(1, "session_start", Some(r#"a"b\c]d"#), "{}");
    r.node = "n]\"".into();
    let msg = format_rfc5424(&settings("udp://h:1"), &r, &HASH);
    assert!(msg.contains(r#"node="n\]\"""#), "{msg}");
    assert!(msg.contains(r#"session="a\"b\\c\]d""#), "{msg}");
}

#[test]
fn session_omitted_when_none() {
    let msg = format_rfc5424(&settings("udp://h:1"), &record(1, "k", None, "{}"), &HASH);
    assert!(!msg.contains("session="), "{msg}");
    let msg = format_rfc5424(
        &settings("udp://h:1"),
        &record(1, "k", Some(""), "{}"),
        &HASH,
    );
    assert!(msg.contains(r#"session="""#), "{msg}");
}

#[test]
fn header_fields_are_limited() {
    let s = SyslogSettings {
        app_name: "a".repeat(60),
        hostname: Some(format!("h é\t{}", "x".repeat(300))),
        ..settings("udp://h:1")
    };
    let msg = format_rfc5424(&s, &record(1, &"k".repeat(40), None, "{}"), &HASH);
    let fields: Vec<&str> = msg.splitn(7, ' ').collect();
    assert_eq!(fields[2].len(), 255);
    assert!(fields[2].starts_with("hxxx"));
    assert_eq!(fields[3], "a".repeat(48));
    assert_eq!(fields[5], "k".repeat(32));

    let s = SyslogSettings {
        app_name: " ".into(),
        ..settings("udp://h:1")
    };
    let msg = format_rfc5424(&s, &record(1, "", None, "{}"), &HASH);
    let fields: Vec<&str> = msg.splitn(7, ' ').collect();
    assert_eq!((fields[3], fields[5]), ("-", "-"));
}

#[test]
fn odd_timestamps_go_to_a_parameter() {
    for ok in [
        "2026-05-01T12:34:56Z",
        "2026-05-01T12:34:56.123456+02:00",
        "2026-05-01T12:34:56-07:30",
    ] {
        assert!(is_rfc5424_timestamp(ok), "{ok}");
    }
    for bad in [
        "t",
        "",
        "2026-05-01 12:34:56Z",
        "2026-05-01t12:34:56z",
        "2026-05-01T12:34:56.1234567Z",
        "2026-05-01T12:34:56.Z",
        "2026-05-01T12:34:56",
        "2026-05-01T12:34:56+0200",
    ] {
        assert!(!is_rfc5424_timestamp(bad), "{bad}");
    }
    let mut r = record(1, "k", None, "{}");
    r.time = "2026-05-01 12:34:56".into();
    let msg = format_rfc5424(&settings("udp://h:1"), &r, &HASH);
    assert!(msg.starts_with("<134>1 - host.example "), "{msg}");
    assert!(
        msg.contains(r#" time="2026-05-01 12:34:56" hash="#),
        "{msg}"
    );
}

#[test]
fn datagrams_are_cut_at_a_character_boundary() {
    let body = format!("{{\"t\":\"{}\"}}", "é".repeat(10_000));
    let r = record(1, "result", None, &body);
    let header = Header::new(&settings("udp://h:1"));
    let msg = header.format(&r, &HASH, Some(DATAGRAM_MAX));
    assert!(msg.len() <= DATAGRAM_MAX && msg.len() >= DATAGRAM_MAX - 1);
    assert!(msg.contains(&format!(" truncated=\"{}\"] {{\"t\":\"éé", body.len())));
    // Short bodies are untouched.
    let r = record(1, "result", None, "{}");
    assert_eq!(
        header.format(&r, &HASH, Some(DATAGRAM_MAX)),
        header.format(&r, &HASH, None)
    );
}

#[test]
fn targets_parse() {
    let p = |s: &str| s.parse::<SyslogTarget>();
    assert_eq!(
        p("udp://logs.example:514"),
        Ok(SyslogTarget::Udp {
            host: "logs.example".into(),
            port: 514
        })
    );
    assert_eq!(
        p("tcp://[::1]:6514"),
        Ok(SyslogTarget::Tcp {
            host: "::1".into(),
            port: 6514
        })
    );
    assert_eq!(
        p("unix:///dev/log"),
        Ok(SyslogTarget::Unix("/dev/log".into()))
    );
    for s in [
        "udp://logs.example:514",
        "tcp://[::1]:6514",
        "unix:///dev/log",
    ] {
        assert_eq!(p(s).unwrap().to_string(), s);
    }
    for (s, reason) in [
        ("logs.example:514", "no scheme"),
        ("http://h:1", "unknown scheme `http`"),
        ("udp://h", "missing :PORT"),
        ("udp://:514", "missing host"),
        ("tcp://h:0", "invalid port `0` (1 to 65535)"),
        ("tcp://h:99999", "invalid port `99999` (1 to 65535)"),
        ("tcp://h:514/x", "invalid port `514/x` (1 to 65535)"),
        (
            "tcp://::1:514",
            "an IPv6 address goes in brackets: [::1]:514",
        ),
        ("tcp://[::1:514", "unclosed `[` in the host"),
        (
            "unix://dev/log",
            "the socket path must be absolute (unix:///dev/log)",
        ),
    ] {
        assert_eq!(p(s).unwrap_err().reason, reason, "{s}");
    }
    assert_eq!(
        p("udp://h").unwrap_err().to_string(),
        "invalid syslog target `udp://h`: missing :PORT (expected udp://HOST:PORT, \
         tcp://HOST:PORT or unix:///PATH)"
    );
}

#[test]
fn settings_deserialize() {
    let s: SyslogSettings = serde_json::from_str(r#"{"target":"tcp://siem:601"}"#).unwrap();
    assert_eq!(s.facility, Facility::Local0);
    assert_eq!(s.app_name, "sluice");
    assert_eq!(s.hostname, None);
    let s: SyslogSettings = serde_json::from_str(
        r#"{"target":"unix:///dev/log","facility":"authpriv","app_name":"gw","hostname":"h"}"#,
    )
    .unwrap();
    assert_eq!(s.facility as u8, 10);
    assert_eq!(
        (s.app_name.as_str(), s.hostname.as_deref()),
        ("gw", Some("h"))
    );

    let err = |j: &str| {
        serde_json::from_str::<SyslogSettings>(j)
            .unwrap_err()
            .to_string()
    };
    assert!(err(r#"{"target":"udp://h"}"#).contains("missing :PORT"));
    assert!(err(r#"{"target":"udp://h:1","facility":"local8"}"#).contains("unknown variant"));
    assert!(err(r#"{"target":"udp://h:1","port":1}"#).contains("unknown field `port`"));
    assert!(err(r#"{"facility":"local1"}"#).contains("missing field `target`"));
}

#[test]
fn sink_is_shareable() {
    fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<SyslogSink>();
}

fn records(n: u64) -> Vec<(Record, [u8; 32])> {
    (1..=n)
        .map(|i| {
            let body = format!(r#"{{"n":{i},"text":"select \"x\" — ok"}}"#);
            (record(i, "command", Some("s"), &body), [i as u8; 32])
        })
        .collect()
}

/// The body and the `seq` of a message this module wrote.
fn parse(msg: &str) -> (u64, &str) {
    let seq = msg.split(" seq=\"").nth(1).unwrap();
    let seq = seq[..seq.find('"').unwrap()].parse().unwrap();
    (seq, &msg[msg.find("] ").unwrap() + 2..])
}

#[test]
fn udp_delivery() {
    let rx = UdpSocket::bind("127.0.0.1:0").unwrap();
    rx.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let port = rx.local_addr().unwrap().port();
    let sink = SyslogSink::start(settings(&format!("udp://127.0.0.1:{port}")));
    let recs = records(5);
    for (r, h) in &recs {
        sink.send(r, h);
    }
    let mut buf = vec![0; 65536];
    for (r, h) in &recs {
        let n = rx.recv(&mut buf).unwrap();
        let msg = std::str::from_utf8(&buf[..n]).unwrap();
        assert_eq!(msg, format_rfc5424(&settings("udp://h:1"), r, h));
        assert_eq!(parse(msg), (r.seq, r.body.as_str()));
    }
    let stats = sink.shutdown();
    assert_eq!(
        stats,
        SyslogStats {
            sent: 5,
            dropped: 0,
            failed: 0
        }
    );
}

#[test]
fn unix_delivery() {
    let dir = std::env::temp_dir().join(format!("sluice-syslog-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("log.sock");
    let _ = std::fs::remove_file(&path);
    let rx = UnixDatagram::bind(&path).unwrap();
    rx.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let sink = SyslogSink::start(settings(&format!("unix://{}", path.display())));
    let big = record(
        1,
        "result",
        None,
        &format!("{{\"t\":\"{}\"}}", "x".repeat(20_000)),
    );
    sink.send(&big, &HASH);
    let mut buf = vec![0; 65536];
    let n = rx.recv(&mut buf).unwrap();
    assert_eq!(n, DATAGRAM_MAX);
    assert!(
        std::str::from_utf8(&buf[..n])
            .unwrap()
            .contains(" truncated=\"20008\"]")
    );
    assert_eq!(sink.shutdown().sent, 1);
    std::fs::remove_dir_all(&dir).unwrap();
}

/// Reads RFC 6587 octet-counted frames until EOF.
fn read_frames(mut s: impl Read) -> Vec<String> {
    let mut data = Vec::new();
    s.read_to_end(&mut data).unwrap();
    let mut frames = Vec::new();
    let mut rest = &data[..];
    while !rest.is_empty() {
        let sp = rest.iter().position(|&b| b == b' ').expect("octet count");
        let len: usize = std::str::from_utf8(&rest[..sp]).unwrap().parse().unwrap();
        let msg = &rest[sp + 1..sp + 1 + len];
        frames.push(String::from_utf8(msg.to_vec()).unwrap());
        rest = &rest[sp + 1 + len..];
    }
    frames
}

#[test]
fn tcp_delivery_with_reconnect() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let (closed_tx, closed_rx) = mpsc::channel();
    let server = thread::spawn(move || {
        // First connection: read exactly the first frame, then hang up on the sink.
        let (mut c, _) = listener.accept().unwrap();
        let mut first = Vec::new();
        let mut b = [0u8; 1];
        loop {
            c.read_exact(&mut b).unwrap();
            if b[0] == b' ' {
                break;
            }
            first.push(b[0]);
        }
        let len: usize = String::from_utf8(first).unwrap().parse().unwrap();
        let mut msg = vec![0; len];
        c.read_exact(&mut msg).unwrap();
        drop(c);
        closed_tx.send(()).unwrap();
        // Second connection: everything else, until the sink shuts down.
        let (c, _) = listener.accept().unwrap();
        (String::from_utf8(msg).unwrap(), read_frames(c))
    });
    let sink = SyslogSink::start(settings(&format!("tcp://127.0.0.1:{port}")));
    let recs = records(50);
    sink.send(&recs[0].0, &recs[0].1);
    closed_rx.recv_timeout(Duration::from_secs(5)).unwrap();
    thread::sleep(Duration::from_millis(50));
    for (r, h) in &recs[1..] {
        sink.send(r, h);
    }
    let stats = sink.shutdown();
    let (first, rest) = server.join().unwrap();
    assert_eq!(parse(&first), (1, recs[0].0.body.as_str()));
    assert_eq!(rest.len(), 49);
    for (msg, (r, h)) in rest.iter().zip(&recs[1..]) {
        assert_eq!(*msg, format_rfc5424(&settings("udp://h:1"), r, h));
    }
    assert_eq!(
        stats,
        SyslogStats {
            sent: 50,
            dropped: 0,
            failed: 0
        }
    );
}

#[test]
fn full_queue_drops_and_shutdown_is_bounded() {
    // A port nobody listens on: the worker stays in its reconnect backoff.
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let sink = SyslogSink::start(settings(&format!("tcp://127.0.0.1:{port}")));
    let r = record(1, "command", None, "{}");
    let start = Instant::now();
    for _ in 0..QUEUE_CAPACITY + 100 {
        sink.send(&r, &HASH);
    }
    assert!(start.elapsed() < Duration::from_secs(1), "send blocked");
    let start = Instant::now();
    let stats = sink.shutdown();
    assert!(start.elapsed() < FLUSH_WAIT + Duration::from_secs(1));
    assert_eq!(stats.sent, 0);
    assert!(stats.dropped >= 99, "{stats:?}");
    assert_eq!(stats.dropped + stats.failed, QUEUE_CAPACITY as u64 + 100);
}
