/* tools/schedtop_text.c — one sample as lines of text: the frame that
 * --once prints and the live view draws (header, census, memory, hub rows,
 * totals, blocking reports), and the --once mode itself. */
#include "schedtop.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <wchar.h>
#include <wctype.h>

const char *const st_sort_names[ST_SORT_COUNT] = {
    "index", "switches/s", "runnable", "greenlets",
};

/* Printable text -------------------------------------------------------------- */

/* Copies the at most `max` bytes of src (up to a NUL) to out as text safe
 * for a terminal: characters the locale can print pass, every other byte
 * (control characters, bytes that are not valid in the locale's encoding)
 * becomes \xNN.  Cut at a character boundary to fit `len`. */
void st_printable(const char *src, size_t max, char *out, size_t len)
{
    size_t n = strnlen(src, max), o = 0;
    mbstate_t ps;
    memset(&ps, 0, sizeof ps);
    for (size_t i = 0; i < n && len > 0;) {
        wchar_t wc;
        size_t k = mbrtowc(&wc, src + i, n - i, &ps);
        if (k == 0 || k > n - i || !iswprint((wint_t)wc)) {
            memset(&ps, 0, sizeof ps);
            if (o + 5 > len)
                break;
            o += (size_t)snprintf(out + o, len - o, "\\x%02x", (unsigned char)src[i]);
            i++;
            continue;
        }
        if (o + k + 1 > len)
            break;
        memcpy(out + o, src + i, k);
        o += k;
        i += k;
    }
    if (len > 0)
        out[o] = '\0';
}

/* How many bytes of s fit in `cols` terminal columns. */
size_t st_fit_cols(const char *s, int cols)
{
    size_t i = 0, n = strlen(s);
    mbstate_t ps;
    memset(&ps, 0, sizeof ps);
    while (i < n && cols > 0) {
        wchar_t wc;
        size_t k = mbrtowc(&wc, s + i, n - i, &ps);
        if (k == 0 || k > n - i)
            k = 1;   /* st_printable's output never gets here */
        int w = wcwidth(wc);
        if (w < 0)
            w = 1;
        if (w > cols)
            break;
        cols -= w;
        i += k;
    }
    return i;
}

/* Numbers ------------------------------------------------------------------------ */

/* Seconds as "2d03h04m", "1h02m03s", "4m05s", "6s". */
void st_fmt_span(char *out, size_t len, uint64_t secs)
{
    unsigned long long d = secs / 86400, h = secs / 3600 % 24, m = secs / 60 % 60, s = secs % 60;
    if (d)
        snprintf(out, len, "%llud%02lluh%02llum", d, h, m);
    else if (h)
        snprintf(out, len, "%lluh%02llum%02llus", h, m, s);
    else if (m)
        snprintf(out, len, "%llum%02llus", m, s);
    else
        snprintf(out, len, "%llus", s);
}

/* A duration in ns, short: "350 ms", "1.2 s", "3m05s"; "-" for 0. */
static void fmt_ns(char *out, size_t len, uint64_t ns)
{
    if (ns == 0)
        snprintf(out, len, "-");
    else if (ns < 1000000)
        snprintf(out, len, "%.2f ms", (double)ns / 1e6);
    else if (ns < 1000000000)
        snprintf(out, len, "%.0f ms", (double)ns / 1e6);
    else if (ns < 60000000000ull)
        snprintf(out, len, "%.1f s", (double)ns / 1e9);
    else
        st_fmt_span(out, len, ns / 1000000000u);
}

static void fmt_bytes(char *out, size_t len, uint64_t b)
{
    if (b < 1024)
        snprintf(out, len, "%llu B", (unsigned long long)b);
    else if (b < 1048576)
        snprintf(out, len, "%.0f KiB", (double)b / 1024);
    else if (b < 1073741824)
        snprintf(out, len, "%.1f MiB", (double)b / 1048576);
    else
        snprintf(out, len, "%.2f GiB", (double)b / 1073741824);
}

static void fmt_rate(char *out, size_t len, const struct st_rates *r, const double *v)
{
    if (!r->valid)
        snprintf(out, len, "-");
    else if (*v < 1e5)
        snprintf(out, len, "%.1f", *v);
    else if (*v < 1e9)
        snprintf(out, len, "%.0f", *v);
    else
        snprintf(out, len, "%.2e", *v);
}

/* Frame ------------------------------------------------------------------------- */

static int add(struct st_frame *f, enum st_line_kind kind, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static int add(struct st_frame *f, enum st_line_kind kind, const char *fmt, ...)
{
    if (f->n == f->cap) {
        size_t cap = f->cap ? f->cap * 2 : 32;
        struct st_line *v = realloc(f->v, cap * sizeof *v);
        if (!v)
            return -1;
        f->v = v;
        f->cap = cap;
    }
    va_list ap;
    va_start(ap, fmt);
    char *text;
    int r = vasprintf(&text, fmt, ap);
    va_end(ap);
    if (r < 0)
        return -1;
    f->v[f->n++] = (struct st_line){ .kind = kind, .text = text };
    return 0;
}

void st_frame_free(struct st_frame *f)
{
    for (size_t i = 0; i < f->n; i++)
        free(f->v[i].text);
    free(f->v);
    memset(f, 0, sizeof *f);
}

static int add_header(struct st_frame *f, const struct st_view *v)
{
    const struct gh_shm_header *h = &v->snap->h;
    char up[32], age[32], stack[32], block[32], period[32], guard[80];
    char name[4 * sizeof h->runtime_name + 16] = "";
    uint64_t now = st_real_ns();
    st_fmt_span(up, sizeof up, now > h->start_unix_ns ? (now - h->start_unix_ns) / 1000000000u : 0);
    uint64_t mono = st_mono_ns();
    fmt_ns(age, sizeof age, mono > h->updated_ns ? mono - h->updated_ns : 0);
    fmt_bytes(stack, sizeof stack, h->stack_size);
    fmt_ns(block, sizeof block, h->block_ns);
    fmt_ns(period, sizeof period, h->period_ns);
    st_printable(h->guard_mode, sizeof h->guard_mode, guard, sizeof guard);
    if (h->runtime_name[0]) {
        char raw[4 * sizeof h->runtime_name + 1];
        st_printable(h->runtime_name, sizeof h->runtime_name, raw, sizeof raw);
        snprintf(name, sizeof name, "  runtime \"%s\"", raw);
    }
    if (add(f, ST_L_TITLE, "schedtop  pid %d (%s)%s  uptime %s  hubs %u  sampled %s ago%s",
            (int)v->pid, v->comm, name, up, h->nhubs, age,
            h->running ? "" : "  [runtime stopped]") != 0)
        return -1;
    return add(f, ST_L_TEXT, "config: pin %s, stack %s, guard %s, block threshold %s, "
               "sample period %s", h->pin ? "on" : "off", stack, guard[0] ? guard : "?",
               h->block_ns ? block : "off", period);
}

static int add_census(struct st_frame *f, const struct st_view *v)
{
    const struct gh_shm_header *h = &v->snap->h;
    char mapped[32], resident[32], rss[32];
    fmt_bytes(mapped, sizeof mapped, h->stack_mapped);
    fmt_bytes(resident, sizeof resident, h->stack_resident);
    fmt_bytes(rss, sizeof rss, h->rss);
    if (add(f, ST_L_TEXT, "greenlets: %llu spawned, %llu alive: %llu running, "
            "%llu runnable, %llu waiting", (unsigned long long)h->spawned,
            (unsigned long long)h->alive, (unsigned long long)h->running_now,
            (unsigned long long)h->runnable, (unsigned long long)h->waiting) != 0)
        return -1;
    if (add(f, ST_L_TEXT, "memory: stacks %s mapped, %s resident; process rss %s",
            mapped, resident, rss) != 0)
        return -1;
    return add(f, ST_L_TEXT, "%s", v->rates_note ? v->rates_note : "");
}

/* Hub rows ---------------------------------------------------------------------- */

#define ST_ROW_RATES 5   /* switches, steals, stolen, parks, io_waits */

/* The cells of one row of the hub table. */
struct row {
    char idx[16], core[16], runq[24], gl[24], timers[24], stack[24], res[24], cur[200];
    const char *state;
    char r[ST_ROW_RATES][32];
};

static int add_row(struct st_frame *f, enum st_line_kind kind, const struct row *c)
{
    return add(f, kind, "%3s %4s %-9s %6s %7s %9s %9s %9s %9s %9s %6s %7s %7s  %s",
               c->idx, c->core, c->state, c->runq, c->gl, c->r[0], c->r[1], c->r[2],
               c->r[3], c->r[4], c->timers, c->stack, c->res, c->cur);
}

static void fill_current(struct row *c, const struct gh_shm_hub *h)
{
    char name[4 * GH_SHM_NAME_LEN + 1], ran[32];
    if (!h->current_id) {
        snprintf(c->cur, sizeof c->cur, "-");
        return;
    }
    st_printable(h->current_name, sizeof h->current_name, name, sizeof name);
    fmt_ns(ran, sizeof ran, h->current_ns);
    snprintf(c->cur, sizeof c->cur, "%s%s#%llu %s", name, name[0] ? " " : "",
             (unsigned long long)h->current_id, ran);
}

static void fill_hub(struct row *c, const struct st_view *v, uint32_t i)
{
    const struct gh_shm_hub *h = &v->snap->hubs[i];
    const double *rate = &v->rates->hub[(size_t)i * ST_R_COUNT];
    snprintf(c->idx, sizeof c->idx, "%u", i);
    if (h->core < 0)
        snprintf(c->core, sizeof c->core, "-");
    else
        snprintf(c->core, sizeof c->core, "%d", (int)h->core);
    c->state = st_state_name(h->state);
    snprintf(c->runq, sizeof c->runq, "%llu", (unsigned long long)h->runnable);
    snprintf(c->gl, sizeof c->gl, "%llu", (unsigned long long)h->greenlets);
    for (int k = 0; k < ST_ROW_RATES; k++)
        fmt_rate(c->r[k], sizeof c->r[k], v->rates, &rate[k]);
    snprintf(c->timers, sizeof c->timers, "%llu", (unsigned long long)h->timers);
    snprintf(c->stack, sizeof c->stack, "%.1f", (double)h->stack_mapped / 1048576);
    snprintf(c->res, sizeof c->res, "%.1f", (double)h->stack_resident / 1048576);
    fill_current(c, h);
}

static void fill_totals(struct row *c, const struct st_view *v)
{
    unsigned long long runq = 0, gl = 0, timers = 0, stack = 0, res = 0;
    for (uint32_t i = 0; i < v->snap->nhubs; i++) {
        runq += v->snap->hubs[i].runnable;
        gl += v->snap->hubs[i].greenlets;
        timers += v->snap->hubs[i].timers;
        stack += v->snap->hubs[i].stack_mapped;
        res += v->snap->hubs[i].stack_resident;
    }
    memset(c, 0, sizeof *c);
    snprintf(c->idx, sizeof c->idx, "all");
    c->state = "";
    snprintf(c->runq, sizeof c->runq, "%llu", runq);
    snprintf(c->gl, sizeof c->gl, "%llu", gl);
    for (int k = 0; k < ST_ROW_RATES; k++)
        fmt_rate(c->r[k], sizeof c->r[k], v->rates, &v->rates->total[k]);
    snprintf(c->timers, sizeof c->timers, "%llu", timers);
    snprintf(c->stack, sizeof c->stack, "%.1f", (double)stack / 1048576);
    snprintf(c->res, sizeof c->res, "%.1f", (double)res / 1048576);
}

/* Sort key of hub i (larger first), for every order but index. */
static double sort_key(const struct st_view *v, uint32_t i)
{
    switch (v->sort) {
    case ST_SORT_SWITCHES:
        return v->rates->valid ? v->rates->hub[(size_t)i * ST_R_COUNT + ST_R_SWITCHES] : 0;
    case ST_SORT_RUNNABLE: return (double)v->snap->hubs[i].runnable;
    case ST_SORT_GREENLETS: return (double)v->snap->hubs[i].greenlets;
    default: return 0;
    }
}

static int cmp_hubs(const void *a, const void *b, void *arg)
{
    const struct st_view *v = arg;
    uint32_t i = *(const uint32_t *)a, j = *(const uint32_t *)b;
    double ki = sort_key(v, i), kj = sort_key(v, j);
    if (ki != kj)
        return ki > kj ? -1 : 1;
    return i < j ? -1 : i > j;
}

static int add_hubs(struct st_frame *f, const struct st_view *v)
{
    uint32_t n = v->snap->nhubs;
    uint32_t *order = malloc(n * sizeof *order);
    struct row c;
    if (!order)
        return -1;
    for (uint32_t i = 0; i < n; i++)
        order[i] = i;
    if (v->sort != ST_SORT_INDEX)
        qsort_r(order, n, sizeof *order, cmp_hubs, (void *)v);
    int r = add(f, ST_L_HEAD, "%3s %4s %-9s %6s %7s %9s %9s %9s %9s %9s %6s %7s %7s  %s",
                "HUB", "CORE", "STATE", "RUNQ", "GLETS", "SWITCH/s", "STEAL/s",
                "STOLEN/s", "PARK/s", "IOWAIT/s", "TIMERS", "STK MiB", "RES MiB",
                "CURRENT");
    f->hub_first = f->n;
    for (uint32_t k = 0; k < n && r == 0; k++) {
        fill_hub(&c, v, order[k]);
        r = add_row(f, ST_L_HUB, &c);
    }
    f->hub_n = f->n - f->hub_first;
    free(order);
    if (r != 0)
        return -1;
    fill_totals(&c, v);
    return add_row(f, ST_L_TOTAL, &c);
}

/* Blocking reports --------------------------------------------------------------- */

static int add_report(struct st_frame *f, const struct gh_shm_blocked *b)
{
    char name[4 * GH_SHM_NAME_LEN + 1], dur[32], ago[32], when[16] = "?";
    st_printable(b->name, sizeof b->name, name, sizeof name);
    fmt_ns(dur, sizeof dur, b->duration_ns);
    time_t t = (time_t)(b->since_unix_ns / 1000000000u);
    struct tm tm;
    if (localtime_r(&t, &tm))
        strftime(when, sizeof when, "%H:%M:%S", &tm);
    uint64_t now = st_real_ns();
    st_fmt_span(ago, sizeof ago, now > b->since_unix_ns ? (now - b->since_unix_ns) / 1000000000u : 0);
    return add(f, ST_L_TEXT, "  #%-4llu hub %-3u %s (#%llu)  %s%s  since %s (%s ago)",
               (unsigned long long)b->seqno, b->hub, name[0] ? name : "?",
               (unsigned long long)b->greenlet_id, dur, b->ongoing ? "  ONGOING" : "",
               when, ago);
}

/* The reports still in the ring, most recent first (the ring keeps the
 * last GH_SHM_BLOCKED_MAX; a slot that does not hold the report expected
 * there is left out). */
static int add_blocked(struct st_frame *f, const struct st_view *v)
{
    const struct gh_shm_header *h = &v->snap->h;
    char thr[32];
    fmt_ns(thr, sizeof thr, h->block_ns);
    if (add(f, ST_L_TEXT, "%s", "") != 0)
        return -1;
    if (h->block_ns == 0 && h->blocked_total == 0)
        return add(f, ST_L_TITLE, "blocking detector: off");
    if (add(f, ST_L_TITLE, "blocking reports (threshold %s): %llu so far%s", thr,
            (unsigned long long)h->blocked_total,
            h->blocked_total ? ", most recent first" : "") != 0)
        return -1;
    for (uint64_t k = 0; k < GH_SHM_BLOCKED_MAX && k < h->blocked_total; k++) {
        uint64_t seqno = h->blocked_total - k;
        const struct gh_shm_blocked *b = &h->blocked[(seqno - 1) % GH_SHM_BLOCKED_MAX];
        if (b->seqno == seqno && add_report(f, b) != 0)
            return -1;
    }
    return 0;
}

/* Builds the lines of one frame into f (empty it first); 0, or -1 when out
 * of memory. */
int st_frame_build(struct st_frame *f, const struct st_view *v)
{
    if (add_header(f, v) != 0 || add_census(f, v) != 0 ||
        add(f, ST_L_TEXT, "%s", "") != 0 || add_hubs(f, v) != 0 || add_blocked(f, v) != 0)
        return -1;
    return 0;
}

/* --once ---------------------------------------------------------------------- */

/* Prints one frame from two samples ST_ONCE_GAP_MS apart; an exit status. */
int st_print_once(struct st_seg *seg, const char *comm)
{
    struct st_snap a = { 0 }, b = { 0 };
    struct st_rates rates = { 0 };
    struct st_frame f = { 0 };
    char err[ST_ERR_LEN], note[128];
    int status = ST_EXIT_FAIL;
    if (st_snap_init(&a, seg->nhubs) != 0 || st_snap_init(&b, seg->nhubs) != 0 ||
        st_rates_init(&rates, seg->nhubs) != 0) {
        snprintf(err, sizeof err, "out of memory");
        goto out;
    }
    if (st_take_two(seg, &a, &b, err, sizeof err) != ST_OK)
        goto out;
    st_rates_compute(&rates, &a, &b);
    if (rates.valid)
        snprintf(note, sizeof note, "rates per second over %.2f s (--once: two samples "
                 "at least %d ms apart)", (double)rates.interval_ns / 1e9, ST_ONCE_GAP_MS);
    else
        snprintf(note, sizeof note, "rates: - (the monitor published no new sample "
                 "while schedtop waited)");
    struct st_view v = { .pid = seg->pid, .comm = comm, .snap = &b, .rates = &rates,
                         .rates_note = note, .sort = ST_SORT_INDEX };
    if (st_frame_build(&f, &v) != 0) {
        snprintf(err, sizeof err, "out of memory");
        goto out;
    }
    for (size_t i = 0; i < f.n; i++)
        printf("%s\n", f.v[i].text);
    status = fflush(stdout) == 0 ? ST_EXIT_OK : ST_EXIT_FAIL;
    if (status != ST_EXIT_OK)
        snprintf(err, sizeof err, "cannot write the output");
out:
    if (status != ST_EXIT_OK)
        fprintf(stderr, "schedtop: %s\n", err);
    st_frame_free(&f);
    st_rates_free(&rates);
    st_snap_free(&a);
    st_snap_free(&b);
    return status;
}
