-- Generated from tests/unit/mapping/reservations.json (topic clinic.public.reservations).

-- target reservations/requests: table "booking"."requests", connection clinic
-- write_sql, 18 parameters:
--   $1 target id
--   $2 source topic
--   $3 source key (the message key text)
--   $4 value of column "legacy_id"
--   $5 a value inside of column "patient_name"
--   $6 a value inside of column "patient_name"
--   $7 value of column "service"
--   $8 value of column "period"
--   $9 a value inside of column "preferred_date"
--   $10 value of column "label"
--   $11 keep the stored "patient_name" (unchanged TOASTed source value)
--   $12 keep the stored "service" (unchanged TOASTed source value)
--   $13 keep the stored "period" (unchanged TOASTed source value)
--   $14 keep the stored "preferred_date" (unchanged TOASTed source value)
--   $15 keep the stored "label" (unchanged TOASTed source value)
--   $16 copy mode ('c', 'r' or NULL)
--   $17 copy commit LSN
--   $18 copy LSN
WITH prev AS (
    SELECT r.* FROM dualsync.links AS l CROSS JOIN LATERAL jsonb_populate_record(NULL::"booking"."requests", l.vals) AS r
    WHERE l.target = $1::text AND l.source_topic = $2::text AND l.source_key = $3::text AND l.vals IS NOT NULL
    LIMIT 1
), up AS (
    INSERT INTO "booking"."requests" AS t ("legacy_id", "patient_name", "service", "period", "preferred_date", "label")
    SELECT $4, CASE WHEN $11::boolean THEN (SELECT p."patient_name" FROM prev AS p) ELSE (initcap($5) || ' (' || $6 || ')') END, CASE WHEN $12::boolean THEN (SELECT p."service" FROM prev AS p) ELSE $7 END, CASE WHEN $13::boolean THEN (SELECT p."period" FROM prev AS p) ELSE $8 END, CASE WHEN $14::boolean THEN (SELECT p."preferred_date" FROM prev AS p) ELSE $9::date END, CASE WHEN $15::boolean THEN (SELECT p."label" FROM prev AS p) ELSE $10 END
    ON CONFLICT ("legacy_id") DO UPDATE SET
        "patient_name" = CASE WHEN $11::boolean AND NOT EXISTS (SELECT 1 FROM prev) THEN t."patient_name" ELSE EXCLUDED."patient_name" END,
        "service" = CASE WHEN $12::boolean AND NOT EXISTS (SELECT 1 FROM prev) THEN t."service" ELSE EXCLUDED."service" END,
        "period" = CASE WHEN $13::boolean AND NOT EXISTS (SELECT 1 FROM prev) THEN t."period" ELSE EXCLUDED."period" END,
        "preferred_date" = CASE WHEN $14::boolean AND NOT EXISTS (SELECT 1 FROM prev) THEN t."preferred_date" ELSE EXCLUDED."preferred_date" END,
        "label" = CASE WHEN $15::boolean AND NOT EXISTS (SELECT 1 FROM prev) THEN t."label" ELSE EXCLUDED."label" END
    WHERE NOT EXISTS (SELECT 1 FROM dualsync.links AS x
        WHERE x.target = $1::text AND x.target_key = json_build_array(t."legacy_id"::text)::text AND x.vals IS NOT NULL
          AND (x.source_topic COLLATE "C", x.source_key COLLATE "C") < ($2::text, $3::text))
), k AS (
    SELECT json_build_array(r."legacy_id"::text)::text AS target_key,
        jsonb_build_object('legacy_id', $4, 'patient_name', CASE WHEN $11::boolean THEN (SELECT p."patient_name" FROM prev AS p) ELSE (initcap($5) || ' (' || $6 || ')') END, 'service', CASE WHEN $12::boolean THEN (SELECT p."service" FROM prev AS p) ELSE $7 END, 'period', CASE WHEN $13::boolean THEN (SELECT p."period" FROM prev AS p) ELSE $8 END, 'preferred_date', CASE WHEN $14::boolean THEN (SELECT p."preferred_date" FROM prev AS p) ELSE $9::date END, 'label', CASE WHEN $15::boolean THEN (SELECT p."label" FROM prev AS p) ELSE $10 END) AS vals
    FROM json_populate_record(NULL::"booking"."requests", json_build_object('legacy_id', $4)) AS r
), old AS (
    DELETE FROM dualsync.links AS l USING k
    WHERE l.target = $1::text AND l.source_topic = $2::text AND l.source_key = $3::text
      AND l.target_key <> k.target_key
    RETURNING l.target_key
), link AS (
    INSERT INTO dualsync.links AS l (target, source_topic, source_key, target_key, vals, copy_commit, copy_lsn)
    SELECT $1::text, $2::text, $3::text, k.target_key, k.vals, $17::pg_lsn, $18::pg_lsn FROM k
    ON CONFLICT (target, source_topic, source_key, target_key)
        DO UPDATE SET vals = EXCLUDED.vals,
            copies = l.copies + CASE WHEN $16::text = 'r' OR ($16::text = 'c' AND CASE WHEN l.copy_lsn IS NULL OR $18::pg_lsn IS NULL THEN true WHEN $17::pg_lsn IS NULL THEN $18::pg_lsn > l.copy_lsn WHEN l.copy_commit IS NULL THEN $17::pg_lsn > l.copy_lsn ELSE ($17::pg_lsn, $18::pg_lsn) > (l.copy_commit, l.copy_lsn) END) THEN 1 ELSE 0 END,
            copy_commit = CASE WHEN $16::text = 'c' AND CASE WHEN l.copy_lsn IS NULL OR $18::pg_lsn IS NULL THEN true WHEN $17::pg_lsn IS NULL THEN $18::pg_lsn > l.copy_lsn WHEN l.copy_commit IS NULL THEN $17::pg_lsn > l.copy_lsn ELSE ($17::pg_lsn, $18::pg_lsn) > (l.copy_commit, l.copy_lsn) END THEN EXCLUDED.copy_commit ELSE l.copy_commit END,
            copy_lsn = CASE WHEN $16::text = 'c' AND CASE WHEN l.copy_lsn IS NULL OR $18::pg_lsn IS NULL THEN true WHEN $17::pg_lsn IS NULL THEN $18::pg_lsn > l.copy_lsn WHEN l.copy_commit IS NULL THEN $17::pg_lsn > l.copy_lsn ELSE ($17::pg_lsn, $18::pg_lsn) > (l.copy_commit, l.copy_lsn) END THEN EXCLUDED.copy_lsn ELSE l.copy_lsn END
), touched AS (
    INSERT INTO pg_temp.ds_touched (target, target_key)
    SELECT $1::text, g.target_key FROM (SELECT target_key FROM k UNION ALL SELECT target_key FROM old) AS g WHERE g.target_key IS NOT NULL
), refill AS (
    UPDATE "booking"."requests" AS t SET "patient_name" = o."patient_name", "service" = o."service", "period" = o."period", "preferred_date" = o."preferred_date", "label" = o."label"
    FROM (SELECT DISTINCT ON (x.target_key) x.target_key, x.source_topic, x.source_key, x.vals
        FROM old AS g CROSS JOIN LATERAL (
            SELECT x.* FROM dualsync.links AS x
            WHERE x.target = $1::text AND x.target_key = g.target_key AND x.vals IS NOT NULL
              AND NOT (x.source_topic = $2::text AND x.source_key = $3::text) OFFSET 0) AS x
        ORDER BY x.target_key, x.source_topic COLLATE "C", x.source_key COLLATE "C") AS n
    CROSS JOIN LATERAL jsonb_populate_record(NULL::"booking"."requests", n.vals) AS o
    WHERE t."legacy_id" = o."legacy_id" AND ($2::text COLLATE "C", $3::text COLLATE "C") < (n.source_topic, n.source_key)
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
)
UPDATE "booking"."requests" AS t SET "patient_name" = o."patient_name", "service" = o."service", "period" = o."period", "preferred_date" = o."preferred_date", "label" = o."label"
    FROM (SELECT DISTINCT ON (x.target_key) x.target_key, x.source_topic, x.source_key, x.vals
        FROM (SELECT DISTINCT target_key FROM old) AS g CROSS JOIN LATERAL (
            SELECT x.* FROM dualsync.links AS x
            WHERE x.target = $1::text AND x.target_key = g.target_key AND x.vals IS NOT NULL
              AND NOT (x.source_topic = $2::text AND x.source_key = $3::text) OFFSET 0) AS x
        ORDER BY x.target_key, x.source_topic COLLATE "C", x.source_key COLLATE "C") AS n
    CROSS JOIN LATERAL jsonb_populate_record(NULL::"booking"."requests", n.vals) AS o
    WHERE t."legacy_id" = o."legacy_id" AND ($2::text COLLATE "C", $3::text COLLATE "C") < (n.source_topic, n.source_key);

-- truncate_sql, 4 parameters ($1 target id, $2 source topic, $3 partition, $4 partitions):
WITH old AS (
    DELETE FROM dualsync.links AS l
    WHERE l.target = $1::text AND l.source_topic = $2::text AND ($3::int IS NULL OR dualsync.kafka_partition(l.source_key, $4::int) = $3::int)
    RETURNING l.target_key
), touched AS (
    INSERT INTO pg_temp.ds_touched (target, target_key)
    SELECT $1::text, g.target_key FROM (SELECT target_key FROM old) AS g WHERE g.target_key IS NOT NULL
)
UPDATE "booking"."requests" AS t SET "patient_name" = o."patient_name", "service" = o."service", "period" = o."period", "preferred_date" = o."preferred_date", "label" = o."label"
    FROM (SELECT DISTINCT ON (x.target_key) x.target_key, x.source_topic, x.source_key, x.vals
        FROM (SELECT DISTINCT target_key FROM old) AS g CROSS JOIN LATERAL (
            SELECT x.* FROM dualsync.links AS x
            WHERE x.target = $1::text AND x.target_key = g.target_key AND x.vals IS NOT NULL
              AND NOT (x.source_topic = $2::text AND ($3::int IS NULL OR dualsync.kafka_partition(x.source_key, $4::int) = $3::int)) OFFSET 0) AS x
        ORDER BY x.target_key, x.source_topic COLLATE "C", x.source_key COLLATE "C") AS n
    CROSS JOIN LATERAL jsonb_populate_record(NULL::"booking"."requests", n.vals) AS o
    WHERE t."legacy_id" = o."legacy_id";

-- settle_sql, 1 parameter ($1 target id):
WITH me AS (
    SELECT pg_current_xact_id()::xid AS xid
), k AS (
    SELECT g.target_key FROM (SELECT DISTINCT target_key FROM pg_temp.ds_touched WHERE target = $1::text) AS g, me
    WHERE NOT EXISTS (SELECT 1 FROM (SELECT count(*) AS n, bool_and(x.xmin = me.xid) AS own
            FROM dualsync.links AS x WHERE x.target = $1::text AND x.target_key = g.target_key) AS l
        WHERE l.n = 1 AND l.own AND EXISTS (SELECT 1 FROM "booking"."requests" AS t, json_populate_record(NULL::"booking"."requests", json_build_object('legacy_id', g.target_key::json->>0)) AS o
            WHERE t."legacy_id" = o."legacy_id" AND t.xmin = me.xid))
), n AS (
    SELECT DISTINCT ON (x.target_key) x.target_key, x.vals
    FROM k CROSS JOIN LATERAL (
        SELECT x.* FROM dualsync.links AS x
        WHERE x.target = $1::text AND x.target_key = k.target_key AND x.vals IS NOT NULL OFFSET 0) AS x
    ORDER BY x.target_key, x.source_topic COLLATE "C", x.source_key COLLATE "C"
), up AS (
    INSERT INTO "booking"."requests" AS t ("legacy_id", "patient_name", "service", "period", "preferred_date", "label")
    SELECT o."legacy_id", o."patient_name", o."service", o."period", o."preferred_date", o."label"
    FROM n CROSS JOIN LATERAL jsonb_populate_record(NULL::"booking"."requests", n.vals) AS o
    WHERE NOT EXISTS (SELECT 1 FROM "booking"."requests" AS t WHERE t."legacy_id" = o."legacy_id"
        AND jsonb_build_array(t."patient_name", t."service", t."period", t."preferred_date", t."label") = jsonb_build_array(o."patient_name", o."service", o."period", o."preferred_date", o."label"))
    ON CONFLICT ("legacy_id") DO UPDATE SET
        "patient_name" = EXCLUDED."patient_name",
        "service" = EXCLUDED."service",
        "period" = EXCLUDED."period",
        "preferred_date" = EXCLUDED."preferred_date",
        "label" = EXCLUDED."label"
    RETURNING 1
)
SELECT (SELECT count(*) FROM up) AS settled;

-- batch statement ($1 target id, $2 source topic, $3..$18 arrays of write_sql's $3..$18, $19 ord, $20 op):
WITH i AS (
    SELECT * FROM unnest($3::T3[], $4::T4[], $5::T5[], $6::T6[], $7::T7[], $8::T8[], $9::T9[], $10::T10[], $11::T11[], $12::T12[], $13::T13[], $14::T14[], $15::T15[], $16::T16[], $17::T17[], $18::T18[], $19::bigint[], $20::text[])
        AS i(p3, p4, p5, p6, p7, p8, p9, p10, p11, p12, p13, p14, p15, p16, p17, p18, ord, op)
), w AS (
    SELECT i.*, true AS ok, json_build_array(r."legacy_id"::text)::text AS target_key
    FROM i CROSS JOIN LATERAL json_populate_record(NULL::"booking"."requests", json_build_object('legacy_id', i.p4)) AS r
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
    INSERT INTO "booking"."requests" AS t ("legacy_id", "patient_name", "service", "period", "preferred_date", "label")
    SELECT i.p4, (initcap(i.p5) || ' (' || i.p6 || ')'), i.p7, i.p8, i.p9::date, i.p10
    FROM win AS i
    ON CONFLICT ("legacy_id") DO UPDATE SET
        "patient_name" = EXCLUDED."patient_name",
        "service" = EXCLUDED."service",
        "period" = EXCLUDED."period",
        "preferred_date" = EXCLUDED."preferred_date",
        "label" = EXCLUDED."label"
    RETURNING json_build_array(t."legacy_id"::text)::text AS target_key, t.xmax = 0 AS fresh
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
        jsonb_build_object('legacy_id', i.p4, 'patient_name', (initcap(i.p5) || ' (' || i.p6 || ')'), 'service', i.p7, 'period', i.p8, 'preferred_date', i.p9::date, 'label', i.p10)
    FROM w AS i WHERE i.ok
    ON CONFLICT (target, source_topic, source_key, target_key)
        DO UPDATE SET vals = EXCLUDED.vals
), touched AS (
    INSERT INTO pg_temp.ds_touched (target, target_key)
    SELECT $1::text, g.target_key FROM (SELECT g.target_key FROM (SELECT i.target_key, count(*) OVER (PARTITION BY i.target_key) AS n FROM w AS i WHERE i.ok) AS g WHERE g.n > 1 OR g.target_key NOT IN (SELECT u.target_key FROM up AS u WHERE u.fresh) UNION ALL SELECT target_key FROM old) AS g WHERE g.target_key IS NOT NULL
), refill AS (
    UPDATE "booking"."requests" AS t SET "patient_name" = o."patient_name", "service" = o."service", "period" = o."period", "preferred_date" = o."preferred_date", "label" = o."label"
    FROM (SELECT DISTINCT ON (x.target_key) x.target_key, x.source_topic, x.source_key, x.vals
        FROM (SELECT DISTINCT target_key FROM old) AS g CROSS JOIN LATERAL (
            SELECT x.* FROM dualsync.links AS x
            WHERE x.target = $1::text AND x.target_key = g.target_key AND x.vals IS NOT NULL
              AND NOT (x.source_topic = $2::text AND x.source_key IN (SELECT m.source_key FROM moved AS m)) OFFSET 0) AS x
        ORDER BY x.target_key, x.source_topic COLLATE "C", x.source_key COLLATE "C") AS n
    CROSS JOIN LATERAL jsonb_populate_record(NULL::"booking"."requests", n.vals) AS o
    WHERE t."legacy_id" = o."legacy_id" AND NOT EXISTS (SELECT 1 FROM win WHERE win.target_key = n.target_key)
)
SELECT i.ord FROM w AS i WHERE NOT i.ok;

-- no form without links
