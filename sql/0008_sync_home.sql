-- High availability (milestone 3): the node the sync workers claim on.
-- The workers' per-key locks are MariaDB user locks, which belong to one server and are not
-- replicated by Galera: workers sharing the queues must claim on one node. This row names it
-- (`@@hostname:@@port`, as that server reports itself); being a row, it is replicated and every
-- change of it is certified cluster-wide, so all workers see the same home. A worker claims
-- only when its connection's server is the home; one whose home stopped taking writes moves
-- the home to its own node (a conditional UPDATE: of two workers doing so at once, one wins).
-- No row on a single server: there the workers never read it.
CREATE TABLE sync_home (
    id          TINYINT UNSIGNED NOT NULL,
    server      VARCHAR(320) NOT NULL,
    changed_at  DATETIME(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6),
    PRIMARY KEY (id),
    CONSTRAINT ck_sync_home_single_row CHECK (id = 1)
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_unicode_ci;
