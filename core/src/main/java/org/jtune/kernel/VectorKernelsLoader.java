package org.jtune.kernel;

/** Loads the Vector API kernels only after the module check, so classes using jdk.incubator.vector are never touched without it. */
final class VectorKernelsLoader {
    private VectorKernelsLoader() {
    }

    static Kernels load(WorkerPool pool) {
        return new VectorKernels(pool);
    }
}
