/* The engine's per-message entry points, compiled (engine/core.py, issue 13).
 *
 * EngineCore is the base of engine.core.Engine: it holds the state that Engine.on_book and
 * Engine.on_trade touch, in its own fields (the same attribute names, as member descriptors), and
 * runs those two methods for their usual case: a book message that is a dict with a "symbol" and a
 * "midpoint" that is not None, a trade message that is a dict with a "symbol". Anything else is the
 * Python of core._EngineCorePy, called with the same arguments before anything was changed; the
 * Python is also the reference (tests hold the two equal) and what runs without a C compiler.
 *
 * Why: these run for every message of a backtest, a paper session and a live one; as Python they
 * were ~96 bytecodes and one frame per book, the largest engine function per backtest event.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <structmember.h>
#include "_pyint.h"
#include <limits.h>
#include <math.h>
#include <string.h>

typedef struct {
    PyObject_HEAD
    /* Python reads these often (trading_enabled on every order): objects, as CPython 3.11 specialises
     * attribute access to object members only (a bool member's reads took the generic path) */
    PyObject *books, *mids, *positions, *by_symbol, *trades_by_symbol, *cork, *trigger, *md_receipt_ns,
        *trading_enabled, *breach;
    /* counters Python reads only for its statistics */
    Py_ssize_t rx_packets, trades_rx;
    /* what on_execution_report touches */
    PyObject *orders, *round_trip, *latency, *wants_updates;
    /* what submit and cancel touch */
    PyObject *venue, *risk, *clock, *t2t, *corked, *unsent;
    Py_ssize_t orders_sent, cancels_sent;
    /* what a fill touches */
    PyObject *maker_fee, *taker_fee, *recent_fills, *wants_fills;
    Py_ssize_t fills;
} CoreObject;

/* core._EngineCorePy's on_book and on_trade: the rule for every case. */
static PyObject *py_on_book, *py_on_trade;
static PyObject *str_symbol, *str_midpoint, *str_receipt, *str_mark, *str_qty, *str_check_breach, *str_dispatch,
    *str_strategy_error, *str_self, *str_on_book, *str_on_trade, *str_book, *str_trade, *str_timer;
static PyObject *zero;

#define SLOT(obj, off) (*(PyObject **)((char *)(obj) + (off)))
/* positions.Position, and its slots on_book writes and reads (bind_positions) */
static PyTypeObject *position_type, *portfolio_type;
static Py_ssize_t p_mark, p_qty, p_avg, p_realized, p_fees, p_volume, p_fills;

/* The truth of a field (an unset one is an AttributeError, as in Python): 1, 0 or -1. */
static inline int
truth_of(PyObject *v, const char *name)
{
    if (v == Py_True)
        return 1;
    if (v == Py_False)
        return 0;
    if (!v) {
        PyErr_SetString(PyExc_AttributeError, name);
        return -1;
    }
    return PyObject_IsTrue(v);
}

/* The Python rule with the same arguments. */
static PyObject *
fallback(PyObject *fn, PyObject *self, PyObject *const *args, Py_ssize_t nargs, PyObject *kwnames)
{
    if (!fn) {
        PyErr_SetString(PyExc_RuntimeError, "_engine: bind_core() was not called");
        return NULL;
    }
    PyObject *stack[8];
    Py_ssize_t n = nargs + (kwnames ? PyTuple_GET_SIZE(kwnames) : 0);
    if (n > 7) {
        PyErr_SetString(PyExc_TypeError, "too many arguments");
        return NULL;
    }
    stack[0] = self;
    for (Py_ssize_t i = 0; i < n; i++)
        stack[i + 1] = args[i];
    return PyObject_Vectorcall(fn, stack, nargs + 1, kwnames);
}

/* Run each handler on msg; an Exception from one is the strategy's error (Engine._strategy_error),
 * the others still run. 0, or -1 with a BaseException (or an error while reporting one) set. */
static int
call_handlers(CoreObject *self, PyObject *handlers, PyObject *msg, PyObject *where)
{
    for (Py_ssize_t i = 0; i < PyList_GET_SIZE(handlers); i++) { /* live length, as Python's for */
        PyObject *fn = Py_NewRef(PyList_GET_ITEM(handlers, i));
        PyObject *r = PyObject_CallOneArg(fn, msg);
        if (r) {
            Py_DECREF(r);
            Py_DECREF(fn);
            continue;
        }
        if (!PyErr_ExceptionMatches(PyExc_Exception)) {
            Py_DECREF(fn);
            return -1;
        }
        PyObject *type, *exc, *tb;
        PyErr_Fetch(&type, &exc, &tb);
        PyErr_NormalizeException(&type, &exc, &tb);
        if (tb)
            PyException_SetTraceback(exc, tb);
        /* as in an except block: the exception is the one being handled while it is reported */
        PyObject *handled = PyErr_GetHandledException();
        PyErr_SetHandledException(exc);
        PyObject *owner = PyObject_GetAttr(fn, str_self);
        PyObject *out = owner ? PyObject_CallMethodObjArgs((PyObject *)self, str_strategy_error, owner, where, exc, NULL)
                              : NULL;
        PyErr_SetHandledException(handled);
        Py_XDECREF(handled);
        Py_XDECREF(owner);
        Py_XDECREF(type);
        Py_XDECREF(exc);
        Py_XDECREF(tb);
        Py_DECREF(fn);
        if (!out)
            return -1;
        Py_DECREF(out);
    }
    return 0;
}

/* on_book(msg, receipt_ns=0, act=True): see core._EngineCorePy.on_book. */
static PyObject *
core_on_book(CoreObject *self, PyObject *const *args, Py_ssize_t nargs, PyObject *kwnames)
{
    PyObject *msg, *sym, *mid;
    if (kwnames || nargs < 1 || nargs > 3 || !PyDict_CheckExact(msg = args[0]) || !self->books ||
        !PyDict_CheckExact(self->books) || !(sym = PyDict_GetItemWithError(msg, str_symbol)) ||
        !(mid = PyDict_GetItemWithError(msg, str_midpoint)) || mid == Py_None) {
        if (PyErr_Occurred())
            return NULL;
        return fallback(py_on_book, (PyObject *)self, args, nargs, kwnames);
    }
    PyObject *receipt_ns = nargs > 1 ? args[1] : zero;
    int act = nargs > 2 ? PyObject_IsTrue(args[2]) : 1;
    if (act < 0)
        return NULL;
    Py_INCREF(msg);
    Py_INCREF(sym);
    Py_INCREF(mid);
    PyObject *ret = NULL;
    self->rx_packets++;
    if (PyDict_SetItem(self->books, sym, msg) < 0)
        goto done;
    int truth = PyFloat_CheckExact(mid) ? PyFloat_AS_DOUBLE(mid) != 0.0 : PyObject_IsTrue(mid);
    if (truth < 0)
        goto done;
    if (truth) {
        if (!self->mids) {
            PyErr_SetString(PyExc_AttributeError, "_mids");
            goto done;
        }
        if ((PyDict_CheckExact(self->mids) ? PyDict_SetItem(self->mids, sym, mid) : PyObject_SetItem(self->mids, sym, mid)) < 0)
            goto done;
        if (!self->positions) {
            PyErr_SetString(PyExc_AttributeError, "_positions");
            goto done;
        }
        PyObject *pos = PyDict_CheckExact(self->positions) ? Py_XNewRef(PyDict_GetItemWithError(self->positions, sym))
                                                          : PyObject_CallMethod(self->positions, "get", "O", sym);
        if (!pos && PyErr_Occurred())
            goto done;
        if (pos && pos != Py_None) {
            int bad;
            PyObject *qty;
            if (position_type && Py_IS_TYPE(pos, position_type) && SLOT(pos, p_qty)) { /* its slots, directly */
                Py_XSETREF(SLOT(pos, p_mark), Py_NewRef(mid));
                bad = 0;
                qty = Py_NewRef(SLOT(pos, p_qty));
            }
            else {
                bad = PyObject_SetAttr(pos, str_mark, mid) < 0;
                qty = bad ? NULL : PyObject_GetAttr(pos, str_qty);
            }
            int nonzero = !qty ? -1 : PyFloat_CheckExact(qty) ? PyFloat_AS_DOUBLE(qty) != 0.0
                                                              : PyObject_RichCompareBool(qty, zero, Py_NE);
            Py_XDECREF(qty);
            Py_DECREF(pos);
            if (nonzero < 0)
                goto done;
            int breach = nonzero > 0 ? truth_of(self->breach, "_breach") : 0;
            if (breach < 0)
                goto done;
            if (breach) {
                PyObject *r = PyObject_CallMethodNoArgs((PyObject *)self, str_check_breach);
                if (!r)
                    goto done;
                Py_DECREF(r);
            }
        }
        else
            Py_XDECREF(pos);
    }
    if (!self->by_symbol) {
        PyErr_SetString(PyExc_AttributeError, "_by_symbol");
        goto done;
    }
    PyObject *handlers = PyDict_CheckExact(self->by_symbol)
                             ? Py_XNewRef(PyDict_GetItemWithError(self->by_symbol, sym))
                             : PyObject_CallMethod(self->by_symbol, "get", "O", sym);
    if (!handlers) {
        if (!PyErr_Occurred())
            ret = Py_NewRef(Py_None);
        goto done;
    }
    int have = PyList_CheckExact(handlers) ? PyList_GET_SIZE(handlers) > 0 : PyObject_IsTrue(handlers);
    int enabled = have > 0 ? truth_of(self->trading_enabled, "trading_enabled") : 0;
    if (enabled < 0) {
        Py_DECREF(handlers);
        goto done;
    }
    if (enabled && act) {
        if (self->cork && self->cork != Py_None) {
            ret = PyObject_CallMethodObjArgs((PyObject *)self, str_dispatch, handlers, str_on_book, str_book, msg,
                                             receipt_ns, NULL);
            if (ret) {
                Py_DECREF(ret);
                ret = Py_NewRef(Py_None);
            }
            Py_DECREF(handlers);
            goto done;
        }
        /* _dispatch, inlined for a venue without cork (paper, backtests) */
        int rt = PyObject_IsTrue(receipt_ns);
        PyObject *stamp = receipt_ns;
        if (rt < 0 || (!rt && !(stamp = PyDict_GetItemWithError(msg, str_receipt)))) {
            if (rt >= 0 && !PyErr_Occurred())
                PyErr_SetObject(PyExc_KeyError, str_receipt);
            Py_DECREF(handlers);
            goto done;
        }
        Py_XSETREF(self->md_receipt_ns, Py_NewRef(stamp));
        Py_XSETREF(self->trigger, Py_NewRef(str_book));
        if (!PyList_CheckExact(handlers)) {
            Py_DECREF(handlers);
            PyErr_SetString(PyExc_TypeError, "_by_symbol values must be lists");
            goto done;
        }
        int err = call_handlers(self, handlers, msg, str_on_book);
        Py_DECREF(handlers);
        if (err < 0)
            goto done;
        Py_XSETREF(self->trigger, Py_NewRef(str_timer));
    }
    else {
        Py_DECREF(handlers);
        if (have < 0)
            goto done;
    }
    ret = Py_NewRef(Py_None);
done:
    Py_DECREF(msg);
    Py_DECREF(sym);
    Py_DECREF(mid);
    return ret;
}

/* on_trade(msg, receipt_ns=0): see core._EngineCorePy.on_trade. */
static PyObject *
core_on_trade(CoreObject *self, PyObject *const *args, Py_ssize_t nargs, PyObject *kwnames)
{
    PyObject *msg, *sym;
    if (kwnames || nargs < 1 || nargs > 2 || !PyDict_CheckExact(msg = args[0]) || !self->trades_by_symbol ||
        !PyDict_CheckExact(self->trades_by_symbol) || !(sym = PyDict_GetItemWithError(msg, str_symbol))) {
        if (PyErr_Occurred())
            return NULL;
        return fallback(py_on_trade, (PyObject *)self, args, nargs, kwnames);
    }
    self->rx_packets++;
    self->trades_rx++;
    PyObject *handlers = PyDict_GetItemWithError(self->trades_by_symbol, sym);
    if (!handlers)
        return PyErr_Occurred() ? NULL : Py_NewRef(Py_None);
    int have = PyList_CheckExact(handlers) ? PyList_GET_SIZE(handlers) > 0 : PyObject_IsTrue(handlers);
    int enabled = have > 0 ? truth_of(self->trading_enabled, "trading_enabled") : 0;
    if (have < 0 || enabled < 0)
        return NULL;
    if (enabled) {
        PyObject *r = PyObject_CallMethodObjArgs((PyObject *)self, str_dispatch, handlers, str_on_trade, str_trade,
                                                 msg, nargs > 1 ? args[1] : zero, NULL);
        if (!r)
            return NULL;
        Py_DECREF(r);
    }
    Py_RETURN_NONE;
}


/* ---- execution reports ------------------------------------------------------------------------
 *
 * on_execution_report(r) for the usual reports of a paper session or a backtest, an order's NEW
 * acknowledgement (PENDING_NEW -> NEW) and its CANCELED (an open order -> CANCELED), reported under
 * its own id to an engine whose strategy does not want order updates: OrderManager.apply and the
 * engine's part of it, on the __slots__ of ExecutionReport, OrderState and ReportOutcome. The
 * samples, the latency log and the retirement of final orders stay the Python's (called). Anything
 * else (fills, rejects, repeats, cancel answers under the cancel's id, reports without a receipt
 * stamp) is core._EngineCorePy.on_execution_report before anything changes. */


static PyTypeObject *report_type, *state_type, *outcome_type, *manager_type;
static Py_ssize_t r_cl, r_oid, r_et, r_receipt;
static Py_ssize_t s_cl, s_symbol, s_side, s_status, s_oid, s_leaves, s_ack, s_sent, s_final, s_cancel_pending,
    s_is_open, s_strategy;
static Py_ssize_t q_order, q_fill_qty, q_status_changed, q_final;
/* OrderManager slots: its maps, read for every report */
enum { M_ORDERS, M_OPEN, M_BY_OID, M_OUT, M_OPEN_QTY, M_OPEN_N, M_N };
static Py_ssize_t m_off[M_N];
static PyObject *et_new, *et_canceled, *status_pending, *status_new, *status_partial, *status_canceled;
static PyObject *py_on_report, *float_zero;
static PyObject *str_retire, *str_add, *str_order;
/* fills and refused cancels (below: bind_fills) */
static PyTypeObject *fill_cls;
static PyObject *et_partial, *et_fill, *et_rejected;
static int cancel_refused(PyObject *om, PyObject *r, PyObject *cl);
static int fill_applied(CoreObject *self, PyObject *om, PyObject *r, PyObject *cl, PyObject *receipt, int full);
static int retire(PyObject *om, PyObject *cl);
static int sample_add(PyObject *samples, PyObject *ns);

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

/* bind_reports(ExecutionReport, OrderState, ReportOutcome, OrderManager, (ExecType.NEW, ExecType.CANCELED),
 * (PENDING_NEW, NEW, PARTIALLY_FILLED, CANCELED), on_execution_report) */
static PyObject *
bind_reports(PyObject *mod, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 7 || !PyType_Check(args[0]) || !PyType_Check(args[1]) || !PyType_Check(args[2]) ||
        !PyType_Check(args[3]) || !PyTuple_CheckExact(args[4]) || PyTuple_GET_SIZE(args[4]) != 2 ||
        !PyTuple_CheckExact(args[5]) || PyTuple_GET_SIZE(args[5]) != 4) {
        PyErr_SetString(PyExc_TypeError, "bind_reports(ExecutionReport, OrderState, ReportOutcome, OrderManager, "
                                         "exec_types, statuses, on_execution_report)");
        return NULL;
    }
    PyTypeObject *r = (PyTypeObject *)args[0], *st = (PyTypeObject *)args[1], *q = (PyTypeObject *)args[2];
    if (slot_offset(r, "cl_ord_id", &r_cl) || slot_offset(r, "order_id", &r_oid) ||
        slot_offset(r, "exec_type", &r_et) || slot_offset(r, "receipt_ns", &r_receipt) ||
        slot_offset(st, "cl_ord_id", &s_cl) || slot_offset(st, "symbol", &s_symbol) ||
        slot_offset(st, "side", &s_side) || slot_offset(st, "status", &s_status) ||
        slot_offset(st, "order_id", &s_oid) || slot_offset(st, "leaves_qty", &s_leaves) ||
        slot_offset(st, "ack_ns", &s_ack) || slot_offset(st, "sent_ns", &s_sent) ||
        slot_offset(st, "final_ns", &s_final) || slot_offset(st, "cancel_pending", &s_cancel_pending) ||
        slot_offset(st, "is_open", &s_is_open) || slot_offset(st, "strategy", &s_strategy) ||
        slot_offset(q, "order", &q_order) || slot_offset(q, "fill_qty", &q_fill_qty) ||
        slot_offset(q, "status_changed", &q_status_changed) || slot_offset(q, "final", &q_final))
        return NULL;
    static const char *manager_slots[M_N] = {"orders", "open", "_by_order_id", "_out", "_open_qty", "_open_n"};
    for (int i = 0; i < M_N; i++)
        if (slot_offset((PyTypeObject *)args[3], manager_slots[i], &m_off[i]) < 0)
            return NULL;
    Py_XSETREF(report_type, (PyTypeObject *)Py_NewRef(r));
    Py_XSETREF(state_type, (PyTypeObject *)Py_NewRef(st));
    Py_XSETREF(outcome_type, (PyTypeObject *)Py_NewRef(q));
    Py_XSETREF(manager_type, (PyTypeObject *)Py_NewRef(args[3]));
    Py_XSETREF(et_new, Py_NewRef(PyTuple_GET_ITEM(args[4], 0)));
    Py_XSETREF(et_canceled, Py_NewRef(PyTuple_GET_ITEM(args[4], 1)));
    Py_XSETREF(status_pending, Py_NewRef(PyTuple_GET_ITEM(args[5], 0)));
    Py_XSETREF(status_new, Py_NewRef(PyTuple_GET_ITEM(args[5], 1)));
    Py_XSETREF(status_partial, Py_NewRef(PyTuple_GET_ITEM(args[5], 2)));
    Py_XSETREF(status_canceled, Py_NewRef(PyTuple_GET_ITEM(args[5], 3)));
    Py_XSETREF(py_on_report, Py_NewRef(args[6]));
    Py_RETURN_NONE;
}

/* OrderManager._shift(side, symbol, dq, -1) for an order that stops being open. 0, or -1 (error). */
static int
shift_closed(PyObject *open_n, PyObject *open_qty, long side, PyObject *symbol, PyObject *dq)
{
    PyObject *counts = PyTuple_GET_ITEM(open_n, side), *qtys = PyTuple_GET_ITEM(open_qty, side);
    PyObject *c = PyDict_GetItemWithError(counts, symbol), *minus = NULL, *n = NULL, *q = NULL, *v = NULL;
    if (!c && PyErr_Occurred())
        return -1;
    int r = -1;
    if (!(minus = PyLong_FromLong(-1)) || !(n = PyNumber_Add(c ? c : zero, minus)) || PyDict_SetItem(counts, symbol, n) < 0)
        goto done;
    int positive = PyObject_RichCompareBool(n, zero, Py_GT);
    if (positive < 0)
        goto done;
    if (positive) {
        if (!(q = PyDict_GetItemWithError(qtys, symbol)) && PyErr_Occurred())
            goto done;
        if (!(v = PyNumber_Add(q ? q : float_zero, dq)))
            goto done;
    }
    else
        v = Py_NewRef(float_zero);
    r = PyDict_SetItem(qtys, symbol, v);
done:
    Py_XDECREF(minus);
    Py_XDECREF(n);
    Py_XDECREF(v);
    return r;
}

static PyObject *
core_on_report(CoreObject *self, PyObject *r)
{
    PyObject *om = self->orders, *orders = NULL, *open = NULL, *by_oid = NULL, *out = NULL, *open_qty = NULL,
             *open_n = NULL, *ret = NULL, *st, *dq = NULL;
    if (!py_on_report) {
        PyErr_SetString(PyExc_RuntimeError, "_engine: bind_reports() was not called");
        return NULL;
    }
    if (!report_type || !Py_IS_TYPE(r, report_type) || !om || !Py_IS_TYPE(om, manager_type) ||
        !self->wants_updates || !PySet_CheckExact(self->wants_updates) || !self->round_trip || !self->latency)
        goto python;
    PyObject *et = SLOT(r, r_et), *cl = SLOT(r, r_cl), *receipt = SLOT(r, r_receipt), *roid = SLOT(r, r_oid);
    if (fill_cls && (et == et_partial || et == et_fill || et == et_rejected)) {
        int rt = cl && receipt && PyLong_CheckExact(receipt) ? PyObject_IsTrue(receipt) : 0;
        if (rt < 0)
            return NULL;
        int done = !rt ? 0 : et == et_rejected ? cancel_refused(om, r, cl) : fill_applied(self, om, r, cl, receipt, et == et_fill);
        if (done < 0)
            return NULL;
        if (done)
            Py_RETURN_NONE;
        goto python;
    }
    int cancel = et == et_canceled;
    if (!(et == et_new || cancel) || !cl || !receipt || !PyLong_CheckExact(receipt) || !roid ||
        !PyLong_CheckExact(roid) || !PyObject_IsTrue(receipt))
        goto python; /* (a receipt stamp of 0: the engine's clock decides) */
    /* (the manager's own type: its maps at their slots; one unset is the Python's AttributeError) */
    if (!(orders = Py_XNewRef(SLOT(om, m_off[M_ORDERS]))) || !(open = Py_XNewRef(SLOT(om, m_off[M_OPEN]))) ||
        !(by_oid = Py_XNewRef(SLOT(om, m_off[M_BY_OID]))) || !(out = Py_XNewRef(SLOT(om, m_off[M_OUT]))) ||
        !(open_qty = Py_XNewRef(SLOT(om, m_off[M_OPEN_QTY]))) || !(open_n = Py_XNewRef(SLOT(om, m_off[M_OPEN_N]))))
        goto python_clean;
    if (!PyDict_CheckExact(orders) || !PyDict_CheckExact(open) || !PyDict_CheckExact(by_oid) ||
        !Py_IS_TYPE(out, outcome_type) || !PyTuple_CheckExact(open_qty) || PyTuple_GET_SIZE(open_qty) != 2 ||
        !PyTuple_CheckExact(open_n) || PyTuple_GET_SIZE(open_n) != 2 ||
        !PyDict_CheckExact(PyTuple_GET_ITEM(open_qty, 0)) || !PyDict_CheckExact(PyTuple_GET_ITEM(open_qty, 1)) ||
        !PyDict_CheckExact(PyTuple_GET_ITEM(open_n, 0)) || !PyDict_CheckExact(PyTuple_GET_ITEM(open_n, 1)))
        goto python_clean;
    if (!(st = PyDict_GetItemWithError(orders, cl))) {
        if (PyErr_Occurred())
            goto done;
        goto python_clean; /* a cancel answer under the cancel's id, or an unknown order */
    }
    PyObject *old = SLOT(st, s_status);
    if (!Py_IS_TYPE(st, state_type) ||
        (cancel ? !(old == status_pending || old == status_new || old == status_partial) : old != status_pending))
        goto python_clean;
    PyObject *sid = SLOT(st, s_strategy), *soid = SLOT(st, s_oid), *ack = SLOT(st, s_ack), *scl = SLOT(st, s_cl),
             *side = SLOT(st, s_side), *symbol = SLOT(st, s_symbol), *leaves = SLOT(st, s_leaves),
             *sent = SLOT(st, s_sent);
    if (!sid || !soid || !ack || !scl || !side || !symbol || !leaves || !sent || !PyLong_Check(side))
        goto python_clean;
    long sv = PyLong_AsLong(side);
    if (sv == -1 && PyErr_Occurred())
        goto done;
    if (sv < 0 || sv > 1)
        goto python_clean;
    int wants = PySet_Contains(self->wants_updates, sid);
    if (wants < 0)
        goto done;
    if (wants)
        goto python_clean; /* its strategy is called on every change: the Python does that */
    int set_oid = PyObject_IsTrue(roid) > 0 && PyObject_Not(soid) > 0;
    if (cancel && !(dq = PyNumber_Subtract(float_zero, leaves))) /* 0.0 - the open quantity it had */
        goto done;
    /* OrderManager.apply */
    Py_INCREF(st);
    Py_XSETREF(SLOT(out, q_fill_qty), Py_NewRef(float_zero));
    Py_XSETREF(SLOT(out, q_status_changed), Py_NewRef(Py_True));
    Py_XSETREF(SLOT(out, q_final), Py_NewRef(cancel ? Py_True : Py_False));
    Py_XSETREF(SLOT(out, q_order), Py_NewRef(st));
    int ok = 1;
    if (set_oid) {
        Py_SETREF(SLOT(st, s_oid), Py_NewRef(roid));
        ok = PyDict_SetItem(by_oid, roid, scl) == 0;
    }
    int had_ack = ack != Py_None;
    if (!had_ack)
        Py_SETREF(SLOT(st, s_ack), Py_NewRef(receipt));
    if (ok && !cancel) {
        Py_SETREF(SLOT(st, s_status), Py_NewRef(status_new));
        Py_SETREF(SLOT(st, s_is_open), Py_NewRef(Py_True));
    }
    else if (ok) {
        Py_SETREF(SLOT(st, s_status), Py_NewRef(status_canceled));
        Py_SETREF(SLOT(st, s_leaves), Py_NewRef(float_zero));
        Py_SETREF(SLOT(st, s_final), Py_NewRef(receipt));
        Py_SETREF(SLOT(st, s_cancel_pending), Py_NewRef(Py_False));
        PyObject *gone = PyDict_GetItemWithError(open, scl);
        ok = gone ? PyDict_DelItem(open, scl) == 0 : !PyErr_Occurred();
        if (ok)
            ok = retire(om, scl) == 0;
        if (ok) {
            Py_SETREF(SLOT(st, s_is_open), Py_NewRef(Py_False));
            ok = shift_closed(open_n, open_qty, sv, symbol, dq) == 0;
        }
    }
    /* the engine's part: the round trip of the first answer, the latency record of a final order */
    if (ok && !had_ack) {
        PyObject *ack_ns = SLOT(st, s_ack), *sent_ns = SLOT(st, s_sent);
        PyObject *rt = ack_ns && sent_ns ? PyNumber_Subtract(ack_ns, sent_ns) : NULL;
        ok = rt && sample_add(self->round_trip, rt) == 0;
        Py_XDECREF(rt);
    }
    if (ok && cancel) {
        PyObject *x = PyObject_CallMethodOneArg(self->latency, str_order, st);
        ok = x != NULL;
        Py_XDECREF(x);
    }
    Py_DECREF(st);
    if (ok)
        ret = Py_NewRef(Py_None);
    goto done;
python_clean:
    Py_CLEAR(orders);
    Py_CLEAR(open);
    Py_CLEAR(by_oid);
    Py_CLEAR(out);
    Py_CLEAR(open_qty);
    Py_CLEAR(open_n);
python:;
    PyObject *stack[2] = {(PyObject *)self, r};
    return PyObject_Vectorcall(py_on_report, stack, 2, NULL);
done:
    Py_XDECREF(orders);
    Py_XDECREF(open);
    Py_XDECREF(by_oid);
    Py_XDECREF(out);
    Py_XDECREF(open_qty);
    Py_XDECREF(open_n);
    Py_XDECREF(dq);
    return ret;
}

/* ---- orders: submit and cancel ---------------------------------------------------------------
 *
 * submit() for the usual order: a limit order with float quantity and price, from an engine whose
 * venue is connected, trading enabled, and whose risk checks are all of the standard set but the
 * kill switch (MaxOrderQty, PriceBand, MaxNotional, MaxPosition, MaxOpenOrders, MaxOrdersPerSecond,
 * exactly those classes) and all pass. The checks are evaluated on their __slots__ and the engine's
 * state, with nothing changed; anything else, a check that refuses included, is
 * core._EngineCorePy._submit_at from the start, at the time read (the standard checks are pure:
 * asking them again is harmless). Then Order and OrderState are built at their slots (what their __init__ sets), the
 * order manager's add() is done on its maps, and the venue, the risk engine's accept hooks, the
 * clock and the tick-to-trade samples are called as the Python calls them.
 *
 * cancel() likewise for an open order of the order manager's own type: new_cancel_id() on its
 * slots (its rare forgetting step is the Python's, called), the venue's send_cancel called.
 *
 * Why: the order path was ~450 bytecodes and six Python frames an order (submit, Order, the risk
 * chain, OrderState, add) before the venue; the risk chain alone was 1.2 % of a backtest. */

static PyTypeObject *order_cls, *side_cls, *tif_cls, *risk_cls;
static PyObject *ord_limit, *tif_gtc, *reject_none, *py_submit, *py_submit_at, *py_cancel, *one;
static PyObject *str_connected, *str_send_new_order, *str_send_cancel, *str_send_failed, *str_sent,
    *str_forget_cancels, *str_append, *str_asks, *str_bids, *str_positions, *str_pnl;
enum { O_CL, O_SYMBOL, O_SIDE, O_QTY, O_PRICE, O_TYPE, O_TIF, O_N };
static Py_ssize_t o_off[O_N];
static const char *order_slots[O_N] = {"cl_ord_id", "symbol", "side", "qty", "price", "ord_type", "tif"};
enum {
    S_CL, S_SYMBOL, S_SIDE, S_QTY, S_PRICE, S_TYPE, S_TIF, S_STRATEGY, S_STATUS, S_OID, S_FILLED, S_AVG,
    S_LEAVES, S_REJECT, S_TAKER, S_CANCEL_PENDING, S_TRIGGER, S_MD_RECEIPT, S_DECISION, S_SENT, S_ACK,
    S_FIRST_FILL, S_FINAL, S_RECORDED, S_IS_OPEN, S_N
};
static Py_ssize_t st_off[S_N];
static const char *state_slots[S_N] = {
    "cl_ord_id", "symbol", "side", "qty", "price", "ord_type", "tif", "strategy", "status", "order_id",
    "filled_qty", "avg_px", "leaves_qty", "reject_reason", "taker", "cancel_pending", "trigger",
    "md_receipt_ns", "decision_ns", "sent_ns", "ack_ns", "first_fill_ns", "final_ns", "recorded", "is_open"};
enum { N_NEXT, N_CANCELS, N_CANCELS_SENT, N_CLOCK, N_RETAIN_S, N_RETAIN_MAX, N_RETIRED, N_N };
static Py_ssize_t n_off[N_N];
static const char *manager_order_slots[N_N] = {"_next_id", "_cancels", "_cancels_sent", "_clock", "retain_s",
                                               "retain_max", "_retired"};
static Py_ssize_t rk_check_fns, rk_accept_fns;
/* the standard checks, in bind_orders' order; the slots each reads (-1: none) */
enum { K_QTY, K_BAND, K_NOTIONAL, K_POSITION, K_OPEN, K_RATE, K_N };
static PyTypeObject *check_cls[K_N];
static PyObject *check_fn[K_N];
static Py_ssize_t k_a[K_N], k_b[K_N];
static const char *check_slots[K_N][2] = {{"limit", NULL}, {"_frac_max", NULL}, {"_max", NULL},
                                         {"_max", NULL}, {"limit", NULL}, {"limit", "_sent"}};
/* Engine's own view methods (risk reads the engine through them): a type that overrides one gets the
 * Python; the last type found to have them all, while unchanged (its version tag), is not looked at
 * again. */
enum { V_MID, V_POSITION, V_OPEN_QTY, V_OPEN_COUNT, V_N };
static PyObject *view_name[V_N], *view_fn[V_N];
static PyTypeObject *view_ok_type;
static unsigned int view_ok_tag;

static int
view_is_engines(PyTypeObject *t)
{
    if (t == view_ok_type && (t->tp_flags & Py_TPFLAGS_VALID_VERSION_TAG) && t->tp_version_tag == view_ok_tag)
        return 1;
    for (int i = 0; i < V_N; i++)
        if (!view_fn[i] || _PyType_Lookup(t, view_name[i]) != view_fn[i])
            return 0;
    if (!PyType_HasFeature(t, Py_TPFLAGS_VALID_VERSION_TAG))
        return 1; /* (no tag to remember it by: looked up again next time) */
    view_ok_type = t; /* (borrowed: only compared) */
    view_ok_tag = t->tp_version_tag;
    return 1;
}

/* An exact float's value: 0, or -1 for anything else (no error set). */
static inline int
dbl(PyObject *v, double *out)
{
    if (!v || !PyFloat_CheckExact(v))
        return -1;
    *out = PyFloat_AS_DOUBLE(v);
    return 0;
}

/* An exact int's value that fits a long long: 0, or -1 (no error set). */
static inline int
i64(PyObject *v, long long *out)
{
    if (!v || !PyLong_CheckExact(v))
        return -1;
    int64_t c;
    if (compact_i64(v, &c) == 0) {
        *out = c;
        return 0;
    }
    int overflow;
    *out = PyLong_AsLongLongAndOverflow(v, &overflow);
    if (overflow || (*out == -1 && PyErr_Occurred())) {
        PyErr_Clear();
        return -1;
    }
    return 0;
}

/* dict.get(key, default) of an exact dict: a borrowed reference, or NULL with an error set. */
static inline PyObject *
dict_get(PyObject *d, PyObject *key, PyObject *dflt)
{
    PyObject *v = PyDict_GetItemWithError(d, key);
    return v ? v : PyErr_Occurred() ? NULL : dflt;
}

/* Call obj.name(arg) and drop the result: 0, or -1. */
static inline int
call1(PyObject *obj, PyObject *name, PyObject *arg)
{
    PyObject *r = PyObject_CallMethodOneArg(obj, name, arg);
    Py_XDECREF(r);
    return r ? 0 : -1;
}

/* The standard checks of `risk` all pass for this order: 1; a check refuses, or something is not
 * the usual case: 0 (the Python decides); -1 error. Reads only. */
static int
checks_pass(CoreObject *self, PyObject *risk, PyObject *symbol, long side, double qty, double price,
            PyObject *now, PyObject *open, PyObject *open_qty)
{
    PyObject *fns = SLOT(risk, rk_check_fns);
    if (!fns || !PyTuple_CheckExact(fns))
        return 0;
    int viewed = 0;
    for (Py_ssize_t i = 0; i < PyTuple_GET_SIZE(fns); i++) {
        PyObject *fn = PyTuple_GET_ITEM(fns, i);
        if (!PyMethod_Check(fn))
            return 0;
        PyObject *c = PyMethod_GET_SELF(fn), *f = PyMethod_GET_FUNCTION(fn);
        int k = 0;
        while (k < K_N && !(f == check_fn[k] && Py_IS_TYPE(c, check_cls[k])))
            k++;
        if (k == K_N)
            return 0;
        if (!viewed && k != K_QTY && k != K_RATE) {
            if (!view_is_engines(Py_TYPE(self)))
                return 0;
            viewed = 1;
        }
        double a, m, x;
        long long n, t0, t1;
        PyObject *v;
        switch (k) {
        case K_QTY: /* order.qty > limit */
            if (dbl(SLOT(c, k_a[k]), &a) < 0 || qty > a)
                return 0;
            break;
        case K_BAND: /* no mid (None or 0), or abs(price - mid) > _frac_max * mid */
            if (!(v = dict_get(self->mids, symbol, Py_None)))
                return -1;
            if (dbl(v, &m) < 0 || m == 0.0 || dbl(SLOT(c, k_a[k]), &a) < 0 || fabs(price - m) > a * m)
                return 0;
            break;
        case K_NOTIONAL: /* qty * (price, or mid when price <= 0) > _max */
            x = price;
            if (x <= 0.0) { /* (as Python's px <= 0.0: a NaN price is not valued at mid) */
                if (!(v = dict_get(self->mids, symbol, Py_None)))
                    return -1;
                if (dbl(v, &x) < 0)
                    return 0;
            }
            if (dbl(SLOT(c, k_a[k]), &a) < 0 || qty * x > a)
                return 0;
            break;
        case K_POSITION: { /* +-position + open same-side quantity + qty > _max */
            PyObject *pos = dict_get(self->positions, symbol, NULL);
            double p = 0.0, o;
            if (!pos && PyErr_Occurred())
                return -1;
            if (pos && (!position_type || !Py_IS_TYPE(pos, position_type) || dbl(SLOT(pos, p_qty), &p) < 0))
                return 0;
            if (!(v = dict_get(PyTuple_GET_ITEM(open_qty, side), symbol, float_zero)))
                return -1;
            if (dbl(v, &o) < 0 || dbl(SLOT(c, k_a[k]), &a) < 0)
                return 0;
            x = side == 0 ? p + o + qty : -p + o + qty;
            if (x > a)
                return 0;
            break;
        }
        case K_OPEN: /* len(open orders) >= limit */
            if (i64(SLOT(c, k_a[k]), &n) < 0 || PyDict_GET_SIZE(open) >= n)
                return 0;
            break;
        case K_RATE: { /* len(sent) == limit and now - sent[0] < 1 s */
            PyObject *sent = SLOT(c, k_b[k]);
            if (i64(SLOT(c, k_a[k]), &n) < 0 || !sent)
                return 0;
            Py_ssize_t len = PyObject_Size(sent);
            if (len < 0)
                return -1;
            if (len == n) {
                PyObject *first = PySequence_GetItem(sent, 0);
                if (!first)
                    return -1;
                int ok = i64(first, &t0) == 0 && i64(now, &t1) == 0;
                Py_DECREF(first);
                if (!ok || t1 - t0 < 1000000000LL)
                    return 0;
            }
            break;
        }
        }
    }
    return 1;
}

/* A new object of a __slots__ type with every slot set (references stolen; NULL items allowed only
 * on failure, when they are released with the rest). */
static PyObject *
slotted(PyTypeObject *t, const Py_ssize_t *off, PyObject **items, int n)
{
    for (int i = 0; i < n; i++)
        if (!items[i])
            goto fail;
    PyObject *o = t->tp_alloc(t, 0);
    if (!o)
        goto fail;
    for (int i = 0; i < n; i++)
        SLOT(o, off[i]) = items[i];
    return o;
fail:
    for (int i = 0; i < n; i++)
        Py_XDECREF(items[i]);
    return NULL;
}

/* +1 to counts[symbol] and + qty to qtys[symbol] (OrderManager.add's shift). 0, or -1. */
static int
shift_opened(PyObject *counts, PyObject *qtys, PyObject *symbol, PyObject *qty)
{
    PyObject *c = dict_get(counts, symbol, zero), *n, *q, *v;
    if (!c)
        return -1;
    long long cv;
    n = i64(c, &cv) == 0 && cv < LLONG_MAX ? PyLong_FromLongLong(cv + 1) : PyNumber_Add(c, one);
    int r = n ? PyDict_SetItem(counts, symbol, n) : -1;
    Py_XDECREF(n);
    if (r < 0 || !(q = dict_get(qtys, symbol, float_zero)))
        return -1;
    if (!(v = PyNumber_Add(q, qty)))
        return -1;
    r = PyDict_SetItem(qtys, symbol, v);
    Py_DECREF(v);
    return r;
}

static PyObject *
core_submit(CoreObject *self, PyObject *const *args, Py_ssize_t nargs, PyObject *kwnames)
{
    if (!py_submit) {
        PyErr_SetString(PyExc_RuntimeError, "_engine: bind_orders() was not called");
        return NULL;
    }
    Py_ssize_t nkw = kwnames ? PyTuple_GET_SIZE(kwnames) : 0;
    if (nargs + nkw > 7 || !self->clock) /* (too many: the Python's TypeError; no clock: its AttributeError) */
        return fallback(py_submit, (PyObject *)self, args, nargs, kwnames);
    PyObject *now = PyObject_CallNoArgs(self->clock), *ret = NULL, *order = NULL, *st = NULL;
    if (!now)
        return NULL;
    if (kwnames || nargs < 4)
        goto python;
    PyObject *sid = args[0], *symbol = args[1], *side = args[2], *qty = args[3];
    PyObject *price = nargs > 4 ? args[4] : float_zero, *ord_type = nargs > 5 ? args[5] : ord_limit;
    PyObject *tif = nargs > 6 ? args[6] : NULL;
    PyObject *om = self->orders, *venue = self->venue, *risk = self->risk;
    double q, px;
    long sv;
    /* the usual case, read without changing anything */
    if (self->trading_enabled != Py_True || !venue || !risk || !Py_IS_TYPE(risk, risk_cls) || !om ||
        !Py_IS_TYPE(om, manager_type) || !PyUnicode_CheckExact(sid) || !PyUnicode_CheckExact(symbol) ||
        !Py_IS_TYPE(side, side_cls) || dbl(qty, &q) < 0 || dbl(price, &px) < 0 || ord_type != ord_limit ||
        (tif && !Py_IS_TYPE(tif, tif_cls)) || !self->books || !PyDict_CheckExact(self->books) || !self->mids ||
        !PyDict_CheckExact(self->mids) || !self->positions || !PyDict_CheckExact(self->positions) ||
        !self->trigger || !self->md_receipt_ns || !self->t2t)
        goto python;
    sv = PyLong_AsLong(side);
    if (sv == -1 && PyErr_Occurred())
        goto done;
    if (sv < 0 || sv > 1)
        goto python;
    PyObject *orders = SLOT(om, m_off[M_ORDERS]), *open = SLOT(om, m_off[M_OPEN]),
             *open_qty = SLOT(om, m_off[M_OPEN_QTY]), *open_n = SLOT(om, m_off[M_OPEN_N]), *next = SLOT(om, n_off[N_NEXT]);
    long long cid;
    if (!orders || !PyDict_CheckExact(orders) || !open || !PyDict_CheckExact(open) || !open_qty ||
        !PyTuple_CheckExact(open_qty) || PyTuple_GET_SIZE(open_qty) != 2 || !open_n || !PyTuple_CheckExact(open_n) ||
        PyTuple_GET_SIZE(open_n) != 2 || !PyDict_CheckExact(PyTuple_GET_ITEM(open_qty, sv)) ||
        !PyDict_CheckExact(PyTuple_GET_ITEM(open_n, sv)) || i64(next, &cid) < 0 || cid == LLONG_MAX)
        goto python;
    PyObject *conn = PyObject_GetAttr(venue, str_connected);
    if (!conn)
        goto done;
    Py_DECREF(conn); /* (only compared) */
    if (conn != Py_True)
        goto python;
    int pass = checks_pass(self, risk, symbol, sv, q, px, now, open, open_qty);
    if (pass < 0)
        goto done;
    if (!pass)
        goto python;
    /* maker or taker: marketable at decision time against the last book */
    PyObject *taker = Py_False, *book = PyDict_GetItemWithError(self->books, symbol);
    if (book) {
        PyObject *opp, *lv, *best;
        double b;
        if (!PyDict_CheckExact(book) || !(opp = PyDict_GetItemWithError(book, sv == 0 ? str_asks : str_bids))) {
            if (PyErr_Occurred())
                goto done;
            goto python;
        }
        if (!PyList_CheckExact(opp))
            goto python;
        if (PyList_GET_SIZE(opp)) {
            lv = PyList_GET_ITEM(opp, 0);
            if (PyList_CheckExact(lv) && PyList_GET_SIZE(lv) >= 1)
                best = PyList_GET_ITEM(lv, 0);
            else if (PyTuple_CheckExact(lv) && PyTuple_GET_SIZE(lv) >= 1)
                best = PyTuple_GET_ITEM(lv, 0);
            else
                goto python;
            if (dbl(best, &b) < 0)
                goto python;
            taker = (sv == 0 ? px >= b : px <= b) ? Py_True : Py_False;
        }
    }
    else if (PyErr_Occurred())
        goto done;
    if (!tif)
        tif = tif_gtc;
    /* decided: the order is taken */
    PyObject *cl = PyLong_FromLongLong(cid), *after = PyLong_FromLongLong(cid + 1);
    if (!cl || !after) {
        Py_XDECREF(cl);
        Py_XDECREF(after);
        goto done;
    }
    Py_SETREF(SLOT(om, n_off[N_NEXT]), after);
    PyObject *oi[O_N] = {Py_NewRef(cl), Py_NewRef(symbol), Py_NewRef(side), Py_NewRef(qty), Py_NewRef(price),
                         Py_NewRef(ord_type), Py_NewRef(tif)};
    if (!(order = slotted(order_cls, o_off, oi, O_N))) {
        Py_DECREF(cl);
        goto done;
    }
    PyObject *si[S_N] = {
        cl, Py_NewRef(symbol), Py_NewRef(side), Py_NewRef(qty), Py_NewRef(price), Py_NewRef(ord_type),
        Py_NewRef(tif), Py_NewRef(sid), Py_NewRef(status_pending), Py_NewRef(zero), Py_NewRef(float_zero),
        Py_NewRef(float_zero), Py_NewRef(qty), Py_NewRef(reject_none), Py_NewRef(taker), Py_NewRef(Py_False),
        Py_NewRef(self->trigger), Py_NewRef(self->md_receipt_ns), Py_NewRef(now), Py_NewRef(zero), Py_NewRef(Py_None),
        Py_NewRef(Py_None), Py_NewRef(zero), Py_NewRef(Py_False), Py_NewRef(Py_True)};
    if (!(st = slotted(state_type, st_off, si, S_N)))
        goto done;
    PyObject *key = SLOT(st, st_off[S_CL]);
    /* OrderManager.add */
    if (PyDict_SetItem(orders, key, st) < 0 || PyDict_SetItem(open, key, st) < 0 ||
        shift_opened(PyTuple_GET_ITEM(open_n, sv), PyTuple_GET_ITEM(open_qty, sv), symbol, qty) < 0)
        goto done;
    PyObject *r = PyObject_CallMethodOneArg(venue, str_send_new_order, order);
    if (!r) {
        if (!PyErr_ExceptionMatches(PyExc_ConnectionError) && !PyErr_ExceptionMatches(PyExc_ValueError))
            goto done;
        PyObject *et, *exc, *tb;
        PyErr_Fetch(&et, &exc, &tb);
        PyErr_NormalizeException(&et, &exc, &tb);
        if (tb && exc)
            PyException_SetTraceback(exc, tb);
        Py_XDECREF(et);
        Py_XDECREF(tb);
        if (exc) {
            PyObject *call[4] = {(PyObject *)self, key, order, exc};
            ret = PyObject_VectorcallMethod(str_send_failed, call, 4 | PY_VECTORCALL_ARGUMENTS_OFFSET, NULL);
            Py_DECREF(exc);
        }
        goto done;
    }
    Py_DECREF(r);
    PyObject *accept = SLOT(risk, rk_accept_fns);
    int any = accept && PyTuple_CheckExact(accept) ? PyTuple_GET_SIZE(accept) > 0 : truth_of(accept, "_accept_fns");
    if (any < 0)
        goto done;
    if (any) {
        PyObject *call[3] = {risk, order, now};
        if (!(r = PyObject_VectorcallMethod(str_sent, call, 3 | PY_VECTORCALL_ARGUMENTS_OFFSET, NULL)))
            goto done;
        Py_DECREF(r);
    }
    self->orders_sent++;
    int corked = truth_of(self->corked, "_corked");
    if (corked < 0)
        goto done;
    if (corked) {
        if (!self->unsent) {
            PyErr_SetString(PyExc_AttributeError, "_unsent");
            goto done;
        }
        if (PyList_CheckExact(self->unsent) ? PyList_Append(self->unsent, st) < 0
                                            : !(r = PyObject_CallMethodOneArg(self->unsent, str_append, st)))
            goto done;
        if (!PyList_CheckExact(self->unsent))
            Py_DECREF(r);
        ret = Py_NewRef(st);
        goto done;
    }
    PyObject *sent = PyObject_CallNoArgs(self->clock);
    if (!sent)
        goto done;
    Py_SETREF(SLOT(st, st_off[S_SENT]), sent);
    PyObject *trig = self->trigger;
    int md = trig == str_book || trig == str_trade ||
             (PyUnicode_CheckExact(trig) && (PyUnicode_Compare(trig, str_book) == 0 || PyUnicode_Compare(trig, str_trade) == 0));
    if (md) {
        PyObject *t2t = PyNumber_Subtract(sent, SLOT(st, st_off[S_MD_RECEIPT]));
        if (!t2t)
            goto done;
        int bad = sample_add(self->t2t, t2t) < 0;
        Py_DECREF(t2t);
        if (bad)
            goto done;
    }
    ret = Py_NewRef(st);
    goto done;
python:; /* _submit_at(now, ...): the Python from the start, at the time read */
    PyObject *stack[9] = {(PyObject *)self, now};
    for (Py_ssize_t i = 0; i < nargs + nkw; i++)
        stack[i + 2] = args[i];
    ret = PyObject_Vectorcall(py_submit_at, stack, nargs + 2, kwnames);
done:
    Py_DECREF(now);
    Py_XDECREF(order);
    Py_XDECREF(st);
    return ret;
}

static PyObject *
core_cancel(CoreObject *self, PyObject *cl)
{
    if (!py_cancel) {
        PyErr_SetString(PyExc_RuntimeError, "_engine: bind_orders() was not called");
        return NULL;
    }
    PyObject *om = self->orders, *venue = self->venue, *open, *st, *r;
    if (!om || !Py_IS_TYPE(om, manager_type) || !venue || !(open = SLOT(om, m_off[M_OPEN])) ||
        !PyDict_CheckExact(open))
        goto python;
    if (!(st = PyDict_GetItemWithError(open, cl)))
        return PyErr_Occurred() ? NULL : Py_NewRef(Py_False);
    if (!Py_IS_TYPE(st, state_type))
        goto python;
    int pending = truth_of(SLOT(st, st_off[S_CANCEL_PENDING]), "cancel_pending");
    if (pending < 0)
        return NULL;
    if (pending)
        Py_RETURN_FALSE;
    PyObject *cancels = SLOT(om, n_off[N_CANCELS]), *sent = SLOT(om, n_off[N_CANCELS_SENT]),
             *clock = SLOT(om, n_off[N_CLOCK]), *retain_s = SLOT(om, n_off[N_RETAIN_S]),
             *retain_max = SLOT(om, n_off[N_RETAIN_MAX]), *next = SLOT(om, n_off[N_NEXT]);
    long long cid;
    if (!cancels || !PyDict_CheckExact(cancels) || !sent || !clock || !retain_s || !retain_max ||
        i64(next, &cid) < 0 || cid == LLONG_MAX)
        goto python;
    PyObject *conn = PyObject_GetAttr(venue, str_connected);
    if (!conn)
        return NULL;
    int up = truth_of(conn, "connected");
    Py_DECREF(conn);
    if (up <= 0)
        return up < 0 ? NULL : Py_NewRef(Py_False);
    Py_INCREF(st);
    PyObject *ret = NULL, *ccid = NULL, *after = NULL, *now = NULL, *entry = NULL, *horizon = NULL;
    /* OrderManager.new_cancel_id */
    if (!(ccid = PyLong_FromLongLong(cid)) || !(after = PyLong_FromLongLong(cid + 1)))
        goto done;
    Py_SETREF(SLOT(om, n_off[N_NEXT]), after);
    after = NULL;
    if (PyDict_SetItem(cancels, ccid, cl) < 0 || !(now = PyObject_CallNoArgs(clock)) ||
        !(entry = PyTuple_Pack(2, now, ccid)))
        goto done;
    if (!(r = PyObject_CallMethodOneArg(sent, str_append, entry)))
        goto done;
    Py_DECREF(r);
    Py_ssize_t len = PyObject_Size(sent);
    PyObject *first = len > 0 ? PySequence_GetItem(sent, 0) : NULL, *t0;
    if (len < 0 || !first)
        goto done;
    int old = -1;
    if (PyTuple_CheckExact(first) && PyTuple_GET_SIZE(first) >= 1 && (horizon = PyNumber_Subtract(now, retain_s)))
        old = PyObject_RichCompareBool(t0 = PyTuple_GET_ITEM(first, 0), horizon, Py_LT);
    Py_DECREF(first);
    if (old < 0) {
        if (!PyErr_Occurred())
            PyErr_SetString(PyExc_TypeError, "_cancels_sent holds (time, id) tuples");
        goto done;
    }
    if (!old) {
        PyObject *n = PyLong_FromSsize_t(len);
        old = n ? PyObject_RichCompareBool(n, retain_max, Py_GT) : -1;
        Py_XDECREF(n);
        if (old < 0)
            goto done;
    }
    if (old) {
        if (!(r = PyObject_CallMethodOneArg(om, str_forget_cancels, horizon)))
            goto done;
        Py_DECREF(r);
    }
    /* the venue */
    PyObject *call[4] = {venue, ccid, cl, SLOT(st, st_off[S_SYMBOL])};
    if (!call[3]) {
        PyErr_SetString(PyExc_AttributeError, "symbol");
        goto done;
    }
    if (!(r = PyObject_VectorcallMethod(str_send_cancel, call, 4 | PY_VECTORCALL_ARGUMENTS_OFFSET, NULL))) {
        if (PyErr_ExceptionMatches(PyExc_ConnectionError) || PyErr_ExceptionMatches(PyExc_ValueError)) {
            PyErr_Clear();
            ret = Py_NewRef(Py_False);
        }
        goto done;
    }
    Py_DECREF(r);
    Py_SETREF(SLOT(st, st_off[S_CANCEL_PENDING]), Py_NewRef(Py_True));
    self->cancels_sent++;
    ret = Py_NewRef(Py_True);
done:
    Py_DECREF(st);
    Py_XDECREF(ccid);
    Py_XDECREF(after);
    Py_XDECREF(now);
    Py_XDECREF(entry);
    Py_XDECREF(horizon);
    return ret;
python:;
    PyObject *stack[2] = {(PyObject *)self, cl};
    return PyObject_Vectorcall(py_cancel, stack, 2, NULL);
}

/* bind_orders(Order, Side, TimeInForce, (OrdType.LIMIT, TimeInForce.GTC, RejectReason.NONE), RiskEngine,
 * (MaxOrderQty, PriceBand, MaxNotional, MaxPosition, MaxOpenOrders, MaxOrdersPerSecond), Engine,
 * submit, _submit_at, cancel): after bind_reports (OrderState, OrderManager). */
static PyObject *
bind_orders(PyObject *mod, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 10 || !PyType_Check(args[0]) || !PyType_Check(args[1]) || !PyType_Check(args[2]) ||
        !PyTuple_CheckExact(args[3]) || PyTuple_GET_SIZE(args[3]) != 3 || !PyType_Check(args[4]) ||
        !PyTuple_CheckExact(args[5]) || PyTuple_GET_SIZE(args[5]) != K_N || !PyType_Check(args[6]) || !state_type ||
        !manager_type) {
        PyErr_SetString(PyExc_TypeError, "bind_orders(Order, Side, TimeInForce, (LIMIT, GTC, RejectReason.NONE), "
                                         "RiskEngine, standard checks, Engine, submit, _submit_at, cancel) after bind_reports()");
        return NULL;
    }
    for (int i = 0; i < O_N; i++)
        if (slot_offset((PyTypeObject *)args[0], order_slots[i], &o_off[i]) < 0)
            return NULL;
    for (int i = 0; i < S_N; i++)
        if (slot_offset(state_type, state_slots[i], &st_off[i]) < 0)
            return NULL;
    for (int i = 0; i < N_N; i++)
        if (slot_offset(manager_type, manager_order_slots[i], &n_off[i]) < 0)
            return NULL;
    PyTypeObject *rk = (PyTypeObject *)args[4];
    if (slot_offset(rk, "_check_fns", &rk_check_fns) < 0 || slot_offset(rk, "_accept_fns", &rk_accept_fns) < 0)
        return NULL;
    for (int k = 0; k < K_N; k++) {
        PyObject *t = PyTuple_GET_ITEM(args[5], k);
        if (!PyType_Check(t)) {
            PyErr_SetString(PyExc_TypeError, "bind_orders: the standard checks are classes");
            return NULL;
        }
        PyObject *fn = PyObject_GetAttrString(t, "check");
        if (!fn)
            return NULL;
        Py_XSETREF(check_fn[k], fn);
        Py_XSETREF(check_cls[k], (PyTypeObject *)Py_NewRef(t));
        if (slot_offset((PyTypeObject *)t, check_slots[k][0], &k_a[k]) < 0 ||
            (check_slots[k][1] && slot_offset((PyTypeObject *)t, check_slots[k][1], &k_b[k]) < 0))
            return NULL;
    }
    static const char *views[V_N] = {"mid", "position", "open_qty", "open_order_count"};
    for (int i = 0; i < V_N; i++) {
        if (!view_name[i] && !(view_name[i] = PyUnicode_InternFromString(views[i])))
            return NULL;
        PyObject *fn = _PyType_Lookup((PyTypeObject *)args[6], view_name[i]);
        if (!fn) {
            PyErr_Format(PyExc_TypeError, "bind_orders: the engine has no %s", views[i]);
            return NULL;
        }
        Py_XSETREF(view_fn[i], Py_NewRef(fn));
    }
    view_ok_type = NULL;
    Py_XSETREF(order_cls, (PyTypeObject *)Py_NewRef(args[0]));
    Py_XSETREF(side_cls, (PyTypeObject *)Py_NewRef(args[1]));
    Py_XSETREF(tif_cls, (PyTypeObject *)Py_NewRef(args[2]));
    Py_XSETREF(ord_limit, Py_NewRef(PyTuple_GET_ITEM(args[3], 0)));
    Py_XSETREF(tif_gtc, Py_NewRef(PyTuple_GET_ITEM(args[3], 1)));
    Py_XSETREF(reject_none, Py_NewRef(PyTuple_GET_ITEM(args[3], 2)));
    Py_XSETREF(risk_cls, (PyTypeObject *)Py_NewRef(rk));
    Py_XSETREF(py_submit, Py_NewRef(args[7]));
    Py_XSETREF(py_submit_at, Py_NewRef(args[8]));
    Py_XSETREF(py_cancel, Py_NewRef(args[9]));
    Py_RETURN_NONE;
}

/* ---- a final order's retirement and a latency sample, without a Python frame ---------------------
 *
 * retire(): OrderManager._retire for the manager's own type (checked by the callers): the entry
 * appended, and its usual case (nothing old enough to forget) decided here; forgetting is the
 * Python's (_forget_cancels, _forget_retired). sample_add(): Samples.add while its buffer has room;
 * after that (the reservoir's random replacement) and for any other type, the Python's. */

static PyTypeObject *samples_cls;
static Py_ssize_t sm_buf, sm_cap, sm_n;
static PyObject *str_forget_retired;

/* dq and (dq[0][0] < horizon or len(dq) > most): 1, 0, or -1. */
static int
stale(PyObject *dq, PyObject *horizon, PyObject *most)
{
    Py_ssize_t len = PyObject_Size(dq);
    if (len <= 0)
        return len < 0 ? -1 : 0;
    PyObject *first = PySequence_GetItem(dq, 0), *t = first ? PySequence_GetItem(first, 0) : NULL;
    Py_XDECREF(first);
    if (!t)
        return -1;
    int r = PyObject_RichCompareBool(t, horizon, Py_LT);
    Py_DECREF(t);
    if (r)
        return r;
    PyObject *n = PyLong_FromSsize_t(len);
    r = n ? PyObject_RichCompareBool(n, most, Py_GT) : -1;
    Py_XDECREF(n);
    return r;
}

static int
retire(PyObject *om, PyObject *cl)
{
    PyObject *clock = SLOT(om, n_off[N_CLOCK]), *retired = SLOT(om, n_off[N_RETIRED]),
             *retain_s = SLOT(om, n_off[N_RETAIN_S]), *retain_max = SLOT(om, n_off[N_RETAIN_MAX]),
             *sent = SLOT(om, n_off[N_CANCELS_SENT]);
    if (!py_submit || !clock || !retired || !retain_s || !retain_max || !sent)
        return call1(om, str_retire, cl);
    PyObject *now = PyObject_CallNoArgs(clock), *entry = NULL, *horizon = NULL;
    int r = -1, old;
    if (!now || !(entry = PyTuple_Pack(2, now, cl)) || call1(retired, str_append, entry) < 0 ||
        !(horizon = PyNumber_Subtract(now, retain_s)) || (old = stale(retired, horizon, retain_max)) < 0)
        goto done;
    if (old) /* (Python: not (retired[0][0] >= horizon and ...): the same for the clock's numbers) */
        r = call1(om, str_forget_retired, horizon);
    else if ((old = stale(sent, horizon, retain_max)) >= 0)
        r = old ? call1(om, str_forget_cancels, horizon) : 0;
done:
    Py_XDECREF(now);
    Py_XDECREF(entry);
    Py_XDECREF(horizon);
    return r;
}

static int
sample_add(PyObject *samples, PyObject *ns)
{
    long long n, cap, v;
    PyObject *buf;
    if (samples_cls && Py_IS_TYPE(samples, samples_cls) && (buf = SLOT(samples, sm_buf)) &&
        i64(SLOT(samples, sm_n), &n) == 0 && i64(SLOT(samples, sm_cap), &cap) == 0 && n >= 0 && n < cap &&
        i64(ns, &v) == 0) {
        Py_buffer view;
        if (PyObject_GetBuffer(buf, &view, PyBUF_WRITABLE | PyBUF_FORMAT) < 0)
            PyErr_Clear(); /* (the Python says why) */
        else {
            int ok = view.itemsize == 8 && view.format && strcmp(view.format, "q") == 0 && view.len >= (n + 1) * 8;
            if (ok)
                ((long long *)view.buf)[n] = v;
            PyBuffer_Release(&view);
            if (ok) {
                PyObject *n1 = PyLong_FromLongLong(n + 1);
                if (!n1)
                    return -1;
                Py_SETREF(SLOT(samples, sm_n), n1);
                return 0;
            }
        }
    }
    return call1(samples, str_add, ns);
}

/* bind_samples(Samples) */
static PyObject *
bind_samples(PyObject *mod, PyObject *t)
{
    if (!PyType_Check(t)) {
        PyErr_SetString(PyExc_TypeError, "bind_samples(Samples)");
        return NULL;
    }
    if (slot_offset((PyTypeObject *)t, "_buf", &sm_buf) || slot_offset((PyTypeObject *)t, "cap", &sm_cap) ||
        slot_offset((PyTypeObject *)t, "n", &sm_n))
        return NULL;
    if (!str_forget_retired && !(str_forget_retired = PyUnicode_InternFromString("_forget_retired")))
        return NULL;
    Py_XSETREF(samples_cls, (PyTypeObject *)Py_NewRef(t));
    Py_RETURN_NONE;
}

/* ---- fills, and refused cancels --------------------------------------------------------------
 *
 * on_execution_report(r) for a fill (PARTIAL_FILL or FILL) under the order's own id that adds to
 * its filled quantity, of an order that is NEW or PARTIALLY_FILLED, for a strategy that wants
 * neither order updates nor fills, on a position of its own type: OrderManager.apply's fill rule and
 * the engine's (fee by the venue's liquidity or the order's marketability, the mark of a position
 * never marked, Fill, recent_fills) on their slots; Position.apply_fill, the retirement of a filled
 * order, its latency record, the round trip and the kill switch stay the Python's (called). And a
 * refused cancel: a REJECTED under a cancel request's id of an order we know, or under the id of an
 * acknowledged order that is final or has a cancel pending (the order filled first): nothing else
 * changes. Anything else: before any change, the rules above (0).
 *
 * Why: a backtest's fills and too-late cancels were ~350 bytecodes each in four Python frames. */

static PyObject *status_filled;
static Py_ssize_t r_cum, r_px, r_leaves, r_liq, r_fee, r_fee_base, r_last_qty, q_fill_px, m_cancel_rejects;
enum { F_CL, F_SYMBOL, F_SIDE, F_PRICE, F_QTY, F_FEE, F_TS, F_LIQ, F_N };
static Py_ssize_t f_off[F_N];
static const char *fill_slots[F_N] = {"cl_ord_id", "symbol", "side", "price", "qty", "fee", "timestamp_ns",
                                      "liquidity"};
static PyObject *str_apply_fill;
#define EPS 1e-12


/* Position.apply_fill(side, price, qty, fee, traded) on its slots, in its order of operations (side 0: BUY):
 * 1 done, 0 not the usual case (a field that is not a float, fills not an int, a zero new
 * quantity to divide by: nothing changed, the Python decides), -1 error. */
static int
position_fill(PyObject *pos, long side, double price, double qty, double fee, double traded)
{
    double q, fees, volume, avg, realized;
    long long fills;
    if (dbl(SLOT(pos, p_qty), &q) < 0 || dbl(SLOT(pos, p_fees), &fees) < 0 || dbl(SLOT(pos, p_volume), &volume) < 0 ||
        dbl(SLOT(pos, p_avg), &avg) < 0 || dbl(SLOT(pos, p_realized), &realized) < 0 ||
        i64(SLOT(pos, p_fills), &fills) < 0 || fills == LLONG_MAX)
        return 0;
    double signed_qty = side == 0 ? qty : -qty, new_q = q + signed_qty;
    int adding = q == 0.0 || (q > 0.0) == (signed_qty > 0.0);
    if (adding && fabs(new_q) == 0.0)
        return 0; /* (the Python's ZeroDivisionError) */
    double out_avg = avg, out_q = new_q, out_realized = realized;
    if (adding)
        out_avg = (avg * fabs(q) + price * qty) / fabs(new_q);
    else {
        double closed = fabs(q) < qty ? fabs(q) : qty; /* min(qty, abs(q)) */
        double direction = q > 0.0 ? 1.0 : -1.0;
        out_realized = realized + closed * (price - avg) * direction;
        if (fabs(new_q) < 1e-12)
            out_q = out_avg = 0.0;
        else if ((new_q > 0.0) != (q > 0.0))
            out_avg = price;
    }
    PyObject *v[6] = {PyFloat_FromDouble(fees + fee), PyFloat_FromDouble(volume + traded * price),
                      PyLong_FromLongLong(fills + 1), PyFloat_FromDouble(out_q),
                      adding || out_avg != avg || out_q == 0.0 ? PyFloat_FromDouble(out_avg) : Py_NewRef(SLOT(pos, p_avg)),
                      adding ? Py_NewRef(SLOT(pos, p_realized)) : PyFloat_FromDouble(out_realized)};
    Py_ssize_t off[6] = {p_fees, p_volume, p_fills, p_qty, p_avg, p_realized};
    int ok = 1;
    for (int i = 0; i < 6; i++)
        ok &= v[i] != NULL;
    if (!ok) {
        for (int i = 0; i < 6; i++)
            Py_XDECREF(v[i]);
        return -1;
    }
    for (int i = 0; i < 6; i++)
        Py_SETREF(SLOT(pos, off[i]), v[i]);
    return 1;
}

/* A refused cancel (see above): 1 done, 0 not this case (nothing changed), -1. */
static int
cancel_refused(PyObject *om, PyObject *r, PyObject *cl)
{
    PyObject *cancels = SLOT(om, n_off[N_CANCELS]), *orders = SLOT(om, m_off[M_ORDERS]), *out = SLOT(om, m_off[M_OUT]),
             *count = SLOT(om, m_cancel_rejects), *orig, *st;
    long long n;
    if (!cancels || !PyDict_CheckExact(cancels) || !orders || !PyDict_CheckExact(orders) || !out ||
        !Py_IS_TYPE(out, outcome_type) || i64(count, &n) < 0 || n == LLONG_MAX)
        return 0;
    if ((st = PyDict_GetItemWithError(orders, cl))) {
        /* under the order's own id: a refused cancel when the order is final, or has a cancel
         * pending and was acknowledged (an order REJECTED itself is the Python's) */
        PyObject *old = Py_IS_TYPE(st, state_type) ? SLOT(st, st_off[S_STATUS]) : NULL;
        int pending = old ? truth_of(SLOT(st, st_off[S_CANCEL_PENDING]), "cancel_pending") : 0;
        if (pending < 0)
            return -1;
        if (!old || SLOT(st, st_off[S_ACK]) == Py_None || SLOT(st, st_off[S_ACK]) == NULL ||
            !(old == status_filled || old == status_canceled || (pending && old != status_pending)))
            return 0;
    }
    else {
        if (PyErr_Occurred() || (!(orig = PyDict_GetItemWithError(cancels, cl)) && PyErr_Occurred()))
            return -1;
        if (!orig || !(st = PyDict_GetItemWithError(orders, orig)))
            return PyErr_Occurred() ? -1 : 0;
        if (!Py_IS_TYPE(st, state_type))
            return 0;
    }
    PyObject *nc = PyLong_FromLongLong(n + 1);
    if (!nc)
        return -1;
    Py_XSETREF(SLOT(out, q_fill_qty), Py_NewRef(float_zero));
    Py_XSETREF(SLOT(out, q_status_changed), Py_NewRef(Py_False));
    Py_XSETREF(SLOT(out, q_final), Py_NewRef(Py_False));
    Py_XSETREF(SLOT(out, q_order), Py_NewRef(st));
    Py_XSETREF(SLOT(st, st_off[S_CANCEL_PENDING]), Py_NewRef(Py_False));
    Py_SETREF(SLOT(om, m_cancel_rejects), nc);
    return 1;
}

/* A fill (see above): 1 done, 0 not this case (nothing changed), -1 error. */
static int
fill_applied(CoreObject *self, PyObject *om, PyObject *r, PyObject *cl, PyObject *receipt, int full)
{
    PyObject *orders = SLOT(om, m_off[M_ORDERS]), *open = SLOT(om, m_off[M_OPEN]), *by_oid = SLOT(om, m_off[M_BY_OID]),
             *out = SLOT(om, m_off[M_OUT]), *open_qty = SLOT(om, m_off[M_OPEN_QTY]), *open_n = SLOT(om, m_off[M_OPEN_N]),
             *st, *roid = SLOT(r, r_oid);
    if (!orders || !PyDict_CheckExact(orders) || !open || !PyDict_CheckExact(open) || !by_oid ||
        !PyDict_CheckExact(by_oid) || !out || !Py_IS_TYPE(out, outcome_type) || !open_qty ||
        !PyTuple_CheckExact(open_qty) || PyTuple_GET_SIZE(open_qty) != 2 || !open_n || !PyTuple_CheckExact(open_n) ||
        PyTuple_GET_SIZE(open_n) != 2 || !roid || !PyLong_CheckExact(roid) || !fill_cls || !self->positions ||
        !PyDict_CheckExact(self->positions) || !self->mids || !PyDict_CheckExact(self->mids) || !self->recent_fills ||
        !self->wants_fills || !PySet_CheckExact(self->wants_fills) || !position_type)
        return 0;
    if (!(st = PyDict_GetItemWithError(orders, cl)))
        return PyErr_Occurred() ? -1 : 0;
    if (!Py_IS_TYPE(st, state_type))
        return 0;
    PyObject *old = SLOT(st, st_off[S_STATUS]), *sid = SLOT(st, st_off[S_STRATEGY]), *side = SLOT(st, st_off[S_SIDE]),
             *symbol = SLOT(st, st_off[S_SYMBOL]), *soid = SLOT(st, st_off[S_OID]), *ack = SLOT(st, st_off[S_ACK]),
             *first = SLOT(st, st_off[S_FIRST_FILL]), *taker0 = SLOT(st, st_off[S_TAKER]),
             *scl = SLOT(st, st_off[S_CL]), *sent = SLOT(st, st_off[S_SENT]), *liq = SLOT(r, r_liq);
    double cum, px, leaves, filled, avg, qty, old_leaves, taker_fee, maker_fee, mark;
    long long lq;
    long sv;
    if (!(old == status_new || old == status_partial) || !sid || !side || !PyLong_Check(side) || !symbol || !soid ||
        !ack || !first || !scl || !sent || (taker0 != Py_True && taker0 != Py_False) || dbl(SLOT(r, r_cum), &cum) < 0 ||
        dbl(SLOT(r, r_px), &px) < 0 || dbl(SLOT(r, r_leaves), &leaves) < 0 || i64(liq, &lq) < 0 ||
        dbl(SLOT(st, st_off[S_FILLED]), &filled) < 0 || dbl(SLOT(st, st_off[S_AVG]), &avg) < 0 ||
        dbl(SLOT(st, st_off[S_QTY]), &qty) < 0 || dbl(SLOT(st, st_off[S_LEAVES]), &old_leaves) < 0 ||
        dbl(self->taker_fee, &taker_fee) < 0 || dbl(self->maker_fee, &maker_fee) < 0)
        return 0;
    if (!(cum - filled > EPS)) /* adds nothing: a repeat, the Python's duplicate count */
        return 0;
    if ((sv = PyLong_AsLong(side)) == -1 && PyErr_Occurred())
        return -1;
    if (sv < 0 || sv > 1)
        return 0;
    int wants = PySet_Contains(self->wants_updates, sid), fills = wants ? 0 : PySet_Contains(self->wants_fills, sid);
    if (wants < 0 || fills < 0)
        return -1;
    if (wants || fills)
        return 0; /* its strategy is called: the Python does that */
    PyObject *pos = PyDict_GetItemWithError(self->positions, symbol);
    if (!pos)
        return PyErr_Occurred() ? -1 : 0; /* (Portfolio.get makes it: the Python) */
    if (!Py_IS_TYPE(pos, position_type) || dbl(SLOT(pos, p_mark), &mark) < 0)
        return 0;
    PyObject *counts = PyTuple_GET_ITEM(open_n, sv), *qtys = PyTuple_GET_ITEM(open_qty, sv);
    if (!PyDict_CheckExact(counts) || !PyDict_CheckExact(qtys))
        return 0;
    int set_oid = PyObject_IsTrue(roid), had_ack = ack != Py_None;
    if (set_oid < 0)
        return -1;
    set_oid = set_oid && PyObject_Not(soid) > 0;
    double delta = cum - filled;
    int filled_up = full || (leaves <= EPS && cum >= qty - EPS);
    int taker = lq ? lq == 2 : taker0 == Py_True;
    /* the fee the venue charged for the report's fill when it says (per unit when the report also
     * stands for a missed one), else the engine's rate: as the Python does */
    PyObject *rfee = SLOT(r, r_fee);
    double fee, charged, last, kept;
    if (dbl(SLOT(r, r_fee_base), &kept) < 0)
        return 0;
    if (rfee && rfee != Py_None) {
        if (dbl(rfee, &charged) < 0 || dbl(SLOT(r, r_last_qty), &last) < 0)
            return 0;
        double share = fabs(delta - last) > EPS && last > 0.0 ? delta / last : 1.0;
        fee = share != 1.0 ? charged * share : charged;
        kept = share != 1.0 ? kept * share : kept;
    }
    else
        fee = delta * px * (taker ? taker_fee : maker_fee);
    /* the venue kept part of the asset as its fee: the position moves by less on a buy, more on a sell */
    double moved = kept > 0.0 && kept < delta ? (sv == 0 ? delta - kept : delta + kept) : delta;
    PyObject *fq = PyFloat_FromDouble(delta), *ap = PyFloat_FromDouble((avg * filled + px * delta) / cum),
             *fv = PyFloat_FromDouble(fee), *liq_v = PyLong_FromLong(taker ? 2 : 1), *fill = NULL;
    int ok = fq && ap && fv && liq_v;
    Py_INCREF(st);
    Py_INCREF(pos);
    /* OrderManager.apply */
    if (ok && set_oid) {
        Py_SETREF(SLOT(st, st_off[S_OID]), Py_NewRef(roid));
        ok = PyDict_SetItem(by_oid, roid, scl) == 0;
    }
    if (ok) {
        if (!had_ack)
            Py_SETREF(SLOT(st, st_off[S_ACK]), Py_NewRef(receipt));
        Py_SETREF(SLOT(st, st_off[S_AVG]), Py_NewRef(ap));
        Py_SETREF(SLOT(st, st_off[S_FILLED]), Py_NewRef(SLOT(r, r_cum)));
        Py_SETREF(SLOT(st, st_off[S_LEAVES]), Py_NewRef(SLOT(r, r_leaves)));
        Py_XSETREF(SLOT(out, q_order), Py_NewRef(st));
        Py_XSETREF(SLOT(out, q_fill_qty), Py_NewRef(fq));
        Py_XSETREF(SLOT(out, q_fill_px), Py_NewRef(SLOT(r, r_px)));
        Py_XSETREF(SLOT(out, q_final), Py_NewRef(Py_False));
        if (first == Py_None)
            Py_SETREF(SLOT(st, st_off[S_FIRST_FILL]), Py_NewRef(receipt));
        int changed = filled_up || old != status_partial;
        Py_XSETREF(SLOT(out, q_status_changed), Py_NewRef(changed ? Py_True : Py_False));
        if (filled_up) {
            Py_SETREF(SLOT(st, st_off[S_STATUS]), Py_NewRef(status_filled));
            Py_SETREF(SLOT(st, st_off[S_FINAL]), Py_NewRef(receipt));
            Py_SETREF(SLOT(st, st_off[S_CANCEL_PENDING]), Py_NewRef(Py_False));
            PyObject *gone = PyDict_GetItemWithError(open, scl);
            ok = gone ? PyDict_DelItem(open, scl) == 0 : !PyErr_Occurred();
            if (ok) {
                Py_XSETREF(SLOT(out, q_final), Py_NewRef(Py_True));
                ok = retire(om, scl) == 0;
            }
        }
        else if (changed)
            Py_SETREF(SLOT(st, st_off[S_STATUS]), Py_NewRef(status_partial));
    }
    if (ok) { /* _shift(side, symbol, dq, new_open - old_open) */
        Py_SETREF(SLOT(st, st_off[S_IS_OPEN]), Py_NewRef(filled_up ? Py_False : Py_True));
        double dq = (filled_up ? 0.0 : leaves) - old_leaves;
        if (dq != 0.0 || filled_up) {
            PyObject *c = dict_get(counts, symbol, zero), *n = NULL, *q, *v = NULL;
            long long cv;
            ok = c && i64(c, &cv) == 0 && (n = PyLong_FromLongLong(cv - filled_up)) && PyDict_SetItem(counts, symbol, n) == 0;
            if (ok && cv - filled_up > 0) {
                PyObject *d = PyFloat_FromDouble(dq);
                ok = d && (q = dict_get(qtys, symbol, float_zero)) && (v = PyNumber_Add(q, d));
                Py_XDECREF(d);
            }
            else if (ok)
                v = Py_NewRef(float_zero);
            ok = ok && PyDict_SetItem(qtys, symbol, v) == 0;
            Py_XDECREF(n);
            Py_XDECREF(v);
        }
    }
    /* the engine's part */
    if (ok && !had_ack) {
        PyObject *rt = PyNumber_Subtract(receipt, sent);
        ok = rt && sample_add(self->round_trip, rt) == 0;
        Py_XDECREF(rt);
    }
    if (ok && mark == 0.0) { /* first fill on a symbol no strategy lists: mark it at the known mid */
        PyObject *m = dict_get(self->mids, symbol, float_zero);
        if ((ok = m != NULL))
            Py_SETREF(SLOT(pos, p_mark), Py_NewRef(m));
    }
    if (ok) { /* Position.apply_fill: on its slots, or called */
        int done = position_fill(pos, sv, px, moved, fee, delta);
        ok = done >= 0;
        if (ok && !done) {
            PyObject *mq = moved != delta ? PyFloat_FromDouble(moved) : Py_NewRef(fq);
            PyObject *call[6] = {pos, side, SLOT(r, r_px), mq, fv, fq};
            PyObject *x = mq ? PyObject_VectorcallMethod(str_apply_fill, call, 6 | PY_VECTORCALL_ARGUMENTS_OFFSET, NULL)
                             : NULL;
            ok = x != NULL;
            Py_XDECREF(x);
            Py_XDECREF(mq);
        }
    }
    if (ok) {
        self->fills++;
        PyObject *fi[F_N] = {Py_NewRef(scl), Py_NewRef(symbol), Py_NewRef(side), Py_NewRef(SLOT(r, r_px)),
                             Py_NewRef(fq), Py_NewRef(fv), Py_NewRef(receipt), Py_NewRef(liq_v)};
        ok = (fill = slotted(fill_cls, f_off, fi, F_N)) && call1(self->recent_fills, str_append, fill) == 0;
    }
    if (ok && filled_up)
        ok = call1(self->latency, str_order, st) == 0;
    if (ok) {
        int breach = truth_of(self->breach, "_breach");
        ok = breach >= 0;
        if (ok && breach) {
            PyObject *x = PyObject_CallMethodNoArgs((PyObject *)self, str_check_breach);
            ok = x != NULL;
            Py_XDECREF(x);
        }
    }
    Py_DECREF(st);
    Py_DECREF(pos);
    Py_XDECREF(fq);
    Py_XDECREF(ap);
    Py_XDECREF(fv);
    Py_XDECREF(liq_v);
    Py_XDECREF(fill);
    return ok ? 1 : -1;
}

/* bind_fills(Fill, (ExecType.PARTIAL_FILL, FILL, REJECTED), OrderStatus.FILLED): after bind_reports and
 * bind_orders. */
static PyObject *
bind_fills(PyObject *mod, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 3 || !PyType_Check(args[0]) || !PyTuple_CheckExact(args[1]) || PyTuple_GET_SIZE(args[1]) != 3 ||
        !report_type || !outcome_type || !manager_type || !py_submit) {
        PyErr_SetString(PyExc_TypeError, "bind_fills(Fill, (PARTIAL_FILL, FILL, REJECTED), FILLED) after "
                                         "bind_reports() and bind_orders()");
        return NULL;
    }
    for (int i = 0; i < F_N; i++)
        if (slot_offset((PyTypeObject *)args[0], fill_slots[i], &f_off[i]) < 0)
            return NULL;
    if (slot_offset(report_type, "cum_qty", &r_cum) || slot_offset(report_type, "last_px", &r_px) ||
        slot_offset(report_type, "leaves_qty", &r_leaves) || slot_offset(report_type, "liquidity", &r_liq) ||
        slot_offset(report_type, "fee", &r_fee) || slot_offset(report_type, "fee_base", &r_fee_base) ||
        slot_offset(report_type, "last_qty", &r_last_qty) ||
        slot_offset(outcome_type, "fill_px", &q_fill_px) || slot_offset(manager_type, "cancel_rejects", &m_cancel_rejects))
        return NULL;
    if (!str_apply_fill && !(str_apply_fill = PyUnicode_InternFromString("apply_fill")))
        return NULL;
    Py_XSETREF(et_partial, Py_NewRef(PyTuple_GET_ITEM(args[1], 0)));
    Py_XSETREF(et_fill, Py_NewRef(PyTuple_GET_ITEM(args[1], 1)));
    Py_XSETREF(et_rejected, Py_NewRef(PyTuple_GET_ITEM(args[1], 2)));
    Py_XSETREF(status_filled, Py_NewRef(args[2]));
    Py_XSETREF(fill_cls, (PyTypeObject *)Py_NewRef(args[0]));
    Py_RETURN_NONE;
}

/* ---- new_trade: a types.Trade built at its slots ---------------------------------------------------
 *
 * new_trade(exchange, symbol, timestamp_ns, receipt_ns, price, amount, side, trade_id) is
 * Trade(...) with the eight fields positionally: the dataclass's __init__ only assigns them, and a
 * Python __init__ through type.__call__ was ~110 ns of a ~170 ns trade print in a feed. Any other
 * call is Trade's own (its errors). */

enum { T_N = 8 };
static PyTypeObject *trade_cls;
static Py_ssize_t t_off[T_N];
static const char *trade_slots[T_N] = {"exchange", "symbol", "timestamp_ns", "receipt_ns", "price", "amount",
                                       "side", "trade_id"};

static PyObject *
new_trade(PyObject *mod, PyObject *const *args, Py_ssize_t nargs, PyObject *kwnames)
{
    if (!trade_cls) {
        PyErr_SetString(PyExc_RuntimeError, "_engine: bind_trade() was not called");
        return NULL;
    }
    if (nargs != T_N || kwnames)
        return PyObject_Vectorcall((PyObject *)trade_cls, args, nargs, kwnames);
    PyObject *items[T_N];
    for (int i = 0; i < T_N; i++)
        items[i] = Py_NewRef(args[i]);
    return slotted(trade_cls, t_off, items, T_N);
}

/* bind_trade(Trade) */
static PyObject *
bind_trade(PyObject *mod, PyObject *t)
{
    if (!PyType_Check(t)) {
        PyErr_SetString(PyExc_TypeError, "bind_trade(Trade)");
        return NULL;
    }
    for (int i = 0; i < T_N; i++)
        if (slot_offset((PyTypeObject *)t, trade_slots[i], &t_off[i]) < 0)
            return NULL;
    Py_XSETREF(trade_cls, (PyTypeObject *)Py_NewRef(t));
    Py_RETURN_NONE;
}

static int
core_traverse(CoreObject *self, visitproc visit, void *arg)
{
    Py_VISIT(self->books);
    Py_VISIT(self->mids);
    Py_VISIT(self->positions);
    Py_VISIT(self->by_symbol);
    Py_VISIT(self->trades_by_symbol);
    Py_VISIT(self->cork);
    Py_VISIT(self->trigger);
    Py_VISIT(self->md_receipt_ns);
    Py_VISIT(self->trading_enabled);
    Py_VISIT(self->breach);
    Py_VISIT(self->orders);
    Py_VISIT(self->round_trip);
    Py_VISIT(self->latency);
    Py_VISIT(self->wants_updates);
    Py_VISIT(self->venue);
    Py_VISIT(self->risk);
    Py_VISIT(self->clock);
    Py_VISIT(self->t2t);
    Py_VISIT(self->corked);
    Py_VISIT(self->unsent);
    Py_VISIT(self->maker_fee);
    Py_VISIT(self->taker_fee);
    Py_VISIT(self->recent_fills);
    Py_VISIT(self->wants_fills);
    return 0;
}

static int
core_clear(CoreObject *self)
{
    Py_CLEAR(self->books);
    Py_CLEAR(self->mids);
    Py_CLEAR(self->positions);
    Py_CLEAR(self->by_symbol);
    Py_CLEAR(self->trades_by_symbol);
    Py_CLEAR(self->cork);
    Py_CLEAR(self->trigger);
    Py_CLEAR(self->md_receipt_ns);
    Py_CLEAR(self->trading_enabled);
    Py_CLEAR(self->breach);
    Py_CLEAR(self->orders);
    Py_CLEAR(self->round_trip);
    Py_CLEAR(self->latency);
    Py_CLEAR(self->wants_updates);
    Py_CLEAR(self->venue);
    Py_CLEAR(self->risk);
    Py_CLEAR(self->clock);
    Py_CLEAR(self->t2t);
    Py_CLEAR(self->corked);
    Py_CLEAR(self->unsent);
    Py_CLEAR(self->maker_fee);
    Py_CLEAR(self->taker_fee);
    Py_CLEAR(self->recent_fills);
    Py_CLEAR(self->wants_fills);
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
    {"books", T_OBJECT_EX, offsetof(CoreObject, books), 0, "Latest book message per symbol."},
    {"_mids", T_OBJECT_EX, offsetof(CoreObject, mids), 0, NULL},
    {"_positions", T_OBJECT_EX, offsetof(CoreObject, positions), 0, NULL},
    {"_by_symbol", T_OBJECT_EX, offsetof(CoreObject, by_symbol), 0, NULL},
    {"_trades_by_symbol", T_OBJECT_EX, offsetof(CoreObject, trades_by_symbol), 0, NULL},
    {"_cork", T_OBJECT_EX, offsetof(CoreObject, cork), 0, NULL},
    {"_trigger", T_OBJECT_EX, offsetof(CoreObject, trigger), 0, NULL},
    {"_md_receipt_ns", T_OBJECT_EX, offsetof(CoreObject, md_receipt_ns), 0, NULL},
    {"rx_packets", T_PYSSIZET, offsetof(CoreObject, rx_packets), 0, "Market-data messages received."},
    {"trades_rx", T_PYSSIZET, offsetof(CoreObject, trades_rx), 0, "Trade messages received."},
    {"trading_enabled", T_OBJECT_EX, offsetof(CoreObject, trading_enabled), 0, NULL},
    {"orders", T_OBJECT_EX, offsetof(CoreObject, orders), 0, "The order manager."},
    {"round_trip", T_OBJECT_EX, offsetof(CoreObject, round_trip), 0, "Order round trips (sent to first answer), ns."},
    {"latency", T_OBJECT_EX, offsetof(CoreObject, latency), 0, "The latency log."},
    {"_wants_updates", T_OBJECT_EX, offsetof(CoreObject, wants_updates), 0, NULL},
    {"_breach", T_OBJECT_EX, offsetof(CoreObject, breach), 0, NULL},
    {"venue", T_OBJECT_EX, offsetof(CoreObject, venue), 0, "The execution venue."},
    {"risk", T_OBJECT_EX, offsetof(CoreObject, risk), 0, "The risk engine."},
    {"clock", T_OBJECT_EX, offsetof(CoreObject, clock), 0, "Time in ns (wall, or the backtest's)."},
    {"t2t", T_OBJECT_EX, offsetof(CoreObject, t2t), 0, "Tick-to-trade samples, ns."},
    {"_corked", T_OBJECT_EX, offsetof(CoreObject, corked), 0, NULL},
    {"_unsent", T_OBJECT_EX, offsetof(CoreObject, unsent), 0, NULL},
    {"orders_sent", T_PYSSIZET, offsetof(CoreObject, orders_sent), 0, "Orders handed to the venue."},
    {"cancels_sent", T_PYSSIZET, offsetof(CoreObject, cancels_sent), 0, "Cancels handed to the venue."},
    {"maker_fee", T_OBJECT_EX, offsetof(CoreObject, maker_fee), 0, "Fee rate of a maker fill."},
    {"taker_fee", T_OBJECT_EX, offsetof(CoreObject, taker_fee), 0, "Fee rate of a taker fill."},
    {"recent_fills", T_OBJECT_EX, offsetof(CoreObject, recent_fills), 0, "The last fills, newest last."},
    {"_wants_fills", T_OBJECT_EX, offsetof(CoreObject, wants_fills), 0, NULL},
    {"fills", T_PYSSIZET, offsetof(CoreObject, fills), 0, "Fills received."},
    {NULL},
};

static PyMethodDef core_methods[] = {
    {"on_book", (PyCFunction)(void (*)(void))core_on_book, METH_FASTCALL | METH_KEYWORDS,
     "on_book(msg, receipt_ns=0, act=True): a book message (see core._EngineCorePy)."},
    {"on_trade", (PyCFunction)(void (*)(void))core_on_trade, METH_FASTCALL | METH_KEYWORDS,
     "on_trade(msg, receipt_ns=0): a trade message (see core._EngineCorePy)."},
    {"on_execution_report", (PyCFunction)core_on_report, METH_O,
     "on_execution_report(report): the venue's word on an order (see core._EngineCorePy)."},
    {"submit", (PyCFunction)(void (*)(void))core_submit, METH_FASTCALL | METH_KEYWORDS,
     "submit(strategy_id, symbol, side, qty, price=0.0, ord_type=LIMIT, tif=GTC): risk-check and send an "
     "order (see core._EngineCorePy)."},
    {"cancel", (PyCFunction)core_cancel, METH_O, "cancel(cl_ord_id): request a cancel (see core._EngineCorePy)."},
    {NULL},
};

static PyTypeObject CoreType = {
    PyVarObject_HEAD_INIT(NULL, 0).tp_name = "latentspeed_core._engine.EngineCore",
    .tp_basicsize = sizeof(CoreObject),
    .tp_dealloc = (destructor)core_dealloc,
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_BASETYPE | Py_TPFLAGS_HAVE_GC,
    .tp_doc = "The engine's market-data entry points and the state they touch (engine.core.Engine's base).",
    .tp_traverse = (traverseproc)core_traverse,
    .tp_clear = (inquiry)core_clear,
    .tp_members = core_members,
    .tp_methods = core_methods,
    .tp_new = PyType_GenericNew,
};

/* ---- Fanout ---- */

/* Fanout(first, second)(topic, msg): first(msg), then second(msg); a Pipeline emitter (the
 * backtest's: the venue, then the engine) without a Python frame per message. */
typedef struct {
    PyObject_HEAD
    PyObject *first, *second;
    vectorcallfunc vectorcall;
} FanoutObject;

static PyObject *
fanout_call(FanoutObject *self, PyObject *const *args, size_t nargsf, PyObject *kwnames)
{
    if (PyVectorcall_NARGS(nargsf) != 2 || kwnames) {
        PyErr_SetString(PyExc_TypeError, "Fanout takes (topic, msg)");
        return NULL;
    }
    PyObject *r = PyObject_CallOneArg(self->first, args[1]);
    if (!r)
        return NULL;
    Py_DECREF(r);
    r = PyObject_CallOneArg(self->second, args[1]);
    if (!r)
        return NULL;
    Py_DECREF(r);
    Py_RETURN_NONE;
}

static PyObject *
fanout_new(PyTypeObject *type, PyObject *args, PyObject *kwds)
{
    PyObject *first, *second;
    if (!PyArg_ParseTuple(args, "OO:Fanout", &first, &second))
        return NULL;
    FanoutObject *self = (FanoutObject *)type->tp_alloc(type, 0);
    if (!self)
        return NULL;
    self->first = Py_NewRef(first);
    self->second = Py_NewRef(second);
    self->vectorcall = (vectorcallfunc)fanout_call;
    return (PyObject *)self;
}

static int
fanout_traverse(FanoutObject *self, visitproc visit, void *arg)
{
    Py_VISIT(self->first);
    Py_VISIT(self->second);
    return 0;
}

static int
fanout_clear(FanoutObject *self)
{
    Py_CLEAR(self->first);
    Py_CLEAR(self->second);
    return 0;
}

static void
fanout_dealloc(FanoutObject *self)
{
    PyObject_GC_UnTrack(self);
    fanout_clear(self);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

static PyTypeObject FanoutType = {
    PyVarObject_HEAD_INIT(NULL, 0).tp_name = "latentspeed_core._engine.Fanout",
    .tp_basicsize = sizeof(FanoutObject),
    .tp_dealloc = (destructor)fanout_dealloc,
    .tp_vectorcall_offset = offsetof(FanoutObject, vectorcall),
    .tp_call = PyVectorcall_Call,
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC | Py_TPFLAGS_HAVE_VECTORCALL,
    .tp_doc = "Fanout(first, second)(topic, msg): first(msg), then second(msg).",
    .tp_traverse = (traverseproc)fanout_traverse,
    .tp_clear = (inquiry)fanout_clear,
    .tp_new = fanout_new,
};

/* bind_positions(Position, Portfolio): on_book marks a position at its slots (read and written as Python
 * would); curve_point sums a Portfolio's positions at theirs. */
static PyObject *
bind_positions(PyObject *mod, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 2 || !PyType_Check(args[0]) || !PyType_Check(args[1])) {
        PyErr_SetString(PyExc_TypeError, "bind_positions(Position, Portfolio)");
        return NULL;
    }
    PyTypeObject *t = (PyTypeObject *)args[0];
    if (slot_offset(t, "mark", &p_mark) || slot_offset(t, "qty", &p_qty) || slot_offset(t, "avg_price", &p_avg) ||
        slot_offset(t, "realized", &p_realized) || slot_offset(t, "fees", &p_fees) ||
        slot_offset(t, "volume", &p_volume) || slot_offset(t, "fills", &p_fills))
        return NULL;
    Py_XSETREF(position_type, (PyTypeObject *)Py_NewRef(t));
    Py_XSETREF(portfolio_type, (PyTypeObject *)Py_NewRef(args[1]));
    Py_RETURN_NONE;
}

/* curve_point(t, portfolio) -> (t, portfolio.pnl, {symbol: position.qty}): a backtest's equity curve
 * sample (after every fill), with Portfolio.pnl's sum done on the positions' slots in its order;
 * positions of another type, or fields that are not floats, are read through Python. */
static PyObject *
curve_point(PyObject *mod, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 2) {
        PyErr_SetString(PyExc_TypeError, "curve_point(t, portfolio)");
        return NULL;
    }
    PyObject *positions = PyObject_GetAttr(args[1], str_positions), *qtys = NULL, *pnl = NULL, *k, *p;
    if (!positions || !(qtys = PyDict_New()))
        goto fail;
    double total = 0.0;
    int exact = PyDict_CheckExact(positions) && portfolio_type && Py_IS_TYPE(args[1], portfolio_type), any = 0;
    Py_ssize_t i = 0;
    while (exact && PyDict_Next(positions, &i, &k, &p)) {
        double q, mark, avg, realized, fees;
        if (!Py_IS_TYPE(p, position_type) || dbl(SLOT(p, p_qty), &q) < 0 || dbl(SLOT(p, p_mark), &mark) < 0 ||
            dbl(SLOT(p, p_avg), &avg) < 0 || dbl(SLOT(p, p_realized), &realized) < 0 ||
            dbl(SLOT(p, p_fees), &fees) < 0) {
            exact = 0;
            break;
        }
        total += realized + (q != 0.0 && mark != 0.0 ? q * (mark - avg) : 0.0) - fees;
        any = 1;
        if (PyDict_SetItem(qtys, k, SLOT(p, p_qty)) < 0)
            goto fail;
    }
    if (exact)
        pnl = any ? PyFloat_FromDouble(total) : PyLong_FromLong(0); /* (Python's sum starts at int 0) */
    else { /* through Python */
        PyDict_Clear(qtys);
        PyObject *items = PyMapping_Items(positions);
        if (!items)
            goto fail;
        for (Py_ssize_t j = 0; j < PyList_GET_SIZE(items); j++) {
            PyObject *kv = PyList_GET_ITEM(items, j), *q;
            if (!PyTuple_Check(kv) || PyTuple_GET_SIZE(kv) != 2 || !(q = PyObject_GetAttr(PyTuple_GET_ITEM(kv, 1), str_qty))) {
                if (!PyErr_Occurred())
                    PyErr_SetString(PyExc_TypeError, "positions.items() gives (symbol, position) pairs");
                Py_DECREF(items);
                goto fail;
            }
            int r = PyDict_SetItem(qtys, PyTuple_GET_ITEM(kv, 0), q);
            Py_DECREF(q);
            if (r < 0) {
                Py_DECREF(items);
                goto fail;
            }
        }
        Py_DECREF(items);
        pnl = PyObject_GetAttr(args[1], str_pnl);
    }
    if (!pnl)
        goto fail;
    PyObject *out = PyTuple_Pack(3, args[0], pnl, qtys);
    Py_DECREF(positions);
    Py_DECREF(pnl);
    Py_DECREF(qtys);
    return out;
fail:
    Py_XDECREF(positions);
    Py_XDECREF(qtys);
    Py_XDECREF(pnl);
    return NULL;
}

static PyObject *
bind_core(PyObject *mod, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 2) {
        PyErr_SetString(PyExc_TypeError, "bind_core(on_book, on_trade)");
        return NULL;
    }
    Py_XSETREF(py_on_book, Py_NewRef(args[0]));
    Py_XSETREF(py_on_trade, Py_NewRef(args[1]));
    Py_RETURN_NONE;
}

static PyMethodDef methods[] = {
    {"bind_reports", (PyCFunction)(void (*)(void))bind_reports, METH_FASTCALL,
     "bind_reports(ExecutionReport, OrderState, ReportOutcome, OrderManager, (ExecType.NEW, ExecType.CANCELED), "
     "(PENDING_NEW, NEW, PARTIALLY_FILLED, CANCELED), on_execution_report): what on_execution_report works on, and "
     "the Python it falls back to."},
    {"bind_orders", (PyCFunction)(void (*)(void))bind_orders, METH_FASTCALL,
     "bind_orders(Order, Side, TimeInForce, (LIMIT, GTC, RejectReason.NONE), RiskEngine, (MaxOrderQty, PriceBand, "
     "MaxNotional, MaxPosition, MaxOpenOrders, MaxOrdersPerSecond), Engine, submit, _submit_at, cancel): what submit "
     "and cancel work on, and the Python they fall back to."},
    {"bind_samples", bind_samples, METH_O, "bind_samples(Samples): the slots a latency sample is added at."},
    {"bind_trade", bind_trade, METH_O, "bind_trade(Trade): the class new_trade builds."},
    {"new_trade", (PyCFunction)(void (*)(void))new_trade, METH_FASTCALL | METH_KEYWORDS,
     "new_trade(exchange, symbol, timestamp_ns, receipt_ns, price, amount, side, trade_id): Trade(...), at its "
     "slots."},
    {"bind_fills", (PyCFunction)(void (*)(void))bind_fills, METH_FASTCALL,
     "bind_fills(Fill, (PARTIAL_FILL, FILL, REJECTED), FILLED): what on_execution_report's fills work on."},
    {"bind_positions", (PyCFunction)(void (*)(void))bind_positions, METH_FASTCALL,
     "bind_positions(Position, Portfolio): the slots on_book marks a position at, and curve_point sums."},
    {"curve_point", (PyCFunction)(void (*)(void))curve_point, METH_FASTCALL,
     "curve_point(t, portfolio) -> (t, portfolio.pnl, {symbol: qty}): an equity curve sample."},
    {"bind_core", (PyCFunction)(void (*)(void))bind_core, METH_FASTCALL,
     "bind_core(on_book, on_trade): the Python each entry point falls back to."},
    {NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "latentspeed_core._engine", "The engine's per-message entry points, compiled.", -1,
    methods,
};

PyMODINIT_FUNC
PyInit__engine(void)
{
    if (PyType_Ready(&CoreType) < 0 || PyType_Ready(&FanoutType) < 0)
        return NULL;
    struct {
        PyObject **s;
        const char *v;
    } names[] = {
        {&str_symbol, "symbol"},         {&str_midpoint, "midpoint"},
        {&str_receipt, "receipt_timestamp_ns"},
        {&str_mark, "mark"},             {&str_qty, "qty"},
        {&str_check_breach, "_check_breach"},
        {&str_dispatch, "_dispatch"},    {&str_strategy_error, "_strategy_error"},
        {&str_self, "__self__"},         {&str_on_book, "on_book"},
        {&str_on_trade, "on_trade"},     {&str_book, "book"},
        {&str_trade, "trade"},           {&str_timer, "timer"},
        {&str_retire, "_retire"},        {&str_add, "add"},
        {&str_order, "order"},
        {&str_connected, "connected"},   {&str_send_new_order, "send_new_order"},
        {&str_send_cancel, "send_cancel"}, {&str_send_failed, "_send_failed"},
        {&str_sent, "sent"},             {&str_forget_cancels, "_forget_cancels"},
        {&str_append, "append"},         {&str_asks, "asks"},
        {&str_bids, "bids"},             {&str_positions, "positions"},
        {&str_pnl, "pnl"},
    };
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
        if (!*names[i].s && !(*names[i].s = PyUnicode_InternFromString(names[i].v)))
            return NULL;
    if (!zero && !(zero = PyLong_FromLong(0)))
        return NULL;
    if (!float_zero && !(float_zero = PyFloat_FromDouble(0.0)))
        return NULL;
    if (!one && !(one = PyLong_FromLong(1)))
        return NULL;
    PyObject *m = PyModule_Create(&module);
    if (!m)
        return NULL;
    if (PyModule_AddObjectRef(m, "EngineCore", (PyObject *)&CoreType) < 0 ||
        PyModule_AddObjectRef(m, "Fanout", (PyObject *)&FanoutType) < 0) {
        Py_DECREF(m);
        return NULL;
    }
    return m;
}
