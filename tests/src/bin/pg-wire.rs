//! A raw PostgreSQL v3 client for the masking tests: it sends exactly the messages it is told
//! to (any mix of simple and extended protocol, binary result formats, Execute without
//! Describe, portals resumed later) and prints every message it receives, so a test can check
//! every byte the agent would see.
//!
//! ```text
//! pg-wire [--cgroup DIR] ADDR USER DATABASE < script.json
//! ```
//!
//! The script is a JSON array of batches; each batch is an array of messages, sent together,
//! after which the client reads until it has one ReadyForQuery per `Q` and `S` in the batch:
//! `{"Q": sql}`, `{"P": [name, sql]}`, `{"B": [portal, statement, [params as text or null],
//! [result format codes]]}`, `{"D": ["S" or "P", name]}`, `{"E": [portal, max_rows]}`,
//! `{"C": ["S" or "P", name]}`, `{"S": null}`, `{"H": null}`.
//! Output: one JSON object `{"ok": true, "messages": [{"tag": "D", "body": hex}, ...]}`
//! (`"ok": false, "error": ...` if the connection failed or a batch timed out).

use std::{
    io::{Read, Write},
    net::TcpStream,
    time::Duration,
};

use serde_json::{Value, json};

fn main() {
    let mut args: Vec<String> = std::env::args().skip(1).collect();
    sluice_tests::join_cgroup_arg(&mut args);
    let [addr, user, db] = &args[..] else {
        eprintln!("usage: pg-wire [--cgroup DIR] ADDR USER DATABASE < script.json");
        std::process::exit(2)
    };
    let mut script = String::new();
    std::io::stdin().read_to_string(&mut script).expect("stdin");
    let script: Vec<Vec<Value>> = serde_json::from_str(&script).expect("script JSON");
    let mut received = Vec::new();
    let out = match run(addr, user, db, &script, &mut received) {
        Ok(()) => json!({"ok": true, "messages": received}),
        Err(e) => json!({"ok": false, "error": e, "messages": received}),
    };
    println!("{out}");
}

fn run(
    addr: &str,
    user: &str,
    db: &str,
    script: &[Vec<Value>],
    received: &mut Vec<Value>,
) -> Result<(), String> {
    let mut s = TcpStream::connect(addr).map_err(|e| e.to_string())?;
    s.set_read_timeout(Some(Duration::from_secs(20))).ok();
    let mut body = 196_608i32.to_be_bytes().to_vec();
    for p in ["user", user, "database", db] {
        body.extend(p.as_bytes());
        body.push(0);
    }
    body.push(0);
    let mut packet = ((body.len() + 4) as i32).to_be_bytes().to_vec();
    packet.extend(body);
    s.write_all(&packet).map_err(|e| e.to_string())?;
    read_until_ready(&mut s, 1, &mut Vec::new())?;
    for batch in script {
        let mut bytes = Vec::new();
        let mut readies = 0;
        for m in batch {
            let (tag, body) = encode(m)?;
            if matches!(tag, b'Q' | b'S') {
                readies += 1;
            }
            bytes.push(tag);
            bytes.extend(((body.len() + 4) as i32).to_be_bytes());
            bytes.extend(body);
        }
        s.write_all(&bytes).map_err(|e| e.to_string())?;
        read_until_ready(&mut s, readies, received)?;
    }
    let _ = s.write_all(&[b'X', 0, 0, 0, 4]);
    Ok(())
}

fn cstr(v: &mut Vec<u8>, s: &str) {
    v.extend(s.as_bytes());
    v.push(0);
}

fn str_at(v: &Value, i: usize) -> Result<&str, String> {
    v.get(i)
        .and_then(Value::as_str)
        .ok_or_else(|| format!("expected a string at {i} in {v}"))
}

fn encode(m: &Value) -> Result<(u8, Vec<u8>), String> {
    let (k, v) = m
        .as_object()
        .and_then(|o| o.iter().next())
        .ok_or_else(|| format!("bad message {m}"))?;
    let mut b = Vec::new();
    let tag = k.as_bytes()[0];
    match tag {
        b'Q' => cstr(&mut b, v.as_str().ok_or("Q takes SQL")?),
        b'P' => {
            cstr(&mut b, str_at(v, 0)?);
            cstr(&mut b, str_at(v, 1)?);
            b.extend(0i16.to_be_bytes());
        }
        b'B' => {
            cstr(&mut b, str_at(v, 0)?);
            cstr(&mut b, str_at(v, 1)?);
            b.extend(0i16.to_be_bytes());
            let params = v
                .get(2)
                .and_then(Value::as_array)
                .cloned()
                .unwrap_or_default();
            b.extend((params.len() as i16).to_be_bytes());
            for p in params {
                match p.as_str() {
                    Some(t) => {
                        b.extend((t.len() as i32).to_be_bytes());
                        b.extend(t.as_bytes());
                    }
                    None => b.extend((-1i32).to_be_bytes()),
                }
            }
            let formats = v
                .get(3)
                .and_then(Value::as_array)
                .cloned()
                .unwrap_or_default();
            b.extend((formats.len() as i16).to_be_bytes());
            for f in formats {
                b.extend((f.as_i64().unwrap_or(0) as i16).to_be_bytes());
            }
        }
        b'D' | b'C' => {
            b.push(str_at(v, 0)?.as_bytes()[0]);
            cstr(&mut b, str_at(v, 1)?);
        }
        b'E' => {
            cstr(&mut b, str_at(v, 0)?);
            b.extend((v.get(1).and_then(Value::as_i64).unwrap_or(0) as i32).to_be_bytes());
        }
        b'S' | b'H' => {}
        _ => return Err(format!("unknown message {k}")),
    }
    Ok((tag, b))
}

fn read_until_ready(s: &mut TcpStream, mut n: usize, out: &mut Vec<Value>) -> Result<(), String> {
    while n > 0 {
        let mut header = [0u8; 5];
        s.read_exact(&mut header)
            .map_err(|e| format!("reading: {e} (waiting for {n} ReadyForQuery)"))?;
        let len = i32::from_be_bytes([header[1], header[2], header[3], header[4]]) as usize;
        let mut body = vec![0u8; len.saturating_sub(4)];
        s.read_exact(&mut body).map_err(|e| e.to_string())?;
        let hex: String = body.iter().map(|b| format!("{b:02x}")).collect();
        out.push(json!({"tag": (header[0] as char).to_string(), "body": hex}));
        if header[0] == b'Z' {
            n -= 1;
        }
    }
    Ok(())
}
