//! Scopes: the relations a name can refer to, and the walker's state.

use super::*;

/// A relation visible in a scope, under the name the statement qualifies it with.
#[derive(Clone, Debug)]
pub(super) struct Rel {
    pub(super) alias: String,
    pub(super) kind: RelKind,
}

#[derive(Clone, Debug)]
pub(super) enum RelKind {
    Base(RelName),
    Derived(Derived),
}

/// A subquery's, CTE's, VALUES' or table function's output columns.
#[derive(Clone, Debug, Default)]
pub(super) struct Derived {
    /// Named output columns.
    pub(super) named: Vec<(String, Derivation)>,
    /// Part of its output has no name sluice knows (`*`, unnamed expressions): an identifier
    /// not among `named` may still be one of its columns, computed from `all`.
    pub(super) open: bool,
    pub(super) all: Derivation,
}

impl Derived {
    pub(super) fn column(&self, name: &str) -> Option<Derivation> {
        match self.named.iter().find(|(n, _)| n == name) {
            Some((_, d)) => Some(d.clone()),
            None if self.open => Some(self.all.clone().computed()),
            None => None,
        }
    }

    pub(super) fn from_slots(slots: Vec<(Option<String>, Slot)>, aliases: &[String]) -> Derived {
        let mut d = Derived::default();
        let mut i = 0;
        for (name, slot) in slots {
            match slot {
                Slot::One(deriv) => {
                    let name = aliases.get(i).cloned().or(name);
                    d.all.absorb(deriv.clone());
                    match name {
                        Some(n) => d.named.push((n, deriv)),
                        None => d.open = true,
                    }
                    i += 1;
                }
                Slot::Star(deriv) => {
                    // Column aliases after a star cannot be placed without the catalog.
                    d.all.absorb(deriv);
                    d.open = true;
                    i = usize::MAX / 2;
                }
            }
        }
        d
    }
}

pub(super) struct Scope<'p> {
    pub(super) rels: Vec<Rel>,
    pub(super) ctes: Vec<(String, Derived)>,
    pub(super) parent: Option<&'p Scope<'p>>,
}

impl<'p> Scope<'p> {
    pub(super) fn root() -> Scope<'static> {
        Scope {
            rels: Vec::new(),
            ctes: Vec::new(),
            parent: None,
        }
    }

    pub(super) fn child(&'p self) -> Scope<'p> {
        Scope {
            rels: Vec::new(),
            ctes: Vec::new(),
            parent: Some(self),
        }
    }

    pub(super) fn cte(&self, name: &str) -> Option<&Derived> {
        self.ctes
            .iter()
            .rev()
            .find(|(n, _)| n == name)
            .map(|(_, d)| d)
            .or_else(|| self.parent.and_then(|p| p.cte(name)))
    }

    pub(super) fn rel(&self, alias: &str) -> Option<&Rel> {
        self.rels
            .iter()
            .find(|r| r.alias == alias)
            .or_else(|| self.parent.and_then(|p| p.rel(alias)))
    }

    pub(super) fn chain(&self) -> impl Iterator<Item = &Scope<'p>> {
        std::iter::successors(Some(self), |s| s.parent)
    }
}

pub(super) fn whole_row(rel: &Rel) -> Derivation {
    match &rel.kind {
        RelKind::Base(name) => Derivation::source(Source::WholeRow(name.clone())),
        RelKind::Derived(d) => d.all.clone().computed(),
    }
}

pub(super) struct Walker<'t> {
    pub(super) trusted: &'t [String],
    pub(super) relations: BTreeSet<RelName>,
    pub(super) exported: Derivation,
    /// `SELECT ... INTO` targets met while walking.
    pub(super) into_writes: Vec<Write>,
}
