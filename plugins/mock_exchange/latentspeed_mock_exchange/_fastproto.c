/* MARKET_DATA decoding and frame splitting in C: the largest costs of reading the exchange.
 *
 * split_frames(data) returns ([(msg_type, data, off), ...], consumed) for the leading complete
 * and well-formed messages of a read (known type, exact length), and stops at the first
 * incomplete or suspicious one: FrameDecoder then goes on in Python, which owns every error
 * rule and message. ~0.75 -> ~0.15 us for a one-message read.
 *
 * decode_book(buf, off) returns exactly what protocol._decode_book_py returns, (symbol_id, bids,
 * asks) with float [price, qty] lists best first, for the snapshots the exchange always sends
 * (bids then asks, each side strictly best first, sizes > 0): one pass over the entries, no
 * tuple per level, the same arithmetic as Python (int64 -> double, times 1/SCALE). Anything else
 * (a foreign sender's unordered, duplicated or zero-size levels) is handed to the Python
 * fallback registered with set_fallback(), which normalises it the slow way. Took ~6 us per
 * 20-level snapshot in Python, ~0.6 us here.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <structmember.h>
#include <stdint.h>
#include <string.h>

#define HEADER_SIZE 16
#define MD_HEAD_SIZE 22
#define MD_ENTRY_SIZE 18
#define EXACT_MAX ((int64_t)1 << 53)

/* Exact message length per type, as protocol._SIZE_BY_TYPE (0: MARKET_DATA, variable; -1: none). */
static const int SIZES[8] = {-1, 0, 80, 47, 36, 16, 52, 45};

static PyObject *fallback = NULL;
/* Divided by, not multiplied by its inverse: v / 1e8 is the double nearest the exact value, the
 * shortest form a venue would print (2997.2, not 2997.2000000000003). */
static double scale = 100000000.0;

static inline int64_t
rd_i64(const unsigned char *p)
{
    uint64_t v = 0;
    for (int i = 7; i >= 0; i--) /* little-endian on every host (compilers turn this into one load) */
        v = (v << 8) | p[i];
    return (int64_t)v;
}

static PyObject *
side_list(const unsigned char *e, Py_ssize_t n)
{
    PyObject *out = PyList_New(n);
    if (!out)
        return NULL;
    for (Py_ssize_t i = 0; i < n; i++, e += MD_ENTRY_SIZE) {
        PyObject *lv = PyList_New(2);
        if (!lv) {
            Py_DECREF(out);
            return NULL;
        }
        PyList_SET_ITEM(out, i, lv);
        PyObject *p = PyFloat_FromDouble((double)rd_i64(e) / scale);
        PyObject *q = PyFloat_FromDouble((double)rd_i64(e + 8) / scale);
        if (p)
            PyList_SET_ITEM(lv, 0, p);
        if (q)
            PyList_SET_ITEM(lv, 1, q);
        if (!p || !q) {
            Py_DECREF(out);
            return NULL;
        }
    }
    return out;
}

/* The n entries at e are the exchange's canonical snapshot: bids (side 0) then asks, each strictly
 * best first, prices and sizes > 0 and exact as doubles, uncrossed (*nb: the bids). Anything else
 * goes to the Python fallback, which normalises it or refuses it. */
static int
canonical(const unsigned char *e, Py_ssize_t n, Py_ssize_t *nb_out)
{
    Py_ssize_t nb = 0;
    while (nb < n && e[nb * MD_ENTRY_SIZE + 16] == 0)
        nb++;
    *nb_out = nb;
    for (Py_ssize_t i = 0; i < n; i++) {
        const unsigned char *x = e + i * MD_ENTRY_SIZE;
        int64_t px0 = rd_i64(x), q0 = rd_i64(x + 8);
        /* above 2**53 a double cannot hold the integer: Python's exact int / int is the reference */
        if (q0 <= 0 || px0 <= 0 || q0 > EXACT_MAX || px0 > EXACT_MAX || (i >= nb && x[16] == 0))
            return 0;
        if (i > 0 && i != nb && (i < nb ? rd_i64(x - MD_ENTRY_SIZE) <= px0 : rd_i64(x - MD_ENTRY_SIZE) >= px0))
            return 0;
    }
    return !(nb > 0 && nb < n && rd_i64(e) >= rd_i64(e + nb * MD_ENTRY_SIZE)); /* crossed or locked */
}

/* A pair [p, q] that only the list it is in references, and whose floats only it references:
 * refilled in place, nobody can see it change. */
static inline int
refillable(PyObject *lv)
{
    PyObject *a, *b;
    return lv && Py_REFCNT(lv) == 1 && PyList_CheckExact(lv) && PyList_GET_SIZE(lv) == 2 &&
           PyFloat_CheckExact(a = PyList_GET_ITEM(lv, 0)) && Py_REFCNT(a) == 1 &&
           PyFloat_CheckExact(b = PyList_GET_ITEM(lv, 1)) && Py_REFCNT(b) == 1;
}

/* side_list, its pairs taken from `spare` (the same side of the snapshot before the last, or NULL)
 * where nothing else references them any more: refilled in place instead of freed and allocated
 * again (a snapshot's 20 pairs and 40 floats otherwise). The same values as side_list. */
static PyObject *
side_list_refill(const unsigned char *e, Py_ssize_t n, PyObject *spare)
{
    /* (a spare list that anything but its slot references: its pairs may be seen, none is refilled) */
    Py_ssize_t have = spare && Py_REFCNT(spare) == 1 && PyList_CheckExact(spare) ? PyList_GET_SIZE(spare) : 0;
    PyObject *out = PyList_New(n);
    if (!out)
        return NULL;
    for (Py_ssize_t i = 0; i < n; i++, e += MD_ENTRY_SIZE) {
        double p = (double)rd_i64(e) / scale, q = (double)rd_i64(e + 8) / scale;
        PyObject *lv = i < have ? PyList_GET_ITEM(spare, i) : NULL;
        if (refillable(lv)) {
            Py_INCREF(lv);
            ((PyFloatObject *)PyList_GET_ITEM(lv, 0))->ob_fval = p;
            ((PyFloatObject *)PyList_GET_ITEM(lv, 1))->ob_fval = q;
            PyList_SET_ITEM(out, i, lv);
            continue;
        }
        if (!(lv = PyList_New(2))) {
            Py_DECREF(out);
            return NULL;
        }
        PyList_SET_ITEM(out, i, lv);
        PyObject *po = PyFloat_FromDouble(p), *qo = PyFloat_FromDouble(q);
        if (po)
            PyList_SET_ITEM(lv, 0, po);
        if (qo)
            PyList_SET_ITEM(lv, 1, qo);
        if (!po || !qo) {
            Py_DECREF(out);
            return NULL;
        }
    }
    return out;
}

static PyObject *
decode_book(PyObject *mod, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs < 1 || nargs > 2) {
        PyErr_SetString(PyExc_TypeError, "decode_book(buf, off=0)");
        return NULL;
    }
    Py_ssize_t off = 0;
    if (nargs == 2) {
        off = PyLong_AsSsize_t(args[1]);
        if (off == -1 && PyErr_Occurred())
            return NULL;
    }
    Py_buffer view;
    if (PyObject_GetBuffer(args[0], &view, PyBUF_SIMPLE) < 0)
        return NULL;
    const unsigned char *b = view.buf;
    if (off < 0 || off + MD_HEAD_SIZE > view.len) {
        PyBuffer_Release(&view);
        PyErr_SetString(PyExc_ValueError, "MARKET_DATA: buffer too short for the header");
        return NULL;
    }
    const unsigned char *h = b + off + HEADER_SIZE;
    uint32_t symbol_id = (uint32_t)h[0] | (uint32_t)h[1] << 8 | (uint32_t)h[2] << 16 | (uint32_t)h[3] << 24;
    Py_ssize_t n = (Py_ssize_t)(h[4] | h[5] << 8);
    if (off + MD_HEAD_SIZE + n * MD_ENTRY_SIZE > view.len) {
        PyBuffer_Release(&view);
        PyErr_SetString(PyExc_ValueError, "MARKET_DATA: buffer too short for its entries");
        return NULL;
    }
    const unsigned char *e = b + off + MD_HEAD_SIZE;
    Py_ssize_t nb;
    int ok = canonical(e, n, &nb);
    PyObject *result = NULL;
    if (ok) {
        PyObject *bids = side_list(e, nb);
        PyObject *asks = bids ? side_list(e + nb * MD_ENTRY_SIZE, n - nb) : NULL;
        if (bids && asks)
            result = Py_BuildValue("(INN)", (unsigned int)symbol_id, bids, asks);
        else
            Py_XDECREF(bids);
    }
    PyBuffer_Release(&view);
    if (ok || !fallback)
        return ok ? result : (PyErr_SetString(PyExc_ValueError, "no fallback decoder registered"), NULL);
    return PyObject_Vectorcall(fallback, args, (size_t)nargs, NULL);
}

static PyObject *
split_frames(PyObject *mod, PyObject *data)
{
    if (!PyBytes_Check(data)) {
        PyErr_SetString(PyExc_TypeError, "split_frames takes bytes");
        return NULL;
    }
    const unsigned char *b = (const unsigned char *)PyBytes_AS_STRING(data);
    Py_ssize_t end = PyBytes_GET_SIZE(data), off = 0;
    PyObject *out = PyList_New(0);
    if (!out)
        return NULL;
    while (end - off >= HEADER_SIZE) {
        const unsigned char *h = b + off;
        Py_ssize_t length = h[0] | h[1] << 8;
        int type = h[2] | h[3] << 8;
        if (type < 1 || type > 7)
            break;
        if (SIZES[type]) {
            if (length != SIZES[type])
                break;
        }
        else { /* MARKET_DATA: header + <IH> + n entries */
            if (length < MD_HEAD_SIZE || end - off < MD_HEAD_SIZE ||
                length != MD_HEAD_SIZE + (Py_ssize_t)(h[20] | h[21] << 8) * MD_ENTRY_SIZE)
                break;
        }
        if (end - off < length)
            break;
        PyObject *t = Py_BuildValue("(iOn)", type, data, off);
        if (!t || PyList_Append(out, t) < 0) {
            Py_XDECREF(t);
            Py_DECREF(out);
            return NULL;
        }
        Py_DECREF(t);
        off += length;
    }
    return Py_BuildValue("(Nn)", out, off);
}

/* (timestamp_ns, symbol_id) when `data` (bytes or bytearray) is exactly one MARKET_DATA
 * message that protocol.check_frame accepts (type 1, length field = len(data) = header + n entries),
 * else None: the feed's general path then decides, with every error rule. One C call instead of
 * check_frame and two header unpacks in Python, for the feed's most frequent message. */
static PyObject *
market_data_head(PyObject *mod, PyObject *data)
{
    if (!PyBytes_CheckExact(data) && !PyByteArray_CheckExact(data))
        Py_RETURN_NONE;
    Py_buffer view;
    if (PyObject_GetBuffer(data, &view, PyBUF_SIMPLE) < 0) {
        PyErr_Clear();
        Py_RETURN_NONE;
    }
    const unsigned char *h = view.buf;
    Py_ssize_t len = view.len;
    PyObject *out = NULL;
    if (len >= MD_HEAD_SIZE && h[2] == 1 && h[3] == 0 && (Py_ssize_t)(h[0] | h[1] << 8) == len &&
        len == MD_HEAD_SIZE + (Py_ssize_t)(h[20] | h[21] << 8) * MD_ENTRY_SIZE) {
        uint64_t ts = 0;
        for (int i = 15; i >= 8; i--)
            ts = (ts << 8) | h[i];
        uint32_t sid = (uint32_t)h[16] | (uint32_t)h[17] << 8 | (uint32_t)h[18] << 16 | (uint32_t)h[19] << 24;
        out = Py_BuildValue("(KI)", (unsigned long long)ts, (unsigned int)sid);
    }
    else {
        out = Py_NewRef(Py_None);
    }
    PyBuffer_Release(&view);
    return out;
}

static PyObject *
sizes(PyObject *mod, PyObject *unused)
{
    PyObject *t = PyTuple_New(8);
    for (int i = 0; t && i < 8; i++)
        PyTuple_SET_ITEM(t, i, PyLong_FromLong(SIZES[i]));
    return t;
}

static PyObject *
set_fallback(PyObject *mod, PyObject *fn)
{
    Py_XSETREF(fallback, Py_NewRef(fn));
    Py_RETURN_NONE;
}

static PyObject *
set_scale(PyObject *mod, PyObject *arg)
{
    double s = PyFloat_AsDouble(arg);
    if (s == -1.0 && PyErr_Occurred())
        return NULL;
    scale = s;
    Py_RETURN_NONE;
}


/* ---- MarketDataRoute: MockFeed.on_frame of its usual message, in one C call ---- */

/* market_data_route(feed, on_frame, SnapshotBook) -> fn(data, receipt_ns). For one well-formed,
 * canonical MARKET_DATA (bytes) of a defined symbol whose book is a SnapshotBook, once the feed has
 * seen its first data, with a sink: what MockFeed.on_frame does with it (_on_market_data), the same
 * effects in the same order. Anything else goes to on_frame, before anything is changed: it owns
 * every other message and every error rule. The feed's attributes are read on every call (the
 * rehearsal swaps its sink, books and stats). */
/* The feed's attributes read (and the one written) on every frame */
enum { FA_DEFINED, FA_NAMES, FA_BOOKS, FA_SINK, FA_STATS, FA_LAST_MD, FA_N };
static const char *fa_names[FA_N] = {"_defined", "_names", "books", "sink", "stats", "_last_md"};

typedef struct {
    PyObject_HEAD
    PyObject *feed, *on_frame;
    PyTypeObject *book_type, *stats_type; /* SnapshotBook; FeedStats, when its counters are slots */
    PyTypeObject *feed_type;              /* the feed's class when the route was made */
    Py_ssize_t off_bids, off_asks, off_spare_bids, off_spare_asks; /* SnapshotBook's slots */
    Py_ssize_t off_books; /* FeedStats.books */
    Py_ssize_t fa_off[FA_N]; /* the feed class's slots for fa_names, or -1 */
    vectorcallfunc vectorcall;
} Route;

static PyObject *one, *s_defined, *s_names, *s_books, *s_last_md, *s_stats, *s_sink, *s_on_book;

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

static int
member_offset(PyTypeObject *t, const char *name, Py_ssize_t *off)
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

/* feed.stats.books += 1: at its slot for a FeedStats (the type the feed had when the route was made, a
 * dataclass with slots), else by name. */
static int
count_book(Route *self)
{
    PyObject *stats = feed_attr(self, FA_STATS, s_stats), *v, *w;
    if (!stats)
        return -1;
    int rc = -1;
    if (self->stats_type && Py_IS_TYPE(stats, self->stats_type) && (v = SLOT(stats, self->off_books)) &&
        PyLong_CheckExact(v)) {
        if ((w = PyNumber_Add(v, one))) {
            Py_SETREF(SLOT(stats, self->off_books), w);
            rc = 0;
        }
    }
    else if ((v = PyObject_GetAttr(stats, s_books))) {
        if ((w = PyNumber_Add(v, one))) {
            rc = PyObject_SetAttr(stats, s_books, w);
            Py_DECREF(w);
        }
        Py_DECREF(v);
    }
    Py_DECREF(stats);
    return rc;
}

static PyObject *
route_call(Route *self, PyObject *const *args, size_t nargsf, PyObject *kwnames)
{
    Py_ssize_t nargs = PyVectorcall_NARGS(nargsf);
    PyObject *feed = self->feed, *data, *defined = NULL, *names = NULL, *books = NULL, *sink = NULL, *sid_o = NULL;
    PyObject *name, *book, *ret = NULL;
    if (kwnames || nargs != 2 || !PyBytes_CheckExact(data = args[0]))
        goto python;
    const unsigned char *h = (const unsigned char *)PyBytes_AS_STRING(data);
    Py_ssize_t len = PyBytes_GET_SIZE(data), n, nb;
    if (len < MD_HEAD_SIZE || h[2] != 1 || h[3] != 0 || (Py_ssize_t)(h[0] | h[1] << 8) != len ||
        len != MD_HEAD_SIZE + (n = (Py_ssize_t)(h[20] | h[21] << 8)) * MD_ENTRY_SIZE)
        goto python; /* not exactly one MARKET_DATA (what market_data_head tells) */
    const unsigned char *e = h + MD_HEAD_SIZE;
    if (!canonical(e, n, &nb))
        goto python;
    if (!(defined = feed_attr(self, FA_DEFINED, s_defined)) || !(names = feed_attr(self, FA_NAMES, s_names)) ||
        !(books = feed_attr(self, FA_BOOKS, s_books)) || !(sink = feed_attr(self, FA_SINK, s_sink)))
        goto error;
    if (defined != Py_True || !PyDict_CheckExact(names) || !PyDict_CheckExact(books) || sink == Py_None)
        goto python;
    uint32_t sid = (uint32_t)h[16] | (uint32_t)h[17] << 8 | (uint32_t)h[18] << 16 | (uint32_t)h[19] << 24;
    if (!(sid_o = PyLong_FromUnsignedLong(sid)))
        goto error;
    if (!(name = PyDict_GetItemWithError(names, sid_o))) {
        if (PyErr_Occurred())
            goto error;
        goto python; /* an undefined symbol: counted there */
    }
    if (!(book = PyDict_GetItemWithError(books, name))) {
        if (PyErr_Occurred())
            goto error;
        ret = Py_NewRef(Py_None); /* not subscribed */
        goto done;
    }
    if (!Py_IS_TYPE(book, self->book_type))
        goto python;
    Py_INCREF(name);
    Py_INCREF(book);
    PyObject *bids = NULL, *asks = NULL, *ts = NULL;
    Py_ssize_t olm = Py_IS_TYPE(feed, self->feed_type) ? self->fa_off[FA_LAST_MD] : -1;
    if (olm >= 0) /* feed._last_md = data (the old value released after) */
        Py_XSETREF(SLOT(feed, olm), Py_NewRef(data));
    if ((olm < 0 && PyObject_SetAttr(feed, s_last_md, data) < 0) ||
        !(bids = side_list_refill(e, nb, SLOT(book, self->off_spare_bids))) ||
        !(asks = side_list_refill(e + nb * MD_ENTRY_SIZE, n - nb, SLOT(book, self->off_spare_asks))))
        goto fail;
    /* SnapshotBook.load_sorted; the lists it replaces become the spares of the next snapshot (the
     * spares they replace are released last: freeing can run code) */
    PyObject *old_sb = SLOT(book, self->off_spare_bids), *old_sa = SLOT(book, self->off_spare_asks);
    SLOT(book, self->off_spare_bids) = SLOT(book, self->off_bids);
    SLOT(book, self->off_spare_asks) = SLOT(book, self->off_asks);
    SLOT(book, self->off_bids) = bids;
    SLOT(book, self->off_asks) = asks;
    bids = asks = NULL;
    Py_XDECREF(old_sb);
    Py_XDECREF(old_sa);
    uint64_t t = 0;
    for (int i = 15; i >= 8; i--)
        t = (t << 8) | h[i];
    if (count_book(self) < 0 || !(ts = PyLong_FromUnsignedLongLong(t)))
        goto fail;
    PyObject *call[6] = {sink, feed, name, book, ts, args[1]};
    ret = PyObject_VectorcallMethod(s_on_book, call, 6 | PY_VECTORCALL_ARGUMENTS_OFFSET, NULL);
    if (ret) {
        Py_SETREF(ret, Py_NewRef(Py_None));
    }
fail:
    Py_XDECREF(bids);
    Py_XDECREF(asks);
    Py_XDECREF(ts);
    Py_DECREF(name);
    Py_DECREF(book);
    goto done;
python:
    ret = PyObject_Vectorcall(self->on_frame, args, nargsf, kwnames);
    goto done;
error:
    ret = NULL;
done:
    Py_XDECREF(defined);
    Py_XDECREF(names);
    Py_XDECREF(books);
    Py_XDECREF(sink);
    Py_XDECREF(sid_o);
    return ret;
}

static void
route_dealloc(Route *self)
{
    PyObject_GC_UnTrack(self);
    Py_CLEAR(self->feed);
    Py_CLEAR(self->on_frame);
    Py_CLEAR(self->book_type);
    Py_CLEAR(self->stats_type);
    Py_CLEAR(self->feed_type);
    PyObject_GC_Del(self);
}

static int
route_traverse(Route *self, visitproc visit, void *arg)
{
    Py_VISIT(self->feed);
    Py_VISIT(self->on_frame);
    Py_VISIT(self->book_type);
    Py_VISIT(self->stats_type);
    Py_VISIT(self->feed_type);
    return 0;
}

static PyMemberDef route_members[] = {
    {"feed", T_OBJECT, offsetof(Route, feed), READONLY, NULL},
    {"on_frame", T_OBJECT, offsetof(Route, on_frame), READONLY, "what takes every other message"},
    {NULL},
};

static PyTypeObject RouteType = {
    PyVarObject_HEAD_INIT(NULL, 0).tp_name = "latentspeed_mock_exchange._fastproto.MarketDataRoute",
    .tp_basicsize = sizeof(Route),
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC | Py_TPFLAGS_HAVE_VECTORCALL,
    .tp_doc = "fn(data, receipt_ns): MockFeed.on_frame, its usual MARKET_DATA in C",
    .tp_dealloc = (destructor)route_dealloc,
    .tp_traverse = (traverseproc)route_traverse,
    .tp_call = PyVectorcall_Call,
    .tp_vectorcall_offset = offsetof(Route, vectorcall),
    .tp_members = route_members,
};

static PyObject *
market_data_route(PyObject *mod, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 3 || !PyType_Check(args[2]) || !PyCallable_Check(args[1])) {
        PyErr_SetString(PyExc_TypeError, "market_data_route(feed, on_frame, SnapshotBook)");
        return NULL;
    }
    Py_ssize_t ob, oa;
    Py_ssize_t osb, osa;
    if (member_offset((PyTypeObject *)args[2], "_snap_bids", &ob) < 0 ||
        member_offset((PyTypeObject *)args[2], "_snap_asks", &oa) < 0 ||
        member_offset((PyTypeObject *)args[2], "_spare_bids", &osb) < 0 ||
        member_offset((PyTypeObject *)args[2], "_spare_asks", &osa) < 0)
        return NULL;
    PyObject *stats = PyObject_GetAttr(args[0], s_stats);
    if (!stats)
        return NULL;
    PyTypeObject *stype = Py_TYPE(stats);
    Py_ssize_t os;
    if (member_offset(stype, "books", &os) < 0) {
        PyErr_Clear();
        os = -1;
    }
    Py_DECREF(stats);
    Route *r = PyObject_GC_New(Route, &RouteType);
    if (!r)
        return NULL;
    r->stats_type = os >= 0 ? (PyTypeObject *)Py_NewRef(stype) : NULL;
    r->off_books = os;
    r->feed = Py_NewRef(args[0]);
    r->on_frame = Py_NewRef(args[1]);
    r->book_type = (PyTypeObject *)Py_NewRef(args[2]);
    r->off_bids = ob;
    r->off_asks = oa;
    r->off_spare_bids = osb;
    r->off_spare_asks = osa;
    r->feed_type = (PyTypeObject *)Py_NewRef(Py_TYPE(args[0]));
    for (int i = 0; i < FA_N; i++)
        if (member_offset(r->feed_type, fa_names[i], &r->fa_off[i]) < 0) {
            PyErr_Clear();
            r->fa_off[i] = -1;
        }
    r->vectorcall = (vectorcallfunc)route_call;
    PyObject_GC_Track(r);
    return (PyObject *)r;
}

static PyMethodDef methods[] = {
    {"decode_book", (PyCFunction)(void (*)(void))decode_book, METH_FASTCALL,
     "MARKET_DATA at buf[off:] -> (symbol_id, bids, asks), float [price, qty] lists best first."},
    {"set_fallback", set_fallback, METH_O, "The Python decoder for non-canonical snapshots."},
    {"split_frames", split_frames, METH_O,
     "bytes -> ([(msg_type, data, off), ...], consumed): the leading complete, well-formed messages."},
    {"market_data_head", market_data_head, METH_O,
     "(timestamp_ns, symbol_id) if data is exactly one well-formed MARKET_DATA message, else None."},
    {"sizes", sizes, METH_NOARGS, "The exact length per message type that split_frames accepts."},
    {"set_scale", set_scale, METH_O, "The fixed-point scale (1e8)."},
    {"market_data_route", (PyCFunction)(void (*)(void))market_data_route, METH_FASTCALL,
     "market_data_route(feed, on_frame, SnapshotBook) -> fn(data, receipt_ns): on_frame, the usual MARKET_DATA in C"},
    {NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "latentspeed_mock_exchange._fastproto", "Compiled MARKET_DATA decoding.", -1, methods,
};

PyMODINIT_FUNC
PyInit__fastproto(void)
{
    if (PyType_Ready(&RouteType) < 0)
        return NULL;
    if (!(one = PyLong_FromLong(1)))
        return NULL;
#define INTERN(var, text) \
    if (!(var = PyUnicode_InternFromString(text))) \
        return NULL;
    INTERN(s_defined, "_defined")
    INTERN(s_names, "_names")
    INTERN(s_books, "books")
    INTERN(s_last_md, "_last_md")
    INTERN(s_stats, "stats")
    INTERN(s_sink, "sink")
    INTERN(s_on_book, "on_book")
#undef INTERN
    return PyModule_Create(&module);
}
