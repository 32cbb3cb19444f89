//! The JSON lines a child process prints (sluice's log, a peer's reports), collected by a
//! background thread and waited on.

use std::{
    io::{BufRead, BufReader},
    sync::{Arc, Condvar, Mutex},
    time::{Duration, Instant},
};

use serde_json::Value;

/// JSON lines read from a child's pipe by a background thread.
#[derive(Clone)]
pub struct LineLog {
    inner: Arc<(Mutex<Vec<Value>>, Condvar)>,
}

impl LineLog {
    pub fn from_reader(r: impl std::io::Read + Send + 'static, label: &'static str) -> LineLog {
        let log = LineLog {
            inner: Arc::new((Mutex::new(Vec::new()), Condvar::new())),
        };
        let inner = log.inner.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(r).lines().map_while(Result::ok) {
                // Echo so a failing test shows what the child said.
                eprintln!("[{label}] {line}");
                let v = serde_json::from_str(&line).unwrap_or(Value::String(line));
                let (lock, cv) = &*inner;
                lock.lock().unwrap().push(v);
                cv.notify_all();
            }
        });
        log
    }

    pub fn snapshot(&self) -> Vec<Value> {
        self.inner.0.lock().unwrap().clone()
    }

    /// Waits for a line matching `pred`; panics with everything seen after `timeout`.
    pub fn wait_for(&self, timeout: Duration, pred: impl Fn(&Value) -> bool) -> Value {
        let deadline = Instant::now() + timeout;
        let (lock, cv) = &*self.inner;
        let mut lines = lock.lock().unwrap();
        let mut checked = 0;
        loop {
            // `pred` runs without the lock held: it may read the log itself.
            let fresh: Vec<Value> = lines[checked..].to_vec();
            checked = lines.len();
            drop(lines);
            if let Some(v) = fresh.into_iter().find(|v| pred(v)) {
                return v;
            }
            lines = lock.lock().unwrap();
            if lines.len() > checked {
                continue;
            }
            let now = Instant::now();
            assert!(
                now < deadline,
                "timed out waiting for a log line; saw:\n{}",
                lines
                    .iter()
                    .map(|v| v.to_string())
                    .collect::<Vec<_>>()
                    .join("\n")
            );
            lines = cv.wait_timeout(lines, deadline - now).unwrap().0;
        }
    }

    /// Lines matching `pred` so far.
    pub fn matching(&self, pred: impl Fn(&Value) -> bool) -> Vec<Value> {
        self.snapshot().into_iter().filter(|v| pred(v)).collect()
    }
}

/// `event` field of a sluice JSON log line.
pub fn is_event(v: &Value, name: &str) -> bool {
    v.get("event").and_then(Value::as_str) == Some(name)
}
