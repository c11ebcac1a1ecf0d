/*
 * Slot-LoRA up/down projection for a batch on the CPU, fused into one pass (BGMV).
 *
 * A decoding step has one token per row. For every row b of the batch and every rank column r of
 * the row's adapter (page p = pages[b, r]; page 0 is the zero page and is skipped):
 *
 *     out[b, :] += (x[b, :] . A[p, :]) * B[p, :]
 *
 * A is [num_pages, in_f], B is [num_pages, out_f] (the LoRA scale already folded in), x is
 * [rows, in_f] and out is [rows, out_f], all float32 and contiguous. It does what
 * index_select + bmm + embedding_bag + add_ do in the PyTorch path in one loop that reads each page
 * once, without the gathered copy or the four dispatches, which dominate a decoding step of a small
 * model. Prompts keep the batched torch ops, which measured as fast at several tokens per row.
 * Loaded by inference/engine/cpu_kernels.py through ctypes (no Python or torch headers).
 *
 * The dot product keeps explicit partial sums so the compiler vectorises it without reassociating
 * floating-point additions on its own; target_clones builds AVX-512, AVX2+FMA and baseline versions
 * and the loader picks one for the CPU it runs on.
 */
#include <stdint.h>

#if defined(LINEAGE_TARGET_CLONES) && defined(__x86_64__)
__attribute__((target_clones("avx512f", "avx2,fma", "default")))
#endif
void lineage_bgmv_f32(const float *restrict x, int64_t rows, int64_t in_f,
                      const float *restrict A, const float *restrict B, int64_t out_f,
                      const int64_t *restrict pages, int64_t width, float *restrict out)
{
    for (int64_t row = 0; row < rows; ++row) {
        const int64_t *row_pages = pages + row * width;
        const float *xr = x + row * in_f;
        float *o = out + row * out_f;
        for (int64_t r = 0; r < width; ++r) {
            const int64_t p = row_pages[r];
            if (p == 0)
                continue;
            const float *a = A + p * in_f;
            const float *b = B + p * out_f;
            /* Four independent 8-wide chains hide the FMA latency on long rows. */
            float acc[8] = {0.f}, acc1[8] = {0.f}, acc2[8] = {0.f}, acc3[8] = {0.f};
            int64_t f = 0;
            for (; f + 32 <= in_f; f += 32)
                for (int lane = 0; lane < 8; ++lane) {
                    acc[lane] += xr[f + lane] * a[f + lane];
                    acc1[lane] += xr[f + 8 + lane] * a[f + 8 + lane];
                    acc2[lane] += xr[f + 16 + lane] * a[f + 16 + lane];
                    acc3[lane] += xr[f + 24 + lane] * a[f + 24 + lane];
                }
            for (; f + 8 <= in_f; f += 8)
                for (int lane = 0; lane < 8; ++lane)
                    acc[lane] += xr[f + lane] * a[f + lane];
            for (int lane = 0; lane < 8; ++lane)
                acc[lane] += (acc1[lane] + acc2[lane]) + acc3[lane];
            float down = ((acc[0] + acc[4]) + (acc[1] + acc[5])) + ((acc[2] + acc[6]) + (acc[3] + acc[7]));
            for (; f < in_f; ++f)
                down += xr[f] * a[f];
            for (int64_t j = 0; j < out_f; ++j)
                o[j] += down * b[j];
        }
    }
}
