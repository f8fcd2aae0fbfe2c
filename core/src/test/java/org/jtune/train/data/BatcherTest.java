package org.jtune.train.data;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.ArrayList;
import java.util.HashSet;
import java.util.List;
import java.util.Set;
import java.util.SplittableRandom;
import org.jtune.JTuneException;
import org.junit.jupiter.api.Test;

class BatcherTest {
    static final int PAD = 2;

    /** Example i: length 3..12, ids encode (i, position) so rows can be traced back; prompt = first 2. */
    static List<Example> examples(int n) {
        SplittableRandom rnd = new SplittableRandom(7);
        List<Example> out = new ArrayList<>();
        for (int i = 0; i < n; i++) {
            int len = 3 + rnd.nextInt(10);
            int[] ids = new int[len];
            int[] labels = new int[len];
            for (int j = 0; j < len; j++) {
                ids[j] = 1000 * (i + 1) + j;
                labels[j] = j < 2 ? Example.IGNORE : ids[j];
            }
            out.add(new Example(ids, labels));
        }
        return out;
    }

    static Batcher.Config config(Batcher.Mode mode, long seed) {
        return new Batcher.Config(mode, 4, 16, PAD, seed, true, 3);
    }

    static List<Batch> drain(Batcher b) {
        List<Batch> out = new ArrayList<>();
        b.forEachRemaining(out::add);
        return out;
    }

    /** The example index of the first token of every row, in order: the visiting order. */
    static List<Integer> rowOwners(List<Batch> batches) {
        List<Integer> out = new ArrayList<>();
        for (Batch b : batches) {
            for (int r = 0; r < b.rows(); r++) {
                out.add(b.inputId(r, 0) / 1000 - 1);
            }
        }
        return out;
    }

    @Test
    void paddingPadsToLongestInBatchWithIgnoredLabels() {
        List<Example> ex = examples(10);
        Batcher b = new Batcher(ex, new Batcher.Config(Batcher.Mode.PAD, 4, 16, PAD, 1, false, 1));
        assertEquals(3, b.batchesPerEpoch());
        List<Batch> batches = drain(b);
        assertEquals(3, batches.size());
        assertEquals(2, batches.get(2).rows(), "the last batch keeps the remainder");
        int seen = 0;
        for (Batch batch : batches) {
            int longest = 0;
            for (int r = 0; r < batch.rows(); r++) {
                Example e = ex.get(seen++);
                longest = Math.max(longest, e.length());
                assertEquals(e.length(), batch.lengths()[r]);
                for (int c = 0; c < batch.cols(); c++) {
                    if (c < e.length()) {
                        assertEquals(e.inputIds()[c], batch.inputId(r, c));
                        assertEquals(e.labels()[c], batch.label(r, c));
                    } else {
                        assertEquals(PAD, batch.inputId(r, c));
                        assertEquals(Example.IGNORE, batch.label(r, c));
                    }
                }
            }
            assertEquals(longest, batch.cols());
        }
        assertEquals(10, seen);
    }

    @Test
    void packingFillsRowsOfExactlyMaxLengthPreservingTokensAndLabels() {
        List<Example> ex = examples(25);
        Batcher b = new Batcher(ex, new Batcher.Config(Batcher.Mode.PACK, 3, 16, PAD, 1, false, 1));
        long total = ex.stream().mapToLong(Example::length).sum();
        List<Batch> batches = drain(b);
        List<Integer> ids = new ArrayList<>();
        List<Integer> labels = new ArrayList<>();
        for (Batch batch : batches) {
            assertEquals(16, batch.cols());
            for (int r = 0; r < batch.rows(); r++) {
                assertEquals(16, batch.lengths()[r]);
            }
            for (int i = 0; i < batch.inputIds().length; i++) {
                ids.add(batch.inputIds()[i]);
                labels.add(batch.labels()[i]);
            }
        }
        // Every token up to the last full row, in order, with its label; the tail is dropped.
        assertEquals(total / 16 * 16, ids.size());
        assertTrue(total - ids.size() < 16);
        int k = 0;
        for (Example e : ex) {
            for (int j = 0; j < e.length() && k < ids.size(); j++, k++) {
                assertEquals(e.inputIds()[j], ids.get(k));
                assertEquals(e.labels()[j], labels.get(k));
            }
        }
        assertEquals(b.rowsPerEpoch(), ids.size() / 16);
    }

    @Test
    void packingRejectsDataShorterThanOneRow() {
        assertThrows(JTuneException.class, () -> new Batcher(examples(1),
                new Batcher.Config(Batcher.Mode.PACK, 1, 4096, PAD, 1, false, 1)));
    }

    @Test
    void sameSeedGivesSameOrderAndDifferentSeedDifferentOrder() {
        for (Batcher.Mode mode : Batcher.Mode.values()) {
            List<Example> ex = examples(40);
            List<Batch> a = drain(new Batcher(ex, config(mode, 42)));
            List<Batch> again = drain(new Batcher(ex, config(mode, 42)));
            List<Batch> other = drain(new Batcher(ex, config(mode, 43)));
            assertEquals(a.size(), again.size());
            for (int i = 0; i < a.size(); i++) {
                assertArrayEquals(a.get(i).inputIds(), again.get(i).inputIds());
                assertArrayEquals(a.get(i).labels(), again.get(i).labels());
            }
            assertNotEquals(rowOwners(a), rowOwners(other), mode.toString());
        }
    }

    @Test
    void eachEpochIsAPermutationInItsOwnOrder() {
        List<Example> ex = examples(40);
        Batcher b = new Batcher(ex, config(Batcher.Mode.PAD, 5));
        List<Batch> all = drain(b);
        assertEquals(3 * b.batchesPerEpoch(), all.size());
        List<List<Integer>> orders = new ArrayList<>();
        for (int epoch = 0; epoch < 3; epoch++) {
            int e = epoch;
            List<Integer> order = rowOwners(all.stream().filter(x -> x.epoch() == e).toList());
            assertEquals(40, new HashSet<>(order).size(), "every example once per epoch");
            orders.add(order);
        }
        assertNotEquals(orders.get(0), orders.get(1));
        assertNotEquals(orders.get(1), orders.get(2));
    }

    @Test
    void resumingFromEpochAndPositionContinuesTheSameSequence() {
        for (Batcher.Mode mode : Batcher.Mode.values()) {
            List<Example> ex = examples(40);
            List<Batch> uninterrupted = drain(new Batcher(ex, config(mode, 9)));

            Batcher first = new Batcher(ex, config(mode, 9));
            int stopAfter = first.batchesPerEpoch() + 2; // mid-way through epoch 1
            for (int i = 0; i < stopAfter; i++) {
                first.next();
            }
            int epoch = first.epoch();
            int position = first.position();
            assertEquals(1, epoch);
            assertEquals(2, position);

            Batcher resumed = new Batcher(ex, config(mode, 9));
            resumed.seek(epoch, position);
            List<Batch> rest = drain(resumed);
            assertEquals(uninterrupted.size() - stopAfter, rest.size());
            for (int i = 0; i < rest.size(); i++) {
                Batch want = uninterrupted.get(stopAfter + i);
                Batch got = rest.get(i);
                assertEquals(want.epoch(), got.epoch());
                assertEquals(want.position(), got.position());
                assertArrayEquals(want.inputIds(), got.inputIds(), mode + " batch " + i);
                assertArrayEquals(want.labels(), got.labels());
            }
            assertFalse(resumed.hasNext());
        }
    }

    @Test
    void seekRejectsAPositionBeyondTheEpoch() {
        Batcher b = new Batcher(examples(10), config(Batcher.Mode.PAD, 1));
        JTuneException e = assertThrows(JTuneException.class, () -> b.seek(0, 99));
        assertTrue(e.getMessage().contains("an epoch has 3 batches"), e.getMessage());
    }

    @Test
    void permutationIsStableAcrossRuns() {
        // Pinned so that a change of algorithm (which would break resuming old checkpoints) is noticed.
        int[] p = Batcher.permutation(10, 42, 0);
        Set<Integer> seen = new HashSet<>();
        for (int v : p) {
            seen.add(v);
        }
        assertEquals(10, seen.size());
        assertArrayEquals(p, Batcher.permutation(10, 42, 0));
        assertArrayEquals(PINNED_42_0, p);
    }

    static final int[] PINNED_42_0 = {2, 0, 6, 1, 5, 3, 4, 7, 9, 8};
}
