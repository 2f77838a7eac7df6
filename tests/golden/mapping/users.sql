-- Generated from tests/unit/mapping/users.json (topic clinic.public.users).

-- target users/doctors: table "public"."global_doctors", connection clinic
-- write_sql, 17 parameters:
--   $1 target id
--   $2 source topic
--   $3 source key (the message key text)
--   $4 value of column "id"
--   $5 value of column "legacy_id"
--   $6 value of column "name"
--   $7 value of column "email"
--   $8 value of column "specialty"
--   $9 a value inside of column "years"
--   $10 keep the stored "legacy_id" (unchanged TOASTed source value)
--   $11 keep the stored "name" (unchanged TOASTed source value)
--   $12 keep the stored "email" (unchanged TOASTed source value)
--   $13 keep the stored "specialty" (unchanged TOASTed source value)
--   $14 keep the stored "years" (unchanged TOASTed source value)
--   $15 copy mode ('c', 'r' or NULL)
--   $16 copy commit LSN
--   $17 copy LSN
WITH prev AS (
    SELECT r.* FROM dualsync.links AS l CROSS JOIN LATERAL jsonb_populate_record(NULL::"public"."global_doctors", l.vals) AS r
    WHERE l.target = $1::text AND l.source_topic = $2::text AND l.source_key = $3::text AND l.vals IS NOT NULL
    LIMIT 1
), up AS (
    INSERT INTO "public"."global_doctors" AS t ("id", "legacy_id", "name", "email", "specialty", "years")
    SELECT $4, CASE WHEN $10::boolean THEN (SELECT p."legacy_id" FROM prev AS p) ELSE $5 END, CASE WHEN $11::boolean THEN (SELECT p."name" FROM prev AS p) ELSE $6 END, CASE WHEN $12::boolean THEN (SELECT p."email" FROM prev AS p) ELSE $7 END, CASE WHEN $13::boolean THEN (SELECT p."specialty" FROM prev AS p) ELSE $8 END, CASE WHEN $14::boolean THEN (SELECT p."years" FROM prev AS p) ELSE $9::integer END
    ON CONFLICT ("id") DO UPDATE SET
        "legacy_id" = CASE WHEN $10::boolean AND NOT EXISTS (SELECT 1 FROM prev) THEN t."legacy_id" ELSE EXCLUDED."legacy_id" END,
        "name" = CASE WHEN $11::boolean AND NOT EXISTS (SELECT 1 FROM prev) THEN t."name" ELSE EXCLUDED."name" END,
        "email" = CASE WHEN $12::boolean AND NOT EXISTS (SELECT 1 FROM prev) THEN t."email" ELSE EXCLUDED."email" END,
        "specialty" = CASE WHEN $13::boolean AND NOT EXISTS (SELECT 1 FROM prev) THEN t."specialty" ELSE EXCLUDED."specialty" END,
        "years" = CASE WHEN $14::boolean AND NOT EXISTS (SELECT 1 FROM prev) THEN t."years" ELSE EXCLUDED."years" END
    WHERE NOT EXISTS (SELECT 1 FROM dualsync.links AS x
        WHERE x.target = $1::text AND x.target_key = json_build_array(t."id"::text)::text AND x.vals IS NOT NULL
          AND (x.source_topic COLLATE "C", x.source_key COLLATE "C") < ($2::text, $3::text))
), k AS (
    SELECT json_build_array(r."id"::text)::text AS target_key,
        jsonb_build_object('id', $4, 'legacy_id', CASE WHEN $10::boolean THEN (SELECT p."legacy_id" FROM prev AS p) ELSE $5 END, 'name', CASE WHEN $11::boolean THEN (SELECT p."name" FROM prev AS p) ELSE $6 END, 'email', CASE WHEN $12::boolean THEN (SELECT p."email" FROM prev AS p) ELSE $7 END, 'specialty', CASE WHEN $13::boolean THEN (SELECT p."specialty" FROM prev AS p) ELSE $8 END, 'years', CASE WHEN $14::boolean THEN (SELECT p."years" FROM prev AS p) ELSE $9::integer END) AS vals
    FROM json_populate_record(NULL::"public"."global_doctors", json_build_object('id', $4)) AS r
), old AS (
    DELETE FROM dualsync.links AS l USING k
    WHERE l.target = $1::text AND l.source_topic = $2::text AND l.source_key = $3::text
      AND l.target_key <> k.target_key
    RETURNING l.target_key
), link AS (
    INSERT INTO dualsync.links AS l (target, source_topic, source_key, target_key, vals, copy_commit, copy_lsn)
    SELECT $1::text, $2::text, $3::text, k.target_key, k.vals, $16::pg_lsn, $17::pg_lsn FROM k
    ON CONFLICT (target, source_topic, source_key, target_key)
        DO UPDATE SET vals = EXCLUDED.vals,
            copies = l.copies + CASE WHEN $15::text = 'r' OR ($15::text = 'c' AND CASE WHEN l.copy_lsn IS NULL OR $17::pg_lsn IS NULL THEN true WHEN $16::pg_lsn IS NULL THEN $17::pg_lsn > l.copy_lsn WHEN l.copy_commit IS NULL THEN $16::pg_lsn > l.copy_lsn ELSE ($16::pg_lsn, $17::pg_lsn) > (l.copy_commit, l.copy_lsn) END) THEN 1 ELSE 0 END,
            copy_commit = CASE WHEN $15::text = 'c' AND CASE WHEN l.copy_lsn IS NULL OR $17::pg_lsn IS NULL THEN true WHEN $16::pg_lsn IS NULL THEN $17::pg_lsn > l.copy_lsn WHEN l.copy_commit IS NULL THEN $16::pg_lsn > l.copy_lsn ELSE ($16::pg_lsn, $17::pg_lsn) > (l.copy_commit, l.copy_lsn) END THEN EXCLUDED.copy_commit ELSE l.copy_commit END,
            copy_lsn = CASE WHEN $15::text = 'c' AND CASE WHEN l.copy_lsn IS NULL OR $17::pg_lsn IS NULL THEN true WHEN $16::pg_lsn IS NULL THEN $17::pg_lsn > l.copy_lsn WHEN l.copy_commit IS NULL THEN $16::pg_lsn > l.copy_lsn ELSE ($16::pg_lsn, $17::pg_lsn) > (l.copy_commit, l.copy_lsn) END THEN EXCLUDED.copy_lsn ELSE l.copy_lsn END
), touched AS (
    INSERT INTO pg_temp.ds_touched (target, target_key)
    SELECT $1::text, g.target_key FROM (SELECT target_key FROM k UNION ALL SELECT target_key FROM old) AS g WHERE g.target_key IS NOT NULL
), orphan AS (
    SELECT r."id"
    FROM old AS o CROSS JOIN LATERAL json_populate_record(NULL::"public"."global_doctors",
        json_build_object('id', o.target_key::json->>0)) AS r
    WHERE NOT EXISTS (SELECT 1 FROM dualsync.links AS x
        WHERE x.target = $1::text AND x.target_key = o.target_key
          AND NOT (x.source_topic = $2::text AND x.source_key = $3::text))
), gone AS (
    DELETE FROM "public"."global_doctors" AS t
    USING orphan AS o WHERE t."id" = o."id"
), refill AS (
    UPDATE "public"."global_doctors" AS t SET "legacy_id" = o."legacy_id", "name" = o."name", "email" = o."email", "specialty" = o."specialty", "years" = o."years"
    FROM (SELECT DISTINCT ON (x.target_key) x.target_key, x.source_topic, x.source_key, x.vals
        FROM old AS g CROSS JOIN LATERAL (
            SELECT x.* FROM dualsync.links AS x
            WHERE x.target = $1::text AND x.target_key = g.target_key AND x.vals IS NOT NULL
              AND NOT (x.source_topic = $2::text AND x.source_key = $3::text) OFFSET 0) AS x
        ORDER BY x.target_key, x.source_topic COLLATE "C", x.source_key COLLATE "C") AS n
    CROSS JOIN LATERAL jsonb_populate_record(NULL::"public"."global_doctors", n.vals) AS o
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
    FROM old AS o CROSS JOIN LATERAL json_populate_record(NULL::"public"."global_doctors",
        json_build_object('id', o.target_key::json->>0)) AS r
    WHERE NOT EXISTS (SELECT 1 FROM dualsync.links AS x
        WHERE x.target = $1::text AND x.target_key = o.target_key
          AND NOT (x.source_topic = $2::text AND x.source_key = $3::text))
), refill AS (
    UPDATE "public"."global_doctors" AS t SET "legacy_id" = o."legacy_id", "name" = o."name", "email" = o."email", "specialty" = o."specialty", "years" = o."years"
    FROM (SELECT DISTINCT ON (x.target_key) x.target_key, x.source_topic, x.source_key, x.vals
        FROM (SELECT DISTINCT target_key FROM old) AS g CROSS JOIN LATERAL (
            SELECT x.* FROM dualsync.links AS x
            WHERE x.target = $1::text AND x.target_key = g.target_key AND x.vals IS NOT NULL
              AND NOT (x.source_topic = $2::text AND x.source_key = $3::text) OFFSET 0) AS x
        ORDER BY x.target_key, x.source_topic COLLATE "C", x.source_key COLLATE "C") AS n
    CROSS JOIN LATERAL jsonb_populate_record(NULL::"public"."global_doctors", n.vals) AS o
    WHERE t."id" = o."id" AND ($2::text COLLATE "C", $3::text COLLATE "C") < (n.source_topic, n.source_key)
)
DELETE FROM "public"."global_doctors" AS t
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
    FROM old AS o CROSS JOIN LATERAL json_populate_record(NULL::"public"."global_doctors",
        json_build_object('id', o.target_key::json->>0)) AS r
    WHERE NOT EXISTS (SELECT 1 FROM dualsync.links AS x
        WHERE x.target = $1::text AND x.target_key = o.target_key
          AND NOT (x.source_topic = $2::text AND ($3::int IS NULL OR dualsync.kafka_partition(x.source_key, $4::int) = $3::int)))
), refill AS (
    UPDATE "public"."global_doctors" AS t SET "legacy_id" = o."legacy_id", "name" = o."name", "email" = o."email", "specialty" = o."specialty", "years" = o."years"
    FROM (SELECT DISTINCT ON (x.target_key) x.target_key, x.source_topic, x.source_key, x.vals
        FROM (SELECT DISTINCT target_key FROM old) AS g CROSS JOIN LATERAL (
            SELECT x.* FROM dualsync.links AS x
            WHERE x.target = $1::text AND x.target_key = g.target_key AND x.vals IS NOT NULL
              AND NOT (x.source_topic = $2::text AND ($3::int IS NULL OR dualsync.kafka_partition(x.source_key, $4::int) = $3::int)) OFFSET 0) AS x
        ORDER BY x.target_key, x.source_topic COLLATE "C", x.source_key COLLATE "C") AS n
    CROSS JOIN LATERAL jsonb_populate_record(NULL::"public"."global_doctors", n.vals) AS o
    WHERE t."id" = o."id"
)
DELETE FROM "public"."global_doctors" AS t
USING orphan AS o WHERE t."id" = o."id";

-- settle_sql, 1 parameter ($1 target id):
WITH me AS (
    SELECT pg_current_xact_id()::xid AS xid
), k AS (
    SELECT g.target_key FROM (SELECT DISTINCT target_key FROM pg_temp.ds_touched WHERE target = $1::text) AS g, me
    WHERE NOT EXISTS (SELECT 1 FROM (SELECT count(*) AS n, bool_and(x.xmin = me.xid) AS own
            FROM dualsync.links AS x WHERE x.target = $1::text AND x.target_key = g.target_key) AS l
        WHERE l.n = 1 AND l.own AND EXISTS (SELECT 1 FROM "public"."global_doctors" AS t, json_populate_record(NULL::"public"."global_doctors", json_build_object('id', g.target_key::json->>0)) AS o
            WHERE t."id" = o."id" AND t.xmin = me.xid))
), n AS (
    SELECT DISTINCT ON (x.target_key) x.target_key, x.vals
    FROM k CROSS JOIN LATERAL (
        SELECT x.* FROM dualsync.links AS x
        WHERE x.target = $1::text AND x.target_key = k.target_key AND x.vals IS NOT NULL OFFSET 0) AS x
    ORDER BY x.target_key, x.source_topic COLLATE "C", x.source_key COLLATE "C"
), up AS (
    INSERT INTO "public"."global_doctors" AS t ("id", "legacy_id", "name", "email", "specialty", "years")
    SELECT o."id", o."legacy_id", o."name", o."email", o."specialty", o."years"
    FROM n CROSS JOIN LATERAL jsonb_populate_record(NULL::"public"."global_doctors", n.vals) AS o
    WHERE NOT EXISTS (SELECT 1 FROM "public"."global_doctors" AS t WHERE t."id" = o."id"
        AND jsonb_build_array(t."legacy_id", t."name", t."email", t."specialty", t."years") = jsonb_build_array(o."legacy_id", o."name", o."email", o."specialty", o."years"))
    ON CONFLICT ("id") DO UPDATE SET
        "legacy_id" = EXCLUDED."legacy_id",
        "name" = EXCLUDED."name",
        "email" = EXCLUDED."email",
        "specialty" = EXCLUDED."specialty",
        "years" = EXCLUDED."years"
    RETURNING 1
), orphan AS (
    SELECT r."id"
    FROM k AS o CROSS JOIN LATERAL json_populate_record(NULL::"public"."global_doctors",
        json_build_object('id', o.target_key::json->>0)) AS r
    WHERE NOT EXISTS (SELECT 1 FROM dualsync.links AS x
        WHERE x.target = $1::text AND x.target_key = o.target_key)
), gone AS (
    DELETE FROM "public"."global_doctors" AS t
    USING orphan AS o WHERE t."id" = o."id"
    RETURNING 1
)
SELECT (SELECT count(*) FROM up) + (SELECT count(*) FROM gone) AS settled;

-- batch statement ($1 target id, $2 source topic, $3..$17 arrays of write_sql's $3..$17, $18 ord, $19 op):
WITH i AS (
    SELECT * FROM unnest($3::T3[], $4::T4[], $5::T5[], $6::T6[], $7::T7[], $8::T8[], $9::T9[], $10::T10[], $11::T11[], $12::T12[], $13::T13[], $14::T14[], $15::T15[], $16::T16[], $17::T17[], $18::bigint[], $19::text[])
        AS i(p3, p4, p5, p6, p7, p8, p9, p10, p11, p12, p13, p14, p15, p16, p17, ord, op)
), w AS (
    SELECT i.*, true AS ok, json_build_array(r."id"::text)::text AS target_key
    FROM i CROSS JOIN LATERAL json_populate_record(NULL::"public"."global_doctors", json_build_object('id', i.p4)) AS r
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
    INSERT INTO "public"."global_doctors" AS t ("id", "legacy_id", "name", "email", "specialty", "years")
    SELECT i.p4, i.p5, i.p6, i.p7, i.p8, i.p9::integer
    FROM win AS i
    ON CONFLICT ("id") DO UPDATE SET
        "legacy_id" = EXCLUDED."legacy_id",
        "name" = EXCLUDED."name",
        "email" = EXCLUDED."email",
        "specialty" = EXCLUDED."specialty",
        "years" = EXCLUDED."years"
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
        jsonb_build_object('id', i.p4, 'legacy_id', i.p5, 'name', i.p6, 'email', i.p7, 'specialty', i.p8, 'years', i.p9::integer)
    FROM w AS i WHERE i.ok
    ON CONFLICT (target, source_topic, source_key, target_key)
        DO UPDATE SET vals = EXCLUDED.vals
), touched AS (
    INSERT INTO pg_temp.ds_touched (target, target_key)
    SELECT $1::text, g.target_key FROM (SELECT g.target_key FROM (SELECT i.target_key, count(*) OVER (PARTITION BY i.target_key) AS n FROM w AS i WHERE i.ok) AS g WHERE g.n > 1 OR g.target_key NOT IN (SELECT u.target_key FROM up AS u WHERE u.fresh) UNION ALL SELECT target_key FROM old) AS g WHERE g.target_key IS NOT NULL
), orphan AS (
    SELECT r."id"
    FROM (SELECT DISTINCT target_key FROM old) AS o CROSS JOIN LATERAL json_populate_record(NULL::"public"."global_doctors",
        json_build_object('id', o.target_key::json->>0)) AS r
    WHERE NOT EXISTS (SELECT 1 FROM moved AS m WHERE m.target_key = o.target_key)
      AND NOT EXISTS (SELECT 1 FROM dualsync.links AS x
        WHERE x.target = $1::text AND x.target_key = o.target_key
          AND NOT (x.source_topic = $2::text AND x.source_key IN (SELECT m.source_key FROM moved AS m)))
), gone AS (
    DELETE FROM "public"."global_doctors" AS t
    USING orphan AS o WHERE t."id" = o."id"
), refill AS (
    UPDATE "public"."global_doctors" AS t SET "legacy_id" = o."legacy_id", "name" = o."name", "email" = o."email", "specialty" = o."specialty", "years" = o."years"
    FROM (SELECT DISTINCT ON (x.target_key) x.target_key, x.source_topic, x.source_key, x.vals
        FROM (SELECT DISTINCT target_key FROM old) AS g CROSS JOIN LATERAL (
            SELECT x.* FROM dualsync.links AS x
            WHERE x.target = $1::text AND x.target_key = g.target_key AND x.vals IS NOT NULL
              AND NOT (x.source_topic = $2::text AND x.source_key IN (SELECT m.source_key FROM moved AS m)) OFFSET 0) AS x
        ORDER BY x.target_key, x.source_topic COLLATE "C", x.source_key COLLATE "C") AS n
    CROSS JOIN LATERAL jsonb_populate_record(NULL::"public"."global_doctors", n.vals) AS o
    WHERE t."id" = o."id" AND NOT EXISTS (SELECT 1 FROM win WHERE win.target_key = n.target_key)
)
SELECT i.ord FROM w AS i WHERE NOT i.ok;

-- without links (the key is computed from source key columns: id), write_sql's parameters:
WITH up AS (
    INSERT INTO "public"."global_doctors" AS t ("id", "legacy_id", "name", "email", "specialty", "years")
    SELECT $4, $5, $6, $7, $8, $9::integer
    ON CONFLICT ("id") DO UPDATE SET
        "legacy_id" = CASE WHEN $10::boolean THEN t."legacy_id" ELSE EXCLUDED."legacy_id" END,
        "name" = CASE WHEN $11::boolean THEN t."name" ELSE EXCLUDED."name" END,
        "email" = CASE WHEN $12::boolean THEN t."email" ELSE EXCLUDED."email" END,
        "specialty" = CASE WHEN $13::boolean THEN t."specialty" ELSE EXCLUDED."specialty" END,
        "years" = CASE WHEN $14::boolean THEN t."years" ELSE EXCLUDED."years" END
)
SELECT true AS applied FROM (SELECT $1::text, $2::text, $3::text, $15::text, $16::pg_lsn, $17::pg_lsn) AS unread;
-- unlink without links:
DELETE FROM "public"."global_doctors" AS t USING (SELECT $1::text, $2::text, $3::text, $5::text, $6::text, $7::text, $8::text, $9::text, $10::boolean, $11::boolean, $12::boolean, $13::boolean, $14::boolean, $15::text, $16::pg_lsn, $17::pg_lsn) AS unread WHERE t."id" = $4;
-- truncate without links:
DELETE FROM "public"."global_doctors" AS t USING (SELECT $1::text, $2::text, $3::text, $4::text) AS unread WHERE true;
-- batch statement without links:
WITH i AS (
    SELECT * FROM unnest($3::T3[], $4::T4[], $5::T5[], $6::T6[], $7::T7[], $8::T8[], $9::T9[], $10::T10[], $11::T11[], $12::T12[], $13::T13[], $14::T14[], $15::T15[], $16::T16[], $17::T17[], $18::bigint[], $19::text[])
        AS i(p3, p4, p5, p6, p7, p8, p9, p10, p11, p12, p13, p14, p15, p16, p17, ord, op)
), w AS (
    SELECT i.*, true AS ok FROM i, (SELECT $1::text, $2::text) AS unread
    WHERE i.op = 'u'
), up AS (
    INSERT INTO "public"."global_doctors" AS t ("id", "legacy_id", "name", "email", "specialty", "years")
    SELECT i.p4, i.p5, i.p6, i.p7, i.p8, i.p9::integer
    FROM w AS i WHERE i.ok
    ON CONFLICT ("id") DO UPDATE SET
        "legacy_id" = EXCLUDED."legacy_id",
        "name" = EXCLUDED."name",
        "email" = EXCLUDED."email",
        "specialty" = EXCLUDED."specialty",
        "years" = EXCLUDED."years"
), gone AS (
    DELETE FROM "public"."global_doctors" AS t USING i WHERE i.op = 'd' AND t."id" = i.p4
)
SELECT i.ord FROM w AS i WHERE NOT i.ok;

-- target users/clinic_doctors: table "public"."clinic_doctors", connection clinic
-- write_sql, 11 parameters:
--   $1 target id
--   $2 source topic
--   $3 source key (the message key text)
--   $4 value of column "clinic_id"
--   $5 a value inside of column "doctor_id"
--   $6 value of column "license"
--   $7 value of column "deleted_at"
--   $8 keep the stored "license" (unchanged TOASTed source value)
--   $9 copy mode ('c', 'r' or NULL)
--   $10 copy commit LSN
--   $11 copy LSN
WITH prev AS (
    SELECT r.* FROM dualsync.links AS l CROSS JOIN LATERAL jsonb_populate_record(NULL::"public"."clinic_doctors", l.vals) AS r
    WHERE l.target = $1::text AND l.source_topic = $2::text AND l.source_key = $3::text AND l.vals IS NOT NULL
    LIMIT 1
), up AS (
    INSERT INTO "public"."clinic_doctors" AS t ("clinic_id", "doctor_id", "license", "deleted_at")
    SELECT $4, (SELECT lk1."id" FROM "public"."global_doctors" AS lk1 WHERE lk1."legacy_id" = $5), CASE WHEN $8::boolean THEN (SELECT p."license" FROM prev AS p) ELSE $6 END, $7
    WHERE (EXISTS (SELECT 1 FROM "public"."global_doctors" AS lk1 WHERE lk1."legacy_id" = $5) OR $5 IS NULL)
    ON CONFLICT ("clinic_id", "doctor_id") DO UPDATE SET
        "license" = CASE WHEN $8::boolean AND NOT EXISTS (SELECT 1 FROM prev) THEN t."license" ELSE EXCLUDED."license" END,
        "deleted_at" = EXCLUDED."deleted_at"
    WHERE NOT EXISTS (SELECT 1 FROM dualsync.links AS x
        WHERE x.target = $1::text AND x.target_key = json_build_array(t."clinic_id"::text, t."doctor_id"::text)::text AND x.vals IS NOT NULL
          AND (x.source_topic COLLATE "C", x.source_key COLLATE "C") < ($2::text, $3::text))
), k AS (
    SELECT json_build_array(r."clinic_id"::text, r."doctor_id"::text)::text AS target_key,
        jsonb_build_object('clinic_id', $4, 'doctor_id', (SELECT lk1."id" FROM "public"."global_doctors" AS lk1 WHERE lk1."legacy_id" = $5), 'license', CASE WHEN $8::boolean THEN (SELECT p."license" FROM prev AS p) ELSE $6 END, 'deleted_at', $7) AS vals
    FROM json_populate_record(NULL::"public"."clinic_doctors", json_build_object('clinic_id', $4, 'doctor_id', (SELECT lk1."id" FROM "public"."global_doctors" AS lk1 WHERE lk1."legacy_id" = $5))) AS r
    WHERE (EXISTS (SELECT 1 FROM "public"."global_doctors" AS lk1 WHERE lk1."legacy_id" = $5) OR $5 IS NULL)
), old AS (
    DELETE FROM dualsync.links AS l USING k
    WHERE l.target = $1::text AND l.source_topic = $2::text AND l.source_key = $3::text
      AND l.target_key <> k.target_key
    RETURNING l.target_key
), link AS (
    INSERT INTO dualsync.links AS l (target, source_topic, source_key, target_key, vals, copy_commit, copy_lsn)
    SELECT $1::text, $2::text, $3::text, k.target_key, k.vals, $10::pg_lsn, $11::pg_lsn FROM k
    ON CONFLICT (target, source_topic, source_key, target_key)
        DO UPDATE SET vals = EXCLUDED.vals,
            copies = l.copies + CASE WHEN $9::text = 'r' OR ($9::text = 'c' AND CASE WHEN l.copy_lsn IS NULL OR $11::pg_lsn IS NULL THEN true WHEN $10::pg_lsn IS NULL THEN $11::pg_lsn > l.copy_lsn WHEN l.copy_commit IS NULL THEN $10::pg_lsn > l.copy_lsn ELSE ($10::pg_lsn, $11::pg_lsn) > (l.copy_commit, l.copy_lsn) END) THEN 1 ELSE 0 END,
            copy_commit = CASE WHEN $9::text = 'c' AND CASE WHEN l.copy_lsn IS NULL OR $11::pg_lsn IS NULL THEN true WHEN $10::pg_lsn IS NULL THEN $11::pg_lsn > l.copy_lsn WHEN l.copy_commit IS NULL THEN $10::pg_lsn > l.copy_lsn ELSE ($10::pg_lsn, $11::pg_lsn) > (l.copy_commit, l.copy_lsn) END THEN EXCLUDED.copy_commit ELSE l.copy_commit END,
            copy_lsn = CASE WHEN $9::text = 'c' AND CASE WHEN l.copy_lsn IS NULL OR $11::pg_lsn IS NULL THEN true WHEN $10::pg_lsn IS NULL THEN $11::pg_lsn > l.copy_lsn WHEN l.copy_commit IS NULL THEN $10::pg_lsn > l.copy_lsn ELSE ($10::pg_lsn, $11::pg_lsn) > (l.copy_commit, l.copy_lsn) END THEN EXCLUDED.copy_lsn ELSE l.copy_lsn END
), touched AS (
    INSERT INTO pg_temp.ds_touched (target, target_key)
    SELECT $1::text, g.target_key FROM (SELECT target_key FROM k UNION ALL SELECT target_key FROM old) AS g WHERE g.target_key IS NOT NULL
), orphan AS (
    SELECT r."clinic_id", r."doctor_id"
    FROM old AS o CROSS JOIN LATERAL json_populate_record(NULL::"public"."clinic_doctors",
        json_build_object('clinic_id', o.target_key::json->>0, 'doctor_id', o.target_key::json->>1)) AS r
    WHERE NOT EXISTS (SELECT 1 FROM dualsync.links AS x
        WHERE x.target = $1::text AND x.target_key = o.target_key
          AND NOT (x.source_topic = $2::text AND x.source_key = $3::text))
), gone AS (
    UPDATE "public"."clinic_doctors" AS t SET "deleted_at" = now()
    FROM orphan AS o WHERE t."clinic_id" = o."clinic_id" AND t."doctor_id" = o."doctor_id"
), refill AS (
    UPDATE "public"."clinic_doctors" AS t SET "license" = o."license", "deleted_at" = o."deleted_at"
    FROM (SELECT DISTINCT ON (x.target_key) x.target_key, x.source_topic, x.source_key, x.vals
        FROM old AS g CROSS JOIN LATERAL (
            SELECT x.* FROM dualsync.links AS x
            WHERE x.target = $1::text AND x.target_key = g.target_key AND x.vals IS NOT NULL
              AND NOT (x.source_topic = $2::text AND x.source_key = $3::text) OFFSET 0) AS x
        ORDER BY x.target_key, x.source_topic COLLATE "C", x.source_key COLLATE "C") AS n
    CROSS JOIN LATERAL jsonb_populate_record(NULL::"public"."clinic_doctors", n.vals) AS o
    WHERE t."clinic_id" = o."clinic_id" AND t."doctor_id" = o."doctor_id" AND ($2::text COLLATE "C", $3::text COLLATE "C") < (n.source_topic, n.source_key)
)
SELECT (EXISTS (SELECT 1 FROM "public"."global_doctors" AS lk1 WHERE lk1."legacy_id" = $5) OR $5 IS NULL) AS applied;

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
    SELECT r."clinic_id", r."doctor_id"
    FROM old AS o CROSS JOIN LATERAL json_populate_record(NULL::"public"."clinic_doctors",
        json_build_object('clinic_id', o.target_key::json->>0, 'doctor_id', o.target_key::json->>1)) AS r
    WHERE NOT EXISTS (SELECT 1 FROM dualsync.links AS x
        WHERE x.target = $1::text AND x.target_key = o.target_key
          AND NOT (x.source_topic = $2::text AND x.source_key = $3::text))
), refill AS (
    UPDATE "public"."clinic_doctors" AS t SET "license" = o."license", "deleted_at" = o."deleted_at"
    FROM (SELECT DISTINCT ON (x.target_key) x.target_key, x.source_topic, x.source_key, x.vals
        FROM (SELECT DISTINCT target_key FROM old) AS g CROSS JOIN LATERAL (
            SELECT x.* FROM dualsync.links AS x
            WHERE x.target = $1::text AND x.target_key = g.target_key AND x.vals IS NOT NULL
              AND NOT (x.source_topic = $2::text AND x.source_key = $3::text) OFFSET 0) AS x
        ORDER BY x.target_key, x.source_topic COLLATE "C", x.source_key COLLATE "C") AS n
    CROSS JOIN LATERAL jsonb_populate_record(NULL::"public"."clinic_doctors", n.vals) AS o
    WHERE t."clinic_id" = o."clinic_id" AND t."doctor_id" = o."doctor_id" AND ($2::text COLLATE "C", $3::text COLLATE "C") < (n.source_topic, n.source_key)
)
UPDATE "public"."clinic_doctors" AS t SET "deleted_at" = now()
FROM orphan AS o WHERE t."clinic_id" = o."clinic_id" AND t."doctor_id" = o."doctor_id";

-- truncate_sql, 4 parameters ($1 target id, $2 source topic, $3 partition, $4 partitions):
WITH old AS (
    DELETE FROM dualsync.links AS l
    WHERE l.target = $1::text AND l.source_topic = $2::text AND ($3::int IS NULL OR dualsync.kafka_partition(l.source_key, $4::int) = $3::int)
    RETURNING l.target_key
), touched AS (
    INSERT INTO pg_temp.ds_touched (target, target_key)
    SELECT $1::text, g.target_key FROM (SELECT target_key FROM old) AS g WHERE g.target_key IS NOT NULL
), orphan AS (
    SELECT r."clinic_id", r."doctor_id"
    FROM old AS o CROSS JOIN LATERAL json_populate_record(NULL::"public"."clinic_doctors",
        json_build_object('clinic_id', o.target_key::json->>0, 'doctor_id', o.target_key::json->>1)) AS r
    WHERE NOT EXISTS (SELECT 1 FROM dualsync.links AS x
        WHERE x.target = $1::text AND x.target_key = o.target_key
          AND NOT (x.source_topic = $2::text AND ($3::int IS NULL OR dualsync.kafka_partition(x.source_key, $4::int) = $3::int)))
), refill AS (
    UPDATE "public"."clinic_doctors" AS t SET "license" = o."license", "deleted_at" = o."deleted_at"
    FROM (SELECT DISTINCT ON (x.target_key) x.target_key, x.source_topic, x.source_key, x.vals
        FROM (SELECT DISTINCT target_key FROM old) AS g CROSS JOIN LATERAL (
            SELECT x.* FROM dualsync.links AS x
            WHERE x.target = $1::text AND x.target_key = g.target_key AND x.vals IS NOT NULL
              AND NOT (x.source_topic = $2::text AND ($3::int IS NULL OR dualsync.kafka_partition(x.source_key, $4::int) = $3::int)) OFFSET 0) AS x
        ORDER BY x.target_key, x.source_topic COLLATE "C", x.source_key COLLATE "C") AS n
    CROSS JOIN LATERAL jsonb_populate_record(NULL::"public"."clinic_doctors", n.vals) AS o
    WHERE t."clinic_id" = o."clinic_id" AND t."doctor_id" = o."doctor_id"
)
UPDATE "public"."clinic_doctors" AS t SET "deleted_at" = now()
FROM orphan AS o WHERE t."clinic_id" = o."clinic_id" AND t."doctor_id" = o."doctor_id";

-- settle_sql, 1 parameter ($1 target id):
WITH me AS (
    SELECT pg_current_xact_id()::xid AS xid
), k AS (
    SELECT g.target_key FROM (SELECT DISTINCT target_key FROM pg_temp.ds_touched WHERE target = $1::text) AS g, me
    WHERE NOT EXISTS (SELECT 1 FROM (SELECT count(*) AS n, bool_and(x.xmin = me.xid) AS own
            FROM dualsync.links AS x WHERE x.target = $1::text AND x.target_key = g.target_key) AS l
        WHERE l.n = 1 AND l.own AND EXISTS (SELECT 1 FROM "public"."clinic_doctors" AS t, json_populate_record(NULL::"public"."clinic_doctors", json_build_object('clinic_id', g.target_key::json->>0, 'doctor_id', g.target_key::json->>1)) AS o
            WHERE t."clinic_id" = o."clinic_id" AND t."doctor_id" = o."doctor_id" AND t.xmin = me.xid))
), n AS (
    SELECT DISTINCT ON (x.target_key) x.target_key, x.vals
    FROM k CROSS JOIN LATERAL (
        SELECT x.* FROM dualsync.links AS x
        WHERE x.target = $1::text AND x.target_key = k.target_key AND x.vals IS NOT NULL OFFSET 0) AS x
    ORDER BY x.target_key, x.source_topic COLLATE "C", x.source_key COLLATE "C"
), up AS (
    INSERT INTO "public"."clinic_doctors" AS t ("clinic_id", "doctor_id", "license", "deleted_at")
    SELECT o."clinic_id", o."doctor_id", o."license", o."deleted_at"
    FROM n CROSS JOIN LATERAL jsonb_populate_record(NULL::"public"."clinic_doctors", n.vals) AS o
    WHERE NOT EXISTS (SELECT 1 FROM "public"."clinic_doctors" AS t WHERE t."clinic_id" = o."clinic_id" AND t."doctor_id" = o."doctor_id"
        AND jsonb_build_array(t."license", t."deleted_at") = jsonb_build_array(o."license", o."deleted_at"))
    ON CONFLICT ("clinic_id", "doctor_id") DO UPDATE SET
        "license" = EXCLUDED."license",
        "deleted_at" = EXCLUDED."deleted_at"
    RETURNING 1
), orphan AS (
    SELECT r."clinic_id", r."doctor_id"
    FROM k AS o CROSS JOIN LATERAL json_populate_record(NULL::"public"."clinic_doctors",
        json_build_object('clinic_id', o.target_key::json->>0, 'doctor_id', o.target_key::json->>1)) AS r
    WHERE NOT EXISTS (SELECT 1 FROM dualsync.links AS x
        WHERE x.target = $1::text AND x.target_key = o.target_key)
), gone AS (
    UPDATE "public"."clinic_doctors" AS t SET "deleted_at" = now()
    FROM orphan AS o WHERE t."clinic_id" = o."clinic_id" AND t."doctor_id" = o."doctor_id" AND t."deleted_at" IS NULL
    RETURNING 1
)
SELECT (SELECT count(*) FROM up) + (SELECT count(*) FROM gone) AS settled;

-- no batch statement (a key column is computed by the database)

-- no form without links
