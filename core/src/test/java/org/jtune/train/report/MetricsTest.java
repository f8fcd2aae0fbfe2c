package org.jtune.train.report;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.util.ArrayList;
import java.util.List;
import org.jtune.JTuneException;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

class MetricsTest {
    static Metrics.Entry entry(long step) {
        Metrics.Entry e = new Metrics.Entry(step, step / 4.0, 3.0 / (1 + step), 1e-4 * step, 0.5 + step, 1234.5,
                null, 0.25 * step);
        return step % 3 == 0 ? e.withValLoss(2.5 / (1 + step)) : e;
    }

    @Test
    void writesOneFlushedJsonLinePerStepAndReadsItBack(@TempDir Path dir) throws Exception {
        Path file = dir.resolve("run/metrics.jsonl");
        List<Metrics.Entry> written = new ArrayList<>();
        try (Metrics m = Metrics.create(file)) {
            for (long s = 1; s <= 5; s++) {
                m.append(entry(s));
                written.add(entry(s));
                // flushed: visible before close
                assertEquals(s, Files.readAllLines(file).size());
            }
        }
        assertEquals(written, Metrics.read(file));
        String first = Files.readAllLines(file).get(0);
        assertTrue(first.startsWith("{\"step\":1,\"epoch\":0.25,\"loss\":1.5,"), first);
        assertTrue(!first.contains("val_loss"), first);
        assertTrue(Files.readAllLines(file).get(2).contains("\"val_loss\":0.625"));
    }

    @Test
    void nonFiniteValuesRoundTrip(@TempDir Path dir) {
        Path file = dir.resolve("m.jsonl");
        Metrics.Entry e = new Metrics.Entry(1, 0, Double.NaN, 1e-3, Double.POSITIVE_INFINITY, 0, null, 1);
        try (Metrics m = Metrics.create(file)) {
            m.append(e);
        }
        Metrics.Entry back = Metrics.read(file).get(0);
        assertTrue(Double.isNaN(back.loss()));
        assertEquals(Double.POSITIVE_INFINITY, back.gradNorm());
        assertNull(back.valLoss());
    }

    @Test
    void resumedRunLogEqualsUninterruptedLog(@TempDir Path dir) throws Exception {
        Path straight = dir.resolve("straight.jsonl");
        try (Metrics m = Metrics.create(straight)) {
            for (long s = 1; s <= 8; s++) {
                m.append(entry(s));
            }
        }
        // interrupted run: checkpoint at step 4, logged up to 6, died mid-line
        Path resumed = dir.resolve("resumed.jsonl");
        try (Metrics m = Metrics.create(resumed)) {
            for (long s = 1; s <= 6; s++) {
                m.append(entry(s));
            }
        }
        Files.writeString(resumed, "{\"step\":7,\"epo", StandardOpenOption.APPEND);
        try (Metrics m = Metrics.resume(resumed, 4)) {
            assertEquals(4, Metrics.read(resumed).size());
            for (long s = 5; s <= 8; s++) {
                m.append(entry(s));
            }
        }
        assertEquals(Files.readString(straight), Files.readString(resumed));
    }

    @Test
    void truncateAfterKeepsStepsUpToTheGivenOne(@TempDir Path dir) {
        Path file = dir.resolve("m.jsonl");
        try (Metrics m = Metrics.create(file)) {
            for (long s = 1; s <= 5; s++) {
                m.append(entry(s));
            }
        }
        Metrics.truncateAfter(file, 2);
        assertEquals(List.of(entry(1), entry(2)), Metrics.read(file));
        Metrics.truncateAfter(file, 0);
        assertEquals(List.of(), Metrics.read(file));
    }

    @Test
    void resumeWithoutFileStartsFresh(@TempDir Path dir) {
        Path file = dir.resolve("m.jsonl");
        try (Metrics m = Metrics.resume(file, 10)) {
            m.append(entry(11));
        }
        assertEquals(List.of(entry(11)), Metrics.read(file));
    }

    @Test
    void rejectsCorruptLineInTheMiddle(@TempDir Path dir) throws Exception {
        Path file = dir.resolve("m.jsonl");
        Files.writeString(file, Metrics.toJson(entry(1)) + "\ngarbage\n" + Metrics.toJson(entry(2)) + "\n");
        JTuneException e = assertThrows(JTuneException.class, () -> Metrics.read(file));
        assertTrue(e.getMessage().contains("line 2"), e.getMessage());
    }
}
