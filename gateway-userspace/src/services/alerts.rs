//! Alerts: every refused command and every `alert` rule match is logged and, when the policy
//! names a webhook, POSTed to it as JSON.
//!
//! Delivery never slows the data path: alerts go through a bounded queue to one worker; if the
//! queue is full the alert is dropped with an error log line (the log line of the decision
//! itself is always written).

use std::time::Duration;

use serde::Serialize;
use tokio::sync::mpsc;
use tracing::{error, warn};

const QUEUE: usize = 1024;
const TIMEOUT: Duration = Duration::from_secs(5);

#[derive(Clone, Debug, Serialize)]
pub struct Alert {
    #[serde(rename = "type")]
    pub kind: &'static str,
    pub time: String,
    pub action: String,
    pub rule: String,
    pub reason: String,
    pub resource: String,
    pub target: String,
    pub conn_id: u64,
    pub pid: u32,
    pub uid: u32,
    pub exe: Option<String>,
    pub command: String,
}

pub struct AlertSink {
    tx: mpsc::Sender<(String, Alert)>,
}

impl AlertSink {
    /// Starts the delivery worker (needs a tokio runtime).
    pub fn start() -> AlertSink {
        let (tx, mut rx) = mpsc::channel::<(String, Alert)>(QUEUE);
        tokio::spawn(async move {
            let agent: ureq::Agent = ureq::Agent::config_builder()
                .timeout_global(Some(TIMEOUT))
                .build()
                .into();
            while let Some((url, alert)) = rx.recv().await {
                let agent = agent.clone();
                let result = tokio::task::spawn_blocking(move || {
                    agent
                        .post(&url)
                        .header("user-agent", "sluice")
                        .send_json(&alert)
                        .map(|_| ())
                })
                .await;
                match result {
                    Ok(Ok(())) => {}
                    Ok(Err(e)) => {
                        warn!(event = "alert_delivery_failed", error = %e, "webhook did not accept the alert")
                    }
                    Err(e) => error!(error = %e, "alert delivery task failed"),
                }
            }
        });
        AlertSink { tx }
    }

    /// Queues an alert for `webhook`; never waits.
    pub fn send(&self, webhook: &str, alert: Alert) {
        if let Err(e) = self.tx.try_send((webhook.to_string(), alert)) {
            error!(event = "alert_dropped", error = %e, "alert queue full or closed; alert not delivered");
        }
    }
}
