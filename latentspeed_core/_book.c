/* Compiled L2 order book: the per-level work of the marketstream hot path in C.
 *
 * Same design and the same results as the pure-Python reference in book.py (PyL2Book):
 * each side is a hash map price -> qty holding every level, plus a sorted array of the keys
 * of the best levels only (bids keyed by the negated price, so index 0 is the best level on
 * both sides), up to an *edge*. Levels beyond the edge touch the map only. The window is cut
 * back to `window` keys past 2 * window, and refilled to 1.5 * window keys from the map when
 * deletions shrink it below window / 2.
 *
 * Why C: a CPython loop costs 75-150 ns per level change and the venues' float strings cost
 * another ~50 ns each to convert; a 227-level Binance update took ~55 us of a 50 us budget.
 * Here levels are plain doubles (no float object per level), and apply_json() parses a
 * venue's `[["price","qty"], ...]` arrays straight from the frame's bytes.
 *
 * Every update call is atomic: all of its levels are converted and validated first, then
 * applied, so a malformed level raises ValueError with the book untouched. A level no venue can
 * send is malformed too: a price that is not finite and > 0, or a size that is not finite and
 * >= 0 (NaN fails every comparison; "1e999" parses to inf). Let in, such a level would be
 * published (an inf or negative price sorts to the top of its side), so the check is part of the
 * intake: four comparisons per level, on values already in registers.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/* ---- hash map double -> double (open addressing, linear probing, backward-shift delete) ---- */

typedef struct {
    double *keys;
    double *vals;
    unsigned char *used;
    Py_ssize_t cap; /* power of two, 0 before the first insert */
    Py_ssize_t len;
} Map;

static inline uint64_t
hash_double(double d)
{
    uint64_t x;
    if (d == 0.0)
        d = 0.0; /* -0.0 and 0.0 are the same price */
    memcpy(&x, &d, sizeof x);
    x ^= x >> 33;
    x *= 0xff51afd7ed558ccdULL;
    x ^= x >> 33;
    x *= 0xc4ceb9fe1a85ec53ULL;
    x ^= x >> 33;
    return x;
}

static void
map_free(Map *m)
{
    PyMem_Free(m->keys);
    PyMem_Free(m->vals);
    PyMem_Free(m->used);
    m->keys = m->vals = NULL;
    m->used = NULL;
    m->cap = m->len = 0;
}

static void
map_clear(Map *m)
{
    if (m->cap)
        memset(m->used, 0, (size_t)m->cap);
    m->len = 0;
}

static int
map_resize(Map *m, Py_ssize_t cap)
{
    double *keys = PyMem_Malloc(sizeof(double) * (size_t)cap);
    double *vals = PyMem_Malloc(sizeof(double) * (size_t)cap);
    unsigned char *used = PyMem_Calloc((size_t)cap, 1);
    if (!keys || !vals || !used) {
        PyMem_Free(keys);
        PyMem_Free(vals);
        PyMem_Free(used);
        PyErr_NoMemory();
        return -1;
    }
    size_t mask = (size_t)cap - 1;
    for (Py_ssize_t i = 0; i < m->cap; i++) {
        if (!m->used[i])
            continue;
        size_t j = hash_double(m->keys[i]) & mask;
        while (used[j])
            j = (j + 1) & mask;
        used[j] = 1;
        keys[j] = m->keys[i];
        vals[j] = m->vals[i];
    }
    PyMem_Free(m->keys);
    PyMem_Free(m->vals);
    PyMem_Free(m->used);
    m->keys = keys;
    m->vals = vals;
    m->used = used;
    m->cap = cap;
    return 0;
}

/* Index of `key`, or -1. */
static inline Py_ssize_t
map_find(const Map *m, double key)
{
    if (!m->len)
        return -1;
    size_t mask = (size_t)m->cap - 1;
    size_t j = hash_double(key) & mask;
    while (m->used[j]) {
        if (m->keys[j] == key)
            return (Py_ssize_t)j;
        j = (j + 1) & mask;
    }
    return -1;
}

/* Reserve room for `extra` more keys (load factor <= 1/2). */
static inline int
map_reserve(Map *m, Py_ssize_t extra)
{
    Py_ssize_t need = m->len + extra;
    if (2 * need <= m->cap)
        return 0;
    Py_ssize_t cap = m->cap ? m->cap : 64;
    while (2 * need > cap)
        cap *= 2;
    return map_resize(m, cap);
}

/* Set key -> val; 1 if the key is new, 0 if it was there. Room must be reserved. */
static inline int
map_set(Map *m, double key, double val)
{
    size_t mask = (size_t)m->cap - 1;
    size_t j = hash_double(key) & mask;
    while (m->used[j]) {
        if (m->keys[j] == key) {
            m->vals[j] = val;
            return 0;
        }
        j = (j + 1) & mask;
    }
    m->used[j] = 1;
    m->keys[j] = key == 0.0 ? 0.0 : key;
    m->vals[j] = val;
    m->len++;
    return 1;
}

/* Remove `key`; 1 if it was there. */
static inline int
map_remove(Map *m, double key)
{
    Py_ssize_t found = map_find(m, key);
    if (found < 0)
        return 0;
    size_t mask = (size_t)m->cap - 1;
    size_t i = (size_t)found, j = i;
    for (;;) { /* backward-shift deletion: no tombstones, probes stay short */
        j = (j + 1) & mask;
        if (!m->used[j])
            break;
        size_t home = hash_double(m->keys[j]) & mask;
        /* move j into the hole at i unless its home lies cyclically in (i, j] */
        if ((i <= j) ? (i < home && home <= j) : (i < home || home <= j))
            continue;
        m->keys[i] = m->keys[j];
        m->vals[i] = m->vals[j];
        i = j;
    }
    m->used[i] = 0;
    m->len--;
    return 1;
}

/* ---- one side: map + sorted window of keys ---- */

/* top_of answers at most this deep are kept for the next one (a message's depth is ~10) */
#define TOP_CACHE_MAX 64

typedef struct {
    Map map;
    double *win; /* keys ascending (key = -price for bids, price for asks), all <= edge */
    Py_ssize_t wlen;
    double edge; /* +inf: every level is in the window */
    int neg;     /* 1 for bids */
    /* top_of's last answer: its [price, qty] lists and their keys, ascending. An unchanged level is
     * the same list in the next answer (checked intact), not a new one: a book message's levels
     * are mostly the previous message's. */
    PyObject *pairs[TOP_CACHE_MAX];
    double pair_keys[TOP_CACHE_MAX];
    Py_ssize_t npairs;
    /* The answer before the last one's lists (NULL where taken): a list of a level that changed is
     * refilled in place for the next answer once nothing else references it (its message released)
     * instead of freed, and another allocated. */
    PyObject *spare[TOP_CACHE_MAX];
    Py_ssize_t nspare;
} Side;

/* In-place sorting and selection of doubles (no comparator callback: ~5x faster than qsort). */

/* Hoare partition of a[0..n), n > 2, around the median of three moved to a[0]: returns j with
 * a[0..j] <= pivot <= a[j+1..n) and 0 <= j < n - 1, so both parts are non-empty (always progress). */
static Py_ssize_t
partition(double *a, Py_ssize_t n)
{
    Py_ssize_t m = n / 2, hi = n - 1, med;
    if (a[0] < a[m])
        med = a[m] < a[hi] ? m : (a[0] < a[hi] ? hi : 0);
    else
        med = a[0] < a[hi] ? 0 : (a[m] < a[hi] ? hi : m);
    double pivot = a[med];
    a[med] = a[0];
    a[0] = pivot;
    Py_ssize_t i = -1, j = n;
    for (;;) {
        do
            i++;
        while (a[i] < pivot);
        do
            j--;
        while (a[j] > pivot);
        if (i >= j)
            return j;
        double t = a[i];
        a[i] = a[j];
        a[j] = t;
    }
}
static void
dsort(double *a, Py_ssize_t n)
{
    while (n > 16) {
        Py_ssize_t j = partition(a, n);
        /* recurse into the smaller part, loop on the larger: O(log n) stack */
        Py_ssize_t left = j + 1;
        if (left < n - left) {
            dsort(a, left);
            a += left;
            n -= left;
        }
        else {
            dsort(a + left, n - left);
            n = left;
        }
    }
    for (Py_ssize_t i = 1; i < n; i++) {
        double v = a[i];
        Py_ssize_t j = i;
        while (j > 0 && a[j - 1] > v) {
            a[j] = a[j - 1];
            j--;
        }
        a[j] = v;
    }
}

/* Reorder so that a[0..k) holds the k smallest values, sorted. */
static void
dselect_sorted(double *a, Py_ssize_t n, Py_ssize_t k)
{
    double *base = a;
    Py_ssize_t want = k;
    while (n > 16 && k > 0 && k < n) {
        Py_ssize_t j = partition(a, n);
        Py_ssize_t left = j + 1; /* a[0..left) <= pivot <= a[left..n) */
        if (k <= left) {
            n = left;
        }
        else {
            a += left;
            n -= left;
            k -= left;
        }
    }
    dsort(a, n); /* the small range holding the k-th boundary: now base[0..want) are the smallest */
    dsort(base, want);
}

/* All keys of the side in a new buffer (caller frees), unordered. */
static double *
side_keys(const Side *s)
{
    Py_ssize_t n = s->map.len;
    double *out = PyMem_Malloc(sizeof(double) * (size_t)(n ? n : 1));
    if (!out) {
        PyErr_NoMemory();
        return NULL;
    }
    Py_ssize_t k = 0;
    for (Py_ssize_t i = 0; i < s->map.cap; i++)
        if (s->map.used[i])
            out[k++] = s->neg ? -s->map.keys[i] : s->map.keys[i];
    return out;
}

/* All keys of the side, sorted ascending, in a new buffer (caller frees). */
static double *
side_sorted_keys(const Side *s)
{
    double *out = side_keys(s);
    if (out)
        dsort(out, s->map.len);
    return out;
}

static int
side_refill(Side *s, Py_ssize_t w)
{
    double *keys = side_keys(s);
    if (!keys)
        return -1;
    Py_ssize_t n = s->map.len;
    if (n > 2 * w) {
        Py_ssize_t k = w + w / 2;
        dselect_sorted(keys, n, k);
        n = k;
        s->edge = keys[n - 1];
    }
    else {
        dsort(keys, n);
        s->edge = INFINITY;
    }
    memcpy(s->win, keys, sizeof(double) * (size_t)n);
    s->wlen = n;
    PyMem_Free(keys);
    return 0;
}

static inline Py_ssize_t
lower_bound(const double *a, Py_ssize_t n, double key)
{
    Py_ssize_t lo = 0, hi = n;
    while (lo < hi) {
        Py_ssize_t mid = (lo + hi) >> 1;
        if (a[mid] < key)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

/* Apply one absolute-size level (qty <= 0 deletes). Map room must be reserved. */
static inline int
side_apply(Side *s, Py_ssize_t w, double price, double qty)
{
    double key = s->neg ? -price : price;
    if (key <= s->edge) { /* inside the window */
        if (qty > 0) {
            if (map_set(&s->map, price, qty)) {
                Py_ssize_t at = lower_bound(s->win, s->wlen, key);
                memmove(s->win + at + 1, s->win + at, sizeof(double) * (size_t)(s->wlen - at));
                s->win[at] = key;
                if (++s->wlen > 2 * w) {
                    s->edge = s->win[w - 1];
                    s->wlen = w;
                }
            }
        }
        else if (map_remove(&s->map, price)) {
            Py_ssize_t at = lower_bound(s->win, s->wlen, key);
            memmove(s->win + at, s->win + at + 1, sizeof(double) * (size_t)(s->wlen - at - 1));
            s->wlen--;
            if (s->wlen < (w + 1) / 2 && s->edge != INFINITY)
                return side_refill(s, w);
        }
    }
    else if (qty > 0) {
        map_set(&s->map, price, qty);
    }
    else {
        map_remove(&s->map, price);
    }
    return 0;
}

static int
side_apply_all(Side *s, Py_ssize_t w, const double *lv, Py_ssize_t n)
{
    if (map_reserve(&s->map, n) < 0)
        return -1;
    for (Py_ssize_t i = 0; i < n; i++)
        if (side_apply(s, w, lv[2 * i], lv[2 * i + 1]) < 0)
            return -1;
    return 0;
}

static inline double
side_qty(const Side *s, double price)
{
    Py_ssize_t i = map_find(&s->map, price);
    return i < 0 ? 0.0 : s->map.vals[i];
}

/* ---- level conversion (validated before any change) ---- */

typedef struct {
    double *v; /* price, qty pairs */
    Py_ssize_t n, cap;
    int strict; /* 1: refuse impossible levels (book intake); 0: refuse only a NaN price (parse_levels) */
    int plain;  /* 1: refuse any number but a plain decimal (load_json_plain) */
    int quoted; /* 1: refuse bare numbers (scan_book_frame: venues quote theirs) */
    double small[64];
} LevelBuf;

static void
lb_init(LevelBuf *b)
{
    b->v = b->small;
    b->n = 0;
    b->cap = 32;
    b->strict = 1;
    b->plain = 0;
    b->quoted = 0;
}

/* A level the book can hold: 0 < price < inf, 0 <= qty < inf (false for any NaN). */
static inline int
level_ok(double p, double q)
{
    return p > 0 && p < INFINITY && q >= 0 && q < INFINITY;
}

/* ValueError for an impossible level; the same text as book.py's _bad_level (repr of the floats). */
static void
bad_level(double p, double q)
{
    char *ps = PyOS_double_to_string(p, 'r', 0, Py_DTSF_ADD_DOT_0, NULL);
    char *qs = PyOS_double_to_string(q, 'r', 0, Py_DTSF_ADD_DOT_0, NULL);
    if (ps && qs)
        PyErr_Format(PyExc_ValueError, "impossible level [%s, %s]: price must be finite and > 0, size finite and >= 0",
                     ps, qs);
    else
        PyErr_NoMemory();
    PyMem_Free(ps);
    PyMem_Free(qs);
}

static void
lb_free(LevelBuf *b)
{
    if (b->v != b->small)
        PyMem_Free(b->v);
}

/* Append a level already known to be one the book can hold. */
static inline __attribute__((always_inline)) int
lb_push_ok(LevelBuf *b, double p, double q)
{
    if (b->n == b->cap) {
        Py_ssize_t cap = b->cap * 2;
        double *v = PyMem_Malloc(sizeof(double) * 2 * (size_t)cap);
        if (!v) {
            PyErr_NoMemory();
            return -1;
        }
        memcpy(v, b->v, sizeof(double) * 2 * (size_t)b->n);
        if (b->v != b->small)
            PyMem_Free(b->v);
        b->v = v;
        b->cap = cap;
    }
    b->v[2 * b->n] = p;
    b->v[2 * b->n + 1] = q;
    b->n++;
    return 0;
}

static inline __attribute__((always_inline)) int
lb_push(LevelBuf *b, double p, double q)
{
    if (!level_ok(p, q) && (b->strict || isnan(p))) { /* the normal case costs the four comparisons */
        bad_level(p, q);
        return -1;
    }
    return lb_push_ok(b, p, q);
}

/* Python iterable of (price, qty) pairs -> buffer. */
static int
lb_from_pairs(LevelBuf *b, PyObject *levels)
{
    PyObject *seq = PySequence_Fast(levels, "levels must be an iterable of (price, qty) pairs");
    if (!seq)
        return -1;
    Py_ssize_t n = PySequence_Fast_GET_SIZE(seq);
    PyObject **items = PySequence_Fast_ITEMS(seq);
    for (Py_ssize_t i = 0; i < n; i++) {
        PyObject *it = items[i], *po, *qo;
        if (PyTuple_CheckExact(it) && PyTuple_GET_SIZE(it) == 2) {
            po = PyTuple_GET_ITEM(it, 0);
            qo = PyTuple_GET_ITEM(it, 1);
        }
        else if (PyList_CheckExact(it) && PyList_GET_SIZE(it) == 2) {
            po = PyList_GET_ITEM(it, 0);
            qo = PyList_GET_ITEM(it, 1);
        }
        else {
            PyObject *pair = PySequence_Tuple(it);
            if (!pair || PyTuple_GET_SIZE(pair) != 2) {
                Py_XDECREF(pair);
                Py_DECREF(seq);
                if (!PyErr_Occurred() || PyErr_ExceptionMatches(PyExc_TypeError)) {
                    PyErr_Clear();
                    PyErr_SetString(PyExc_ValueError, "a level must be a (price, qty) pair");
                }
                return -1;
            }
            double p = PyFloat_AsDouble(PyTuple_GET_ITEM(pair, 0));
            double q = p == -1.0 && PyErr_Occurred() ? 0.0 : PyFloat_AsDouble(PyTuple_GET_ITEM(pair, 1));
            Py_DECREF(pair);
            if ((p == -1.0 || q == -1.0) && PyErr_Occurred()) {
                Py_DECREF(seq);
                return -1;
            }
            if (lb_push(b, p, q) < 0) {
                Py_DECREF(seq);
                return -1;
            }
            continue;
        }
        double p = PyFloat_CheckExact(po) ? PyFloat_AS_DOUBLE(po) : PyFloat_AsDouble(po);
        if (p == -1.0 && PyErr_Occurred()) {
            Py_DECREF(seq);
            return -1;
        }
        double q = PyFloat_CheckExact(qo) ? PyFloat_AS_DOUBLE(qo) : PyFloat_AsDouble(qo);
        if (q == -1.0 && PyErr_Occurred()) {
            Py_DECREF(seq);
            return -1;
        }
        if (lb_push(b, p, q) < 0) {
            Py_DECREF(seq);
            return -1;
        }
    }
    Py_DECREF(seq);
    return 0;
}

static const double POW10[] = {1e0,  1e1,  1e2,  1e3,  1e4,  1e5,  1e6,  1e7,  1e8,  1e9,  1e10, 1e11,
                               1e12, 1e13, 1e14, 1e15, 1e16, 1e17, 1e18, 1e19, 1e20, 1e21, 1e22};

#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
#define SWAR_DIGITS 1
#endif

#ifdef SWAR_DIGITS
static const uint64_t P10[9] = {1, 10, 100, 1000, 10000, 100000, 1000000, 10000000, 100000000};

/* The eight bytes at p minus '0' each (*v), and how many of them, from the first, are digits.
 * A digit's byte becomes its value 0..9; t has a byte's high bit set iff that byte is not a digit
 * (> 9, or borrowed below 0). A borrow or carry crossing bytes only moves upward, into bytes after
 * the first non-digit, which are not used. */
static inline __attribute__((always_inline)) int
lead_digits(const char *p, uint64_t *v)
{
    uint64_t x;
    memcpy(&x, p, 8);
    x -= 0x3030303030303030ULL;
    uint64_t t = (x | (x + 0x7676767676767676ULL)) & 0x8080808080808080ULL;
    *v = x;
    return t ? __builtin_ctzll(t) >> 3 : 8; /* the first byte is the lowest */
}

/* The value of the first n (1..8) digits of lead_digits' *v: kept as the high end of an eight-digit
 * number with leading zeros, then three multiplications. */
static inline __attribute__((always_inline)) uint64_t
swar_value(uint64_t v, int n)
{
    v <<= 8 * (8 - n);
    v = (v * 2561) >> 8 & 0x00FF00FF00FF00FFULL;
    v = (v * 6553601) >> 16 & 0x0000FFFF0000FFFFULL;
    return (uint32_t)((v * 42949672960001ULL) >> 32);
}
#endif

/* Append the decimal digits at p to *mant; returns the first non-digit. Up to eight at a time where
 * eight bytes can be read: one load finds how many of them are digits (the venues' numbers run 1 to
 * 8 digits between the sign, the point and the closing quote), and three multiplications convert
 * them, instead of a loop turn per digit. */
static inline __attribute__((always_inline)) const char *
parse_digits(const char *p, const char *end, uint64_t *mant)
{
    uint64_t m = *mant;
#ifdef SWAR_DIGITS
    while (end - p >= 8) {
        uint64_t v;
        int n = lead_digits(p, &v);
        if (n == 0) {
            *mant = m;
            return p;
        }
        m = m * P10[n] + swar_value(v, n);
        p += n;
        /* p is at the first non-digit; or eight digits were read and the next byte is usually not
         * one (eight decimals are common), which one comparison tells without another load */
        if (n < 8 || p >= end || (unsigned)(*p - '0') >= 10u) {
            *mant = m;
            return p;
        }
    }
#endif
    while (p < end && (unsigned)(*p - '0') < 10u)
        m = m * 10 + (uint64_t)(*p++ - '0');
    *mant = m;
    return p;
}

/* One JSON number, bare or in a string ("67000.10"), at *pp; advances *pp. Exactly float(text):
 * plain decimals whose digits form an integer below 2^53, with at most 22 after the point, take the
 * exact fast path (mantissa and power of ten are both exact doubles, so one division rounds
 * correctly); anything else
 * goes through CPython's own correctly rounded strtod.
 *
 * `plain`: only a plain decimal is taken, `(0|[1-9][0-9]*)(.[0-9]+)?` (no sign, exponent or other
 * spelling) that takes the exact fast path; anything else is a ValueError. A caller whose reference
 * decoder reads a narrower syntax than float() (msgspec) falls back to it then. */
static inline __attribute__((always_inline)) int
parse_number(const char **pp, const char *end, double *out, int plain)
{
    const char *p = *pp;
    int quoted = 0;
    if (p < end && *p == '"') {
        quoted = 1;
        p++;
    }
    const char *start = p;
    int neg = 0;
    if (p < end && *p == '-') {
        neg = 1;
        p++;
    }
    /* digits before and after the point, as one integer mantissa (garbage past 19 digits: then
     * the slow path is taken) */
    uint64_t mant = 0;
    const char *d0 = p;
    p = parse_digits(p, end, &mant);
    Py_ssize_t ndig = p - d0, frac = 0;
    int dot = 0;
    if (p < end && *p == '.') {
        dot = 1;
        const char *f0 = ++p;
        p = parse_digits(p, end, &mant);
        frac = p - f0;
        ndig += frac;
    }
    const char *num_end = p;
    if (plain) {
        /* no sign; digits before the point, no leading zero, and digits after a point ("5." and ".5" are
         * not JSON); then the closing quote, or (bare) no exponent */
        Py_ssize_t nint = ndig - frac;
        if (neg || nint == 0 || (nint > 1 && *d0 == '0') || (dot && frac == 0) || ndig > 19 ||
            mant > (1ULL << 53) || frac > 22 ||
            (quoted ? (p >= end || *p != '"') : (p < end && (*p == 'e' || *p == 'E' || *p == '.')))) {
            PyErr_SetString(PyExc_ValueError, "not a plain decimal number in levels");
            return -1;
        }
    }
    int simple = ndig > 0 && (p >= end || (*p != 'e' && *p != 'E' && (quoted ? *p == '"' : 1)));
    if (simple && ndig <= 19 && mant <= (1ULL << 53) && frac <= 22) {
        double v = (double)mant;
        v = frac ? v / POW10[frac] : v;
        *out = neg ? -v : v;
    }
    else {
        /* slow path: let CPython parse the token (exponents, long mantissas, inf/nan spellings) */
        if (quoted) {
            while (num_end < end && *num_end != '"')
                num_end++;
        }
        else {
            while (num_end < end && *num_end != ',' && *num_end != ']' && *num_end != ' ' &&
                   *num_end != '\t' && *num_end != '\n' && *num_end != '\r')
                num_end++;
        }
        Py_ssize_t len = num_end - start;
        char small[64], *tmp = small; /* (a longer token, e.g. 60 significant digits: on the heap) */
        if (len <= 0) {
            PyErr_SetString(PyExc_ValueError, "malformed number in levels");
            return -1;
        }
        if (len >= (Py_ssize_t)sizeof small && !(tmp = PyMem_Malloc((size_t)len + 1))) {
            PyErr_NoMemory();
            return -1;
        }
        memcpy(tmp, start, (size_t)len);
        tmp[len] = 0;
        char *stop;
        double v = PyOS_string_to_double(tmp, &stop, NULL);
        int bad = v == -1.0 && PyErr_Occurred();
        if (bad)
            PyErr_Clear();
        bad = bad || stop != tmp + len; /* the whole token, or it is not a number (an embedded NUL too) */
        if (bad)
            PyErr_Format(PyExc_ValueError, "malformed number in levels: %.40s", tmp);
        if (tmp != small)
            PyMem_Free(tmp);
        if (bad)
            return -1;
        *out = v;
        p = num_end;
    }
    if (quoted) {
        if (p >= end || *p != '"') {
            PyErr_SetString(PyExc_ValueError, "malformed number in levels: unterminated string");
            return -1;
        }
        p++;
    }
    *pp = p;
    return 0;
}

static inline const char *
skip_ws(const char *p, const char *end)
{
    if (p < end && (unsigned char)*p > ' ') /* the venues send no whitespace */
        return p;
    while (p < end && (*p == ' ' || *p == '\n' || *p == '\r' || *p == '\t'))
        p++;
    return p;
}

/* A quoted plain decimal, "(0|[1-9][0-9]*)(.[0-9]+)?", at *pp (the opening quote) that takes
 * parse_number's exact fast path: its value, the same double, and *pp past the closing quote;
 * -1 (no error set, *pp unchanged) for anything else. */
static inline __attribute__((always_inline)) int
quoted_plain(const char **pp, const char *end, double *out)
{
    const char *p = *pp;
    if (p >= end || *p != '"')
        return -1;
    const char *d0 = ++p;
#ifdef SWAR_DIGITS
    /* The venues' usual number, at most 7 digits before the point and 8 after it, with 9 bytes
     * readable past the point: one load per part, none of the general checks (15 digits are exact). */
    if (end - p >= 8) {
        uint64_t v, w;
        int n = lead_digits(p, &v);
        if (n >= 1 && n <= 7 && (n == 1 || *d0 != '0')) {
            const char *q = p + n;
            if (*q == '"') {
                *out = (double)swar_value(v, n);
                *pp = q + 1;
                return 0;
            }
            int f;
            if (*q == '.' && end - q > 9 && (f = lead_digits(q + 1, &w)) >= 1 && q[1 + f] == '"') {
                /* The fraction's trailing zeros dropped first ("61737.63000000" is 6173763 / 10^2:
                 * the same quotient, so the same correctly rounded double), then both parts' digits
                 * side by side in one word when they fit: one conversion, and none for a whole value. */
                uint64_t fw = f == 8 ? w : w & ((1ULL << 8 * f) - 1);
                int g = fw ? ((63 - __builtin_clzll(fw)) >> 3) + 1 : 0;
                uint64_t m = !g           ? swar_value(v, n)
                             : n + g <= 8 ? swar_value((v & ((1ULL << 8 * n) - 1)) | w << 8 * n, n + g)
                                          : swar_value(v, n) * P10[g] + swar_value(w, g);
                *out = g ? (double)m / POW10[g] : (double)m;
                *pp = q + 2 + f;
                return 0;
            }
        }
    }
#endif
    uint64_t mant = 0;
    p = parse_digits(p, end, &mant);
    Py_ssize_t nint = p - d0, frac = 0;
    if (nint == 0 || (nint > 1 && *d0 == '0'))
        return -1;
    if (p < end && *p == '.') {
        const char *f0 = ++p;
        p = parse_digits(p, end, &mant);
        frac = p - f0;
        if (frac == 0)
            return -1;
    }
    if (p >= end || *p != '"' || nint + frac > 19 || mant > (1ULL << 53) || frac > 22)
        return -1;
    double v = (double)mant;
    *out = frac ? v / POW10[frac] : v;
    *pp = p + 1;
    return 0;
}

/* The venues' usual level array, `[["price","qty"],...]` with no whitespace, quoted plain decimals
 * and possible levels, in one tight pass: 1 parsed (*pp advanced), 0 anything else (nothing added,
 * *pp unchanged: the general parser below decides, with its errors), -1 out of memory. Each number
 * is the value parse_number gives the same text. */
static int
lb_parse_quoted_fast(LevelBuf *b, const char **pp, const char *end)
{
    const char *p = *pp;
    Py_ssize_t n0 = b->n;
    if (p >= end || *p != '[')
        return 0;
    p++;
    if (p < end && *p == ']') {
        *pp = p + 1;
        return 1;
    }
    for (;;) {
        double price, qty;
        if (p >= end || *p != '[')
            break;
        p++;
        if (quoted_plain(&p, end, &price) < 0 || p >= end || *p != ',')
            break;
        p++;
        /* plain decimals are finite and not negative: a level the book can hold unless the price is 0 */
        if (quoted_plain(&p, end, &qty) < 0 || p >= end || *p != ']' || !(price > 0))
            break;
        p++;
        if (lb_push_ok(b, price, qty) < 0)
            return -1;
        if (p < end && *p == ',') {
            p++;
            continue;
        }
        if (p < end && *p == ']') {
            *pp = p + 1;
            return 1;
        }
        break;
    }
    b->n = n0;
    return 0;
}

/* `[["price","qty"], ...]` (strings or bare numbers) at *pp -> buffer; advances *pp past the array. */
static int
lb_parse_array(LevelBuf *b, const char **pp, const char *end)
{
    int fast = lb_parse_quoted_fast(b, pp, end);
    if (fast)
        return fast < 0 ? -1 : 0;
    const char *p = *pp;
    const char *err = NULL;
    p = skip_ws(p, end);
    if (p >= end || *p != '[') {
        err = "levels must be a JSON array of [price, qty] pairs";
        goto fail;
    }
    p = skip_ws(p + 1, end);
    if (p < end && *p == ']') {
        p++;
        goto done;
    }
    for (;;) {
        double price, qty;
        if (p >= end || *p != '[') {
            err = "a level must be a [price, qty] array";
            goto fail;
        }
        p = skip_ws(p + 1, end);
        if (b->quoted && (p >= end || *p != '"')) {
            err = "levels: a bare number";
            goto fail;
        }
        if (parse_number(&p, end, &price, b->plain) < 0)
            goto fail;
        p = skip_ws(p, end);
        if (p >= end || *p != ',') {
            err = "a level must be a [price, qty] array";
            goto fail;
        }
        p = skip_ws(p + 1, end);
        if (b->quoted && (p >= end || *p != '"')) {
            err = "levels: a bare number";
            goto fail;
        }
        if (parse_number(&p, end, &qty, b->plain) < 0)
            goto fail;
        p = skip_ws(p, end);
        if (p >= end || *p != ']') {
            err = "a level must be a [price, qty] array";
            goto fail;
        }
        if (lb_push(b, price, qty) < 0)
            goto fail;
        p = skip_ws(p + 1, end);
        if (p < end && *p == ',') {
            p = skip_ws(p + 1, end);
            continue;
        }
        if (p < end && *p == ']') {
            p++;
            break;
        }
        err = "levels: expected ',' or ']'";
        goto fail;
    }
done:
    *pp = p;
    return 0;
fail:
    if (err)
        PyErr_SetString(PyExc_ValueError, err);
    return -1;
}

/* The bytes-like (or ASCII str) `obj`, exactly one level array -> buffer. */
static int
lb_from_json(LevelBuf *b, PyObject *obj)
{
    Py_buffer view;
    if (PyObject_GetBuffer(obj, &view, PyBUF_SIMPLE) < 0)
        return -1;
    const char *p = view.buf, *end = p + view.len;
    int rc = lb_parse_array(b, &p, end);
    if (rc == 0 && skip_ws(p, end) != end) {
        PyErr_SetString(PyExc_ValueError, "levels: trailing data after the array");
        rc = -1;
    }
    PyBuffer_Release(&view);
    return rc;
}

/* ---- the type ---- */

typedef struct {
    PyObject_HEAD
    PyObject *symbol;
    Py_ssize_t w;
    Side bids, asks;
} BookObject;

static int
side_init(Side *s, Py_ssize_t w, int neg)
{
    memset(s, 0, sizeof *s);
    s->neg = neg;
    s->edge = INFINITY;
    s->win = PyMem_Malloc(sizeof(double) * (size_t)(2 * w + 2));
    if (!s->win) {
        PyErr_NoMemory();
        return -1;
    }
    return 0;
}

static void
side_free(Side *s)
{
    map_free(&s->map);
    PyMem_Free(s->win);
    s->win = NULL;
    Py_ssize_t n = s->npairs;
    s->npairs = 0;
    for (Py_ssize_t i = 0; i < n; i++)
        Py_DECREF(s->pairs[i]);
    n = s->nspare;
    s->nspare = 0;
    for (Py_ssize_t i = 0; i < n; i++)
        Py_XDECREF(s->spare[i]);
}

static void
side_clear(Side *s)
{
    map_clear(&s->map);
    s->wlen = 0;
    s->edge = INFINITY;
}

static PyObject *
Book_new(PyTypeObject *type, PyObject *args, PyObject *kw)
{
    BookObject *self = (BookObject *)type->tp_alloc(type, 0);
    if (!self)
        return NULL;
    Py_ssize_t w = 64;
    PyObject *wo = PyObject_GetAttrString((PyObject *)type, "window");
    if (wo) {
        w = PyLong_AsSsize_t(wo);
        Py_DECREF(wo);
        if (w == -1 && PyErr_Occurred()) {
            Py_DECREF(self);
            return NULL;
        }
        if (w < 1) {
            PyErr_SetString(PyExc_ValueError, "window must be >= 1");
            Py_DECREF(self);
            return NULL;
        }
    }
    else {
        PyErr_Clear();
    }
    self->w = w;
    self->symbol = PyUnicode_FromString("");
    if (!self->symbol || side_init(&self->bids, w, 1) < 0 || side_init(&self->asks, w, 0) < 0) {
        Py_DECREF(self);
        return NULL;
    }
    return (PyObject *)self;
}

static int
Book_init(BookObject *self, PyObject *args, PyObject *kw)
{
    static char *names[] = {"symbol", NULL};
    PyObject *symbol = NULL;
    if (!PyArg_ParseTupleAndKeywords(args, kw, "|O:L2Book", names, &symbol))
        return -1;
    if (symbol) {
        Py_INCREF(symbol);
        Py_XSETREF(self->symbol, symbol);
    }
    return 0;
}

static void
Book_dealloc(BookObject *self)
{
    side_free(&self->bids);
    side_free(&self->asks);
    Py_XDECREF(self->symbol);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

static PyObject *
Book_clear(BookObject *self, PyObject *unused)
{
    side_clear(&self->bids);
    side_clear(&self->asks);
    Py_RETURN_NONE;
}

static int
load_side(BookObject *self, Side *s, const LevelBuf *b)
{
    side_clear(s);
    /* room for as many levels again: the updates that follow a snapshot do not rehash */
    if (map_reserve(&s->map, 2 * b->n) < 0)
        return -1;
    /* A venue sends its snapshot best level first: then the window is its first levels, as they
     * come (side_refill's result without collecting and selecting the keys: about half of loading
     * a 500-level Bybit snapshot). Any level out of that order: side_refill. */
    Py_ssize_t w = self->w, m = 0;
    double last = -INFINITY;
    int in_order = 1;
    for (Py_ssize_t i = 0; i < b->n; i++) {
        double p = b->v[2 * i];
        if (!(b->v[2 * i + 1] > 0))
            continue;
        map_set(&s->map, p, b->v[2 * i + 1]);
        double key = s->neg ? -p : p;
        if (in_order && key > last) {
            last = key;
            if (m <= 2 * w)
                s->win[m++] = key;
        }
        else
            in_order = 0;
    }
    if (!in_order)
        return side_refill(s, w);
    if (m > 2 * w) { /* more than 2w levels: the best w + w/2 of them, as side_refill keeps */
        m = w + w / 2;
        s->edge = s->win[m - 1];
    }
    s->wlen = m;
    return 0;
}

typedef int (*parse_fn)(LevelBuf *, PyObject *);

/* Parse both sides with `parse`, then load them as a snapshot or apply them as an update:
 * nothing changes unless both sides parse. */
static PyObject *
both_sides(BookObject *self, PyObject *const *args, Py_ssize_t nargs, parse_fn parse, int snapshot,
           const char *usage)
{
    if (nargs != 2) {
        PyErr_SetString(PyExc_TypeError, usage);
        return NULL;
    }
    LevelBuf b, a;
    lb_init(&b);
    lb_init(&a);
    int rc = parse(&b, args[0]);
    if (rc == 0)
        rc = parse(&a, args[1]);
    if (rc == 0)
        rc = snapshot ? load_side(self, &self->bids, &b) : side_apply_all(&self->bids, self->w, b.v, b.n);
    if (rc == 0)
        rc = snapshot ? load_side(self, &self->asks, &a) : side_apply_all(&self->asks, self->w, a.v, a.n);
    lb_free(&b);
    lb_free(&a);
    if (rc < 0)
        return NULL;
    Py_RETURN_NONE;
}


/* ---- scan_book_frame: a venue's book frame in one pass ---- */

/* A JSON string without escapes, control or non-ASCII characters at *pp ('"' expected); its content
 * is [*start, *start + *len). -1 for anything else (no Python error set). */
static inline int
scan_plain_string(const char **pp, const char *end, const char **start, Py_ssize_t *len)
{
    const char *p = *pp;
    if (p >= end || *p != '"')
        return -1;
    const char *s0 = ++p;
#ifdef SWAR_DIGITS
    /* Eight bytes a step up to the first that is '"', '\\', a control character or not ASCII: each
     * test's lowest flagged byte is exact (borrows only carry upward), so the first flag is one. */
    while (end - p >= 8) {
        uint64_t x, q, b;
        memcpy(&x, p, 8);
        q = x ^ 0x2222222222222222ULL;
        b = x ^ 0x5C5C5C5C5C5C5C5CULL;
        uint64_t t = (((q - 0x0101010101010101ULL) & ~q) | ((b - 0x0101010101010101ULL) & ~b) |
                      ((x - 0x2020202020202020ULL) & ~x) | x) &
                     0x8080808080808080ULL;
        if (t) {
            p += __builtin_ctzll(t) >> 3;
            break;
        }
        p += 8;
    }
#endif
    while (p < end && *p != '"') {
        unsigned char c = (unsigned char)*p;
        if (c < 0x20 || c >= 0x80 || c == '\\')
            return -1;
        p++;
    }
    if (p >= end)
        return -1;
    *start = s0;
    *len = p - s0;
    *pp = p + 1;
    return 0;
}

#define SCAN_MAX_KEYS 16
#define SCAN_MAX_TAGS 4

typedef struct {
    const char *name[SCAN_MAX_KEYS];
    Py_ssize_t len[SCAN_MAX_KEYS];
    Py_ssize_t n;
    signed char one[128]; /* a one-letter key's index by its letter (-1: none): most venue keys are one */
} KeySet;

static int
keyset_init(KeySet *k, PyObject *keys)
{
    if (!PyTuple_Check(keys) || PyTuple_GET_SIZE(keys) > SCAN_MAX_KEYS) {
        PyErr_SetString(PyExc_TypeError, "keys must be a tuple of at most 16 str");
        return -1;
    }
    k->n = PyTuple_GET_SIZE(keys);
    memset(k->one, -1, sizeof k->one);
    for (Py_ssize_t i = k->n - 1; i >= 0; i--) { /* the first of equal keys wins, as in the scan */
        k->name[i] = PyUnicode_AsUTF8AndSize(PyTuple_GET_ITEM(keys, i), &k->len[i]);
        if (!k->name[i])
            return -1;
        if (k->len[i] == 1 && (unsigned char)k->name[i][0] < 128)
            k->one[(unsigned char)k->name[i][0]] = (signed char)i;
    }
    return 0;
}

static inline Py_ssize_t
keyset_find(const KeySet *k, const char *s, Py_ssize_t len)
{
    if (len == 1)
        return (unsigned char)s[0] < 128 ? k->one[(unsigned char)s[0]] : -1;
    for (Py_ssize_t i = 0; i < k->n; i++)
        if (k->len[i] == len && memcmp(k->name[i], s, (size_t)len) == 0)
            return i;
    return -1;
}

/* The names a venue repeats in every frame (stream, event type, symbol, topic), made once: each of
 * STR_CACHE slots keeps the last string made for it and gives it again for the same bytes. A frame's
 * names then cost no allocation, and their hash is computed once, so the routes' dict look-ups by
 * them are identity matches (a fresh "BTCUSDT" was hashed and compared byte by byte: ~350
 * instructions a look-up). Strings are immutable: sharing one is seen by nobody. A one-off string (a
 * trade id) only replaces its slot's. */
#define STR_CACHE 16
#define STR_CACHE_MAX 64
static PyObject *str_cache[STR_CACHE];

static PyObject *
repeated_ascii(const char *s, Py_ssize_t n)
{
    unsigned slot = 0;
    if (n > STR_CACHE_MAX)
        goto fresh;
    if (n)
        slot = ((unsigned)n * 31u + (unsigned char)s[0] * 7u + (unsigned char)s[n - 1]) & (STR_CACHE - 1);
    PyObject *c = str_cache[slot];
    if (c && PyUnicode_GET_LENGTH(c) == n && memcmp(PyUnicode_DATA(c), s, (size_t)n) == 0)
        return Py_NewRef(c);
fresh:;
    PyObject *o = PyUnicode_New(n, 127);
    if (!o)
        return NULL;
    memcpy(PyUnicode_DATA(o), s, (size_t)n);
    if (n <= STR_CACHE_MAX)
        Py_XSETREF(str_cache[slot], Py_NewRef(o));
    return o;
}

/* A scalar value at *pp: a plain string (-> str), a non-negative integer of at most 18 digits without
 * a leading zero, fraction or exponent (-> int), true/false (-> bool) or null (-1 when wanted).
 * `want`: build the object (else *out stays NULL). -1 for anything else (no Python error set, except
 * on memory). */
static int
scan_scalar(const char **pp, const char *end, int want, PyObject **out)
{
    const char *p = *pp;
    *out = NULL;
    if (p >= end)
        return -1;
    if (*p == '"') {
        const char *s0;
        Py_ssize_t n;
        if (scan_plain_string(&p, end, &s0, &n) < 0)
            return -1;
        if (want && !(*out = repeated_ascii(s0, n))) /* plain ASCII (scan_plain_string): no decoding */
            return -2;
    }
    else if ((unsigned)(*p - '0') < 10u) {
        const char *d0 = p;
        uint64_t v = 0;
        p = parse_digits(p, end, &v);
        if (p - d0 > 18 || (*d0 == '0' && p - d0 > 1) || (p < end && (*p == '.' || *p == 'e' || *p == 'E')))
            return -1;
        if (want && !(*out = PyLong_FromUnsignedLongLong(v)))
            return -2;
    }
    else if (end - p >= 4 && memcmp(p, "true", 4) == 0) {
        if (want)
            *out = Py_NewRef(Py_True);
        p += 4;
    }
    else if (end - p >= 4 && memcmp(p, "null", 4) == 0) {
        if (want)
            return -1;
        p += 4;
    }
    else if (end - p >= 5 && memcmp(p, "false", 5) == 0) {
        if (want)
            *out = Py_NewRef(Py_False);
        p += 5;
    }
    else {
        return -1;
    }
    *pp = p;
    return 0;
}

/* The text of a frame: bytes, or a str of ASCII only (its one byte per character); 0 for anything
 * else (the caller's general decoder's). */
static inline int
frame_text(PyObject *data, const char **p, Py_ssize_t *size)
{
    if (PyUnicode_Check(data)) {
        if (!PyUnicode_IS_COMPACT_ASCII(data))
            return 0;
        *p = (const char *)PyUnicode_DATA(data);
        *size = PyUnicode_GET_LENGTH(data);
        return 1;
    }
    if (PyBytes_Check(data)) {
        *p = PyBytes_AS_STRING(data);
        *size = PyBytes_GET_SIZE(data);
        return 1;
    }
    return 0;
}

/* An object member's key at *pp (a plain string: scan_plain_string) and its ':': *pp at the value;
 * -1 for anything else. */
static inline int
member_key(const char **pp, const char *end, const char **k, Py_ssize_t *kl)
{
    const char *p = *pp;
    if (scan_plain_string(&p, end, k, kl) < 0)
        return -1;
    p = skip_ws(p, end);
    if (p >= end || *p != ':')
        return -1;
    *pp = skip_ws(p + 1, end);
    return 0;
}

/* After an object's member: 1 at a ',' (*pp past it and the space after), 0 at the closing '}' (*pp
 * past it), -1 for anything else. */
static inline int
next_member(const char **pp, const char *end)
{
    const char *p = skip_ws(*pp, end);
    if (p < end && *p == ',') {
        *pp = skip_ws(p + 1, end);
        return 1;
    }
    if (p < end && *p == '}') {
        *pp = p + 1;
        return 0;
    }
    *pp = p;
    return -1;
}

/* scan_book_frame(data, top_keys, inner_key, inner_keys, tag[, decimals]) -> tuple or None.
 *
 * One pass over a venue's frame, `{top..., inner_key: {inner..., "b": [...], "a": [...]}}`, for
 * frames of the plainest form only: every key and string plain ASCII without escapes, every other
 * value a non-negative integer (at most 18 digits), a plain string, true, false or null, every level
 * quoted and possible (as apply_json takes it), no key of interest twice, nothing after the object.
 * "b" and "a" are the book's sides when their value is an array; otherwise plain values like any other
 * (a trade's "a": its id). The inner keys named in `decimals` must hold a quoted plain decimal
 * ("61837.63"), returned as the float parse_number gives. Returns the values of top_keys then
 * inner_keys (str, int, bool or float; None where absent), then the levels (an opaque bytes object
 * for apply_parsed/load_parsed; None unless both "b" and "a" came as arrays). Returns None for any
 * other frame, for one without the inner key tag[0] (when a tag is given), and as soon as that key has a
 * value other than tag[1] (a str, or a tuple of at most 4 accepted ones): the caller's general decoder (msgspec), which accepts all of these
 * frames with the same values, decides. So the levels are parsed once, straight from the frame, with
 * no second scan to find where they end, and a trade's fields come with no decoder object between. */
/* scan_book_frame's arguments after the frame, read once: a feed passes the same objects every call. */
typedef struct {
    PyObject *args[5]; /* top_keys, inner_key, inner_keys, tag, decimals: held, so their ids stay theirs */
    KeySet top, inner;
    const char *inner_name;
    Py_ssize_t inner_len, tag_i, ntags, tag_len[SCAN_MAX_TAGS];
    const char *tag_val[SCAN_MAX_TAGS];
    PyObject *tag_obj[SCAN_MAX_TAGS]; /* the accepted values, returned for the tag's key as they are */
    unsigned dec_mask;                /* inner keys whose value is a quoted decimal, as a float */
} ScanSpec;

#define SCAN_SPECS 4
static ScanSpec scan_specs[SCAN_SPECS];
static int scan_specs_next;

static int
spec_init(ScanSpec *sp, PyObject *const *a)
{
    if (!(sp->inner_name = PyUnicode_AsUTF8AndSize(a[1], &sp->inner_len)) || keyset_init(&sp->top, a[0]) < 0 ||
        keyset_init(&sp->inner, a[2]) < 0)
        return -1;
    sp->tag_i = -1;
    sp->ntags = 0;
    if (a[3] != Py_None) {
        PyObject *tv = PyTuple_Check(a[3]) && PyTuple_GET_SIZE(a[3]) == 2 ? PyTuple_GET_ITEM(a[3], 1) : NULL;
        PyObject *one[1] = {tv};
        PyObject *const *vs = one;
        Py_ssize_t nt = 1;
        if (tv && PyTuple_Check(tv)) {
            vs = &PyTuple_GET_ITEM(tv, 0);
            nt = PyTuple_GET_SIZE(tv);
        }
        if (!tv || nt < 1 || nt > SCAN_MAX_TAGS) {
            PyErr_SetString(PyExc_TypeError, "tag must be None or a (key, value or tuple of at most 4 values) tuple");
            return -1;
        }
        Py_ssize_t kl;
        const char *k = PyUnicode_AsUTF8AndSize(PyTuple_GET_ITEM(a[3], 0), &kl);
        if (!k)
            return -1;
        for (Py_ssize_t t = 0; t < nt; t++) {
            if (!PyUnicode_CheckExact(vs[t]) || !(sp->tag_val[t] = PyUnicode_AsUTF8AndSize(vs[t], &sp->tag_len[t]))) {
                if (!PyErr_Occurred())
                    PyErr_SetString(PyExc_TypeError, "tag values must be str");
                return -1;
            }
            sp->tag_obj[t] = vs[t];
        }
        sp->ntags = nt;
        sp->tag_i = keyset_find(&sp->inner, k, kl);
    }
    sp->dec_mask = 0;
    if (a[4] != Py_None) {
        KeySet dec;
        if (keyset_init(&dec, a[4]) < 0)
            return -1;
        for (Py_ssize_t d = 0; d < dec.n; d++) {
            Py_ssize_t i = keyset_find(&sp->inner, dec.name[d], dec.len[d]);
            if (i < 0) {
                PyErr_SetString(PyExc_ValueError, "decimals must name inner keys");
                return -1;
            }
            sp->dec_mask |= 1u << i;
        }
    }
    for (int i = 0; i < 5; i++)
        sp->args[i] = Py_NewRef(a[i]);
    return 0;
}

/* The spec of these arguments: a cached one when the same objects come again, else read now. */
static const ScanSpec *
spec_of(PyObject *const *a)
{
    for (int i = 0; i < SCAN_SPECS; i++) {
        ScanSpec *sp = &scan_specs[i];
        if (sp->args[0] == a[0] && sp->args[1] == a[1] && sp->args[2] == a[2] && sp->args[3] == a[3] &&
            sp->args[4] == a[4])
            return sp;
    }
    ScanSpec fresh;
    if (spec_init(&fresh, a) < 0)
        return NULL;
    ScanSpec *sp = &scan_specs[scan_specs_next];
    scan_specs_next = (scan_specs_next + 1) % SCAN_SPECS;
    PyObject *old[5];
    memcpy(old, sp->args, sizeof old);
    *sp = fresh;
    for (int i = 0; i < 5; i++) /* released last: freeing can run code */
        Py_XDECREF(old[i]);
    return sp;
}

static PyObject *
scan_book_frame(PyObject *mod, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 5 && nargs != 6) {
        PyErr_SetString(PyExc_TypeError, "scan_book_frame(data, top_keys, inner_key, inner_keys, tag[, decimals])");
        return NULL;
    }
    const char *p;
    Py_ssize_t size;
    if (!frame_text(args[0], &p, &size))
        Py_RETURN_NONE;
    const char *end = p + size;
    PyObject *spec_args[5] = {args[1], args[2], args[3], args[4], nargs == 6 ? args[5] : Py_None};
    const ScanSpec *sp = spec_of(spec_args);
    if (!sp)
        return NULL;
    const KeySet *top = &sp->top, *inner = &sp->inner;
    const Py_ssize_t inner_len = sp->inner_len, tag_i = sp->tag_i;
    const char *inner_name = sp->inner_name;
    Py_ssize_t nt = top->n, ni = inner->n, nout = nt + ni + 1;
    PyObject *vals[2 * SCAN_MAX_KEYS + 1] = {NULL};
    LevelBuf lb[2];
    lb_init(&lb[0]);
    lb_init(&lb[1]);
    lb[0].quoted = lb[1].quoted = 1;
    int seen_side[2] = {0, 0}, got_levels[2] = {0, 0}, seen_inner = 0, rc = -1;
    PyObject *result = NULL;

    p = skip_ws(p, end);
    if (p >= end || *p != '{')
        goto out;
    p = skip_ws(p + 1, end);
    if (p < end && *p == '}') {
        p++;
        goto closed;
    }
    for (;;) {
        const char *k;
        Py_ssize_t kl;
        if (member_key(&p, end, &k, &kl) < 0)
            goto out;
        if (kl == inner_len && memcmp(k, inner_name, (size_t)kl) == 0) {
            if (seen_inner++ || p >= end || *p != '{')
                goto out;
            p = skip_ws(p + 1, end);
            if (p < end && *p == '}') {
                p++;
            }
            else {
                for (;;) {
                    const char *ik;
                    Py_ssize_t ikl;
                    if (member_key(&p, end, &ik, &ikl) < 0)
                        goto out;
                    int side = ikl == 1 && (*ik == 'b' || *ik == 'a') ? (*ik == 'a') : -1;
                    if (side >= 0 && seen_side[side]++)
                        goto out; /* twice, in whatever form */
                    if (side >= 0 && p < end && *p == '[') {
                        got_levels[side] = 1;
                        if (lb_parse_array(&lb[side], &p, end) < 0)
                            goto out; /* a ValueError: cleared below, the general decoder decides */
                    }
                    else {
                        Py_ssize_t i = keyset_find(inner, ik, ikl);
                        if (i >= 0 && vals[nt + i])
                            goto out; /* twice */
                        if (i >= 0 && i == tag_i) {
                            const char *tv;
                            Py_ssize_t tl, t = 0;
                            if (scan_plain_string(&p, end, &tv, &tl) < 0)
                                goto out;
                            while (t < sp->ntags && (tl != sp->tag_len[t] || memcmp(tv, sp->tag_val[t], (size_t)tl) != 0))
                                t++;
                            if (t == sp->ntags)
                                goto out; /* another event type: the general decoder's */
                            vals[nt + i] = Py_NewRef(sp->tag_obj[t]);
                        }
                        else if (i >= 0 && (sp->dec_mask >> i & 1)) {
                            double d;
                            if (quoted_plain(&p, end, &d) < 0)
                                goto out;
                            if (!(vals[nt + i] = PyFloat_FromDouble(d)))
                                goto out;
                        }
                        else if (scan_scalar(&p, end, i >= 0, i >= 0 ? &vals[nt + i] : &(PyObject *){NULL}) < 0)
                            goto out;
                    }
                    int more = next_member(&p, end);
                    if (more > 0)
                        continue;
                    if (more == 0)
                        break;
                    goto out;
                }
            }
        }
        else {
            Py_ssize_t i = keyset_find(top, k, kl);
            if (i >= 0 && vals[i])
                goto out;
            PyObject *ignored = NULL;
            if (scan_scalar(&p, end, i >= 0, i >= 0 ? &vals[i] : &ignored) < 0)
                goto out;
        }
        int more = next_member(&p, end);
        if (more > 0)
            continue;
        if (more == 0)
            break;
        goto out;
    }
closed:
    if (skip_ws(p, end) != end || (tag_i >= 0 && !vals[nt + tag_i]))
        goto out; /* trailing bytes, or no event type: the general decoder's */
    if (got_levels[0] && got_levels[1]) {
        Py_ssize_t nb = lb[0].n, na = lb[1].n;
        PyObject *lv = PyBytes_FromStringAndSize(NULL, (Py_ssize_t)sizeof(double) * 2 * (1 + nb + na));
        if (!lv)
            goto out;
        double *d = (double *)PyBytes_AS_STRING(lv);
        d[0] = (double)nb;
        d[1] = (double)na;
        memcpy(d + 2, lb[0].v, sizeof(double) * 2 * (size_t)nb);
        memcpy(d + 2 + 2 * nb, lb[1].v, sizeof(double) * 2 * (size_t)na);
        vals[nt + ni] = lv;
    }
    rc = 0;
out:
    lb_free(&lb[0]);
    lb_free(&lb[1]);
    if (rc == 0) {
        result = PyTuple_New(nout);
        if (result)
            for (Py_ssize_t i = 0; i < nout; i++) {
                PyTuple_SET_ITEM(result, i, vals[i] ? vals[i] : Py_NewRef(Py_None));
                vals[i] = NULL;
            }
    }
    for (Py_ssize_t i = 0; i < nout; i++)
        Py_XDECREF(vals[i]);
    if (result)
        return result;
    if (PyErr_Occurred()) {
        if (!PyErr_ExceptionMatches(PyExc_ValueError))
            return NULL; /* memory */
        PyErr_Clear();
    }
    Py_RETURN_NONE;
}

/* load_snapshot_json(body, id_key, bids_key, asks_key) -> id, or None. A venue's REST depth snapshot,
 * `{id_key: n, bids_key: [...], asks_key: [...], ...}`, in one pass: its levels parsed as load_json_plain
 * parses them (plain decimals; each level possible) straight into the book, and n (a non-negative
 * integer of at most 18 digits) returned. Any other form (keys or strings with escapes, a nested value
 * besides the two sides, a key of interest missing or twice, trailing bytes, a number that is not a
 * plain decimal, an impossible level) returns None with the book untouched: the caller's general
 * decoder decides, with its errors. Why: decoding the body (to find the arrays) and then parsing the
 * arrays read a 1000-level snapshot twice. */
static PyObject *
Book_load_snapshot_json(BookObject *self, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 4 || !PyUnicode_Check(args[1]) || !PyUnicode_Check(args[2]) || !PyUnicode_Check(args[3])) {
        PyErr_SetString(PyExc_TypeError, "load_snapshot_json(body, id_key, bids_key, asks_key)");
        return NULL;
    }
    const char *p, *keys[3];
    Py_ssize_t size, klen[3];
    for (int i = 0; i < 3; i++)
        if (!(keys[i] = PyUnicode_AsUTF8AndSize(args[1 + i], &klen[i])))
            return NULL;
    if (!frame_text(args[0], &p, &size))
        Py_RETURN_NONE;
    const char *end = p + size;
    LevelBuf lb[2];
    lb_init(&lb[0]);
    lb_init(&lb[1]);
    lb[0].plain = lb[1].plain = 1;
    PyObject *id = NULL, *ret = NULL;
    int got[2] = {0, 0};
    p = skip_ws(p, end);
    if (p >= end || *p != '{')
        goto out;
    p = skip_ws(p + 1, end);
    if (p < end && *p == '}')
        goto out; /* no keys: not a snapshot */
    for (;;) {
        const char *k;
        Py_ssize_t kl;
        if (member_key(&p, end, &k, &kl) < 0)
            goto out;
        int which = -1;
        for (int i = 0; i < 3 && which < 0; i++)
            if (kl == klen[i] && memcmp(k, keys[i], (size_t)kl) == 0)
                which = i;
        if (which == 0) {
            if (id || scan_scalar(&p, end, 1, &id) < 0 || !id || !PyLong_CheckExact(id))
                goto out;
        }
        else if (which > 0) {
            if (got[which - 1]++ || p >= end || *p != '[' || lb_parse_array(&lb[which - 1], &p, end) < 0)
                goto out;
        }
        else {
            PyObject *ignored = NULL;
            if (scan_scalar(&p, end, 0, &ignored) < 0)
                goto out;
        }
        int more = next_member(&p, end);
        if (more > 0)
            continue;
        if (more == 0)
            break;
        goto out;
    }
    if (skip_ws(p, end) != end || !id || !got[0] || !got[1])
        goto out; /* (an impossible level was refused as it was parsed: lb_push, strict) */
    if (load_side(self, &self->bids, &lb[0]) < 0 || load_side(self, &self->asks, &lb[1]) < 0)
        goto out;
    ret = Py_NewRef(id);
out:
    lb_free(&lb[0]);
    lb_free(&lb[1]);
    Py_XDECREF(id);
    if (ret)
        return ret;
    if (PyErr_Occurred()) {
        if (!PyErr_ExceptionMatches(PyExc_ValueError))
            return NULL; /* memory */
        PyErr_Clear();
    }
    Py_RETURN_NONE;
}

/* The levels of scan_book_frame -> two LevelBufs (views into the bytes), each level checked again:
 * every way into a book refuses an impossible level. */
static int
parsed_levels(PyObject *obj, LevelBuf *b, LevelBuf *a)
{
    if (!PyBytes_Check(obj) || PyBytes_GET_SIZE(obj) < (Py_ssize_t)(2 * sizeof(double)) ||
        PyBytes_GET_SIZE(obj) % (Py_ssize_t)(2 * sizeof(double))) {
        PyErr_SetString(PyExc_ValueError, "not the levels of scan_book_frame");
        return -1;
    }
    double *d = (double *)PyBytes_AS_STRING(obj);
    Py_ssize_t total = PyBytes_GET_SIZE(obj) / (Py_ssize_t)(2 * sizeof(double)) - 1;
    if (!(d[0] >= 0 && d[1] >= 0 && d[0] + d[1] == (double)total && d[0] == (double)(Py_ssize_t)d[0])) {
        PyErr_SetString(PyExc_ValueError, "not the levels of scan_book_frame");
        return -1;
    }
    Py_ssize_t nb = (Py_ssize_t)d[0];
    b->v = d + 2;
    b->n = b->cap = nb;
    a->v = d + 2 + 2 * nb;
    a->n = a->cap = total - nb;
    for (Py_ssize_t i = 0; i < total; i++)
        if (!level_ok(d[2 + 2 * i], d[3 + 2 * i])) {
            bad_level(d[2 + 2 * i], d[3 + 2 * i]);
            return -1;
        }
    return 0;
}

static PyObject *
parsed_into(BookObject *self, PyObject *obj, int snapshot)
{
    LevelBuf b, a;
    if (parsed_levels(obj, &b, &a) < 0)
        return NULL;
    int rc = snapshot ? load_side(self, &self->bids, &b) : side_apply_all(&self->bids, self->w, b.v, b.n);
    if (rc == 0)
        rc = snapshot ? load_side(self, &self->asks, &a) : side_apply_all(&self->asks, self->w, a.v, a.n);
    if (rc < 0)
        return NULL;
    Py_RETURN_NONE;
}

static PyObject *
Book_apply_parsed(BookObject *self, PyObject *obj)
{
    return parsed_into(self, obj, 0);
}

static PyObject *
Book_load_parsed(BookObject *self, PyObject *obj)
{
    return parsed_into(self, obj, 1);
}

static PyObject *
Book_load_snapshot(BookObject *self, PyObject *const *args, Py_ssize_t nargs)
{
    return both_sides(self, args, nargs, lb_from_pairs, 1, "load_snapshot(bids, asks)");
}

/* A snapshot straight from raw JSON level arrays: no float or tuple object per level. */
static PyObject *
Book_load_json(BookObject *self, PyObject *const *args, Py_ssize_t nargs)
{
    return both_sides(self, args, nargs, lb_from_json, 1, "load_json(bids, asks)");
}

static int
lb_from_json_plain(LevelBuf *b, PyObject *obj)
{
    b->plain = 1;
    return lb_from_json(b, obj);
}

static PyObject *
Book_load_json_plain(BookObject *self, PyObject *const *args, Py_ssize_t nargs)
{
    return both_sides(self, args, nargs, lb_from_json_plain, 1, "load_json_plain(bids, asks)");
}

static PyObject *
Book_apply_json(BookObject *self, PyObject *const *args, Py_ssize_t nargs)
{
    return both_sides(self, args, nargs, lb_from_json, 0, "apply_json(bids, asks)");
}

/* update_bids + update_asks of one venue message in one call: both sides are checked before either
 * changes, so an impossible ask cannot leave the message's bids applied. */
static PyObject *
Book_apply_levels(BookObject *self, PyObject *const *args, Py_ssize_t nargs)
{
    return both_sides(self, args, nargs, lb_from_pairs, 0, "apply_levels(bids, asks)");
}

static PyObject *
update_side(BookObject *self, Side *s, PyObject *levels)
{
    LevelBuf b;
    lb_init(&b);
    int rc = lb_from_pairs(&b, levels);
    if (rc == 0)
        rc = side_apply_all(s, self->w, b.v, b.n);
    lb_free(&b);
    if (rc < 0)
        return NULL;
    Py_RETURN_NONE;
}

static PyObject *
Book_update_bids(BookObject *self, PyObject *levels)
{
    return update_side(self, &self->bids, levels);
}

static PyObject *
Book_update_asks(BookObject *self, PyObject *levels)
{
    return update_side(self, &self->asks, levels);
}

static PyObject *
set_one(BookObject *self, Side *s, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 2) {
        PyErr_SetString(PyExc_TypeError, "expected (price, qty)");
        return NULL;
    }
    double p = PyFloat_AsDouble(args[0]);
    if (p == -1.0 && PyErr_Occurred())
        return NULL;
    double q = PyFloat_AsDouble(args[1]);
    if (q == -1.0 && PyErr_Occurred())
        return NULL;
    if (!level_ok(p, q)) {
        bad_level(p, q);
        return NULL;
    }
    if (map_reserve(&s->map, 1) < 0 || side_apply(s, self->w, p, q) < 0)
        return NULL;
    Py_RETURN_NONE;
}

static PyObject *
Book_set_bid(BookObject *self, PyObject *const *args, Py_ssize_t nargs)
{
    return set_one(self, &self->bids, args, nargs);
}

static PyObject *
Book_set_ask(BookObject *self, PyObject *const *args, Py_ssize_t nargs)
{
    return set_one(self, &self->asks, args, nargs);
}

static PyObject *
Book_set(BookObject *self, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 3) {
        PyErr_SetString(PyExc_TypeError, "set(is_bid, price, qty)");
        return NULL;
    }
    int is_bid = PyObject_IsTrue(args[0]);
    if (is_bid < 0)
        return NULL;
    return set_one(self, is_bid ? &self->bids : &self->asks, args + 1, 2);
}

static PyObject *
qty_of(Side *s, PyObject *arg)
{
    double p = PyFloat_AsDouble(arg);
    if (p == -1.0 && PyErr_Occurred())
        return NULL;
    return PyFloat_FromDouble(side_qty(s, p));
}

static PyObject *
Book_bid_qty(BookObject *self, PyObject *arg)
{
    return qty_of(&self->bids, arg);
}

static PyObject *
Book_ask_qty(BookObject *self, PyObject *arg)
{
    return qty_of(&self->asks, arg);
}

static inline double
key_price(const Side *s, double key)
{
    return s->neg ? -key : key;
}

static PyObject *
best_of(Side *s)
{
    if (!s->wlen)
        Py_RETURN_NONE;
    double p = key_price(s, s->win[0]);
    return Py_BuildValue("(dd)", p, side_qty(s, p));
}

static PyObject *
Book_best_bid(BookObject *self, PyObject *unused)
{
    return best_of(&self->bids);
}

static PyObject *
Book_best_ask(BookObject *self, PyObject *unused)
{
    return best_of(&self->asks);
}

/* A fresh [p, q]. */
static PyObject *
new_pair(double p, double q)
{
    PyObject *lv = PyList_New(2);
    if (!lv)
        return NULL;
    PyObject *po = PyFloat_FromDouble(p), *qo = PyFloat_FromDouble(q);
    if (po)
        PyList_SET_ITEM(lv, 0, po);
    if (qo)
        PyList_SET_ITEM(lv, 1, qo);
    if (!po || !qo) {
        Py_DECREF(lv);
        return NULL;
    }
    return lv;
}

/* lv is still exactly [p, q] (a consumer may have changed a list it was given: then it is not reused). */
static inline int
pair_holds(PyObject *lv, double p, double q)
{
    if (!PyList_CheckExact(lv) || PyList_GET_SIZE(lv) != 2)
        return 0;
    PyObject *a = PyList_GET_ITEM(lv, 0), *b = PyList_GET_ITEM(lv, 1);
    return PyFloat_CheckExact(a) && PyFloat_CheckExact(b) && PyFloat_AS_DOUBLE(a) == p && PyFloat_AS_DOUBLE(b) == q;
}

/* lv is a [float, float] list that only its holder references, and whose floats only it does:
 * changing it in place is seen by nobody. */
static inline int
pair_refillable(PyObject *lv)
{
    PyObject *a, *b;
    return Py_REFCNT(lv) == 1 && PyList_CheckExact(lv) && PyList_GET_SIZE(lv) == 2 &&
           PyFloat_CheckExact(a = PyList_GET_ITEM(lv, 0)) && Py_REFCNT(a) == 1 &&
           PyFloat_CheckExact(b = PyList_GET_ITEM(lv, 1)) && Py_REFCNT(b) == 1;
}

static PyObject *
top_of(Side *s, PyObject *arg)
{
    Py_ssize_t n = PyLong_AsSsize_t(arg);
    if (n == -1 && PyErr_Occurred())
        return NULL;
    if (n < 0)
        n = 0;
    const double *keys = s->win;
    double *sorted = NULL;
    PyObject *out = NULL;
    Py_ssize_t have = s->wlen;
    if (n > have && s->edge != INFINITY) { /* deeper than the window: sort (rare, correct) */
        sorted = side_sorted_keys(s);
        if (!sorted)
            return NULL;
        keys = sorted;
        have = s->map.len;
    }
    if (n > have)
        n = have;
    if (!(out = PyList_New(n)))
        goto fail;
    if (n > TOP_CACHE_MAX) { /* a deep read (an export, a snapshot): nothing to keep */
        for (Py_ssize_t i = 0; i < n; i++) {
            double p = key_price(s, keys[i]);
            PyObject *lv = new_pair(p, side_qty(s, p));
            if (!lv)
                goto fail;
            PyList_SET_ITEM(out, i, lv);
        }
        PyMem_Free(sorted);
        return out;
    }
    /* First the levels the cache holds unchanged, with no allocation (so no code can run and
     * change the cache meanwhile); then fresh lists for the rest, whose allocations may run code
     * that reads this book again: it finds the cache as it was, or as such a call left it. */
    Py_ssize_t j = 0, old_n = s->npairs;
    for (Py_ssize_t i = 0; i < n; i++) {
        double k = keys[i];
        while (j < old_n && s->pair_keys[j] < k)
            j++;
        if (j < old_n && s->pair_keys[j] == k) {
            double p = key_price(s, k);
            if (pair_holds(s->pairs[j], p, side_qty(s, p)))
                PyList_SET_ITEM(out, i, Py_NewRef(s->pairs[j]));
        }
    }
    Py_ssize_t k = 0;
    for (Py_ssize_t i = 0; i < n; i++) {
        if (PyList_GET_ITEM(out, i))
            continue;
        double p = key_price(s, keys[i]);
        PyObject *lv = NULL;
        /* a spare list only the spares reference (so its floats are seen by nobody else either):
         * taken and refilled; no allocation, so no code runs meanwhile */
        while (k < s->nspare && !lv) {
            PyObject *c = s->spare[k++];
            if (c && pair_refillable(c)) {
                s->spare[k - 1] = NULL;
                ((PyFloatObject *)PyList_GET_ITEM(c, 0))->ob_fval = p;
                ((PyFloatObject *)PyList_GET_ITEM(c, 1))->ob_fval = side_qty(s, p);
                lv = c;
            }
        }
        if (!lv && !(lv = new_pair(p, side_qty(s, p))))
            goto fail;
        PyList_SET_ITEM(out, i, lv);
    }
    /* This answer becomes the cache, the one it replaces the spares; the spares they replace are
     * released last: freeing a list can run code, which must find the cache and spares whole. */
    PyObject *old[TOP_CACHE_MAX];
    Py_ssize_t old_ns = s->nspare;
    memcpy(old, s->spare, sizeof(PyObject *) * (size_t)old_ns);
    old_n = s->npairs;
    memcpy(s->spare, s->pairs, sizeof(PyObject *) * (size_t)old_n);
    s->nspare = old_n;
    for (Py_ssize_t i = 0; i < n; i++) {
        s->pairs[i] = Py_NewRef(PyList_GET_ITEM(out, i));
        s->pair_keys[i] = keys[i];
    }
    s->npairs = n;
    for (Py_ssize_t i = 0; i < old_ns; i++)
        Py_XDECREF(old[i]);
    PyMem_Free(sorted);
    return out;
fail:
    PyMem_Free(sorted);
    Py_XDECREF(out);
    return NULL;
}

static PyObject *
Book_top_bids(BookObject *self, PyObject *n)
{
    return top_of(&self->bids, n);
}

static PyObject *
Book_top_asks(BookObject *self, PyObject *n)
{
    return top_of(&self->asks, n);
}

static PyObject *
prices_of(Side *s)
{
    const double *keys = s->win;
    double *sorted = NULL;
    Py_ssize_t n = s->wlen;
    if (s->edge != INFINITY) {
        sorted = side_sorted_keys(s);
        if (!sorted)
            return NULL;
        keys = sorted;
        n = s->map.len;
    }
    PyObject *out = PyList_New(n);
    for (Py_ssize_t i = 0; out && i < n; i++) {
        PyObject *po = PyFloat_FromDouble(key_price(s, keys[i]));
        if (!po) {
            Py_CLEAR(out);
            break;
        }
        PyList_SET_ITEM(out, i, po);
    }
    PyMem_Free(sorted);
    return out;
}

static PyObject *
Book_bid_prices(BookObject *self, PyObject *unused)
{
    return prices_of(&self->bids);
}

static PyObject *
Book_ask_prices(BookObject *self, PyObject *unused)
{
    return prices_of(&self->asks);
}

static PyObject *
Book_is_crossed(BookObject *self, PyObject *unused)
{
    return PyBool_FromLong(self->bids.wlen && self->asks.wlen && -self->bids.win[0] >= self->asks.win[0]);
}

static PyObject *
Book_get_bid_levels(BookObject *self, void *closure)
{
    return PyLong_FromSsize_t(self->bids.map.len);
}

static PyObject *
Book_get_ask_levels(BookObject *self, void *closure)
{
    return PyLong_FromSsize_t(self->asks.map.len);
}

static PyObject *
Book_get_symbol(BookObject *self, void *closure)
{
    return Py_NewRef(self->symbol);
}

static int
Book_set_symbol(BookObject *self, PyObject *value, void *closure)
{
    if (!value) {
        PyErr_SetString(PyExc_AttributeError, "cannot delete symbol");
        return -1;
    }
    Py_XSETREF(self->symbol, Py_NewRef(value));
    return 0;
}

static Py_ssize_t
Book_len(BookObject *self)
{
    return self->bids.map.len + self->asks.map.len;
}

static PyMethodDef Book_methods[] = {
    {"clear", (PyCFunction)Book_clear, METH_NOARGS, "Remove every level."},
    {"load_snapshot", (PyCFunction)(void (*)(void))Book_load_snapshot, METH_FASTCALL,
     "Replace the whole book from iterables of (price, qty); zero sizes are ignored.\n\n"
     "ValueError, book untouched, for a price not finite and > 0 or a size not finite and >= 0."},
    {"update_bids", (PyCFunction)Book_update_bids, METH_O,
     "Apply (price, qty) pairs of absolute sizes (0 deletes); one call per venue message.\n\n"
     "ValueError, book untouched, for a price not finite and > 0 or a size not finite and >= 0."},
    {"update_asks", (PyCFunction)Book_update_asks, METH_O, "As update_bids, for asks."},
    {"load_json", (PyCFunction)(void (*)(void))Book_load_json, METH_FASTCALL,
     "load_snapshot from raw JSON level arrays [[\"price\",\"qty\"], ...] of bids and asks (bytes-like).\n\n"
     "ValueError, book untouched, for malformed JSON or numbers, or an impossible level."},
    {"load_json_plain", (PyCFunction)(void (*)(void))Book_load_json_plain, METH_FASTCALL,
     "load_json taking plain decimals only ((0|[1-9][0-9]*)(.[0-9]+)?, quoted or bare, at most 19 digits "
     "forming an integer <= 2**53, at most 22 decimals); ValueError for any other number."},
    {"load_snapshot_json", (PyCFunction)(void (*)(void))Book_load_snapshot_json, METH_FASTCALL,
     "load_snapshot_json(body, id_key, bids_key, asks_key) -> id: a REST depth snapshot in one pass, its levels "
     "as load_json_plain takes them; None (book untouched) for any other form."},
    {"apply_parsed", (PyCFunction)Book_apply_parsed, METH_O,
     "apply_json of the levels scan_book_frame returned (ValueError, book untouched, for impossible ones)."},
    {"load_parsed", (PyCFunction)Book_load_parsed, METH_O,
     "load_json of the levels scan_book_frame returned (ValueError, book untouched, for impossible ones)."},
    {"apply_json", (PyCFunction)(void (*)(void))Book_apply_json, METH_FASTCALL,
     "Apply raw JSON level arrays [[\"price\",\"qty\"], ...] of bids and asks (bytes-like), atomically."},
    {"apply_levels", (PyCFunction)(void (*)(void))Book_apply_levels, METH_FASTCALL,
     "Apply (price, qty) pairs of bids and asks (absolute sizes, 0 deletes), atomically: "
     "both sides are checked before either changes."},
    {"set_bid", (PyCFunction)(void (*)(void))Book_set_bid, METH_FASTCALL,
     "Set the absolute size at price; qty 0 deletes the level (ValueError for an impossible level)."},
    {"set_ask", (PyCFunction)(void (*)(void))Book_set_ask, METH_FASTCALL, "As set_bid, for asks."},
    {"set", (PyCFunction)(void (*)(void))Book_set, METH_FASTCALL, "set(is_bid, price, qty)."},
    {"bid_qty", (PyCFunction)Book_bid_qty, METH_O, "Size at a bid price (0.0 if none)."},
    {"ask_qty", (PyCFunction)Book_ask_qty, METH_O, "Size at an ask price (0.0 if none)."},
    {"best_bid", (PyCFunction)Book_best_bid, METH_NOARGS, "(price, qty) of the best bid, or None."},
    {"best_ask", (PyCFunction)Book_best_ask, METH_NOARGS, "(price, qty) of the best ask, or None."},
    {"top_bids", (PyCFunction)Book_top_bids, METH_O, "Best n bids, best first, as [[price, qty], ...]."},
    {"top_asks", (PyCFunction)Book_top_asks, METH_O, "Best n asks, best first, as [[price, qty], ...]."},
    {"bid_prices", (PyCFunction)Book_bid_prices, METH_NOARGS, "All bid prices, best first."},
    {"ask_prices", (PyCFunction)Book_ask_prices, METH_NOARGS, "All ask prices, best first."},
    {"is_crossed", (PyCFunction)Book_is_crossed, METH_NOARGS,
     "True when best bid >= best ask (a locked book counts as crossed)."},
    {NULL},
};

static PyGetSetDef Book_getset[] = {
    {"bid_levels", (getter)Book_get_bid_levels, NULL, "Number of bid levels.", NULL},
    {"ask_levels", (getter)Book_get_ask_levels, NULL, "Number of ask levels.", NULL},
    {"symbol", (getter)Book_get_symbol, (setter)Book_set_symbol, "The book's symbol.", NULL},
    {NULL},
};

static PySequenceMethods Book_as_sequence = {
    .sq_length = (lenfunc)Book_len,
};

static PyTypeObject BookType = {
    PyVarObject_HEAD_INIT(NULL, 0).tp_name = "latentspeed_core._book.CL2Book",
    .tp_basicsize = sizeof(BookObject),
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_BASETYPE,
    .tp_doc = "Compiled L2 order book (see latentspeed_core.book.L2Book).",
    .tp_new = Book_new,
    .tp_init = (initproc)Book_init,
    .tp_dealloc = (destructor)Book_dealloc,
    .tp_methods = Book_methods,
    .tp_getset = Book_getset,
    .tp_as_sequence = &Book_as_sequence,
};

/* The number parser alone: exactly float(text) for each number, only a NaN price refused. The
 * book's intake (apply_json, load_snapshot...) is what refuses impossible levels, so a caller that
 * hands these pairs to a book gets that check there. */
static PyObject *
parse_levels(PyObject *mod, PyObject *raw)
{
    LevelBuf b;
    lb_init(&b);
    b.strict = 0;
    if (lb_from_json(&b, raw) < 0) {
        lb_free(&b);
        return NULL;
    }
    PyObject *out = PyList_New(b.n);
    for (Py_ssize_t i = 0; out && i < b.n; i++) {
        PyObject *t = Py_BuildValue("(dd)", b.v[2 * i], b.v[2 * i + 1]);
        if (!t) {
            Py_CLEAR(out);
            break;
        }
        PyList_SET_ITEM(out, i, t);
    }
    lb_free(&b);
    return out;
}

static PyMethodDef module_methods[] = {
    {"scan_book_frame", (PyCFunction)(void (*)(void))scan_book_frame, METH_FASTCALL,
     "scan_book_frame(data, top_keys, inner_key, inner_keys, tag[, decimals]) -> (values..., levels) for a venue's "
     "frame in its plainest form, else None (see _book.c)."},
    {"parse_levels", parse_levels, METH_O,
     "Raw JSON [[\"price\",\"qty\"], ...] (bytes-like) -> [(price, qty), ...] floats (ValueError if malformed)."},
    {NULL},
};

static struct PyModuleDef book_module = {
    PyModuleDef_HEAD_INIT, "latentspeed_core._book", "Compiled order book for latentspeed.", -1, module_methods,
};

PyMODINIT_FUNC
PyInit__book(void)
{
    if (PyType_Ready(&BookType) < 0)
        return NULL;
    PyObject *m = PyModule_Create(&book_module);
    if (!m)
        return NULL;
    if (PyModule_AddObjectRef(m, "CL2Book", (PyObject *)&BookType) < 0) {
        Py_DECREF(m);
        return NULL;
    }
    return m;
}
