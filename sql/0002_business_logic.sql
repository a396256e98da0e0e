-- AetherMart business logic in the database (milestone 2, extended for milestone 4's services).
--
-- Error numbers raised here (SQLSTATE 45000), mapped one-to-one to Rust errors in
-- aethermart_core::orders:
--   30001 unknown customer              30008 malformed order lines
--   30002 unknown or inactive product   30010 unknown order
--   30003 insufficient stock            30011 order can no longer be cancelled
--   30004 empty order                   30012 forbidden order status change
--   30005 bad quantity                  30013 order lines are immutable (no update, no delete)
--   30006 unknown or inactive service   30014 category tree cycle
--   30007 consultant already booked     30015 only cancelled orders may be deleted
--   30009 called inside an open transaction (the procedures run their own)
--
-- Stock has exactly one owner: the trigger on Order_Items. sp_PlaceOrder checks and locks stock
-- but never changes it; cancelling an order restocks through the trigger on Orders.

-- ---- triggers -----------------------------------------------------------------------------

-- Stock goes down once per product line, whoever inserts the line. The CHECK (stock >= 0) on
-- Products refuses a line that would oversell.
-- Exception: a bulk load of order *history* (the data generator) sets
-- @aethermart_loading_history = 1 on its own connections: those sales already happened and
-- Products.stock is the stock on hand after them, so taking it again would count them twice.
CREATE TRIGGER trg_order_items_take_stock AFTER INSERT ON Order_Items FOR EACH ROW
BEGIN
    IF NEW.product_id IS NOT NULL AND NOT (@aethermart_loading_history <=> 1) THEN
        UPDATE Products SET stock = stock - NEW.quantity WHERE product_id = NEW.product_id;
    END IF;
END;

-- What was sold cannot be rewritten: stock and totals were computed from it.
CREATE TRIGGER trg_order_items_immutable BEFORE UPDATE ON Order_Items FOR EACH ROW
BEGIN
    IF NOT (NEW.order_id <=> OLD.order_id AND NEW.product_id <=> OLD.product_id
            AND NEW.service_id <=> OLD.service_id AND NEW.quantity <=> OLD.quantity
            AND NEW.unit_price <=> OLD.unit_price) THEN
        SIGNAL SQLSTATE '45000' SET MYSQL_ERRNO = 30013,
            MESSAGE_TEXT = 'order lines are immutable: cancel the order and place a new one';
    END IF;
END;

CREATE TRIGGER trg_order_items_no_delete BEFORE DELETE ON Order_Items FOR EACH ROW
BEGIN
    SIGNAL SQLSTATE '45000' SET MYSQL_ERRNO = 30013,
        MESSAGE_TEXT = 'order lines are immutable: cancel the order and place a new one';
END;

-- Deleting an order would drop its lines without restocking (cascades fire no triggers):
-- only cancelled orders, whose stock is already back, may be deleted.
CREATE TRIGGER trg_orders_delete_only_cancelled BEFORE DELETE ON Orders FOR EACH ROW
BEGIN
    DECLARE v_msg VARCHAR(255);
    IF OLD.status <> 'cancelled' THEN
        SET v_msg = CONCAT('order ', OLD.order_id, ' is ', OLD.status, ': cancel it before deleting it');
        SIGNAL SQLSTATE '45000' SET MYSQL_ERRNO = 30015, MESSAGE_TEXT = v_msg;
    END IF;
END;

-- The order lifecycle: pending -> paid -> shipped -> delivered -> returned, and
-- pending|paid -> cancelled. Cancelled and returned are final.
CREATE TRIGGER trg_orders_status_flow BEFORE UPDATE ON Orders FOR EACH ROW
BEGIN
    DECLARE v_msg VARCHAR(255);
    IF NEW.status <> OLD.status AND NOT (
           (OLD.status = 'pending' AND NEW.status IN ('paid', 'cancelled'))
        OR (OLD.status = 'paid' AND NEW.status IN ('shipped', 'cancelled'))
        OR (OLD.status = 'shipped' AND NEW.status = 'delivered')
        OR (OLD.status = 'delivered' AND NEW.status = 'returned')) THEN
        SET v_msg = CONCAT('order ', OLD.order_id, ': status cannot change from ', OLD.status, ' to ', NEW.status);
        SIGNAL SQLSTATE '45000' SET MYSQL_ERRNO = 30012, MESSAGE_TEXT = v_msg;
    END IF;
    IF NEW.customer_id <> OLD.customer_id THEN
        SET v_msg = CONCAT('order ', OLD.order_id, ': an order cannot move to another customer');
        SIGNAL SQLSTATE '45000' SET MYSQL_ERRNO = 30012, MESSAGE_TEXT = v_msg;
    END IF;
END;

-- Cancelling puts the stock back and frees the consultants' slots.
CREATE TRIGGER trg_orders_restock_on_cancel AFTER UPDATE ON Orders FOR EACH ROW
BEGIN
    IF NEW.status = 'cancelled' AND OLD.status <> 'cancelled' THEN
        UPDATE Products p
        JOIN (SELECT product_id, SUM(quantity) AS qty
              FROM Order_Items
              WHERE order_id = NEW.order_id AND product_id IS NOT NULL
              GROUP BY product_id) AS sold ON sold.product_id = p.product_id
        SET p.stock = p.stock + sold.qty;
        DELETE b FROM Service_Bookings b
        JOIN Order_Items i ON i.order_item_id = b.order_item_id
        WHERE i.order_id = NEW.order_id;
    END IF;
END;

-- The category tree stays a tree: no category may become its own ancestor.
CREATE TRIGGER trg_categories_no_self_parent BEFORE INSERT ON Categories FOR EACH ROW
BEGIN
    IF NEW.parent_id IS NOT NULL AND NEW.parent_id = NEW.category_id THEN
        SIGNAL SQLSTATE '45000' SET MYSQL_ERRNO = 30014, MESSAGE_TEXT = 'a category cannot be its own parent';
    END IF;
END;

CREATE TRIGGER trg_categories_no_cycle BEFORE UPDATE ON Categories FOR EACH ROW
BEGIN
    DECLARE v_hits INT DEFAULT 0;
    DECLARE v_msg VARCHAR(255);
    IF NEW.parent_id IS NOT NULL AND NOT (NEW.parent_id <=> OLD.parent_id) THEN
        WITH RECURSIVE ancestors (id, depth) AS (
            SELECT NEW.parent_id, 1
            UNION ALL
            SELECT c.parent_id, a.depth + 1
            FROM Categories c JOIN ancestors a ON c.category_id = a.id
            WHERE c.parent_id IS NOT NULL AND a.depth < 64)
        SELECT COUNT(*) INTO v_hits FROM ancestors WHERE id = NEW.category_id;
        IF v_hits > 0 THEN
            SET v_msg = CONCAT('category ', NEW.category_id, ' cannot move under ', NEW.parent_id,
                               ': that would make a cycle');
            SIGNAL SQLSTATE '45000' SET MYSQL_ERRNO = 30014, MESSAGE_TEXT = v_msg;
        END IF;
    END IF;
END;

-- ---- procedures ---------------------------------------------------------------------------

-- Places an order atomically and returns one row (order_id, total).
--   p_lines: JSON array of lines, each either
--     {"product_id": 12, "quantity": 2}  or  {"service_id": 3, "starts_at": "2026-12-01 10:00:00"}
-- Runs as its own transaction, so it refuses to run inside one (it would commit it). Rows are
-- locked in a fixed order (the customer, then products by ascending id, then consultants by
-- name), so concurrent orders never deadlock each other; any failure rolls everything back.
CREATE PROCEDURE sp_PlaceOrder(IN p_customer_id BIGINT UNSIGNED, IN p_lines LONGTEXT)
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

    DECLARE cur_lines CURSOR FOR
        SELECT line_no, product_id, service_id, quantity, starts_at
        FROM JSON_TABLE(p_lines, '$[*]' COLUMNS (
            line_no    FOR ORDINALITY,
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
        SET v_msg = CONCAT('consultant ', v_consultant, ' is already booked at ',
                           DATE_FORMAT(v_starts_at, '%Y-%m-%d %H:%i'), ' (service ', v_service_id, ')');
        SIGNAL SQLSTATE '45000' SET MYSQL_ERRNO = 30007, MESSAGE_TEXT = v_msg;
    END;
    DECLARE EXIT HANDLER FOR SQLEXCEPTION
    BEGIN
        ROLLBACK;
        RESIGNAL;
    END;

    -- 1. The shape of the request, before any lock is taken.
    IF p_lines IS NULL OR JSON_VALID(p_lines) = 0 OR JSON_TYPE(p_lines) <> 'ARRAY' THEN
        SIGNAL SQLSTATE '45000' SET MYSQL_ERRNO = 30008,
            MESSAGE_TEXT = 'order lines must be a JSON array of {product_id, quantity} or {service_id, starts_at}';
    END IF;
    IF JSON_LENGTH(p_lines) = 0 THEN
        SIGNAL SQLSTATE '45000' SET MYSQL_ERRNO = 30004, MESSAGE_TEXT = 'an order needs at least one line';
    END IF;
    SET v_done = FALSE;
    OPEN cur_lines;
    check_lines: LOOP
        FETCH cur_lines INTO v_line_no, v_product_id, v_service_id, v_quantity, v_starts_text;
        IF v_done THEN LEAVE check_lines; END IF;
        IF (v_product_id IS NULL) = (v_service_id IS NULL) THEN
            SET v_msg = CONCAT('line ', v_line_no, ': needs exactly one of product_id or service_id');
            SIGNAL SQLSTATE '45000' SET MYSQL_ERRNO = 30008, MESSAGE_TEXT = v_msg;
        END IF;
        -- JSON_TABLE converts leniently ("12abc" -> 12, 1.6 -> 2): insist on JSON integers.
        SET v_type = JSON_TYPE(JSON_EXTRACT(p_lines, CONCAT('$[', v_line_no - 1, '].', IF(v_product_id IS NULL, 'service_id', 'product_id'))));
        IF v_type <> 'INTEGER' THEN
            SET v_msg = CONCAT('line ', v_line_no, ': ', IF(v_product_id IS NULL, 'service_id', 'product_id'), ' must be a whole number');
            SIGNAL SQLSTATE '45000' SET MYSQL_ERRNO = 30008, MESSAGE_TEXT = v_msg;
        END IF;
        SET v_type = JSON_TYPE(JSON_EXTRACT(p_lines, CONCAT('$[', v_line_no - 1, '].quantity')));
        IF v_type IS NOT NULL AND v_type <> 'INTEGER' THEN
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
                SET v_msg = CONCAT('line ', v_line_no, ': starts_at "', v_starts_text, '" is not a date and time');
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

    SELECT COALESCE(SUM(line_total), 0) INTO v_total FROM Order_Items WHERE order_id = v_order_id;
    UPDATE Orders SET total = v_total WHERE order_id = v_order_id;
    COMMIT;
    SELECT v_order_id AS order_id, v_total AS total;
  END place_order;
END;

-- Cancels a pending or paid order: the restock trigger puts the stock back and frees bookings.
-- Locks the order, then its products in ascending id order (the same order as sp_PlaceOrder).
CREATE PROCEDURE sp_CancelOrder(IN p_order_id BIGINT UNSIGNED)
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
    DECLARE cur_products CURSOR FOR
        SELECT DISTINCT product_id FROM Order_Items
        WHERE order_id = p_order_id AND product_id IS NOT NULL
        ORDER BY product_id;
    DECLARE CONTINUE HANDLER FOR NOT FOUND SET v_done = TRUE;
    DECLARE EXIT HANDLER FOR SQLEXCEPTION
    BEGIN
        ROLLBACK;
        RESIGNAL;
    END;

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
  END cancel_order;
END;

-- ---- views --------------------------------------------------------------------------------

-- One row per sold line of an order that counts as revenue (not cancelled, not returned), with
-- the category of its product or service. Mergeable (no aggregation), so filters on placed_at
-- reach the index.
CREATE VIEW v_SalesLines AS
SELECT o.order_id, o.customer_id, o.placed_at, i.order_item_id,
       IF(i.product_id IS NULL, 'service', 'product') AS item_kind,
       COALESCE(p.category_id, s.category_id) AS category_id,
       i.quantity, i.line_total
FROM Orders o
JOIN Order_Items i ON i.order_id = o.order_id
LEFT JOIN Products p ON p.product_id = i.product_id
LEFT JOIN Services s ON s.service_id = i.service_id
WHERE o.status NOT IN ('cancelled', 'returned');

-- Revenue, orders and units per calendar quarter and category.
CREATE VIEW v_QuarterlySales AS
SELECT CONCAT(YEAR(l.placed_at), '-Q', QUARTER(l.placed_at)) AS quarter,
       l.category_id,
       c.name AS category,
       COUNT(DISTINCT l.order_id) AS orders,
       SUM(l.quantity) AS units,
       SUM(l.line_total) AS revenue
FROM v_SalesLines l
JOIN Categories c ON c.category_id = l.category_id
GROUP BY YEAR(l.placed_at), QUARTER(l.placed_at), l.category_id, c.name;

-- Per customer: orders placed (all), lifetime value (orders that count as revenue), first/last order.
-- Correlated subqueries instead of GROUP BY keep the view mergeable: a filter on customer_id
-- becomes a primary-key lookup plus index ranges on ix_orders_customer_placed (a grouped view is
-- materialised, and with a bound parameter MariaDB then scans every customer).
CREATE VIEW v_CustomerOrderSummary AS
SELECT c.customer_id,
       (SELECT COUNT(*) FROM Orders o WHERE o.customer_id = c.customer_id) AS order_count,
       (SELECT COALESCE(SUM(o.total), 0) FROM Orders o
        WHERE o.customer_id = c.customer_id AND o.status NOT IN ('cancelled', 'returned')) AS lifetime_value,
       (SELECT MIN(o.placed_at) FROM Orders o WHERE o.customer_id = c.customer_id) AS first_order_at,
       (SELECT MAX(o.placed_at) FROM Orders o WHERE o.customer_id = c.customer_id) AS last_order_at
FROM Customers c;

-- Active products with 10 units or fewer left.
CREATE VIEW v_LowStock AS
SELECT p.product_id, p.sku, p.name, c.name AS category, p.stock
FROM Products p
JOIN Categories c ON c.category_id = p.category_id
WHERE p.is_active = TRUE AND p.stock <= 10;
