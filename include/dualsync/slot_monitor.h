/*
 * slot_monitor.h: capture's periodic, asynchronous reading of the replication slot's size
 * (retained WAL and confirmed-flush lag, in bytes) for the metrics.
 */
#ifndef DUALSYNC_SLOT_MONITOR_H
#define DUALSYNC_SLOT_MONITOR_H

#include <ev.h>

#include "dualsync/metrics.h"

typedef struct ds_slot_monitor ds_slot_monitor_t;

/**
 * @brief Every @p interval_s, sets @p retained to pg_current_wal_lsn() - restart_lsn and @p lag
 *        to pg_current_wal_lsn() - confirmed_flush_lsn of slot @p slot, read on a connection
 *        of its own to @p conninfo, without blocking @p loop.
 */
ds_slot_monitor_t *ds_slot_monitor_new(struct ev_loop *loop, const char *conninfo,
                                       const char *slot, ds_series_t *retained, ds_series_t *lag,
                                       double interval_s);

/** @brief Accepts NULL. */
void ds_slot_monitor_free(ds_slot_monitor_t *monitor);

#endif
