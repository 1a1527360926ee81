/* tools/schedtop_curses.c — the live view of `schedtop PID`: the frame of
 * schedtop_text.c redrawn every interval, sized to the terminal, with keys
 * q (quit), s (sort hub rows), + / - (longer / shorter interval).  Ends by
 * itself, with a message, when the process exits.  Ctrl-L repaints. */
#include "schedtop.h"

#include <curses.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* Refresh intervals + and - step through; the third (1 s) is the start. */
static const unsigned st_intervals_ms[] = { 250, 500, 1000, 2000, 5000, 10000 };
#define ST_N_INTERVALS (sizeof st_intervals_ms / sizeof st_intervals_ms[0])
#define ST_INTERVAL_START 2
/* getch waits at most this long, even when the next refresh is further:
 * a SIGWINCH or a stop signal that lands between the check for it and the
 * wait inside getch is then seen this late at worst (a guess; costs five
 * wakeups a second). */
#define ST_KEY_WAIT_MS 200

static volatile sig_atomic_t stop_signal;

static void on_stop(int sig)
{
    stop_signal = sig;
}

enum watch_end { W_QUIT, W_EXITED, W_ERROR };

struct watch {
    struct st_seg *seg;
    const char *comm;
    struct st_snap bufs[3];
    struct st_snap *prev, *cur, *tmp;   /* a permutation of bufs */
    int have_cur, have_prev;            /* whether cur, prev hold samples */
    struct st_rates rates;
    enum st_sort sort;
    unsigned interval;                  /* index in st_intervals_ms */
    uint64_t sampled_ns;                /* when cur was taken */
    char note[128];
    char err[ST_ERR_LEN];
};

static int watch_init(struct watch *w, struct st_seg *seg, const char *comm)
{
    memset(w, 0, sizeof *w);
    w->seg = seg;
    w->comm = comm;
    w->interval = ST_INTERVAL_START;
    w->cur = &w->bufs[0];
    w->tmp = &w->bufs[1];
    w->prev = &w->bufs[2];
    for (int i = 0; i < 3; i++)
        if (st_snap_init(&w->bufs[i], seg->nhubs) != 0)
            return -1;
    return st_rates_init(&w->rates, seg->nhubs);
}

static void watch_free(struct watch *w)
{
    for (int i = 0; i < 3; i++)
        st_snap_free(&w->bufs[i]);
    st_rates_free(&w->rates);
}

/* Takes a sample into tmp; when the monitor published anew since cur, it
 * becomes cur and the rates span prev..cur (a sample with the same
 * updated_ns holds the same figures and is dropped). */
static enum st_result sample(struct watch *w)
{
    enum st_result r = st_take(w->seg, w->tmp, w->err, sizeof w->err);
    w->sampled_ns = st_mono_ns();
    if (r != ST_OK)
        return r;
    if (w->have_cur && w->tmp->h.updated_ns == w->cur->h.updated_ns)
        return ST_OK;
    struct st_snap *spare = w->prev;
    w->prev = w->cur;
    w->cur = w->tmp;
    w->tmp = spare;
    w->have_prev = w->have_cur;
    w->have_cur = 1;
    if (w->have_prev)
        st_rates_compute(&w->rates, w->prev, w->cur);
    if (w->rates.valid)
        snprintf(w->note, sizeof w->note, "rates per second over the last %.2f s",
                 (double)w->rates.interval_ns / 1e9);
    else
        snprintf(w->note, sizeof w->note, "rates: - until the next sample");
    return ST_OK;
}

/* Line y (of `rows`), cut at the right edge. */
static void put_line(int y, int rows, const char *text, int attr)
{
    if (y >= rows)
        return;
    attron(attr);
    mvaddnstr(y, 0, text, (int)st_fit_cols(text, COLS));
    attroff(attr);
}

static int line_attr(enum st_line_kind kind)
{
    switch (kind) {
    case ST_L_TITLE: return A_BOLD;
    case ST_L_HEAD: return A_REVERSE;
    case ST_L_TOTAL: return A_BOLD;
    default: return A_NORMAL;
    }
}

/* Draws f into `rows` lines.  When the hub rows do not all fit, the first
 * ones that do are shown with a line saying how many are left out, so the
 * totals and the blocking reports stay in view; what still does not fit is
 * cut at the bottom. */
static void draw_frame(const struct st_frame *f, int rows)
{
    size_t shown = f->hub_n, other = f->n - f->hub_n;
    size_t room = (size_t)rows > other ? (size_t)rows - other : 0;
    if (room < f->hub_n)
        shown = room ? room - 1 : 0;
    int y = 0;
    char more[96];
    for (size_t i = 0; i < f->n && y < rows; i++) {
        size_t k = i - f->hub_first;
        if (i >= f->hub_first && k < f->hub_n && k >= shown) {
            if (k == shown) {
                snprintf(more, sizeof more, "  ... %zu more hubs (a taller terminal "
                         "shows them)", f->hub_n - shown);
                put_line(y++, rows, more, A_NORMAL);
            }
            continue;
        }
        put_line(y++, rows, f->v[i].text, line_attr(f->v[i].kind));
    }
}

static void draw_keys(const struct watch *w, int y)
{
    char keys[160];
    double secs = st_intervals_ms[w->interval] / 1000.0;
    snprintf(keys, sizeof keys, " q quit   s sort: %s   +/- refresh: %g s ",
             st_sort_names[w->sort], secs);
    put_line(y, y + 1, keys, A_REVERSE);
}

static void draw(struct watch *w)
{
    struct st_frame f = { 0 };
    struct st_view v = { .pid = w->seg->pid, .comm = w->comm, .snap = w->cur,
                         .rates = &w->rates, .rates_note = w->note, .sort = w->sort };
    int rows = LINES > 1 ? LINES - 1 : LINES;
    erase();
    if (st_frame_build(&f, &v) == 0)
        draw_frame(&f, rows);
    else
        put_line(0, rows, "schedtop: out of memory", A_BOLD);
    if (LINES > 1)
        draw_keys(w, LINES - 1);
    refresh();
    st_frame_free(&f);
}

/* Acts on one key; 1 to quit. */
static int on_key(struct watch *w, int ch)
{
    switch (ch) {
    case 'q':
    case 'Q':
        return 1;
    case 's':
    case 'S':
        w->sort = (enum st_sort)((w->sort + 1) % ST_SORT_COUNT);
        break;
    case '+':
        if (w->interval + 1 < ST_N_INTERVALS)
            w->interval++;
        break;
    case '-':
        if (w->interval > 0)
            w->interval--;
        break;
    case KEY_RESIZE:
        break;
    case 'L' & 0x1f:   /* Ctrl-L: repaint all, as after a garbled screen */
        clearok(curscr, TRUE);
        break;
    default:
        return 0;
    }
    draw(w);
    return 0;
}

static enum watch_end loop(struct watch *w)
{
    uint64_t next = 0;
    for (;;) {
        if (stop_signal)
            return W_QUIT;
        uint64_t now = st_mono_ns();
        if (now >= next) {
            enum st_result r = sample(w);
            if (r != ST_OK)
                return r == ST_EXITED ? W_EXITED : W_ERROR;
            draw(w);
        }
        next = w->sampled_ns + st_intervals_ms[w->interval] * 1000000ull;
        now = st_mono_ns();
        uint64_t wait_ms = now < next ? (next - now) / 1000000u + 1 : 0;
        timeout(wait_ms < ST_KEY_WAIT_MS ? (int)wait_ms : ST_KEY_WAIT_MS);
        if (on_key(w, getch()))
            return W_QUIT;
    }
}

/* SIGINT, SIGTERM and SIGHUP end the view like q (set before newterm, so
 * ncurses keeps them); no SA_RESTART, so getch returns at once. */
static void catch_stop_signals(void)
{
    struct sigaction sa = { .sa_handler = on_stop };
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGHUP, &sa, NULL);
}

static enum watch_end run_screen(struct watch *w)
{
    SCREEN *scr = newterm(NULL, stdout, stdin);
    if (!scr) {
        const char *term = getenv("TERM");
        snprintf(w->err, sizeof w->err, "cannot drive the terminal (TERM=%s)",
                 term ? term : "unset");
        return W_ERROR;
    }
    cbreak();
    noecho();
    keypad(stdscr, TRUE);
    curs_set(0);
    enum watch_end end = loop(w);
    endwin();
    delscreen(scr);
    return end;
}

/* The one line that says why the view ended, after endwin.  A runtime that
 * stops unlinks its segment and its process ends right after: give it a
 * moment (up to 1 s) to say which of the two happened. */
static void report_end(struct watch *w, enum watch_end end)
{
    struct st_seg *seg = w->seg;
    if (end == W_ERROR)
        fprintf(stderr, "schedtop: %s\n", w->err);
    if (end != W_EXITED)
        return;
    for (int i = 0; i < 20 && st_proc_alive(seg->pid); i++)
        st_sleep_ms(50);
    if (st_proc_alive(seg->pid)) {
        fprintf(stderr, "schedtop: process %d stopped its greenhub runtime\n", (int)seg->pid);
        return;
    }
    int removed = st_seg_remove_stale(seg) == 1;   /* killed: the segment stays */
    fprintf(stderr, "schedtop: process %d exited%s%s\n", (int)seg->pid,
            removed ? "; removed its stale segment " : "", removed ? seg->path : "");
}

/* The live view; an exit status: 0 after q (or SIGINT / SIGTERM / SIGHUP),
 * 1 when the process exits or stops its runtime, or on an error. */
int st_watch(struct st_seg *seg, const char *comm)
{
    struct watch w;
    if (!isatty(STDIN_FILENO) || !isatty(STDOUT_FILENO)) {
        fprintf(stderr, "schedtop: the live view needs a terminal (use --once or --json)\n");
        return ST_EXIT_FAIL;
    }
    enum watch_end end = W_ERROR;
    if (watch_init(&w, seg, comm) == 0) {
        catch_stop_signals();
        end = run_screen(&w);
    } else {
        snprintf(w.err, sizeof w.err, "out of memory");
    }
    report_end(&w, end);
    watch_free(&w);
    return end == W_QUIT ? ST_EXIT_OK : ST_EXIT_FAIL;
}
