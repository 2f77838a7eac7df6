/*
 * batchstmt.h: preparing and filling the batch statements of mapping.h ("Batches"), for the
 * two programs that write targets many rows at a time: apply (consumers/applier.c) and
 * verify's rebuild of the expected rows (consumers/verify.c).
 *
 * A batch statement's parameters are arrays typed like write_sql's parameters, which only the
 * target database knows (it inferred them when write_sql was prepared); ds_batchstmt_prepare
 * asks it. The arrays are text-format array literals built by ds_batchstmt_add.
 */
#ifndef DUALSYNC_BATCHSTMT_H
#define DUALSYNC_BATCHSTMT_H

#include "dualsync/buf.h"
#include "dualsync/common.h"
#include "dualsync/mapping.h"

typedef enum ds_batchstmt_prepared {
    DS_BATCHSTMT_READY, /* prepared under the name given */
    DS_BATCHSTMT_NONE,  /* the target has no batch form here (no batch_body, a parameter type
                         * without an array type, or the statement did not prepare: logged);
                         * write it row by row */
    DS_BATCHSTMT_ERROR, /* a query failed (errstr); the connection may be lost */
} ds_batchstmt_prepared_t;

/**
 * @brief Prepares @p t's batch statement as @p batch_name on @p conn (a PGconn *), typed from
 *        the prepared write_sql @p write_name.
 */
ds_batchstmt_prepared_t ds_batchstmt_prepare(void *conn, const ds_target_t *t,
                                             const char *write_name, const char *batch_name,
                                             char *errstr, size_t errstr_size);

/* The parameters of one execution of a batch statement, being built. */
typedef struct ds_batchstmt_args {
    const ds_target_t *target; /* whose statement */
    ds_buf_t *arrays;          /* per parameter: its array literal ($1 and $2 unused for an
                                * upsert target: they are the target id and the topic) */
    const char **params;       /* what ds_batchstmt_finish() returns */
    int cap;                   /* entries allocated in arrays and params */
    int nrows;                 /* rows added since ds_batchstmt_begin() */
} ds_batchstmt_args_t;

#define DS_BATCHSTMT_ARGS_INIT {NULL, NULL, NULL, 0, 0}

/** @brief Starts the arguments of one execution for target @p t (reusing the memory). */
void ds_batchstmt_begin(ds_batchstmt_args_t *b, const ds_target_t *t);

/**
 * @brief Adds one row: the write's parameters (write_sql's for an upsert, unlink_sql's for
 *        an unlink), its @p ord (returned by the statement when the row was not applied) and
 *        its kind. Aborts on out of memory, as ds_buf does.
 */
void ds_batchstmt_add(ds_batchstmt_args_t *b, const char *const *params, int nparams, int64_t ord,
                      bool upsert);

/**
 * @brief The statement's write_nparams + 2 parameters for PQexecPrepared or
 *        PQsendQueryPrepared; valid until the next ds_batchstmt_begin(). @p topic is the
 *        rows' source topic (ignored for in-place targets).
 */
const char *const *ds_batchstmt_finish(ds_batchstmt_args_t *b, const char *topic);

/** @brief Frees the memory (not @p b itself). */
void ds_batchstmt_free(ds_batchstmt_args_t *b);

#endif
