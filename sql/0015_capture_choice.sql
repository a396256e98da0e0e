-- Choosing the capture (issue 17): the capture is a property of the database, set by the
-- administrator (`aethermart capture set binlog|triggers`), recorded in `sync_settings`.
--
-- Under binlog capture the workers follow the binary log, and the capture part of the triggers
-- does no work: no queue row is written on the application's transactions (the stock part of
-- the order-line trigger stays). Entries the platform queues on purpose (resync requests,
-- requeued dead letters, the review stream's products) are still written: under binlog
-- capture they reach the workers through the binlog.
--
-- A trigger reads the setting with a shared lock, held until its transaction ends: a switch
-- (an exclusive lock on the same row) waits for every transaction that read the old value, so
-- each change is either queued or written to the binlog after the position the switch records.
-- Shared locks do not wait for each other: writers never wait for one another here. Only the
-- administrator may write the row; the worker role reads it.

CREATE TABLE sync_settings (
    id          TINYINT UNSIGNED NOT NULL,
    capture     ENUM('triggers', 'binlog') NOT NULL DEFAULT 'triggers',
    changed_at  DATETIME(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6),
    changed_by  VARCHAR(128) NOT NULL DEFAULT 'schema',
    PRIMARY KEY (id),
    CONSTRAINT ck_sync_settings_one_row CHECK (id = 1)
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_unicode_ci;

INSERT INTO sync_settings (id) VALUES (1);

-- True while the triggers capture changes (a missing row means the original capture).
CREATE OR REPLACE FUNCTION aethermart_capture_by_triggers() RETURNS BOOLEAN
    NOT DETERMINISTIC READS SQL DATA
BEGIN
    DECLARE v_capture VARCHAR(16) DEFAULT 'triggers';
    SELECT capture INTO v_capture FROM sync_settings WHERE id = 1 LOCK IN SHARE MODE;
    RETURN v_capture = 'triggers';
END;

-- The triggers of version 12, restated with the capture part behind the setting (a history
-- loader's inserts are not captured, as before, without reading it).

CREATE OR REPLACE TRIGGER trg_order_items_before_insert BEFORE INSERT ON Order_Items FOR EACH ROW
BEGIN
    IF LEFT(USER(), 18) = 'aethermart_loader_' THEN
        SET NEW.stock_taken = 0;
    ELSE
        SET NEW.stock_taken = IF(NEW.product_id IS NULL, 0, NEW.quantity);
        IF NEW.stock_taken <> 0 THEN
            UPDATE Products SET stock = stock - NEW.stock_taken WHERE product_id = NEW.product_id;
        END IF;
        IF aethermart_capture_by_triggers() THEN
            INSERT INTO order_sync_queue (entity_key, operation, source_table) VALUES (NEW.order_id, 'update', 'Order_Items');
        END IF;
    END IF;
END;

-- ---- capture ------------------------------------------------------------------------

CREATE OR REPLACE TRIGGER trg_customers_sync_insert AFTER INSERT ON Customers FOR EACH ROW
BEGIN
    IF LEFT(USER(), 18) <> 'aethermart_loader_' THEN
        IF aethermart_capture_by_triggers() THEN
            INSERT INTO customer_sync_queue (entity_key, operation, source_table) VALUES (NEW.customer_id, 'insert', 'Customers');
        END IF;
    END IF;
END;

CREATE OR REPLACE TRIGGER trg_customers_sync_update AFTER UPDATE ON Customers FOR EACH ROW
BEGIN
    IF aethermart_capture_by_triggers() THEN
        INSERT INTO customer_sync_queue (entity_key, operation, source_table) VALUES (NEW.customer_id, 'update', 'Customers');
        IF NEW.customer_id <> OLD.customer_id THEN
            INSERT INTO customer_sync_queue (entity_key, operation, source_table) VALUES (OLD.customer_id, 'delete', 'Customers');
        END IF;
    END IF;
END;

CREATE OR REPLACE TRIGGER trg_customers_sync_delete AFTER DELETE ON Customers FOR EACH ROW
BEGIN
    IF aethermart_capture_by_triggers() THEN
        INSERT INTO customer_sync_queue (entity_key, operation, source_table) VALUES (OLD.customer_id, 'delete', 'Customers');
    END IF;
END;

CREATE OR REPLACE TRIGGER trg_addresses_sync_insert AFTER INSERT ON Customer_Addresses FOR EACH ROW
BEGIN
    IF LEFT(USER(), 18) <> 'aethermart_loader_' THEN
        IF aethermart_capture_by_triggers() THEN
            INSERT INTO customer_sync_queue (entity_key, operation, source_table) VALUES (NEW.customer_id, 'insert', 'Customer_Addresses');
        END IF;
    END IF;
END;

CREATE OR REPLACE TRIGGER trg_addresses_sync_update AFTER UPDATE ON Customer_Addresses FOR EACH ROW
BEGIN
    IF aethermart_capture_by_triggers() THEN
        INSERT INTO customer_sync_queue (entity_key, operation, source_table) VALUES (NEW.customer_id, 'update', 'Customer_Addresses');
        IF NEW.customer_id <> OLD.customer_id THEN
            INSERT INTO customer_sync_queue (entity_key, operation, source_table) VALUES (OLD.customer_id, 'update', 'Customer_Addresses');
        END IF;
    END IF;
END;

CREATE OR REPLACE TRIGGER trg_addresses_sync_delete AFTER DELETE ON Customer_Addresses FOR EACH ROW
BEGIN
    IF aethermart_capture_by_triggers() THEN
        INSERT INTO customer_sync_queue (entity_key, operation, source_table) VALUES (OLD.customer_id, 'delete', 'Customer_Addresses');
    END IF;
END;

CREATE OR REPLACE TRIGGER trg_orders_sync_insert AFTER INSERT ON Orders FOR EACH ROW
BEGIN
    IF LEFT(USER(), 18) <> 'aethermart_loader_' THEN
        IF aethermart_capture_by_triggers() THEN
            INSERT INTO order_sync_queue (entity_key, operation, source_table) VALUES (NEW.order_id, 'insert', 'Orders');
            INSERT INTO customer_sync_queue (entity_key, operation, source_table) VALUES (NEW.customer_id, 'update', 'Orders');
        END IF;
    END IF;
END;

CREATE OR REPLACE TRIGGER trg_orders_sync_update AFTER UPDATE ON Orders FOR EACH ROW
BEGIN
    IF aethermart_capture_by_triggers() THEN
        INSERT INTO order_sync_queue (entity_key, operation, source_table) VALUES (NEW.order_id, 'update', 'Orders');
        IF NEW.order_id <> OLD.order_id THEN
            INSERT INTO order_sync_queue (entity_key, operation, source_table) VALUES (OLD.order_id, 'delete', 'Orders');
        END IF;
        -- the summary counts totals and statuses (customer_id cannot change: a guard refuses it)
        IF NOT (NEW.status <=> OLD.status AND NEW.total <=> OLD.total AND NEW.placed_at <=> OLD.placed_at) THEN
            INSERT INTO customer_sync_queue (entity_key, operation, source_table) VALUES (NEW.customer_id, 'update', 'Orders');
        END IF;
    END IF;
END;

CREATE OR REPLACE TRIGGER trg_orders_sync_delete AFTER DELETE ON Orders FOR EACH ROW
BEGIN
    IF aethermart_capture_by_triggers() THEN
        INSERT INTO order_sync_queue (entity_key, operation, source_table) VALUES (OLD.order_id, 'delete', 'Orders');
        INSERT INTO customer_sync_queue (entity_key, operation, source_table) VALUES (OLD.customer_id, 'update', 'Orders');
    END IF;
END;

CREATE OR REPLACE TRIGGER trg_products_sync_insert AFTER INSERT ON Products FOR EACH ROW
BEGIN
    IF LEFT(USER(), 18) <> 'aethermart_loader_' THEN
        IF aethermart_capture_by_triggers() THEN
            INSERT INTO product_sync_queue (entity_key, operation, source_table) VALUES (NEW.product_id, 'insert', 'Products');
        END IF;
    END IF;
END;

-- Order documents embed the product's name: a rename re-syncs the orders that sold it.
CREATE OR REPLACE TRIGGER trg_products_sync_update AFTER UPDATE ON Products FOR EACH ROW
BEGIN
    IF aethermart_capture_by_triggers() THEN
        INSERT INTO product_sync_queue (entity_key, operation, source_table) VALUES (NEW.product_id, 'update', 'Products');
        IF NEW.product_id <> OLD.product_id THEN
            INSERT INTO product_sync_queue (entity_key, operation, source_table) VALUES (OLD.product_id, 'delete', 'Products');
        END IF;
        IF NOT (NEW.name <=> OLD.name) THEN
            INSERT INTO order_sync_queue (entity_key, operation, source_table)
            SELECT DISTINCT order_id, 'update', 'Products' FROM Order_Items WHERE product_id = NEW.product_id;
        END IF;
    END IF;
END;

CREATE OR REPLACE TRIGGER trg_products_sync_delete AFTER DELETE ON Products FOR EACH ROW
BEGIN
    IF aethermart_capture_by_triggers() THEN
        INSERT INTO product_sync_queue (entity_key, operation, source_table) VALUES (OLD.product_id, 'delete', 'Products');
    END IF;
END;

CREATE OR REPLACE TRIGGER trg_services_sync_insert AFTER INSERT ON Services FOR EACH ROW
BEGIN
    IF LEFT(USER(), 18) <> 'aethermart_loader_' THEN
        IF aethermart_capture_by_triggers() THEN
            INSERT INTO service_sync_queue (entity_key, operation, source_table) VALUES (NEW.service_id, 'insert', 'Services');
        END IF;
    END IF;
END;

CREATE OR REPLACE TRIGGER trg_services_sync_update AFTER UPDATE ON Services FOR EACH ROW
BEGIN
    IF aethermart_capture_by_triggers() THEN
        INSERT INTO service_sync_queue (entity_key, operation, source_table) VALUES (NEW.service_id, 'update', 'Services');
        IF NEW.service_id <> OLD.service_id THEN
            INSERT INTO service_sync_queue (entity_key, operation, source_table) VALUES (OLD.service_id, 'delete', 'Services');
        END IF;
        IF NOT (NEW.name <=> OLD.name) THEN
            INSERT INTO order_sync_queue (entity_key, operation, source_table)
            SELECT DISTINCT order_id, 'update', 'Services' FROM Order_Items WHERE service_id = NEW.service_id;
        END IF;
    END IF;
END;

CREATE OR REPLACE TRIGGER trg_services_sync_delete AFTER DELETE ON Services FOR EACH ROW
BEGIN
    IF aethermart_capture_by_triggers() THEN
        INSERT INTO service_sync_queue (entity_key, operation, source_table) VALUES (OLD.service_id, 'delete', 'Services');
    END IF;
END;

-- Products and services carry their category path: renaming or moving a category re-syncs
-- everything in its subtree. (New or deleted categories change no existing document.)
CREATE OR REPLACE TRIGGER trg_categories_sync_update AFTER UPDATE ON Categories FOR EACH ROW
BEGIN
    IF aethermart_capture_by_triggers() THEN
        IF NOT (NEW.name <=> OLD.name AND NEW.parent_id <=> OLD.parent_id) THEN
            INSERT INTO product_sync_queue (entity_key, operation, source_table)
            WITH RECURSIVE subtree (id, depth) AS (
                SELECT NEW.category_id, 1
                UNION ALL
                SELECT c.category_id, s.depth + 1 FROM Categories c JOIN subtree s ON c.parent_id = s.id
                WHERE s.depth < 64)
            SELECT p.product_id, 'update', 'Categories' FROM Products p JOIN subtree s ON p.category_id = s.id;
            INSERT INTO service_sync_queue (entity_key, operation, source_table)
            WITH RECURSIVE subtree (id, depth) AS (
                SELECT NEW.category_id, 1
                UNION ALL
                SELECT c.category_id, s.depth + 1 FROM Categories c JOIN subtree s ON c.parent_id = s.id
                WHERE s.depth < 64)
            SELECT v.service_id, 'update', 'Categories' FROM Services v JOIN subtree s ON v.category_id = s.id;
        END IF;
    END IF;
END;
