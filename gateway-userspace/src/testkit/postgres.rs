//! A scripted PostgreSQL server on loopback port 0, and the agent's side of a session over
//! `tokio::io::duplex`. The server speaks just enough of the v3 backend protocol: a cleartext
//! password login, the settings sluice pins, then fixed answers (see [`answer`]); it records
//! every message it receives (the password message too), per connection, in order.

use std::net::SocketAddr;

use tokio::{
    io::{AsyncRead, AsyncReadExt, AsyncWriteExt, DuplexStream},
    net::TcpListener,
    sync::mpsc,
    task::JoinHandle,
};

use super::{Kit, within};
use crate::{proto::ProxyError, proto::tcp::Transfer};

/// The backend process id and secret the scripted server reports.
pub const BACKEND_PID: i32 = 4242;
pub const BACKEND_SECRET: i32 = 99;

/// A frontend or backend message: its tag and body (without the length).
pub fn msg(tag: u8, body: &[u8]) -> Vec<u8> {
    let mut m = vec![tag];
    m.extend_from_slice(&(body.len() as u32 + 4).to_be_bytes());
    m.extend_from_slice(body);
    m
}

/// NUL-terminated strings, concatenated.
pub fn cstrs(parts: &[&str]) -> Vec<u8> {
    let mut b = Vec::new();
    for p in parts {
        b.extend_from_slice(p.as_bytes());
        b.push(0);
    }
    b
}

pub fn query(sql: &str) -> Vec<u8> {
    msg(b'Q', &cstrs(&[sql]))
}

/// `Parse` of an unnamed statement without parameter types.
pub fn parse(sql: &str) -> Vec<u8> {
    let mut b = cstrs(&["", sql]);
    b.extend_from_slice(&0u16.to_be_bytes());
    msg(b'P', &b)
}

/// `Bind` of the unnamed portal to the unnamed statement, with text parameters.
pub fn bind(params: &[&str]) -> Vec<u8> {
    let mut b = cstrs(&["", ""]);
    b.extend_from_slice(&0u16.to_be_bytes());
    b.extend_from_slice(&(params.len() as u16).to_be_bytes());
    for p in params {
        b.extend_from_slice(&(p.len() as i32).to_be_bytes());
        b.extend_from_slice(p.as_bytes());
    }
    b.extend_from_slice(&0u16.to_be_bytes());
    msg(b'B', &b)
}

/// `Execute` of the unnamed portal, all rows.
pub fn execute() -> Vec<u8> {
    let mut b = cstrs(&[""]);
    b.extend_from_slice(&0i32.to_be_bytes());
    msg(b'E', &b)
}

pub fn sync() -> Vec<u8> {
    msg(b'S', b"")
}

pub fn ready(status: u8) -> Vec<u8> {
    msg(b'Z', &[status])
}

pub fn command_complete(tag: &str) -> Vec<u8> {
    msg(b'C', &cstrs(&[tag]))
}

/// An ErrorResponse with exactly these fields (severity ERROR), in this order.
pub fn error(code: &str, message: &str, detail: Option<&str>, hint: Option<&str>) -> Vec<u8> {
    let mut b = Vec::new();
    for (f, v) in [
        (b'S', Some("ERROR")),
        (b'V', Some("ERROR")),
        (b'C', Some(code)),
        (b'M', Some(message)),
        (b'D', detail),
        (b'H', hint),
    ] {
        if let Some(v) = v {
            b.push(f);
            b.extend_from_slice(v.as_bytes());
            b.push(0);
        }
    }
    b.push(0);
    msg(b'E', &b)
}

/// What the scripted server saw.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Seen {
    /// A startup packet's parameters.
    Startup {
        conn: usize,
        params: Vec<(String, String)>,
    },
    /// One message, whole (tag, length and body).
    Message { conn: usize, raw: Vec<u8> },
    /// A CancelRequest for this backend key (the connection ends after it).
    Cancel { conn: usize, pid: i32, secret: i32 },
    /// The connection ended.
    Closed { conn: usize },
}

/// A scripted PostgreSQL server. Any number of connections is accepted (sluice's own lookups
/// open their own); each logs in with `password` (cleartext) or is refused with 28P01.
pub struct ScriptedPg {
    pub addr: SocketAddr,
    seen: mpsc::UnboundedReceiver<Seen>,
    task: JoinHandle<()>,
}

impl Drop for ScriptedPg {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl ScriptedPg {
    pub async fn start(password: &str) -> ScriptedPg {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("address");
        let (tx, seen) = mpsc::unbounded_channel();
        let password = password.to_string();
        let task = tokio::spawn(async move {
            let mut n = 0;
            while let Ok((s, _)) = listener.accept().await {
                n += 1;
                let (tx, password) = (tx.clone(), password.clone());
                tokio::spawn(async move {
                    let _ = serve_conn(s, n, &password, &tx).await;
                    let _ = tx.send(Seen::Closed { conn: n });
                });
            }
        });
        ScriptedPg { addr, seen, task }
    }

    /// The next thing the server saw.
    pub async fn next(&mut self) -> Seen {
        within("the scripted server", self.seen.recv())
            .await
            .expect("the scripted server stopped")
    }

    /// What the server saw so far (nothing waited for).
    pub fn so_far(&mut self) -> Vec<Seen> {
        let mut v = Vec::new();
        while let Ok(s) = self.seen.try_recv() {
            v.push(s);
        }
        v
    }

    /// Everything the server sees until connection `conn` ends.
    pub async fn until_closed(&mut self, conn: usize) -> Vec<Seen> {
        let mut v = Vec::new();
        loop {
            let s = self.next().await;
            let done = s == Seen::Closed { conn };
            v.push(s);
            if done {
                return v;
            }
        }
    }
}

async fn read_n<R: AsyncRead + Unpin>(r: &mut R, n: usize) -> std::io::Result<Vec<u8>> {
    let mut b = vec![0; n];
    r.read_exact(&mut b).await?;
    Ok(b)
}

/// One message (tag, length, body) as raw bytes.
pub async fn read_msg<R: AsyncRead + Unpin>(r: &mut R) -> std::io::Result<Vec<u8>> {
    let mut head = read_n(r, 5).await?;
    let len = u32::from_be_bytes([head[1], head[2], head[3], head[4]]) as usize;
    head.extend_from_slice(&read_n(r, len.saturating_sub(4)).await?);
    Ok(head)
}

fn startup_params(body: &[u8]) -> Vec<(String, String)> {
    let parts: Vec<String> = body
        .split(|b| *b == 0)
        .map(|s| String::from_utf8_lossy(s).into_owned())
        .collect();
    parts
        .chunks(2)
        .filter(|c| c.len() == 2 && !c[0].is_empty())
        .map(|c| (c[0].clone(), c[1].clone()))
        .collect()
}

async fn serve_conn(
    mut s: tokio::net::TcpStream,
    conn: usize,
    password: &str,
    tx: &mpsc::UnboundedSender<Seen>,
) -> std::io::Result<()> {
    let params = loop {
        let len = u32::from_be_bytes(read_n(&mut s, 4).await?.try_into().expect("4 bytes"));
        let body = read_n(&mut s, len as usize - 4).await?;
        let code = i32::from_be_bytes(body[..4].try_into().expect("4 bytes"));
        if code == 80_877_103 {
            s.write_all(b"N").await?;
            continue;
        }
        if code == 80_877_102 && body.len() >= 12 {
            let _ = tx.send(Seen::Cancel {
                conn,
                pid: i32::from_be_bytes(body[4..8].try_into().expect("4 bytes")),
                secret: i32::from_be_bytes(body[8..12].try_into().expect("4 bytes")),
            });
            return Ok(());
        }
        break startup_params(&body[4..]);
    };
    let _ = tx.send(Seen::Startup {
        conn,
        params: params.clone(),
    });
    s.write_all(&msg(b'R', &3i32.to_be_bytes())).await?;
    let p = read_msg(&mut s).await?;
    let _ = tx.send(Seen::Message {
        conn,
        raw: p.clone(),
    });
    if p[0] != b'p' || p[5..] != cstrs(&[password])[..] {
        s.write_all(&error(
            "28P01",
            "password authentication failed",
            None,
            None,
        ))
        .await?;
        return Ok(());
    }
    let read_only = params
        .iter()
        .find(|(k, _)| k == "default_transaction_read_only")
        .map_or("off", |(_, v)| v.as_str());
    let mut hello = msg(b'R', &0i32.to_be_bytes());
    for (k, v) in [
        ("server_version", "17.0"),
        ("standard_conforming_strings", "on"),
        ("client_encoding", "UTF8"),
        ("default_transaction_read_only", read_only),
    ] {
        hello.extend_from_slice(&msg(b'S', &cstrs(&[k, v])));
    }
    let mut key = BACKEND_PID.to_be_bytes().to_vec();
    key.extend_from_slice(&BACKEND_SECRET.to_be_bytes());
    hello.extend_from_slice(&msg(b'K', &key));
    hello.extend_from_slice(&ready(b'I'));
    s.write_all(&hello).await?;
    loop {
        let m = read_msg(&mut s).await?;
        // Recorded before it is answered: once the agent has the answer, the record is there.
        let _ = tx.send(Seen::Message {
            conn,
            raw: m.clone(),
        });
        if m[0] == b'X' {
            return Ok(());
        }
        s.write_all(&answer(&m)).await?;
    }
}

/// The scripted answers: an empty query gets EmptyQueryResponse; any other query and any
/// `Execute` complete with `<first word> 1`; Parse/Bind/Close are confirmed, a Describe has no
/// rows; every Query and Sync ends with ReadyForQuery (idle).
pub fn answer(m: &[u8]) -> Vec<u8> {
    let body = &m[5..];
    match m[0] {
        b'Q' => {
            let sql = String::from_utf8_lossy(&body[..body.len() - 1]).into_owned();
            let mut out = match sql.split_whitespace().next() {
                None => msg(b'I', b""),
                Some(word) => command_complete(&format!("{} 1", word.to_ascii_uppercase())),
            };
            out.extend_from_slice(&ready(b'I'));
            out
        }
        b'P' => msg(b'1', b""),
        b'B' => msg(b'2', b""),
        b'C' => msg(b'3', b""),
        b'D' if body.first() == Some(&b'S') => {
            let mut out = msg(b't', &0u16.to_be_bytes());
            out.extend_from_slice(&msg(b'n', b""));
            out
        }
        b'D' => msg(b'n', b""),
        b'E' => command_complete("UPDATE 1"),
        b'S' => ready(b'I'),
        _ => Vec::new(),
    }
}

/// The agent's end of a PostgreSQL session served in-process.
pub struct Agent {
    pub io: DuplexStream,
    pub session: JoinHandle<Result<Transfer, ProxyError>>,
    /// The cancel key the gateway gave the agent (BackendKeyData: pid, secret).
    pub key: (i32, i32),
}

impl Agent {
    /// Starts `proto::postgres::serve` for a connection to `resource` (redirected from the
    /// scripted server's address) and logs in as `user`; returns once the session is ready.
    pub async fn connect(kit: &Kit, resource: &str, upstream: SocketAddr, user: &str) -> Agent {
        let ctx = kit.ctx(resource, upstream);
        let services = kit.services.clone();
        let pg = kit.pg.clone();
        let (io, gateway_side) = tokio::io::duplex(64 * 1024);
        let session = tokio::spawn(async move {
            crate::proto::postgres::serve(gateway_side, &ctx, &services, &pg).await
        });
        let mut agent = Agent {
            io,
            session,
            key: (0, 0),
        };
        let mut body = 196_608i32.to_be_bytes().to_vec();
        body.extend_from_slice(&cstrs(&["user", user, "database", "orders", ""]));
        let mut startup = ((body.len() + 4) as u32).to_be_bytes().to_vec();
        startup.extend_from_slice(&body);
        agent.send(&startup).await;
        let hello = agent.until_ready().await;
        assert_eq!(hello[0], msg(b'R', &0i32.to_be_bytes()), "AuthenticationOk");
        let key = hello.iter().find(|m| m[0] == b'K').expect("BackendKeyData");
        agent.key = (
            i32::from_be_bytes(key[5..9].try_into().expect("4 bytes")),
            i32::from_be_bytes(key[9..13].try_into().expect("4 bytes")),
        );
        agent
    }

    /// Sends a CancelRequest for this session on a connection of its own (as libpq does) and
    /// waits until the gateway has handled it.
    pub async fn cancel(&self, kit: &Kit, upstream: SocketAddr) {
        let ctx = kit.ctx("db", upstream);
        let services = kit.services.clone();
        let (mut io, gateway_side) = tokio::io::duplex(1024);
        let mut packet = 16u32.to_be_bytes().to_vec();
        packet.extend_from_slice(&80_877_102i32.to_be_bytes());
        packet.extend_from_slice(&self.key.0.to_be_bytes());
        packet.extend_from_slice(&self.key.1.to_be_bytes());
        io.write_all(&packet).await.expect("cancel request");
        let served = within(
            "the cancel request",
            crate::proto::postgres::serve(gateway_side, &ctx, &services, &kit.pg),
        )
        .await
        .expect("a cancel request is served");
        assert_eq!((served.to_upstream, served.to_client), (0, 0));
    }

    pub async fn send(&mut self, bytes: &[u8]) {
        within("the gateway to take the agent's bytes", async {
            self.io
                .write_all(bytes)
                .await
                .expect("write to the gateway");
            self.io.flush().await.expect("flush to the gateway");
        })
        .await
    }

    pub async fn recv(&mut self) -> Vec<u8> {
        within("a message from the gateway", read_msg(&mut self.io))
            .await
            .expect("a message from the gateway")
    }

    /// Messages up to and including the next ReadyForQuery.
    pub async fn until_ready(&mut self) -> Vec<Vec<u8>> {
        let mut v = Vec::new();
        loop {
            let m = self.recv().await;
            let done = m[0] == b'Z';
            v.push(m);
            if done {
                return v;
            }
        }
    }

    /// Terminates the session and returns how it ended.
    pub async fn terminate(mut self) -> Result<Transfer, ProxyError> {
        self.send(&msg(b'X', b"")).await;
        within("the session to end", &mut self.session)
            .await
            .expect("the session task")
    }
}
