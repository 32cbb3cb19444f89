//! The reviewers' side of the broker: votes (with quorum, self-approval and grant rules), the
//! list of requests and grants, and revoking a grant.

use super::*;

impl Broker {
    /// A reviewer's vote.
    pub fn decide(
        &self,
        id: &str,
        reviewer: &Reviewer,
        decision: Decision,
        reason: Option<String>,
        grant: Option<GrantRequest>,
    ) -> Result<ApprovalView, DecideError> {
        let reason = reason
            .map(|r| r.trim().chars().take(MAX_REASON).collect::<String>())
            .filter(|r| !r.is_empty());
        if let Some(g) = &grant {
            if decision == Decision::Deny {
                return Err(DecideError::BadRequest("only an approval can grant".into()));
            }
            let d = humantime::parse_duration(&g.duration).map_err(|e| {
                DecideError::BadRequest(format!("grant duration `{}`: {e}", g.duration))
            })?;
            if d.is_zero() || d > MAX_GRANT {
                return Err(DecideError::BadRequest(format!(
                    "a grant lasts between 1s and {}",
                    humantime::format_duration(MAX_GRANT)
                )));
            }
        }
        if decision == Decision::Deny && reason.is_none() {
            return Err(DecideError::BadRequest(
                "a denial needs a reason (the agent is told it)".into(),
            ));
        }
        let mut inner = self.lock();
        let Some(view) = inner.views.get(id) else {
            drop(inner);
            // Older requests live only in the store.
            return match self.lookup_stored(id) {
                Some(v) => Err(DecideError::NotPending(v.state.as_str())),
                None => Err(DecideError::NotFound(id.into())),
            };
        };
        if view.state != State::Pending {
            return Err(DecideError::NotPending(view.state.as_str()));
        }
        let pending = inner.pending.get(id).expect("pending view has its entry");
        if decision == Decision::Approve && pending.identity == reviewer.subject {
            return Err(DecideError::Forbidden(
                "you cannot approve your own request".into(),
            ));
        }
        if !reviewer.groups.iter().any(|g| view.groups.contains(g)) {
            return Err(DecideError::Forbidden(format!(
                "deciding on this request needs membership in one of: {}",
                view.groups.join(", ")
            )));
        }
        if view.votes.iter().any(|v| v.reviewer == reviewer.subject) {
            return Err(DecideError::Forbidden(
                "you already voted on this request; another reviewer must decide".into(),
            ));
        }
        let required = pending.policy.required;
        if grant.is_some() && required > 1 {
            return Err(DecideError::BadRequest(
                "grants need a rule that requires a single approval; approve without a grant"
                    .into(),
            ));
        }
        let now = SystemTime::now();
        let vote = Vote {
            reviewer: reviewer.subject.clone(),
            decision,
            reason: reason.clone(),
            at: rfc3339(now),
        };
        let view = inner.views.get_mut(id).expect("checked above");
        view.votes.push(vote);
        let approvals = view
            .votes
            .iter()
            .filter(|v| v.decision == Decision::Approve)
            .count() as u32;
        let final_state = match decision {
            Decision::Deny => Some(State::Denied),
            Decision::Approve if approvals >= required => Some(State::Approved),
            Decision::Approve => None,
        };
        let pending = inner.pending.get_mut(id).expect("checked above");
        if decision == Decision::Approve {
            pending.grant_asks.push(grant);
        }
        let Some(state) = final_state else {
            let view = inner.views[id].clone();
            drop(inner);
            self.persist(&view);
            info!(event = "approval_vote", id = %id, reviewer = %reviewer.subject, approvals, required,
                  "approval recorded; more needed");
            return Ok(view);
        };
        let mut pending = inner.pending.remove(id).expect("checked above");
        let new_grant = match (state, pending.grant_asks.first().cloned().flatten()) {
            (State::Approved, Some(ask)) => {
                let d = humantime::parse_duration(&ask.duration).expect("validated above");
                let view = &inner.views[id];
                let g = GrantView {
                    id: new_id(),
                    identity: pending.identity.clone(),
                    resource: view.resource.clone(),
                    scope: ask.scope,
                    pattern: match ask.scope {
                        GrantScope::Fingerprint => pending.fingerprint.clone(),
                        GrantScope::Rule => view.rule.clone(),
                    },
                    created_by: reviewer.subject.clone(),
                    created_at: rfc3339(now),
                    expires_at: rfc3339(now + d),
                    revoked_by: None,
                    uses: 0,
                };
                inner.grants.insert(
                    g.id.clone(),
                    Grant {
                        view: g.clone(),
                        expires: now + d,
                    },
                );
                Some(g)
            }
            _ => None,
        };
        let view = inner.views.get_mut(id).expect("checked above");
        view.state = state;
        view.decided_at = Some(rfc3339(now));
        view.decision_reason = match state {
            State::Denied => reason.clone(),
            _ => reason.clone().or(Some(format!(
                "approved by {}",
                view.votes
                    .iter()
                    .map(|v| v.reviewer.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            ))),
        };
        view.grant = new_grant.as_ref().map(|g| g.id.clone());
        let view = view.clone();
        inner.decided.push_back(id.to_string());
        Self::trim(&mut inner);
        drop(inner);
        let outcome = match state {
            State::Denied => Outcome::Denied {
                reviewer: reviewer.subject.clone(),
                reason: reason.unwrap_or_default(),
            },
            _ => Outcome::Approved {
                reviewers: view.votes.iter().map(|v| v.reviewer.clone()).collect(),
            },
        };
        if let Some(tx) = pending.tx.take() {
            let _ = tx.send(outcome);
        }
        self.persist(&view);
        if let Some(g) = &new_grant {
            self.persist_grant(g);
            info!(event = "grant_created", id = %g.id, identity = %g.identity, resource = %g.resource,
                  pattern = %g.pattern, expires_at = %g.expires_at, by = %g.created_by, "just-in-time grant");
        }
        info!(event = "approval_decided", id = %id, state = state.as_str(), reviewer = %reviewer.subject,
              "approval request decided");
        self.emit(BrokerEvent::Decided(view.clone()));
        Ok(view)
    }

    fn lookup_stored(&self, id: &str) -> Option<ApprovalView> {
        self.store
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(id)
            .ok()
            .flatten()
    }

    pub fn get(&self, id: &str) -> Option<ApprovalView> {
        let view = self.lock().views.get(id).cloned();
        view.or_else(|| self.lookup_stored(id))
    }

    /// Newest first; `state` filters.
    pub fn list(&self, state: Option<State>) -> Vec<ApprovalView> {
        let mut views: Vec<ApprovalView> = self
            .lock()
            .views
            .values()
            .filter(|v| state.is_none_or(|s| v.state == s))
            .cloned()
            .collect();
        views.sort_by(|a, b| b.created_at.cmp(&a.created_at).then(b.id.cmp(&a.id)));
        views
    }

    pub fn pending_count(&self) -> usize {
        self.lock().pending.len()
    }

    /// Live (unexpired) grants, revoked ones included.
    pub fn grants(&self) -> Vec<GrantView> {
        let now = SystemTime::now();
        let mut inner = self.lock();
        inner.grants.retain(|_, g| g.expires > now);
        let mut v: Vec<GrantView> = inner.grants.values().map(|g| g.view.clone()).collect();
        v.sort_by(|a, b| a.expires_at.cmp(&b.expires_at));
        v
    }

    pub fn revoke(&self, id: &str, by: &Reviewer) -> Result<GrantView, DecideError> {
        let mut inner = self.lock();
        let Some(g) = inner.grants.get_mut(id) else {
            return Err(DecideError::NotFound(id.into()));
        };
        if g.view.revoked_by.is_some() {
            return Err(DecideError::NotPending("revoked"));
        }
        g.view.revoked_by = Some(by.subject.clone());
        let view = g.view.clone();
        drop(inner);
        self.persist_grant(&view);
        info!(event = "grant_revoked", id = %id, by = %by.subject, "just-in-time grant revoked");
        Ok(view)
    }
}
