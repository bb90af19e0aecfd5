//! The embedded store: one SQLite file in WAL mode with full fsync on commit. Writes
//! go through one connection (SQLite has one writer anyway); reads use a small pool.

use std::path::Path;
use std::str::FromStr;
use std::time::Duration;

use async_trait::async_trait;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{Executor, Row};

use super::*;

pub struct SqliteStore {
    write: SqlitePool,
    read: SqlitePool,
}

/// Rows per multi-row INSERT (7 to 11 binds each, under SQLite's 32,766).
const CHUNK: usize = 500;

impl SqliteStore {
    /// Opens (creating if needed) `allot.db` in `dir` and migrates it.
    pub async fn open_dir(dir: &Path) -> Result<SqliteStore> {
        std::fs::create_dir_all(dir).map_err(|e| StoreError::Invalid(format!("cannot create {}: {e}", dir.display())))?;
        SqliteStore::open_file(&dir.join("allot.db")).await
    }

    /// Opens (creating if needed) a SQLite file and migrates it.
    pub async fn open_file(path: &Path) -> Result<SqliteStore> {
        let opts = SqliteConnectOptions::from_str("sqlite://")?
            .filename(path)
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Full)
            .busy_timeout(Duration::from_secs(30))
            .foreign_keys(false);
        let write = SqlitePoolOptions::new().max_connections(1).min_connections(1).connect_with(opts.clone()).await?;
        let store_write = write.clone();
        migrate(&store_write).await?;
        let read = SqlitePoolOptions::new().max_connections(4).connect_with(opts.read_only(true)).await?;
        Ok(SqliteStore { write, read })
    }
}

async fn migrate(pool: &SqlitePool) -> Result<()> {
    pool.execute("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)").await?;
    let have: Option<i64> = sqlx::query("SELECT MAX(version) AS v FROM schema_version").fetch_one(pool).await?.try_get("v")?;
    let have = have.unwrap_or(0);
    for &(version, sql) in migrations("sqlite") {
        if version > have {
            let mut tx = pool.begin().await?;
            sqlx::raw_sql(sql).execute(&mut *tx).await?;
            sqlx::query("INSERT INTO schema_version (version) VALUES (?)").bind(version).execute(&mut *tx).await?;
            tx.commit().await?;
        }
    }
    Ok(())
}

fn placeholders(cols: usize, rows: usize) -> String {
    let one = format!("({})", vec!["?"; cols].join(","));
    vec![one; rows].join(",")
}

const QUOTA_UPSERT: &str = "INSERT INTO quotas (tenant, flavor, nominal, borrowing_limit, lending_limit, updated_ms) VALUES (?, ?, ?, ?, ?, ?) \
     ON CONFLICT (tenant, flavor) DO UPDATE SET nominal = excluded.nominal, borrowing_limit = excluded.borrowing_limit, \
     lending_limit = excluded.lending_limit, updated_ms = excluded.updated_ms";

#[async_trait]
impl Store for SqliteStore {
    fn backend(&self) -> &'static str {
        "sqlite"
    }

    async fn max_job_id(&self) -> Result<u64> {
        let v: Option<i64> = sqlx::query("SELECT MAX(id) AS m FROM jobs").fetch_one(&self.write).await?.try_get("m")?;
        Ok(to_u64(v.unwrap_or(0)))
    }

    async fn insert_jobs(&self, jobs: &[JobRow]) -> Result<()> {
        if jobs.is_empty() {
            return Ok(());
        }
        let mut tx = self.write.begin().await?;
        for chunk in jobs.chunks(CHUNK) {
            let sql = format!(
                "INSERT INTO jobs (id, tenant, project, user_name, state, spec, submitted_ms) VALUES {}",
                placeholders(7, chunk.len())
            );
            let mut q = sqlx::query(&sql);
            for j in chunk {
                q = q.bind(to_i64(j.id)?).bind(&j.tenant).bind(&j.project).bind(&j.user).bind(&j.state).bind(&j.spec).bind(j.submitted_ms);
            }
            q.execute(&mut *tx).await?;
        }
        tx.commit().await?;
        Ok(())
    }

    async fn get_job(&self, id: u64) -> Result<Option<JobRow>> {
        let Ok(id) = i64::try_from(id) else { return Ok(None) };
        let row = sqlx::query(&format!("SELECT {JOB_COLS} FROM jobs WHERE id = ?")).bind(id).fetch_optional(&self.read).await?;
        Ok(match row {
            Some(r) => Some(job_from_row!(&r)),
            None => None,
        })
    }

    async fn list_jobs(&self, q: &JobQuery) -> Result<Vec<JobRow>> {
        let (sql, binds) = job_query_sql(q, |_| "?".to_string());
        let mut query = sqlx::query(&sql);
        for b in &binds {
            query = query.bind(b);
        }
        let after = i64::try_from(q.after.unwrap_or(0)).unwrap_or(i64::MAX);
        let rows = query.bind(after).bind(i64::from(q.limit)).fetch_all(&self.read).await?;
        rows.iter().map(|r| Ok(job_from_row!(r))).collect()
    }

    async fn active_jobs(&self) -> Result<Vec<JobRow>> {
        let rows =
            sqlx::query(&format!("SELECT {JOB_COLS} FROM jobs WHERE state IN ('pending', 'held', 'running', 'stopping') ORDER BY id"))
                .fetch_all(&self.read)
                .await?;
        rows.iter().map(|r| Ok(job_from_row!(r))).collect()
    }

    async fn count_by_state(&self) -> Result<Vec<(String, u64)>> {
        let rows = sqlx::query("SELECT state, COUNT(*) AS n FROM jobs GROUP BY state ORDER BY state").fetch_all(&self.read).await?;
        rows.iter().map(|r| Ok((r.try_get("state")?, to_u64(r.try_get("n")?)))).collect()
    }

    async fn apply(&self, changes: &Changes) -> Result<()> {
        if changes.is_empty() {
            return Ok(());
        }
        let mut tx = self.write.begin().await?;
        for d in &changes.decisions {
            sqlx::query("INSERT INTO decisions (pass, at_ms, kind, job, detail) VALUES (?, ?, ?, ?, ?)")
                .bind(to_i64(d.pass)?)
                .bind(d.at_ms)
                .bind(&d.kind)
                .bind(to_i64(d.job)?)
                .bind(&d.detail)
                .execute(&mut *tx)
                .await?;
        }
        for u in &changes.jobs {
            sqlx::query(
                "UPDATE jobs SET state = ?, started_ms = COALESCE(?, started_ms), ended_ms = COALESCE(?, ended_ms), \
                 placement = COALESCE(?, placement), message = COALESCE(?, message) WHERE id = ?",
            )
            .bind(&u.state)
            .bind(u.started_ms)
            .bind(u.ended_ms)
            .bind(&u.placement)
            .bind(&u.message)
            .bind(to_i64(u.id)?)
            .execute(&mut *tx)
            .await?;
        }
        for a in &changes.accounting {
            sqlx::query(&format!("INSERT INTO accounting ({ACCOUNTING_COLS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)"))
                .bind(to_i64(a.job)?)
                .bind(&a.tenant)
                .bind(&a.project)
                .bind(&a.user)
                .bind(&a.flavor)
                .bind(a.start_ms)
                .bind(a.end_ms)
                .bind(a.gpus)
                .bind(a.gpu_seconds)
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    async fn decisions_for(&self, job: u64) -> Result<Vec<Decision>> {
        let rows = sqlx::query("SELECT pass, at_ms, kind, job, detail FROM decisions WHERE job = ? ORDER BY id")
            .bind(to_i64(job)?)
            .fetch_all(&self.read)
            .await?;
        rows.iter().map(|r| Ok(decision_from_row!(r))).collect()
    }

    async fn accounting(&self, from_ms: i64, to_ms: i64) -> Result<Vec<AccountingRecord>> {
        let rows = sqlx::query(&format!("SELECT {ACCOUNTING_COLS} FROM accounting WHERE end_ms > ? AND start_ms < ? ORDER BY id"))
            .bind(from_ms)
            .bind(to_ms)
            .fetch_all(&self.read)
            .await?;
        rows.iter().map(|r| Ok(accounting_from_row!(r))).collect()
    }

    async fn insert_token(&self, t: &TokenRow) -> Result<u64> {
        let row = sqlx::query(
            "INSERT INTO tokens (hash, name, role, tenant, user_name, created_ms, revoked) VALUES (?, ?, ?, ?, ?, ?, ?) RETURNING id",
        )
        .bind(&t.hash)
        .bind(&t.name)
        .bind(&t.role)
        .bind(&t.tenant)
        .bind(&t.user)
        .bind(t.created_ms)
        .bind(t.revoked)
        .fetch_one(&self.write)
        .await?;
        Ok(to_u64(row.try_get("id")?))
    }

    async fn token_by_hash(&self, hash: &str) -> Result<Option<TokenRow>> {
        let row = sqlx::query(&format!("SELECT {TOKEN_COLS} FROM tokens WHERE hash = ?")).bind(hash).fetch_optional(&self.write).await?;
        Ok(match row {
            Some(r) => Some(token_from_row!(&r)),
            None => None,
        })
    }

    async fn get_token(&self, id: u64) -> Result<Option<TokenRow>> {
        let Ok(id) = i64::try_from(id) else { return Ok(None) };
        let row = sqlx::query(&format!("SELECT {TOKEN_COLS} FROM tokens WHERE id = ?")).bind(id).fetch_optional(&self.write).await?;
        Ok(match row {
            Some(r) => Some(token_from_row!(&r)),
            None => None,
        })
    }

    async fn list_tokens(&self) -> Result<Vec<TokenRow>> {
        let rows = sqlx::query(&format!("SELECT {TOKEN_COLS} FROM tokens ORDER BY id")).fetch_all(&self.write).await?;
        rows.iter().map(|r| Ok(token_from_row!(r))).collect()
    }

    async fn revoke_token(&self, id: u64) -> Result<bool> {
        let Ok(id) = i64::try_from(id) else { return Ok(false) };
        let res = sqlx::query("UPDATE tokens SET revoked = 1 WHERE id = ?").bind(id).execute(&self.write).await?;
        Ok(res.rows_affected() > 0)
    }

    async fn token_count(&self) -> Result<u64> {
        let n: i64 = sqlx::query("SELECT COUNT(*) AS n FROM tokens").fetch_one(&self.write).await?.try_get("n")?;
        Ok(to_u64(n))
    }

    async fn put_quota(&self, q: &QuotaRow) -> Result<()> {
        sqlx::query(QUOTA_UPSERT)
            .bind(&q.tenant)
            .bind(&q.flavor)
            .bind(q.nominal)
            .bind(q.borrowing_limit)
            .bind(q.lending_limit)
            .bind(q.updated_ms)
            .execute(&self.write)
            .await?;
        Ok(())
    }

    async fn quotas(&self) -> Result<Vec<QuotaRow>> {
        let rows = sqlx::query(
            "SELECT tenant, flavor, nominal, borrowing_limit, lending_limit, updated_ms FROM quotas ORDER BY updated_ms, tenant, flavor",
        )
        .fetch_all(&self.write)
        .await?;
        rows.iter().map(|r| Ok(quota_from_row!(r))).collect()
    }

    async fn add_budget(&self, b: &BudgetRow) -> Result<u64> {
        let row =
            sqlx::query("INSERT INTO budgets (tenant, gpu_hours, start_ms, expiry_ms, granted_ms) VALUES (?, ?, ?, ?, ?) RETURNING id")
                .bind(&b.tenant)
                .bind(b.gpu_hours)
                .bind(b.start_ms)
                .bind(b.expiry_ms)
                .bind(b.granted_ms)
                .fetch_one(&self.write)
                .await?;
        Ok(to_u64(row.try_get("id")?))
    }

    async fn budgets(&self) -> Result<Vec<BudgetRow>> {
        let rows = sqlx::query("SELECT id, tenant, gpu_hours, start_ms, expiry_ms, granted_ms FROM budgets ORDER BY id")
            .fetch_all(&self.write)
            .await?;
        rows.iter().map(|r| Ok(budget_from_row!(r))).collect()
    }

    async fn put_tenant(&self, tenant: Option<&TenantRow>, quotas: &[QuotaRow]) -> Result<()> {
        let mut tx = self.write.begin().await?;
        if let Some(t) = tenant {
            sqlx::query(
                "INSERT INTO tenants (path, weight, deleted, updated_ms) VALUES (?, ?, 0, ?) \
                 ON CONFLICT (path) DO UPDATE SET weight = excluded.weight, deleted = excluded.deleted, updated_ms = excluded.updated_ms",
            )
            .bind(&t.path)
            .bind(t.weight)
            .bind(t.updated_ms)
            .execute(&mut *tx)
            .await?;
        }
        for q in quotas {
            sqlx::query(QUOTA_UPSERT)
                .bind(&q.tenant)
                .bind(&q.flavor)
                .bind(q.nominal)
                .bind(q.borrowing_limit)
                .bind(q.lending_limit)
                .bind(q.updated_ms)
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    async fn tenants(&self) -> Result<Vec<TenantRow>> {
        let rows = sqlx::query("SELECT path, weight, deleted, updated_ms FROM tenants ORDER BY path").fetch_all(&self.write).await?;
        rows.iter().map(|r| Ok(tenant_from_row!(r))).collect()
    }

    async fn delete_tenant(&self, path: &str, at_ms: i64) -> Result<Vec<u64>> {
        let mut tx = self.write.begin().await?;
        sqlx::query(
            "INSERT INTO tenants (path, weight, deleted, updated_ms) VALUES (?, 1.0, 1, ?) \
             ON CONFLICT (path) DO UPDATE SET deleted = excluded.deleted, updated_ms = excluded.updated_ms",
        )
        .bind(path)
        .bind(at_ms)
        .execute(&mut *tx)
        .await?;
        sqlx::query("DELETE FROM quotas WHERE tenant = ?").bind(path).execute(&mut *tx).await?;
        sqlx::query("DELETE FROM budgets WHERE tenant = ?").bind(path).execute(&mut *tx).await?;
        let rows = sqlx::query("UPDATE tokens SET revoked = 1 WHERE tenant = ? AND revoked = 0 RETURNING id")
            .bind(path)
            .fetch_all(&mut *tx)
            .await?;
        tx.commit().await?;
        rows.iter().map(|r| Ok(to_u64(r.try_get("id")?))).collect()
    }

    async fn set_node_drained(&self, name: &str, drained: bool) -> Result<()> {
        sqlx::query("INSERT INTO nodes (name, drained) VALUES (?, ?) ON CONFLICT (name) DO UPDATE SET drained = excluded.drained")
            .bind(name)
            .bind(drained)
            .execute(&self.write)
            .await?;
        Ok(())
    }

    async fn drained_nodes(&self) -> Result<Vec<String>> {
        let rows = sqlx::query("SELECT name FROM nodes WHERE drained = 1 ORDER BY name").fetch_all(&self.write).await?;
        rows.iter().map(|r| Ok(r.try_get("name")?)).collect()
    }
}
