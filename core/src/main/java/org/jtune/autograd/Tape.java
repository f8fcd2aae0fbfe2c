package org.jtune.autograd;

import java.util.ArrayList;
import java.util.Arrays;
import java.util.IdentityHashMap;
import java.util.List;
import java.util.Map;

/**
 * Reverse-mode autodiff over plain float arrays. Ops append a backward step as they run; {@link
 * #backward} runs the steps in reverse. Gradients are keyed by the identity of the array they belong
 * to (an activation buffer or a parameter) and accumulate with {@code +=}, so an array read by two
 * ops gets both contributions. Gradient arrays are allocated once and zeroed between steps, so
 * activation memory is bounded and reused.
 */
public final class Tape {
    /** One op's backward: reads output gradients, accumulates input and parameter gradients. */
    @FunctionalInterface
    public interface Backward {
        void run();
    }

    private final List<Backward> steps = new ArrayList<>();
    private final Map<float[], float[]> grads = new IdentityHashMap<>();

    public void record(Backward b) {
        steps.add(b);
    }

    /** The gradient array of {@code value}, zero-filled on first use. */
    public float[] grad(float[] value) {
        return grads.computeIfAbsent(value, v -> new float[v.length]);
    }

    /** The gradient of {@code value} if anything accumulated into it, else null. */
    public float[] gradIfPresent(float[] value) {
        return grads.get(value);
    }

    /** Runs all recorded steps in reverse order and forgets them. */
    public void backward() {
        for (int i = steps.size() - 1; i >= 0; i--) {
            steps.get(i).run();
        }
        steps.clear();
    }

    /** Forgets recorded steps without running them (e.g. an evaluation forward). */
    public void clearSteps() {
        steps.clear();
    }

    /** Zeroes every activation gradient; parameter gradients listed in {@code keep} are left to accumulate. */
    public void zeroActivationGrads(java.util.Set<float[]> keep) {
        java.util.List<float[]> zero = new java.util.ArrayList<>();
        for (Map.Entry<float[], float[]> e : grads.entrySet()) {
            if (!keep.contains(e.getKey())) {
                zero.add(e.getValue());
            }
        }
        // over the pool: megabytes per sequence, about 1 % of a LoRA step on one thread
        org.jtune.kernel.WorkerPool.shared().run(zero.size(), (from, to) -> {
            for (int i = from; i < to; i++) {
                Arrays.fill(zero.get(i), 0f);
            }
        });
    }

    /** Zeroes every gradient. */
    public void zeroGrads() {
        for (float[] g : grads.values()) {
            Arrays.fill(g, 0f);
        }
    }

    public int recordedSteps() {
        return steps.size();
    }
}
