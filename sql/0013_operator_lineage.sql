-- What an operator does by hand is lineage too (issue 18): the engineer's procedures of
-- version 9 now also write a finished row to data_lineage_tracker for every call, beside the
-- record of who called them in sync_operator_log. `resync` reads the entity's table and writes
-- its queue (rows_written: the keys queued); `requeue` and `discard` read a dead letter and write
-- its queue (rows_written 1 for a requeue, 0 for a discard). `aethermart lineage` and its
-- OpenLineage events show them as jobs `resync.<queue>`, `requeue.<queue>`, `discard.<queue>`.
-- Same arguments, checks and error numbers as before; grants on them survive the replacement.

CREATE OR REPLACE PROCEDURE sp_RequestResync(IN p_entity VARCHAR(16), IN p_keys LONGTEXT)
MODIFIES SQL DATA SQL SECURITY DEFINER
BEGIN
    DECLARE v_queue VARCHAR(32) DEFAULT CASE p_entity
        WHEN 'customers' THEN 'customer_sync_queue'
        WHEN 'products' THEN 'product_sync_queue'
        WHEN 'services' THEN 'service_sync_queue'
        WHEN 'orders' THEN 'order_sync_queue'
    END;
    DECLARE v_table VARCHAR(32) DEFAULT CASE p_entity
        WHEN 'customers' THEN 'Customers'
        WHEN 'products' THEN 'Products'
        WHEN 'services' THEN 'Services'
        WHEN 'orders' THEN 'Orders'
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
    INSERT INTO data_lineage_tracker (run_id, job, source_tables, target, rows_read, rows_written,
                                      finished_at, status)
    VALUES (UUID(), 'resync', v_table, CONCAT('mariadb:', DATABASE(), '.', v_queue), v_count,
            v_count, CURRENT_TIMESTAMP(6), 'complete');
END;

-- Put a dead letter back on its queue (after the data was fixed), or discard it: one dead
-- letter by id, recorded with the caller's account.
CREATE OR REPLACE PROCEDURE sp_ResolveDeadLetter(IN p_dead_letter_id BIGINT UNSIGNED, IN p_action VARCHAR(16))
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
    INSERT INTO data_lineage_tracker (run_id, job, source_tables, target, rows_read, rows_written,
                                      finished_at, status)
    VALUES (UUID(), p_action, 'sync_dead_letters', CONCAT('mariadb:', DATABASE(), '.', v_queue), 1,
            IF(p_action = 'requeue', 1, 0), CURRENT_TIMESTAMP(6), 'complete');
END;
