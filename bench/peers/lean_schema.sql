-- The lean peer's tables (bench/peers/lean_app.py): the server's ledger and users, the columns it writes.
CREATE TABLE processed_updates (
    update_id bigint PRIMARY KEY,
    kind varchar(40) NOT NULL,
    processed_at timestamptz NOT NULL
);
CREATE INDEX processed_updates_processed_at ON processed_updates (processed_at);
CREATE TABLE users (
    id bigint PRIMARY KEY,
    username varchar(64),
    first_name varchar(128) NOT NULL,
    language_code varchar(16),
    created_at timestamptz NOT NULL,
    last_seen_at timestamptz NOT NULL,
    window_started_at timestamptz,
    updates_in_window integer NOT NULL DEFAULT 0
);
