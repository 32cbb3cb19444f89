//! STAND-IN until the line-tracker branch is merged.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Mode { Pty, Lines }
pub enum Action { Forward(Vec<u8>), Submit { line: String, release: Vec<u8>, uncertain: Option<String> }, Dropped { what: &'static str } }
pub struct LineTracker { mode: Mode, buf: Vec<u8>, pending: String }
impl LineTracker {
    pub fn new(mode: Mode, _max: usize) -> Self { Self { mode, buf: Vec::new(), pending: String::new() } }
    pub fn feed(&mut self, input: &[u8]) -> Vec<Action> {
        let mut out = Vec::new();
        for &b in input {
            let enter = if self.mode == Mode::Pty { b == b'\r' } else { b == b'\n' };
            if enter {
                let line = String::from_utf8_lossy(&self.buf).into_owned();
                let release = if self.mode == Mode::Pty { vec![b] } else { let mut v = std::mem::take(&mut self.buf); v.push(b); v };
                self.buf.clear();
                out.push(Action::Submit { line: format!("{}{}", self.pending, line), release, uncertain: None });
            } else {
                self.buf.push(b);
                if self.mode == Mode::Pty { out.push(Action::Forward(vec![b])); }
            }
        }
        out
    }
    pub fn finish(&mut self) -> Vec<Action> { Vec::new() }
    pub fn continue_line(&mut self) -> Vec<u8> { Vec::new() }
    pub fn refused(&mut self) -> Vec<u8> { if self.mode == Mode::Pty { vec![3] } else { Vec::new() } }
}
