//! A raw PostgreSQL v3 client for the red-team tests: it sends exactly the messages a script
//! names (in the order and batches given, with no client library deciding for it) and prints
//! every message it receives, decoded, as one JSON document.
//!
//! ```text
//! sluice-pgwire [--cgroup DIR] ADDR USER DATABASE [--encoding ENC] [--param K=V]... SCRIPT
//! ```
//!
//! SCRIPT is a JSON array of steps (or `@FILE`, a file holding it):
//! - `{"Q": "sql"}` simple query; `{"Qhex": "..."}` a query whose bytes are given in hex (for
//!   texts in another client encoding);
//! - `{"P": ["name", "sql"]}` Parse; `{"B": ["portal", "statement", ["p1", null, ...]]}` Bind
//!   (text parameters and results); `{"E": "portal"}` Execute; `{"D": ["S"|"P", "name"]}`
//!   Describe; `{"C": ["S"|"P", "name"]}` Close; `{"H": null}` Flush; `{"S": null}` Sync;
//!   `{"F": null}` a fast-path call of OID 0; `{"d": "line\n"}` CopyData, `{"c": null}` CopyDone;
//! - `{"wait": n}` sends what is buffered and reads until `n` more ReadyForQuery arrived;
//!   `{"settle": null}` until every `Q`/`S` sent so far has its ReadyForQuery;
//!   `{"sleep": ms}` sends what is buffered and waits.
//!
//! At the end everything buffered is sent and the client reads until every `Q`/`S` sent has its
//! ReadyForQuery, the server closes, or 20 s pass. Output: `{"ok": true, "messages": [...]}`,
//! each message `{"t": "Z", ...}` with the fields the tests look at (`status` of Z, `tag` of
//! C, `code`/`message`/`detail` of E and N, `values` of D, `name`/`value` of S).

use std::{
    io::{Read, Write},
    net::{SocketAddr, TcpStream},
    time::{Duration, Instant},
};

use serde_json::{Value, json};

fn main() {
    let mut args: Vec<String> = std::env::args().skip(1).collect();
    sluice_tests::join_cgroup_arg(&mut args);
    let mut params: Vec<(String, String)> = Vec::new();
    let mut positional = Vec::new();
    let mut i = 0;
    while i < args.len() {
        match args[i].as_str() {
            "--encoding" => {
                params.push(("client_encoding".into(), args[i + 1].clone()));
                i += 2;
            }
            "--param" => {
                let (k, v) = args[i + 1].split_once('=').expect("--param K=V");
                params.push((k.into(), v.into()));
                i += 2;
            }
            _ => {
                positional.push(args[i].clone());
                i += 1;
            }
        }
    }
    let [addr, user, database, script] = positional.as_slice() else {
        eprintln!("usage: sluice-pgwire [--cgroup DIR] ADDR USER DATABASE [--encoding E] SCRIPT");
        std::process::exit(2);
    };
    let addr: SocketAddr = addr.parse().expect("ADDR");
    // `@FILE`: the script is in a file (a long statement does not fit in argv).
    let text = match script.strip_prefix('@') {
        Some(path) => std::fs::read_to_string(path).expect("reading the script file"),
        None => script.clone(),
    };
    let script: Vec<Value> = serde_json::from_str(&text).expect("SCRIPT is a JSON array");
    let out = run(addr, user, database, &params, &script);
    println!("{out}");
}

struct Conn {
    s: TcpStream,
    out: Vec<u8>,
    received: Vec<Value>,
    readies: usize,
    closed: bool,
}

fn run(
    addr: SocketAddr,
    user: &str,
    database: &str,
    params: &[(String, String)],
    script: &[Value],
) -> Value {
    let s = match TcpStream::connect_timeout(&addr, Duration::from_secs(5)) {
        Ok(s) => s,
        Err(e) => return json!({"ok": false, "error": e.to_string()}),
    };
    s.set_read_timeout(Some(Duration::from_secs(20))).ok();
    let mut c = Conn {
        s,
        out: Vec::new(),
        received: Vec::new(),
        readies: 0,
        closed: false,
    };
    let mut body = 196_608i32.to_be_bytes().to_vec();
    let mut all = vec![("user".to_string(), user.to_string())];
    all.push(("database".into(), database.into()));
    all.extend(params.iter().cloned());
    for (k, v) in &all {
        body.extend(k.as_bytes());
        body.push(0);
        body.extend(v.as_bytes());
        body.push(0);
    }
    body.push(0);
    c.out.extend(((body.len() + 4) as i32).to_be_bytes());
    c.out.extend(body);
    // Login: up to the first ReadyForQuery (or an error and the close).
    c.read_until(1);
    let login_ok = c.readies == 1;
    let mut expected = 1;
    if login_ok {
        for step in script {
            let obj = step.as_object().expect("step is an object");
            let (k, v) = obj.iter().next().expect("step has one key");
            match k.as_str() {
                "Q" => {
                    expected += 1;
                    c.msg(b'Q', &cstr(v.as_str().unwrap()))
                }
                "Qhex" => {
                    expected += 1;
                    let mut b = unhex(v.as_str().unwrap());
                    b.push(0);
                    c.msg(b'Q', &b)
                }
                "P" => {
                    let mut b = cstr(v[0].as_str().unwrap());
                    b.extend(cstr(v[1].as_str().unwrap()));
                    b.extend(0u16.to_be_bytes());
                    c.msg(b'P', &b)
                }
                "B" => {
                    let mut b = cstr(v[0].as_str().unwrap());
                    b.extend(cstr(v[1].as_str().unwrap()));
                    b.extend(0u16.to_be_bytes());
                    let ps = v[2].as_array().cloned().unwrap_or_default();
                    b.extend((ps.len() as u16).to_be_bytes());
                    for p in ps {
                        match p.as_str() {
                            Some(t) => {
                                b.extend((t.len() as i32).to_be_bytes());
                                b.extend(t.as_bytes());
                            }
                            None => b.extend((-1i32).to_be_bytes()),
                        }
                    }
                    b.extend(0u16.to_be_bytes());
                    c.msg(b'B', &b)
                }
                "E" => {
                    let mut b = cstr(v.as_str().unwrap());
                    b.extend(0i32.to_be_bytes());
                    c.msg(b'E', &b)
                }
                "D" | "C" => {
                    let mut b = vec![v[0].as_str().unwrap().as_bytes()[0]];
                    b.extend(cstr(v[1].as_str().unwrap()));
                    c.msg(k.as_bytes()[0], &b)
                }
                "H" => c.msg(b'H', &[]),
                // COPY data (a line of text) and its end.
                "d" => c.msg(b'd', v.as_str().unwrap().as_bytes()),
                "c" => c.msg(b'c', &[]),
                "S" => {
                    expected += 1;
                    c.msg(b'S', &[])
                }
                "F" => {
                    expected += 1;
                    let mut b = 0u32.to_be_bytes().to_vec();
                    b.extend([0, 0, 0, 0, 0, 0]);
                    c.msg(b'F', &b)
                }
                "wait" => {
                    let n = v.as_u64().unwrap() as usize;
                    c.read_until(c.readies + n);
                }
                "settle" => c.read_until(expected),
                "sleep" => {
                    c.read_until(c.readies);
                    std::thread::sleep(Duration::from_millis(v.as_u64().unwrap()));
                }
                other => panic!("unknown step {other}"),
            }
            if c.closed {
                break;
            }
        }
        c.read_until(expected);
        c.send(b'X', &[]);
    }
    json!({"ok": login_ok, "closed": c.closed, "messages": c.received})
}

impl Conn {
    fn msg(&mut self, tag: u8, body: &[u8]) {
        self.out.push(tag);
        self.out.extend(((body.len() + 4) as i32).to_be_bytes());
        self.out.extend(body);
    }

    fn send(&mut self, tag: u8, body: &[u8]) {
        self.msg(tag, body);
        let _ = self.s.write_all(&std::mem::take(&mut self.out));
    }

    /// Sends what is buffered, then reads until `n` ReadyForQuery in all.
    fn read_until(&mut self, n: usize) {
        if !self.out.is_empty() && self.s.write_all(&std::mem::take(&mut self.out)).is_err() {
            self.closed = true;
            return;
        }
        let deadline = Instant::now() + Duration::from_secs(20);
        while self.readies < n && !self.closed && Instant::now() < deadline {
            let mut head = [0u8; 5];
            if self.s.read_exact(&mut head).is_err() {
                self.closed = true;
                break;
            }
            let len = i32::from_be_bytes([head[1], head[2], head[3], head[4]]) as usize;
            let mut body = vec![0u8; len.saturating_sub(4)];
            if self.s.read_exact(&mut body).is_err() {
                self.closed = true;
                break;
            }
            if head[0] == b'Z' {
                self.readies += 1;
            }
            self.received.push(decode(head[0], &body));
        }
    }
}

fn cstr(s: &str) -> Vec<u8> {
    let mut v = s.as_bytes().to_vec();
    v.push(0);
    v
}

fn unhex(h: &str) -> Vec<u8> {
    (0..h.len() / 2)
        .map(|i| u8::from_str_radix(&h[2 * i..2 * i + 2], 16).expect("hex"))
        .collect()
}

fn strings(b: &[u8]) -> Vec<String> {
    b.split(|x| *x == 0)
        .map(|s| String::from_utf8_lossy(s).into_owned())
        .collect()
}

fn decode(tag: u8, body: &[u8]) -> Value {
    let t = (tag as char).to_string();
    match tag {
        b'Z' => json!({"t": t, "status": (body[0] as char).to_string()}),
        b'C' => json!({"t": t, "tag": strings(body)[0]}),
        b'S' => {
            let s = strings(body);
            json!({"t": t, "name": s[0], "value": s[1]})
        }
        b'E' | b'N' => {
            let mut v = json!({"t": t});
            for f in body.split(|x| *x == 0).filter(|f| !f.is_empty()) {
                let text = String::from_utf8_lossy(&f[1..]).into_owned();
                match f[0] {
                    b'C' => v["code"] = json!(text),
                    b'M' => v["message"] = json!(text),
                    b'D' => v["detail"] = json!(text),
                    _ => {}
                }
            }
            v
        }
        b'D' => {
            let n = i16::from_be_bytes([body[0], body[1]]) as usize;
            let mut at = 2;
            let mut values = Vec::new();
            for _ in 0..n {
                let len = i32::from_be_bytes(body[at..at + 4].try_into().unwrap());
                at += 4;
                if len < 0 {
                    values.push(Value::Null);
                } else {
                    let l = len as usize;
                    values.push(json!(String::from_utf8_lossy(&body[at..at + l])));
                    at += l;
                }
            }
            json!({"t": t, "values": values})
        }
        _ => json!({"t": t}),
    }
}
