-- Tenants created, reweighted or deleted through the API. Keep in step with
-- ../postgres/0002_tenants.sql.
CREATE TABLE IF NOT EXISTS tenants (
    path TEXT PRIMARY KEY,
    weight REAL NOT NULL,
    deleted INTEGER NOT NULL DEFAULT 0,
    updated_ms INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS budgets_tenant ON budgets (tenant);
CREATE INDEX IF NOT EXISTS tokens_tenant ON tokens (tenant);
