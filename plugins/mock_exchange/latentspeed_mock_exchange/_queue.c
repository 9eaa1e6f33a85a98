/* The paper venue's work on every book, compiled: does the book fill a resting order, and if not,
 * where is each resting order in its level's queue now (matching.Matcher.book_moved).
 *
 * This runs on nearly every book of a backtest while quotes rest, and was the largest Python
 * function per event (~100 bytecodes). Same rules and arithmetic as the Python: prices and sizes
 * times the fixed-point scale as doubles, rounded half to even (Python's round) only where a level
 * may be at an order's price, compared with the orders' integer prices.
 *
 * It reads and writes the __slots__ of SimSymbol and SimOrder directly, at the offsets their member
 * descriptors give (bind()). It first reads everything it needs without changing anything, and
 * returns None, having changed nothing, for whatever is not the usual case (another type, a level
 * that is not a pair of floats, a number beyond 2**52, more than MAX_ORDERS resting orders): the
 * caller then runs the Python, which owns every error.
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
static Py_ssize_t o_resting, o_buy_keys, o_sell_keys;
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
    if (!str_depth && !(str_depth = PyUnicode_InternFromString("depth")))
        return NULL;
    Py_RETURN_NONE;
}

/* An int that is exact as a double, or -1 (no error set: the caller gives the case to Python). */
static inline int
small_int(PyObject *v, int64_t *out)
{
    if (!v || !PyLong_CheckExact(v))
        return -1;
    int overflow;
    long long x = PyLong_AsLongLongAndOverflow(v, &overflow);
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

/* book_moved(sym, bids, asks, model, skip_front) -> True (the book fills a resting order: nothing
 * changed), False (it does not: queue positions moved) or None (not handled: nothing changed). */
static PyObject *
book_moved(PyObject *mod, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 5) {
        PyErr_SetString(PyExc_TypeError, "book_moved(sym, bids, asks, model, skip_front)");
        return NULL;
    }
    PyObject *sym = args[0], *bids = args[1], *asks = args[2], *model = args[3];
    int skip_front = PyObject_IsTrue(args[4]);
    if (skip_front < 0)
        return NULL;
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
        if (!nq)
            goto error;
        PyObject *ahead = SLOT(o, o_ahead), *front;
        if (Py_IS_TYPE(model, risk_averse_type)) { /* its depth(), inlined */
            int lt = PyObject_RichCompareBool(ahead, nq, Py_LT);
            if (lt < 0) {
                Py_DECREF(nq);
                goto error;
            }
            front = Py_NewRef(lt ? ahead : nq);
        }
        else {
            PyObject *call[5] = {model, ahead, level_qty, nq, SLOT(o, o_traded)};
            front = PyObject_VectorcallMethod(str_depth, call, 5 | PY_VECTORCALL_ARGUMENTS_OFFSET, NULL);
            if (!front) {
                Py_DECREF(nq);
                goto error;
            }
        }
        Py_SETREF(SLOT(o, o_ahead), front);
        Py_SETREF(SLOT(o, o_level_qty), nq);
        Py_SETREF(SLOT(o, o_traded), PyLong_FromLong(0)); /* a cached small int: cannot fail */
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

static PyMethodDef methods[] = {
    {"fixed", fixed, METH_O,
     "fixed(levels) -> [[round(price * scale), round(qty * scale)], ...], or None (not handled)."},
    {"bind", (PyCFunction)(void (*)(void))bind, METH_FASTCALL,
     "bind(SimSymbol, SimOrder, RiskAverseQueue, scale): the classes and scale book_moved works on."},
    {"book_moved", (PyCFunction)(void (*)(void))book_moved, METH_FASTCALL,
     "book_moved(sym, bids, asks, model, skip_front) -> True (fills a resting order; nothing changed), "
     "False (queues moved) or None (not handled; nothing changed)."},
    {NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "latentspeed_mock_exchange._queue", "The paper venue's per-book work, compiled.", -1,
    methods,
};

PyMODINIT_FUNC
PyInit__queue(void)
{
    return PyModule_Create(&module);
}
