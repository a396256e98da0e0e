-- Procedures that hold against every caller (issue 16, findings 1 and 4).
--
-- Definer-rights procedures run with the caller's session switches, so both procedures now set
-- what they rely on (CHECK constraints, foreign keys, and the history loader's flag off: an
-- order always takes stock and is captured for the sync, a cancellation always restocks) and
-- restore the caller's values on every way out. sp_PlaceOrder takes at most 100 lines, checks
-- the JSON types of each line in one pass (linear; it was quadratic), refuses consultations in
-- the past (against the server's UTC clock, after the request's shape) and amounts beyond the
-- money columns, each with its own errno:
--   30016 more than 100 lines, 30017 a consultation in the past, 30018 an amount too large.

CREATE OR REPLACE PROCEDURE sp_PlaceOrder(IN p_customer_id BIGINT UNSIGNED, IN p_lines LONGTEXT)
BEGIN
  IF @@in_transaction = 1 THEN
    SIGNAL SQLSTATE '45000' SET MYSQL_ERRNO = 30009,
        MESSAGE_TEXT = 'sp_PlaceOrder runs its own transaction: call it outside an open transaction';
  END IF;
  place_order: BEGIN
    DECLARE v_done BOOLEAN DEFAULT FALSE;
    DECLARE v_msg VARCHAR(512);
    DECLARE v_order_id BIGINT UNSIGNED;
    DECLARE v_item_id BIGINT UNSIGNED;
    DECLARE v_total DECIMAL(14, 2);
    DECLARE v_line_no INT;
    DECLARE v_product_id BIGINT UNSIGNED;
    DECLARE v_service_id BIGINT UNSIGNED;
    DECLARE v_quantity BIGINT;
    DECLARE v_starts_text VARCHAR(64);
    DECLARE v_starts_at DATETIME(6);
    DECLARE v_name VARCHAR(200);
    DECLARE v_price DECIMAL(12, 2);
    DECLARE v_stock INT;
    DECLARE v_active BOOLEAN;
    DECLARE v_duration INT;
    DECLARE v_consultant VARCHAR(100);
    DECLARE v_found INT;
    DECLARE v_type VARCHAR(16);
    DECLARE v_product_type VARCHAR(16);
    DECLARE v_service_type VARCHAR(16);
    DECLARE v_quantity_type VARCHAR(16);
    DECLARE v_sum DECIMAL(20, 2);
    -- The caller's session switches, restored on every way out.
    DECLARE v_saved_checks BIGINT DEFAULT @@SESSION.check_constraint_checks;
    DECLARE v_saved_fks BIGINT DEFAULT @@SESSION.foreign_key_checks;
    DECLARE v_saved_loading LONGTEXT DEFAULT @aethermart_loading_history;

    DECLARE cur_lines CURSOR FOR
        SELECT line_no, product_id, service_id, quantity, starts_at
        FROM JSON_TABLE(p_lines, '$[*]' COLUMNS (
            line_no    FOR ORDINALITY,
            product_id BIGINT UNSIGNED PATH '$.product_id',
            service_id BIGINT UNSIGNED PATH '$.service_id',
            quantity   BIGINT PATH '$.quantity',
            starts_at  VARCHAR(64) PATH '$.starts_at')) AS l
        ORDER BY line_no;
    -- The same lines with the JSON types of their numbers, each read from its own line (linear:
    -- JSON_TABLE alone coerces "12abc" to 12 and 1.6 to 2, so the types are checked).
    DECLARE cur_shapes CURSOR FOR
        SELECT line_no, product_id, service_id, quantity, starts_at,
               JSON_TYPE(JSON_EXTRACT(line, '$.product_id')),
               JSON_TYPE(JSON_EXTRACT(line, '$.service_id')),
               JSON_TYPE(JSON_EXTRACT(line, '$.quantity'))
        FROM JSON_TABLE(p_lines, '$[*]' COLUMNS (
            line_no    FOR ORDINALITY,
            line       JSON PATH '$',
            product_id BIGINT UNSIGNED PATH '$.product_id',
            service_id BIGINT UNSIGNED PATH '$.service_id',
            quantity   BIGINT PATH '$.quantity',
            starts_at  VARCHAR(64) PATH '$.starts_at')) AS l
        ORDER BY line_no;
    DECLARE cur_products CURSOR FOR
        SELECT product_id, SUM(quantity)
        FROM JSON_TABLE(p_lines, '$[*]' COLUMNS (
            product_id BIGINT UNSIGNED PATH '$.product_id',
            quantity   BIGINT PATH '$.quantity')) AS l
        WHERE product_id IS NOT NULL
        GROUP BY product_id
        ORDER BY product_id;
    -- Consultants booked by the service lines, in name order (the lock order).
    DECLARE cur_consultants CURSOR FOR
        SELECT DISTINCT s.consultant
        FROM JSON_TABLE(p_lines, '$[*]' COLUMNS (service_id BIGINT UNSIGNED PATH '$.service_id')) AS l
        JOIN Services s ON s.service_id = l.service_id
        ORDER BY s.consultant;
    DECLARE CONTINUE HANDLER FOR NOT FOUND SET v_done = TRUE;
    -- The only unique key this procedure can hit is the consultant's booking period.
    DECLARE EXIT HANDLER FOR 1062
    BEGIN
        ROLLBACK;
        SET SESSION check_constraint_checks = v_saved_checks, foreign_key_checks = v_saved_fks;
        SET @aethermart_loading_history = v_saved_loading;
        SET v_msg = CONCAT('consultant ', v_consultant, ' is already booked at ',
                           DATE_FORMAT(v_starts_at, '%Y-%m-%d %H:%i'), ' (service ', v_service_id, ')');
        SIGNAL SQLSTATE '45000' SET MYSQL_ERRNO = 30007, MESSAGE_TEXT = v_msg;
    END;
    DECLARE EXIT HANDLER FOR SQLEXCEPTION
    BEGIN
        ROLLBACK;
        SET SESSION check_constraint_checks = v_saved_checks, foreign_key_checks = v_saved_fks;
        SET @aethermart_loading_history = v_saved_loading;
        RESIGNAL;
    END;

    -- 0. The rules hold whatever the caller switched off for its session: CHECK constraints,
    -- foreign keys, and the history loader's flag (the order takes stock and is captured).
    SET SESSION check_constraint_checks = 1, foreign_key_checks = 1;
    SET @aethermart_loading_history = NULL;

    -- 1. The shape of the request, before any lock is taken.
    IF p_lines IS NULL OR JSON_VALID(p_lines) = 0 OR JSON_TYPE(p_lines) <> 'ARRAY' THEN
        SIGNAL SQLSTATE '45000' SET MYSQL_ERRNO = 30008,
            MESSAGE_TEXT = 'order lines must be a JSON array of {product_id, quantity} or {service_id, starts_at}';
    END IF;
    IF JSON_LENGTH(p_lines) = 0 THEN
        SIGNAL SQLSTATE '45000' SET MYSQL_ERRNO = 30004, MESSAGE_TEXT = 'an order needs at least one line';
    END IF;
    IF JSON_LENGTH(p_lines) > 100 THEN
        SIGNAL SQLSTATE '45000' SET MYSQL_ERRNO = 30016, MESSAGE_TEXT = 'an order has at most 100 lines';
    END IF;
    SET v_done = FALSE;
    OPEN cur_shapes;
    check_lines: LOOP
        FETCH cur_shapes INTO v_line_no, v_product_id, v_service_id, v_quantity, v_starts_text,
                              v_product_type, v_service_type, v_quantity_type;
        IF v_done THEN LEAVE check_lines; END IF;
        IF (v_product_id IS NULL) = (v_service_id IS NULL) THEN
            SET v_msg = CONCAT('line ', v_line_no, ': needs exactly one of product_id or service_id');
            SIGNAL SQLSTATE '45000' SET MYSQL_ERRNO = 30008, MESSAGE_TEXT = v_msg;
        END IF;
        -- JSON_TABLE converts leniently ("12abc" -> 12, 1.6 -> 2): insist on JSON integers.
        SET v_type = IF(v_product_id IS NULL, v_service_type, v_product_type);
        IF v_type <> 'INTEGER' THEN
            SET v_msg = CONCAT('line ', v_line_no, ': ', IF(v_product_id IS NULL, 'service_id', 'product_id'), ' must be a whole number');
            SIGNAL SQLSTATE '45000' SET MYSQL_ERRNO = 30008, MESSAGE_TEXT = v_msg;
        END IF;
        IF v_quantity_type IS NOT NULL AND v_quantity_type <> 'INTEGER' THEN
            SET v_msg = CONCAT('line ', v_line_no, ': quantity must be a positive whole number');
            SIGNAL SQLSTATE '45000' SET MYSQL_ERRNO = 30005, MESSAGE_TEXT = v_msg;
        END IF;
        IF v_product_id IS NOT NULL AND (v_quantity IS NULL OR v_quantity <= 0 OR v_quantity > 1000000) THEN
            SET v_msg = CONCAT('line ', v_line_no, ': quantity must be a positive whole number, got ',
                               COALESCE(v_quantity, 'nothing'));
            SIGNAL SQLSTATE '45000' SET MYSQL_ERRNO = 30005, MESSAGE_TEXT = v_msg;
        END IF;
        IF v_service_id IS NOT NULL AND v_quantity IS NOT NULL AND v_quantity <> 1 THEN
            SET v_msg = CONCAT('line ', v_line_no, ': a service line books exactly one session, got quantity ', v_quantity);
            SIGNAL SQLSTATE '45000' SET MYSQL_ERRNO = 30005, MESSAGE_TEXT = v_msg;
        END IF;
        IF v_service_id IS NOT NULL AND v_starts_text IS NULL THEN
            SET v_msg = CONCAT('line ', v_line_no, ': a service line needs starts_at');
            SIGNAL SQLSTATE '45000' SET MYSQL_ERRNO = 30008, MESSAGE_TEXT = v_msg;
        END IF;
    END LOOP;
    CLOSE cur_shapes;

    -- 1b. Once the shape is right: every consultation starts at a valid time, not in the past
    -- (the server's UTC clock; times are UTC throughout).
    SET v_done = FALSE;
    OPEN cur_lines;
    check_slots: LOOP
        FETCH cur_lines INTO v_line_no, v_product_id, v_service_id, v_quantity, v_starts_text;
        IF v_done THEN LEAVE check_slots; END IF;
        IF v_service_id IS NOT NULL THEN
            SET v_starts_at = NULL;
            parse_slot: BEGIN
                DECLARE EXIT HANDLER FOR 1292, 1411 SET v_starts_at = NULL;
                SET v_starts_at = CAST(v_starts_text AS DATETIME(6));
            END parse_slot;
            IF v_starts_at IS NULL THEN
                SET v_msg = CONCAT('line ', v_line_no, ': starts_at is not a date and time');
                SIGNAL SQLSTATE '45000' SET MYSQL_ERRNO = 30008, MESSAGE_TEXT = v_msg;
            END IF;
            IF v_starts_at < UTC_TIMESTAMP(6) THEN
                SET v_msg = CONCAT('line ', v_line_no, ': the consultation would start in the past');
                SIGNAL SQLSTATE '45000' SET MYSQL_ERRNO = 30017, MESSAGE_TEXT = v_msg;
            END IF;
        END IF;
    END LOOP;
    CLOSE cur_lines;

    START TRANSACTION;

    -- 2. The customer (a shared lock keeps it from being deleted meanwhile).
    SELECT COUNT(*) INTO v_found FROM Customers WHERE customer_id = p_customer_id LOCK IN SHARE MODE;
    IF v_found = 0 THEN
        SET v_msg = CONCAT('unknown customer ', COALESCE(p_customer_id, 'NULL'));
        SIGNAL SQLSTATE '45000' SET MYSQL_ERRNO = 30001, MESSAGE_TEXT = v_msg;
    END IF;

    -- 3. Products, locked one by one in ascending id order; stock checked per product over all lines.
    SET v_done = FALSE;
    OPEN cur_products;
    lock_products: LOOP
        FETCH cur_products INTO v_product_id, v_quantity;
        IF v_done THEN LEAVE lock_products; END IF;
        SELECT MAX(name), MAX(stock), MAX(is_active) INTO v_name, v_stock, v_active
        FROM Products WHERE product_id = v_product_id FOR UPDATE;
        IF v_name IS NULL OR NOT v_active THEN
            SET v_msg = CONCAT('unknown or inactive product ', v_product_id);
            SIGNAL SQLSTATE '45000' SET MYSQL_ERRNO = 30002, MESSAGE_TEXT = v_msg;
        END IF;
        IF v_stock < v_quantity THEN
            SET v_msg = CONCAT('insufficient stock for product "', v_name, '" (id ', v_product_id,
                               '): requested ', v_quantity, ', available ', v_stock);
            SIGNAL SQLSTATE '45000' SET MYSQL_ERRNO = 30003, MESSAGE_TEXT = v_msg;
        END IF;
    END LOOP;
    CLOSE cur_products;

    -- 3b. Consultants, in name order: all their services are locked, so two orders can never
    -- book the same consultant at once (the WITHOUT OVERLAPS key then sees committed bookings).
    SET v_done = FALSE;
    OPEN cur_consultants;
    lock_consultants: LOOP
        FETCH cur_consultants INTO v_consultant;
        IF v_done THEN LEAVE lock_consultants; END IF;
        SELECT COUNT(*) INTO v_found FROM Services WHERE consultant = v_consultant FOR UPDATE;
    END LOOP;
    CLOSE cur_consultants;

    -- 4. The order and its lines, with prices captured now. Stock is taken by the trigger.
    INSERT INTO Orders (customer_id, status) VALUES (p_customer_id, 'pending');
    SET v_order_id = LAST_INSERT_ID();
    SET v_done = FALSE;
    OPEN cur_lines;
    insert_lines: LOOP
        FETCH cur_lines INTO v_line_no, v_product_id, v_service_id, v_quantity, v_starts_text;
        IF v_done THEN LEAVE insert_lines; END IF;
        IF v_product_id IS NOT NULL THEN
            -- Read first: the stock trigger updates Products, which an INSERT ... SELECT
            -- FROM Products would be using (error 1442).
            SELECT price INTO v_price FROM Products WHERE product_id = v_product_id;
            IF v_quantity * v_price > 999999999999.99 THEN
                SET v_msg = CONCAT('line ', v_line_no, ': the line total exceeds 999999999999.99');
                SIGNAL SQLSTATE '45000' SET MYSQL_ERRNO = 30018, MESSAGE_TEXT = v_msg;
            END IF;
            INSERT INTO Order_Items (order_id, product_id, quantity, unit_price)
            VALUES (v_order_id, v_product_id, v_quantity, v_price);
        ELSE
            SELECT MAX(price), MAX(duration_minutes), MAX(consultant), MAX(is_active)
            INTO v_price, v_duration, v_consultant, v_active
            FROM Services WHERE service_id = v_service_id LOCK IN SHARE MODE;
            IF v_consultant IS NULL OR NOT v_active THEN
                SET v_msg = CONCAT('unknown or inactive service ', v_service_id);
                SIGNAL SQLSTATE '45000' SET MYSQL_ERRNO = 30006, MESSAGE_TEXT = v_msg;
            END IF;
            SET v_starts_at = NULL;
            parse_start: BEGIN
                -- An unparseable time is a malformed line, not a server error.
                DECLARE EXIT HANDLER FOR 1292, 1411 SET v_starts_at = NULL;
                SET v_starts_at = CAST(v_starts_text AS DATETIME(6));
            END parse_start;
            IF v_starts_at IS NULL THEN
                SET v_msg = CONCAT('line ', v_line_no, ': starts_at is not a date and time');
                SIGNAL SQLSTATE '45000' SET MYSQL_ERRNO = 30008, MESSAGE_TEXT = v_msg;
            END IF;
            INSERT INTO Order_Items (order_id, service_id, quantity, unit_price)
            VALUES (v_order_id, v_service_id, 1, v_price);
            SET v_item_id = LAST_INSERT_ID();
            INSERT INTO Service_Bookings (order_item_id, service_id, consultant, starts_at, ends_at)
            VALUES (v_item_id, v_service_id, v_consultant, v_starts_at, v_starts_at + INTERVAL v_duration MINUTE);
        END IF;
    END LOOP;
    CLOSE cur_lines;

    SELECT COALESCE(SUM(line_total), 0) INTO v_sum FROM Order_Items WHERE order_id = v_order_id;
    IF v_sum > 999999999999.99 THEN
        SIGNAL SQLSTATE '45000' SET MYSQL_ERRNO = 30018,
            MESSAGE_TEXT = 'the order total exceeds 999999999999.99';
    END IF;
    SET v_total = v_sum;
    UPDATE Orders SET total = v_total WHERE order_id = v_order_id;
    COMMIT;
    SET SESSION check_constraint_checks = v_saved_checks, foreign_key_checks = v_saved_fks;
    SET @aethermart_loading_history = v_saved_loading;
    SELECT v_order_id AS order_id, v_total AS total;
  END place_order;
END;

CREATE OR REPLACE PROCEDURE sp_CancelOrder(IN p_order_id BIGINT UNSIGNED)
BEGIN
  IF @@in_transaction = 1 THEN
    SIGNAL SQLSTATE '45000' SET MYSQL_ERRNO = 30009,
        MESSAGE_TEXT = 'sp_CancelOrder runs its own transaction: call it outside an open transaction';
  END IF;
  cancel_order: BEGIN
    DECLARE v_done BOOLEAN DEFAULT FALSE;
    DECLARE v_msg VARCHAR(255);
    DECLARE v_status VARCHAR(16);
    DECLARE v_product_id BIGINT UNSIGNED;
    DECLARE v_stock INT;
    DECLARE v_saved_checks BIGINT DEFAULT @@SESSION.check_constraint_checks;
    DECLARE v_saved_fks BIGINT DEFAULT @@SESSION.foreign_key_checks;
    DECLARE v_saved_loading LONGTEXT DEFAULT @aethermart_loading_history;
    DECLARE cur_products CURSOR FOR
        SELECT DISTINCT product_id FROM Order_Items
        WHERE order_id = p_order_id AND product_id IS NOT NULL
        ORDER BY product_id;
    DECLARE CONTINUE HANDLER FOR NOT FOUND SET v_done = TRUE;
    DECLARE EXIT HANDLER FOR SQLEXCEPTION
    BEGIN
        ROLLBACK;
        SET SESSION check_constraint_checks = v_saved_checks, foreign_key_checks = v_saved_fks;
        SET @aethermart_loading_history = v_saved_loading;
        RESIGNAL;
    END;

    -- The restock and the capture happen whatever the caller switched off for its session.
    SET SESSION check_constraint_checks = 1, foreign_key_checks = 1;
    SET @aethermart_loading_history = NULL;
    START TRANSACTION;
    SELECT MAX(status) INTO v_status FROM Orders WHERE order_id = p_order_id FOR UPDATE;
    IF v_status IS NULL THEN
        SET v_msg = CONCAT('unknown order ', COALESCE(p_order_id, 'NULL'));
        SIGNAL SQLSTATE '45000' SET MYSQL_ERRNO = 30010, MESSAGE_TEXT = v_msg;
    END IF;
    IF v_status NOT IN ('pending', 'paid') THEN
        SET v_msg = CONCAT('order ', p_order_id, ' is ', v_status, ' and can no longer be cancelled');
        SIGNAL SQLSTATE '45000' SET MYSQL_ERRNO = 30011, MESSAGE_TEXT = v_msg;
    END IF;
    OPEN cur_products;
    lock_products: LOOP
        FETCH cur_products INTO v_product_id;
        IF v_done THEN LEAVE lock_products; END IF;
        SELECT stock INTO v_stock FROM Products WHERE product_id = v_product_id FOR UPDATE;
    END LOOP;
    CLOSE cur_products;
    UPDATE Orders SET status = 'cancelled' WHERE order_id = p_order_id;
    COMMIT;
    SET SESSION check_constraint_checks = v_saved_checks, foreign_key_checks = v_saved_fks;
    SET @aethermart_loading_history = v_saved_loading;
  END cancel_order;
END;
