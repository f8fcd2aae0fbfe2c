package org.jtune.kernel;

import java.lang.foreign.Arena;
import java.lang.foreign.FunctionDescriptor;
import java.lang.foreign.Linker;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.SymbolLookup;
import java.lang.foreign.ValueLayout;
import java.lang.invoke.MethodHandle;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;

/**
 * An optional binding of OpenBLAS's {@code cblas_sgemm} through FFM (issue 4's native GEMM backend). Nothing
 * here is required: when no library loads, {@link #isAvailable()} is false, {@link #unavailableReason()} says
 * why, and jtune runs its pure-Java kernels. Loading never throws.
 *
 * <p>The library is looked up once per process: {@code -Djtune.blas.lib=PATH} if set (and then only that, so a
 * wrong path is reported rather than silently replaced), else {@code libopenblas.so.0} / {@code libopenblas.so}
 * on the loader's search path, else Debian's alternatives paths (e.g.
 * {@code /usr/lib/x86_64-linux-gnu/openblas-pthread/libopenblas.so.0} from {@code libopenblas0-pthread}).
 * A 64-bit-integer (ILP64) build is refused: the binding passes 32-bit ints.
 *
 * <p>Arrays are passed in place: {@code cblas_sgemm} is linked with {@code Linker.Option.critical(true)}, which
 * lets a heap segment ({@code MemorySegment.ofArray(float[])}) reach native code without a copy. Copying x into
 * an off-heap buffer and the result back instead measured 1-13 % (mostly 3-5 %) of a 128- or 1024-token
 * product. The price of a critical call is that the calling thread does not reach a safepoint until sgemm
 * returns (which is also what keeps the arrays from moving), so a GC or deoptimization requested meanwhile waits
 * for up to one product (tens of milliseconds for the largest); OpenBLAS never calls back into Java. A
 * memory-mapped weight is already native and passed as is.
 */
public final class OpenBlas {
    /** CBLAS enum values (cblas.h). */
    private static final int ROW_MAJOR = 101, NO_TRANS = 111, TRANS = 112;

    private static final OpenBlas SHARED = load(System.getProperty("jtune.blas.lib"));

    private final String library;
    private final String reason;
    private final MethodHandle sgemm;
    private final MethodHandle setThreads;
    private final String config;

    private OpenBlas(String library, String reason, MethodHandle sgemm, MethodHandle setThreads, String config) {
        this.library = library;
        this.reason = reason;
        this.sgemm = sgemm;
        this.setThreads = setThreads;
        this.config = config;
    }

    /** The process-wide binding ({@code -Djtune.blas.lib} or the default search). */
    public static OpenBlas shared() {
        return SHARED;
    }

    /** Whether the process-wide binding loaded. */
    public static boolean isAvailable() {
        return SHARED.available();
    }

    /** Why the process-wide binding did not load (null when it did). */
    public static String unavailableReason() {
        return SHARED.reason();
    }

    /**
     * Tries to bind OpenBLAS from {@code override} (a path or library name; null or blank: the default search).
     * Never throws: failure is an unavailable binding whose {@link #reason()} says what was tried.
     */
    static OpenBlas load(String override) {
        boolean overridden = override != null && !override.isBlank();
        List<String> candidates = overridden ? List.of(override.strip()) : defaultCandidates();
        List<String> tried = new ArrayList<>();
        for (String c : candidates) {
            boolean path = c.contains("/");
            SymbolLookup lib;
            try {
                lib = path ? SymbolLookup.libraryLookup(Path.of(c), Arena.global()) : SymbolLookup.libraryLookup(c, Arena.global());
            } catch (IllegalArgumentException | IllegalCallerException | SecurityException e) {
                tried.add(c + (path && !Files.exists(Path.of(c)) ? " (no such file)" : " (" + e.getMessage() + ")"));
                continue;
            }
            try {
                return bind(c, lib);
            } catch (Throwable e) { // a library without the symbols, an ILP64 build...
                String why = c + " " + (e.getMessage() == null ? e.toString() : e.getMessage());
                return new OpenBlas(null, overridden ? "-Djtune.blas.lib=" + why : why, null, null, "");
            }
        }
        String reason = overridden ? "-Djtune.blas.lib=" + tried.get(0) + " does not load"
                : "no OpenBLAS library found (install libopenblas0-pthread, or set -Djtune.blas.lib=PATH); tried "
                        + String.join(", ", tried);
        return new OpenBlas(null, reason, null, null, "");
    }

    private static List<String> defaultCandidates() {
        List<String> c = new ArrayList<>(List.of("libopenblas.so.0", "libopenblas.so"));
        String arch = switch (System.getProperty("os.arch", "")) {
            case "amd64", "x86_64" -> "x86_64";
            case "aarch64", "arm64" -> "aarch64";
            default -> null;
        };
        if (arch != null) {
            String dir = "/usr/lib/" + arch + "-linux-gnu/";
            c.add(dir + "libopenblas.so.0");
            for (String variant : new String[] {"openblas-pthread", "openblas-openmp", "openblas-serial"}) {
                c.add(dir + variant + "/libopenblas.so.0");
            }
        }
        c.add("/usr/lib64/libopenblas.so.0");
        c.add("/usr/local/lib/libopenblas.so.0");
        return c;
    }

    private static OpenBlas bind(String library, SymbolLookup lib) throws Throwable {
        Linker linker = Linker.nativeLinker();
        ValueLayout I = ValueLayout.JAVA_INT, F = ValueLayout.JAVA_FLOAT;
        MemorySegment sgemmAddr = lib.find("cblas_sgemm")
                .orElseThrow(() -> new IllegalStateException("has no cblas_sgemm symbol: not a CBLAS library"));
        MethodHandle sgemm = linker.downcallHandle(sgemmAddr,
                FunctionDescriptor.ofVoid(I, I, I, I, I, I, F, ValueLayout.ADDRESS, I, ValueLayout.ADDRESS, I, F,
                        ValueLayout.ADDRESS, I),
                Linker.Option.critical(true));
        MethodHandle setThreads = lib.find("openblas_set_num_threads")
                .map(a -> linker.downcallHandle(a, FunctionDescriptor.ofVoid(I))).orElse(null);
        String config = lib.find("openblas_get_config")
                .map(a -> {
                    try {
                        MemorySegment s = (MemorySegment) linker.downcallHandle(a, FunctionDescriptor.of(ValueLayout.ADDRESS))
                                .invokeExact();
                        return s.reinterpret(1024).getString(0).strip();
                    } catch (Throwable e) {
                        return "";
                    }
                }).orElse("");
        if (config.contains("USE64BITINT")) {
            throw new IllegalStateException("is a 64-bit-integer (ILP64) build (" + config + "); jtune binds the 32-bit interface");
        }
        return new OpenBlas(library, null, sgemm, setThreads, config);
    }

    public boolean available() {
        return sgemm != null;
    }

    /** Why this binding is unavailable, or null. */
    public String reason() {
        return reason;
    }

    /** What was loaded, with OpenBLAS's build string (e.g. "libopenblas.so.0 (OpenBLAS 0.3.21 DYNAMIC_ARCH ... Zen)"). */
    public String description() {
        return available() ? library + (config.isEmpty() ? "" : " (" + config + ")") : "unavailable: " + reason;
    }

    /** Sets OpenBLAS's thread count (a no-op for a build without {@code openblas_set_num_threads}). */
    public void setThreads(int n) {
        if (setThreads == null) {
            return;
        }
        try {
            setThreads.invokeExact(n);
        } catch (Throwable e) {
            throw new IllegalStateException("openblas_set_num_threads(" + n + ") failed", e);
        }
    }

    /**
     * Row-major {@code C = alpha * op(A) op(B) + beta * C}, op(A) (m, k), op(B) (k, n), C (m, n). The segments may
     * be heap segments of float arrays or native segments; offsets must already be applied. Sizes and leading
     * dimensions are checked against the segments first: native code would read or write past them silently.
     */
    public void sgemm(boolean transA, boolean transB, int m, int n, int k, float alpha, MemorySegment a, int lda,
                      MemorySegment b, int ldb, float beta, MemorySegment c, int ldc) {
        if (sgemm == null) {
            throw new IllegalStateException("OpenBLAS is unavailable: " + reason);
        }
        if (m < 0 || n < 0 || k < 0) {
            throw new IllegalArgumentException("sgemm sizes must be >= 0, got m=" + m + " n=" + n + " k=" + k);
        }
        check("A", a, transA ? k : m, transA ? m : k, lda);
        check("B", b, transB ? n : k, transB ? k : n, ldb);
        check("C", c, m, n, ldc);
        try {
            sgemm.invokeExact(ROW_MAJOR, transA ? TRANS : NO_TRANS, transB ? TRANS : NO_TRANS, m, n, k, alpha, a, lda, b,
                    ldb, beta, c, ldc);
        } catch (Throwable e) {
            throw new IllegalStateException("cblas_sgemm failed", e);
        }
    }

    /** A row-major (rows, cols) operand with leading dimension ld must fit in s. */
    private static void check(String name, MemorySegment s, int rows, int cols, int ld) {
        long need = rows == 0 || cols == 0 ? 0 : ((long) (rows - 1) * ld + cols) * Float.BYTES;
        if (ld < Math.max(1, cols) || s.byteSize() < need) {
            throw new IllegalArgumentException("sgemm operand " + name + " (" + rows + " x " + cols + ", leading dimension "
                    + ld + ") needs " + need + " bytes and ld >= " + Math.max(1, cols) + ", segment has " + s.byteSize());
        }
    }
}
