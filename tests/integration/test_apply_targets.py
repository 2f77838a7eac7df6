"""apply: one legacy table mapped into two target databases (two mapping files naming
different connections). Each database keeps its own offsets: reading starts at the smaller
one, and a database skips what it already has, so one that fell behind (as after a crash
between the two commits) catches up while the other writes nothing twice.
"""

import os

import dstest
from test_apply_changes import FIXTURES, NEW_DDL, PEOPLE_MAPPING, PEOPLE_QUERY, ApplyPeopleCase, PeopleModel

ARCHIVE_MAPPING = os.path.join(FIXTURES, "apply_people_archive.json")
STAFF_QUERY = "SELECT legacy_id, name FROM staff ORDER BY legacy_id"


def expected_staff(model):
    """apply_people_archive.json: everyone but patients, names trimmed and upper-cased."""
    return [
        (str(i), v["name"].strip(" ").upper())
        for i, v in sorted(model.rows.items())
        if v["kind"] != "P"
    ]


class ApplyTwoDatabasesTest(ApplyPeopleCase):
    def test_two_databases_converge_and_a_lagging_one_catches_up_alone(self):
        archive = self.target_database("people_archive")
        self.psql("CREATE TABLE staff (legacy_id int PRIMARY KEY, name text)", db=archive)
        cfg = self.apply_config(
            {"newdb": self.newdb, "archive": archive},
            [PEOPLE_MAPPING, ARCHIVE_MAPPING],
            self.capture_cfg.topic_prefix,
            apply={"batch_max_messages": 100},
        )
        model = PeopleModel(seed=99)
        apply = self.start_apply(cfg)
        self.psql(model.transactions(count=10, size=30))
        self.wait_rows(self.newdb, PEOPLE_QUERY, model.expected_people(), timeout=90)
        self.wait_rows(archive, STAFF_QUERY, expected_staff(model), timeout=90)
        ends = dstest.end_offsets([self.topic])
        self.assertEqual(dstest.stored_offsets(self.newdb, cfg.group_id), ends)
        self.assertEqual(dstest.stored_offsets(archive, cfg.group_id), ends)
        apply.stop(expect_exit=0)

        # The archive loses everything it had, offsets included, as if its commits had never
        # happened; the new people table keeps its own.
        self.psql(
            "DELETE FROM dualsync.offsets; DELETE FROM dualsync.links; TRUNCATE staff", db=archive
        )
        self.psql(model.transactions(count=4, size=25))
        apply = self.start_apply(cfg)
        self.wait_rows(archive, STAFF_QUERY, expected_staff(model), timeout=90)
        self.wait_rows(self.newdb, PEOPLE_QUERY, model.expected_people(), timeout=90)
        ends = dstest.end_offsets([self.topic])
        dstest.wait_for(
            lambda: dstest.stored_offsets(archive, cfg.group_id) == ends
            and dstest.stored_offsets(self.newdb, cfg.group_id) == ends,
            timeout=30,
            what="both databases' offsets to reach the end of the topic",
        )
        self.assertIn("starting at its beginning", apply.log_text())
        apply.stop(expect_exit=0)

        # Reading went back to the beginning for the archive, but the people table was not
        # written again for the changes it had: one write per change.
        writes = int(dstest.psql_value("SELECT count(*) FROM people_writes", db=self.newdb))
        self.assertEqual(writes, model.changes)
