-- allot store, SQLite dialect. Keep in step with ../postgres/0001_init.sql.
CREATE TABLE IF NOT EXISTS jobs (
    id INTEGER PRIMARY KEY,
    tenant TEXT NOT NULL,
    project TEXT NOT NULL,
    user_name TEXT NOT NULL,
    state TEXT NOT NULL,
    spec TEXT NOT NULL,
    submitted_ms INTEGER NOT NULL,
    started_ms INTEGER,
    ended_ms INTEGER,
    placement TEXT,
    message TEXT
);
CREATE INDEX IF NOT EXISTS jobs_state ON jobs (state, id);

-- Append-only: one record per job run (start to end), never updated.
CREATE TABLE IF NOT EXISTS accounting (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    job INTEGER NOT NULL,
    tenant TEXT NOT NULL,
    project TEXT NOT NULL,
    user_name TEXT NOT NULL,
    flavor TEXT NOT NULL,
    start_ms INTEGER NOT NULL,
    end_ms INTEGER NOT NULL,
    gpus REAL NOT NULL,
    gpu_seconds REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS accounting_end ON accounting (end_ms);

CREATE TABLE IF NOT EXISTS tokens (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    hash TEXT NOT NULL UNIQUE,
    name TEXT NOT NULL,
    role TEXT NOT NULL,
    tenant TEXT,
    user_name TEXT NOT NULL,
    created_ms INTEGER NOT NULL,
    revoked INTEGER NOT NULL DEFAULT 0
);

CREATE TABLE IF NOT EXISTS quotas (
    tenant TEXT NOT NULL,
    flavor TEXT NOT NULL,
    nominal REAL NOT NULL,
    borrowing_limit REAL,
    lending_limit REAL,
    updated_ms INTEGER NOT NULL,
    PRIMARY KEY (tenant, flavor)
);

CREATE TABLE IF NOT EXISTS budgets (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    tenant TEXT NOT NULL,
    gpu_hours REAL NOT NULL,
    start_ms INTEGER NOT NULL,
    expiry_ms INTEGER NOT NULL,
    granted_ms INTEGER NOT NULL
);

CREATE TABLE IF NOT EXISTS nodes (
    name TEXT PRIMARY KEY,
    drained INTEGER NOT NULL
);

-- Plan decisions, written before they are acted on.
CREATE TABLE IF NOT EXISTS decisions (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    pass INTEGER NOT NULL,
    at_ms INTEGER NOT NULL,
    kind TEXT NOT NULL,
    job INTEGER NOT NULL,
    detail TEXT NOT NULL
);
