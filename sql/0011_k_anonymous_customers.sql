-- What the analyst sees of customers (issue 16, finding 2): no direct identifier and no
-- fragment of one, a pseudonym instead of the key, and quasi-identifiers generalised until
-- every combination of them covers at least five customers.
--
-- The pseudonym is a keyed hash of the customer id: the key is random per database and only
-- the admin may read it (the view runs with its definer's rights), so an analyst can group and
-- count by it but cannot recompute it from an id or join it to any table.
CREATE TABLE analyst_pseudonym_key (
    id      TINYINT UNSIGNED NOT NULL,
    secret  VARBINARY(32) NOT NULL,
    PRIMARY KEY (id),
    CONSTRAINT ck_analyst_pseudonym_key_single_row CHECK (id = 1)
) ENGINE = InnoDB;

INSERT INTO analyst_pseudonym_key (id, secret) VALUES (1, RANDOM_BYTES(32));

-- One row per customer who can be shown: pseudonym, signup period, city, country. Each customer
-- is shown at the finest level whose group (of customers not already shown at a finer level)
-- holds at least five: (month, city, country), then (month, country), (quarter, country),
-- (year, country), (year); a customer no level covers is left out. Every output combination of
-- (signup_period, city, country) therefore covers at least five customers. Materialised
-- (window functions): a locking read through it locks nothing.
CREATE OR REPLACE ALGORITHM = TEMPTABLE VIEW v_customers_masked AS
WITH base AS (
    SELECT LEFT(SHA2(CONCAT(HEX(k.secret), ':', c.customer_id), 256), 20) AS pseudonym,
           DATE_FORMAT(c.created_at, '%Y-%m') AS month,
           CONCAT(YEAR(c.created_at), '-Q', QUARTER(c.created_at)) AS quarter,
           CAST(YEAR(c.created_at) AS CHAR) AS year,
           a.city,
           a.country
    FROM Customers c
    JOIN analyst_pseudonym_key k ON k.id = 1
    LEFT JOIN Customer_Addresses a ON a.address_id = (
        SELECT a2.address_id FROM Customer_Addresses a2
        WHERE a2.customer_id = c.customer_id
        ORDER BY a2.kind = 'shipping' DESC, a2.is_default DESC, a2.address_id
        LIMIT 1)
), l0 AS (
    SELECT base.*, COUNT(*) OVER (PARTITION BY month, city, country) >= 5 AS at0
    FROM base
), l1 AS (
    SELECT l0.*, NOT at0 AND COUNT(*) OVER (PARTITION BY at0, month, country) >= 5 AS at1
    FROM l0
), l2 AS (
    SELECT l1.*, NOT (at0 OR at1)
               AND COUNT(*) OVER (PARTITION BY at0 OR at1, quarter, country) >= 5 AS at2
    FROM l1
), l3 AS (
    SELECT l2.*, NOT (at0 OR at1 OR at2)
               AND COUNT(*) OVER (PARTITION BY at0 OR at1 OR at2, year, country) >= 5 AS at3
    FROM l2
), l4 AS (
    SELECT l3.*, NOT (at0 OR at1 OR at2 OR at3)
               AND COUNT(*) OVER (PARTITION BY at0 OR at1 OR at2 OR at3, year) >= 5 AS at4
    FROM l3
)
SELECT pseudonym,
       CASE WHEN at0 OR at1 THEN month WHEN at2 THEN quarter ELSE year END AS signup_period,
       IF(at0, city, NULL) AS city,
       IF(at4, NULL, country) AS country
FROM l4
WHERE at0 OR at1 OR at2 OR at3 OR at4;
