-- AI readiness (milestone 4): the descriptive text of each product and service, in one place,
-- ready to be embedded for semantic search. A vector column needs MariaDB 11.7+ (VECTOR type);
-- until then an embedding job reads this view and keys vectors by (entity_type, entity_id),
-- re-embedding rows whose updated_at is newer than its last run.

CREATE VIEW v_SemanticSearchText AS
SELECT 'product' AS entity_type,
       p.product_id AS entity_id,
       p.name AS title,
       CONCAT_WS(CHAR(10), p.name, CONCAT('Category: ', c.name), p.description) AS embedding_text,
       p.updated_at
FROM Products p
JOIN Categories c ON c.category_id = p.category_id
WHERE p.is_active = TRUE
UNION ALL
SELECT 'service',
       s.service_id,
       s.name,
       CONCAT_WS(CHAR(10), s.name, CONCAT('Category: ', c.name),
                 CONCAT('Consultant: ', s.consultant),
                 CONCAT('Duration: ', s.duration_minutes, ' minutes'), s.description),
       s.updated_at
FROM Services s
JOIN Categories c ON c.category_id = s.category_id
WHERE s.is_active = TRUE;
