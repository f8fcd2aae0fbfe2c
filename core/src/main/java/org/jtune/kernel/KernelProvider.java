package org.jtune.kernel;

import java.util.Locale;
import java.util.function.Supplier;
import java.util.logging.Logger;
import org.jtune.JTuneException;

/**
 * Picks the kernel implementation once per process and logs which one and why.
 * {@code -Djtune.kernels=scalar} forces the reference implementation; otherwise the Vector API
 * implementation is used when the {@code jdk.incubator.vector} module is present.
 *
 * <p>{@code -Djtune.blas=off|auto|on} decides whether some products go to OpenBLAS ({@link BlasKernels}) on top
 * of the pure-Java kernels: {@code off} never loads it; {@code auto} uses it where {@link BlasKernels}'s measured
 * policy says, if the library loads, and otherwise logs one line saying why and stays pure Java; {@code on} is
 * {@code auto} that fails when the library does not load. {@code -Djtune.kernels=scalar} ignores it.
 *
 * <p>{@code off} is the default: what jtune computes then does not depend on whether a system package happens to
 * be installed (the Java kernels add in one fixed order, the same for any thread count; OpenBLAS's order depends
 * on its build and the CPU kernel it picks), and the measured gain is confined to f32 products (full
 * fine-tuning's f32 master weights, LoRA factors, f32 checkpoints), not the bf16 and int8 weights inference
 * mostly runs on (see {@link BlasKernels}).
 */
public final class KernelProvider {
    private static final Logger LOG = Logger.getLogger(KernelProvider.class.getName());
    private static volatile Kernels instance, pureJava;

    private KernelProvider() {
    }

    public static Kernels get() {
        Kernels k = instance;
        if (k == null) {
            synchronized (KernelProvider.class) {
                k = instance;
                if (k == null) {
                    Kernels base = pureJava();
                    instance = k = base instanceof ScalarKernels ? base
                            : withBlas(base, System.getProperty("jtune.blas", "off"), OpenBlas::shared);
                }
            }
        }
        return k;
    }

    /** The pure-Java kernels (Vector API or scalar), whatever {@code -Djtune.blas} says: the baseline of comparisons. */
    public static Kernels pureJava() {
        Kernels k = pureJava;
        if (k == null) {
            synchronized (KernelProvider.class) {
                k = pureJava;
                if (k == null) {
                    pureJava = k = choose();
                }
            }
        }
        return k;
    }

    private static Kernels choose() {
        String wanted = System.getProperty("jtune.kernels", "auto");
        if (wanted.equals("scalar")) {
            LOG.fine("kernels: scalar (forced by -Djtune.kernels=scalar)");
            return new ScalarKernels();
        }
        if (ModuleLayer.boot().findModule("jdk.incubator.vector").isEmpty()) {
            LOG.warning("kernels: scalar, because the JVM was started without --add-modules jdk.incubator.vector");
            return new ScalarKernels();
        }
        Kernels v = VectorKernelsLoader.load(WorkerPool.shared());
        LOG.fine("kernels: " + v.name());
        return v;
    }

    /**
     * Wraps base in {@link BlasKernels} as {@code -Djtune.blas} (off, auto, on) asks and the library allows; the
     * library is only looked for when the mode is not off.
     */
    static Kernels withBlas(Kernels base, String mode, Supplier<OpenBlas> library) {
        String m = mode.strip().toLowerCase(Locale.ROOT);
        switch (m) {
            case "off", "false", "" -> {
                return base;
            }
            case "auto", "on", "true" -> {
                OpenBlas blas = library.get();
                if (!blas.available()) {
                    if (!m.equals("auto")) {
                        throw new JTuneException("-Djtune.blas=" + m + " asks for OpenBLAS, but " + blas.reason());
                    }
                    LOG.info("kernels: " + base.name() + " (pure Java; -Djtune.blas=auto found no OpenBLAS: " + blas.reason() + ")");
                    return base;
                }
                Kernels k = new BlasKernels(base, blas, WorkerPool.shared(), false);
                LOG.info("kernels: " + k.name() + ": f32 products of " + BlasKernels.MIN_TOKENS
                        + "+ tokens on " + blas.description());
                return k;
            }
            default -> throw new JTuneException("-Djtune.blas must be off, auto or on, got '" + mode + "'");
        }
    }
}
