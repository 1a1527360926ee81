/* A program outside the tree, built against an installed greenhub. */
#include <greenhub.h>
#include <stdint.h>
#include <stdio.h>

static void *twice(void *arg) { gh_yield(); return (void *)((uintptr_t)arg * 2); }

static void *main_fn(void *arg)
{
    (void)arg;
    void *r = NULL;
    if (gh_join(gh_spawn(twice, (void *)21), &r) != 0)
        return NULL;
    return r;
}

int main(void)
{
    void *r = NULL;
    int err = gh_run(NULL, main_fn, NULL, &r);
    printf("consumer: gh_run=%d result=%lu\n", err, (unsigned long)(uintptr_t)r);
    return err == 0 && (uintptr_t)r == 42 ? 0 : 1;
}
