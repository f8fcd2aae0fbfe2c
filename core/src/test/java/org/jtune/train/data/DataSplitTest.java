package org.jtune.train.data;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.HashSet;
import java.util.List;
import java.util.Set;
import java.util.stream.IntStream;
import org.jtune.JTuneException;
import org.junit.jupiter.api.Test;

class DataSplitTest {
    static final List<Integer> ITEMS = IntStream.range(0, 100).boxed().toList();

    @Test
    void validationIsDisjointFromTrainingAndCoversTheData() {
        DataSplit<Integer> s = DataSplit.byFraction(ITEMS, 0.1, 3);
        assertEquals(10, s.validation().size());
        assertEquals(90, s.train().size());
        Set<Integer> train = new HashSet<>(s.train());
        s.validation().forEach(v -> assertTrue(!train.contains(v), "item " + v + " is in both"));
        Set<Integer> all = new HashSet<>(train);
        all.addAll(s.validation());
        assertEquals(100, all.size());
    }

    @Test
    void splitIsStableUnderSeedAndChangesWithIt() {
        assertEquals(DataSplit.byCount(ITEMS, 7, 11), DataSplit.byCount(ITEMS, 7, 11));
        assertNotEquals(DataSplit.byCount(ITEMS, 7, 11).validation(), DataSplit.byCount(ITEMS, 7, 12).validation());
    }

    @Test
    void bothPartsKeepFileOrder() {
        DataSplit<Integer> s = DataSplit.byCount(ITEMS, 20, 5);
        assertEquals(s.train().stream().sorted().toList(), s.train());
        assertEquals(s.validation().stream().sorted().toList(), s.validation());
    }

    @Test
    void validationIsNotJustTheStartOfTheFile() {
        assertNotEquals(ITEMS.subList(0, 10), DataSplit.byCount(ITEMS, 10, 1).validation());
    }

    @Test
    void tinyPositiveFractionStillHoldsOneOut() {
        assertEquals(1, DataSplit.byFraction(ITEMS, 0.001, 1).validation().size());
        assertEquals(0, DataSplit.byFraction(ITEMS, 0, 1).validation().size());
    }

    @Test
    void rejectsSplitsThatLeaveNothingToTrainOn() {
        assertThrows(JTuneException.class, () -> DataSplit.byCount(ITEMS, 100, 1));
        assertThrows(JTuneException.class, () -> DataSplit.byFraction(ITEMS, 1.0, 1));
    }
}
