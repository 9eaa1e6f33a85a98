/* The standard feature calculators' per-message updaters, compiled.
 *
 * Each type here is a per-topic updater: called with the message dict, it adds its fields in
 * place, exactly as the Python closures in marketstream/features.py (the reference and the
 * fallback) do: the same IEEE operations in the same order (built with -ffp-contract=off, so no
 * fused multiply-add), the same libm log/sqrt as the math module, math.fsum itself for the
 * re-anchoring of the rolling sums, and the same exceptions where Python would raise. Why: the
 * four book updaters cost ~2 us a message as closures (depth sums over 20 levels alone 0.65 us),
 * on both the marketstream and the engine's tick-to-trade path.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <structmember.h>
#include <math.h>
#include <stddef.h>

static PyObject *fsum_fn; /* math.fsum */

/* CPython 3.11: dicts carry a version (deprecated from 3.12, where every message is a new dict) */
#if PY_VERSION_HEX < 0x030C0000
#define MSG_SPARES 1
#else
#define MSG_SPARES 0
#endif
static PyObject *k_bids, *k_asks, *k_midpoint, *k_relative_spread, *k_breadth, *k_imbalance_lvl1,
    *k_bid_depth_n, *k_ask_depth_n, *k_depth_n, *k_ofi_rolling, *k_price, *k_amount, *k_transaction_price,
    *k_trading_volume, *k_exchange, *k_symbol, *k_timestamp_ns, *k_receipt_timestamp_ns, *k_seq, *k_side,
    *k_trade_id, *k_window_size, *k_schema_version;

/* ---- helpers ---- */

static int
get_double(PyObject *o, double *out)
{
    if (PyFloat_CheckExact(o)) {
        *out = PyFloat_AS_DOUBLE(o);
        return 0;
    }
    double v = PyFloat_AsDouble(o);
    if (v == -1.0 && PyErr_Occurred())
        return -1;
    *out = v;
    return 0;
}

/* (price, qty) of a [price, qty] level (list or tuple of two numbers). */
static int
level(PyObject *lv, double *p, double *q)
{
    PyObject *a, *b;
    if (PyList_CheckExact(lv) && PyList_GET_SIZE(lv) == 2) {
        a = PyList_GET_ITEM(lv, 0);
        b = PyList_GET_ITEM(lv, 1);
    }
    else if (PyTuple_CheckExact(lv) && PyTuple_GET_SIZE(lv) == 2) {
        a = PyTuple_GET_ITEM(lv, 0);
        b = PyTuple_GET_ITEM(lv, 1);
    }
    else {
        PyErr_SetString(PyExc_ValueError, "a book level must be a [price, qty] pair");
        return -1;
    }
    return get_double(a, p) < 0 ? -1 : get_double(b, q);
}

/* msg[key] as a list (the message's bids or asks). */
static PyObject *
side_of(PyObject *msg, PyObject *key)
{
    PyObject *v = PyDict_GetItemWithError(msg, key);
    if (!v) {
        if (!PyErr_Occurred())
            PyErr_SetObject(PyExc_KeyError, key);
        return NULL;
    }
    if (!PyList_Check(v)) {
        PyErr_Format(PyExc_TypeError, "message %R must be a list", key);
        return NULL;
    }
    return v;
}

/* Best level of both sides of these lists: b, qb, a, qa. */
static int
touch_of(PyObject *bids, PyObject *asks, double *b, double *qb, double *a, double *qa)
{
    if (!PyList_GET_SIZE(bids) || !PyList_GET_SIZE(asks)) {
        PyErr_SetString(PyExc_IndexError, "list index out of range");
        return -1;
    }
    if (level(PyList_GET_ITEM(bids, 0), b, qb) < 0 || level(PyList_GET_ITEM(asks, 0), a, qa) < 0)
        return -1;
    return 0;
}

/* What a message being built (Topic.book) already knows: its bids and asks lists, while no updater
 * of another kind has run (which could have replaced them), and their best levels once read. */
typedef struct {
    PyObject *bids, *asks; /* NULL: read the message */
    int touched;
    double b, qb, a, qa;
} Ctx;

/* Best level of both sides: b, qb, a, qa (from the context when it has the sides). */
static int
touch(PyObject *msg, Ctx *c, double *b, double *qb, double *a, double *qa)
{
    if (c && c->bids) {
        if (!c->touched) {
            if (touch_of(c->bids, c->asks, &c->b, &c->qb, &c->a, &c->qa) < 0)
                return -1;
            c->touched = 1;
        }
        *b = c->b;
        *qb = c->qb;
        *a = c->a;
        *qa = c->qa;
        return 0;
    }
    PyObject *bids = side_of(msg, k_bids), *asks;
    if (!bids || !(asks = side_of(msg, k_asks)))
        return -1;
    return touch_of(bids, asks, b, qb, a, qa);
}

/* ---- a message's values written in place ---------------------------------------------------------
 *
 * A reused message (see Topic) has every key already, in the order this module sets them. Its values
 * are replaced where they stand: the entry the next key is expected at (the one after the last set)
 * is checked to hold exactly that key object, and its value swapped, instead of PyDict_SetItem's
 * hash look-up and insertion path (~100 instructions a value, 16 values an event). Anything else (a
 * new dict, another entry, another layout) is PyDict_SetItem. The entry layout is CPython 3.11's
 * (Include/internal/pycore_dict.h, not public): checked on a dict built at import, and the in-place
 * path stays off unless it is exactly as expected. The version (PEP 509) still changes with every
 * message: finish() sets its last two keys through PyDict_SetItem. */
#if MSG_SPARES
typedef struct {
    Py_ssize_t dk_refcnt;
    uint8_t dk_log2_size;
    uint8_t dk_log2_index_bytes;
    uint8_t dk_kind;
    uint32_t dk_version;
    Py_ssize_t dk_usable;
    Py_ssize_t dk_nentries;
    char dk_indices[];
} DictKeys311;
typedef struct {
    PyObject *me_key, *me_value;
} UnicodeEntry311; /* a table of str keys only (PyDict_New's) */
typedef struct {
    Py_hash_t me_hash;
    PyObject *me_key, *me_value;
} GeneralEntry311; /* any other table (_PyDict_NewPresized's, whatever its keys) */
#define DK_GENERAL 0
#define DK_UNICODE 1
#define DK_ENTRIES(dk) ((void *)(&((int8_t *)(dk)->dk_indices)[(size_t)1 << (dk)->dk_log2_index_bytes]))

static int in_place;            /* the layout check passed */
static PyObject *in_place_msg;  /* the reused message being built (compared, never dereferenced), or NULL */
static Py_ssize_t next_entry;   /* where its next key is expected */

/* The value slot of msg's entry at next_entry when that entry holds `key` (a combined table), or NULL. */
static inline PyObject **
entry_at(PyObject *msg, PyObject *key)
{
    PyDictObject *mp = (PyDictObject *)msg;
    DictKeys311 *dk = (DictKeys311 *)mp->ma_keys;
    if (mp->ma_values || next_entry >= dk->dk_nentries)
        return NULL;
    if (dk->dk_kind == DK_GENERAL) {
        GeneralEntry311 *e = &((GeneralEntry311 *)DK_ENTRIES(dk))[next_entry];
        return e->me_key == key && e->me_value ? &e->me_value : NULL;
    }
    if (dk->dk_kind == DK_UNICODE) {
        UnicodeEntry311 *e = &((UnicodeEntry311 *)DK_ENTRIES(dk))[next_entry];
        return e->me_key == key && e->me_value ? &e->me_value : NULL;
    }
    return NULL;
}

/* Whether a dict made as messages are (presized) and one made by PyDict_New read back through
 * entry_at as this file assumes, and a value replaced there is what the dict then gives: 1, or 0. */
static int
check_layout(void)
{
    PyObject *keys[3] = {k_exchange, k_symbol, k_seq};
    int ok = 1;
    for (int kind = 0; ok && kind < 2; kind++) {
        PyObject *d = kind ? PyDict_New() : _PyDict_NewPresized(20), *v = PyLong_FromLong(7);
        ok = d && v && ((DictKeys311 *)((PyDictObject *)d)->ma_keys)->dk_kind == (kind ? DK_UNICODE : DK_GENERAL);
        for (int i = 0; ok && i < 3; i++)
            ok = PyDict_SetItem(d, keys[i], keys[2 - i]) == 0;
        next_entry = 0;
        for (int i = 0; ok && i < 3; i++, next_entry++) {
            PyObject **slot = entry_at(d, keys[i]);
            ok = slot && *slot == keys[2 - i];
        }
        if (ok) {
            next_entry = 1;
            PyObject **slot = entry_at(d, k_symbol);
            if ((ok = slot != NULL)) {
                PyObject *old = *slot;
                *slot = Py_NewRef(v);
                Py_DECREF(old);
                ok = PyDict_GetItemWithError(d, k_symbol) == v && PyDict_GET_SIZE(d) == 3;
            }
        }
        PyErr_Clear();
        Py_XDECREF(d);
        Py_XDECREF(v);
    }
    next_entry = 0;
    return ok;
}
#endif

/* msg[key] = value for a message being built (see above). */
static inline int
msg_set(PyObject *msg, PyObject *key, PyObject *value)
{
#if MSG_SPARES
    PyObject **slot;
    if (msg == in_place_msg && (slot = entry_at(msg, key)) != NULL) {
        PyObject *old = *slot;
        *slot = Py_NewRef(value);
        next_entry++;
        if (!PyObject_GC_IsTracked(msg) && PyObject_IS_GC(value)) /* as PyDict_SetItem keeps it */
            PyObject_GC_Track(msg);
        Py_DECREF(old);
        return 0;
    }
    return PyDict_SetItem(msg, key, value);
#else
    return PyDict_SetItem(msg, key, value);
#endif
}

static int
set_float(PyObject *msg, PyObject *key, double v)
{
#if MSG_SPARES
    PyObject **slot;
    /* A reused message's float that nothing else holds: its value replaced where it stands (the
     * dict has the only reference, so nobody can see the change), no float allocated and freed. */
    if (msg == in_place_msg && (slot = entry_at(msg, key)) != NULL && PyFloat_CheckExact(*slot) &&
        Py_REFCNT(*slot) == 1) {
        ((PyFloatObject *)*slot)->ob_fval = v;
        next_entry++;
        return 0;
    }
#endif
    PyObject *f = PyFloat_FromDouble(v);
    if (!f)
        return -1;
    int rc = msg_set(msg, key, f);
    Py_DECREF(f);
    return rc;
}

static int
zero_division(void)
{
    PyErr_SetString(PyExc_ZeroDivisionError, "float division by zero");
    return -1;
}

/* math.fsum of n doubles (the exact re-anchoring of a rolling sum); squares them first if asked. */
/* math.fsum's answer for n doubles (squared with `square`), without a Python float each: the sum
 * kept exactly as non-overlapping partials (Shewchuk), then their sum rounded half-even, as
 * math.fsum computes it (a zero never becomes a partial, as there). The exactly rounded sum is one
 * double, so the answers are equal bit for bit. 0 with *out set; 1 for what math.fsum itself must
 * answer: a value or a partial that is not finite (infinities, NaN, overflow and their errors), or
 * more partials than kept here. */
#define EXACT_PARTIALS 64
static int
exact_sum(const double *buf, Py_ssize_t n, int square, double *out)
{
    double p[EXACT_PARTIALS];
    Py_ssize_t m = 0;
    for (Py_ssize_t i = 0; i < n; i++) {
        double x = square ? buf[i] * buf[i] : buf[i];
        if (!isfinite(x))
            return 1;
        Py_ssize_t k = 0;
        for (Py_ssize_t j = 0; j < m; j++) {
            double y = p[j];
            if (fabs(x) < fabs(y)) {
                double t = x;
                x = y;
                y = t;
            }
            double hi = x + y, lo = y - (hi - x);
            if (lo != 0.0)
                p[k++] = lo;
            x = hi;
        }
        m = k;
        if (x != 0.0) {
            if (!isfinite(x) || m == EXACT_PARTIALS)
                return 1;
            p[m++] = x;
        }
    }
    double hi = 0.0, lo = 0.0;
    if (m > 0) {
        hi = p[--m];
        while (m > 0) { /* from the top, until the sum is no longer exact */
            double x = hi, y = p[--m];
            hi = x + y;
            lo = y - (hi - x);
            if (lo != 0.0)
                break;
        }
        if (m > 0 && ((lo < 0.0 && p[m - 1] < 0.0) || (lo > 0.0 && p[m - 1] > 0.0))) { /* half-even across partials */
            double y = lo * 2.0, x = hi + y;
            if (y == x - hi)
                hi = x;
        }
    }
    *out = hi;
    return 0;
}

static int fsum_of(const double *buf, Py_ssize_t n, int square, double *out);

/* fsum(floats) -> float: exact_sum of a list of floats (math.fsum where it must answer); for tests. */
static PyObject *
py_exact_sum(PyObject *mod, PyObject *seq)
{
    PyObject *fast = PySequence_Fast(seq, "fsum() takes a sequence of floats");
    if (!fast)
        return NULL;
    Py_ssize_t n = PySequence_Fast_GET_SIZE(fast);
    double *buf = PyMem_Malloc(sizeof(double) * (size_t)(n ? n : 1));
    if (!buf) {
        Py_DECREF(fast);
        return PyErr_NoMemory();
    }
    for (Py_ssize_t i = 0; i < n; i++) {
        PyObject *v = PySequence_Fast_GET_ITEM(fast, i);
        if (!PyFloat_CheckExact(v)) {
            PyMem_Free(buf);
            Py_DECREF(fast);
            PyErr_SetString(PyExc_TypeError, "fsum() takes floats");
            return NULL;
        }
        buf[i] = PyFloat_AS_DOUBLE(v);
    }
    double out;
    PyObject *r = NULL;
    if (fsum_of(buf, n, 0, &out) == 0)
        r = PyFloat_FromDouble(out);
    PyMem_Free(buf);
    Py_DECREF(fast);
    return r;
}

static int
fsum_of(const double *buf, Py_ssize_t n, int square, double *out)
{
    if (exact_sum(buf, n, square, out) == 0)
        return 0;
    PyObject *list = PyList_New(n);
    if (!list)
        return -1;
    for (Py_ssize_t i = 0; i < n; i++) {
        PyObject *f = PyFloat_FromDouble(square ? buf[i] * buf[i] : buf[i]);
        if (!f) {
            Py_DECREF(list);
            return -1;
        }
        PyList_SET_ITEM(list, i, f);
    }
    PyObject *r = PyObject_CallOneArg(fsum_fn, list);
    Py_DECREF(list);
    if (!r)
        return -1;
    *out = PyFloat_AsDouble(r);
    Py_DECREF(r);
    return 0;
}

/* ---- one object layout for every updater: a vectorcall slot and the rolling state ---- */

typedef struct Updater Updater;
typedef int (*applyfunc)(Updater *, PyObject *msg, Ctx *);

struct Updater {
    PyObject_HEAD
    vectorcallfunc vectorcall;
    applyfunc apply;          /* adds the fields to msg; -1 with an exception set */
    PyObject *source, *field; /* volatility: the input and output keys */
    Py_ssize_t w, i, n;
    double total, s1, s2;         /* ofi: total; volatility: s1, s2 */
    double pb, pqb, pa, pqa, prev; /* ofi: previous touch; volatility: previous value */
    double *buf;
};

static void
Updater_dealloc(Updater *self)
{
    PyMem_Free(self->buf);
    Py_XDECREF(self->source);
    Py_XDECREF(self->field);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

static PyObject *
updater_call(PyObject *self, PyObject *const *args, size_t nargsf, PyObject *kwnames)
{
    if (PyVectorcall_NARGS(nargsf) != 1 || kwnames || !PyDict_Check(args[0])) {
        PyErr_SetString(PyExc_TypeError, "an updater takes one message dict");
        return NULL;
    }
    Updater *u = (Updater *)self;
    if (u->apply(u, args[0], NULL) < 0)
        return NULL;
    Py_RETURN_NONE;
}

static int
top_of_book_apply(Updater *u, PyObject *msg, Ctx *c)
{
    double b, qb, a, qa;
    if (touch(msg, c, &b, &qb, &a, &qa) < 0)
        return -1;
    double mid = (b + a) / 2;
    if (mid == 0.0 || qb + qa == 0.0)
        return zero_division();
    if (set_float(msg, k_midpoint, mid) < 0 || set_float(msg, k_relative_spread, (a - b) / mid) < 0 ||
        set_float(msg, k_breadth, b * qb + a * qa) < 0 ||
        set_float(msg, k_imbalance_lvl1, (qb - qa) / (qb + qa)) < 0)
        return -1;
    return 0;
}

static int
depth_sum(PyObject *side, double *out)
{
    double s = 0.0, p, q;
    for (Py_ssize_t i = 0; i < PyList_GET_SIZE(side); i++) {
        if (level(PyList_GET_ITEM(side, i), &p, &q) < 0)
            return -1;
        s += p * q;
    }
    *out = s;
    return 0;
}

static int
depth_apply(Updater *u, PyObject *msg, Ctx *c)
{
    PyObject *bids, *asks;
    double bd, ad;
    if (c && c->bids) {
        bids = c->bids;
        asks = c->asks;
    }
    else if (!(bids = side_of(msg, k_bids)) || !(asks = side_of(msg, k_asks)))
        return -1;
    if (depth_sum(bids, &bd) < 0 || depth_sum(asks, &ad) < 0)
        return -1;
    if (set_float(msg, k_bid_depth_n, bd) < 0 || set_float(msg, k_ask_depth_n, ad) < 0 ||
        set_float(msg, k_depth_n, bd + ad) < 0)
        return -1;
    return 0;
}

static int
volatility_apply(Updater *u, PyObject *msg, Ctx *c)
{
    PyObject *vo = PyDict_GetItemWithError(msg, u->source);
    if (!vo) {
        if (!PyErr_Occurred())
            PyErr_SetObject(PyExc_KeyError, u->source);
        return -1;
    }
    double value;
    if (get_double(vo, &value) < 0)
        return -1;
    double p = u->prev;
    u->prev = value;
    if (p <= 0.0) /* first value of the topic: no return yet */
        return set_float(msg, u->field, 0.0);
    double ratio = value / p;
    if (ratio <= 0.0) { /* as math.log: a domain error (NaN goes through as NaN) */
        PyErr_SetString(PyExc_ValueError, "math domain error");
        return -1;
    }
    double x = log(ratio);
    Py_ssize_t w = u->w;
    if (u->n == w) {
        double old = u->buf[u->i];
        u->s1 += x - old;
        u->s2 += x * x - old * old;
    }
    else {
        u->n++;
        u->s1 += x;
        u->s2 += x * x;
    }
    u->buf[u->i] = x;
    if (++u->i == w) { /* re-anchor: no drift over long runs */
        u->i = 0;
        if (fsum_of(u->buf, w, 0, &u->s1) < 0 || fsum_of(u->buf, w, 1, &u->s2) < 0)
            return -1;
    }
    double out = 0.0;
    if (u->n >= 2) {
        double n = (double)u->n;
        double var = (u->s2 - u->s1 * u->s1 / n) / (n - 1);
        out = var > 0.0 ? sqrt(var) : 0.0;
    }
    return set_float(msg, u->field, out);
}

static int
ofi_apply(Updater *u, PyObject *msg, Ctx *c)
{
    double b, qb, a, qa;
    if (touch(msg, c, &b, &qb, &a, &qa) < 0)
        return -1;
    double e = 0.0;
    if (u->pb != 0.0) {
        if (b >= u->pb)
            e += qb;
        if (b <= u->pb)
            e -= u->pqb;
        if (a <= u->pa)
            e -= qa;
        if (a >= u->pa)
            e += u->pqa;
    }
    u->pb = b;
    u->pqb = qb;
    u->pa = a;
    u->pqa = qa;
    if (u->n == u->w) {
        u->total += e - u->buf[u->i];
    }
    else {
        u->n++;
        u->total += e;
    }
    u->buf[u->i] = e;
    if (++u->i == u->w) {
        u->i = 0;
        if (fsum_of(u->buf, u->w, 0, &u->total) < 0)
            return -1;
    }
    return set_float(msg, k_ofi_rolling, u->total);
}

/* transaction_price = msg["price"], trading_volume = price * msg["amount"] (trades). */
static int
trade_value_apply(Updater *u, PyObject *msg, Ctx *c)
{
    PyObject *price = PyDict_GetItemWithError(msg, k_price), *amount, *vol;
    if (!price) {
        if (!PyErr_Occurred())
            PyErr_SetObject(PyExc_KeyError, k_price);
        return -1;
    }
    Py_INCREF(price);
    if (msg_set(msg, k_transaction_price, price) < 0)
        goto fail;
    amount = PyDict_GetItemWithError(msg, k_amount);
    if (!amount) {
        if (!PyErr_Occurred())
            PyErr_SetObject(PyExc_KeyError, k_amount);
        goto fail;
    }
    if (PyFloat_CheckExact(price) && PyFloat_CheckExact(amount)) {
        double v = PyFloat_AS_DOUBLE(price) * PyFloat_AS_DOUBLE(amount);
        Py_DECREF(price);
        return set_float(msg, k_trading_volume, v);
    }
    vol = PyNumber_Multiply(price, amount);
    Py_DECREF(price);
    if (!vol)
        return -1;
    int rc = msg_set(msg, k_trading_volume, vol);
    Py_DECREF(vol);
    return rc;
fail:
    Py_DECREF(price);
    return -1;
}

static PyTypeObject UpdaterType = {
    PyVarObject_HEAD_INIT(NULL, 0).tp_name = "latentspeed_core._features.Updater",
    .tp_basicsize = sizeof(Updater),
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_VECTORCALL,
    .tp_doc = "A compiled per-topic feature updater: call it with a message dict.",
    .tp_dealloc = (destructor)Updater_dealloc,
    .tp_vectorcall_offset = offsetof(Updater, vectorcall),
    .tp_call = PyVectorcall_Call,
};

static Updater *
new_updater(applyfunc fn, Py_ssize_t w)
{
    Updater *u = PyObject_New(Updater, &UpdaterType);
    if (!u)
        return NULL;
    u->vectorcall = updater_call;
    u->apply = fn;
    u->source = u->field = NULL;
    u->w = w;
    u->i = u->n = 0;
    u->total = u->s1 = u->s2 = 0.0;
    u->pb = u->pqb = u->pa = u->pqa = u->prev = 0.0;
    u->buf = NULL;
    if (w > 0) {
        u->buf = PyMem_Calloc((size_t)w, sizeof(double));
        if (!u->buf) {
            Py_DECREF(u);
            PyErr_NoMemory();
            return NULL;
        }
    }
    return u;
}

static PyObject *
make_top_of_book(PyObject *mod, PyObject *unused)
{
    return (PyObject *)new_updater(top_of_book_apply, 0);
}

static PyObject *
make_depth(PyObject *mod, PyObject *unused)
{
    return (PyObject *)new_updater(depth_apply, 0);
}

static PyObject *
make_trade_value(PyObject *mod, PyObject *unused)
{
    return (PyObject *)new_updater(trade_value_apply, 0);
}

static PyObject *
make_volatility(PyObject *mod, PyObject *args)
{
    Py_ssize_t w;
    PyObject *source, *field;
    if (!PyArg_ParseTuple(args, "nUU:volatility", &w, &source, &field))
        return NULL;
    if (w < 1) {
        PyErr_SetString(PyExc_ValueError, "window must be >= 1");
        return NULL;
    }
    Updater *u = new_updater(volatility_apply, w);
    if (u) {
        u->source = Py_NewRef(source);
        u->field = Py_NewRef(field);
    }
    return (PyObject *)u;
}

static PyObject *
make_ofi(PyObject *mod, PyObject *arg)
{
    Py_ssize_t w = PyLong_AsSsize_t(arg);
    if (w == -1 && PyErr_Occurred())
        return NULL;
    if (w < 1) {
        PyErr_SetString(PyExc_ValueError, "window must be >= 1");
        return NULL;
    }
    return (PyObject *)new_updater(ofi_apply, w);
}

/* ---- a topic's state, building its messages in one call (marketstream/pipeline.py's _Topic) ---- */

typedef struct {
    PyObject_HEAD
    PyObject *topic, *exchange, *symbol;
    PyObject *updaters; /* tuple */
    PyObject *window_size, *schema_version;
    Py_ssize_t seq;
    double resync_at;
    Py_ssize_t size; /* keys of a message with every updater's fields (learnt): the dict's presize */
#if MSG_SPARES
    /* The topic's last two messages. The older one, once nothing else holds it and nothing changed
     * it since it was made (its version, PEP 509), is the next message: its values replaced in place
     * rather than a dict made, filled and freed for every message. Only while every updater is
     * compiled: those set the same keys on every message (or fail it: a failed message is not
     * kept), so no value of an older message stays. */
    PyObject *spare[2];
    uint64_t spare_version[2];
    int turn, compiled;
#endif
} Topic;

static int
Topic_traverse(Topic *self, visitproc visit, void *arg)
{
    Py_VISIT(self->topic);
    Py_VISIT(self->exchange);
    Py_VISIT(self->symbol);
    Py_VISIT(self->updaters);
    Py_VISIT(self->window_size);
    Py_VISIT(self->schema_version);
#if MSG_SPARES
    Py_VISIT(self->spare[0]);
    Py_VISIT(self->spare[1]);
#endif
    return 0;
}

static int
Topic_clear(Topic *self)
{
    Py_CLEAR(self->topic);
    Py_CLEAR(self->exchange);
    Py_CLEAR(self->symbol);
    Py_CLEAR(self->updaters);
    Py_CLEAR(self->window_size);
    Py_CLEAR(self->schema_version);
#if MSG_SPARES
    Py_CLEAR(self->spare[0]);
    Py_CLEAR(self->spare[1]);
#endif
    return 0;
}

static void
Topic_dealloc(Topic *self)
{
    PyObject_GC_UnTrack(self);
    Topic_clear(self);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

static int
Topic_init(Topic *self, PyObject *args, PyObject *kwds)
{
    static char *kwlist[] = {"topic", "exchange", "symbol", "updaters", "window_size", "schema_version", NULL};
    PyObject *topic, *exchange, *symbol, *updaters, *window_size, *schema_version;
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "OOOOOO:Topic", kwlist, &topic, &exchange, &symbol, &updaters,
                                     &window_size, &schema_version))
        return -1;
    PyObject *ups = PySequence_Tuple(updaters);
    if (!ups)
        return -1;
    Topic_clear(self);
    self->topic = Py_NewRef(topic);
    self->exchange = Py_NewRef(exchange);
    self->symbol = Py_NewRef(symbol);
    self->updaters = ups;
    self->window_size = Py_NewRef(window_size);
    self->schema_version = Py_NewRef(schema_version);
    self->seq = 0;
    self->resync_at = 0.0;
    self->size = 0;
#if MSG_SPARES
    self->turn = 0;
    self->compiled = 1;
    for (Py_ssize_t k = 0; k < PyTuple_GET_SIZE(ups); k++)
        self->compiled &= Py_IS_TYPE(PyTuple_GET_ITEM(ups, k), &UpdaterType);
#endif
    return 0;
}

/* Runs the updaters on msg, the compiled ones directly; the context's sides are dropped once
 * any other updater has seen the message. */
static int
run_updaters(Topic *self, PyObject *msg, Ctx *c)
{
    PyObject *ups = self->updaters;
    for (Py_ssize_t k = 0; k < PyTuple_GET_SIZE(ups); k++) {
        PyObject *u = PyTuple_GET_ITEM(ups, k);
        if (Py_IS_TYPE(u, &UpdaterType)) {
            if (((Updater *)u)->apply((Updater *)u, msg, c) < 0)
                return -1;
        }
        else {
            c->bids = c->asks = NULL;
            PyObject *r = PyObject_CallOneArg(u, msg);
            if (!r)
                return -1;
            Py_DECREF(r);
        }
    }
    return 0;
}

static PyObject *
finish(Topic *self, PyObject *msg)
{
    if (PyDict_SetItem(msg, k_window_size, self->window_size) < 0 ||
        PyDict_SetItem(msg, k_schema_version, self->schema_version) < 0) {
        Py_DECREF(msg);
        return NULL;
    }
    if (PyDict_GET_SIZE(msg) > self->size)
        self->size = PyDict_GET_SIZE(msg);
    return msg;
}

static PyObject *
new_msg(Topic *self)
{
    if (!self->updaters) {
        PyErr_SetString(PyExc_TypeError, "Topic.__init__ was not called");
        return NULL;
    }
    return _PyDict_NewPresized(self->size ? self->size : 9 + 3 * PyTuple_GET_SIZE(self->updaters));
}

/* The dict of the next message: the older spare when it can be (see Topic), else a new one. */
static PyObject *
take_msg(Topic *self)
{
#if MSG_SPARES
    PyObject *m = self->spare[self->turn];
    if (m && self->compiled && Py_REFCNT(m) == 1 && PyDict_GET_SIZE(m) == self->size &&
        ((PyDictObject *)m)->ma_version_tag == self->spare_version[self->turn]) {
        in_place_msg = in_place ? m : NULL; /* its values replaced where they stand (msg_set) */
        next_entry = 0;
        return Py_NewRef(m);
    }
    in_place_msg = NULL;
#endif
    return new_msg(self);
}

/* A finished message: kept as the newer spare (the older one is let go unless it is this one). */
static PyObject *
keep_msg(Topic *self, PyObject *msg)
{
#if MSG_SPARES
    in_place_msg = NULL;
    if (msg && self->compiled) {
        int t = self->turn;
        PyObject *old = self->spare[t];
        self->spare[t] = Py_NewRef(msg);
        self->spare_version[t] = ((PyDictObject *)msg)->ma_version_tag;
        self->turn = t ^ 1;
        Py_XDECREF(old);
    }
#endif
    return msg;
}

/* After a message went out: the older spare, when nothing else holds it any more, lets go of its
 * level lists, so the book's next answer can refill them in place (book.top_of) before this dict is
 * the next message. */
static void
spare_release_levels(Topic *self)
{
#if MSG_SPARES
    PyObject *m = self->spare[self->turn];
    if (m && Py_REFCNT(m) == 1 && ((PyDictObject *)m)->ma_version_tag == self->spare_version[self->turn]) {
        if (PyDict_SetItem(m, k_bids, Py_None) < 0 || PyDict_SetItem(m, k_asks, Py_None) < 0) {
            PyErr_Clear();
            return;
        }
        self->spare_version[self->turn] = ((PyDictObject *)m)->ma_version_tag;
    }
#endif
}

/* levels[i][0] when it is a float (a list or tuple level); NULL otherwise (no exception). */
static PyObject *
price_at(PyObject *levels, Py_ssize_t i)
{
    PyObject *lv = PyList_GET_ITEM(levels, i), *p;
    if (PyList_CheckExact(lv) && PyList_GET_SIZE(lv) >= 1)
        p = PyList_GET_ITEM(lv, 0);
    else if (PyTuple_CheckExact(lv) && PyTuple_GET_SIZE(lv) >= 1)
        p = PyTuple_GET_ITEM(lv, 0);
    else
        return NULL;
    return PyFloat_CheckExact(p) ? p : NULL;
}

/* book(bids, asks, timestamp_ns, receipt_ns) -> the book message, or None when the Pipeline must
 * look at the book itself (a side empty, crossed or locked, a non-positive price, levels that are
 * not lists of floats): nothing changed then. */
static PyObject *
Topic_book(Topic *self, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 4) {
        PyErr_SetString(PyExc_TypeError, "book(bids, asks, timestamp_ns, receipt_ns)");
        return NULL;
    }
    PyObject *bids = args[0], *asks = args[1], *b0, *a0, *bl;
    if (!PyList_CheckExact(bids) || !PyList_CheckExact(asks) || !PyList_GET_SIZE(bids) || !PyList_GET_SIZE(asks))
        Py_RETURN_NONE;
    if (!(b0 = price_at(bids, 0)) || !(a0 = price_at(asks, 0)) || !(bl = price_at(bids, PyList_GET_SIZE(bids) - 1)))
        Py_RETURN_NONE;
    if (PyFloat_AS_DOUBLE(b0) >= PyFloat_AS_DOUBLE(a0) || !(PyFloat_AS_DOUBLE(bl) > 0.0))
        Py_RETURN_NONE;
    self->resync_at = 0.0;
    PyObject *seq = PyLong_FromSsize_t(++self->seq);
    if (!seq)
        return NULL;
    PyObject *msg = take_msg(self);
    if (!msg) {
        Py_DECREF(seq);
        return NULL;
    }
    int rc = msg_set(msg, k_exchange, self->exchange) < 0 || msg_set(msg, k_symbol, self->symbol) < 0 ||
             msg_set(msg, k_timestamp_ns, args[2]) < 0 || msg_set(msg, k_receipt_timestamp_ns, args[3]) < 0 ||
             msg_set(msg, k_seq, seq) < 0 || msg_set(msg, k_bids, bids) < 0 || msg_set(msg, k_asks, asks) < 0;
    Py_DECREF(seq);
    Ctx c = {bids, asks, 0, 0.0, 0.0, 0.0, 0.0};
    if (rc || run_updaters(self, msg, &c) < 0) {
#if MSG_SPARES
        in_place_msg = NULL;
#endif
        Py_DECREF(msg);
        return NULL;
    }
    return keep_msg(self, finish(self, msg));
}

/* trade(timestamp_ns, receipt_ns, price, amount, side, trade_id) -> the trade message. */
static PyObject *
Topic_trade(Topic *self, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 6) {
        PyErr_SetString(PyExc_TypeError, "trade(timestamp_ns, receipt_ns, price, amount, side, trade_id)");
        return NULL;
    }
    PyObject *seq = PyLong_FromSsize_t(++self->seq);
    if (!seq)
        return NULL;
    PyObject *msg = take_msg(self);
    if (!msg) {
        Py_DECREF(seq);
        return NULL;
    }
    int rc = msg_set(msg, k_exchange, self->exchange) < 0 || msg_set(msg, k_symbol, self->symbol) < 0 ||
             msg_set(msg, k_timestamp_ns, args[0]) < 0 || msg_set(msg, k_receipt_timestamp_ns, args[1]) < 0 ||
             msg_set(msg, k_price, args[2]) < 0 || msg_set(msg, k_amount, args[3]) < 0 ||
             msg_set(msg, k_side, args[4]) < 0 || msg_set(msg, k_trade_id, args[5]) < 0 || msg_set(msg, k_seq, seq) < 0;
    Py_DECREF(seq);
    Ctx c = {NULL, NULL, 0, 0.0, 0.0, 0.0, 0.0};
    if (rc || run_updaters(self, msg, &c) < 0) {
#if MSG_SPARES
        in_place_msg = NULL;
#endif
        Py_DECREF(msg);
        return NULL;
    }
    return keep_msg(self, finish(self, msg));
}

static PyMethodDef Topic_methods[] = {
    {"book", (PyCFunction)(void (*)(void))Topic_book, METH_FASTCALL,
     "book(bids, asks, timestamp_ns, receipt_ns) -> message, or None (the Pipeline looks at the book)"},
    {"trade", (PyCFunction)(void (*)(void))Topic_trade, METH_FASTCALL,
     "trade(timestamp_ns, receipt_ns, price, amount, side, trade_id) -> message"},
    {NULL},
};

static PyMemberDef Topic_members[] = {
    {"topic", T_OBJECT, offsetof(Topic, topic), READONLY, NULL},
    {"exchange", T_OBJECT, offsetof(Topic, exchange), READONLY, NULL},
    {"symbol", T_OBJECT, offsetof(Topic, symbol), READONLY, NULL},
    {"updaters", T_OBJECT, offsetof(Topic, updaters), READONLY, NULL},
    {"window_size", T_OBJECT, offsetof(Topic, window_size), READONLY, NULL},
    {"schema_version", T_OBJECT, offsetof(Topic, schema_version), READONLY, NULL},
    {"seq", T_PYSSIZET, offsetof(Topic, seq), 0, "messages built so far"},
    {"resync_at", T_DOUBLE, offsetof(Topic, resync_at), 0, "when a crossed book last asked for a resync"},
    {NULL},
};

static PyTypeObject TopicType = {
    PyVarObject_HEAD_INIT(NULL, 0).tp_name = "latentspeed_core._features.Topic",
    .tp_basicsize = sizeof(Topic),
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC,
    .tp_doc = "A Pipeline topic's state (sequence, feature updaters) building its messages.",
    .tp_dealloc = (destructor)Topic_dealloc,
    .tp_traverse = (traverseproc)Topic_traverse,
    .tp_clear = (inquiry)Topic_clear,
    .tp_init = (initproc)Topic_init,
    .tp_new = PyType_GenericNew,
    .tp_methods = Topic_methods,
    .tp_members = Topic_members,
};


/* ---- PipelineCore ---- */

/* The base of marketstream.pipeline.Pipeline: its FeedSink entry points, on_book and on_trade, for
 * their usual case (a book's top levels as lists of float pairs that a compiled Topic takes, a
 * trade of float price and amount); every other case, before anything changed, is the Python of
 * pipeline._PipelineCorePy, called with the same arguments. Why: on_book was ~54 bytecodes and a
 * frame per book on every path (marketstream, the engine's in-process feeds, backtests). */
/* state_of's answers, by (exchange, symbol) object and the states dict's version: a book's topic
 * state without building, hashing and looking up its key tuple. A dict's version (PEP 509) changes
 * with every change to it and is unique to it, so an entry is the dict's answer while both match.
 * (CPython 3.11; the field is deprecated from 3.12, where every call looks the key up.) */
#if PY_VERSION_HEX < 0x030C0000
#define STATE_CACHE 32
#define STATE_WAYS 4
#else
#define STATE_CACHE 0
#endif
typedef struct {
    PyObject *exchange, *symbol; /* held: their identities are the key */
    PyObject *states, *st;       /* borrowed: valid while states is at `version` */
    uint64_t version;
} StateEntry;

typedef struct {
    PyObject_HEAD
    PyObject *depth_levels, *books, *trades, *emit_book, *emit_trade;
#if STATE_CACHE
    StateEntry cache[STATE_CACHE];
    unsigned cache_turn;
#endif
} PipelineCore;

static PyObject *py_pipe_book, *py_pipe_trade; /* the Python rule */
static PyObject *k_book_method, *k_trade_method;
static PyTypeObject *snap_type;                /* book.SnapshotBook, and its two list slots */
static Py_ssize_t o_snap_bids, o_snap_asks;
static PyObject *s_top_bids, *s_top_asks, *s_exchange_attr, *s_book_state, *s_trade_state, *s_refused, *s_stats,
    *s_publish_drops, *s_topic, *s_timestamp_attr, *s_receipt_attr, *s_side_attr, *s_trade_id_attr, *s_symbol_attr;

#define SLOT(obj, off) (*(PyObject **)((char *)(obj) + (off)))

static PyObject *
pipe_fallback(PyObject *fn, PyObject *self, PyObject *const *args, Py_ssize_t nargs)
{
    PyObject *stack[8];
    if (!fn || nargs > 7) {
        PyErr_SetString(PyExc_RuntimeError, "_features: bind_pipeline() was not called");
        return NULL;
    }
    stack[0] = self;
    for (Py_ssize_t i = 0; i < nargs; i++)
        stack[i + 1] = args[i];
    return PyObject_Vectorcall(fn, stack, nargs + 1, NULL);
}

/* book.top_bids(n) / top_asks(n); a SnapshotBook holding its decoded lists: their first n, as its
 * Python method gives them, without calling it. */
static PyObject *
top_of(PyObject *book, PyObject *name, Py_ssize_t off, PyObject *n, Py_ssize_t nn)
{
    if (snap_type && Py_IS_TYPE(book, snap_type)) {
        PyObject *l = SLOT(book, off);
        if (l && PyList_CheckExact(l))
            return PyList_GetSlice(l, 0, nn);
    }
    PyObject *call[2] = {book, n};
    return PyObject_VectorcallMethod(name, call, 2 | PY_VECTORCALL_ARGUMENTS_OFFSET, NULL);
}

/* feed.stats.publish_drops += 1 */
static int
count_drop(PyObject *feed)
{
    PyObject *stats = PyObject_GetAttr(feed, s_stats);
    PyObject *old = stats ? PyObject_GetAttr(stats, s_publish_drops) : NULL;
    PyObject *one = old ? PyLong_FromLong(1) : NULL;
    PyObject *sum = one ? PyNumber_Add(old, one) : NULL;
    int rc = sum ? PyObject_SetAttr(stats, s_publish_drops, sum) : -1;
    Py_XDECREF(stats);
    Py_XDECREF(old);
    Py_XDECREF(one);
    Py_XDECREF(sum);
    return rc;
}

/* emit(topic, msg); a False result is a dropped message. */
static PyObject *
emit(PyObject *fn, PyObject *st, PyObject *msg, PyObject *feed)
{
    if (!fn) {
        PyErr_SetString(PyExc_AttributeError, "emit");
        return NULL;
    }
    PyObject *topic = Py_IS_TYPE(st, &TopicType) ? Py_XNewRef(((Topic *)st)->topic) : PyObject_GetAttr(st, s_topic);
    if (!topic)
        return NULL;
    PyObject *call[2] = {topic, msg};
    Py_INCREF(fn); /* held through the call, as Python holds it: the emitter may be replaced meanwhile */
    PyObject *r = PyObject_Vectorcall(fn, call, 2, NULL);
    Py_DECREF(fn);
    Py_DECREF(topic);
    if (!r)
        return NULL;
    int dropped = r == Py_False;
    Py_DECREF(r);
    if (dropped && count_drop(feed) < 0)
        return NULL;
    Py_RETURN_NONE;
}

/* The topic state of (feed.exchange, symbol) in states, made by self.<make>(exchange, symbol) the
 * first time. New reference. */
static PyObject *
state_of(PyObject *self, PyObject *states, PyObject *make, PyObject *feed, PyObject *symbol)
{
    PyObject *exchange = PyObject_GetAttr(feed, s_exchange_attr);
    if (!exchange)
        return NULL;
#if STATE_CACHE
    /* STATE_WAYS entries from a hashed start: topics whose start collides share it, not evict each
     * other on every message (two topics on one entry missed a quarter of the messages) */
    StateEntry *cache = ((PipelineCore *)self)->cache, *e = NULL;
    if (!PyDict_CheckExact(states))
        goto lookup;
    uint64_t version = ((PyDictObject *)states)->ma_version_tag;
    size_t start = (size_t)((((uintptr_t)symbol >> 4) ^ ((uintptr_t)exchange >> 4) * 31 ^ ((uintptr_t)states >> 4) * 17) *
                            0x9E3779B97F4A7C15ULL >> 58) % STATE_CACHE;
    for (int w = 0; w < STATE_WAYS; w++) {
        StateEntry *c = &cache[(start + w) % STATE_CACHE];
        if (c->symbol == symbol && c->exchange == exchange && c->states == states) {
            if (c->version == version) {
                Py_DECREF(exchange);
                return Py_NewRef(c->st);
            }
            e = c; /* this topic's entry, out of date: renewed below */
            break;
        }
        if (!e && (!c->states || (c->states == states && c->version != version)))
            e = c; /* free, or out of date (this dict changed since): taken before a live one */
    }
    if (!e) /* every way live: take them in turn */
        e = &cache[(start + ((PipelineCore *)self)->cache_turn++ % STATE_WAYS) % STATE_CACHE];
lookup:;
#endif
    PyObject *key = PyTuple_Pack(2, exchange, symbol), *st = NULL;
    if (key) {
        st = Py_XNewRef(PyDict_GetItemWithError(states, key));
        if (!st && !PyErr_Occurred())
            st = PyObject_CallMethodObjArgs(self, make, exchange, symbol, NULL);
        Py_DECREF(key);
    }
#if STATE_CACHE
    /* kept only for what states itself holds under the key (make adds it: look again, no code runs) */
    if (st && e && (key = PyTuple_Pack(2, exchange, symbol))) {
        PyObject *held = PyDict_GetItemWithError(states, key);
        Py_DECREF(key);
        if (held == st) {
            PyObject *old_x = e->exchange, *old_s = e->symbol;
            e->exchange = Py_NewRef(exchange);
            e->symbol = Py_NewRef(symbol);
            e->states = states;
            e->st = st;
            e->version = ((PyDictObject *)states)->ma_version_tag;
            Py_XDECREF(old_x); /* released last: freeing can run code */
            Py_XDECREF(old_s);
        }
        else if (!held && PyErr_Occurred()) {
            Py_DECREF(st);
            st = NULL;
        }
    }
#endif
    Py_DECREF(exchange);
    return st;
}

/* on_book(feed, symbol, book, timestamp_ns, receipt_ns): see pipeline._PipelineCorePy.on_book. */
static PyObject *
Pipe_on_book(PipelineCore *self, PyObject *const *args, Py_ssize_t nargs)
{
    Py_ssize_t nn;
    if (nargs != 5 || !self->depth_levels || !PyLong_CheckExact(self->depth_levels) || !self->books ||
        !PyDict_CheckExact(self->books) || (nn = PyLong_AsSsize_t(self->depth_levels)) < 0) {
        if (PyErr_Occurred())
            PyErr_Clear();
        return pipe_fallback(py_pipe_book, (PyObject *)self, args, nargs);
    }
    PyObject *feed = args[0], *symbol = args[1], *book = args[2], *n = Py_NewRef(self->depth_levels);
    PyObject *bids = top_of(book, s_top_bids, o_snap_bids, n, nn), *asks = NULL, *st = NULL, *msg = NULL, *ret = NULL;
    if (!bids)
        goto done;
    int have = PyList_CheckExact(bids) ? PyList_GET_SIZE(bids) > 0 : PyObject_IsTrue(bids);
    if (have <= 0) {
        if (!have)
            ret = Py_NewRef(Py_None); /* no book message while a side is empty */
        goto done;
    }
    asks = top_of(book, s_top_asks, o_snap_asks, n, nn);
    if (!asks)
        goto done;
    have = PyList_CheckExact(asks) ? PyList_GET_SIZE(asks) > 0 : PyObject_IsTrue(asks);
    if (have <= 0) {
        if (!have)
            ret = Py_NewRef(Py_None);
        goto done;
    }
    if (!(st = state_of((PyObject *)self, self->books, s_book_state, feed, symbol)))
        goto done;
    PyObject *bargs[4] = {bids, asks, args[3], args[4]};
    msg = Py_IS_TYPE(st, &TopicType) ? Topic_book((Topic *)st, bargs, 4)
                                     : PyObject_VectorcallMethod(k_book_method, (PyObject *[]){st, bids, asks, args[3], args[4]},
                                                                 5 | PY_VECTORCALL_ARGUMENTS_OFFSET, NULL);
    if (!msg)
        goto done;
    if (msg == Py_None) {
        Py_DECREF(msg);
        msg = PyObject_CallMethodObjArgs((PyObject *)self, s_refused, feed, st, symbol, bids, asks, args[3], args[4],
                                         NULL);
        if (!msg)
            goto done;
        if (msg == Py_None) {
            ret = msg;
            msg = NULL;
            goto done;
        }
    }
    ret = emit(self->emit_book, st, msg, feed);
    if (ret && Py_IS_TYPE(st, &TopicType))
        spare_release_levels((Topic *)st);
done:
    Py_DECREF(n);
    Py_XDECREF(bids);
    Py_XDECREF(asks);
    Py_XDECREF(st);
    Py_XDECREF(msg);
    return ret;
}

/* on_trade(feed, trade): see pipeline._PipelineCorePy.on_trade. */
/* types.Trade (bind_trade) and its slots: a trade's fields read at their offsets, not by name. */
static PyTypeObject *trade_type;
enum { TF_SYMBOL, TF_TS, TF_RECEIPT, TF_SIDE, TF_ID, TF_PRICE, TF_AMOUNT, TF_N };
static Py_ssize_t tf_off[TF_N];

/* A field of a trade: at its slot for a types.Trade, else by name (a new reference, or NULL). */
static inline PyObject *
trade_field(PyObject *trade, int i, PyObject *name)
{
    PyObject *v;
    if (trade_type && Py_IS_TYPE(trade, trade_type) && (v = SLOT(trade, tf_off[i])))
        return Py_NewRef(v);
    return PyObject_GetAttr(trade, name);
}

static PyObject *
Pipe_on_trade(PipelineCore *self, PyObject *const *args, Py_ssize_t nargs)
{
    PyObject *price = NULL, *amount = NULL;
    if (nargs == 2 && self->trades && PyDict_CheckExact(self->trades)) {
        price = trade_field(args[1], TF_PRICE, k_price);
        amount = price ? trade_field(args[1], TF_AMOUNT, k_amount) : NULL;
    }
    if (!amount || !PyFloat_CheckExact(price) || !PyFloat_CheckExact(amount) || !(PyFloat_AS_DOUBLE(price) > 0.0) ||
        !(PyFloat_AS_DOUBLE(amount) > 0.0)) {
        Py_XDECREF(price);
        Py_XDECREF(amount);
        if (PyErr_Occurred())
            PyErr_Clear();
        return pipe_fallback(py_pipe_trade, (PyObject *)self, args, nargs);
    }
    PyObject *feed = args[0], *trade = args[1], *ret = NULL, *st = NULL, *msg = NULL;
    PyObject *f[5] = {NULL, NULL, NULL, NULL, NULL}; /* symbol, timestamp_ns, receipt_ns, side, trade_id */
    PyObject *names[5] = {s_symbol_attr, s_timestamp_attr, s_receipt_attr, s_side_attr, s_trade_id_attr};
    /* read in the Python's order: the symbol, the topic state (made the first time), the rest */
    if (!(f[0] = trade_field(trade, TF_SYMBOL, names[0])) ||
        !(st = state_of((PyObject *)self, self->trades, s_trade_state, feed, f[0])))
        goto done;
    for (int i = 1; i < 5; i++)
        if (!(f[i] = trade_field(trade, i, names[i])))
            goto done;
    PyObject *targs[6] = {f[1], f[2], price, amount, f[3], f[4]};
    msg = Py_IS_TYPE(st, &TopicType)
              ? Topic_trade((Topic *)st, targs, 6)
              : PyObject_VectorcallMethod(k_trade_method, (PyObject *[]){st, f[1], f[2], price, amount, f[3], f[4]},
                                          7 | PY_VECTORCALL_ARGUMENTS_OFFSET, NULL);
    if (msg)
        ret = emit(self->emit_trade, st, msg, feed);
done:
    for (int i = 0; i < 5; i++)
        Py_XDECREF(f[i]);
    Py_DECREF(price);
    Py_DECREF(amount);
    Py_XDECREF(st);
    Py_XDECREF(msg);
    return ret;
}

static int
Pipe_traverse(PipelineCore *self, visitproc visit, void *arg)
{
    Py_VISIT(self->depth_levels);
    Py_VISIT(self->books);
    Py_VISIT(self->trades);
    Py_VISIT(self->emit_book);
    Py_VISIT(self->emit_trade);
    return 0;
}

static int
Pipe_clear(PipelineCore *self)
{
#if STATE_CACHE
    for (int i = 0; i < STATE_CACHE; i++) {
        self->cache[i].states = NULL;
        Py_CLEAR(self->cache[i].exchange);
        Py_CLEAR(self->cache[i].symbol);
    }
#endif
    Py_CLEAR(self->depth_levels);
    Py_CLEAR(self->books);
    Py_CLEAR(self->trades);
    Py_CLEAR(self->emit_book);
    Py_CLEAR(self->emit_trade);
    return 0;
}

static void
Pipe_dealloc(PipelineCore *self)
{
    PyObject_GC_UnTrack(self);
    Pipe_clear(self);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

static PyMemberDef Pipe_members[] = {
    {"depth_levels", T_OBJECT_EX, offsetof(PipelineCore, depth_levels), 0, "Levels per side in a book message."},
    {"_books", T_OBJECT_EX, offsetof(PipelineCore, books), 0, NULL},
    {"_trades", T_OBJECT_EX, offsetof(PipelineCore, trades), 0, NULL},
    {"emit_book", T_OBJECT_EX, offsetof(PipelineCore, emit_book), 0, "emit(topic, message) for books."},
    {"emit_trade", T_OBJECT_EX, offsetof(PipelineCore, emit_trade), 0, "emit(topic, message) for trades."},
    {NULL},
};

static PyMethodDef Pipe_methods[] = {
    {"on_book", (PyCFunction)(void (*)(void))Pipe_on_book, METH_FASTCALL,
     "on_book(feed, symbol, book, timestamp_ns, receipt_ns) (see pipeline._PipelineCorePy)"},
    {"on_trade", (PyCFunction)(void (*)(void))Pipe_on_trade, METH_FASTCALL,
     "on_trade(feed, trade) (see pipeline._PipelineCorePy)"},
    {NULL},
};

static PyTypeObject PipeType = {
    PyVarObject_HEAD_INIT(NULL, 0).tp_name = "latentspeed_core._features.PipelineCore",
    .tp_basicsize = sizeof(PipelineCore),
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_BASETYPE | Py_TPFLAGS_HAVE_GC,
    .tp_doc = "The Pipeline's FeedSink entry points and the state they touch (pipeline.Pipeline's base).",
    .tp_dealloc = (destructor)Pipe_dealloc,
    .tp_traverse = (traverseproc)Pipe_traverse,
    .tp_clear = (inquiry)Pipe_clear,
    .tp_new = PyType_GenericNew,
    .tp_methods = Pipe_methods,
    .tp_members = Pipe_members,
};

static int
snap_slot(PyTypeObject *t, const char *name, Py_ssize_t *off)
{
    PyObject *d = PyObject_GetAttrString((PyObject *)t, name);
    if (!d)
        return -1;
    int ok = Py_IS_TYPE(d, &PyMemberDescr_Type) && ((PyMemberDescrObject *)d)->d_member->type == T_OBJECT_EX;
    if (ok)
        *off = ((PyMemberDescrObject *)d)->d_member->offset;
    Py_DECREF(d);
    if (!ok)
        PyErr_Format(PyExc_TypeError, "%s.%s is not a __slots__ member", t->tp_name, name);
    return ok ? 0 : -1;
}

/* bind_pipeline(on_book, on_trade, SnapshotBook): the Python rule, and the book type whose lists
 * on_book reads itself. */
static PyObject *
bind_pipeline(PyObject *mod, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 3 || !PyType_Check(args[2])) {
        PyErr_SetString(PyExc_TypeError, "bind_pipeline(on_book, on_trade, SnapshotBook)");
        return NULL;
    }
    PyTypeObject *t = (PyTypeObject *)args[2];
    if (snap_slot(t, "_snap_bids", &o_snap_bids) < 0 || snap_slot(t, "_snap_asks", &o_snap_asks) < 0)
        return NULL;
    Py_XSETREF(py_pipe_book, Py_NewRef(args[0]));
    Py_XSETREF(py_pipe_trade, Py_NewRef(args[1]));
    Py_XSETREF(snap_type, (PyTypeObject *)Py_NewRef(t));
    Py_RETURN_NONE;
}

/* bind_trade(Trade): the class whose fields on_trade reads at their slots. */
static PyObject *
bind_trade(PyObject *mod, PyObject *t)
{
    static const char *names[TF_N] = {"symbol", "timestamp_ns", "receipt_ns", "side", "trade_id", "price", "amount"};
    if (!PyType_Check(t)) {
        PyErr_SetString(PyExc_TypeError, "bind_trade(Trade)");
        return NULL;
    }
    for (int i = 0; i < TF_N; i++)
        if (snap_slot((PyTypeObject *)t, names[i], &tf_off[i]) < 0)
            return NULL;
    Py_XSETREF(trade_type, (PyTypeObject *)Py_NewRef(t));
    Py_RETURN_NONE;
}

static PyMethodDef methods[] = {
    {"fsum", (PyCFunction)py_exact_sum, METH_O,
     "fsum(floats): math.fsum's answer, as the updaters re-anchor their sums (for tests)"},
    {"top_of_book", make_top_of_book, METH_NOARGS, "midpoint, relative_spread, breadth, imbalance_lvl1"},
    {"depth", make_depth, METH_NOARGS, "bid_depth_n, ask_depth_n, depth_n"},
    {"volatility", make_volatility, METH_VARARGS, "volatility(window, source, field)"},
    {"ofi", make_ofi, METH_O, "ofi(window): ofi_rolling"},
    {"trade_value", make_trade_value, METH_NOARGS, "transaction_price, trading_volume"},
    {"bind_pipeline", (PyCFunction)(void (*)(void))bind_pipeline, METH_FASTCALL,
     "bind_pipeline(on_book, on_trade, SnapshotBook): what PipelineCore falls back to and reads"},
    {"bind_trade", bind_trade, METH_O, "bind_trade(Trade): the class whose fields on_trade reads at their slots"},
    {NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "latentspeed_core._features", "Compiled standard feature updaters.", -1, methods,
};

PyMODINIT_FUNC
PyInit__features(void)
{
    if (PyType_Ready(&UpdaterType) < 0 || PyType_Ready(&TopicType) < 0 || PyType_Ready(&PipeType) < 0)
        return NULL;
    PyObject *math = PyImport_ImportModule("math");
    if (!math)
        return NULL;
    fsum_fn = PyObject_GetAttrString(math, "fsum");
    Py_DECREF(math);
    if (!fsum_fn)
        return NULL;
#define KEY(name)                                         \
    if (!(k_##name = PyUnicode_InternFromString(#name))) \
        return NULL;
    KEY(bids)
    KEY(asks)
    KEY(midpoint)
    KEY(relative_spread)
    KEY(breadth)
    KEY(imbalance_lvl1)
    KEY(bid_depth_n)
    KEY(ask_depth_n)
    KEY(depth_n)
    KEY(ofi_rolling)
    KEY(price)
    KEY(amount)
    KEY(transaction_price)
    KEY(trading_volume)
    KEY(exchange)
    KEY(symbol)
    KEY(timestamp_ns)
    KEY(receipt_timestamp_ns)
    KEY(seq)
    KEY(side)
    KEY(trade_id)
    KEY(window_size)
    KEY(schema_version)
#undef KEY
#if MSG_SPARES
    in_place = check_layout();
#endif
    struct {
        PyObject **s;
        const char *v;
    } names[] = {
        {&s_top_bids, "top_bids"},   {&s_top_asks, "top_asks"},         {&s_exchange_attr, "exchange"},
        {&s_book_state, "_book_state"}, {&s_trade_state, "_trade_state"}, {&s_refused, "_refused"},
        {&s_stats, "stats"},         {&s_publish_drops, "publish_drops"}, {&s_topic, "topic"},
        {&s_timestamp_attr, "timestamp_ns"}, {&s_receipt_attr, "receipt_ns"}, {&s_side_attr, "side"},
        {&s_trade_id_attr, "trade_id"}, {&s_symbol_attr, "symbol"},   {&k_book_method, "book"},
        {&k_trade_method, "trade"},
    };
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
        if (!(*names[i].s = PyUnicode_InternFromString(names[i].v)))
            return NULL;
    PyObject *m = PyModule_Create(&module);
    if (!m)
        return NULL;
#if MSG_SPARES
    int values_in_place = in_place;
#else
    int values_in_place = 0;
#endif
    if (PyModule_AddObjectRef(m, "Topic", (PyObject *)&TopicType) < 0 ||
        PyModule_AddObjectRef(m, "PipelineCore", (PyObject *)&PipeType) < 0 ||
        PyModule_AddObjectRef(m, "VALUES_IN_PLACE", values_in_place ? Py_True : Py_False) < 0) {
        Py_DECREF(m);
        return NULL;
    }
    return m;
}
