/* The README's libpq example, built with the tests so that it keeps
 * compiling (tests/CMakeLists.txt).  Plain blocking libpq code, 90
 * queries at once: 0.41 s in all (2 cores, connections included), not
 * 90 x 0.2 s.  Usage: readme_libpq [conninfo]. */
#include <greenhub.h>
#include <libpq-fe.h>
#include <stdio.h>

static void *query(void *conninfo)   /* unmodified blocking libpq code */
{
    PGconn *c = PQconnectdb(conninfo);
    PGresult *r = PQexec(c, "SELECT pg_sleep(0.2)");
    puts(PQresultStatus(r) == PGRES_TUPLES_OK ? "ok" : PQerrorMessage(c));
    PQclear(r);
    PQfinish(c);
    return NULL;
}

static void *main_fn(void *conninfo)   /* 90 at once, on every core */
{
    gh_group *g = gh_group_new();
    for (int i = 0; i < 90; i++)
        gh_group_spawn(g, query, conninfo);
    gh_group_join(g, -1);
    gh_group_free(g);
    return NULL;
}

int main(int argc, char **argv)
{
    return gh_run(NULL, main_fn, argc > 1 ? argv[1] : "dbname=postgres", NULL);
}
