-- Generated from tests/unit/mapping/offers.json (topic clinic.public.offers).

-- target offers/visible_offers: table "public"."visible_offers", connection clinic
-- write_sql, 4 parameters:
--   $1 target id
--   $2 source topic
--   $3 source key (the message key text)
--   $4 value of column "offer_id"
WITH up AS (
    INSERT INTO "public"."visible_offers" AS t ("offer_id")
    SELECT $4
    ON CONFLICT ("offer_id") DO UPDATE SET
        "offer_id" = EXCLUDED."offer_id"
    RETURNING json_build_array(t."offer_id"::text)::text AS target_key
), old AS (
    DELETE FROM dualsync.links AS l USING up
    WHERE l.target = $1::text AND l.source_topic = $2::text AND l.source_key = $3::text
      AND l.target_key <> up.target_key
    RETURNING l.target_key
), link AS (
    INSERT INTO dualsync.links (target, source_topic, source_key, target_key)
    SELECT $1::text, $2::text, $3::text, up.target_key FROM up
    ON CONFLICT DO NOTHING
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

-- unlink_sql, 3 parameters ($1 target id, $2 source topic, $3 source key):
WITH old AS (
    DELETE FROM dualsync.links AS l
    WHERE l.target = $1::text AND l.source_topic = $2::text AND l.source_key = $3::text
    RETURNING l.target_key
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

-- truncate_sql, 2 parameters ($1 target id, $2 source topic):
WITH old AS (
    DELETE FROM dualsync.links AS l
    WHERE l.target = $1::text AND l.source_topic = $2::text
    RETURNING l.target_key
), orphan AS (
    SELECT r."offer_id"
    FROM old AS o CROSS JOIN LATERAL json_populate_record(NULL::"public"."visible_offers",
        json_build_object('offer_id', o.target_key::json->>0)) AS r
    WHERE NOT EXISTS (SELECT 1 FROM dualsync.links AS x
        WHERE x.target = $1::text AND x.target_key = o.target_key
          AND x.source_topic <> $2::text)
)
DELETE FROM "public"."visible_offers" AS t
USING orphan AS o WHERE t."offer_id" = o."offer_id";
