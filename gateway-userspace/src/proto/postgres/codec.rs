//! PostgreSQL v3 framing with bounded lengths.
//!
//! A message is kept as its raw bytes (tag + length + body) so that what sluice does not change
//! is forwarded without re-encoding: that decides throughput.

use bytes::{BufMut, BytesMut};
use tokio::io::{AsyncRead, AsyncReadExt};

/// SQLSTATE for statements refused by policy: insufficient_privilege.
pub const SQLSTATE_REFUSED: &str = "42501";

/// Startup-phase request codes (the "protocol version" field of a startup packet).
pub const PROTOCOL_3_0: i32 = 196_608;
pub const SSL_REQUEST: i32 = 80_877_103;
pub const GSSENC_REQUEST: i32 = 80_877_104;
pub const CANCEL_REQUEST: i32 = 80_877_102;

/// A startup packet larger than this is not a real client (PostgreSQL itself allows 10000).
pub const MAX_STARTUP: usize = 10_000;

#[derive(Debug, thiserror::Error)]
pub enum CodecError {
    #[error("{0}")]
    Io(#[from] std::io::Error),
    #[error("{side} message of {len} bytes exceeds the limit of {max} bytes")]
    TooLarge {
        side: &'static str,
        len: usize,
        max: usize,
    },
    #[error("malformed {0}")]
    Malformed(&'static str),
}

/// One framed message: `raw` holds the tag byte, the length and the body.
#[derive(Debug, Clone)]
pub struct Message {
    pub tag: u8,
    pub raw: BytesMut,
}

impl Message {
    pub fn body(&self) -> &[u8] {
        &self.raw[5..]
    }

    /// Builds a message from a tag and a body.
    pub fn new(tag: u8, body: &[u8]) -> Message {
        let mut raw = BytesMut::with_capacity(body.len() + 5);
        raw.put_u8(tag);
        raw.put_i32((body.len() + 4) as i32);
        raw.put_slice(body);
        Message { tag, raw }
    }
}

/// Reads one message; `Ok(None)` on a clean end of stream between messages.
pub async fn read_message<R: AsyncRead + Unpin>(
    r: &mut R,
    max: usize,
    side: &'static str,
) -> Result<Option<Message>, CodecError> {
    let mut header = [0u8; 5];
    let n = r.read(&mut header[..1]).await?;
    if n == 0 {
        return Ok(None);
    }
    r.read_exact(&mut header[1..]).await?;
    let len = i32::from_be_bytes([header[1], header[2], header[3], header[4]]);
    if len < 4 {
        return Err(CodecError::Malformed("message length"));
    }
    let body_len = len as usize - 4;
    if body_len > max {
        return Err(CodecError::TooLarge {
            side,
            len: body_len,
            max,
        });
    }
    let mut raw = BytesMut::with_capacity(body_len + 5);
    raw.put_slice(&header);
    raw.resize(body_len + 5, 0);
    r.read_exact(&mut raw[5..]).await?;
    Ok(Some(Message {
        tag: header[0],
        raw,
    }))
}

/// Reads a startup-phase packet (no tag byte); returns the code and the rest of the body.
pub async fn read_startup<R: AsyncRead + Unpin>(
    r: &mut R,
) -> Result<Option<(i32, BytesMut)>, CodecError> {
    let mut len = [0u8; 4];
    let n = r.read(&mut len[..1]).await?;
    if n == 0 {
        return Ok(None);
    }
    r.read_exact(&mut len[1..]).await?;
    let len = i32::from_be_bytes(len);
    if !(8..=MAX_STARTUP as i32).contains(&len) {
        return Err(CodecError::TooLarge {
            side: "startup",
            len: len.max(0) as usize,
            max: MAX_STARTUP,
        });
    }
    let mut body = BytesMut::zeroed(len as usize - 4);
    r.read_exact(&mut body).await?;
    let code = i32::from_be_bytes([body[0], body[1], body[2], body[3]]);
    let _ = body.split_to(4);
    Ok(Some((code, body)))
}

/// Splits NUL-terminated strings off a buffer.
pub struct CStrReader<'a> {
    buf: &'a [u8],
}

impl<'a> CStrReader<'a> {
    pub fn new(buf: &'a [u8]) -> Self {
        CStrReader { buf }
    }

    pub fn cstr(&mut self, what: &'static str) -> Result<&'a str, CodecError> {
        let end = self
            .buf
            .iter()
            .position(|b| *b == 0)
            .ok_or(CodecError::Malformed(what))?;
        let s = std::str::from_utf8(&self.buf[..end]).map_err(|_| CodecError::Malformed(what))?;
        self.buf = &self.buf[end + 1..];
        Ok(s)
    }

    pub fn rest(&self) -> &'a [u8] {
        self.buf
    }
}

/// Startup parameters (`user`, `database`, `application_name`, ...).
pub fn startup_params(body: &[u8]) -> Result<Vec<(String, String)>, CodecError> {
    let mut r = CStrReader::new(body);
    let mut out = Vec::new();
    loop {
        let key = r.cstr("startup parameter")?;
        if key.is_empty() {
            return Ok(out);
        }
        let value = r.cstr("startup parameter value")?;
        out.push((key.to_string(), value.to_string()));
    }
}

/// SQL text of a simple `Query` ('Q').
pub fn query_text(body: &[u8]) -> Result<&str, CodecError> {
    CStrReader::new(body).cstr("Query")
}

/// (statement name, SQL text) of an extended-protocol `Parse` ('P').
pub fn parse_message(body: &[u8]) -> Result<(&str, &str), CodecError> {
    let mut r = CStrReader::new(body);
    let name = r.cstr("Parse statement name")?;
    let query = r.cstr("Parse query")?;
    Ok((name, query))
}

/// Parameter type OIDs declared by a `Parse` (after name and query).
pub fn parse_param_types(body: &[u8]) -> Result<Vec<u32>, CodecError> {
    let mut r = CStrReader::new(body);
    r.cstr("Parse statement name")?;
    r.cstr("Parse query")?;
    let rest = r.rest();
    let n = be_u16(rest, 0, "Parse parameter count")? as usize;
    (0..n)
        .map(|i| be_u32(rest, 2 + 4 * i, "Parse parameter type"))
        .collect()
}

fn be_u16(b: &[u8], at: usize, what: &'static str) -> Result<u16, CodecError> {
    b.get(at..at + 2)
        .map(|x| u16::from_be_bytes([x[0], x[1]]))
        .ok_or(CodecError::Malformed(what))
}

fn be_u32(b: &[u8], at: usize, what: &'static str) -> Result<u32, CodecError> {
    b.get(at..at + 4)
        .map(|x| u32::from_be_bytes([x[0], x[1], x[2], x[3]]))
        .ok_or(CodecError::Malformed(what))
}

/// A decoded `Bind` ('B'): the parameter values stay ranges into the message body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Bind<'a> {
    pub portal: &'a str,
    pub statement: &'a str,
    /// Format codes as sent: none (all text), one (for all) or one per parameter.
    pub param_formats: Vec<u16>,
    pub params: Vec<Option<&'a [u8]>>,
}

impl Bind<'_> {
    /// Whether parameter `i` is in binary format.
    pub fn is_binary(&self, i: usize) -> bool {
        match self.param_formats.len() {
            0 => false,
            1 => self.param_formats[0] == 1,
            _ => self.param_formats.get(i) == Some(&1),
        }
    }
}

pub fn bind_message(body: &[u8]) -> Result<Bind<'_>, CodecError> {
    let mut r = CStrReader::new(body);
    let portal = r.cstr("Bind portal")?;
    let statement = r.cstr("Bind statement")?;
    let rest = r.rest();
    let nf = be_u16(rest, 0, "Bind format count")? as usize;
    let mut at = 2;
    let mut param_formats = Vec::with_capacity(nf);
    for _ in 0..nf {
        param_formats.push(be_u16(rest, at, "Bind format")?);
        at += 2;
    }
    let np = be_u16(rest, at, "Bind parameter count")? as usize;
    at += 2;
    let mut params = Vec::with_capacity(np);
    for _ in 0..np {
        let len = be_u32(rest, at, "Bind parameter length")? as i32;
        at += 4;
        if len < 0 {
            params.push(None);
        } else {
            let v = rest
                .get(at..at + len as usize)
                .ok_or(CodecError::Malformed("Bind parameter value"))?;
            params.push(Some(v));
            at += len as usize;
        }
    }
    Ok(Bind {
        portal,
        statement,
        param_formats,
        params,
    })
}

/// The portal an `Execute` ('E') runs.
pub fn execute_portal(body: &[u8]) -> Result<&str, CodecError> {
    CStrReader::new(body).cstr("Execute portal")
}

/// (`S` statement or `P` portal, name) of a `Close` ('C') or `Describe` ('D').
pub fn close_target(body: &[u8]) -> Result<(u8, &str), CodecError> {
    let kind = *body.first().ok_or(CodecError::Malformed("Close kind"))?;
    Ok((kind, CStrReader::new(&body[1..]).cstr("Close name")?))
}

/// A column of a `RowDescription`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Column {
    pub name: String,
    pub type_oid: u32,
    /// 0 text, 1 binary.
    pub format: i16,
    /// The table the column is read from as is (0: computed), and its attribute number.
    pub table_oid: u32,
    pub attnum: i16,
}

pub fn row_description(body: &[u8]) -> Result<Vec<Column>, CodecError> {
    if body.len() < 2 {
        return Err(CodecError::Malformed("RowDescription"));
    }
    let n = i16::from_be_bytes([body[0], body[1]]).max(0) as usize;
    let mut r = CStrReader::new(&body[2..]);
    let mut cols = Vec::with_capacity(n.min(1664));
    for _ in 0..n {
        let name = r.cstr("RowDescription column")?.to_string();
        let rest = r.rest();
        if rest.len() < 18 {
            return Err(CodecError::Malformed("RowDescription"));
        }
        let table_oid = u32::from_be_bytes([rest[0], rest[1], rest[2], rest[3]]);
        let attnum = i16::from_be_bytes([rest[4], rest[5]]);
        let type_oid = u32::from_be_bytes([rest[6], rest[7], rest[8], rest[9]]);
        let format = i16::from_be_bytes([rest[16], rest[17]]);
        cols.push(Column {
            name,
            type_oid,
            format,
            table_oid,
            attnum,
        });
        r = CStrReader::new(&rest[18..]);
    }
    Ok(cols)
}

/// The fields of a `DataRow` ('D') as byte ranges of the body (`None` is SQL NULL).
pub fn data_row_fields(body: &[u8]) -> Result<Vec<Option<std::ops::Range<usize>>>, CodecError> {
    if body.len() < 2 {
        return Err(CodecError::Malformed("DataRow"));
    }
    let n = i16::from_be_bytes([body[0], body[1]]).max(0) as usize;
    let mut fields = Vec::with_capacity(n);
    let mut at = 2;
    for _ in 0..n {
        let len_bytes = body
            .get(at..at + 4)
            .ok_or(CodecError::Malformed("DataRow"))?;
        let len = i32::from_be_bytes(len_bytes.try_into().expect("4 bytes"));
        at += 4;
        if len < 0 {
            fields.push(None);
            continue;
        }
        let end = at
            .checked_add(len as usize)
            .filter(|e| *e <= body.len())
            .ok_or(CodecError::Malformed("DataRow"))?;
        fields.push(Some(at..end));
        at = end;
    }
    if at != body.len() {
        return Err(CodecError::Malformed("DataRow"));
    }
    Ok(fields)
}

/// Re-encodes a `DataRow` from field values, with recomputed lengths.
pub fn build_data_row(fields: &[Option<&[u8]>]) -> Message {
    let mut body = BytesMut::with_capacity(
        2 + fields
            .iter()
            .map(|f| 4 + f.map_or(0, <[u8]>::len))
            .sum::<usize>(),
    );
    body.put_i16(fields.len() as i16);
    for f in fields {
        match f {
            None => body.put_i32(-1),
            Some(v) => {
                body.put_i32(v.len() as i32);
                body.put_slice(v);
            }
        }
    }
    Message::new(b'D', &body)
}

/// An `ErrorResponse` (or `NoticeResponse` with tag 'N').
pub fn error_response(
    code: &str,
    message: &str,
    detail: Option<&str>,
    hint: Option<&str>,
) -> Message {
    let mut body = BytesMut::new();
    for (field, value) in [
        (b'S', Some("ERROR")),
        (b'V', Some("ERROR")),
        (b'C', Some(code)),
        (b'M', Some(message)),
        (b'D', detail),
        (b'H', hint),
    ] {
        if let Some(v) = value {
            body.put_u8(field);
            // NULs cannot appear inside a field; strip rather than truncate silently later.
            body.put_slice(v.replace('\0', "").as_bytes());
            body.put_u8(0);
        }
    }
    body.put_u8(0);
    Message::new(b'E', &body)
}

pub fn ready_for_query(status: u8) -> Message {
    Message::new(b'Z', &[status])
}

pub fn authentication_ok() -> Message {
    Message::new(b'R', &0i32.to_be_bytes())
}

pub fn backend_key_data(pid: i32, secret: i32) -> Message {
    let mut body = [0u8; 8];
    body[..4].copy_from_slice(&pid.to_be_bytes());
    body[4..].copy_from_slice(&secret.to_be_bytes());
    Message::new(b'K', &body)
}

/// The body of an empty simple query: sent upstream in place of a refused statement so that
/// the upstream's own answer (EmptyQueryResponse + ReadyForQuery) keeps the ordering and
/// transaction status exact.
pub fn empty_query() -> Message {
    Message::new(b'Q', b"\0")
}

pub fn sync() -> Message {
    Message::new(b'S', b"")
}

/// Fields of an ErrorResponse/NoticeResponse body (type byte, value).
/// One field of [`notice_fields`] (`b'C'`: the SQLSTATE, `b'M'`: the message); empty when
/// absent.
pub fn notice_field(fields: &[(u8, String)], field: u8) -> String {
    fields
        .iter()
        .find(|(f, _)| *f == field)
        .map(|(_, v)| v.clone())
        .unwrap_or_default()
}

pub fn notice_fields(body: &[u8]) -> Vec<(u8, String)> {
    let mut out = Vec::new();
    let mut at = 0;
    while at < body.len() && body[at] != 0 {
        let field = body[at];
        let end = body[at + 1..]
            .iter()
            .position(|b| *b == 0)
            .map(|p| at + 1 + p)
            .unwrap_or(body.len());
        out.push((
            field,
            String::from_utf8_lossy(&body[at + 1..end]).into_owned(),
        ));
        at = end + 1;
    }
    out
}

pub fn build_notice(tag: u8, fields: &[(u8, String)]) -> Message {
    let mut body = BytesMut::new();
    for (f, v) in fields {
        body.put_u8(*f);
        body.put_slice(v.replace('\0', "").as_bytes());
        body.put_u8(0);
    }
    body.put_u8(0);
    Message::new(tag, &body)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn frames_round_trip_and_bounds_are_enforced() {
        let m = Message::new(b'Q', b"select 1\0");
        let mut input: &[u8] = &m.raw;
        let got = read_message(&mut input, 1024, "frontend")
            .await
            .unwrap()
            .unwrap();
        assert_eq!(got.tag, b'Q');
        assert_eq!(query_text(got.body()).unwrap(), "select 1");
        let mut input: &[u8] = &m.raw;
        let err = read_message(&mut input, 4, "frontend").await.unwrap_err();
        assert!(
            matches!(err, CodecError::TooLarge { len: 9, max: 4, .. }),
            "{err}"
        );
        let mut bad: &[u8] = &[b'Q', 0, 0, 0, 2];
        assert!(matches!(
            read_message(&mut bad, 1024, "frontend").await,
            Err(CodecError::Malformed(_))
        ));
        let mut empty: &[u8] = &[];
        assert!(
            read_message(&mut empty, 1024, "frontend")
                .await
                .unwrap()
                .is_none()
        );
    }

    #[test]
    fn data_rows_decode_and_rebuild_with_new_lengths() {
        let row = build_data_row(&[Some(b"alice@example.com"), None, Some(b"")]);
        let fields = data_row_fields(row.body()).unwrap();
        assert_eq!(fields.len(), 3);
        assert_eq!(
            &row.body()[fields[0].clone().unwrap()],
            b"alice@example.com"
        );
        assert!(fields[1].is_none());
        assert_eq!(fields[2].clone().unwrap().len(), 0);
        let rebuilt = build_data_row(&[Some(b"[EMAIL]"), None, Some(b"")]);
        let f = data_row_fields(rebuilt.body()).unwrap();
        assert_eq!(&rebuilt.body()[f[0].clone().unwrap()], b"[EMAIL]");
        // Truncated or overlong fields are malformed, never read past the body.
        let mut truncated = row.body().to_vec();
        truncated.pop();
        assert!(data_row_fields(&truncated).is_err());
    }

    #[test]
    fn startup_and_parse_messages_decode() {
        let params = startup_params(b"user\0app\0database\0orders\0\0").unwrap();
        assert_eq!(
            params,
            vec![
                ("user".into(), "app".into()),
                ("database".into(), "orders".into())
            ]
        );
        assert_eq!(
            parse_message(b"s1\0select $1\0\0\0").unwrap(),
            ("s1", "select $1")
        );
        assert!(parse_message(b"s1\0select").is_err());
    }

    #[test]
    fn error_responses_carry_code_message_and_hint() {
        let e = error_response("42501", "blocked", Some("detail"), Some("hint"));
        let fields = notice_fields(e.body());
        assert!(fields.contains(&(b'C', "42501".into())));
        assert!(fields.contains(&(b'M', "blocked".into())));
        assert!(fields.contains(&(b'H', "hint".into())));
    }
}
