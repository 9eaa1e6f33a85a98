/* capture.merged_records, compiled: the records of several capture sources in receipt order.
 *
 * A backtest takes every input through this merge, and in Python it cost ~80 bytecodes a record
 * (the merge generator and the shared reader's dealing, capture.py). Same order, exactly: the
 * smallest (receipt_ns, source index) among the sources' next records, each source in its own
 * order (heapq.merge's order over the sources, as capture.merged_records documents).
 *
 * Merge(names, readers, reader_of, shared): source k is named names[k] and reads the iterator
 * readers[reader_of[k]]. A shared reader (a capture of several feeds) deals each record to the
 * source named by its "feed" (kept in that source's queue until it is wanted; records of feeds no
 * source replays are dropped); a reader of one source gives it everything. Iterating gives
 * (receipt_ns, name, record); receipt_ns is the record's, 0 when it is missing or false.
 * Merge.frames() runs the backtest's usual records (frames, between its timers) in C as well.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <limits.h>
#include <structmember.h>
#include "_pyint.h"
#include <stdint.h>

typedef struct {
    PyObject *name;
    Py_ssize_t reader;
    int shared;
    PyObject *queue; /* list; items [qhead:] are waiting */
    Py_ssize_t qhead;
    PyObject *head; /* the next record, or NULL when the source has ended */
    int64_t t;
} Source;

/* The record keys read: the decoder's own key objects once seen (see adopt_keys) */
enum { K_FEED, K_RECEIPT, K_KIND, K_DATA, K_N };

typedef struct {
    PyObject_HEAD
    Source *src;
    Py_ssize_t n;
    PyObject *readers; /* list of iterators; None once one is exhausted */
    Py_ssize_t cur;    /* the source giving now, or -1 to choose */
    int started;
    PyObject *keys[K_N];
    Py_ssize_t until_adopt; /* records until the next adopt_keys */
} MergeObject;

static PyObject *str_feed, *str_receipt_ns, *str_kind, *str_data;
static PyObject *str_frame, *str_now, *str_error, *str_stats, *str_messages, *empty_bytes;

/* A JSON decoder gives every record the same key objects (orjson keeps a cache of them), but not the
 * interned strings this module looks up with: each look-up then compared the strings' bytes. The
 * record's own key objects, once seen, make each look-up an identity match (still correct with any
 * other equal key). Looked at again every 65,536 records, in case the decoder's objects change.
 * Taken from a frame record: the rare others (connects, REST answers) may come from another decoder
 * with other key objects (the compiled capture reader leaves them to orjson), and keys adopted from
 * one cost every frame after it a comparison of bytes per look-up. */
static void
adopt_keys(MergeObject *m, PyObject *rec)
{
    PyObject *names[K_N] = {str_feed, str_receipt_ns, str_kind, str_data}, *k, *v;
    Py_ssize_t pos = 0;
    int frame = 0;
    while (PyDict_Next(rec, &pos, &k, &v)) {
        if (!PyUnicode_CheckExact(k))
            continue;
        for (int i = 0; i < K_N; i++)
            if (k == m->keys[i] || PyUnicode_Compare(k, names[i]) == 0) {
                if (k != m->keys[i])
                    Py_SETREF(m->keys[i], Py_NewRef(k));
                if (i == K_KIND)
                    frame = v == str_frame || (PyUnicode_CheckExact(v) && PyUnicode_Compare(v, str_frame) == 0);
                break;
            }
    }
    m->until_adopt = frame ? 65536 : 1; /* not a frame: again at the next record */
}

/* The next record of source k (new reference), NULL with no error at its end. */
/* a == b for a record's feed name: str compared by length and bytes (the usual case, no rich
 * comparison per record), anything else as Python compares it. 1, 0, or -1 (error). */
static inline int
same_str(PyObject *a, PyObject *b)
{
    if (a == b)
        return 1;
    if (PyUnicode_CheckExact(a) && PyUnicode_CheckExact(b)) {
        Py_ssize_t n = PyUnicode_GET_LENGTH(a);
        int kind = PyUnicode_KIND(a);
        return n == PyUnicode_GET_LENGTH(b) && kind == PyUnicode_KIND(b) &&
               memcmp(PyUnicode_DATA(a), PyUnicode_DATA(b), (size_t)n * (size_t)kind) == 0;
    }
    return PyObject_RichCompareBool(a, b, Py_EQ);
}

static PyObject *
pull(MergeObject *m, Py_ssize_t k)
{
    Source *s = &m->src[k];
    if (s->qhead < PyList_GET_SIZE(s->queue)) {
        PyObject *rec = Py_NewRef(PyList_GET_ITEM(s->queue, s->qhead));
        if (++s->qhead == PyList_GET_SIZE(s->queue)) {
            if (PyList_SetSlice(s->queue, 0, PY_SSIZE_T_MAX, NULL) < 0) {
                Py_DECREF(rec);
                return NULL;
            }
            s->qhead = 0;
        }
        else if (s->qhead >= 1024 && s->qhead * 2 >= PyList_GET_SIZE(s->queue)) {
            if (PyList_SetSlice(s->queue, 0, s->qhead, NULL) < 0) {
                Py_DECREF(rec);
                return NULL;
            }
            s->qhead = 0;
        }
        return rec;
    }
    PyObject *it = PyList_GET_ITEM(m->readers, s->reader);
    if (it == Py_None)
        return NULL;
    for (;;) {
        PyObject *rec = PyIter_Next(it);
        if (!rec) {
            if (!PyErr_Occurred()) /* exhausted: never asked again (a generator may not like it) */
                PyList_SetItem(m->readers, s->reader, Py_NewRef(Py_None));
            return NULL;
        }
        if (!s->shared)
            return rec;
        if (!PyDict_Check(rec)) {
            PyErr_Format(PyExc_TypeError, "capture record is not an object: %R", rec);
            Py_DECREF(rec);
            return NULL;
        }
        PyObject *owner = PyDict_GetItemWithError(rec, m->keys[K_FEED]);
        if (!owner && PyErr_Occurred()) {
            Py_DECREF(rec);
            return NULL;
        }
        if (!owner)
            owner = Py_None;
        /* the source of this reader named `owner`, if any (names are unique per reader) */
        Py_ssize_t j = -1;
        for (Py_ssize_t i = 0; i < m->n; i++) {
            Source *o = &m->src[i];
            if (o->reader != s->reader)
                continue;
            int eq = same_str(owner, o->name);
            if (eq < 0) {
                Py_DECREF(rec);
                return NULL;
            }
            if (eq) {
                j = i;
                break;
            }
        }
        if (j == k)
            return rec;
        if (j >= 0 && PyList_Append(m->src[j].queue, rec) < 0) {
            Py_DECREF(rec);
            return NULL;
        }
        Py_DECREF(rec);
    }
}

/* rec.get("receipt_ns") or 0, as an int64. */
static int
stamp(MergeObject *m, PyObject *rec, int64_t *t)
{
    if (!PyDict_Check(rec)) {
        PyErr_Format(PyExc_TypeError, "capture record is not an object: %R", rec);
        return -1;
    }
    if (--m->until_adopt <= 0)
        adopt_keys(m, rec);
    PyObject *v = PyDict_GetItemWithError(rec, m->keys[K_RECEIPT]);
    if (!v) {
        if (PyErr_Occurred())
            return -1;
        *t = 0;
        return 0;
    }
    if (PyLong_Check(v) && !PyBool_Check(v)) {
        int64_t c;
        if (compact_i64(v, &c) == 0) {
            *t = c;
            return 0;
        }
        int overflow;
        long long x = PyLong_AsLongLongAndOverflow(v, &overflow);
        if (!overflow) {
            *t = x;
            return 0;
        }
    }
    int truth = PyObject_IsTrue(v);
    if (truth < 0)
        return -1;
    if (!truth) {
        *t = 0;
        return 0;
    }
    PyErr_Format(PyExc_ValueError, "capture record's receipt_ns is not an integer nanosecond time: %R", v);
    return -1;
}

/* Source k's next record into its head; 0 (head set, or NULL at the end) or -1. */
static int
advance(MergeObject *m, Py_ssize_t k)
{
    Source *s = &m->src[k];
    Py_CLEAR(s->head);
    PyObject *rec = pull(m, k);
    if (!rec)
        return PyErr_Occurred() ? -1 : 0;
    if (stamp(m, rec, &s->t) < 0) {
        Py_DECREF(rec);
        return -1;
    }
    s->head = rec;
    return 0;
}

/* Tracked by the collector: a reader (a generator) could refer back to the merge. */
static int
merge_traverse(MergeObject *m, visitproc visit, void *arg)
{
    for (Py_ssize_t i = 0; m->src && i < m->n; i++) {
        Py_VISIT(m->src[i].name);
        Py_VISIT(m->src[i].queue);
        Py_VISIT(m->src[i].head);
    }
    Py_VISIT(m->readers);
    for (int i = 0; i < K_N; i++)
        Py_VISIT(m->keys[i]);
    return 0;
}

static int
merge_clear(MergeObject *m)
{
    for (Py_ssize_t i = 0; m->src && i < m->n; i++) {
        Py_CLEAR(m->src[i].name);
        Py_CLEAR(m->src[i].queue);
        Py_CLEAR(m->src[i].head);
    }
    Py_CLEAR(m->readers);
    for (int i = 0; i < K_N; i++)
        Py_CLEAR(m->keys[i]);
    return 0;
}

static void
merge_dealloc(MergeObject *m)
{
    PyObject_GC_UnTrack(m);
    merge_clear(m);
    PyMem_Free(m->src);
    Py_TYPE(m)->tp_free((PyObject *)m);
}

static PyObject *
merge_new(PyTypeObject *type, PyObject *args, PyObject *kw)
{
    PyObject *names, *readers, *reader_of, *shared;
    if (kw && PyDict_GET_SIZE(kw)) {
        PyErr_SetString(PyExc_TypeError, "Merge() takes no keyword arguments");
        return NULL;
    }
    if (!PyArg_ParseTuple(args, "O!O!O!O!:Merge", &PyList_Type, &names, &PyList_Type, &readers, &PyList_Type,
                          &reader_of, &PyList_Type, &shared))
        return NULL;
    Py_ssize_t n = PyList_GET_SIZE(names), nr = PyList_GET_SIZE(readers);
    if (PyList_GET_SIZE(reader_of) != n || PyList_GET_SIZE(shared) != n) {
        PyErr_SetString(PyExc_ValueError, "Merge: names, reader_of and shared differ in length");
        return NULL;
    }
    MergeObject *m = (MergeObject *)type->tp_alloc(type, 0);
    if (!m)
        return NULL;
    m->cur = -1;
    PyObject *names0[K_N] = {str_feed, str_receipt_ns, str_kind, str_data};
    for (int i = 0; i < K_N; i++)
        m->keys[i] = Py_NewRef(names0[i]);
    m->readers = PyList_New(nr);
    m->src = PyMem_Calloc(n ? n : 1, sizeof(Source));
    if (!m->readers || !m->src) {
        Py_DECREF(m);
        return PyErr_NoMemory();
    }
    m->n = n;
    for (Py_ssize_t i = 0; i < nr; i++) {
        PyObject *it = PyObject_GetIter(PyList_GET_ITEM(readers, i));
        if (!it) {
            Py_DECREF(m);
            return NULL;
        }
        PyList_SET_ITEM(m->readers, i, it);
    }
    for (Py_ssize_t k = 0; k < n; k++) {
        Source *s = &m->src[k];
        s->name = Py_NewRef(PyList_GET_ITEM(names, k));
        s->reader = PyLong_AsSsize_t(PyList_GET_ITEM(reader_of, k));
        if (s->reader == -1 && PyErr_Occurred()) {
            Py_DECREF(m);
            return NULL;
        }
        if (s->reader < 0 || s->reader >= nr) {
            PyErr_SetString(PyExc_ValueError, "Merge: reader_of out of range");
            Py_DECREF(m);
            return NULL;
        }
        s->shared = PyObject_IsTrue(PyList_GET_ITEM(shared, k));
        if (s->shared < 0 || !(s->queue = PyList_New(0))) {
            Py_DECREF(m);
            return NULL;
        }
    }
    return (PyObject *)m;
}

/* The source whose head comes next (the record given last replaced first): its index, -1 at the
 * end, -2 on an error. */
static Py_ssize_t
choose(MergeObject *m)
{
    if (!m->readers) /* cleared by the collector */
        return -1;
    if (!m->started) {
        m->started = 1;
        for (Py_ssize_t k = 0; k < m->n; k++) /* each source's first record, in source order */
            if (advance(m, k) < 0)
                return -2;
    }
    else if (m->cur >= 0) { /* the record given last was cur's head */
        Py_ssize_t c = m->cur;
        m->cur = -1;
        if (advance(m, c) < 0)
            return -2;
    }
    /* The smallest (t, k) among the heads. */
    Py_ssize_t best = -1;
    int64_t bt = 0;
    for (Py_ssize_t k = 0; k < m->n; k++) {
        Source *s = &m->src[k];
        if (s->head && (best < 0 || s->t < bt)) {
            best = k;
            bt = s->t;
        }
    }
    return best;
}

static PyObject *
merge_next(MergeObject *m)
{
    Py_ssize_t best = choose(m);
    if (best < 0)
        return NULL;
    m->cur = best;
    Source *s = &m->src[best];
    PyObject *t = PyLong_FromLongLong(s->t);
    if (!t)
        return NULL;
    PyObject *out = PyTuple_Pack(3, t, s->name, s->head);
    Py_DECREF(t);
    return out;
}

/* Feed.deliver_frame(data, t) for a feed that records nothing, inlined: on_frame(data, t), an
 * Exception from it counted and logged by feed.error("bad frame: Type: text", data). Its
 * stats.messages += 1 is counted in *count, added by the caller before it returns. */
static PyObject *
deliver_inline(PyObject *how, PyObject *const *call, Py_ssize_t *count)
{
    (*count)++;
    PyObject *r = PyObject_Vectorcall(PyTuple_GET_ITEM(how, 0), call, 2, NULL);
    if (r || !PyErr_ExceptionMatches(PyExc_Exception))
        return r;
    PyObject *type, *exc, *tb;
    PyErr_Fetch(&type, &exc, &tb);
    PyErr_NormalizeException(&type, &exc, &tb);
    if (tb)
        PyException_SetTraceback(exc, tb);
    PyObject *handled = PyErr_GetHandledException(); /* as in deliver_frame's except block */
    PyErr_SetHandledException(exc);
    PyObject *name = PyType_GetName(Py_TYPE(exc));
    PyObject *reason = name ? PyUnicode_FromFormat("bad frame: %U: %S", name, exc) : NULL;
    r = reason ? PyObject_CallMethodObjArgs(PyTuple_GET_ITEM(how, 1), str_error, reason, call[0], NULL) : NULL;
    PyErr_SetHandledException(handled);
    Py_XDECREF(handled);
    Py_XDECREF(name);
    Py_XDECREF(reason);
    Py_XDECREF(type);
    Py_XDECREF(exc);
    Py_XDECREF(tb);
    return r;
}

/* feed.stats.messages += the frames counted per source (every return of frames()). */
static int
add_counts(PyObject *fns, Py_ssize_t *counts, Py_ssize_t n)
{
    PyObject *type, *exc, *tb;
    PyErr_Fetch(&type, &exc, &tb); /* a pending error is kept; the counts are added all the same */
    int err = 0;
    for (Py_ssize_t k = 0; k < n && !err; k++) {
        if (!counts[k])
            continue;
        PyObject *stats = PyObject_GetAttr(PyTuple_GET_ITEM(PyList_GET_ITEM(fns, k), 1), str_stats);
        PyObject *old = stats ? PyObject_GetAttr(stats, str_messages) : NULL;
        PyObject *add = old ? PyLong_FromSsize_t(counts[k]) : NULL;
        PyObject *sum = add ? PyNumber_Add(old, add) : NULL;
        err = !sum || PyObject_SetAttr(stats, str_messages, sum) < 0;
        Py_XDECREF(stats);
        Py_XDECREF(old);
        Py_XDECREF(add);
        Py_XDECREF(sum);
    }
    if (type) {
        if (err)
            PyErr_Clear();
        PyErr_Restore(type, exc, tb);
        return -1;
    }
    return err ? -1 : 0;
}

#define MAX_SOURCES 64

/* frames(fns, advance, clock, fills, stop, lo, hi, most) -> (n, last_t)
 *
 * The backtest's loop for its usual record, in C: while the next record is a frame with
 * lo <= receipt_ns < stop and receipt_ns <= hi, take it as backtest.run_backtest does (advance(t),
 * clock.now = t, then the source's frame input), at most `most` of them, stopping after one that
 * changed len(fills). Anything else stays next for the Python loop, which owns every other rule
 * (timers, samples, --from and --to, non-frame records, progress). A source's frame input,
 * fns[source], is a callable fn(data, t) (its feed's deliver_frame), or (on_frame, feed) for a
 * feed that records nothing: deliver_frame inlined (deliver_inline). */
static PyObject *
merge_frames(MergeObject *m, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs < 8 || nargs > 9 || !PyList_CheckExact(args[0]) ||
        (nargs == 9 && (!PyTuple_CheckExact(args[8]) || PyTuple_GET_SIZE(args[8]) != 5 ||
                        !PyList_CheckExact(PyTuple_GET_ITEM(args[8], 0))))) {
        PyErr_SetString(PyExc_TypeError, "frames(fns, advance, clock, fills, stop, lo, hi, most"
                                         "[, (curve, point, portfolio, timer_at, every)])");
        return NULL;
    }
    PyObject *fns = args[0], *adv = args[1], *clock = args[2], *fills = args[3];
    long long stop = PyLong_AsLongLong(args[4]), lo = PyLong_AsLongLong(args[5]), hi = PyLong_AsLongLong(args[6]);
    Py_ssize_t most = PyLong_AsSsize_t(args[7]);
    /* With a sampler, a frame that filled does not end the run: curve.append(point(t, portfolio)),
     * and the run goes on to min(timer_at, t + every), as the Python loop would after its sample. */
    PyObject *sampler = nargs == 9 ? args[8] : NULL;
    long long timer_at = sampler ? PyLong_AsLongLong(PyTuple_GET_ITEM(sampler, 3)) : 0,
              every = sampler ? PyLong_AsLongLong(PyTuple_GET_ITEM(sampler, 4)) : 0, sampled = -1;
    if (PyErr_Occurred())
        return NULL;
    if (PyList_GET_SIZE(fns) != m->n) {
        PyErr_SetString(PyExc_ValueError, "frames: one function per source");
        return NULL;
    }
    Py_ssize_t counts[MAX_SOURCES] = {0}, inline_ = 0;
    for (Py_ssize_t k = 0; k < m->n; k++) {
        PyObject *f = PyList_GET_ITEM(fns, k);
        if (PyTuple_CheckExact(f) && (PyTuple_GET_SIZE(f) != 2 || m->n > MAX_SOURCES)) {
            PyErr_SetString(PyExc_ValueError, "frames: a frame input is fn or (on_frame, feed), at most 64");
            return NULL;
        }
        inline_ |= PyTuple_CheckExact(f);
    }
    Py_ssize_t seen = PyObject_Size(fills);
    if (seen < 0)
        return NULL;
    /* the clock's `now` as a __slots__ member (SimClock): written in place, not by attribute look-up */
    Py_ssize_t now_off = -1;
    PyObject *d = _PyType_Lookup(Py_TYPE(clock), str_now);
    if (Py_TYPE(clock)->tp_setattro == PyObject_GenericSetAttr && d && Py_IS_TYPE(d, &PyMemberDescr_Type) && ((PyMemberDescrObject *)d)->d_member->type == T_OBJECT_EX &&
        !(((PyMemberDescrObject *)d)->d_member->flags & READONLY))
        now_off = ((PyMemberDescrObject *)d)->d_member->offset;
    Py_ssize_t n = 0;
    int64_t last = 0;
    PyObject *out = NULL, *to_keep = NULL;
    while (n < most) {
        Py_ssize_t k = choose(m);
        if (k == -2)
            goto done;
        if (k < 0)
            break;
        Source *s = &m->src[k];
        int64_t t = s->t;
        if (t >= stop || t < lo || t > hi)
            break;
        PyObject *rec = s->head; /* a dict: stamp() checked */
        PyObject *kind = PyDict_GetItemWithError(rec, m->keys[K_KIND]);
        if (!kind && PyErr_Occurred())
            goto done;
        if (kind != str_frame && !(kind && PyUnicode_CheckExact(kind) && same_str(kind, str_frame) == 1))
            break;
        PyObject *data = PyDict_GetItemWithError(rec, m->keys[K_DATA]);
        if (!data && PyErr_Occurred())
            goto done;
        m->cur = k; /* taken: the next choose() replaces it */
        Py_INCREF(rec);
        Py_XINCREF(data);
        PyObject *to = PyLong_FromLongLong(t), *r = NULL;
        if (to && (r = PyObject_Vectorcall(adv, &to, 1, NULL)) != NULL) {
            Py_DECREF(r);
            int set = 0;
            if (now_off >= 0) /* (a member descriptor's set: the old value released after) */
                Py_XSETREF(*(PyObject **)((char *)clock + now_off), Py_NewRef(to));
            else
                set = PyObject_SetAttr(clock, str_now, to);
            if (set == 0) {
                PyObject *call[2] = {data ? data : empty_bytes, to}, *fn = PyList_GET_ITEM(fns, k);
                r = PyTuple_CheckExact(fn) ? deliver_inline(fn, call, &counts[k]) : PyObject_Vectorcall(fn, call, 2, NULL);
                Py_XDECREF(r);
            }
            else
                r = NULL;
        }
        Py_XDECREF(data);
        Py_DECREF(rec);
        to_keep = to; /* (the frame's time, for a sample) */
        if (!r)
            goto done;
        n++;
        last = t;
        Py_ssize_t now_fills = PyObject_Size(fills);
        if (now_fills < 0)
            goto done;
        if (now_fills != seen) {
            if (!sampler)
                break;
            PyObject *call[2] = {to_keep, PyTuple_GET_ITEM(sampler, 2)};
            PyObject *pt = PyObject_Vectorcall(PyTuple_GET_ITEM(sampler, 1), call, 2, NULL);
            Py_CLEAR(to_keep);
            if (!pt)
                goto done;
            int bad = PyList_Append(PyTuple_GET_ITEM(sampler, 0), pt);
            Py_DECREF(pt);
            if (bad)
                goto done;
            seen = now_fills;
            sampled = t;
            stop = t > LLONG_MAX - every ? LLONG_MAX : t + every;
            if (timer_at < stop)
                stop = timer_at;
        }
        Py_CLEAR(to_keep);
    }
    out = sampler ? Py_BuildValue("(nLL)", n, (long long)last, sampled) : Py_BuildValue("(nL)", n, (long long)last);
done:
    Py_XDECREF(to_keep);
    if (inline_ && add_counts(fns, counts, m->n) < 0)
        Py_CLEAR(out);
    return out;
}

static PyMethodDef merge_methods[] = {
    {"frames", (PyCFunction)(void (*)(void))merge_frames, METH_FASTCALL,
     "frames(fns, advance, clock, fills, stop, lo, hi, most[, sampler]) -> (n, last_t[, last_sample_t]): the "
     "backtest's usual records."},
    {NULL},
};

static PyTypeObject MergeType = {
    PyVarObject_HEAD_INIT(NULL, 0).tp_name = "latentspeed_core._merge.Merge",
    .tp_basicsize = sizeof(MergeObject),
    .tp_dealloc = (destructor)merge_dealloc,
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC,
    .tp_traverse = (traverseproc)merge_traverse,
    .tp_clear = (inquiry)merge_clear,
    .tp_doc = "Merge(names, readers, reader_of, shared): (receipt_ns, name, record) in receipt order.",
    .tp_iter = PyObject_SelfIter,
    .tp_iternext = (iternextfunc)merge_next,
    .tp_new = merge_new,
    .tp_methods = merge_methods,
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "latentspeed_core._merge", "capture.merged_records, compiled.", -1, NULL,
};

PyMODINIT_FUNC
PyInit__merge(void)
{
    if (PyType_Ready(&MergeType) < 0)
        return NULL;
    str_feed = PyUnicode_InternFromString("feed");
    str_receipt_ns = PyUnicode_InternFromString("receipt_ns");
    str_kind = PyUnicode_InternFromString("kind");
    str_frame = PyUnicode_InternFromString("frame");
    str_data = PyUnicode_InternFromString("data");
    str_now = PyUnicode_InternFromString("now");
    str_error = PyUnicode_InternFromString("error");
    str_stats = PyUnicode_InternFromString("stats");
    str_messages = PyUnicode_InternFromString("messages");
    empty_bytes = PyBytes_FromStringAndSize("", 0);
    if (!str_feed || !str_receipt_ns || !str_kind || !str_frame || !str_data || !str_now || !str_error || !str_stats ||
        !str_messages || !empty_bytes)
        return NULL;
    PyObject *m = PyModule_Create(&module);
    if (!m)
        return NULL;
    if (PyModule_AddObjectRef(m, "Merge", (PyObject *)&MergeType) < 0) {
        Py_DECREF(m);
        return NULL;
    }
    return m;
}
