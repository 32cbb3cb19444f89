//! placeholder: filled by the guardrails branch
