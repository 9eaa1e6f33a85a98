/* A capture file's lines, read, inflated and decoded on a thread of their own (capture.read_capture).
 *
 * `latentspeed backtest` reading a gzip capture spent ~0.7 s of every 1.8 s in its one thread before
 * a record reached the loop: inflating (0.25 s for 219 MB), splitting lines (0.17 s) and decoding
 * each line's JSON (~0.45 s, mostly unescaping the frame's text). All of that is done here by a
 * POSIX thread that never touches a Python object, so it runs beside the backtest on another CPU;
 * the iterator only turns what the thread made into Python objects.
 *
 * Lines(path) iterates the file's lines as capture._lines(capture._chunks(f)) gives them (gzip by
 * its magic bytes, members one after another, the zero padding gzip allows after a member, 16 KiB
 * reads), each line either
 *   - a dict {"feed", "kind": "frame", "receipt_ns", "data"[, "b64": True]}: a frame record in the
 *     exact layout Recorder writes (orjson's, keys in that order, no whitespace), its data the
 *     string orjson would give (plain escapes only), or the bytes base64.b64decode gives (strict
 *     base64): decoded here, every check of read_capture's passed; or
 *   - bytes: every other line (the header, connects, REST records, anything unusual or damaged),
 *     for read_capture to decode and check as it always has.
 * When the file ends cut short or does not inflate, every line complete before the point is given,
 * then the error raised: EOFError (stream unfinished), zlib.error (damage; what inflated from the
 * 16 KiB read that failed is lost, as with zlib's decompress) or OSError.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <stdint.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <zlib.h>
#ifdef __SSE2__
#include <emmintrin.h>
#endif

#define READ_SIZE 16384        /* as capture._chunks reads */
#define BLOCK_BYTES (1 << 20)  /* a block holds about this much line text */
#define BLOCKS_AHEAD 4         /* blocks the thread may have ready before it waits */

enum { E_RAW, E_STR, E_BYTES };

typedef struct {
    int kind;
    int64_t t;
    size_t feed_off, feed_len, off, len; /* E_RAW: the line; else the feed name and the data */
} Entry;

typedef struct Block {
    char *buf;
    size_t len, cap;
    Entry *ents;
    size_t n, cap_ents, next;
    struct Block *link;
} Block;

enum { ERR_NONE, ERR_EOF, ERR_ZLIB, ERR_OS, ERR_NOMEM };

typedef struct {
    PyObject_HEAD
    pthread_t thread;
    int started;
    int fd;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    Block *head, *tail; /* ready blocks */
    Block *spare;       /* blocks given out and done with, for the thread to fill again */
    int ready;          /* how many */
    int done;           /* the thread made its last block */
    int stop;           /* the reader asks the thread to end */
    int err;            /* what ended the file (after the last block) */
    int err_code;
    char err_msg[160];
    Block *cur; /* the block being given out (the reader's own) */
    PyObject *feed_str[8]; /* the feed names seen (records share one str per feed) */
    char *feed_raw[8];
    size_t feed_len[8];
    int nfeeds;
    /* the thread's own */
    Block *fill;
    char *rest;
    size_t rest_len, rest_cap;
} LinesObject;

static PyObject *s_feed, *s_kind, *s_receipt_ns, *s_data, *s_b64, *s_frame, *zlib_error;

/* ---- the thread's side: no Python ---------------------------------------------------------- */

static Block *
block_new(void)
{
    Block *b = calloc(1, sizeof(Block));
    if (!b)
        return NULL;
    b->cap = BLOCK_BYTES;
    b->buf = malloc(b->cap);
    b->cap_ents = 4096;
    b->ents = malloc(b->cap_ents * sizeof(Entry));
    if (!b->buf || !b->ents) {
        free(b->buf);
        free(b->ents);
        free(b);
        return NULL;
    }
    return b;
}

static void
block_free(Block *b)
{
    if (b) {
        free(b->buf);
        free(b->ents);
        free(b);
    }
}

/* The filled block to the ready queue; waits while BLOCKS_AHEAD are ready. 0, or -1 if asked to stop. */
static int
publish(LinesObject *r, int last)
{
    pthread_mutex_lock(&r->mu);
    while (!r->stop && r->ready >= BLOCKS_AHEAD && !last)
        pthread_cond_wait(&r->cv, &r->mu);
    int stop = r->stop;
    if (r->fill && (r->fill->n || last)) {
        if (r->tail)
            r->tail->link = r->fill;
        else
            r->head = r->fill;
        r->tail = r->fill;
        r->ready++;
        r->fill = NULL;
    }
    if (last)
        r->done = 1;
    pthread_cond_broadcast(&r->cv);
    pthread_mutex_unlock(&r->mu);
    return stop ? -1 : 0;
}

/* *buf holding at least need bytes (doubled as it grows); -1 out of memory. */
static int
grow(char **buf, size_t *cap, size_t need)
{
    if (need <= *cap)
        return 0;
    size_t c = *cap ? *cap : 4096;
    while (c < need)
        c *= 2;
    char *p = realloc(*buf, c);
    if (!p)
        return -1;
    *buf = p;
    *cap = c;
    return 0;
}

static int
reserve(Block *b, size_t bytes)
{
    if (b->n == b->cap_ents) {
        Entry *e = realloc(b->ents, 2 * b->cap_ents * sizeof(Entry));
        if (!e)
            return -1;
        b->ents = e;
        b->cap_ents *= 2;
    }
    return grow(&b->buf, &b->cap, b->len + bytes);
}

static signed char B64[256]; /* a base64 character's value, -1 for any other byte (module init) */

/* Strict base64 (the alphabet, '=' padding only at the end, length a multiple of 4) into out;
 * its length, or -1 for anything base64.b64decode might read otherwise. */
static Py_ssize_t
b64_decode(const unsigned char *s, size_t n, unsigned char *out)
{
    if (n % 4)
        return -1;
    size_t o = 0;
    for (size_t i = 0; i < n; i += 4) {
        int a = B64[s[i]], b = B64[s[i + 1]], c = B64[s[i + 2]], d = B64[s[i + 3]];
        if (a < 0 || b < 0)
            return -1;
        if (i + 4 == n && s[i + 3] == '=') {
            if (s[i + 2] == '=') {
                if (b & 15)
                    return -1;
                out[o++] = (unsigned char)(a << 2 | b >> 4);
                return (Py_ssize_t)o;
            }
            if (c < 0 || (c & 3))
                return -1;
            out[o++] = (unsigned char)(a << 2 | b >> 4);
            out[o++] = (unsigned char)((b & 15) << 4 | c >> 2);
            return (Py_ssize_t)o;
        }
        if (c < 0 || d < 0)
            return -1;
        out[o++] = (unsigned char)(a << 2 | b >> 4);
        out[o++] = (unsigned char)((b & 15) << 4 | c >> 2);
        out[o++] = (unsigned char)((c & 3) << 6 | d);
    }
    return (Py_ssize_t)o;
}

/* The first byte at or after p that a JSON string's plain run stops at: '"', '\\', a control
 * character or a byte past ASCII (or end). Sixteen bytes a step where SSE2 is there (every x86-64). */
static inline const char *
plain_run(const char *p, const char *end)
{
#ifdef __SSE2__
    const __m128i quote = _mm_set1_epi8('"'), backslash = _mm_set1_epi8('\\'), space = _mm_set1_epi8(0x20);
    while (end - p >= 16) {
        __m128i x = _mm_loadu_si128((const __m128i *)p);
        /* signed: bytes 0x00-0x1f and 0x80-0xff are both below 0x20 */
        __m128i stop = _mm_or_si128(_mm_or_si128(_mm_cmpeq_epi8(x, quote), _mm_cmpeq_epi8(x, backslash)),
                                    _mm_cmplt_epi8(x, space));
        int m = _mm_movemask_epi8(stop);
        if (m)
            return p + __builtin_ctz((unsigned)m);
        p += 16;
    }
#endif
    while (p < end) {
        unsigned char c = (unsigned char)*p;
        if (c == '"' || c == '\\' || c < 0x20 || c >= 0x80)
            break;
        p++;
    }
    return p;
}

static inline int
lit(const char **pp, const char *end, const char *s, size_t n)
{
    if ((size_t)(end - *pp) < n || memcmp(*pp, s, n))
        return 0;
    *pp += n;
    return 1;
}

/* A frame record in Recorder's layout -> the block as E_STR / E_BYTES; 0 if the line is not one
 * (nothing added), -1 out of memory. */
static int
parse_frame(Block *b, const char *p, const char *end)
{
    if (!lit(&p, end, "{\"feed\":\"", 9))
        return 0;
    const char *f0 = p;
    while (p < end && *p != '"') {
        unsigned char c = (unsigned char)*p;
        if (c < 0x20 || c >= 0x7f || c == '\\')
            return 0;
        p++;
    }
    size_t flen = (size_t)(p - f0);
    if (!lit(&p, end, "\",\"kind\":\"frame\",\"receipt_ns\":", 30))
        return 0;
    /* a receipt time orjson reads as this int: 0, or up to 19 digits not starting with 0, at most
     * INT64_MAX (anything else, a sign or a fraction included, is orjson's to read) */
    uint64_t t = 0;
    const char *d0 = p;
    while (p < end && *p >= '0' && *p <= '9' && p - d0 < 20)
        t = t * 10 + (uint64_t)(*p++ - '0');
    size_t nd = (size_t)(p - d0);
    if (!nd || nd > 19 || (nd > 1 && *d0 == '0') || t > (uint64_t)INT64_MAX)
        return 0;
    if (!lit(&p, end, ",\"data\":\"", 9))
        return 0;
    const char *s0 = p;
    size_t escapes = 0;
    p = plain_run(p, end);
    while (p < end && *p != '"') {
        unsigned char c = (unsigned char)*p;
        if (c < 0x20 || c >= 0x80)
            return 0; /* a control character (not JSON) or UTF-8: orjson decides */
        if (c == '\\') {
            if (p + 1 >= end)
                return 0;
            char e = p[1];
            if (!(e == '"' || e == '\\' || e == '/' || e == 'b' || e == 'f' || e == 'n' || e == 'r' || e == 't'))
                return 0; /* \u escapes (and anything else) go to orjson */
            escapes++;
            p = plain_run(p + 2, end);
            continue;
        }
    }
    const char *s1 = p;
    int b64;
    if (lit(&p, end, "\"}", 2))
        b64 = 0;
    else if (lit(&p, end, "\",\"b64\":true}", 13))
        b64 = 1;
    else
        return 0;
    if (p != end)
        return 0;
    size_t slen = (size_t)(s1 - s0);
    if (reserve(b, flen + slen) < 0)
        return -1;
    Entry *e = &b->ents[b->n];
    e->t = (int64_t)t;
    e->feed_off = b->len;
    e->feed_len = flen;
    memcpy(b->buf + b->len, f0, flen);
    size_t off = b->len + flen;
    if (b64) {
        if (escapes)
            return 0;
        Py_ssize_t n = b64_decode((const unsigned char *)s0, slen, (unsigned char *)b->buf + off);
        if (n < 0)
            return 0;
        e->kind = E_BYTES;
        e->off = off;
        e->len = (size_t)n;
    }
    else {
        char *o = b->buf + off;
        if (!escapes)
            memcpy(o, s0, slen), o += slen;
        else
            for (const char *q = s0; q < s1;) { /* the runs between escapes copied whole */
                const char *bs = memchr(q, '\\', (size_t)(s1 - q));
                size_t run = (size_t)((bs ? bs : s1) - q);
                memcpy(o, q, run);
                o += run;
                if (!bs)
                    break;
                char c = bs[1];
                *o++ = c == 'b' ? '\b' : c == 'f' ? '\f' : c == 'n' ? '\n' : c == 'r' ? '\r' : c == 't' ? '\t' : c;
                q = bs + 2;
            }
        e->kind = E_STR;
        e->off = off;
        e->len = (size_t)(o - (b->buf + off));
    }
    b->len = e->off + e->len;
    b->n++;
    return 1;
}

/* One complete line (without its newline) into the fill block. 0, or -1 (stop or no memory). */
static int
add_line(LinesObject *r, const char *p, size_t n)
{
    if (!r->fill) {
        pthread_mutex_lock(&r->mu);
        Block *b = r->spare;
        if (b)
            r->spare = b->link;
        pthread_mutex_unlock(&r->mu);
        if (b) {
            b->link = NULL;
            b->len = b->n = b->next = 0;
            r->fill = b;
        }
        else if (!(r->fill = block_new()))
            return -1;
    }
    Block *b = r->fill;
    int got = parse_frame(b, p, p + n);
    if (got < 0)
        return -1;
    if (!got) {
        if (reserve(b, n) < 0)
            return -1;
        Entry *e = &b->ents[b->n++];
        e->kind = E_RAW;
        e->off = b->len;
        e->len = n;
        memcpy(b->buf + b->len, p, n);
        b->len += n;
    }
    if (b->len >= BLOCK_BYTES || b->n >= 4096)
        return publish(r, 0);
    return 0;
}

/* Data as it comes: the complete lines to the block, the partial one kept (capture._lines). */
static int
feed_text(LinesObject *r, const char *p, size_t n)
{
    const char *end = p + n;
    while (p < end) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        if (!nl) {
            size_t k = (size_t)(end - p);
            if (grow(&r->rest, &r->rest_cap, r->rest_len + k) < 0)
                return -1;
            memcpy(r->rest + r->rest_len, p, k);
            r->rest_len += k;
            return 0;
        }
        int rc;
        if (r->rest_len) {
            size_t k = (size_t)(nl - p);
            if (grow(&r->rest, &r->rest_cap, r->rest_len + k) < 0)
                return -1;
            memcpy(r->rest + r->rest_len, p, k);
            rc = add_line(r, r->rest, r->rest_len + k);
            r->rest_len = 0;
        }
        else
            rc = add_line(r, p, (size_t)(nl - p));
        if (rc < 0)
            return -1;
        p = nl + 1;
    }
    return 0;
}

static void
fail(LinesObject *r, int err, int code, const char *msg)
{
    r->err = err;
    r->err_code = code;
    snprintf(r->err_msg, sizeof r->err_msg, "%s", msg ? msg : "");
}

static int
stop_asked(LinesObject *r)
{
    pthread_mutex_lock(&r->mu);
    int stop = r->stop;
    pthread_mutex_unlock(&r->mu);
    return stop;
}

/* read() until n bytes or the end, as a buffered file's read(n) does; -1 with errno on an error,
 * -2 when the reader is let go meanwhile (a pipe that gives nothing must not keep it waiting:
 * the file is polled a tenth of a second at a time). */
static ssize_t
read_full(LinesObject *r, unsigned char *buf, size_t n)
{
    size_t got = 0;
    while (got < n) {
        struct pollfd pfd = {r->fd, POLLIN, 0};
        int ready = poll(&pfd, 1, 0);
        if (ready == 0 && r->fill && r->fill->n && publish(r, 0) < 0) /* about to wait: hand over */
            return -2;                                                /* the lines decoded so far */
        if (ready == 0)
            ready = poll(&pfd, 1, 100);
        if (ready < 0 && errno != EINTR)
            return -1;
        if (ready <= 0) {
            if (stop_asked(r))
                return -2;
            continue;
        }
        ssize_t k = read(r->fd, buf + got, n - got);
        if (k < 0) {
            if (errno == EINTR)
                continue;
            return -1;
        }
        if (!k)
            break;
        got += (size_t)k;
    }
    return (ssize_t)got;
}

/* The next read: its size (0 at the end), or -1 when the thread is to end (the read failed, its
 * error recorded; or the reader was let go). */
static ssize_t
read_more(LinesObject *r, unsigned char *in)
{
    ssize_t n = read_full(r, in, READ_SIZE);
    if (n == -1)
        fail(r, ERR_OS, errno, NULL);
    return n < 0 ? -1 : n;
}

static void *
run(void *arg)
{
    LinesObject *r = arg;
    unsigned char in[READ_SIZE];
    size_t outcap = 1 << 18, outlen;
    unsigned char *out = malloc(outcap);
    z_stream z;
    memset(&z, 0, sizeof z);
    int zinit = 0, stopped = 0;
    if (!out) {
        fail(r, ERR_NOMEM, 0, NULL);
        goto end;
    }
    ssize_t n = read_more(r, in);
    if (n < 0)
        goto end;
    if (n < 2 || in[0] != 0x1f || in[1] != 0x8b) { /* plain JSON lines */
        while (n > 0) {
            if (feed_text(r, (const char *)in, (size_t)n) < 0) {
                stopped = 1;
                goto end;
            }
            n = read_more(r, in);
        }
        if (n < 0)
            goto end;
        goto clean_end;
    }
    if (inflateInit2(&z, 31) != Z_OK) { /* 31: gzip, header and trailer checked */
        fail(r, ERR_NOMEM, 0, NULL);
        goto end;
    }
    zinit = 1;
    int fed = 0;
    while (n > 0) {
        /* One read's worth, as one decompress() call: its output is kept only if it all inflates. */
        const unsigned char *data = in;
        size_t avail = (size_t)n;
        while (avail) {
            z.next_in = (unsigned char *)data;
            z.avail_in = (uInt)avail;
            outlen = 0;
            int zr;
            fed = 1;
            for (;;) {
                if (outcap - outlen < 65536) {
                    unsigned char *o = realloc(out, outcap * 2);
                    if (!o) {
                        fail(r, ERR_NOMEM, 0, NULL);
                        goto end;
                    }
                    out = o;
                    outcap *= 2;
                }
                z.next_out = out + outlen;
                z.avail_out = (uInt)(outcap - outlen);
                zr = inflate(&z, Z_NO_FLUSH);
                outlen = (size_t)(z.next_out - out);
                if (zr == Z_STREAM_END || ((zr == Z_OK || zr == Z_BUF_ERROR) && !z.avail_in && z.avail_out) ||
                    (zr == Z_BUF_ERROR && z.avail_out))
                    break; /* the member ended, or this read is used up */
                if (zr != Z_OK && zr != Z_BUF_ERROR) {
                    char msg[128];
                    snprintf(msg, sizeof msg, "Error %d while decompressing data: %s", zr, z.msg ? z.msg : "unknown error");
                    fail(r, ERR_ZLIB, zr, msg);
                    goto end;
                }
            }
            if (outlen && feed_text(r, (const char *)out, outlen) < 0) {
                stopped = 1;
                goto end;
            }
            if (zr != Z_STREAM_END)
                break; /* the read is used up; the member goes on */
            /* another member may follow in this read, after the zero padding gzip allows */
            data = z.next_in;
            avail = z.avail_in;
            while (avail && !*data)
                data++, avail--;
            inflateReset(&z);
            fed = 0;
        }
        n = read_more(r, in);
    }
    if (n < 0)
        goto end;
    if (fed) {
        fail(r, ERR_EOF, 0, "compressed file ended before the end-of-stream marker was reached");
        goto end;
    }
clean_end:
    if (r->rest_len && add_line(r, r->rest, r->rest_len) < 0) /* the last line, with no newline */
        stopped = 1;
    r->rest_len = 0;
end:
    if (zinit)
        inflateEnd(&z);
    free(out);
    if (stopped && !r->stop && !r->err)
        fail(r, ERR_NOMEM, 0, NULL);
    publish(r, 1);
    return NULL;
}

/* ---- the reader's side ---------------------------------------------------------------------- */

static void
stop_thread(LinesObject *r)
{
    if (!r->started)
        return;
    pthread_mutex_lock(&r->mu);
    r->stop = 1;
    pthread_cond_broadcast(&r->cv);
    pthread_mutex_unlock(&r->mu);
    Py_BEGIN_ALLOW_THREADS
    pthread_join(r->thread, NULL);
    Py_END_ALLOW_THREADS
    r->started = 0;
    if (r->fd >= 0) {
        close(r->fd);
        r->fd = -1;
    }
}

static void
lines_dealloc(LinesObject *r)
{
    stop_thread(r);
    if (r->fd >= 0)
        close(r->fd);
    for (Block *b = r->head; b;) {
        Block *next = b->link;
        block_free(b);
        b = next;
    }
    for (Block *b = r->spare; b;) {
        Block *next = b->link;
        block_free(b);
        b = next;
    }
    block_free(r->cur);
    block_free(r->fill);
    free(r->rest);
    for (int i = 0; i < r->nfeeds; i++) {
        Py_DECREF(r->feed_str[i]);
        free(r->feed_raw[i]);
    }
    pthread_mutex_destroy(&r->mu);
    pthread_cond_destroy(&r->cv);
    Py_TYPE(r)->tp_free((PyObject *)r);
}

static PyObject *
lines_new(PyTypeObject *type, PyObject *args, PyObject *kw)
{
    PyObject *path = NULL;
    if (kw && PyDict_GET_SIZE(kw)) {
        PyErr_SetString(PyExc_TypeError, "Lines() takes no keyword arguments");
        return NULL;
    }
    if (!PyArg_ParseTuple(args, "O&:Lines", PyUnicode_FSConverter, &path))
        return NULL;
    LinesObject *r = (LinesObject *)type->tp_alloc(type, 0);
    if (!r) {
        Py_DECREF(path);
        return NULL;
    }
    r->fd = -1;
    pthread_mutex_init(&r->mu, NULL);
    pthread_cond_init(&r->cv, NULL);
    int fd;
    Py_BEGIN_ALLOW_THREADS
    fd = open(PyBytes_AS_STRING(path), O_RDONLY | O_CLOEXEC);
    Py_END_ALLOW_THREADS
    if (fd < 0) {
        PyErr_SetFromErrnoWithFilenameObject(PyExc_OSError, path);
        Py_DECREF(path);
        Py_DECREF(r);
        return NULL;
    }
    Py_DECREF(path);
    r->fd = fd;
    if (pthread_create(&r->thread, NULL, run, r)) {
        PyErr_SetString(PyExc_RuntimeError, "Lines: could not start the reading thread");
        Py_DECREF(r);
        return NULL;
    }
    r->started = 1;
    return (PyObject *)r;
}

static PyObject *
raise_end(LinesObject *r)
{
    int err = r->err;
    r->err = ERR_NONE; /* once */
    switch (err) {
    case ERR_EOF:
        PyErr_SetString(PyExc_EOFError, r->err_msg);
        return NULL;
    case ERR_ZLIB:
        PyErr_SetString(zlib_error, r->err_msg);
        return NULL;
    case ERR_OS:
        errno = r->err_code;
        PyErr_SetFromErrno(PyExc_OSError);
        return NULL;
    case ERR_NOMEM:
        PyErr_NoMemory();
        return NULL;
    }
    return NULL; /* the end: StopIteration */
}

/* The feed's name as a str: the same object for every record of a feed (up to 8 feeds kept). */
static PyObject *
feed_name(LinesObject *r, const char *p, size_t n)
{
    for (int i = 0; i < r->nfeeds; i++)
        if (r->feed_len[i] == n && !memcmp(r->feed_raw[i], p, n))
            return Py_NewRef(r->feed_str[i]);
    PyObject *name = PyUnicode_DecodeASCII(p, (Py_ssize_t)n, NULL);
    if (name && r->nfeeds < 8) {
        char *raw = malloc(n ? n : 1);
        if (raw) {
            memcpy(raw, p, n);
            r->feed_raw[r->nfeeds] = raw;
            r->feed_len[r->nfeeds] = n;
            r->feed_str[r->nfeeds++] = Py_NewRef(name);
        }
    }
    return name;
}

static PyObject *
make(LinesObject *r, Block *b, Entry *e)
{
    const char *p = b->buf + e->off;
    if (e->kind == E_RAW)
        return PyBytes_FromStringAndSize(p, (Py_ssize_t)e->len);
    PyObject *feed = feed_name(r, b->buf + e->feed_off, e->feed_len), *t = NULL, *data = NULL, *rec = NULL;
    if (!feed)
        return NULL;
    if (!(t = PyLong_FromLongLong(e->t)))
        goto done;
    if (e->kind == E_BYTES)
        data = PyBytes_FromStringAndSize(p, (Py_ssize_t)e->len);
    else if ((data = PyUnicode_New((Py_ssize_t)e->len, 127)) != NULL)
        memcpy(PyUnicode_DATA(data), p, e->len);
    if (!data || !(rec = _PyDict_NewPresized(5)))
        goto done;
    if (PyDict_SetItem(rec, s_feed, feed) < 0 || PyDict_SetItem(rec, s_kind, s_frame) < 0 ||
        PyDict_SetItem(rec, s_receipt_ns, t) < 0 || PyDict_SetItem(rec, s_data, data) < 0 ||
        (e->kind == E_BYTES && PyDict_SetItem(rec, s_b64, Py_True) < 0))
        Py_CLEAR(rec);
done:
    Py_DECREF(feed);
    Py_XDECREF(t);
    Py_XDECREF(data);
    return rec;
}

static PyObject *
lines_next(LinesObject *r)
{
    for (;;) {
        Block *b = r->cur;
        if (b && b->next < b->n)
            return make(r, b, &b->ents[b->next++]);
        r->cur = NULL;
        if (b) { /* done with: the thread fills it again */
            pthread_mutex_lock(&r->mu);
            b->link = r->spare;
            r->spare = b;
            pthread_mutex_unlock(&r->mu);
        }
        if (!r->started && !r->head)
            return NULL; /* ended before (or stopped) */
        int done;
        pthread_mutex_lock(&r->mu);
        while (!r->head && !r->done) {
            /* Wait without the GIL, a tenth of a second at a time: a Ctrl-C is handled even while
             * the file gives nothing (a pipe, a slow disk). */
            pthread_mutex_unlock(&r->mu);
            Py_BEGIN_ALLOW_THREADS
            struct timespec until;
            clock_gettime(CLOCK_REALTIME, &until);
            until.tv_nsec += 100000000;
            if (until.tv_nsec >= 1000000000) {
                until.tv_sec++;
                until.tv_nsec -= 1000000000;
            }
            pthread_mutex_lock(&r->mu);
            if (!r->head && !r->done)
                pthread_cond_timedwait(&r->cv, &r->mu, &until);
            pthread_mutex_unlock(&r->mu);
            Py_END_ALLOW_THREADS
            if (PyErr_CheckSignals() < 0)
                return NULL;
            pthread_mutex_lock(&r->mu);
        }
        b = r->head;
        if (b) {
            r->head = b->link;
            if (!r->head)
                r->tail = NULL;
            r->ready--;
            b->link = NULL;
            pthread_cond_broadcast(&r->cv);
        }
        done = r->done;
        pthread_mutex_unlock(&r->mu);
        if (b) {
            r->cur = b;
            continue;
        }
        if (done) {
            stop_thread(r); /* joins the finished thread, closes the file */
            return raise_end(r);
        }
    }
}

static PyTypeObject LinesType = {
    PyVarObject_HEAD_INIT(NULL, 0).tp_name = "latentspeed_core._capread.Lines",
    .tp_basicsize = sizeof(LinesObject),
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_doc = "Lines(path): a capture file's lines (frame records decoded), read on a thread of their own.",
    .tp_new = lines_new,
    .tp_dealloc = (destructor)lines_dealloc,
    .tp_iter = PyObject_SelfIter,
    .tp_iternext = (iternextfunc)lines_next,
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "latentspeed_core._capread", "Capture lines read on a thread.", -1, NULL,
};

PyMODINIT_FUNC
PyInit__capread(void)
{
    const char *alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    memset(B64, -1, sizeof B64);
    for (int i = 0; i < 64; i++)
        B64[(unsigned char)alphabet[i]] = (signed char)i;
    if (PyType_Ready(&LinesType) < 0)
        return NULL;
    PyObject *zlib = PyImport_ImportModule("zlib");
    if (!zlib)
        return NULL;
    zlib_error = PyObject_GetAttrString(zlib, "error");
    Py_DECREF(zlib);
    if (!zlib_error)
        return NULL;
    struct {
        PyObject **obj;
        const char *s;
    } strs[] = {{&s_feed, "feed"}, {&s_kind, "kind"}, {&s_receipt_ns, "receipt_ns"}, {&s_data, "data"},
                {&s_b64, "b64"},   {&s_frame, "frame"}};
    for (size_t i = 0; i < sizeof strs / sizeof *strs; i++)
        if (!(*strs[i].obj = PyUnicode_InternFromString(strs[i].s)))
            return NULL;
    PyObject *m = PyModule_Create(&module);
    if (!m)
        return NULL;
    if (PyModule_AddObjectRef(m, "Lines", (PyObject *)&LinesType) < 0) {
        Py_DECREF(m);
        return NULL;
    }
    return m;
}
