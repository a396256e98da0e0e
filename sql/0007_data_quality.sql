-- Data quality (milestone 6): the result of every check of every `aethermart quality check` run.
CREATE TABLE data_quality_logs (
    log_id         BIGINT UNSIGNED NOT NULL AUTO_INCREMENT,
    run_id         CHAR(36) NOT NULL,
    check_name     VARCHAR(64) NOT NULL,
    target         VARCHAR(255) NOT NULL,
    failing_count  BIGINT UNSIGNED NOT NULL,
    -- JSON array of up to ten failing keys
    sample_keys    TEXT NOT NULL,
    severity       VARCHAR(16) NOT NULL,
    passed         BOOLEAN NOT NULL,
    checked_at     DATETIME(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6),
    PRIMARY KEY (log_id),
    KEY ix_quality_run (run_id),
    KEY ix_quality_check_time (check_name, checked_at),
    CONSTRAINT ck_quality_severity CHECK (BINARY severity IN ('error', 'warning'))
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_unicode_ci;
