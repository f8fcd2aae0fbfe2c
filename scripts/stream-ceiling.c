// The C twin of bench's StreamCeiling: how close a decode row kernel written with intrinsics (bf16 rows as
// jtune lays them out for decode: one row at a time, one sequential stream per thread, pairs packed in
// 32-bit lanes) comes to a plain vector read of the same memory, with and without software prefetch,
// which the Java Vector API does not offer. 512 MiB on huge pages (madvise), OpenMP threads.
// Build and run: scripts/stream-ceiling.sh (gcc -O3 -march=native -fopenmp).
#include <immintrin.h>
#include <omp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <time.h>

static double now(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return t.tv_sec + t.tv_nsec * 1e-9;
}

// rows of cols bf16 weights; prefetch distance in bytes (0: none)
static float rows_dot(const uint16_t *m, long rows, int cols, const float *x, float *out, long prefetch) {
  const __m512i high = _mm512_set1_epi32((int) 0xffff0000);
  for (long r = 0; r < rows; r++) {
    const uint16_t *b = m + r * cols;
    __m512 a0 = _mm512_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;
    for (int c = 0; c + 64 <= cols; c += 64) {
      if (prefetch) {
        _mm_prefetch((const char *) (b + c) + prefetch, _MM_HINT_T0);
        _mm_prefetch((const char *) (b + c) + prefetch + 64, _MM_HINT_T0);
      }
      __m512i p = _mm512_loadu_si512(b + c), q = _mm512_loadu_si512(b + c + 32);
      a0 = _mm512_fmadd_ps(_mm512_castsi512_ps(_mm512_slli_epi32(p, 16)), _mm512_loadu_ps(x + c), a0);
      a1 = _mm512_fmadd_ps(_mm512_castsi512_ps(_mm512_and_si512(p, high)), _mm512_loadu_ps(x + c + 16), a1);
      a2 = _mm512_fmadd_ps(_mm512_castsi512_ps(_mm512_slli_epi32(q, 16)), _mm512_loadu_ps(x + c + 32), a2);
      a3 = _mm512_fmadd_ps(_mm512_castsi512_ps(_mm512_and_si512(q, high)), _mm512_loadu_ps(x + c + 48), a3);
    }
    out[r] = _mm512_reduce_add_ps(_mm512_add_ps(_mm512_add_ps(a0, a1), _mm512_add_ps(a2, a3)));
  }
  return out[0];
}

// jtune's read probe: four vector accumulators, nothing else
static float sum(const char *m, long n) {
  __m512 a0 = _mm512_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;
  for (long i = 0; i + 256 <= n; i += 256) {
    a0 = _mm512_add_ps(a0, _mm512_loadu_ps((const float *) (m + i)));
    a1 = _mm512_add_ps(a1, _mm512_loadu_ps((const float *) (m + i + 64)));
    a2 = _mm512_add_ps(a2, _mm512_loadu_ps((const float *) (m + i + 128)));
    a3 = _mm512_add_ps(a3, _mm512_loadu_ps((const float *) (m + i + 192)));
  }
  return _mm512_reduce_add_ps(_mm512_add_ps(_mm512_add_ps(a0, a1), _mm512_add_ps(a2, a3)));
}

int main(int argc, char **argv) {
  int cols = argc > 1 ? atoi(argv[1]) : 576;
  int rounds = argc > 2 ? atoi(argv[2]) : 6;
  long bytes = 512L << 20, rows = bytes / 2 / cols;
  uint16_t *m = aligned_alloc(1 << 21, bytes);
  madvise(m, bytes, MADV_HUGEPAGE);
#pragma omp parallel for
  for (long i = 0; i < bytes / 2; i++) m[i] = (uint16_t) (0x3c00 + ((i * 2654435761u) >> 23));
  float *x = malloc(cols * sizeof(float)), *out = malloc(rows * sizeof(float));
  for (int i = 0; i < cols; i++) x[i] = 0.001f * i;
  const long prefetch[] = {0, 512, 2048};
  float sink = 0;
  printf("bf16 rows of %d, %ld MiB, %d threads\n", cols, bytes >> 20, omp_get_max_threads());
  for (int round = 0; round < rounds; round++) {
    double t0 = now();
#pragma omp parallel reduction(+ : sink)
    {
      int t = omp_get_thread_num(), n = omp_get_num_threads();
      long r0 = rows * t / n, r1 = rows * (t + 1) / n;
      sink += sum((const char *) (m + r0 * cols), (r1 - r0) * cols * 2L);
    }
    double probe = bytes / (now() - t0) / 1e9;
    printf("round %d: read probe %.1f GB/s", round + 1, probe);
    for (int k = 0; k < 3; k++) {
      double a = now();
#pragma omp parallel reduction(+ : sink)
      {
        int t = omp_get_thread_num(), n = omp_get_num_threads();
        long r0 = rows * t / n, r1 = rows * (t + 1) / n;
        sink += rows_dot(m + r0 * cols, r1 - r0, cols, x, out + r0, prefetch[k]);
      }
      double gbps = bytes / (now() - a) / 1e9;
      if (prefetch[k]) printf(", rows prefetching %ld B ahead %.1f GB/s (%.0f %%)", prefetch[k], gbps, 100 * gbps / probe);
      else printf(", rows %.1f GB/s (%.0f %%)", gbps, 100 * gbps / probe);
    }
    printf("\n");
  }
  return sink == 42.0f;
}
