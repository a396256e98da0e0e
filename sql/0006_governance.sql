-- Governance (milestone 6): what analysts may see of customers.
--
-- v_customers_masked: one row per customer without personal data in the clear: initials
-- instead of names, the e-mail's first character and domain (j***@example.com), the phone's
-- last four digits (none when it has fewer than seven), city and country of the default shipping address (else any address)
-- instead of the street. Views run with their definer's rights: an analyst granted only this
-- view reads it without any privilege on Customers or Customer_Addresses.
CREATE VIEW v_customers_masked AS
SELECT c.customer_id,
       CONCAT(LEFT(c.first_name, 1), '.', LEFT(c.last_name, 1), '.') AS initials,
       CONCAT(LEFT(c.email, 1), '***@', SUBSTRING_INDEX(c.email, '@', -1)) AS email_masked,
       -- too few digits to hide anything: no phone at all
       IF(LENGTH(REGEXP_REPLACE(COALESCE(c.phone, ''), '[^0-9]', '')) < 7, NULL,
          CONCAT('***', RIGHT(REGEXP_REPLACE(c.phone, '[^0-9]', ''), 4))) AS phone_last4,
       a.city,
       a.country,
       c.created_at
FROM Customers c
LEFT JOIN Customer_Addresses a ON a.address_id = (
    SELECT a2.address_id FROM Customer_Addresses a2
    WHERE a2.customer_id = c.customer_id
    ORDER BY a2.kind = 'shipping' DESC, a2.is_default DESC, a2.address_id
    LIMIT 1);
