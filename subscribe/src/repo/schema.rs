//! The schema as ordered migrations, recorded in a `schema_version` table, so a column added in a later
//! release reaches databases made by an earlier one.
//!
//! Migration 1 is the schema as it was before versions were recorded, to the letter, with `IF NOT EXISTS`
//! throughout: on such a database it changes nothing and records version 1. A migration and its version
//! row are one transaction, and the version row is written first: of two processes migrating at once, the
//! second's insert waits for the first to commit, then changes nothing, and its migration is skipped.
//! Migrations only add (columns, tables, indexes), so an older binary keeps working against a newer schema
//! during a rolling upgrade.

use std::collections::BTreeSet;

use framewire_common::time::now_ms;

use super::Result;
use super::backend::{Backend, Statement};

/// Replaced by the engine's self-numbering primary key ([`Backend::serial_key`]).
const SERIAL_KEY: &str = "{serial_key}";

/// One step of the schema.
#[derive(Debug, Clone, Copy)]
pub struct Migration {
    pub version: i64,
    /// Statements, each ended by `;`, and `--` comment lines.
    pub sql: &'static str,
}

impl Migration {
    /// The single statements, for the engine whose serial key is `serial_key`.
    fn statements(&self, serial_key: &str) -> Vec<String> {
        let code: Vec<&str> = self.sql.lines().filter(|l| !l.trim_start().starts_with("--")).collect();
        code.join("\n")
            .split(';')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(|s| s.replace(SERIAL_KEY, serial_key))
            .collect()
    }
}

/// Every migration, in version order. Append; never change one that has shipped.
pub const MIGRATIONS: &[Migration] = &[
    Migration { version: 1, sql: include_str!("migrations/0001-schema-before-versions.sql") },
    Migration { version: 2, sql: include_str!("migrations/0002-review-indexes.sql") },
];

/// Brings the schema up to the last of `migrations`.
pub async fn migrate(backend: &mut dyn Backend, migrations: &[Migration]) -> Result<()> {
    let table = "CREATE TABLE IF NOT EXISTS schema_version (version BIGINT PRIMARY KEY, applied_ms BIGINT NOT NULL)";
    backend.transaction(vec![Statement::new(table, vec![])]).await?;
    let applied = applied(backend).await?;
    for m in migrations.iter().filter(|m| !applied.contains(&m.version)) {
        let claim = Statement::new(
            "INSERT INTO schema_version (version, applied_ms) VALUES ($1, $2) ON CONFLICT (version) DO NOTHING",
            vec![m.version.into(), now_ms().into()],
        );
        let steps = m.statements(backend.serial_key()).into_iter().map(|s| Statement::new(s, vec![]).only_if(0));
        backend.transaction(std::iter::once(claim).chain(steps).collect()).await?;
    }
    Ok(())
}

/// The versions recorded in `schema_version`.
pub async fn applied(backend: &mut dyn Backend) -> Result<BTreeSet<i64>> {
    let rows = backend.query("SELECT version FROM schema_version".into(), vec![]).await?;
    rows.iter().map(|r| r.get::<i64>("version")).collect()
}

#[cfg(test)]
mod tests {
    use sha2::{Digest, Sha256};

    use super::*;

    #[test]
    fn shipped_migrations_do_not_change() {
        // A database migrated by a release has these exact statements behind its version numbers: changing
        // one would leave it without the change. Add a migration instead.
        let shipped = ["67a9c51d", "732b0119"];
        assert_eq!(shipped.len(), MIGRATIONS.len(), "a new migration's digest goes here once it ships");
        for (m, want) in MIGRATIONS.iter().zip(shipped) {
            let code = m.statements(SERIAL_KEY).join(";\n");
            let digest: String = Sha256::digest(code).iter().take(4).map(|b| format!("{b:02x}")).collect();
            assert_eq!(digest, want, "migration {} was changed", m.version);
        }
    }

    #[test]
    fn migration_1_splits_into_its_statements() {
        let s = MIGRATIONS[0].statements("INTEGER PRIMARY KEY AUTOINCREMENT");
        assert_eq!(s.len(), 10);
        assert!(s.iter().all(|s| s.starts_with("CREATE ")), "{s:?}");
        assert!(s[9].contains("id INTEGER PRIMARY KEY AUTOINCREMENT, kind TEXT"), "{}", s[9]);
    }
}
