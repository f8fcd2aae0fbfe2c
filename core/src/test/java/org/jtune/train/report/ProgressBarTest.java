package org.jtune.train.report;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.ByteArrayOutputStream;
import java.io.PrintStream;
import java.nio.charset.StandardCharsets;
import org.junit.jupiter.api.Test;

class ProgressBarTest {
    /** A clock that advances 2 s per reading. */
    static final class FakeClock implements java.util.function.LongSupplier {
        long t;

        @Override
        public long getAsLong() {
            long now = t;
            t += 2_000_000_000L;
            return now;
        }
    }

    @Test
    void plainOutputPrintsEveryNStepsAndTheLast() {
        ByteArrayOutputStream buf = new ByteArrayOutputStream();
        ProgressBar bar = new ProgressBar(25, new PrintStream(buf, true, StandardCharsets.UTF_8), false, 10, new FakeClock());
        for (int s = 1; s <= 25; s++) {
            bar.update(s, 2.0 / s, 1500);
        }
        String[] lines = buf.toString(StandardCharsets.UTF_8).split("\n");
        assertEquals(3, lines.length, String.join("\n", lines));
        assertTrue(lines[0].startsWith("step 10/25 [########------------]  40% | loss 0.2000 | 1500 tok/s | eta 30s"),
                lines[0]); // 9 steps in 18 s since step 1 -> 2 s/step, 15 left
        assertTrue(lines[2].startsWith("step 25/25 [####################] 100%"), lines[2]);
        assertTrue(lines[2].contains("done in 48s"), lines[2]);
        assertTrue(!buf.toString(StandardCharsets.UTF_8).contains("\r"));
    }

    @Test
    void terminalOutputRewritesOneLine() {
        ByteArrayOutputStream buf = new ByteArrayOutputStream();
        ProgressBar bar = new ProgressBar(3, new PrintStream(buf, true, StandardCharsets.UTF_8), true, 10, new FakeClock());
        bar.update(1, 12.345678, 99999);
        bar.update(2, 1.5, 5);
        bar.update(3, 1.25, 5);
        String s = buf.toString(StandardCharsets.UTF_8);
        assertEquals(3, s.chars().filter(c -> c == '\r').count());
        assertTrue(s.endsWith("\n") && s.indexOf('\n') == s.length() - 1, s);
        assertTrue(s.contains("eta ?"), s);
        // the shorter second line is padded over the longer first one
        String[] parts = s.split("\r");
        assertTrue(parts[2].length() >= parts[1].length(), s);
    }

    @Test
    void formatsDurations() {
        assertEquals("42s", ProgressBar.duration(42.2));
        assertEquals("3m05s", ProgressBar.duration(185));
        assertEquals("2h07m", ProgressBar.duration(2 * 3600 + 7 * 60 + 30));
    }
}
