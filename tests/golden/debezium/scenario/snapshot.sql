-- Rows that exist before the connector (or capture) starts: they come as snapshot ('r')
-- events. Written in UTC.
SET TimeZone = 'UTC';

INSERT INTO golden_types VALUES (
    1, -32768, 2147483647, -9223372036854775808, 4294967295,
    3.14, 2.718281828459045,
    1234567.891, 123456789012345678901234567890.123456789, 1234.56,
    true, '\x00ff10'::bytea, '{"a": [1, 2.5, "x"], "b": null}', '{"b": null, "a": [1, 2.5, "x"]}',
    '2024-02-29', '23:59:59.999999', '12:34:56.789', '10:00:00+05:30',
    '2024-02-29 12:34:56.789012', '2024-02-29 12:34:56.789', '2024-02-29 12:34:57',
    '2024-02-29 21:34:56.789012+09', '2024-02-29 21:34:56.789+09',
    '1 year 2 months 3 days 04:05:06.5', 'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11',
    E'it''s "quoted" \\ back\\slash\nnew line\ttab 한국어 😀', 'varchar value', 'ab', 'x', 'a_name',
    'happy', 42
);
INSERT INTO golden_types (id) VALUES (2);

INSERT INTO golden_arrays VALUES (
    1, '{1,NULL,-32768}', '{1,2,3}', '{9223372036854775807,NULL}', '{0,4294967295}',
    '{1.5,NULL}', '{2.25,-1e-300}', '{1.50,NULL,-0.001}', '{true,false,NULL}',
    ARRAY['a,b', 'c d', 'e"f', 'NULL', NULL, '', '한국어'], '{x,y}', '{ab,c}', '{n1,n2}', '{a,b}',
    '{a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11,NULL}', '{2024-02-29,1970-01-01}', '{10:00:00.5}',
    '{"2024-02-29 12:34:56.789012"}', '{"2024-02-29 12:34:56.789012+00"}', '{"1 day 02:00:00"}',
    ARRAY['{"a": 1}'::json, '[]'::json], ARRAY['{"a": 1}'::jsonb, NULL], ARRAY['\x00ff'::bytea, ''::bytea],
    '{{1,2},{3,NULL}}', '{sad,happy}'
);

INSERT INTO golden_default VALUES (1, 'one', 10), (2, 'two', NULL), (3, 'three', 30);
INSERT INTO golden_nopk VALUES (1, 'a'), (2, 'b');
INSERT INTO golden_toast VALUES (1, repeat('x', 20000), 1);
INSERT INTO golden_truncate VALUES (1, 'a'), (2, 'b');
