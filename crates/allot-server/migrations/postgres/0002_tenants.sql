-- Tenants created, reweighted or deleted through the API. Keep in step with
-- ../sqlite/0002_tenants.sql.
CREATE TABLE IF NOT EXISTS tenants (
    path TEXT PRIMARY KEY,
    weight DOUBLE PRECISION NOT NULL,
    deleted BOOLEAN NOT NULL DEFAULT FALSE,
    updated_ms BIGINT NOT NULL
);
CREATE INDEX IF NOT EXISTS budgets_tenant ON budgets (tenant);
CREATE INDEX IF NOT EXISTS tokens_tenant ON tokens (tenant);
