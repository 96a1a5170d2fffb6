/*
 * C versions of the hottest parts of the WhatsApp parser.
 *
 * Each function gives exactly what its Python counterpart gives, or None
 * when the text contains something it does not handle. The caller then
 * runs the Python code, which is always right and only slower:
 *
 * - count_dates: the header dates of a block, as the first pass counts them
 *   (scan._scan_dates);
 * - scan_utf8: the same count on the undecoded bytes of a UTF-8 block, with
 *   the checks that the block decodes and contains no format mark;
 * - split_block: a block cut at its headers, as bulk_pattern(shape).split
 *   cuts it;
 * - bulk_messages: the loop of BulkReader._messages, which turns the cut
 *   block into ParsedMessage objects;
 * - Occurrences: the count of identical messages of bulk.Occurrences;
 * - plain_clock and has_any: a 24-hour time as BulkReader._clock reads it,
 *   and a test for format marks.
 *
 * The header matcher follows the regex of header.exact_header(shape,
 * digit="[0-9]") along the path the regex engine tries first: every
 * quantifier greedy, every optional part taken when it can be. When that
 * path matches, the regex returns the same match. When it fails and the
 * line could still start a header of any shape (an optional bracket, one
 * to four decimal digits and a date separator), the function gives up on
 * the block. The regex may then find a match by backtracking, or the line
 * may be a header of another shape, and both need the Python code.
 *
 * SHA-256 is written here from FIPS 180-4, so the message keys need no call
 * back into hashlib.
 */

#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <datetime.h>
#include <structmember.h>
#include <stdint.h>
#include <string.h>

/* ------------------------------------------------------------------ */
/* SHA-256                                                              */
/* ------------------------------------------------------------------ */

/* First 32 bits of the fractional parts of the cube roots of the first 64
 * primes, as FIPS 180-4 section 4.2.2 defines them. */
static const uint32_t ROUND_CONSTANTS[64] = {
    0x428a2f98U, 0x71374491U, 0xb5c0fbcfU, 0xe9b5dba5U, 0x3956c25bU, 0x59f111f1U,
    0x923f82a4U, 0xab1c5ed5U, 0xd807aa98U, 0x12835b01U, 0x243185beU, 0x550c7dc3U,
    0x72be5d74U, 0x80deb1feU, 0x9bdc06a7U, 0xc19bf174U, 0xe49b69c1U, 0xefbe4786U,
    0x0fc19dc6U, 0x240ca1ccU, 0x2de92c6fU, 0x4a7484aaU, 0x5cb0a9dcU, 0x76f988daU,
    0x983e5152U, 0xa831c66dU, 0xb00327c8U, 0xbf597fc7U, 0xc6e00bf3U, 0xd5a79147U,
    0x06ca6351U, 0x14292967U, 0x27b70a85U, 0x2e1b2138U, 0x4d2c6dfcU, 0x53380d13U,
    0x650a7354U, 0x766a0abbU, 0x81c2c92eU, 0x92722c85U, 0xa2bfe8a1U, 0xa81a664bU,
    0xc24b8b70U, 0xc76c51a3U, 0xd192e819U, 0xd6990624U, 0xf40e3585U, 0x106aa070U,
    0x19a4c116U, 0x1e376c08U, 0x2748774cU, 0x34b0bcb5U, 0x391c0cb3U, 0x4ed8aa4aU,
    0x5b9cca4fU, 0x682e6ff3U, 0x748f82eeU, 0x78a5636fU, 0x84c87814U, 0x8cc70208U,
    0x90befffaU, 0xa4506cebU, 0xbef9a3f7U, 0xc67178f2U,
};

/* First 32 bits of the fractional parts of the square roots of the first 8
 * primes (section 5.3.3). */
static const uint32_t INITIAL_HASH[8] = {
    0x6a09e667U, 0xbb67ae85U, 0x3c6ef372U, 0xa54ff53aU,
    0x510e527fU, 0x9b05688cU, 0x1f83d9abU, 0x5be0cd19U,
};

/* The compression function of section 6.2.2: one 64-byte block into the
 * hash. */
typedef void (*Compress)(uint32_t hash[8], const unsigned char block[64]);

typedef struct {
    Compress compress;
    uint32_t hash[8];
    uint64_t length;           /* bytes hashed so far */
    unsigned char block[64];   /* bytes waiting for a full block */
    size_t filled;
} Sha256;

static inline uint32_t
rotate_right(uint32_t value, int bits)
{
    return (value >> bits) | (value << (32 - bits));
}

static void
sha256_compress(uint32_t hash[8], const unsigned char block[64])
{
    uint32_t w[64];
    for (int t = 0; t < 16; t++) {
        w[t] = ((uint32_t)block[4 * t] << 24) | ((uint32_t)block[4 * t + 1] << 16)
               | ((uint32_t)block[4 * t + 2] << 8) | (uint32_t)block[4 * t + 3];
    }
    for (int t = 16; t < 64; t++) {
        uint32_t s0 = rotate_right(w[t - 15], 7) ^ rotate_right(w[t - 15], 18)
                      ^ (w[t - 15] >> 3);
        uint32_t s1 = rotate_right(w[t - 2], 17) ^ rotate_right(w[t - 2], 19)
                      ^ (w[t - 2] >> 10);
        w[t] = w[t - 16] + s0 + w[t - 7] + s1;
    }

    uint32_t a = hash[0], b = hash[1], c = hash[2], d = hash[3];
    uint32_t e = hash[4], f = hash[5], g = hash[6], h = hash[7];
    for (int t = 0; t < 64; t++) {
        uint32_t sum1 = rotate_right(e, 6) ^ rotate_right(e, 11) ^ rotate_right(e, 25);
        uint32_t choose = (e & f) ^ (~e & g);
        uint32_t t1 = h + sum1 + choose + ROUND_CONSTANTS[t] + w[t];
        uint32_t sum0 = rotate_right(a, 2) ^ rotate_right(a, 13) ^ rotate_right(a, 22);
        uint32_t majority = (a & b) ^ (a & c) ^ (b & c);
        uint32_t t2 = sum0 + majority;
        h = g;
        g = f;
        f = e;
        e = d + t1;
        d = c;
        c = b;
        b = a;
        a = t1 + t2;
    }
    hash[0] += a;
    hash[1] += b;
    hash[2] += c;
    hash[3] += d;
    hash[4] += e;
    hash[5] += f;
    hash[6] += g;
    hash[7] += h;
}

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#define HAVE_SHA_EXTENSIONS 1
#include <cpuid.h>
#include <immintrin.h>

/* True when the processor has the SHA extensions and SSE4.1, checked once
 * when the module loads. */
static int
cpu_has_sha_extensions(void)
{
    unsigned int eax, ebx, ecx, edx;
    if (!__get_cpuid(1, &eax, &ebx, &ecx, &edx)) {
        return 0;
    }
    int sse41 = (ecx >> 19) & 1;
    int ssse3 = (ecx >> 9) & 1;
    if (!__get_cpuid_count(7, 0, &eax, &ebx, &ecx, &edx)) {
        return 0;
    }
    return sse41 && ssse3 && ((ebx >> 29) & 1);
}

/* The compression function on the x86 SHA extensions. SHA256RNDS2 runs two
 * rounds on the state held as ABEF and CDGH (A in the highest 32 bits),
 * with the two message words plus constants in the low 64 bits of its third
 * operand. SHA256MSG1 and SHA256MSG2 compute four words of the message
 * schedule of section 6.2.2 at a time. */
__attribute__((target("sha,sse4.1,ssse3"))) static void
sha256_compress_extensions(uint32_t hash[8], const unsigned char block[64])
{
    const __m128i byte_swap = _mm_set_epi64x(0x0c0d0e0f08090a0bULL, 0x0405060700010203ULL);
    __m128i abcd = _mm_loadu_si128((const __m128i *)&hash[0]);
    __m128i efgh = _mm_loadu_si128((const __m128i *)&hash[4]);
    abcd = _mm_shuffle_epi32(abcd, 0xB1);          /* B A D C */
    efgh = _mm_shuffle_epi32(efgh, 0x1B);          /* H G F E */
    __m128i abef = _mm_alignr_epi8(abcd, efgh, 8); /* F E B A */
    __m128i cdgh = _mm_blend_epi16(efgh, abcd, 0xF0); /* H G D C */
    const __m128i abef_start = abef, cdgh_start = cdgh;

    __m128i words[4];
    for (int i = 0; i < 4; i++) {
        words[i] = _mm_shuffle_epi8(_mm_loadu_si128((const __m128i *)(block + 16 * i)),
                                    byte_swap);
    }
    for (int group = 0; group < 16; group++) {
        __m128i w;
        if (group < 4) {
            w = words[group];
        }
        else {
            /* Words t..t+3 from the groups t-16, t-12, t-8 and t-4. */
            __m128i older = words[group & 3], old = words[(group + 1) & 3];
            __m128i recent = words[(group + 2) & 3], latest = words[(group + 3) & 3];
            w = _mm_sha256msg1_epu32(older, old);
            w = _mm_add_epi32(w, _mm_alignr_epi8(latest, recent, 4));
            w = _mm_sha256msg2_epu32(w, latest);
            words[group & 3] = w;
        }
        __m128i schedule = _mm_add_epi32(
            w, _mm_loadu_si128((const __m128i *)&ROUND_CONSTANTS[4 * group]));
        /* Rounds t and t+1: the new ABEF goes into cdgh, whose value no
         * later round needs, and the old ABEF in abef is now the CDGH. */
        cdgh = _mm_sha256rnds2_epu32(cdgh, abef, schedule);
        /* Rounds t+2 and t+3, with the roles swapped: the new ABEF goes
         * back into abef, and cdgh is the CDGH again. */
        abef = _mm_sha256rnds2_epu32(abef, cdgh, _mm_shuffle_epi32(schedule, 0x0E));
    }
    abef = _mm_add_epi32(abef, abef_start);
    cdgh = _mm_add_epi32(cdgh, cdgh_start);

    __m128i feba = _mm_shuffle_epi32(abef, 0x1B);  /* A B E F */
    __m128i ghcd = _mm_shuffle_epi32(cdgh, 0xB1);  /* G H C D */
    _mm_storeu_si128((__m128i *)&hash[0], _mm_blend_epi16(feba, ghcd, 0xF0));
    _mm_storeu_si128((__m128i *)&hash[4], _mm_alignr_epi8(ghcd, feba, 8));
}
#endif

/* The fastest compression function of this processor, chosen when the
 * module loads. */
static Compress fastest_compress = sha256_compress;

static void
sha256_start(Sha256 *state, Compress compress)
{
    state->compress = compress;
    memcpy(state->hash, INITIAL_HASH, sizeof(INITIAL_HASH));
    state->length = 0;
    state->filled = 0;
}

static void
sha256_add(Sha256 *state, const unsigned char *bytes, size_t size)
{
    state->length += size;
    if (state->filled) {
        size_t room = 64 - state->filled;
        size_t take = size < room ? size : room;
        memcpy(state->block + state->filled, bytes, take);
        state->filled += take;
        bytes += take;
        size -= take;
        if (state->filled < 64) {
            return;
        }
        state->compress(state->hash, state->block);
        state->filled = 0;
    }
    while (size >= 64) {
        state->compress(state->hash, bytes);
        bytes += 64;
        size -= 64;
    }
    memcpy(state->block, bytes, size);
    state->filled = size;
}

/* Pad the message (section 5.1.1) and write the 32-byte digest. */
static void
sha256_finish(Sha256 *state, unsigned char out[32])
{
    uint64_t bits = state->length * 8;
    unsigned char pad[72];
    size_t pad_size = (state->filled < 56 ? 56 : 120) - state->filled;
    memset(pad, 0, sizeof(pad));
    pad[0] = 0x80;
    for (int i = 0; i < 8; i++) {
        pad[pad_size + i] = (unsigned char)(bits >> (56 - 8 * i));
    }
    sha256_add(state, pad, pad_size + 8);
    for (int i = 0; i < 8; i++) {
        for (int j = 0; j < 4; j++) {
            out[4 * i + j] = (unsigned char)(state->hash[i] >> (24 - 8 * j));
        }
    }
}

/* The two hex digits of every byte, filled in when the module loads. */
static char hex_pairs[256][2];

static void
fill_hex_pairs(void)
{
    static const char digits[] = "0123456789abcdef";
    for (int i = 0; i < 256; i++) {
        hex_pairs[i][0] = digits[i >> 4];
        hex_pairs[i][1] = digits[i & 0xf];
    }
}

/* A 32-byte digest as a str of 64 hex digits. */
static PyObject *
hex_string(const unsigned char digest[32])
{
    PyObject *text = PyUnicode_New(64, 127);
    if (text != NULL) {
        Py_UCS1 *out = PyUnicode_1BYTE_DATA(text);
        for (int i = 0; i < 32; i++) {
            memcpy(out + 2 * i, hex_pairs[digest[i]], 2);
        }
    }
    return text;
}

static PyObject *
speedups_sha256_hex(PyObject *module, PyObject *args, PyObject *keywords)
{
    static char *names[] = {"data", "portable", NULL};
    Py_buffer view;
    int portable = 0;
    Sha256 state;
    if (!PyArg_ParseTupleAndKeywords(args, keywords, "y*|$p:sha256_hex", names, &view,
                                     &portable)) {
        return NULL;
    }
    sha256_start(&state, portable ? sha256_compress : fastest_compress);
    sha256_add(&state, view.buf, (size_t)view.len);
    PyBuffer_Release(&view);
    unsigned char digest[32];
    sha256_finish(&state, digest);
    return hex_string(digest);
}

/* ------------------------------------------------------------------ */
/* Header matching                                                      */
/* ------------------------------------------------------------------ */

/* Decode the UTF-8 character at ``*at`` of ``end`` and move past it, as
 * Python's strict decoder reads it: no overlong form, no surrogate, nothing
 * above U+10FFFF (the Unicode standard's table 3-7). Returns the character,
 * or -1 when the bytes there are not well formed. */
static inline int32_t
utf8_next(const unsigned char **at, const unsigned char *end)
{
    const unsigned char *p = *at;
    unsigned char lead = p[0];
    if (lead < 0x80) {
        *at = p + 1;
        return lead;
    }
    int32_t c;
    Py_ssize_t size;
    unsigned char low = 0x80, high = 0xBF;
    if (lead >= 0xC2 && lead <= 0xDF) {
        size = 2;
        c = lead & 0x1F;
    }
    else if (lead >= 0xE0 && lead <= 0xEF) {
        size = 3;
        c = lead & 0x0F;
        low = lead == 0xE0 ? 0xA0 : 0x80;
        high = lead == 0xED ? 0x9F : 0xBF;
    }
    else if (lead >= 0xF0 && lead <= 0xF4) {
        size = 4;
        c = lead & 0x07;
        low = lead == 0xF0 ? 0x90 : 0x80;
        high = lead == 0xF4 ? 0x8F : 0xBF;
    }
    else {
        return -1;
    }
    if (end - p < size || p[1] < low || p[1] > high) {
        return -1;
    }
    c = (c << 6) | (p[1] & 0x3F);
    for (Py_ssize_t i = 2; i < size; i++) {
        if ((p[i] & 0xC0) != 0x80) {
            return -1;
        }
        c = (c << 6) | (p[i] & 0x3F);
    }
    *at = p + size;
    return c;
}

/* The fields of header.HeaderShape. */
typedef struct {
    int bracketed;
    Py_UCS4 separator;
    int comma;
    int seconds;
    int twelve_hour;
    int year_first;
} Shape;

/* A string being read, with the accessors of its kind, or the bytes of
 * well-formed UTF-8 (``utf8`` set, ``kind`` 1), indexed by byte. */
typedef struct {
    int kind;
    const void *data;
    Py_ssize_t length;
    int utf8;
} Text;

#define CHAR_AT(text, index) PyUnicode_READ((text)->kind, (text)->data, (index))

/* Where the parts of a matched header are. */
typedef struct {
    Py_ssize_t date_start, date_end, clock_start, clock_end, end;
} Header;

static int
read_shape(PyObject *object, Shape *shape)
{
    PyObject *separator;
    if (!PyArg_ParseTuple(object, "pUpppp;shape must be a HeaderShape",
                          &shape->bracketed, &separator, &shape->comma,
                          &shape->seconds, &shape->twelve_hour, &shape->year_first)) {
        return -1;
    }
    if (PyUnicode_GET_LENGTH(separator) != 1) {
        PyErr_SetString(PyExc_ValueError, "the shape's separator must be one character");
        return -1;
    }
    shape->separator = PyUnicode_READ_CHAR(separator, 0);
    return 0;
}

static int
read_text(PyObject *object, Text *text)
{
    if (!PyUnicode_Check(object)) {
        PyErr_SetString(PyExc_TypeError, "text must be a str");
        return -1;
    }
    text->kind = PyUnicode_KIND(object);
    text->data = PyUnicode_DATA(object);
    text->length = PyUnicode_GET_LENGTH(object);
    text->utf8 = 0;
    return 0;
}

/* The spaces of header._SPACE: space, no-break space, narrow no-break space. */
static inline int
is_space(Py_UCS4 c)
{
    return c == ' ' || c == 0x00A0 || c == 0x202F;
}

/* The character at ``at``, and in ``*size`` the units it takes: one in a
 * string, one to four bytes in UTF-8. */
static inline Py_UCS4
char_and_size(const Text *text, Py_ssize_t at, Py_ssize_t *size)
{
    *size = 1;
    if (text->utf8 && ((const unsigned char *)text->data)[at] >= 0x80) {
        const unsigned char *start = (const unsigned char *)text->data + at, *next = start;
        int32_t c = utf8_next(&next, (const unsigned char *)text->data + text->length);
        if (c >= 0) {
            *size = next - start;
            return (Py_UCS4)c;
        }
        return 0xFFFD;
    }
    return CHAR_AT(text, at);
}

/* Units of the space of header._SPACE at ``at``, or 0 when there is none. */
static inline Py_ssize_t
space_at(const Text *text, Py_ssize_t at)
{
    Py_ssize_t size;
    if (at >= text->length || !is_space(char_and_size(text, at, &size))) {
        return 0;
    }
    return size;
}

static inline Py_ssize_t
ascii_digits(const Text *text, Py_ssize_t at)
{
    Py_ssize_t end = at;
    while (end < text->length) {
        Py_UCS4 c = CHAR_AT(text, end);
        if (c < '0' || c > '9') {
            break;
        }
        end++;
    }
    return end - at;
}

static inline Py_ssize_t
skip_spaces(const Text *text, Py_ssize_t at)
{
    Py_ssize_t size;
    while ((size = space_at(text, at)) > 0) {
        at += size;
    }
    return at;
}

static inline int
char_is(const Text *text, Py_ssize_t at, Py_UCS4 expected)
{
    return at < text->length && CHAR_AT(text, at) == expected;
}

/* Take a run of ASCII digits at ``*at`` whose length is from ``fewest`` to
 * ``most``, as a greedy ``[0-9]{fewest,most}`` followed by a non-digit
 * takes it. Returns 1 and moves ``*at`` past it, or 0. */
static inline int
take_digits(const Text *text, Py_ssize_t *at, Py_ssize_t fewest, Py_ssize_t most)
{
    Py_ssize_t count = ascii_digits(text, *at);
    if (count < fewest || count > most) {
        return 0;
    }
    *at += count;
    return 1;
}

/* Take one character at ``*at`` when it is ``first`` or ``second``. */
static inline int
take_char(const Text *text, Py_ssize_t *at, Py_UCS4 first, Py_UCS4 second)
{
    if (*at >= text->length) {
        return 0;
    }
    Py_ssize_t size;
    Py_UCS4 c = char_and_size(text, *at, &size);
    if (c != first && c != second) {
        return 0;
    }
    *at += size;
    return 1;
}

/* Match a header of ``shape`` at ``at`` along the regex's first path.
 * Returns 1 and fills ``found`` on a match, else 0. */
static int
match_header(const Text *text, Py_ssize_t at, const Shape *shape, Header *found)
{
    if (shape->bracketed && !take_char(text, &at, '[', '[')) {
        return 0;
    }

    found->date_start = at;
    Py_ssize_t first_fewest = shape->year_first ? 4 : 1;
    Py_ssize_t first_most = shape->year_first ? 4 : 3;
    if (!take_digits(text, &at, first_fewest, first_most)
        || !take_char(text, &at, shape->separator, shape->separator)
        || !take_digits(text, &at, 1, 2)
        || !take_char(text, &at, shape->separator, shape->separator)
        || !take_digits(text, &at, 1, 4)) {
        return 0;
    }
    found->date_end = at;
    if (char_is(text, at, '.')) {
        at++;
    }
    if (shape->comma && !take_char(text, &at, ',', 0x060C)) {
        return 0;
    }
    at = skip_spaces(text, at);

    found->clock_start = at;
    if (!take_digits(text, &at, 1, 2) || !take_char(text, &at, ':', '.')
        || !take_digits(text, &at, 2, 2)) {
        return 0;
    }
    if (shape->seconds
        && (!take_char(text, &at, ':', '.') || !take_digits(text, &at, 2, 2))) {
        return 0;
    }
    if (shape->twelve_hour) {
        at = skip_spaces(text, at);
        if (at >= text->length) {
            return 0;
        }
        Py_ssize_t size;
        Py_UCS4 c = char_and_size(text, at, &size);
        if (c == 'A' || c == 'a' || c == 'P' || c == 'p') {
            at++;
            if (char_is(text, at, '.')) {
                at++;
            }
            at += space_at(text, at);
            if (!take_char(text, &at, 'M', 'm')) {
                return 0;
            }
            if (char_is(text, at, '.')) {
                at++;
            }
        }
        else if (c == 0x0635 || c == 0x0645) {
            at += size;
        }
        else {
            return 0;
        }
    }
    found->clock_end = at;

    if (shape->bracketed) {
        if (!take_char(text, &at, ']', ']')) {
            return 0;
        }
    }
    else {
        at = skip_spaces(text, at);
        if (!take_char(text, &at, '-', 0x2013)) {
            return 0;
        }
    }
    at += space_at(text, at);
    found->end = at;
    return 1;
}

/* True when the line at ``at`` starts like a header of any shape: an
 * optional bracket, one to four decimal digits of any script and a date
 * separator. Every line that header.ANY_HEADER matches starts so. */
static int
may_start_header(const Text *text, Py_ssize_t at)
{
    if (char_is(text, at, '[')) {
        at++;
    }
    Py_ssize_t count = 0, size;
    while (at < text->length && count <= 4
           && Py_UNICODE_ISDECIMAL(char_and_size(text, at, &size))) {
        at += size;
        count++;
    }
    if (count < 1 || count > 4 || at >= text->length) {
        return 0;
    }
    Py_UCS4 c = CHAR_AT(text, at);
    return c == '/' || c == '.' || c == '-';
}

/* Index of the next LF at or after ``at``, or the length of the text. */
static inline Py_ssize_t
line_end(PyObject *string, const Text *text, Py_ssize_t at)
{
    if (at >= text->length) {
        return text->length;
    }
    if (text->kind == PyUnicode_1BYTE_KIND) {
        /* One byte per character, in a str or in UTF-8 bytes: ``string`` may
         * be NULL for the bytes. */
        const char *data = text->data;
        const char *found = memchr(data + at, '\n', (size_t)(text->length - at));
        return found == NULL ? text->length : found - data;
    }
    Py_ssize_t found = PyUnicode_FindChar(string, '\n', at, text->length, 1);
    return found < 0 ? text->length : found;
}

/* The sender name of bulk._SENDER after a header ending at ``at``: up to
 * 100 characters without colon, LF or quote, then a colon and a space.
 * Returns 1 with the name's end in ``name_end`` when it is there. */
static int
match_sender(const Text *text, Py_ssize_t at, Py_ssize_t *name_end)
{
    Py_ssize_t end = at;
    while (end < text->length && end - at < 100) {
        Py_UCS4 c = CHAR_AT(text, end);
        if (c == ':' || c == '\n' || c == '"' || c == 0x201C || c == 0x201D
            || c == 0x00AB || c == 0x00BB) {
            break;
        }
        end++;
    }
    if (end > at && end + 1 < text->length && CHAR_AT(text, end) == ':'
        && CHAR_AT(text, end + 1) == ' ') {
        *name_end = end;
        return 1;
    }
    return 0;
}

/* True when two spans of one text hold the same characters. */
static inline int
same_span(const Text *text, Py_ssize_t a, Py_ssize_t b, Py_ssize_t length)
{
    return memcmp((const char *)text->data + a * text->kind,
                  (const char *)text->data + b * text->kind, (size_t)(length * text->kind))
           == 0;
}

/* Add ``count`` to the count of the date at ``start`` in ``counts``. */
static int
add_date_count(PyObject *counts, const Text *text, Py_ssize_t start, Py_ssize_t end,
               Py_ssize_t count)
{
    PyObject *date = PyUnicode_FromKindAndData(
        text->kind, (const char *)text->data + start * text->kind, end - start);
    if (date == NULL) {
        return -1;
    }
    PyObject *seen = PyDict_GetItemWithError(counts, date);
    if (seen == NULL && PyErr_Occurred()) {
        Py_DECREF(date);
        return -1;
    }
    Py_ssize_t before = seen == NULL ? 0 : PyLong_AsSsize_t(seen);
    PyObject *total = PyLong_FromSsize_t(before + count);
    int failed = total == NULL || PyDict_SetItem(counts, date, total) < 0;
    Py_XDECREF(total);
    Py_DECREF(date);
    return failed ? -1 : 0;
}

/* Count the dates of the headers of ``shape`` that start a line of
 * ``text``, the first line only when ``first_line`` is true, and count the
 * LFs into ``*lines``. Returns the counts by date, None when a line starts
 * like a header that this matcher does not read, or NULL with an error. */
static PyObject *
count_header_dates(PyObject *string, const Text *text, const Shape *shape, int first_line,
                   Py_ssize_t *lines)
{
    PyObject *counts = PyDict_New();
    if (counts == NULL) {
        return NULL;
    }
    /* Consecutive headers mostly share their date: count a run of the same
     * date here and add it to the dictionary when the date changes. */
    Py_ssize_t run_start = -1, run_length = 0, run_count = 0;
    Py_ssize_t at = 0;
    int check = first_line;
    Header header;
    *lines = 0;
    while (at < text->length) {
        Py_ssize_t from = at;
        if (check && match_header(text, at, shape, &header)) {
            Py_ssize_t length = header.date_end - header.date_start;
            if (run_count > 0 && length == run_length
                && same_span(text, run_start, header.date_start, length)) {
                run_count++;
            }
            else {
                if (run_count > 0
                    && add_date_count(counts, text, run_start, run_start + run_length,
                                      run_count) < 0) {
                    goto error;
                }
                run_start = header.date_start;
                run_length = length;
                run_count = 1;
            }
            from = header.end;
        }
        else if (check && may_start_header(text, at)) {
            Py_DECREF(counts);
            Py_RETURN_NONE;
        }
        Py_ssize_t lf = line_end(string, text, from);
        if (lf >= text->length) {
            break;
        }
        *lines += 1;
        at = lf + 1;
        check = 1;
    }
    if (run_count > 0
        && add_date_count(counts, text, run_start, run_start + run_length, run_count) < 0) {
        goto error;
    }
    return counts;

error:
    Py_DECREF(counts);
    return NULL;
}

static PyObject *
speedups_count_dates(PyObject *module, PyObject *args)
{
    PyObject *string, *shape_object;
    Shape shape;
    Text text;

    if (!PyArg_ParseTuple(args, "UO:count_dates", &string, &shape_object)
        || read_shape(shape_object, &shape) < 0 || read_text(string, &text) < 0) {
        return NULL;
    }

    Py_ssize_t lines;
    return count_header_dates(string, &text, &shape, 0, &lines);
}

/* ------------------------------------------------------------------ */
/* First pass on undecoded UTF-8                                        */
/* ------------------------------------------------------------------ */

/* True when ``bytes`` are well-formed UTF-8 that contains none of ``marks``.
 * Runs of ASCII are skipped eight bytes at a time. */
static int
plain_utf8(const unsigned char *bytes, Py_ssize_t size, const Text *marks)
{
    const unsigned char *at = bytes, *end = bytes + size;
    while (at < end) {
        while (end - at >= 8) {
            uint64_t word;
            memcpy(&word, at, 8);
            if (word & UINT64_C(0x8080808080808080)) {
                break;
            }
            at += 8;
        }
        if (at == end) {
            break;
        }
        if (*at < 0x80) {
            at++;
            continue;
        }
        int32_t c = utf8_next(&at, end);
        if (c < 0) {
            return 0;
        }
        for (Py_ssize_t j = 0; j < marks->length; j++) {
            if ((Py_UCS4)c == CHAR_AT(marks, j)) {
                return 0;
            }
        }
    }
    return 1;
}

static PyObject *
speedups_scan_utf8(PyObject *module, PyObject *args)
{
    Py_buffer view;
    PyObject *shape_object, *marks_string;
    int after_lf;
    Shape shape;
    Text marks;

    if (!PyArg_ParseTuple(args, "y*OUp:scan_utf8", &view, &shape_object, &marks_string,
                          &after_lf)) {
        return NULL;
    }
    PyObject *counts = NULL, *result = NULL;
    if (read_shape(shape_object, &shape) < 0 || read_text(marks_string, &marks) < 0) {
        goto done;
    }
    const unsigned char *bytes = view.buf;
    Text text = {PyUnicode_1BYTE_KIND, view.buf, view.len, 1};
    if (memchr(bytes, '\r', (size_t)view.len) != NULL
        || !plain_utf8(bytes, view.len, &marks)) {
        result = Py_NewRef(Py_None);
        goto done;
    }
    /* The matcher reads the non-ASCII characters of a header, such as the
     * narrow no-break space before AM, from their UTF-8 bytes, and every
     * other character of a header is ASCII. So it matches the bytes where
     * count_dates matches the decoded text, with the same dates. */
    Py_ssize_t lines;
    counts = count_header_dates(NULL, &text, &shape, after_lf, &lines);
    if (counts == NULL || counts == Py_None) {
        result = counts;
        counts = NULL;
        goto done;
    }
    result = Py_BuildValue("(On)", counts, lines);

done:
    Py_XDECREF(counts);
    PyBuffer_Release(&view);
    return result;
}

static PyObject *
speedups_has_any(PyObject *module, PyObject *args)
{
    PyObject *string, *characters;
    Text text, sought;
    if (!PyArg_ParseTuple(args, "UU:has_any", &string, &characters)
        || read_text(string, &text) < 0 || read_text(characters, &sought) < 0) {
        return NULL;
    }
    /* Characters below the lowest sought one, which is all of most text,
     * are skipped in a loop specialised for the width of the text. */
    Py_UCS4 lowest = 0x10FFFF;
    for (Py_ssize_t j = 0; j < sought.length; j++) {
        Py_UCS4 c = CHAR_AT(&sought, j);
        lowest = c < lowest ? c : lowest;
    }
    Py_ssize_t i = 0;
    while (i < text.length) {
        if (text.kind == PyUnicode_1BYTE_KIND) {
            const Py_UCS1 *chars = text.data;
            while (i < text.length && chars[i] < lowest) {
                i++;
            }
        }
        else if (text.kind == PyUnicode_2BYTE_KIND) {
            const Py_UCS2 *chars = text.data;
            while (i < text.length && chars[i] < lowest) {
                i++;
            }
        }
        else {
            const Py_UCS4 *chars = text.data;
            while (i < text.length && chars[i] < lowest) {
                i++;
            }
        }
        if (i == text.length) {
            break;
        }
        Py_UCS4 c = CHAR_AT(&text, i);
        for (Py_ssize_t j = 0; j < sought.length; j++) {
            if (c == CHAR_AT(&sought, j)) {
                Py_RETURN_TRUE;
            }
        }
        i++;
    }
    Py_RETURN_FALSE;
}

/* Read two ASCII digits at ``at``, or return -1. */
static int
two_digits(const Text *text, Py_ssize_t at)
{
    if (at + 2 > text->length) {
        return -1;
    }
    Py_UCS4 tens = CHAR_AT(text, at), ones = CHAR_AT(text, at + 1);
    if (tens < '0' || tens > '9' || ones < '0' || ones > '9') {
        return -1;
    }
    return (int)(tens - '0') * 10 + (int)(ones - '0');
}

static PyObject *
speedups_plain_clock(PyObject *module, PyObject *arg)
{
    Text text;
    if (read_text(arg, &text) < 0) {
        return NULL;
    }
    /* H:MM, HH:MM, H:MM:SS or HH:MM:SS, with ":" or "." between the parts. */
    Py_ssize_t at = 0;
    int hour;
    if (text.length >= 1 && CHAR_AT(&text, 0) >= '0' && CHAR_AT(&text, 0) <= '9'
        && (text.length < 2 || CHAR_AT(&text, 1) == ':' || CHAR_AT(&text, 1) == '.')) {
        hour = (int)(CHAR_AT(&text, 0) - '0');
        at = 1;
    }
    else if ((hour = two_digits(&text, 0)) >= 0) {
        at = 2;
    }
    else {
        Py_RETURN_NONE;
    }
    int parts[2] = {0, 0};
    int count = 0;
    while (at < text.length && count < 2) {
        Py_UCS4 separator = CHAR_AT(&text, at);
        if ((separator != ':' && separator != '.')
            || (parts[count] = two_digits(&text, at + 1)) < 0) {
            Py_RETURN_NONE;
        }
        at += 3;
        count++;
    }
    if (count == 0 || at != text.length || hour > 23 || parts[0] > 59 || parts[1] > 59) {
        /* Not this plain form, or an invalid time: the regex path decides. */
        Py_RETURN_NONE;
    }
    PyObject *since_midnight = PyDelta_FromDSU(0, hour * 3600 + parts[0] * 60 + parts[1], 0);
    PyObject *iso = PyUnicode_FromFormat("%02d:%02d:%02d", hour, parts[0], parts[1]);
    PyObject *result = NULL;
    if (since_midnight != NULL && iso != NULL) {
        result = PyTuple_Pack(3, since_midnight, iso, Py_False);
    }
    Py_XDECREF(since_midnight);
    Py_XDECREF(iso);
    return result;
}

/* Append a new reference to ``list`` and drop it; -1 on error. */
static int
append_new(PyObject *list, PyObject *item)
{
    if (item == NULL) {
        return -1;
    }
    int result = PyList_Append(list, item);
    Py_DECREF(item);
    return result;
}

/* Sender names remembered by split_block. */
#define NAME_SPANS 8

/* A span of a text and the string made of it, to give again for an equal
 * span. */
typedef struct {
    Py_ssize_t start, length;
    PyObject *string;
} Span;

/* The characters from ``start`` to ``end`` as a new reference: the string of
 * ``last`` when it has the same characters, else a new one that ``last``
 * then keeps. */
static PyObject *
reuse_span(PyObject *string, const Text *text, Span *last, Py_ssize_t start, Py_ssize_t end)
{
    Py_ssize_t length = end - start;
    if (last->string != NULL && length == last->length
        && same_span(text, last->start, start, length)) {
        return Py_NewRef(last->string);
    }
    PyObject *part = PyUnicode_Substring(string, start, end);
    if (part != NULL) {
        Py_XSETREF(last->string, Py_NewRef(part));
        last->start = start;
        last->length = length;
    }
    return part;
}

static PyObject *
speedups_split_block(PyObject *module, PyObject *args)
{
    PyObject *string, *shape_object;
    Shape shape;
    Text text;
    Header header;

    if (!PyArg_ParseTuple(args, "UO:split_block", &string, &shape_object)
        || read_shape(shape_object, &shape) < 0 || read_text(string, &text) < 0) {
        return NULL;
    }

    PyObject *parts = PyList_New(0);
    if (parts == NULL) {
        return NULL;
    }
    /* End of the last header and sender matched, or -1 before the first. */
    Py_ssize_t previous = -1;
    /* The last date and time, given again to headers that repeat them, and
     * the last few sender names, which take turns. A name given again is
     * the same string object, whose hash is then known to the dictionaries
     * of senders. */
    Span last_date = {-1, 0, NULL}, last_clock = {-1, 0, NULL};
    Span names[NAME_SPANS];
    memset(names, 0, sizeof(names));
    int next_name = 0;
    Py_ssize_t at = 0;
    while (at < text.length) {
        if (match_header(&text, at, &shape, &header)) {
            PyObject *before;
            if (previous >= 0) {
                before = PyUnicode_Substring(string, previous, at - 1);
            }
            else if (at == 0) {
                before = PyUnicode_New(0, 0);
            }
            else {
                /* The text before the first header, with the LF that the
                 * pattern's split puts in front of the block. */
                PyObject *head = PyUnicode_Substring(string, 0, at - 1);
                PyObject *newline = PyUnicode_FromOrdinal('\n');
                before = (head && newline) ? PyUnicode_Concat(newline, head) : NULL;
                Py_XDECREF(head);
                Py_XDECREF(newline);
            }
            if (append_new(parts, before) < 0
                || append_new(parts, reuse_span(string, &text, &last_date, header.date_start,
                                                header.date_end)) < 0
                || append_new(parts, reuse_span(string, &text, &last_clock, header.clock_start,
                                                header.clock_end)) < 0) {
                goto error;
            }
            Py_ssize_t name_end;
            if (match_sender(&text, header.end, &name_end)) {
                Span *name = &names[next_name];
                for (int k = 0; k < NAME_SPANS; k++) {
                    if (names[k].string != NULL && names[k].length == name_end - header.end
                        && same_span(&text, names[k].start, header.end, names[k].length)) {
                        name = &names[k];
                        break;
                    }
                }
                if (name == &names[next_name]) {
                    next_name = (next_name + 1) % NAME_SPANS;
                }
                if (append_new(parts, reuse_span(string, &text, name, header.end, name_end)) < 0) {
                    goto error;
                }
                previous = name_end + 2;
            }
            else {
                if (PyList_Append(parts, Py_None) < 0) {
                    goto error;
                }
                previous = header.end;
            }
            at = line_end(string, &text, previous) + 1;
        }
        else if (may_start_header(&text, at)) {
            Py_DECREF(parts);
            parts = Py_NewRef(Py_None);
            goto done;
        }
        else {
            at = line_end(string, &text, at) + 1;
        }
    }
    if (previous < 0) {
        Py_DECREF(parts);
        parts = Py_NewRef(Py_None);
        goto done;
    }
    if (append_new(parts, PyUnicode_Substring(string, previous, text.length)) < 0) {
        goto error;
    }
    goto done;

error:
    Py_CLEAR(parts);
done:
    Py_XDECREF(last_date.string);
    Py_XDECREF(last_clock.string);
    for (int k = 0; k < NAME_SPANS; k++) {
        Py_XDECREF(names[k].string);
    }
    return parts;
}

/* ------------------------------------------------------------------ */
/* Messages                                                             */
/* ------------------------------------------------------------------ */

/* Names of the fields of ParsedMessage, in its order. */
static const char *const MESSAGE_FIELDS[] = {
    "timestamp", "sender", "sender_phone", "text", "kind", "system_event",
    "attachments", "is_deleted", "is_edited", "is_location", "key", "line_number",
};
#define MESSAGE_FIELD_COUNT 12

/* A frozenset of one-character strings, and maybe "", as a lookup table. */
typedef struct {
    unsigned char ascii[128];
    Py_UCS4 others[16];
    int other_count;
    int has_empty;
} CharSet;

/* The constants of one BulkReader, from the tuple it passes. */
typedef struct {
    PyObject *days, *clocks, *stamp, *sender, *build, *special_body;
    PyObject *sender_system_event, *short_notice_match, *notice_words;
    PyObject *notice_case_traps, *message_type, *media, *link;
    PyObject *set_objects[5];
    CharSet marker_last, short_notice_last, notice_first, notice_last, placeholder_last;
    Py_ssize_t short_notice_length, max_notice_length;
    PyObject *setters[MESSAGE_FIELD_COUNT];
    Py_ssize_t offsets[MESSAGE_FIELD_COUNT];
} Context;

static int
charset_read(PyObject *set, CharSet *table)
{
    memset(table, 0, sizeof(*table));
    if (!PyAnySet_Check(set)) {
        PyErr_SetString(PyExc_TypeError, "character sets must be frozensets");
        return -1;
    }
    Py_ssize_t position = 0;
    PyObject *item;
    Py_hash_t hash;
    while (_PySet_NextEntry(set, &position, &item, &hash)) {
        if (!PyUnicode_Check(item) || PyUnicode_GET_LENGTH(item) > 1) {
            PyErr_SetString(PyExc_TypeError,
                            "character sets must hold strings of one character or none");
            return -1;
        }
        if (PyUnicode_GET_LENGTH(item) == 0) {
            table->has_empty = 1;
            continue;
        }
        Py_UCS4 c = PyUnicode_READ_CHAR(item, 0);
        if (c < 128) {
            table->ascii[c] = 1;
        }
        else if (table->other_count < 16) {
            table->others[table->other_count++] = c;
        }
        else {
            PyErr_SetString(PyExc_ValueError, "a character set may contain at most 16 non-ASCII characters");
            return -1;
        }
    }
    return 0;
}

/* ``c in set``, with -1 standing for the empty string. */
static inline int
charset_has(const CharSet *table, Py_UCS4 c, int empty)
{
    if (empty) {
        return table->has_empty;
    }
    if (c < 128) {
        return table->ascii[c];
    }
    for (int i = 0; i < table->other_count; i++) {
        if (table->others[i] == c) {
            return 1;
        }
    }
    return 0;
}

typedef struct OccurrencesObject OccurrencesObject;

/* The per-pass state of BulkReader, read from the _Pass object. */
typedef struct {
    PyObject *senders;
    OccurrencesObject *occurrences;
} Window;

static PyObject *chat_kind, *empty_tuple, *newline_string, *unit_separator, *letter_t;
static PyObject *colon_space;

static void
context_clear(Context *context)
{
    for (int i = 0; i < MESSAGE_FIELD_COUNT; i++) {
        Py_CLEAR(context->setters[i]);
    }
}

static int
context_read(PyObject *tuple, Context *context)
{
    memset(context, 0, sizeof(*context));
    PyObject **sets = context->set_objects;
    if (!PyArg_ParseTuple(tuple,
                          "O!O!OOOOOOOOOOOO!UOnnO!O;context must be the tuple BulkReader builds",
                          &PyDict_Type, &context->days, &PyDict_Type, &context->clocks,
                          &context->stamp, &context->sender, &context->build,
                          &context->special_body, &context->sender_system_event,
                          &context->short_notice_match, &sets[0], &sets[1], &sets[2],
                          &sets[3], &sets[4], &PyTuple_Type, &context->notice_words,
                          &context->notice_case_traps, &context->message_type,
                          &context->short_notice_length,
                          &context->max_notice_length, &PyDict_Type, &context->media,
                          &context->link)) {
        return -1;
    }
    CharSet *tables[5] = {
        &context->marker_last, &context->short_notice_last, &context->notice_first,
        &context->notice_last, &context->placeholder_last,
    };
    for (int i = 0; i < 5; i++) {
        if (charset_read(sets[i], tables[i]) < 0) {
            return -1;
        }
    }
    if (!PyType_Check(context->message_type)) {
        PyErr_SetString(PyExc_TypeError, "the message type must be a class");
        return -1;
    }
    for (int i = 0; i < MESSAGE_FIELD_COUNT; i++) {
        PyObject *setter = PyObject_GetAttrString(context->message_type, MESSAGE_FIELDS[i]);
        if (setter == NULL) {
            context_clear(context);
            return -1;
        }
        context->setters[i] = setter;
        /* A slot of a class with __slots__ is a member descriptor of an
         * object field at a fixed offset in the instance. */
        PyMemberDef *member = Py_IS_TYPE(setter, &PyMemberDescr_Type)
                                  ? ((PyMemberDescrObject *)setter)->d_member
                                  : NULL;
        if (member == NULL || member->type != T_OBJECT_EX || (member->flags & READONLY)) {
            PyErr_Format(PyExc_TypeError, "field %s of the message type is not a slot",
                         MESSAGE_FIELDS[i]);
            context_clear(context);
            return -1;
        }
        context->offsets[i] = member->offset;
    }
    return 0;
}

/* str.rstrip() without arguments. */
static PyObject *
strip_end(PyObject *string)
{
    Py_ssize_t length = PyUnicode_GET_LENGTH(string);
    int kind = PyUnicode_KIND(string);
    const void *data = PyUnicode_DATA(string);
    Py_ssize_t end = length;
    while (end > 0 && Py_UNICODE_ISSPACE(PyUnicode_READ(kind, data, end - 1))) {
        end--;
    }
    if (end == length) {
        return Py_NewRef(string);
    }
    return PyUnicode_Substring(string, 0, end);
}

/* "\n".join(part.rstrip() for part in piece.split("\n")).rstrip() */
static PyObject *
strip_lines(PyObject *piece)
{
    PyObject *lines = PyUnicode_Split(piece, newline_string, -1);
    if (lines == NULL) {
        return NULL;
    }
    Py_ssize_t count = PyList_GET_SIZE(lines);
    for (Py_ssize_t i = 0; i < count; i++) {
        PyObject *stripped = strip_end(PyList_GET_ITEM(lines, i));
        if (stripped == NULL) {
            Py_DECREF(lines);
            return NULL;
        }
        PyList_SetItem(lines, i, stripped);
    }
    PyObject *joined = PyUnicode_Join(newline_string, lines);
    Py_DECREF(lines);
    if (joined == NULL) {
        return NULL;
    }
    PyObject *body = strip_end(joined);
    Py_DECREF(joined);
    return body;
}

static inline int
has_char(PyObject *string, Py_UCS4 expected)
{
    return PyUnicode_FindChar(string, expected, 0, PyUnicode_GET_LENGTH(string), 1) >= 0;
}

/* Concatenate ``count`` strings into one new string, as "".join would,
 * without the tuple that PyUnicode_Join needs. */
static PyObject *
concat(Py_ssize_t count, PyObject **items)
{
    Py_ssize_t length = 0;
    Py_UCS4 widest = 0;
    for (Py_ssize_t i = 0; i < count; i++) {
        length += PyUnicode_GET_LENGTH(items[i]);
        Py_UCS4 widest_here = PyUnicode_MAX_CHAR_VALUE(items[i]);
        if (widest_here > widest) {
            widest = widest_here;
        }
    }
    PyObject *joined = PyUnicode_New(length, widest);
    if (joined == NULL) {
        return NULL;
    }
    int kind = PyUnicode_KIND(joined);
    char *data = PyUnicode_DATA(joined);
    Py_ssize_t at = 0;
    for (Py_ssize_t i = 0; i < count; i++) {
        Py_ssize_t size = PyUnicode_GET_LENGTH(items[i]);
        if (PyUnicode_KIND(items[i]) == kind) {
            memcpy(data + at * kind, PyUnicode_DATA(items[i]), (size_t)(size * kind));
        }
        else if (PyUnicode_CopyCharacters(joined, at, items[i], 0, size) < 0) {
            Py_DECREF(joined);
            return NULL;
        }
        at += size;
    }
    return joined;
}

/* Call ``build(number, stamp, iso, text, state)``. */
static PyObject *
call_build(const Context *context, Py_ssize_t number, PyObject *stamp, PyObject *iso,
           PyObject *text, PyObject *state)
{
    PyObject *line = PyLong_FromSsize_t(number);
    if (line == NULL) {
        return NULL;
    }
    PyObject *message = PyObject_CallFunctionObjArgs(context->build, line, stamp, iso, text,
                                                     state, NULL);
    Py_DECREF(line);
    return message;
}

/* Encode the characters of a string of one kind as UTF-8 into ``buffer``,
 * adding it to the hash whenever it fills. A lone surrogate makes the
 * caller raise the error that str.encode() raises. */
#define HASH_UTF8(TYPE)                                                            \
    do {                                                                           \
        const TYPE *chars = data;                                                  \
        for (Py_ssize_t i = 0; i < length; i++) {                                  \
            Py_UCS4 c = chars[i];                                                  \
            if (used > sizeof(buffer) - 4) {                                       \
                sha256_add(state, buffer, used);                                   \
                used = 0;                                                          \
            }                                                                      \
            if (c < 0x80) {                                                        \
                buffer[used++] = (unsigned char)c;                                 \
            }                                                                      \
            else if (c < 0x800) {                                                  \
                buffer[used++] = (unsigned char)(0xC0 | (c >> 6));                 \
                buffer[used++] = (unsigned char)(0x80 | (c & 0x3F));               \
            }                                                                      \
            else if (c < 0x10000) {                                                \
                if (c >= 0xD800 && c <= 0xDFFF) {                                  \
                    surrogate = 1;                                                 \
                    break;                                                         \
                }                                                                  \
                buffer[used++] = (unsigned char)(0xE0 | (c >> 12));                \
                buffer[used++] = (unsigned char)(0x80 | ((c >> 6) & 0x3F));        \
                buffer[used++] = (unsigned char)(0x80 | (c & 0x3F));               \
            }                                                                      \
            else {                                                                 \
                buffer[used++] = (unsigned char)(0xF0 | (c >> 18));                \
                buffer[used++] = (unsigned char)(0x80 | ((c >> 12) & 0x3F));       \
                buffer[used++] = (unsigned char)(0x80 | ((c >> 6) & 0x3F));        \
                buffer[used++] = (unsigned char)(0x80 | (c & 0x3F));               \
            }                                                                      \
        }                                                                          \
    } while (0)

/* Add the UTF-8 bytes of a string to a hash. Returns -1 with Python's
 * error set for a lone surrogate, which UTF-8 cannot encode. */
static int
sha256_add_string(Sha256 *state, PyObject *string)
{
    Py_ssize_t length = PyUnicode_GET_LENGTH(string);
    if (PyUnicode_IS_ASCII(string)) {
        sha256_add(state, PyUnicode_1BYTE_DATA(string), (size_t)length);
        return 0;
    }
    const void *data = PyUnicode_DATA(string);
    unsigned char buffer[256];
    size_t used = 0;
    int surrogate = 0;
    switch (PyUnicode_KIND(string)) {
    case PyUnicode_1BYTE_KIND:
        HASH_UTF8(Py_UCS1);
        break;
    case PyUnicode_2BYTE_KIND:
        HASH_UTF8(Py_UCS2);
        break;
    default:
        HASH_UTF8(Py_UCS4);
        break;
    }
    if (surrogate) {
        /* Raise the error that str.encode() raises. */
        return PyUnicode_AsUTF8AndSize(string, NULL) == NULL ? -1 : 0;
    }
    sha256_add(state, buffer, used);
    return 0;
}

/* Add U+001F and the occurrence index in decimal to the hash of a key
 * material, as parser.message_key does before it finishes the hash. */
static void
add_index(Sha256 *state, Py_ssize_t index)
{
    unsigned char tail[24];
    size_t tail_size = 0;
    char digits[20];
    int count = 0;
    do {
        digits[count++] = (char)('0' + index % 10);
        index /= 10;
    } while (index > 0 && count < 20);
    tail[tail_size++] = 0x1f;
    while (count > 0) {
        tail[tail_size++] = (unsigned char)digits[--count];
    }
    sha256_add(state, tail, tail_size);
}

/* The key of the first occurrence of a key material, whose hash is in
 * ``state``: SHA-256 of the material, U+001F and "0". Its first bytes tell
 * materials apart in Occurrences, so the usual message, the first of its
 * kind, needs one SHA-256 for both. */
static void
first_key(const Sha256 *state, unsigned char out[32])
{
    Sha256 copy = *state;
    add_index(&copy, 0);
    sha256_finish(&copy, out);
}

/* The message key, in hex, of the occurrence ``index`` of a key material
 * whose hash is in ``state``. ``first`` is its first_key. */
static PyObject *
key_hex(Sha256 *state, Py_ssize_t index, const unsigned char first[32])
{
    if (index == 0) {
        return hex_string(first);
    }
    unsigned char digest[32];
    add_index(state, index);
    sha256_finish(state, digest);
    return hex_string(digest);
}

/* ------------------------------------------------------------------ */
/* Occurrences                                                          */
/* ------------------------------------------------------------------ */

/* Bytes of a key material's first_key kept to tell materials apart. Two
 * different materials share them with a chance of about 2**-128. */
#define DIGEST_SIZE 16

/* A key material seen at a timestamp, and how many times. */
typedef struct {
    unsigned char digest[DIGEST_SIZE];
    Py_ssize_t count;
} Seen;

/* The materials seen at one timestamp: usually one, the others in ``more``. */
typedef struct {
    int64_t stamp;
    Py_ssize_t number; /* insertion number of the timestamp, 0 for a free slot */
    Seen first;
    Seen *more;
    Py_ssize_t more_count, more_room;
} Slot;

/* bulk.Occurrences with the same counts, in an open-addressing table keyed by
 * the timestamp. Entries that left the window are dropped when the table
 * is rebuilt, which, as bulk.Occurrences.purge does, only frees memory. */
struct OccurrencesObject {
    PyObject_HEAD
    Slot *slots;
    Py_ssize_t capacity; /* a power of two */
    Slot *spare;         /* the table before the last rebuild, to reuse */
    Py_ssize_t spare_capacity;
    Py_ssize_t used;
    Py_ssize_t inserted;
    Py_ssize_t window;
};

static PyTypeObject OccurrencesType;

#define MIN_CAPACITY 16

/* An integer that identifies a naive datetime: its fields in mixed radix. */
static int
stamp_key(PyObject *stamp, int64_t *key)
{
    if (!PyDateTime_Check(stamp)) {
        PyErr_SetString(PyExc_TypeError, "an occurrence timestamp must be a datetime");
        return -1;
    }
    if (((PyDateTime_DateTime *)stamp)->hastzinfo
        && ((PyDateTime_DateTime *)stamp)->tzinfo != Py_None) {
        PyErr_SetString(PyExc_ValueError, "an occurrence timestamp must be naive");
        return -1;
    }
    int64_t value = PyDateTime_GET_YEAR(stamp);
    value = value * 13 + PyDateTime_GET_MONTH(stamp);
    value = value * 32 + PyDateTime_GET_DAY(stamp);
    value = value * 24 + PyDateTime_DATE_GET_HOUR(stamp);
    value = value * 60 + PyDateTime_DATE_GET_MINUTE(stamp);
    value = value * 60 + PyDateTime_DATE_GET_SECOND(stamp);
    *key = value * 1000000 + PyDateTime_DATE_GET_MICROSECOND(stamp);
    return 0;
}

static Slot *
slot_for(Slot *slots, Py_ssize_t capacity, int64_t stamp)
{
    size_t mask = (size_t)capacity - 1;
    size_t at = (size_t)(((uint64_t)stamp * 0x9E3779B97F4A7C15ULL) >> 32) & mask;
    while (slots[at].number != 0 && slots[at].stamp != stamp) {
        at = (at + 1) & mask;
    }
    return &slots[at];
}

/* Rebuild the table without the timestamps that left the window, with at
 * least four slots per timestamp left in it. */
static int
occurrences_rebuild(OccurrencesObject *self)
{
    Py_ssize_t oldest = self->inserted - self->window;
    Py_ssize_t live = 0;
    for (Py_ssize_t i = 0; i < self->capacity; i++) {
        live += self->slots[i].number > oldest;
    }
    Py_ssize_t capacity = MIN_CAPACITY;
    while (capacity < 4 * live) {
        capacity *= 2;
    }
    /* The table before the last rebuild usually has the size needed: clear
     * it rather than ask the system for fresh pages. */
    Slot *slots;
    if (self->spare != NULL && self->spare_capacity == capacity) {
        slots = self->spare;
        memset(slots, 0, (size_t)capacity * sizeof(Slot));
    }
    else {
        PyMem_Free(self->spare);
        slots = PyMem_Calloc((size_t)capacity, sizeof(Slot));
        if (slots == NULL) {
            self->spare = NULL;
            PyErr_NoMemory();
            return -1;
        }
    }
    self->spare = NULL;
    for (Py_ssize_t i = 0; i < self->capacity; i++) {
        Slot *old = &self->slots[i];
        if (old->number > oldest) {
            *slot_for(slots, capacity, old->stamp) = *old;
        }
        else {
            PyMem_Free(old->more);
        }
    }
    self->spare = self->slots;
    self->spare_capacity = self->capacity;
    self->slots = slots;
    self->capacity = capacity;
    self->used = live;
    return 0;
}

/* Occurrences.index: count a message and return how many identical messages
 * of the same timestamp came before it within the window. */
static Py_ssize_t
occurrences_count(OccurrencesObject *self, int64_t stamp,
                  const unsigned char digest[DIGEST_SIZE])
{
    Slot *slot = slot_for(self->slots, self->capacity, stamp);
    if (slot->number != 0 && slot->number > self->inserted - self->window) {
        if (memcmp(slot->first.digest, digest, DIGEST_SIZE) == 0) {
            return slot->first.count++;
        }
        for (Py_ssize_t i = 0; i < slot->more_count; i++) {
            if (memcmp(slot->more[i].digest, digest, DIGEST_SIZE) == 0) {
                return slot->more[i].count++;
            }
        }
        if (slot->more_count == slot->more_room) {
            Py_ssize_t room = slot->more_room ? 2 * slot->more_room : 4;
            Seen *more = PyMem_Realloc(slot->more, (size_t)room * sizeof(Seen));
            if (more == NULL) {
                PyErr_NoMemory();
                return -1;
            }
            slot->more = more;
            slot->more_room = room;
        }
        Seen *seen = &slot->more[slot->more_count++];
        memcpy(seen->digest, digest, DIGEST_SIZE);
        seen->count = 1;
        return 0;
    }

    /* A timestamp not in the window starts a new entry. */
    if (slot->number == 0) {
        self->used++;
    }
    self->inserted++;
    slot->stamp = stamp;
    slot->number = self->inserted;
    memcpy(slot->first.digest, digest, DIGEST_SIZE);
    slot->first.count = 1;
    slot->more_count = 0;
    if (2 * self->used > self->capacity && occurrences_rebuild(self) < 0) {
        return -1;
    }
    return 0;
}

static PyObject *
occurrences_new(PyTypeObject *type, PyObject *args, PyObject *keywords)
{
    static char *names[] = {"window", NULL};
    Py_ssize_t window;
    if (!PyArg_ParseTupleAndKeywords(args, keywords, "n:Occurrences", names, &window)) {
        return NULL;
    }
    if (window < 1) {
        PyErr_Format(PyExc_ValueError, "the window must be 1 or more timestamps, not %zd",
                     window);
        return NULL;
    }
    OccurrencesObject *self = (OccurrencesObject *)type->tp_alloc(type, 0);
    if (self == NULL) {
        return NULL;
    }
    self->slots = PyMem_Calloc(MIN_CAPACITY, sizeof(Slot));
    if (self->slots == NULL) {
        Py_DECREF(self);
        return PyErr_NoMemory();
    }
    self->capacity = MIN_CAPACITY;
    self->window = window;
    return (PyObject *)self;
}

static void
occurrences_dealloc(OccurrencesObject *self)
{
    if (self->slots != NULL) {
        for (Py_ssize_t i = 0; i < self->capacity; i++) {
            PyMem_Free(self->slots[i].more);
        }
        PyMem_Free(self->slots);
    }
    PyMem_Free(self->spare);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

/* The first DIGEST_SIZE bytes of the SHA-256 of a string's UTF-8 bytes. */
static int
material_digest(PyObject *material, unsigned char digest[DIGEST_SIZE])
{
    if (!PyUnicode_Check(material)) {
        PyErr_SetString(PyExc_TypeError, "the key material must be a str");
        return -1;
    }
    Sha256 state;
    unsigned char full[32];
    sha256_start(&state, fastest_compress);
    if (sha256_add_string(&state, material) < 0) {
        return -1;
    }
    first_key(&state, full);
    memcpy(digest, full, DIGEST_SIZE);
    return 0;
}

static PyObject *
occurrences_index(OccurrencesObject *self, PyObject *args)
{
    PyObject *stamp, *material;
    int64_t key;
    unsigned char digest[DIGEST_SIZE];
    if (!PyArg_ParseTuple(args, "OO:index", &stamp, &material) || stamp_key(stamp, &key) < 0
        || material_digest(material, digest) < 0) {
        return NULL;
    }
    Py_ssize_t index = occurrences_count(self, key, digest);
    return index < 0 ? NULL : PyLong_FromSsize_t(index);
}

static PyMethodDef occurrences_methods[] = {
    {"index", (PyCFunction)occurrences_index, METH_VARARGS,
     "index(timestamp, material) -> int\n\n"
     "Count a message and return how many messages with the same timestamp\n"
     "and key material came before it, among the timestamps of the window."},
    {NULL, NULL, 0, NULL},
};

static PyTypeObject OccurrencesType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "wallie.whatsapp._speedups.Occurrences",
    .tp_basicsize = sizeof(OccurrencesObject),
    .tp_dealloc = (destructor)occurrences_dealloc,
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_doc = "Occurrences(window)\n\n"
              "The counts of bulk.Occurrences, kept in C. Materials are told apart\n"
              "by the first 16 bytes of the key of their first occurrence.",
    .tp_methods = occurrences_methods,
    .tp_new = occurrences_new,
};

/* A ParsedMessage of a plain chat message. Its fields hold strings,
 * numbers, a datetime, None, False and the empty tuple, none of which can
 * lead back to it, so the message is left out of the cyclic garbage
 * collector, as CPython leaves out tuples of such values. Tracking it cost
 * a tenth of the loop's time in collections that could find nothing. */
static PyObject *
new_message(const Context *context, PyObject *values[MESSAGE_FIELD_COUNT])
{
    PyTypeObject *type = (PyTypeObject *)context->message_type;
    PyObject *message = type->tp_alloc(type, 0);
    if (message == NULL) {
        return NULL;
    }
    if (PyObject_GC_IsTracked(message)) {
        PyObject_GC_UnTrack(message);
    }
    /* Fill the slots as their descriptors would, without the call: the
     * fresh object's slots are all NULL. */
    for (int i = 0; i < MESSAGE_FIELD_COUNT; i++) {
        *(PyObject **)((char *)message + context->offsets[i]) = Py_NewRef(values[i]);
    }
    return message;
}

/* What the guards of BulkReader._messages look for in a body, gathered in
 * one pass over it. */
typedef struct {
    Py_UCS4 first, last; /* 0 for an empty body */
    int empty;
    Py_ssize_t length;
    int newline;  /* "\n" in body */
    int http;     /* ": http" in body */
    int g;        /* "g" in body or "G" in body */
    int d_space;  /* "d " in body or "D " in body */
} Ends;

/* The ASCII characters that ends_of looks at. One table lookup rules out
 * every other character, which is most of a body. */
static const unsigned char BODY_MARKS[128] = {
    ['\n'] = 1, [':'] = 1, ['g'] = 1, ['G'] = 1, ['d'] = 1, ['D'] = 1,
};

#define SCAN_BODY(TYPE)                                                            \
    do {                                                                           \
        const TYPE *c = data;                                                      \
        for (Py_ssize_t i = 0; i < n; i++) {                                       \
            if (c[i] >= 128 || !BODY_MARKS[c[i]]) {                                \
                continue;                                                          \
            }                                                                      \
            switch (c[i]) {                                                        \
            case '\n':                                                             \
                ends.newline = 1;                                                  \
                break;                                                             \
            case ':':                                                              \
                if (i + 5 < n && c[i + 1] == ' ' && c[i + 2] == 'h' && c[i + 3] == 't' \
                    && c[i + 4] == 't' && c[i + 5] == 'p') {                       \
                    ends.http = 1;                                                 \
                }                                                                  \
                break;                                                             \
            case 'g':                                                              \
            case 'G':                                                              \
                ends.g = 1;                                                        \
                break;                                                             \
            case 'd':                                                              \
            case 'D':                                                              \
                if (i + 1 < n && c[i + 1] == ' ') {                                \
                    ends.d_space = 1;                                              \
                }                                                                  \
                break;                                                             \
            default:                                                               \
                break;                                                             \
            }                                                                      \
        }                                                                          \
    } while (0)

static Ends
ends_of(PyObject *body)
{
    Ends ends;
    memset(&ends, 0, sizeof(ends));
    Py_ssize_t n = ends.length = PyUnicode_GET_LENGTH(body);
    ends.empty = n == 0;
    if (ends.empty) {
        return ends;
    }
    ends.first = PyUnicode_READ_CHAR(body, 0);
    ends.last = PyUnicode_READ_CHAR(body, n - 1);
    const void *data = PyUnicode_DATA(body);
    switch (PyUnicode_KIND(body)) {
    case PyUnicode_1BYTE_KIND:
        SCAN_BODY(Py_UCS1);
        break;
    case PyUnicode_2BYTE_KIND:
        SCAN_BODY(Py_UCS2);
        break;
    default:
        SCAN_BODY(Py_UCS4);
        break;
    }
    return ends;
}

/* The guard of BulkReader._messages before special_body: True when the
 * body may be a media placeholder, a marker or a location. */
static int
may_be_special(const Context *context, PyObject *body, const Ends *ends)
{
    if (ends->newline || charset_has(&context->marker_last, ends->last, ends->empty)) {
        return 1;
    }
    if (ends->length < context->short_notice_length
        && charset_has(&context->short_notice_last, ends->last, ends->empty)) {
        return 1;
    }
    return ends->http;
}

/* Call ``check(body)`` and return 1 when it gives something other than None. */
static int
check_body(PyObject *check, PyObject *body)
{
    PyObject *result = PyObject_CallOneArg(check, body);
    if (result == NULL) {
        return -1;
    }
    int found = result != Py_None;
    Py_DECREF(result);
    return found;
}

/* special_body(body) is not None, for a body of one line that passed
 * may_be_special: what patterns.special_body tests after its own guard,
 * which that one implies. */
static int
is_special_line(const Context *context, PyObject *body, const Ends *ends)
{
    if (ends->empty || ends->last == '>'
        || charset_has(&context->placeholder_last, ends->last, 0)) {
        return 1;
    }
    if (ends->http) {
        return 1;
    }
    if (ends->length >= context->short_notice_length) {
        return 0;
    }
    return check_body(context->short_notice_match, body);
}

/* The guard of BulkReader._messages before sender_system_event: True when
 * the body may be a notice that a sender wrote. */
static int
may_be_notice(const Context *context, PyObject *body, const Ends *ends)
{
    if (charset_has(&context->notice_first, ends->first, ends->empty)
        || charset_has(&context->notice_last, ends->last, ends->empty)) {
        return 1;
    }
    return ends->g && ends->d_space;
}

/* The checks of patterns.sender_system_event before its pattern, for a body
 * that passed may_be_notice: False when it cannot name an event. */
static int
may_name_event(const Context *context, PyObject *body, const Ends *ends)
{
    if (ends->newline || ends->length > context->max_notice_length) {
        return 0;
    }
    Py_ssize_t traps = PyUnicode_GET_LENGTH(context->notice_case_traps);
    if (!PyUnicode_IS_ASCII(body)) {
        for (Py_ssize_t i = 0; i < traps; i++) {
            if (has_char(body, PyUnicode_READ_CHAR(context->notice_case_traps, i))) {
                return 1;
            }
        }
    }
    PyObject *lowered = PyObject_CallMethod(body, "lower", NULL);
    if (lowered == NULL) {
        return -1;
    }
    int found = 0;
    Py_ssize_t words = PyTuple_GET_SIZE(context->notice_words);
    for (Py_ssize_t i = 0; i < words && found == 0; i++) {
        found = PyUnicode_Contains(lowered, PyTuple_GET_ITEM(context->notice_words, i));
    }
    Py_DECREF(lowered);
    return found;
}

/* The fields a patterns.Body gives a message: its text, its attachments
 * (linked to the zip's media files when the export has any), and its three
 * flags, as ParsedExport._build takes them. Returns 0, or -1 with an error. */
typedef struct {
    PyObject *text, *attachments, *is_deleted, *is_edited, *is_location;
} BodyFields;

static void
body_fields_clear(BodyFields *fields)
{
    Py_CLEAR(fields->text);
    Py_CLEAR(fields->attachments);
    Py_CLEAR(fields->is_deleted);
    Py_CLEAR(fields->is_edited);
    Py_CLEAR(fields->is_location);
}

static int
body_fields_read(const Context *context, PyObject *read, BodyFields *fields)
{
    fields->text = PyObject_GetAttrString(read, "text");
    fields->attachments = PyObject_GetAttrString(read, "attachments");
    fields->is_deleted = PyObject_GetAttrString(read, "is_deleted");
    fields->is_edited = PyObject_GetAttrString(read, "is_edited");
    fields->is_location = PyObject_GetAttrString(read, "is_location");
    if (fields->text == NULL || fields->attachments == NULL || fields->is_deleted == NULL
        || fields->is_edited == NULL || fields->is_location == NULL) {
        return -1;
    }
    if (!PyTuple_Check(fields->attachments)) {
        PyErr_SetString(PyExc_TypeError, "the attachments of a body must be a tuple");
        return -1;
    }
    Py_ssize_t count = PyTuple_GET_SIZE(fields->attachments);
    if (count == 0 || PyDict_GET_SIZE(context->media) == 0) {
        return 0;
    }
    PyObject *linked = PyTuple_New(count);
    if (linked == NULL) {
        return -1;
    }
    for (Py_ssize_t i = 0; i < count; i++) {
        PyObject *item = PyObject_CallOneArg(context->link,
                                             PyTuple_GET_ITEM(fields->attachments, i));
        if (item == NULL) {
            Py_DECREF(linked);
            return -1;
        }
        PyTuple_SET_ITEM(linked, i, item);
    }
    Py_SETREF(fields->attachments, linked);
    return 0;
}

static int
read_window(PyObject *state, Window *window)
{
    memset(window, 0, sizeof(*window));
    window->senders = PyObject_GetAttrString(state, "senders");
    if (window->senders == NULL) {
        return -1;
    }
    if (!PyDict_Check(window->senders)) {
        PyErr_SetString(PyExc_TypeError, "the senders of the pass must be a dictionary");
        return -1;
    }
    PyObject *occurrences = PyObject_GetAttrString(state, "occurrences");
    if (occurrences == NULL) {
        return -1;
    }
    if (!PyObject_TypeCheck(occurrences, &OccurrencesType)) {
        Py_DECREF(occurrences);
        PyErr_SetString(PyExc_TypeError,
                        "the occurrences of the pass must be a _speedups.Occurrences");
        return -1;
    }
    window->occurrences = (OccurrencesObject *)occurrences;
    return 0;
}

static void
window_clear(Window *window)
{
    Py_CLEAR(window->senders);
    Py_CLEAR(window->occurrences);
}

/* The day and clock of the previous header, which the next header often
 * repeats. */
typedef struct {
    PyObject *date_text, *day, *clock_text, *clock;
} Memo;

static void
memo_clear(Memo *memo)
{
    Py_CLEAR(memo->date_text);
    Py_CLEAR(memo->day);
    Py_CLEAR(memo->clock_text);
    Py_CLEAR(memo->clock);
}

/* True when two strings hold the same characters. Both come from one
 * block, so equal strings have the same kind. */
static inline int
same_text(PyObject *a, PyObject *b)
{
    if (a == b) {
        return 1;
    }
    if (b == NULL || !PyUnicode_Check(a) || PyUnicode_GET_LENGTH(a) != PyUnicode_GET_LENGTH(b)
        || PyUnicode_KIND(a) != PyUnicode_KIND(b)) {
        return 0;
    }
    return memcmp(PyUnicode_DATA(a), PyUnicode_DATA(b),
                  (size_t)(PyUnicode_GET_LENGTH(a) * PyUnicode_KIND(a))) == 0;
}

/* Look up a day and a clock in their caches, calling stamp() on a miss as
 * BulkReader._messages does. Returns 1 with new references, 0 when the date
 * or time is invalid, -1 on error. */
static int
stamp_parts(const Context *context, Memo *memo, PyObject *date_text, PyObject *clock_text,
            PyObject **day, PyObject **clock)
{
    /* Consecutive headers mostly share their date, and sometimes their time. */
    *day = same_text(date_text, memo->date_text) ? memo->day : NULL;
    *clock = same_text(clock_text, memo->clock_text) ? memo->clock : NULL;
    if (*day == NULL) {
        *day = PyDict_GetItemWithError(context->days, date_text);
        if (*day == NULL && PyErr_Occurred()) {
            return -1;
        }
    }
    if (*clock == NULL) {
        *clock = PyDict_GetItemWithError(context->clocks, clock_text);
        if (*clock == NULL && PyErr_Occurred()) {
            return -1;
        }
    }
    if (*day == NULL || *clock == NULL || *day == Py_None || *clock == Py_None) {
        PyObject *found = PyObject_CallFunctionObjArgs(context->stamp, date_text, clock_text,
                                                       NULL);
        if (found == NULL) {
            return -1;
        }
        int invalid = found == Py_None;
        Py_DECREF(found);
        if (invalid) {
            return 0;
        }
        *day = PyDict_GetItemWithError(context->days, date_text);
        *clock = PyDict_GetItemWithError(context->clocks, clock_text);
        if (*day == NULL || *clock == NULL) {
            if (!PyErr_Occurred()) {
                PyErr_SetString(PyExc_RuntimeError, "stamp() did not fill its caches");
            }
            return -1;
        }
    }
    if (!PyTuple_Check(*day) || PyTuple_GET_SIZE(*day) != 2 || !PyTuple_Check(*clock)
        || PyTuple_GET_SIZE(*clock) != 3) {
        PyErr_SetString(PyExc_TypeError, "the day and clock caches must hold tuples");
        return -1;
    }
    Py_INCREF(*day);
    Py_INCREF(*clock);
    if (*day != memo->day) {
        Py_XSETREF(memo->date_text, Py_NewRef(date_text));
        Py_XSETREF(memo->day, Py_NewRef(*day));
    }
    if (*clock != memo->clock) {
        Py_XSETREF(memo->clock_text, Py_NewRef(clock_text));
        Py_XSETREF(memo->clock, Py_NewRef(*clock));
    }
    return 1;
}

/* The ISO timestamp of a header, as BulkReader builds it. */
static PyObject *
iso_of(PyObject *day, PyObject *clock)
{
    PyObject *parts[3] = {PyTuple_GET_ITEM(day, 1), letter_t, PyTuple_GET_ITEM(clock, 1)};
    return concat(3, parts);
}

static PyObject *
speedups_bulk_messages(PyObject *module, PyObject *args)
{
    PyObject *parts, *state, *context_tuple;
    Py_ssize_t line;
    Context context;
    Window window;
    Memo memo = {NULL, NULL, NULL, NULL};
    /* The timestamp of the previous message, its key in the occurrence
     * table, and the cached day and clock it was made of, held so that no
     * other object can take their addresses. */
    PyObject *last_day = NULL, *last_clock = NULL, *last_stamp = NULL;
    int64_t last_stamp_id = 0;
    PyObject *messages = NULL, *result = NULL;
    Py_ssize_t continuation = 0, plain = 0, anomalies = 0, media = 0;
    int broke = 0;

    if (!PyArg_ParseTuple(args, "O!nOO!:bulk_messages", &PyList_Type, &parts, &line, &state,
                          &PyTuple_Type, &context_tuple)) {
        return NULL;
    }
    if (context_read(context_tuple, &context) < 0) {
        return NULL;
    }
    if (read_window(state, &window) < 0) {
        goto done;
    }
    messages = PyList_New(0);
    if (messages == NULL) {
        goto done;
    }

    Py_ssize_t size = PyList_GET_SIZE(parts);
    for (Py_ssize_t i = 1; i + 4 <= size - 4; i += 4) {
        PyObject *date_text = PyList_GET_ITEM(parts, i);
        PyObject *clock_text = PyList_GET_ITEM(parts, i + 1);
        PyObject *name = PyList_GET_ITEM(parts, i + 2);
        PyObject *piece = PyList_GET_ITEM(parts, i + 3);
        PyObject *day = NULL, *clock = NULL, *stamp = NULL, *body = NULL;
        PyObject *iso = NULL, *text = NULL, *message = NULL, *sender = NULL;
        PyObject *key = NULL, *number_object = NULL, *read = NULL;
        BodyFields fields = {NULL, NULL, NULL, NULL, NULL};
        int ok = 0;

        if (!PyUnicode_Check(piece)) {
            PyErr_SetString(PyExc_TypeError, "the parts must be strings");
            goto done;
        }
        int found = stamp_parts(&context, &memo, date_text, clock_text, &day, &clock);
        if (found < 0) {
            goto done;
        }
        if (found == 0) {
            broke = 1;
            break;
        }

        if (day == last_day && clock == last_clock) {
            /* The same minute as the header before: the same timestamp. */
            stamp = Py_NewRef(last_stamp);
        }
        else {
            stamp = PyNumber_Add(PyTuple_GET_ITEM(day, 0), PyTuple_GET_ITEM(clock, 0));
            if (stamp == NULL || stamp_key(stamp, &last_stamp_id) < 0) {
                goto item_done;
            }
            Py_XSETREF(last_day, Py_NewRef(day));
            Py_XSETREF(last_clock, Py_NewRef(clock));
            Py_XSETREF(last_stamp, Py_NewRef(stamp));
        }
        int anomaly = PyObject_IsTrue(PyTuple_GET_ITEM(clock, 2));
        if (anomaly < 0) {
            goto item_done;
        }
        anomalies += anomaly;

        Py_ssize_t number = line;
        if (has_char(piece, '\n')) {
            Py_ssize_t lines = PyUnicode_Count(piece, newline_string, 0,
                                               PyUnicode_GET_LENGTH(piece));
            if (lines < 0) {
                goto item_done;
            }
            continuation += lines;
            line += lines + 1;
            body = strip_lines(piece);
        }
        else {
            line += 1;
            body = strip_end(piece);
        }
        if (body == NULL) {
            goto item_done;
        }

        if (name == Py_None) {
            iso = iso_of(day, clock);
            if (iso == NULL) {
                goto item_done;
            }
            message = call_build(&context, number, stamp, iso, piece, state);
            ok = message != NULL && PyList_Append(messages, message) == 0;
            goto item_done;
        }

        /* As ParsedExport._build reads a body: a notice of the sender first,
         * which _build turns into a system message, then the markers of
         * special_body, whose message is built here. */
        Ends ends = ends_of(body);
        int notice = may_be_notice(&context, body, &ends);
        if (notice > 0) {
            notice = may_name_event(&context, body, &ends);
        }
        if (notice > 0) {
            notice = check_body(context.sender_system_event, body);
        }
        if (notice < 0) {
            goto item_done;
        }
        if (notice) {
            PyObject *text_parts[3] = {name, colon_space, piece};
            text = concat(3, text_parts);
            iso = iso_of(day, clock);
            if (text == NULL || iso == NULL) {
                goto item_done;
            }
            message = call_build(&context, number, stamp, iso, text, state);
            ok = message != NULL && PyList_Append(messages, message) == 0;
            goto item_done;
        }
        int special = may_be_special(&context, body, &ends);
        if (special > 0 && !ends.newline) {
            special = is_special_line(&context, body, &ends);
        }
        if (special < 0) {
            goto item_done;
        }
        if (special) {
            read = PyObject_CallOneArg(context.special_body, body);
            if (read == NULL) {
                goto item_done;
            }
            if (read == Py_None) {
                Py_CLEAR(read);
            }
            else if (body_fields_read(&context, read, &fields) < 0) {
                goto item_done;
            }
        }

        sender = PyDict_GetItemWithError(window.senders, name);
        if (sender != NULL) {
            Py_INCREF(sender);
        }
        else if (PyErr_Occurred()) {
            goto item_done;
        }
        else {
            sender = PyObject_CallFunctionObjArgs(context.sender, name, state, NULL);
            if (sender == NULL) {
                goto item_done;
            }
        }
        if (!PyTuple_Check(sender) || PyTuple_GET_SIZE(sender) != 3) {
            PyErr_SetString(PyExc_TypeError, "a sender must be a tuple of three");
            goto item_done;
        }

        /* The key material, f"{iso}\x1f{label}\x1f{body}", hashed in parts. */
        PyObject *material[7] = {
            PyTuple_GET_ITEM(day, 1), letter_t, PyTuple_GET_ITEM(clock, 1), unit_separator,
            PyTuple_GET_ITEM(sender, 2), unit_separator, body,
        };
        Sha256 hash;
        sha256_start(&hash, fastest_compress);
        int bad = 0;
        for (int part = 0; part < 7 && !bad; part++) {
            bad = !PyUnicode_Check(material[part]) || sha256_add_string(&hash, material[part]) < 0;
        }
        if (bad) {
            if (!PyErr_Occurred()) {
                PyErr_SetString(PyExc_TypeError, "the parts of a key material must be strings");
            }
            goto item_done;
        }
        unsigned char first[32];
        first_key(&hash, first);
        Py_ssize_t index = occurrences_count(window.occurrences, last_stamp_id, first);
        if (index < 0) {
            goto item_done;
        }
        key = key_hex(&hash, index, first);
        number_object = PyLong_FromSsize_t(number);
        if (key == NULL || number_object == NULL) {
            goto item_done;
        }
        PyObject *values[MESSAGE_FIELD_COUNT] = {
            stamp, PyTuple_GET_ITEM(sender, 0), PyTuple_GET_ITEM(sender, 1), body,
            chat_kind, Py_None, empty_tuple, Py_False, Py_False, Py_False, key,
            number_object,
        };
        if (read != NULL) {
            values[3] = fields.text;
            values[6] = fields.attachments;
            values[7] = fields.is_deleted;
            values[8] = fields.is_edited;
            values[9] = fields.is_location;
        }
        message = new_message(&context, values);
        ok = message != NULL && PyList_Append(messages, message) == 0;
        plain += ok;
        if (ok && read != NULL) {
            media += PyTuple_GET_SIZE(fields.attachments);
        }

    item_done:
        Py_XDECREF(day);
        Py_XDECREF(clock);
        Py_XDECREF(stamp);
        Py_XDECREF(body);
        Py_XDECREF(iso);
        Py_XDECREF(text);
        Py_XDECREF(message);
        Py_XDECREF(sender);
        Py_XDECREF(key);
        Py_XDECREF(number_object);
        Py_XDECREF(read);
        body_fields_clear(&fields);
        if (!ok) {
            goto done;
        }
    }

    result = Py_BuildValue("(Onnnnni)", messages, line, continuation, plain, anomalies, media,
                           broke);

done:
    Py_XDECREF(messages);
    Py_XDECREF(last_stamp);
    Py_XDECREF(last_day);
    Py_XDECREF(last_clock);
    memo_clear(&memo);
    window_clear(&window);
    context_clear(&context);
    return result;
}

/* ------------------------------------------------------------------ */
/* Module                                                               */
/* ------------------------------------------------------------------ */

static PyMethodDef speedups_methods[] = {
    {"sha256_hex", (PyCFunction)(void (*)(void))speedups_sha256_hex,
     METH_VARARGS | METH_KEYWORDS,
     "sha256_hex(data, *, portable=False) -> str\n\n"
     "The SHA-256 digest of a bytes-like object, in hex. ``portable`` forces the\n"
     "plain C code where the processor's SHA extensions would be used."},
    {"plain_clock", speedups_plain_clock, METH_O,
     "plain_clock(text) -> tuple | None\n\n"
     "The time since midnight, the ISO time and False (no clock anomaly) of a\n"
     "24-hour time in ASCII digits such as 09:05 or 9.05:30, as BulkReader reads\n"
     "it. None for any other text and for an invalid time."},
    {"has_any", speedups_has_any, METH_VARARGS,
     "has_any(text, characters) -> bool\n\n"
     "True when ``text`` contains any of ``characters``, as\n"
     "any(c in text for c in characters) tells, in one pass over the text."},
    {"count_dates", speedups_count_dates, METH_VARARGS,
     "count_dates(text, shape) -> dict | None\n\n"
     "Count the dates of the headers of ``shape`` after each LF in ``text``.\n"
     "None when a line starts like a header that this reading does not match."},
    {"scan_utf8", speedups_scan_utf8, METH_VARARGS,
     "scan_utf8(data, shape, marks, after_lf) -> tuple | None\n\n"
     "count_dates on the text of UTF-8 bytes, without decoding them, and the\n"
     "count of LFs: (dates, lines). The first line counts when ``after_lf`` is\n"
     "true. None when the bytes are not well-formed UTF-8, hold a CR or any of\n"
     "``marks``, or when count_dates would give up."},
    {"split_block", speedups_split_block, METH_VARARGS,
     "split_block(text, shape) -> list | None\n\n"
     "What bulk_pattern(shape).split(\"\\n\" + text) gives, or None when the\n"
     "text has no header or a line this reading does not match."},
    {"bulk_messages", speedups_bulk_messages, METH_VARARGS,
     "bulk_messages(parts, line, state, context) -> tuple\n\n"
     "The loop of BulkReader._messages over parts[1:-4]. Returns the messages,\n"
     "the next line number, the continuation lines, the messages built without\n"
     "ParsedExport._build, the clock anomalies, the attachments, and 1 when it\n"
     "stopped at an invalid date or time."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef speedups_module = {
    PyModuleDef_HEAD_INIT,
    "wallie.whatsapp._speedups",
    "C versions of the hottest loops of the WhatsApp parser.",
    -1,
    speedups_methods,
};

static int
intern_constant(PyObject **target, const char *value)
{
    *target = PyUnicode_InternFromString(value);
    return *target == NULL ? -1 : 0;
}

PyMODINIT_FUNC
PyInit__speedups(void)
{
    if (intern_constant(&chat_kind, "chat") < 0 || intern_constant(&newline_string, "\n") < 0
        || intern_constant(&unit_separator, "\x1f") < 0 || intern_constant(&letter_t, "T") < 0
        || intern_constant(&colon_space, ": ") < 0) {
        return NULL;
    }
    fill_hex_pairs();
    empty_tuple = PyTuple_New(0);
    if (empty_tuple == NULL) {
        return NULL;
    }
    PyDateTime_IMPORT;
    if (PyDateTimeAPI == NULL || PyType_Ready(&OccurrencesType) < 0) {
        return NULL;
    }
#ifdef HAVE_SHA_EXTENSIONS
    if (cpu_has_sha_extensions()) {
        fastest_compress = sha256_compress_extensions;
    }
#endif
    PyObject *module = PyModule_Create(&speedups_module);
    if (module == NULL) {
        return NULL;
    }
    if (PyModule_AddIntConstant(module, "SHA_EXTENSIONS",
                                fastest_compress != sha256_compress) < 0
        || PyModule_AddObjectRef(module, "Occurrences", (PyObject *)&OccurrencesType) < 0) {
        Py_DECREF(module);
        return NULL;
    }
    return module;
}
