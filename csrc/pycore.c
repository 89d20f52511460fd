/* storlab C core: checked entry points for CPython (module _storlab_fast).
 *
 * firmware/core/__init__.py checks lengths and bounds in Python and then calls the
 * backend, which wraps every buffer with ffi.from_buffer: about 0.3 us per call
 * before any work is done, more than a 4 KiB XOR or a short bitmap scan costs.
 * These functions do the same checks, raise the same errors with the same texts,
 * take the buffers through the buffer protocol and call core.c directly: one
 * builtin call per operation (METH_FASTCALL).  On the C backend firmware.core
 * binds its public names to them (see _bind there); MicroPython never sees them.
 *
 * The module is created by sc_py_init(), which the cffi module exports (cffi
 * cannot return a Python object): it registers "_storlab_fast" in sys.modules.
 * Stable ABI (3.11): the cffi module is built as abi3.
 */
#define Py_LIMITED_API 0x030B0000
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <string.h>

#include "core.h"

typedef uint8_t u8;

/* Buffers at least this long are worked on with the GIL released. */
#define NOGIL_MIN ((Py_ssize_t)1 << 18)
/* xor_into sources held on the stack; more take the heap. */
#define NSRC_STACK 16

/* Shared checkers are inlined into each entry point, where the arguments that tell
 * the operations apart are constants: no more work per call than written out. */
#define INLINE static inline __attribute__((always_inline))

static int get(PyObject *o, Py_buffer *v, int writable)
{
    return PyObject_GetBuffer(o, v, writable ? PyBUF_WRITABLE : PyBUF_SIMPLE);
}

static void release(Py_buffer *v, Py_ssize_t nb)
{
    while (nb > 0)
        PyBuffer_Release(&v[--nb]);
}

static int nargs_ok(const char *name, Py_ssize_t n, Py_ssize_t lo, Py_ssize_t hi)
{
    if (n >= lo && n <= hi)
        return 1;
    PyErr_Format(PyExc_TypeError, "%s() takes %zd to %zd arguments (%zd given)", name, lo, hi, n);
    return 0;
}

/* Exactly strlen(wr) arguments, all buffers, taken in order: a[k] writable where
 * wr[k] is 'w', read-only where it is 'r'.  On failure none is held. */
INLINE int take(const char *name, PyObject *const *a, Py_ssize_t n, const char *wr, Py_buffer *v)
{
    Py_ssize_t nb = (Py_ssize_t)strlen(wr);
    if (!nargs_ok(name, n, nb, nb))
        return 0;
    for (Py_ssize_t k = 0; k < nb; k++) {
        if (get(a[k], &v[k], wr[k] == 'w') < 0) {
            release(v, k);
            return 0;
        }
    }
    return 1;
}

static int index_arg(PyObject *o, Py_ssize_t *out)
{
    Py_ssize_t v = PyLong_AsSsize_t(o);
    if (v == -1 && PyErr_Occurred())
        return 0;
    *out = v;
    return 1;
}

static int same_len(const char *what, Py_ssize_t a, Py_ssize_t b)
{
    if (a == b)
        return 1;
    PyErr_Format(PyExc_ValueError, "%s: length mismatch (%zd != %zd)", what, a, b);
    return 0;
}

/* A bitmap and lo - 1 to hi - 1 integers after it, which go to ix[] (those not
 * given keep the caller's defaults there): the integers first, then the buffer. */
INLINE int take_bm(const char *name, PyObject *const *a, Py_ssize_t n, Py_ssize_t lo, Py_ssize_t hi,
                   Py_ssize_t *ix, int writable, Py_buffer *b)
{
    if (!nargs_ok(name, n, lo, hi))
        return 0;
    for (Py_ssize_t k = 1; k < n; k++) {
        if (!index_arg(a[k], &ix[k - 1]))
            return 0;
    }
    return get(a[0], b, writable) == 0;
}

/* _span() of firmware/core/__init__.py */
static int span_ok(const char *what, Py_ssize_t nbytes, Py_ssize_t start, Py_ssize_t count)
{
    Py_ssize_t nbits = nbytes * 8;
    if (start < 0 || count < 0 || start > nbits || count > nbits - start) {
        PyErr_Format(PyExc_IndexError, "%s: range [%zd, %zd) outside bitmap of %zd bits", what, start,
                     start + count, nbits);
        return 0;
    }
    return 1;
}

/* _bits() */
static int bit_ok(const char *what, Py_ssize_t nbytes, Py_ssize_t i)
{
    if (i < 0 || i >= nbytes * 8) {
        PyErr_Format(PyExc_IndexError, "%s: bit %zd outside bitmap of %zd bits", what, i, nbytes * 8);
        return 0;
    }
    return 1;
}

/* Runs call, with the GIL released when len is NOGIL_MIN or more. */
#define RUN(len, call)                    \
    do {                                  \
        if ((len) >= NOGIL_MIN) {         \
            Py_BEGIN_ALLOW_THREADS        \
            call;                         \
            Py_END_ALLOW_THREADS          \
        } else {                          \
            call;                         \
        }                                 \
    } while (0)

/* The entry point f_<name>: hands its name and arguments to a checker shared by
 * several operations, with what tells them apart. */
#define ENTRY(name, checker, ...)                                           \
    static PyObject *f_##name(PyObject *m, PyObject *const *a, Py_ssize_t n) \
    {                                                                       \
        (void)m;                                                            \
        return checker(#name, a, n, __VA_ARGS__);                           \
    }

/* ---- XOR and parity ---- */

static PyObject *f_xor_into(PyObject *m, PyObject *const *a, Py_ssize_t n)
{
    (void)m;
    if (!nargs_ok("xor_into", n, 2, 2))
        return NULL;
    PyObject *seq = PySequence_Tuple(a[1]);
    if (!seq)
        return NULL;
    Py_ssize_t ns = PyTuple_Size(seq);
    PyObject *ret = NULL;
    Py_buffer dst, vs_stack[NSRC_STACK], *vs = vs_stack;
    const u8 *ps_stack[NSRC_STACK], **ps = ps_stack;
    Py_ssize_t got = 0;
    if (ns == 0) {
        PyErr_SetString(PyExc_ValueError, "xor_into: no sources");
        goto out_seq;
    }
    if (get(a[0], &dst, 1) < 0)
        goto out_seq;
    if (ns > NSRC_STACK) {
        vs = PyMem_Malloc(sizeof(Py_buffer) * (size_t)ns);
        ps = PyMem_Malloc(sizeof(u8 *) * (size_t)ns);
        if (!vs || !ps) {
            PyErr_NoMemory();
            goto out;
        }
    }
    for (; got < ns; got++) {
        if (get(PyTuple_GetItem(seq, got), &vs[got], 0) < 0)
            goto out;
        if (!same_len("xor_into", dst.len, vs[got].len)) {
            PyBuffer_Release(&vs[got]);
            goto out;
        }
        ps[got] = vs[got].buf;
    }
    RUN(dst.len, sc_xor_into(dst.buf, ps, (size_t)ns, (size_t)dst.len));
    ret = Py_NewRef(Py_None);
out:
    release(vs, got);
    PyBuffer_Release(&dst);
    if (vs != vs_stack)
        PyMem_Free(vs);
    if (ps != ps_stack)
        PyMem_Free(ps);
out_seq:
    Py_DECREF(seq);
    return ret;
}

/* dst op= the sources, all of dst's length: one source (f1: xor_acc, or_merge,
 * and_not, copy) or two (f2: parity_update). */
INLINE PyObject *bytewise(const char *name, PyObject *const *a, Py_ssize_t n,
                          void (*f1)(u8 *, const u8 *, size_t),
                          void (*f2)(u8 *, const u8 *, const u8 *, size_t))
{
    Py_buffer v[3];
    const char *wr = f1 ? "wr" : "wrr";
    Py_ssize_t nb = (Py_ssize_t)strlen(wr);
    if (!take(name, a, n, wr, v))
        return NULL;
    PyObject *ret = NULL;
    Py_ssize_t k = 1;
    while (k < nb && same_len(name, v[0].len, v[k].len))
        k++;
    if (k == nb) {
        size_t len = (size_t)v[0].len;
        if (f1)
            RUN(v[0].len, f1(v[0].buf, v[1].buf, len));
        else
            RUN(v[0].len, f2(v[0].buf, v[1].buf, v[2].buf, len));
        ret = Py_NewRef(Py_None);
    }
    release(v, nb);
    return ret;
}

ENTRY(xor_acc, bytewise, sc_xor_acc, NULL)
ENTRY(or_merge, bytewise, sc_or_merge, NULL)
ENTRY(and_not, bytewise, sc_and_not, NULL)
ENTRY(copy, bytewise, sc_copy, NULL)
ENTRY(parity_update, bytewise, NULL, sc_parity_update)

static PyObject *f_equal(PyObject *m, PyObject *const *a, Py_ssize_t n)
{
    (void)m;
    Py_buffer v[2];
    if (!take("equal", a, n, "rr", v))
        return NULL;
    int r = v[0].len == v[1].len && sc_equal(v[0].buf, v[1].buf, (size_t)v[0].len);
    release(v, 2);
    return PyBool_FromLong(r);
}

static PyObject *f_is_zero(PyObject *m, PyObject *const *a, Py_ssize_t n)
{
    (void)m;
    Py_buffer x;
    if (!take("is_zero", a, n, "r", &x))
        return NULL;
    int r = sc_is_zero(x.buf, (size_t)x.len);
    PyBuffer_Release(&x);
    return PyBool_FromLong(r);
}

/* ---- bitmaps ---- */

/* bm and one bit index: bit_set (op 0) / bit_clear (1) / bit_test (2) */
static PyObject *bit1(const char *name, PyObject *const *a, Py_ssize_t n, int op)
{
    Py_ssize_t i;
    Py_buffer b;
    if (!take_bm(name, a, n, 2, 2, &i, op != 2, &b))
        return NULL;
    PyObject *ret = NULL;
    if (bit_ok(name, b.len, i)) {
        u8 *p = (u8 *)b.buf + (i >> 3);
        u8 mask = (u8)(1u << (i & 7));
        if (op == 0) {
            *p |= mask;
            ret = Py_NewRef(Py_None);
        } else if (op == 1) {
            *p &= (u8)~mask;
            ret = Py_NewRef(Py_None);
        } else {
            ret = PyLong_FromLong((*p & mask) != 0);
        }
    }
    PyBuffer_Release(&b);
    return ret;
}

ENTRY(bit_set, bit1, 0)
ENTRY(bit_clear, bit1, 1)
ENTRY(bit_test, bit1, 2)

static PyObject *range(const char *name, PyObject *const *a, Py_ssize_t n, void (*fn)(u8 *, size_t, size_t))
{
    Py_ssize_t ix[2]; /* start, count */
    Py_buffer b;
    if (!take_bm(name, a, n, 3, 3, ix, 1, &b))
        return NULL;
    PyObject *ret = NULL;
    if (span_ok(name, b.len, ix[0], ix[1])) {
        fn(b.buf, (size_t)ix[0], (size_t)ix[1]);
        ret = Py_NewRef(Py_None);
    }
    PyBuffer_Release(&b);
    return ret;
}

ENTRY(range_set, range, sc_range_set)
ENTRY(range_clear, range, sc_range_clear)

/* count(bm, start=0, end=-1) */
static PyObject *f_count(PyObject *m, PyObject *const *a, Py_ssize_t n)
{
    (void)m;
    Py_ssize_t ix[2] = {0, -1};
    Py_buffer b;
    if (!take_bm("count", a, n, 1, 3, ix, 0, &b))
        return NULL;
    Py_ssize_t start = ix[0], end = ix[1] < 0 ? b.len * 8 : ix[1];
    PyObject *ret = NULL;
    if (span_ok("count", b.len, start, end - start))
        ret = PyLong_FromSize_t(sc_count(b.buf, (size_t)start, (size_t)end));
    PyBuffer_Release(&b);
    return ret;
}

/* next_set / next_clear(bm, pos, nbits=-1) */
static PyObject *next(const char *name, PyObject *const *a, Py_ssize_t n,
                      int64_t (*fn)(const u8 *, size_t, size_t))
{
    Py_ssize_t ix[2] = {0, -1};
    Py_buffer b;
    if (!take_bm(name, a, n, 2, 3, ix, 0, &b))
        return NULL;
    Py_ssize_t pos = ix[0], nbits = ix[1] < 0 ? b.len * 8 : ix[1];
    PyObject *ret = NULL;
    if (!span_ok(name, b.len, 0, nbits))
        goto out;
    if (pos < 0) {
        PyErr_Format(PyExc_IndexError, "%s: negative position", name);
        goto out;
    }
    ret = PyLong_FromLongLong(pos >= nbits ? -1 : (long long)fn(b.buf, (size_t)pos, (size_t)nbits));
out:
    PyBuffer_Release(&b);
    return ret;
}

ENTRY(next_set, next, sc_next_set)
ENTRY(next_clear, next, sc_next_clear)

/* ---- COBS ---- */

static PyObject *f_cobs_encode(PyObject *m, PyObject *const *a, Py_ssize_t n)
{
    (void)m;
    Py_buffer v[2]; /* src, dst */
    if (!take("cobs_encode", a, n, "rw", v))
        return NULL;
    PyObject *ret = NULL;
    if (v[1].len < v[0].len + v[0].len / 254 + 1)
        PyErr_SetString(PyExc_ValueError, "cobs_encode: destination too small");
    else
        ret = PyLong_FromLongLong(sc_cobs_encode(v[0].buf, (size_t)v[0].len, v[1].buf));
    release(v, 2);
    return ret;
}

static PyObject *f_cobs_decode(PyObject *m, PyObject *const *a, Py_ssize_t n)
{
    (void)m;
    Py_buffer v[2]; /* src, dst */
    if (!take("cobs_decode", a, n, "rw", v))
        return NULL;
    PyObject *ret = PyLong_FromLongLong(sc_cobs_decode(v[0].buf, (size_t)v[0].len, v[1].buf, (size_t)v[1].len));
    release(v, 2);
    return ret;
}

#define FN(name) {#name, (PyCFunction)(void (*)(void))f_##name, METH_FASTCALL, NULL}

static PyMethodDef methods[] = {
    FN(xor_into), FN(xor_acc), FN(parity_update), FN(equal), FN(is_zero),
    FN(bit_set), FN(bit_clear), FN(bit_test), FN(range_set), FN(range_clear),
    FN(count), FN(next_set), FN(next_clear), FN(or_merge), FN(and_not), FN(copy),
    FN(cobs_encode), FN(cobs_decode),
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "_storlab_fast",
    "storlab C core: checked entry points (see csrc/pycore.c)", -1, methods,
    NULL, NULL, NULL, NULL,
};

int sc_py_init(void)
{
    /* Called through cffi, which has released the GIL. */
    PyGILState_STATE g = PyGILState_Ensure();
    int rc = -1;
    PyObject *mods = PyImport_GetModuleDict();
    PyObject *have = PyDict_GetItemString(mods, "_storlab_fast"); /* borrowed */
    if (have) {
        rc = 0;
    } else {
        PyObject *mod = PyModule_Create(&module);
        if (mod) {
            rc = PyDict_SetItemString(mods, "_storlab_fast", mod);
            Py_DECREF(mod);
        }
    }
    if (rc < 0)
        PyErr_Clear();
    PyGILState_Release(g);
    return rc;
}
