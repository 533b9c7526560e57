//! The [`Engine`] that runs the rules for one request: it knows which rules
//! the container is exempt from and records what the rules change or deny.
//!
//! Each rule runs only when its config switch is on and the container is not
//! exempt from it. In enforce mode every rule still runs after a denial, so
//! audit mode (which returns everything) and enforce mode (which returns the
//! first denial) always agree.

use std::collections::BTreeSet;

use serde_json::Value;

use crate::config::{ContainerIdentity, LoadedConfig, OnExceed, StandardsConfig, StandardsMode, RULE_NAMES};

use super::{Change, Denial, Outcome, Rejection, LABEL_EXEMPT};

/// Which rules are switched off for one container.
#[derive(Debug, Default)]
struct Exemptions {
    all: bool,
    rules: BTreeSet<String>,
}

impl Exemptions {
    fn for_container(cfg: &LoadedConfig, who: &ContainerIdentity<'_>) -> Exemptions {
        let mut exemptions = Exemptions::default();
        let mut add = |rule: &str| {
            if rule == "all" {
                exemptions.all = true;
            } else if RULE_NAMES.contains(&rule) {
                exemptions.rules.insert(rule.to_string());
            }
        };
        for (selector, exemption) in &cfg.exemptions {
            if selector.matches(who) {
                exemption.rules.iter().for_each(|rule| add(rule));
            }
        }
        if cfg.config.standards.allow_label_exemptions {
            if let Some(rules) = who.label(LABEL_EXEMPT) {
                rules.split(',').map(str::trim).for_each(&mut add);
            }
        }
        exemptions
    }

    fn covers(&self, rule: &str) -> bool {
        self.all || self.rules.contains(rule)
    }
}

/// Runs rules for one request and collects their findings.
pub(super) struct Engine<'c> {
    pub(super) cfg: &'c LoadedConfig,
    pub(super) standards: &'c StandardsConfig,
    exemptions: Exemptions,
    changes: Vec<Change>,
    /// Decisions that changed nothing: a fitted rule not applied, and why.
    notes: Vec<Change>,
    /// Each denial with its rule as a `&'static str`, for audit findings.
    denials: Vec<(&'static str, Denial)>,
}

impl<'c> Engine<'c> {
    pub(super) fn new(cfg: &'c LoadedConfig, who: &ContainerIdentity<'_>) -> Engine<'c> {
        Engine {
            cfg,
            standards: &cfg.config.standards,
            exemptions: Exemptions::for_container(cfg, who),
            changes: Vec::new(),
            notes: Vec::new(),
            denials: Vec::new(),
        }
    }

    /// Whether `rule` applies to this container (it is not exempt).
    pub(super) fn applies(&self, rule: &str) -> bool {
        !self.exemptions.covers(rule)
    }

    pub(super) fn change(&mut self, rule: &'static str, message: impl Into<String>) {
        self.changes.push(Change {
            rule,
            message: message.into(),
        });
    }

    /// Records a decision that changes nothing (a fitted rule held back).
    pub(super) fn note(&mut self, rule: &'static str, message: impl Into<String>) {
        self.notes.push(Change {
            rule,
            message: message.into(),
        });
    }

    /// Records a denial unless the container is exempt from `rule`. `advice`
    /// says what to ask for instead, when there is something.
    pub(super) fn deny(&mut self, rule: &'static str, what: impl Into<String>, advice: Option<String>) {
        if !self.applies(rule) {
            return;
        }
        let mut hint = String::new();
        if let Some(advice) = advice {
            hint.push_str(&advice);
            hint.push_str(", or ");
        }
        hint.push_str(&format!(
            "ask the operator to exempt this container from {rule} (standards.exempt in the forge-shim config)"
        ));
        if self.standards.allow_label_exemptions {
            hint.push_str(&format!(", or set the label {LABEL_EXEMPT}={rule}"));
        }
        let denial = Denial {
            rule: rule.to_string(),
            what: what.into(),
            hint,
        };
        self.denials.push((rule, denial));
    }

    /// A request above a maximum: denies (returns false) or tells the caller
    /// to clamp (returns true), per `limits.on_exceed`.
    pub(super) fn over_limit(&mut self, rule: &'static str, what: String, max: &str) -> bool {
        match self.standards.limits.on_exceed {
            OnExceed::Clamp => true,
            OnExceed::Deny => {
                self.deny(rule, what, Some(format!("ask for at most {max}")));
                false
            }
        }
    }

    /// What the rules found, whatever the mode: every denial and change.
    pub(super) fn into_findings(self) -> (Vec<Denial>, Vec<Change>) {
        (
            self.denials.into_iter().map(|(_, denial)| denial).collect(),
            self.changes,
        )
    }

    /// Enforce: the first denial, or the edited body and its changes.
    /// Audit (`original` is the body as received): the original body, with
    /// every change and denial as a `would …` finding.
    pub(super) fn finish(self, original: Option<Value>, body: Value) -> Result<Outcome, Rejection> {
        match original {
            None => match self.denials.into_iter().next() {
                Some((_, denial)) => Err(Rejection::Denied(denial)),
                None => Ok(Outcome {
                    body,
                    changes: self.changes,
                    notes: self.notes,
                }),
            },
            Some(original) => {
                let denials = self.denials.into_iter().map(|(rule, denial)| Change {
                    rule,
                    message: format!("would deny {}", denial.what),
                });
                let changes = self.changes.into_iter().map(|change| Change {
                    rule: change.rule,
                    message: format!("would {}", change.message),
                });
                Ok(Outcome {
                    body: original,
                    changes: denials.chain(changes).collect(),
                    notes: self.notes,
                })
            }
        }
    }
}

/// The body as received, for audit mode; `None` in enforce mode.
pub(super) fn keep_original(standards: &StandardsConfig, body: &Value) -> Option<Value> {
    (standards.mode == StandardsMode::Audit).then(|| body.clone())
}

pub(super) fn unchanged(body: Value) -> Outcome {
    Outcome {
        body,
        changes: Vec::new(),
        notes: Vec::new(),
    }
}
