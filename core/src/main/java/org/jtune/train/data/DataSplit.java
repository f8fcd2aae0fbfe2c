package org.jtune.train.data;

import java.util.ArrayList;
import java.util.List;
import org.jtune.JTuneException;

/**
 * Holds out a validation set, deterministically by seed and before any training shuffle: the
 * validation items are the first {@code valCount} of a seeded permutation (its own random stream,
 * independent of the epoch orders), and both parts keep the original file order. The same seed and
 * data always give the same split, whatever the batch size or number of epochs.
 */
public record DataSplit<T>(List<T> train, List<T> validation) {
    /** Stream id mixed into the seed so the split does not coincide with epoch 0's shuffle. */
    private static final long SPLIT_STREAM = 0x5EED_5A1DL;

    public DataSplit {
        train = List.copyOf(train);
        validation = List.copyOf(validation);
    }

    /** valFraction in [0, 1): rounded to a count, at least one item when the fraction is positive. */
    public static <T> DataSplit<T> byFraction(List<T> items, double valFraction, long seed) {
        if (!(valFraction >= 0 && valFraction < 1)) {
            throw new JTuneException("validation fraction is " + valFraction + "; it must be in [0, 1)");
        }
        int count = (int) Math.round(items.size() * valFraction);
        if (valFraction > 0 && count == 0) {
            count = 1;
        }
        return byCount(items, count, seed);
    }

    public static <T> DataSplit<T> byCount(List<T> items, int valCount, long seed) {
        if (valCount < 0 || valCount >= items.size()) {
            throw new JTuneException("validation count is " + valCount + " but the data has " + items.size()
                    + " examples; it must leave at least one for training");
        }
        int[] perm = Batcher.permutation(items.size(), seed, SPLIT_STREAM);
        boolean[] isVal = new boolean[items.size()];
        for (int i = 0; i < valCount; i++) {
            isVal[perm[i]] = true;
        }
        List<T> train = new ArrayList<>(items.size() - valCount);
        List<T> val = new ArrayList<>(valCount);
        for (int i = 0; i < items.size(); i++) {
            (isVal[i] ? val : train).add(items.get(i));
        }
        return new DataSplit<>(train, val);
    }
}
