/* tools/schedtop_json.c — --json: one sample as one JSON object on one
 * line.  Keys are the field names of sched/shm_layout.h; "hubs" and
 * "blocked" are arrays (blocked: most recent first, empty slots left out);
 * "rates" (per second, over "rates_interval_ns") are null when the monitor
 * published no new sample while schedtop waited. */
#include "schedtop.h"

#include <inttypes.h>
#include <stdio.h>

/* Where the next member goes, and whether it needs a comma. */
struct json {
    FILE *f;
    int first;
};

static void key(struct json *j, const char *name)
{
    fprintf(j->f, "%s\"%s\":", j->first ? "" : ",", name);
    j->first = 0;
}

static void open_obj(struct json *j, char c)
{
    fputc(c, j->f);
    j->first = 1;
}

static void close_obj(struct json *j, char c)
{
    fputc(c, j->f);
    j->first = 0;
}

static void u64(struct json *j, const char *name, uint64_t v)
{
    key(j, name);
    fprintf(j->f, "%" PRIu64, v);
}

static void i64(struct json *j, const char *name, int64_t v)
{
    key(j, name);
    fprintf(j->f, "%" PRId64, v);
}

/* Length of the valid UTF-8 sequence at p (at most n bytes), 0 if none. */
static size_t utf8_len(const unsigned char *p, size_t n)
{
    unsigned c = p[0];
    size_t len = c < 0x80 ? 1 : c >= 0xc2 && c <= 0xdf ? 2 : c >= 0xe0 && c <= 0xef ? 3
               : c >= 0xf0 && c <= 0xf4 ? 4 : 0;
    if (len == 0 || len > n)
        return 0;
    /* The second byte's range rules out overlong forms, surrogates and
     * code points above U+10FFFF. */
    unsigned lo = c == 0xe0 ? 0xa0 : c == 0xf0 ? 0x90 : 0x80;
    unsigned hi = c == 0xed ? 0x9f : c == 0xf4 ? 0x8f : 0xbf;
    for (size_t i = 1; i < len; i++) {
        unsigned lo_i = i == 1 ? lo : 0x80, hi_i = i == 1 ? hi : 0xbf;
        if (p[i] < lo_i || p[i] > hi_i)
            return 0;
    }
    return len;
}

/* A JSON string from at most `max` bytes of s (up to a NUL).  Valid UTF-8
 * passes; quote, backslash and control characters are escaped; a byte that
 * is not valid UTF-8 is read as Latin-1 (\u00XX), so any name comes out as
 * valid JSON. */
static void str_value(FILE *f, const char *s, size_t max)
{
    const unsigned char *p = (const unsigned char *)s;
    size_t n = strnlen(s, max);
    fputc('"', f);
    for (size_t i = 0; i < n;) {
        size_t k = utf8_len(p + i, n - i);
        unsigned c = p[i];
        if (c == '"' || c == '\\')
            fprintf(f, "\\%c", c);
        else if (c == '\n')
            fputs("\\n", f);
        else if (c == '\t')
            fputs("\\t", f);
        else if (c == '\r')
            fputs("\\r", f);
        else if (c < 0x20 || c == 0x7f || k == 0)
            fprintf(f, "\\u%04x", c);
        else {
            fwrite(p + i, 1, k, f);
            i += k;
            continue;
        }
        i++;
    }
    fputc('"', f);
}

static void str(struct json *j, const char *name, const char *s, size_t max)
{
    key(j, name);
    str_value(j->f, s, max);
}

static void rates_obj(struct json *j, const struct st_rates *r, const double *v)
{
    key(j, "rates");
    if (!r->valid) {
        fputs("null", j->f);
        return;
    }
    open_obj(j, '{');
    for (int k = 0; k < ST_R_COUNT; k++) {
        key(j, st_rate_names[k]);
        fprintf(j->f, "%.3f", v[k]);
    }
    close_obj(j, '}');
}

static void header_fields(struct json *j, const struct gh_shm_header *h)
{
    u64(j, "magic", h->magic);
    u64(j, "version", h->version);
    u64(j, "header_size", h->header_size);
    u64(j, "hub_size", h->hub_size);
    u64(j, "nhubs", h->nhubs);
    u64(j, "total_size", h->total_size);
    u64(j, "seq", h->seq);
    i64(j, "pid", h->pid);
    u64(j, "start_unix_ns", h->start_unix_ns);
    u64(j, "updated_ns", h->updated_ns);
    u64(j, "period_ns", h->period_ns);
    u64(j, "running", h->running);
    u64(j, "pin", h->pin);
    u64(j, "stack_size", h->stack_size);
    u64(j, "block_ns", h->block_ns);
    str(j, "guard_mode", h->guard_mode, sizeof h->guard_mode);
    u64(j, "spawned", h->spawned);
    u64(j, "alive", h->alive);
    u64(j, "running_now", h->running_now);
    u64(j, "runnable", h->runnable);
    u64(j, "waiting", h->waiting);
    u64(j, "stack_mapped", h->stack_mapped);
    u64(j, "stack_resident", h->stack_resident);
    u64(j, "stack_resident_unowned", h->stack_resident_unowned);
    u64(j, "rss", h->rss);
    u64(j, "blocked_total", h->blocked_total);
    str(j, "runtime_name", h->runtime_name, sizeof h->runtime_name);
}

static void hub_obj(struct json *j, const struct gh_shm_hub *h, uint32_t i,
                    const struct st_rates *r)
{
    open_obj(j, '{');
    u64(j, "index", i);
    i64(j, "core", h->core);
    u64(j, "state", h->state);
    str(j, "state_name", st_state_name(h->state), 16);
    u64(j, "switches", h->switches);
    u64(j, "steals", h->steals);
    u64(j, "stolen", h->stolen);
    u64(j, "parks", h->parks);
    u64(j, "io_waits", h->io_waits);
    u64(j, "sleeps", h->sleeps);
    u64(j, "wakeups", h->wakeups);
    u64(j, "runnable", h->runnable);
    u64(j, "greenlets", h->greenlets);
    u64(j, "timers", h->timers);
    u64(j, "stack_mapped", h->stack_mapped);
    u64(j, "stack_cached", h->stack_cached);
    u64(j, "stack_resident", h->stack_resident);
    u64(j, "current_id", h->current_id);
    u64(j, "current_ns", h->current_ns);
    str(j, "current_name", h->current_name, sizeof h->current_name);
    rates_obj(j, r, r->valid ? &r->hub[(size_t)i * ST_R_COUNT] : NULL);
    close_obj(j, '}');
}

static void blocked_obj(struct json *j, const struct gh_shm_blocked *b)
{
    open_obj(j, '{');
    u64(j, "seqno", b->seqno);
    u64(j, "greenlet_id", b->greenlet_id);
    u64(j, "duration_ns", b->duration_ns);
    u64(j, "since_unix_ns", b->since_unix_ns);
    u64(j, "hub", b->hub);
    u64(j, "ongoing", b->ongoing);
    str(j, "name", b->name, sizeof b->name);
    close_obj(j, '}');
}

/* The reports in the ring, most recent first (as in the text view). */
static void blocked_array(struct json *j, const struct gh_shm_header *h)
{
    key(j, "blocked");
    open_obj(j, '[');
    for (uint64_t k = 0; k < GH_SHM_BLOCKED_MAX && k < h->blocked_total; k++) {
        uint64_t seqno = h->blocked_total - k;
        const struct gh_shm_blocked *b = &h->blocked[(seqno - 1) % GH_SHM_BLOCKED_MAX];
        if (b->seqno != seqno)
            continue;
        if (!j->first)
            fputc(',', j->f);
        blocked_obj(j, b);
    }
    close_obj(j, ']');
}

static void snapshot_obj(FILE *f, const struct st_snap *s, const struct st_rates *r,
                         const char *comm)
{
    struct json j = { .f = f, .first = 1 };
    open_obj(&j, '{');
    header_fields(&j, &s->h);
    str(&j, "command", comm, 64);
    key(&j, "rates_interval_ns");
    if (r->valid)
        fprintf(f, "%" PRIu64, r->interval_ns);
    else
        fputs("null", f);
    rates_obj(&j, r, r->total);
    key(&j, "hubs");
    open_obj(&j, '[');
    for (uint32_t i = 0; i < s->nhubs; i++) {
        if (i)
            fputc(',', f);
        hub_obj(&j, &s->hubs[i], i, r);
    }
    close_obj(&j, ']');
    blocked_array(&j, &s->h);
    close_obj(&j, '}');
    fputc('\n', f);
}

/* Prints one JSON object from two samples ST_ONCE_GAP_MS apart; an exit
 * status. */
int st_print_json(struct st_seg *seg, const char *comm)
{
    struct st_snap a = { 0 }, b = { 0 };
    struct st_rates rates = { 0 };
    char err[ST_ERR_LEN] = "out of memory";
    int status = ST_EXIT_FAIL;
    if (st_snap_init(&a, seg->nhubs) == 0 && st_snap_init(&b, seg->nhubs) == 0 &&
        st_rates_init(&rates, seg->nhubs) == 0 &&
        st_take_two(seg, &a, &b, err, sizeof err) == ST_OK) {
        st_rates_compute(&rates, &a, &b);
        snapshot_obj(stdout, &b, &rates, comm);
        status = fflush(stdout) == 0 ? ST_EXIT_OK : ST_EXIT_FAIL;
        if (status != ST_EXIT_OK)
            snprintf(err, sizeof err, "cannot write the output");
    }
    if (status != ST_EXIT_OK)
        fprintf(stderr, "schedtop: %s\n", err);
    st_rates_free(&rates);
    st_snap_free(&a);
    st_snap_free(&b);
    return status;
}
