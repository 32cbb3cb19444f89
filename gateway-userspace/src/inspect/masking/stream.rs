//! Masking of byte streams whose values may be split across chunks.
//!
//! The masker never emits the last [`HOLD`] bytes it has seen: every detector's value (except
//! JWTs and PEM blocks, see below) is shorter, so a value whose first byte is emitted was
//! completely visible, with its right-hand context, when it was judged. [`CONTEXT`] bytes that
//! were already emitted are kept (unmasked originals) as left-hand context for the confirmers.
//! Memory per stream is bounded by `HOLD + CONTEXT` plus the chunk being pushed.
//!
//! JWTs (up to [`detectors::JWT_MAX`]) and PEM private key blocks (up to [`detectors::PEM_MAX`])
//! can be longer than the hold. When one reaches the end of what has arrived and started more
//! than `HOLD` bytes ago, its placeholder is emitted and the rest of the value is dropped as it
//! arrives (a *continuation*: token bytes for a JWT; everything up to `-----END ...-----` for a
//! PEM block), within the same bounds as block mode, so both modes produce the same output.
//!
//! Interactive sessions cannot wait for `HOLD` more bytes: call [`StreamMasker::flush`] when the
//! source goes idle. A value split exactly at a flush point is then judged in two halves.

use std::sync::Arc;

use super::{
    MaskError,
    config::DetectorKind,
    detectors::{self, JWT_MAX, PEM_MAX, Span},
    engine::{MaskingEngine, Report},
};

/// Bytes never emitted before more input arrives (longest short value plus its context, and a
/// JWT header of up to 2 KiB that must be visible to be confirmed).
pub const HOLD: usize = 2048 + 256;
/// Already-emitted bytes kept as left context.
pub const CONTEXT: usize = detectors::MAX_LOOKBEHIND;

enum Continuation {
    Jwt { remaining: usize, dots: usize },
    Pem { remaining: usize, recent: Vec<u8> },
}

impl Continuation {
    /// Drops the continuing value's bytes from the front of `chunk`; returns how many, and
    /// whether the value ended.
    fn consume(&mut self, chunk: &[u8]) -> (usize, bool) {
        match self {
            Continuation::Jwt { remaining, dots } => {
                let mut n = 0;
                while n < chunk.len() && *remaining > 0 {
                    let b = chunk[n];
                    if b.is_ascii_alphanumeric() || b == b'-' || b == b'_' {
                    } else if b == b'.' && *dots < 2 {
                        *dots += 1;
                    } else {
                        return (n, true);
                    }
                    n += 1;
                    *remaining -= 1;
                }
                (n, *remaining == 0)
            }
            Continuation::Pem { remaining, recent } => {
                let n = chunk.len().min(*remaining);
                let keep = recent.len();
                recent.extend_from_slice(&chunk[..n]);
                if let Some(i) = find(recent, b"-----END ") {
                    let after = i + 9;
                    let hi = (after + 64).min(recent.len());
                    if let Some(j) = find(&recent[after..hi], b"-----") {
                        let end = after + j + 5;
                        return (end - keep, true);
                    }
                }
                *remaining -= n;
                if recent.len() > 96 {
                    recent.drain(..recent.len() - 96);
                }
                (n, *remaining == 0)
            }
        }
    }
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

/// Masks one byte stream. Not `Sync`; one per stream (cheap: a buffer and an `Arc`).
pub struct StreamMasker {
    engine: Arc<MaskingEngine>,
    buf: Vec<u8>,
    /// `buf[..ctx]` was already emitted and is kept only as left context.
    ctx: usize,
    cont: Option<Continuation>,
    report: Report,
}

impl StreamMasker {
    pub fn new(engine: Arc<MaskingEngine>) -> Self {
        Self {
            engine,
            buf: Vec::with_capacity(HOLD + CONTEXT + 64 * 1024),
            ctx: 0,
            cont: None,
            report: Report::default(),
        }
    }

    /// Feeds a chunk; appends to `out` every byte that is now final.
    pub fn push(&mut self, mut chunk: &[u8], out: &mut Vec<u8>) -> Result<(), MaskError> {
        self.report.bytes_in += chunk.len() as u64;
        if let Some(c) = &mut self.cont {
            let (n, done) = c.consume(chunk);
            // Dropped bytes become the left context of what follows.
            self.buf.clear();
            self.buf
                .extend_from_slice(&chunk[n.saturating_sub(CONTEXT)..n]);
            self.ctx = self.buf.len();
            chunk = &chunk[n..];
            if !done {
                return Ok(());
            }
            self.cont = None;
        }
        self.buf.extend_from_slice(chunk);
        self.process(out, false)
    }

    /// Emits everything held (call when the source goes idle or ends).
    pub fn flush(&mut self, out: &mut Vec<u8>) -> Result<(), MaskError> {
        self.process(out, true)
    }

    /// Flushes and returns the findings of the whole stream.
    pub fn finish(mut self, out: &mut Vec<u8>) -> Result<Report, MaskError> {
        self.flush(out)?;
        Ok(self.report)
    }

    pub fn report(&self) -> &Report {
        &self.report
    }

    /// Bytes received but not yet emitted.
    pub fn held(&self) -> usize {
        self.buf.len() - self.ctx
    }

    fn process(&mut self, out: &mut Vec<u8>, eof: bool) -> Result<(), MaskError> {
        let len = self.buf.len();
        if len == self.ctx {
            return Ok(());
        }
        if !eof && len - self.ctx <= HOLD {
            return Ok(());
        }
        let spans = self.engine.find(&self.buf)?;
        let mut cut = if eof { len } else { (len - HOLD).max(self.ctx) };
        let out_before = out.len();
        let mut at = self.ctx;
        for s in &spans {
            if s.end <= self.ctx {
                continue; // judged and emitted before
            }
            if s.start >= cut {
                break;
            }
            let start = s.start.max(self.ctx); // fail closed if a span reaches back into context
            if s.end > cut {
                cut = s.end;
                if !eof && s.end == len {
                    // Longer than the hold and still arriving: drop the rest as it comes.
                    self.cont = match s.kind {
                        DetectorKind::Jwt => Some(Continuation::Jwt {
                            remaining: JWT_MAX.saturating_sub(s.end - s.start),
                            dots: self.buf[s.start..s.end]
                                .iter()
                                .filter(|&&b| b == b'.')
                                .count(),
                        }),
                        DetectorKind::PrivateKey => Some(Continuation::Pem {
                            remaining: PEM_MAX.saturating_sub(s.end - s.start),
                            recent: self.buf[s.end.saturating_sub(96).max(s.start + 11)..s.end]
                                .to_vec(),
                        }),
                        _ => None,
                    };
                }
            }
            out.extend_from_slice(&self.buf[at..start]);
            let value = [Span {
                start: 0,
                end: s.end - start,
                kind: s.kind,
            }];
            self.engine
                .rewrite(&self.buf[start..s.end], &value, out, &mut self.report);
            at = s.end;
        }
        out.extend_from_slice(&self.buf[at..cut]);
        self.report.bytes_out += (out.len() - out_before) as u64;
        if self.cont.is_some() {
            self.buf.drain(..cut.saturating_sub(CONTEXT));
            self.ctx = self.buf.len();
            if let Some(
                Continuation::Pem { remaining: 0, .. } | Continuation::Jwt { remaining: 0, .. },
            ) = self.cont
            {
                self.cont = None;
            }
            return Ok(());
        }
        let keep_from = cut.saturating_sub(CONTEXT);
        self.buf.drain(..keep_from);
        self.ctx = cut - keep_from;
        Ok(())
    }
}

#[cfg(test)]
mod tests;
