-- The changes, run once the connector (or capture) streams. psql runs each statement as its
-- own transaction, except the one explicit BEGIN ... COMMIT block near the end. The session
-- TimeZone is not UTC (and not a whole hour away from it): literals without an offset are
-- read in it, and nothing downstream may depend on it.
SET TimeZone = 'Asia/Kolkata';

-- Special values: NaN and infinities, infinite dates and timestamps, a BC date, extremes.
INSERT INTO golden_types VALUES (
    3, 32767, -2147483648, 9223372036854775807, 0,
    'NaN', '-Infinity',
    'NaN', 'NaN', -92233720368547758.08,
    false, ''::bytea, '[]', '{"k\"ey": "한국어", "n": 1.10}',
    'infinity', '00:00:00', '00:00:00.001', '00:00:00-03',
    '-infinity', 'infinity', '1969-12-31 23:59:59',
    'infinity', '-infinity',
    '-1 day -02:00:00', '00000000-0000-0000-0000-000000000000',
    '', '', 'abcde', E'\\001', 'n',
    'sad', 1
);
INSERT INTO golden_types (id, c_real, c_double, c_numeric_free, c_date, c_timestamp, c_timestamptz, c_interval, c_time, c_timetz)
    VALUES (4, 'Infinity', 'NaN', 'Infinity', '0044-03-15 BC', '0044-03-15 10:00:00 BC', '2024-06-30 23:30:00', 'P1Y2M3DT4H5M6.123456S', '24:00:00', '23:59:59.999999+14');
INSERT INTO golden_types (id, c_numeric_free, c_real, c_double, c_date, c_timestamptz, c_numeric)
    VALUES (5, '-Infinity', 1.5e-07, 1e300, '1969-12-31', '1970-01-01 05:30:00', -0.500);
UPDATE golden_types SET c_text = 'changed', c_numeric = 0.001, c_bool = false,
    c_jsonb = '{"x": 1}', c_timestamptz = '2030-06-15 08:00:00+02', c_date = '2030-06-15',
    c_interval = '90 minutes' WHERE id = 1;
UPDATE golden_types SET id = 30 WHERE id = 3;
DELETE FROM golden_types WHERE id = 2;

INSERT INTO golden_arrays (id, a_int4, a_text, a_int4_2d, a_enum, a_numeric, a_timestamptz)
    VALUES (2, '{}', '{}', '{{1},{2}}', '{}', '{NaN,1}', '{infinity,"2024-01-31 10:00:00.5+05:30"}');
UPDATE golden_arrays SET a_int4 = '{4,NULL,5}', a_enum = '{ok}' WHERE id = 1;
DELETE FROM golden_arrays WHERE id = 2;

INSERT INTO golden_default VALUES (4, 'four', 40);
UPDATE golden_default SET v = 'ONE' WHERE id = 1;
UPDATE golden_default SET id = 20 WHERE id = 2;
DELETE FROM golden_default WHERE id = 3;

INSERT INTO golden_nopk VALUES (3, NULL);
UPDATE golden_nopk SET b = 'bb' WHERE a = 2;
DELETE FROM golden_nopk WHERE a = 1;

UPDATE golden_toast SET n = 2 WHERE id = 1;
UPDATE golden_toast SET big = repeat('y', 20000), n = 3 WHERE id = 1;

TRUNCATE golden_truncate;

-- One transaction of several statements on several tables (transaction metadata: one BEGIN,
-- one END with per-table counts, and each event's order within it).
BEGIN;
INSERT INTO golden_default VALUES (5, 'five', 50), (6, 'six', 60);
UPDATE golden_types SET c_integer = 7, c_real = '-Infinity', c_double = 'Infinity' WHERE id = 1;
DELETE FROM golden_nopk WHERE a = 3;
UPDATE golden_default SET n = 61 WHERE id = 6;
COMMIT;

-- The last change: when it is on its topic, every change before it is on its own.
INSERT INTO golden_default VALUES (99, 'end', 99);
