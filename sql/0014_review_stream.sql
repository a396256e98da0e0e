-- The second direction (issue 22): the workers follow the change stream of MongoDB's `reviews`
-- collection and queue the products whose rating a review changed; the product sync then
-- rewrites those documents, reading the rating from the reviews themselves.
--
-- Where each stream is: the resume token after the last events whose products were queued,
-- stored in the same transaction as those queue entries (so a restart neither loses nor needs
-- to guess anything), and the time of the newest of those events. Several workers may follow
-- the same stream; a position only moves forward in event time.
CREATE TABLE sync_stream_positions (
    stream        VARCHAR(32) NOT NULL,
    resume_token  VARBINARY(4096) NOT NULL,
    event_time    DATETIME(6) NOT NULL,
    events        BIGINT UNSIGNED NOT NULL DEFAULT 0,
    updated_at    DATETIME(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6) ON UPDATE CURRENT_TIMESTAMP(6),
    PRIMARY KEY (stream)
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_unicode_ci;

-- What the engineer sees of it, materialised (a locking read through it locks nothing the
-- workers update).
CREATE ALGORITHM = TEMPTABLE VIEW v_sync_streams AS
SELECT stream, event_time, events, updated_at FROM sync_stream_positions;
