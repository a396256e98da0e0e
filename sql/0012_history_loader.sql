-- Loading history is a privilege of an account, not a variable (issue 16, finding 1).
--
-- Before this version the triggers skipped taking stock and capturing changes when the session
-- had set @aethermart_loading_history = 1, which any session can do. Now an insert counts as
-- history only when the session's login is a history loader: an account whose name starts with
-- `aethermart_loader_`. USER() is the login the server authenticated; no session can change it,
-- and only an account with CREATE USER (the administrator) can create such a name. The data
-- generator creates one for each load (SELECT and INSERT on the platform's database, nothing
-- else) and drops it afterwards. Updates and deletes are always captured: a history load only
-- inserts, and a loader holds no other privilege.
--
-- Each order line records the stock it took (`stock_taken`), so cancelling an order puts back
-- exactly that: nothing for a line loaded as history (its sale is already inside the stock the
-- catalogue was loaded with), the quantity for a line sold live. Lines written before this
-- version have no record (NULL) and restock their quantity, as before.
--
-- @aethermart_loading_history is read by nothing from here on; the procedures of version 10
-- still clear it for their own work and restore it, which is harmless.

ALTER TABLE Order_Items ADD COLUMN stock_taken INT NULL
    COMMENT 'units taken from Products.stock when the line was written (0: history or a service)';

-- One trigger per inserted line does all of a new line's work (each trigger invocation costs
-- the server a few microseconds per row, and lines are most of what a history load writes):
-- it records and takes the stock, and queues the order for the sync. A BEFORE trigger may
-- change the row it inserts, so `stock_taken` is the trigger's word, whatever the INSERT said;
-- if the insert then fails, the statement's rollback takes the stock update and the queued
-- key with it. The CHECK (stock >= 0) on Products still refuses an oversold line.
DROP TRIGGER IF EXISTS trg_order_items_after_insert;

CREATE OR REPLACE TRIGGER trg_order_items_before_insert BEFORE INSERT ON Order_Items FOR EACH ROW
BEGIN
    IF LEFT(USER(), 18) = 'aethermart_loader_' THEN
        SET NEW.stock_taken = 0;
    ELSE
        SET NEW.stock_taken = IF(NEW.product_id IS NULL, 0, NEW.quantity);
        IF NEW.stock_taken <> 0 THEN
            UPDATE Products SET stock = stock - NEW.stock_taken WHERE product_id = NEW.product_id;
        END IF;
        INSERT INTO order_sync_queue (entity_key, operation, source_table) VALUES (NEW.order_id, 'update', 'Order_Items');
    END IF;
END;

-- What was sold, and what it took, cannot be rewritten.
CREATE OR REPLACE TRIGGER trg_order_items_immutable BEFORE UPDATE ON Order_Items FOR EACH ROW
BEGIN
    IF NOT (NEW.order_id <=> OLD.order_id AND NEW.product_id <=> OLD.product_id
            AND NEW.service_id <=> OLD.service_id AND NEW.quantity <=> OLD.quantity
            AND NEW.unit_price <=> OLD.unit_price AND NEW.stock_taken <=> OLD.stock_taken) THEN
        SIGNAL SQLSTATE '45000' SET MYSQL_ERRNO = 30013,
            MESSAGE_TEXT = 'order lines are immutable: cancel the order and place a new one';
    END IF;
END;

-- Cancelling puts back exactly what the order's lines took and frees the consultants' slots.
CREATE OR REPLACE TRIGGER trg_orders_restock_on_cancel AFTER UPDATE ON Orders FOR EACH ROW
BEGIN
    IF NEW.status = 'cancelled' AND OLD.status <> 'cancelled' THEN
        UPDATE Products p
        JOIN (SELECT product_id, SUM(COALESCE(stock_taken, quantity)) AS qty
              FROM Order_Items
              WHERE order_id = NEW.order_id AND product_id IS NOT NULL
              GROUP BY product_id) AS taken ON taken.product_id = p.product_id
        SET p.stock = p.stock + taken.qty
        WHERE taken.qty <> 0;
        DELETE b FROM Service_Bookings b
        JOIN Order_Items i ON i.order_item_id = b.order_item_id
        WHERE i.order_id = NEW.order_id;
    END IF;
END;

-- ---- capture: inserts by a history loader are not queued; everything else always is --------

CREATE OR REPLACE TRIGGER trg_customers_sync_insert AFTER INSERT ON Customers FOR EACH ROW
BEGIN
    IF LEFT(USER(), 18) <> 'aethermart_loader_' THEN
        INSERT INTO customer_sync_queue (entity_key, operation, source_table) VALUES (NEW.customer_id, 'insert', 'Customers');
    END IF;
END;

CREATE OR REPLACE TRIGGER trg_customers_sync_update AFTER UPDATE ON Customers FOR EACH ROW
BEGIN
    INSERT INTO customer_sync_queue (entity_key, operation, source_table) VALUES (NEW.customer_id, 'update', 'Customers');
    IF NEW.customer_id <> OLD.customer_id THEN
        INSERT INTO customer_sync_queue (entity_key, operation, source_table) VALUES (OLD.customer_id, 'delete', 'Customers');
    END IF;
END;

CREATE OR REPLACE TRIGGER trg_customers_sync_delete AFTER DELETE ON Customers FOR EACH ROW
BEGIN
    INSERT INTO customer_sync_queue (entity_key, operation, source_table) VALUES (OLD.customer_id, 'delete', 'Customers');
END;

CREATE OR REPLACE TRIGGER trg_addresses_sync_insert AFTER INSERT ON Customer_Addresses FOR EACH ROW
BEGIN
    IF LEFT(USER(), 18) <> 'aethermart_loader_' THEN
        INSERT INTO customer_sync_queue (entity_key, operation, source_table) VALUES (NEW.customer_id, 'insert', 'Customer_Addresses');
    END IF;
END;

CREATE OR REPLACE TRIGGER trg_addresses_sync_update AFTER UPDATE ON Customer_Addresses FOR EACH ROW
BEGIN
    INSERT INTO customer_sync_queue (entity_key, operation, source_table) VALUES (NEW.customer_id, 'update', 'Customer_Addresses');
    IF NEW.customer_id <> OLD.customer_id THEN
        INSERT INTO customer_sync_queue (entity_key, operation, source_table) VALUES (OLD.customer_id, 'update', 'Customer_Addresses');
    END IF;
END;

CREATE OR REPLACE TRIGGER trg_addresses_sync_delete AFTER DELETE ON Customer_Addresses FOR EACH ROW
BEGIN
    INSERT INTO customer_sync_queue (entity_key, operation, source_table) VALUES (OLD.customer_id, 'delete', 'Customer_Addresses');
END;

CREATE OR REPLACE TRIGGER trg_orders_sync_insert AFTER INSERT ON Orders FOR EACH ROW
BEGIN
    IF LEFT(USER(), 18) <> 'aethermart_loader_' THEN
        INSERT INTO order_sync_queue (entity_key, operation, source_table) VALUES (NEW.order_id, 'insert', 'Orders');
        INSERT INTO customer_sync_queue (entity_key, operation, source_table) VALUES (NEW.customer_id, 'update', 'Orders');
    END IF;
END;

CREATE OR REPLACE TRIGGER trg_orders_sync_update AFTER UPDATE ON Orders FOR EACH ROW
BEGIN
    INSERT INTO order_sync_queue (entity_key, operation, source_table) VALUES (NEW.order_id, 'update', 'Orders');
    IF NEW.order_id <> OLD.order_id THEN
        INSERT INTO order_sync_queue (entity_key, operation, source_table) VALUES (OLD.order_id, 'delete', 'Orders');
    END IF;
    -- the summary counts totals and statuses (customer_id cannot change: a guard refuses it)
    IF NOT (NEW.status <=> OLD.status AND NEW.total <=> OLD.total AND NEW.placed_at <=> OLD.placed_at) THEN
        INSERT INTO customer_sync_queue (entity_key, operation, source_table) VALUES (NEW.customer_id, 'update', 'Orders');
    END IF;
END;

CREATE OR REPLACE TRIGGER trg_orders_sync_delete AFTER DELETE ON Orders FOR EACH ROW
BEGIN
    INSERT INTO order_sync_queue (entity_key, operation, source_table) VALUES (OLD.order_id, 'delete', 'Orders');
    INSERT INTO customer_sync_queue (entity_key, operation, source_table) VALUES (OLD.customer_id, 'update', 'Orders');
END;

CREATE OR REPLACE TRIGGER trg_products_sync_insert AFTER INSERT ON Products FOR EACH ROW
BEGIN
    IF LEFT(USER(), 18) <> 'aethermart_loader_' THEN
        INSERT INTO product_sync_queue (entity_key, operation, source_table) VALUES (NEW.product_id, 'insert', 'Products');
    END IF;
END;

-- Order documents embed the product's name: a rename re-syncs the orders that sold it.
CREATE OR REPLACE TRIGGER trg_products_sync_update AFTER UPDATE ON Products FOR EACH ROW
BEGIN
    INSERT INTO product_sync_queue (entity_key, operation, source_table) VALUES (NEW.product_id, 'update', 'Products');
    IF NEW.product_id <> OLD.product_id THEN
        INSERT INTO product_sync_queue (entity_key, operation, source_table) VALUES (OLD.product_id, 'delete', 'Products');
    END IF;
    IF NOT (NEW.name <=> OLD.name) THEN
        INSERT INTO order_sync_queue (entity_key, operation, source_table)
        SELECT DISTINCT order_id, 'update', 'Products' FROM Order_Items WHERE product_id = NEW.product_id;
    END IF;
END;

CREATE OR REPLACE TRIGGER trg_products_sync_delete AFTER DELETE ON Products FOR EACH ROW
BEGIN
    INSERT INTO product_sync_queue (entity_key, operation, source_table) VALUES (OLD.product_id, 'delete', 'Products');
END;

CREATE OR REPLACE TRIGGER trg_services_sync_insert AFTER INSERT ON Services FOR EACH ROW
BEGIN
    IF LEFT(USER(), 18) <> 'aethermart_loader_' THEN
        INSERT INTO service_sync_queue (entity_key, operation, source_table) VALUES (NEW.service_id, 'insert', 'Services');
    END IF;
END;

CREATE OR REPLACE TRIGGER trg_services_sync_update AFTER UPDATE ON Services FOR EACH ROW
BEGIN
    INSERT INTO service_sync_queue (entity_key, operation, source_table) VALUES (NEW.service_id, 'update', 'Services');
    IF NEW.service_id <> OLD.service_id THEN
        INSERT INTO service_sync_queue (entity_key, operation, source_table) VALUES (OLD.service_id, 'delete', 'Services');
    END IF;
    IF NOT (NEW.name <=> OLD.name) THEN
        INSERT INTO order_sync_queue (entity_key, operation, source_table)
        SELECT DISTINCT order_id, 'update', 'Services' FROM Order_Items WHERE service_id = NEW.service_id;
    END IF;
END;

CREATE OR REPLACE TRIGGER trg_services_sync_delete AFTER DELETE ON Services FOR EACH ROW
BEGIN
    INSERT INTO service_sync_queue (entity_key, operation, source_table) VALUES (OLD.service_id, 'delete', 'Services');
END;

-- Products and services carry their category path: renaming or moving a category re-syncs
-- everything in its subtree. (New or deleted categories change no existing document.)
CREATE OR REPLACE TRIGGER trg_categories_sync_update AFTER UPDATE ON Categories FOR EACH ROW
BEGIN
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
END;
