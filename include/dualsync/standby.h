/*
 * standby.h: who holds capture's replication slot, for a capture waiting as a standby.
 *
 * A replication slot streams to one session at a time, so PostgreSQL itself decides which of
 * several `dualsync capture` processes of one config is active: the one whose walsender holds
 * the slot. The others wait as standbys, asking every second; when the active process dies its
 * connection closes, the server releases the slot, and a standby takes it from the slot's
 * confirmed position (nothing lost: changes after it are sent again, and apply skips what it
 * has).
 *
 * A holder that is not dead but silent (its host lost from the network, the process frozen)
 * keeps the slot until the server's wal_sender_timeout (60 s by default) ends its session. So
 * a standby watches the holder's last status update (pg_stat_replication.reply_time; the active
 * capture sends one every capture.status_interval_ms) and, past capture.standby_takeover_ms
 * without one, ends that session itself (pg_terminate_backend) and takes the slot.
 */
#ifndef DUALSYNC_STANDBY_H
#define DUALSYNC_STANDBY_H

#include <stdbool.h>
#include <stddef.h>

typedef struct ds_standby ds_standby_t;

typedef enum ds_slot_state {
    DS_SLOT_FREE,    /* no session holds it (or it does not exist yet) */
    DS_SLOT_HELD,    /* *holder describes the session that holds it */
    DS_SLOT_UNKNOWN, /* the source could not be asked (errstr says why) */
    DS_SLOT_ENDED,   /* its holder sent no status update for the takeover time: its session
                      * was ended (*holder describes it, errstr says how long it was silent);
                      * the slot is free once the server has released it */
} ds_slot_state_t;

/**
 * @brief Watches slot @p slot of the database @p conninfo names, ending a holder silent for
 *        @p takeover_ms; NULL when out of memory.
 */
ds_standby_t *ds_standby_new(const char *conninfo, const char *slot, int takeover_ms);

/** @brief Accepts NULL. */
void ds_standby_free(ds_standby_t *standby);

/**
 * @brief Asks the source (on a connection of its own, opened again when lost) who holds the
 *        slot. DS_SLOT_HELD fills @p holder: "process PID (application, client address)".
 */
ds_slot_state_t ds_standby_check(ds_standby_t *standby, char *holder, size_t holder_size,
                                 char *errstr, size_t errstr_size);

#endif
