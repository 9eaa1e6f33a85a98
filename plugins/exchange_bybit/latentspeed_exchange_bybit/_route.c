/* BybitFeed.on_frame's fast path in C: the usual orderbook message, with no Python frame.
 *
 * route(feed, on_frame, scan, scan_args, _BookState) -> fn(data, receipt_ns). For a snapshot, or a delta
 * that follows the last u, that on_frame's first branch reads (the core's scan_book_frame), it does what
 * on_frame and _on_book do, the same effects in the same order: load_parsed or apply_parsed, the crossed
 * check (feed.resync, as _on_book), the count, the publication. Gaps, stale deltas, deltas before a
 * snapshot and every other frame go to on_frame before anything is changed (the frame read again: they
 * are rare): it owns every other rule. The feed's attributes are read on every call: at their __slots__
 * offsets when the feed's class keeps them there, else by name. */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <structmember.h>

enum { F_TOPIC, F_KIND, F_TS, F_U, F_LEVELS, F_N };
enum { ST_SYMBOL, ST_BOOK, ST_LAST_U, ST_AWAITING, ST_N };
static const char *st_names[ST_N] = {"symbol", "book", "last_u", "awaiting_since"};

/* The feed's attributes read on every frame */
enum { FA_SINK, FA_STATS, FA_TOPICS, FA_N };
static const char *fa_names[FA_N] = {"sink", "stats", "_topics"};

typedef struct {
    PyObject_HEAD
    PyObject *feed, *on_frame, *scan, *scan_args, *state_type;
    PyTypeObject *stats_type; /* FeedStats, when its counters are slots */
    PyTypeObject *feed_type;  /* the feed's class when the route was made, and its slots' offsets */
    Py_ssize_t st_off[ST_N], off_books, fa_off[FA_N];
    vectorcallfunc vectorcall;
} Route;

static PyObject *s_topics, *s_stats, *s_sink, *s_books, *s_on_book, *s_resync, *s_apply_parsed, *s_load_parsed,
    *s_is_crossed, *s_best_bid, *s_best_ask, *s_delta, *s_snapshot, *one, *million;

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

static PyObject *
method0(PyObject *obj, PyObject *name)
{
    return PyObject_VectorcallMethod(name, &obj, 1 | PY_VECTORCALL_ARGUMENTS_OFFSET, NULL);
}

enum { PYTHON = 1, DONE = 0, ERROR = -1 };

/* The message's effects (the checks made): _on_book from the book's change on. */
static int
apply(Route *self, PyObject *feed, PyObject *st, PyObject *sink, PyObject **f, PyObject *receipt_ns, int snapshot)
{
    PyObject *book = Py_NewRef(SLOT(st, self->st_off[ST_BOOK])), *symbol = SLOT(st, self->st_off[ST_SYMBOL]);
    PyObject *r = NULL, *crossed = NULL, *ts = NULL, *bid = NULL, *ask = NULL, *reason = NULL;
    int rc = ERROR, c;
    Py_XINCREF(symbol);
    if (!(r = PyObject_VectorcallMethod(snapshot ? s_load_parsed : s_apply_parsed, (PyObject *[]){book, f[F_LEVELS]},
                                        2 | PY_VECTORCALL_ARGUMENTS_OFFSET, NULL)))
        goto out;
    Py_CLEAR(r);
    if (snapshot) /* a snapshot resets the book: no longer awaited */
        Py_XSETREF(SLOT(st, self->st_off[ST_AWAITING]), Py_NewRef(Py_None));
    Py_XSETREF(SLOT(st, self->st_off[ST_LAST_U]), Py_NewRef(f[F_U]));
    if (!(crossed = method0(book, s_is_crossed)) || (c = PyObject_IsTrue(crossed)) < 0)
        goto out;
    if (!symbol) {
        PyErr_SetString(PyExc_AttributeError, "symbol");
        goto out;
    }
    if (c) {
        if ((bid = method0(book, s_best_bid)) && (ask = method0(book, s_best_ask)) &&
            (reason = PyUnicode_FromFormat("crossed book bid=%S ask=%S at u=%S", bid, ask, f[F_U])) &&
            (r = PyObject_CallMethodObjArgs(feed, s_resync, symbol, reason, NULL)))
            rc = DONE;
        goto out;
    }
    if (count_stat(self, s_books, self->stats_type, self->off_books) < 0 || !(ts = PyNumber_Multiply(f[F_TS], million)))
        goto out;
    if ((r = PyObject_VectorcallMethod(s_on_book, (PyObject *[]){sink, feed, symbol, book, ts, receipt_ns},
                                       6 | PY_VECTORCALL_ARGUMENTS_OFFSET, NULL)))
        rc = DONE;
out:
    Py_XDECREF(r);
    Py_XDECREF(crossed);
    Py_XDECREF(ts);
    Py_XDECREF(bid);
    Py_XDECREF(ask);
    Py_XDECREF(reason);
    Py_XDECREF(symbol);
    Py_DECREF(book);
    return rc;
}

static PyObject *
route_call(Route *self, PyObject *const *args, size_t nargsf, PyObject *kwnames)
{
    Py_ssize_t nargs = PyVectorcall_NARGS(nargsf), na;
    if (kwnames || nargs != 2 || !PyTuple_CheckExact(self->scan_args) || (na = PyTuple_GET_SIZE(self->scan_args)) > 7)
        return PyObject_Vectorcall(self->on_frame, args, nargsf, kwnames);
    PyObject *call[8], *scanned, *topics = NULL, *sink = NULL, *st;
    call[0] = args[0];
    for (Py_ssize_t i = 0; i < na; i++)
        call[1 + i] = PyTuple_GET_ITEM(self->scan_args, i);
    if (!(scanned = PyObject_Vectorcall(self->scan, call, 1 + na, NULL)))
        return NULL;
    int rc = PYTHON;
    if (!PyTuple_CheckExact(scanned) || PyTuple_GET_SIZE(scanned) != F_N)
        goto done;
    PyObject **f = &PyTuple_GET_ITEM(scanned, 0);
    if (!PyUnicode_CheckExact(f[F_KIND]) || !PyLong_CheckExact(f[F_TS]) || !PyLong_CheckExact(f[F_U]) ||
        f[F_LEVELS] == Py_None)
        goto done;
    if (!(topics = feed_attr(self, FA_TOPICS, s_topics)) || !(sink = feed_attr(self, FA_SINK, s_sink))) {
        rc = ERROR;
        goto done;
    }
    if (!PyDict_CheckExact(topics) || sink == Py_None)
        goto done;
    if (!(st = PyDict_GetItemWithError(topics, f[F_TOPIC]))) {
        rc = PyErr_Occurred() ? ERROR : PYTHON;
        goto done;
    }
    if (!Py_IS_TYPE(st, (PyTypeObject *)self->state_type) || !SLOT(st, self->st_off[ST_BOOK]))
        goto done;
    int over, snapshot = PyUnicode_Compare(f[F_KIND], s_snapshot) == 0;
    long long u = PyLong_AsLongLongAndOverflow(f[F_U], &over);
    if (over)
        goto done;
    if (!snapshot && u != 1) { /* u == 1: the post-restart snapshot */
        PyObject *last = SLOT(st, self->st_off[ST_LAST_U]);
        if (PyUnicode_Compare(f[F_KIND], s_delta) != 0 || !last || !PyLong_CheckExact(last))
            goto done; /* another type, or no snapshot yet */
        long long l = PyLong_AsLongLongAndOverflow(last, &over);
        if (over || l == LLONG_MAX || u != l + 1)
            goto done; /* a gap or a stale delta */
    }
    Py_INCREF(st);
    rc = apply(self, self->feed, st, sink, f, args[1], snapshot || u == 1);
    Py_DECREF(st);
done:
    if (PyErr_Occurred() && rc == PYTHON)
        PyErr_Clear();
    Py_XDECREF(topics);
    Py_XDECREF(sink);
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
    PyVarObject_HEAD_INIT(NULL, 0).tp_name = "latentspeed_exchange_bybit._route.FrameRoute",
    .tp_basicsize = sizeof(Route),
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC | Py_TPFLAGS_HAVE_VECTORCALL,
    .tp_doc = "fn(data, receipt_ns): BybitFeed.on_frame, its usual orderbook delta in C",
    .tp_dealloc = (destructor)route_dealloc,
    .tp_traverse = (traverseproc)route_traverse,
    .tp_call = PyVectorcall_Call,
    .tp_vectorcall_offset = offsetof(Route, vectorcall),
    .tp_members = route_members,
};

static PyObject *
route(PyObject *mod, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 5 || !PyTuple_CheckExact(args[3]) || !PyType_Check(args[4])) {
        PyErr_SetString(PyExc_TypeError, "route(feed, on_frame, scan, scan_args, _BookState)");
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
    Py_ssize_t ob = slot_offset(stype, "books");
    Py_DECREF(stats);
    Route *r = PyObject_GC_New(Route, &RouteType);
    if (!r)
        return NULL;
    r->feed = Py_NewRef(args[0]);
    r->on_frame = Py_NewRef(args[1]);
    r->scan = Py_NewRef(args[2]);
    r->scan_args = Py_NewRef(args[3]);
    r->state_type = Py_NewRef(args[4]);
    memcpy(r->st_off, off, sizeof off);
    r->stats_type = ob >= 0 ? (PyTypeObject *)Py_NewRef(stype) : NULL;
    r->off_books = ob;
    r->feed_type = (PyTypeObject *)Py_NewRef(Py_TYPE(args[0]));
    for (int i = 0; i < FA_N; i++)
        r->fa_off[i] = slot_offset(r->feed_type, fa_names[i]);
    r->vectorcall = (vectorcallfunc)route_call;
    PyObject_GC_Track(r);
    return (PyObject *)r;
}

static PyMethodDef methods[] = {
    {"route", (PyCFunction)(void (*)(void))route, METH_FASTCALL,
     "route(feed, on_frame, scan, scan_args, _BookState) -> fn(data, receipt_ns)"},
    {NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "latentspeed_exchange_bybit._route", "BybitFeed.on_frame's fast path in C.", -1,
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
    INTERN(s_topics, "_topics")
    INTERN(s_stats, "stats")
    INTERN(s_sink, "sink")
    INTERN(s_books, "books")
    INTERN(s_on_book, "on_book")
    INTERN(s_resync, "resync")
    INTERN(s_apply_parsed, "apply_parsed")
    INTERN(s_load_parsed, "load_parsed")
    INTERN(s_is_crossed, "is_crossed")
    INTERN(s_best_bid, "best_bid")
    INTERN(s_best_ask, "best_ask")
    INTERN(s_delta, "delta")
    INTERN(s_snapshot, "snapshot")
#undef INTERN
    return PyModule_Create(&module);
}
