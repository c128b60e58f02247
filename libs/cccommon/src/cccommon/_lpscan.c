/*
 * Accelerator of cccommon.lineprotocol.decode_store_batch for the common body shape:
 * every line `prefix value=NUMBER[ TIMESTAMP]` with no escapes, quotes or comments.
 *
 * decode_uniform(body: bytes, cache: dict, now: int)
 *   -> None when any line has another shape (the caller then uses the Python decoder, which
 *      handles every case and reports errors), else a tuple
 *      (results: list, values: bytes (float64), times: bytes (int64 seconds), n_missing, n_not_str)
 *   results[i] is cache[prefix] when the prefix is cached, else the prefix itself (bytes) for the
 *   caller to classify. n_not_str counts cached results that are not str (skip codes).
 *
 * Numbers are parsed exactly (Clinger's fast path for up to 19 digits and |exponent| <= 22, else
 * PyOS_string_to_double, locale independent, as float()); only the
 * characters 0-9 . e E + - are accepted, and non-finite values send the body to the Python path.
 * Timestamps are s/ms/us/ns by magnitude, as normalize_timestamp; a missing one takes the
 * previous line's, the first one `now`.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <math.h>
#include <stdint.h>
#include <string.h>

#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "the accelerator writes little-endian records; big-endian hosts use the Python code"
#endif

#define S_MAX 9223372036LL
#define MS_MAX 9223372036854LL
#define US_MAX 9223372036854775LL

static int64_t norm_ts(int64_t ts)
{
    uint64_t a = ts < 0 ? (uint64_t)0 - (uint64_t)ts : (uint64_t)ts;
    if (a <= (uint64_t)S_MAX)
        return ts;
    if (a <= (uint64_t)MS_MAX)
        return ts / 1000; /* C truncates toward zero: floor for positive, int() for negative */
    if (a <= (uint64_t)US_MAX)
        return ts / 1000000;
    return ts / 1000000000;
}

static int parse_json_number(const char **pp, const char *end, double *out, int with_gil);

static int is_num_char(char c)
{
    return (c >= '0' && c <= '9') || c == '.' || c == 'e' || c == 'E' || c == '+' || c == '-';
}

static PyObject *decode_uniform(PyObject *self, PyObject *args)
{
    Py_buffer buf;
    PyObject *cache;
    long long now;
    if (!PyArg_ParseTuple(args, "y*O!L", &buf, &PyDict_Type, &cache, &now))
        return NULL;

    const char *p = (const char *)buf.buf;
    Py_ssize_t len = buf.len;
    while (len > 0 && p[len - 1] == '\n')
        len--;
    if (len == 0) {
        PyBuffer_Release(&buf);
        Py_RETURN_NONE;
    }
    Py_ssize_t n = 1;
    for (const char *q = p; (q = memchr(q, '\n', (size_t)(p + len - q))) != NULL; q++)
        n++;

    PyObject *res = PyList_New(n);
    PyObject *vals = PyBytes_FromStringAndSize(NULL, n * 8);
    PyObject *times = PyBytes_FromStringAndSize(NULL, n * 8);
    if (res == NULL || vals == NULL || times == NULL)
        goto error;
    double *vout = (double *)PyBytes_AS_STRING(vals);
    int64_t *tout = (int64_t *)PyBytes_AS_STRING(times);
    Py_ssize_t missing = 0, not_str = 0;
    int64_t prev_ts = (int64_t)now;
    int uncertain = 0;
    char num[64];

    Py_ssize_t pos = 0;
    for (Py_ssize_t i = 0; i < n; i++) {
        const char *line = p + pos;
        const char *nl = memchr(line, '\n', (size_t)(len - pos));
        const char *end = nl ? nl : p + len;
        pos = (nl ? (nl - p) + 1 : len);
        if (end == line || line[0] == ' ' || line[0] == '#')
            goto fallback;
        /* prefix: up to the first space, without escapes, quotes or control characters */
        const char *sp = line;
        while (sp < end && *sp != ' ') {
            char c = *sp;
            if (c == '\\' || c == '"' || c == '\t' || c == '\r' || c == '\0')
                goto fallback;
            sp++;
        }
        if (sp == end || end - sp < 8 || memcmp(sp + 1, "value=", 6) != 0)
            goto fallback;
        const char *v = sp + 7;
        const char *ve = v;
        while (ve < end && *ve != ' ') {
            if (!is_num_char(*ve))
                goto fallback;
            ve++;
        }
        Py_ssize_t vlen = ve - v;
        if (vlen == 0 || vlen >= (Py_ssize_t)sizeof(num))
            goto fallback;
        /* plain decimals (the usual case) exactly by Clinger's fast path; PyOS_string_to_double, which
           saves and restores the x87 control word on every call (a tenth of the ingest CPU), for the rest */
        const char *q = v;
        double d;
        if (parse_json_number(&q, ve, &d, 1) != 0 || q != ve) {
            memcpy(num, v, (size_t)vlen);
            num[vlen] = '\0';
            char *vend = NULL;
            d = PyOS_string_to_double(num, &vend, NULL);
            if (d == -1.0 && PyErr_Occurred()) {
                PyErr_Clear();
                goto fallback;
            }
            if (vend != num + vlen)
                goto fallback;
        }
        if (!isfinite(d))
            goto fallback;
        vout[i] = d;
        int has_ts = 0;
        int64_t ts = 0;
        if (ve != end) {
            const char *t = ve + 1;
            int neg = 0;
            if (t < end && *t == '-') {
                neg = 1;
                t++;
            }
            if (t == end || end - t > 19)
                goto fallback;
            uint64_t acc = 0;
            for (; t < end; t++) {
                if (*t < '0' || *t > '9')
                    goto fallback;
                acc = acc * 10 + (uint64_t)(*t - '0');
            }
            if (acc > (uint64_t)INT64_MAX)
                goto fallback;
            ts = norm_ts(neg ? -(int64_t)acc : (int64_t)acc);
            has_ts = 1;
        } else if (uncertain) {
            /* the default time is the previous *stored* line's; unknown until the caller has
               classified the new prefixes before this line */
            goto fallback;
        } else {
            ts = prev_ts;
        }
        tout[i] = ts;
        PyObject *key = PyBytes_FromStringAndSize(line, sp - line);
        if (key == NULL)
            goto error;
        PyObject *r = PyDict_GetItemWithError(cache, key);
        if (r == NULL) {
            if (PyErr_Occurred()) {
                Py_DECREF(key);
                goto error;
            }
            PyList_SET_ITEM(res, i, key); /* steals the reference */
            missing++;
            uncertain = 1;
        } else {
            Py_DECREF(key);
            Py_INCREF(r);
            PyList_SET_ITEM(res, i, r);
            if (!PyUnicode_CheckExact(r))
                not_str++;
            else if (has_ts)
                prev_ts = ts;
        }
    }
    PyBuffer_Release(&buf);
    return Py_BuildValue("(NNNnn)", res, vals, times, missing, not_str);

fallback:
    PyBuffer_Release(&buf);
    Py_XDECREF(res);
    Py_XDECREF(vals);
    Py_XDECREF(times);
    Py_RETURN_NONE;
error:
    PyBuffer_Release(&buf);
    Py_XDECREF(res);
    Py_XDECREF(vals);
    Py_XDECREF(times);
    return NULL;
}

/* ---------------------------------------------------------------- upstream WAL records */

static uint32_t crc_table[8][256];

static void crc_init(void)
{
    for (uint32_t i = 0; i < 256; i++) {
        uint32_t c = i;
        for (int k = 0; k < 8; k++)
            c = (c & 1) ? 0xEDB88320u ^ (c >> 1) : c >> 1;
        crc_table[0][i] = c;
    }
    for (uint32_t i = 0; i < 256; i++)
        for (int t = 1; t < 8; t++)
            crc_table[t][i] = (crc_table[t - 1][i] >> 8) ^ crc_table[0][crc_table[t - 1][i] & 0xFF];
}

/* CRC-32/IEEE (as zlib.crc32), slicing by 8 bytes */
static uint32_t crc32_ieee(const unsigned char *b, size_t n)
{
    uint32_t c = 0xFFFFFFFFu;
    while (n >= 8) {
        uint32_t lo, hi;
        memcpy(&lo, b, 4);
        memcpy(&hi, b + 4, 4);
        lo ^= c;
        c = crc_table[7][lo & 0xFF] ^ crc_table[6][(lo >> 8) & 0xFF] ^ crc_table[5][(lo >> 16) & 0xFF] ^
            crc_table[4][lo >> 24] ^ crc_table[3][hi & 0xFF] ^ crc_table[2][(hi >> 8) & 0xFF] ^
            crc_table[1][(hi >> 16) & 0xFF] ^ crc_table[0][hi >> 24];
        b += 8;
        n -= 8;
    }
    while (n--)
        c = crc_table[0][(c ^ *b++) & 0xFF] ^ (c >> 8);
    return c ^ 0xFFFFFFFFu;
}

static void put_u32(unsigned char *o, uint32_t v) { memcpy(o, &v, 4); } /* x86/arm64: little-endian */

/*
 * wal_records(keys: list[str], cache: dict, times: bytes (int64), values: bytes (float32), ngroups: int)
 *   -> list of ngroups (bytes | None): the concatenated WAL records of each group
 *   or the first key (str) missing from cache; cache[key] = (group: int, middle: bytes) where middle
 *   is `u16 metric_len | metric | u8 nsel | (u8 len | bytes)*` of the payload.
 */
/* The records of rows 0..n-1 grouped per host: grp[i] and mids[i] (bytes) are resolved. */
static PyObject *build_wal_records(Py_ssize_t n, const Py_ssize_t *grp, PyObject **mids, Py_ssize_t *sizes,
                                   Py_ssize_t *fill, Py_ssize_t ngroups, const unsigned char *ts,
                                   const unsigned char *vs)
{
    PyObject *result = PyList_New(ngroups);
    if (result == NULL)
        return NULL;
    for (Py_ssize_t g = 0; g < ngroups; g++) {
        PyObject *b;
        if (sizes[g] == 0) {
            Py_INCREF(Py_None);
            b = Py_None;
        } else {
            b = PyBytes_FromStringAndSize(NULL, sizes[g]);
            if (b == NULL) {
                Py_DECREF(result);
                return NULL;
            }
        }
        PyList_SET_ITEM(result, g, b);
    }
    for (Py_ssize_t i = 0; i < n; i++) {
        Py_ssize_t g = grp[i];
        unsigned char *o = (unsigned char *)PyBytes_AS_STRING(PyList_GET_ITEM(result, g)) + fill[g];
        Py_ssize_t mlen = PyBytes_GET_SIZE(mids[i]);
        uint32_t plen = (uint32_t)(8 + mlen + 4);
        put_u32(o, 0xCC1DA7A1u);
        put_u32(o + 4, plen);
        unsigned char *pl = o + 8;
        memcpy(pl, ts + 8 * i, 8);
        memcpy(pl + 8, PyBytes_AS_STRING(mids[i]), (size_t)mlen);
        memcpy(pl + 8 + mlen, vs + 4 * i, 4);
        put_u32(pl + plen, crc32_ieee(pl, plen));
        fill[g] += 8 + plen + 4;
    }
    return result;
}

/* (group, payload middle) of a cache entry into grp[i]/mids[i]; -1 with an exception set. */
static int take_entry(PyObject *e, Py_ssize_t i, Py_ssize_t *grp, PyObject **mids, Py_ssize_t *sizes,
                      Py_ssize_t ngroups)
{
    if (!PyTuple_Check(e) || PyTuple_GET_SIZE(e) != 2 || !PyBytes_Check(PyTuple_GET_ITEM(e, 1))) {
        PyErr_SetString(PyExc_TypeError, "wal_records: cache values must be (int, bytes)");
        return -1;
    }
    Py_ssize_t g = PyLong_AsSsize_t(PyTuple_GET_ITEM(e, 0));
    if (g == -1 && PyErr_Occurred())
        return -1;
    if (g < 0 || g >= ngroups) {
        PyErr_SetString(PyExc_ValueError, "wal_records: group out of range");
        return -1;
    }
    grp[i] = g;
    mids[i] = PyTuple_GET_ITEM(e, 1);
    sizes[g] += 8 + 8 + PyBytes_GET_SIZE(mids[i]) + 4 + 4;
    return 0;
}

/* The records of n rows: each row's entry comes from `cache[keys[i]]` (keys given) or from
   `table[sids[i]]`. Returns the list per group, or the first key / series id without an entry. */
static PyObject *wal_encode(Py_ssize_t n, PyObject *keys, PyObject *cache, const int64_t *sids, PyObject *table,
                            Py_buffer *tb, Py_buffer *vb, Py_ssize_t ngroups)
{
    PyObject *result = NULL;
    Py_ssize_t *grp = NULL, *sizes = NULL, *fill = NULL;
    PyObject **mids = NULL;
    if (tb->len < n * 8 || vb->len < n * 4 || ngroups < 0) {
        PyErr_SetString(PyExc_ValueError, "wal_records: arrays shorter than the rows");
        goto done;
    }
    grp = PyMem_Malloc(sizeof(Py_ssize_t) * (size_t)(n + 1));
    mids = PyMem_Malloc(sizeof(PyObject *) * (size_t)(n + 1));
    sizes = PyMem_Calloc((size_t)ngroups + 1, sizeof(Py_ssize_t));
    fill = PyMem_Calloc((size_t)ngroups + 1, sizeof(Py_ssize_t));
    if (!grp || !mids || !sizes || !fill) {
        PyErr_NoMemory();
        goto done;
    }
    Py_ssize_t tlen = table != NULL ? PyList_GET_SIZE(table) : 0;
    for (Py_ssize_t i = 0; i < n; i++) {
        PyObject *e;
        if (keys != NULL) {
            PyObject *k = PyList_GET_ITEM(keys, i);
            e = PyDict_GetItemWithError(cache, k);
            if (e == NULL) {
                if (!PyErr_Occurred()) {
                    Py_INCREF(k);
                    result = k;
                }
                goto done;
            }
        } else {
            int64_t sid;
            memcpy(&sid, sids + i, 8);
            e = (sid >= 0 && sid < tlen) ? PyList_GET_ITEM(table, sid) : Py_None;
            if (e == Py_None) {
                result = PyLong_FromLongLong(sid);
                goto done;
            }
        }
        if (take_entry(e, i, grp, mids, sizes, ngroups) < 0)
            goto done;
    }
    result = build_wal_records(n, grp, mids, sizes, fill, ngroups, tb->buf, vb->buf);
done:
    PyMem_Free(grp);
    PyMem_Free(mids);
    PyMem_Free(sizes);
    PyMem_Free(fill);
    return result;
}

/* wal_records_sids(sids_i64, table, times_i64, values_f32, ngroups): as wal_records, with the rows'
   series ids and a list indexed by series id ((group, middle) or None) instead of keys and a dict:
   no hashing of key strings. Returns the first series id without an entry (an int) instead. */
static PyObject *wal_records_sids(PyObject *self, PyObject *args)
{
    PyObject *table;
    Py_buffer sb, tb, vb;
    Py_ssize_t ngroups;
    if (!PyArg_ParseTuple(args, "y*O!y*y*n", &sb, &PyList_Type, &table, &tb, &vb, &ngroups))
        return NULL;
    PyObject *result = wal_encode(sb.len / 8, NULL, NULL, (const int64_t *)sb.buf, table, &tb, &vb, ngroups);
    PyBuffer_Release(&sb);
    PyBuffer_Release(&tb);
    PyBuffer_Release(&vb);
    return result;
}

static PyObject *wal_records(PyObject *self, PyObject *args)
{
    PyObject *keys, *cache;
    Py_buffer tb, vb;
    Py_ssize_t ngroups;
    if (!PyArg_ParseTuple(args, "O!O!y*y*n", &PyList_Type, &keys, &PyDict_Type, &cache, &tb, &vb, &ngroups))
        return NULL;
    PyObject *result = wal_encode(PyList_GET_SIZE(keys), keys, cache, NULL, NULL, &tb, &vb, ngroups);
    PyBuffer_Release(&tb);
    PyBuffer_Release(&vb);
    return result;
}

/* ---------------------------------------------------------------- JSON number arrays */

static const double pow10_tab[23] = {1e0,  1e1,  1e2,  1e3,  1e4,  1e5,  1e6,  1e7,  1e8,  1e9,  1e10, 1e11,
                                     1e12, 1e13, 1e14, 1e15, 1e16, 1e17, 1e18, 1e19, 1e20, 1e21, 1e22};

static int is_ws(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r'; }

/* One JSON number or null at *pp (< end); the double a correct parser gives (NaN for null).
   Returns 0, or -1 for invalid syntax. */
static int parse_json_number(const char **pp, const char *end, double *out, int with_gil)
{
    const char *p = *pp, *start = p;
    if (*p == 'n' && end - p >= 4 && p[1] == 'u' && p[2] == 'l' && p[3] == 'l') {
        *out = NAN;
        *pp = p + 4;
        return 0;
    }
    int neg = 0;
    if (p < end && *p == '-') {
        neg = 1;
        p++;
    }
    if (p >= end || *p < '0' || *p > '9')
        return -1;
    uint64_t mant = 0;
    int digits = 0, frac = 0, exact = 1;
    if (*p == '0') {
        p++;
    } else {
        while (p < end && *p >= '0' && *p <= '9') {
            if (digits < 19)
                mant = mant * 10 + (uint64_t)(*p - '0');
            else
                exact = 0;
            digits++;
            p++;
        }
    }
    if (p < end && *p == '.') {
        p++;
        if (p >= end || *p < '0' || *p > '9')
            return -1;
        while (p < end && *p >= '0' && *p <= '9') {
            if (digits < 19) {
                mant = mant * 10 + (uint64_t)(*p - '0');
                frac++;
            } else if (*p != '0') {
                exact = 0;
            }
            if (mant != 0 || digits)
                digits++;
            p++;
        }
    }
    int e = 0;
    if (p < end && (*p == 'e' || *p == 'E')) {
        p++;
        int eneg = 0;
        if (p < end && (*p == '+' || *p == '-')) {
            eneg = *p == '-';
            p++;
        }
        if (p >= end || *p < '0' || *p > '9')
            return -1;
        while (p < end && *p >= '0' && *p <= '9') {
            if (e < 100000)
                e = e * 10 + (*p - '0');
            p++;
        }
        if (eneg)
            e = -e;
    }
    int e10 = e - frac;
    double v;
    if (exact && mant < (1ULL << 53) && e10 >= -22 && e10 <= 22) {
        v = (double)mant;
        v = e10 < 0 ? v / pow10_tab[-e10] : v * pow10_tab[e10]; /* one exact rounding */
    } else {
        if (!with_gil)
            return -2; /* needs the correctly rounding parser, which needs the GIL */
        char buf[400];
        size_t n = (size_t)(p - start);
        if (n >= sizeof(buf))
            return -1;
        memcpy(buf, start, n);
        buf[n] = '\0';
        char *endp = NULL;
        v = PyOS_string_to_double(buf, &endp, NULL); /* correctly rounded, inf on overflow */
        if (v == -1.0 && PyErr_Occurred()) {
            PyErr_Clear();
            return -1;
        }
        *pp = p;
        *out = v;
        return 0;
    }
    *out = neg ? -v : v;
    *pp = p;
    return 0;
}

static int parse_spans(const char *data, const int64_t *spans, Py_ssize_t nspans, float *vo, Py_ssize_t cap,
                       int64_t *co, Py_ssize_t *nv_out, int with_gil)
{
    Py_ssize_t nv = 0;
    for (Py_ssize_t k = 0; k < nspans; k++) {
        const char *p = data + spans[2 * k], *end = data + spans[2 * k + 1];
        int64_t c = 0;
        while (p < end && is_ws(*p))
            p++;
        while (p < end) {
            double v;
            int r = parse_json_number(&p, end, &v, with_gil);
            if (r != 0)
                return r;
            if (nv >= cap)
                return -1;
            vo[nv++] = (float)v;
            c++;
            while (p < end && is_ws(*p))
                p++;
            if (p < end) {
                if (*p != ',')
                    return -1;
                p++;
                while (p < end && is_ws(*p))
                    p++;
                if (p >= end)
                    return -1; /* trailing comma */
            }
        }
        co[k] = c;
    }
    *nv_out = nv;
    return 0;
}

/*
 * parse_number_arrays(data: bytes, spans: bytes (int64 pairs)) -> bytes (float32 values) | None
 *   all arrays' values concatenated (the caller splits them by counts it gets from `counts`),
 *   or None when a value is not a JSON number/null (the caller's parser reports the error).
 * counts_out: bytes (int64 per span)
 */
static PyObject *parse_number_arrays(PyObject *self, PyObject *args)
{
    Py_buffer db, sb;
    if (!PyArg_ParseTuple(args, "y*y*", &db, &sb))
        return NULL;
    const char *data = db.buf;
    Py_ssize_t nspans = sb.len / 16;
    const int64_t *spans = sb.buf;
    PyObject *vals = NULL, *counts = NULL;
    Py_ssize_t cap = 0;
    for (Py_ssize_t k = 0; k < nspans; k++) {
        int64_t i = spans[2 * k], j = spans[2 * k + 1];
        if (i < 0 || j < i || j > db.len)
            goto invalid;
        cap += (j - i) / 2 + 1; /* a value takes at least one digit and a comma */
    }
    vals = PyBytes_FromStringAndSize(NULL, cap * 4);
    counts = PyBytes_FromStringAndSize(NULL, nspans * 8);
    if (vals == NULL || counts == NULL)
        goto error;
    float *vo = (float *)PyBytes_AS_STRING(vals);
    int64_t *co = (int64_t *)PyBytes_AS_STRING(counts);
    Py_ssize_t nv = 0;
    int rc;
    Py_BEGIN_ALLOW_THREADS
    rc = parse_spans(data, spans, nspans, vo, cap, co, &nv, 0);
    Py_END_ALLOW_THREADS
    if (rc == -2) /* a number only the correctly rounding parser can do: again, holding the GIL */
        rc = parse_spans(data, spans, nspans, vo, cap, co, &nv, 1);
    if (rc != 0)
        goto invalid;
    PyBuffer_Release(&db);
    PyBuffer_Release(&sb);
    if (_PyBytes_Resize(&vals, nv * 4) < 0) {
        Py_XDECREF(counts);
        return NULL;
    }
    return Py_BuildValue("(NN)", vals, counts);
invalid:
    PyBuffer_Release(&db);
    PyBuffer_Release(&sb);
    Py_XDECREF(vals);
    Py_XDECREF(counts);
    Py_RETURN_NONE;
error:
    PyBuffer_Release(&db);
    PyBuffer_Release(&sb);
    Py_XDECREF(vals);
    Py_XDECREF(counts);
    return NULL;
}

/*
 * parse_fixed_arrays(data, spans, width, decimals) -> (float32 values, int64 counts) | None
 *   for arrays written as fixed-width columns (our JSON checkpoints): every value takes `width`
 *   bytes including its comma, right-aligned, with exactly `decimals` digits after the dot, or
 *   `null`. Anything else gives None (the general parser then decides).
 */
static int parse_fixed_spans(const char *data, const int64_t *spans, Py_ssize_t nspans, int width, int decimals,
                             float *vo, int64_t *co)
{
    Py_ssize_t nv = 0;
    const double scale = pow10_tab[decimals];
    for (Py_ssize_t k = 0; k < nspans; k++) {
        const char *p = data + spans[2 * k], *end = data + spans[2 * k + 1];
        Py_ssize_t len = end - p;
        if ((len + 1) % width != 0)
            return -1;
        Py_ssize_t n = (len + 1) / width;
        for (Py_ssize_t i = 0; i < n; i++) {
            const char *q = p + i * width, *qe = q + width - 1; /* value text, without the comma */
            if (i + 1 < n && *qe != ',')
                return -1;
            while (q < qe && *q == ' ')
                q++;
            if (q >= qe)
                return -1;
            if (*q == 'n') {
                if (qe - q != 4 || q[1] != 'u' || q[2] != 'l' || q[3] != 'l')
                    return -1;
                vo[nv++] = NAN;
                continue;
            }
            int neg = *q == '-';
            q += neg;
            const char *dot = decimals ? qe - decimals - 1 : qe;
            if (dot <= q || (decimals && *dot != '.') || dot - q + decimals > 15)
                return -1;
            if (*q == '0' && dot - q > 1)
                return -1; /* leading zero: not JSON */
            uint64_t mant = 0;
            for (const char *c = q; c < dot; c++) {
                unsigned d = (unsigned)(*c - '0');
                if (d > 9)
                    return -1;
                mant = mant * 10 + d;
            }
            for (const char *c = dot + 1; c < qe; c++) {
                unsigned d = (unsigned)(*c - '0');
                if (d > 9)
                    return -1;
                mant = mant * 10 + d;
            }
            double v = decimals ? (double)mant / scale : (double)mant; /* one exact rounding */
            vo[nv++] = (float)(neg ? -v : v);
        }
        co[k] = n;
    }
    return 0;
}

static PyObject *parse_fixed_arrays(PyObject *self, PyObject *args)
{
    Py_buffer db, sb;
    int width, decimals;
    if (!PyArg_ParseTuple(args, "y*y*ii", &db, &sb, &width, &decimals))
        return NULL;
    PyObject *vals = NULL, *counts = NULL;
    Py_ssize_t nspans = sb.len / 16, total = 0;
    const int64_t *spans = sb.buf;
    if (width < 2 || decimals < 0 || decimals > 14)
        goto invalid;
    for (Py_ssize_t k = 0; k < nspans; k++) {
        int64_t i = spans[2 * k], j = spans[2 * k + 1];
        if (i < 0 || j < i || j > db.len)
            goto invalid;
        total += (j - i + 1) / width;
    }
    vals = PyBytes_FromStringAndSize(NULL, total * 4);
    counts = PyBytes_FromStringAndSize(NULL, nspans * 8);
    if (vals == NULL || counts == NULL)
        goto error;
    int rc;
    const char *data = db.buf;
    float *vo = (float *)PyBytes_AS_STRING(vals);
    int64_t *co = (int64_t *)PyBytes_AS_STRING(counts);
    Py_BEGIN_ALLOW_THREADS
    rc = parse_fixed_spans(data, spans, nspans, width, decimals, vo, co);
    Py_END_ALLOW_THREADS
    if (rc != 0)
        goto invalid;
    PyBuffer_Release(&db);
    PyBuffer_Release(&sb);
    return Py_BuildValue("(NN)", vals, counts);
invalid:
    PyBuffer_Release(&db);
    PyBuffer_Release(&sb);
    Py_XDECREF(vals);
    Py_XDECREF(counts);
    Py_RETURN_NONE;
error:
    PyBuffer_Release(&db);
    PyBuffer_Release(&sb);
    Py_XDECREF(vals);
    Py_XDECREF(counts);
    return NULL;
}

static PyMethodDef methods[] = {
    {"parse_fixed_arrays", parse_fixed_arrays, METH_VARARGS,
     "parse_fixed_arrays(data, spans_i64_pairs, width, decimals) -> (float32 values, int64 counts) | None"},
    {"parse_number_arrays", parse_number_arrays, METH_VARARGS,
     "parse_number_arrays(data, spans_i64_pairs) -> (float32 values, int64 counts) | None"},
    {"wal_records", wal_records, METH_VARARGS,
     "wal_records(keys, cache, times_i64, values_f32, ngroups) -> list[bytes|None] | missing key"},
    {"wal_records_sids", wal_records_sids, METH_VARARGS,
     "wal_records_sids(sids_i64, table, times_i64, values_f32, ngroups) -> list[bytes|None] | missing sid"},
    {"decode_uniform", decode_uniform, METH_VARARGS,
     "decode_uniform(body, cache, now) -> None | (results, values, times, n_missing, n_not_str)"},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "cccommon._lpscan", "Line-protocol fast path of the metric store.", -1, methods,
};

PyMODINIT_FUNC PyInit__lpscan(void)
{
    crc_init();
    return PyModule_Create(&module);
}
