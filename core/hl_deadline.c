#include "hl_deadline.h"

#include <stdlib.h>

int hl_deadlines_init(hl_deadlines *s, unsigned max_secs, void (*watch)(void *ud, long long at),
                      void *ud) {
    s->max_secs = max_secs ? max_secs : 1;
    s->lists = calloc(s->max_secs + 1, sizeof(*s->lists));
    s->active = NULL;
    s->watch_at = 0;
    s->watch = watch;
    s->ud = ud;
    return s->lists ? 0 : -1;
}

void hl_deadlines_free(hl_deadlines *s) {
    free(s->lists);
    s->lists = NULL;
    s->active = NULL;
}

static void activate(hl_deadlines *s, hl_deadline_list *l) {
    l->act_prev = NULL;
    l->act_next = s->active;
    if (s->active) s->active->act_prev = l;
    s->active = l;
}

static void deactivate(hl_deadlines *s, hl_deadline_list *l) {
    if (l->act_prev)
        l->act_prev->act_next = l->act_next;
    else
        s->active = l->act_next;
    if (l->act_next) l->act_next->act_prev = l->act_prev;
    l->act_prev = l->act_next = NULL;
}

void hl_deadline_cancel(hl_deadlines *s, hl_deadline *d) {
    if (d->at == 0) return;
    hl_deadline_list *l = &s->lists[d->secs];
    if (d->prev)
        d->prev->next = d->next;
    else
        l->head = d->next;
    if (d->next)
        d->next->prev = d->prev;
    else
        l->tail = d->prev;
    d->prev = d->next = NULL;
    d->at = 0;
    if (l->head == NULL) deactivate(s, l);
}

void hl_deadline_arm(hl_deadlines *s, hl_deadline *d, unsigned secs, long long now) {
    hl_deadline_cancel(s, d);
    if (secs < 1) secs = 1;
    if (secs > s->max_secs) secs = s->max_secs;
    hl_deadline_list *l = &s->lists[secs];
    d->secs = secs;
    d->at = now + (long long)secs * 1000;
    if (d->at == 0) d->at = 1; /* 0 means "not armed" */
    /* Every entry of a list was armed for the same duration, so one armed
     * later falls due later: appending keeps the list sorted. The clock
     * only goes forward; a caller passing an older `now` than before
     * would only make this entry fire a little late. */
    d->next = NULL;
    d->prev = l->tail;
    if (l->tail)
        l->tail->next = d;
    else {
        l->head = d;
        activate(s, l);
    }
    l->tail = d;
    if (s->watch_at == 0 || d->at < s->watch_at) {
        s->watch_at = d->at;
        if (s->watch) s->watch(s->ud, d->at);
    }
}

/* The list whose head falls due first (ties: the shorter duration). */
static hl_deadline_list *earliest(const hl_deadlines *s) {
    hl_deadline_list *best = NULL;
    for (hl_deadline_list *l = s->active; l; l = l->act_next)
        if (best == NULL || l->head->at < best->head->at ||
            (l->head->at == best->head->at && l->head->secs < best->head->secs))
            best = l;
    return best;
}

long long hl_deadlines_next(const hl_deadlines *s) {
    const hl_deadline_list *l = earliest(s);
    return l ? l->head->at : 0;
}

size_t hl_deadlines_run(hl_deadlines *s, long long now) {
    size_t fired = 0;
    s->watch_at = 0;
    for (;;) {
        hl_deadline_list *l = earliest(s);
        if (l == NULL || l->head->at > now) break;
        hl_deadline *d = l->head;
        hl_deadline_cancel(s, d);
        fired++;
        d->fire(d);
    }
    long long next = hl_deadlines_next(s);
    if (next != 0 && (s->watch_at == 0 || next < s->watch_at)) {
        s->watch_at = next;
        if (s->watch) s->watch(s->ud, next);
    }
    return fired;
}
