package org.jtune.optim;

import java.util.Arrays;
import org.jtune.JTuneException;

/**
 * A named trainable tensor: fp32 master values and the gradient accumulated for them, both flat
 * row-major arrays of the same length. The name keys the optimizer state, so it must be stable
 * across runs (use the HF / PEFT tensor name). {@code decay} says whether decoupled weight decay
 * applies; by the usual convention (HF Trainer) 1-D tensors — biases and norm weights — are
 * exempt, and the constructor picks that default from the rank.
 */
public final class Parameter {
    private final String name;
    private final long[] shape;
    private final float[] value; // (numel) row-major, fp32 master weights
    private final float[] grad; // (numel) same layout as value
    private boolean decay;

    /** A parameter with a fresh zero gradient; decay defaults to {@code shape.length >= 2}. */
    public Parameter(String name, long[] shape, float[] value) {
        this(name, shape, value, new float[value.length], shape.length >= 2);
    }

    public Parameter(String name, long[] shape, float[] value, float[] grad, boolean decay) {
        if (name == null || name.isEmpty()) {
            throw new JTuneException("a trainable parameter needs a non-empty name (it keys the optimizer state)");
        }
        long numel = 1;
        for (long d : shape) {
            if (d < 0) {
                throw new JTuneException("parameter " + name + " has a negative dimension in shape " + Arrays.toString(shape));
            }
            numel *= d;
        }
        if (numel != value.length) {
            throw new JTuneException("parameter " + name + " has shape " + Arrays.toString(shape) + " (" + numel
                    + " elements) but " + value.length + " values");
        }
        if (grad.length != value.length) {
            throw new JTuneException("parameter " + name + " has " + value.length + " values but a gradient of "
                    + grad.length + "; value and grad must have the same length");
        }
        this.name = name;
        this.shape = shape.clone();
        this.value = value;
        this.grad = grad;
        this.decay = decay;
    }

    public String name() {
        return name;
    }

    /** The live value array (not a copy): optimizers update it in place. */
    public float[] value() {
        return value;
    }

    /** The live gradient array (not a copy): backward passes accumulate into it. */
    public float[] grad() {
        return grad;
    }

    public long[] shape() {
        return shape.clone();
    }

    public int numel() {
        return value.length;
    }

    public boolean decay() {
        return decay;
    }

    public Parameter setDecay(boolean decay) {
        this.decay = decay;
        return this;
    }

    public void zeroGrad() {
        Arrays.fill(grad, 0f);
    }

    @Override
    public String toString() {
        return "Parameter[" + name + " " + Arrays.toString(shape) + (decay ? "" : " no-decay") + "]";
    }
}
