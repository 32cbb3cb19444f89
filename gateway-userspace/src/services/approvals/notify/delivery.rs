//! Delivery: a bounded queue and one worker thread that posts to the webhook and to Slack.

use std::{
    fmt,
    sync::mpsc,
    thread,
    time::{Duration, SystemTime, UNIX_EPOCH},
};

use tracing::{error, warn};

use super::*;

/// Notifications waiting for delivery; past this they are dropped (see the module doc).
const QUEUE: usize = 256;
/// Per delivery attempt: a slow receiver holds up the queue for at most this long.
const TIMEOUT: Duration = Duration::from_secs(5);

/// Where notifications go. Both are optional; with neither, [`Notifier::send`] does nothing.
#[derive(Clone, Default)]
pub struct NotifyConfig {
    /// Generic webhook: URL and the HMAC secret of `X-Sluice-Signature`.
    pub webhook: Option<(String, String)>,
    /// Slack incoming-webhook URL (it is a credential itself).
    pub slack_webhook: Option<String>,
}

/// Hand-written so the secrets never reach a log line.
impl fmt::Debug for NotifyConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NotifyConfig")
            .field(
                "webhook",
                &self.webhook.as_ref().map(|(url, _)| (url, "<secret>")),
            )
            .field(
                "slack_webhook",
                &self.slack_webhook.as_ref().map(|_| "<url>"),
            )
            .finish()
    }
}

pub struct Notifier {
    tx: Option<mpsc::SyncSender<Notification>>,
}

impl Notifier {
    /// Starts the delivery thread (none when nothing is configured). A plain thread, not a tokio
    /// task, so it works without a runtime and blocking HTTP never occupies the runtime's pool.
    pub fn start(config: NotifyConfig) -> Notifier {
        if config.webhook.is_none() && config.slack_webhook.is_none() {
            return Notifier { tx: None };
        }
        let (tx, rx) = mpsc::sync_channel::<Notification>(QUEUE);
        let spawned = thread::Builder::new()
            .name("sluice-notify".into())
            .spawn(move || {
                let agent: ureq::Agent = ureq::Agent::config_builder()
                    .timeout_global(Some(TIMEOUT))
                    .build()
                    .into();
                // Ends when the Notifier (the only sender) is dropped.
                while let Ok(n) = rx.recv() {
                    deliver(&agent, &config, &n);
                }
            });
        match spawned {
            Ok(_) => Notifier { tx: Some(tx) },
            Err(e) => {
                error!(error = %e, "cannot start the notification thread; notifications are off");
                Notifier { tx: None }
            }
        }
    }

    /// Queues a notification; never waits.
    pub fn send(&self, n: Notification) {
        let Some(tx) = &self.tx else { return };
        match tx.try_send(n) {
            Ok(()) => {}
            Err(mpsc::TrySendError::Full(n)) => warn!(
                event = "notification_dropped",
                approval = %n.view.id,
                "notification queue full; reviewers see the request on the web page only"
            ),
            Err(mpsc::TrySendError::Disconnected(n)) => error!(
                event = "notification_dropped",
                approval = %n.view.id,
                "notification thread is gone"
            ),
        }
    }
}

fn deliver(agent: &ureq::Agent, config: &NotifyConfig, n: &Notification) {
    if let Some((url, secret)) = &config.webhook {
        let now = SystemTime::now();
        let body = webhook_body(n, now);
        let ts = now.duration_since(UNIX_EPOCH).unwrap_or_default().as_secs();
        let result = agent
            .post(url)
            .header("user-agent", "sluice")
            .header("content-type", "application/json")
            .header(TIMESTAMP_HEADER, ts.to_string())
            .header(SIGNATURE_HEADER, sign(secret.as_bytes(), ts, &body))
            .send(&body[..]);
        if let Err(e) = result {
            warn!(event = "notification_failed", approval = %n.view.id, sink = "webhook",
                error = %e, "webhook did not accept the notification");
        }
    }
    if let Some(url) = &config.slack_webhook
        && let Err(e) = agent
            .post(url)
            .header("user-agent", "sluice")
            .send_json(slack_message(n))
    {
        warn!(event = "notification_failed", approval = %n.view.id, sink = "slack",
            error = %e, "Slack did not accept the notification");
    }
}
