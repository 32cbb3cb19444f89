//! Which SQL a resource speaks. Every SQL analysis (guardrails, lineage) and every statement
//! fingerprint is made in a dialect: MySQL quotes, comments and literals differently, and a
//! statement read in the wrong dialect is a parser differential.

use sqlparser::dialect::PostgreSqlDialect;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub enum Dialect {
    #[default]
    Postgres,
}

static POSTGRES: PostgreSqlDialect = PostgreSqlDialect {};

impl Dialect {
    /// The parser's view of it.
    pub fn parser(self) -> &'static dyn sqlparser::dialect::Dialect {
        match self {
            Dialect::Postgres => &POSTGRES,
        }
    }

    /// A short name, for cache keys and logs.
    pub fn as_str(self) -> &'static str {
        match self {
            Dialect::Postgres => "postgres",
        }
    }
}
