package org.jtune.kernel;

import java.util.logging.Logger;

/**
 * Picks the kernel implementation once per process and logs which one and why.
 * {@code -Djtune.kernels=scalar} forces the reference implementation; otherwise the Vector API
 * implementation is used when the {@code jdk.incubator.vector} module is present.
 */
public final class KernelProvider {
    private static final Logger LOG = Logger.getLogger(KernelProvider.class.getName());
    private static volatile Kernels instance;

    private KernelProvider() {
    }

    public static Kernels get() {
        Kernels k = instance;
        if (k == null) {
            synchronized (KernelProvider.class) {
                k = instance;
                if (k == null) {
                    instance = k = choose();
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
}
