//! STAND-IN until the shell-guardrails branch is merged.
use crate::{config::{Action, Config}, inspect::policy::{Decision, Subject}};
pub struct ShellAnalysis { pub commands: Vec<String>, pub parse_error: Option<String>, pub incomplete: bool }
pub fn analyze_shell(text: &str) -> ShellAnalysis {
    ShellAnalysis { commands: text.split_whitespace().take(1).map(String::from).collect(), parse_error: None, incomplete: text.ends_with('\\') }
}
pub fn decide_shell(_c: &Config, _s: &Subject, a: &ShellAnalysis) -> Decision {
    let deny = a.commands.first().is_some_and(|c| c == "rm");
    Decision { action: if deny { Action::Deny } else { Action::Allow }, rule: "stand-in".into(), reason: "stand-in".into() }
}
