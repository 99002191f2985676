/* sgdlab._kernels: the compiled inner loop of engine.train (see kernels.py for when it is used).

   Why C: on the article's four points an epoch is four steps of a few flops each, and in torch
   each step is a dozen operator calls of about a microsecond each; with K = 1000 runs the data
   and the residuals of every epoch stream through memory. Here a group of runs stays in vector
   registers for a whole chunk of epochs, and the epoch's loss is computed while its data are in
   cache.

   Why the results equal torch's: every operation is the engine's, in the same order and the
   same precision; the build turns off fused multiply-adds (-ffp-contract=off) and fast-math is
   never on, so a product is rounded before it is added and a division stays a division. Batches
   of one (the article's toy runs) are then bit-identical to D2L's autograd loop; larger batches
   sum the gradient sample after sample, which BLAS does in another order (tests/test_engine.py).

   Each loop is compiled for AVX-512, AVX2 and baseline x86-64 (elsewhere: baseline only), and
   the module picks the best copy this CPU runs when it loads: a wheel built here still runs on an
   older CPU. select() picks another (SGDLAB_KERNEL_ISA, read by kernels.py: tests run each copy);
   every copy performs the same operations, so all give the same bits. */

#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <pthread.h>
#include <stdint.h>
#include <string.h>

#define PMAX 16 /* parameters per run; wider models use the torch loop */

#if defined(__x86_64__) || defined(__i386__)
#define SGDLAB_X86 1
#else
#define SGDLAB_X86 0
#endif

typedef struct {
    const void *X, *y;                      /* data (n, p) or (n, p, K); labels (n,) or (n, K) */
    Py_ssize_t x_row, x_col, x_lane;        /* element strides of X: sample, feature, run */
    Py_ssize_t y_row, y_lane;
    const int64_t *orders;                  /* batch orders (C, n) or (C, K, n) */
    Py_ssize_t order_epoch, order_lane;
    Py_ssize_t n, p, K, batch, epochs;
    void *theta;                            /* (p, K), updated in place */
    const void *lr;                         /* (K,) */
    double divisor, scale, jump_at, jump_height, decay_t0;
    int jump, half, decay, gathered;        /* gathered: per-run orders or data */
    int64_t t;                              /* steps taken before this chunk (for the decay) */
    void *epoch_params, *epoch_loss;        /* (C, p, K), (C, K) */
    void *step_params;                      /* (C·steps, p, K) or NULL */
    void *first_loss;                       /* (K,): the loss before the chunk, or NULL */
} Job;

/* A group is one AVX-512 register of runs (16 floats, 8 doubles). Vectors exactly the size of
   a register stay in registers; GCC keeps larger generic vectors in memory between operations. */
typedef float vf __attribute__((vector_size(64)));
typedef float vf8 __attribute__((vector_size(32)));
typedef int32_t vif __attribute__((vector_size(64)));
typedef double vd __attribute__((vector_size(64)));
typedef int64_t vid __attribute__((vector_size(64)));

/* The loss sums in double: for 16 float lanes, two vectors of 8 doubles. */
typedef struct {
    vd lo, hi;
} sum_f32;

static inline __attribute__((always_inline)) void add_f32(sum_f32 *s, vf x)
{
    s->lo += __builtin_convertvector(__builtin_shufflevector(x, x, 0, 1, 2, 3, 4, 5, 6, 7), vd);
    s->hi += __builtin_convertvector(__builtin_shufflevector(x, x, 8, 9, 10, 11, 12, 13, 14, 15), vd);
}

static inline __attribute__((always_inline)) vf mean_f32(sum_f32 s)
{
    vf8 lo = __builtin_convertvector(s.lo, vf8), hi = __builtin_convertvector(s.hi, vf8);
    return __builtin_shufflevector(lo, hi, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15);
}

typedef struct {
    vd v;
} sum_f64;

static inline __attribute__((always_inline)) void add_f64(sum_f64 *s, vd x) { s->v += x; }

static inline __attribute__((always_inline)) vd mean_f64(sum_f64 s) { return s.v; }

/* The hot loops: one compiled copy per instruction set (the inlined helpers come along). */
#define GROUP 16
#define T float
#define VT vf
#define VI vif
#define SUM sum_f32
#define NAME(x) x##_f32
#include "_kernels_impl.h"
#undef GROUP
#undef T
#undef VT
#undef VI
#undef SUM
#undef NAME

#define GROUP 8
#define T double
#define VT vd
#define VI vid
#define SUM sum_f64
#define NAME(x) x##_f64
#include "_kernels_impl.h"

typedef void (*Groups)(const Job *, Py_ssize_t, Py_ssize_t);

/* The compiled copies, best first; `runs` is filled in when the module loads. */
typedef struct {
    const char *name;
    Groups f32, f64;
    int runs;
} Variant;

static Variant variants[] = {
#if SGDLAB_X86
    {"avx512f", groups_avx512f_f32, groups_avx512f_f64, 0},
    {"avx2", groups_avx2_f32, groups_avx2_f64, 0},
#endif
    {"default", groups_default_f32, groups_default_f64, 1},
};
#define VARIANTS ((int)(sizeof variants / sizeof variants[0]))

static const Variant *chosen; /* the copy train_chunk runs */

/* Whether this CPU (and its OS, which must save the wider registers) runs copy i. */
static int cpu_runs(int i)
{
#if SGDLAB_X86
    __builtin_cpu_init(); /* __builtin_cpu_supports takes only literals, hence the names here */
    if (strcmp(variants[i].name, "avx512f") == 0)
        return __builtin_cpu_supports("avx512f");
    if (strcmp(variants[i].name, "avx2") == 0)
        return __builtin_cpu_supports("avx2");
#endif
    return strcmp(variants[i].name, "default") == 0;
}

typedef struct {
    const Job *job;
    Groups groups;
    Py_ssize_t first, end;
} Slice;

static void *run_slice(void *arg)
{
    Slice *s = arg;
    s->groups(s->job, s->first, s->end);
    return NULL;
}

/* Groups are independent, so threads split them and never wait on each other inside a chunk. */
static void run_threads(const Job *J, const Variant *v, int is_double, int threads)
{
    Groups groups = is_double ? v->f64 : v->f32;
    Py_ssize_t group = is_double ? 8 : 16, n_groups = (J->K + group - 1) / group;
    if (threads > n_groups)
        threads = (int)n_groups;
    if (threads > 64)
        threads = 64;
    Slice slices[64];
    pthread_t ids[64];
    int started = 0;
    for (int i = 0; i < threads; i++)
        slices[i] = (Slice){J, groups, n_groups * i / threads, n_groups * (i + 1) / threads};
    for (int i = 1; i < threads; i++, started++)
        if (pthread_create(&ids[i], NULL, run_slice, &slices[i]) != 0)
            break;
    run_slice(&slices[0]);
    for (int i = 1; i <= started; i++)
        pthread_join(ids[i], NULL);
    for (int i = started + 1; i < threads; i++) /* threads that could not start: run here */
        run_slice(&slices[i]);
}

static PyObject *train_chunk(PyObject *self, PyObject *args, PyObject *kwargs)
{
    static char *names[] = {"is_double", "X", "x_row", "x_col", "x_lane", "y", "y_row", "y_lane", "orders",
                            "order_epoch", "order_lane", "n", "p", "K", "batch", "epochs", "theta", "lr",
                            "divisor", "scale", "jump", "jump_at", "jump_height", "half", "decay", "decay_t0",
                            "t", "epoch_params", "epoch_loss", "step_params", "first_loss", "threads", NULL};
    Job J = {0};
    unsigned long long X, y, orders, theta, lr, epoch_params, epoch_loss, step_params, first_loss;
    int is_double, threads;
    long long t;
    if (!PyArg_ParseTupleAndKeywords(
            args, kwargs, "$pKnnnKnnKnnnnnnnKKddpddppdLKKKKi", names, &is_double, &X, &J.x_row, &J.x_col,
            &J.x_lane, &y, &J.y_row, &J.y_lane, &orders, &J.order_epoch, &J.order_lane, &J.n, &J.p, &J.K,
            &J.batch, &J.epochs, &theta, &lr, &J.divisor, &J.scale, &J.jump, &J.jump_at, &J.jump_height,
            &J.half, &J.decay, &J.decay_t0, &t, &epoch_params, &epoch_loss, &step_params, &first_loss,
            &threads))
        return NULL;
    if (J.p < 1 || J.p > PMAX || J.n < 1 || J.K < 1 || J.batch < 1 || J.epochs < 0) {
        PyErr_SetString(PyExc_ValueError, "train_chunk: shapes out of range");
        return NULL;
    }
    J.X = (const void *)(uintptr_t)X;
    J.y = (const void *)(uintptr_t)y;
    J.orders = (const int64_t *)(uintptr_t)orders;
    J.theta = (void *)(uintptr_t)theta;
    J.lr = (const void *)(uintptr_t)lr;
    J.epoch_params = (void *)(uintptr_t)epoch_params;
    J.epoch_loss = (void *)(uintptr_t)epoch_loss;
    J.step_params = (void *)(uintptr_t)step_params;
    J.first_loss = (void *)(uintptr_t)first_loss;
    J.t = t;
    J.gathered = J.x_lane != 0 || J.y_lane != 0 || J.order_lane != 0;
    const Variant *v = chosen; /* read with the GIL held: a select() meanwhile changes the next call */
    Py_BEGIN_ALLOW_THREADS
    run_threads(&J, v, is_double, threads < 1 ? 1 : threads);
    Py_END_ALLOW_THREADS
    Py_RETURN_NONE;
}

/* The names of the copies, best first: all compiled ones, or those this CPU runs. */
static PyObject *names(int runnable_only)
{
    PyObject *out = PyList_New(0);
    for (int i = 0; out && i < VARIANTS; i++)
        if (!runnable_only || variants[i].runs) {
            PyObject *name = PyUnicode_FromString(variants[i].name);
            if (!name || PyList_Append(out, name) < 0)
                Py_CLEAR(out);
            Py_XDECREF(name);
        }
    if (!out)
        return NULL;
    PyObject *tuple = PyList_AsTuple(out);
    Py_DECREF(out);
    return tuple;
}

/* The same names as one "a, b" string, for error messages. */
static PyObject *joined(int runnable_only)
{
    PyObject *list = names(runnable_only), *comma = PyUnicode_FromString(", ");
    PyObject *out = list && comma ? PyUnicode_Join(comma, list) : NULL;
    Py_XDECREF(list);
    Py_XDECREF(comma);
    return out;
}

static PyObject *select_isa(PyObject *self, PyObject *arg)
{
    const char *name = PyUnicode_AsUTF8(arg);
    if (!name)
        return NULL;
    int i = 0;
    while (i < VARIANTS && strcmp(variants[i].name, name) != 0)
        i++;
    if (i < VARIANTS && variants[i].runs) {
        chosen = &variants[i];
        Py_RETURN_NONE;
    }
    PyObject *list = joined(i < VARIANTS);
    if (list && i < VARIANTS)
        PyErr_Format(PyExc_ValueError, "this CPU cannot run the %s copy of the compiled loop (it runs: %U)", name,
                     list);
    else if (list)
        PyErr_Format(PyExc_ValueError, "the compiled loop has no %R copy (it has: %U)", arg, list);
    Py_XDECREF(list);
    return NULL;
}

static PyObject *isa(PyObject *self, PyObject *unused) { return PyUnicode_FromString(chosen->name); }

static PyObject *compiled(PyObject *self, PyObject *unused) { return names(0); }

static PyObject *supported(PyObject *self, PyObject *unused) { return names(1); }

static PyMethodDef methods[] = {
    {"train_chunk", (PyCFunction)(void (*)(void))train_chunk, METH_VARARGS | METH_KEYWORDS,
     "Run a chunk of SGD epochs for K runs in place (called by sgdlab.kernels with tensor pointers)."},
    {"select", select_isa, METH_O, "Run the copy compiled for this instruction set (a name from supported())."},
    {"isa", isa, METH_NOARGS, "The instruction set of the copy that runs."},
    {"compiled", compiled, METH_NOARGS, "The instruction sets the loop was compiled for, best first."},
    {"supported", supported, METH_NOARGS, "The instruction sets of the copies this CPU runs, best first."},
    {NULL, NULL, 0, NULL}};

static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "_kernels", NULL, -1, methods};

PyMODINIT_FUNC PyInit__kernels(void)
{
    for (int i = VARIANTS - 1; i >= 0; i--) /* the best runnable copy is chosen last */
        if ((variants[i].runs = cpu_runs(i)))
            chosen = &variants[i];
    PyObject *m = PyModule_Create(&module);
    if (m && PyModule_AddIntConstant(m, "PMAX", PMAX) < 0) {
        Py_DECREF(m);
        return NULL;
    }
    return m;
}
