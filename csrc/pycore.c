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

#include "core.h"

typedef uint8_t u8;

/* Buffers at least this long are worked on with the GIL released. */
#define NOGIL_MIN ((Py_ssize_t)1 << 18)
/* xor_into sources held on the stack; more take the heap. */
#define NSRC_STACK 16

static int get(PyObject *o, Py_buffer *v, int writable)
{
    return PyObject_GetBuffer(o, v, writable ? PyBUF_WRITABLE : PyBUF_SIMPLE);
}

static int nargs_ok(const char *name, Py_ssize_t n, Py_ssize_t lo, Py_ssize_t hi)
{
    if (n >= lo && n <= hi)
        return 1;
    PyErr_Format(PyExc_TypeError, "%s() takes %zd to %zd arguments (%zd given)", name, lo, hi, n);
    return 0;
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
    if (dst.len >= NOGIL_MIN) {
        Py_BEGIN_ALLOW_THREADS
        sc_xor_into(dst.buf, ps, (size_t)ns, (size_t)dst.len);
        Py_END_ALLOW_THREADS
    } else {
        sc_xor_into(dst.buf, ps, (size_t)ns, (size_t)dst.len);
    }
    ret = Py_NewRef(Py_None);
out:
    while (got > 0)
        PyBuffer_Release(&vs[--got]);
    PyBuffer_Release(&dst);
    if (vs != vs_stack)
        PyMem_Free(vs);
    if (ps != ps_stack)
        PyMem_Free(ps);
out_seq:
    Py_DECREF(seq);
    return ret;
}

/* dst op= src over equal lengths: xor_acc, or_merge, and_not, copy */
static PyObject *two(const char *name, PyObject *const *a, Py_ssize_t n,
                     void (*fn)(u8 *, const u8 *, size_t))
{
    if (!nargs_ok(name, n, 2, 2))
        return NULL;
    Py_buffer d, s;
    if (get(a[0], &d, 1) < 0)
        return NULL;
    if (get(a[1], &s, 0) < 0) {
        PyBuffer_Release(&d);
        return NULL;
    }
    PyObject *ret = NULL;
    if (same_len(name, d.len, s.len)) {
        if (d.len >= NOGIL_MIN) {
            Py_BEGIN_ALLOW_THREADS
            fn(d.buf, s.buf, (size_t)d.len);
            Py_END_ALLOW_THREADS
        } else {
            fn(d.buf, s.buf, (size_t)d.len);
        }
        ret = Py_NewRef(Py_None);
    }
    PyBuffer_Release(&s);
    PyBuffer_Release(&d);
    return ret;
}

static PyObject *f_xor_acc(PyObject *m, PyObject *const *a, Py_ssize_t n)
{
    (void)m;
    return two("xor_acc", a, n, sc_xor_acc);
}

static PyObject *f_or_merge(PyObject *m, PyObject *const *a, Py_ssize_t n)
{
    (void)m;
    return two("or_merge", a, n, sc_or_merge);
}

static PyObject *f_and_not(PyObject *m, PyObject *const *a, Py_ssize_t n)
{
    (void)m;
    return two("and_not", a, n, sc_and_not);
}

static PyObject *f_copy(PyObject *m, PyObject *const *a, Py_ssize_t n)
{
    (void)m;
    return two("copy", a, n, sc_copy);
}

static PyObject *f_parity_update(PyObject *m, PyObject *const *a, Py_ssize_t n)
{
    (void)m;
    if (!nargs_ok("parity_update", n, 3, 3))
        return NULL;
    Py_buffer p, o, w;
    if (get(a[0], &p, 1) < 0)
        return NULL;
    if (get(a[1], &o, 0) < 0) {
        PyBuffer_Release(&p);
        return NULL;
    }
    if (get(a[2], &w, 0) < 0) {
        PyBuffer_Release(&o);
        PyBuffer_Release(&p);
        return NULL;
    }
    PyObject *ret = NULL;
    if (same_len("parity_update", p.len, o.len) && same_len("parity_update", p.len, w.len)) {
        if (p.len >= NOGIL_MIN) {
            Py_BEGIN_ALLOW_THREADS
            sc_parity_update(p.buf, o.buf, w.buf, (size_t)p.len);
            Py_END_ALLOW_THREADS
        } else {
            sc_parity_update(p.buf, o.buf, w.buf, (size_t)p.len);
        }
        ret = Py_NewRef(Py_None);
    }
    PyBuffer_Release(&w);
    PyBuffer_Release(&o);
    PyBuffer_Release(&p);
    return ret;
}

static PyObject *f_equal(PyObject *m, PyObject *const *a, Py_ssize_t n)
{
    (void)m;
    if (!nargs_ok("equal", n, 2, 2))
        return NULL;
    Py_buffer x, y;
    if (get(a[0], &x, 0) < 0)
        return NULL;
    if (get(a[1], &y, 0) < 0) {
        PyBuffer_Release(&x);
        return NULL;
    }
    int r = x.len == y.len && sc_equal(x.buf, y.buf, (size_t)x.len);
    PyBuffer_Release(&y);
    PyBuffer_Release(&x);
    return PyBool_FromLong(r);
}

static PyObject *f_is_zero(PyObject *m, PyObject *const *a, Py_ssize_t n)
{
    (void)m;
    if (!nargs_ok("is_zero", n, 1, 1))
        return NULL;
    Py_buffer x;
    if (get(a[0], &x, 0) < 0)
        return NULL;
    int r = sc_is_zero(x.buf, (size_t)x.len);
    PyBuffer_Release(&x);
    return PyBool_FromLong(r);
}

/* ---- bitmaps ---- */

/* bm and one bit index: bit_set / bit_clear / bit_test */
static PyObject *bit1(const char *name, PyObject *const *a, Py_ssize_t n, int op)
{
    if (!nargs_ok(name, n, 2, 2))
        return NULL;
    Py_ssize_t i;
    if (!index_arg(a[1], &i))
        return NULL;
    Py_buffer b;
    if (get(a[0], &b, op != 2) < 0)
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

static PyObject *f_bit_set(PyObject *m, PyObject *const *a, Py_ssize_t n)
{
    (void)m;
    return bit1("bit_set", a, n, 0);
}

static PyObject *f_bit_clear(PyObject *m, PyObject *const *a, Py_ssize_t n)
{
    (void)m;
    return bit1("bit_clear", a, n, 1);
}

static PyObject *f_bit_test(PyObject *m, PyObject *const *a, Py_ssize_t n)
{
    (void)m;
    return bit1("bit_test", a, n, 2);
}

static PyObject *range(const char *name, PyObject *const *a, Py_ssize_t n, void (*fn)(u8 *, size_t, size_t))
{
    if (!nargs_ok(name, n, 3, 3))
        return NULL;
    Py_ssize_t start, count;
    if (!index_arg(a[1], &start) || !index_arg(a[2], &count))
        return NULL;
    Py_buffer b;
    if (get(a[0], &b, 1) < 0)
        return NULL;
    PyObject *ret = NULL;
    if (span_ok(name, b.len, start, count)) {
        fn(b.buf, (size_t)start, (size_t)count);
        ret = Py_NewRef(Py_None);
    }
    PyBuffer_Release(&b);
    return ret;
}

static PyObject *f_range_set(PyObject *m, PyObject *const *a, Py_ssize_t n)
{
    (void)m;
    return range("range_set", a, n, sc_range_set);
}

static PyObject *f_range_clear(PyObject *m, PyObject *const *a, Py_ssize_t n)
{
    (void)m;
    return range("range_clear", a, n, sc_range_clear);
}

/* count(bm, start=0, end=-1) */
static PyObject *f_count(PyObject *m, PyObject *const *a, Py_ssize_t n)
{
    (void)m;
    if (!nargs_ok("count", n, 1, 3))
        return NULL;
    Py_ssize_t start = 0, end = -1;
    if ((n > 1 && !index_arg(a[1], &start)) || (n > 2 && !index_arg(a[2], &end)))
        return NULL;
    Py_buffer b;
    if (get(a[0], &b, 0) < 0)
        return NULL;
    PyObject *ret = NULL;
    if (end < 0)
        end = b.len * 8;
    if (span_ok("count", b.len, start, end - start))
        ret = PyLong_FromSize_t(sc_count(b.buf, (size_t)start, (size_t)end));
    PyBuffer_Release(&b);
    return ret;
}

/* next_set / next_clear(bm, pos, nbits=-1) */
static PyObject *next(const char *name, PyObject *const *a, Py_ssize_t n,
                      int64_t (*fn)(const u8 *, size_t, size_t))
{
    if (!nargs_ok(name, n, 2, 3))
        return NULL;
    Py_ssize_t pos, nbits = -1;
    if (!index_arg(a[1], &pos) || (n > 2 && !index_arg(a[2], &nbits)))
        return NULL;
    Py_buffer b;
    if (get(a[0], &b, 0) < 0)
        return NULL;
    PyObject *ret = NULL;
    if (nbits < 0)
        nbits = b.len * 8;
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

static PyObject *f_next_set(PyObject *m, PyObject *const *a, Py_ssize_t n)
{
    (void)m;
    return next("next_set", a, n, sc_next_set);
}

static PyObject *f_next_clear(PyObject *m, PyObject *const *a, Py_ssize_t n)
{
    (void)m;
    return next("next_clear", a, n, sc_next_clear);
}

/* ---- COBS ---- */

static PyObject *f_cobs_encode(PyObject *m, PyObject *const *a, Py_ssize_t n)
{
    (void)m;
    if (!nargs_ok("cobs_encode", n, 2, 2))
        return NULL;
    Py_buffer s, d;
    if (get(a[0], &s, 0) < 0)
        return NULL;
    if (get(a[1], &d, 1) < 0) {
        PyBuffer_Release(&s);
        return NULL;
    }
    PyObject *ret = NULL;
    if (d.len < s.len + s.len / 254 + 1)
        PyErr_SetString(PyExc_ValueError, "cobs_encode: destination too small");
    else
        ret = PyLong_FromLongLong(sc_cobs_encode(s.buf, (size_t)s.len, d.buf));
    PyBuffer_Release(&d);
    PyBuffer_Release(&s);
    return ret;
}

static PyObject *f_cobs_decode(PyObject *m, PyObject *const *a, Py_ssize_t n)
{
    (void)m;
    if (!nargs_ok("cobs_decode", n, 2, 2))
        return NULL;
    Py_buffer s, d;
    if (get(a[0], &s, 0) < 0)
        return NULL;
    if (get(a[1], &d, 1) < 0) {
        PyBuffer_Release(&s);
        return NULL;
    }
    PyObject *ret = PyLong_FromLongLong(sc_cobs_decode(s.buf, (size_t)s.len, d.buf, (size_t)d.len));
    PyBuffer_Release(&d);
    PyBuffer_Release(&s);
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
