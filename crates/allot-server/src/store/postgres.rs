//! The PostgreSQL store (production, and the database the HA servers share).
//! Bulk writes go as arrays (`UNNEST`), one round trip per table.

use std::collections::HashSet;
use std::str::FromStr;

use async_trait::async_trait;
use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};
use sqlx::{Executor, Row};

use super::*;

pub struct PgStore {
    pool: PgPool,
}

impl PgStore {
    /// Connects to `url` and migrates. With `schema`, every table lives in that schema
    /// (created if needed): tests use one each so that they never collide.
    pub async fn connect(url: &str, schema: Option<&str>) -> Result<PgStore> {
        let mut opts = PgConnectOptions::from_str(url)?;
        if let Some(s) = schema {
            if s.is_empty() || !s.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
                return Err(StoreError::Invalid(format!("schema name `{s}` must be letters, digits and underscores")));
            }
            let admin = PgPoolOptions::new().max_connections(1).connect_with(opts.clone()).await?;
            admin.execute(format!("CREATE SCHEMA IF NOT EXISTS {s}").as_str()).await?;
            admin.close().await;
            opts = opts.options([("search_path", s)]);
        }
        let pool = PgPoolOptions::new().max_connections(8).connect_with(opts).await?;
        migrate(&pool).await?;
        Ok(PgStore { pool })
    }

    /// Drops a schema made by `connect` (tests clean up after themselves).
    pub async fn drop_schema(url: &str, schema: &str) -> Result<()> {
        if !schema.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
            return Err(StoreError::Invalid(format!("schema name `{schema}` must be letters, digits and underscores")));
        }
        let pool = PgPoolOptions::new().max_connections(1).connect(url).await?;
        pool.execute(format!("DROP SCHEMA IF EXISTS {schema} CASCADE").as_str()).await?;
        pool.close().await;
        Ok(())
    }
}

async fn migrate(pool: &PgPool) -> Result<()> {
    let mut tx = pool.begin().await?;
    // One migrator at a time per database (HA servers start together).
    tx.execute("SELECT pg_advisory_xact_lock(7365001)").await?;
    tx.execute("CREATE TABLE IF NOT EXISTS schema_version (version BIGINT NOT NULL)").await?;
    let have: Option<i64> = sqlx::query("SELECT MAX(version) AS v FROM schema_version").fetch_one(&mut *tx).await?.try_get("v")?;
    let have = have.unwrap_or(0);
    for &(version, sql) in migrations("postgres") {
        if version > have {
            sqlx::raw_sql(sql).execute(&mut *tx).await?;
            sqlx::query("INSERT INTO schema_version (version) VALUES ($1)").bind(version).execute(&mut *tx).await?;
        }
    }
    tx.commit().await?;
    Ok(())
}

const QUOTA_UPSERT: &str = "INSERT INTO quotas (tenant, flavor, nominal, borrowing_limit, lending_limit, updated_ms) VALUES ($1, $2, $3, $4, $5, $6) \
     ON CONFLICT (tenant, flavor) DO UPDATE SET nominal = excluded.nominal, borrowing_limit = excluded.borrowing_limit, \
     lending_limit = excluded.lending_limit, updated_ms = excluded.updated_ms";

#[async_trait]
impl Store for PgStore {
    fn backend(&self) -> &'static str {
        "postgres"
    }

    fn write_concurrency(&self) -> usize {
        4
    }

    async fn max_job_id(&self) -> Result<u64> {
        let v: Option<i64> = sqlx::query("SELECT MAX(id) AS m FROM jobs").fetch_one(&self.pool).await?.try_get("m")?;
        Ok(to_u64(v.unwrap_or(0)))
    }

    async fn insert_jobs(&self, jobs: &[JobRow]) -> Result<()> {
        if jobs.is_empty() {
            return Ok(());
        }
        let ids = jobs.iter().map(|j| to_i64(j.id)).collect::<Result<Vec<i64>>>()?;
        let col = |f: fn(&JobRow) -> &String| jobs.iter().map(|j| f(j).clone()).collect::<Vec<String>>();
        let submitted: Vec<i64> = jobs.iter().map(|j| j.submitted_ms).collect();
        sqlx::query(
            "INSERT INTO jobs (id, tenant, project, user_name, state, spec, submitted_ms) \
             SELECT * FROM UNNEST($1::bigint[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[], $7::bigint[])",
        )
        .bind(ids)
        .bind(col(|j| &j.tenant))
        .bind(col(|j| &j.project))
        .bind(col(|j| &j.user))
        .bind(col(|j| &j.state))
        .bind(col(|j| &j.spec))
        .bind(submitted)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    async fn get_job(&self, id: u64) -> Result<Option<JobRow>> {
        let Ok(id) = i64::try_from(id) else { return Ok(None) };
        let row = sqlx::query(&format!("SELECT {JOB_COLS} FROM jobs WHERE id = $1")).bind(id).fetch_optional(&self.pool).await?;
        Ok(match row {
            Some(r) => Some(job_from_row!(&r)),
            None => None,
        })
    }

    async fn list_jobs(&self, q: &JobQuery) -> Result<Vec<JobRow>> {
        let (sql, binds) = job_query_sql(q, |n| format!("${n}"));
        let mut query = sqlx::query(&sql);
        for b in &binds {
            query = query.bind(b);
        }
        let after = i64::try_from(q.after.unwrap_or(0)).unwrap_or(i64::MAX);
        let rows = query.bind(after).bind(i64::from(q.limit)).fetch_all(&self.pool).await?;
        rows.iter().map(|r| Ok(job_from_row!(r))).collect()
    }

    async fn active_jobs(&self) -> Result<Vec<JobRow>> {
        let rows =
            sqlx::query(&format!("SELECT {JOB_COLS} FROM jobs WHERE state IN ('pending', 'held', 'running', 'stopping') ORDER BY id"))
                .fetch_all(&self.pool)
                .await?;
        rows.iter().map(|r| Ok(job_from_row!(r))).collect()
    }

    async fn count_by_state(&self) -> Result<Vec<(String, u64)>> {
        let rows = sqlx::query("SELECT state, COUNT(*) AS n FROM jobs GROUP BY state ORDER BY state").fetch_all(&self.pool).await?;
        rows.iter().map(|r| Ok((r.try_get("state")?, to_u64(r.try_get("n")?)))).collect()
    }

    async fn apply(&self, changes: &Changes) -> Result<()> {
        if changes.is_empty() {
            return Ok(());
        }
        let mut tx = self.pool.begin().await?;
        if !changes.decisions.is_empty() {
            let d = &changes.decisions;
            sqlx::query(
                "INSERT INTO decisions (pass, at_ms, kind, job, detail) \
                 SELECT * FROM UNNEST($1::bigint[], $2::bigint[], $3::text[], $4::bigint[], $5::text[])",
            )
            .bind(d.iter().map(|x| to_i64(x.pass)).collect::<Result<Vec<i64>>>()?)
            .bind(d.iter().map(|x| x.at_ms).collect::<Vec<i64>>())
            .bind(d.iter().map(|x| x.kind.clone()).collect::<Vec<String>>())
            .bind(d.iter().map(|x| to_i64(x.job)).collect::<Result<Vec<i64>>>()?)
            .bind(d.iter().map(|x| x.detail.clone()).collect::<Vec<String>>())
            .execute(&mut *tx)
            .await?;
        }
        let u = &changes.jobs;
        let unique = u.iter().map(|x| x.id).collect::<HashSet<u64>>().len() == u.len();
        if unique && u.len() > 1 {
            sqlx::query(
                "UPDATE jobs SET state = u.state, started_ms = COALESCE(u.started_ms, jobs.started_ms), \
                 ended_ms = COALESCE(u.ended_ms, jobs.ended_ms), placement = COALESCE(u.placement, jobs.placement), \
                 message = COALESCE(u.message, jobs.message) \
                 FROM UNNEST($1::bigint[], $2::text[], $3::bigint[], $4::bigint[], $5::text[], $6::text[]) \
                 AS u(id, state, started_ms, ended_ms, placement, message) WHERE jobs.id = u.id",
            )
            .bind(u.iter().map(|x| to_i64(x.id)).collect::<Result<Vec<i64>>>()?)
            .bind(u.iter().map(|x| x.state.clone()).collect::<Vec<String>>())
            .bind(u.iter().map(|x| x.started_ms).collect::<Vec<Option<i64>>>())
            .bind(u.iter().map(|x| x.ended_ms).collect::<Vec<Option<i64>>>())
            .bind(u.iter().map(|x| x.placement.clone()).collect::<Vec<Option<String>>>())
            .bind(u.iter().map(|x| x.message.clone()).collect::<Vec<Option<String>>>())
            .execute(&mut *tx)
            .await?;
        } else {
            // Several changes of one job: in order.
            for x in u {
                sqlx::query(
                    "UPDATE jobs SET state = $1, started_ms = COALESCE($2, started_ms), ended_ms = COALESCE($3, ended_ms), \
                     placement = COALESCE($4, placement), message = COALESCE($5, message) WHERE id = $6",
                )
                .bind(&x.state)
                .bind(x.started_ms)
                .bind(x.ended_ms)
                .bind(&x.placement)
                .bind(&x.message)
                .bind(to_i64(x.id)?)
                .execute(&mut *tx)
                .await?;
            }
        }
        if !changes.accounting.is_empty() {
            let a = &changes.accounting;
            sqlx::query(&format!(
                "INSERT INTO accounting ({ACCOUNTING_COLS}) SELECT * FROM UNNEST($1::bigint[], $2::text[], $3::text[], \
                 $4::text[], $5::text[], $6::bigint[], $7::bigint[], $8::float8[], $9::float8[])"
            ))
            .bind(a.iter().map(|x| to_i64(x.job)).collect::<Result<Vec<i64>>>()?)
            .bind(a.iter().map(|x| x.tenant.clone()).collect::<Vec<String>>())
            .bind(a.iter().map(|x| x.project.clone()).collect::<Vec<String>>())
            .bind(a.iter().map(|x| x.user.clone()).collect::<Vec<String>>())
            .bind(a.iter().map(|x| x.flavor.clone()).collect::<Vec<String>>())
            .bind(a.iter().map(|x| x.start_ms).collect::<Vec<i64>>())
            .bind(a.iter().map(|x| x.end_ms).collect::<Vec<i64>>())
            .bind(a.iter().map(|x| x.gpus).collect::<Vec<f64>>())
            .bind(a.iter().map(|x| x.gpu_seconds).collect::<Vec<f64>>())
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    async fn decisions_for(&self, job: u64) -> Result<Vec<Decision>> {
        let rows = sqlx::query("SELECT pass, at_ms, kind, job, detail FROM decisions WHERE job = $1 ORDER BY id")
            .bind(to_i64(job)?)
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(|r| Ok(decision_from_row!(r))).collect()
    }

    async fn accounting(&self, from_ms: i64, to_ms: i64) -> Result<Vec<AccountingRecord>> {
        let rows = sqlx::query(&format!("SELECT {ACCOUNTING_COLS} FROM accounting WHERE end_ms > $1 AND start_ms < $2 ORDER BY id"))
            .bind(from_ms)
            .bind(to_ms)
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(|r| Ok(accounting_from_row!(r))).collect()
    }

    async fn insert_token(&self, t: &TokenRow) -> Result<u64> {
        let row = sqlx::query(
            "INSERT INTO tokens (hash, name, role, tenant, user_name, created_ms, revoked) VALUES ($1, $2, $3, $4, $5, $6, $7) \
             RETURNING id",
        )
        .bind(&t.hash)
        .bind(&t.name)
        .bind(&t.role)
        .bind(&t.tenant)
        .bind(&t.user)
        .bind(t.created_ms)
        .bind(t.revoked)
        .fetch_one(&self.pool)
        .await?;
        Ok(to_u64(row.try_get("id")?))
    }

    async fn token_by_hash(&self, hash: &str) -> Result<Option<TokenRow>> {
        let row = sqlx::query(&format!("SELECT {TOKEN_COLS} FROM tokens WHERE hash = $1")).bind(hash).fetch_optional(&self.pool).await?;
        Ok(match row {
            Some(r) => Some(token_from_row!(&r)),
            None => None,
        })
    }

    async fn get_token(&self, id: u64) -> Result<Option<TokenRow>> {
        let Ok(id) = i64::try_from(id) else { return Ok(None) };
        let row = sqlx::query(&format!("SELECT {TOKEN_COLS} FROM tokens WHERE id = $1")).bind(id).fetch_optional(&self.pool).await?;
        Ok(match row {
            Some(r) => Some(token_from_row!(&r)),
            None => None,
        })
    }

    async fn list_tokens(&self) -> Result<Vec<TokenRow>> {
        let rows = sqlx::query(&format!("SELECT {TOKEN_COLS} FROM tokens ORDER BY id")).fetch_all(&self.pool).await?;
        rows.iter().map(|r| Ok(token_from_row!(r))).collect()
    }

    async fn revoke_token(&self, id: u64) -> Result<bool> {
        let Ok(id) = i64::try_from(id) else { return Ok(false) };
        let res = sqlx::query("UPDATE tokens SET revoked = TRUE WHERE id = $1").bind(id).execute(&self.pool).await?;
        Ok(res.rows_affected() > 0)
    }

    async fn token_count(&self) -> Result<u64> {
        let n: i64 = sqlx::query("SELECT COUNT(*) AS n FROM tokens").fetch_one(&self.pool).await?.try_get("n")?;
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
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    async fn quotas(&self) -> Result<Vec<QuotaRow>> {
        let rows = sqlx::query(
            "SELECT tenant, flavor, nominal, borrowing_limit, lending_limit, updated_ms FROM quotas ORDER BY updated_ms, tenant, flavor",
        )
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(|r| Ok(quota_from_row!(r))).collect()
    }

    async fn add_budget(&self, b: &BudgetRow) -> Result<u64> {
        let row = sqlx::query(
            "INSERT INTO budgets (tenant, gpu_hours, start_ms, expiry_ms, granted_ms) VALUES ($1, $2, $3, $4, $5) RETURNING id",
        )
        .bind(&b.tenant)
        .bind(b.gpu_hours)
        .bind(b.start_ms)
        .bind(b.expiry_ms)
        .bind(b.granted_ms)
        .fetch_one(&self.pool)
        .await?;
        Ok(to_u64(row.try_get("id")?))
    }

    async fn budgets(&self) -> Result<Vec<BudgetRow>> {
        let rows = sqlx::query("SELECT id, tenant, gpu_hours, start_ms, expiry_ms, granted_ms FROM budgets ORDER BY id")
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(|r| Ok(budget_from_row!(r))).collect()
    }

    async fn put_tenant(&self, tenant: Option<&TenantRow>, quotas: &[QuotaRow]) -> Result<()> {
        let mut tx = self.pool.begin().await?;
        if let Some(t) = tenant {
            sqlx::query(
                "INSERT INTO tenants (path, weight, deleted, updated_ms) VALUES ($1, $2, FALSE, $3) \
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
        let rows = sqlx::query("SELECT path, weight, deleted, updated_ms FROM tenants ORDER BY path").fetch_all(&self.pool).await?;
        rows.iter().map(|r| Ok(tenant_from_row!(r))).collect()
    }

    async fn delete_tenant(&self, path: &str, at_ms: i64) -> Result<Vec<u64>> {
        let mut tx = self.pool.begin().await?;
        sqlx::query(
            "INSERT INTO tenants (path, weight, deleted, updated_ms) VALUES ($1, 1.0, TRUE, $2) \
             ON CONFLICT (path) DO UPDATE SET deleted = excluded.deleted, updated_ms = excluded.updated_ms",
        )
        .bind(path)
        .bind(at_ms)
        .execute(&mut *tx)
        .await?;
        sqlx::query("DELETE FROM quotas WHERE tenant = $1").bind(path).execute(&mut *tx).await?;
        sqlx::query("DELETE FROM budgets WHERE tenant = $1").bind(path).execute(&mut *tx).await?;
        let rows = sqlx::query("UPDATE tokens SET revoked = TRUE WHERE tenant = $1 AND revoked = FALSE RETURNING id")
            .bind(path)
            .fetch_all(&mut *tx)
            .await?;
        tx.commit().await?;
        rows.iter().map(|r| Ok(to_u64(r.try_get("id")?))).collect()
    }

    async fn set_node_drained(&self, name: &str, drained: bool) -> Result<()> {
        sqlx::query("INSERT INTO nodes (name, drained) VALUES ($1, $2) ON CONFLICT (name) DO UPDATE SET drained = excluded.drained")
            .bind(name)
            .bind(drained)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    async fn drained_nodes(&self) -> Result<Vec<String>> {
        let rows = sqlx::query("SELECT name FROM nodes WHERE drained ORDER BY name").fetch_all(&self.pool).await?;
        rows.iter().map(|r| Ok(r.try_get("name")?)).collect()
    }
}
