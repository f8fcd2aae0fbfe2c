package org.jtune.peft;

import java.util.Arrays;
import org.jtune.JTuneException;

/**
 * The two low-rank factors of one LoRA-wrapped linear layer, in PEFT's layout whatever the base
 * layer's storage (GPT-2's Conv1D included): {@code delta W = B A}, shape [out, in]. The arrays are
 * held, not copied, so a trainer can update them in place.
 *
 * @param a   (r, in) row-major: lora_A.weight
 * @param b   (out, r) row-major: lora_B.weight
 * @param in  the base layer's input features
 * @param out the base layer's output features
 */
public record LoraWeights(float[] a, float[] b, int in, int out) {

    public LoraWeights {
        if (in <= 0 || out <= 0) {
            throw new JTuneException("LoRA layer dimensions must be positive, got in=" + in + ", out=" + out);
        }
        if (a.length == 0 || a.length % in != 0) {
            throw new JTuneException("lora_A has " + a.length + " values, not a positive multiple of in=" + in);
        }
        int r = a.length / in;
        if (b.length != (long) out * r) {
            throw new JTuneException("lora_B has " + b.length + " values but [out, r] = [" + out + ", " + r + "] needs "
                    + (long) out * r + "; A and B disagree on the rank");
        }
    }

    /** The rank, read off A's size. */
    public int r() {
        return a.length / in;
    }

    // Records compare arrays by identity; two adapters with equal values should be equal.
    @Override
    public boolean equals(Object o) {
        return o instanceof LoraWeights w && in == w.in && out == w.out && Arrays.equals(a, w.a) && Arrays.equals(b, w.b);
    }

    @Override
    public int hashCode() {
        return 31 * (31 * (31 * in + out) + Arrays.hashCode(a)) + Arrays.hashCode(b);
    }

    @Override
    public String toString() {
        return "LoraWeights[r=" + r() + ", in=" + in + ", out=" + out + "]";
    }
}
