-- Generated from tests/unit/mapping/quoting.json (topic clinic.odd.schema.Tab"le).

-- target quoting/odd: table "odd schema"."Tab""le", connection clinic
-- write_sql, 13 parameters:
--   $1 target id
--   $2 source topic
--   $3 source key (the message key text)
--   $4 value of column "we"ird"
--   $5 value of column "back\slash"
--   $6 a value inside of column "it's"
--   $7 a value inside of column "it's"
--   $8 a value inside of column "plain"
--   $9 a value inside of column "plain"
--   $10 keep the stored "plain" (unchanged TOASTed source value)
--   $11 copy mode ('c', 'r' or NULL)
--   $12 copy commit LSN
--   $13 copy LSN
WITH prev AS (
    SELECT r.* FROM dualsync.links AS l CROSS JOIN LATERAL jsonb_populate_record(NULL::"odd schema"."Tab""le", l.vals) AS r
    WHERE l.target = $1::text AND l.source_topic = $2::text AND l.source_key = $3::text AND l.vals IS NOT NULL
    LIMIT 1
), up AS (
    INSERT INTO "odd schema"."Tab""le" AS t ("we""ird", "back\slash", "it's", "plain")
    SELECT $4, $5, (SELECT lk1."v""w" FROM "x""y"."z" AS lk1 WHERE lk1."m""n" = $6 AND lk1."o'p" = $7::public."Odd"[]), CASE WHEN $10::boolean THEN (SELECT p."plain" FROM prev AS p) ELSE ($8 || '$2' || $$ $2 $$ || $tag$ $1 $tag$ || E'\' $1' -- $2
 || /* $1 /* $2 */ */ ($9::text)) END
    ON CONFLICT ("we""ird", "back\slash", "it's") DO UPDATE SET
        "plain" = CASE WHEN $10::boolean AND NOT EXISTS (SELECT 1 FROM prev) THEN t."plain" ELSE EXCLUDED."plain" END
    WHERE NOT EXISTS (SELECT 1 FROM dualsync.links AS x
        WHERE x.target = $1::text AND x.target_key = json_build_array(t."we""ird"::text, t."back\slash"::text, t."it's"::text)::text AND x.vals IS NOT NULL
          AND (x.source_topic COLLATE "C", x.source_key COLLATE "C") < ($2::text, $3::text))
), k AS (
    SELECT json_build_array(r."we""ird"::text, r."back\slash"::text, r."it's"::text)::text AS target_key,
        jsonb_build_object('we"ird', $4, E'back\\slash', $5, 'it''s', (SELECT lk1."v""w" FROM "x""y"."z" AS lk1 WHERE lk1."m""n" = $6 AND lk1."o'p" = $7::public."Odd"[]), 'plain', CASE WHEN $10::boolean THEN (SELECT p."plain" FROM prev AS p) ELSE ($8 || '$2' || $$ $2 $$ || $tag$ $1 $tag$ || E'\' $1' -- $2
 || /* $1 /* $2 */ */ ($9::text)) END) AS vals
    FROM json_populate_record(NULL::"odd schema"."Tab""le", json_build_object('we"ird', $4, E'back\\slash', $5, 'it''s', (SELECT lk1."v""w" FROM "x""y"."z" AS lk1 WHERE lk1."m""n" = $6 AND lk1."o'p" = $7::public."Odd"[]))) AS r
), old AS (
    DELETE FROM dualsync.links AS l USING k
    WHERE l.target = $1::text AND l.source_topic = $2::text AND l.source_key = $3::text
      AND l.target_key <> k.target_key
    RETURNING l.target_key
), link AS (
    INSERT INTO dualsync.links AS l (target, source_topic, source_key, target_key, vals, copy_commit, copy_lsn)
    SELECT $1::text, $2::text, $3::text, k.target_key, k.vals, $12::pg_lsn, $13::pg_lsn FROM k
    ON CONFLICT (target, source_topic, source_key, target_key)
        DO UPDATE SET vals = EXCLUDED.vals,
            copies = l.copies + CASE WHEN $11::text = 'r' OR ($11::text = 'c' AND CASE WHEN l.copy_lsn IS NULL OR $13::pg_lsn IS NULL THEN true WHEN $12::pg_lsn IS NULL THEN $13::pg_lsn > l.copy_lsn WHEN l.copy_commit IS NULL THEN $12::pg_lsn > l.copy_lsn ELSE ($12::pg_lsn, $13::pg_lsn) > (l.copy_commit, l.copy_lsn) END) THEN 1 ELSE 0 END,
            copy_commit = CASE WHEN $11::text = 'c' AND CASE WHEN l.copy_lsn IS NULL OR $13::pg_lsn IS NULL THEN true WHEN $12::pg_lsn IS NULL THEN $13::pg_lsn > l.copy_lsn WHEN l.copy_commit IS NULL THEN $12::pg_lsn > l.copy_lsn ELSE ($12::pg_lsn, $13::pg_lsn) > (l.copy_commit, l.copy_lsn) END THEN EXCLUDED.copy_commit ELSE l.copy_commit END,
            copy_lsn = CASE WHEN $11::text = 'c' AND CASE WHEN l.copy_lsn IS NULL OR $13::pg_lsn IS NULL THEN true WHEN $12::pg_lsn IS NULL THEN $13::pg_lsn > l.copy_lsn WHEN l.copy_commit IS NULL THEN $12::pg_lsn > l.copy_lsn ELSE ($12::pg_lsn, $13::pg_lsn) > (l.copy_commit, l.copy_lsn) END THEN EXCLUDED.copy_lsn ELSE l.copy_lsn END
), touched AS (
    INSERT INTO pg_temp.ds_touched (target, target_key)
    SELECT $1::text, g.target_key FROM (SELECT target_key FROM k UNION ALL SELECT target_key FROM old) AS g WHERE g.target_key IS NOT NULL
), orphan AS (
    SELECT r."we""ird", r."back\slash", r."it's"
    FROM old AS o CROSS JOIN LATERAL json_populate_record(NULL::"odd schema"."Tab""le",
        json_build_object('we"ird', o.target_key::json->>0, E'back\\slash', o.target_key::json->>1, 'it''s', o.target_key::json->>2)) AS r
    WHERE NOT EXISTS (SELECT 1 FROM dualsync.links AS x
        WHERE x.target = $1::text AND x.target_key = o.target_key
          AND NOT (x.source_topic = $2::text AND x.source_key = $3::text))
), gone AS (
    UPDATE "odd schema"."Tab""le" AS t SET "gone""at" = now()
    FROM orphan AS o WHERE t."we""ird" = o."we""ird" AND t."back\slash" = o."back\slash" AND t."it's" = o."it's"
), refill AS (
    UPDATE "odd schema"."Tab""le" AS t SET "plain" = o."plain"
    FROM (SELECT DISTINCT ON (x.target_key) x.target_key, x.source_topic, x.source_key, x.vals
        FROM old AS g CROSS JOIN LATERAL (
            SELECT x.* FROM dualsync.links AS x
            WHERE x.target = $1::text AND x.target_key = g.target_key AND x.vals IS NOT NULL
              AND NOT (x.source_topic = $2::text AND x.source_key = $3::text) OFFSET 0) AS x
        ORDER BY x.target_key, x.source_topic COLLATE "C", x.source_key COLLATE "C") AS n
    CROSS JOIN LATERAL jsonb_populate_record(NULL::"odd schema"."Tab""le", n.vals) AS o
    WHERE t."we""ird" = o."we""ird" AND t."back\slash" = o."back\slash" AND t."it's" = o."it's" AND ($2::text COLLATE "C", $3::text COLLATE "C") < (n.source_topic, n.source_key)
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
    SELECT r."we""ird", r."back\slash", r."it's"
    FROM old AS o CROSS JOIN LATERAL json_populate_record(NULL::"odd schema"."Tab""le",
        json_build_object('we"ird', o.target_key::json->>0, E'back\\slash', o.target_key::json->>1, 'it''s', o.target_key::json->>2)) AS r
    WHERE NOT EXISTS (SELECT 1 FROM dualsync.links AS x
        WHERE x.target = $1::text AND x.target_key = o.target_key
          AND NOT (x.source_topic = $2::text AND x.source_key = $3::text))
), refill AS (
    UPDATE "odd schema"."Tab""le" AS t SET "plain" = o."plain"
    FROM (SELECT DISTINCT ON (x.target_key) x.target_key, x.source_topic, x.source_key, x.vals
        FROM (SELECT DISTINCT target_key FROM old) AS g CROSS JOIN LATERAL (
            SELECT x.* FROM dualsync.links AS x
            WHERE x.target = $1::text AND x.target_key = g.target_key AND x.vals IS NOT NULL
              AND NOT (x.source_topic = $2::text AND x.source_key = $3::text) OFFSET 0) AS x
        ORDER BY x.target_key, x.source_topic COLLATE "C", x.source_key COLLATE "C") AS n
    CROSS JOIN LATERAL jsonb_populate_record(NULL::"odd schema"."Tab""le", n.vals) AS o
    WHERE t."we""ird" = o."we""ird" AND t."back\slash" = o."back\slash" AND t."it's" = o."it's" AND ($2::text COLLATE "C", $3::text COLLATE "C") < (n.source_topic, n.source_key)
)
UPDATE "odd schema"."Tab""le" AS t SET "gone""at" = now()
FROM orphan AS o WHERE t."we""ird" = o."we""ird" AND t."back\slash" = o."back\slash" AND t."it's" = o."it's";

-- truncate_sql, 4 parameters ($1 target id, $2 source topic, $3 partition, $4 partitions):
WITH old AS (
    DELETE FROM dualsync.links AS l
    WHERE l.target = $1::text AND l.source_topic = $2::text AND ($3::int IS NULL OR dualsync.kafka_partition(l.source_key, $4::int) = $3::int)
    RETURNING l.target_key
), touched AS (
    INSERT INTO pg_temp.ds_touched (target, target_key)
    SELECT $1::text, g.target_key FROM (SELECT target_key FROM old) AS g WHERE g.target_key IS NOT NULL
), orphan AS (
    SELECT r."we""ird", r."back\slash", r."it's"
    FROM old AS o CROSS JOIN LATERAL json_populate_record(NULL::"odd schema"."Tab""le",
        json_build_object('we"ird', o.target_key::json->>0, E'back\\slash', o.target_key::json->>1, 'it''s', o.target_key::json->>2)) AS r
    WHERE NOT EXISTS (SELECT 1 FROM dualsync.links AS x
        WHERE x.target = $1::text AND x.target_key = o.target_key
          AND NOT (x.source_topic = $2::text AND ($3::int IS NULL OR dualsync.kafka_partition(x.source_key, $4::int) = $3::int)))
), refill AS (
    UPDATE "odd schema"."Tab""le" AS t SET "plain" = o."plain"
    FROM (SELECT DISTINCT ON (x.target_key) x.target_key, x.source_topic, x.source_key, x.vals
        FROM (SELECT DISTINCT target_key FROM old) AS g CROSS JOIN LATERAL (
            SELECT x.* FROM dualsync.links AS x
            WHERE x.target = $1::text AND x.target_key = g.target_key AND x.vals IS NOT NULL
              AND NOT (x.source_topic = $2::text AND ($3::int IS NULL OR dualsync.kafka_partition(x.source_key, $4::int) = $3::int)) OFFSET 0) AS x
        ORDER BY x.target_key, x.source_topic COLLATE "C", x.source_key COLLATE "C") AS n
    CROSS JOIN LATERAL jsonb_populate_record(NULL::"odd schema"."Tab""le", n.vals) AS o
    WHERE t."we""ird" = o."we""ird" AND t."back\slash" = o."back\slash" AND t."it's" = o."it's"
)
UPDATE "odd schema"."Tab""le" AS t SET "gone""at" = now()
FROM orphan AS o WHERE t."we""ird" = o."we""ird" AND t."back\slash" = o."back\slash" AND t."it's" = o."it's";

-- settle_sql, 1 parameter ($1 target id):
WITH me AS (
    SELECT pg_current_xact_id()::xid AS xid
), k AS (
    SELECT g.target_key FROM (SELECT DISTINCT target_key FROM pg_temp.ds_touched WHERE target = $1::text) AS g, me
    WHERE NOT EXISTS (SELECT 1 FROM (SELECT count(*) AS n, bool_and(x.xmin = me.xid) AS own
            FROM dualsync.links AS x WHERE x.target = $1::text AND x.target_key = g.target_key) AS l
        WHERE l.n = 1 AND l.own AND EXISTS (SELECT 1 FROM "odd schema"."Tab""le" AS t, json_populate_record(NULL::"odd schema"."Tab""le", json_build_object('we"ird', g.target_key::json->>0, E'back\\slash', g.target_key::json->>1, 'it''s', g.target_key::json->>2)) AS o
            WHERE t."we""ird" = o."we""ird" AND t."back\slash" = o."back\slash" AND t."it's" = o."it's" AND t.xmin = me.xid))
), n AS (
    SELECT DISTINCT ON (x.target_key) x.target_key, x.vals
    FROM k CROSS JOIN LATERAL (
        SELECT x.* FROM dualsync.links AS x
        WHERE x.target = $1::text AND x.target_key = k.target_key AND x.vals IS NOT NULL OFFSET 0) AS x
    ORDER BY x.target_key, x.source_topic COLLATE "C", x.source_key COLLATE "C"
), up AS (
    INSERT INTO "odd schema"."Tab""le" AS t ("we""ird", "back\slash", "it's", "plain")
    SELECT o."we""ird", o."back\slash", o."it's", o."plain"
    FROM n CROSS JOIN LATERAL jsonb_populate_record(NULL::"odd schema"."Tab""le", n.vals) AS o
    WHERE NOT EXISTS (SELECT 1 FROM "odd schema"."Tab""le" AS t WHERE t."we""ird" = o."we""ird" AND t."back\slash" = o."back\slash" AND t."it's" = o."it's"
        AND jsonb_build_array(t."plain") = jsonb_build_array(o."plain"))
    ON CONFLICT ("we""ird", "back\slash", "it's") DO UPDATE SET
        "plain" = EXCLUDED."plain"
    RETURNING 1
), orphan AS (
    SELECT r."we""ird", r."back\slash", r."it's"
    FROM k AS o CROSS JOIN LATERAL json_populate_record(NULL::"odd schema"."Tab""le",
        json_build_object('we"ird', o.target_key::json->>0, E'back\\slash', o.target_key::json->>1, 'it''s', o.target_key::json->>2)) AS r
    WHERE NOT EXISTS (SELECT 1 FROM dualsync.links AS x
        WHERE x.target = $1::text AND x.target_key = o.target_key)
), gone AS (
    UPDATE "odd schema"."Tab""le" AS t SET "gone""at" = now()
    FROM orphan AS o WHERE t."we""ird" = o."we""ird" AND t."back\slash" = o."back\slash" AND t."it's" = o."it's" AND t."gone""at" IS NULL
    RETURNING 1
)
SELECT (SELECT count(*) FROM up) + (SELECT count(*) FROM gone) AS settled;

-- no batch statement (a key column is computed by the database)

-- no form without links
