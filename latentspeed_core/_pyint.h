/* An int's value without the general conversion, for the compiled modules' hot paths. */
#ifndef LATENTSPEED_PYINT_H
#define LATENTSPEED_PYINT_H

#include <Python.h>
#include <stdint.h>

/* CPython 3.11 keeps an int as 30-bit digits with the sign in ob_size; ours (nanosecond times,
 * prices in ticks, sizes in lots, counters) have 1 to 3 digits. 0 with the value of any int (an
 * IntEnum's too) of at most 3 digits that fits int64; -1 (no error set) for any other object: the
 * caller converts it the general way (PyLong_AsLongLongAndOverflow: ~50 instructions, this ~8). */
static inline int
compact_i64(PyObject *v, int64_t *out)
{
#if PY_VERSION_HEX < 0x030C0000 && PYLONG_BITS_IN_DIGIT == 30
    if (!PyLong_Check(v))
        return -1;
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

#endif
