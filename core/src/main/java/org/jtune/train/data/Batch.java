package org.jtune.train.data;

/**
 * One training batch, row-major. Padded rows hold one example followed by pad ids with
 * {@link Example#IGNORE} labels, and {@code lengths[r]} says how many leading positions are real
 * (the attention length); packed rows are full, {@code lengths[r] == cols}. {@code epoch} and
 * {@code position} (the batch's index within its epoch) are what a checkpoint stores to resume.
 */
public record Batch(int epoch, int position, int rows, int cols,
                    int[] inputIds, // (rows, cols)
                    int[] labels,   // (rows, cols), IGNORE on padding and prompt tokens
                    int[] lengths) { // (rows)
    public Batch {
        if (inputIds.length != rows * cols || labels.length != rows * cols || lengths.length != rows) {
            throw new IllegalArgumentException("batch arrays do not match " + rows + " x " + cols);
        }
    }

    public int inputId(int row, int col) {
        return inputIds[row * cols + col];
    }

    public int label(int row, int col) {
        return labels[row * cols + col];
    }

    /** Positions that carry loss (label not IGNORE), for normalising the loss over the batch. */
    public int lossTokens() {
        int n = 0;
        for (int l : labels) {
            if (l != Example.IGNORE) {
                n++;
            }
        }
        return n;
    }
}
