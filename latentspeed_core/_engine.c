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
} CoreObject;

/* core._EngineCorePy's on_book and on_trade: the rule for every case. */
static PyObject *py_on_book, *py_on_trade;
static PyObject *str_symbol, *str_midpoint, *str_receipt, *str_mark, *str_qty, *str_check_breach, *str_dispatch,
    *str_strategy_error, *str_self, *str_on_book, *str_on_trade, *str_book, *str_trade, *str_timer;
static PyObject *zero;

#define SLOT(obj, off) (*(PyObject **)((char *)(obj) + (off)))
/* positions.Position, and its slots on_book writes and reads (bind_positions) */
static PyTypeObject *position_type;
static Py_ssize_t p_mark, p_qty;

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
        if (ok) {
            PyObject *x = PyObject_CallMethodOneArg(om, str_retire, scl);
            ok = x != NULL;
            Py_XDECREF(x);
        }
        if (ok) {
            Py_SETREF(SLOT(st, s_is_open), Py_NewRef(Py_False));
            ok = shift_closed(open_n, open_qty, sv, symbol, dq) == 0;
        }
    }
    /* the engine's part: the round trip of the first answer, the latency record of a final order */
    if (ok && !had_ack) {
        PyObject *ack_ns = SLOT(st, s_ack), *sent_ns = SLOT(st, s_sent);
        PyObject *rt = ack_ns && sent_ns ? PyNumber_Subtract(ack_ns, sent_ns) : NULL;
        PyObject *x = rt ? PyObject_CallMethodOneArg(self->round_trip, str_add, rt) : NULL;
        ok = x != NULL;
        Py_XDECREF(rt);
        Py_XDECREF(x);
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
    {NULL},
};

static PyMethodDef core_methods[] = {
    {"on_book", (PyCFunction)(void (*)(void))core_on_book, METH_FASTCALL | METH_KEYWORDS,
     "on_book(msg, receipt_ns=0, act=True): a book message (see core._EngineCorePy)."},
    {"on_trade", (PyCFunction)(void (*)(void))core_on_trade, METH_FASTCALL | METH_KEYWORDS,
     "on_trade(msg, receipt_ns=0): a trade message (see core._EngineCorePy)."},
    {"on_execution_report", (PyCFunction)core_on_report, METH_O,
     "on_execution_report(report): the venue's word on an order (see core._EngineCorePy)."},
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

/* bind_positions(Position): on_book marks a position at its slots (read and written as Python would). */
static PyObject *
bind_positions(PyObject *mod, PyObject *t)
{
    if (!PyType_Check(t)) {
        PyErr_SetString(PyExc_TypeError, "bind_positions(Position)");
        return NULL;
    }
    if (slot_offset((PyTypeObject *)t, "mark", &p_mark) || slot_offset((PyTypeObject *)t, "qty", &p_qty))
        return NULL;
    Py_XSETREF(position_type, (PyTypeObject *)Py_NewRef(t));
    Py_RETURN_NONE;
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
    {"bind_positions", bind_positions, METH_O, "bind_positions(Position): the slots on_book marks a position at."},
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
    };
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
        if (!*names[i].s && !(*names[i].s = PyUnicode_InternFromString(names[i].v)))
            return NULL;
    if (!zero && !(zero = PyLong_FromLong(0)))
        return NULL;
    if (!float_zero && !(float_zero = PyFloat_FromDouble(0.0)))
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
