-- Real-time sync, capture side (milestone 6): every change to a synced table appends the key of
-- the document it affects to that document's queue, in the same transaction as the change (a
-- rolled-back change leaves nothing queued). The sync worker claims queue rows with
-- SELECT ... FOR UPDATE SKIP LOCKED, re-reads the current rows and writes the documents, then
-- deletes the rows it applied. A change that keeps failing moves to sync_dead_letters.
--
-- One queue per document collection:
--   customer_sync_queue -> customer_profiles  (Customers, Customer_Addresses, Orders)
--   product_sync_queue  -> products           (Products, Categories)
--   service_sync_queue  -> services           (Services, Categories)
--   order_sync_queue    -> orders             (Orders, Order_Items, Products/Services names)
-- A bulk load of history (the data generator sets @aethermart_loading_history = 1 on its own
-- connections) is not captured: like a restore, it is followed by the initial migration, which
-- copies those rows; queuing them only to drop them again would slow the load by a third.
-- A changed primary key queues the old key too (its document goes). TRUNCATE fires no triggers.
-- Foreign-key cascades fire no triggers: a customer's addresses vanish with the customer, whose
-- own trigger queues the profile; an order's lines vanish with the order, whose trigger queues it.

CREATE TABLE customer_sync_queue (
    queue_id      BIGINT UNSIGNED NOT NULL AUTO_INCREMENT,
    entity_key    BIGINT UNSIGNED NOT NULL,
    operation     ENUM('insert', 'update', 'delete') NOT NULL,
    source_table  VARCHAR(32) NOT NULL,
    changed_at    DATETIME(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6),
    attempts      INT UNSIGNED NOT NULL DEFAULT 0,
    retry_at      DATETIME(6) NULL,
    last_error    TEXT NULL,
    -- Only the primary key: workers claim and delete by queue_id, and every extra index
    -- would cost each captured change an index insert and each applied one an index delete.
    PRIMARY KEY (queue_id)
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_unicode_ci;

CREATE TABLE product_sync_queue LIKE customer_sync_queue;
CREATE TABLE service_sync_queue LIKE customer_sync_queue;
CREATE TABLE order_sync_queue LIKE customer_sync_queue;

-- Changes that failed `attempts` times (e.g. a document MongoDB's validator refuses). They no
-- longer block anything; fix the data, then re-queue them and delete the dead letters in one
-- transaction (INSERT INTO <queue> ... SELECT ...; DELETE FROM sync_dead_letters WHERE ...).
CREATE TABLE sync_dead_letters (
    dead_letter_id  BIGINT UNSIGNED NOT NULL AUTO_INCREMENT,
    queue           VARCHAR(32) NOT NULL,
    entity_key      BIGINT UNSIGNED NOT NULL,
    operation       VARCHAR(8) NOT NULL,
    source_table    VARCHAR(32) NOT NULL,
    changed_at      DATETIME(6) NOT NULL,
    attempts        INT UNSIGNED NOT NULL,
    error           TEXT NOT NULL,
    dead_at         DATETIME(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6),
    PRIMARY KEY (dead_letter_id),
    KEY ix_sync_dead_letters_key (queue, entity_key)
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_unicode_ci;

-- ---- customers: profile = customer + addresses + order summary -----------------------------

CREATE TRIGGER trg_customers_sync_insert AFTER INSERT ON Customers FOR EACH ROW
BEGIN
    IF NOT (@aethermart_loading_history <=> 1) THEN
        INSERT INTO customer_sync_queue (entity_key, operation, source_table) VALUES (NEW.customer_id, 'insert', 'Customers');
    END IF;
END;

CREATE TRIGGER trg_customers_sync_update AFTER UPDATE ON Customers FOR EACH ROW
BEGIN
    IF NOT (@aethermart_loading_history <=> 1) THEN
        INSERT INTO customer_sync_queue (entity_key, operation, source_table) VALUES (NEW.customer_id, 'update', 'Customers');
        IF NEW.customer_id <> OLD.customer_id THEN
            INSERT INTO customer_sync_queue (entity_key, operation, source_table) VALUES (OLD.customer_id, 'delete', 'Customers');
        END IF;
    END IF;
END;

CREATE TRIGGER trg_customers_sync_delete AFTER DELETE ON Customers FOR EACH ROW
BEGIN
    IF NOT (@aethermart_loading_history <=> 1) THEN
        INSERT INTO customer_sync_queue (entity_key, operation, source_table) VALUES (OLD.customer_id, 'delete', 'Customers');
    END IF;
END;

CREATE TRIGGER trg_addresses_sync_insert AFTER INSERT ON Customer_Addresses FOR EACH ROW
BEGIN
    IF NOT (@aethermart_loading_history <=> 1) THEN
        INSERT INTO customer_sync_queue (entity_key, operation, source_table) VALUES (NEW.customer_id, 'insert', 'Customer_Addresses');
    END IF;
END;

CREATE TRIGGER trg_addresses_sync_update AFTER UPDATE ON Customer_Addresses FOR EACH ROW
BEGIN
    IF NOT (@aethermart_loading_history <=> 1) THEN
        INSERT INTO customer_sync_queue (entity_key, operation, source_table) VALUES (NEW.customer_id, 'update', 'Customer_Addresses');
        IF NEW.customer_id <> OLD.customer_id THEN
            INSERT INTO customer_sync_queue (entity_key, operation, source_table) VALUES (OLD.customer_id, 'update', 'Customer_Addresses');
        END IF;
    END IF;
END;

CREATE TRIGGER trg_addresses_sync_delete AFTER DELETE ON Customer_Addresses FOR EACH ROW
BEGIN
    IF NOT (@aethermart_loading_history <=> 1) THEN
        INSERT INTO customer_sync_queue (entity_key, operation, source_table) VALUES (OLD.customer_id, 'delete', 'Customer_Addresses');
    END IF;
END;

-- ---- orders (and the customer's order summary) ---------------------------------------------

CREATE TRIGGER trg_orders_sync_insert AFTER INSERT ON Orders FOR EACH ROW
BEGIN
    IF NOT (@aethermart_loading_history <=> 1) THEN
        INSERT INTO order_sync_queue (entity_key, operation, source_table) VALUES (NEW.order_id, 'insert', 'Orders');
        INSERT INTO customer_sync_queue (entity_key, operation, source_table) VALUES (NEW.customer_id, 'update', 'Orders');
    END IF;
END;

CREATE TRIGGER trg_orders_sync_update AFTER UPDATE ON Orders FOR EACH ROW
BEGIN
    IF NOT (@aethermart_loading_history <=> 1) THEN
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

CREATE TRIGGER trg_orders_sync_delete AFTER DELETE ON Orders FOR EACH ROW
BEGIN
    IF NOT (@aethermart_loading_history <=> 1) THEN
        INSERT INTO order_sync_queue (entity_key, operation, source_table) VALUES (OLD.order_id, 'delete', 'Orders');
        INSERT INTO customer_sync_queue (entity_key, operation, source_table) VALUES (OLD.customer_id, 'update', 'Orders');
    END IF;
END;

-- Lines are immutable and only disappear with their order, so only inserts need capturing.
-- One AFTER INSERT trigger does both jobs of a new line (taking stock, from 0002, and capture):
-- each trigger invocation costs the server a few microseconds per row even when it does
-- nothing, and order lines are most of the rows a history load writes.
DROP TRIGGER trg_order_items_take_stock;

CREATE TRIGGER trg_order_items_after_insert AFTER INSERT ON Order_Items FOR EACH ROW
BEGIN
    IF NOT (@aethermart_loading_history <=> 1) THEN
        IF NEW.product_id IS NOT NULL THEN
            UPDATE Products SET stock = stock - NEW.quantity WHERE product_id = NEW.product_id;
        END IF;
        INSERT INTO order_sync_queue (entity_key, operation, source_table) VALUES (NEW.order_id, 'update', 'Order_Items');
    END IF;
END;

-- ---- catalogue -----------------------------------------------------------------------------

CREATE TRIGGER trg_products_sync_insert AFTER INSERT ON Products FOR EACH ROW
BEGIN
    IF NOT (@aethermart_loading_history <=> 1) THEN
        INSERT INTO product_sync_queue (entity_key, operation, source_table) VALUES (NEW.product_id, 'insert', 'Products');
    END IF;
END;

-- Order documents embed the product's name: a rename re-syncs the orders that sold it.
CREATE TRIGGER trg_products_sync_update AFTER UPDATE ON Products FOR EACH ROW
BEGIN
    IF NOT (@aethermart_loading_history <=> 1) THEN
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

CREATE TRIGGER trg_products_sync_delete AFTER DELETE ON Products FOR EACH ROW
BEGIN
    IF NOT (@aethermart_loading_history <=> 1) THEN
        INSERT INTO product_sync_queue (entity_key, operation, source_table) VALUES (OLD.product_id, 'delete', 'Products');
    END IF;
END;

CREATE TRIGGER trg_services_sync_insert AFTER INSERT ON Services FOR EACH ROW
BEGIN
    IF NOT (@aethermart_loading_history <=> 1) THEN
        INSERT INTO service_sync_queue (entity_key, operation, source_table) VALUES (NEW.service_id, 'insert', 'Services');
    END IF;
END;

CREATE TRIGGER trg_services_sync_update AFTER UPDATE ON Services FOR EACH ROW
BEGIN
    IF NOT (@aethermart_loading_history <=> 1) THEN
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

CREATE TRIGGER trg_services_sync_delete AFTER DELETE ON Services FOR EACH ROW
BEGIN
    IF NOT (@aethermart_loading_history <=> 1) THEN
        INSERT INTO service_sync_queue (entity_key, operation, source_table) VALUES (OLD.service_id, 'delete', 'Services');
    END IF;
END;

-- Products and services carry their category path: renaming or moving a category re-syncs
-- everything in its subtree. (New or deleted categories change no existing document.)
CREATE TRIGGER trg_categories_sync_update AFTER UPDATE ON Categories FOR EACH ROW
BEGIN
    IF NOT (@aethermart_loading_history <=> 1) THEN
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
