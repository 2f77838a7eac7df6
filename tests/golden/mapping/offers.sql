-- Generated from tests/unit/mapping/offers.json (topic clinic.public.offers).

-- target offers/visible_offers: table "public"."visible_offers", connection clinic
-- write_sql, 7 parameters:
--   $1 target id
--   $2 source topic
--   $3 source key (the message key text)
--   $4 value of column "offer_id"
--   $5 copy mode ('c', 'r' or NULL)
--   $6 copy commit LSN
--   $7 copy LSN
WITH up AS (
    INSERT INTO "public"."visible_offers" AS t ("offer_id")
    SELECT $4
    ON CONFLICT ("offer_id") DO NOTHING
), k AS (
    SELECT json_build_array(r."offer_id"::text)::text AS target_key,
        jsonb_build_object('offer_id', $4) AS vals
    FROM json_populate_record(NULL::"public"."visible_offers", json_build_object('offer_id', $4)) AS r
), old AS (
    DELETE FROM dualsync.links AS l USING k
    WHERE l.target = $1::text AND l.source_topic = $2::text AND l.source_key = $3::text
      AND l.target_key <> k.target_key
    RETURNING l.target_key
), link AS (
    INSERT INTO dualsync.links AS l (target, source_topic, source_key, target_key, vals, copy_commit, copy_lsn)
    SELECT $1::text, $2::text, $3::text, k.target_key, k.vals, $6::pg_lsn, $7::pg_lsn FROM k
    ON CONFLICT (target, source_topic, source_key, target_key)
        DO UPDATE SET vals = EXCLUDED.vals,
            copies = l.copies + CASE WHEN $5::text = 'r' OR ($5::text = 'c' AND CASE WHEN l.copy_lsn IS NULL OR $7::pg_lsn IS NULL THEN true WHEN $6::pg_lsn IS NULL THEN $7::pg_lsn > l.copy_lsn WHEN l.copy_commit IS NULL THEN $6::pg_lsn > l.copy_lsn ELSE ($6::pg_lsn, $7::pg_lsn) > (l.copy_commit, l.copy_lsn) END) THEN 1 ELSE 0 END,
            copy_commit = CASE WHEN $5::text = 'c' AND CASE WHEN l.copy_lsn IS NULL OR $7::pg_lsn IS NULL THEN true WHEN $6::pg_lsn IS NULL THEN $7::pg_lsn > l.copy_lsn WHEN l.copy_commit IS NULL THEN $6::pg_lsn > l.copy_lsn ELSE ($6::pg_lsn, $7::pg_lsn) > (l.copy_commit, l.copy_lsn) END THEN EXCLUDED.copy_commit ELSE l.copy_commit END,
            copy_lsn = CASE WHEN $5::text = 'c' AND CASE WHEN l.copy_lsn IS NULL OR $7::pg_lsn IS NULL THEN true WHEN $6::pg_lsn IS NULL THEN $7::pg_lsn > l.copy_lsn WHEN l.copy_commit IS NULL THEN $6::pg_lsn > l.copy_lsn ELSE ($6::pg_lsn, $7::pg_lsn) > (l.copy_commit, l.copy_lsn) END THEN EXCLUDED.copy_lsn ELSE l.copy_lsn END
), touched AS (
    INSERT INTO pg_temp.ds_touched (target, target_key)
    SELECT $1::text, g.target_key FROM (SELECT target_key FROM k UNION ALL SELECT target_key FROM old) AS g WHERE g.target_key IS NOT NULL
), orphan AS (
    SELECT r."offer_id"
    FROM old AS o CROSS JOIN LATERAL json_populate_record(NULL::"public"."visible_offers",
        json_build_object('offer_id', o.target_key::json->>0)) AS r
    WHERE NOT EXISTS (SELECT 1 FROM dualsync.links AS x
        WHERE x.target = $1::text AND x.target_key = o.target_key
          AND NOT (x.source_topic = $2::text AND x.source_key = $3::text))
), gone AS (
    DELETE FROM "public"."visible_offers" AS t
    USING orphan AS o WHERE t."offer_id" = o."offer_id"
)
SELECT true AS applied;

-- unlink_sql, 6 parameters ($1 target id, $2 source topic, $3 source key, $4 copy mode ('d' or NULL), $5 copy commit LSN, $6 copy LSN):
WITH dec AS (
    UPDATE dualsync.links AS l SET copies = l.copies - 1, copy_commit = $5::pg_lsn, copy_lsn = $6::pg_lsn
    WHERE l.target = $1::text AND l.source_topic = $2::text AND l.source_key = $3::text
      AND $4::text = 'd' AND l.copies > 1 AND CASE WHEN l.copy_lsn IS NULL OR $6::pg_lsn IS NULL THEN true WHEN $5::pg_lsn IS NULL THEN $6::pg_lsn > l.copy_lsn WHEN l.copy_commit IS NULL THEN $5::pg_lsn > l.copy_lsn ELSE ($5::pg_lsn, $6::pg_lsn) > (l.copy_commit, l.copy_lsn) END
), old AS (
    DELETE FROM dualsync.links AS l
    WHERE l.target = $1::text AND l.source_topic = $2::text AND l.source_key = $3::text
      AND ($4::text IS NULL OR (l.copies <= 1 AND CASE WHEN l.copy_lsn IS NULL OR $6::pg_lsn IS NULL THEN true WHEN $5::pg_lsn IS NULL THEN $6::pg_lsn > l.copy_lsn WHEN l.copy_commit IS NULL THEN $5::pg_lsn > l.copy_lsn ELSE ($5::pg_lsn, $6::pg_lsn) > (l.copy_commit, l.copy_lsn) END))
    RETURNING l.target_key
), touched AS (
    INSERT INTO pg_temp.ds_touched (target, target_key)
    SELECT $1::text, g.target_key FROM (SELECT target_key FROM old) AS g WHERE g.target_key IS NOT NULL
), orphan AS (
    SELECT r."offer_id"
    FROM old AS o CROSS JOIN LATERAL json_populate_record(NULL::"public"."visible_offers",
        json_build_object('offer_id', o.target_key::json->>0)) AS r
    WHERE NOT EXISTS (SELECT 1 FROM dualsync.links AS x
        WHERE x.target = $1::text AND x.target_key = o.target_key
          AND NOT (x.source_topic = $2::text AND x.source_key = $3::text))
)
DELETE FROM "public"."visible_offers" AS t
USING orphan AS o WHERE t."offer_id" = o."offer_id";

-- truncate_sql, 4 parameters ($1 target id, $2 source topic, $3 partition, $4 partitions):
WITH old AS (
    DELETE FROM dualsync.links AS l
    WHERE l.target = $1::text AND l.source_topic = $2::text AND ($3::int IS NULL OR dualsync.kafka_partition(l.source_key, $4::int) = $3::int)
    RETURNING l.target_key
), touched AS (
    INSERT INTO pg_temp.ds_touched (target, target_key)
    SELECT $1::text, g.target_key FROM (SELECT target_key FROM old) AS g WHERE g.target_key IS NOT NULL
), orphan AS (
    SELECT r."offer_id"
    FROM old AS o CROSS JOIN LATERAL json_populate_record(NULL::"public"."visible_offers",
        json_build_object('offer_id', o.target_key::json->>0)) AS r
    WHERE NOT EXISTS (SELECT 1 FROM dualsync.links AS x
        WHERE x.target = $1::text AND x.target_key = o.target_key
          AND NOT (x.source_topic = $2::text AND ($3::int IS NULL OR dualsync.kafka_partition(x.source_key, $4::int) = $3::int)))
)
DELETE FROM "public"."visible_offers" AS t
USING orphan AS o WHERE t."offer_id" = o."offer_id";

-- settle_sql, 1 parameter ($1 target id):
WITH me AS (
    SELECT pg_current_xact_id()::xid AS xid
), k AS (
    SELECT g.target_key FROM (SELECT DISTINCT target_key FROM pg_temp.ds_touched WHERE target = $1::text) AS g, me
    WHERE NOT EXISTS (SELECT 1 FROM (SELECT count(*) AS n, bool_and(x.xmin = me.xid) AS own
            FROM dualsync.links AS x WHERE x.target = $1::text AND x.target_key = g.target_key) AS l
        WHERE l.n = 1 AND l.own AND EXISTS (SELECT 1 FROM "public"."visible_offers" AS t, json_populate_record(NULL::"public"."visible_offers", json_build_object('offer_id', g.target_key::json->>0)) AS o
            WHERE t."offer_id" = o."offer_id" AND t.xmin = me.xid))
), n AS (
    SELECT DISTINCT ON (x.target_key) x.target_key, x.vals
    FROM k CROSS JOIN LATERAL (
        SELECT x.* FROM dualsync.links AS x
        WHERE x.target = $1::text AND x.target_key = k.target_key AND x.vals IS NOT NULL OFFSET 0) AS x
    ORDER BY x.target_key, x.source_topic COLLATE "C", x.source_key COLLATE "C"
), up AS (
    INSERT INTO "public"."visible_offers" AS t ("offer_id")
    SELECT o."offer_id"
    FROM n CROSS JOIN LATERAL jsonb_populate_record(NULL::"public"."visible_offers", n.vals) AS o
    WHERE NOT EXISTS (SELECT 1 FROM "public"."visible_offers" AS t WHERE t."offer_id" = o."offer_id")
    ON CONFLICT ("offer_id") DO NOTHING
    RETURNING 1
), orphan AS (
    SELECT r."offer_id"
    FROM k AS o CROSS JOIN LATERAL json_populate_record(NULL::"public"."visible_offers",
        json_build_object('offer_id', o.target_key::json->>0)) AS r
    WHERE NOT EXISTS (SELECT 1 FROM dualsync.links AS x
        WHERE x.target = $1::text AND x.target_key = o.target_key)
), gone AS (
    DELETE FROM "public"."visible_offers" AS t
    USING orphan AS o WHERE t."offer_id" = o."offer_id"
    RETURNING 1
)
SELECT (SELECT count(*) FROM up) + (SELECT count(*) FROM gone) AS settled;

-- batch statement ($1 target id, $2 source topic, $3..$7 arrays of write_sql's $3..$7, $8 ord, $9 op):
WITH i AS (
    SELECT * FROM unnest($3::T3[], $4::T4[], $5::T5[], $6::T6[], $7::T7[], $8::bigint[], $9::text[])
        AS i(p3, p4, p5, p6, p7, ord, op)
), w AS (
    SELECT i.*, true AS ok, json_build_array(r."offer_id"::text)::text AS target_key
    FROM i CROSS JOIN LATERAL json_populate_record(NULL::"public"."visible_offers", json_build_object('offer_id', i.p4)) AS r
    WHERE i.op = 'u'
), moved AS (
    SELECT i.p3 AS source_key, i.target_key FROM w AS i WHERE i.ok
    UNION ALL SELECT i.p3, NULL FROM i WHERE i.op = 'd'
), head AS (
    SELECT DISTINCT ON (i.target_key) i.* FROM w AS i WHERE i.ok
    ORDER BY i.target_key, i.p3 COLLATE "C"
), win AS (
    SELECT i.* FROM head AS i WHERE NOT EXISTS (SELECT 1 FROM dualsync.links AS x
        WHERE x.target = $1::text AND x.target_key = i.target_key AND x.vals IS NOT NULL
          AND (x.source_topic COLLATE "C", x.source_key COLLATE "C") < ($2::text, i.p3)
          AND NOT (x.source_topic = $2::text AND x.source_key IN (SELECT m.source_key FROM moved AS m)))
), up AS (
    INSERT INTO "public"."visible_offers" AS t ("offer_id")
    SELECT i.p4
    FROM win AS i
    ON CONFLICT ("offer_id") DO NOTHING
    RETURNING json_build_array(t."offer_id"::text)::text AS target_key, t.xmax = 0 AS fresh
), old AS (
    DELETE FROM dualsync.links AS l
    WHERE l.ctid = ANY (ARRAY(
        SELECT x.ctid FROM moved AS m CROSS JOIN LATERAL (
            SELECT x.ctid FROM dualsync.links AS x
            WHERE x.target = $1::text AND x.source_topic = $2::text AND x.source_key = m.source_key
              AND x.target_key IS DISTINCT FROM m.target_key OFFSET 0) AS x))
    RETURNING l.target_key
), link AS (
    INSERT INTO dualsync.links AS l (target, source_topic, source_key, target_key, vals)
    SELECT $1::text, $2::text, i.p3, i.target_key,
        jsonb_build_object('offer_id', i.p4)
    FROM w AS i WHERE i.ok
    ON CONFLICT (target, source_topic, source_key, target_key)
        DO UPDATE SET vals = EXCLUDED.vals
), touched AS (
    INSERT INTO pg_temp.ds_touched (target, target_key)
    SELECT $1::text, g.target_key FROM (SELECT g.target_key FROM (SELECT i.target_key, count(*) OVER (PARTITION BY i.target_key) AS n FROM w AS i WHERE i.ok) AS g WHERE g.n > 1 OR g.target_key NOT IN (SELECT u.target_key FROM up AS u WHERE u.fresh) UNION ALL SELECT target_key FROM old) AS g WHERE g.target_key IS NOT NULL
), orphan AS (
    SELECT r."offer_id"
    FROM (SELECT DISTINCT target_key FROM old) AS o CROSS JOIN LATERAL json_populate_record(NULL::"public"."visible_offers",
        json_build_object('offer_id', o.target_key::json->>0)) AS r
    WHERE NOT EXISTS (SELECT 1 FROM moved AS m WHERE m.target_key = o.target_key)
      AND NOT EXISTS (SELECT 1 FROM dualsync.links AS x
        WHERE x.target = $1::text AND x.target_key = o.target_key
          AND NOT (x.source_topic = $2::text AND x.source_key IN (SELECT m.source_key FROM moved AS m)))
), gone AS (
    DELETE FROM "public"."visible_offers" AS t
    USING orphan AS o WHERE t."offer_id" = o."offer_id"
)
SELECT i.ord FROM w AS i WHERE NOT i.ok;

-- without links (the key is computed from source key columns: id), write_sql's parameters:
WITH up AS (
    INSERT INTO "public"."visible_offers" AS t ("offer_id")
    SELECT $4
    ON CONFLICT ("offer_id") DO NOTHING
)
SELECT true AS applied FROM (SELECT $1::text, $2::text, $3::text, $5::text, $6::pg_lsn, $7::pg_lsn) AS unread;
-- unlink without links:
DELETE FROM "public"."visible_offers" AS t USING (SELECT $1::text, $2::text, $3::text, $5::text, $6::pg_lsn, $7::pg_lsn) AS unread WHERE t."offer_id" = $4;
-- truncate without links:
DELETE FROM "public"."visible_offers" AS t USING (SELECT $1::text, $2::text, $3::text, $4::text) AS unread WHERE true;
-- batch statement without links:
WITH i AS (
    SELECT * FROM unnest($3::T3[], $4::T4[], $5::T5[], $6::T6[], $7::T7[], $8::bigint[], $9::text[])
        AS i(p3, p4, p5, p6, p7, ord, op)
), w AS (
    SELECT i.*, true AS ok FROM i, (SELECT $1::text, $2::text) AS unread
    WHERE i.op = 'u'
), up AS (
    INSERT INTO "public"."visible_offers" AS t ("offer_id")
    SELECT i.p4
    FROM w AS i WHERE i.ok
    ON CONFLICT ("offer_id") DO NOTHING
), gone AS (
    DELETE FROM "public"."visible_offers" AS t USING i WHERE i.op = 'd' AND t."offer_id" = i.p4
)
SELECT i.ord FROM w AS i WHERE NOT i.ok;
