-- allot store, PostgreSQL dialect. Keep in step with ../sqlite/0001_init.sql.
CREATE TABLE IF NOT EXISTS jobs (
    id BIGINT PRIMARY KEY,
    tenant TEXT NOT NULL,
    project TEXT NOT NULL,
    user_name TEXT NOT NULL,
    state TEXT NOT NULL,
    spec TEXT NOT NULL,
    submitted_ms BIGINT NOT NULL,
    started_ms BIGINT,
    ended_ms BIGINT,
    placement TEXT,
    message TEXT
);
CREATE INDEX IF NOT EXISTS jobs_state ON jobs (state, id);

-- Append-only: one record per job run (start to end), never updated.
CREATE TABLE IF NOT EXISTS accounting (
    id BIGSERIAL PRIMARY KEY,
    job BIGINT NOT NULL,
    tenant TEXT NOT NULL,
    project TEXT NOT NULL,
    user_name TEXT NOT NULL,
    flavor TEXT NOT NULL,
    start_ms BIGINT NOT NULL,
    end_ms BIGINT NOT NULL,
    gpus DOUBLE PRECISION NOT NULL,
    gpu_seconds DOUBLE PRECISION NOT NULL
);
CREATE INDEX IF NOT EXISTS accounting_end ON accounting (end_ms);

CREATE TABLE IF NOT EXISTS tokens (
    id BIGSERIAL PRIMARY KEY,
    hash TEXT NOT NULL UNIQUE,
    name TEXT NOT NULL,
    role TEXT NOT NULL,
    tenant TEXT,
    user_name TEXT NOT NULL,
    created_ms BIGINT NOT NULL,
    revoked BOOLEAN NOT NULL DEFAULT FALSE
);

CREATE TABLE IF NOT EXISTS quotas (
    tenant TEXT NOT NULL,
    flavor TEXT NOT NULL,
    nominal DOUBLE PRECISION NOT NULL,
    borrowing_limit DOUBLE PRECISION,
    lending_limit DOUBLE PRECISION,
    updated_ms BIGINT NOT NULL,
    PRIMARY KEY (tenant, flavor)
);

CREATE TABLE IF NOT EXISTS budgets (
    id BIGSERIAL PRIMARY KEY,
    tenant TEXT NOT NULL,
    gpu_hours DOUBLE PRECISION NOT NULL,
    start_ms BIGINT NOT NULL,
    expiry_ms BIGINT NOT NULL,
    granted_ms BIGINT NOT NULL
);

CREATE TABLE IF NOT EXISTS nodes (
    name TEXT PRIMARY KEY,
    drained BOOLEAN NOT NULL
);

-- Plan decisions, written before they are acted on.
CREATE TABLE IF NOT EXISTS decisions (
    id BIGSERIAL PRIMARY KEY,
    pass BIGINT NOT NULL,
    at_ms BIGINT NOT NULL,
    kind TEXT NOT NULL,
    job BIGINT NOT NULL,
    detail TEXT NOT NULL
);
