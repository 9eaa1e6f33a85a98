/* BinanceFeed.on_frame's fast path in C: the usual depth update and trade, with no Python frame.
 *
 * route(feed, on_frame, scan, scan_args, SymbolState, new_trade, exchange) -> fn(data, receipt_ns). It does what
 * on_frame's first branch does (the frame read by the core's scan_book_frame, the market's sequencing
 * rule, the book changed by apply_parsed, the book or trade handed to the sink), the same effects in the
 * same order. Every frame that branch would not take, and every gap, goes to on_frame before anything
 * is changed: on_frame owns buffering, resynchronisation and every error rule. (A crossed book after
 * an update resynchronises by calling feed.resync, as on_frame does.) The feed's attributes are read on
 * every call: at their __slots__ offsets when the feed's class keeps them there, else by name. */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <structmember.h>
#include <math.h>

enum { F_STREAM, F_E, F_S, F_U, F_LU, F_EV, F_T, F_PU, F_TID, F_P, F_Q, F_M, F_A, F_LEVELS, F_N };
enum { ST_SYMBOL, ST_BOOK, ST_SYNCED, ST_FIRST, ST_LAST_U, ST_N };
static const char *st_names[ST_N] = {"symbol", "book", "synced", "first", "last_u"};

/* The feed's attributes read on every frame */
enum { FA_SINK, FA_STATS, FA_SYMS, FA_USDM, FA_N };
static const char *fa_names[FA_N] = {"sink", "stats", "_syms", "usdm"};

typedef struct {
    PyObject_HEAD
    PyObject *feed, *on_frame, *scan, *scan_args, *state_type, *new_trade, *exchange;
    PyTypeObject *stats_type; /* FeedStats, when its counters are slots */
    PyTypeObject *feed_type;  /* the feed's class when the route was made, and its slots' offsets */
    Py_ssize_t st_off[ST_N], off_books, off_trades, fa_off[FA_N];
    vectorcallfunc vectorcall;
} Route;

static PyObject *s_syms, *s_usdm, *s_stats, *s_sink, *s_books, *s_trades, *s_on_book, *s_on_trade, *s_resync,
    *s_apply_parsed, *s_is_crossed, *s_depth, *s_buy, *s_sell, *one, *million;

#define SLOT(o, off) (*(PyObject **)((char *)(o) + (off)))

/* feed.<fa_names[i]> (a new reference): at its slot while the feed is of the class the route was
 * made for (a slot not set: by name, which raises as Python would), else by name. */
static inline PyObject *
feed_attr(Route *self, int i, PyObject *name)
{
    PyObject *v;
    if (Py_IS_TYPE(self->feed, self->feed_type) && self->fa_off[i] >= 0 && (v = SLOT(self->feed, self->fa_off[i])))
        return Py_NewRef(v);
    return PyObject_GetAttr(self->feed, name);
}

/* feed.stats.<name> += 1: at the slot of a FeedStats (the type the feed had when the route was made,
 * a dataclass with slots), else by name. */
static int
count_stat(Route *self, PyObject *name, PyTypeObject *type, Py_ssize_t off)
{
    PyObject *stats = feed_attr(self, FA_STATS, s_stats), *v, *w;
    if (!stats)
        return -1;
    int rc = -1;
    if (type && Py_IS_TYPE(stats, type) && (v = SLOT(stats, off)) && PyLong_CheckExact(v)) {
        if ((w = PyNumber_Add(v, one))) {
            Py_SETREF(SLOT(stats, off), w);
            rc = 0;
        }
    }
    else if ((v = PyObject_GetAttr(stats, name))) {
        if ((w = PyNumber_Add(v, one))) {
            rc = PyObject_SetAttr(stats, name, w);
            Py_DECREF(w);
        }
        Py_DECREF(v);
    }
    Py_DECREF(stats);
    return rc;
}

/* The offset of a __slots__ member of t, or -1 (no error) when it is not one. */
static Py_ssize_t
slot_offset(PyTypeObject *t, const char *name)
{
    PyObject *d = PyObject_GetAttrString((PyObject *)t, name);
    Py_ssize_t off = -1;
    if (d && Py_IS_TYPE(d, &PyMemberDescr_Type) && ((PyMemberDescrObject *)d)->d_member->type == T_OBJECT_EX)
        off = ((PyMemberDescrObject *)d)->d_member->offset;
    Py_XDECREF(d);
    PyErr_Clear();
    return off;
}

/* str(v) of an int that fits int64, written here (CPython's general conversion costs ~5x more). */
static PyObject *
int_str(PyObject *v)
{
    int over;
    long long x = PyLong_AsLongLongAndOverflow(v, &over);
    if (over || x < 0)
        return PyObject_Str(v);
    char buf[24], *e = buf + sizeof buf, *p = e;
    do
        *--p = (char)('0' + x % 10);
    while (x /= 10);
    PyObject *s = PyUnicode_New(e - p, 127);
    if (s)
        memcpy(PyUnicode_1BYTE_DATA(s), p, (size_t)(e - p));
    return s;
}

static inline int
int_or_none(PyObject *o)
{
    return o == Py_None || PyLong_CheckExact(o);
}

/* The value of a Python int that fits int64, else 0 with *ok cleared. */
static inline long long
as_ll(PyObject *o, int *ok)
{
    int over;
    long long v = PyLong_AsLongLongAndOverflow(o, &over);
    if (over || (v == -1 && PyErr_Occurred())) {
        PyErr_Clear();
        *ok = 0;
    }
    return v;
}

enum { PYTHON = 1, DONE = 0, ERROR = -1 };

/* A synchronised book's depth update: _apply_seq, then the publication. */
static int
depth(Route *self, PyObject *feed, PyObject *st, PyObject **f, PyObject *receipt_ns)
{
    PyObject *book = SLOT(st, self->st_off[ST_BOOK]), *last_o = SLOT(st, self->st_off[ST_LAST_U]);
    PyObject *first = SLOT(st, self->st_off[ST_FIRST]);
    if (!book || !last_o || !first || !PyLong_CheckExact(last_o) || !PyBool_Check(first))
        return PYTHON;
    int ok = 1;
    long long U = as_ll(f[F_U], &ok), u = as_ll(f[F_LU], &ok), last = as_ll(last_o, &ok);
    long long pu = f[F_PU] == Py_None ? -1 : as_ll(f[F_PU], &ok);
    if (!ok || last == LLONG_MAX || last == LLONG_MIN)
        return PYTHON;
    PyObject *usdm_o = feed_attr(self, FA_USDM, s_usdm);
    if (!usdm_o)
        return ERROR;
    int usdm = PyObject_IsTrue(usdm_o);
    Py_DECREF(usdm_o);
    if (usdm < 0)
        return ERROR;
    int unfirst = 0;
    if (usdm) {
        if (first == Py_True) {
            if (u < last) /* USD-M: drop events with u < lastUpdateId */
                return DONE;
            if (U > last) /* the first processed event must have U <= lastUpdateId <= u: a gap */
                return PYTHON;
            unfirst = 1;
        }
        else if (pu != last) /* USD-M: every event's pu equals the previous event's u */
            return PYTHON;
    }
    else {
        if (u <= last) /* spot: u <= the book's update id: ignore */
            return DONE;
        if (U > last + 1) /* spot: a gap */
            return PYTHON;
    }
    if (unfirst)
        Py_XSETREF(SLOT(st, self->st_off[ST_FIRST]), Py_NewRef(Py_False));
    Py_INCREF(book);
    int rc = ERROR;
    PyObject *r = PyObject_VectorcallMethod(s_apply_parsed, (PyObject *[]){book, f[F_LEVELS]},
                                            2 | PY_VECTORCALL_ARGUMENTS_OFFSET, NULL);
    if (!r)
        goto out;
    Py_DECREF(r);
    Py_XSETREF(SLOT(st, self->st_off[ST_LAST_U]), Py_NewRef(f[F_LU]));
    PyObject *crossed = PyObject_VectorcallMethod(s_is_crossed, &book, 1 | PY_VECTORCALL_ARGUMENTS_OFFSET, NULL);
    int c = crossed ? PyObject_IsTrue(crossed) : -1;
    Py_XDECREF(crossed);
    if (c < 0)
        goto out;
    PyObject *symbol = SLOT(st, self->st_off[ST_SYMBOL]);
    if (!symbol) {
        PyErr_SetString(PyExc_AttributeError, "symbol");
        goto out;
    }
    Py_INCREF(symbol);
    if (c) {
        PyObject *reason = PyUnicode_FromFormat("crossed book after update u %S", f[F_LU]);
        r = reason ? PyObject_CallMethodObjArgs(feed, s_resync, symbol, reason, NULL) : NULL;
        Py_XDECREF(reason);
        Py_XDECREF(r);
        rc = r ? DONE : ERROR;
    }
    else if (count_stat(self, s_books, self->stats_type, self->off_books) == 0) {
        PyObject *sink = feed_attr(self, FA_SINK, s_sink);
        if (sink && sink != Py_None) {
            /* event time: T where given (USD-M), else E; ms -> ns */
            PyObject *t = PyObject_IsTrue(f[F_T]) > 0 ? f[F_T] : PyObject_IsTrue(f[F_EV]) > 0 ? f[F_EV] : NULL;
            PyObject *ts = t ? PyNumber_Multiply(t, million) : PyLong_FromLong(0);
            if (ts) {
                r = PyObject_VectorcallMethod(s_on_book, (PyObject *[]){sink, feed, symbol, book, ts, receipt_ns},
                                              6 | PY_VECTORCALL_ARGUMENTS_OFFSET, NULL);
                Py_DECREF(ts);
                Py_XDECREF(r);
                rc = r ? DONE : ERROR;
            }
        }
        else if (sink)
            rc = DONE;
        Py_XDECREF(sink);
    }
    Py_DECREF(symbol);
out:
    Py_DECREF(book);
    return rc;
}

/* A trade or aggTrade: parse_trade of what decode_combined gives, then the publication. */
static int
trade(Route *self, PyObject *feed, PyObject *st, PyObject **f, PyObject *receipt_ns)
{
    PyObject *tid = PyUnicode_CompareWithASCIIString(f[F_E], "trade") == 0 ? f[F_TID] : f[F_A];
    PyObject *p = f[F_P], *q = f[F_Q], *T = f[F_T];
    if (!PyLong_CheckExact(tid) || !PyLong_CheckExact(T) || !PyBool_Check(f[F_M]) || !PyFloat_CheckExact(p) ||
        !PyFloat_CheckExact(q))
        return PYTHON;
    double pv = PyFloat_AS_DOUBLE(p), qv = PyFloat_AS_DOUBLE(q);
    if (!(0.0 < pv && pv < INFINITY && 0.0 < qv && qv < INFINITY))
        return PYTHON;
    PyObject *symbol = SLOT(st, self->st_off[ST_SYMBOL]);
    if (!symbol)
        return PYTHON;
    Py_INCREF(symbol);
    int rc = ERROR;
    PyObject *sink = NULL, *ts = NULL, *id = NULL, *tr = NULL, *r = NULL;
    if (count_stat(self, s_trades, self->stats_type, self->off_trades) < 0 || !(sink = feed_attr(self, FA_SINK, s_sink)))
        goto out;
    if (sink == Py_None) {
        rc = DONE;
        goto out;
    }
    if (!(ts = PyNumber_Multiply(T, million)) || !(id = int_str(tid)))
        goto out;
    PyObject *targs[8] = {self->exchange, symbol, ts, receipt_ns, p, q, f[F_M] == Py_True ? s_sell : s_buy, id};
    if (!(tr = PyObject_Vectorcall(self->new_trade, targs, 8, NULL)))
        goto out;
    r = PyObject_VectorcallMethod(s_on_trade, (PyObject *[]){sink, feed, tr}, 3 | PY_VECTORCALL_ARGUMENTS_OFFSET, NULL);
    if (r)
        rc = DONE;
out:
    Py_XDECREF(r);
    Py_XDECREF(tr);
    Py_XDECREF(id);
    Py_XDECREF(ts);
    Py_XDECREF(sink);
    Py_DECREF(symbol);
    return rc;
}

static PyObject *
route_call(Route *self, PyObject *const *args, size_t nargsf, PyObject *kwnames)
{
    Py_ssize_t nargs = PyVectorcall_NARGS(nargsf);
    if (kwnames || nargs != 2 || !PyTuple_CheckExact(self->scan_args))
        return PyObject_Vectorcall(self->on_frame, args, nargsf, kwnames);
    PyObject *feed = self->feed, *scanned = NULL, *syms = NULL, *st;
    Py_ssize_t na = PyTuple_GET_SIZE(self->scan_args);
    PyObject *call[8];
    if (na > 7)
        return PyObject_Vectorcall(self->on_frame, args, nargsf, kwnames);
    call[0] = args[0];
    for (Py_ssize_t i = 0; i < na; i++)
        call[1 + i] = PyTuple_GET_ITEM(self->scan_args, i);
    int rc = PYTHON;
    if (!(scanned = PyObject_Vectorcall(self->scan, call, 1 + na, NULL)))
        return NULL;
    if (!PyTuple_CheckExact(scanned) || PyTuple_GET_SIZE(scanned) != F_N)
        goto done;
    PyObject **f = &PyTuple_GET_ITEM(scanned, 0);
    if (!(syms = feed_attr(self, FA_SYMS, s_syms))) {
        rc = ERROR;
        goto done;
    }
    if (!PyDict_CheckExact(syms) || !PyUnicode_CheckExact(f[F_STREAM]) || !PyUnicode_CheckExact(f[F_E]))
        goto done;
    if (!(st = PyDict_GetItemWithError(syms, f[F_S]))) {
        rc = PyErr_Occurred() ? ERROR : PYTHON;
        goto done;
    }
    if (!Py_IS_TYPE(st, (PyTypeObject *)self->state_type))
        goto done;
    Py_INCREF(st);
    if (PyUnicode_Compare(f[F_E], s_depth) == 0) {
        if (SLOT(st, self->st_off[ST_SYNCED]) == Py_True && f[F_LEVELS] != Py_None && PyLong_CheckExact(f[F_U]) &&
            PyLong_CheckExact(f[F_LU]) && int_or_none(f[F_EV]) && int_or_none(f[F_T]) && int_or_none(f[F_PU]))
            rc = depth(self, feed, st, f, args[1]);
    }
    else
        rc = trade(self, feed, st, f, args[1]);
    Py_DECREF(st);
done:
    Py_XDECREF(syms);
    Py_DECREF(scanned);
    if (rc == ERROR)
        return NULL;
    if (rc == PYTHON)
        return PyObject_Vectorcall(self->on_frame, args, nargsf, kwnames);
    Py_RETURN_NONE;
}

static void
route_dealloc(Route *self)
{
    PyObject_GC_UnTrack(self);
    Py_CLEAR(self->feed);
    Py_CLEAR(self->on_frame);
    Py_CLEAR(self->scan);
    Py_CLEAR(self->scan_args);
    Py_CLEAR(self->state_type);
    Py_CLEAR(self->new_trade);
    Py_CLEAR(self->exchange);
    Py_CLEAR(self->stats_type);
    Py_CLEAR(self->feed_type);
    PyObject_GC_Del(self);
}

static int
route_traverse(Route *self, visitproc visit, void *arg)
{
    Py_VISIT(self->feed);
    Py_VISIT(self->on_frame);
    Py_VISIT(self->scan);
    Py_VISIT(self->scan_args);
    Py_VISIT(self->state_type);
    Py_VISIT(self->new_trade);
    Py_VISIT(self->exchange);
    Py_VISIT(self->stats_type);
    Py_VISIT(self->feed_type);
    return 0;
}

static PyMemberDef route_members[] = {
    {"feed", T_OBJECT, offsetof(Route, feed), READONLY, NULL},
    {"on_frame", T_OBJECT, offsetof(Route, on_frame), READONLY, "what takes every other frame"},
    {NULL},
};

static PyTypeObject RouteType = {
    PyVarObject_HEAD_INIT(NULL, 0).tp_name = "latentspeed_exchange_binance._route.FrameRoute",
    .tp_basicsize = sizeof(Route),
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC | Py_TPFLAGS_HAVE_VECTORCALL,
    .tp_doc = "fn(data, receipt_ns): BinanceFeed.on_frame, its usual depth update and trade in C",
    .tp_dealloc = (destructor)route_dealloc,
    .tp_traverse = (traverseproc)route_traverse,
    .tp_call = PyVectorcall_Call,
    .tp_vectorcall_offset = offsetof(Route, vectorcall),
    .tp_members = route_members,
};

static PyObject *
route(PyObject *mod, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 7 || !PyTuple_CheckExact(args[3]) || !PyType_Check(args[4]) || !PyUnicode_CheckExact(args[6])) {
        PyErr_SetString(PyExc_TypeError, "route(feed, on_frame, scan, scan_args, SymbolState, new_trade, exchange)");
        return NULL;
    }
    Py_ssize_t off[ST_N];
    for (int i = 0; i < ST_N; i++)
        if ((off[i] = slot_offset((PyTypeObject *)args[4], st_names[i])) < 0)
            return PyErr_Format(PyExc_TypeError, "%R.%s is not a __slots__ member", args[4], st_names[i]);
    PyObject *stats = PyObject_GetAttr(args[0], s_stats);
    if (!stats)
        return NULL;
    PyTypeObject *stype = Py_TYPE(stats);
    Py_ssize_t ob = slot_offset(stype, "books"), ot = slot_offset(stype, "trades");
    Py_DECREF(stats);
    Route *r = PyObject_GC_New(Route, &RouteType);
    if (!r)
        return NULL;
    r->feed = Py_NewRef(args[0]);
    r->on_frame = Py_NewRef(args[1]);
    r->scan = Py_NewRef(args[2]);
    r->scan_args = Py_NewRef(args[3]);
    r->state_type = Py_NewRef(args[4]);
    r->new_trade = Py_NewRef(args[5]);
    r->exchange = Py_NewRef(args[6]);
    memcpy(r->st_off, off, sizeof off);
    r->stats_type = ob >= 0 && ot >= 0 ? (PyTypeObject *)Py_NewRef(stype) : NULL;
    r->off_books = ob;
    r->off_trades = ot;
    r->feed_type = (PyTypeObject *)Py_NewRef(Py_TYPE(args[0]));
    for (int i = 0; i < FA_N; i++)
        r->fa_off[i] = slot_offset(r->feed_type, fa_names[i]);
    r->vectorcall = (vectorcallfunc)route_call;
    PyObject_GC_Track(r);
    return (PyObject *)r;
}

static PyMethodDef methods[] = {
    {"route", (PyCFunction)(void (*)(void))route, METH_FASTCALL,
     "route(feed, on_frame, scan, scan_args, SymbolState, new_trade, exchange) -> fn(data, receipt_ns)"},
    {NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "latentspeed_exchange_binance._route", "BinanceFeed.on_frame's fast path in C.", -1,
    methods,
};

PyMODINIT_FUNC
PyInit__route(void)
{
    if (PyType_Ready(&RouteType) < 0)
        return NULL;
    if (!(one = PyLong_FromLong(1)) || !(million = PyLong_FromLong(1000000)))
        return NULL;
#define INTERN(var, text) \
    if (!(var = PyUnicode_InternFromString(text))) \
        return NULL;
    INTERN(s_syms, "_syms")
    INTERN(s_usdm, "usdm")
    INTERN(s_stats, "stats")
    INTERN(s_sink, "sink")
    INTERN(s_books, "books")
    INTERN(s_trades, "trades")
    INTERN(s_on_book, "on_book")
    INTERN(s_on_trade, "on_trade")
    INTERN(s_resync, "resync")
    INTERN(s_apply_parsed, "apply_parsed")
    INTERN(s_is_crossed, "is_crossed")
    INTERN(s_depth, "depthUpdate")
    INTERN(s_buy, "buy")
    INTERN(s_sell, "sell")
#undef INTERN
    return PyModule_Create(&module);
}
