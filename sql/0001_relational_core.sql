-- AetherMart relational core (milestones 1 and 4): the 3NF schema.
--
-- Conventions: BIGINT UNSIGNED surrogate keys, DECIMAL money, utf8mb4 text, DATETIME(6) in UTC,
-- created_at/updated_at on every mutable entity (updated_at maintained by ON UPDATE).
-- Codes (status, kind, country, slug) are checked case-sensitively with BINARY: the columns keep
-- the default case-insensitive collation, so SKUs and e-mails are unique regardless of case.
-- ON DELETE: a customer's addresses go with the customer (CASCADE); anything with sales history
-- (customers with orders, sold products and services, categories in use) cannot be deleted
-- (RESTRICT): deactivate it instead (is_active = FALSE).

CREATE TABLE Customers (
    customer_id  BIGINT UNSIGNED NOT NULL AUTO_INCREMENT,
    first_name   VARCHAR(100) NOT NULL,
    last_name    VARCHAR(100) NOT NULL,
    email        VARCHAR(254) NOT NULL,
    phone        VARCHAR(32) NULL,
    created_at   DATETIME(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6),
    updated_at   DATETIME(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6) ON UPDATE CURRENT_TIMESTAMP(6),
    PRIMARY KEY (customer_id),
    UNIQUE KEY uq_customers_email (email),
    CONSTRAINT ck_customers_email CHECK (email REGEXP '^[^@[:space:]]+@[^@[:space:]]+[.][^@[:space:]]+$'),
    CONSTRAINT ck_customers_names CHECK (TRIM(first_name) <> '' AND TRIM(last_name) <> '')
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_unicode_ci;

CREATE TABLE Customer_Addresses (
    address_id   BIGINT UNSIGNED NOT NULL AUTO_INCREMENT,
    customer_id  BIGINT UNSIGNED NOT NULL,
    kind         VARCHAR(16) NOT NULL,
    line1        VARCHAR(200) NOT NULL,
    line2        VARCHAR(200) NULL,
    city         VARCHAR(100) NOT NULL,
    region       VARCHAR(100) NULL,
    postal_code  VARCHAR(20) NOT NULL,
    country      CHAR(2) NOT NULL,
    is_default   BOOLEAN NOT NULL DEFAULT FALSE,
    -- 1 for the default address, NULL otherwise: UNIQUE allows many NULLs, so at most one default
    -- address per customer and kind.
    default_flag TINYINT AS (IF(is_default, 1, NULL)) PERSISTENT,
    created_at   DATETIME(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6),
    updated_at   DATETIME(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6) ON UPDATE CURRENT_TIMESTAMP(6),
    PRIMARY KEY (address_id),
    UNIQUE KEY uq_addresses_one_default (customer_id, kind, default_flag),
    CONSTRAINT fk_addresses_customer FOREIGN KEY (customer_id) REFERENCES Customers (customer_id) ON DELETE CASCADE,
    CONSTRAINT ck_addresses_kind CHECK (BINARY kind IN ('shipping', 'billing')),
    CONSTRAINT ck_addresses_country CHECK (BINARY country REGEXP '^[A-Z]{2}$'),
    CONSTRAINT ck_addresses_required CHECK (TRIM(line1) <> '' AND TRIM(city) <> '' AND TRIM(postal_code) <> '')
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_unicode_ci;

CREATE TABLE Categories (
    category_id  BIGINT UNSIGNED NOT NULL AUTO_INCREMENT,
    parent_id    BIGINT UNSIGNED NULL,
    name         VARCHAR(100) NOT NULL,
    slug         VARCHAR(120) NOT NULL,
    created_at   DATETIME(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6),
    updated_at   DATETIME(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6) ON UPDATE CURRENT_TIMESTAMP(6),
    PRIMARY KEY (category_id),
    UNIQUE KEY uq_categories_slug (slug),
    UNIQUE KEY uq_categories_sibling_name (parent_id, name),
    CONSTRAINT fk_categories_parent FOREIGN KEY (parent_id) REFERENCES Categories (category_id) ON DELETE RESTRICT,
    CONSTRAINT ck_categories_slug CHECK (BINARY slug REGEXP '^[a-z0-9]+(-[a-z0-9]+)*$'),
    CONSTRAINT ck_categories_name CHECK (TRIM(name) <> '')
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_unicode_ci;

CREATE TABLE Products (
    product_id   BIGINT UNSIGNED NOT NULL AUTO_INCREMENT,
    sku          VARCHAR(64) NOT NULL,
    name         VARCHAR(200) NOT NULL,
    description  TEXT NOT NULL DEFAULT '',
    category_id  BIGINT UNSIGNED NOT NULL,
    price        DECIMAL(12, 2) NOT NULL,
    stock        INT NOT NULL DEFAULT 0,
    is_active    BOOLEAN NOT NULL DEFAULT TRUE,
    created_at   DATETIME(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6),
    updated_at   DATETIME(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6) ON UPDATE CURRENT_TIMESTAMP(6),
    PRIMARY KEY (product_id),
    UNIQUE KEY uq_products_sku (sku),
    -- catalogue by category and price
    KEY ix_products_category_price (category_id, price),
    -- low-stock report
    KEY ix_products_active_stock (is_active, stock),
    CONSTRAINT fk_products_category FOREIGN KEY (category_id) REFERENCES Categories (category_id) ON DELETE RESTRICT,
    CONSTRAINT ck_products_price CHECK (price >= 0),
    CONSTRAINT ck_products_stock CHECK (stock >= 0),
    CONSTRAINT ck_products_name CHECK (TRIM(name) <> '' AND TRIM(sku) <> '')
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_unicode_ci;

-- Milestone 4: consultations sold beside physical products.
CREATE TABLE Services (
    service_id        BIGINT UNSIGNED NOT NULL AUTO_INCREMENT,
    code              VARCHAR(64) NOT NULL,
    name              VARCHAR(200) NOT NULL,
    description       TEXT NOT NULL DEFAULT '',
    category_id       BIGINT UNSIGNED NOT NULL,
    duration_minutes  INT NOT NULL,
    price             DECIMAL(12, 2) NOT NULL,
    consultant        VARCHAR(100) NOT NULL,
    is_active         BOOLEAN NOT NULL DEFAULT TRUE,
    created_at        DATETIME(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6),
    updated_at        DATETIME(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6) ON UPDATE CURRENT_TIMESTAMP(6),
    PRIMARY KEY (service_id),
    UNIQUE KEY uq_services_code (code),
    KEY ix_services_category_price (category_id, price),
    -- sp_PlaceOrder locks a consultant's services to serialise bookings
    KEY ix_services_consultant (consultant),
    CONSTRAINT fk_services_category FOREIGN KEY (category_id) REFERENCES Categories (category_id) ON DELETE RESTRICT,
    CONSTRAINT ck_services_price CHECK (price >= 0),
    CONSTRAINT ck_services_duration CHECK (duration_minutes > 0 AND duration_minutes <= 1440),
    CONSTRAINT ck_services_required CHECK (TRIM(name) <> '' AND TRIM(code) <> '' AND TRIM(consultant) <> '')
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_unicode_ci;

CREATE TABLE Orders (
    order_id     BIGINT UNSIGNED NOT NULL AUTO_INCREMENT,
    customer_id  BIGINT UNSIGNED NOT NULL,
    status       VARCHAR(16) NOT NULL DEFAULT 'pending',
    total        DECIMAL(14, 2) NOT NULL DEFAULT 0,
    placed_at    DATETIME(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6),
    updated_at   DATETIME(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6) ON UPDATE CURRENT_TIMESTAMP(6),
    PRIMARY KEY (order_id),
    -- a customer's order history, newest first
    KEY ix_orders_customer_placed (customer_id, placed_at),
    -- sales per period
    KEY ix_orders_placed (placed_at),
    CONSTRAINT fk_orders_customer FOREIGN KEY (customer_id) REFERENCES Customers (customer_id) ON DELETE RESTRICT,
    CONSTRAINT ck_orders_status CHECK (BINARY status IN ('pending', 'paid', 'shipped', 'delivered', 'cancelled', 'returned')),
    CONSTRAINT ck_orders_total CHECK (total >= 0)
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_unicode_ci;

CREATE TABLE Order_Items (
    order_item_id  BIGINT UNSIGNED NOT NULL AUTO_INCREMENT,
    order_id       BIGINT UNSIGNED NOT NULL,
    product_id     BIGINT UNSIGNED NULL,
    service_id     BIGINT UNSIGNED NULL,
    quantity       INT NOT NULL,
    -- the price when the order was placed, not the current list price
    unit_price     DECIMAL(12, 2) NOT NULL,
    line_total     DECIMAL(14, 2) AS (quantity * unit_price) PERSISTENT,
    PRIMARY KEY (order_item_id),
    KEY ix_order_items_order (order_id),
    KEY ix_order_items_product (product_id),
    KEY ix_order_items_service (service_id),
    CONSTRAINT fk_order_items_order FOREIGN KEY (order_id) REFERENCES Orders (order_id) ON DELETE CASCADE,
    CONSTRAINT fk_order_items_product FOREIGN KEY (product_id) REFERENCES Products (product_id) ON DELETE RESTRICT,
    CONSTRAINT fk_order_items_service FOREIGN KEY (service_id) REFERENCES Services (service_id) ON DELETE RESTRICT,
    -- a line sells a product or a service: never both, never neither
    CONSTRAINT ck_order_items_one_kind CHECK ((product_id IS NULL) <> (service_id IS NULL)),
    CONSTRAINT ck_order_items_quantity CHECK (quantity > 0),
    CONSTRAINT ck_order_items_service_quantity CHECK (service_id IS NULL OR quantity = 1),
    CONSTRAINT ck_order_items_price CHECK (unit_price >= 0)
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_unicode_ci;

-- A service line books its consultant for [starts_at, ends_at). The application-time period with
-- WITHOUT OVERLAPS makes the database refuse a double booking (duplicate-key error 1062).
-- The consultant is captured at booking time, like the price on the order line.
CREATE TABLE Service_Bookings (
    booking_id     BIGINT UNSIGNED NOT NULL AUTO_INCREMENT,
    order_item_id  BIGINT UNSIGNED NOT NULL,
    service_id     BIGINT UNSIGNED NOT NULL,
    consultant     VARCHAR(100) NOT NULL,
    starts_at      DATETIME(6) NOT NULL,
    ends_at        DATETIME(6) NOT NULL,
    created_at     DATETIME(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6),
    PERIOD FOR slot (starts_at, ends_at),
    PRIMARY KEY (booking_id),
    UNIQUE KEY uq_bookings_order_item (order_item_id),
    UNIQUE KEY uq_bookings_consultant_slot (consultant, slot WITHOUT OVERLAPS),
    KEY ix_bookings_service (service_id),
    CONSTRAINT fk_bookings_order_item FOREIGN KEY (order_item_id) REFERENCES Order_Items (order_item_id) ON DELETE CASCADE,
    CONSTRAINT fk_bookings_service FOREIGN KEY (service_id) REFERENCES Services (service_id) ON DELETE RESTRICT
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_unicode_ci;
