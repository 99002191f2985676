/* The SGD inner loop for one element type; included twice by _kernels.c (float, then double).

   Expects: GROUP (runs per group), T (element type), VT (a GROUP-lane vector of T), VI (the
   matching integer vector, for comparison masks), SUM with NAME(add) and NAME(mean) (the loss
   sum, in double) and NAME(x) (suffixes names).

   A group is GROUP runs (lanes) kept in one vector register for a whole chunk of epochs: each
   lane is one run, every operation is elementwise across lanes, so a lane's arithmetic is
   exactly what a scalar loop would do; runs never mix. Lanes past the last run are padding
   (lr 0, results discarded). */

/* Lanes from p[0 … live − 1] (lane 0's value in the padding). */
static inline __attribute__((always_inline)) VT NAME(load)(const T *p, int live)
{
    VT v;
    if (live == GROUP) {
        memcpy(&v, p, sizeof v); /* one unaligned vector load */
        return v;
    }
    for (int l = 0; l < GROUP; l++)
        v[l] = p[l < live ? l : 0];
    return v;
}

static inline __attribute__((always_inline)) void NAME(store)(T *p, VT v, int live)
{
    if (live == GROUP) {
        memcpy(p, &v, sizeof v);
        return;
    }
    for (int l = 0; l < live; l++)
        p[l] = v[l];
}

/* Where each lane reads sample `row[l]`: lane l's row of X, and its label. With shared data and
   orders (not `gathered`) all lanes read one row: x[0] and y0, used as scalars (a scalar times a
   vector compiles to one broadcast; a vector built from a scalar, inside these loops, to sixteen
   lane inserts). */
typedef struct {
    const T *x[GROUP];
    VT label;
    T y0;
} NAME(Rows);

static inline __attribute__((always_inline)) void NAME(rows)(const Job *J, Py_ssize_t k0, int live,
                                                             const Py_ssize_t *row, NAME(Rows) *at, int gathered)
{
    const T *X = J->X, *y = J->y;
    if (!gathered) {
        at->x[0] = X + row[0] * J->x_row;
        at->y0 = y[row[0] * J->y_row];
        return;
    }
    for (int l = 0; l < GROUP; l++) {
        Py_ssize_t k = k0 + (l < live ? l : 0);
        at->x[l] = X + row[l] * J->x_row + k * J->x_lane;
        at->label[l] = y[row[l] * J->y_row + k * J->y_lane];
    }
}

/* Feature j of each lane's row times v. */
static inline __attribute__((always_inline)) VT NAME(times)(const Job *J, const NAME(Rows) *at, int j, VT v,
                                                            int gathered)
{
    if (!gathered)
        return at->x[0][j * J->x_col] * v;
    VT x;
    for (int l = 0; l < GROUP; l++)
        x[l] = at->x[l][j * J->x_col];
    return x * v;
}

/* The residual ŷ − y, where ŷ = x·θ summed in the order j = 0, 1, …, p−1, then the piecewise
   jump: D2L's `linreg` (one product per term, then a sum, as torch's matmul for these shapes)
   and the engine's `rb += jump_height * (rb >= jump_at)`, which adds exactly +0.0 below it. */
static inline __attribute__((always_inline)) VT NAME(residual)(const Job *J, const NAME(Rows) *at, const VT *th,
                                                               int P, int jump, int gathered)
{
    VT acc = NAME(times)(J, at, 0, th[0], gathered);
    for (int j = 1; j < P; j++)
        acc = acc + NAME(times)(J, at, j, th[j], gathered);
    if (jump) {
        VI on = acc >= (T)J->jump_at;
        acc = acc + (VT)(on & (VI)((T)J->jump_height - (VT){0})); /* − 0: keeps every value's sign */
    }
    return gathered ? acc - at->label : acc - at->y0;
}

/* The squared residual of sample i, in T (as torch's square_). */
static inline __attribute__((always_inline)) VT NAME(square)(const Job *J, Py_ssize_t k0, int live, Py_ssize_t i,
                                                             const VT *th, int P, int jump, int gathered)
{
    NAME(Rows) at;
    Py_ssize_t row[GROUP];
    for (int l = 0; l < (gathered ? GROUP : 1); l++)
        row[l] = i;
    NAME(rows)(J, k0, live, row, &at, gathered);
    VT r = NAME(residual)(J, &at, th, P, jump, gathered);
    return r * r;
}

/* Full-data loss of each lane: the squares summed in T over blocks of eight samples and the
   blocks in double (a 1000-term float sum would show its rounding; converting every square
   would double the cost), then the mean and the ½ in T. */
static inline __attribute__((always_inline)) VT NAME(loss)(const Job *J, Py_ssize_t k0, int live, const VT *th,
                                                           int P, int jump, int gathered)
{
    SUM sum = {0};
    for (Py_ssize_t i0 = 0; i0 < J->n; i0 += 8) {
        Py_ssize_t end = J->n - i0 < 8 ? J->n : i0 + 8;
        VT block = NAME(square)(J, k0, live, i0, th, P, jump, gathered);
        for (Py_ssize_t i = i0 + 1; i < end; i++)
            block = block + NAME(square)(J, k0, live, i, th, P, jump, gathered);
        NAME(add)(&sum, block);
    }
    VT mean = NAME(mean)(sum) / (T)J->n;
    return J->half ? mean / (T)2 : mean;
}

/* Sample `pos` of the epoch's order: each lane's (ŷ − y)·scale (scale 2 for the article's plain
   (ŷ − y)², exact; 1 for D2L's ½ loss, skipped). */
static inline __attribute__((always_inline)) VT NAME(sample)(const Job *J, Py_ssize_t k0, int live,
                                                             const int64_t *order, Py_ssize_t pos, const VT *th,
                                                             int P, int jump, int gathered, NAME(Rows) *at)
{
    Py_ssize_t row[GROUP];
    for (int l = 0; l < (gathered ? GROUP : 1); l++)
        row[l] = order[(l < live ? l : 0) * J->order_lane + pos];
    NAME(rows)(J, k0, live, row, at, gathered);
    VT r = NAME(residual)(J, at, th, P, jump, gathered);
    return J->scale == 1.0 ? r : r * (T)J->scale;
}

/* Runs k0 … k0 + live − 1 through the chunk's epochs; see the Job fields in _kernels.c.
   th and g are the caller's arrays of P vectors: of constant size, they live in registers. */
static inline __attribute__((always_inline)) void NAME(group)(const Job *J, Py_ssize_t k0, int P, int jump,
                                                              int gathered, VT *th, VT *g)
{
    const Py_ssize_t K = J->K, n = J->n, B = J->batch;
    const int live = K - k0 < GROUP ? (int)(K - k0) : GROUP;
    T *theta = J->theta;
    for (int j = 0; j < P; j++)
        th[j] = NAME(load)(theta + j * K + k0, live);
    VT lr = NAME(load)((const T *)J->lr + k0, live);
    for (int l = live; l < GROUP; l++)
        lr[l] = 0;
    const T divisor = (T)J->divisor;
    NAME(Rows) at;
    int64_t t = J->t;
    if (J->first_loss)
        NAME(store)((T *)J->first_loss + k0, NAME(loss)(J, k0, live, th, P, jump, gathered), live);
    for (Py_ssize_t c = 0; c < J->epochs; c++) {
        const int64_t *order = J->orders + c * J->order_epoch + k0 * J->order_lane;
        for (Py_ssize_t s = 0; s < n; s += B) {
            Py_ssize_t b = n - s < B ? n - s : B;
            /* The gradient of the summed loss, Σ x·r, added up sample after sample from the
               first product (a batch of one: that single product, as autograd's). */
            VT r = NAME(sample)(J, k0, live, order, s, th, P, jump, gathered, &at);
            for (int j = 0; j < P; j++)
                g[j] = NAME(times)(J, &at, j, r, gathered);
            for (Py_ssize_t i = 1; i < b; i++) {
                r = NAME(sample)(J, k0, live, order, s + i, th, P, jump, gathered, &at);
                for (int j = 0; j < P; j++)
                    g[j] = g[j] + NAME(times)(J, &at, j, r, gathered);
            }
            /* D2L's sgd: θ − (lr·g)/divisor, rounded as torch's addcdiv(θ, lr·g, divisor, value=−1):
               a true division (no reciprocal), the decay factor rounded to T first as torch's
               lr * python_float does. */
            VT lr_t = J->decay ? lr * (T)(J->decay_t0 / (J->decay_t0 + (double)t)) : lr;
            for (int j = 0; j < P; j++)
                th[j] = th[j] + (-(g[j] * lr_t)) / divisor;
            t++;
            if (J->step_params)
                for (int j = 0; j < P; j++)
                    NAME(store)((T *)J->step_params + (t - J->t - 1) * P * K + j * K + k0, th[j], live);
        }
        for (int j = 0; j < P; j++)
            NAME(store)((T *)J->epoch_params + c * P * K + j * K + k0, th[j], live);
        NAME(store)((T *)J->epoch_loss + c * K + k0, NAME(loss)(J, k0, live, th, P, jump, gathered), live);
    }
    for (int j = 0; j < P; j++)
        NAME(store)(theta + j * K + k0, th[j], live);
}

/* The shapes that matter get their own compiled copy (P and the jump constant: θ and the
   gradient in registers, loops unrolled); per-run orders or data, and any other P up to PMAX,
   run the generic copy. */
#define NAME_CASE(P_, JUMP)                               \
    case P_ * 2 + JUMP: {                                 \
        VT th[P_], g[P_];                                 \
        NAME(group)(J, k0, P_, JUMP, 0, th, g);           \
        break;                                            \
    }

static inline __attribute__((always_inline)) void NAME(groups)(const Job *J, Py_ssize_t first_group,
                                                               Py_ssize_t end_group)
{
    int P = (int)J->p, special = P <= 3 && !J->gathered ? P : 0;
    VT th[PMAX], g[PMAX];
    for (Py_ssize_t grp = first_group; grp < end_group; grp++) {
        Py_ssize_t k0 = grp * GROUP;
        switch (special * 2 + J->jump) {
            NAME_CASE(1, 0) NAME_CASE(1, 1) NAME_CASE(2, 0) NAME_CASE(2, 1) NAME_CASE(3, 0) NAME_CASE(3, 1)
            default: NAME(group)(J, k0, P, J->jump, J->gathered, th, g);
        }
    }
}
#undef NAME_CASE

/* One compiled copy of the loop per instruction set (_kernels.c picks one): everything above is
   inlined into each, so each is the whole loop compiled for its target. */
#if SGDLAB_X86
__attribute__((target("avx512f"))) static void NAME(groups_avx512f)(const Job *J, Py_ssize_t a, Py_ssize_t b)
{
    NAME(groups)(J, a, b);
}
__attribute__((target("avx2"))) static void NAME(groups_avx2)(const Job *J, Py_ssize_t a, Py_ssize_t b)
{
    NAME(groups)(J, a, b);
}
#endif
static void NAME(groups_default)(const Job *J, Py_ssize_t a, Py_ssize_t b) { NAME(groups)(J, a, b); }
