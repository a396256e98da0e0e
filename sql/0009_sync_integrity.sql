-- Sync integrity: exclusion between sync workers and the migration handoff without user locks,
-- and what a person may see and do of the pipeline.
--
-- User locks (GET_LOCK) need no privilege and their names can be derived, so any account could
-- pause every worker or freeze a key. Both mechanisms are now row locks on tables that only the
-- worker role (and the admin) may read, held by the claiming transaction: a crashed worker's
-- connection closes, its transaction rolls back and the locks go with it, as before.

-- Per-key exclusion: a key is in at most one claimed batch at a time. A claim locks the slot of
-- each claimed key (`FOR UPDATE SKIP LOCKED`, joined to the queue rows it claims); a key whose
-- slot another batch holds is left for later. Slots are a fixed set (the key hashed into 65,536
-- slots, see `crate::handoff::key_slot`): two keys sharing a slot only wait for each other, and
-- the capture triggers stay as cheap as they were.
CREATE TABLE sync_key_slots (
    slot  INT UNSIGNED NOT NULL,
    PRIMARY KEY (slot)
) ENGINE = InnoDB;

INSERT INTO sync_key_slots (slot) SELECT seq FROM seq_0_to_65535;

-- The migration handoff: while an initial migration runs it holds this row `FOR UPDATE`; every
-- claim takes it `LOCK IN SHARE MODE SKIP LOCKED` and claims nothing when it cannot. The
-- migration's lock waits for the batches in flight, so no batch overlaps it.
CREATE TABLE sync_handoff (
    id  TINYINT UNSIGNED NOT NULL,
    PRIMARY KEY (id),
    CONSTRAINT ck_sync_handoff_single_row CHECK (id = 1)
) ENGINE = InnoDB;

INSERT INTO sync_handoff (id) VALUES (1);

-- What the engineer reads of the pipeline. Every view is materialised (aggregates, or
-- ALGORITHM = TEMPTABLE): a locking read through it locks no row of the tables the workers
-- claim and write, so reading can never stall the sync.
CREATE ALGORITHM = TEMPTABLE VIEW v_sync_queue_status AS
SELECT 'customer_sync_queue' AS queue, 'customer_profiles' AS collection, COUNT(*) AS pending,
       CAST(COALESCE(SUM(attempts > 0), 0) AS SIGNED) AS retrying, CAST(COALESCE(SUM(retry_at > NOW(6)), 0) AS SIGNED) AS parked,
       MIN(changed_at) AS oldest_changed_at, MIN(IF(retry_at > NOW(6), retry_at, NULL)) AS next_retry_at
FROM customer_sync_queue
UNION ALL
SELECT 'product_sync_queue', 'products', COUNT(*), CAST(COALESCE(SUM(attempts > 0), 0) AS SIGNED),
       CAST(COALESCE(SUM(retry_at > NOW(6)), 0) AS SIGNED), MIN(changed_at), MIN(IF(retry_at > NOW(6), retry_at, NULL))
FROM product_sync_queue
UNION ALL
SELECT 'service_sync_queue', 'services', COUNT(*), CAST(COALESCE(SUM(attempts > 0), 0) AS SIGNED),
       CAST(COALESCE(SUM(retry_at > NOW(6)), 0) AS SIGNED), MIN(changed_at), MIN(IF(retry_at > NOW(6), retry_at, NULL))
FROM service_sync_queue
UNION ALL
SELECT 'order_sync_queue', 'orders', COUNT(*), CAST(COALESCE(SUM(attempts > 0), 0) AS SIGNED),
       CAST(COALESCE(SUM(retry_at > NOW(6)), 0) AS SIGNED), MIN(changed_at), MIN(IF(retry_at > NOW(6), retry_at, NULL))
FROM order_sync_queue;

CREATE ALGORITHM = TEMPTABLE VIEW v_sync_dead_letters AS
SELECT dead_letter_id, queue, entity_key, operation, source_table, changed_at, attempts, error, dead_at
FROM sync_dead_letters;

CREATE ALGORITHM = TEMPTABLE VIEW v_migration_checkpoints AS
SELECT entity, run_id, high_water, finished, updated_at
FROM migration_checkpoints;

-- Who operated the pipeline by hand, and what they did (written only by the procedures below).
CREATE TABLE sync_operator_log (
    operation_id  BIGINT UNSIGNED NOT NULL AUTO_INCREMENT,
    operator      VARCHAR(380) NOT NULL,
    action        VARCHAR(32) NOT NULL,
    queue         VARCHAR(32) NOT NULL,
    entity_keys   INT UNSIGNED NOT NULL,
    detail        VARCHAR(255) NOT NULL,
    done_at       DATETIME(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6),
    PRIMARY KEY (operation_id)
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_unicode_ci;

-- A closed lineage row (finished) is history: nobody changes it.
CREATE TRIGGER trg_lineage_closed_rows_are_history
BEFORE UPDATE ON data_lineage_tracker FOR EACH ROW
BEGIN
    IF OLD.finished_at IS NOT NULL THEN
        SIGNAL SQLSTATE '45000' SET MYSQL_ERRNO = 30040,
            MESSAGE_TEXT = 'data_lineage_tracker: a finished lineage row cannot change';
    END IF;
END;

-- Queue these keys of an entity again (their documents are rebuilt from the current rows).
-- `p_keys` is a JSON array of 1 to 10,000 positive integers. Definer's rights: the engineer
-- needs only EXECUTE, and every call is recorded with the caller's account.
CREATE PROCEDURE sp_RequestResync(IN p_entity VARCHAR(16), IN p_keys LONGTEXT)
MODIFIES SQL DATA SQL SECURITY DEFINER
BEGIN
    DECLARE v_queue VARCHAR(32) DEFAULT CASE p_entity
        WHEN 'customers' THEN 'customer_sync_queue'
        WHEN 'products' THEN 'product_sync_queue'
        WHEN 'services' THEN 'service_sync_queue'
        WHEN 'orders' THEN 'order_sync_queue'
    END;
    DECLARE v_count INT UNSIGNED;
    IF v_queue IS NULL THEN
        SIGNAL SQLSTATE '45000' SET MYSQL_ERRNO = 30041,
            MESSAGE_TEXT = 'sp_RequestResync: entity must be customers, products, services or orders';
    END IF;
    IF p_keys IS NULL OR JSON_VALID(p_keys) = 0 OR JSON_TYPE(p_keys) <> 'ARRAY'
       OR JSON_LENGTH(p_keys) NOT BETWEEN 1 AND 10000 THEN
        SIGNAL SQLSTATE '45000' SET MYSQL_ERRNO = 30042,
            MESSAGE_TEXT = 'sp_RequestResync: keys must be a JSON array of 1 to 10000 keys';
    END IF;
    -- Every element a positive integer: the keys read back as integers must spell the array
    -- given (JSON_TABLE alone would coerce '12abc' to 12, 1.5 to 1, -1 to 0). Linear in the
    -- number of keys.
    IF NOT (SELECT MIN(k) >= 1 AND JSON_ARRAYAGG(k ORDER BY n) = JSON_COMPACT(p_keys)
            FROM JSON_TABLE(p_keys, '$[*]' COLUMNS (n FOR ORDINALITY, k BIGINT UNSIGNED PATH '$')) AS t) THEN
        SIGNAL SQLSTATE '45000' SET MYSQL_ERRNO = 30042,
            MESSAGE_TEXT = 'sp_RequestResync: keys must be a JSON array of 1 to 10000 keys';
    END IF;
    SET v_count = JSON_LENGTH(p_keys);
    CASE v_queue
        WHEN 'customer_sync_queue' THEN
            INSERT INTO customer_sync_queue (entity_key, operation, source_table)
            SELECT DISTINCT k, 'update', 'resync' FROM JSON_TABLE(p_keys, '$[*]' COLUMNS (k BIGINT UNSIGNED PATH '$')) AS t;
        WHEN 'product_sync_queue' THEN
            INSERT INTO product_sync_queue (entity_key, operation, source_table)
            SELECT DISTINCT k, 'update', 'resync' FROM JSON_TABLE(p_keys, '$[*]' COLUMNS (k BIGINT UNSIGNED PATH '$')) AS t;
        WHEN 'service_sync_queue' THEN
            INSERT INTO service_sync_queue (entity_key, operation, source_table)
            SELECT DISTINCT k, 'update', 'resync' FROM JSON_TABLE(p_keys, '$[*]' COLUMNS (k BIGINT UNSIGNED PATH '$')) AS t;
        ELSE
            INSERT INTO order_sync_queue (entity_key, operation, source_table)
            SELECT DISTINCT k, 'update', 'resync' FROM JSON_TABLE(p_keys, '$[*]' COLUMNS (k BIGINT UNSIGNED PATH '$')) AS t;
    END CASE;
    INSERT INTO sync_operator_log (operator, action, queue, entity_keys, detail)
    VALUES (USER(), 'resync', v_queue, v_count, CONCAT(v_count, ' keys queued again'));
END;

-- Put a dead letter back on its queue (after the data was fixed), or discard it: one dead
-- letter by id, recorded with the caller's account.
CREATE PROCEDURE sp_ResolveDeadLetter(IN p_dead_letter_id BIGINT UNSIGNED, IN p_action VARCHAR(16))
MODIFIES SQL DATA SQL SECURITY DEFINER
BEGIN
    DECLARE v_queue VARCHAR(32);
    DECLARE v_key BIGINT UNSIGNED;
    DECLARE v_operation VARCHAR(8);
    IF p_action IS NULL OR p_action NOT IN ('requeue', 'discard') THEN
        SIGNAL SQLSTATE '45000' SET MYSQL_ERRNO = 30043,
            MESSAGE_TEXT = 'sp_ResolveDeadLetter: action must be requeue or discard';
    END IF;
    SELECT queue, entity_key, operation INTO v_queue, v_key, v_operation
    FROM sync_dead_letters WHERE dead_letter_id = p_dead_letter_id FOR UPDATE;
    IF v_queue IS NULL THEN
        SIGNAL SQLSTATE '45000' SET MYSQL_ERRNO = 30044,
            MESSAGE_TEXT = 'sp_ResolveDeadLetter: no dead letter with that id';
    END IF;
    IF p_action = 'requeue' THEN
        CASE v_queue
            WHEN 'customer_sync_queue' THEN
                INSERT INTO customer_sync_queue (entity_key, operation, source_table) VALUES (v_key, v_operation, 'requeue');
            WHEN 'product_sync_queue' THEN
                INSERT INTO product_sync_queue (entity_key, operation, source_table) VALUES (v_key, v_operation, 'requeue');
            WHEN 'service_sync_queue' THEN
                INSERT INTO service_sync_queue (entity_key, operation, source_table) VALUES (v_key, v_operation, 'requeue');
            ELSE
                INSERT INTO order_sync_queue (entity_key, operation, source_table) VALUES (v_key, v_operation, 'requeue');
        END CASE;
    END IF;
    DELETE FROM sync_dead_letters WHERE dead_letter_id = p_dead_letter_id;
    INSERT INTO sync_operator_log (operator, action, queue, entity_keys, detail)
    VALUES (USER(), p_action, v_queue, 1, CONCAT('dead letter ', p_dead_letter_id, ', key ', v_key));
END;

-- The lineage, read without locks: one run's rows, or the newest `p_limit` (at most 10,000).
-- A procedure rather than a view, so the newest rows come from the primary key (a materialised
-- view would copy the whole history first) and no caller can turn the read into a locking one.
CREATE PROCEDURE sp_ReadLineage(IN p_run_id CHAR(36), IN p_limit INT UNSIGNED)
READS SQL DATA SQL SECURITY DEFINER
BEGIN
    SET p_limit = LEAST(COALESCE(p_limit, 20), 10000);
    IF p_run_id IS NOT NULL THEN
        SELECT lineage_id, run_id, job, source_tables, target, rows_read, rows_written,
               rows_rejected, started_at, finished_at, status, error
        FROM data_lineage_tracker WHERE run_id = p_run_id ORDER BY lineage_id;
    ELSE
        SELECT * FROM (
            SELECT lineage_id, run_id, job, source_tables, target, rows_read, rows_written,
                   rows_rejected, started_at, finished_at, status, error
            FROM data_lineage_tracker ORDER BY lineage_id DESC LIMIT p_limit
        ) AS newest ORDER BY lineage_id;
    END IF;
END;

-- What the analyst reads, materialised: a locking read through a mergeable view locks the rows
-- of the tables behind it (and, in REPEATABLE READ, the gaps between them), so an analyst
-- holding `SELECT … FOR UPDATE` on one could make application writers wait without end. Through
-- a TEMPTABLE view the rows are read without locks. Same columns and rows as before.
-- (`v_customers_masked` is replaced by a materialised, k-anonymous view in version 11.)
CREATE OR REPLACE ALGORITHM = TEMPTABLE VIEW v_LowStock AS
SELECT p.product_id, p.sku, p.name, c.name AS category, p.stock
FROM Products p
JOIN Categories c ON c.category_id = p.category_id
WHERE p.is_active = TRUE AND p.stock <= 10;
