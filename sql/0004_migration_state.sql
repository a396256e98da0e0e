-- State of data movements (milestone 6's governance tables start here, as the migration needs them).

-- Where each entity's initial migration to MongoDB got to: the highest key written and
-- acknowledged. `aethermart migrate --resume` continues after it.
CREATE TABLE migration_checkpoints (
    entity       VARCHAR(32) NOT NULL,
    run_id       CHAR(36) NOT NULL,
    high_water   BIGINT UNSIGNED NOT NULL DEFAULT 0,
    finished     BOOLEAN NOT NULL DEFAULT FALSE,
    updated_at   DATETIME(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6) ON UPDATE CURRENT_TIMESTAMP(6),
    PRIMARY KEY (entity)
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_unicode_ci;

-- One row per run and entity of every data movement (generate, migrate, sync).
CREATE TABLE data_lineage_tracker (
    lineage_id      BIGINT UNSIGNED NOT NULL AUTO_INCREMENT,
    run_id          CHAR(36) NOT NULL,
    job             VARCHAR(32) NOT NULL,
    source_tables   VARCHAR(255) NOT NULL,
    target          VARCHAR(255) NOT NULL,
    rows_read       BIGINT UNSIGNED NOT NULL DEFAULT 0,
    rows_written    BIGINT UNSIGNED NOT NULL DEFAULT 0,
    rows_rejected   BIGINT UNSIGNED NOT NULL DEFAULT 0,
    started_at      DATETIME(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6),
    finished_at     DATETIME(6) NULL,
    status          VARCHAR(16) NOT NULL DEFAULT 'running',
    error           TEXT NULL,
    PRIMARY KEY (lineage_id),
    KEY ix_lineage_run (run_id),
    KEY ix_lineage_job_started (job, started_at),
    CONSTRAINT ck_lineage_status CHECK (BINARY status IN ('running', 'complete', 'failed'))
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_unicode_ci;
