-- Generated from tests/unit/mapping/patients.json (topic clinic.public.patients).

-- target patients/global_patients: table "public"."global_patients", connection clinic
-- write_sql, 18 parameters:
--   $1 target id
--   $2 source topic
--   $3 source key (the message key text)
--   $4 value of column "id"
--   $5 value of column "phone"
--   $6 value of column "name"
--   $7 value of column "email"
--   $8 a value inside of column "birth_date"
--   $9 value of column "notes"
--   $10 value of column "origin"
--   $11 keep the stored "phone" (unchanged TOASTed source value)
--   $12 keep the stored "name" (unchanged TOASTed source value)
--   $13 keep the stored "email" (unchanged TOASTed source value)
--   $14 keep the stored "birth_date" (unchanged TOASTed source value)
--   $15 keep the stored "notes" (unchanged TOASTed source value)
--   $16 copy mode ('c', 'r' or NULL)
--   $17 copy commit LSN
--   $18 copy LSN
WITH prev AS (
    SELECT r.* FROM dualsync.links AS l CROSS JOIN LATERAL jsonb_populate_record(NULL::"public"."global_patients", l.vals) AS r
    WHERE l.target = $1::text AND l.source_topic = $2::text AND l.source_key = $3::text AND l.vals IS NOT NULL
    LIMIT 1
), up AS (
    INSERT INTO "public"."global_patients" AS t ("id", "phone", "name", "email", "birth_date", "notes", "origin")
    SELECT $4, CASE WHEN $11::boolean THEN (SELECT p."phone" FROM prev AS p) ELSE $5 END, CASE WHEN $12::boolean THEN (SELECT p."name" FROM prev AS p) ELSE $6 END, CASE WHEN $13::boolean THEN (SELECT p."email" FROM prev AS p) ELSE $7 END, CASE WHEN $14::boolean THEN (SELECT p."birth_date" FROM prev AS p) ELSE $8::date END, CASE WHEN $15::boolean THEN (SELECT p."notes" FROM prev AS p) ELSE $9 END, $10
    ON CONFLICT ("id") DO UPDATE SET
        "phone" = CASE WHEN $11::boolean AND NOT EXISTS (SELECT 1 FROM prev) THEN t."phone" ELSE EXCLUDED."phone" END,
        "name" = CASE WHEN $12::boolean AND NOT EXISTS (SELECT 1 FROM prev) THEN t."name" ELSE EXCLUDED."name" END,
        "email" = CASE WHEN $13::boolean AND NOT EXISTS (SELECT 1 FROM prev) THEN t."email" ELSE EXCLUDED."email" END,
        "birth_date" = CASE WHEN $14::boolean AND NOT EXISTS (SELECT 1 FROM prev) THEN t."birth_date" ELSE EXCLUDED."birth_date" END,
        "notes" = CASE WHEN $15::boolean AND NOT EXISTS (SELECT 1 FROM prev) THEN t."notes" ELSE EXCLUDED."notes" END,
        "origin" = EXCLUDED."origin"
    WHERE NOT EXISTS (SELECT 1 FROM dualsync.links AS x
        WHERE x.target = $1::text AND x.target_key = json_build_array(t."id"::text)::text AND x.vals IS NOT NULL
          AND (x.source_topic COLLATE "C", x.source_key COLLATE "C") < ($2::text, $3::text))
), k AS (
    SELECT json_build_array(r."id"::text)::text AS target_key,
        jsonb_build_object('id', $4, 'phone', CASE WHEN $11::boolean THEN (SELECT p."phone" FROM prev AS p) ELSE $5 END, 'name', CASE WHEN $12::boolean THEN (SELECT p."name" FROM prev AS p) ELSE $6 END, 'email', CASE WHEN $13::boolean THEN (SELECT p."email" FROM prev AS p) ELSE $7 END, 'birth_date', CASE WHEN $14::boolean THEN (SELECT p."birth_date" FROM prev AS p) ELSE $8::date END, 'notes', CASE WHEN $15::boolean THEN (SELECT p."notes" FROM prev AS p) ELSE $9 END, 'origin', $10) AS vals
    FROM json_populate_record(NULL::"public"."global_patients", json_build_object('id', $4)) AS r
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
), orphan AS (
    SELECT r."id"
    FROM old AS o CROSS JOIN LATERAL json_populate_record(NULL::"public"."global_patients",
        json_build_object('id', o.target_key::json->>0)) AS r
    WHERE NOT EXISTS (SELECT 1 FROM dualsync.links AS x
        WHERE x.target = $1::text AND x.target_key = o.target_key
          AND NOT (x.source_topic = $2::text AND x.source_key = $3::text))
), gone AS (
    DELETE FROM "public"."global_patients" AS t
    USING orphan AS o WHERE t."id" = o."id"
), refill AS (
    UPDATE "public"."global_patients" AS t SET "phone" = o."phone", "name" = o."name", "email" = o."email", "birth_date" = o."birth_date", "notes" = o."notes", "origin" = o."origin"
    FROM (SELECT DISTINCT ON (x.target_key) x.target_key, x.source_topic, x.source_key, x.vals
        FROM old AS g CROSS JOIN LATERAL (
            SELECT x.* FROM dualsync.links AS x
            WHERE x.target = $1::text AND x.target_key = g.target_key AND x.vals IS NOT NULL
              AND NOT (x.source_topic = $2::text AND x.source_key = $3::text) OFFSET 0) AS x
        ORDER BY x.target_key, x.source_topic COLLATE "C", x.source_key COLLATE "C") AS n
    CROSS JOIN LATERAL jsonb_populate_record(NULL::"public"."global_patients", n.vals) AS o
    WHERE t."id" = o."id" AND ($2::text COLLATE "C", $3::text COLLATE "C") < (n.source_topic, n.source_key)
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
    SELECT r."id"
    FROM old AS o CROSS JOIN LATERAL json_populate_record(NULL::"public"."global_patients",
        json_build_object('id', o.target_key::json->>0)) AS r
    WHERE NOT EXISTS (SELECT 1 FROM dualsync.links AS x
        WHERE x.target = $1::text AND x.target_key = o.target_key
          AND NOT (x.source_topic = $2::text AND x.source_key = $3::text))
), refill AS (
    UPDATE "public"."global_patients" AS t SET "phone" = o."phone", "name" = o."name", "email" = o."email", "birth_date" = o."birth_date", "notes" = o."notes", "origin" = o."origin"
    FROM (SELECT DISTINCT ON (x.target_key) x.target_key, x.source_topic, x.source_key, x.vals
        FROM (SELECT DISTINCT target_key FROM old) AS g CROSS JOIN LATERAL (
            SELECT x.* FROM dualsync.links AS x
            WHERE x.target = $1::text AND x.target_key = g.target_key AND x.vals IS NOT NULL
              AND NOT (x.source_topic = $2::text AND x.source_key = $3::text) OFFSET 0) AS x
        ORDER BY x.target_key, x.source_topic COLLATE "C", x.source_key COLLATE "C") AS n
    CROSS JOIN LATERAL jsonb_populate_record(NULL::"public"."global_patients", n.vals) AS o
    WHERE t."id" = o."id" AND ($2::text COLLATE "C", $3::text COLLATE "C") < (n.source_topic, n.source_key)
)
DELETE FROM "public"."global_patients" AS t
USING orphan AS o WHERE t."id" = o."id";

-- truncate_sql, 4 parameters ($1 target id, $2 source topic, $3 partition, $4 partitions):
WITH old AS (
    DELETE FROM dualsync.links AS l
    WHERE l.target = $1::text AND l.source_topic = $2::text AND ($3::int IS NULL OR dualsync.kafka_partition(l.source_key, $4::int) = $3::int)
    RETURNING l.target_key
), touched AS (
    INSERT INTO pg_temp.ds_touched (target, target_key)
    SELECT $1::text, g.target_key FROM (SELECT target_key FROM old) AS g WHERE g.target_key IS NOT NULL
), orphan AS (
    SELECT r."id"
    FROM old AS o CROSS JOIN LATERAL json_populate_record(NULL::"public"."global_patients",
        json_build_object('id', o.target_key::json->>0)) AS r
    WHERE NOT EXISTS (SELECT 1 FROM dualsync.links AS x
        WHERE x.target = $1::text AND x.target_key = o.target_key
          AND NOT (x.source_topic = $2::text AND ($3::int IS NULL OR dualsync.kafka_partition(x.source_key, $4::int) = $3::int)))
), refill AS (
    UPDATE "public"."global_patients" AS t SET "phone" = o."phone", "name" = o."name", "email" = o."email", "birth_date" = o."birth_date", "notes" = o."notes", "origin" = o."origin"
    FROM (SELECT DISTINCT ON (x.target_key) x.target_key, x.source_topic, x.source_key, x.vals
        FROM (SELECT DISTINCT target_key FROM old) AS g CROSS JOIN LATERAL (
            SELECT x.* FROM dualsync.links AS x
            WHERE x.target = $1::text AND x.target_key = g.target_key AND x.vals IS NOT NULL
              AND NOT (x.source_topic = $2::text AND ($3::int IS NULL OR dualsync.kafka_partition(x.source_key, $4::int) = $3::int)) OFFSET 0) AS x
        ORDER BY x.target_key, x.source_topic COLLATE "C", x.source_key COLLATE "C") AS n
    CROSS JOIN LATERAL jsonb_populate_record(NULL::"public"."global_patients", n.vals) AS o
    WHERE t."id" = o."id"
)
DELETE FROM "public"."global_patients" AS t
USING orphan AS o WHERE t."id" = o."id";

-- settle_sql, 1 parameter ($1 target id):
WITH me AS (
    SELECT pg_current_xact_id()::xid AS xid
), k AS (
    SELECT g.target_key FROM (SELECT DISTINCT target_key FROM pg_temp.ds_touched WHERE target = $1::text) AS g, me
    WHERE NOT EXISTS (SELECT 1 FROM (SELECT count(*) AS n, bool_and(x.xmin = me.xid) AS own
            FROM dualsync.links AS x WHERE x.target = $1::text AND x.target_key = g.target_key) AS l
        WHERE l.n = 1 AND l.own AND EXISTS (SELECT 1 FROM "public"."global_patients" AS t, json_populate_record(NULL::"public"."global_patients", json_build_object('id', g.target_key::json->>0)) AS o
            WHERE t."id" = o."id" AND t.xmin = me.xid))
), n AS (
    SELECT DISTINCT ON (x.target_key) x.target_key, x.vals
    FROM k CROSS JOIN LATERAL (
        SELECT x.* FROM dualsync.links AS x
        WHERE x.target = $1::text AND x.target_key = k.target_key AND x.vals IS NOT NULL OFFSET 0) AS x
    ORDER BY x.target_key, x.source_topic COLLATE "C", x.source_key COLLATE "C"
), up AS (
    INSERT INTO "public"."global_patients" AS t ("id", "phone", "name", "email", "birth_date", "notes", "origin")
    SELECT o."id", o."phone", o."name", o."email", o."birth_date", o."notes", o."origin"
    FROM n CROSS JOIN LATERAL jsonb_populate_record(NULL::"public"."global_patients", n.vals) AS o
    WHERE NOT EXISTS (SELECT 1 FROM "public"."global_patients" AS t WHERE t."id" = o."id"
        AND jsonb_build_array(t."phone", t."name", t."email", t."birth_date", t."notes", t."origin") = jsonb_build_array(o."phone", o."name", o."email", o."birth_date", o."notes", o."origin"))
    ON CONFLICT ("id") DO UPDATE SET
        "phone" = EXCLUDED."phone",
        "name" = EXCLUDED."name",
        "email" = EXCLUDED."email",
        "birth_date" = EXCLUDED."birth_date",
        "notes" = EXCLUDED."notes",
        "origin" = EXCLUDED."origin"
    RETURNING 1
), orphan AS (
    SELECT r."id"
    FROM k AS o CROSS JOIN LATERAL json_populate_record(NULL::"public"."global_patients",
        json_build_object('id', o.target_key::json->>0)) AS r
    WHERE NOT EXISTS (SELECT 1 FROM dualsync.links AS x
        WHERE x.target = $1::text AND x.target_key = o.target_key)
), gone AS (
    DELETE FROM "public"."global_patients" AS t
    USING orphan AS o WHERE t."id" = o."id"
    RETURNING 1
)
SELECT (SELECT count(*) FROM up) + (SELECT count(*) FROM gone) AS settled;

-- batch statement ($1 target id, $2 source topic, $3..$18 arrays of write_sql's $3..$18, $19 ord, $20 op):
WITH i AS (
    SELECT * FROM unnest($3::T3[], $4::T4[], $5::T5[], $6::T6[], $7::T7[], $8::T8[], $9::T9[], $10::T10[], $11::T11[], $12::T12[], $13::T13[], $14::T14[], $15::T15[], $16::T16[], $17::T17[], $18::T18[], $19::bigint[], $20::text[])
        AS i(p3, p4, p5, p6, p7, p8, p9, p10, p11, p12, p13, p14, p15, p16, p17, p18, ord, op)
), w AS (
    SELECT i.*, true AS ok, json_build_array(r."id"::text)::text AS target_key
    FROM i CROSS JOIN LATERAL json_populate_record(NULL::"public"."global_patients", json_build_object('id', i.p4)) AS r
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
    INSERT INTO "public"."global_patients" AS t ("id", "phone", "name", "email", "birth_date", "notes", "origin")
    SELECT i.p4, i.p5, i.p6, i.p7, i.p8::date, i.p9, i.p10
    FROM win AS i
    ON CONFLICT ("id") DO UPDATE SET
        "phone" = EXCLUDED."phone",
        "name" = EXCLUDED."name",
        "email" = EXCLUDED."email",
        "birth_date" = EXCLUDED."birth_date",
        "notes" = EXCLUDED."notes",
        "origin" = EXCLUDED."origin"
    RETURNING json_build_array(t."id"::text)::text AS target_key, t.xmax = 0 AS fresh
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
        jsonb_build_object('id', i.p4, 'phone', i.p5, 'name', i.p6, 'email', i.p7, 'birth_date', i.p8::date, 'notes', i.p9, 'origin', i.p10)
    FROM w AS i WHERE i.ok
    ON CONFLICT (target, source_topic, source_key, target_key)
        DO UPDATE SET vals = EXCLUDED.vals
), touched AS (
    INSERT INTO pg_temp.ds_touched (target, target_key)
    SELECT $1::text, g.target_key FROM (SELECT g.target_key FROM (SELECT i.target_key, count(*) OVER (PARTITION BY i.target_key) AS n FROM w AS i WHERE i.ok) AS g WHERE g.n > 1 OR g.target_key NOT IN (SELECT u.target_key FROM up AS u WHERE u.fresh) UNION ALL SELECT target_key FROM old) AS g WHERE g.target_key IS NOT NULL
), orphan AS (
    SELECT r."id"
    FROM (SELECT DISTINCT target_key FROM old) AS o CROSS JOIN LATERAL json_populate_record(NULL::"public"."global_patients",
        json_build_object('id', o.target_key::json->>0)) AS r
    WHERE NOT EXISTS (SELECT 1 FROM moved AS m WHERE m.target_key = o.target_key)
      AND NOT EXISTS (SELECT 1 FROM dualsync.links AS x
        WHERE x.target = $1::text AND x.target_key = o.target_key
          AND NOT (x.source_topic = $2::text AND x.source_key IN (SELECT m.source_key FROM moved AS m)))
), gone AS (
    DELETE FROM "public"."global_patients" AS t
    USING orphan AS o WHERE t."id" = o."id"
), refill AS (
    UPDATE "public"."global_patients" AS t SET "phone" = o."phone", "name" = o."name", "email" = o."email", "birth_date" = o."birth_date", "notes" = o."notes", "origin" = o."origin"
    FROM (SELECT DISTINCT ON (x.target_key) x.target_key, x.source_topic, x.source_key, x.vals
        FROM (SELECT DISTINCT target_key FROM old) AS g CROSS JOIN LATERAL (
            SELECT x.* FROM dualsync.links AS x
            WHERE x.target = $1::text AND x.target_key = g.target_key AND x.vals IS NOT NULL
              AND NOT (x.source_topic = $2::text AND x.source_key IN (SELECT m.source_key FROM moved AS m)) OFFSET 0) AS x
        ORDER BY x.target_key, x.source_topic COLLATE "C", x.source_key COLLATE "C") AS n
    CROSS JOIN LATERAL jsonb_populate_record(NULL::"public"."global_patients", n.vals) AS o
    WHERE t."id" = o."id" AND NOT EXISTS (SELECT 1 FROM win WHERE win.target_key = n.target_key)
)
SELECT i.ord FROM w AS i WHERE NOT i.ok;

-- no form without links
