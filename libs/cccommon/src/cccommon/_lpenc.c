/*
 * Accelerator of the collector's line-protocol writers (cccollector.sinks._encode) for the
 * common message shape: a str name, str tags, one field `value` holding a float, an int or a
 * bool, and a non-negative time in nanoseconds.
 *
 * encode(msgs: list, unit_ns: int, writer: int, fallback: callable, joined: bool)
 *   writer 0 is writer A (influxdb-client-go's point encoder: a `,` always follows the
 *   measurement; newline/CR/tab become two backslashes and n/r/t; nothing is validated),
 *   writer 1 is writer B (cc-lib's encoder: control characters, empty names and keys and a
 *   trailing backslash are errors, which the Python writer reports).
 *   Tags are sorted by key in both. A message of any other shape, or one writer B would refuse,
 *   is handed to `fallback(msg)`, which returns its line (str) or None to leave it out.
 *   joined: one str with every line followed by "\n"; otherwise a list of lines (no newline).
 *
 * Floats are written as Go's strconv.FormatFloat(v, 'g', -1, 64): the shortest digits that
 * round-trip (Python's repr digits), with an exponent when it is below -4 or at least 6.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define MAX_TAGS 32

static PyObject *s_name, *s_tags, *s_fields, *s_time, *s_value;

typedef struct {
    char *p;
    Py_ssize_t len, cap;
} Buf;

static int buf_reserve(Buf *b, Py_ssize_t extra)
{
    if (b->len + extra <= b->cap)
        return 0;
    Py_ssize_t cap = b->cap ? b->cap : 4096;
    while (cap < b->len + extra)
        cap *= 2;
    char *p = PyMem_Realloc(b->p, (size_t)cap);
    if (p == NULL) {
        PyErr_NoMemory();
        return -1;
    }
    b->p = p;
    b->cap = cap;
    return 0;
}

static int buf_put(Buf *b, const char *s, Py_ssize_t n)
{
    if (buf_reserve(b, n) < 0)
        return -1;
    memcpy(b->p + b->len, s, (size_t)n);
    b->len += n;
    return 0;
}

/* Result of an escape: 0 written, 1 the message needs the Python writer, -1 error set. */
#define ESC_NAME 0
#define ESC_KEY 1

static int put_escaped(Buf *b, PyObject *s, int kind, int writer)
{
    Py_ssize_t n;
    const char *u;
    if (!PyUnicode_CheckExact(s))
        return 1;
    u = PyUnicode_AsUTF8AndSize(s, &n);
    if (u == NULL) {
        PyErr_Clear(); /* lone surrogates: the Python writer decides */
        return 1;
    }
    if (writer == 1 && (n == 0 || u[n - 1] == '\\'))
        return 1;
    if (buf_reserve(b, 3 * n) < 0) /* worst case: every byte becomes \\n */
        return -1;
    char *o = b->p + b->len;
    for (Py_ssize_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)u[i];
        if (c == ' ' || c == ',' || (c == '=' && kind == ESC_KEY)) {
            *o++ = '\\';
            *o++ = (char)c;
        }
        else if (c < 0x20 || c == 0x7f) {
            if (writer == 1)
                return 1;
            if (c == '\n' || c == '\r' || c == '\t') {
                *o++ = '\\';
                *o++ = '\\';
                *o++ = c == '\n' ? 'n' : (c == '\r' ? 'r' : 't');
            }
            else
                *o++ = (char)c;
        }
        else
            *o++ = (char)c;
    }
    b->len = o - b->p;
    return 0;
}

/* Go's FormatFloat(x, 'g', -1, 64) of a finite x. */
static int put_go_float(Buf *b, double x)
{
    char out[64];
    int o = 0;
    if (x == 0.0) {
        return buf_put(b, signbit(x) ? "-0" : "0", signbit(x) ? 2 : 1);
    }
    if (x < 0) {
        out[o++] = '-';
        x = -x;
    }
    char *r = PyOS_double_to_string(x, 'r', 0, 0, NULL);
    if (r == NULL)
        return -1;
    /* r: digits with an optional '.', then an optional e[+-]NN */
    char digits[40];
    int nd = 0, dp = -1, exp10 = 0;
    const char *q = r;
    for (; *q && *q != 'e'; q++) {
        if (*q == '.')
            dp = nd;
        else if (nd < 39)
            digits[nd++] = *q;
    }
    if (dp < 0)
        dp = nd;
    if (*q == 'e')
        exp10 = atoi(q + 1);
    PyMem_Free(r);
    dp += exp10;
    int first = 0;
    while (first < nd && digits[first] == '0') {
        first++;
        dp--;
    }
    while (nd > first && digits[nd - 1] == '0')
        nd--;
    if (first == nd) { /* cannot happen for x != 0 */
        digits[0] = '0';
        first = 0;
        nd = 1;
        dp = 1;
    }
    const char *d = digits + first;
    int n = nd - first;
    int e = dp - 1;
    if (e < -4 || e >= 6) {
        out[o++] = d[0];
        if (n > 1) {
            out[o++] = '.';
            memcpy(out + o, d + 1, (size_t)(n - 1));
            o += n - 1;
        }
        o += snprintf(out + o, sizeof(out) - (size_t)o, "e%c%02d", e < 0 ? '-' : '+', e < 0 ? -e : e);
    }
    else if (dp <= 0) {
        out[o++] = '0';
        out[o++] = '.';
        for (int i = 0; i < -dp; i++)
            out[o++] = '0';
        memcpy(out + o, d, (size_t)n);
        o += n;
    }
    else if (dp >= n) {
        memcpy(out + o, d, (size_t)n);
        o += n;
        for (int i = n; i < dp; i++)
            out[o++] = '0';
    }
    else {
        memcpy(out + o, d, (size_t)dp);
        o += dp;
        out[o++] = '.';
        memcpy(out + o, d + dp, (size_t)(n - dp));
        o += n - dp;
    }
    return buf_put(b, out, o);
}

/* The value text; 1 when the Python writer must do it (str, UInt and other int subclasses, ...). */
static int put_value(Buf *b, PyObject *v)
{
    char tmp[32];
    if (PyFloat_CheckExact(v)) {
        double x = PyFloat_AS_DOUBLE(v);
        if (!isfinite(x))
            return 1;
        return put_go_float(b, x);
    }
    if (PyLong_CheckExact(v)) {
        int overflow = 0;
        long long i = PyLong_AsLongLongAndOverflow(v, &overflow);
        if (overflow || (i == -1 && PyErr_Occurred())) {
            PyErr_Clear();
            return 1;
        }
        int n = snprintf(tmp, sizeof(tmp), "%lldi", i);
        return buf_put(b, tmp, n);
    }
    if (v == Py_True)
        return buf_put(b, "true", 4);
    if (v == Py_False)
        return buf_put(b, "false", 5);
    return 1;
}

/* Append the line of msg (without newline) to b. 0 done, 1 use the fallback, -1 error. */
static int put_line(Buf *b, PyObject *msg, long long unit, int writer)
{
    PyObject *name = NULL, *tags = NULL, *fields = NULL, *tm = NULL;
    int rc = 1;
    name = PyObject_GetAttr(msg, s_name);
    tags = name ? PyObject_GetAttr(msg, s_tags) : NULL;
    fields = tags ? PyObject_GetAttr(msg, s_fields) : NULL;
    tm = fields ? PyObject_GetAttr(msg, s_time) : NULL;
    if (tm == NULL) {
        rc = -1;
        goto done;
    }
    if (!PyDict_CheckExact(tags) || !PyDict_CheckExact(fields) || PyDict_GET_SIZE(fields) != 1)
        goto done;
    PyObject *value = PyDict_GetItemWithError(fields, s_value);
    if (value == NULL) {
        if (PyErr_Occurred())
            rc = -1;
        goto done;
    }
    if (!PyLong_CheckExact(tm))
        goto done;
    int overflow = 0;
    long long t = PyLong_AsLongLongAndOverflow(tm, &overflow);
    if (overflow || t < 0 || (t == -1 && PyErr_Occurred())) {
        PyErr_Clear();
        goto done;
    }

    Py_ssize_t nt = PyDict_GET_SIZE(tags);
    if (nt > MAX_TAGS)
        goto done;
    PyObject *keys[MAX_TAGS], *vals[MAX_TAGS];
    Py_ssize_t pos = 0, i = 0;
    PyObject *k, *v;
    while (PyDict_Next(tags, &pos, &k, &v)) {
        if (!PyUnicode_CheckExact(k) || !PyUnicode_CheckExact(v))
            goto done;
        /* insertion sort by code point, as sorted() orders str */
        Py_ssize_t j = i;
        while (j > 0) {
            int c = PyUnicode_Compare(keys[j - 1], k);
            if (c == -1 && PyErr_Occurred()) {
                rc = -1;
                goto done;
            }
            if (c <= 0)
                break;
            keys[j] = keys[j - 1];
            vals[j] = vals[j - 1];
            j--;
        }
        keys[j] = k;
        vals[j] = v;
        i++;
    }

    Py_ssize_t start = b->len;
    int r = put_escaped(b, name, ESC_NAME, writer);
    for (Py_ssize_t j = 0; r == 0 && j < nt; j++) {
        r = buf_put(b, ",", 1);
        if (r == 0)
            r = put_escaped(b, keys[j], ESC_KEY, writer);
        if (r == 0)
            r = buf_put(b, "=", 1);
        if (r == 0)
            r = put_escaped(b, vals[j], ESC_KEY, writer);
    }
    if (r == 0 && writer == 0 && nt == 0)
        r = buf_put(b, ",", 1);
    if (r == 0)
        r = buf_put(b, " value=", 7);
    if (r == 0)
        r = put_value(b, value);
    if (r == 0 && t != 0) {
        char tmp[32];
        int n = snprintf(tmp, sizeof(tmp), " %lld", t / unit);
        r = buf_put(b, tmp, n);
    }
    if (r != 0)
        b->len = start; /* drop the partial line: the fallback writes it */
    rc = r;
done:
    Py_XDECREF(name);
    Py_XDECREF(tags);
    Py_XDECREF(fields);
    Py_XDECREF(tm);
    return rc;
}

static PyObject *encode(PyObject *self, PyObject *args)
{
    PyObject *msgs, *fallback;
    long long unit;
    int writer, joined;
    if (!PyArg_ParseTuple(args, "O!LiOp", &PyList_Type, &msgs, &unit, &writer, &fallback, &joined))
        return NULL;
    if (unit <= 0 || (writer != 0 && writer != 1)) {
        PyErr_SetString(PyExc_ValueError, "unit_ns must be > 0 and writer 0 or 1");
        return NULL;
    }
    Buf b = {NULL, 0, 0};
    PyObject *lines = joined ? NULL : PyList_New(0);
    if (!joined && lines == NULL)
        return NULL;
    Py_ssize_t n = PyList_GET_SIZE(msgs);
    for (Py_ssize_t i = 0; i < n; i++) {
        PyObject *msg = PyList_GET_ITEM(msgs, i);
        Py_INCREF(msg); /* the fallback may change the list */
        Py_ssize_t start = b.len;
        int r = put_line(&b, msg, unit, writer);
        if (r < 0) {
            Py_DECREF(msg);
            goto error;
        }
        PyObject *line = NULL;
        if (r == 1) {
            PyObject *s = PyObject_CallOneArg(fallback, msg);
            if (s == NULL) {
                Py_DECREF(msg);
                goto error;
            }
            if (s == Py_None) {
                Py_DECREF(s);
                Py_DECREF(msg);
                continue;
            }
            if (!PyUnicode_Check(s)) {
                Py_DECREF(s);
                Py_DECREF(msg);
                PyErr_SetString(PyExc_TypeError, "fallback must return str or None");
                goto error;
            }
            if (joined) {
                Py_ssize_t sn;
                const char *su = PyUnicode_AsUTF8AndSize(s, &sn);
                if (su == NULL || buf_put(&b, su, sn) < 0) {
                    Py_DECREF(s);
                    Py_DECREF(msg);
                    goto error;
                }
                Py_DECREF(s);
            }
            else
                line = s;
        }
        else if (!joined) {
            line = PyUnicode_DecodeUTF8(b.p + start, b.len - start, "strict");
            b.len = start;
            if (line == NULL) {
                Py_DECREF(msg);
                goto error;
            }
        }
        Py_DECREF(msg);
        if (joined) {
            if (buf_put(&b, "\n", 1) < 0)
                goto error;
        }
        else {
            int ar = PyList_Append(lines, line);
            Py_DECREF(line);
            if (ar < 0)
                goto error;
        }
    }
    if (joined) {
        PyObject *out = PyUnicode_DecodeUTF8(b.p ? b.p : "", b.len, "strict");
        PyMem_Free(b.p);
        return out;
    }
    PyMem_Free(b.p);
    return lines;
error:
    PyMem_Free(b.p);
    Py_XDECREF(lines);
    return NULL;
}

static PyMethodDef methods[] = {
    {"encode", encode, METH_VARARGS,
     "encode(msgs, unit_ns, writer, fallback, joined) -> str (joined) | list[str]"},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "cccommon._lpenc", "Line-protocol writers of the collector's sinks.", -1, methods,
};

PyMODINIT_FUNC PyInit__lpenc(void)
{
    if ((s_name = PyUnicode_InternFromString("name")) == NULL ||
        (s_tags = PyUnicode_InternFromString("tags")) == NULL ||
        (s_fields = PyUnicode_InternFromString("fields")) == NULL ||
        (s_time = PyUnicode_InternFromString("time")) == NULL ||
        (s_value = PyUnicode_InternFromString("value")) == NULL)
        return NULL;
    return PyModule_Create(&module);
}
