/* The paper venue's work on every market-data message, compiled (paper.py, issue 13).
 *
 * - book_moved: does a book fill a resting order, and if not, where is each resting order in its
 *   level's queue now (matching.Matcher.book_moved). It was the largest Python function per
 *   backtest event (~100 bytecodes). Same rules and arithmetic as the Python: prices and sizes
 *   times the fixed-point scale as doubles, rounded half to even (Python's round) only where a
 *   level may be at an order's price, compared with the orders' integer prices. It reads and writes
 *   the __slots__ of SimSymbol and SimOrder directly, at the offsets their member descriptors give
 *   (bind()); it reads everything before it changes anything, and returns None, having changed
 *   nothing, for whatever is not the usual case (another type, a level that is not a pair of
 *   floats, a number beyond 2**52, more than MAX_ORDERS resting orders): the caller then runs the
 *   Python, which owns every error.
 * - fixed: a book that fills an order, converted to fixed point.
 * - PaperCore: the base of PaperVenue holding the state its market-data entry points touch (now,
 *   the pending actions, the pending books, the symbols), and those entry points, advance(),
 *   on_book_message() and on_trade_message(), for their usual case; anything else, and everything
 *   after the usual case (running due actions, a book or trade that fills), is the Python of
 *   paper._PaperCorePy, called with the same arguments (what the C did first is idempotent: the
 *   clock moved to the message's time, due actions run, a symbol's stale marks dropped).
 *   Also send_report (matching.Owner's): a report built and scheduled for the engine, for constant
 *   latencies; anything else is _PaperCorePy.send_report before anything is done. And _run_due, the
 *   loop that delivers reports and runs arrivals when they fall due (an entry of another shape
 *   hands the rest of the run to _PaperCorePy._run_due); and _arrive, an order reaching the venue,
 *   for a GTC limit order that rests (see "an order's arrival" below); and a book that fills resting
 *   orders (see "a book that fills resting orders").
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <math.h>
#include <stdint.h>
#include <structmember.h>

#define MAX_ORDERS 32
#define EXACT ((double)((int64_t)1 << 52))

static PyTypeObject *sym_type, *order_type, *risk_averse_type;
static double scale = 100000000.0;
/* SimSymbol slots */
static Py_ssize_t o_resting, o_buy_keys, o_sell_keys, o_name;
/* SimOrder slots */
static Py_ssize_t o_price, o_side, o_ahead, o_level_qty, o_traded, o_hint;
static PyObject *str_depth;

#define SLOT(obj, off) (*(PyObject **)((char *)(obj) + (off)))

static int
slot_offset(PyTypeObject *t, const char *name, Py_ssize_t *off)
{
    PyObject *d = PyObject_GetAttrString((PyObject *)t, name);
    if (!d)
        return -1;
    int ok = Py_IS_TYPE(d, &PyMemberDescr_Type) && ((PyMemberDescrObject *)d)->d_member->type == T_OBJECT_EX;
    if (ok)
        *off = ((PyMemberDescrObject *)d)->d_member->offset;
    Py_DECREF(d);
    if (!ok) {
        PyErr_Format(PyExc_TypeError, "%s.%s is not a __slots__ member", t->tp_name, name);
        return -1;
    }
    return 0;
}

static PyObject *
bind(PyObject *mod, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 4 || !PyType_Check(args[0]) || !PyType_Check(args[1]) || !PyType_Check(args[2])) {
        PyErr_SetString(PyExc_TypeError, "bind(SimSymbol, SimOrder, RiskAverseQueue, scale)");
        return NULL;
    }
    PyTypeObject *s = (PyTypeObject *)args[0], *o = (PyTypeObject *)args[1];
    if (slot_offset(s, "resting", &o_resting) || slot_offset(s, "buy_keys", &o_buy_keys) ||
        slot_offset(s, "name", &o_name) ||
        slot_offset(s, "sell_keys", &o_sell_keys) || slot_offset(o, "price", &o_price) ||
        slot_offset(o, "side", &o_side) || slot_offset(o, "ahead", &o_ahead) ||
        slot_offset(o, "level_qty", &o_level_qty) || slot_offset(o, "traded", &o_traded) ||
        slot_offset(o, "hint", &o_hint))
        return NULL;
    double sc = PyFloat_AsDouble(args[3]);
    if (sc == -1.0 && PyErr_Occurred())
        return NULL;
    scale = sc;
    Py_XSETREF(sym_type, (PyTypeObject *)Py_NewRef(s));
    Py_XSETREF(order_type, (PyTypeObject *)Py_NewRef(o));
    Py_XSETREF(risk_averse_type, (PyTypeObject *)Py_NewRef(args[2]));
    Py_RETURN_NONE;
}

/* An int's value without the general conversion (as latentspeed_core/_pyint.h: a separately
 * installed distribution cannot include the core's header). CPython 3.11 keeps an int as 30-bit
 * digits with the sign in ob_size; the venue's (ticks, lots, nanosecond times, ids) have 1 to 3.
 * 0 with the value of any int of at most 3 digits that fits int64; -1 (no error set) otherwise. */
static inline int
compact_i64(PyObject *v, int64_t *out)
{
#if PY_VERSION_HEX < 0x030C0000 && PYLONG_BITS_IN_DIGIT == 30
    Py_ssize_t n = Py_SIZE(v);
    const digit *d = ((PyLongObject *)v)->ob_digit;
    uint64_t m;
    switch (n < 0 ? -n : n) {
    case 0:
        *out = 0;
        return 0;
    case 1:
        m = d[0];
        break;
    case 2:
        m = d[0] | (uint64_t)d[1] << 30;
        break;
    case 3:
        if (d[2] >> 3) /* 2**63 or more */
            return -1;
        m = d[0] | (uint64_t)d[1] << 30 | (uint64_t)d[2] << 60;
        break;
    default:
        return -1;
    }
    *out = n < 0 ? -(int64_t)m : (int64_t)m;
    return 0;
#else
    (void)v;
    (void)out;
    return -1;
#endif
}

/* An int that is exact as a double, or -1 (no error set: the caller gives the case to Python). */
static inline int
small_int(PyObject *v, int64_t *out)
{
    if (!v || !PyLong_CheckExact(v))
        return -1;
    int64_t c;
    int overflow = 0;
    long long x = compact_i64(v, &c) == 0 ? c : PyLong_AsLongLongAndOverflow(v, &overflow);
    if (overflow || x > (1LL << 52) || x < -(1LL << 52))
        return -1;
    *out = x;
    return 0;
}

/* levels[i] as (price, qty) floats; -1 for anything but a 2-item list or tuple of floats. */
static inline int
level_at(PyObject *levels, Py_ssize_t i, double *p, double *q)
{
    PyObject *lv = PyList_GET_ITEM(levels, i), *a, *b;
    if (PyList_CheckExact(lv) && PyList_GET_SIZE(lv) == 2) {
        a = PyList_GET_ITEM(lv, 0);
        b = PyList_GET_ITEM(lv, 1);
    }
    else if (PyTuple_CheckExact(lv) && PyTuple_GET_SIZE(lv) == 2) {
        a = PyTuple_GET_ITEM(lv, 0);
        b = PyTuple_GET_ITEM(lv, 1);
    }
    else
        return -1;
    if (!PyFloat_CheckExact(a) || !PyFloat_CheckExact(b))
        return -1;
    *p = PyFloat_AS_DOUBLE(a);
    *q = PyFloat_AS_DOUBLE(b);
    return 0;
}

/* x * scale, when it is finite and round() of it is exact as an int64 and a double. */
static inline int
scaled(double v, double *x)
{
    double s = v * scale;
    if (!(s > -EXACT && s < EXACT))
        return -1;
    *x = s;
    return 0;
}

/* The first key's first item of a (price-time) key list, if any: 1 found, 0 empty, -1 unusual. */
static inline int
first_key(PyObject *keys, int64_t *k)
{
    if (!PyList_CheckExact(keys))
        return -1;
    if (!PyList_GET_SIZE(keys))
        return 0;
    PyObject *t = PyList_GET_ITEM(keys, 0);
    if (!PyTuple_CheckExact(t) || PyTuple_GET_SIZE(t) < 1)
        return -1;
    return small_int(PyTuple_GET_ITEM(t, 0), k) < 0 ? -1 : 1;
}

typedef struct {
    PyObject *o;
    Py_ssize_t hint; /* -1: the order is not visited (hint unchanged) */
    int has_new;
    int64_t new_qty;
} Visit;

#define UNUSUAL() \
    do { \
        Py_RETURN_NONE; \
    } while (0)

/* A resting order's level holds nq now (a reference handed over): its queue moves as the model says
 * (Matcher._requeue: o.ahead = model.depth(o.ahead, o.level_qty, new, o.traded), risk_averse's
 * inlined), then level_qty = nq, traded = 0. 0, or -1 (error, nq released, nothing changed). */
static int
requeue_one(PyObject *o, PyObject *model, PyObject *nq)
{
    PyObject *ahead = SLOT(o, o_ahead), *front;
    if (Py_IS_TYPE(model, risk_averse_type)) { /* its depth(), inlined */
        int lt = PyObject_RichCompareBool(ahead, nq, Py_LT);
        if (lt < 0) {
            Py_DECREF(nq);
            return -1;
        }
        front = Py_NewRef(lt ? ahead : nq);
    }
    else {
        PyObject *call[5] = {model, ahead, SLOT(o, o_level_qty), nq, SLOT(o, o_traded)};
        if (!(front = PyObject_VectorcallMethod(str_depth, call, 5 | PY_VECTORCALL_ARGUMENTS_OFFSET, NULL))) {
            Py_DECREF(nq);
            return -1;
        }
    }
    Py_SETREF(SLOT(o, o_ahead), front);
    Py_SETREF(SLOT(o, o_level_qty), nq);
    Py_SETREF(SLOT(o, o_traded), PyLong_FromLong(0)); /* a cached small int: cannot fail */
    return 0;
}

/* book_moved(sym, bids, asks, model, skip_front) -> True (the book fills a resting order: nothing
 * changed), False (it does not: queue positions moved) or None (not handled: nothing changed). */
static PyObject *
book_moved_impl(PyObject *sym, PyObject *bids, PyObject *asks, PyObject *model, int skip_front)
{
    if (!sym_type || !Py_IS_TYPE(sym, sym_type) || !PyList_CheckExact(bids) || !PyList_CheckExact(asks))
        UNUSUAL();
    Py_ssize_t nb = PyList_GET_SIZE(bids), na = PyList_GET_SIZE(asks);
    double p, q, x;
    int64_t k;
    int r;

    /* Does it fill: the best ask at or under our best buy, or the best bid at or over our best sell
     * (x <= k + 0.5 may round to k or below; x > k + 0.5 never does). */
    if (na) {
        if ((r = first_key(SLOT(sym, o_buy_keys), &k)) < 0)
            UNUSUAL();
        if (r) { /* k = -(our best buy price) */
            if (level_at(asks, 0, &p, &q) < 0 || scaled(p, &x) < 0)
                UNUSUAL();
            if (x <= 0.5 - (double)k && nearbyint(x) <= (double)-k)
                Py_RETURN_TRUE;
        }
    }
    if (nb) {
        if ((r = first_key(SLOT(sym, o_sell_keys), &k)) < 0)
            UNUSUAL();
        if (r) {
            if (level_at(bids, 0, &p, &q) < 0 || scaled(p, &x) < 0)
                UNUSUAL();
            if (x >= (double)k - 0.5 && nearbyint(x) >= (double)k)
                Py_RETURN_TRUE;
        }
    }
    if (model == Py_None)
        Py_RETURN_FALSE;

    /* Each resting order's level size now (Matcher.requeue_levels), read before anything changes. */
    PyObject *resting = SLOT(sym, o_resting);
    if (!resting || !PyDict_CheckExact(resting) || PyDict_GET_SIZE(resting) > MAX_ORDERS)
        UNUSUAL();
    Visit v[MAX_ORDERS];
    Py_ssize_t nv = 0, pos = 0;
    PyObject *key, *o;
    while (PyDict_Next(resting, &pos, &key, &o)) {
        Visit *w = &v[nv++];
        w->o = o;
        w->hint = -1;
        w->has_new = 0;
        if (!Py_IS_TYPE(o, order_type))
            UNUSUAL();
        PyObject *ahead = SLOT(o, o_ahead);
        int64_t target, side, hint;
        if (!ahead || small_int(SLOT(o, o_price), &target) < 0 || small_int(SLOT(o, o_side), &side) < 0 ||
            small_int(SLOT(o, o_hint), &hint) < 0 || hint < 0 || !SLOT(o, o_level_qty) || !SLOT(o, o_traded))
            UNUSUAL();
        if (skip_front) {
            int t = PyObject_IsTrue(ahead);
            if (t < 0) {
                PyErr_Clear();
                UNUSUAL();
            }
            if (!t)
                continue;
        }
        int buy = side == 0;
        PyObject *levels = buy ? bids : asks;
        Py_ssize_t n = buy ? nb : na, i;
        if (!n)
            continue;
        /* buy: bids best (highest) first; the first level at or below our price. sell: mirrored. */
        double edge = buy ? (double)target + 0.5 : (double)target - 0.5;
        if (level_at(levels, n - 1, &p, &q) < 0 || scaled(p, &x) < 0)
            UNUSUAL();
        if (buy ? x > edge : x < edge)
            continue; /* every visible level is better than our price: unknown, unchanged */
        i = hint > n ? n : (Py_ssize_t)hint;
        while (i) { /* back while the level before also passes */
            if (level_at(levels, i - 1, &p, &q) < 0 || scaled(p, &x) < 0)
                UNUSUAL();
            if (buy ? (x > edge || nearbyint(x) > (double)target) : (x < edge || nearbyint(x) < (double)target))
                break;
            i--;
        }
        for (; i < n; i++) {
            if (level_at(levels, i, &p, &q) < 0 || scaled(p, &x) < 0)
                UNUSUAL();
            if (buy ? x <= edge : x >= edge) {
                double pi = nearbyint(x);
                if (buy ? pi <= (double)target : pi >= (double)target) {
                    w->has_new = 1;
                    if (pi == (double)target) {
                        double qs;
                        if (scaled(q, &qs) < 0)
                            UNUSUAL();
                        w->new_qty = (int64_t)nearbyint(qs);
                    }
                    else
                        w->new_qty = 0; /* passed our price: gone */
                    break;
                }
            }
        }
        w->hint = i;
    }

    /* Everything read: now change it, order by order as the Python does (holding the orders: a
     * queue model's depth() is Python, and could change the symbol's orders). */
    for (Py_ssize_t j = 0; j < nv; j++)
        Py_INCREF(v[j].o);
    PyObject *res = Py_False;
    for (Py_ssize_t j = 0; j < nv; j++) {
        Visit *w = &v[j];
        if (w->hint < 0)
            continue;
        PyObject *o = w->o;
        PyObject *h = PyLong_FromSsize_t(w->hint);
        if (!h)
            goto error;
        Py_SETREF(SLOT(o, o_hint), h);
        if (!w->has_new)
            continue;
        int64_t lq;
        PyObject *level_qty = SLOT(o, o_level_qty);
        if (small_int(level_qty, &lq) == 0) {
            if (lq == w->new_qty)
                continue;
        }
        else {
            PyObject *nq = PyLong_FromLongLong(w->new_qty);
            if (!nq)
                goto error;
            int eq = PyObject_RichCompareBool(nq, level_qty, Py_EQ);
            Py_DECREF(nq);
            if (eq < 0)
                goto error;
            if (eq)
                continue;
        }
        PyObject *nq = PyLong_FromLongLong(w->new_qty);
        if (!nq || requeue_one(o, model, nq) < 0)
            goto error;
    }
    if (0) {
error:
        res = NULL;
    }
    for (Py_ssize_t j = 0; j < nv; j++)
        Py_DECREF(v[j].o);
    return Py_XNewRef(res);
}

/* fixed(levels) -> [[round(price * scale), round(qty * scale)], ...] (paper._fixed: a book that
 * fills a resting order goes to the core whole), or None (not handled) for anything but a list of
 * float pairs whose scaled values are exact as doubles. */
static PyObject *
fixed(PyObject *mod, PyObject *levels)
{
    if (!PyList_CheckExact(levels))
        Py_RETURN_NONE;
    Py_ssize_t n = PyList_GET_SIZE(levels);
    PyObject *out = PyList_New(n);
    if (!out)
        return NULL;
    for (Py_ssize_t i = 0; i < n; i++) {
        double p, q, x, y;
        if (level_at(levels, i, &p, &q) < 0 || scaled(p, &x) < 0 || scaled(q, &y) < 0) {
            Py_DECREF(out);
            Py_RETURN_NONE;
        }
        PyObject *lv = PyList_New(2);
        if (!lv) {
            Py_DECREF(out);
            return NULL;
        }
        PyList_SET_ITEM(out, i, lv);
        PyObject *a = PyLong_FromLongLong((long long)nearbyint(x));
        PyObject *b = a ? PyLong_FromLongLong((long long)nearbyint(y)) : NULL;
        if (!b) {
            Py_XDECREF(a);
            Py_DECREF(out);
            return NULL;
        }
        PyList_SET_ITEM(lv, 0, a);
        PyList_SET_ITEM(lv, 1, b);
    }
    return out;
}

static PyObject *
book_moved(PyObject *mod, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 5) {
        PyErr_SetString(PyExc_TypeError, "book_moved(sym, bids, asks, model, skip_front)");
        return NULL;
    }
    int skip_front = PyObject_IsTrue(args[4]);
    if (skip_front < 0)
        return NULL;
    return book_moved_impl(args[0], args[1], args[2], args[3], skip_front);
}

/* ---- PaperCore ---- */

typedef struct {
    PyObject_HEAD
    PyObject *now, *matcher, *heap, *symbols, *stale, *partial, *pending, *latencies, *queue, *skip_front;
    /* what send_report touches */
    PyObject *by_id, *response_ns, *response, *last_due, *seq, *loop, *timer;
    /* what _run_due touches */
    PyObject *listener;
    Py_ssize_t reports;
    /* what _arrive touches: matching.Owner's resting orders and used ids */
    PyObject *orders, *ids;
    /* what send_new_order and send_cancel touch; the bound _arrive and _arrive_cancel, once */
    PyObject *connected, *entry_ns, *arrive_m, *arrive_cancel_m;
    Py_ssize_t orders_sent, cancels_sent;
} CoreObject;

/* paper._PaperCorePy's advance, on_book_message and on_trade_message: the rule for every case. */
static PyObject *py_advance, *py_on_book, *py_on_trade, *py_send_report, *py_run_due;
/* send_report's ExecutionReport: the class, its N_REPORT slots in field order, and the enum tuples */
#define N_REPORT 16
static PyTypeObject *report_type;
static Py_ssize_t o_report[N_REPORT];
static PyObject *sides, *exec_types, *reasons, *heappush, *str_arm;
static PyObject *str_receipt, *str_symbol, *str_bids, *str_asks, *str_price, *str_side, *str_amount, *str_buy,
    *str_run_due, *str_fills_resting, *str_on_trade, *str_on_execution_report, *str_log_orders, *str_next_order_id,
    *str_next_exec_id, *str_stats, *str_max_open, *str_orders, *str_new_order, *str_cancels, *str_cancel_rejects, *str_fills,
    *str_fill_threshold, *str_queue_model, *str_front_is_final, *str_on_print, *str_clock;

/* An int (IntEnum members included) that fits in int64, or -1 (no error set). */
static inline int
any_i64(PyObject *v, int64_t *out)
{
    if (!v || !PyLong_Check(v))
        return -1;
    int64_t c;
    if (compact_i64(v, &c) == 0) {
        *out = c;
        return 0;
    }
    int overflow;
    long long x = PyLong_AsLongLongAndOverflow(v, &overflow);
    if (overflow || (x == -1 && PyErr_Occurred())) {
        PyErr_Clear();
        return -1;
    }
    *out = x;
    return 0;
}

/* An exact int that fits in int64, or -1 (no error set). */
static inline int
as_i64(PyObject *v, int64_t *out)
{
    return v && PyLong_CheckExact(v) ? any_i64(v, out) : -1;
}

/* ---- the action heap: heapq's algorithm, entries compared by their ints ---------------------------
 *
 * The venue's actions are a heapq heap of (due, seq, fn, args) tuples that the Python side pushes and
 * pops too. heap_push and heap_pop are heapq.heappush and heappop step for step (the same layout, so
 * either side may follow the other), with one difference: two entries whose due times (or, equal,
 * whose sequence numbers) are plain ints compare by those values, as the tuples' own comparison
 * would, instead of through tuple and int rich comparison (~600 instructions an event in the
 * backtest benchmark). Anything else compares as Python compares it. */

/* a < b for two heap entries: 1, 0, or -1 (error). */
static int
entry_lt(PyObject *a, PyObject *b)
{
    if (PyTuple_CheckExact(a) && PyTuple_CheckExact(b) && PyTuple_GET_SIZE(a) >= 2 && PyTuple_GET_SIZE(b) >= 2) {
        for (int i = 0; i < 2; i++) {
            PyObject *x = PyTuple_GET_ITEM(a, i), *y = PyTuple_GET_ITEM(b, i);
            int64_t u, v;
            if (!PyLong_CheckExact(x) || !PyLong_CheckExact(y) || compact_i64(x, &u) < 0 || compact_i64(y, &v) < 0)
                break;
            if (u != v)
                return u < v;
        }
    }
    Py_INCREF(a);
    Py_INCREF(b);
    int r = PyObject_RichCompareBool(a, b, Py_LT);
    Py_DECREF(a);
    Py_DECREF(b);
    return r;
}

static int
heap_changed(void)
{
    PyErr_SetString(PyExc_RuntimeError, "list changed size during iteration");
    return -1;
}

/* heapq's _siftdown(heap, startpos, pos) */
static int
sift_down(PyObject *heap, Py_ssize_t startpos, Py_ssize_t pos)
{
    Py_ssize_t size = PyList_GET_SIZE(heap);
    while (pos > startpos) {
        Py_ssize_t parentpos = (pos - 1) >> 1;
        int lt = entry_lt(PyList_GET_ITEM(heap, pos), PyList_GET_ITEM(heap, parentpos));
        if (lt < 0)
            return -1;
        if (size != PyList_GET_SIZE(heap))
            return heap_changed();
        if (!lt)
            break;
        PyObject *parent = PyList_GET_ITEM(heap, parentpos);
        PyList_SET_ITEM(heap, parentpos, PyList_GET_ITEM(heap, pos));
        PyList_SET_ITEM(heap, pos, parent);
        pos = parentpos;
    }
    return 0;
}

/* heapq's _siftup(heap, pos) */
static int
sift_up(PyObject *heap, Py_ssize_t pos)
{
    Py_ssize_t endpos = PyList_GET_SIZE(heap), startpos = pos, limit = endpos >> 1;
    while (pos < limit) {
        Py_ssize_t childpos = 2 * pos + 1;
        if (childpos + 1 < endpos) {
            int lt = entry_lt(PyList_GET_ITEM(heap, childpos), PyList_GET_ITEM(heap, childpos + 1));
            if (lt < 0)
                return -1;
            childpos += lt ^ 1;
            if (endpos != PyList_GET_SIZE(heap))
                return heap_changed();
        }
        PyObject *child = PyList_GET_ITEM(heap, childpos);
        PyList_SET_ITEM(heap, childpos, PyList_GET_ITEM(heap, pos));
        PyList_SET_ITEM(heap, pos, child);
        pos = childpos;
    }
    return sift_down(heap, startpos, pos);
}

/* heapq.heappush(heap, item) for a list: 0 or -1. */
static int
heap_push(PyObject *heap, PyObject *item)
{
    if (PyList_Append(heap, item) < 0)
        return -1;
    return sift_down(heap, 0, PyList_GET_SIZE(heap) - 1);
}

/* heapq.heappop(heap) for a non-empty list: its smallest item (new reference), or NULL. */
static PyObject *
heap_pop(PyObject *heap)
{
    Py_ssize_t n = PyList_GET_SIZE(heap);
    PyObject *last = Py_NewRef(PyList_GET_ITEM(heap, n - 1));
    if (PyList_SetSlice(heap, n - 1, n, NULL) < 0) {
        Py_DECREF(last);
        return NULL;
    }
    if (n == 1)
        return last;
    PyObject *top = PyList_GET_ITEM(heap, 0); /* the list's reference, now ours */
    PyList_SET_ITEM(heap, 0, last);
    if (sift_up(heap, 0) < 0) {
        Py_DECREF(top);
        return NULL;
    }
    return top;
}

/* heap_push(list, item) and heap_pop(list): the two above, for the tests (against heapq) */
static PyObject *
py_heap_push(PyObject *mod, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 2 || !PyList_Check(args[0])) {
        PyErr_SetString(PyExc_TypeError, "heap_push(list, item)");
        return NULL;
    }
    if (heap_push(args[0], args[1]) < 0)
        return NULL;
    Py_RETURN_NONE;
}

static PyObject *
py_heap_pop(PyObject *mod, PyObject *heap)
{
    if (!PyList_Check(heap)) {
        PyErr_SetString(PyExc_TypeError, "heap_pop(list)");
        return NULL;
    }
    if (!PyList_GET_SIZE(heap)) {
        PyErr_SetString(PyExc_IndexError, "index out of range");
        return NULL;
    }
    return heap_pop(heap);
}

/* The clock moves to t (never back) and what is due by then runs: 0 done, 1 not the usual case
 * (the Python does it), -1 error. */
static int
step_time(CoreObject *self, PyObject *t)
{
    int64_t tt, now, due;
    if (as_i64(t, &tt) < 0 || as_i64(self->now, &now) < 0 || !self->heap || !PyList_CheckExact(self->heap))
        return 1;
    if (tt > now) {
        Py_SETREF(self->now, Py_NewRef(t));
        now = tt;
    }
    if (!PyList_GET_SIZE(self->heap))
        return 0;
    PyObject *top = PyList_GET_ITEM(self->heap, 0);
    if (!PyTuple_CheckExact(top) || PyTuple_GET_SIZE(top) < 1 || as_i64(PyTuple_GET_ITEM(top, 0), &due) < 0)
        return 1;
    if (due <= now) {
        PyObject *r = PyObject_CallMethodNoArgs((PyObject *)self, str_run_due);
        if (!r)
            return -1;
        Py_DECREF(r);
    }
    return 0;
}

static PyObject *
fallback(PyObject *fn, CoreObject *self, PyObject *arg)
{
    PyObject *args[2] = {(PyObject *)self, arg};
    return PyObject_Vectorcall(fn, args, 2, NULL);
}

static PyObject *
core_advance(CoreObject *self, PyObject *t)
{
    int r = step_time(self, t);
    if (r < 0)
        return NULL;
    if (r > 0)
        return fallback(py_advance, self, t);
    Py_RETURN_NONE;
}

/* _PaperCorePy._run_due: the actions due by `until` (default: now), each at its own time, in time
 * order. Every action is a heap entry (due, seq, fn, args); fn None: a report reaching the engine
 * (most of them), stamped with its arrival. An entry of any other shape, or a clock that is not a
 * plain int, hands the rest of the run to the Python, with the same limit. */
static PyObject *
core_run_due(CoreObject *self, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs > 1) {
        PyErr_SetString(PyExc_TypeError, "_run_due takes at most one argument");
        return NULL;
    }
    if (!py_run_due) {
        PyErr_SetString(PyExc_RuntimeError, "_paper: bind_core() was not called");
        return NULL;
    }
    int64_t limit, due, now;
    int have_limit = 0;
    if (!report_type || as_i64(nargs && args[0] != Py_None ? args[0] : self->now, &limit) < 0)
        goto python;
    have_limit = 1;
    for (;;) {
        PyObject *heap = self->heap;
        if (!heap || !PyList_CheckExact(heap))
            goto python;
        if (!PyList_GET_SIZE(heap))
            break;
        PyObject *top = PyList_GET_ITEM(heap, 0), *fn, *a;
        if (!PyTuple_CheckExact(top) || PyTuple_GET_SIZE(top) != 4 || as_i64(PyTuple_GET_ITEM(top, 0), &due) < 0)
            goto python;
        if (due > limit)
            break;
        fn = PyTuple_GET_ITEM(top, 2);
        a = PyTuple_GET_ITEM(top, 3);
        if ((fn == Py_None ? !Py_IS_TYPE(a, report_type) : !PyTuple_CheckExact(a)) || as_i64(self->now, &now) < 0)
            goto python;
        Py_INCREF(heap);
        PyObject *entry = heap_pop(heap);
        Py_DECREF(heap);
        if (!entry)
            return NULL;
        if (entry != top) { /* (heap_pop gives the top it was shown) */
            Py_DECREF(entry);
            PyErr_SetString(PyExc_RuntimeError, "_run_due: the heap changed under it");
            return NULL;
        }
        PyObject *due_o = PyTuple_GET_ITEM(entry, 0), *saved = self->now, *r;
        self->now = Py_NewRef(due_o); /* the action happens at its own time; saved keeps the reference */
        if (fn == Py_None) {
            Py_XSETREF(SLOT(a, o_report[12]), Py_NewRef(due_o)); /* receipt_ns */
            self->reports++;
            PyObject *listener = self->listener;
            if (listener && listener != Py_None) {
                Py_INCREF(listener);
                r = PyObject_CallMethodOneArg(listener, str_on_execution_report, a);
                Py_DECREF(listener);
            }
            else
                r = Py_NewRef(Py_None);
        }
        else
            r = PyObject_Call(fn, a, NULL);
        if (!r) {
            Py_DECREF(saved);
            Py_DECREF(entry);
            return NULL;
        }
        Py_DECREF(r);
        /* self.now = saved if saved > due else due (whatever the action did to it) */
        Py_SETREF(self->now, now > due ? saved : Py_NewRef(due_o));
        if (now <= due)
            Py_DECREF(saved);
        Py_DECREF(entry);
    }
    Py_RETURN_NONE;
python:;
    if (!have_limit) { /* not an int we take: the Python's own rule for it */
        PyObject *stack[2] = {(PyObject *)self, nargs ? args[0] : Py_None};
        return PyObject_Vectorcall(py_run_due, stack, 2, NULL);
    }
    PyObject *lim = PyLong_FromLongLong(limit), *r = NULL;
    if (lim) {
        PyObject *stack[2] = {(PyObject *)self, lim};
        r = PyObject_Vectorcall(py_run_due, stack, 2, NULL);
        Py_DECREF(lim);
    }
    return r;
}


/* ---- an order's arrival (paper._PaperCorePy._arrive; matching.Matcher.new_order) -------------------
 *
 * The usual order of a backtest, a GTC limit order of PaperVenue itself (not a subclass: they may
 * change the rules) that does not cross the book when it arrives, is acknowledged and rests here:
 * the pending book converted as deep as the order reads it (PaperVenue._current), then
 * Matcher.new_order's checks, its NEW report, its queue position and its place in the price-time
 * index. Everything else is the Python: an unusual order, symbol or book before anything is changed
 * (_PaperCorePy._arrive), an order the book crosses or that is refused after the conversion
 * (Matcher.new_order with the same arguments), a level that is not a pair of floats in the middle of
 * a conversion (paper._convert from there on). */

static PyObject *core_send_report(CoreObject *self, PyObject *const *args, Py_ssize_t nargs);

/* Order slots */
static Py_ssize_t oo_cl, oo_symbol, oo_side, oo_qty, oo_price, oo_type, oo_tif;
/* SimSymbol slots beyond book_moved's */
static Py_ssize_t o_sid, o_tick, o_lot, o_bids, o_asks, o_update_no;
/* SimOrder slots, in matching.SimOrder.__init__'s order */
enum { S_CL, S_OID, S_OWNER, S_SYM, S_SIDE, S_PRICE, S_QTY, S_LEAVES, S_CUM, S_DECISION, S_CROSSED, S_AHEAD,
       S_LEVEL_QTY, S_TRADED, S_HINT, S_N };
static Py_ssize_t so[S_N];
/* UsedIds slots */
static Py_ssize_t o_ids_lo, o_ids_hi, o_ids_rest;
static PyTypeObject *order_in_type, *ids_type, *matcher_type, *venue_type;

/* matching.Matcher's attributes the usual cases read and write: at their __slots__ offsets (found by
 * bind_core) while the matcher is exactly a Matcher, else by name (~200 instructions a read). */
#define MA_N 10
static PyObject **ma_names[MA_N] = {&str_log_orders, &str_stats,         &str_next_order_id, &str_next_exec_id,
                                    &str_max_open,   &str_fill_threshold, &str_queue_model,   &str_front_is_final,
                                    &str_on_print,   &str_clock};
static Py_ssize_t ma_off[MA_N] = {-1, -1, -1, -1, -1, -1, -1, -1, -1, -1};

static inline Py_ssize_t
ma_offset(PyObject *matcher, PyObject *name)
{
    if (!matcher_type || !Py_IS_TYPE(matcher, matcher_type))
        return -1;
    for (int i = 0; i < MA_N; i++)
        if (*ma_names[i] == name)
            return ma_off[i];
    return -1;
}

/* matcher.<name>: a new reference */
static PyObject *
m_getattr(PyObject *matcher, PyObject *name)
{
    Py_ssize_t off = ma_offset(matcher, name);
    PyObject *v;
    if (off >= 0 && (v = SLOT(matcher, off)))
        return Py_NewRef(v);
    return PyObject_GetAttr(matcher, name);
}

/* matcher.<name> = v */
static int
m_setattr(PyObject *matcher, PyObject *name, PyObject *v)
{
    Py_ssize_t off = ma_offset(matcher, name);
    if (off < 0)
        return PyObject_SetAttr(matcher, name, v);
    Py_XSETREF(SLOT(matcher, off), Py_NewRef(v)); /* (the old value released after) */
    return 0;
}

static PyObject *insort, *bisect_left, *py_arrive, *py_convert, *py_arrive_cancel;

static PyObject *
bind_arrive(PyObject *mod, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 9 || !PyType_Check(args[0]) || !PyType_Check(args[1]) || !PyType_Check(args[2]) ||
        !PyType_Check(args[3]) || !sym_type || !order_type) {
        PyErr_SetString(PyExc_TypeError, "bind_arrive(Order, UsedIds, Matcher, PaperVenue, insort, bisect_left, "
                                         "_arrive, _convert, _arrive_cancel), after bind()");
        return NULL;
    }
    static const char *order_fields[S_N] = {"cl_ord_id", "order_id", "owner", "sym", "side", "price", "qty",
                                            "leaves", "cum", "decision", "crossed_update", "ahead", "level_qty",
                                            "traded", "hint"};
    PyTypeObject *o = (PyTypeObject *)args[0], *ids = (PyTypeObject *)args[1];
    if (slot_offset(o, "cl_ord_id", &oo_cl) || slot_offset(o, "symbol", &oo_symbol) ||
        slot_offset(o, "side", &oo_side) || slot_offset(o, "qty", &oo_qty) || slot_offset(o, "price", &oo_price) ||
        slot_offset(o, "ord_type", &oo_type) || slot_offset(o, "tif", &oo_tif) ||
        slot_offset(sym_type, "sid", &o_sid) || slot_offset(sym_type, "tick", &o_tick) ||
        slot_offset(sym_type, "lot", &o_lot) || slot_offset(sym_type, "bids", &o_bids) ||
        slot_offset(sym_type, "asks", &o_asks) || slot_offset(sym_type, "update_no", &o_update_no) ||
        slot_offset(ids, "lo", &o_ids_lo) || slot_offset(ids, "hi", &o_ids_hi) || slot_offset(ids, "rest", &o_ids_rest))
        return NULL;
    for (int i = 0; i < S_N; i++)
        if (slot_offset(order_type, order_fields[i], &so[i]) < 0)
            return NULL;
    Py_XSETREF(order_in_type, (PyTypeObject *)Py_NewRef(o));
    Py_XSETREF(ids_type, (PyTypeObject *)Py_NewRef(ids));
    Py_XSETREF(matcher_type, (PyTypeObject *)Py_NewRef(args[2]));
    for (int i = 0; i < MA_N; i++)
        if (slot_offset(matcher_type, PyUnicode_AsUTF8(*ma_names[i]), &ma_off[i]) < 0) {
            PyErr_Clear(); /* not a slot: read by name */
            ma_off[i] = -1;
        }
    Py_XSETREF(venue_type, (PyTypeObject *)Py_NewRef(args[3]));
    Py_XSETREF(insort, Py_NewRef(args[4]));
    Py_XSETREF(bisect_left, Py_NewRef(args[5]));
    Py_XSETREF(py_arrive, Py_NewRef(args[6]));
    Py_XSETREF(py_convert, Py_NewRef(args[7]));
    Py_XSETREF(py_arrive_cancel, Py_NewRef(args[8]));
    Py_RETURN_NONE;
}

/* An owner's claim_id, its usual case (the next id of the run, nothing held apart, or the first id
 * of all): 1 (then *hi is where the run ends now), 0 not the usual case. Read only; claim() makes it. */
static int
claim_usual(PyObject *ids, PyObject *cl, int64_t *hi)
{
    int64_t v, lo;
    if (!ids || !Py_IS_TYPE(ids, ids_type))
        return 0;
    PyObject *rest = SLOT(ids, o_ids_rest);
    if (small_int(cl, &v) < 0 || small_int(SLOT(ids, o_ids_hi), hi) < 0 ||
        small_int(SLOT(ids, o_ids_lo), &lo) < 0 || !rest || !PySet_CheckExact(rest) || PySet_GET_SIZE(rest) ||
        (*hi < 0 ? lo != -1 || *hi != -1 || v < 0 : v != *hi + 1))
        return 0;
    return 1;
}

static void
claim(PyObject *ids, PyObject *cl, int64_t hi)
{
    if (hi < 0)
        Py_SETREF(SLOT(ids, o_ids_lo), Py_NewRef(cl));
    Py_SETREF(SLOT(ids, o_ids_hi), Py_NewRef(cl));
}

/* d[key] += 1 for an int d[key] of a dict: 0, or -1 (error). */
static int
count_up(PyObject *d, PyObject *key)
{
    PyObject *n = PyDict_GetItemWithError(d, key), *one = NULL, *m = NULL;
    if (!n) {
        if (!PyErr_Occurred())
            PyErr_SetObject(PyExc_KeyError, key);
        return -1;
    }
    Py_INCREF(n);
    int r = -1;
    if ((one = PyLong_FromLong(1)) && (m = PyNumber_Add(n, one)))
        r = PyDict_SetItem(d, key, m);
    Py_DECREF(n);
    Py_XDECREF(one);
    Py_XDECREF(m);
    return r;
}

/* A new [a, b] list of two ints. */
static PyObject *
int_pair(int64_t a, int64_t b)
{
    PyObject *lv = PyList_New(2);
    if (!lv)
        return NULL;
    PyObject *x = PyLong_FromLongLong(a), *y = x ? PyLong_FromLongLong(b) : NULL;
    if (!y) {
        Py_XDECREF(x);
        Py_DECREF(lv);
        return NULL;
    }
    PyList_SET_ITEM(lv, 0, x);
    PyList_SET_ITEM(lv, 1, y);
    return lv;
}

/* paper._convert(levels, i, out, sign, beyond): levels[i:] appended to out in fixed point, up to and
 * including the first level whose sign * price * scale exceeds beyond; the new i, or -1 (error). A
 * level that is not a pair of floats, or too large, and paper._convert goes on from there. */
static Py_ssize_t
convert_levels(PyObject *levels, Py_ssize_t i, PyObject *out, double sign, double beyond)
{
    Py_ssize_t n = PyList_GET_SIZE(levels);
    while (i < n) {
        double p, q, x, y;
        if (level_at(levels, i, &p, &q) < 0 || scaled(p, &x) < 0 || scaled(q, &y) < 0)
            goto python;
        PyObject *lv = int_pair((int64_t)nearbyint(x), (int64_t)nearbyint(y));
        if (!lv)
            return -1;
        int r = PyList_Append(out, lv);
        Py_DECREF(lv);
        if (r < 0)
            return -1;
        i++;
        if (sign * x > beyond)
            break;
    }
    return i;
python:;
    PyObject *io = PyLong_FromSsize_t(i), *so_ = PyFloat_FromDouble(sign), *bo = PyFloat_FromDouble(beyond), *r = NULL;
    if (io && so_ && bo) {
        PyObject *stack[5] = {levels, io, out, so_, bo};
        r = PyObject_Vectorcall(py_convert, stack, 5, NULL);
    }
    Py_XDECREF(io);
    Py_XDECREF(so_);
    Py_XDECREF(bo);
    if (!r)
        return -1;
    Py_ssize_t k = PyLong_AsSsize_t(r);
    Py_DECREF(r);
    return k == -1 && PyErr_Occurred() ? -1 : k;
}

/* An exact list of [int, int] levels, read as int64 by level_int; -1 for anything else. */
static inline int
level_int(PyObject *levels, Py_ssize_t i, int64_t *p, int64_t *q)
{
    PyObject *lv = PyList_GET_ITEM(levels, i);
    if (!PyList_CheckExact(lv) || PyList_GET_SIZE(lv) != 2 || small_int(PyList_GET_ITEM(lv, 0), p) < 0 ||
        small_int(PyList_GET_ITEM(lv, 1), q) < 0)
        return -1;
    return 0;
}

/* The usual case of Matcher.new_order for a GTC limit order: 1 handled (acknowledged and resting),
 * 0 not the usual case (nothing changed: the Python decides), -1 error. */
static int
rest_order(CoreObject *self, PyObject *sym, PyObject *cl, int64_t side, int64_t price, int64_t qty)
{
    PyObject *matcher = self->matcher, *ids = self->ids, *orders = self->orders;
    int64_t sid, tick, lot, v, hi, max_open, p, q, oid, xid;
    if (!matcher || !Py_IS_TYPE(matcher, matcher_type) || !ids || !Py_IS_TYPE(ids, ids_type) || !orders ||
        !PyDict_CheckExact(orders) || small_int(cl, &v) < 0 || small_int(SLOT(sym, o_sid), &sid) < 0 ||
        small_int(SLOT(sym, o_tick), &tick) < 0 || small_int(SLOT(sym, o_lot), &lot) < 0 || tick <= 0 || lot <= 0)
        return 0;
    if (!claim_usual(ids, cl, &hi))
        return 0;
    if (qty <= 0 || qty % lot || price <= 0 || price % tick || side < 0 || side > 1)
        return 0;
    PyObject *bids = SLOT(sym, o_bids), *asks = SLOT(sym, o_asks), *resting = SLOT(sym, o_resting);
    PyObject *keys = SLOT(sym, side == 0 ? o_buy_keys : o_sell_keys);
    if (!bids || !asks || !PyList_CheckExact(bids) || !PyList_CheckExact(asks) || !resting ||
        !PyDict_CheckExact(resting) || !keys || !PyList_CheckExact(keys))
        return 0;
    /* the matcher's state, read before anything changes */
    PyObject *log_orders = NULL, *stats = NULL, *n_orders = NULL, *next_oid = NULL, *next_xid = NULL, *mo = NULL;
    int usual = 0;
    if (!(log_orders = m_getattr(matcher, str_log_orders)) || !(stats = m_getattr(matcher, str_stats)) ||
        !(next_oid = m_getattr(matcher, str_next_order_id)) ||
        !(next_xid = m_getattr(matcher, str_next_exec_id)) || !(mo = m_getattr(matcher, str_max_open))) {
        usual = -1;
        goto out;
    }
    if (log_orders != Py_False || !PyDict_CheckExact(stats) || small_int(next_oid, &oid) < 0 ||
        small_int(next_xid, &xid) < 0 || small_int(mo, &max_open) < 0 || PyDict_GET_SIZE(orders) >= max_open ||
        oid >= (1LL << 52) || xid >= (1LL << 52))
        goto unusual;
    n_orders = PyDict_GetItemWithError(stats, str_orders);
    if (!n_orders) {
        usual = PyErr_Occurred() ? -1 : 0;
        goto out;
    }
    Py_INCREF(n_orders);
    if (!PyLong_CheckExact(n_orders))
        goto unusual;
    /* marketable: the best opposite level with size crosses the price (then Python sweeps it) */
    PyObject *opp = side == 0 ? asks : bids, *own = side == 0 ? bids : asks;
    for (Py_ssize_t i = 0; i < PyList_GET_SIZE(opp); i++) {
        if (level_int(opp, i, &p, &q) < 0)
            goto unusual;
        if (q > 0) {
            if (side == 0 ? p <= price : p >= price)
                goto unusual;
            break;
        }
    }
    /* its queue: the visible size at its price, joined at the back */
    PyObject *lq = NULL;
    if (self->queue && self->queue != Py_None) {
        for (Py_ssize_t i = 0; i < PyList_GET_SIZE(own); i++) {
            if (level_int(own, i, &p, &q) < 0)
                goto unusual;
            if (p == price) {
                lq = PyList_GET_ITEM(PyList_GET_ITEM(own, i), 1);
                break;
            }
        }
    }
    usual = 1;
    Py_INCREF(sym);
    PyObject *o = NULL, *pr = NULL, *qo = NULL, *oido = NULL, *xido = NULL, *so_ = NULL, *sido = NULL, *key = NULL;
    PyObject *np = NULL, *zero = PyLong_FromLong(0), *one = PyLong_FromLong(1), *r = NULL;
    Py_XINCREF(lq);
    usual = -1; /* from here on: changed, so handled, or an error */
    /* stats["orders"] += 1 */
    if (!zero || !one || !(np = PyNumber_Add(n_orders, one)) || PyDict_SetItem(stats, str_orders, np) < 0)
        goto fail;
    if (!(oido = PyLong_FromLongLong(oid)) || !(xido = PyLong_FromLongLong(xid)) ||
        !(pr = PyLong_FromLongLong(price)) || !(qo = PyLong_FromLongLong(qty)) || !(so_ = PyLong_FromLongLong(side)) ||
        !(sido = PyLong_FromLongLong(sid)))
        goto fail;
    {
        PyObject *next = PyLong_FromLongLong(oid + 1);
        int rc = next ? m_setattr(matcher, str_next_order_id, next) : -1;
        Py_XDECREF(next);
        if (rc < 0)
            goto fail;
    }
    if (!(o = order_type->tp_alloc(order_type, 0)))
        goto fail;
    PyObject *init[S_N] = {cl, oido, (PyObject *)self, sym, so_, pr, qo, qo, zero, Py_False, NULL, NULL,
                           lq ? lq : zero, zero, zero};
    PyObject *crossed = PyLong_FromLong(-2), *ahead = PyFloat_FromDouble(lq ? PyLong_AsDouble(lq) : 0.0);
    if (!crossed || !ahead) {
        Py_XDECREF(crossed);
        Py_XDECREF(ahead);
        goto fail;
    }
    init[S_CROSSED] = crossed;
    init[S_AHEAD] = ahead;
    for (int i = 0; i < S_N; i++)
        SLOT(o, so[i]) = i == S_CROSSED || i == S_AHEAD ? init[i] : Py_NewRef(init[i]);
    {
        PyObject *next = PyLong_FromLongLong(xid + 1);
        int rc = next ? m_setattr(matcher, str_next_exec_id, next) : -1;
        Py_XDECREF(next);
        if (rc < 0)
            goto fail;
    }
    /* owner.send_report(cl, order_id, exec_id, sid, side, EXEC_NEW, 0, 0, qty, 0, 0, now, 0) */
    {
        PyObject *rargs[13] = {cl, oido, xido, sido, so_, zero, zero, zero, qo, zero, zero, self->now, zero};
        Py_INCREF(self->now);
        r = core_send_report(self, rargs, 13);
        Py_DECREF(rargs[11]);
        if (!r)
            goto fail;
        Py_DECREF(r);
    }
    /* the claim (UsedIds: the run grows by one), then rest: owner.orders, sym.resting, the index */
    claim(ids, cl, hi);
    if (PyDict_SetItem(orders, cl, o) < 0 || PyDict_SetItem(resting, oido, o) < 0)
        goto fail;
    if (side == 0) {
        PyObject *neg = PyLong_FromLongLong(-price);
        key = neg ? PyTuple_Pack(2, neg, oido) : NULL;
        Py_XDECREF(neg);
    }
    else
        key = PyTuple_Pack(2, pr, oido);
    if (!key)
        goto fail;
    {
        PyObject *iargs[2] = {keys, key};
        r = PyObject_Vectorcall(insort, iargs, 2, NULL);
        if (!r)
            goto fail;
        Py_DECREF(r);
    }
    usual = 1;
fail:
    Py_XDECREF(o);
    Py_XDECREF(pr);
    Py_XDECREF(qo);
    Py_XDECREF(oido);
    Py_XDECREF(xido);
    Py_XDECREF(so_);
    Py_XDECREF(sido);
    Py_XDECREF(key);
    Py_XDECREF(np);
    Py_XDECREF(zero);
    Py_XDECREF(one);
    Py_XDECREF(lq);
    Py_DECREF(sym);
    goto out;
unusual:
    usual = 0;
out:
    Py_XDECREF(log_orders);
    Py_XDECREF(stats);
    Py_XDECREF(n_orders);
    Py_XDECREF(next_oid);
    Py_XDECREF(next_xid);
    Py_XDECREF(mo);
    return usual;
}


/* PaperCore._arrive(order, response_ns): see above. */
static PyObject *
core_arrive(CoreObject *self, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 2) {
        PyErr_SetString(PyExc_TypeError, "_arrive(order, response_ns)");
        return NULL;
    }
    if (!py_arrive) {
        PyErr_SetString(PyExc_RuntimeError, "_paper: bind_arrive() was not called");
        return NULL;
    }
    PyObject *order = args[0], *sym, *name, *pending, *part = NULL, *bids, *asks, *r;
    int64_t side, ot, tif, price, qty, nb = 0, na = 0;
    double x, y;
    if (!venue_type || !Py_IS_TYPE(self, venue_type) || !Py_IS_TYPE(order, order_in_type) || !self->symbols ||
        !PyDict_CheckExact(self->symbols) || !self->pending || !PyDict_CheckExact(self->pending) || !self->partial ||
        !PyDict_CheckExact(self->partial) || any_i64(SLOT(order, oo_side), &side) < 0 ||
        any_i64(SLOT(order, oo_type), &ot) < 0 || any_i64(SLOT(order, oo_tif), &tif) < 0 || side < 0 ||
        side > 1 || ot != 0 || tif != 0) /* a GTC limit order (protocol.ORD_LIMIT, TIF_GTC) */
        goto python;
    PyObject *symbol = SLOT(order, oo_symbol), *po = SLOT(order, oo_price), *qo = SLOT(order, oo_qty);
    if (!symbol || !PyUnicode_CheckExact(symbol) || !po || !PyFloat_CheckExact(po) || !qo || !PyFloat_CheckExact(qo) ||
        scaled(PyFloat_AS_DOUBLE(po), &x) < 0 || scaled(PyFloat_AS_DOUBLE(qo), &y) < 0)
        goto python;
    price = (int64_t)nearbyint(x); /* round(order.price * SCALE): half to even */
    qty = (int64_t)nearbyint(y);
    sym = PyDict_GetItemWithError(self->symbols, symbol);
    if (!sym) {
        if (PyErr_Occurred())
            return NULL;
        goto python;
    }
    if (!Py_IS_TYPE(sym, sym_type) || !(name = SLOT(sym, o_name)) || !PyUnicode_CheckExact(name))
        goto python;
    /* PaperVenue._current(sym, price): read and checked first, then changed */
    pending = PyDict_GetItemWithError(self->pending, name);
    if (pending) {
        if (!PyDict_CheckExact(pending))
            goto python;
        bids = PyDict_GetItemWithError(pending, str_bids);
        asks = bids ? PyDict_GetItemWithError(pending, str_asks) : NULL;
        if (!asks) {
            if (PyErr_Occurred())
                return NULL;
            goto python;
        }
        if (!PyList_CheckExact(bids) || !PyList_CheckExact(asks))
            goto python;
    }
    else {
        if (PyErr_Occurred())
            return NULL;
        part = PyDict_GetItemWithError(self->partial, name);
        if (!part && PyErr_Occurred())
            return NULL;
        if (part) {
            if (!PyList_CheckExact(part) || PyList_GET_SIZE(part) != 4 ||
                !PyList_CheckExact(bids = PyList_GET_ITEM(part, 0)) || !PyList_CheckExact(asks = PyList_GET_ITEM(part, 2)) ||
                small_int(PyList_GET_ITEM(part, 1), &nb) < 0 || small_int(PyList_GET_ITEM(part, 3), &na) < 0 ||
                nb < 0 || na < 0 || !PyList_CheckExact(SLOT(sym, o_bids)) || !PyList_CheckExact(SLOT(sym, o_asks)))
                goto python;
        }
    }
    Py_INCREF(sym);
    if (pending) {
        PyObject *nb_list = PyList_New(0), *na_list = PyList_New(0), *zero = PyLong_FromLong(0), *one = PyLong_FromLong(1);
        PyObject *un = NULL;
        if (nb_list && na_list && zero && one)
            part = PyList_New(4);
        if (part) {
            PyList_SET_ITEM(part, 0, Py_NewRef(bids));
            PyList_SET_ITEM(part, 1, Py_NewRef(zero));
            PyList_SET_ITEM(part, 2, Py_NewRef(asks));
            PyList_SET_ITEM(part, 3, Py_NewRef(zero));
            Py_INCREF(pending); /* (bids and asks are the message's: kept by part) */
            if (PyDict_DelItem(self->pending, name) < 0 || !(un = PyNumber_Add(SLOT(sym, o_update_no), one))) {
                Py_CLEAR(part);
            }
            else {
                Py_XSETREF(SLOT(sym, o_bids), Py_NewRef(nb_list));
                Py_XSETREF(SLOT(sym, o_asks), Py_NewRef(na_list));
                Py_XSETREF(SLOT(sym, o_update_no), un);
            }
            Py_DECREF(pending);
        }
        Py_XDECREF(nb_list);
        Py_XDECREF(na_list);
        Py_XDECREF(zero);
        Py_XDECREF(one);
        if (!part)
            goto error;
    }
    else
        Py_XINCREF(part);
    if (part) { /* a limit order reads the bids down to the first below price - 0.5, the asks up to the
                 * first above price + 0.5 */
        nb = convert_levels(bids, nb, SLOT(sym, o_bids), -1.0, -((double)price - 0.5));
        na = nb < 0 ? -1 : convert_levels(asks, na, SLOT(sym, o_asks), 1.0, (double)price + 0.5);
        if (na < 0)
            goto error_part;
        if (nb == PyList_GET_SIZE(bids) && na == PyList_GET_SIZE(asks)) {
            if (PyDict_GetItemWithError(self->partial, name)) {
                if (PyDict_DelItem(self->partial, name) < 0)
                    goto error_part;
            }
            else if (PyErr_Occurred())
                goto error_part;
        }
        else {
            PyObject *a = PyLong_FromLongLong(nb), *b = PyLong_FromLongLong(na);
            if (!a || !b) {
                Py_XDECREF(a);
                Py_XDECREF(b);
                goto error_part;
            }
            PyList_SetItem(part, 1, a); /* (part is the list _partial keeps; the references move) */
            PyList_SetItem(part, 3, b);
            if (PyDict_SetItem(self->partial, name, part) < 0)
                goto error_part;
        }
        Py_DECREF(part);
    }
    Py_SETREF(self->response, Py_NewRef(args[1]));
    /* self.matcher.new_order(self, order.cl_ord_id, sym.sid, side, ord_type, tif, price, qty) */
    PyObject *cl = SLOT(order, oo_cl);
    int done = cl ? rest_order(self, sym, cl, side, price, qty) : 0;
    if (done < 0)
        goto error;
    if (!done) {
        PyObject *v[5] = {PyLong_FromLongLong(side), PyLong_FromLongLong(ot), PyLong_FromLongLong(tif),
                          PyLong_FromLongLong(price), PyLong_FromLongLong(qty)};
        r = NULL;
        if (v[0] && v[1] && v[2] && v[3] && v[4] && self->matcher) {
            PyObject *stack[9] = {self->matcher, (PyObject *)self, cl ? cl : Py_None, SLOT(sym, o_sid), v[0], v[1],
                                  v[2], v[3], v[4]};
            r = PyObject_VectorcallMethod(str_new_order, stack, 9, NULL);
        }
        else if (!self->matcher)
            PyErr_SetString(PyExc_AttributeError, "matcher");
        for (int i = 0; i < 5; i++)
            Py_XDECREF(v[i]);
        if (!r)
            goto error;
        Py_DECREF(r);
    }
    Py_DECREF(sym);
    Py_RETURN_NONE;
error_part:
    Py_DECREF(part);
error:
    Py_DECREF(sym);
    return NULL;
python:;
    PyObject *stack[3] = {(PyObject *)self, args[0], args[1]};
    return PyObject_Vectorcall(py_arrive, stack, 3, NULL);
}



/* Matcher.cancel of an order that is not resting (filled or cancelled before the request came, or
 * never ours): its _reject, REJECT_UNKNOWN_ORDER reported under the order's id with order_id 0.
 * Python (_PaperCorePy._arrive_cancel) for anything unusual, before anything changes. */
static PyObject *
cancel_unknown(CoreObject *self, PyObject *sym, PyObject *cl, PyObject *orig, PyObject *symbol, int64_t hi,
               PyObject *response)
{
    PyObject *matcher = self->matcher, *log_orders = NULL, *stats = NULL, *next_xid = NULL, *r = NULL;
    int64_t xid, sid;
    if (!Py_IS_TYPE(sym, sym_type) || small_int(SLOT(sym, o_sid), &sid) < 0 || !PyLong_CheckExact(orig))
        goto python;
    if (!(log_orders = m_getattr(matcher, str_log_orders)) || !(stats = m_getattr(matcher, str_stats)) ||
        !(next_xid = m_getattr(matcher, str_next_exec_id)))
        goto done;
    if (log_orders != Py_False || !PyDict_CheckExact(stats) || small_int(next_xid, &xid) < 0 || xid >= (1LL << 52))
        goto python_clean;
    PyObject *hold = Py_NewRef(sym);
    claim(self->ids, cl, hi);
    Py_SETREF(self->response, Py_NewRef(response));
    if (count_up(stats, str_cancel_rejects) == 0) {
        PyObject *zero = PyLong_FromLong(0), *xido = PyLong_FromLongLong(xid), *next = PyLong_FromLongLong(xid + 1);
        PyObject *four = PyLong_FromLong(4); /* protocol.EXEC_REJECTED, REJECT_UNKNOWN_ORDER */
        if (zero && xido && next && four && m_setattr(matcher, str_next_exec_id, next) == 0) {
            PyObject *now = Py_NewRef(self->now);
            PyObject *rargs[13] = {orig, zero, xido, SLOT(hold, o_sid), zero, four, zero, zero, zero, zero, four, now,
                                   zero};
            r = core_send_report(self, rargs, 13);
            Py_DECREF(now);
        }
        Py_XDECREF(zero);
        Py_XDECREF(xido);
        Py_XDECREF(next);
        Py_XDECREF(four);
    }
    Py_DECREF(hold);
done:
    Py_XDECREF(log_orders);
    Py_XDECREF(stats);
    Py_XDECREF(next_xid);
    return r;
python_clean:
    Py_XDECREF(log_orders);
    Py_XDECREF(stats);
    Py_XDECREF(next_xid);
python:;
    PyObject *stack[5] = {(PyObject *)self, cl, orig, symbol, response};
    return PyObject_Vectorcall(py_arrive_cancel, stack, 5, NULL);
}

/* PaperCore._arrive_cancel(cl_ord_id, orig_cl_ord_id, symbol, response_ns): a cancel request reaches
 * the venue (_PaperCorePy._arrive_cancel, Matcher.cancel). Compiled for a resting order of this
 * symbol of PaperVenue itself; anything else (an order that is gone: the venue's reject) is the
 * Python, before anything changes. */
static PyObject *
core_arrive_cancel(CoreObject *self, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 4) {
        PyErr_SetString(PyExc_TypeError, "_arrive_cancel(cl_ord_id, orig_cl_ord_id, symbol, response_ns)");
        return NULL;
    }
    if (!py_arrive_cancel) {
        PyErr_SetString(PyExc_RuntimeError, "_paper: bind_arrive() was not called");
        return NULL;
    }
    PyObject *cl = args[0], *orig = args[1], *matcher = self->matcher, *orders = self->orders, *sym, *o;
    PyObject *log_orders = NULL, *stats = NULL, *next_xid = NULL, *oido = NULL, *key = NULL, *pos = NULL, *r = NULL;
    int64_t hi, xid, sid, osid, side, i;
    if (!venue_type || !Py_IS_TYPE(self, venue_type) || !matcher || !Py_IS_TYPE(matcher, matcher_type) || !orders ||
        !PyDict_CheckExact(orders) || !self->symbols || !PyDict_CheckExact(self->symbols) ||
        !PyUnicode_CheckExact(args[2]) || !claim_usual(self->ids, cl, &hi))
        goto python;
    if (!(sym = PyDict_GetItemWithError(self->symbols, args[2]))) {
        if (PyErr_Occurred())
            return NULL;
        goto python;
    }
    if (!(o = PyDict_GetItemWithError(orders, orig))) {
        if (PyErr_Occurred())
            return NULL;
        return cancel_unknown(self, sym, cl, orig, args[2], hi, args[3]);
    }
    PyObject *osym = SLOT(o, so[S_SYM]);
    if (!Py_IS_TYPE(sym, sym_type) || !Py_IS_TYPE(o, order_type) || !osym || !Py_IS_TYPE(osym, sym_type) ||
        SLOT(o, so[S_OWNER]) != (PyObject *)self || small_int(SLOT(sym, o_sid), &sid) < 0 ||
        small_int(SLOT(osym, o_sid), &osid) < 0 || sid != osid || small_int(SLOT(o, so[S_SIDE]), &side) < 0 ||
        side < 0 || side > 1 || !SLOT(o, so[S_OID]) || !SLOT(o, so[S_PRICE]) || !SLOT(o, so[S_CL]) ||
        !SLOT(o, so[S_CUM]))
        goto python;
    PyObject *resting = SLOT(osym, o_resting), *keys = SLOT(osym, side == 0 ? o_buy_keys : o_sell_keys);
    if (!resting || !PyDict_CheckExact(resting) || !keys || !PyList_CheckExact(keys))
        goto python;
    if (!(log_orders = m_getattr(matcher, str_log_orders)) || !(stats = m_getattr(matcher, str_stats)) ||
        !(next_xid = m_getattr(matcher, str_next_exec_id)))
        goto error;
    if (log_orders != Py_False || !PyDict_CheckExact(stats) || small_int(next_xid, &xid) < 0 || xid >= (1LL << 52))
        goto python_clean;
    /* its key in the price-time index: (-price, order_id) for a buy, (price, order_id) for a sell */
    oido = Py_NewRef(SLOT(o, so[S_OID]));
    if (side == 0) {
        PyObject *neg = PyNumber_Negative(SLOT(o, so[S_PRICE]));
        key = neg ? PyTuple_Pack(2, neg, oido) : NULL;
        Py_XDECREF(neg);
    }
    else
        key = PyTuple_Pack(2, SLOT(o, so[S_PRICE]), oido);
    if (!key)
        goto error;
    {
        PyObject *bargs[2] = {keys, key};
        if (!(pos = PyObject_Vectorcall(bisect_left, bargs, 2, NULL)))
            goto error;
    }
    if ((i = PyLong_AsSsize_t(pos)) < 0 && PyErr_Occurred())
        goto error;
    /* the changes, in the Python's order */
    Py_INCREF(o);
    Py_INCREF(sym);
    claim(self->ids, cl, hi);
    Py_SETREF(self->response, Py_NewRef(args[3]));
    int ok = PyDict_DelItem(orders, orig) == 0 && PyDict_DelItem(resting, oido) == 0;
    if (ok && i < PyList_GET_SIZE(keys)) {
        int eq = PyObject_RichCompareBool(PyList_GET_ITEM(keys, i), key, Py_EQ);
        ok = eq >= 0 && (!eq || PyList_SetSlice(keys, i, i + 1, NULL) == 0);
    }
    ok = ok && count_up(stats, str_cancels) == 0;
    if (ok) {
        PyObject *zero = PyLong_FromLong(0), *xido = PyLong_FromLongLong(xid), *next = PyLong_FromLongLong(xid + 1);
        ok = zero && xido && next && m_setattr(matcher, str_next_exec_id, next) == 0;
        if (ok) {
            Py_SETREF(SLOT(o, so[S_LEAVES]), Py_NewRef(zero));
            /* o.owner.send_report(o.cl_ord_id, o.order_id, exec_id, o.sym.sid, o.side, EXEC_CANCELED, 0, 0, 0,
             * o.cum, 0, now, 0) */
            PyObject *three = PyLong_FromLong(3), *now = Py_NewRef(self->now);
            PyObject *rargs[13] = {SLOT(o, so[S_CL]), oido, xido, SLOT(osym, o_sid), SLOT(o, so[S_SIDE]), three,
                                   zero, zero, zero, SLOT(o, so[S_CUM]), zero, now, zero};
            r = three ? core_send_report(self, rargs, 13) : NULL;
            Py_XDECREF(three);
            Py_DECREF(now);
            ok = r != NULL;
            Py_XDECREF(r);
        }
        Py_XDECREF(zero);
        Py_XDECREF(xido);
        Py_XDECREF(next);
    }
    Py_DECREF(o);
    Py_DECREF(sym);
    if (!ok)
        goto error;
    Py_DECREF(log_orders);
    Py_DECREF(stats);
    Py_DECREF(next_xid);
    Py_DECREF(oido);
    Py_DECREF(key);
    Py_DECREF(pos);
    Py_RETURN_NONE;
error:
    Py_XDECREF(log_orders);
    Py_XDECREF(stats);
    Py_XDECREF(next_xid);
    Py_XDECREF(oido);
    Py_XDECREF(key);
    Py_XDECREF(pos);
    return NULL;
python_clean:
    Py_XDECREF(log_orders);
    Py_XDECREF(stats);
    Py_XDECREF(next_xid);
python:;
    PyObject *stack[5] = {(PyObject *)self, args[0], args[1], args[2], args[3]};
    return PyObject_Vectorcall(py_arrive_cancel, stack, 5, NULL);
}

/* The common start of both messages: the clock and due actions, the symbol. 0: *sym set (borrowed;
 * NULL: an unknown symbol), 1: not the usual case, -1: error. */
static int
message_start(CoreObject *self, PyObject *msg, PyObject **symbol, PyObject **sym)
{
    if (!PyDict_CheckExact(msg) || self->latencies != Py_None || !self->symbols || !PyDict_CheckExact(self->symbols))
        return 1;
    PyObject *t = PyDict_GetItemWithError(msg, str_receipt);
    if (!t)
        return PyErr_Occurred() ? -1 : 1;
    int r = step_time(self, t);
    if (r)
        return r;
    *symbol = PyDict_GetItemWithError(msg, str_symbol);
    if (!*symbol)
        return PyErr_Occurred() ? -1 : 1;
    *sym = PyDict_GetItemWithError(self->symbols, *symbol);
    if (!*sym)
        return PyErr_Occurred() ? -1 : 0;
    return Py_IS_TYPE(*sym, sym_type) ? 0 : 1;
}

/* ---- a book that fills resting orders (paper._PaperCorePy._fills_resting; Matcher.set_book) --------
 *
 * The book converted to fixed point becomes the symbol's, queue positions move by what happened at
 * each resting order's price (Matcher._requeue), and the orders it crosses fill against its levels
 * in price-time priority (_match_resting, _fill_resting, _fill, _report, _unrest): for PaperVenue
 * itself with its own orders, a matcher that fills every crossing (fill_prob 100), no order log and
 * no print listener, and orders and levels of plain ints; anything else is the Python, before
 * anything changes. Same rules and arithmetic (all integers), same reports in the same order. */

#define EXEC_PARTIAL_FILL 1
#define EXEC_FILL 2
#define LIQ_MAKER 1

typedef struct {
    PyObject *o;
    int64_t side, price, leaves, cum, crossed, level_qty, traded;
} Resting;

/* keys[i] of a price-time key list as (first, oid): 0, or -1 for anything but a 2-tuple of ints */
static inline int
key_at(PyObject *keys, Py_ssize_t i, int64_t *first, PyObject **oid)
{
    PyObject *k = PyList_GET_ITEM(keys, i);
    if (!PyTuple_CheckExact(k) || PyTuple_GET_SIZE(k) != 2 || as_i64(PyTuple_GET_ITEM(k, 0), first) < 0)
        return -1;
    *oid = PyTuple_GET_ITEM(k, 1);
    return 0;
}

/* One fill of a resting order (Matcher._fill with _report inlined): 0, or -1 (error). */
static int
fill_one(CoreObject *self, PyObject *matcher, PyObject *stats, int64_t *xid, PyObject *o, PyObject *sid,
         int64_t px, int64_t qty, int64_t leaves, int64_t cum, PyObject *now)
{
    PyObject *lv = PyLong_FromLongLong(leaves), *cu = lv ? PyLong_FromLongLong(cum) : NULL;
    if (!cu) {
        Py_XDECREF(lv);
        return -1;
    }
    Py_SETREF(SLOT(o, so[S_LEAVES]), lv);
    Py_SETREF(SLOT(o, so[S_CUM]), cu);
    if (count_up(stats, str_fills) < 0)
        return -1;
    PyObject *xo = PyLong_FromLongLong(*xid), *next = xo ? PyLong_FromLongLong(*xid + 1) : NULL;
    int rc = next ? m_setattr(matcher, str_next_exec_id, next) : -1;
    Py_XDECREF(next);
    if (rc < 0) {
        Py_XDECREF(xo);
        return -1;
    }
    (*xid)++;
    PyObject *et = PyLong_FromLong(leaves ? EXEC_PARTIAL_FILL : EXEC_FILL), *pxo = PyLong_FromLongLong(px),
             *qo = PyLong_FromLongLong(qty), *zero = PyLong_FromLong(0), *liq = PyLong_FromLong(LIQ_MAKER);
    PyObject *r = NULL;
    if (et && pxo && qo && zero && liq) {
        PyObject *rargs[13] = {SLOT(o, so[S_CL]), SLOT(o, so[S_OID]), xo, sid, SLOT(o, so[S_SIDE]), et, pxo, qo,
                               SLOT(o, so[S_LEAVES]), SLOT(o, so[S_CUM]), zero, now, liq};
        for (int i = 0; i < 13; i++)
            Py_INCREF(rargs[i]);
        r = core_send_report(self, rargs, 13);
        for (int i = 0; i < 13; i++)
            Py_DECREF(rargs[i]);
    }
    Py_XDECREF(xo);
    Py_XDECREF(et);
    Py_XDECREF(pxo);
    Py_XDECREF(qo);
    Py_XDECREF(zero);
    Py_XDECREF(liq);
    if (!r)
        return -1;
    Py_DECREF(r);
    return 0;
}

/* Matcher._unrest and the owner's forgetting of a filled order: 0, or -1 (error). */
static int
unrest_one(CoreObject *self, PyObject *sym, PyObject *o, int64_t side, int64_t price)
{
    PyObject *oid = SLOT(o, so[S_OID]), *keys = SLOT(sym, side == 0 ? o_buy_keys : o_sell_keys);
    Py_INCREF(o);
    int rc = -1;
    PyObject *pk = NULL, *key = NULL, *at = NULL;
    if (PyDict_DelItem(SLOT(sym, o_resting), oid) < 0 || !(pk = PyLong_FromLongLong(side == 0 ? -price : price)) ||
        !(key = PyTuple_Pack(2, pk, oid)))
        goto out;
    PyObject *bargs[2] = {keys, key};
    if (!(at = PyObject_Vectorcall(bisect_left, bargs, 2, NULL)))
        goto out;
    Py_ssize_t i = PyLong_AsSsize_t(at);
    if (i == -1 && PyErr_Occurred())
        goto out;
    if (i < PyList_GET_SIZE(keys)) {
        int eq = PyObject_RichCompareBool(PyList_GET_ITEM(keys, i), key, Py_EQ);
        if (eq < 0 || (eq && PySequence_DelItem(keys, i) < 0))
            goto out;
    }
    /* o.owner.orders.pop(o.cl_ord_id, None) */
    PyObject *cl = SLOT(o, so[S_CL]), *had = PyDict_GetItemWithError(self->orders, cl);
    if (!had && PyErr_Occurred())
        goto out;
    if (had && PyDict_DelItem(self->orders, cl) < 0)
        goto out;
    rc = 0;
out:
    Py_XDECREF(pk);
    Py_XDECREF(key);
    Py_XDECREF(at);
    Py_DECREF(o);
    return rc;
}

/* fb/fa: the book in fixed point (new lists of [int, int]); 1 handled, 0 not the usual case (nothing
 * changed), -1 error (after changes: as the Python would have raised midway). */
static int
fills_resting(CoreObject *self, PyObject *symbol, PyObject *sym, PyObject *fb, PyObject *fa)
{
    PyObject *matcher = self->matcher, *names[8] = {str_log_orders, str_stats, str_fill_threshold, str_queue_model,
                                                     str_front_is_final, str_on_print, str_clock, str_next_exec_id};
    PyObject *v[8] = {NULL};
    Resting rs[MAX_ORDERS];
    Py_ssize_t n = 0;
    int64_t update_no, xid, p, q;
    int usual = 0;
    if (!Py_IS_TYPE(self, venue_type) || !matcher || !Py_IS_TYPE(matcher, matcher_type) || !self->orders ||
        !PyDict_CheckExact(self->orders) || !self->pending || !PyDict_CheckExact(self->pending))
        return 0;
    for (int i = 0; i < 8; i++)
        if (!(v[i] = m_getattr(matcher, names[i]))) {
            usual = -1;
            goto out;
        }
    PyObject *stats = v[1], *model = v[3], *fills;
    PyObject *resting = SLOT(sym, o_resting), *buy_keys = SLOT(sym, o_buy_keys), *sell_keys = SLOT(sym, o_sell_keys),
             *sid = SLOT(sym, o_sid);
    if (v[0] != Py_False || !PyDict_CheckExact(stats) || !PyFloat_CheckExact(v[2]) || PyFloat_AS_DOUBLE(v[2]) < 1.0 ||
        !(v[4] == Py_True || v[4] == Py_False) || v[5] != Py_None || as_i64(v[7], &xid) < 0 || xid >= (1LL << 52) ||
        !resting || !PyDict_CheckExact(resting) || !buy_keys || !PyList_CheckExact(buy_keys) || !sell_keys ||
        !PyList_CheckExact(sell_keys) || !sid || as_i64(SLOT(sym, o_update_no), &update_no) < 0 ||
        PyDict_GET_SIZE(resting) > MAX_ORDERS)
        goto out;
    if (!(fills = PyDict_GetItemWithError(stats, str_fills))) {
        usual = PyErr_Occurred() ? -1 : 0;
        goto out;
    }
    if (!PyLong_CheckExact(fills))
        goto out;
    for (Py_ssize_t i = 0; i < PyList_GET_SIZE(fb) + PyList_GET_SIZE(fa); i++) /* (fixed() made them: ints) */
        if (i < PyList_GET_SIZE(fb) ? level_int(fb, i, &p, &q) < 0 : level_int(fa, i - PyList_GET_SIZE(fb), &p, &q) < 0)
            goto out;
    {
        Py_ssize_t pos = 0;
        PyObject *k, *o;
        while (PyDict_Next(resting, &pos, &k, &o)) {
            Resting *r = &rs[n];
            if (!Py_IS_TYPE(o, order_type) || SLOT(o, so[S_OWNER]) != (PyObject *)self || SLOT(o, so[S_SYM]) != sym ||
                !SLOT(o, so[S_AHEAD]) || !SLOT(o, so[S_DECISION]) || !SLOT(o, so[S_CL]) || !SLOT(o, so[S_OID]) ||
                as_i64(SLOT(o, so[S_SIDE]), &r->side) < 0 || r->side < 0 || r->side > 1 ||
                as_i64(SLOT(o, so[S_PRICE]), &r->price) < 0 || as_i64(SLOT(o, so[S_LEAVES]), &r->leaves) < 0 ||
                as_i64(SLOT(o, so[S_CUM]), &r->cum) < 0 || as_i64(SLOT(o, so[S_CROSSED]), &r->crossed) < 0 ||
                as_i64(SLOT(o, so[S_LEVEL_QTY]), &r->level_qty) < 0 || as_i64(SLOT(o, so[S_TRADED]), &r->traded) < 0)
                goto out;
            r->o = o;
            n++;
        }
    }
    /* the usual case: from here on the book changes */
    usual = -1;
    {
        PyObject *had = PyDict_GetItemWithError(self->pending, symbol); /* self._pending_book.pop(symbol, None) */
        if ((!had && PyErr_Occurred()) || (had && PyDict_DelItem(self->pending, symbol) < 0))
            goto out;
        PyObject *un = PyLong_FromLongLong(++update_no);
        if (!un)
            goto out;
        Py_XSETREF(SLOT(sym, o_bids), Py_NewRef(fb));
        Py_XSETREF(SLOT(sym, o_asks), Py_NewRef(fa));
        Py_XSETREF(SLOT(sym, o_update_no), un);
    }
    if (!n) {
        usual = 1;
        goto out;
    }
    for (Py_ssize_t i = 0; i < n; i++) /* held: a fill's report may run code */
        Py_INCREF(rs[i].o);
    /* Matcher._requeue */
    if (model != Py_None) {
        for (Py_ssize_t j = 0; j < n; j++) {
            Resting *r = &rs[j];
            PyObject *o = r->o;
            if (v[4] == Py_True) {
                int t = PyObject_IsTrue(SLOT(o, so[S_AHEAD]));
                if (t < 0)
                    goto held;
                if (!t)
                    continue;
            }
            PyObject *levels = r->side == 0 ? fb : fa;
            Py_ssize_t nl = PyList_GET_SIZE(levels);
            int64_t nq = -1;
            int found = 0;
            for (Py_ssize_t i = 0; i < nl; i++) {
                level_int(levels, i, &p, &q);
                if (p == r->price) {
                    nq = q; /* no break: a repeated price counts as its last entry */
                    found = 1;
                }
            }
            if (!found) {
                if (!nl)
                    continue;
                level_int(levels, nl - 1, &p, &q);
                if (r->side == 0 ? r->price < p : r->price > p)
                    continue;
                nq = 0;
            }
            if (nq == r->level_qty)
                continue;
            PyObject *nqo = PyLong_FromLongLong(nq);
            if (!nqo || requeue_one(o, model, nqo) < 0)
                goto held;
            r->level_qty = nq;
            r->traded = 0;
        }
    }
    /* Matcher._match_resting: its clock read once, then each side's crossed orders in price-time order */
    PyObject *now = PyObject_CallNoArgs(v[6]);
    if (!now)
        goto held;
    for (int side = 0; side < 2; side++) {
        PyObject *levels = side == 0 ? fa : fb, *keys = side == 0 ? buy_keys : sell_keys;
        int64_t best = 0;
        int have = 0;
        for (Py_ssize_t i = 0; i < PyList_GET_SIZE(levels); i++) {
            level_int(levels, i, &p, &q);
            if (q > 0) {
                best = p;
                have = 1;
                break;
            }
        }
        if (!have || !PyList_GET_SIZE(keys))
            continue;
        Resting *crossed[MAX_ORDERS];
        Py_ssize_t nc = 0;
        for (Py_ssize_t i = 0; i < PyList_GET_SIZE(keys) && nc < n; i++) {
            int64_t first;
            PyObject *oid, *o;
            if (key_at(keys, i, &first, &oid) < 0) {
                PyErr_SetString(PyExc_TypeError, "price-time keys must be (int, order_id) tuples");
                goto now_held;
            }
            if (side == 0 ? -first < best : first > best)
                break;
            if (!(o = PyDict_GetItemWithError(resting, oid))) {
                if (!PyErr_Occurred())
                    PyErr_SetObject(PyExc_KeyError, oid);
                goto now_held;
            }
            Py_ssize_t j = 0;
            while (j < n && rs[j].o != o)
                j++;
            if (j == n) { /* not a resting order read above: the index and the orders disagree */
                PyErr_SetString(PyExc_RuntimeError, "paper venue: a price-time key without its resting order");
                goto now_held;
            }
            crossed[nc++] = &rs[j];
        }
        for (Py_ssize_t c = 0; c < nc; c++) {
            /* Matcher._fill_resting(o, levels, now) */
            Resting *r = crossed[c];
            PyObject *o = r->o;
            if (r->crossed != update_no - 1) { /* a new crossing: fill_prob 100 always fills */
                Py_SETREF(SLOT(o, so[S_DECISION]), Py_NewRef(Py_True));
            }
            PyObject *cu = PyLong_FromLongLong(update_no);
            if (!cu)
                goto now_held;
            Py_SETREF(SLOT(o, so[S_CROSSED]), cu);
            r->crossed = update_no;
            int t = PyObject_IsTrue(SLOT(o, so[S_DECISION]));
            if (t < 0)
                goto now_held;
            if (!t)
                continue;
            int64_t rem = r->leaves, take = 0;
            for (Py_ssize_t i = 0; i < PyList_GET_SIZE(levels); i++) {
                level_int(levels, i, &p, &q);
                if ((r->side == 0 ? p > r->price : p < r->price) || !rem)
                    break;
                int64_t used = q < rem ? q : rem;
                if (used) {
                    PyObject *left = PyLong_FromLongLong(q - used);
                    if (!left)
                        goto now_held;
                    PyList_SetItem(PyList_GET_ITEM(levels, i), 1, left);
                }
                rem -= used;
                take += used;
            }
            if (!take)
                continue;
            r->leaves -= take;
            r->cum += take;
            if (fill_one(self, matcher, stats, &xid, o, sid, r->price, take, r->leaves, r->cum, now) < 0)
                goto now_held;
            if (!r->leaves && unrest_one(self, sym, o, r->side, r->price) < 0)
                goto now_held;
        }
    }
    usual = 1;
now_held:
    Py_DECREF(now);
held:
    for (Py_ssize_t i = 0; i < n; i++)
        Py_DECREF(rs[i].o);
out:
    for (int i = 0; i < 8; i++)
        Py_XDECREF(v[i]);
    return usual;
}

static PyObject *
core_on_book(CoreObject *self, PyObject *msg)
{
    PyObject *symbol = NULL, *sym = NULL;
    int r = message_start(self, msg, &symbol, &sym);
    if (r < 0)
        return NULL;
    if (r > 0 || !sym || !self->stale || !PySet_CheckExact(self->stale) || !self->partial ||
        !PyDict_CheckExact(self->partial) || !self->pending || !PyDict_CheckExact(self->pending) || !self->skip_front)
        return fallback(py_on_book, self, msg); /* (an unknown symbol: the Python adds it) */
    Py_INCREF(symbol);
    Py_INCREF(sym);
    PyObject *res = NULL, *moved = NULL;
    if (PySet_GET_SIZE(self->stale) && PySet_Discard(self->stale, symbol) < 0)
        goto done;
    if (PyDict_GET_SIZE(self->partial)) {
        PyObject *had = PyDict_GetItemWithError(self->partial, symbol);
        if (!had && PyErr_Occurred())
            goto done;
        if (had && PyDict_DelItem(self->partial, symbol) < 0)
            goto done;
    }
    PyObject *resting = SLOT(sym, o_resting), *bids, *asks;
    if (!resting || !PyDict_CheckExact(resting)) {
        res = fallback(py_on_book, self, msg);
        goto done;
    }
    if (!PyDict_GET_SIZE(resting)) { /* nothing to fill: the floats wait, converted only if an order comes */
        if (PyDict_SetItem(self->pending, symbol, msg) == 0)
            res = Py_NewRef(Py_None);
        goto done;
    }
    bids = PyDict_GetItemWithError(msg, str_bids);
    asks = bids ? PyDict_GetItemWithError(msg, str_asks) : NULL;
    if (!asks) {
        if (!PyErr_Occurred())
            res = fallback(py_on_book, self, msg);
        goto done;
    }
    int skip = PyObject_IsTrue(self->skip_front);
    if (skip < 0)
        goto done;
    moved = book_moved_impl(sym, bids, asks, self->queue ? self->queue : Py_None, skip);
    if (!moved)
        goto done;
    if (moved == Py_None)
        res = fallback(py_on_book, self, msg);
    else if (moved == Py_True) { /* it fills resting orders: the core needs the whole book, now */
        PyObject *fb = fixed(NULL, bids), *fa = fb && fb != Py_None ? fixed(NULL, asks) : NULL;
        int r = fa && fa != Py_None ? fills_resting(self, symbol, sym, fb, fa) : fb ? 0 : -1;
        if (r == 0 && !PyErr_Occurred()) {
            PyObject *args[5] = {(PyObject *)self, symbol, sym, bids, asks};
            res = PyObject_VectorcallMethod(str_fills_resting, args, 5 | PY_VECTORCALL_ARGUMENTS_OFFSET, NULL);
        }
        else if (r > 0)
            res = Py_NewRef(Py_None);
        Py_XDECREF(fb);
        Py_XDECREF(fa);
    }
    else if (PyDict_SetItem(self->pending, symbol, msg) == 0)
        res = Py_NewRef(Py_None);
done:
    Py_XDECREF(moved);
    Py_DECREF(sym);
    Py_DECREF(symbol);
    return res;
}

static inline int
float_at(PyObject *msg, PyObject *key, double *x)
{
    PyObject *v = PyDict_GetItemWithError(msg, key);
    if (!v || !PyFloat_CheckExact(v))
        return PyErr_Occurred() ? -1 : 1;
    return scaled(PyFloat_AS_DOUBLE(v), x) < 0 ? 1 : 0;
}

static PyObject *
core_on_trade(CoreObject *self, PyObject *msg)
{
    PyObject *symbol = NULL, *sym = NULL;
    int r = message_start(self, msg, &symbol, &sym);
    if (r < 0)
        return NULL;
    if (r > 0 || !self->stale || !PySet_CheckExact(self->stale))
        return fallback(py_on_trade, self, msg);
    if (!sym) /* not a symbol of ours */
        Py_RETURN_NONE;
    PyObject *resting = SLOT(sym, o_resting), *name = SLOT(sym, o_name);
    if (!resting || !PyDict_CheckExact(resting) || !name)
        return fallback(py_on_trade, self, msg);
    if (!PyDict_GET_SIZE(resting))
        Py_RETURN_NONE;
    int in = PySet_Contains(self->stale, name);
    if (in < 0)
        return NULL;
    if (in)
        Py_RETURN_NONE;
    /* Matcher.on_trade changes nothing unless our best order on the side the trade hit is at or
     * through its price (a sell hits buys at px or above, a buy sells at px or below). */
    double x, q;
    PyObject *side = PyDict_GetItemWithError(msg, str_side);
    if (!side || !PyUnicode_CheckExact(side))
        return PyErr_Occurred() ? NULL : fallback(py_on_trade, self, msg);
    if ((r = float_at(msg, str_price, &x)) != 0)
        return r < 0 ? NULL : fallback(py_on_trade, self, msg);
    int buy = PyUnicode_Compare(side, str_buy) == 0;
    if (!buy && PyErr_Occurred())
        return NULL;
    int64_t k;
    int found = first_key(SLOT(sym, buy ? o_sell_keys : o_buy_keys), &k);
    if (found < 0)
        return fallback(py_on_trade, self, msg);
    if (!found)
        Py_RETURN_NONE;
    double px = nearbyint(x);
    int reaches = buy ? (x >= (double)k - 0.5 && (double)k <= px) : (x <= 0.5 - (double)k && (double)-k >= px);
    if (!reaches)
        Py_RETURN_NONE;
    if ((r = float_at(msg, str_amount, &q)) != 0)
        return r < 0 ? NULL : fallback(py_on_trade, self, msg);
    if (!self->matcher)
        return fallback(py_on_trade, self, msg);
    PyObject *pxo = PyLong_FromLongLong((long long)px), *qo = PyLong_FromLongLong((long long)nearbyint(q));
    PyObject *sideo = PyLong_FromLong(buy ? 0 : 1); /* protocol.SIDE_BUY, SIDE_SELL: the aggressor */
    PyObject *out = NULL;
    if (pxo && qo && sideo) {
        Py_INCREF(sym);
        PyObject *args[5] = {self->matcher, sym, pxo, qo, sideo};
        out = PyObject_VectorcallMethod(str_on_trade, args, 5 | PY_VECTORCALL_ARGUMENTS_OFFSET, NULL);
        Py_DECREF(sym);
    }
    Py_XDECREF(pxo);
    Py_XDECREF(qo);
    Py_XDECREF(sideo);
    if (!out)
        return NULL;
    Py_DECREF(out);
    Py_RETURN_NONE;
}

/* heappush(heap, (due, seq + 1, fn, args)) with the sequence advanced, then the live wake-up (the
 * timer armed if there is a loop and none is armed): 0 or -1. args is stolen. */
static int
schedule(CoreObject *self, int64_t due, int64_t seq, PyObject *fn, PyObject *args)
{
    PyObject *due_o = PyLong_FromLongLong(due), *seq_o = PyLong_FromLongLong(seq + 1), *entry = NULL, *r = NULL;
    if (due_o && seq_o && args)
        entry = PyTuple_Pack(4, due_o, seq_o, fn, args);
    if (entry) {
        Py_SETREF(self->seq, Py_NewRef(seq_o));
        PyObject *heap = self->heap;
        if (heap && PyList_CheckExact(heap)) {
            Py_INCREF(heap);
            r = heap_push(heap, entry) < 0 ? NULL : Py_NewRef(Py_None);
            Py_DECREF(heap);
        }
        else {
            PyObject *call[2] = {heap, entry};
            r = PyObject_Vectorcall(heappush, call, 2, NULL);
        }
    }
    Py_XDECREF(due_o);
    Py_XDECREF(seq_o);
    Py_XDECREF(entry);
    Py_XDECREF(args);
    if (!r)
        return -1;
    Py_DECREF(r);
    if (self->loop && self->loop != Py_None && self->timer == Py_None) {
        PyObject *loop = Py_NewRef(self->loop);
        r = PyObject_CallMethodOneArg((PyObject *)self, str_arm, loop);
        Py_DECREF(loop);
        if (!r)
            return -1;
        Py_DECREF(r);
    }
    return 0;
}

/* matching.Owner.send_report: a report built and scheduled to reach the engine after the response
 * latency, in the order the venue made it (see paper._PaperCorePy.send_report, the rule for every
 * case this does not take: drawn latencies, numbers beyond 2**53, anything of another type). The
 * ExecutionReport's slots are set directly: its dataclass __init__ only assigns them. */
static PyObject *
core_send_report(CoreObject *self, PyObject *const *args, Py_ssize_t nargs)
{
    int64_t sid, side, et, reason, px, lq, leaves, cum, now, response, last, seq;
    if (nargs != 13 || !report_type || !heappush || self->latencies != Py_None || !self->by_id ||
        !PyList_CheckExact(self->by_id) || !self->heap || !PyList_CheckExact(self->heap) ||
        as_i64(args[3], &sid) < 0 || as_i64(args[4], &side) < 0 || as_i64(args[5], &et) < 0 ||
        small_int(args[6], &px) < 0 || small_int(args[7], &lq) < 0 || small_int(args[8], &leaves) < 0 ||
        small_int(args[9], &cum) < 0 || as_i64(args[10], &reason) < 0 || as_i64(args[11], &now) < 0 ||
        as_i64(self->response_ns, &response) < 0 || as_i64(self->last_due, &last) < 0 ||
        as_i64(self->seq, &seq) < 0 || et < 0 || et >= PyTuple_GET_SIZE(exec_types) || reason < 0 ||
        reason >= PyTuple_GET_SIZE(reasons) || (response > 0 && now > INT64_MAX - response) ||
        (response < 0 && now < INT64_MIN - response) || seq == INT64_MAX) {
        if (!py_send_report) {
            PyErr_SetString(PyExc_RuntimeError, "_paper: bind_core() was not called");
            return NULL;
        }
        PyObject *stack[14];
        if (nargs > 13) {
            PyErr_SetString(PyExc_TypeError, "send_report takes 13 arguments");
            return NULL;
        }
        stack[0] = (PyObject *)self;
        for (Py_ssize_t i = 0; i < nargs; i++)
            stack[i + 1] = args[i];
        return PyObject_Vectorcall(py_send_report, stack, nargs + 1, NULL);
    }
    PyObject *name = NULL;
    if (0 < sid && sid < PyList_GET_SIZE(self->by_id)) {
        PyObject *sym = PyList_GET_ITEM(self->by_id, sid);
        if (!sym_type || !Py_IS_TYPE(sym, sym_type) || !(name = SLOT(sym, o_name))) {
            PyErr_SetString(PyExc_TypeError, "send_report: the symbol table holds something else");
            return NULL;
        }
    }
    PyObject *v[N_REPORT] = {
        Py_NewRef(args[0]), Py_NewRef(args[1]), Py_NewRef(args[2]),
        name ? Py_NewRef(name) : PyUnicode_FromStringAndSize("", 0),
        Py_NewRef(PyTuple_GET_ITEM(sides, side & 1)), Py_NewRef(PyTuple_GET_ITEM(exec_types, et)),
        PyFloat_FromDouble((double)px / scale), PyFloat_FromDouble((double)lq / scale),
        PyFloat_FromDouble((double)leaves / scale), PyFloat_FromDouble((double)cum / scale),
        Py_NewRef(PyTuple_GET_ITEM(reasons, reason)), Py_NewRef(args[11]), PyLong_FromLong(0), Py_NewRef(args[12]),
        Py_NewRef(Py_None), /* fee: the engine charges its fees config */
        PyFloat_FromDouble(0.0), /* fee_base */
    };  /* clang-format: the ExecutionReport fields, in order */
    PyObject *report = NULL;
    int ok = 1;
    for (int i = 0; i < N_REPORT; i++)
        ok &= v[i] != NULL;
    if (ok)
        report = report_type->tp_alloc(report_type, 0);
    if (!report) {
        for (int i = 0; i < N_REPORT; i++)
            Py_XDECREF(v[i]);
        return NULL;
    }
    for (int i = 0; i < N_REPORT; i++)
        SLOT(report, o_report[i]) = v[i]; /* the references move into the slots */
    /* reports leave in the order the venue made them (one stream, as a venue's connection is) */
    int64_t due = now + response;
    if (due < last)
        due = last;
    PyObject *due_o = PyLong_FromLongLong(due);
    if (!due_o) {
        Py_DECREF(report);
        return NULL;
    }
    Py_SETREF(self->last_due, due_o);
    if (schedule(self, due, seq, Py_None, report) < 0) /* (None: a report, see _run_due) */
        return NULL;
    Py_RETURN_NONE;
}

/* bind_report(ExecutionReport, sides, exec_types, reasons, heappush): what send_report builds with
 * (heappush: for a heap that is not a list; a list is pushed by heap_push). */
static PyObject *
bind_report(PyObject *mod, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 5 || !PyType_Check(args[0]) || !PyTuple_CheckExact(args[1]) || PyTuple_GET_SIZE(args[1]) != 2 ||
        !PyTuple_CheckExact(args[2]) || !PyTuple_CheckExact(args[3])) {
        PyErr_SetString(PyExc_TypeError, "bind_report(ExecutionReport, sides, exec_types, reasons, heappush)");
        return NULL;
    }
    static const char *fields[N_REPORT] = {"cl_ord_id", "order_id", "exec_id", "symbol", "side", "exec_type",
                                           "last_px", "last_qty", "leaves_qty", "cum_qty", "reject_reason",
                                           "timestamp_ns", "receipt_ns", "liquidity", "fee", "fee_base"};
    PyTypeObject *t = (PyTypeObject *)args[0];
    for (int i = 0; i < N_REPORT; i++)
        if (slot_offset(t, fields[i], &o_report[i]) < 0)
            return NULL;
    Py_XSETREF(report_type, (PyTypeObject *)Py_NewRef(t));
    Py_XSETREF(sides, Py_NewRef(args[1]));
    Py_XSETREF(exec_types, Py_NewRef(args[2]));
    Py_XSETREF(reasons, Py_NewRef(args[3]));
    Py_XSETREF(heappush, Py_NewRef(args[4]));
    Py_RETURN_NONE;
}

/* ---- order entry: send_new_order, send_cancel ----------------------------------------------------
 *
 * For a connected venue with constant latencies: the arrival scheduled on the heap, the wake-up armed
 * live, the count; anything else (not connected: the ConnectionError; a latency file) is
 * paper._PaperCorePy's, called. Why: the engine sends every order and cancel through these (two
 * Python frames an order before). */

static PyObject *py_send_new_order, *py_send_cancel, *str_arrive, *str_arrive_cancel;

/* The usual case's numbers: 1 (now + entry and seq + 1 fit), 0 not the usual case. */
static int
entry_usual(CoreObject *self, int64_t *due, int64_t *seq)
{
    int64_t now, entry;
    if (self->connected != Py_True || self->latencies != Py_None || !heappush || !self->heap ||
        !PyList_CheckExact(self->heap) || !self->response_ns || as_i64(self->now, &now) < 0 ||
        as_i64(self->entry_ns, &entry) < 0 || as_i64(self->seq, seq) < 0 || *seq == INT64_MAX ||
        (entry > 0 && now > INT64_MAX - entry) || (entry < 0 && now < INT64_MIN - entry))
        return 0;
    *due = now + entry;
    return 1;
}

static PyObject *
core_send_new_order(CoreObject *self, PyObject *order)
{
    int64_t due, seq;
    if (!py_send_new_order) {
        PyErr_SetString(PyExc_RuntimeError, "_paper: bind_entry() was not called");
        return NULL;
    }
    if (!entry_usual(self, &due, &seq)) {
        PyObject *stack[2] = {(PyObject *)self, order};
        return PyObject_Vectorcall(py_send_new_order, stack, 2, NULL);
    }
    if (!self->arrive_m && !(self->arrive_m = PyObject_GetAttr((PyObject *)self, str_arrive)))
        return NULL;
    PyObject *fn = Py_NewRef(self->arrive_m);
    int r = schedule(self, due, seq, fn, PyTuple_Pack(2, order, self->response_ns));
    Py_DECREF(fn);
    if (r < 0)
        return NULL;
    self->orders_sent++;
    Py_RETURN_NONE;
}

static PyObject *
core_send_cancel(CoreObject *self, PyObject *const *args, Py_ssize_t nargs)
{
    int64_t due, seq;
    if (!py_send_cancel) {
        PyErr_SetString(PyExc_RuntimeError, "_paper: bind_entry() was not called");
        return NULL;
    }
    if (nargs != 3 || !entry_usual(self, &due, &seq)) {
        PyObject *stack[4] = {(PyObject *)self};
        if (nargs > 3) {
            PyErr_SetString(PyExc_TypeError, "send_cancel(cl_ord_id, orig_cl_ord_id, symbol)");
            return NULL;
        }
        for (Py_ssize_t i = 0; i < nargs; i++)
            stack[i + 1] = args[i];
        return PyObject_Vectorcall(py_send_cancel, stack, nargs + 1, NULL);
    }
    if (!self->arrive_cancel_m && !(self->arrive_cancel_m = PyObject_GetAttr((PyObject *)self, str_arrive_cancel)))
        return NULL;
    PyObject *fn = Py_NewRef(self->arrive_cancel_m);
    int r = schedule(self, due, seq, fn, PyTuple_Pack(4, args[0], args[1], args[2], self->response_ns));
    Py_DECREF(fn);
    if (r < 0)
        return NULL;
    self->cancels_sent++;
    Py_RETURN_NONE;
}

/* bind_entry(send_new_order, send_cancel): the Python they fall back to. */
static PyObject *
bind_entry(PyObject *mod, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 2) {
        PyErr_SetString(PyExc_TypeError, "bind_entry(send_new_order, send_cancel)");
        return NULL;
    }
    if ((!str_arrive && !(str_arrive = PyUnicode_InternFromString("_arrive"))) ||
        (!str_arrive_cancel && !(str_arrive_cancel = PyUnicode_InternFromString("_arrive_cancel"))))
        return NULL;
    Py_XSETREF(py_send_new_order, Py_NewRef(args[0]));
    Py_XSETREF(py_send_cancel, Py_NewRef(args[1]));
    Py_RETURN_NONE;
}

static int
core_traverse(CoreObject *self, visitproc visit, void *arg)
{
    Py_VISIT(self->now);
    Py_VISIT(self->matcher);
    Py_VISIT(self->heap);
    Py_VISIT(self->symbols);
    Py_VISIT(self->stale);
    Py_VISIT(self->partial);
    Py_VISIT(self->pending);
    Py_VISIT(self->latencies);
    Py_VISIT(self->queue);
    Py_VISIT(self->skip_front);
    Py_VISIT(self->by_id);
    Py_VISIT(self->response_ns);
    Py_VISIT(self->response);
    Py_VISIT(self->last_due);
    Py_VISIT(self->seq);
    Py_VISIT(self->loop);
    Py_VISIT(self->timer);
    Py_VISIT(self->listener);
    Py_VISIT(self->orders);
    Py_VISIT(self->ids);
    Py_VISIT(self->connected);
    Py_VISIT(self->entry_ns);
    Py_VISIT(self->arrive_m);
    Py_VISIT(self->arrive_cancel_m);
    return 0;
}

static int
core_clear(CoreObject *self)
{
    Py_CLEAR(self->now);
    Py_CLEAR(self->matcher);
    Py_CLEAR(self->heap);
    Py_CLEAR(self->symbols);
    Py_CLEAR(self->stale);
    Py_CLEAR(self->partial);
    Py_CLEAR(self->pending);
    Py_CLEAR(self->latencies);
    Py_CLEAR(self->queue);
    Py_CLEAR(self->skip_front);
    Py_CLEAR(self->by_id);
    Py_CLEAR(self->response_ns);
    Py_CLEAR(self->response);
    Py_CLEAR(self->last_due);
    Py_CLEAR(self->seq);
    Py_CLEAR(self->loop);
    Py_CLEAR(self->timer);
    Py_CLEAR(self->listener);
    Py_CLEAR(self->orders);
    Py_CLEAR(self->ids);
    Py_CLEAR(self->connected);
    Py_CLEAR(self->entry_ns);
    Py_CLEAR(self->arrive_m);
    Py_CLEAR(self->arrive_cancel_m);
    return 0;
}

static void
core_dealloc(CoreObject *self)
{
    PyObject_GC_UnTrack(self);
    core_clear(self);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

static PyMemberDef core_members[] = {
    {"now", T_OBJECT_EX, offsetof(CoreObject, now), 0, "The simulated time (ns)."},
    {"matcher", T_OBJECT_EX, offsetof(CoreObject, matcher), 0, NULL},
    {"_heap", T_OBJECT_EX, offsetof(CoreObject, heap), 0, NULL},
    {"_symbols", T_OBJECT_EX, offsetof(CoreObject, symbols), 0, NULL},
    {"_stale", T_OBJECT_EX, offsetof(CoreObject, stale), 0, NULL},
    {"_partial", T_OBJECT_EX, offsetof(CoreObject, partial), 0, NULL},
    {"_pending_book", T_OBJECT_EX, offsetof(CoreObject, pending), 0, NULL},
    {"_latencies", T_OBJECT_EX, offsetof(CoreObject, latencies), 0, NULL},
    {"_queue", T_OBJECT_EX, offsetof(CoreObject, queue), 0, NULL},
    {"_skip_front", T_OBJECT_EX, offsetof(CoreObject, skip_front), 0, NULL},
    {"_by_id", T_OBJECT_EX, offsetof(CoreObject, by_id), 0, NULL},
    {"_response_ns", T_OBJECT_EX, offsetof(CoreObject, response_ns), 0, NULL},
    {"_response", T_OBJECT_EX, offsetof(CoreObject, response), 0, NULL},
    {"_last_due", T_OBJECT_EX, offsetof(CoreObject, last_due), 0, NULL},
    {"_seq", T_OBJECT_EX, offsetof(CoreObject, seq), 0, NULL},
    {"_loop", T_OBJECT_EX, offsetof(CoreObject, loop), 0, NULL},
    {"_timer", T_OBJECT_EX, offsetof(CoreObject, timer), 0, NULL},
    {"_listener", T_OBJECT_EX, offsetof(CoreObject, listener), 0, NULL},
    {"reports", T_PYSSIZET, offsetof(CoreObject, reports), 0, "Reports delivered to the engine."},
    {"orders", T_OBJECT_EX, offsetof(CoreObject, orders), 0, "cl_ord_id -> the engine's resting order (matching.Owner)."},
    {"_ids", T_OBJECT_EX, offsetof(CoreObject, ids), 0, NULL},
    {"connected", T_OBJECT_EX, offsetof(CoreObject, connected), 0, "Orders can be sent (attached to an engine)."},
    {"_entry_ns", T_OBJECT_EX, offsetof(CoreObject, entry_ns), 0, NULL},
    {"orders_sent", T_PYSSIZET, offsetof(CoreObject, orders_sent), 0, "Orders the engine sent."},
    {"cancels_sent", T_PYSSIZET, offsetof(CoreObject, cancels_sent), 0, "Cancels the engine sent."},
    {NULL},
};

static PyMethodDef core_methods[] = {
    {"advance", (PyCFunction)core_advance, METH_O, "Simulated time moves to now_ns (see paper._PaperCorePy)."},
    {"on_book_message", (PyCFunction)core_on_book, METH_O, "A book message, before the engine sees it."},
    {"on_trade_message", (PyCFunction)core_on_trade, METH_O, "A trade message, before the engine sees it."},
    {"send_report", (PyCFunction)(void (*)(void))core_send_report, METH_FASTCALL,
     "matching.Owner.send_report (see paper._PaperCorePy)."},
    {"_run_due", (PyCFunction)(void (*)(void))core_run_due, METH_FASTCALL,
     "Run the actions due by until (default: now), in time order (see paper._PaperCorePy)."},
    {"_arrive", (PyCFunction)(void (*)(void))core_arrive, METH_FASTCALL,
     "An order reaches the venue: matched as the book is now (see paper._PaperCorePy)."},
    {"_arrive_cancel", (PyCFunction)(void (*)(void))core_arrive_cancel, METH_FASTCALL,
     "A cancel request reaches the venue (see paper._PaperCorePy)."},
    {"send_new_order", (PyCFunction)core_send_new_order, METH_O,
     "The engine sends an order: it arrives after the entry latency (see paper._PaperCorePy)."},
    {"send_cancel", (PyCFunction)(void (*)(void))core_send_cancel, METH_FASTCALL,
     "The engine sends a cancel: it arrives after the entry latency (see paper._PaperCorePy)."},
    {NULL},
};

static PyTypeObject CoreType = {
    PyVarObject_HEAD_INIT(NULL, 0).tp_name = "latentspeed_mock_exchange._paper.PaperCore",
    .tp_basicsize = sizeof(CoreObject),
    .tp_dealloc = (destructor)core_dealloc,
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_BASETYPE | Py_TPFLAGS_HAVE_GC,
    .tp_doc = "The paper venue's market-data entry points and the state they touch (paper.PaperVenue's base).",
    .tp_traverse = (traverseproc)core_traverse,
    .tp_clear = (inquiry)core_clear,
    .tp_members = core_members,
    .tp_methods = core_methods,
    .tp_new = PyType_GenericNew,
};

static PyObject *
bind_core(PyObject *mod, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 5) {
        PyErr_SetString(PyExc_TypeError, "bind_core(advance, on_book_message, on_trade_message, send_report, _run_due)");
        return NULL;
    }
    Py_XSETREF(py_advance, Py_NewRef(args[0]));
    Py_XSETREF(py_on_book, Py_NewRef(args[1]));
    Py_XSETREF(py_on_trade, Py_NewRef(args[2]));
    Py_XSETREF(py_send_report, Py_NewRef(args[3]));
    Py_XSETREF(py_run_due, Py_NewRef(args[4]));
    Py_RETURN_NONE;
}

static PyMethodDef methods[] = {
    {"bind_entry", (PyCFunction)(void (*)(void))bind_entry, METH_FASTCALL,
     "bind_entry(send_new_order, send_cancel): the Python the order entry falls back to."},
    {"bind_core", (PyCFunction)(void (*)(void))bind_core, METH_FASTCALL,
     "bind_core(advance, on_book_message, on_trade_message, send_report, _run_due): the Python each entry "
     "point falls back to."},
    {"bind_report", (PyCFunction)(void (*)(void))bind_report, METH_FASTCALL,
     "bind_report(ExecutionReport, sides, exec_types, reasons, heappush): what send_report builds "
     "with (heappush: for a heap that is not a list)."},
    {"heap_push", (PyCFunction)(void (*)(void))py_heap_push, METH_FASTCALL,
     "heap_push(list, item): heapq.heappush, entries (due, seq, ...) compared by their ints."},
    {"heap_pop", py_heap_pop, METH_O, "heap_pop(list): heapq.heappop, entries compared as heap_push does."},
    {"fixed", fixed, METH_O,
     "fixed(levels) -> [[round(price * scale), round(qty * scale)], ...], or None (not handled)."},
    {"bind_arrive", (PyCFunction)(void (*)(void))bind_arrive, METH_FASTCALL,
     "bind_arrive(Order, UsedIds, Matcher, PaperVenue, insort, bisect_left, _arrive, _convert, _arrive_cancel): "
     "what _arrive and _arrive_cancel work on, and the Python they fall back to."},
    {"bind", (PyCFunction)(void (*)(void))bind, METH_FASTCALL,
     "bind(SimSymbol, SimOrder, RiskAverseQueue, scale): the classes and scale book_moved works on."},
    {"book_moved", (PyCFunction)(void (*)(void))book_moved, METH_FASTCALL,
     "book_moved(sym, bids, asks, model, skip_front) -> True (fills a resting order; nothing changed), "
     "False (queues moved) or None (not handled; nothing changed)."},
    {NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "latentspeed_mock_exchange._paper", "The paper venue's per-message work, compiled.", -1,
    methods,
};

PyMODINIT_FUNC
PyInit__paper(void)
{
    if (PyType_Ready(&CoreType) < 0)
        return NULL;
    struct {
        PyObject **s;
        const char *v;
    } names[] = {
        {&str_receipt, "receipt_timestamp_ns"}, {&str_symbol, "symbol"}, {&str_bids, "bids"}, {&str_asks, "asks"},
        {&str_price, "price"}, {&str_side, "side"}, {&str_amount, "amount"}, {&str_buy, "buy"},
        {&str_run_due, "_run_due"}, {&str_fills_resting, "_fills_resting"}, {&str_on_trade, "on_trade"},
        {&str_depth, "depth"}, {&str_arm, "_arm"}, {&str_on_execution_report, "on_execution_report"},
        {&str_log_orders, "log_orders"}, {&str_next_order_id, "_next_order_id"}, {&str_next_exec_id, "_next_exec_id"},
        {&str_stats, "stats"}, {&str_max_open, "max_open_orders"}, {&str_orders, "orders"}, {&str_new_order, "new_order"}, {&str_cancels, "cancels"}, {&str_cancel_rejects, "cancel_rejects"},
        {&str_fills, "fills"}, {&str_fill_threshold, "_fill_threshold"}, {&str_queue_model, "queue_model"},
        {&str_front_is_final, "_front_is_final"}, {&str_on_print, "on_print"}, {&str_clock, "clock"},
    };
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
        if (!*names[i].s && !(*names[i].s = PyUnicode_InternFromString(names[i].v)))
            return NULL;
    PyObject *m = PyModule_Create(&module);
    if (!m)
        return NULL;
    if (PyModule_AddObjectRef(m, "PaperCore", (PyObject *)&CoreType) < 0) {
        Py_DECREF(m);
        return NULL;
    }
    return m;
}
