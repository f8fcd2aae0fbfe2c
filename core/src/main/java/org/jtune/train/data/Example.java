package org.jtune.train.data;

import java.util.Arrays;

/**
 * One tokenized training example. {@code labels[i]} is {@code inputIds[i]} where the token carries
 * the loss and {@link #IGNORE} elsewhere; labels are not shifted (position i predicts label i+1 in
 * the loss, as in HF's causal-LM loss), so the arrays line up one to one.
 */
public record Example(int[] inputIds, int[] labels) {
    /** HF's ignore index: positions with this label contribute no loss. */
    public static final int IGNORE = -100;

    public Example {
        if (inputIds.length != labels.length) {
            throw new IllegalArgumentException("inputIds has " + inputIds.length + " tokens but labels has "
                    + labels.length);
        }
    }

    public int length() {
        return inputIds.length;
    }

    /** Tokens whose label is not {@link #IGNORE}. */
    public int lossTokens() {
        int n = 0;
        for (int l : labels) {
            if (l != IGNORE) {
                n++;
            }
        }
        return n;
    }

    @Override
    public boolean equals(Object o) {
        return o instanceof Example e && Arrays.equals(inputIds, e.inputIds) && Arrays.equals(labels, e.labels);
    }

    @Override
    public int hashCode() {
        return 31 * Arrays.hashCode(inputIds) + Arrays.hashCode(labels);
    }

    @Override
    public String toString() {
        return "Example[inputIds=" + Arrays.toString(inputIds) + ", labels=" + Arrays.toString(labels) + "]";
    }
}
